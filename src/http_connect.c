/*
 * Our side of an HTTP CONNECT tunnel through an upstream proxy: the
 * request head, and the proxy's response head up to the tunnel's first
 * byte. Pure functions only; nothing here logs, so the Basic credentials
 * it encodes cannot leak into a log.
 */
#include <stdbool.h>
#include <string.h>

#include <sodium.h>

#include "socks5d/http_connect.h"
#include "socks5d/http_lex.h"
#include "socks5d/http_out.h"

/*
 * RFC 3986 reg-name: unreserved, pct-encoded and sub-delims. A name from
 * a SOCKS client may hold any byte but NUL, and CR, LF or SP would let it
 * write fields of its own into our request.
 */
static bool
http_connect_name_ok(const char *name, size_t n)
{
	static const char extra[] = "-._~%!$&'()*+,;=";

	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9'))
			continue;
		if (c == '\0' || strchr(extra, c) == NULL)
			return false;
	}
	return true;
}

/* "host:port" for dst ("[v6]:port" for IPv6) into authority, which holds
 * SOCKS5_ADDR_STRLEN bytes; false when dst cannot be written. */
static bool
http_connect_authority(const struct socks5_addr *dst, char *authority)
{
	size_t n;

	switch (dst->atyp) {
	case SOCKS5_ATYP_IPV4:
	case SOCKS5_ATYP_IPV6:
		break;
	case SOCKS5_ATYP_NAME:
		/* Bounded: a caller may have filled the name by hand. */
		n = strnlen(dst->u.name, sizeof(dst->u.name));
		if (n == 0 || n > SOCKS5_NAME_MAX ||
		    !http_connect_name_ok(dst->u.name, n))
			return false;
		break;
	default:
		return false;
	}
	socks5_addr_format(dst, authority, SOCKS5_ADDR_STRLEN);
	return true;
}

/*
 * "Proxy-Authorization: Basic base64(user:password)\r\n" (RFC 7617). A
 * user-id with a colon cannot be told from its password, so it is refused.
 * The plain and encoded copies on the stack are wiped either way.
 */
static bool
http_connect_basic(struct http_out *o, const char *user,
    const char *password)
{
	unsigned char plain[2 * HTTP_CREDENTIAL_MAX + 1];
	char b64[sodium_base64_ENCODED_LEN(sizeof(plain),
	    sodium_base64_VARIANT_ORIGINAL)];
	size_t ulen = strnlen(user, HTTP_CREDENTIAL_MAX + 1);
	size_t plen = strnlen(password, HTTP_CREDENTIAL_MAX + 1);

	if (ulen > HTTP_CREDENTIAL_MAX || plen > HTTP_CREDENTIAL_MAX ||
	    memchr(user, ':', ulen) != NULL)
		return false;
	memcpy(plain, user, ulen);
	plain[ulen] = ':';
	memcpy(plain + ulen + 1, password, plen);
	sodium_bin2base64(b64, sizeof(b64), plain, ulen + 1 + plen,
	    sodium_base64_VARIANT_ORIGINAL);
	http_out_str(o, "Proxy-Authorization: Basic ");
	http_out_str(o, b64);
	http_out_str(o, "\r\n");
	sodium_memzero(plain, sizeof(plain));
	sodium_memzero(b64, sizeof(b64));
	return true;
}

size_t
http_connect_encode(uint8_t *out, size_t outlen,
    const struct socks5_addr *dst, const char *user, const char *password)
{
	struct http_out o = { out, 0, outlen, false };
	char authority[SOCKS5_ADDR_STRLEN];
	bool ok;

	if (!http_connect_authority(dst, authority))
		return 0;
	http_out_str(&o, "CONNECT ");
	http_out_str(&o, authority);
	http_out_str(&o, " HTTP/1.1\r\nHost: ");
	http_out_str(&o, authority);
	http_out_str(&o, "\r\n");
	ok = user == NULL || http_connect_basic(&o, user,
	    password != NULL ? password : "");
	http_out_str(&o, "\r\n");
	if (ok && !o.full)
		return o.len;
	/* A head cut short may hold part of the token: leave none of it. */
	if (user != NULL)
		sodium_memzero(out, outlen);
	return 0;
}

/* Could the n bytes at p begin "HTTP/1.x NNN"? Checked on a partial line
 * too, so that a peer that is no HTTP proxy fails at once rather than
 * when its idle timer fires. */
static bool
http_connect_status_shape(const uint8_t *p, size_t n)
{
	static const char shape[] = "HTTP/1.# ###";

	for (size_t i = 0; i < n && i < sizeof(shape) - 1; i++) {
		if (shape[i] == '#' ? p[i] < '0' || p[i] > '9' :
		    p[i] != (uint8_t)shape[i])
			return false;
	}
	return true;
}

/* The status code of a whole "HTTP/1.x NNN[ reason]" line, or -1. */
static int
http_connect_status_line(const uint8_t *p, size_t n)
{
	int code;

	if (n < 12 || !http_connect_status_shape(p, 12) ||
	    (n > 12 && p[12] != ' '))
		return -1;
	code = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	return code < 100 ? -1 : code;
}

/* Just past the empty line that ends the head whose fields start at pos;
 * false when it is not in buf yet. */
static bool
http_connect_head_end(const uint8_t *buf, size_t len, size_t pos,
    size_t *end)
{
	size_t line, next;

	for (; http_next_line(buf, len, pos, &line, &next); pos = next) {
		if (line == 0) {
			*end = next;
			return true;
		}
	}
	return false;
}

enum http_connect_status
http_connect_parse_response(const uint8_t *buf, size_t len, int *status_code,
    size_t *head_len)
{
	/* Bytes past the limit are never looked at: a head that has not
	 * ended within it is too large, whatever follows; one that has not
	 * ended yet, under it, may still end. */
	size_t n = len < HTTP_CONNECT_HEAD_MAX ? len : HTTP_CONNECT_HEAD_MAX;
	enum http_connect_status unended = len < HTTP_CONNECT_HEAD_MAX ?
	    HTTP_CONNECT_INCOMPLETE : HTTP_CONNECT_TOO_LARGE;
	size_t start = 0, line, next, end;
	int code;

	if (len == 0)
		return HTTP_CONNECT_INCOMPLETE;
	for (;;) {
		if (!http_next_line(buf, n, start, &line, &next))
			return http_connect_status_shape(buf + start,
			    n - start) ? unended : HTTP_CONNECT_BAD_STATUS;
		code = http_connect_status_line(buf + start, line);
		if (code < 0)
			return HTTP_CONNECT_BAD_STATUS;
		if (!http_connect_head_end(buf, n, next, &end))
			return unended;
		/* 101 is final: it would switch the protocol, not tunnel. */
		if (code >= 200 || code == 101) {
			*status_code = code;
			*head_len = end;
			return HTTP_CONNECT_OK;
		}
		start = end;            /* an interim 1xx head */
	}
}
