/*
 * The TLS server context of the [tls] listeners (OpenSSL 3). Every file is
 * opened through pem.c (file_open_regular) and read from that descriptor,
 * so a FIFO cannot stall a reload, and the key's permissions are judged on
 * the very file that is then read. Session tickets are stateless
 * (tls_tickets.c); the login a client certificate names is tls_user.c's.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "socks5d/pem.h"
#include "socks5d/tls_ctx.h"
#include "socks5d/tls_tickets.h"
#include "socks5d/tls_io.h"

struct tls_ctx {
	SSL_CTX *ssl_ctx;
	enum tls_client_user client_user;
};

static const unsigned char tls_alpn_http11[] = "http/1.1";

/* The leaf, then the chain up to (not necessarily including) a root, as
 * SSL_CTX_use_certificate_chain_file reads it. *leafp gets a reference. */
static int
tls_load_chain(SSL_CTX *sc, const char *path, X509 **leafp, char *why,
    size_t whylen)
{
	unsigned long e;
	X509 *leaf, *x;
	size_t n = 1;
	FILE *fp;

	if ((fp = pem_open("certificate", path, why, whylen)) == NULL)
		return -1;
	if ((leaf = PEM_read_X509_AUX(fp, NULL, pem_no_passphrase,
	    NULL)) == NULL) {
		fclose(fp);
		return pem_fail(why, whylen, "certificate %s: cannot load: %s",
		    path, pem_reason());
	}
	/* Refused here when the security level finds its key too weak. */
	if (SSL_CTX_use_certificate(sc, leaf) != 1) {
		pem_fail(why, whylen, "certificate %s: cannot use it: %s",
		    path, pem_reason());
		goto bad;
	}
	while ((x = PEM_read_X509(fp, NULL, pem_no_passphrase,
	    NULL)) != NULL) {
		n++;
		if (SSL_CTX_add0_chain_cert(sc, x) != 1) {
			X509_free(x);
			pem_fail(why, whylen, "certificate %s: cannot use "
			    "certificate %zu of the chain: %s", path, n,
			    pem_reason());
			goto bad;
		}
	}
	/* The end of the file shows as "no start line"; anything else is a
	 * broken certificate after the leaf. */
	e = ERR_peek_last_error();
	if (ERR_GET_LIB(e) != ERR_LIB_PEM ||
	    ERR_GET_REASON(e) != PEM_R_NO_START_LINE) {
		pem_fail(why, whylen, "certificate %s: cannot load "
		    "certificate %zu of the chain: %s", path, n + 1,
		    pem_reason());
		goto bad;
	}
	ERR_clear_error();
	fclose(fp);
	*leafp = leaf;
	return 0;
bad:
	X509_free(leaf);
	fclose(fp);
	return -1;
}

static int
tls_load_key(SSL_CTX *sc, const char *path, X509 *leaf, const char *cert,
    char *why, size_t whylen)
{
	EVP_PKEY *pkey;
	int rc = -1;

	if ((pkey = pem_read_key("key", path, why, whylen)) == NULL)
		return -1;
	/* Checked before SSL_CTX_use_PrivateKey, which files a key of
	 * another type beside the certificate and only says "no
	 * certificate assigned" later. */
	if (X509_check_private_key(leaf, pkey) != 1)
		pem_fail(why, whylen, "key %s: does not match the certificate "
		    "%s: %s", path, cert, pem_reason());
	else if (SSL_CTX_use_PrivateKey(sc, pkey) != 1 ||
	    SSL_CTX_check_private_key(sc) != 1)
		pem_fail(why, whylen, "key %s: cannot use it: %s", path,
		    pem_reason());
	else
		rc = 0;
	EVP_PKEY_free(pkey);
	return rc;
}

/*
 * The CAs client certificates must chain to: trusted for verification and
 * named in the CertificateRequest. Their digest goes into md, so sessions
 * resume only under the same CAs.
 */
static int
tls_load_client_ca(SSL_CTX *sc, const char *path, EVP_MD_CTX *md, char *why,
    size_t whylen)
{
	X509_STORE *store = SSL_CTX_get_cert_store(sc);
	STACK_OF(X509_INFO) *infos;
	size_t ncerts = 0;
	FILE *fp;
	int rc = 0;

	if ((fp = pem_open("client_ca", path, why, whylen)) == NULL)
		return -1;
	infos = PEM_X509_INFO_read(fp, NULL, pem_no_passphrase, NULL);
	fclose(fp);
	if (infos == NULL)
		return pem_fail(why, whylen, "client_ca %s: cannot load: %s",
		    path, pem_reason());
	for (int i = 0; i < sk_X509_INFO_num(infos) && rc == 0; i++) {
		X509_INFO *info = sk_X509_INFO_value(infos, i);
		unsigned char *der = NULL;
		int len;

		/* A CRL here would look like revocation while nothing
		 * checked it. */
		if (info->crl != NULL) {
			rc = pem_fail(why, whylen, "client_ca %s: holds a CRL, "
			    "but socks5d does not check revocation; remove "
			    "it (and the CA that issued a revoked "
			    "certificate)", path);
			break;
		}
		if (info->x509 == NULL)
			continue;
		if (X509_STORE_add_cert(store, info->x509) != 1 ||
		    SSL_CTX_add_client_CA(sc, info->x509) != 1 ||
		    (len = i2d_X509(info->x509, &der)) < 0 ||
		    EVP_DigestUpdate(md, der, (size_t)len) != 1)
			rc = pem_fail(why, whylen, "client_ca %s: cannot use "
			    "certificate %zu: %s", path, ncerts + 1,
			    pem_reason());
		OPENSSL_free(der);
		ncerts++;
	}
	sk_X509_INFO_pop_free(infos, X509_INFO_free);
	if (rc == 0 && ncerts == 0)
		rc = pem_fail(why, whylen, "client_ca %s: no certificates in "
		    "it", path);
	ERR_clear_error();
	return rc;
}

/*
 * The session id context: a session (a ticket) resumes only under the
 * client-certificate policy and CAs it was verified under, so a reload
 * that drops a CA is not undone by tickets. OpenSSL also refuses to
 * resume with SSL_VERIFY_PEER and no context at all.
 */
static int
tls_client_auth(SSL_CTX *sc, const struct tls_settings *set, char *why,
    size_t whylen)
{
	unsigned char sid[EVP_MAX_MD_SIZE];
	unsigned char mode = (unsigned char)set->client_cert;
	unsigned sidlen = 0;
	EVP_MD_CTX *md;
	int verify = SSL_VERIFY_NONE, rc = -1;

	if ((md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(md, "socks5d tls 1", 13) != 1 ||
	    EVP_DigestUpdate(md, &mode, 1) != 1) {
		pem_fail(why, whylen, "out of memory");
		goto done;
	}
	if (set->client_cert != TLS_CLIENT_CERT_NONE) {
		if (set->client_ca == NULL || *set->client_ca == '\0') {
			pem_fail(why, whylen, "client certificates need "
			    "client_ca");
			goto done;
		}
		if (tls_load_client_ca(sc, set->client_ca, md, why,
		    whylen) == -1)
			goto done;
		verify = SSL_VERIFY_PEER;
		if (set->client_cert == TLS_CLIENT_CERT_REQUIRE)
			verify |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
	}
	if (EVP_DigestFinal_ex(md, sid, &sidlen) != 1 ||
	    sidlen > SSL_MAX_SID_CTX_LENGTH ||
	    SSL_CTX_set_session_id_context(sc, sid, sidlen) != 1) {
		pem_fail(why, whylen, "cannot set the session id context: %s",
		    pem_reason());
		goto done;
	}
	SSL_CTX_set_verify(sc, verify, NULL);
	SSL_CTX_set_verify_depth(sc, 9);
	rc = 0;
done:
	EVP_MD_CTX_free(md);
	return rc;
}

/*
 * HTTPS proxy clients offer http/1.1; SOCKS5 over TLS has no ALPN name of
 * its own, so anything else is left unanswered rather than refused.
 */
int
tls_alpn_select_http11(SSL *ssl, const unsigned char **out,
    unsigned char *outlen, const unsigned char *in, unsigned int inlen,
    void *arg)
{
	const size_t want = sizeof(tls_alpn_http11) - 1;
	unsigned int i = 0;

	(void)ssl;
	(void)arg;
	while (i < inlen) {
		unsigned int n = in[i++];

		if (n > inlen - i)
			break;
		if (n == want && memcmp(in + i, tls_alpn_http11, want) == 0) {
			*out = tls_alpn_http11;
			*outlen = (unsigned char)want;
			return SSL_TLSEXT_ERR_OK;
		}
		i += n;
	}
	return SSL_TLSEXT_ERR_NOACK;
}

/*
 * What every TLS session shares. Reading ahead, one read(2) takes up to
 * TLS_READ_AHEAD bytes (four full records) instead of two calls per
 * record (header, then body); the relay and the front-end driver know
 * that bytes OpenSSL holds make no socket readable, and come back for
 * them (SSL_has_pending). RELEASE_BUFFERS frees that buffer whenever it
 * drains, so an idle session holds none.
 */
#define TLS_READ_AHEAD (64 * 1024)

static int
tls_protocol(SSL_CTX *sc, char *why, size_t whylen)
{
	SSL_CTX_set_options(sc, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(sc, SSL_MODE_RELEASE_BUFFERS |
	    SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_read_ahead(sc, 1);
	SSL_CTX_set_default_read_buffer_len(sc, TLS_READ_AHEAD);
	/* Stateless tickets only: nothing to share between workers but
	 * the secret, and no cache to grow. */
	SSL_CTX_set_session_cache_mode(sc, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_timeout(sc, TLS_TICKET_LIFETIME);
	if (SSL_CTX_set_min_proto_version(sc, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_num_tickets(sc, 1) != 1 ||
	    SSL_CTX_set_dh_auto(sc, 1) != 1 ||
	    SSL_CTX_set_tlsext_ticket_key_evp_cb(sc, tls_ticket_cb) != 1)
		return pem_fail(why, whylen, "cannot set up TLS: %s",
		    pem_reason());
	SSL_CTX_set_alpn_select_cb(sc, tls_alpn_select_http11, NULL);
	return 0;
}

struct tls_ctx *
tls_ctx_new(const struct tls_settings *set, char *why, size_t whylen)
{
	struct tls_ctx *ctx;
	X509 *leaf = NULL;

	/* Nothing left over from elsewhere may pass for our reason. */
	ERR_clear_error();
	if (set->certificate == NULL || *set->certificate == '\0' ||
	    set->key == NULL || *set->key == '\0') {
		pem_fail(why, whylen, "needs a certificate and a key");
		return NULL;
	}
	/* Unit tests; the daemon makes the secret before it forks. */
	if (!tls_tickets_ready() && tls_tickets_init() == -1) {
		pem_fail(why, whylen, "cannot make the session ticket secret");
		return NULL;
	}
	if ((ctx = calloc(1, sizeof(*ctx))) == NULL) {
		pem_fail(why, whylen, "out of memory");
		return NULL;
	}
	ctx->client_user = set->client_user;
	if ((ctx->ssl_ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		pem_fail(why, whylen, "cannot set up TLS: %s", pem_reason());
		goto bad;
	}
	/* Only the leaf's validity: an expired certificate fails every
	 * client, but chains are served with expired cross-signs on purpose
	 * (for old trust stores), and clients that trust a newer root never
	 * look at them. */
	if (tls_protocol(ctx->ssl_ctx, why, whylen) == -1 ||
	    tls_load_chain(ctx->ssl_ctx, set->certificate, &leaf, why,
	    whylen) == -1 ||
	    pem_check_validity(leaf, "certificate", set->certificate, why,
	    whylen) == -1 ||
	    tls_load_key(ctx->ssl_ctx, set->key, leaf, set->certificate, why,
	    whylen) == -1 ||
	    tls_client_auth(ctx->ssl_ctx, set, why, whylen) == -1)
		goto bad;
	X509_free(leaf);
	ERR_clear_error();
	return ctx;
bad:
	X509_free(leaf);
	tls_ctx_free(ctx);
	ERR_clear_error();
	return NULL;
}

void
tls_ctx_free(struct tls_ctx *ctx)
{
	if (ctx == NULL)
		return;
	SSL_CTX_free(ctx->ssl_ctx);
	free(ctx);
}

SSL *
tls_ctx_new_ssl(struct tls_ctx *ctx, int fd)
{
	SSL *ssl;

	if ((ssl = SSL_new(ctx->ssl_ctx)) == NULL)
		goto bad;
	if (tls_io_set_fd(ssl, fd) == -1) {
		SSL_free(ssl);
		goto bad;
	}
	SSL_set_accept_state(ssl);
	/* The login rule of the context that verifies this client: a
	 * reload during its handshake must not change which field counts. */
	SSL_set_app_data(ssl, (void *)(uintptr_t)ctx->client_user);
	return ssl;
bad:
	ERR_clear_error();
	return NULL;
}

enum tls_client_user
tls_ctx_client_user(const struct tls_ctx *ctx)
{
	return ctx->client_user;
}

enum tls_client_user
tls_ssl_client_user(const SSL *ssl)
{
	return (enum tls_client_user)(uintptr_t)SSL_get_app_data(ssl);
}
