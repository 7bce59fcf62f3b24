/*
 * Unit tests for the /metrics request parser (good requests, every
 * truncation point, bad methods, versions, targets and fields, oversize
 * heads, CR/LF variants) and for the exposition text it serves.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "socks5d/metrics.h"
#include "socks5d/metrics_http.h"

#define LEN(a) (sizeof(a) / sizeof((a)[0]))

static enum metrics_http_status
parse_text(const char *text, struct metrics_http_request *req)
{
	return metrics_http_parse(text, strlen(text), req);
}

static void
assert_bad(const char *text)
{
	struct metrics_http_request req;

	if (parse_text(text, &req) != METRICS_HTTP_BAD)
		fail_msg("not refused: \"%s\"", text);
}

static void
test_good_requests(void **state)
{
	static const struct {
		const char *text, *method, *path;
		unsigned minor;
	} cases[] = {
		{ "GET /metrics HTTP/1.1\r\nHost: localhost:9180\r\n\r\n",
		  "GET", "/metrics", 1 },
		{ "GET /metrics HTTP/1.0\r\n\r\n", "GET", "/metrics", 0 },
		{ "HEAD /metrics HTTP/1.1\r\nhost: x\r\n\r\n", "HEAD",
		  "/metrics", 1 },
		{ "POST /metrics HTTP/1.1\r\nHOST: x\r\nContent-Length: 3\r\n"
		  "\r\n", "POST", "/metrics", 1 },
		{ "GET /metrics?name[]=a&b=%20 HTTP/1.1\r\nHost: x\r\n\r\n",
		  "GET", "/metrics", 1 },
		{ "GET / HTTP/1.1\r\nHost:\r\n\r\n", "GET", "/", 1 },
		{ "GET /a/b HTTP/1.0\r\nX: \t tabs and spaces \t\r\n"
		  "Y:\r\nZ: obs-text \xc3\xa9\xff\r\n\r\n", "GET", "/a/b", 0 },
		{ "M-SEARCH /x HTTP/1.1\r\nHost: y\r\n\r\n", "M-SEARCH", "/x",
		  1 },
		{ "GET /metrics HTTP/1.9\r\nHost: x\r\n\r\n", "GET", "/metrics",
		  9 },
		/* Prometheus itself. */
		{ "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9180\r\n"
		  "User-Agent: Prometheus/2.45.0\r\nAccept: application/"
		  "openmetrics-text;version=1.0.0,text/plain;version=0.0.4;"
		  "q=0.5,*/*;q=0.1\r\nAccept-Encoding: gzip\r\n"
		  "X-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n", "GET",
		  "/metrics", 1 },
	};
	struct metrics_http_request req;

	(void)state;
	for (size_t i = 0; i < LEN(cases); i++) {
		const char *text = cases[i].text;

		memset(&req, 0, sizeof(req));
		if (parse_text(text, &req) != METRICS_HTTP_OK)
			fail_msg("not accepted: \"%s\"", text);
		assert_int_equal(req.method_len, strlen(cases[i].method));
		assert_memory_equal(req.method, cases[i].method, req.method_len);
		assert_int_equal(req.path_len, strlen(cases[i].path));
		assert_memory_equal(req.path, cases[i].path, req.path_len);
		assert_int_equal(req.minor, cases[i].minor);
		assert_int_equal(req.head_len, strlen(text));
		assert_ptr_equal(req.method, text);
	}
}

/* Whatever follows the blank line (a body, a second request) is not part
 * of the head. */
static void
test_bytes_after_head(void **state)
{
	static const char text[] = "POST /metrics HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 12\r\n\r\nhello\r\n\r\nGET";
	struct metrics_http_request req;

	(void)state;
	assert_int_equal(parse_text(text, &req), METRICS_HTTP_OK);
	assert_int_equal(req.head_len, strstr(text, "\r\n\r\n") + 4 - text);
}

/* Every proper prefix of a good request is incomplete, never bad, and
 * leaves the output alone. */
static void
test_every_truncation_point(void **state)
{
	static const char *const texts[] = {
		"GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n"
		"\r\n",
		"GET /metrics?x=1 HTTP/1.0\n\n",
		"HEAD /m HTTP/1.1\nHost: a\r\nX: b\n\r\n",
	};
	struct metrics_http_request req;

	(void)state;
	for (size_t t = 0; t < LEN(texts); t++) {
		size_t len = strlen(texts[t]);

		for (size_t i = 0; i < len; i++) {
			memset(&req, 0xa5, sizeof(req));
			if (metrics_http_parse(texts[t], i, &req) !=
			    METRICS_HTTP_INCOMPLETE)
				fail_msg("\"%s\" cut at %zu: not incomplete",
				    texts[t], i);
			assert_int_equal(req.head_len,
			    (size_t)0xa5a5a5a5a5a5a5a5ULL);
		}
		assert_int_equal(metrics_http_parse(texts[t], len, &req),
		    METRICS_HTTP_OK);
	}
}

static void
test_bad_method(void **state)
{
	(void)state;
	assert_bad(" GET /metrics HTTP/1.0\r\n\r\n");
	assert_bad("G(T /metrics HTTP/1.0\r\n\r\n");
	assert_bad("GE\tT /metrics HTTP/1.0\r\n\r\n");
	assert_bad("GET\t/metrics HTTP/1.0\r\n\r\n");
	assert_bad("G\x80T /metrics HTTP/1.0\r\n\r\n");
	assert_bad("\x16\x03\x01\x02\x00\x01\x00");    /* a TLS hello */
	assert_bad("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
	/* A NUL is refused at once, not read as the end of the text. */
	assert_int_equal(metrics_http_parse("GE\0T / HTTP/1.0\r\n\r\n", 19,
	    &(struct metrics_http_request){ 0 }), METRICS_HTTP_BAD);
}

static void
test_bad_target(void **state)
{
	(void)state;
	assert_bad("GET metrics HTTP/1.0\r\n\r\n");
	assert_bad("GET http://localhost/metrics HTTP/1.0\r\n\r\n");
	assert_bad("GET * HTTP/1.0\r\n\r\n");
	assert_bad("GET  /metrics HTTP/1.0\r\n\r\n");
	assert_bad("GET /metrics  HTTP/1.0\r\n\r\n");
	assert_bad("GET /met\trics HTTP/1.0\r\n\r\n");
	assert_bad("GET /met\x7frics HTTP/1.0\r\n\r\n");
	assert_bad("GET /m\xc3\xa9trics HTTP/1.0\r\n\r\n");
	assert_bad("GET /metrics\r\n\r\n");
	assert_bad("GET /metrics\n\n");
	assert_bad("GET \r\n\r\n");
}

static void
test_bad_version(void **state)
{
	(void)state;
	assert_bad("GET /metrics HTTP/2.0\r\n\r\n");
	assert_bad("GET /metrics HTTP/0.9\r\n\r\n");
	assert_bad("GET /metrics http/1.1\r\nHost: x\r\n\r\n");
	assert_bad("GET /metrics HTTP/1.x\r\n\r\n");
	assert_bad("GET /metrics HTTP/1.10\r\n\r\n");
	assert_bad("GET /metrics HTTP/1.1 \r\nHost: x\r\n\r\n");
	assert_bad("GET /metrics HTTP/1\r\n\r\n");
	assert_bad("GET /metrics HTTP/\r\n\r\n");
	assert_bad("GET /metrics HTTP/1.1x\r\n\r\n");
}

static void
test_bad_fields(void **state)
{
	(void)state;
	assert_bad("GET /metrics HTTP/1.1\r\nHost : x\r\n\r\n");
	assert_bad("GET /metrics HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n");
	assert_bad("GET /metrics HTTP/1.1\r\nHost: x\r\n\tfolded\r\n\r\n");
	assert_bad("GET /metrics HTTP/1.1\r\n Host: x\r\n\r\n");
	assert_bad("GET /metrics HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n");
	assert_bad("GET /metrics HTTP/1.1\r\nHost: x\r\n: empty\r\n\r\n");
	assert_bad("GET /metrics HTTP/1.1\r\nHost: x\r\nX-(: y\r\n\r\n");
	assert_bad("GET /metrics HTTP/1.1\r\nHost: x\r\nX: a\x01z\r\n\r\n");
	assert_bad("GET /metrics HTTP/1.1\r\nHost: x\r\nX: a\x7fz\r\n\r\n");
	/* HTTP/1.1 needs exactly one Host; HTTP/1.0 may have none. */
	assert_bad("GET /metrics HTTP/1.1\r\n\r\n");
	assert_bad("GET /metrics HTTP/1.1\r\nAccept: */*\r\n\r\n");
	assert_bad("GET /metrics HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n");
	assert_bad("GET /metrics HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n");
	assert_bad("GET /metrics HTTP/1.1\r\nHosts: a\r\n\r\n");
	assert_int_equal(metrics_http_parse("GET / HTTP/1.1\r\nHost: a\0b\r\n"
	    "\r\n", 29, &(struct metrics_http_request){ 0 }),
	    METRICS_HTTP_BAD);
}

/* Line ends: CRLF and bare LF (RFC 9112 2.2 allows both); a CR not
 * followed by LF is refused wherever it is. */
static void
test_line_ends(void **state)
{
	static const char *const good[] = {
		"GET /metrics HTTP/1.1\nHost: x\n\n",
		"GET /metrics HTTP/1.1\r\nHost: x\n\r\n",
		"GET /metrics HTTP/1.1\nHost: x\r\n\n",
		"GET /metrics HTTP/1.0\r\n\n",
		"GET /metrics HTTP/1.0\n\r\n",
	};
	struct metrics_http_request req;

	(void)state;
	for (size_t i = 0; i < LEN(good); i++) {
		if (parse_text(good[i], &req) != METRICS_HTTP_OK)
			fail_msg("not accepted: case %zu", i);
		assert_int_equal(req.head_len, strlen(good[i]));
		assert_int_equal(req.path_len, 8);
	}
	assert_bad("GET /metrics HTTP/1.1\rHost: x\r\n\r\n");
	assert_bad("GET /metrics HTTP/1.1\r\rHost: x\r\n\r\n");
	assert_bad("GET /metrics HTTP/1.1\r\nHost: x\r\r\n\r\n");
	assert_bad("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\r\n");
	assert_bad("GET /metrics HTTP/1.1\r\nHost: x\r\n\rX");
	assert_bad("GET /metrics\r HTTP/1.0\r\n\r\n");
	/* No empty lines before the request line. */
	assert_bad("\r\nGET /metrics HTTP/1.0\r\n\r\n");
	assert_bad("\nGET /metrics HTTP/1.0\r\n\r\n");
	/* A CR at the very end may still get its LF. */
	assert_int_equal(parse_text("GET /metrics HTTP/1.0\r", &req),
	    METRICS_HTTP_INCOMPLETE);
	assert_int_equal(parse_text("GET /metrics HTTP/1.0\r\n\r", &req),
	    METRICS_HTTP_INCOMPLETE);
}

/* A head of "GET / HTTP/1.0\r\nX: aaa...\r\n\r\n" exactly len bytes. */
static char *
make_head(size_t len)
{
	static const char start[] = "GET / HTTP/1.0\r\nX: ";
	char *buf = malloc(len + 1);
	size_t fill = len - (sizeof(start) - 1) - 4;

	assert_non_null(buf);
	memcpy(buf, start, sizeof(start) - 1);
	memset(buf + sizeof(start) - 1, 'a', fill);
	memcpy(buf + len - 4, "\r\n\r\n", 4);
	buf[len] = '\0';
	return buf;
}

static void
test_oversize(void **state)
{
	struct metrics_http_request req;
	char *buf;

	(void)state;
	buf = make_head(METRICS_HTTP_HEAD_MAX);
	assert_int_equal(metrics_http_parse(buf, METRICS_HTTP_HEAD_MAX, &req),
	    METRICS_HTTP_OK);
	assert_int_equal(req.head_len, METRICS_HTTP_HEAD_MAX);
	free(buf);

	buf = make_head(METRICS_HTTP_HEAD_MAX + 1);
	assert_int_equal(metrics_http_parse(buf, METRICS_HTTP_HEAD_MAX,
	    &req), METRICS_HTTP_TOO_LARGE);
	assert_int_equal(metrics_http_parse(buf, METRICS_HTTP_HEAD_MAX + 1,
	    &req), METRICS_HTTP_TOO_LARGE);
	assert_int_equal(metrics_http_parse(buf, METRICS_HTTP_HEAD_MAX - 1,
	    &req), METRICS_HTTP_INCOMPLETE);
	free(buf);

	/* A huge request line is the same case. */
	buf = malloc(3 * METRICS_HTTP_HEAD_MAX);
	assert_non_null(buf);
	memcpy(buf, "GET /", 5);
	memset(buf + 5, 'x', 3 * METRICS_HTTP_HEAD_MAX - 5);
	assert_int_equal(metrics_http_parse(buf, 3 * METRICS_HTTP_HEAD_MAX,
	    &req), METRICS_HTTP_TOO_LARGE);
	free(buf);
}

/* Random bytes, and random damage to a good request: the parser always
 * answers one of its four results and never reads past len (ASan). */
static void
test_noise(void **state)
{
	static const char good[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
	struct metrics_http_request req;
	uint32_t seed = 12345;
	char *buf;

	(void)state;
	for (int round = 0; round < 20000; round++) {
		size_t len;
		enum metrics_http_status st;

		seed = seed * 1103515245u + 12345u;
		len = (seed >> 8) % 64;
		buf = malloc(len > 0 ? len : 1);
		assert_non_null(buf);
		if (round % 2 == 0) {
			for (size_t i = 0; i < len; i++) {
				seed = seed * 1103515245u + 12345u;
				buf[i] = (char)(seed >> 16);
			}
		} else {
			len = len < sizeof(good) - 1 ? len : sizeof(good) - 1;
			memcpy(buf, good, len);
			seed = seed * 1103515245u + 12345u;
			if (len > 0)
				buf[(seed >> 8) % len] = (char)(seed >> 20);
		}
		st = metrics_http_parse(buf, len, &req);
		assert_true(st == METRICS_HTTP_INCOMPLETE ||
		    st == METRICS_HTTP_OK || st == METRICS_HTTP_BAD);
		if (st == METRICS_HTTP_OK)
			assert_true(req.head_len <= len);
		free(buf);
	}
}

/* -- the exposition ------------------------------------------------------ */

static const struct metrics_gauges test_gauges = {
	.fds_open = 42, .max_clients = 100,
};

static char *
render(void)
{
	size_t need = metrics_render(NULL, 0, &test_gauges);
	char *buf = malloc(need + 1);

	assert_non_null(buf);
	assert_int_equal(metrics_render(buf, need + 1, &test_gauges), need);
	assert_int_equal(strlen(buf), need);
	return buf;
}

static void
assert_line(const char *text, const char *line)
{
	char *want;

	assert_int_not_equal(asprintf(&want, "\n%s\n", line), -1);
	if (strstr(text, want) == NULL)
		fail_msg("no line \"%s\" in:\n%s", line, text);
	free(want);
}

static void
test_render_counts(void **state)
{
	char *text;

	(void)state;
	metrics_reset();
	metrics_count_session(1, 0, "eof");
	metrics_count_session(1, 5, "rejected");
	metrics_count_session(0, -1, "auth-failed");
	metrics_count_session(3, 0, "client-eof");
	metrics_count_session(9, 7, "rejected");
	metrics_count_session(0, -1, "someday-new");
	metrics_count_bytes(true, 100);
	metrics_count_bytes(false, 2000);
	metrics_count_bytes(true, 7);
	metrics_count_bytes(false, 9);
	metrics_add_active(1, 1);
	metrics_add_active(1, 1);
	metrics_add_active(0, 1);
	metrics_add_active(9, 1);
	metrics_set_pipes(5, 2, 1);
	metrics_count_small_pipe();
	metrics_count_reply(0);
	metrics_count_reply(5);
	metrics_count_reply(5);
	metrics_count_reply(200);
	metrics_count_auth(true);
	metrics_count_auth(false);
	metrics_count_auth(false);
	metrics_count_dns_lookup();
	metrics_count_dns_lookup();
	metrics_observe_dns(0.0004, true);
	metrics_observe_dns(0.3, false);
	metrics_observe_dns(7.0, false);
	metrics_count_udp_datagrams(true, 4);
	metrics_count_udp_datagrams(false, 2);
	metrics_count_udp_drops(METRICS_UDP_DROP_FRAG, 3);
	metrics_count_udp_drops(METRICS_UDP_DROP_COUNT, 1);

	text = render();
	assert_memory_equal(text, "# HELP socks5d_sessions_active ", 31);
	assert_line(text, "# TYPE socks5d_sessions_active gauge");
	assert_line(text, "socks5d_sessions_active{cmd=\"connect\"} 2");
	assert_line(text, "socks5d_sessions_active{cmd=\"none\"} 1");
	assert_line(text, "socks5d_sessions_active{cmd=\"unknown\"} 1");
	assert_line(text, "socks5d_sessions_active{cmd=\"bind\"} 0");
	assert_line(text, "socks5d_sessions_active{cmd=\"udp\"} 0");
	assert_line(text, "socks5d_sessions_total{cmd=\"connect\"} 2");
	assert_line(text, "socks5d_sessions_total{cmd=\"none\"} 2");
	assert_line(text, "socks5d_sessions_total{cmd=\"udp\"} 1");
	assert_line(text, "socks5d_sessions_total{cmd=\"unknown\"} 1");
	assert_line(text, "socks5d_sessions_total{cmd=\"bind\"} 0");
	assert_line(text, "socks5d_handshake_failures_total{reason=\"rejected\"} 2");
	assert_line(text, "socks5d_handshake_failures_total{reason=\"auth-failed\"} 1");
	assert_line(text, "socks5d_handshake_failures_total{reason=\"client-eof\"} 0");
	assert_line(text, "socks5d_handshake_failures_total{reason=\"other\"} 1");
	assert_line(text, "socks5d_auth_successes_total 1");
	assert_line(text, "socks5d_auth_failures_total 2");
	assert_line(text, "socks5d_replies_total{code=\"0\"} 1");
	assert_line(text, "socks5d_replies_total{code=\"5\"} 2");
	assert_line(text, "socks5d_replies_total{code=\"8\"} 0");
	assert_line(text, "socks5d_relayed_bytes_total{direction=\"up\"} 107");
	assert_line(text, "socks5d_relayed_bytes_total{direction=\"down\"} 2009");
	assert_line(text, "socks5d_dns_lookups_total 2");
	assert_line(text, "socks5d_dns_failures_total 2");
	assert_line(text, "# TYPE socks5d_dns_lookup_duration_seconds histogram");
	assert_line(text, "socks5d_dns_lookup_duration_seconds_bucket{le=\"0.001\"} 1");
	assert_line(text, "socks5d_dns_lookup_duration_seconds_bucket{le=\"0.25\"} 1");
	assert_line(text, "socks5d_dns_lookup_duration_seconds_bucket{le=\"0.5\"} 2");
	assert_line(text, "socks5d_dns_lookup_duration_seconds_bucket{le=\"5\"} 2");
	assert_line(text, "socks5d_dns_lookup_duration_seconds_bucket{le=\"+Inf\"} 3");
	assert_line(text, "socks5d_dns_lookup_duration_seconds_count 3");
	assert_line(text, "socks5d_dns_lookup_duration_seconds_sum 7.3004");
	assert_line(text, "socks5d_udp_datagrams_total{direction=\"up\"} 4");
	assert_line(text, "socks5d_udp_datagrams_total{direction=\"down\"} 2");
	assert_line(text, "socks5d_udp_dropped_total{reason=\"frag\"} 3");
	assert_line(text, "socks5d_udp_dropped_total{reason=\"stranger\"} 0");
	assert_line(text, "socks5d_pipe_pool_idle 5");
	assert_line(text, "# TYPE socks5d_pipe_pool_in_use gauge");
	assert_line(text, "socks5d_pipe_pool_in_use 2");
	assert_line(text, "socks5d_pipe_pool_large 1");
	assert_line(text, "# TYPE socks5d_pipe_pool_small_total counter");
	assert_line(text, "socks5d_pipe_pool_small_total 1");
	assert_line(text, "socks5d_open_fds 42");
	assert_line(text, "socks5d_max_clients 100");
	assert_line(text, "socks5d_build_info{version=\"" "0.1.0" "\"} 1");
	assert_int_equal(text[strlen(text) - 1], '\n');
	free(text);
}

/* Like snprintf: a short buffer gets a cut, terminated text and the
 * length the whole needs. */
static void
test_render_short_buffer(void **state)
{
	size_t need;
	char small[100];

	(void)state;
	metrics_reset();
	need = metrics_render(NULL, 0, &test_gauges);
	assert_true(need > sizeof(small));
	memset(small, 'x', sizeof(small));
	assert_int_equal(metrics_render(small, sizeof(small), &test_gauges),
	    need);
	assert_int_equal(strlen(small), sizeof(small) - 1);
	/* What the server reserves for it is ample. */
	assert_true(need < 16384 - 256 - 2048);
}

/* An unknown descriptor count leaves the family without a sample. */
static void
test_render_unknown_fds(void **state)
{
	struct metrics_gauges g = test_gauges;
	char buf[16384];

	(void)state;
	g.fds_open = -1;
	metrics_render(buf, sizeof(buf), &g);
	assert_non_null(strstr(buf, "# TYPE socks5d_open_fds gauge\n"));
	assert_null(strstr(buf, "\nsocks5d_open_fds "));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_requests),
		cmocka_unit_test(test_bytes_after_head),
		cmocka_unit_test(test_every_truncation_point),
		cmocka_unit_test(test_bad_method),
		cmocka_unit_test(test_bad_target),
		cmocka_unit_test(test_bad_version),
		cmocka_unit_test(test_bad_fields),
		cmocka_unit_test(test_line_ends),
		cmocka_unit_test(test_oversize),
		cmocka_unit_test(test_noise),
		cmocka_unit_test(test_render_counts),
		cmocka_unit_test(test_render_short_buffer),
		cmocka_unit_test(test_render_unknown_fds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
