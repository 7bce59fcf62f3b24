/*
 * The HTTP/1.x forward-proxy wire format (RFC 9110, RFC 9112): the request
 * head parser, the head rewritten for the origin, and the proxy's own
 * responses. Pure functions only. The parser is strict on purpose: where
 * it and an origin could frame a message differently (request smuggling),
 * the request is refused rather than guessed at.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "socks5d/http.h"

/* What the parser remembers between field lines. */
struct http_parse {
	struct http_request *req;
	bool started;                  /* the request line has been parsed */
	unsigned hosts;
	bool has_length;
	bool has_coding;
};

/* Bytes written so far; once anything does not fit, nothing more is. */
struct http_out {
	uint8_t *buf;
	size_t len;
	size_t cap;
	bool full;
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
http_is_ows(uint8_t c)
{
	return c == ' ' || c == '\t';
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

static bool
http_name_is(const char *name, size_t len, const char *want)
{
	return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

/* Strip OWS from both ends of [*p, *p + *n). */
static void
http_trim(const uint8_t **p, size_t *n)
{
	while (*n > 0 && http_is_ows((*p)[0])) {
		(*p)++;
		(*n)--;
	}
	while (*n > 0 && http_is_ows((*p)[*n - 1]))
		(*n)--;
}

/*
 * Split a comma-separated list: the element starting at *pos (OWS
 * trimmed, may be empty) goes to *elem and *elen, and *pos moves past its
 * comma. Returns false once the list is used up.
 */
static bool
http_list_next(const uint8_t *v, size_t n, size_t *pos, const uint8_t **elem,
    size_t *elen)
{
	const uint8_t *comma;
	size_t end;

	if (*pos > n)
		return false;
	comma = memchr(v + *pos, ',', n - *pos);
	end = comma != NULL ? (size_t)(comma - v) : n;
	*elem = v + *pos;
	*elen = end - *pos;
	http_trim(elem, elen);
	*pos = end + 1;
	return true;
}

static bool
http_list_has_n(const char *value, size_t value_len, const char *token,
    size_t token_len)
{
	const uint8_t *elem;
	size_t pos = 0, elen;

	while (http_list_next((const uint8_t *)value, value_len, &pos, &elem,
	    &elen)) {
		if (elen == token_len &&
		    strncasecmp((const char *)elem, token, elen) == 0)
			return true;
	}
	return false;
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

const struct http_field *
http_find_field(const struct http_request *req, const char *name)
{
	for (size_t k = 0; k < req->nfields; k++)
		if (http_name_is(req->fields[k].name,
		    req->fields[k].name_len, name))
			return &req->fields[k];
	return NULL;
}

bool
http_list_has(const char *value, size_t value_len, const char *token)
{
	return http_list_has_n(value, value_len, token, strlen(token));
}

/* Does any field named name list token? */
static bool
http_fields_list(const struct http_request *req, const char *name,
    const char *token, size_t token_len)
{
	const struct http_field *f;

	for (size_t k = 0; k < req->nfields; k++) {
		f = &req->fields[k];
		if (http_name_is(f->name, f->name_len, name) &&
		    http_list_has_n(f->value, f->value_len, token, token_len))
			return true;
	}
	return false;
}

bool
http_basic_credentials(const struct http_request *req, char user[256],
    char password[256])
{
	/* user ":" password, each at most HTTP_CREDENTIAL_MAX bytes. */
	unsigned char plain[2 * HTTP_CREDENTIAL_MAX + 1];
	const struct http_field *f = NULL;
	const unsigned char *colon;
	const uint8_t *b64;
	size_t k, b64_len, plain_len = 0, ulen, plen;
	bool ok = false;

	user[0] = '\0';
	password[0] = '\0';
	/* Two would leave it to chance which one is checked. */
	for (k = 0; k < req->nfields; k++) {
		if (!http_name_is(req->fields[k].name, req->fields[k].name_len,
		    "Proxy-Authorization"))
			continue;
		if (f != NULL)
			return false;
		f = &req->fields[k];
	}
	if (f == NULL || f->value_len < 6 ||
	    strncasecmp(f->value, "Basic", 5) != 0 || f->value[5] != ' ')
		return false;
	b64 = (const uint8_t *)f->value + 6;
	b64_len = f->value_len - 6;
	while (b64_len > 0 && b64[0] == ' ') {
		b64++;
		b64_len--;
	}
	/* Without b64_end, anything but one whole padded string fails. */
	if (sodium_base642bin(plain, sizeof(plain), (const char *)b64,
	    b64_len, NULL, &plain_len, NULL,
	    sodium_base64_VARIANT_ORIGINAL) != 0)
		goto done;
	if (memchr(plain, '\0', plain_len) != NULL ||
	    (colon = memchr(plain, ':', plain_len)) == NULL)
		goto done;
	ulen = (size_t)(colon - plain);
	plen = plain_len - ulen - 1;
	if (ulen > HTTP_CREDENTIAL_MAX || plen > HTTP_CREDENTIAL_MAX)
		goto done;
	memcpy(user, plain, ulen);
	user[ulen] = '\0';
	memcpy(password, colon + 1, plen);
	password[plen] = '\0';
	ok = true;
done:
	sodium_memzero(plain, sizeof(plain));
	return ok;
}

/* RFC 9110 7.8: Upgrade is ignored in an HTTP/1.0 request. */
bool
http_is_websocket(const struct http_request *req)
{
	return req->version_minor == 1 &&
	    http_fields_list(req, "Upgrade", "websocket", 9) &&
	    http_fields_list(req, "Connection", "upgrade", 7);
}

static void
http_out_put(struct http_out *o, const void *p, size_t n)
{
	if (o->full || n > o->cap - o->len) {
		o->full = true;
		return;
	}
	memcpy(o->buf + o->len, p, n);
	o->len += n;
}

static void
http_out_str(struct http_out *o, const char *s)
{
	http_out_put(o, s, strlen(s));
}

/* "Host: name[:port]", the port only when not 80. */
static void
http_out_host(struct http_out *o, const struct socks5_addr *dst)
{
	char ip[INET6_ADDRSTRLEN], port[8];

	http_out_str(o, "Host: ");
	switch (dst->atyp) {
	case SOCKS5_ATYP_IPV4:
		if (inet_ntop(AF_INET, dst->u.ipv4, ip, sizeof(ip)) == NULL)
			o->full = true;
		else
			http_out_str(o, ip);
		break;
	case SOCKS5_ATYP_IPV6:
		if (inet_ntop(AF_INET6, dst->u.ipv6, ip, sizeof(ip)) == NULL) {
			o->full = true;
		} else {
			http_out_str(o, "[");
			http_out_str(o, ip);
			http_out_str(o, "]");
		}
		break;
	default:
		http_out_put(o, dst->u.name,
		    strnlen(dst->u.name, SOCKS5_NAME_MAX));
		break;
	}
	if (dst->port != 80) {
		snprintf(port, sizeof(port), ":%u", (unsigned)dst->port);
		http_out_str(o, port);
	}
	http_out_str(o, "\r\n");
}

/*
 * Fields that belong to the client's connection to us, not to the
 * message (RFC 9110 7.6.1), plus Host, which is written from the URI.
 */
static bool
http_field_is_hop(const struct http_request *req, const struct http_field *f,
    bool websocket)
{
	static const char *const hop[] = {
		"Host", "Proxy-Authorization", "Proxy-Connection",
		"Connection", "Keep-Alive", "TE", "Trailer", "Upgrade",
	};

	if (websocket && http_name_is(f->name, f->name_len, "Upgrade"))
		return false;
	for (size_t k = 0; k < sizeof(hop) / sizeof(hop[0]); k++)
		if (http_name_is(f->name, f->name_len, hop[k]))
			return true;
	/* Dropping the framing because Connection names it would have the
	 * origin read the body differently from us. */
	if (http_name_is(f->name, f->name_len, "Content-Length") ||
	    http_name_is(f->name, f->name_len, "Transfer-Encoding"))
		return false;
	return http_fields_list(req, "Connection", f->name, f->name_len);
}

/* A via pseudonym goes into a field value as is: printable ASCII only. */
static bool
http_via_ok(const char *via)
{
	size_t n = strnlen(via, HTTP_VIA_MAX + 1);

	if (n == 0 || n > HTTP_VIA_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((uint8_t)via[i] < ' ' || (uint8_t)via[i] >= 0x7f)
			return false;
	return true;
}

size_t
http_encode_origin_request(const struct http_request *req, const char *via,
    uint8_t *out, size_t outlen)
{
	struct http_out o = { out, 0, outlen, false };
	const struct http_field *f;
	bool websocket;

	if (req->form != HTTP_FORM_ABSOLUTE || req->path == NULL ||
	    (via != NULL && !http_via_ok(via)))
		return 0;
	websocket = http_is_websocket(req);

	http_out_put(&o, req->method, req->method_len);
	http_out_str(&o, " ");
	if (req->path[0] == '?')
		http_out_str(&o, "/");
	http_out_put(&o, req->path, req->path_len);
	http_out_str(&o, " HTTP/1.1\r\n");
	http_out_host(&o, &req->dst);
	for (size_t k = 0; k < req->nfields; k++) {
		f = &req->fields[k];
		if (http_field_is_hop(req, f, websocket))
			continue;
		http_out_put(&o, f->name, f->name_len);
		http_out_str(&o, ": ");
		http_out_put(&o, f->value, f->value_len);
		http_out_str(&o, "\r\n");
	}
	if (websocket)
		http_out_str(&o, "Connection: Upgrade\r\n");
	if (via != NULL) {
		/* received-protocol is the version we received (RFC 9110
		 * 7.6.3). */
		http_out_str(&o, req->version_minor == 0 ? "Via: 1.0 " :
		    "Via: 1.1 ");
		http_out_str(&o, via);
		http_out_str(&o, "\r\n");
	}
	if (!websocket)
		http_out_str(&o, "Connection: close\r\n");
	http_out_str(&o, "\r\n");
	return o.full ? 0 : o.len;
}

const char *
http_reason(int status)
{
	switch (status) {
	case 200:
		return "Connection established";
	case 400:
		return "Bad Request";
	case 403:
		return "Forbidden";
	case 405:
		return "Method Not Allowed";
	case 407:
		return "Proxy Authentication Required";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return NULL;
	}
}

size_t
http_encode_response(uint8_t *out, size_t outlen, int status,
    const char *extra)
{
	struct http_out o = { out, 0, outlen, false };
	const char *reason = http_reason(status);
	char line[64];

	if (reason == NULL)
		return 0;
	snprintf(line, sizeof(line), "HTTP/1.1 %d ", status);
	http_out_str(&o, line);
	http_out_str(&o, reason);
	http_out_str(&o, "\r\n");
	if (extra != NULL)
		http_out_str(&o, extra);
	if (status >= 400) {
		/* The body is the reason phrase and a newline. */
		snprintf(line, sizeof(line), "Content-Length: %zu\r\n",
		    strlen(reason) + 1);
		http_out_str(&o, "Content-Type: text/plain\r\n");
		http_out_str(&o, line);
		http_out_str(&o, "Connection: close\r\n\r\n");
		http_out_str(&o, reason);
		http_out_str(&o, "\n");
	} else {
		http_out_str(&o, "\r\n");
	}
	return o.full ? 0 : o.len;
}
