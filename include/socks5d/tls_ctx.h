/*
 * The TLS server context of the [tls] listeners: certificate and key,
 * the client-certificate policy, the protocol settings every TLS session
 * shares (TLS 1.2 and 1.3 only, no renegotiation, ALPN http/1.1, session
 * tickets whose keys rotate), and the login a verified client certificate
 * names. Built by config_load, so `socks5d -t` checks it and a reload
 * with a bad certificate keeps the old one.
 */
#ifndef SOCKS5D_TLS_CTX_H
#define SOCKS5D_TLS_CTX_H

#include <stdbool.h>
#include <stddef.h>
#include <openssl/ssl.h>

enum tls_client_cert {
	TLS_CLIENT_CERT_NONE,        /* never asked for */
	TLS_CLIENT_CERT_OPTIONAL,    /* asked for; verified when sent */
	TLS_CLIENT_CERT_REQUIRE,     /* no verified certificate: refused */
};

enum tls_client_user {
	TLS_CLIENT_USER_NONE,        /* a certificate is no login */
	TLS_CLIENT_USER_CN,          /* the subject's commonName */
	TLS_CLIENT_USER_SAN_EMAIL,   /* the first rfc822Name SAN */
	TLS_CLIENT_USER_SAN_DNS,     /* the first dNSName SAN */
};

struct tls_settings {
	const char *certificate;     /* PEM chain, leaf first */
	const char *key;             /* PEM private key */
	const char *client_ca;       /* PEM CAs for client certs; NULL: none */
	enum tls_client_cert client_cert;
	enum tls_client_user client_user;
};

struct tls_ctx;

/*
 * A context for these settings, or NULL with the reason in why. When a file
 * is at fault the reason starts with its key and path, then says why in
 * plain words and OpenSSL's ("key /etc/x.pem: does not match the
 * certificate /etc/c.pem: key values mismatch"; also "certificate PATH:",
 * "client_ca PATH:"), so config_load can report it under that key. The key
 * file must not be open to others (its group may read it); a certificate
 * that has expired or is not valid yet is refused.
 */
struct tls_ctx *tls_ctx_new(const struct tls_settings *set, char *why,
    size_t whylen);
void tls_ctx_free(struct tls_ctx *ctx);

/* The ALPN answer of our TLS servers: http/1.1 when the client offers it,
 * else none (SSL_CTX_set_alpn_select_cb's callback). */
int tls_alpn_select_http11(SSL *ssl, const unsigned char **out,
    unsigned char *outlen, const unsigned char *in, unsigned int inlen,
    void *arg);

/* A server-side SSL on the accepted socket fd, or NULL (out of memory).
 * The context may be freed while SSLs made from it live on. */
SSL *tls_ctx_new_ssl(struct tls_ctx *ctx, int fd);

/* How a context's client certificates become logins; _ssl: that of the
 * context an SSL of tls_ctx_new_ssl came from. */
enum tls_client_user tls_ctx_client_user(const struct tls_ctx *ctx);
enum tls_client_user tls_ssl_client_user(const SSL *ssl);

/*
 * After a handshake: the login the verified client certificate names, as a
 * new string, or NULL (no certificate, not verified, no such field, two
 * commonNames, or a name that is not 1 to 255 bytes of printable ASCII
 * without spaces, which no users file could name). A resumed session
 * still has the certificate of the handshake it resumes.
 */
char *tls_client_user_of(SSL *ssl, enum tls_client_user how);

/* The same for a certificate already in hand (unit tests, the fuzzer). */
char *tls_cert_user(X509 *cert, enum tls_client_user how);

/*
 * Call once before the workers fork: the secret every process derives its
 * ticket keys from, so a ticket one worker issued resumes at any other
 * (and after a reload). Each call makes a new secret, and tickets issued
 * before no longer resume; tls_ctx_new makes one itself if there is none
 * yet, which after a fork would be each worker's own. Returns 0, or -1
 * (libsodium failed).
 */
int tls_tickets_init(void);

/* Step the ticket secret to the clock's hour, wiping the ones it leaves
 * behind. The ticket callback calls it; a process that makes no tickets
 * but forks those that do (the workers' supervisor) calls it now and
 * then, so it holds no old secret either. */
void tls_tickets_advance(void);

#endif
