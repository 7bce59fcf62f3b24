/*
 * The client side of an HTTP CONNECT tunnel (RFC 9110 9.3.6), for chaining
 * through an upstream HTTP proxy: the request head we send and the proxy's
 * response head. Pure functions, like http.h: no I/O, no allocation, and
 * no logging, so credentials never reach a log from here.
 */
#ifndef SOCKS5D_HTTP_CONNECT_H
#define SOCKS5D_HTTP_CONNECT_H

#include <stddef.h>
#include <stdint.h>

#include "socks5d/http.h"
#include "socks5d/socks5.h"

/* A response head (interim 1xx heads included) longer than this:
 * HTTP_CONNECT_TOO_LARGE. */
#define HTTP_CONNECT_HEAD_MAX           8192

/*
 * An output buffer this large always holds a request head that can be
 * encoded: "CONNECT " and " HTTP/1.1\r\n" (19), "Host: " and "\r\n" (8),
 * the authority twice (255 + ":65535", 261 each), "Proxy-Authorization:
 * Basic " and "\r\n" (29) around the Base64 of 255 + ":" + 255 bytes (684),
 * and the empty line (2): 1264.
 */
#define HTTP_CONNECT_REQUEST_MAX        1264

enum http_connect_status {
	HTTP_CONNECT_OK = 0,
	/* A valid prefix: no end of head yet, still under the limit. */
	HTTP_CONNECT_INCOMPLETE,
	HTTP_CONNECT_TOO_LARGE,        /* no end within HTTP_CONNECT_HEAD_MAX */
	HTTP_CONNECT_BAD_STATUS,       /* not an "HTTP/1.x NNN" status line */
};

/*
 * Write "CONNECT host:port HTTP/1.1", a Host field with the same
 * authority, and, when user is not NULL, "Proxy-Authorization: Basic"
 * with the Base64 of "user:password" (RFC 7617), then the empty line. An
 * IPv6 host is bracketed. Returns the length, or 0 when out (outlen
 * bytes; HTTP_CONNECT_REQUEST_MAX is always enough) is too small, dst is
 * not an IP address or a name of reg-name characters (RFC 3986 3.2.2: no
 * CR, LF or SP to forge fields with, no ':' to blur the port), or user
 * or password is longer than HTTP_CREDENTIAL_MAX or user has a ':'. On 0,
 * out holds nothing of the credentials.
 */
size_t http_connect_encode(uint8_t *out, size_t outlen,
    const struct socks5_addr *dst, const char *user, const char *password);

/*
 * Parse the proxy's response head at the start of buf (CRLF or bare LF
 * line ends). Interim 1xx heads (but 101) are skipped, as RFC 9110 15.2
 * asks of a client. On HTTP_CONNECT_OK *status_code is the final status
 * (any 2xx opens the tunnel; the caller decides) and *head_len counts
 * every byte through its empty line: what follows belongs to the tunnel.
 * The fields are not looked at: Content-Length and Transfer-Encoding mean
 * nothing in a 2xx answer to CONNECT (RFC 9110 9.3.6). Never reads past
 * HTTP_CONNECT_HEAD_MAX bytes; a status line that cannot begin "HTTP/1."
 * fails as soon as that shows, not when its line ends.
 */
enum http_connect_status http_connect_parse_response(const uint8_t *buf,
    size_t len, int *status_code, size_t *head_len);

#endif
