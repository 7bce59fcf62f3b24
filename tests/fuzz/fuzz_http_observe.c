/*
 * libFuzzer target: the passive HTTP/1.x observer (src/http_observe.c),
 * both directions interleaved as a relay would feed them, each piece in a
 * heap buffer of exactly its size so ASan sees any read past it.
 *
 * Input: byte 0 is the separator, byte 1 flags (bit 0 keep_query, bit 1
 * no http_observe_finish at the end); the rest is split at each
 * separator into pieces, whose first byte says where the others go (bit
 * 0: down, else up; bit 1: that direction's EOF after them; bit 2: the
 * bytes REPEAT times over, to reach the head limit and the pipelining
 * bounds cheaply).
 *
 * Every input is run twice, with the pieces whole and then a byte at a
 * time (at the same times): the returns and the exchanges reported must
 * be the same. Each exchange must be well-formed, the byte counts must
 * add up to no more than went each way, and nothing may be reported once
 * the watching has stopped.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "socks5d/http_observe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define KEPT_MAX        256
#define PIECES_MAX      4096
#define REPEAT          64

struct record {
	struct http_exchange x[KEPT_MAX];
	size_t n;
	bool stopped;           /* the watching had stopped before a report */
	int rc[PIECES_MAX];
	enum http_observe_state state;
	const char *error;
	uint64_t dropped;
};

static struct http_observe obs;
static struct record whole, bytes;

static void
check_string(const char *s, size_t size)
{
	if (memchr(s, '\0', size) == NULL)
		abort();
}

static void
record_cb(void *arg, const struct http_exchange *x)
{
	struct record *r = arg;

	if (r->stopped)
		abort();
	if (r->n < KEPT_MAX)
		r->x[r->n] = *x;
	r->n++;
}

static bool
is_tchar(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') ||
	    (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static void
check_exchange(const struct http_exchange *x, bool keep_query, double last)
{
	size_t n, k;

	check_string(x->method, sizeof(x->method));
	check_string(x->host, sizeof(x->host));
	check_string(x->path, sizeof(x->path));
	n = strlen(x->method);
	if (n == 0)
		abort();
	for (k = 0; k < n; k++)
		if (!is_tchar((uint8_t)x->method[k]))
			abort();
	n = strlen(x->path);
	for (k = 0; k < n; k++)
		if ((uint8_t)x->path[k] <= ' ' || (uint8_t)x->path[k] >= 0x7f)
			abort();
	if (n == 0 && strcmp(x->method, "CONNECT") != 0)
		abort();
	if (!keep_query && strchr(x->path, '?') != NULL)
		abort();
	if (x->path_truncated && n != sizeof(x->path) - 1)
		abort();
	n = strlen(x->host);
	for (k = 0; k < n; k++)
		if (((uint8_t)x->host[k] < ' ' && x->host[k] != '\t') ||
		    (uint8_t)x->host[k] == 0x7f)
			abort();
	if (x->status != 0 && (x->status < 100 || x->status > 999))
		abort();
	if (x->upgraded && x->status != 101 &&
	    (strcmp(x->method, "CONNECT") != 0 || x->status < 200 ||
	    x->status > 299))
		abort();
	if (x->status == 0 && x->bytes_down != 0)
		abort();
	if (x->bytes_up == 0 || x->started < 1 || x->ended < x->started ||
	    x->ended > last)
		abort();
}

static int
feed(bool down, const uint8_t *p, size_t n, double now)
{
	return down ? http_observe_down(&obs, p, n, now) :
	    http_observe_up(&obs, p, n, now);
}

/* One run over the pieces; byte_wise feeds each a byte at a time. */
static void
run(const uint8_t *data, size_t size, struct record *r, bool byte_wise)
{
	static uint8_t *one;
	const uint8_t *p = data + 2, *end = data + size, *sep;
	uint64_t went[2] = { 0, 0 }, up = 0, down_sum = 0;
	bool keep_query = data[1] & 1, was_watching, down;
	size_t piece = 0, n, k, reps, len;
	uint8_t *copy;
	double now = 0;
	int rc, prev = 0;

	if (one == NULL && (one = malloc(1)) == NULL)
		abort();
	memset(r, 0, sizeof(*r));
	http_observe_init(&obs, record_cb, r, keep_query);
	while (p < end && piece < PIECES_MAX) {
		sep = memchr(p, data[0], (size_t)(end - p));
		n = sep != NULL ? (size_t)(sep - p) : (size_t)(end - p);
		now = (double)(piece + 1);
		rc = 0;
		if (n > 0) {
			down = p[0] & 1;
			reps = p[0] & 4 ? REPEAT : 1;
			len = (n - 1) * reps;
			went[down] += len;
			was_watching = obs.state == HTTP_OBSERVE_WATCHING;
			if ((copy = malloc(len > 0 ? len : 1)) == NULL)
				abort();
			for (k = 0; k < reps; k++)
				memcpy(copy + k * (n - 1), p + 1, n - 1);
			if (byte_wise) {
				for (k = 0; k < len; k++) {
					one[0] = copy[k];
					rc = feed(down, one, 1, now);
				}
				if (len == 0)
					rc = feed(down, one, 0, now);
			} else
				rc = feed(down, copy, len, now);
			free(copy);
			if (rc < -1 || rc > 1 || (rc == -1 && down) ||
			    (rc == 0) != (obs.state == HTTP_OBSERVE_WATCHING))
				abort();
			/* Once stopped, stopped for good. */
			if (!was_watching && rc == 0)
				abort();
			if (prev != 0 && rc == 0)
				abort();
			if (p[0] & 2)
				http_observe_eof(&obs, !down, now);
			r->stopped = obs.state != HTTP_OBSERVE_WATCHING;
		}
		r->rc[piece++] = rc;
		if (rc != 0)
			prev = rc;
		p += n + (sep != NULL);
	}
	if (!(data[1] & 2)) {
		http_observe_finish(&obs, now + 1);
		if (obs.state == HTTP_OBSERVE_WATCHING)
			abort();
	}
	r->stopped = true;
	r->state = obs.state;
	r->error = obs.error;
	r->dropped = obs.dropped;
	if ((obs.state == HTTP_OBSERVE_FAILED) != (obs.error != NULL))
		abort();
	if (obs.error != NULL && strcmp(obs.error, "http-malformed") != 0 &&
	    strcmp(obs.error, "http-head-too-large") != 0 &&
	    strcmp(obs.error, "http-early-data") != 0)
		abort();
	for (k = 0; k < r->n && k < KEPT_MAX; k++) {
		check_exchange(&r->x[k], keep_query, now + 1);
		up += r->x[k].bytes_up;
		down_sum += r->x[k].bytes_down;
	}
	if (r->n <= KEPT_MAX && (up > went[0] || down_sum > went[1]))
		abort();
}

static bool
same_exchange(const struct http_exchange *a, const struct http_exchange *b)
{
	return strcmp(a->method, b->method) == 0 &&
	    strcmp(a->host, b->host) == 0 && strcmp(a->path, b->path) == 0 &&
	    a->path_truncated == b->path_truncated &&
	    a->upgraded == b->upgraded && a->status == b->status &&
	    a->bytes_up == b->bytes_up && a->bytes_down == b->bytes_down &&
	    a->started == b->started && a->ended == b->ended;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t k;

	if (size < 2)
		return 0;
	run(data, size, &whole, false);
	run(data, size, &bytes, true);
	if (whole.n != bytes.n || whole.state != bytes.state ||
	    whole.error != bytes.error || whole.dropped != bytes.dropped ||
	    memcmp(whole.rc, bytes.rc, sizeof(whole.rc)) != 0)
		abort();
	for (k = 0; k < whole.n && k < KEPT_MAX; k++)
		if (!same_exchange(&whole.x[k], &bytes.x[k]))
			abort();
	return 0;
}
