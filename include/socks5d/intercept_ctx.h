/*
 * Private to TLS interception (intercept.c, intercept_ctx.c): the shared
 * context a session holds a reference to.
 */
#ifndef SOCKS5D_INTERCEPT_CTX_H
#define SOCKS5D_INTERCEPT_CTX_H

#include <openssl/ssl.h>

struct mint;

struct intercept_ctx {
	unsigned refs;
	struct mint *mint;             /* leaves signed by the operator's CA */
	SSL_CTX *upstream;             /* toward origins: verifies them */
	SSL_CTX *front;                /* toward clients: our leaves */
};

struct intercept_ctx *intercept_ctx_ref(struct intercept_ctx *ctx);

#endif
