/*
 * What TLS interception shares between sessions (intercept.h): the leaf
 * maker with the operator's CA (mint.c), the client context that verifies
 * origins, and the server context that faces clients. Built per config;
 * sessions hold a reference so a reload never frees it under them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "socks5d/intercept.h"
#include "socks5d/intercept_ctx.h"
#include "socks5d/mint.h"
#include "socks5d/tls_client.h"
#include "socks5d/tls_ctx.h"

/* Leaves kept for reuse: one per name and origin certificate. */
#define INTERCEPT_LEAF_CACHE 1024

/*
 * Toward clients: TLS 1.2 and 1.3, no renegotiation, ALPN http/1.1 only
 * (HTTP/2 is not intercepted, so no client may get h2). No resumption: a
 * session resumed would skip the certificate a new origin needs.
 */
static SSL_CTX *
intercept_front_ctx(char *why, size_t whylen)
{
	SSL_CTX *sc = SSL_CTX_new(TLS_server_method());

	if (sc == NULL || SSL_CTX_set_min_proto_version(sc,
	    TLS1_2_VERSION) != 1) {
		snprintf(why, whylen, "cannot set up TLS: %s",
		    ERR_reason_error_string(ERR_peek_error()));
		SSL_CTX_free(sc);
		return NULL;
	}
	SSL_CTX_set_options(sc, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_TICKET | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(sc, SSL_MODE_RELEASE_BUFFERS |
	    SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_read_ahead(sc, 0);
	SSL_CTX_set_session_cache_mode(sc, SSL_SESS_CACHE_OFF);
	(void)SSL_CTX_set_num_tickets(sc, 0);
	SSL_CTX_set_alpn_select_cb(sc, tls_alpn_select_http11, NULL);
	return sc;
}

struct intercept_ctx *
intercept_ctx_new(const char *ca_certificate, const char *ca_key,
    const char *upstream_ca, bool upstream_verify, char *why, size_t whylen)
{
	struct intercept_ctx *ctx = calloc(1, sizeof(*ctx));
	char reason[512];

	ERR_clear_error();
	if (ctx == NULL) {
		snprintf(why, whylen, "ca_certificate %s: out of memory",
		    ca_certificate);
		return NULL;
	}
	ctx->refs = 1;
	if ((ctx->mint = mint_new(ca_certificate, ca_key,
	    INTERCEPT_LEAF_CACHE, why, whylen)) == NULL)
		goto fail;
	if ((ctx->upstream = tls_client_ctx_new(upstream_ca, upstream_verify,
	    reason, sizeof(reason))) == NULL) {
		snprintf(why, whylen, "upstream_ca %s", reason);
		goto fail;
	}
	if ((ctx->front = intercept_front_ctx(reason, sizeof(reason))) ==
	    NULL) {
		snprintf(why, whylen, "ca_certificate %s: %s", ca_certificate,
		    reason);
		goto fail;
	}
	ERR_clear_error();
	return ctx;
fail:
	intercept_ctx_unref(ctx);
	ERR_clear_error();
	return NULL;
}

struct intercept_ctx *
intercept_ctx_ref(struct intercept_ctx *ctx)
{
	ctx->refs++;
	return ctx;
}

void
intercept_ctx_unref(struct intercept_ctx *ctx)
{
	if (ctx == NULL || --ctx->refs > 0)
		return;
	mint_free(ctx->mint);
	SSL_CTX_free(ctx->upstream);
	SSL_CTX_free(ctx->front);
	free(ctx);
}

void
intercept_ctx_stats(const struct intercept_ctx *ctx, uint64_t *minted,
    uint64_t *hits)
{
	*minted = *hits = 0;
	if (ctx != NULL)
		mint_stats(ctx->mint, minted, hits, NULL);
}
