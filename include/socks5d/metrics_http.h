/*
 * The /metrics endpoint: a minimal HTTP/1.x server on the daemon's own event
 * loop (one request per connection, then close) and its request parser, a
 * pure function that can be unit-tested and fuzzed on its own.
 */
#ifndef SOCKS5D_METRICS_HTTP_H
#define SOCKS5D_METRICS_HTTP_H

#include <stddef.h>

#include "socks5d/config.h"
#include "socks5d/server.h"

/* The largest request head (request line, fields, blank line) accepted. */
#define METRICS_HTTP_HEAD_MAX 4096

enum metrics_http_status {
	METRICS_HTTP_INCOMPLETE,       /* valid so far: read more */
	METRICS_HTTP_OK,
	METRICS_HTTP_BAD,              /* answer 400 */
	METRICS_HTTP_TOO_LARGE,        /* no end within HEAD_MAX: answer 431 */
};

/* Pointers into the parsed buffer; nothing is copied or allocated. */
struct metrics_http_request {
	const char *method;
	size_t method_len;
	const char *path;              /* the target up to any '?' */
	size_t path_len;
	unsigned minor;                /* HTTP/1.minor */
	size_t head_len;               /* through the blank line */
};

/*
 * Parse the head of a request from the first len bytes of buf: HTTP/1.x,
 * origin-form target, CRLF or bare LF line ends, no folded fields, exactly
 * one Host field for HTTP/1.1 (RFC 9112). Only a complete head is OK, and
 * only then is *req filled in.
 */
enum metrics_http_status metrics_http_parse(const char *buf, size_t len,
    struct metrics_http_request *req);

/* Start serving srv->cfg's [metrics] listen address, if any. Returns 0, or
 * -1 with the error logged. */
int metrics_http_open(struct server *srv);
/*
 * A reload in two steps, so it can be all or nothing together with the
 * SOCKS listeners: prepare opens cfg's address when it differs from the
 * one in use (returns -1, logged, when it cannot); commit switches to it,
 * abort drops it. Requests in progress finish either way.
 */
int metrics_http_prepare_reload(const struct config *cfg);
void metrics_http_commit_reload(void);
void metrics_http_abort_reload(void);
/* Stop listening and close every metrics connection. */
void metrics_http_close(void);

#endif
