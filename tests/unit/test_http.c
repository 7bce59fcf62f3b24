/*
 * Unit tests for the HTTP/1.x proxy codec (src/http.c, src/http_encode.c): CONNECT and
 * absolute-form targets, every truncation point, the smuggling and
 * framing refusals, size limits, Basic credentials, the head rewritten for
 * the origin, and the proxy's own responses.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "socks5d/http.h"

#define LEN(a) (sizeof(a) / sizeof((a)[0]))

/* One request at a time, so tests can look at it after parse_text. */
static struct http_request req;
/* The last parsed text, kept alive while req points into it. */
static uint8_t *parsed;

/*
 * Parse len bytes from a heap buffer of exactly that size, so ASan
 * catches any read past len. The buffer lives until the next call.
 */
static enum http_status
parse_bytes(const void *data, size_t len)
{
	free(parsed);
	parsed = malloc(len > 0 ? len : 1);
	assert_non_null(parsed);
	memcpy(parsed, data, len);
	return http_parse_request(parsed, len, &req);
}

static enum http_status
parse_text(const char *text)
{
	return parse_bytes(text, strlen(text));
}

static void
expect_status(const char *text, enum http_status want)
{
	enum http_status got = parse_text(text);

	if (got != want)
		fail_msg("\"%s\": status %d, want %d", text, got, want);
}

/* The whole head parses, and so does it with a body behind it. */
static void
expect_ok(const char *text)
{
	char with_body[1024];

	expect_status(text, HTTP_OK);
	assert_int_equal(req.head_len, strlen(text));
	snprintf(with_body, sizeof(with_body), "%s\r\nGET x\r\n", text);
	expect_status(with_body, HTTP_OK);
	assert_int_equal(req.head_len, strlen(text));
}

static void
assert_field(size_t k, const char *name, const char *value)
{
	assert_true(k < req.nfields);
	assert_int_equal(req.fields[k].name_len, strlen(name));
	assert_memory_equal(req.fields[k].name, name, strlen(name));
	assert_int_equal(req.fields[k].value_len, strlen(value));
	assert_memory_equal(req.fields[k].value, value, strlen(value));
}

static void
test_connect_ipv4(void **state)
{
	static const uint8_t want[4] = { 10, 1, 2, 3 };

	(void)state;
	expect_ok("CONNECT 10.1.2.3:443 HTTP/1.1\r\nHost: 10.1.2.3:443\r\n"
	    "\r\n");
	assert_int_equal(req.form, HTTP_FORM_AUTHORITY);
	assert_int_equal(req.dst.atyp, SOCKS5_ATYP_IPV4);
	assert_memory_equal(req.dst.u.ipv4, want, 4);
	assert_int_equal(req.dst.port, 443);
	assert_null(req.path);
	assert_int_equal(req.method_len, 7);
	assert_memory_equal(req.method, "CONNECT", 7);
	assert_int_equal(req.version_minor, 1);
	assert_int_equal(req.nfields, 1);
	assert_field(0, "Host", "10.1.2.3:443");
	assert_int_equal(req.content_length, -1);
	assert_false(req.chunked);
}

static void
test_connect_ipv6(void **state)
{
	uint8_t want[16];

	(void)state;
	assert_int_equal(inet_pton(AF_INET6, "2001:db8::1", want), 1);
	expect_ok("CONNECT [2001:db8::1]:8443 HTTP/1.0\r\n\r\n");
	assert_int_equal(req.dst.atyp, SOCKS5_ATYP_IPV6);
	assert_memory_equal(req.dst.u.ipv6, want, 16);
	assert_int_equal(req.dst.port, 8443);
	assert_int_equal(req.version_minor, 0);
	assert_int_equal(req.nfields, 0);
}

static void
test_connect_name(void **state)
{
	char text[400], name[300];

	(void)state;
	expect_ok("CONNECT Example.COM:65535 HTTP/1.1\r\n"
	    "User-Agent: curl/8.0\r\n\r\n");
	assert_int_equal(req.dst.atyp, SOCKS5_ATYP_NAME);
	assert_string_equal(req.dst.u.name, "Example.COM");
	assert_int_equal(req.dst.port, 65535);
	expect_ok("CONNECT my_host-1.local.:1 HTTP/1.1\r\n\r\n");
	assert_string_equal(req.dst.u.name, "my_host-1.local.");
	assert_int_equal(req.dst.port, 1);

	/* HTTP_HOST_MAX bytes is the longest name. */
	memset(name, 'a', sizeof(name));
	snprintf(text, sizeof(text), "CONNECT %.*s:443 HTTP/1.1\r\n\r\n",
	    HTTP_HOST_MAX, name);
	expect_ok(text);
	assert_int_equal(strlen(req.dst.u.name), HTTP_HOST_MAX);
	snprintf(text, sizeof(text), "CONNECT %.*s:443 HTTP/1.1\r\n\r\n",
	    HTTP_HOST_MAX + 1, name);
	expect_status(text, HTTP_BAD_REQUEST);
}

static void
test_connect_bad(void **state)
{
	static const char *const targets[] = {
		"example.com", "example.com:", "example.com:0",
		"example.com:65536", "example.com:+443", "example.com:-1",
		"example.com:44a", ":443", "[::1]", "[::1]443", "[]:443",
		"[::1:443", "[fe80::1%25eth0]:443", "[v1.x]:443",
		"[1.2.3.4]:443", "user@example.com:443", "/index.html",
		"*", "http://example.com/", "exa%6dple.com:443",
		"a:b:443", "2130706433:443", "10.1:443", "01.2.3.4:443",
		"1.2.3.256:443", "1.2.3.4.:443", "host.0x7f:443",
	};
	char text[200];

	(void)state;
	for (size_t i = 0; i < LEN(targets); i++) {
		snprintf(text, sizeof(text), "CONNECT %s HTTP/1.1\r\n\r\n",
		    targets[i]);
		expect_status(text, HTTP_BAD_REQUEST);
	}
	/* CONNECT is case-sensitive; any other method is not CONNECT. */
	expect_status("connect example.com:443 HTTP/1.1\r\n\r\n",
	    HTTP_BAD_REQUEST);
	expect_status("GET example.com:443 HTTP/1.1\r\n\r\n",
	    HTTP_BAD_REQUEST);
}

static void
test_absolute(void **state)
{
	static const uint8_t lo[4] = { 127, 0, 0, 1 };
	uint8_t v6[16];

	(void)state;
	expect_ok("GET http://example.com/index.html?q=1&r=/x HTTP/1.1\r\n"
	    "Host: example.com\r\n\r\n");
	assert_int_equal(req.form, HTTP_FORM_ABSOLUTE);
	assert_int_equal(req.dst.atyp, SOCKS5_ATYP_NAME);
	assert_string_equal(req.dst.u.name, "example.com");
	assert_int_equal(req.dst.port, 80);
	assert_int_equal(req.path_len, strlen("/index.html?q=1&r=/x"));
	assert_memory_equal(req.path, "/index.html?q=1&r=/x", req.path_len);

	expect_ok("POST http://example.com:8080 HTTP/1.1\r\n\r\n");
	assert_int_equal(req.dst.port, 8080);
	assert_int_equal(req.path_len, 1);
	assert_memory_equal(req.path, "/", 1);

	/* Scheme case does not matter; a query without a path is kept. */
	expect_ok("GET HTTP://Example.COM?x=1 HTTP/1.1\r\n\r\n");
	assert_string_equal(req.dst.u.name, "Example.COM");
	assert_int_equal(req.path_len, 4);
	assert_memory_equal(req.path, "?x=1", 4);

	expect_ok("GET http://127.0.0.1/ HTTP/1.0\r\n\r\n");
	assert_int_equal(req.dst.atyp, SOCKS5_ATYP_IPV4);
	assert_memory_equal(req.dst.u.ipv4, lo, 4);
	assert_int_equal(req.dst.port, 80);

	assert_int_equal(inet_pton(AF_INET6, "::1", v6), 1);
	expect_ok("GET http://[::1]:81/a/b@c HTTP/1.1\r\n\r\n");
	assert_int_equal(req.dst.atyp, SOCKS5_ATYP_IPV6);
	assert_memory_equal(req.dst.u.ipv6, v6, 16);
	assert_int_equal(req.dst.port, 81);
	assert_int_equal(req.path_len, 6);
	assert_memory_equal(req.path, "/a/b@c", 6);
}

static void
test_absolute_bad(void **state)
{
	static const char *const targets[] = {
		"https://example.com/", "ftp://example.com/",
		"http:example.com/", "http:/example.com/", "http://",
		"http:///x", "http://:80/", "http://user@example.com/",
		"http://user:pw@example.com/", "http://example.com:/",
		"http://example.com:0/", "http://example.com:65536/",
		"http://example.com:8o/", "http://exa%6dple.com/",
		"http://example.com/#frag", "http://example.com#frag",
		"http://2130706433/", "http://10.1/", "http://01.2.3.4/",
		"http://1.2.3.4./", "http://a.0x7f/", "http://[::1/",
		"http://[::1]x/", "example.com:80", "example.com/x",
		"*x", "h",
	};
	char text[200];

	(void)state;
	for (size_t i = 0; i < LEN(targets); i++) {
		snprintf(text, sizeof(text), "GET %s HTTP/1.1\r\n\r\n",
		    targets[i]);
		expect_status(text, HTTP_BAD_REQUEST);
	}
}

static void
test_not_proxy(void **state)
{
	(void)state;
	expect_status("GET /x HTTP/1.1\r\nHost: example.com\r\n\r\n",
	    HTTP_NOT_PROXY);
	expect_status("GET / HTTP/1.0\r\n\r\n", HTTP_NOT_PROXY);
	expect_status("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_NOT_PROXY);
	assert_int_equal(http_status_code(HTTP_NOT_PROXY), 400);
}

static void
test_version(void **state)
{
	static const char *const unsupported[] = {
		"HTTP/2.0", "HTTP/0.9", "HTTP/1.2", "HTTP/3.1",
	};
	static const char *const garbage[] = {
		"HTTP/1.10", "http/1.1", "HTTP/1", "HTTP/1.", "HTTP/11",
		"HTTP/1.1 ", "HTTP/1.x", "HTTPS/1.1", "", "HTTP/a.1",
	};
	char text[200];

	(void)state;
	for (size_t i = 0; i < LEN(unsupported); i++) {
		snprintf(text, sizeof(text), "GET http://a/ %s\r\n\r\n",
		    unsupported[i]);
		expect_status(text, HTTP_BAD_VERSION);
	}
	/* The version is judged before the target is. */
	expect_status("GET /x HTTP/2.0\r\n\r\n", HTTP_BAD_VERSION);
	for (size_t i = 0; i < LEN(garbage); i++) {
		snprintf(text, sizeof(text), "GET http://a/ %s\r\n\r\n",
		    garbage[i]);
		expect_status(text, HTTP_BAD_REQUEST);
	}
	assert_int_equal(http_status_code(HTTP_BAD_VERSION), 505);
}

static void
test_request_line_bad(void **state)
{
	static const char *const lines[] = {
		"GET  http://a/ HTTP/1.1", "GET http://a/  HTTP/1.1",
		"GET\thttp://a/ HTTP/1.1", "GET http://a/\tHTTP/1.1",
		" GET http://a/ HTTP/1.1", "GET", "GET http://a/",
		"GET http://a/ ", "G(T http://a/ HTTP/1.1",
		"GET http://a/\x80 HTTP/1.1", "GET http://a/\x7f HTTP/1.1",
		"GET http://a/x HTTP/1.1 x",
	};
	char text[200];

	(void)state;
	for (size_t i = 0; i < LEN(lines); i++) {
		snprintf(text, sizeof(text), "%s\r\n\r\n", lines[i]);
		expect_status(text, HTTP_BAD_REQUEST);
	}
	/* A NUL is no end of string here. */
	assert_int_equal(parse_bytes("GET http://a/\0 HTTP/1.1\r\n\r\n", 27),
	    HTTP_BAD_REQUEST);
	assert_int_equal(parse_bytes("GET http://a/ HTTP/1.1\r\nX: \0\r\n\r\n",
	    32), HTTP_BAD_REQUEST);
}

/* Every strict prefix of a good head is incomplete, never bad. */
static void
test_every_prefix(void **state)
{
	static const char *const texts[] = {
		"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n"
		"Proxy-Authorization: Basic dTpw\r\n\r\n",
		"GET http://[::1]:8080/a?b HTTP/1.0\nAccept: */*\n\n",
		"\r\n\nPOST http://x/ HTTP/1.1\r\nContent-Length: 10\r\n"
		"Transfer-Encoding-X:\r\nX:  a b \t\r\n\r\n",
		"PUT http://x/ HTTP/1.1\nTransfer-Encoding: gzip\r\n"
		"Transfer-Encoding: chunked\n\r\n",
	};

	(void)state;
	for (size_t t = 0; t < LEN(texts); t++) {
		size_t len = strlen(texts[t]);

		for (size_t i = 0; i < len; i++)
			if (parse_bytes(texts[t], i) != HTTP_INCOMPLETE)
				fail_msg("text %zu cut at %zu: not incomplete",
				    t, i);
		expect_ok(texts[t]);
	}
}

static void
test_line_ends(void **state)
{
	(void)state;
	/* Bare LF anywhere, mixed with CRLF. */
	expect_ok("GET http://a/ HTTP/1.1\nHost: a\r\nX: y\n\n");
	assert_int_equal(req.nfields, 2);
	assert_field(1, "X", "y");
	expect_ok("GET http://a/ HTTP/1.1\r\n\n");
	/* Leading empty lines are skipped, and counted in head_len. */
	expect_ok("\r\n\n\r\nGET http://a/ HTTP/1.1\r\n\r\n");
	assert_memory_equal(req.method, "GET", 3);

	/* A CR is only ever the first half of a line end. */
	expect_status("GET http://a/ HTTP/1.1\rX: y\r\n\r\n", HTTP_BAD_REQUEST);
	expect_status("GET http://a/ HTTP/1.1\r\r\n\r\n", HTTP_BAD_REQUEST);
	expect_status("GET http://a/ HTTP/1.1\r\nX: a\rb\r\n\r\n",
	    HTTP_BAD_REQUEST);
	expect_status("GET http://a/ HTTP/1.1\r\nX: y\r\n\r\r\n",
	    HTTP_BAD_REQUEST);
	expect_status("\rGET http://a/ HTTP/1.1\r\n\r\n", HTTP_BAD_REQUEST);
	expect_status("GET http://a/\r HTTP/1.1\r\n\r\n", HTTP_BAD_REQUEST);
	/* Final as soon as the byte after the CR is there. */
	expect_status("GET http://a/ HTTP/1.1\r\nX: a\rb", HTTP_BAD_REQUEST);
	expect_status("GET http://a/ HTTP/1.1\r\nX: a\r", HTTP_INCOMPLETE);
}

static void
test_fields(void **state)
{
	(void)state;
	expect_ok("GET http://a/ HTTP/1.1\r\nA:b\r\nB:  spaced out \t\r\n"
	    "C:\r\nD: \t \r\nE: caf\xc3\xa9\tx\r\n\r\n");
	assert_int_equal(req.nfields, 5);
	assert_field(0, "A", "b");
	assert_field(1, "B", "spaced out");
	assert_field(2, "C", "");
	assert_field(3, "D", "");
	assert_field(4, "E", "caf\xc3\xa9\tx");

	/* obs-fold, also right after the request line. */
	expect_status("GET http://a/ HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
	    HTTP_BAD_REQUEST);
	expect_status("GET http://a/ HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n",
	    HTTP_BAD_REQUEST);
	expect_status("GET http://a/ HTTP/1.1\r\n Host: a\r\n\r\n",
	    HTTP_BAD_REQUEST);
	/* Whitespace before the colon, no name, no colon, bad name bytes. */
	expect_status("GET http://a/ HTTP/1.1\r\nHost : a\r\n\r\n",
	    HTTP_BAD_REQUEST);
	expect_status("GET http://a/ HTTP/1.1\r\nHost\t: a\r\n\r\n",
	    HTTP_BAD_REQUEST);
	expect_status("GET http://a/ HTTP/1.1\r\n: a\r\n\r\n",
	    HTTP_BAD_REQUEST);
	expect_status("GET http://a/ HTTP/1.1\r\nHost a\r\n\r\n",
	    HTTP_BAD_REQUEST);
	expect_status("GET http://a/ HTTP/1.1\r\nX-\xc3\xa9: a\r\n\r\n",
	    HTTP_BAD_REQUEST);
	expect_status("GET http://a/ HTTP/1.1\r\nX(y): a\r\n\r\n",
	    HTTP_BAD_REQUEST);
	/* Controls other than HT in a value. */
	expect_status("GET http://a/ HTTP/1.1\r\nX: a\x01\r\n\r\n",
	    HTTP_BAD_REQUEST);
	expect_status("GET http://a/ HTTP/1.1\r\nX: a\x7f\r\n\r\n",
	    HTTP_BAD_REQUEST);
	expect_status("GET http://a/ HTTP/1.1\r\nX: a\x1b[0m\r\n\r\n",
	    HTTP_BAD_REQUEST);
}

static void
test_framing(void **state)
{
	(void)state;
	expect_ok("POST http://a/ HTTP/1.1\r\nContent-Length: 0042\r\n\r\n");
	assert_int_equal(req.content_length, 42);
	assert_false(req.chunked);
	expect_ok("POST http://a/ HTTP/1.1\r\n"
	    "content-length: 9223372036854775807\r\n\r\n");
	assert_int_equal(req.content_length, INT64_MAX);
	expect_ok("POST http://a/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
	    "\r\n");
	assert_true(req.chunked);
	assert_int_equal(req.content_length, -1);
	expect_ok("POST http://a/ HTTP/1.1\r\nTransfer-Encoding: gzip ,"
	    "CHUNKED\r\n\r\n");
	assert_true(req.chunked);
	/* Several fields make one list. */
	expect_ok("POST http://a/ HTTP/1.1\r\nTransfer-Encoding: gzip\r\n"
	    "X: y\r\nTransfer-Encoding: chunked\r\n\r\n");
	assert_true(req.chunked);
}

/* Each way one message could be framed two ways by two parsers. */
static void
test_smuggling(void **state)
{
	static const char *const heads[] = {
		"Content-Length: 5\r\nContent-Length: 5",
		"Content-Length: 5\r\nContent-Length: 6",
		"Content-Length: 5, 5",
		"Content-Length: +5",
		"Content-Length: -1",
		"Content-Length: 0x5",
		"Content-Length: 5 5",
		"Content-Length: 5;",
		"Content-Length:",
		"Content-Length: 9223372036854775808",
		"Content-Length: 99999999999999999999999",
		"Content-Length: 5\r\nTransfer-Encoding: chunked",
		"Transfer-Encoding: chunked\r\nContent-Length: 5",
		"Transfer-Encoding: chunked\r\ncontent-length: 0",
		"Transfer-Encoding: gzip",
		"Transfer-Encoding: chunked, gzip",
		"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip",
		"Transfer-Encoding: chunked, chunked",
		"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
		"Transfer-Encoding: chunked,",
		"Transfer-Encoding: ,chunked",
		"Transfer-Encoding: gzip,,chunked",
		"Transfer-Encoding:",
		"Transfer-Encoding: chunked;q=1",
		"Transfer-Encoding: \"chunked\"",
		"Transfer-Encoding : chunked",
		"Transfer-Encoding\t: chunked",
		"Transfer-Encoding: x\r\n chunked",
		"Transfer-Encoding: \013chunked",
		"Host: a\r\nHost: a",
		"Host: a\r\nhost: b",
	};
	char text[300];

	(void)state;
	for (size_t i = 0; i < LEN(heads); i++) {
		snprintf(text, sizeof(text),
		    "POST http://a/ HTTP/1.1\r\n%s\r\n\r\n", heads[i]);
		expect_status(text, HTTP_BAD_REQUEST);
	}
	/* HTTP/1.0 has no chunked coding to end a body with. */
	expect_status("POST http://a/ HTTP/1.0\r\nTransfer-Encoding: chunked"
	    "\r\n\r\n", HTTP_BAD_REQUEST);
	/* A Host that differs from the URI is allowed: the URI wins. */
	expect_ok("GET http://a/ HTTP/1.1\r\nHost: b\r\n\r\n");
	assert_string_equal(req.dst.u.name, "a");
	assert_int_equal(http_status_code(HTTP_BAD_REQUEST), 400);
}

/* Write a head of exactly len bytes: one long field, then the end. */
static char *
make_head(size_t len, const char *eol)
{
	static const char line[] = "GET http://a/ HTTP/1.1\r\nX: ";
	size_t fill = len - strlen(line) - 2 * strlen(eol);
	char *text = malloc(len + 1);

	assert_non_null(text);
	memcpy(text, line, strlen(line));
	memset(text + strlen(line), 'x', fill);
	snprintf(text + strlen(line) + fill, len + 1 - strlen(line) - fill,
	    "%s%s", eol, eol);
	assert_int_equal(strlen(text), len);
	return text;
}

static void
test_too_large(void **state)
{
	char *text;

	(void)state;
	text = make_head(HTTP_HEAD_MAX, "\r\n");
	expect_status(text, HTTP_OK);
	assert_int_equal(req.head_len, HTTP_HEAD_MAX);
	/* One byte short of the end: the head cannot end in time. */
	assert_int_equal(parse_bytes(text, HTTP_HEAD_MAX - 1),
	    HTTP_INCOMPLETE);
	free(text);

	text = make_head(HTTP_HEAD_MAX + 1, "\n");
	expect_status(text, HTTP_TOO_LARGE);
	assert_int_equal(parse_bytes(text, HTTP_HEAD_MAX), HTTP_TOO_LARGE);
	assert_int_equal(parse_bytes(text, HTTP_HEAD_MAX - 1),
	    HTTP_INCOMPLETE);
	free(text);

	/* No end of head within the limit, however long the input. */
	text = make_head(3 * HTTP_HEAD_MAX, "\r\n");
	expect_status(text, HTTP_TOO_LARGE);
	/* ...unless the head is bad before that. */
	text[10] = '\r';
	expect_status(text, HTTP_BAD_REQUEST);
	free(text);
	assert_int_equal(http_status_code(HTTP_TOO_LARGE), 431);
}

/* A head with n fields "F<k>: v". */
static char *
make_fields(size_t n)
{
	size_t cap = 64 + n * 16, off;
	char *text = malloc(cap);

	assert_non_null(text);
	off = (size_t)snprintf(text, cap, "GET http://a/ HTTP/1.1\r\n");
	for (size_t k = 0; k < n; k++)
		off += (size_t)snprintf(text + off, cap - off, "F%zu: v\r\n",
		    k);
	snprintf(text + off, cap - off, "\r\n");
	return text;
}

static void
test_too_many_fields(void **state)
{
	char *text;
	size_t cut;

	(void)state;
	text = make_fields(HTTP_HEADERS_MAX);
	expect_status(text, HTTP_OK);
	assert_int_equal(req.nfields, HTTP_HEADERS_MAX);
	free(text);

	text = make_fields(HTTP_HEADERS_MAX + 1);
	expect_status(text, HTTP_TOO_LARGE);
	/* Final from the first byte of the field too many. */
	cut = (size_t)(strstr(text, "F100:") - text);
	assert_int_equal(parse_bytes(text, cut), HTTP_INCOMPLETE);
	assert_int_equal(parse_bytes(text, cut + 1), HTTP_TOO_LARGE);
	free(text);
}

static void
test_find_field(void **state)
{
	const struct http_field *f;

	(void)state;
	expect_ok("GET http://a/ HTTP/1.1\r\nX-A: 1\r\nx-a: 2\r\n"
	    "Connection: keep-alive,\tUpgrade , ,x\r\n\r\n");
	f = http_find_field(&req, "X-a");
	assert_non_null(f);
	assert_int_equal(f->value_len, 1);
	assert_memory_equal(f->value, "1", 1);
	assert_null(http_find_field(&req, "X"));
	assert_null(http_find_field(&req, "X-A-B"));
	assert_null(http_find_field(&req, ""));

	f = http_find_field(&req, "connection");
	assert_non_null(f);
	assert_true(http_list_has(f->value, f->value_len, "upgrade"));
	assert_true(http_list_has(f->value, f->value_len, "KEEP-ALIVE"));
	assert_true(http_list_has(f->value, f->value_len, "x"));
	assert_true(http_list_has(f->value, f->value_len, ""));
	assert_false(http_list_has(f->value, f->value_len, "keep"));
	assert_false(http_list_has(f->value, f->value_len, "alive"));
	assert_false(http_list_has("a", 0, "a"));
	assert_false(http_list_has("upgrades", 8, "upgrade"));
}

/* Parse a request with the given Proxy-Authorization lines. */
static bool
credentials(const char *fields, char *user, char *password)
{
	char text[2048];

	snprintf(text, sizeof(text), "CONNECT a:1 HTTP/1.1\r\n%s\r\n",
	    fields);
	expect_status(text, HTTP_OK);
	memset(user, 'U', 256);
	memset(password, 'P', 256);
	return http_basic_credentials(&req, user, password);
}

/* "Proxy-Authorization: Basic " and base64 of len bytes of plain. */
static void
basic_field(char *out, size_t outlen, const void *plain, size_t len)
{
	char b64[1024];

	assert_true(sodium_base64_ENCODED_LEN(len,
	    sodium_base64_VARIANT_ORIGINAL) <= sizeof(b64));
	sodium_bin2base64(b64, sizeof(b64), plain, len,
	    sodium_base64_VARIANT_ORIGINAL);
	snprintf(out, outlen, "Proxy-Authorization: Basic %s\r\n", b64);
}

static void
test_basic_credentials(void **state)
{
	char user[256], password[256], field[1100], plain[600];

	(void)state;
	/* RFC 7617's example. */
	assert_true(credentials("Proxy-Authorization: Basic "
	    "QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n", user, password));
	assert_string_equal(user, "Aladdin");
	assert_string_equal(password, "open sesame");
	/* The scheme is case-insensitive; the password may hold colons. */
	basic_field(field, sizeof(field), "u:p:w", 5);
	field[21] = 'b';
	assert_true(credentials(field, user, password));
	assert_string_equal(user, "u");
	assert_string_equal(password, "p:w");
	/* Empty parts are syntax, not this codec's business to refuse. */
	basic_field(field, sizeof(field), ":", 1);
	assert_true(credentials(field, user, password));
	assert_string_equal(user, "");
	assert_string_equal(password, "");

	/* The longest of each. */
	memset(plain, 'a', sizeof(plain));
	plain[HTTP_CREDENTIAL_MAX] = ':';
	basic_field(field, sizeof(field), plain, 2 * HTTP_CREDENTIAL_MAX + 1);
	assert_true(credentials(field, user, password));
	assert_int_equal(strlen(user), HTTP_CREDENTIAL_MAX);
	assert_int_equal(strlen(password), HTTP_CREDENTIAL_MAX);
	/* One more byte of user, or of password. */
	plain[HTTP_CREDENTIAL_MAX] = 'a';
	plain[HTTP_CREDENTIAL_MAX + 1] = ':';
	basic_field(field, sizeof(field), plain, HTTP_CREDENTIAL_MAX + 3);
	assert_false(credentials(field, user, password));
	assert_string_equal(user, "");
	assert_string_equal(password, "");
	plain[HTTP_CREDENTIAL_MAX + 1] = 'a';
	plain[0] = ':';
	basic_field(field, sizeof(field), plain, HTTP_CREDENTIAL_MAX + 2);
	assert_false(credentials(field, user, password));
	basic_field(field, sizeof(field), plain, 2 * HTTP_CREDENTIAL_MAX + 2);
	assert_false(credentials(field, user, password));

	/* Absent, other schemes, no credentials. */
	assert_false(credentials("", user, password));
	assert_false(credentials("Authorization: Basic dTpw\r\n", user,
	    password));
	assert_false(credentials("Proxy-Authorization: Bearer dTpw\r\n", user,
	    password));
	assert_false(credentials("Proxy-Authorization: Basicx dTpw\r\n", user,
	    password));
	assert_false(credentials("Proxy-Authorization: Basic\r\n", user,
	    password));
	assert_false(credentials("Proxy-Authorization: Basic \r\n", user,
	    password));
	/* Bad base64: bad bytes, no padding, bits left over, two tokens. */
	assert_false(credentials("Proxy-Authorization: Basic dTp!\r\n", user,
	    password));
	assert_false(credentials("Proxy-Authorization: Basic dTpwdw\r\n", user,
	    password));
	assert_false(credentials("Proxy-Authorization: Basic dTpwdx==\r\n",
	    user, password));
	assert_false(credentials("Proxy-Authorization: Basic dTpw dTpw\r\n",
	    user, password));
	assert_false(credentials("Proxy-Authorization: Basic dT pw\r\n",
	    user, password));
	/* No colon; a NUL in either part. */
	basic_field(field, sizeof(field), "user", 4);
	assert_false(credentials(field, user, password));
	basic_field(field, sizeof(field), "u\0:p", 4);
	assert_false(credentials(field, user, password));
	basic_field(field, sizeof(field), "u:p\0", 4);
	assert_false(credentials(field, user, password));
	/* Two fields: which one would be checked? */
	assert_false(credentials("Proxy-Authorization: Basic dTpw\r\n"
	    "Proxy-Authorization: Basic dTpw\r\n", user, password));
	/* Extra spaces before the token are fine. */
	assert_true(credentials("Proxy-Authorization:  BASIC   dTpw  \r\n",
	    user, password));
	assert_string_equal(user, "u");
	assert_string_equal(password, "p");
}

/* Encode the origin head of text into a buffer of exactly the needed
 * size, check every smaller buffer fails, and compare with want. */
static void
expect_origin(const char *text, const char *via, const char *want)
{
	uint8_t out[HTTP_ORIGIN_HEAD_MAX], *exact;
	size_t len, i;

	expect_status(text, HTTP_OK);
	len = http_encode_origin_request(&req, via, out, sizeof(out));
	if (len != strlen(want) || memcmp(out, want, len) != 0)
		fail_msg("origin head\n%.*s\nwant\n%s", (int)len, out, want);
	exact = malloc(len);
	assert_non_null(exact);
	assert_int_equal(http_encode_origin_request(&req, via, exact, len),
	    len);
	assert_memory_equal(exact, want, len);
	for (i = 0; i < len; i++)
		assert_int_equal(http_encode_origin_request(&req, via, exact,
		    i), 0);
	free(exact);
}

static void
test_origin_hop_by_hop(void **state)
{
	(void)state;
	expect_origin("POST http://example.com/submit?x=1 HTTP/1.1\r\n"
	    "Host: example.com\r\n"
	    "User-Agent: test\r\n"
	    "Proxy-Authorization: Basic dTpw\r\n"
	    "Proxy-Connection: keep-alive\r\n"
	    "Connection: keep-alive, X-Hop\r\n"
	    "Keep-Alive: timeout=5\r\n"
	    "TE: trailers\r\n"
	    "Trailer: X-Checksum\r\n"
	    "Upgrade: h2c\r\n"
	    "x-hop: 1\r\n"
	    "Connection: x-other\r\n"
	    "X-Other: 2\r\n"
	    "Content-Length:   3\r\n"
	    "Accept: */*\r\n"
	    "\r\n",
	    "socks5d",
	    "POST /submit?x=1 HTTP/1.1\r\n"
	    "Host: example.com\r\n"
	    "User-Agent: test\r\n"
	    "Content-Length: 3\r\n"
	    "Accept: */*\r\n"
	    "Via: 1.1 socks5d\r\n"
	    "Connection: close\r\n"
	    "\r\n");
}

/* Connection may not take the framing away from the origin. */
static void
test_origin_keeps_framing(void **state)
{
	(void)state;
	expect_origin("POST http://a/ HTTP/1.1\n"
	    "Connection: Content-Length, Transfer-Encoding, Host\n"
	    "Content-Length: 7\n\n",
	    NULL,
	    "POST / HTTP/1.1\r\n"
	    "Host: a\r\n"
	    "Content-Length: 7\r\n"
	    "Connection: close\r\n"
	    "\r\n");
	expect_origin("POST http://a/ HTTP/1.1\n"
	    "Transfer-Encoding: gzip\n"
	    "Connection: transfer-encoding\n"
	    "Transfer-Encoding: chunked\n\n",
	    NULL,
	    "POST / HTTP/1.1\r\n"
	    "Host: a\r\n"
	    "Transfer-Encoding: gzip\r\n"
	    "Transfer-Encoding: chunked\r\n"
	    "Connection: close\r\n"
	    "\r\n");
}

static void
test_origin_host(void **state)
{
	(void)state;
	/* Added when absent, with the port when not 80. */
	expect_origin("GET http://example.com:8080 HTTP/1.1\r\n\r\n", NULL,
	    "GET / HTTP/1.1\r\nHost: example.com:8080\r\n"
	    "Connection: close\r\n\r\n");
	expect_origin("GET http://example.com:80/ HTTP/1.1\r\n\r\n", NULL,
	    "GET / HTTP/1.1\r\nHost: example.com\r\n"
	    "Connection: close\r\n\r\n");
	/* Replaced when it differs: the URI wins. */
	expect_origin("GET http://good.example/x HTTP/1.1\r\nA: 1\r\n"
	    "Host: evil.example\r\nB: 2\r\n\r\n", NULL,
	    "GET /x HTTP/1.1\r\nHost: good.example\r\nA: 1\r\nB: 2\r\n"
	    "Connection: close\r\n\r\n");
	/* Addresses, and a query without a path. */
	expect_origin("GET http://[2001:db8:0:0::1]:81?q HTTP/1.1\r\n\r\n",
	    NULL,
	    "GET /?q HTTP/1.1\r\nHost: [2001:db8::1]:81\r\n"
	    "Connection: close\r\n\r\n");
	expect_origin("GET http://192.0.2.1/ HTTP/1.1\r\n\r\n", NULL,
	    "GET / HTTP/1.1\r\nHost: 192.0.2.1\r\n"
	    "Connection: close\r\n\r\n");
}

static void
test_origin_via(void **state)
{
	char via[HTTP_VIA_MAX + 2];
	uint8_t out[HTTP_ORIGIN_HEAD_MAX];

	(void)state;
	/* An existing Via stays; ours goes after it, with the version we
	 * received. */
	expect_origin("GET http://a/ HTTP/1.0\r\nVia: 1.1 other\r\n\r\n",
	    "proxy.example:3128",
	    "GET / HTTP/1.1\r\nHost: a\r\nVia: 1.1 other\r\n"
	    "Via: 1.0 proxy.example:3128\r\nConnection: close\r\n\r\n");

	/* A via that would break the head is refused. */
	expect_status("GET http://a/ HTTP/1.1\r\n\r\n", HTTP_OK);
	assert_int_equal(http_encode_origin_request(&req, "a\r\nX: y", out,
	    sizeof(out)), 0);
	assert_int_equal(http_encode_origin_request(&req, "", out,
	    sizeof(out)), 0);
	memset(via, 'v', sizeof(via));
	via[HTTP_VIA_MAX] = '\0';
	assert_int_not_equal(http_encode_origin_request(&req, via, out,
	    sizeof(out)), 0);
	via[HTTP_VIA_MAX] = 'v';
	via[HTTP_VIA_MAX + 1] = '\0';
	assert_int_equal(http_encode_origin_request(&req, via, out,
	    sizeof(out)), 0);

	/* CONNECT has no origin head. */
	expect_status("CONNECT a:1 HTTP/1.1\r\n\r\n", HTTP_OK);
	assert_int_equal(http_encode_origin_request(&req, NULL, out,
	    sizeof(out)), 0);
}

static void
test_origin_websocket(void **state)
{
	(void)state;
	expect_origin("GET http://ws.example/chat HTTP/1.1\r\n"
	    "Host: ws.example\r\n"
	    "Upgrade: websocket\r\n"
	    "Connection: keep-alive, Upgrade\r\n"
	    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	    "Sec-WebSocket-Version: 13\r\n"
	    "Proxy-Connection: keep-alive\r\n"
	    "\r\n",
	    "socks5d",
	    "GET /chat HTTP/1.1\r\n"
	    "Host: ws.example\r\n"
	    "Upgrade: websocket\r\n"
	    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	    "Sec-WebSocket-Version: 13\r\n"
	    "Connection: Upgrade\r\n"
	    "Via: 1.1 socks5d\r\n"
	    "\r\n");
	assert_true(http_is_websocket(&req));

	/* Not a WebSocket upgrade: Upgrade goes, Connection is close. */
	expect_status("GET http://a/ HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
	    HTTP_OK);
	assert_false(http_is_websocket(&req));
	expect_status("GET http://a/ HTTP/1.1\r\nUpgrade: h2c\r\n"
	    "Connection: upgrade\r\n\r\n", HTTP_OK);
	assert_false(http_is_websocket(&req));
	expect_status("GET http://a/ HTTP/1.0\r\nUpgrade: websocket\r\n"
	    "Connection: upgrade\r\n\r\n", HTTP_OK);
	assert_false(http_is_websocket(&req));
	expect_origin("GET http://a/ HTTP/1.1\r\nUpgrade: WebSocket\r\n"
	    "Connection: close\r\nConnection: UPGRADE\r\n\r\n", NULL,
	    "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: WebSocket\r\n"
	    "Connection: Upgrade\r\n\r\n");
	assert_true(http_is_websocket(&req));
}

/* The worst a head can grow: as many short fields as allowed, LF line
 * ends, an IPv6 host that formats longer than written, the longest via. */
static void
test_origin_worst_case(void **state)
{
	char via[HTTP_VIA_MAX + 1], *text;
	uint8_t out[HTTP_ORIGIN_HEAD_MAX];
	size_t off = 0, len;

	(void)state;
	text = malloc(HTTP_HEAD_MAX + 1);
	assert_non_null(text);
	off += (size_t)snprintf(text, HTTP_HEAD_MAX + 1,
	    "GET http://[::ffff:0:0]:1?");
	while (off < HTTP_HEAD_MAX - 10 - HTTP_HEADERS_MAX * 3 - 1)
		text[off++] = 'q';
	off += (size_t)snprintf(text + off, HTTP_HEAD_MAX + 1 - off,
	    " HTTP/1.1\n");
	for (size_t k = 0; k < HTTP_HEADERS_MAX; k++)
		off += (size_t)snprintf(text + off, HTTP_HEAD_MAX + 1 - off,
		    "a:\n");
	text[off++] = '\n';
	text[off] = '\0';
	assert_int_equal(off, HTTP_HEAD_MAX);
	expect_status(text, HTTP_OK);
	memset(via, 'v', HTTP_VIA_MAX);
	via[HTTP_VIA_MAX] = '\0';
	len = http_encode_origin_request(&req, via, out, sizeof(out));
	assert_true(len > HTTP_HEAD_MAX);
	print_message("worst case: %zu bytes\n", len);
	assert_memory_equal(out + len - 4, "\r\n\r\n", 4);
	free(text);
}

/* Check the Content-Length of a response against its body. */
static void
check_response(const uint8_t *out, size_t len, int status)
{
	const char *text = (const char *)out, *body, *cl;
	char line[64];

	snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", status,
	    http_reason(status));
	assert_true(len > strlen(line));
	assert_memory_equal(out, line, strlen(line));
	body = memmem(text, len, "\r\n\r\n", 4);
	assert_non_null(body);
	body += 4;
	if (status < 400) {
		assert_ptr_equal(body, text + len);
		return;
	}
	cl = memmem(text, len, "\r\nContent-Length: ", 18);
	assert_non_null(cl);
	assert_int_equal(strtoul(cl + 18, NULL, 10),
	    (unsigned long)(text + len - body));
	assert_int_equal(text + len - body, strlen(http_reason(status)) + 1);
	assert_memory_equal(body, http_reason(status), text + len - body - 1);
	assert_int_equal(body[text + len - body - 1], '\n');
	assert_non_null(memmem(text, len, "\r\nConnection: close\r\n", 21));
}

static void
test_encode_response(void **state)
{
	static const int statuses[] = {
		200, 400, 403, 405, 407, 431, 500, 501, 502, 503, 504, 505,
	};
	static const char want407[] =
	    "HTTP/1.1 407 Proxy Authentication Required\r\n"
	    "Proxy-Authenticate: Basic realm=\"socks5d\"\r\n"
	    "Content-Type: text/plain\r\n"
	    "Content-Length: 30\r\n"
	    "Connection: close\r\n"
	    "\r\n"
	    "Proxy Authentication Required\n";
	uint8_t out[512];
	size_t len;

	(void)state;
	for (size_t i = 0; i < LEN(statuses); i++) {
		assert_non_null(http_reason(statuses[i]));
		len = http_encode_response(out, sizeof(out), statuses[i],
		    NULL);
		check_response(out, len, statuses[i]);
		len = http_encode_response(out, sizeof(out), statuses[i],
		    "X-A: 1\r\nX-B: 2\r\n");
		check_response(out, len, statuses[i]);
		assert_non_null(memmem(out, len, "\r\nX-A: 1\r\nX-B: 2\r\n",
		    18));
	}
	len = http_encode_response(out, sizeof(out), 200, NULL);
	assert_int_equal(len, strlen("HTTP/1.1 200 Connection established"
	    "\r\n\r\n"));
	assert_memory_equal(out, "HTTP/1.1 200 Connection established\r\n"
	    "\r\n", len);

	len = http_encode_response(out, sizeof(out), 407,
	    "Proxy-Authenticate: Basic realm=\"socks5d\"\r\n");
	assert_int_equal(len, strlen(want407));
	assert_memory_equal(out, want407, len);
	/* Exactly enough, and one byte short. */
	assert_int_equal(http_encode_response(out, len, 407,
	    "Proxy-Authenticate: Basic realm=\"socks5d\"\r\n"), len);
	for (size_t i = 0; i < len; i++)
		assert_int_equal(http_encode_response(out, i, 407,
		    "Proxy-Authenticate: Basic realm=\"socks5d\"\r\n"), 0);

	/* Statuses we never send. */
	assert_null(http_reason(404));
	assert_null(http_reason(0));
	assert_int_equal(http_encode_response(out, sizeof(out), 404, NULL), 0);
	assert_int_equal(http_encode_response(out, sizeof(out), -1, NULL), 0);
}

static void
test_status_code(void **state)
{
	(void)state;
	assert_int_equal(http_status_code(HTTP_OK), 0);
	assert_int_equal(http_status_code(HTTP_INCOMPLETE), 0);
	assert_int_equal(http_status_code(HTTP_BAD_REQUEST), 400);
	assert_int_equal(http_status_code(HTTP_NOT_PROXY), 400);
	assert_int_equal(http_status_code(HTTP_TOO_LARGE), 431);
	assert_int_equal(http_status_code(HTTP_BAD_VERSION), 505);
	assert_string_equal(http_reason(http_status_code(HTTP_TOO_LARGE)),
	    "Request Header Fields Too Large");
}

static int
teardown(void **state)
{
	(void)state;
	free(parsed);
	parsed = NULL;
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_connect_ipv4, teardown),
		cmocka_unit_test_teardown(test_connect_ipv6, teardown),
		cmocka_unit_test_teardown(test_connect_name, teardown),
		cmocka_unit_test_teardown(test_connect_bad, teardown),
		cmocka_unit_test_teardown(test_absolute, teardown),
		cmocka_unit_test_teardown(test_absolute_bad, teardown),
		cmocka_unit_test_teardown(test_not_proxy, teardown),
		cmocka_unit_test_teardown(test_version, teardown),
		cmocka_unit_test_teardown(test_request_line_bad, teardown),
		cmocka_unit_test_teardown(test_every_prefix, teardown),
		cmocka_unit_test_teardown(test_line_ends, teardown),
		cmocka_unit_test_teardown(test_fields, teardown),
		cmocka_unit_test_teardown(test_framing, teardown),
		cmocka_unit_test_teardown(test_smuggling, teardown),
		cmocka_unit_test_teardown(test_too_large, teardown),
		cmocka_unit_test_teardown(test_too_many_fields, teardown),
		cmocka_unit_test_teardown(test_find_field, teardown),
		cmocka_unit_test_teardown(test_basic_credentials, teardown),
		cmocka_unit_test_teardown(test_origin_hop_by_hop, teardown),
		cmocka_unit_test_teardown(test_origin_keeps_framing, teardown),
		cmocka_unit_test_teardown(test_origin_host, teardown),
		cmocka_unit_test_teardown(test_origin_via, teardown),
		cmocka_unit_test_teardown(test_origin_websocket, teardown),
		cmocka_unit_test_teardown(test_origin_worst_case, teardown),
		cmocka_unit_test_teardown(test_encode_response, teardown),
		cmocka_unit_test_teardown(test_status_code, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
