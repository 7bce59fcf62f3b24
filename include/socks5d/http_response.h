/*
 * An origin's response head, as the HTTP proxy forwards it: the proxy
 * serves one request per client connection, so the client must learn that
 * the connection ends with this response. Pure functions, like http.h.
 */
#ifndef SOCKS5D_HTTP_RESPONSE_H
#define SOCKS5D_HTTP_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest response head rewritten; a longer one passes unchanged. */
#define HTTP_RESPONSE_HEAD_MAX  (16 * 1024)
/* The Via line the proxy adds to a response it forwards. */
#define HTTP_RESPONSE_VIA       "Via: 1.1 socks5d\r\n"
/* What a rewrite may add: a Via line, "Connection: close\r\n", and a
 * CRLF where the empty line was a bare LF. */
#define HTTP_RESPONSE_GROWTH    (sizeof(HTTP_RESPONSE_VIA) - 1 + 21)

enum http_response_status {
	HTTP_RESPONSE_INCOMPLETE,      /* no end of the final head yet */
	HTTP_RESPONSE_DONE,            /* rewritten, or left as it must be */
};

/*
 * buf[0..*len) is what the origin sent so far (cap bytes of room). Skip
 * interim 1xx heads (100 Continue) as they are; in the final head, drop
 * Connection, Keep-Alive, Proxy-Connection and the fields Connection
 * names, and add "Connection: close", moving the bytes after it. A 101
 * Switching Protocols head (a WebSocket upgrade) and anything that is not
 * an HTTP/1.x head, or one over HTTP_RESPONSE_HEAD_MAX, are left alone.
 * INCOMPLETE until the final head is whole (and under the bound).
 */
enum http_response_status http_response_rewrite(uint8_t *buf, size_t *len,
    size_t cap);

/* The same, adding HTTP_RESPONSE_VIA to the final head when via is set;
 * and on INCOMPLETE *interim says how many bytes at the start are whole
 * interim heads, which must reach the client now: a client sends its
 * body only once it reads 100 Continue (RFC 9110 15.2). */
enum http_response_status http_response_rewrite_interim(uint8_t *buf,
    size_t *len, size_t cap, bool via, size_t *interim);

#endif
