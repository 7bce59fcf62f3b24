/*
 * The HTTP/1.x request head parser (RFC 9110, RFC 9112), strict on purpose:
 * where it and an origin could frame a message differently (request
 * smuggling), the request is refused rather than guessed at. Pure functions.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>

#include "socks5d/http.h"
#include "socks5d/http_lex.h"

/* What the parser remembers between field lines. */
struct http_parse {
	struct http_request *req;
	bool started;                  /* the request line has been parsed */
	unsigned hosts;
	bool has_length;
	bool has_coding;
};

/* RFC 9110 tchar: what a method or a field name is made of. */
static bool
http_is_tchar(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') ||
	    (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* Field value bytes: visible ASCII, SP, HT and obs-text; no other CTL. */
static bool
http_is_value_byte(uint8_t c)
{
	return c == '\t' || (c >= ' ' && c != 0x7f);
}

static bool
http_is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

static bool
http_is_hex(uint8_t c)
{
	return http_is_digit(c) || (c >= 'a' && c <= 'f') ||
	    (c >= 'A' && c <= 'F');
}

/*
 * A deliberately small host alphabet: whatever else a URI allows there
 * (percent-encoding, sub-delims) would be decoded or read differently by
 * the resolver, the rules and the origin.
 */
static bool
http_is_host_char(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    http_is_digit(c) || c == '-' || c == '.' || c == '_';
}

/* Strict dotted quad: four decimal octets, no leading zeros. */
static bool
http_parse_ipv4(const uint8_t *p, size_t n, uint8_t addr[4])
{
	size_t i = 0, start;
	unsigned part, value;

	for (part = 0; part < 4; part++) {
		if (part > 0) {
			if (i >= n || p[i] != '.')
				return false;
			i++;
		}
		start = i;
		value = 0;
		while (i < n && http_is_digit(p[i]) && i - start < 3)
			value = value * 10 + (unsigned)(p[i++] - '0');
		if (i == start || value > 255 ||
		    (p[start] == '0' && i - start > 1))
			return false;
		addr[part] = (uint8_t)value;
	}
	return i == n;
}

/*
 * Does a name end in a label that resolvers and URL parsers read as a
 * number ("10.1", "2130706433", "a.0x7f")? inet_aton and WHATWG URLs turn
 * those into addresses, so the rules would see a name while the connect
 * went to an address; only a strict dotted quad may be an address.
 */
static bool
http_host_is_numeric(const uint8_t *p, size_t n)
{
	size_t start, i;

	if (n > 0 && p[n - 1] == '.')
		n--;
	for (start = n; start > 0 && p[start - 1] != '.'; start--)
		;
	if (start == n)
		return false;
	if (n - start >= 2 && p[start] == '0' &&
	    (p[start + 1] == 'x' || p[start + 1] == 'X')) {
		for (i = start + 2; i < n && http_is_hex(p[i]); i++)
			;
		return i == n;
	}
	for (i = start; i < n && http_is_digit(p[i]); i++)
		;
	return i == n;
}

/*
 * host [":" port]: a name, a dotted quad or a bracketed IPv6 literal, and
 * a decimal port 1-65535 (required for CONNECT, 80 otherwise). No
 * userinfo, no zone id, no empty port. Returns 0 or -1.
 */
static int
http_parse_authority(const uint8_t *p, size_t n, bool need_port,
    struct socks5_addr *dst)
{
	char v6[INET6_ADDRSTRLEN];
	const uint8_t *close;
	unsigned long port = 0;
	size_t h, i;

	if (n == 0)
		return -1;
	if (p[0] == '[') {
		if ((close = memchr(p, ']', n)) == NULL)
			return -1;
		h = (size_t)(close - p) + 1;
		if (h - 2 == 0 || h - 2 >= sizeof(v6))
			return -1;
		memcpy(v6, p + 1, h - 2);
		v6[h - 2] = '\0';
		if (inet_pton(AF_INET6, v6, dst->u.ipv6) != 1)
			return -1;
		dst->atyp = SOCKS5_ATYP_IPV6;
	} else {
		for (h = 0; h < n && p[h] != ':'; h++)
			if (!http_is_host_char(p[h]))
				return -1;
		if (h == 0 || h > HTTP_HOST_MAX)
			return -1;
		if (http_parse_ipv4(p, h, dst->u.ipv4)) {
			dst->atyp = SOCKS5_ATYP_IPV4;
		} else if (http_host_is_numeric(p, h)) {
			return -1;
		} else {
			memcpy(dst->u.name, p, h);
			dst->u.name[h] = '\0';
			dst->atyp = SOCKS5_ATYP_NAME;
		}
	}
	if (h == n) {
		if (need_port)
			return -1;
		dst->port = 80;
		return 0;
	}
	if (p[h] != ':' || h + 1 == n)
		return -1;
	for (i = h + 1; i < n; i++) {
		if (!http_is_digit(p[i]))
			return -1;
		port = port * 10 + (unsigned long)(p[i] - '0');
		if (port > 65535)
			return -1;
	}
	if (port == 0)
		return -1;
	dst->port = (uint16_t)port;
	return 0;
}

/*
 * The request target, once the version is known good. Only CONNECT takes
 * authority-form and only http:// absolute-form is forwarded: https must
 * come through CONNECT, and origin-form or "*" means the client took us
 * for the origin.
 */
static enum http_status
http_parse_target(const uint8_t *t, size_t n, struct http_request *req)
{
	size_t a;

	if (req->method_len == 7 && memcmp(req->method, "CONNECT", 7) == 0) {
		req->form = HTTP_FORM_AUTHORITY;
		req->path = NULL;
		req->path_len = 0;
		if (http_parse_authority(t, n, true, &req->dst) == -1)
			return HTTP_BAD_REQUEST;
		return HTTP_OK;
	}
	if (t[0] == '/' || (n == 1 && t[0] == '*'))
		return HTTP_NOT_PROXY;
	if (n < 7 || strncasecmp((const char *)t, "http://", 7) != 0)
		return HTTP_BAD_REQUEST;
	t += 7;
	n -= 7;
	/* A fragment is never part of a request target (RFC 9112 3.2.2). */
	if (memchr(t, '#', n) != NULL)
		return HTTP_BAD_REQUEST;
	for (a = 0; a < n && t[a] != '/' && t[a] != '?'; a++)
		;
	if (http_parse_authority(t, a, false, &req->dst) == -1)
		return HTTP_BAD_REQUEST;
	req->form = HTTP_FORM_ABSOLUTE;
	if (a == n) {
		req->path = "/";
		req->path_len = 1;
	} else {
		req->path = (const char *)t + a;
		req->path_len = n - a;
	}
	return HTTP_OK;
}

/*
 * method SP request-target SP HTTP-version, without its line end. Called
 * on a partial line too (complete false): then it reports only errors no
 * further byte could undo, in the order the complete line would, so a
 * verdict never depends on where the reads happened to split.
 */
static enum http_status
http_parse_request_line(const uint8_t *p, size_t n, bool complete,
    struct http_request *req)
{
	static const char version[] = "HTTP/#.#";
	size_t i = 0, target, vers;

	while (i < n && http_is_tchar(p[i]))
		i++;
	if (i == n)
		return complete ? HTTP_BAD_REQUEST : HTTP_INCOMPLETE;
	if (i == 0 || p[i] != ' ')
		return HTTP_BAD_REQUEST;
	req->method = (const char *)p;
	req->method_len = i;

	/* Visible ASCII only: no second SP, HT or obs-text to split on. */
	target = ++i;
	while (i < n && p[i] > ' ' && p[i] < 0x7f)
		i++;
	if (i == n)
		return complete ? HTTP_BAD_REQUEST : HTTP_INCOMPLETE;
	if (i == target || p[i] != ' ')
		return HTTP_BAD_REQUEST;

	vers = ++i;
	for (; i < n; i++) {
		if (i - vers >= sizeof(version) - 1)
			return HTTP_BAD_REQUEST;
		if (version[i - vers] == '#' ? !http_is_digit(p[i]) :
		    p[i] != (uint8_t)version[i - vers])
			return HTTP_BAD_REQUEST;
	}
	if (!complete)
		return HTTP_INCOMPLETE;
	if (n - vers != sizeof(version) - 1)
		return HTTP_BAD_REQUEST;
	/* Well-formed but not ours (HTTP/2.0, HTTP/0.9): 505, not 400. */
	if (p[vers + 5] != '1' || (p[vers + 7] != '0' && p[vers + 7] != '1'))
		return HTTP_BAD_VERSION;
	req->version_minor = (uint8_t)(p[vers + 7] - '0');
	return http_parse_target(p + target, vers - 1 - target, req);
}

/* Content-Length = 1*DIGIT, within int64_t. */
static int
http_parse_length(const uint8_t *p, size_t n, int64_t *out)
{
	int64_t v = 0;
	size_t i;

	if (n == 0)
		return -1;
	for (i = 0; i < n; i++) {
		if (!http_is_digit(p[i]) || v > (INT64_MAX - (p[i] - '0')) / 10)
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	*out = v;
	return 0;
}

/*
 * field-name ":" OWS field-value OWS, without its line end; partial lines
 * as for the request line. The framing fields are checked as they come:
 * two lengths, or a length and a coding, are how one message is made to
 * look like two different ones to two parsers (RFC 9112 6.3).
 */
static enum http_status
http_parse_field_line(const uint8_t *p, size_t n, bool complete,
    struct http_parse *ps)
{
	struct http_request *req = ps->req;
	struct http_field *f;
	const uint8_t *value;
	size_t i = 0, vlen;

	/* Obsolete line folding is refused (RFC 9112 5.2). */
	if (http_is_ows(p[0]))
		return HTTP_BAD_REQUEST;
	while (i < n && http_is_tchar(p[i]))
		i++;
	if (i == n)
		return complete ? HTTP_BAD_REQUEST : HTTP_INCOMPLETE;
	/* No whitespace between name and colon (RFC 9112 5.1). */
	if (i == 0 || p[i] != ':')
		return HTTP_BAD_REQUEST;
	for (size_t v = i + 1; v < n; v++)
		if (!http_is_value_byte(p[v]))
			return HTTP_BAD_REQUEST;
	if (!complete)
		return HTTP_INCOMPLETE;

	value = p + i + 1;
	vlen = n - i - 1;
	http_trim(&value, &vlen);
	f = &req->fields[req->nfields];
	f->name = (const char *)p;
	f->name_len = i;
	f->value = (const char *)value;
	f->value_len = vlen;

	if (http_name_is(f->name, i, "Host")) {
		if (++ps->hosts > 1)
			return HTTP_BAD_REQUEST;
	} else if (http_name_is(f->name, i, "Content-Length")) {
		if (ps->has_length || ps->has_coding ||
		    http_parse_length(value, vlen, &req->content_length) == -1)
			return HTTP_BAD_REQUEST;
		ps->has_length = true;
	} else if (http_name_is(f->name, i, "Transfer-Encoding")) {
		/* RFC 9112 6.1: an HTTP/1.0 message with a coding has
		 * faulty framing, whatever else it says. */
		if (req->version_minor == 0 || ps->has_length)
			return HTTP_BAD_REQUEST;
		ps->has_coding = true;
	}
	req->nfields++;
	return HTTP_OK;
}

/*
 * The codings of all Transfer-Encoding fields, as one list: chunked must
 * be last and only last (RFC 9112 6.3: otherwise the length cannot be
 * determined), and no element may be empty.
 */
static enum http_status
http_check_codings(struct http_request *req)
{
	const struct http_field *f;
	const uint8_t *elem;
	size_t pos, elen;
	bool last_chunked = false;

	for (size_t k = 0; k < req->nfields; k++) {
		f = &req->fields[k];
		if (!http_name_is(f->name, f->name_len, "Transfer-Encoding"))
			continue;
		pos = 0;
		while (http_list_next((const uint8_t *)f->value, f->value_len,
		    &pos, &elem, &elen)) {
			if (elen == 0 || last_chunked)
				return HTTP_BAD_REQUEST;
			last_chunked = elen == 7 &&
			    strncasecmp((const char *)elem, "chunked", 7) == 0;
		}
	}
	if (!last_chunked)
		return HTTP_BAD_REQUEST;
	req->chunked = true;
	return HTTP_OK;
}

/*
 * Lines are taken whole where the buffer has their LF, and checked as a
 * prefix where it does not. A CR is only a line end's, never anywhere else
 * (RFC 9112 2.2); a CR at the very end of the buffer waits for its LF.
 */
enum http_status
http_parse_request(const uint8_t *buf, size_t len, struct http_request *out)
{
	size_t limit = len < HTTP_HEAD_MAX ? len : HTTP_HEAD_MAX;
	size_t pos = 0, n;
	const uint8_t *lf;
	struct http_parse ps;
	enum http_status st;
	bool complete;

	memset(out, 0, sizeof(*out));
	out->content_length = -1;
	memset(&ps, 0, sizeof(ps));
	ps.req = out;

	while (pos < limit) {
		lf = memchr(buf + pos, '\n', limit - pos);
		complete = lf != NULL;
		n = complete ? (size_t)(lf - (buf + pos)) : limit - pos;
		if (n > 0 && buf[pos + n - 1] == '\r')
			n--;
		if (n == 0) {
			if (!complete)
				break;
			pos = (size_t)(lf - buf) + 1;
			/* Empty lines before the request line are skipped
			 * (RFC 9112 2.2); the first one after it ends the
			 * head. */
			if (!ps.started)
				continue;
			if (ps.has_coding &&
			    (st = http_check_codings(out)) != HTTP_OK)
				return st;
			out->head_len = pos;
			return HTTP_OK;
		}
		/* Counted before the line is looked at, so that a partial
		 * line cannot give another verdict than the whole one. */
		if (ps.started && out->nfields == HTTP_HEADERS_MAX)
			return HTTP_TOO_LARGE;
		if (memchr(buf + pos, '\r', n) != NULL)
			return HTTP_BAD_REQUEST;
		if (ps.started)
			st = http_parse_field_line(buf + pos, n, complete, &ps);
		else
			st = http_parse_request_line(buf + pos, n, complete,
			    out);
		if (st == HTTP_INCOMPLETE)     /* only ever a partial line */
			break;
		if (st != HTTP_OK)
			return st;
		ps.started = true;
		pos = (size_t)(lf - buf) + 1;
	}
	return len >= HTTP_HEAD_MAX ? HTTP_TOO_LARGE : HTTP_INCOMPLETE;
}

int
http_status_code(enum http_status status)
{
	switch (status) {
	case HTTP_BAD_REQUEST:
	case HTTP_NOT_PROXY:
		return 400;
	case HTTP_TOO_LARGE:
		return 431;
	case HTTP_BAD_VERSION:
		return 505;
	default:
		return 0;
	}
}
