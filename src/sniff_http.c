/*
 * The HTTP/1.x Host sniffer: the request line and header lines of a
 * plain-text request head, read for the name the client addressed (an
 * absolute-form target's host, else the Host header's).
 */
#include <string.h>
#include <strings.h>

#include "socks5d/sniff.h"

#define HTTP_METHOD_MAX         32
#define HTTP_PORT_MAX           5

/* What the header lines said about the name. */
struct sniff_http {
	const uint8_t *target;
	size_t target_len;
	unsigned hosts;                 /* Host header lines seen */
	const uint8_t *host;            /* the last one's value, OWS off */
	size_t host_len;
	bool host_folded;               /* an obs-fold went on with a Host */
	bool in_host;                   /* the last field line was Host */
};

static bool
sniff_http_is_upper(uint8_t c)
{
	return c >= 'A' && c <= 'Z';
}

/* RFC 9110 tchar: a field name is made of these. */
static bool
sniff_http_is_tchar(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || sniff_http_is_upper(c) ||
	    (c >= '0' && c <= '9') ||
	    (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool
sniff_http_is_ows(uint8_t c)
{
	return c == ' ' || c == '\t';
}

/*
 * The request line, judged byte by byte as it arrives: NEED_MORE while it
 * may still become one, FOUND (with *next past its line end) once it is.
 * Methods are upper-case tokens ("VERSION-CONTROL" has a dash).
 */
static enum sniff_result
sniff_http_request_line(const uint8_t *buf, size_t len, struct sniff_http *h,
    size_t *next)
{
	static const char version[] = "HTTP/1.";
	size_t i, k;

	for (i = 0; i < len && buf[i] != ' '; i++)
		if (i == HTTP_METHOD_MAX || !(sniff_http_is_upper(buf[i]) ||
		    (i > 0 && (buf[i] == '-' || buf[i] == '_'))))
			return SNIFF_NONE;
	if (i == len)
		return SNIFF_NEED_MORE;
	if (i == 0)
		return SNIFF_NONE;
	h->target = buf + ++i;
	for (; i < len && buf[i] != ' '; i++)
		if (buf[i] < '!' || buf[i] == 0x7f || i >= SNIFF_HTTP_LINE_MAX)
			return SNIFF_NONE;
	if (i == len)
		return SNIFF_NEED_MORE;
	h->target_len = (size_t)(buf + i - h->target);
	if (h->target_len == 0)
		return SNIFF_NONE;
	for (i++, k = 0; k < sizeof(version); i++, k++) {
		if (i == len)
			return SNIFF_NEED_MORE;
		if (k < sizeof(version) - 1 ? buf[i] != (uint8_t)version[k] :
		    buf[i] != '0' && buf[i] != '1')
			return SNIFF_NONE;
	}
	if (i < len && buf[i] == '\r')
		i++;
	if (i == len)
		return SNIFF_NEED_MORE;
	if (buf[i] != '\n')
		return SNIFF_NONE;
	*next = i + 1;
	return SNIFF_FOUND;
}

/*
 * One header line (line end off). A name that is not a token, a missing
 * colon or a control byte is not HTTP that any server reads the same way
 * as another: false, and the head is given up on.
 */
static bool
sniff_http_field(struct sniff_http *h, const uint8_t *line, size_t n)
{
	size_t i, colon, start, end;

	for (i = 0; i < n; i++)
		if ((line[i] < ' ' && line[i] != '\t') || line[i] == 0x7f)
			return false;
	if (sniff_http_is_ows(line[0])) {
		/* obs-fold: a Host value that goes on here is not one name. */
		h->host_folded = h->host_folded || h->in_host;
		return true;
	}
	for (colon = 0; colon < n && line[colon] != ':'; colon++)
		if (!sniff_http_is_tchar(line[colon]))
			return false;
	if (colon == 0 || colon == n)
		return false;
	h->in_host = colon == 4 && strncasecmp((const char *)line, "host",
	    4) == 0;
	if (!h->in_host)
		return true;
	for (start = colon + 1; start < n && sniff_http_is_ows(line[start]);
	    start++)
		;
	for (end = n; end > start && sniff_http_is_ows(line[end - 1]); end--)
		;
	h->hosts++;
	h->host = line + start;
	h->host_len = end - start;
	return true;
}

/* host[:port] or [v6][:port]: the port, if any, must be digits. */
static void
sniff_http_authority(struct sniff_info *out, const uint8_t *a, size_t n)
{
	const uint8_t *colon = NULL, *end;
	size_t host_len = n, i;

	if (n > 0 && a[0] == '[') {
		if ((end = memchr(a, ']', n)) == NULL)
			return;
		host_len = (size_t)(end - a) + 1;
		if (host_len < n && a[host_len] != ':')
			return;
		if (host_len < n)
			colon = a + host_len;
	} else if ((colon = memchr(a, ':', n)) != NULL) {
		host_len = (size_t)(colon - a);
	}
	if (colon != NULL) {
		if (n - host_len - 1 > HTTP_PORT_MAX)
			return;
		for (i = host_len + 1; i < n; i++)
			if (a[i] < '0' || a[i] > '9')
				return;
	}
	sniff_name_set(out, a, host_len);
}

/*
 * An absolute-form target (RFC 9112 3.2.2) overrides Host. Its authority
 * ends at the path, query or fragment; userinfo, the old way of showing
 * one name and going to another, is dropped up to the last '@'.
 */
static bool
sniff_http_absolute(struct sniff_info *out, const uint8_t *t, size_t n)
{
	size_t skip, end, i;

	if (n >= 7 && strncasecmp((const char *)t, "http://", 7) == 0)
		skip = 7;
	else if (n >= 8 && strncasecmp((const char *)t, "https://", 8) == 0)
		skip = 8;
	else
		return false;
	t += skip;
	n -= skip;
	for (end = 0; end < n && t[end] != '/' && t[end] != '?' &&
	    t[end] != '#'; end++)
		;
	for (i = end; i > 0; i--)
		if (t[i - 1] == '@')
			break;
	sniff_http_authority(out, t + i, end - i);
	return true;
}

enum sniff_result
sniff_http_host(const uint8_t *buf, size_t len, struct sniff_info *out)
{
	struct sniff_http h;
	const uint8_t *lf;
	size_t pos = 0, n;
	enum sniff_result st;

	memset(out, 0, sizeof(*out));
	memset(&h, 0, sizeof(h));
	if ((st = sniff_http_request_line(buf, len, &h, &pos)) != SNIFF_FOUND)
		return st;
	for (;;) {
		if (pos >= len ||
		    (lf = memchr(buf + pos, '\n', len - pos)) == NULL)
			return SNIFF_NEED_MORE;
		n = (size_t)(lf - (buf + pos));
		if (n > 0 && buf[pos + n - 1] == '\r')
			n--;
		if (n == 0)
			break;
		if (!sniff_http_field(&h, buf + pos, n))
			return SNIFF_NONE;
		pos = (size_t)(lf - buf) + 1;
	}
	/* RFC 9112 3.2: two Hosts is a 400, whatever the target says. */
	if (h.hosts > 1)
		out->several_hosts = true;
	else if (!sniff_http_absolute(out, h.target, h.target_len) &&
	    h.hosts == 1 && !h.host_folded)
		sniff_http_authority(out, h.host, h.host_len);
	return SNIFF_FOUND;
}
