/*
 * Private to the HTTP/1.x codec (http.c, http_encode.c, and the response
 * heads of http_response.c and http_connect.c): the OWS byte class,
 * field-name comparison, comma-separated list splitting and line
 * splitting, which the parsers and the code built on a parsed head need.
 */
#ifndef SOCKS5D_HTTP_LEX_H
#define SOCKS5D_HTTP_LEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

/* One line from start: its length without the line end (LF, or CRLF),
 * and where the next one begins. false when no LF is in buf yet. */
static inline bool
http_next_line(const uint8_t *buf, size_t len, size_t start,
    size_t *line_len, size_t *next)
{
	const uint8_t *lf;
	size_t end;

	if (start >= len)
		return false;
	lf = memchr(buf + start, '\n', len - start);
	if (lf == NULL)
		return false;
	end = (size_t)(lf - buf);
	*next = end + 1;
	if (end > start && buf[end - 1] == '\r')
		end--;
	*line_len = end - start;
	return true;
}

static inline bool
http_is_ows(uint8_t c)
{
	return c == ' ' || c == '\t';
}

static inline bool
http_name_is(const char *name, size_t len, const char *want)
{
	return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

/* Strip OWS from both ends of [*p, *p + *n). */
static inline void
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
static inline bool
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

#endif
