/*
 * The passive HTTP/1.x observer: request and response framing followed
 * line by line and byte count by byte count, bodies counted and never
 * kept. Strict with the client's bytes, lenient with the server's.
 */
#include <string.h>
#include <strings.h>

#include "socks5d/http_lex.h"
#include "socks5d/http_observe.h"

enum http_observe_phase {
	HTTP_OBSERVE_START = 0,         /* a start line; empty lines skipped */
	HTTP_OBSERVE_FIELDS,
	HTTP_OBSERVE_LENGTH,            /* a Content-Length body */
	HTTP_OBSERVE_UNTIL_EOF,         /* a response body the close ends */
	HTTP_OBSERVE_CHUNK_SIZE,
	HTTP_OBSERVE_CHUNK_DATA,
	HTTP_OBSERVE_CHUNK_CR,          /* the CRLF after a chunk's data */
	HTTP_OBSERVE_CHUNK_LF,
	HTTP_OBSERVE_TRAILERS,
	HTTP_OBSERVE_HOLD,              /* up: after a request that may upgrade */
	HTTP_OBSERVE_CLOSED,            /* http_observe_eof */
};

/* dir->target when it is no slot. */
#define HTTP_OBSERVE_NONE       (-1)
#define HTTP_OBSERVE_DROPPED    (-2)

/* What a dropped request asked, for the framing of its response. */
#define HTTP_OBSERVE_DROP_HEAD          0x01
#define HTTP_OBSERVE_DROP_CONNECT       0x02

#define HTTP_OBSERVE_TOO_LARGE  "http-head-too-large"
#define HTTP_OBSERVE_MALFORMED  "http-malformed"
#define HTTP_OBSERVE_EARLY_DATA "http-early-data"

static int http_observe_feed(struct http_observe *, struct http_observe_dir *,
    const uint8_t *, size_t, double);

/* RFC 9110 tchar: what a method or a field name is made of. */
static bool
http_observe_is_tchar(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') ||
	    (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool
http_observe_is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

/* Field value and chunk extension bytes: no CTL but HT. */
static bool
http_observe_is_value(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != '\t' && (p[i] < ' ' || p[i] == 0x7f))
			return false;
	return true;
}

static int
http_observe_hex(uint8_t c)
{
	if (http_observe_is_digit(c))
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool
http_observe_is_up(const struct http_observe *o,
    const struct http_observe_dir *d)
{
	return d == &o->up;
}

static uint8_t *
http_observe_line(struct http_observe *o, struct http_observe_dir *d)
{
	return http_observe_is_up(o, d) ? o->up_line : o->down_line;
}

static size_t
http_observe_cap(const struct http_observe *o,
    const struct http_observe_dir *d)
{
	return http_observe_is_up(o, d) ? sizeof(o->up_line) :
	    sizeof(o->down_line);
}

/* A bounded copy, always NUL-terminated. */
static void
http_observe_copy(char *dst, size_t size, const uint8_t *src, size_t n)
{
	if (n > size - 1)
		n = size - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static void
http_observe_dir_reset(struct http_observe_dir *d)
{
	d->head_len = 0;
	d->remain = 0;
	d->length = -1;
	d->status = 0;
	d->te = d->chunked = d->te_bad = d->framing_field = false;
	d->phase = HTTP_OBSERVE_START;
}

void
http_observe_init(struct http_observe *o, http_observe_cb *cb, void *arg,
    bool keep_query)
{
	memset(o, 0, sizeof(*o));
	o->cb = cb;
	o->arg = arg;
	o->keep_query = keep_query;
	http_observe_dir_reset(&o->up);
	http_observe_dir_reset(&o->down);
	o->up.target = o->down.target = HTTP_OBSERVE_NONE;
}

static void
http_observe_pop(struct http_observe *o)
{
	o->first = (o->first + 1) % HTTP_OBSERVE_QUEUE_MAX;
	o->count--;
}

static void
http_observe_report(struct http_observe *o, const struct http_observe_slot *s)
{
	if (o->cb != NULL)
		o->cb(o->arg, &s->x);
}

/* Only the oldest slot can be done both ways: requests follow each
 * other, and responses come in their order. */
static void
http_observe_settle(struct http_observe *o)
{
	struct http_observe_slot *s;

	while (o->count > 0) {
		s = &o->slot[o->first];
		if (!s->request_done || !s->response_done)
			return;
		http_observe_report(o, s);
		http_observe_pop(o);
	}
}

/* Stop watching for good, reporting what is still open as it stands. */
static void
http_observe_stop(struct http_observe *o, enum http_observe_state state,
    double now)
{
	struct http_observe_slot *s;

	if (o->state != HTTP_OBSERVE_WATCHING)
		return;
	o->state = state;
	while (o->count > 0) {
		s = &o->slot[o->first];
		if (!s->answered)
			s->x.ended = now;
		http_observe_report(o, s);
		http_observe_pop(o);
	}
	o->drop_count = 0;
}

/* The client's bytes fail the session; the server's only stop the
 * watching, since the operator trusts servers and not clients. */
static void
http_observe_bad(struct http_observe *o, struct http_observe_dir *d,
    const char *why, double now)
{
	if (http_observe_is_up(o, d)) {
		o->error = why;
		http_observe_stop(o, HTTP_OBSERVE_FAILED, now);
	} else
		http_observe_stop(o, HTTP_OBSERVE_GAVE_UP, now);
}

/* n bytes passed this way: whose are they? */
static void
http_observe_count(struct http_observe *o, struct http_observe_dir *d,
    uint64_t n, double now)
{
	struct http_observe_slot *s;

	if (d->target == HTTP_OBSERVE_NONE) {
		d->pend += n;
		return;
	}
	if (d->target == HTTP_OBSERVE_DROPPED || n == 0)
		return;
	s = &o->slot[d->target];
	if (http_observe_is_up(o, d))
		s->x.bytes_up += n;
	else {
		s->x.bytes_down += n;
		s->x.ended = now;
		s->answered = true;
	}
}

/* The current message's bytes so far go to target from now on. */
static void
http_observe_attach(struct http_observe *o, struct http_observe_dir *d,
    int target, double now)
{
	uint64_t pend = d->pend;

	d->target = target;
	d->pend = 0;
	http_observe_count(o, d, pend, now);
}

/* The upgraded (or tunnelled) exchange is reported; whatever the client
 * sent after it was never HTTP, so the rest goes unreported. */
static void
http_observe_upgrade(struct http_observe *o, struct http_observe_dir *d)
{
	struct http_observe_slot *s;

	if (d->target >= 0) {
		s = &o->slot[d->target];
		s->x.upgraded = true;
		http_observe_report(o, s);
	}
	o->count = 0;
	o->drop_count = 0;
	o->state = HTTP_OBSERVE_UPGRADED;
}

/*
 * After a request that may upgrade, the client's next bytes may be HTTP
 * or already the new protocol (RFC 9110 7.8 has it wait, but not every
 * client does): they are held, unread, until the answer.
 */
static void
http_observe_request_end(struct http_observe *o, struct http_observe_dir *d)
{
	struct http_observe_slot *s = NULL;
	int target = d->target;

	if (target >= 0) {
		s = &o->slot[target];
		s->request_done = true;
	}
	d->target = HTTP_OBSERVE_NONE;
	http_observe_dir_reset(d);
	if (s != NULL && s->upgrade && !s->final) {
		d->phase = HTTP_OBSERVE_HOLD;
		d->hold_slot = target;
		d->held = 0;
	}
	http_observe_settle(o);
}

/* Not upgraded after all: what was held is read as HTTP, as of when it
 * came. The line buffer it is in is read from front to back while being
 * written from its front, hence memmove in the feed. */
static void
http_observe_release(struct http_observe *o, double now)
{
	struct http_observe_dir *d = &o->up;
	size_t n = d->held;

	d->held = 0;
	d->phase = HTTP_OBSERVE_START;
	(void)http_observe_feed(o, d, o->up_line, n, d->held_at);
	if (d->eof_held)
		http_observe_eof(o, true, now);
}

static void
http_observe_response_end(struct http_observe *o, struct http_observe_dir *d)
{
	if (d->target >= 0)
		o->slot[d->target].response_done = true;
	else if (d->target == HTTP_OBSERVE_DROPPED) {
		o->drop_first = (o->drop_first + 1) % HTTP_OBSERVE_DROP_MAX;
		o->drop_count--;
	}
	d->target = HTTP_OBSERVE_NONE;
	http_observe_dir_reset(d);
	http_observe_settle(o);
}

static void
http_observe_message_end(struct http_observe *o, struct http_observe_dir *d)
{
	if (http_observe_is_up(o, d))
		http_observe_request_end(o, d);
	else
		http_observe_response_end(o, d);
}

/* scheme "://" (RFC 3986 3.1): the scheme's length, or 0 when t does
 * not start with one. */
static size_t
http_observe_scheme(const uint8_t *t, size_t n)
{
	size_t i;

	if (n == 0 || !((t[0] >= 'a' && t[0] <= 'z') ||
	    (t[0] >= 'A' && t[0] <= 'Z')))
		return 0;
	for (i = 1; i < n && ((t[i] >= 'a' && t[i] <= 'z') ||
	    (t[i] >= 'A' && t[i] <= 'Z') || http_observe_is_digit(t[i]) ||
	    t[i] == '+' || t[i] == '-' || t[i] == '.'); i++)
		;
	if (n - i < 3 || memcmp(t + i, "://", 3) != 0)
		return 0;
	return i;
}

/* The path, "/" first when slash, query dropped unless keep_query. */
static void
http_observe_path(struct http_observe *o, struct http_observe_slot *s,
    bool slash, const uint8_t *p, size_t n)
{
	const uint8_t *q;
	size_t at = 0, room = sizeof(s->x.path) - 1;

	if (!o->keep_query && (q = memchr(p, '?', n)) != NULL)
		n = (size_t)(q - p);
	if (slash)
		s->x.path[at++] = '/';
	if (n > room - at) {
		n = room - at;
		s->x.path_truncated = true;
	}
	memcpy(s->x.path + at, p, n);
	s->x.path[at + n] = '\0';
}

/* Origin, asterisk, absolute (any scheme) or a CONNECT's authority
 * form: any other is no request a server takes. */
static bool
http_observe_target_ok(const uint8_t *t, size_t n, bool connect)
{
	return connect || t[0] == '/' || (n == 1 && t[0] == '*') ||
	    http_observe_scheme(t, n) > 0;
}

/*
 * Where the target says the request goes. Absolute form and a CONNECT's
 * authority form name the host themselves, overriding Host (RFC 9112
 * 3.2.2); userinfo, up to the last '@', is not part of it.
 */
static void
http_observe_target(struct http_observe *o, struct http_observe_slot *s,
    const uint8_t *t, size_t n)
{
	size_t skip, a, u;

	if (s->connect) {
		http_observe_copy(s->x.host, sizeof(s->x.host), t, n);
		s->host_from_target = true;
		return;
	}
	if ((skip = http_observe_scheme(t, n)) == 0) {
		http_observe_path(o, s, false, t, n);
		return;
	}
	t += skip + 3;
	n -= skip + 3;
	for (a = 0; a < n && t[a] != '/' && t[a] != '?' && t[a] != '#'; a++)
		;
	for (u = a; u > 0 && t[u - 1] != '@'; u--)
		;
	http_observe_copy(s->x.host, sizeof(s->x.host), t + u, a - u);
	s->host_from_target = true;
	http_observe_path(o, s, a == n || t[a] != '/', t + a, n - a);
}

/*
 * method SP request-target SP HTTP/1.x, as http.c takes it (visible
 * ASCII target, one SP each side). A request past the queue is read on,
 * for its framing and its response's, but never reported.
 */
static void
http_observe_request_line(struct http_observe *o, struct http_observe_dir *d,
    const uint8_t *p, size_t n, double now)
{
	struct http_observe_slot *s;
	size_t m, t, v;
	bool head, connect;
	int idx;

	for (m = 0; m < n && http_observe_is_tchar(p[m]); m++)
		;
	if (m == 0 || m == n || p[m] != ' ')
		goto bad;
	for (v = t = m + 1; v < n && p[v] > ' ' && p[v] < 0x7f; v++)
		;
	if (v == t || v == n || p[v] != ' ')
		goto bad;
	if (n - v - 1 != 8 || memcmp(p + v + 1, "HTTP/1.", 7) != 0 ||
	    !http_observe_is_digit(p[v + 8]))
		goto bad;
	head = m == 4 && memcmp(p, "HEAD", 4) == 0;
	connect = m == 7 && memcmp(p, "CONNECT", 7) == 0;
	if (!http_observe_target_ok(p + t, v - t, connect))
		goto bad;
	d->phase = HTTP_OBSERVE_FIELDS;

	/* Behind a dropped one, a request would be answered out of the
	 * queue's order: dropped too, until those are answered. */
	if (o->count == HTTP_OBSERVE_QUEUE_MAX || o->drop_count > 0) {
		if (o->drop_count == HTTP_OBSERVE_DROP_MAX) {
			http_observe_stop(o, HTTP_OBSERVE_GAVE_UP, now);
			return;
		}
		o->drop[(o->drop_first + o->drop_count++) %
		    HTTP_OBSERVE_DROP_MAX] =
		    (head ? HTTP_OBSERVE_DROP_HEAD : 0) |
		    (connect ? HTTP_OBSERVE_DROP_CONNECT : 0);
		o->dropped++;
		http_observe_attach(o, d, HTTP_OBSERVE_DROPPED, now);
		return;
	}
	idx = (int)((o->first + o->count++) % HTTP_OBSERVE_QUEUE_MAX);
	s = &o->slot[idx];
	memset(s, 0, sizeof(*s));
	http_observe_copy(s->x.method, sizeof(s->x.method), p, m);
	s->x.started = d->line_started;
	s->head = head;
	s->connect = s->upgrade = connect;
	http_observe_target(o, s, p + t, v - t);
	http_observe_attach(o, d, idx, now);
	return;
bad:
	http_observe_bad(o, d, HTTP_OBSERVE_MALFORMED, now);
}

/* Content-Length = 1*DIGIT, as a list of equal values too ("5, 5"),
 * within int64_t, and the same as any earlier one. */
static bool
http_observe_length(struct http_observe_dir *d, const uint8_t *v, size_t n)
{
	const uint8_t *e;
	size_t pos = 0, elen, i;
	int64_t x;

	while (http_list_next(v, n, &pos, &e, &elen)) {
		if (elen == 0)
			return false;
		for (x = 0, i = 0; i < elen; i++) {
			if (!http_observe_is_digit(e[i]) ||
			    x > (INT64_MAX - (e[i] - '0')) / 10)
				return false;
			x = x * 10 + (e[i] - '0');
		}
		if (d->length >= 0 && d->length != x)
			return false;
		d->length = x;
	}
	return true;
}

/* Transfer-Encoding, all its fields as one list: chunked must be last
 * and only there to frame the body (RFC 9112 6.1, 6.3). */
static void
http_observe_codings(struct http_observe_dir *d, const uint8_t *v, size_t n)
{
	const uint8_t *e;
	size_t pos = 0, elen;

	d->te = true;
	while (http_list_next(v, n, &pos, &e, &elen)) {
		if (elen == 0)
			continue;
		if (d->chunked)
			d->te_bad = true;
		if (elen == 7 && strncasecmp((const char *)e, "chunked", 7) == 0)
			d->chunked = true;
	}
}

/* One request field or trailer line. Obs-fold is refused, as by http.c
 * (RFC 9112 5.2), and so is anything a server might split otherwise. */
static void
http_observe_request_field(struct http_observe *o, struct http_observe_dir *d,
    const uint8_t *p, size_t n, double now)
{
	struct http_observe_slot *s;
	const uint8_t *v;
	size_t i, vlen;

	if (http_is_ows(p[0]))
		goto bad;
	for (i = 0; i < n && http_observe_is_tchar(p[i]); i++)
		;
	if (i == 0 || i == n || p[i] != ':' ||
	    !http_observe_is_value(p + i + 1, n - i - 1))
		goto bad;
	if (d->phase == HTTP_OBSERVE_TRAILERS)
		return;
	v = p + i + 1;
	vlen = n - i - 1;
	http_trim(&v, &vlen);
	if (http_name_is((const char *)p, i, "Host")) {
		if (d->target < 0)
			return;
		s = &o->slot[d->target];
		/* RFC 9112 3.2: two is a 400, whatever the target says. */
		if (++s->hosts > 1)
			s->x.host[0] = '\0';
		else if (!s->host_from_target)
			http_observe_copy(s->x.host, sizeof(s->x.host), v,
			    vlen);
	} else if (http_name_is((const char *)p, i, "Content-Length")) {
		if (!http_observe_length(d, v, vlen))
			goto bad;
	} else if (http_name_is((const char *)p, i, "Transfer-Encoding"))
		http_observe_codings(d, v, vlen);
	else if (http_name_is((const char *)p, i, "Upgrade") && d->target >= 0)
		o->slot[d->target].upgrade = true;
	return;
bad:
	http_observe_bad(o, d, HTTP_OBSERVE_MALFORMED, now);
}

/* Requests without Content-Length or Transfer-Encoding have no body;
 * with a coding that is not chunked last, no server can frame them. */
static void
http_observe_request_head_end(struct http_observe *o,
    struct http_observe_dir *d, double now)
{
	if (d->te) {
		if (!d->chunked || d->te_bad) {
			http_observe_bad(o, d, HTTP_OBSERVE_MALFORMED, now);
			return;
		}
		d->phase = HTTP_OBSERVE_CHUNK_SIZE;
		d->head_len = 0;
	} else if (d->length > 0) {
		d->phase = HTTP_OBSERVE_LENGTH;
		d->remain = (uint64_t)d->length;
	} else
		http_observe_request_end(o, d);
}

/* "HTTP/1.x NNN[ reason]": which request it answers is settled here, on
 * the first status line for it (interim ones come before the final). */
static void
http_observe_status_line(struct http_observe *o, struct http_observe_dir *d,
    const uint8_t *p, size_t n, double now)
{
	int status, target;

	if (n < 12 || memcmp(p, "HTTP/1.", 7) != 0 ||
	    !http_observe_is_digit(p[7]) || p[8] != ' ' ||
	    p[9] < '1' || p[9] > '9' || !http_observe_is_digit(p[10]) ||
	    !http_observe_is_digit(p[11]) || (n > 12 && p[12] != ' ')) {
		http_observe_bad(o, d, HTTP_OBSERVE_MALFORMED, now);
		return;
	}
	status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	if (d->target == HTTP_OBSERVE_NONE) {
		if (o->count > 0 && !o->slot[o->first].response_done)
			target = (int)o->first;
		else if (o->count == 0 && o->drop_count > 0) {
			target = HTTP_OBSERVE_DROPPED;
			d->drop_flags = o->drop[o->drop_first];
		} else {
			http_observe_stop(o, HTTP_OBSERVE_LOST, now);
			return;
		}
		http_observe_attach(o, d, target, now);
	}
	if (d->target >= 0)
		o->slot[d->target].x.status = status;
	d->status = status;
	d->phase = HTTP_OBSERVE_FIELDS;
}

/*
 * One response field or trailer line. Only the framing fields matter,
 * and only in a final head; a line too long to have been kept whole is
 * fine unless it is one of those. Whitespace before the colon is taken
 * (RFC 9112 5.1 has proxies strip it from responses), and so is an
 * obs-fold, but not one that goes on with a framing field.
 */
static void
http_observe_response_field(struct http_observe *o,
    struct http_observe_dir *d, const uint8_t *p, size_t n, bool whole,
    double now)
{
	const uint8_t *v;
	size_t i, name, vlen;
	bool length;

	if (http_is_ows(p[0])) {
		if (d->framing_field)
			goto bad;
		return;
	}
	for (i = 0; i < n && http_observe_is_tchar(p[i]); i++)
		;
	name = i;
	while (i < n && http_is_ows(p[i]))
		i++;
	length = http_name_is((const char *)p, name, "Content-Length");
	d->framing_field = length ||
	    http_name_is((const char *)p, name, "Transfer-Encoding");
	if (i == n && !whole && !d->framing_field)
		return;         /* a name longer than what was kept */
	if (name == 0 || i == n || p[i] != ':')
		goto bad;
	if (!d->framing_field || d->phase == HTTP_OBSERVE_TRAILERS ||
	    (d->status >= 100 && d->status < 200))
		return;
	if (!whole)
		goto bad;
	v = p + i + 1;
	vlen = n - i - 1;
	http_trim(&v, &vlen);
	if (!length)
		http_observe_codings(d, v, vlen);
	else if (!http_observe_length(d, v, vlen))
		goto bad;
	return;
bad:
	http_observe_bad(o, d, HTTP_OBSERVE_MALFORMED, now);
}

/* RFC 9112 6.3, in its order. A request's final status releases what
 * the client sent after it, if that was held. */
static void
http_observe_response_head_end(struct http_observe *o,
    struct http_observe_dir *d, double now)
{
	bool head, connect;
	int status = d->status, target = d->target;

	if (status == 101) {
		http_observe_upgrade(o, d);
		return;
	}
	if (status < 200) {
		/* Interim: the same request's final head comes next. */
		d->head_len = 0;
		d->framing_field = false;
		d->phase = HTTP_OBSERVE_START;
		return;
	}
	if (target >= 0) {
		o->slot[target].final = true;
		head = o->slot[target].head;
		connect = o->slot[target].connect;
	} else {
		head = (d->drop_flags & HTTP_OBSERVE_DROP_HEAD) != 0;
		connect = (d->drop_flags & HTTP_OBSERVE_DROP_CONNECT) != 0;
	}
	if (connect && status < 300) {
		http_observe_upgrade(o, d);
		return;
	}
	if (head || status == 204 || status == 304)
		http_observe_response_end(o, d);
	else if (d->te && d->chunked && !d->te_bad) {
		d->phase = HTTP_OBSERVE_CHUNK_SIZE;
		d->head_len = 0;
	} else if (d->te || d->length < 0)
		d->phase = HTTP_OBSERVE_UNTIL_EOF;
	else if (d->length > 0) {
		d->phase = HTTP_OBSERVE_LENGTH;
		d->remain = (uint64_t)d->length;
	} else
		http_observe_response_end(o, d);
	if (target >= 0 && o->up.phase == HTTP_OBSERVE_HOLD &&
	    o->up.hold_slot == target)
		http_observe_release(o, now);
}

/* chunk-size [ BWS ";" chunk-ext ]: extensions are not looked into but
 * for their bytes in a request. */
static void
http_observe_chunk_size(struct http_observe *o, struct http_observe_dir *d,
    const uint8_t *p, size_t n, double now)
{
	uint64_t size = 0;
	size_t i;
	int h;

	for (i = 0; i < n && (h = http_observe_hex(p[i])) != -1; i++) {
		if (size > (uint64_t)INT64_MAX >> 4)
			goto bad;
		size = size << 4 | (uint64_t)h;
	}
	if (i == 0)
		goto bad;
	while (i < n && http_is_ows(p[i]))
		i++;
	if (i < n && (p[i] != ';' || (http_observe_is_up(o, d) &&
	    !http_observe_is_value(p + i, n - i))))
		goto bad;
	if (size == 0) {
		d->phase = HTTP_OBSERVE_TRAILERS;
		d->head_len = 0;
	} else {
		d->phase = HTTP_OBSERVE_CHUNK_DATA;
		d->remain = size;
	}
	return;
bad:
	http_observe_bad(o, d, HTTP_OBSERVE_MALFORMED, now);
}

/* A whole line is in: n of its full bytes (line end off) were kept. */
static void
http_observe_line_done(struct http_observe *o, struct http_observe_dir *d,
    size_t raw, double now)
{
	const uint8_t *p = http_observe_line(o, d);
	size_t full = raw, n;
	bool up = http_observe_is_up(o, d);

	if (full > 0 && d->last == '\r')
		full--;
	n = d->kept < full ? d->kept : full;
	d->line_len = d->kept = 0;
	d->last = 0;
	switch (d->phase) {
	case HTTP_OBSERVE_START:
		/* Empty lines before a start line are skipped (RFC 9112
		 * 2.2), and are in no head. */
		if (full == 0) {
			d->head_len = 0;
			break;
		}
		d->head_len = raw + 1;
		if (up)
			http_observe_request_line(o, d, p, n, now);
		else
			http_observe_status_line(o, d, p, n, now);
		break;
	case HTTP_OBSERVE_FIELDS:
	case HTTP_OBSERVE_TRAILERS:
		d->head_len += raw + 1;
		if (full > 0) {
			if (up)
				http_observe_request_field(o, d, p, n, now);
			else
				http_observe_response_field(o, d, p, n,
				    n == full, now);
		} else if (d->phase == HTTP_OBSERVE_TRAILERS)
			http_observe_message_end(o, d);
		else if (up)
			http_observe_request_head_end(o, d, now);
		else
			http_observe_response_head_end(o, d, now);
		break;
	case HTTP_OBSERVE_CHUNK_SIZE:
		http_observe_chunk_size(o, d, p, n, now);
		break;
	default:
		break;
	}
}

/*
 * Up to and through the next LF of buf[*at..len), keeping what fits of
 * the line. The limit is checked byte by byte, so that where the input
 * was split never changes what is counted before it is hit.
 */
static void
http_observe_take_line(struct http_observe *o, struct http_observe_dir *d,
    const uint8_t *buf, size_t len, size_t *at, double now)
{
	const uint8_t *lf;
	size_t i = *at, n, take, room, keep;
	bool head;

	lf = memchr(buf + i, '\n', len - i);
	n = lf != NULL ? (size_t)(lf - (buf + i)) : len - i;
	take = n + (lf != NULL);
	room = HTTP_OBSERVE_HEAD_MAX - d->head_len - d->line_len;
	if (take > room) {
		http_observe_count(o, d, room, now);
		*at = i + room;
		head = d->phase != HTTP_OBSERVE_CHUNK_SIZE;
		http_observe_bad(o, d, head ? HTTP_OBSERVE_TOO_LARGE :
		    HTTP_OBSERVE_MALFORMED, now);
		return;
	}
	if (d->line_len == 0)
		d->line_started = now;
	keep = http_observe_cap(o, d) - d->kept;
	if (keep > n)
		keep = n;
	memmove(http_observe_line(o, d) + d->kept, buf + i, keep);
	d->kept += keep;
	d->line_len += n;
	if (n > 0)
		d->last = buf[i + n - 1];
	http_observe_count(o, d, take, now);
	*at = i + take;
	if (lf != NULL)
		http_observe_line_done(o, d, d->line_len, now);
}

static int
http_observe_feed(struct http_observe *o, struct http_observe_dir *d,
    const uint8_t *buf, size_t len, double now)
{
	size_t i = 0, take;
	uint8_t c;

	while (i < len && o->state == HTTP_OBSERVE_WATCHING &&
	    d->phase != HTTP_OBSERVE_CLOSED) {
		switch (d->phase) {
		case HTTP_OBSERVE_LENGTH:
		case HTTP_OBSERVE_CHUNK_DATA:
			take = len - i < d->remain ? len - i :
			    (size_t)d->remain;
			http_observe_count(o, d, take, now);
			i += take;
			d->remain -= take;
			if (d->remain > 0)
				break;
			if (d->phase == HTTP_OBSERVE_CHUNK_DATA)
				d->phase = HTTP_OBSERVE_CHUNK_CR;
			else
				http_observe_message_end(o, d);
			break;
		case HTTP_OBSERVE_UNTIL_EOF:
			http_observe_count(o, d, len - i, now);
			i = len;
			break;
		case HTTP_OBSERVE_HOLD:
			take = len - i;
			if (take > sizeof(o->up_line) - d->held) {
				http_observe_bad(o, d,
				    HTTP_OBSERVE_EARLY_DATA, now);
				break;
			}
			if (d->held == 0)
				d->held_at = now;
			memmove(o->up_line + d->held, buf + i, take);
			d->held += take;
			i = len;
			break;
		case HTTP_OBSERVE_CHUNK_CR:
		case HTTP_OBSERVE_CHUNK_LF:
			c = buf[i++];
			http_observe_count(o, d, 1, now);
			if (c == '\n')
				d->phase = HTTP_OBSERVE_CHUNK_SIZE;
			else if (c == '\r' && d->phase == HTTP_OBSERVE_CHUNK_CR)
				d->phase = HTTP_OBSERVE_CHUNK_LF;
			else
				http_observe_bad(o, d, HTTP_OBSERVE_MALFORMED,
				    now);
			break;
		default:
			http_observe_take_line(o, d, buf, len, &i, now);
			break;
		}
	}
	if (o->state == HTTP_OBSERVE_WATCHING)
		return 0;
	return o->state == HTTP_OBSERVE_FAILED && http_observe_is_up(o, d) ?
	    -1 : 1;
}

int
http_observe_up(struct http_observe *o, const uint8_t *buf, size_t len,
    double now)
{
	return http_observe_feed(o, &o->up, buf, len, now);
}

int
http_observe_down(struct http_observe *o, const uint8_t *buf, size_t len,
    double now)
{
	return http_observe_feed(o, &o->down, buf, len, now);
}

void
http_observe_eof(struct http_observe *o, bool up, double now)
{
	struct http_observe_dir *d = up ? &o->up : &o->down;

	(void)now;      /* a response ends at its last byte, not here */
	if (o->state != HTTP_OBSERVE_WATCHING ||
	    d->phase == HTTP_OBSERVE_CLOSED)
		return;
	if (d->phase == HTTP_OBSERVE_HOLD) {
		d->eof_held = true;
		return;
	}
	if (up)
		http_observe_request_end(o, d);
	else if (d->phase == HTTP_OBSERVE_UNTIL_EOF)
		http_observe_response_end(o, d);
	d->target = HTTP_OBSERVE_NONE;
	d->phase = HTTP_OBSERVE_CLOSED;
}

void
http_observe_finish(struct http_observe *o, double now)
{
	if (o->state != HTTP_OBSERVE_WATCHING)
		return;
	if (o->down.phase == HTTP_OBSERVE_UNTIL_EOF)
		http_observe_response_end(o, &o->down);
	/* Never answered: what was held was HTTP, as far as anyone knows. */
	if (o->up.phase == HTTP_OBSERVE_HOLD)
		http_observe_release(o, now);
	http_observe_stop(o, HTTP_OBSERVE_FINISHED, now);
}
