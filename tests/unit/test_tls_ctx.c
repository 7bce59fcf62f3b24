/*
 * Unit tests for the TLS server context: what tls_ctx_new accepts and the
 * words it refuses with (files, permissions, validity, client CAs), the
 * login a client certificate names, and real handshakes over a socketpair
 * against an OpenSSL client: protocol versions, ALPN, client
 * certificates, and resumption from tickets across contexts.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "socks5d/tls_ctx.h"

#include "tls_certs.h"

static char test_dir[] = "/tmp/socks5d-test-tls-XXXXXX";

/* Made once: a CA, the server's certificate and key, a client's. */
static EVP_PKEY *ca_key, *server_key, *other_key, *client_key;
static X509 *ca_cert, *server_cert, *client_cert, *stranger_cert;
static char cert_path[256], key_path[256], ca_path[256];

static const char *
test_path(char *out, const char *name)
{
	snprintf(out, 256, "%s/%s", test_dir, name);
	return out;
}

static struct tls_ctx *
test_new(const struct tls_settings *set, char *why, size_t whylen)
{
	struct tls_ctx *ctx = tls_ctx_new(set, why, whylen);

	/* Whatever happened, nothing is left for later SSL calls. */
	assert_int_equal(ERR_peek_error(), 0);
	return ctx;
}

/* set must be refused with a reason that contains want. */
static void
test_refused(const struct tls_settings *set, const char *want)
{
	char why[512] = "";
	struct tls_ctx *ctx = test_new(set, why, sizeof(why));

	if (ctx != NULL) {
		tls_ctx_free(ctx);
		fail_msg("accepted; expected \"%s\"", want);
	}
	if (strstr(why, want) == NULL)
		fail_msg("expected \"%s\" in \"%s\"", want, why);
}

static void
test_accepted(const struct tls_settings *set)
{
	char why[512] = "";
	struct tls_ctx *ctx = test_new(set, why, sizeof(why));

	if (ctx == NULL)
		fail_msg("refused: %s", why);
	tls_ctx_free(ctx);
}

static void
test_good_pair(void **state)
{
	struct tls_settings set = { cert_path, key_path, NULL, 0, 0 };
	char chain[256], both[256];

	(void)state;
	test_accepted(&set);
	/* A chain file: leaf, then the CA. */
	tc_write_certs(test_path(chain, "chain.pem"), server_cert, ca_cert,
	    NULL);
	set.certificate = chain;
	test_accepted(&set);
	/* Certificate and key in one file, as some deployments keep them;
	 * it is then held to the key's permissions. */
	test_path(both, "both.pem");
	tc_write_key(both, server_key, 0600);
	{
		FILE *f = fopen(both, "a");

		assert_non_null(f);
		assert_int_equal(PEM_write_X509(f, server_cert), 1);
		assert_int_equal(fclose(f), 0);
	}
	set.certificate = set.key = both;
	test_accepted(&set);
	/* A symlink to the key (certbot's layout) is followed. */
	{
		char link[256];

		test_path(link, "key-link.pem");
		assert_int_equal(symlink(key_path, link), 0);
		set.certificate = cert_path;
		set.key = link;
		test_accepted(&set);
	}
}

static void
test_bad_files(void **state)
{
	struct tls_settings set = { cert_path, key_path, NULL, 0, 0 };
	char path[256], want[1024], garbage[256], other[256];

	(void)state;
	set.key = test_path(path, "missing.pem");
	snprintf(want, sizeof(want), "key %s: cannot open: No such file or "
	    "directory", path);
	test_refused(&set, want);

	set.key = key_path;
	set.certificate = path;
	snprintf(want, sizeof(want), "certificate %s: cannot open: No such "
	    "file or directory", path);
	test_refused(&set, want);

	tc_write_text(test_path(garbage, "garbage.pem"), "not a PEM file\n");
	assert_int_equal(chmod(garbage, 0600), 0);
	set.certificate = garbage;
	snprintf(want, sizeof(want), "certificate %s: cannot load: no start "
	    "line", garbage);
	test_refused(&set, want);

	set.certificate = cert_path;
	set.key = garbage;
	snprintf(want, sizeof(want), "key %s: cannot load: no PEM private "
	    "key in it", garbage);
	test_refused(&set, want);

	/* The certificate given as the key (mode 0600 so it gets that
	 * far). */
	tc_write_certs(test_path(path, "cert-as-key.pem"), server_cert, NULL);
	assert_int_equal(chmod(path, 0600), 0);
	set.key = path;
	snprintf(want, sizeof(want), "key %s: cannot load: no PEM private "
	    "key in it", path);
	test_refused(&set, want);

	/* A directory is no file. */
	set.key = test_dir;
	snprintf(want, sizeof(want), "key %s: not a regular file", test_dir);
	test_refused(&set, want);

	/* The key of another certificate. */
	tc_write_key(test_path(other, "other-key.pem"), other_key, 0600);
	set.key = other;
	snprintf(want, sizeof(want), "key %s: does not match the certificate "
	    "%s: key values mismatch", other, cert_path);
	test_refused(&set, want);

	/* Unset. */
	set.key = NULL;
	test_refused(&set, "needs a certificate and a key");
}

static void
test_broken_chain(void **state)
{
	struct tls_settings set = { NULL, key_path, NULL, 0, 0 };
	char path[256], want[1024];
	FILE *f;

	(void)state;
	tc_write_certs(test_path(path, "broken-chain.pem"), server_cert,
	    NULL);
	f = fopen(path, "a");
	assert_non_null(f);
	fputs("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
	    f);
	assert_int_equal(fclose(f), 0);
	set.certificate = path;
	snprintf(want, sizeof(want), "certificate %s: cannot load certificate "
	    "2 of the chain: ", path);
	test_refused(&set, want);
}

static void
test_key_mode(void **state)
{
	struct tls_settings set = { cert_path, NULL, NULL, 0, 0 };
	char path[256], want[1024];

	(void)state;
	set.key = test_path(path, "mode-key.pem");
	tc_write_key(path, server_key, 0644);
	snprintf(want, sizeof(want), "key %s: readable by others (mode "
	    "0644); chmod o-rwx %s", path, path);
	test_refused(&set, want);
	assert_int_equal(chmod(path, 0602), 0);
	test_refused(&set, "writable by others (mode 0602)");
	/* root:socks5d 0640: workers read it again as the service user. */
	assert_int_equal(chmod(path, 0640), 0);
	test_accepted(&set);
	assert_int_equal(chmod(path, 0400), 0);
	test_accepted(&set);
}

static void
test_encrypted_key(void **state)
{
	struct tls_settings set = { cert_path, NULL, NULL, 0, 0 };
	char path[256];
	FILE *f;

	(void)state;
	set.key = test_path(path, "enc-key.pem");
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_PrivateKey(f, server_key,
	    EVP_aes_256_cbc(), (unsigned char *)"pass", 4, NULL, NULL), 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, 0600), 0);
	/* Refused, not prompted for on a terminal. */
	test_refused(&set, "encrypted with a passphrase");
}

static void
test_validity(void **state)
{
	struct tc_spec spec = { .cn = "old", .key = server_key,
	    .not_before = -2 * 86400, .not_after = -86400 };
	struct tls_settings set = { NULL, key_path, NULL, 0, 0 };
	char path[256], want[1024];
	X509 *x;

	(void)state;
	x = tc_cert(&spec);
	tc_write_certs(test_path(path, "expired.pem"), x, NULL);
	X509_free(x);
	set.certificate = path;
	snprintf(want, sizeof(want), "certificate %s: expired (notAfter ",
	    path);
	test_refused(&set, want);
	test_refused(&set, " UTC)");

	spec.not_before = 86400;
	spec.not_after = 2 * 86400;
	x = tc_cert(&spec);
	tc_write_certs(test_path(path, "future.pem"), x, NULL);
	X509_free(x);
	snprintf(want, sizeof(want), "certificate %s: not valid yet "
	    "(notBefore ", path);
	test_refused(&set, want);
}

static void
test_client_ca_files(void **state)
{
	struct tls_settings set = { cert_path, key_path, NULL,
	    TLS_CLIENT_CERT_REQUIRE, TLS_CLIENT_USER_CN };
	char path[256], want[1024];
	X509_CRL *crl;
	FILE *f;

	(void)state;
	test_refused(&set, "client certificates need client_ca");
	set.client_ca = test_path(path, "empty-ca.pem");
	tc_write_text(path, "");
	snprintf(want, sizeof(want), "client_ca %s: no certificates in it",
	    path);
	test_refused(&set, want);
	tc_write_text(path, "# only a comment\n");
	test_refused(&set, want);

	/* A CRL would look like revocation that nothing checks. */
	crl = X509_CRL_new();
	assert_non_null(crl);
	assert_int_equal(X509_CRL_set_issuer_name(crl,
	    X509_get_subject_name(ca_cert)), 1);
	{
		ASN1_TIME *t = X509_gmtime_adj(NULL, 0);

		assert_int_equal(X509_CRL_set1_lastUpdate(crl, t), 1);
		ASN1_TIME_free(t);
	}
	assert_true(X509_CRL_sign(crl, ca_key, EVP_sha256()) > 0);
	tc_write_certs(test_path(path, "ca-crl.pem"), ca_cert, NULL);
	f = fopen(path, "a");
	assert_non_null(f);
	assert_int_equal(PEM_write_X509_CRL(f, crl), 1);
	assert_int_equal(fclose(f), 0);
	X509_CRL_free(crl);
	set.client_ca = path;
	test_refused(&set, "holds a CRL");

	set.client_ca = ca_path;
	test_accepted(&set);
	set.client_cert = TLS_CLIENT_CERT_OPTIONAL;
	test_accepted(&set);
}

/* tls_cert_user on a certificate made from spec. */
static char *
test_user_of(struct tc_spec spec, enum tls_client_user how)
{
	X509 *x;
	char *user;

	spec.key = client_key;
	spec.issuer = ca_cert;
	spec.issuer_key = ca_key;
	x = tc_cert(&spec);
	user = tls_cert_user(x, how);
	X509_free(x);
	assert_int_equal(ERR_peek_error(), 0);
	return user;
}

static void
test_want_user(struct tc_spec spec, enum tls_client_user how,
    const char *want)
{
	char *user = test_user_of(spec, how);

	if (want == NULL && user != NULL)
		fail_msg("expected no user, got \"%s\"", user);
	if (want != NULL && (user == NULL || strcmp(user, want) != 0))
		fail_msg("expected \"%s\", got \"%s\"", want,
		    user != NULL ? user : "(null)");
	free(user);
}

static void
test_cert_users(void **state)
{
	struct tc_spec both = { .cn = "alice", .san =
	    "DNS:alice.example.com, email:alice@example.com, "
	    "email:second@example.com" };
	struct tc_spec bare = { .cn = NULL };
	char long_cn[301];

	(void)state;
	test_want_user(both, TLS_CLIENT_USER_CN, "alice");
	test_want_user(both, TLS_CLIENT_USER_SAN_EMAIL, "alice@example.com");
	test_want_user(both, TLS_CLIENT_USER_SAN_DNS, "alice.example.com");
	test_want_user(both, TLS_CLIENT_USER_NONE, NULL);
	/* Without the field: no login. */
	test_want_user(bare, TLS_CLIENT_USER_CN, NULL);
	test_want_user(bare, TLS_CLIENT_USER_SAN_EMAIL, NULL);
	test_want_user((struct tc_spec){ .cn = "bob",
	    .san = "DNS:bob.example" }, TLS_CLIENT_USER_SAN_EMAIL, NULL);

	/* Names no users file or rule could hold. */
	test_want_user((struct tc_spec){ .cn = "ev\x01il" },
	    TLS_CLIENT_USER_CN, NULL);
	test_want_user((struct tc_spec){ .cn = "ev\nil" },
	    TLS_CLIENT_USER_CN, NULL);
	test_want_user((struct tc_spec){ .cn = "Alice Smith" },
	    TLS_CLIENT_USER_CN, NULL);
	test_want_user((struct tc_spec){ .cn = "caf\xc3\xa9" },
	    TLS_CLIENT_USER_CN, NULL);
	test_want_user((struct tc_spec){ .cn = "nul\0inside", .cn_len = 10 },
	    TLS_CLIENT_USER_CN, NULL);
	test_want_user((struct tc_spec){ .cn = "" }, TLS_CLIENT_USER_CN,
	    NULL);
	memset(long_cn, 'a', 300);
	long_cn[300] = '\0';
	test_want_user((struct tc_spec){ .cn = long_cn },
	    TLS_CLIENT_USER_CN, NULL);
	long_cn[256] = '\0';
	test_want_user((struct tc_spec){ .cn = long_cn },
	    TLS_CLIENT_USER_CN, NULL);
	long_cn[255] = '\0';
	test_want_user((struct tc_spec){ .cn = long_cn },
	    TLS_CLIENT_USER_CN, long_cn);
	/* Two commonNames: which one is meant is a guess. */
	test_want_user((struct tc_spec){ .cn = "alice", .cn2 = "root" },
	    TLS_CLIENT_USER_CN, NULL);
	/* The first of its kind counts, even when it is unusable. */
	test_want_user((struct tc_spec){ .cn = "x",
	    .san = "DNS:a\x7f.example, DNS:b.example" },
	    TLS_CLIENT_USER_SAN_DNS, NULL);
}

/* -- handshakes ------------------------------------------------------- */

struct hs {
	int fds[2];
	SSL *server, *client;
	bool server_ok, client_ok;
	unsigned long server_err;      /* the server's first error */
};

/* One handshake step; done once it completed or failed. */
static void
test_step(SSL *ssl, bool *done, bool *ok, unsigned long *err)
{
	int rc, e;

	ERR_clear_error();
	rc = SSL_do_handshake(ssl);
	if (rc == 1) {
		*done = *ok = true;
		return;
	}
	e = SSL_get_error(ssl, rc);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return;
	*done = true;
	if (err != NULL)
		*err = ERR_peek_error();
	ERR_clear_error();
}

/* Both ends non-blocking on a socketpair, stepped in turn until neither
 * can go on. The context is freed first when free_ctx: SSLs outlive it. */
static void
test_handshake(struct hs *h, struct tls_ctx *ctx, SSL_CTX *cctx,
    SSL_SESSION *resume, const char *alpn, size_t alpn_len)
{
	bool sdone = false, cdone = false;

	memset(h, 0, sizeof(*h));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, h->fds), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(fcntl(h->fds[i], F_SETFL, O_NONBLOCK), 0);
	h->server = tls_ctx_new_ssl(ctx, h->fds[0]);
	assert_non_null(h->server);
	h->client = SSL_new(cctx);
	assert_non_null(h->client);
	assert_int_equal(SSL_set_fd(h->client, h->fds[1]), 1);
	SSL_set_connect_state(h->client);
	if (alpn != NULL)
		assert_int_equal(SSL_set_alpn_protos(h->client,
		    (const unsigned char *)alpn, (unsigned)alpn_len), 0);
	if (resume != NULL)
		assert_int_equal(SSL_set_session(h->client, resume), 1);
	for (int i = 0; i < 100 && (!sdone || !cdone); i++) {
		if (!sdone)
			test_step(h->server, &sdone, &h->server_ok,
			    &h->server_err);
		if (!cdone)
			test_step(h->client, &cdone, &h->client_ok, NULL);
	}
}

/* Server to client: a few bytes, through which the client also takes the
 * TLS 1.3 tickets sent after the handshake. */
static void
test_exchange(struct hs *h)
{
	char buf[64];
	int n = -1;

	assert_int_equal(SSL_write(h->server, "ping", 4), 4);
	for (int i = 0; i < 100 && n <= 0; i++)
		n = SSL_read(h->client, buf, sizeof(buf));
	assert_int_equal(n, 4);
	assert_memory_equal(buf, "ping", 4);
	ERR_clear_error();
}

/* The client says goodbye first: an SSL freed without close_notify
 * marks its session not resumable. */
static void
test_hs_done(struct hs *h)
{
	if (h->client_ok)
		(void)SSL_shutdown(h->client);
	SSL_free(h->server);
	SSL_free(h->client);
	close(h->fds[0]);
	close(h->fds[1]);
	ERR_clear_error();
}

static SSL_CTX *
test_client_ctx(bool with_cert)
{
	SSL_CTX *c = SSL_CTX_new(TLS_client_method());

	assert_non_null(c);
	SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
	if (with_cert) {
		assert_int_equal(SSL_CTX_use_certificate(c, client_cert), 1);
		assert_int_equal(SSL_CTX_use_PrivateKey(c, client_key), 1);
	}
	return c;
}

static struct tls_ctx *
test_server(enum tls_client_cert cc, enum tls_client_user cu)
{
	struct tls_settings set = { cert_path, key_path,
	    cc != TLS_CLIENT_CERT_NONE ? ca_path : NULL, cc, cu };
	char why[512];
	struct tls_ctx *ctx = test_new(&set, why, sizeof(why));

	if (ctx == NULL)
		fail_msg("refused: %s", why);
	assert_int_equal(tls_ctx_client_user(ctx), cu);
	return ctx;
}

static void
test_handshake_basics(void **state)
{
	struct tls_ctx *ctx = test_server(TLS_CLIENT_CERT_NONE,
	    TLS_CLIENT_USER_NONE);
	SSL_CTX *c = test_client_ctx(false);
	const unsigned char *proto;
	unsigned len;
	struct hs h;

	(void)state;
	/* Offered among others: chosen. */
	test_handshake(&h, ctx, c, NULL, "\x02h2\x08http/1.1", 12);
	assert_true(h.server_ok && h.client_ok);
	assert_int_equal(SSL_version(h.server), TLS1_3_VERSION);
	SSL_get0_alpn_selected(h.server, &proto, &len);
	assert_int_equal(len, 8);
	assert_memory_equal(proto, "http/1.1", 8);
	SSL_get0_alpn_selected(h.client, &proto, &len);
	assert_int_equal(len, 8);
	/* No certificate asked for: no login. */
	assert_null(tls_client_user_of(h.server, TLS_CLIENT_USER_CN));
	test_hs_done(&h);

	/* Not offered (SOCKS5 over TLS), or only others: no ALPN, and no
	 * failure. */
	test_handshake(&h, ctx, c, NULL, NULL, 0);
	assert_true(h.server_ok && h.client_ok);
	SSL_get0_alpn_selected(h.server, &proto, &len);
	assert_int_equal(len, 0);
	test_hs_done(&h);
	test_handshake(&h, ctx, c, NULL, "\x02h2\x06socks5", 10);
	assert_true(h.server_ok && h.client_ok);
	SSL_get0_alpn_selected(h.client, &proto, &len);
	assert_int_equal(len, 0);
	test_hs_done(&h);

	/* TLS 1.2 still: */
	assert_int_equal(SSL_CTX_set_max_proto_version(c, TLS1_2_VERSION), 1);
	test_handshake(&h, ctx, c, NULL, "\x08http/1.1", 9);
	assert_true(h.server_ok && h.client_ok);
	assert_int_equal(SSL_version(h.server), TLS1_2_VERSION);
	test_hs_done(&h);

	/* TLS 1.1 no more; the client is let down to its security level 0
	 * so that it really offers it and the server is the one to
	 * refuse. */
	assert_int_equal(SSL_CTX_set_min_proto_version(c, TLS1_VERSION), 1);
	assert_int_equal(SSL_CTX_set_max_proto_version(c, TLS1_1_VERSION), 1);
	assert_int_equal(SSL_CTX_set_cipher_list(c, "DEFAULT:@SECLEVEL=0"),
	    1);
	test_handshake(&h, ctx, c, NULL, NULL, 0);
	assert_false(h.server_ok);
	assert_false(h.client_ok);
	assert_int_equal(ERR_GET_REASON(h.server_err),
	    SSL_R_UNSUPPORTED_PROTOCOL);
	test_hs_done(&h);

	SSL_CTX_free(c);
	tls_ctx_free(ctx);
}

/* The relay reads with room for a whole record, so nothing decrypted
 * stays inside the SSL (SSL_pending); records read ahead show in
 * SSL_has_pending, which the relay and the front-end driver ask. */
static void
test_nothing_pending(void **state)
{
	struct tls_ctx *ctx = test_server(TLS_CLIENT_CERT_NONE,
	    TLS_CLIENT_USER_NONE);
	SSL_CTX *c = test_client_ctx(false);
	static char big[40000], buf[16384];
	size_t got = 0;
	struct hs h;

	(void)state;
	test_handshake(&h, ctx, c, NULL, NULL, 0);
	assert_true(h.server_ok && h.client_ok);
	for (int i = 0; i < 3; i++)
		assert_int_equal(SSL_write(h.client, "small", 5), 5);
	memset(big, 'x', sizeof(big));
	assert_int_equal(SSL_write(h.client, big, sizeof(big)), sizeof(big));
	for (int i = 0; i < 3; i++) {
		assert_int_equal(SSL_read(h.server, buf, sizeof(buf)), 5);
		assert_int_equal(SSL_pending(h.server), 0);
		/* Read ahead: the records behind it came with it. */
		assert_int_equal(SSL_has_pending(h.server), 1);
	}
	while (got < sizeof(big)) {
		int n = SSL_read(h.server, buf, sizeof(buf));

		assert_true(n > 0);
		got += (size_t)n;
		assert_int_equal(SSL_pending(h.server), 0);
	}
	assert_int_equal(got, sizeof(big));
	/* All of it taken: nothing held that the socket would not show. */
	assert_int_equal(SSL_has_pending(h.server), 0);
	test_hs_done(&h);
	SSL_CTX_free(c);
	tls_ctx_free(ctx);
}

static void
test_client_certificates(void **state)
{
	struct tls_ctx *require = test_server(TLS_CLIENT_CERT_REQUIRE,
	    TLS_CLIENT_USER_CN);
	struct tls_ctx *optional = test_server(TLS_CLIENT_CERT_OPTIONAL,
	    TLS_CLIENT_USER_SAN_EMAIL);
	SSL_CTX *anon = test_client_ctx(false), *with = test_client_ctx(true);
	SSL_CTX *stranger = test_client_ctx(false);
	char *user;
	struct hs h;

	(void)state;
	/* Required and not sent: the server fails (in TLS 1.3 the client
	 * has finished by then and learns it from the alert). */
	test_handshake(&h, require, anon, NULL, NULL, 0);
	assert_false(h.server_ok);
	assert_int_equal(ERR_GET_REASON(h.server_err),
	    SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE);
	test_hs_done(&h);

	/* Sent and verified: the login it names. */
	test_handshake(&h, require, with, NULL, NULL, 0);
	assert_true(h.server_ok && h.client_ok);
	user = tls_client_user_of(h.server, tls_ctx_client_user(require));
	assert_non_null(user);
	assert_string_equal(user, "carol");
	free(user);
	test_hs_done(&h);

	/* A certificate from another CA: refused, even when optional. */
	assert_int_equal(SSL_CTX_use_certificate(stranger, stranger_cert), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(stranger, other_key), 1);
	test_handshake(&h, require, stranger, NULL, NULL, 0);
	assert_false(h.server_ok);
	test_hs_done(&h);
	test_handshake(&h, optional, stranger, NULL, NULL, 0);
	assert_false(h.server_ok);
	test_hs_done(&h);

	/* Optional: without one the client gets in, with no login. */
	test_handshake(&h, optional, anon, NULL, NULL, 0);
	assert_true(h.server_ok && h.client_ok);
	assert_null(tls_client_user_of(h.server, TLS_CLIENT_USER_SAN_EMAIL));
	test_hs_done(&h);
	test_handshake(&h, optional, with, NULL, NULL, 0);
	assert_true(h.server_ok && h.client_ok);
	user = tls_client_user_of(h.server, tls_ctx_client_user(optional));
	assert_non_null(user);
	assert_string_equal(user, "carol@example.com");
	free(user);
	test_hs_done(&h);

	SSL_CTX_free(anon);
	SSL_CTX_free(with);
	SSL_CTX_free(stranger);
	tls_ctx_free(require);
	tls_ctx_free(optional);
}

/* A full handshake, and the session its ticket makes for the client. */
static SSL_SESSION *
test_ticket(struct tls_ctx *ctx, SSL_CTX *c)
{
	SSL_SESSION *sess;
	struct hs h;

	test_handshake(&h, ctx, c, NULL, NULL, 0);
	assert_true(h.server_ok && h.client_ok);
	assert_int_equal(SSL_session_reused(h.server), 0);
	test_exchange(&h);
	sess = SSL_get1_session(h.client);
	assert_non_null(sess);
	assert_int_equal(SSL_SESSION_is_resumable(sess), 1);
	test_hs_done(&h);
	return sess;
}

/* Does ctx resume sess? user gets the login the session names. */
static bool
test_resume(struct tls_ctx *ctx, SSL_CTX *c, SSL_SESSION *sess, char **user)
{
	struct hs h;
	bool reused;

	test_handshake(&h, ctx, c, sess, NULL, 0);
	assert_true(h.server_ok && h.client_ok);
	reused = SSL_session_reused(h.server) == 1;
	if (user != NULL)
		*user = tls_client_user_of(h.server, TLS_CLIENT_USER_CN);
	test_hs_done(&h);
	return reused;
}

/* A ticket from first, tried on second. */
static bool
test_resumes(struct tls_ctx *first, struct tls_ctx *second, SSL_CTX *c,
    char **user)
{
	SSL_SESSION *sess = test_ticket(first, c);
	bool reused = test_resume(second, c, sess, user);

	SSL_SESSION_free(sess);
	return reused;
}

static void
test_resumption(void **state)
{
	struct tls_ctx *a = test_server(TLS_CLIENT_CERT_NONE,
	    TLS_CLIENT_USER_NONE);
	struct tls_ctx *b = test_server(TLS_CLIENT_CERT_NONE,
	    TLS_CLIENT_USER_NONE);
	struct tls_ctx *req = test_server(TLS_CLIENT_CERT_REQUIRE,
	    TLS_CLIENT_USER_CN);
	struct tls_ctx *req2 = test_server(TLS_CLIENT_CERT_REQUIRE,
	    TLS_CLIENT_USER_CN);
	struct tls_ctx *opt = test_server(TLS_CLIENT_CERT_OPTIONAL,
	    TLS_CLIENT_USER_CN);
	SSL_CTX *c = test_client_ctx(false), *with = test_client_ctx(true);
	char *user = NULL;

	(void)state;
	assert_true(test_resumes(a, a, c, NULL));
	/* Another context from the same settings: a reload, or another
	 * worker. */
	assert_true(test_resumes(a, b, c, NULL));
	/* In TLS 1.2 too. */
	assert_int_equal(SSL_CTX_set_max_proto_version(c, TLS1_2_VERSION), 1);
	assert_true(test_resumes(a, b, c, NULL));
	assert_int_equal(SSL_CTX_set_max_proto_version(c, 0), 1);

	/* A resumed session still names the certificate's login. */
	assert_true(test_resumes(req, req2, with, &user));
	assert_non_null(user);
	assert_string_equal(user, "carol");
	free(user);

	/* Not across client-certificate policies: a ticket made where a
	 * certificate was optional or not asked for must not let a client
	 * in where one is required. */
	assert_false(test_resumes(opt, req, with, NULL));
	assert_false(test_resumes(a, req, with, NULL));

	/* A new secret (another daemon) does not know old tickets. */
	{
		SSL_SESSION *sess = test_ticket(a, c);

		assert_int_equal(tls_tickets_init(), 0);
		assert_false(test_resume(b, c, sess, NULL));
		SSL_SESSION_free(sess);
	}
	/* And its own tickets resume again. */
	assert_true(test_resumes(a, b, c, NULL));

	SSL_CTX_free(c);
	SSL_CTX_free(with);
	tls_ctx_free(a);
	tls_ctx_free(b);
	tls_ctx_free(req);
	tls_ctx_free(req2);
	tls_ctx_free(opt);
}

/*
 * The clock as libssl and the daemon's objects see it: defining time()
 * here overrides libc's for them, so ticket keys can be aged without
 * waiting hours.
 */
static time_t test_clock_skew;

time_t
time(time_t *t)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += test_clock_skew;
	if (t != NULL)
		*t = ts.tv_sec;
	return ts.tv_sec;
}

/* A ticket resumes in the hour after its own too, not in the one after
 * that, though it is younger than its lifetime. */
static void
test_ticket_key_periods(void **state)
{
	struct tls_ctx *ctx = test_server(TLS_CLIENT_CERT_NONE,
	    TLS_CLIENT_USER_NONE);
	SSL_CTX *c = test_client_ctx(false);
	SSL_SESSION *sess;

	(void)state;
	/* Ten seconds before an hour ends. */
	test_clock_skew = 0;
	test_clock_skew = 3590 - time(NULL) % 3600;
	sess = test_ticket(ctx, c);
	test_clock_skew += 20;
	assert_true(test_resume(ctx, c, sess, NULL));
	/* In TLS 1.2 the previous hour's ticket is also renewed. */
	SSL_SESSION_free(sess);
	assert_int_equal(SSL_CTX_set_max_proto_version(c, TLS1_2_VERSION), 1);
	/* Ten seconds before the next hour ends (the clock only goes on:
	 * a secret once left behind is gone, a clock set back or not). */
	test_clock_skew += 3580;
	sess = test_ticket(ctx, c);
	test_clock_skew += 20;
	{
		SSL_SESSION *renewed;
		struct hs h;

		test_handshake(&h, ctx, c, sess, NULL, 0);
		assert_true(h.server_ok && h.client_ok);
		assert_int_equal(SSL_session_reused(h.server), 1);
		test_exchange(&h);
		renewed = SSL_get1_session(h.client);
		assert_non_null(renewed);
		test_hs_done(&h);
		{
			const unsigned char *t1, *t2;
			size_t l1, l2;

			SSL_SESSION_get0_ticket(sess, &t1, &l1);
			SSL_SESSION_get0_ticket(renewed, &t2, &l2);
			assert_true(l1 != l2 || memcmp(t1, t2, l1) != 0);
		}
		SSL_SESSION_free(renewed);
	}
	/* Two hours on: the key is gone (the ticket is 3620 s old). */
	test_clock_skew += 3600;
	assert_false(test_resume(ctx, c, sess, NULL));
	test_clock_skew = 0;
	SSL_SESSION_free(sess);
	SSL_CTX_free(c);
	tls_ctx_free(ctx);
}

/* A reload frees the old context while its sessions go on. */
static void
test_ctx_freed_under_ssl(void **state)
{
	struct tls_ctx *ctx = test_server(TLS_CLIENT_CERT_NONE,
	    TLS_CLIENT_USER_NONE);
	SSL_CTX *c = test_client_ctx(false);
	bool sdone = false, cdone = false, sok = false, cok = false;
	SSL *server, *client;
	int fds[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(fcntl(fds[i], F_SETFL, O_NONBLOCK), 0);
	server = tls_ctx_new_ssl(ctx, fds[0]);
	assert_non_null(server);
	tls_ctx_free(ctx);
	client = SSL_new(c);
	assert_non_null(client);
	assert_int_equal(SSL_set_fd(client, fds[1]), 1);
	SSL_set_connect_state(client);
	for (int i = 0; i < 100 && (!sdone || !cdone); i++) {
		if (!sdone)
			test_step(server, &sdone, &sok, NULL);
		if (!cdone)
			test_step(client, &cdone, &cok, NULL);
	}
	assert_true(sok && cok);
	SSL_free(server);
	SSL_free(client);
	SSL_CTX_free(c);
	close(fds[0]);
	close(fds[1]);
}

static int
test_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
test_setup(void **state)
{
	struct tc_spec ca = { .cn = "socks5d test CA", .ca = true };
	struct tc_spec server = { .cn = "proxy.test",
	    .san = "DNS:proxy.test" };
	struct tc_spec client = { .cn = "carol",
	    .san = "email:carol@example.com" };
	struct tc_spec stranger = { .cn = "mallory" };

	(void)state;
	if (mkdtemp(test_dir) == NULL)
		return -1;
	ca_key = tc_key();
	server_key = tc_key();
	other_key = tc_key();
	client_key = tc_key();
	ca.key = ca_key;
	ca_cert = tc_cert(&ca);
	server.key = server_key;
	server_cert = tc_cert(&server);
	client.key = client_key;
	client.issuer = ca_cert;
	client.issuer_key = ca_key;
	client_cert = tc_cert(&client);
	stranger.key = other_key;
	stranger_cert = tc_cert(&stranger);
	tc_write_certs(test_path(cert_path, "cert.pem"), server_cert, NULL);
	tc_write_key(test_path(key_path, "key.pem"), server_key, 0640);
	tc_write_certs(test_path(ca_path, "ca.pem"), ca_cert, NULL);
	return 0;
}

static int
test_teardown(void **state)
{
	(void)state;
	X509_free(ca_cert);
	X509_free(server_cert);
	X509_free(client_cert);
	X509_free(stranger_cert);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(server_key);
	EVP_PKEY_free(other_key);
	EVP_PKEY_free(client_key);
	return nftw(test_dir, test_rm, 8, FTW_DEPTH | FTW_PHYS);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_pair),
		cmocka_unit_test(test_bad_files),
		cmocka_unit_test(test_broken_chain),
		cmocka_unit_test(test_key_mode),
		cmocka_unit_test(test_encrypted_key),
		cmocka_unit_test(test_validity),
		cmocka_unit_test(test_client_ca_files),
		cmocka_unit_test(test_cert_users),
		cmocka_unit_test(test_handshake_basics),
		cmocka_unit_test(test_nothing_pending),
		cmocka_unit_test(test_client_certificates),
		cmocka_unit_test(test_resumption),
		cmocka_unit_test(test_ticket_key_periods),
		cmocka_unit_test(test_ctx_freed_under_ssl),
	};

	return cmocka_run_group_tests(tests, test_setup, test_teardown);
}
