/*
 * Writing an HTTP head into a caller's buffer of fixed size: each piece is
 * appended whole or, once one does not fit, nothing more is, and full says
 * so, so an encoder checks once at the end instead of after every piece.
 * Shared by the server side (http_encode.c) and the CONNECT client
 * (http_connect.c).
 */
#ifndef SOCKS5D_HTTP_OUT_H
#define SOCKS5D_HTTP_OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct http_out {
	uint8_t *buf;
	size_t len;
	size_t cap;
	bool full;
};

static inline void
http_out_put(struct http_out *o, const void *p, size_t n)
{
	if (o->full || n > o->cap - o->len) {
		o->full = true;
		return;
	}
	memcpy(o->buf + o->len, p, n);
	o->len += n;
}

static inline void
http_out_str(struct http_out *o, const char *s)
{
	http_out_put(o, s, strlen(s));
}

#endif
