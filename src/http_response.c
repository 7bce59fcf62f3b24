/*
 * Rewriting an origin's response head for a client whose connection ends
 * after it: hop-by-hop fields out, "Connection: close" in. Lenient where
 * the request parser is strict: the origin's framing is passed on as it
 * is, so a head this code does not understand is left untouched.
 */
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "socks5d/http_lex.h"
#include "socks5d/http_response.h"

/* The status code of an "HTTP/1.x NNN ..." line, or -1. */
static int
http_response_status(const uint8_t *p, size_t n)
{
	if (n < 12 || memcmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ')
		return -1;
	for (size_t i = 9; i < 12; i++)
		if (p[i] < '0' || p[i] > '9')
			return -1;
	if (n > 12 && p[12] != ' ')
		return -1;
	return (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
}

/* Is name (n bytes) one of the comma-separated tokens in list? */
static bool
http_response_listed(const uint8_t *list, size_t list_len,
    const uint8_t *name, size_t n)
{
	size_t i = 0;

	while (i < list_len) {
		size_t start, end;

		while (i < list_len && (list[i] == ' ' || list[i] == '\t' ||
		    list[i] == ','))
			i++;
		start = i;
		while (i < list_len && list[i] != ',')
			i++;
		end = i;
		while (end > start && (list[end - 1] == ' ' ||
		    list[end - 1] == '\t'))
			end--;
		if (end - start == n && n > 0 &&
		    strncasecmp((const char *)list + start, (const char *)name,
		    n) == 0)
			return true;
	}
	return false;
}

static bool
http_response_name_is(const uint8_t *p, size_t n, const char *want)
{
	return strlen(want) == n && strncasecmp((const char *)p, want, n) == 0;
}

/* p[0..n) without the SP and HTAB around it. */
static void
http_response_trim(const uint8_t *p, size_t n, const uint8_t **value,
    size_t *value_len)
{
	size_t v, e;

	for (v = 0; v < n && (p[v] == ' ' || p[v] == '\t'); v++)
		;
	for (e = n; e > v && (p[e - 1] == ' ' || p[e - 1] == '\t'); e--)
		;
	*value = p + v;
	*value_len = e - v;
}

/* A field line's name and value (value trimmed); false: not a field. */
static bool
http_response_field(const uint8_t *p, size_t n, size_t *name_len,
    const uint8_t **value, size_t *value_len)
{
	const uint8_t *colon = memchr(p, ':', n);

	if (colon == NULL || colon == p)
		return false;
	*name_len = (size_t)(colon - p);
	http_response_trim(colon + 1, n - *name_len - 1, value, value_len);
	return true;
}

/* The hop-by-hop field that must not reach the client? */
static bool
http_response_is_hop(const uint8_t *p, size_t name_len,
    const uint8_t *connection, size_t connection_len)
{
	return http_response_name_is(p, name_len, "connection") ||
	    http_response_name_is(p, name_len, "keep-alive") ||
	    http_response_name_is(p, name_len, "proxy-connection") ||
	    http_response_listed(connection, connection_len, p, name_len);
}

/* A line that starts with SP or HTAB continues the field above it (the
 * obsolete line folding): it shares that field's fate. */
static bool
http_response_folded(const uint8_t *p, size_t n)
{
	return n > 0 && (p[0] == ' ' || p[0] == '\t');
}

/*
 * Rewrite the final head at buf[start, end) (end: just past its empty
 * line) in place. The Connection value is gathered first, as it may come
 * after the fields it names.
 */
static void
http_response_rewrite_head(uint8_t *buf, size_t *len, size_t start,
    size_t end, bool via)
{
	uint8_t head[HTTP_RESPONSE_HEAD_MAX + HTTP_RESPONSE_GROWTH];
	uint8_t connection[HTTP_RESPONSE_HEAD_MAX];
	size_t out = 0, connection_len = 0, pos, line, next, name_len, vlen;
	const uint8_t *value;
	bool first = true, in_connection = false, dropped = false;

	for (pos = start; http_next_line(buf, end, pos, &line, &next) &&
	    line > 0; pos = next) {
		if (!first && http_response_folded(buf + pos, line)) {
			/* A fold reads as one space: it takes the place of
			 * the comma that ended the value above. */
			http_response_trim(buf + pos, line, &value, &vlen);
			if (in_connection && connection_len > 0 &&
			    connection_len + vlen + 1 <= sizeof(connection)) {
				connection[connection_len - 1] = ' ';
				memcpy(connection + connection_len, value,
				    vlen);
				connection_len += vlen;
				connection[connection_len++] = ',';
			}
			continue;
		}
		in_connection = !first && http_response_field(buf + pos, line,
		    &name_len, &value, &vlen) && http_response_name_is(buf +
		    pos, name_len, "connection") && connection_len + vlen + 1 <=
		    sizeof(connection);
		if (in_connection) {
			memcpy(connection + connection_len, value, vlen);
			connection_len += vlen;
			connection[connection_len++] = ',';
		}
		first = false;
	}
	first = true;
	for (pos = start; http_next_line(buf, end, pos, &line, &next) &&
	    line > 0; pos = next) {
		if (!first && http_response_folded(buf + pos, line)) {
			/* Left behind, it would join the line above. */
			if (dropped)
				continue;
		} else {
			dropped = !first && http_response_field(buf + pos,
			    line, &name_len, &value, &vlen) &&
			    http_response_is_hop(buf + pos, name_len,
			    connection, connection_len);
			if (dropped)
				continue;
		}
		first = false;
		/* Each kept line as it came, with its own line end. */
		memcpy(head + out, buf + pos, next - pos);
		out += next - pos;
	}
	/* RFC 9110 7.6.3: a proxy adds Via to each message it forwards. */
	if (via) {
		memcpy(head + out, HTTP_RESPONSE_VIA, sizeof(HTTP_RESPONSE_VIA) - 1);
		out += sizeof(HTTP_RESPONSE_VIA) - 1;
	}
	memcpy(head + out, "Connection: close\r\n\r\n", 21);
	out += 21;
	memmove(buf + start + out, buf + end, *len - end);
	memcpy(buf + start, head, out);
	*len = *len - (end - start) + out;
}

enum http_response_status
http_response_rewrite(uint8_t *buf, size_t *len, size_t cap)
{
	size_t interim;

	return http_response_rewrite_interim(buf, len, cap, false, &interim);
}

enum http_response_status
http_response_rewrite_interim(uint8_t *buf, size_t *len, size_t cap,
    bool via, size_t *interim)
{
	size_t start = 0;

	for (;;) {
		size_t pos, line, next;
		int status;

		*interim = start;
		if (!http_next_line(buf, *len, start, &line, &next))
			return *len - start > HTTP_RESPONSE_HEAD_MAX ?
			    HTTP_RESPONSE_DONE : HTTP_RESPONSE_INCOMPLETE;
		status = http_response_status(buf + start, line);
		/* Below 100 is no status at all: not a head to skip past,
		 * lest the body be taken for the next one. */
		if (status < 100 || status == 101)
			return HTTP_RESPONSE_DONE;
		/* Find the empty line that ends this head. */
		for (pos = next; http_next_line(buf, *len, pos, &line,
		    &next) && line > 0; pos = next)
			if (next - start > HTTP_RESPONSE_HEAD_MAX)
				return HTTP_RESPONSE_DONE;
		if (!http_next_line(buf, *len, pos, &line, &next))
			return *len - start > HTTP_RESPONSE_HEAD_MAX ?
			    HTTP_RESPONSE_DONE : HTTP_RESPONSE_INCOMPLETE;
		if (next - start > HTTP_RESPONSE_HEAD_MAX)
			return HTTP_RESPONSE_DONE;
		if (status >= 200) {
			if (*len + 21 + (via ? sizeof(HTTP_RESPONSE_VIA) - 1 :
			    0) > cap)
				return HTTP_RESPONSE_DONE;
			http_response_rewrite_head(buf, len, start, next, via);
			return HTTP_RESPONSE_DONE;
		}
		start = next;          /* an interim 1xx head, passed on */
	}
}
