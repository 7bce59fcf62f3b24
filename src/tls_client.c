/*
 * TLS client contexts for upstream members; see tls_client.h.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "socks5d/pem.h"
#include "socks5d/tls_client.h"
#include "socks5d/tls_io.h"

SSL_CTX *
tls_client_ctx_new(const char *ca_file, bool verify, char *why,
    size_t whylen)
{
	SSL_CTX *ctx;

	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		snprintf(why, whylen, "cannot set up TLS: %s", pem_reason());
		goto fail;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS |
	    SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* The relay reads with room for a whole record and relies on
	 * OpenSSL holding nothing back, as on the server side. */
	SSL_CTX_set_read_ahead(ctx, 0);
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
		snprintf(why, whylen, "cannot set up TLS: %s", pem_reason());
		goto fail;
	}
	/* The system's bundle is read now, whole: a directory of hashed
	 * files would be read during handshakes, on the loop. */
	if (ca_file == NULL && (ca_file = getenv(
	    X509_get_default_cert_file_env())) == NULL)
		ca_file = X509_get_default_cert_file();
	if (SSL_CTX_load_verify_file(ctx, ca_file) != 1) {
		snprintf(why, whylen, "%s: cannot load CA certificates: %s",
		    ca_file, pem_reason());
		goto fail;
	}
	SSL_CTX_set_verify(ctx, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE,
	    NULL);
	ERR_clear_error();
	return ctx;
fail:
	SSL_CTX_free(ctx);
	ERR_clear_error();
	return NULL;
}

SSL *
tls_client_new_ssl(SSL_CTX *ctx, int fd, const char *host, const char *alpn)
{
	struct in6_addr ip;
	bool literal = inet_pton(AF_INET, host, &ip) == 1 ||
	    inet_pton(AF_INET6, host, &ip) == 1;
	SSL *ssl;

	ERR_clear_error();
	if ((ssl = SSL_new(ctx)) == NULL || tls_io_set_fd(ssl, fd) == -1)
		goto fail;
	SSL_set_connect_state(ssl);
	/* SNI carries names only (RFC 6066); an address is checked
	 * against the certificate's IP SANs instead. */
	if (literal) {
		if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
		    host) != 1)
			goto fail;
	} else if (SSL_set_tlsext_host_name(ssl, host) != 1 ||
	    SSL_set1_host(ssl, host) != 1) {
		goto fail;
	}
	if (alpn != NULL) {
		unsigned char wire[32];
		size_t len = strlen(alpn);

		if (len >= sizeof(wire))
			goto fail;
		wire[0] = (unsigned char)len;
		memcpy(wire + 1, alpn, len);
		/* 0 is success here, unlike the rest of OpenSSL. */
		if (SSL_set_alpn_protos(ssl, wire, (unsigned)len + 1) != 0)
			goto fail;
	}
	return ssl;
fail:
	SSL_free(ssl);
	ERR_clear_error();
	return NULL;
}
