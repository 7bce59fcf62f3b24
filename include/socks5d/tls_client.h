/*
 * TLS toward upstream proxies (socks5+tls://, socks5h+tls://, https://):
 * one client context per [upstream NAME], built at load, that verifies a
 * member's certificate against the system's CAs or the section's tls_ca,
 * and the member's name or address, unless tls_verify = no.
 */
#ifndef SOCKS5D_TLS_CLIENT_H
#define SOCKS5D_TLS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <openssl/ssl.h>

/* A client context: TLS 1.2 and 1.3, CAs from ca_file (NULL: the
 * system's store), peers verified when verify. NULL with why (naming
 * ca_file and OpenSSL's reason) on failure. */
SSL_CTX *tls_client_ctx_new(const char *ca_file, bool verify, char *why,
    size_t whylen);

/* A client SSL on the connected socket fd for a member called host (a
 * name or an IP literal): SNI for a name, and the certificate must name
 * host when the context verifies. alpn: "http/1.1" for an HTTPS proxy,
 * or NULL. NULL when out of memory. */
SSL *tls_client_new_ssl(SSL_CTX *ctx, int fd, const char *host,
    const char *alpn);

#endif
