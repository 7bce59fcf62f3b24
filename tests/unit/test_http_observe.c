/*
 * Unit tests for the passive HTTP/1.x observer (src/http_observe.c): the
 * exchanges reported for each kind of framing, pipelining and keep-alive,
 * interim and upgrade responses, the limits and the errors. Every
 * scenario is also fed in 1, 2, 3 and 7 byte pieces, which must give the
 * same returns and the same exchanges.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "socks5d/http_observe.h"

#define LEN(a) (sizeof(a) / sizeof((a)[0]))
#define GOT_MAX 64

enum step_kind { UP, DOWN, EOF_UP, EOF_DOWN, FINISH };

/* One call (or, fed in pieces, several): want is what the last returns. */
struct step {
	enum step_kind kind;
	const char *text;
	int want;
};

struct run {
	struct http_exchange got[GOT_MAX];
	size_t n;
};

/* Big (about 31 KiB): not on cmocka's stack. */
static struct http_observe obs;
static struct run whole, pieces;

static void
record(void *arg, const struct http_exchange *x)
{
	struct run *r = arg;

	assert_true(r->n < GOT_MAX);
	r->got[r->n++] = *x;
}

/* Step k happens at now = k + 1, whatever the pieces. */
static void
run_steps(const struct step *steps, size_t nsteps, bool keep_query,
    size_t piece, struct run *r)
{
	size_t k, at, len, n;
	double now;
	int rc;

	memset(r, 0, sizeof(*r));
	http_observe_init(&obs, record, r, keep_query);
	for (k = 0; k < nsteps; k++) {
		now = (double)(k + 1);
		switch (steps[k].kind) {
		case UP:
		case DOWN:
			len = strlen(steps[k].text);
			rc = 0;
			at = 0;
			do {
				n = piece == 0 || len - at < piece ?
				    len - at : piece;
				rc = steps[k].kind == UP ?
				    http_observe_up(&obs,
				    (const uint8_t *)steps[k].text + at, n,
				    now) :
				    http_observe_down(&obs,
				    (const uint8_t *)steps[k].text + at, n,
				    now);
				at += n;
			} while (at < len);
			if (rc != steps[k].want)
				fail_msg("step %zu (piece %zu): returned %d, "
				    "want %d", k, piece, rc, steps[k].want);
			break;
		case EOF_UP:
		case EOF_DOWN:
			http_observe_eof(&obs, steps[k].kind == EOF_UP, now);
			break;
		case FINISH:
			http_observe_finish(&obs, now);
			break;
		}
	}
}

static void
assert_same(const struct http_exchange *a, const struct http_exchange *b)
{
	assert_string_equal(a->method, b->method);
	assert_string_equal(a->host, b->host);
	assert_string_equal(a->path, b->path);
	assert_int_equal(a->path_truncated, b->path_truncated);
	assert_int_equal(a->upgraded, b->upgraded);
	assert_int_equal(a->status, b->status);
	assert_int_equal(a->bytes_up, b->bytes_up);
	assert_int_equal(a->bytes_down, b->bytes_down);
	assert_true(a->started == b->started);
	assert_true(a->ended == b->ended);
}

/* The scenario whole, then in pieces: the same returns, the same
 * exchanges. The whole run's are left in whole for the test to check. */
static void
scenario_query(const struct step *steps, size_t nsteps, bool keep_query)
{
	static const size_t sizes[] = { 1, 2, 3, 7 };
	size_t s, k;

	for (s = 0; s < LEN(sizes); s++) {
		run_steps(steps, nsteps, keep_query, sizes[s], &pieces);
		run_steps(steps, nsteps, keep_query, 0, &whole);
		assert_int_equal(pieces.n, whole.n);
		for (k = 0; k < whole.n; k++)
			assert_same(&pieces.got[k], &whole.got[k]);
	}
}

static void
scenario(const struct step *steps, size_t nsteps)
{
	scenario_query(steps, nsteps, false);
}

static void
expect(size_t k, const char *method, const char *host, const char *path,
    int status, size_t up, size_t down)
{
	const struct http_exchange *x;

	if (k >= whole.n)
		fail_msg("exchange %zu of %zu", k, whole.n);
	x = &whole.got[k];
	assert_string_equal(x->method, method);
	assert_string_equal(x->host, host);
	assert_string_equal(x->path, path);
	assert_int_equal(x->status, status);
	assert_int_equal(x->bytes_up, up);
	assert_int_equal(x->bytes_down, down);
	assert_false(x->path_truncated);
	assert_false(x->upgraded);
}

static void
expect_times(size_t k, double started, double ended)
{
	assert_true(k < whole.n);
	assert_true(whole.got[k].started == started);
	assert_true(whole.got[k].ended == ended);
}

#define GET_A   "GET /a HTTP/1.1\r\nHost: example.org\r\n\r\n"
#define OK_5    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
#define OK_0    "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
#define R2      "GET /two HTTP/1.1\r\nHost: example.org\r\n\r\n"
#define S2      "HTTP/1.1 301 Moved\r\nLocation: /\r\n" \
	"Content-Length: 0\r\n\r\n"
#define S101    "HTTP/1.1 101 Switching Protocols\r\n" \
	"Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n"

static void
test_get(void **state)
{
	static const struct step steps[] = {
		{ UP, GET_A, 0 },
		{ DOWN, OK_5, 0 },
	};

	(void)state;
	scenario(steps, LEN(steps));
	assert_int_equal(whole.n, 1);
	expect(0, "GET", "example.org", "/a", 200, strlen(GET_A),
	    strlen(OK_5));
	expect_times(0, 1, 2);
	assert_int_equal(obs.state, HTTP_OBSERVE_WATCHING);
	http_observe_finish(&obs, 9);
	assert_int_equal(whole.n, 1);
	assert_int_equal(obs.state, HTTP_OBSERVE_FINISHED);
	assert_int_equal(http_observe_up(&obs, (const uint8_t *)GET_A,
	    strlen(GET_A), 10), 1);
	assert_int_equal(whole.n, 1);
}

/* Every byte its own call, and its own time: started is the request
 * line's first byte's, ended the response's last byte's. */
static void
test_one_byte(void **state)
{
	static const char req[] = GET_A, resp[] = OK_5;
	struct run bytes;
	size_t i;

	(void)state;
	memset(&bytes, 0, sizeof(bytes));
	http_observe_init(&obs, record, &bytes, false);
	for (i = 0; i < strlen(req); i++)
		assert_int_equal(http_observe_up(&obs,
		    (const uint8_t *)req + i, 1, 100 + (double)i), 0);
	for (i = 0; i < strlen(resp); i++)
		assert_int_equal(http_observe_down(&obs,
		    (const uint8_t *)resp + i, 1, 200 + (double)i), 0);
	assert_int_equal(bytes.n, 1);
	assert_true(bytes.got[0].started == 100);
	assert_true(bytes.got[0].ended == 200 + (double)strlen(resp) - 1);

	/* The same but for the times as the two calls whole. */
	run_steps((const struct step[]){ { UP, req, 0 }, { DOWN, resp, 0 } },
	    2, false, 0, &whole);
	assert_int_equal(whole.n, 1);
	bytes.got[0].started = whole.got[0].started;
	bytes.got[0].ended = whole.got[0].ended;
	assert_same(&bytes.got[0], &whole.got[0]);
}

static void
test_keep_alive(void **state)
{
	static const char r2[] = "POST /b?x=1 HTTP/1.1\r\nHost: example.org\r\n"
	    "Content-Length: 3\r\n\r\nabc";
	static const char r3[] = "DELETE /c HTTP/1.1\r\nhost:example.org \r\n"
	    "\r\n";
	static const char s3[] = "HTTP/1.1 404 Not Found\r\n"
	    "content-length: 2\r\n\r\nno";
	static const struct step steps[] = {
		{ UP, GET_A, 0 },
		{ DOWN, OK_5, 0 },
		{ UP, r2, 0 },
		{ DOWN, OK_0, 0 },
		{ UP, r3, 0 },
		{ DOWN, s3, 0 },
	};

	(void)state;
	scenario(steps, LEN(steps));
	assert_int_equal(whole.n, 3);
	expect(0, "GET", "example.org", "/a", 200, strlen(GET_A),
	    strlen(OK_5));
	expect_times(0, 1, 2);
	expect(1, "POST", "example.org", "/b", 200, strlen(r2), strlen(OK_0));
	expect_times(1, 3, 4);
	expect(2, "DELETE", "example.org", "/c", 404, strlen(r3),
	    strlen(s3));
	expect_times(2, 5, 6);
}

static void
test_pipelined(void **state)
{
	static const char r2[] = R2, s2[] = S2;
	static const struct step steps[] = {
		{ UP, GET_A R2, 0 },
		{ DOWN, OK_5, 0 },
		{ DOWN, s2, 0 },
	};
	static const struct step together[] = {
		{ UP, GET_A, 0 },
		{ UP, r2, 0 },
		{ DOWN, OK_5 S2, 0 },
	};

	(void)state;
	scenario(steps, LEN(steps));
	assert_int_equal(whole.n, 2);
	expect(0, "GET", "example.org", "/a", 200, strlen(GET_A),
	    strlen(OK_5));
	expect_times(0, 1, 2);
	expect(1, "GET", "example.org", "/two", 301, strlen(r2), strlen(s2));
	expect_times(1, 1, 3);

	scenario(together, LEN(together));
	assert_int_equal(whole.n, 2);
	expect(0, "GET", "example.org", "/a", 200, strlen(GET_A),
	    strlen(OK_5));
	expect_times(0, 1, 3);
	expect(1, "GET", "example.org", "/two", 301, strlen(r2), strlen(s2));
	expect_times(1, 2, 3);
}

/* Past HTTP_OBSERVE_QUEUE_MAX outstanding requests, one is dropped, and
 * its response, a HEAD's without a body, still keeps the order. */
static void
test_pipeline_overflow(void **state)
{
	static char reqs[4096], resps[4096];
	static const char head[] = "HEAD /17 HTTP/1.1\r\nHost: h\r\n\r\n";
	static const char tail[] = "GET /18 HTTP/1.1\r\nHost: h\r\n\r\n";
	static const char head_resp[] = "HTTP/1.1 200 OK\r\n"
	    "Content-Length: 99\r\n\r\n";
	static const char last[] = "HTTP/1.1 202 Accepted\r\n"
	    "Content-Length: 1\r\n\r\nx";
	const struct step after[] = {
		{ UP, reqs, 0 },
		{ DOWN, OK_0, 0 },
		{ DOWN, resps, 0 },
		{ DOWN, head_resp, 0 },
		{ UP, tail, 0 },
		{ DOWN, last, 0 },
	};
	/* Behind a dropped request not yet answered, /18 is dropped too,
	 * though the queue has room again: it could not be queued in its
	 * place. */
	const struct step behind[] = {
		{ UP, reqs, 0 },
		{ DOWN, OK_0, 0 },
		{ UP, tail, 0 },
		{ DOWN, resps, 0 },
		{ DOWN, head_resp, 0 },
		{ DOWN, last, 0 },
		{ UP, GET_A, 0 },
		{ DOWN, OK_0, 0 },
	};
	size_t k, r = 0, s = 0;

	(void)state;
	for (k = 0; k < HTTP_OBSERVE_QUEUE_MAX; k++) {
		r += (size_t)snprintf(reqs + r, sizeof(reqs) - r,
		    "GET /%zu HTTP/1.1\r\nHost: h\r\n\r\n", k + 1);
		if (k > 0)      /* the first is a step of its own */
			s += (size_t)snprintf(resps + s, sizeof(resps) - s,
			    "%s", OK_0);
	}
	snprintf(reqs + r, sizeof(reqs) - r, "%s", head);
	scenario(after, LEN(after));
	assert_int_equal(obs.dropped, 1);
	assert_int_equal(whole.n, HTTP_OBSERVE_QUEUE_MAX + 1);
	for (k = 0; k < HTTP_OBSERVE_QUEUE_MAX; k++)
		assert_int_equal(whole.got[k].status, 200);
	expect(HTTP_OBSERVE_QUEUE_MAX, "GET", "h", "/18", 202, strlen(tail),
	    strlen(last));

	scenario(behind, LEN(behind));
	assert_int_equal(obs.dropped, 2);
	assert_int_equal(whole.n, HTTP_OBSERVE_QUEUE_MAX + 1);
	expect(HTTP_OBSERVE_QUEUE_MAX, "GET", "example.org", "/a", 200,
	    strlen(GET_A), strlen(OK_0));
}

static void
test_chunked(void **state)
{
	static const char req[] = "POST /up HTTP/1.1\r\nHost: example.org\r\n"
	    "Transfer-Encoding: gzip, chunked\r\n\r\n"
	    "5\r\nhello\r\n"
	    "0a;name=value;flag\r\n0123456789\r\n"
	    "0\r\nX-Checksum: 1\r\n\r\n";
	static const char resp[] = "HTTP/1.1 200 OK\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n"
	    "3 ; ext=\"quoted\"\r\nabc\r\n"
	    "1\nd\n"
	    "0;last\r\nTrailer-One: a\r\nTrailer-Two: b\r\n\r\n";
	static const struct step steps[] = {
		{ UP, req, 0 },
		{ DOWN, resp, 0 },
		{ UP, GET_A, 0 },
		{ DOWN, OK_5, 0 },
	};
	/* Chunked wins over Content-Length (RFC 9112 6.3). */
	static const char both[] = "POST / HTTP/1.1\r\nContent-Length: 100\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n";
	static const struct step wins[] = {
		{ UP, both, 0 },
		{ DOWN, OK_0, 0 },
	};

	(void)state;
	scenario(steps, LEN(steps));
	assert_int_equal(whole.n, 2);
	expect(0, "POST", "example.org", "/up", 200, strlen(req),
	    strlen(resp));
	expect(1, "GET", "example.org", "/a", 200, strlen(GET_A),
	    strlen(OK_5));

	scenario(wins, LEN(wins));
	assert_int_equal(whole.n, 1);
	expect(0, "POST", "", "/", 200, strlen(both), strlen(OK_0));
}

static void
test_head(void **state)
{
	static const char req[] = "HEAD /big HTTP/1.1\r\nHost: example.org\r\n"
	    "\r\n";
	static const char resp[] = "HTTP/1.1 200 OK\r\n"
	    "Content-Length: 123456\r\nTransfer-Encoding: chunked\r\n\r\n";
	static const struct step steps[] = {
		{ UP, req, 0 },
		{ DOWN, resp, 0 },
		{ UP, GET_A, 0 },
		{ DOWN, OK_5, 0 },
	};

	(void)state;
	scenario(steps, LEN(steps));
	assert_int_equal(whole.n, 2);
	expect(0, "HEAD", "example.org", "/big", 200, strlen(req),
	    strlen(resp));
	expect(1, "GET", "example.org", "/a", 200, strlen(GET_A),
	    strlen(OK_5));
}

static void
test_no_body_statuses(void **state)
{
	static const char s204[] = "HTTP/1.1 204 No Content\r\n"
	    "Content-Length: 10\r\n\r\n";
	static const char s304[] = "HTTP/1.1 304 Not Modified\r\n"
	    "Content-Length: 10\r\n\r\n";
	static const struct step steps[] = {
		{ UP, GET_A, 0 },
		{ DOWN, s204, 0 },
		{ UP, GET_A, 0 },
		{ DOWN, s304, 0 },
		{ UP, GET_A, 0 },
		{ DOWN, OK_5, 0 },
	};

	(void)state;
	scenario(steps, LEN(steps));
	assert_int_equal(whole.n, 3);
	expect(0, "GET", "example.org", "/a", 204, strlen(GET_A),
	    strlen(s204));
	expect(1, "GET", "example.org", "/a", 304, strlen(GET_A),
	    strlen(s304));
	expect(2, "GET", "example.org", "/a", 200, strlen(GET_A),
	    strlen(OK_5));
}

static void
test_continue(void **state)
{
	static const char head[] = "PUT /file HTTP/1.1\r\nHost: example.org\r\n"
	    "Expect: 100-continue\r\nContent-Length: 4\r\n\r\n";
	static const char s100[] = "HTTP/1.1 100 Continue\r\n\r\n";
	static const char s201[] = "HTTP/1.1 201 Created\r\n"
	    "Content-Length: 0\r\n\r\n";
	static const struct step steps[] = {
		{ UP, head, 0 },
		{ DOWN, s100, 0 },
		{ UP, "data", 0 },
		{ DOWN, s201, 0 },
	};
	/* A final answer before the body: reported once the body is in. */
	static const char s417[] = "HTTP/1.1 417 Expectation Failed\r\n"
	    "Content-Length: 0\r\n\r\n";
	static const struct step early[] = {
		{ UP, head, 0 },
		{ DOWN, s417, 0 },
		{ UP, "da", 0 },
		{ UP, "ta", 0 },
	};

	(void)state;
	scenario(steps, LEN(steps));
	assert_int_equal(whole.n, 1);
	expect(0, "PUT", "example.org", "/file", 201, strlen(head) + 4,
	    strlen(s100) + strlen(s201));
	expect_times(0, 1, 4);

	run_steps(early, 3, false, 0, &whole);
	assert_int_equal(whole.n, 0);
	scenario(early, LEN(early));
	assert_int_equal(whole.n, 1);
	expect(0, "PUT", "example.org", "/file", 417, strlen(head) + 4,
	    strlen(s417));
	expect_times(0, 1, 2);
}

static void
test_early_hints(void **state)
{
	static const char s103[] = "HTTP/1.1 103 Early Hints\r\n"
	    "Link: </style.css>; rel=preload\r\nContent-Length: 7\r\n\r\n";
	static const struct step steps[] = {
		{ UP, GET_A, 0 },
		{ DOWN, s103, 0 },
		{ DOWN, "\r\n", 0 },    /* an empty line between: skipped */
		{ DOWN, OK_5, 0 },
	};

	(void)state;
	scenario(steps, LEN(steps));
	assert_int_equal(whole.n, 1);
	expect(0, "GET", "example.org", "/a", 200, strlen(GET_A),
	    strlen(s103) + 2 + strlen(OK_5));
	expect_times(0, 1, 4);
}

static void
test_upgrade(void **state)
{
	static const char req[] = "GET /chat HTTP/1.1\r\nHost: example.org\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
	static const char s101[] = S101;
	static const struct step steps[] = {
		{ UP, req, 0 },
		{ DOWN, S101 "\x81\x05hello", 1 },
		{ UP, "\x81\x85garbage that is no request\r\n\r\n", 1 },
		{ DOWN, "HTTP/1.1 200 OK\r\n\r\n", 1 },
		{ FINISH, NULL, 0 },
	};
	static const char conn[] = "CONNECT inner.example:443 HTTP/1.1\r\n"
	    "Host: other.example:443\r\n\r\n";
	static const struct step tunnel[] = {
		{ UP, conn, 0 },
		{ DOWN, "HTTP/1.1 200 Connection established\r\n\r\n\x16\x03",
		    1 },
		{ UP, "\x16\x03\x01", 1 },
	};

	(void)state;
	scenario(steps, LEN(steps));
	assert_int_equal(whole.n, 1);
	assert_int_equal(obs.state, HTTP_OBSERVE_UPGRADED);
	assert_true(whole.got[0].upgraded);
	assert_int_equal(whole.got[0].status, 101);
	assert_int_equal(whole.got[0].bytes_up, strlen(req));
	assert_int_equal(whole.got[0].bytes_down, strlen(s101));
	assert_string_equal(whole.got[0].path, "/chat");

	scenario(tunnel, LEN(tunnel));
	assert_int_equal(whole.n, 1);
	assert_true(whole.got[0].upgraded);
	assert_int_equal(whole.got[0].status, 200);
	assert_string_equal(whole.got[0].method, "CONNECT");
	assert_string_equal(whole.got[0].host, "inner.example:443");
	assert_string_equal(whole.got[0].path, "");
}

/* What the client sends after a request that may upgrade is read only
 * once the answer says it is still HTTP. */
static void
test_upgrade_hold(void **state)
{
	static const char ws[] = "GET /ws HTTP/1.1\r\nHost: example.org\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
#define S426    "HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n"
	static const char s426[] = S426;
	static const struct step early[] = {
		{ UP, ws, 0 },
		{ UP, "\x81\x85 early frame", 0 },
		{ DOWN, S101, 1 },
	};
	static const struct step refused[] = {
		{ UP, ws, 0 },
		{ UP, GET_A, 0 },
		{ DOWN, s426, 0 },
		{ DOWN, OK_5, 0 },
	};
	static const struct step garbage[] = {
		{ UP, ws, 0 },
		{ UP, "\x81\x85 early frame\r\n", 0 },
		{ DOWN, s426, 1 },
		{ UP, GET_A, -1 },
	};
	static const struct step connect[] = {
		{ UP, "CONNECT inner:443 HTTP/1.1\r\n\r\n", 0 },
		{ UP, "\x16\x03\x01\x02\x00", 0 },
		{ DOWN, "HTTP/1.1 200 OK\r\n\r\n", 1 },
	};
	static const struct step closed[] = {
		{ UP, ws, 0 },
		{ UP, GET_A, 0 },
		{ EOF_UP, NULL, 0 },
		{ DOWN, S426 OK_5, 0 },
		{ UP, GET_A, 0 },
		{ FINISH, NULL, 0 },
	};
	static const struct step unanswered[] = {
		{ UP, ws, 0 },
		{ UP, GET_A, 0 },
		{ FINISH, NULL, 0 },
	};
	static char flood[HTTP_OBSERVE_HEAD_MAX + 2];
	const struct step flooded[] = {
		{ UP, ws, 0 },
		{ UP, flood, -1 },
	};

	(void)state;
	scenario(early, LEN(early));
	assert_int_equal(obs.state, HTTP_OBSERVE_UPGRADED);
	assert_int_equal(whole.n, 1);
	assert_true(whole.got[0].upgraded);
	assert_int_equal(whole.got[0].bytes_up, strlen(ws));

	scenario(refused, LEN(refused));
	assert_int_equal(whole.n, 2);
	expect(0, "GET", "example.org", "/ws", 426, strlen(ws), strlen(s426));
	expect(1, "GET", "example.org", "/a", 200, strlen(GET_A),
	    strlen(OK_5));
	expect_times(1, 2, 4);

	scenario(garbage, LEN(garbage));
	assert_int_equal(obs.state, HTTP_OBSERVE_FAILED);
	assert_string_equal(obs.error, "http-malformed");
	assert_int_equal(whole.n, 1);
	assert_int_equal(whole.got[0].status, 426);

	scenario(connect, LEN(connect));
	assert_int_equal(obs.state, HTTP_OBSERVE_UPGRADED);
	assert_int_equal(whole.n, 1);
	assert_true(whole.got[0].upgraded);
	assert_string_equal(whole.got[0].host, "inner:443");

	scenario(closed, LEN(closed));
	assert_int_equal(whole.n, 2);
	expect(1, "GET", "example.org", "/a", 200, strlen(GET_A),
	    strlen(OK_5));

	scenario(unanswered, LEN(unanswered));
	assert_int_equal(whole.n, 2);
	expect(0, "GET", "example.org", "/ws", 0, strlen(ws), 0);
	expect(1, "GET", "example.org", "/a", 0, strlen(GET_A), 0);
	expect_times(1, 2, 3);

	memset(flood, 'x', sizeof(flood) - 1);
	scenario(flooded, LEN(flooded));
	assert_int_equal(obs.state, HTTP_OBSERVE_FAILED);
	assert_string_equal(obs.error, "http-early-data");
	assert_int_equal(whole.n, 1);
}

static void
test_until_eof(void **state)
{
	static const char resp[] = "HTTP/1.0 200 OK\r\nContent-Type: text/plain"
	    "\r\n\r\nthe body goes on";
	static const struct step steps[] = {
		{ UP, GET_A, 0 },
		{ DOWN, resp, 0 },
		{ DOWN, " until the close", 0 },
		{ EOF_DOWN, NULL, 0 },
	};
	static const struct step at_finish[] = {
		{ UP, GET_A, 0 },
		{ DOWN, resp, 0 },
		{ FINISH, NULL, 0 },
	};
	/* A coding other than chunked: the close ends it too. */
	static const char gzip[] = "HTTP/1.1 200 OK\r\n"
	    "Transfer-Encoding: gzip\r\nContent-Length: 2\r\n\r\nabcdef";
	static const struct step coded[] = {
		{ UP, GET_A, 0 },
		{ DOWN, gzip, 0 },
		{ EOF_DOWN, NULL, 0 },
		{ FINISH, NULL, 0 },
	};

	(void)state;
	scenario(steps, LEN(steps));
	assert_int_equal(whole.n, 1);
	expect(0, "GET", "example.org", "/a", 200, strlen(GET_A),
	    strlen(resp) + 16);
	expect_times(0, 1, 3);

	run_steps(at_finish, 2, false, 0, &whole);
	assert_int_equal(whole.n, 0);
	scenario(at_finish, LEN(at_finish));
	assert_int_equal(whole.n, 1);
	expect(0, "GET", "example.org", "/a", 200, strlen(GET_A),
	    strlen(resp));
	expect_times(0, 1, 2);

	scenario(coded, LEN(coded));
	assert_int_equal(whole.n, 1);
	expect(0, "GET", "example.org", "/a", 200, strlen(GET_A),
	    strlen(gzip));
}

static void
test_query(void **state)
{
	static const char req[] = "GET /search?q=secret&x=%20 HTTP/1.1\r\n"
	    "Host: example.org\r\n\r\n";
	static const struct step steps[] = {
		{ UP, req, 0 },
		{ DOWN, OK_0, 0 },
	};

	(void)state;
	scenario(steps, LEN(steps));
	assert_int_equal(whole.n, 1);
	assert_string_equal(whole.got[0].path, "/search");
	scenario_query(steps, LEN(steps), true);
	assert_int_equal(whole.n, 1);
	assert_string_equal(whole.got[0].path, "/search?q=secret&x=%20");
}

static void
check_target(const char *target, bool keep_query, const char *host,
    const char *path)
{
	char req[1024];
	const struct step steps[] = {
		{ UP, req, 0 },
		{ DOWN, OK_0, 0 },
		{ FINISH, NULL, 0 },
	};

	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: ignored.example"
	    "\r\n\r\n", target);
	scenario_query(steps, LEN(steps), keep_query);
	assert_int_equal(whole.n, 1);
	assert_string_equal(whole.got[0].host, host);
	assert_string_equal(whole.got[0].path, path);
}

static void
test_absolute_form(void **state)
{
	(void)state;
	check_target("http://example.net/p/q?x=1", false, "example.net",
	    "/p/q");
	check_target("http://example.net:8080/p?x=1", true,
	    "example.net:8080", "/p?x=1");
	check_target("HTTPS://Example.NET", false, "Example.NET", "/");
	check_target("http://user:pw@example.net?x", true, "example.net",
	    "/?x");
	check_target("http://[2001:db8::1]:8443/v6", false,
	    "[2001:db8::1]:8443", "/v6");
	check_target("ws://example.net/socket", false, "example.net",
	    "/socket");
	check_target("*", false, "ignored.example", "*");
	check_target("/http://not.absolute/", false, "ignored.example",
	    "/http://not.absolute/");
}

static void
test_hosts(void **state)
{
	static const char two[] = "GET / HTTP/1.1\r\nHost: a.example\r\n"
	    "Host: b.example\r\n\r\n";
	static const char absolute[] = "GET http://c.example/ HTTP/1.1\r\n"
	    "Host: a.example\r\nHost: b.example\r\n\r\n";
	static const char port[] = "GET / HTTP/1.1\r\nHOST:   example.org:8443 "
	    "\r\n\r\n";
	const struct step steps[] = {
		{ UP, two, 0 },
		{ DOWN, OK_0, 0 },
		{ UP, absolute, 0 },
		{ DOWN, OK_0, 0 },
		{ UP, port, 0 },
		{ DOWN, OK_0, 0 },
		{ UP, "GET / HTTP/1.0\r\n\r\n", 0 },
		{ DOWN, OK_0, 0 },
	};

	(void)state;
	scenario(steps, LEN(steps));
	assert_int_equal(whole.n, 4);
	assert_string_equal(whole.got[0].host, "");
	assert_string_equal(whole.got[1].host, "");
	assert_string_equal(whole.got[2].host, "example.org:8443");
	assert_string_equal(whole.got[3].host, "");
}

static void
test_long_values(void **state)
{
	static char req[2048];
	char want[600];
	const struct step steps[] = {
		{ UP, req, 0 },
		{ DOWN, OK_0, 0 },
	};

	(void)state;
	memset(want, 'p', sizeof(want));
	want[0] = '/';
	snprintf(req, sizeof(req), "VERY-LONG-METHOD-NAME %.*s?q HTTP/1.1\r\n"
	    "Host: %.*s\r\n\r\n", 600, want, 300, want + 1);
	scenario(steps, LEN(steps));
	assert_int_equal(whole.n, 1);
	assert_string_equal(whole.got[0].method, "VERY-LONG-METHO");
	assert_int_equal(strlen(whole.got[0].host), 255);
	assert_int_equal(strlen(whole.got[0].path), 511);
	assert_memory_equal(whole.got[0].path, want, 511);
	assert_true(whole.got[0].path_truncated);

	/* Exactly fits, once the query is off. */
	snprintf(req, sizeof(req), "GET %.*s?%.*s HTTP/1.1\r\n\r\n", 511, want,
	    500, want + 1);
	scenario(steps, LEN(steps));
	assert_int_equal(strlen(whole.got[0].path), 511);
	assert_false(whole.got[0].path_truncated);
}

/* A head of HTTP_OBSERVE_HEAD_MAX + extra bytes, empty line included. */
static void
make_head(char *buf, size_t size, const char *first, size_t extra)
{
	size_t n, total = HTTP_OBSERVE_HEAD_MAX + extra;

	assert_true(total < size);
	n = (size_t)snprintf(buf, size, "%sX-Pad: ", first);
	memset(buf + n, 'x', total - n - 4);
	memcpy(buf + total - 4, "\r\n\r\n", 5);
	assert_int_equal(strlen(buf), total);
}

static void
test_head_too_large(void **state)
{
	static char big[HTTP_OBSERVE_HEAD_MAX + 64], bigger[sizeof(big)];
	static char resp[sizeof(big)], more[sizeof(big)];
	const struct step fits[] = {
		{ UP, big, 0 },
		{ DOWN, resp, 0 },
	};
	const struct step over[] = {
		{ UP, GET_A, 0 },
		{ DOWN, OK_5, 0 },
		{ UP, bigger, -1 },
		{ DOWN, OK_0, 1 },
		{ UP, GET_A, -1 },
	};
	const struct step down_over[] = {
		{ UP, GET_A, 0 },
		{ DOWN, more, 1 },
		{ UP, GET_A, 1 },
	};

	(void)state;
	make_head(big, sizeof(big), "GET / HTTP/1.1\r\n", 0);
	make_head(resp, sizeof(resp), "HTTP/1.1 204 No Content\r\n", 0);
	scenario(fits, LEN(fits));
	assert_int_equal(whole.n, 1);
	assert_int_equal(whole.got[0].status, 204);
	assert_int_equal(whole.got[0].bytes_up, HTTP_OBSERVE_HEAD_MAX);
	assert_int_equal(whole.got[0].bytes_down, HTTP_OBSERVE_HEAD_MAX);

	/* One byte more. */
	make_head(bigger, sizeof(bigger), "GGETS / HTTP/1.1\r\n", 1);
	scenario(over, LEN(over));
	assert_string_equal(obs.error, "http-head-too-large");
	assert_int_equal(obs.state, HTTP_OBSERVE_FAILED);
	/* The exchange before, and the one cut short with what it had
	 * (its request line was in). */
	assert_int_equal(whole.n, 2);
	expect(0, "GET", "example.org", "/a", 200, strlen(GET_A),
	    strlen(OK_5));
	assert_string_equal(whole.got[1].method, "GGETS");
	assert_int_equal(whole.got[1].status, 0);
	assert_int_equal(whole.got[1].bytes_up, HTTP_OBSERVE_HEAD_MAX);
	expect_times(1, 3, 3);

	make_head(more, sizeof(more), "HTTP/1.1 200 OK\r\nX: y\r\n", 1);
	scenario(down_over, LEN(down_over));
	assert_int_equal(obs.state, HTTP_OBSERVE_GAVE_UP);
	assert_null(obs.error);
	assert_int_equal(whole.n, 1);
	assert_int_equal(whole.got[0].status, 200);
	assert_int_equal(whole.got[0].bytes_down, HTTP_OBSERVE_HEAD_MAX);
}

static void
expect_malformed(const char *req)
{
	const struct step steps[] = {
		{ UP, req, -1 },
		{ DOWN, OK_0, 1 },
	};

	scenario(steps, LEN(steps));
	assert_int_equal(obs.state, HTTP_OBSERVE_FAILED);
	if (obs.error == NULL || strcmp(obs.error, "http-malformed") != 0)
		fail_msg("\"%s\": error %s", req,
		    obs.error != NULL ? obs.error : "(none)");
}

static void
test_malformed(void **state)
{
	static const char *const bad[] = {
		/* Request lines. */
		"GET /\r\n\r\n",
		"GET  / HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1 \r\n\r\n",
		"GET / HTTP/2.0\r\n\r\n",
		"GET /a\tb HTTP/1.1\r\n\r\n",
		"GET /\r HTTP/1.1\r\n\r\n",
		"G(T / HTTP/1.1\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"GET ?q HTTP/1.1\r\n\r\n",
		"GET example.org:443 HTTP/1.1\r\n\r\n",
		"GET 1http://example.org/ HTTP/1.1\r\n\r\n",
		/* Fields. */
		"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n",
		"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
		"GET / HTTP/1.1\r\nno colon\r\n\r\n",
		/* Framing. */
		"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n"
		    "\r\n",
		"POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n",
		"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
		"POST / HTTP/1.1\r\nContent-Length:\r\n\r\n",
		"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n"
		    "\r\n",
		"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
		    "Transfer-Encoding: chunked\r\n\r\n",
		/* Chunks. */
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n",
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n;a\r\n",
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5 x\r\n",
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		    "1\r\nab\r\n",
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		    "10000000000000000\r\n",
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		    "0\r\nbad trailer\r\n\r\n",
	};
	static const char same[] = "POST / HTTP/1.1\r\nContent-Length: 2\r\n"
	    "Content-Length: 2, 2\r\n\r\nok";
	const struct step fine[] = {
		{ UP, same, 0 },
		{ DOWN, OK_0, 0 },
	};

	(void)state;
	for (size_t k = 0; k < LEN(bad); k++)
		expect_malformed(bad[k]);

	scenario(fine, LEN(fine));
	assert_int_equal(whole.n, 1);
	assert_int_equal(whole.got[0].bytes_up, strlen(same));
}

/* GET_A twice, OK_5, then a response to give up on: the first exchange
 * was complete, the second is reported as it stands. */
static void
expect_gave_up(const struct step *steps)
{
	scenario(steps, 4);
	assert_int_equal(obs.state, HTTP_OBSERVE_GAVE_UP);
	assert_null(obs.error);
	assert_int_equal(whole.n, 2);
	assert_int_equal(whole.got[0].status, 200);
	assert_int_equal(whole.got[0].bytes_down, strlen(OK_5));
	assert_int_equal(whole.got[1].bytes_up, strlen(GET_A));
}

/* The server's malformed bytes stop the watching, and fail nothing:
 * what was complete is reported. */
static void
test_response_malformed(void **state)
{
	static const char *const bad[] = {
		"HTTP/1.1 2000 OK\r\n\r\n",
		"HTTP/1.1 099 Low\r\n\r\n",
		"ICY 200 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2"
		    "\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n 2\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nz\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		    "1\r\nxy",
		"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
	};
	/* And these are taken. */
	static const char lenient[] = "HTTP/1.1 200\r\nServer : x\r\n"
	    "X-Folded: a\r\n b\r\n\r\n";
	static char resp[4096];
	struct step steps[] = {
		{ UP, GET_A GET_A, 0 },
		{ DOWN, OK_5, 0 },
		{ DOWN, resp, 1 },
		{ UP, GET_A, 1 },
	};

	(void)state;
	for (size_t k = 0; k < LEN(bad); k++) {
		snprintf(resp, sizeof(resp), "%s", bad[k]);
		expect_gave_up(steps);
	}
	/* A framing field too long to be kept whole is not guessed at. */
	snprintf(resp, sizeof(resp), "HTTP/1.1 200 OK\r\nContent-Length:%*s"
	    "\r\n\r\n", HTTP_OBSERVE_DOWN_KEEP, "5");
	expect_gave_up(steps);

	snprintf(resp, sizeof(resp), "%s", lenient);
	steps[2].want = 0;
	steps[3].want = 0;
	scenario(steps, 3);
	assert_int_equal(whole.n, 1);
	assert_int_equal(obs.state, HTTP_OBSERVE_WATCHING);
	http_observe_finish(&obs, 10);
	assert_int_equal(whole.n, 2);
	assert_int_equal(whole.got[1].status, 200);
	assert_int_equal(whole.got[1].bytes_down, strlen(lenient));
	assert_true(whole.got[1].ended == 3);

	/* Any other line past what is kept is fine, a name included. */
	memset(resp, 'N', HTTP_OBSERVE_DOWN_KEEP + 100);
	snprintf(resp + HTTP_OBSERVE_DOWN_KEEP + 100,
	    sizeof(resp) - HTTP_OBSERVE_DOWN_KEEP - 100, ": v\r\n"
	    "X-Long: %*s\r\nContent-Length: 0\r\n\r\n",
	    HTTP_OBSERVE_DOWN_KEEP, "v");
	memcpy(resp, "HTTP/1.1 200 OK\r\n", 17);
	scenario(steps, 3);
	assert_int_equal(obs.state, HTTP_OBSERVE_WATCHING);
	assert_int_equal(whole.n, 2);
	assert_int_equal(whole.got[1].bytes_down, strlen(resp));
}

static void
test_lost(void **state)
{
	static const struct step first[] = {
		{ DOWN, OK_5, 1 },
		{ UP, GET_A, 1 },
		{ FINISH, NULL, 0 },
	};
	static const struct step extra[] = {
		{ UP, GET_A, 0 },
		{ DOWN, OK_5, 0 },
		{ DOWN, OK_0, 1 },
		{ FINISH, NULL, 0 },
	};
	/* Empty lines alone are no response. */
	static const struct step blank[] = {
		{ DOWN, "\r\n\n", 0 },
		{ UP, GET_A, 0 },
		{ DOWN, OK_0, 0 },
	};

	(void)state;
	scenario(first, LEN(first));
	assert_int_equal(obs.state, HTTP_OBSERVE_LOST);
	assert_null(obs.error);
	assert_int_equal(whole.n, 0);

	scenario(extra, LEN(extra));
	assert_int_equal(obs.state, HTTP_OBSERVE_LOST);
	assert_int_equal(whole.n, 1);

	scenario(blank, LEN(blank));
	assert_int_equal(whole.n, 1);
	expect(0, "GET", "example.org", "/a", 200, strlen(GET_A),
	    strlen(OK_0) + 3);
}

static void
test_finish(void **state)
{
	static const char r2[] = "GET /two HTTP/1.1\r\nHost: example.org\r\n"
	    "\r\n";
	static const char cut[] = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
	    "12345";
	static const struct step steps[] = {
		{ UP, GET_A, 0 },
		{ UP, r2, 0 },
		{ UP, "GET /three HT", 0 },
		{ DOWN, cut, 0 },
		{ EOF_DOWN, NULL, 0 },
		{ EOF_UP, NULL, 0 },
		{ FINISH, NULL, 0 },
		{ UP, GET_A, 1 },
		{ FINISH, NULL, 0 },
	};
	/* A request cut short by the client's close is answered as is. */
	static const char post[] = "POST /p HTTP/1.1\r\nContent-Length: 10"
	    "\r\n\r\n12";
	static const struct step half[] = {
		{ UP, post, 0 },
		{ EOF_UP, NULL, 0 },
		{ UP, "345", 0 },
		{ DOWN, OK_0, 0 },
	};

	(void)state;
	scenario(steps, LEN(steps));
	assert_int_equal(obs.state, HTTP_OBSERVE_FINISHED);
	assert_int_equal(whole.n, 2);
	expect(0, "GET", "example.org", "/a", 200, strlen(GET_A),
	    strlen(cut));
	expect_times(0, 1, 4);
	expect(1, "GET", "example.org", "/two", 0, strlen(r2), 0);
	expect_times(1, 2, 7);

	scenario(half, LEN(half));
	assert_int_equal(whole.n, 1);
	expect(0, "POST", "", "/p", 200, strlen(post), strlen(OK_0));
}

/* Bare LF line ends, empty lines between requests, and what they count
 * for: the request after them, but not its start time. */
static void
test_line_ends(void **state)
{
	static const char req[] = "GET /lf HTTP/1.1\nHost: example.org\n\n";
	static const char resp[] = "HTTP/1.1 200 OK\nContent-Length: 2\n\nok";
	static const struct step steps[] = {
		{ UP, "\r\n", 0 },
		{ UP, req, 0 },
		{ DOWN, resp, 0 },
	};

	(void)state;
	scenario(steps, LEN(steps));
	assert_int_equal(whole.n, 1);
	expect(0, "GET", "example.org", "/lf", 200, strlen(req) + 2,
	    strlen(resp));
	expect_times(0, 2, 3);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get),
		cmocka_unit_test(test_one_byte),
		cmocka_unit_test(test_keep_alive),
		cmocka_unit_test(test_pipelined),
		cmocka_unit_test(test_pipeline_overflow),
		cmocka_unit_test(test_chunked),
		cmocka_unit_test(test_head),
		cmocka_unit_test(test_no_body_statuses),
		cmocka_unit_test(test_continue),
		cmocka_unit_test(test_early_hints),
		cmocka_unit_test(test_upgrade),
		cmocka_unit_test(test_upgrade_hold),
		cmocka_unit_test(test_until_eof),
		cmocka_unit_test(test_query),
		cmocka_unit_test(test_absolute_form),
		cmocka_unit_test(test_hosts),
		cmocka_unit_test(test_long_values),
		cmocka_unit_test(test_head_too_large),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_response_malformed),
		cmocka_unit_test(test_lost),
		cmocka_unit_test(test_finish),
		cmocka_unit_test(test_line_ends),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
