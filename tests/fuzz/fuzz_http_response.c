/*
 * libFuzzer target: the origin response rewrite (src/http_response.c), fed
 * what the relay feeds it: every prefix of one origin byte stream, in a
 * buffer of exactly cap bytes so ASan sees any write past it.
 *
 * Input: byte 0 sets the room past the stream (under 0xc0: 0-47 bytes,
 * around HTTP_RESPONSE_GROWTH; else that many KiB); byte 1, when not 0,
 * inserts a field of 128 * byte 1 bytes after the first line, to reach
 * HTTP_RESPONSE_HEAD_MAX cheaply; the rest is the stream.
 *
 * A model of the contract (which head is final, where it ends, whether it
 * may be rewritten) says what each call must return; a rewritten head is
 * checked against the one that came in: the bytes around it kept exactly,
 * its lines a subsequence of the original's ending in "Connection: close",
 * no hop-by-hop field left, no fold line parted from its field.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "socks5d/http_response.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char close_line[] = "Connection: close\r\n\r\n";
/* What http_response_rewrite (no Via line) may add. */
#define NO_VIA_GROWTH (HTTP_RESPONSE_GROWTH - (sizeof(HTTP_RESPONSE_VIA) - 1))
#define CLOSE_LEN       (sizeof(close_line) - 1)

/* Prefixes tried one by one before sampling. */
#define ALL_PREFIXES    1024
#define SAMPLES         256

enum verdict { V_INCOMPLETE, V_UNCHANGED, V_REWRITE };

struct model {
	enum verdict v;
	size_t pos;             /* V_REWRITE: where the final head starts */
	size_t end;             /* V_REWRITE: just past its empty line */
};

static const uint8_t *
find_lf(const uint8_t *b, size_t from, size_t len)
{
	return from < len ? memchr(b + from, '\n', len - from) : NULL;
}

/* The status code of a whole status line (line end dropped), or -1. */
static int
model_status(const uint8_t *p, size_t n)
{
	if (n > 0 && p[n - 1] == '\r')
		n--;
	if (n < 12 || memcmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ' ||
	    (n > 12 && p[12] != ' '))
		return -1;
	for (size_t i = 9; i < 12; i++)
		if (p[i] < '0' || p[i] > '9')
			return -1;
	return (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
}

/* The contract, stated apart from the code: the head at pos ends at the
 * first LF followed by an empty line ("\n" or "\r\n"). */
static struct model
model(const uint8_t *b, size_t len, size_t cap)
{
	struct model m = { V_UNCHANGED, 0, 0 };
	const uint8_t *lf;
	size_t pos = 0, i, end;
	int status;

	for (;;) {
		lf = find_lf(b, pos, len);
		if (lf == NULL) {
			m.v = len - pos > HTTP_RESPONSE_HEAD_MAX ? V_UNCHANGED :
			    V_INCOMPLETE;
			return m;
		}
		status = model_status(b + pos, (size_t)(lf - b) - pos);
		if (status < 100 || status == 101)
			return m;
		end = 0;
		for (i = (size_t)(lf - b); end == 0; ) {
			if (i + 1 < len && b[i + 1] == '\n')
				end = i + 2;
			else if (i + 2 < len && b[i + 1] == '\r' &&
			    b[i + 2] == '\n')
				end = i + 3;
			else if ((lf = find_lf(b, i + 1, len)) != NULL)
				i = (size_t)(lf - b);
			else
				break;
		}
		if (end == 0) {
			m.v = len - pos > HTTP_RESPONSE_HEAD_MAX ? V_UNCHANGED :
			    V_INCOMPLETE;
			return m;
		}
		if (end - pos > HTTP_RESPONSE_HEAD_MAX)
			return m;
		if (status >= 200) {
			if (len + NO_VIA_GROWTH > cap)
				return m;
			m.v = V_REWRITE;
			m.pos = pos;
			m.end = end;
			return m;
		}
		pos = end;
	}
}

/* The lines of a head, line ends included, the empty line left out. */
struct lines {
	size_t n;
	size_t *off;
	size_t *len;
};

static void
split_lines(const uint8_t *h, size_t hlen, struct lines *l)
{
	size_t p = 0, e;
	const uint8_t *lf;

	l->n = 0;
	l->off = malloc((hlen + 1) * sizeof(size_t));
	l->len = malloc((hlen + 1) * sizeof(size_t));
	if (l->off == NULL || l->len == NULL)
		abort();
	while (p < hlen) {
		lf = find_lf(h, p, hlen);
		if (lf == NULL)
			abort();        /* a head ends with a line end */
		e = (size_t)(lf - h) + 1;
		if (e - p == 1 || (e - p == 2 && h[p] == '\r'))
			break;          /* the empty line */
		l->off[l->n] = p;
		l->len[l->n++] = e - p;
		p = e;
	}
}

static void
free_lines(struct lines *l)
{
	free(l->off);
	free(l->len);
}

static bool
is_fold(const uint8_t *p)
{
	return p[0] == ' ' || p[0] == '\t';
}

/* The field name of a line (up to its colon), or 0 bytes. */
static size_t
name_of(const uint8_t *p, size_t n)
{
	const uint8_t *colon = memchr(p, ':', n);

	return colon == NULL ? 0 : (size_t)(colon - p);
}

static bool
name_is(const uint8_t *p, size_t n, const char *want)
{
	return n == strlen(want) && strncasecmp((const char *)p, want, n) == 0;
}

/* The rewritten head against the original. */
static void
check_rewrite(const uint8_t *in, size_t len, const uint8_t *out,
    size_t out_len, const struct model *m)
{
	size_t tail = len - m->end, oh_len, j, k;
	const uint8_t *ih = in + m->pos, *oh = out + m->pos;
	struct lines il, ol;
	size_t *match;

	/* Interim heads before, the body after: as they came. */
	if (out_len < m->pos + tail + CLOSE_LEN ||
	    memcmp(out, in, m->pos) != 0 ||
	    memcmp(out + out_len - tail, in + m->end, tail) != 0)
		abort();
	oh_len = out_len - tail - m->pos;
	if (memcmp(oh + oh_len - CLOSE_LEN, close_line, CLOSE_LEN) != 0)
		abort();
	split_lines(ih, m->end - m->pos, &il);
	split_lines(oh, oh_len - CLOSE_LEN, &ol);
	/* Every kept line whole and in order; the status line first. */
	match = malloc((ol.n + 1) * sizeof(size_t));
	if (match == NULL)
		abort();
	if (ol.n == 0 || il.n == 0 || ol.len[0] != il.len[0] ||
	    memcmp(oh, ih, il.len[0]) != 0)
		abort();
	match[0] = 0;
	for (j = 1, k = 1; j < ol.n; j++, k++) {
		while (k < il.n && (il.len[k] != ol.len[j] ||
		    memcmp(ih + il.off[k], oh + ol.off[j], ol.len[j]) != 0))
			k++;
		if (k == il.n)
			abort();
		match[j] = k;
	}
	for (j = 1; j < ol.n; j++) {
		const uint8_t *p = oh + ol.off[j];
		size_t n = name_of(p, ol.len[j]);

		/* A fold line is kept only with the line it continues. */
		if (is_fold(p)) {
			if (match[j] != match[j - 1] + 1)
				abort();
			continue;
		}
		if (name_is(p, n, "connection") ||
		    name_is(p, n, "keep-alive") ||
		    name_is(p, n, "proxy-connection"))
			abort();
	}
	/* A line that is no field is never dropped. */
	for (k = 1, j = 0; k < il.n; k++) {
		const uint8_t *p = ih + il.off[k];

		while (j < ol.n && match[j] < k)
			j++;
		if (!is_fold(p) && name_of(p, il.len[k]) == 0 &&
		    (j == ol.n || match[j] != k))
			abort();
	}
	free(match);
	free_lines(&il);
	free_lines(&ol);
}

/*
 * The final head of a rewrite's output holds exactly one Connection
 * field, "close", and no field named "close" (which that Connection would
 * name): only then does a second rewrite give the same bytes.
 */
static bool
settled(const uint8_t *out, const struct model *m)
{
	struct lines l;
	const uint8_t *h = out + m->pos, *p, *v;
	size_t n, vlen, conns = 0;
	bool ok = true;

	split_lines(h, m->end - m->pos, &l);
	for (size_t i = 1; i < l.n; i++) {
		p = h + l.off[i];
		if (is_fold(p))
			continue;
		n = name_of(p, l.len[i]);
		if (name_is(p, n, "close"))
			ok = false;
		if (!name_is(p, n, "connection"))
			continue;
		conns++;
		v = p + n + 1;
		vlen = l.len[i] - n - 1;
		while (vlen > 0 && (v[vlen - 1] == '\n' || v[vlen - 1] == '\r'))
			vlen--;
		while (vlen > 0 && (v[0] == ' ' || v[0] == '\t'))
			v++, vlen--;
		while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
			vlen--;
		if (!name_is(v, vlen, "close") || (i + 1 < l.n &&
		    is_fold(h + l.off[i + 1])))
			ok = false;
	}
	free_lines(&l);
	return ok && conns == 1;
}

/* One call on in[0..len) in buf, malloc'd with exactly cap bytes, checked
 * against the model; *out_len, *st are its result. */
static void
check_one(const uint8_t *in, size_t len, uint8_t *buf, size_t cap,
    size_t *out_len, enum http_response_status *st)
{
	struct model m = model(in, len, cap);

	memcpy(buf, in, len);
	*out_len = len;
	*st = http_response_rewrite(buf, out_len, cap);
	if (*st != HTTP_RESPONSE_DONE && *st != HTTP_RESPONSE_INCOMPLETE)
		abort();
	if (*out_len > cap || *out_len > len + HTTP_RESPONSE_GROWTH)
		abort();
	if ((*st == HTTP_RESPONSE_INCOMPLETE) != (m.v == V_INCOMPLETE))
		abort();
	if (m.v != V_REWRITE) {
		/* Left as it came. */
		if (*out_len != len || memcmp(buf, in, len) != 0)
			abort();
		return;
	}
	check_rewrite(in, len, buf, *out_len, &m);
}

static uint8_t *
alloc(size_t cap)
{
	uint8_t *buf = malloc(cap > 0 ? cap : 1);

	if (buf == NULL)
		abort();
	return buf;
}

/* Rewriting the output again: the same bytes, when they have settled. */
static void
check_idempotent(const uint8_t *out, size_t out_len, size_t cap)
{
	struct model m = model(out, out_len, cap);
	enum http_response_status st;
	size_t again_len;
	uint8_t *again;

	if (m.v == V_INCOMPLETE)
		abort();        /* DONE stays DONE */
	again = alloc(cap);
	check_one(out, out_len, again, cap, &again_len, &st);
	if (m.v == V_UNCHANGED || settled(out, &m)) {
		if (again_len != out_len || memcmp(again, out, out_len) != 0)
			abort();
	}
	free(again);
}

/* The stream, with the padding field inserted after its first line. */
static uint8_t *
build(const uint8_t *s, size_t slen, size_t pad, size_t *len)
{
	const uint8_t *lf = memchr(s, '\n', slen);
	size_t at = lf == NULL ? slen : (size_t)(lf - s) + 1;
	uint8_t *b;

	*len = slen + (pad > 0 ? pad + 9 : 0);
	b = malloc(*len > 0 ? *len : 1);
	if (b == NULL)
		abort();
	memcpy(b, s, at);
	if (pad > 0) {
		memcpy(b + at, "X-Pad: ", 7);
		memset(b + at + 7, 'p', pad);
		memcpy(b + at + 7 + pad, "\r\n", 2);
	}
	memcpy(b + *len - (slen - at), s + at, slen - at);
	return b;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum http_response_status st, pst;
	size_t len, cap, out_len, plen, k, step;
	uint8_t *in, *out, *pout;
	bool done = false;

	if (size < 2)
		return 0;
	in = build(data + 2, size - 2, (size_t)data[1] * 128, &len);
	cap = len + (data[0] < 0xc0 ? (size_t)data[0] % 48 :
	    (size_t)(data[0] - 0xc0) * 1024);

	out = alloc(cap);
	check_one(in, len, out, cap, &out_len, &st);
	if (st == HTTP_RESPONSE_DONE)
		check_idempotent(out, out_len, cap);

	/* Every prefix (or a sample of them, in order), as the relay would
	 * call with each read, under the same cap: INCOMPLETE until the
	 * first DONE, DONE after it; and stopping at any DONE, then passing
	 * the rest as it comes, gives what the whole stream gives, when the
	 * whole stream fits the cap. One buffer serves them all. */
	pout = alloc(cap);
	step = len <= ALL_PREFIXES ? 1 : (len - ALL_PREFIXES) / SAMPLES + 1;
	for (k = 0; k < len; k += k < ALL_PREFIXES ? 1 : step) {
		check_one(in, k, pout, cap, &plen, &pst);
		if (pst == HTTP_RESPONSE_DONE) {
			done = true;
			if (len + NO_VIA_GROWTH <= cap &&
			    (plen + (len - k) != out_len ||
			    memcmp(pout, out, plen) != 0 ||
			    memcmp(out + plen, in + k, len - k) != 0))
				abort();
		} else if (done) {
			abort();
		}
	}
	free(pout);
	if (done && st != HTTP_RESPONSE_DONE)
		abort();
	free(out);
	free(in);
	return 0;
}
