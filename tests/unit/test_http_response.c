/*
 * Unit tests for the origin response rewrite (src/http_response.c): the
 * exact bytes out, every split of the input, interim and 101 heads, the
 * bounds (head size, room to grow) and what must pass untouched.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "socks5d/http_response.h"

/* The daemon's copy buffer (RELAY_COPY_BUFSIZE). */
#define DAEMON_CAP      (64 * 1024)

/*
 * Run the rewrite on in[0..len) in a heap buffer of exactly cap bytes, so
 * ASan catches any access past it. Returns the buffer (free it) and sets
 * *out_len and *st.
 */
static uint8_t *
run(const void *in, size_t len, size_t cap, size_t *out_len,
    enum http_response_status *st)
{
	uint8_t *buf = malloc(cap > 0 ? cap : 1);

	assert_non_null(buf);
	assert_true(len <= cap);
	memcpy(buf, in, len);
	*out_len = len;
	*st = http_response_rewrite(buf, out_len, cap);
	assert_true(*st == HTTP_RESPONSE_DONE ||
	    *st == HTTP_RESPONSE_INCOMPLETE);
	assert_true(*out_len <= cap);
	return buf;
}

/* DONE, and the bytes come out as they went in. */
static void
check_unchanged(const void *in, size_t len, size_t cap)
{
	enum http_response_status st;
	size_t out_len;
	uint8_t *out = run(in, len, cap, &out_len, &st);

	assert_int_equal(st, HTTP_RESPONSE_DONE);
	assert_int_equal(out_len, len);
	assert_memory_equal(out, in, len);
	free(out);
}

/*
 * The input is head_in then body, head_in ending with the final head's
 * empty line; the output must be head_want then body, byte for byte. Every
 * split is tried, as the relay calls with each read: a prefix that ends
 * before the final head does is INCOMPLETE and left as it is; any longer
 * one is DONE and is the output's matching prefix. The cap is the least
 * the rewrite asks for, then the daemon's.
 */
static void
check_split(const char *head_in, const char *body, const char *head_want)
{
	size_t hlen = strlen(head_in), blen = strlen(body);
	size_t wlen = strlen(head_want), len = hlen + blen, out_len, k;
	enum http_response_status st;
	char *in = malloc(len + 1);
	uint8_t *out;

	assert_non_null(in);
	memcpy(in, head_in, hlen);
	memcpy(in + hlen, body, blen + 1);
	for (k = 0; k <= len; k++) {
		out = run(in, k, k + HTTP_RESPONSE_GROWTH, &out_len, &st);
		if (k < hlen) {
			assert_int_equal(st, HTTP_RESPONSE_INCOMPLETE);
			assert_int_equal(out_len, k);
			assert_memory_equal(out, in, k);
		} else {
			assert_int_equal(st, HTTP_RESPONSE_DONE);
			assert_int_equal(out_len, wlen + (k - hlen));
			assert_memory_equal(out, head_want, wlen);
			assert_memory_equal(out + wlen, body, k - hlen);
		}
		free(out);
	}
	out = run(in, len, DAEMON_CAP, &out_len, &st);
	assert_int_equal(st, HTTP_RESPONSE_DONE);
	assert_int_equal(out_len, wlen + blen);
	assert_memory_equal(out, head_want, wlen);
	assert_memory_equal(out + wlen, body, blen);
	free(out);
	free(in);
}

static void
check_unchanged_str(const char *in)
{
	check_unchanged(in, strlen(in), strlen(in) + HTTP_RESPONSE_GROWTH);
	check_unchanged(in, strlen(in), DAEMON_CAP);
}

/* ---- the final head ---- */

static void
test_keep_alive(void **state)
{
	(void)state;
	check_split(
	    "HTTP/1.1 200 OK\r\n"
	    "Date: Mon, 01 Jan 2024 00:00:00 GMT\r\n"
	    "Connection: keep-alive, X-Hop\r\n"
	    "Keep-Alive: timeout=5, max=100\r\n"
	    "Content-Type: text/plain\r\n"
	    "X-Hop: 1\r\n"
	    "Proxy-Connection: keep-alive\r\n"
	    "Set-Cookie: a=b;  Path=/ \r\n"
	    "Content-Length: 70\r\n"
	    "\r\n",
	    "Connection: keep-alive\r\nKeep-Alive: 5\r\n\r\n"
	    "HTTP/1.1 200 OK\r\nX-Hop: 2\r\n\r\n",
	    "HTTP/1.1 200 OK\r\n"
	    "Date: Mon, 01 Jan 2024 00:00:00 GMT\r\n"
	    "Content-Type: text/plain\r\n"
	    "Set-Cookie: a=b;  Path=/ \r\n"
	    "Content-Length: 70\r\n"
	    "Connection: close\r\n"
	    "\r\n");
}

/* Field names match whatever their case; the origin's own "close" still
 * leaves exactly one. */
static void
test_case_and_close(void **state)
{
	(void)state;
	check_split(
	    "HTTP/1.1 200 OK\r\n"
	    "CONNECTION: Close\r\n"
	    "keep-ALIVE: timeout=5\r\n"
	    "proxy-connection:close\r\n"
	    "Server: x\r\n"
	    "\r\n",
	    "",
	    "HTTP/1.1 200 OK\r\n"
	    "Server: x\r\n"
	    "Connection: close\r\n"
	    "\r\n");
}

static void
test_continue(void **state)
{
	(void)state;
	/* The interim heads go as they came, Connection and all; a split
	 * just past one is still INCOMPLETE. */
	check_split(
	    "HTTP/1.1 100 Continue\r\n"
	    "Connection: keep-alive\r\n"
	    "\r\n"
	    "HTTP/1.1 103 Early Hints\r\n"
	    "Link: </a.css>; rel=preload\r\n"
	    "\r\n"
	    "HTTP/1.1 200 OK\r\n"
	    "Connection: keep-alive\r\n"
	    "Content-Length: 2\r\n"
	    "\r\n",
	    "ok",
	    "HTTP/1.1 100 Continue\r\n"
	    "Connection: keep-alive\r\n"
	    "\r\n"
	    "HTTP/1.1 103 Early Hints\r\n"
	    "Link: </a.css>; rel=preload\r\n"
	    "\r\n"
	    "HTTP/1.1 200 OK\r\n"
	    "Content-Length: 2\r\n"
	    "Connection: close\r\n"
	    "\r\n");
}

static void
test_switching_protocols(void **state)
{
	static const char ws[] =
	    "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: websocket\r\n"
	    "Connection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
	    "\r\n"
	    "\x81\x05hello";
	static const char interim[] =
	    "HTTP/1.1 100 Continue\r\n\r\n"
	    "HTTP/1.1 101 Switching Protocols\r\n"
	    "Connection: upgrade\r\n";

	(void)state;
	check_unchanged_str(ws);
	/* The status line is enough: what follows is not HTTP's. */
	check_unchanged_str("HTTP/1.1 101 Switching Protocols\r\n");
	check_unchanged_str(interim);
}

static void
test_http10(void **state)
{
	(void)state;
	check_split(
	    "HTTP/1.0 200 OK\r\n"
	    "Connection: keep-alive\r\n"
	    "Keep-Alive: timeout=5\r\n"
	    "Content-Length: 3\r\n"
	    "\r\n",
	    "abc",
	    "HTTP/1.0 200 OK\r\n"
	    "Content-Length: 3\r\n"
	    "Connection: close\r\n"
	    "\r\n");
	/* No reason phrase, no fields. */
	check_split("HTTP/1.0 404\r\n\r\n", "gone",
	    "HTTP/1.0 404\r\nConnection: close\r\n\r\n");
}

/* Kept lines keep their own line ends; the empty line becomes a CRLF. */
static void
test_bare_lf(void **state)
{
	(void)state;
	check_split(
	    "HTTP/1.1 200 OK\n"
	    "Connection: keep-alive\n"
	    "Content-Length: 4\r\n"
	    "Keep-Alive: 5\n"
	    "X-A: b\n"
	    "\n",
	    "a\nb\n",
	    "HTTP/1.1 200 OK\n"
	    "Content-Length: 4\r\n"
	    "X-A: b\n"
	    "Connection: close\r\n"
	    "\r\n");
	check_split("HTTP/1.1 100 Continue\n\nHTTP/1.1 204 No Content\n\n",
	    "",
	    "HTTP/1.1 100 Continue\n\n"
	    "HTTP/1.1 204 No Content\nConnection: close\r\n\r\n");
}

/* Connection names fields before and after itself, over several
 * Connection fields, with odd spacing and empty list members. */
static void
test_connection_names(void **state)
{
	(void)state;
	check_split(
	    "HTTP/1.1 200 OK\r\n"
	    "X-Before: 1\r\n"
	    "X-Keep: k\r\n"
	    "Connection: ,x-before ,\t X-AFTER,, \r\n"
	    "x-after: 2\r\n"
	    "X-Before: 3\r\n"
	    "X-Before-Not: 4\r\n"
	    "Connection: Trailer-X\r\n"
	    "trailer-x: 5\r\n"
	    "X-Last: 6\r\n"
	    "\r\n",
	    "X-Before: body",
	    "HTTP/1.1 200 OK\r\n"
	    "X-Keep: k\r\n"
	    "X-Before-Not: 4\r\n"
	    "X-Last: 6\r\n"
	    "Connection: close\r\n"
	    "\r\n");
}

/* An obsolete line fold belongs to the field above: it goes with a
 * dropped one (left behind, it would join the line above it), stays with
 * a kept one, and a folded Connection value names fields too. */
static void
test_obs_fold(void **state)
{
	(void)state;
	check_split(
	    "HTTP/1.1 200 OK\r\n"
	    "Keep-Alive: timeout=5,\r\n"
	    " max=100\r\n"
	    "Content-Type: text/html;\r\n"
	    "\tcharset=utf-8\r\n"
	    "Connection: keep-alive,\r\n"
	    " X-Folded, X-\r\n"
	    "\tSplit\r\n"
	    "X-Folded: 1\r\n"
	    "X-: 2\r\n"
	    "Split: 3\r\n"
	    "\r\n",
	    "",
	    "HTTP/1.1 200 OK\r\n"
	    "Content-Type: text/html;\r\n"
	    "\tcharset=utf-8\r\n"
	    "X-: 2\r\n"
	    "Split: 3\r\n"
	    "Connection: close\r\n"
	    "\r\n");
	/* A fold right after the status line has no field to go with. */
	check_split("HTTP/1.1 200 OK\r\n x\r\nConnection: a\r\n\r\n", "",
	    "HTTP/1.1 200 OK\r\n x\r\nConnection: close\r\n\r\n");
}

static void
test_no_fields(void **state)
{
	(void)state;
	check_split("HTTP/1.1 204 No Content\r\n\r\n", "",
	    "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
	check_split("HTTP/1.1 200\r\n\r\n", "body\r\n\r\n",
	    "HTTP/1.1 200\r\nConnection: close\r\n\r\n");
}

/* ---- what passes untouched ---- */

/* A head of n bytes (then tail): the status line, a filler field,
 * "Connection: keep-alive", the empty line. */
static char *
long_head(size_t n, const char *tail)
{
	static const char status[] = "HTTP/1.1 200 OK\r\nFiller: ";
	static const char end[] = "\r\nConnection: keep-alive\r\n\r\n";
	size_t fixed = strlen(status) + strlen(end), tlen = strlen(tail);
	char *p = malloc(n + tlen + 1);

	assert_non_null(p);
	assert_true(n > fixed);
	memcpy(p, status, strlen(status));
	memset(p + strlen(status), 'f', n - fixed);
	memcpy(p + n - strlen(end), end, strlen(end));
	memcpy(p + n, tail, tlen + 1);
	return p;
}

static void
test_head_max(void **state)
{
	static const char want_end[] = "\r\nConnection: close\r\n\r\nbody";
	enum http_response_status st;
	size_t out_len, len;
	uint8_t *out;
	char *in;

	(void)state;
	/* Exactly the bound: rewritten. */
	in = long_head(HTTP_RESPONSE_HEAD_MAX, "body");
	len = strlen(in);
	out = run(in, len, len + HTTP_RESPONSE_GROWTH, &out_len, &st);
	assert_int_equal(st, HTTP_RESPONSE_DONE);
	assert_int_equal(out_len, len - strlen("Connection: keep-alive\r\n") +
	    strlen("Connection: close\r\n"));
	assert_memory_equal(out + out_len - strlen(want_end), want_end,
	    strlen(want_end));
	free(out);
	/* Every prefix is INCOMPLETE until the head is whole. */
	for (size_t k = 0; k < HTTP_RESPONSE_HEAD_MAX; k += 509) {
		out = run(in, k, k, &out_len, &st);
		assert_int_equal(st, HTTP_RESPONSE_INCOMPLETE);
		assert_int_equal(out_len, k);
		assert_memory_equal(out, in, k);
		free(out);
	}
	free(in);

	/* One byte over: as it came, once whole; before that, INCOMPLETE
	 * while no more than the bound is read. */
	in = long_head(HTTP_RESPONSE_HEAD_MAX + 1, "body");
	len = strlen(in);
	check_unchanged(in, len, DAEMON_CAP);
	check_unchanged(in, HTTP_RESPONSE_HEAD_MAX + 1, DAEMON_CAP);
	out = run(in, HTTP_RESPONSE_HEAD_MAX, DAEMON_CAP, &out_len, &st);
	assert_int_equal(st, HTTP_RESPONSE_INCOMPLETE);
	free(out);
	free(in);

	/* A field line over the bound with no line end yet. */
	in = long_head(2 * HTTP_RESPONSE_HEAD_MAX, "");
	check_unchanged(in, HTTP_RESPONSE_HEAD_MAX + 1, DAEMON_CAP);
	free(in);

	/* A status line alone over the bound, whole or not. */
	in = malloc(HTTP_RESPONSE_HEAD_MAX + 5);
	assert_non_null(in);
	memcpy(in, "HTTP/1.1 200 ", 13);
	memset(in + 13, 'r', HTTP_RESPONSE_HEAD_MAX - 13);
	memcpy(in + HTTP_RESPONSE_HEAD_MAX, "\r\n\r\n", 5);
	check_unchanged(in, HTTP_RESPONSE_HEAD_MAX + 1, DAEMON_CAP);
	check_unchanged(in, HTTP_RESPONSE_HEAD_MAX + 4, DAEMON_CAP);
	out = run(in, HTTP_RESPONSE_HEAD_MAX, DAEMON_CAP, &out_len, &st);
	assert_int_equal(st, HTTP_RESPONSE_INCOMPLETE);
	free(out);
	free(in);
}

static void
test_not_http(void **state)
{
	(void)state;
	check_unchanged_str("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n");
	check_unchanged_str("HTTP/2 200\r\n\r\n");
	check_unchanged_str("HTTP/1.1 20\r\nConnection: keep-alive\r\n\r\n");
	check_unchanged_str("HTTP/1.1 2000 OK\r\n\r\n");
	check_unchanged_str("HTTP/1.1 2x0 OK\r\n\r\n");
	check_unchanged_str("http/1.1 200 OK\r\n\r\n");
	check_unchanged_str(" HTTP/1.1 200 OK\r\n\r\n");
	check_unchanged_str("\r\nHTTP/1.1 200 OK\r\n\r\n");
	check_unchanged_str("<html>\n<body>\n");
	/* A status under 100 is no interim head: the bytes after it are
	 * body, not a head to rewrite. */
	check_unchanged_str("HTTP/1.1 000 X\r\n\r\n"
	    "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\n");
	check_unchanged_str("HTTP/1.1 100 Continue\r\n\r\nSSH-2.0-x\r\n");
}

static void
test_cap_too_small(void **state)
{
	static const char in[] =
	    "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\nbody";
	static const char want[] =
	    "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody";
	enum http_response_status st;
	size_t len = sizeof(in) - 1, out_len;
	uint8_t *out;
	/* Without a Via line, the growth is Connection: close's alone. */
	const size_t growth = HTTP_RESPONSE_GROWTH -
	    (sizeof(HTTP_RESPONSE_VIA) - 1);

	(void)state;
	check_unchanged(in, len, len);
	check_unchanged(in, len, len + growth - 1);
	out = run(in, len, len + growth, &out_len, &st);
	assert_int_equal(st, HTTP_RESPONSE_DONE);
	assert_int_equal(out_len, sizeof(want) - 1);
	assert_memory_equal(out, want, out_len);
	free(out);
}

/* Nothing yet, or no whole status line yet. */
static void
test_empty(void **state)
{
	enum http_response_status st;
	size_t out_len;
	uint8_t *out;

	(void)state;
	out = run("", 0, 0, &out_len, &st);
	assert_int_equal(st, HTTP_RESPONSE_INCOMPLETE);
	assert_int_equal(out_len, 0);
	free(out);
	out = run("HTTP/1.1 200 OK\r", 16, 16, &out_len, &st);
	assert_int_equal(st, HTTP_RESPONSE_INCOMPLETE);
	assert_int_equal(out_len, 16);
	free(out);
}

/* Whole interim heads are named as ready to go while the final head is
 * still incomplete, so a client waiting for 100 Continue gets it. */
static void
test_interim_released(void **state)
{
	static const char first[] = "HTTP/1.1 100 Continue\r\n\r\n";
	static const char more[] = "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n";
	char in[256];
	uint8_t buf[256];
	size_t len, interim;

	(void)state;
	snprintf(in, sizeof(in), "%sHTTP/1.1 20", first);
	len = strlen(in);
	memcpy(buf, in, len);
	assert_int_equal(http_response_rewrite_interim(buf, &len, sizeof(buf), false,
	    &interim), HTTP_RESPONSE_INCOMPLETE);
	assert_int_equal(interim, strlen(first));
	assert_int_equal(len, strlen(in));
	assert_memory_equal(buf, in, len);

	/* Two interim heads, then nothing: both may go. */
	snprintf(in, sizeof(in), "%s%s", first, more);
	len = strlen(in);
	memcpy(buf, in, len);
	assert_int_equal(http_response_rewrite_interim(buf, &len, sizeof(buf), false,
	    &interim), HTTP_RESPONSE_INCOMPLETE);
	assert_int_equal(interim, strlen(in));

	/* A partial interim head is not ready. */
	len = 10;
	memcpy(buf, first, len);
	assert_int_equal(http_response_rewrite_interim(buf, &len, sizeof(buf), false,
	    &interim), HTTP_RESPONSE_INCOMPLETE);
	assert_int_equal(interim, 0);
}

/* With via set, the final head gains the proxy's Via line too. */
static void
test_via_added(void **state)
{
	static const char in[] =
	    "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\nbody";
	static const char want[] = "HTTP/1.1 200 OK\r\nVia: 1.1 socks5d\r\n"
	    "Connection: close\r\n\r\nbody";
	uint8_t buf[128];
	size_t len = sizeof(in) - 1, interim;

	(void)state;
	memcpy(buf, in, len);
	assert_int_equal(http_response_rewrite_interim(buf, &len, sizeof(buf),
	    true, &interim), HTTP_RESPONSE_DONE);
	assert_int_equal(len, sizeof(want) - 1);
	assert_memory_equal(buf, want, len);
	assert_true(len <= sizeof(in) - 1 + HTTP_RESPONSE_GROWTH);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keep_alive),
		cmocka_unit_test(test_case_and_close),
		cmocka_unit_test(test_continue),
		cmocka_unit_test(test_switching_protocols),
		cmocka_unit_test(test_http10),
		cmocka_unit_test(test_bare_lf),
		cmocka_unit_test(test_connection_names),
		cmocka_unit_test(test_obs_fold),
		cmocka_unit_test(test_no_fields),
		cmocka_unit_test(test_head_max),
		cmocka_unit_test(test_not_http),
		cmocka_unit_test(test_interim_released),
		cmocka_unit_test(test_cap_too_small),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_via_added),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
