/*
 * The HTTP/1.x forward-proxy wire format (RFC 9110, RFC 9112): parsing the
 * head of a CONNECT or absolute-form request, rewriting an absolute-form
 * head for the origin, and encoding the proxy's own responses. No I/O, no
 * allocation, no libev: everything here is a pure function of its
 * arguments, so it can be unit-tested and fuzzed directly.
 */
#ifndef SOCKS5D_HTTP_H
#define SOCKS5D_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "socks5d/socks5.h"

/* A request head longer than this: HTTP_TOO_LARGE (answered 431). */
#define HTTP_HEAD_MAX           8192
/* More header fields than this: HTTP_TOO_LARGE. */
#define HTTP_HEADERS_MAX        100
#define HTTP_HOST_MAX           255
/* Longest via pseudonym http_encode_origin_request accepts. */
#define HTTP_VIA_MAX            128
/* An output buffer this large always holds the origin head of a request
 * that parsed OK (with a via of at most HTTP_VIA_MAX bytes). */
#define HTTP_ORIGIN_HEAD_MAX    (HTTP_HEAD_MAX + 512)
/* Longest user or password http_basic_credentials returns (plus a NUL). */
#define HTTP_CREDENTIAL_MAX     255

/*
 * Result of http_parse_request. HTTP_INCOMPLETE means the buffer holds a
 * valid prefix and more bytes are needed; every other value but HTTP_OK is
 * final: no further bytes can change it, and the connection is answered
 * (http_status_code) and closed.
 */
enum http_status {
	HTTP_OK = 0,
	/* A valid prefix: no end of head yet, still under HTTP_HEAD_MAX. */
	HTTP_INCOMPLETE,
	HTTP_BAD_REQUEST,      /* malformed, or a smuggling attempt: 400 */
	HTTP_TOO_LARGE,        /* head too long, or too many fields: 431 */
	HTTP_BAD_VERSION,      /* not HTTP/1.0 or HTTP/1.1: 505 */
	HTTP_NOT_PROXY,        /* origin-form ("GET /x") sent to a proxy: 400 */
};

enum http_form {
	HTTP_FORM_AUTHORITY,   /* CONNECT host:port */
	HTTP_FORM_ABSOLUTE,    /* http://host[:port]/path */
};

/* Points into the parsed buffer; the value has no leading/trailing OWS. */
struct http_field {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
};

/*
 * A parsed request head. Every pointer points into the parsed buffer
 * (except path "/" for a URI without one), which must outlive it.
 */
struct http_request {
	const char *method;
	size_t method_len;
	enum http_form form;
	/*
	 * ATYP_NAME with the host as written, or ATYP_IPV4/ATYP_IPV6 for a
	 * dotted-quad or bracketed IPv6 literal; port in host order (80 when
	 * an http:// URI has none; CONNECT always names one). A name whose
	 * last label looks numeric ("10.1", "a.0x7f") is refused, since
	 * resolvers would read it as an address.
	 */
	struct socks5_addr dst;
	/*
	 * Absolute form: the path and query ("/" when the URI has neither).
	 * When the URI has a query but no path, this starts with '?' and the
	 * origin-form target is "/" followed by it (which is what
	 * http_encode_origin_request sends). NULL for CONNECT.
	 */
	const char *path;
	size_t path_len;
	uint8_t version_minor;         /* 0 or 1 */
	struct http_field fields[HTTP_HEADERS_MAX];
	size_t nfields;
	size_t head_len;               /* through the empty line */
	int64_t content_length;        /* -1 when absent */
	bool chunked;                  /* Transfer-Encoding ends in chunked */
};

/*
 * Parse a request head at the start of buf (CRLF or bare LF line ends,
 * leading empty lines skipped). Never reads past len, and never past
 * HTTP_HEAD_MAX. Bytes after head_len (a body, a tunnel's early payload)
 * are not looked at. *out is filled in only as far as parsing got: its
 * contents mean something only when HTTP_OK is returned.
 */
enum http_status http_parse_request(const uint8_t *buf, size_t len,
    struct http_request *out);

/* The status code a parse result is answered with (400, 431, 505), or 0
 * for HTTP_OK and HTTP_INCOMPLETE. */
int http_status_code(enum http_status status);

/* The first field named name (case-insensitive), or NULL. */
const struct http_field *http_find_field(const struct http_request *req,
    const char *name);

/*
 * Is token an element of a comma-separated field value (case-insensitive,
 * OWS around elements ignored)? "keep-alive, Upgrade" has "upgrade".
 */
bool http_list_has(const char *value, size_t value_len, const char *token);

/*
 * Proxy-Authorization: Basic <base64 of user:password> (RFC 7617). Returns
 * true and fills user and password (NUL-terminated, each at most
 * HTTP_CREDENTIAL_MAX bytes) when the request has exactly one such field
 * with a well-formed value; false, with both set to "", otherwise (absent,
 * repeated, another scheme, bad base64, no colon, too long, a NUL inside).
 */
bool http_basic_credentials(const struct http_request *req, char user[256],
    char password[256]);

/* Is this a WebSocket upgrade (HTTP/1.1, Upgrade lists websocket,
 * Connection lists upgrade)? */
bool http_is_websocket(const struct http_request *req);

/*
 * Write the head to send to the origin for an absolute-form request:
 * "METHOD PATH HTTP/1.1", Host from dst (the URI wins over any Host the
 * client sent, RFC 9112 3.2.2), every other field except the hop-by-hop
 * ones (Proxy-Authorization, Proxy-Connection, Connection and the fields
 * it names, Keep-Alive, TE, Trailer, Upgrade), "Via: 1.x <via>" when via
 * is not NULL, and "Connection: close" - or, for a WebSocket upgrade,
 * Upgrade kept and "Connection: Upgrade". Content-Length and
 * Transfer-Encoding are kept even when Connection names them. Returns the
 * length, or 0 when out is too small (HTTP_ORIGIN_HEAD_MAX is always
 * enough), req is a CONNECT, or via is not 1-HTTP_VIA_MAX bytes of
 * printable ASCII.
 */
size_t http_encode_origin_request(const struct http_request *req,
    const char *via, uint8_t *out, size_t outlen);

/*
 * Write a complete proxy response: the status line, then extra (whole
 * CRLF-terminated field lines, or NULL), then for status >= 400 a
 * text/plain body of the reason phrase with Content-Length and
 * "Connection: close"; for 2xx just the empty line. Returns the length, or
 * 0 when outlen is too small or http_reason does not know status.
 */
size_t http_encode_response(uint8_t *out, size_t outlen, int status,
    const char *extra);

/* The reason phrase for the statuses this proxy sends (200, 400, 403, 405,
 * 407, 431, 500, 501, 502, 503, 504, 505), or NULL for any other. */
const char *http_reason(int status);

#endif
