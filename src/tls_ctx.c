/*
 * The TLS server context of the [tls] listeners (OpenSSL 3). Every file is
 * opened through file_open_regular and read from that descriptor, so a
 * FIFO cannot stall a reload, and the key's permissions are judged on the
 * very file that is then read. Session tickets are stateless: their keys
 * are derived per hour from one secret made before the workers fork.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sodium.h>

#include "socks5d/file.h"
#include "socks5d/tls_ctx.h"

/* A login longer than this fits no users file line or rule. */
#define TLS_USER_MAX 255

/* Ticket keys change every period; a ticket is taken for two (so for 1
 * to 2 hours), and one of the previous period is renewed. */
#define TLS_TICKET_PERIOD 3600
#define TLS_TICKET_LIFETIME (2 * TLS_TICKET_PERIOD)
#define TLS_TICKET_KDF_CONTEXT "sk5dtick"
#define TLS_TICKET_NAME_LEN 16

struct tls_ctx {
	SSL_CTX *ssl_ctx;
	enum tls_client_user client_user;
};

struct tls_ticket_keys {
	unsigned char name[TLS_TICKET_NAME_LEN];
	unsigned char aes[32];         /* AES-256-CBC */
	unsigned char hmac[32];        /* HMAC-SHA256 */
};

static unsigned char tls_ticket_secret[crypto_kdf_KEYBYTES];
static bool tls_ticket_ready;

static const unsigned char tls_alpn_http11[] = "http/1.1";

static int
tls_fail(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
tls_fail(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	ERR_clear_error();
	return -1;
}

/*
 * OpenSSL's words for the first error it queued: the later ones mostly say
 * where it was passed on ("PEM lib"), the first what was wrong.
 */
static const char *
tls_reason(void)
{
	unsigned long e = ERR_peek_error();
	const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

	return r != NULL ? r : "unknown error";
}

/*
 * OpenSSL 3's decoders say "unsupported" first for anything they could not
 * read as a key: a file with no key, or a key broken in a way a later
 * error names.
 */
static const char *
tls_key_reason(void)
{
	unsigned long e = ERR_peek_error();

	if (ERR_GET_LIB(e) == ERR_LIB_OSSL_DECODER &&
	    ERR_GET_REASON(e) == ERR_R_UNSUPPORTED) {
		(void)ERR_get_error();
		if (ERR_peek_error() == 0)
			return "no PEM private key in it";
	}
	return tls_reason();
}

/* A daemon has no terminal to ask a passphrase on: OpenSSL's default
 * callback would try /dev/tty. Record that one was wanted. */
static int
tls_no_passphrase(char *buf, int size, int rwflag, void *arg)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	if (arg != NULL)
		*(bool *)arg = true;
	return -1;
}

static FILE *
tls_open(const char *what, const char *path, char *why, size_t whylen)
{
	char reason[128];
	FILE *fp;

	if ((fp = file_open_regular(path, reason, sizeof(reason))) == NULL)
		tls_fail(why, whylen, "%s %s: %s", what, path, reason);
	return fp;
}

/*
 * The key must not be open to others. Its group may read it: workers load
 * the config again after dropping root, so a deployment is
 * root:socks5d 0640.
 */
static FILE *
tls_open_key(const char *path, char *why, size_t whylen)
{
	struct stat st;
	FILE *fp;

	if ((fp = tls_open("key", path, why, whylen)) == NULL)
		return NULL;
	if (fstat(fileno(fp), &st) == -1) {
		tls_fail(why, whylen, "key %s: cannot stat", path);
		fclose(fp);
		return NULL;
	}
	if (st.st_mode & S_IRWXO) {
		tls_fail(why, whylen, "key %s: %s by others (mode %04o); "
		    "chmod o-rwx %s", path, st.st_mode & S_IROTH ? "readable" :
		    st.st_mode & S_IWOTH ? "writable" : "accessible",
		    (unsigned)(st.st_mode & 07777), path);
		fclose(fp);
		return NULL;
	}
	return fp;
}

static void
tls_time_text(const ASN1_TIME *t, char *out, size_t outlen)
{
	struct tm tm;

	if (ASN1_TIME_to_tm(t, &tm) != 1 ||
	    strftime(out, outlen, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(out, outlen, "unreadable");
}

/*
 * Only the leaf: an expired certificate fails every client, but chains
 * are served with expired cross-signs on purpose (for old trust stores),
 * and clients that trust a newer root never look at them.
 */
static int
tls_check_validity(X509 *leaf, const char *path, char *why, size_t whylen)
{
	const ASN1_TIME *before = X509_get0_notBefore(leaf);
	const ASN1_TIME *after = X509_get0_notAfter(leaf);
	char text[64];

	if (X509_cmp_current_time(after) <= 0) {
		tls_time_text(after, text, sizeof(text));
		return tls_fail(why, whylen, "certificate %s: expired "
		    "(notAfter %s)", path, text);
	}
	if (X509_cmp_current_time(before) >= 0) {
		tls_time_text(before, text, sizeof(text));
		return tls_fail(why, whylen, "certificate %s: not valid yet "
		    "(notBefore %s)", path, text);
	}
	return 0;
}

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

	if ((fp = tls_open("certificate", path, why, whylen)) == NULL)
		return -1;
	if ((leaf = PEM_read_X509_AUX(fp, NULL, tls_no_passphrase,
	    NULL)) == NULL) {
		fclose(fp);
		return tls_fail(why, whylen, "certificate %s: cannot load: %s",
		    path, tls_reason());
	}
	/* Refused here when the security level finds its key too weak. */
	if (SSL_CTX_use_certificate(sc, leaf) != 1) {
		tls_fail(why, whylen, "certificate %s: cannot use it: %s",
		    path, tls_reason());
		goto bad;
	}
	while ((x = PEM_read_X509(fp, NULL, tls_no_passphrase,
	    NULL)) != NULL) {
		n++;
		if (SSL_CTX_add0_chain_cert(sc, x) != 1) {
			X509_free(x);
			tls_fail(why, whylen, "certificate %s: cannot use "
			    "certificate %zu of the chain: %s", path, n,
			    tls_reason());
			goto bad;
		}
	}
	/* The end of the file shows as "no start line"; anything else is a
	 * broken certificate after the leaf. */
	e = ERR_peek_last_error();
	if (ERR_GET_LIB(e) != ERR_LIB_PEM ||
	    ERR_GET_REASON(e) != PEM_R_NO_START_LINE) {
		tls_fail(why, whylen, "certificate %s: cannot load "
		    "certificate %zu of the chain: %s", path, n + 1,
		    tls_reason());
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
	char buf[BUFSIZ];
	bool asked = false;
	EVP_PKEY *pkey;
	FILE *fp;
	int rc = -1;

	if ((fp = tls_open_key(path, why, whylen)) == NULL)
		return -1;
	/* Our own stdio buffer, so the key's text is wiped, not left in
	 * freed memory. */
	setvbuf(fp, buf, _IOFBF, sizeof(buf));
	pkey = PEM_read_PrivateKey(fp, NULL, tls_no_passphrase, &asked);
	fclose(fp);
	OPENSSL_cleanse(buf, sizeof(buf));
	if (pkey == NULL && asked)
		return tls_fail(why, whylen, "key %s: encrypted with a "
		    "passphrase, which socks5d cannot ask for; store it "
		    "unencrypted (openssl pkey -in OLD -out NEW)", path);
	if (pkey == NULL)
		return tls_fail(why, whylen, "key %s: cannot load: %s", path,
		    tls_key_reason());
	/* Checked before SSL_CTX_use_PrivateKey, which files a key of
	 * another type beside the certificate and only says "no
	 * certificate assigned" later. */
	if (X509_check_private_key(leaf, pkey) != 1)
		tls_fail(why, whylen, "key %s: does not match the certificate "
		    "%s: %s", path, cert, tls_reason());
	else if (SSL_CTX_use_PrivateKey(sc, pkey) != 1 ||
	    SSL_CTX_check_private_key(sc) != 1)
		tls_fail(why, whylen, "key %s: cannot use it: %s", path,
		    tls_reason());
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

	if ((fp = tls_open("client_ca", path, why, whylen)) == NULL)
		return -1;
	infos = PEM_X509_INFO_read(fp, NULL, tls_no_passphrase, NULL);
	fclose(fp);
	if (infos == NULL)
		return tls_fail(why, whylen, "client_ca %s: cannot load: %s",
		    path, tls_reason());
	for (int i = 0; i < sk_X509_INFO_num(infos) && rc == 0; i++) {
		X509_INFO *info = sk_X509_INFO_value(infos, i);
		unsigned char *der = NULL;
		int len;

		/* A CRL here would look like revocation while nothing
		 * checked it. */
		if (info->crl != NULL) {
			rc = tls_fail(why, whylen, "client_ca %s: holds a CRL, "
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
			rc = tls_fail(why, whylen, "client_ca %s: cannot use "
			    "certificate %zu: %s", path, ncerts + 1,
			    tls_reason());
		OPENSSL_free(der);
		ncerts++;
	}
	sk_X509_INFO_pop_free(infos, X509_INFO_free);
	if (rc == 0 && ncerts == 0)
		rc = tls_fail(why, whylen, "client_ca %s: no certificates in "
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
		tls_fail(why, whylen, "out of memory");
		goto done;
	}
	if (set->client_cert != TLS_CLIENT_CERT_NONE) {
		if (set->client_ca == NULL || *set->client_ca == '\0') {
			tls_fail(why, whylen, "client certificates need "
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
		tls_fail(why, whylen, "cannot set the session id context: %s",
		    tls_reason());
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
static int
tls_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
    const unsigned char *in, unsigned int inlen, void *arg)
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

/* The keys of one period: name, cipher and MAC key, all from the secret,
 * so every worker derives the same ones without talking to the others. */
static void
tls_ticket_keys(uint64_t period, struct tls_ticket_keys *k)
{
	crypto_kdf_derive_from_key(k->name, sizeof(k->name), period * 3,
	    TLS_TICKET_KDF_CONTEXT, tls_ticket_secret);
	crypto_kdf_derive_from_key(k->aes, sizeof(k->aes), period * 3 + 1,
	    TLS_TICKET_KDF_CONTEXT, tls_ticket_secret);
	crypto_kdf_derive_from_key(k->hmac, sizeof(k->hmac), period * 3 + 2,
	    TLS_TICKET_KDF_CONTEXT, tls_ticket_secret);
}

/*
 * SSL_CTX_set_tlsext_ticket_key_evp_cb: enc 1 seals a new ticket with this
 * period's keys (1: done); enc 0 opens one by its key name, 1 for this
 * period, 2 for the previous one (resume, and issue a fresh ticket), 0 for
 * any other (a full handshake). Negative is an error that fails the
 * handshake.
 */
static int
tls_ticket_cb(SSL *ssl, unsigned char name[TLS_TICKET_NAME_LEN],
    unsigned char iv[EVP_MAX_IV_LENGTH], EVP_CIPHER_CTX *cctx,
    EVP_MAC_CTX *hctx, int enc)
{
	uint64_t period = (uint64_t)time(NULL) / TLS_TICKET_PERIOD;
	char digest[] = "SHA256";
	struct tls_ticket_keys k;
	OSSL_PARAM params[3];
	int rc = 1;

	(void)ssl;
	tls_ticket_keys(period, &k);
	if (enc) {
		memcpy(name, k.name, sizeof(k.name));
		if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(
		    EVP_aes_256_cbc())) != 1)
			rc = -1;
	} else if (sodium_memcmp(name, k.name, sizeof(k.name)) != 0) {
		tls_ticket_keys(period - 1, &k);
		rc = sodium_memcmp(name, k.name, sizeof(k.name)) == 0 ? 2 : 0;
	}
	if (rc > 0) {
		params[0] = OSSL_PARAM_construct_octet_string(
		    OSSL_MAC_PARAM_KEY, k.hmac, sizeof(k.hmac));
		params[1] = OSSL_PARAM_construct_utf8_string(
		    OSSL_MAC_PARAM_DIGEST, digest, 0);
		params[2] = OSSL_PARAM_construct_end();
		if (EVP_CipherInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv,
		    enc) != 1 || EVP_MAC_CTX_set_params(hctx, params) != 1)
			rc = -1;
	}
	sodium_memzero(&k, sizeof(k));
	return rc;
}

/*
 * What every TLS session shares. read_ahead stays off: the relay reads
 * with room for a whole record, so nothing is left buffered inside the
 * SSL (SSL_pending is 0) once a read returns, and an event on the socket
 * is all that wakes it.
 */
static int
tls_protocol(SSL_CTX *sc, char *why, size_t whylen)
{
	SSL_CTX_set_options(sc, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(sc, SSL_MODE_RELEASE_BUFFERS |
	    SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_read_ahead(sc, 0);
	/* Stateless tickets only: nothing to share between workers but
	 * the secret, and no cache to grow. */
	SSL_CTX_set_session_cache_mode(sc, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_timeout(sc, TLS_TICKET_LIFETIME);
	if (SSL_CTX_set_min_proto_version(sc, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_num_tickets(sc, 1) != 1 ||
	    SSL_CTX_set_dh_auto(sc, 1) != 1 ||
	    SSL_CTX_set_tlsext_ticket_key_evp_cb(sc, tls_ticket_cb) != 1)
		return tls_fail(why, whylen, "cannot set up TLS: %s",
		    tls_reason());
	SSL_CTX_set_alpn_select_cb(sc, tls_alpn_select, NULL);
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
		tls_fail(why, whylen, "needs a certificate and a key");
		return NULL;
	}
	/* Unit tests; the daemon makes the secret before it forks. */
	if (!tls_ticket_ready && tls_tickets_init() == -1) {
		tls_fail(why, whylen, "cannot make the session ticket secret");
		return NULL;
	}
	if ((ctx = calloc(1, sizeof(*ctx))) == NULL) {
		tls_fail(why, whylen, "out of memory");
		return NULL;
	}
	ctx->client_user = set->client_user;
	if ((ctx->ssl_ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		tls_fail(why, whylen, "cannot set up TLS: %s", tls_reason());
		goto bad;
	}
	if (tls_protocol(ctx->ssl_ctx, why, whylen) == -1 ||
	    tls_load_chain(ctx->ssl_ctx, set->certificate, &leaf, why,
	    whylen) == -1 ||
	    tls_check_validity(leaf, set->certificate, why, whylen) == -1 ||
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
	if (SSL_set_fd(ssl, fd) != 1) {
		SSL_free(ssl);
		goto bad;
	}
	SSL_set_accept_state(ssl);
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

char *
tls_client_user_of(SSL *ssl, enum tls_client_user how)
{
	X509 *cert;

	if (how == TLS_CLIENT_USER_NONE ||
	    SSL_get_verify_result(ssl) != X509_V_OK ||
	    (cert = SSL_get0_peer_certificate(ssl)) == NULL)
		return NULL;
	return tls_cert_user(cert, how);
}

/* Printable ASCII without spaces, as users file names are: anything else
 * could only ever fail to match, or smuggle text into the logs. */
static char *
tls_user_copy(const unsigned char *s, int len)
{
	if (s == NULL || len < 1 || len > TLS_USER_MAX)
		return NULL;
	for (int i = 0; i < len; i++)
		if (s[i] < 0x21 || s[i] > 0x7e)
			return NULL;
	return strndup((const char *)s, (size_t)len);
}

/* The subject's one commonName; two are ambiguous, so none. */
static char *
tls_cert_cn(X509 *cert)
{
	const X509_NAME *name = X509_get_subject_name(cert);
	unsigned char *utf8 = NULL;
	char *user;
	int i, len;

	if (name == NULL ||
	    (i = X509_NAME_get_index_by_NID(name, NID_commonName, -1)) < 0 ||
	    X509_NAME_get_index_by_NID(name, NID_commonName, i) >= 0)
		return NULL;
	len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(
	    X509_NAME_get_entry(name, i)));
	if (len < 0) {
		ERR_clear_error();
		return NULL;
	}
	user = tls_user_copy(utf8, len);
	OPENSSL_free(utf8);
	return user;
}

/* The first subjectAltName of this type (GEN_EMAIL, GEN_DNS: both
 * IA5Strings), taken as it is or not at all. */
static char *
tls_cert_san(X509 *cert, int type)
{
	GENERAL_NAMES *names;
	char *user = NULL;

	/* NULL also when the extension is there twice. */
	names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	if (names == NULL) {
		ERR_clear_error();
		return NULL;
	}
	for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *gen = sk_GENERAL_NAME_value(names, i);

		if (gen->type != type)
			continue;
		user = tls_user_copy(ASN1_STRING_get0_data(gen->d.ia5),
		    ASN1_STRING_length(gen->d.ia5));
		break;
	}
	GENERAL_NAMES_free(names);
	return user;
}

char *
tls_cert_user(X509 *cert, enum tls_client_user how)
{
	switch (how) {
	case TLS_CLIENT_USER_CN:
		return tls_cert_cn(cert);
	case TLS_CLIENT_USER_SAN_EMAIL:
		return tls_cert_san(cert, GEN_EMAIL);
	case TLS_CLIENT_USER_SAN_DNS:
		return tls_cert_san(cert, GEN_DNS);
	case TLS_CLIENT_USER_NONE:
		break;
	}
	return NULL;
}

int
tls_tickets_init(void)
{
	if (sodium_init() < 0)
		return -1;
	crypto_kdf_keygen(tls_ticket_secret);
	tls_ticket_ready = true;
	return 0;
}
