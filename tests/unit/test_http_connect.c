/*
 * Unit tests for the HTTP CONNECT client side (src/http_connect.c): the
 * exact request bytes, Basic credentials, IPv6 brackets, every output
 * size that does not fit, the destinations refused; then the proxy's
 * response head in every prefix, its exact length with the tunnel's bytes
 * behind it, interim heads, malformed status lines and the size bound.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "socks5d/http.h"
#include "socks5d/http_connect.h"

#include "prefixes.h"

/* ---- request encoding ---- */

static struct socks5_addr
name_addr(const char *name, uint16_t port)
{
	struct socks5_addr a;

	memset(&a, 0, sizeof(a));
	a.atyp = SOCKS5_ATYP_NAME;
	a.port = port;
	/* The zeroed struct keeps the NUL after a longest name. */
	memcpy(a.u.name, name, strnlen(name, SOCKS5_NAME_MAX));
	return a;
}

static struct socks5_addr
ip_addr(int family, const char *ip, uint16_t port)
{
	struct socks5_addr a;

	memset(&a, 0, sizeof(a));
	a.atyp = family == AF_INET ? SOCKS5_ATYP_IPV4 : SOCKS5_ATYP_IPV6;
	a.port = port;
	assert_int_equal(inet_pton(family, ip, family == AF_INET ?
	    (void *)a.u.ipv4 : (void *)a.u.ipv6), 1);
	return a;
}

/*
 * Encode into heap buffers of every size up to the head's own, so ASan
 * sees any write past one: each too small gives 0 and, with credentials,
 * leaves the buffer wiped; the exact size and a roomy one give want.
 */
static void
check_encode(const struct socks5_addr *dst, const char *user,
    const char *password, const char *want)
{
	size_t len = strlen(want);
	uint8_t *out;

	for (size_t cap = 0; cap < len; cap++) {
		out = malloc(cap > 0 ? cap : 1);
		assert_non_null(out);
		memset(out, 0xA5, cap);
		assert_int_equal(http_connect_encode(out, cap, dst, user,
		    password), 0);
		for (size_t i = 0; user != NULL && i < cap; i++)
			assert_int_equal(out[i], 0);
		free(out);
	}
	out = malloc(HTTP_CONNECT_REQUEST_MAX);
	assert_non_null(out);
	assert_int_equal(http_connect_encode(out, len, dst, user, password),
	    len);
	assert_memory_equal(out, want, len);
	memset(out, 0xA5, HTTP_CONNECT_REQUEST_MAX);
	assert_int_equal(http_connect_encode(out, HTTP_CONNECT_REQUEST_MAX,
	    dst, user, password), len);
	assert_memory_equal(out, want, len);
	assert_int_equal(out[len], 0xA5);
	free(out);
}

static void
test_encode_name(void **state)
{
	struct socks5_addr a = name_addr("example.com", 443);

	(void)state;
	check_encode(&a, NULL, NULL, "CONNECT example.com:443 HTTP/1.1\r\n"
	    "Host: example.com:443\r\n\r\n");
	a = name_addr("under_score-1.~x%41!$&'()*+,;=", 8080);
	check_encode(&a, NULL, NULL,
	    "CONNECT under_score-1.~x%41!$&'()*+,;=:8080 HTTP/1.1\r\n"
	    "Host: under_score-1.~x%41!$&'()*+,;=:8080\r\n\r\n");
}

static void
test_encode_ipv4(void **state)
{
	struct socks5_addr a = ip_addr(AF_INET, "192.0.2.1", 80);

	(void)state;
	check_encode(&a, NULL, NULL, "CONNECT 192.0.2.1:80 HTTP/1.1\r\n"
	    "Host: 192.0.2.1:80\r\n\r\n");
}

/* RFC 3986 3.2.2: an IPv6 literal goes in brackets, in both places. */
static void
test_encode_ipv6_bracketed(void **state)
{
	struct socks5_addr a = ip_addr(AF_INET6, "2001:db8::1", 443);

	(void)state;
	check_encode(&a, NULL, NULL, "CONNECT [2001:db8::1]:443 HTTP/1.1\r\n"
	    "Host: [2001:db8::1]:443\r\n\r\n");
	a = ip_addr(AF_INET6, "::ffff:192.0.2.1", 0);
	check_encode(&a, NULL, NULL,
	    "CONNECT [::ffff:192.0.2.1]:0 HTTP/1.1\r\n"
	    "Host: [::ffff:192.0.2.1]:0\r\n\r\n");
}

/* RFC 7617's own example. */
static void
test_encode_basic(void **state)
{
	struct socks5_addr a = name_addr("example.com", 443);

	(void)state;
	check_encode(&a, "Aladdin", "open sesame",
	    "CONNECT example.com:443 HTTP/1.1\r\n"
	    "Host: example.com:443\r\n"
	    "Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n"
	    "\r\n");
	/* A NULL password is an empty one; both may be empty (": "). */
	check_encode(&a, "Aladdin", NULL,
	    "CONNECT example.com:443 HTTP/1.1\r\n"
	    "Host: example.com:443\r\n"
	    "Proxy-Authorization: Basic QWxhZGRpbjo=\r\n\r\n");
	check_encode(&a, "", "",
	    "CONNECT example.com:443 HTTP/1.1\r\n"
	    "Host: example.com:443\r\n"
	    "Proxy-Authorization: Basic Og==\r\n\r\n");
	/* A colon in the password is fine: the first one splits. */
	check_encode(&a, "u", "p:w",
	    "CONNECT example.com:443 HTTP/1.1\r\n"
	    "Host: example.com:443\r\n"
	    "Proxy-Authorization: Basic dTpwOnc=\r\n\r\n");
}

/* The longest of everything fills HTTP_CONNECT_REQUEST_MAX exactly, and
 * our own server side reads back the destination and the login. */
static void
test_encode_max_roundtrip(void **state)
{
	char name[SOCKS5_NAME_MAX + 1], user[HTTP_CREDENTIAL_MAX + 1];
	char password[HTTP_CREDENTIAL_MAX + 1];
	char got_user[256], got_password[256];
	uint8_t out[HTTP_CONNECT_REQUEST_MAX];
	struct http_request *req = malloc(sizeof(*req));
	struct socks5_addr a;
	size_t len;

	(void)state;
	assert_non_null(req);
	memset(name, 'n', SOCKS5_NAME_MAX);
	name[SOCKS5_NAME_MAX] = '\0';
	memset(user, 'u', HTTP_CREDENTIAL_MAX);
	user[HTTP_CREDENTIAL_MAX] = '\0';
	memset(password, 0xFF, HTTP_CREDENTIAL_MAX);
	password[HTTP_CREDENTIAL_MAX] = '\0';
	a = name_addr(name, 65535);
	len = http_connect_encode(out, sizeof(out), &a, user, password);
	assert_int_equal(len, HTTP_CONNECT_REQUEST_MAX);
	assert_int_equal(http_connect_encode(out, sizeof(out) - 1, &a, user,
	    password), 0);

	len = http_connect_encode(out, sizeof(out), &a, user, password);
	assert_int_equal(http_parse_request(out, len, req), HTTP_OK);
	assert_int_equal(req->head_len, len);
	assert_int_equal(req->form, HTTP_FORM_AUTHORITY);
	assert_int_equal(req->dst.atyp, SOCKS5_ATYP_NAME);
	assert_string_equal(req->dst.u.name, name);
	assert_int_equal(req->dst.port, 65535);
	assert_true(http_basic_credentials(req, got_user, got_password));
	assert_string_equal(got_user, user);
	assert_string_equal(got_password, password);

	a = ip_addr(AF_INET6, "2001:db8::7", 8443);
	len = http_connect_encode(out, sizeof(out), &a, NULL, NULL);
	assert_int_equal(http_parse_request(out, len, req), HTTP_OK);
	assert_int_equal(req->dst.atyp, SOCKS5_ATYP_IPV6);
	assert_memory_equal(req->dst.u.ipv6, a.u.ipv6, 16);
	assert_int_equal(req->dst.port, 8443);
	assert_false(http_basic_credentials(req, got_user, got_password));
	free(req);
}

static void
check_refused(const struct socks5_addr *dst, const char *user,
    const char *password)
{
	uint8_t out[HTTP_CONNECT_REQUEST_MAX];

	memset(out, 0xA5, sizeof(out));
	assert_int_equal(http_connect_encode(out, sizeof(out), dst, user,
	    password), 0);
	/* Nothing of a refused login is left behind: the buffer is as it
	 * was, or wiped. */
	for (size_t i = 0; i < sizeof(out); i++)
		assert_true(out[i] == 0xA5 || out[i] == 0);
}

static void
test_encode_bad_credentials(void **state)
{
	char longest[HTTP_CREDENTIAL_MAX + 2];
	struct socks5_addr a = name_addr("example.com", 443);

	(void)state;
	memset(longest, 'x', sizeof(longest) - 1);
	longest[sizeof(longest) - 1] = '\0';
	check_refused(&a, longest, "p");
	check_refused(&a, "u", longest);
	/* A colon in the user-id would move the split (RFC 7617 2). */
	check_refused(&a, "us:er", "p");
	check_refused(&a, ":", "");
}

/* Names that would forge fields, blur the port, or are not names. */
static void
test_encode_bad_destination(void **state)
{
	static const char *const names[] = {
		"", "a b", "evil\r\nX-Injected: 1", "host\n", "a:80",
		"[::1]", "a/b", "a?b", "a#b", "user@host", "caf\xc3\xa9",
		"tab\there", "quote\"", "a<b", "a\x7f",
	};
	static const uint8_t atyps[] = { 0, 2, 5, 0xFF };
	struct socks5_addr a;

	(void)state;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		a = name_addr(names[i], 443);
		check_refused(&a, NULL, NULL);
		check_refused(&a, "user", "pass");
	}
	/* A name with no NUL in its 256 bytes. */
	a = name_addr("x", 443);
	memset(a.u.name, 'x', sizeof(a.u.name));
	check_refused(&a, NULL, NULL);
	for (size_t i = 0; i < sizeof(atyps); i++) {
		a = ip_addr(AF_INET, "192.0.2.1", 80);
		a.atyp = atyps[i];
		check_refused(&a, NULL, NULL);
	}
}

/* ---- response parsing ---- */

static int
parse_response(const uint8_t *buf, size_t len, size_t *consumed)
{
	int code = -1;

	return http_connect_parse_response(buf, len, &code, consumed);
}

/* Every prefix (INCOMPLETE until at, then want), then the whole head
 * with the tunnel's first bytes behind it. */
static void
check_prefixes(const char *msg, size_t at, enum http_connect_status want)
{
	static const uint8_t tunnel[] = "\x16\x03\x01 HTTP/1.1 200 OK\r\n\r\n";

	check_every_prefix(parse_response, (struct prefix_codes){
	    HTTP_CONNECT_INCOMPLETE, HTTP_CONNECT_OK }, (const uint8_t *)msg,
	    strlen(msg), at, want, tunnel, sizeof(tunnel) - 1);
}

/* A whole head: OK at its last byte, with this status code. */
static void
check_head(const char *msg, int want_code)
{
	size_t len = strlen(msg), head_len = 0;
	int code = -1;

	check_prefixes(msg, len, HTTP_CONNECT_OK);
	assert_int_equal(http_connect_parse_response((const uint8_t *)msg,
	    len, &code, &head_len), HTTP_CONNECT_OK);
	assert_int_equal(code, want_code);
	assert_int_equal(head_len, len);
}

static void
test_response_ok(void **state)
{
	(void)state;
	check_head("HTTP/1.1 200 Connection established\r\n\r\n", 200);
	check_head("HTTP/1.0 200 OK\r\nProxy-Agent: squid\r\n"
	    "Content-Length: 5\r\n\r\n", 200);
	check_head("HTTP/1.1 200\r\n\r\n", 200);
	check_head("HTTP/1.1 204 \r\n\r\n", 204);
	check_head("HTTP/1.1 299 Whatever\r\n\r\n", 299);
}

static void
test_response_bare_lf(void **state)
{
	(void)state;
	check_head("HTTP/1.1 200 OK\n\n", 200);
	check_head("HTTP/1.1 200 OK\nVia: 1.1 p\n\n", 200);
	check_head("HTTP/1.1 200 OK\r\nA: b\n\r\n", 200);
	check_head("HTTP/1.1 200 OK\nA: b\r\n\n", 200);
}

/* A refusal is a whole head too; its body is not ours to read. */
static void
test_response_refusals(void **state)
{
	static const char head[] = "HTTP/1.1 407 Proxy Authentication "
	    "Required\r\nProxy-Authenticate: Basic realm=\"x\"\r\n"
	    "Content-Length: 4\r\n\r\n";
	char msg[sizeof(head) + 4];
	size_t head_len;
	int code;

	(void)state;
	check_head(head, 407);
	check_head("HTTP/1.1 403 Forbidden\r\n\r\n", 403);
	check_head("HTTP/1.1 502 Bad Gateway\r\n\r\n", 502);
	check_head("HTTP/1.1 999 Odd\r\n\r\n", 999);
	memcpy(msg, head, sizeof(head) - 1);
	memcpy(msg + sizeof(head) - 1, "body", 4);
	assert_int_equal(http_connect_parse_response((const uint8_t *)msg,
	    sizeof(msg) - 1, &code, &head_len), HTTP_CONNECT_OK);
	assert_int_equal(code, 407);
	assert_int_equal(head_len, sizeof(head) - 1);
}

/* RFC 9110 15.2: a client copes with 1xx heads before the final one. */
static void
test_response_interim(void **state)
{
	(void)state;
	check_head("HTTP/1.1 100 Continue\r\n\r\n"
	    "HTTP/1.1 200 Connection established\r\n\r\n", 200);
	check_head("HTTP/1.1 100 Continue\r\n\r\n"
	    "HTTP/1.1 102 Processing\nX: y\n\n"
	    "HTTP/1.1 407 No\r\n\r\n", 407);
	/* 101 would switch protocols: final, and no tunnel. */
	check_head("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
	    101);
	/* A bad status line after an interim head. */
	check_prefixes("HTTP/1.1 100 Continue\r\n\r\nSSH-2.0\r\n", 26,
	    HTTP_CONNECT_BAD_STATUS);
}

/* Each fails at the byte that shows it (at is one past it). */
static void
test_response_bad_status(void **state)
{
	static const struct {
		const char *msg;
		size_t at;
	} bad[] = {
		{ "SSH-2.0-OpenSSH_9.2\r\n", 1 },
		{ "\x05\x02", 1 },    /* a SOCKS5 server's method choice */
		{ "\r\nHTTP/1.1 200 OK\r\n\r\n", 1 },
		{ "http/1.1 200 OK\r\n\r\n", 1 },
		{ "HTTP/2 200\r\n\r\n", 6 },
		{ "HTTP/1.x 200 OK\r\n\r\n", 8 },
		{ "HTTP/1.1\t200 OK\r\n\r\n", 9 },
		{ "HTTP/1.1  200 OK\r\n\r\n", 10 },
		{ "HTTP/1.1 2x0 OK\r\n\r\n", 11 },
		{ "HTTP/1.1 20\r\n\r\n", 12 },
		{ "HTTP/1.1 2000\r\n\r\n", 15 },
		{ "HTTP/1.1 200OK\r\n\r\n", 16 },
		{ "HTTP/1.1 099 Low\r\n\r\n", 18 },
		{ "HTTP/1.1 000\n\n", 13 },
	};

	size_t head_len;
	int code;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		check_prefixes(bad[i].msg, bad[i].at, HTTP_CONNECT_BAD_STATUS);
	/* Short of its line end, "20" may still grow a third digit. */
	assert_int_equal(http_connect_parse_response(
	    (const uint8_t *)"HTTP/1.1 20", 11, &code, &head_len),
	    HTTP_CONNECT_INCOMPLETE);
}

/* A head of "HTTP/1.1 200 OK\r\n", one field padded to make the whole
 * total bytes, and the empty line. */
static char *
padded_head(size_t total)
{
	static const char first[] = "HTTP/1.1 200 OK\r\nX-Pad: ";
	size_t pad = total - (sizeof(first) - 1) - 4;
	char *msg = malloc(total + 1);

	assert_non_null(msg);
	memcpy(msg, first, sizeof(first) - 1);
	memset(msg + sizeof(first) - 1, 'p', pad);
	memcpy(msg + total - 4, "\r\n\r\n", 5);
	return msg;
}

static void
test_response_size_bound(void **state)
{
	char *msg;
	uint8_t *big;
	size_t head_len;
	int code;

	(void)state;
	/* Exactly at the bound: fine, and every prefix INCOMPLETE. */
	msg = padded_head(HTTP_CONNECT_HEAD_MAX);
	check_head(msg, 200);
	free(msg);
	/* One past it: too large as soon as the bound is reached. */
	msg = padded_head(HTTP_CONNECT_HEAD_MAX + 1);
	check_prefixes(msg, HTTP_CONNECT_HEAD_MAX, HTTP_CONNECT_TOO_LARGE);
	free(msg);
	/* A status line that never ends, and bytes far past the bound. */
	big = malloc(4 * HTTP_CONNECT_HEAD_MAX);
	assert_non_null(big);
	memcpy(big, "HTTP/1.1 200 ", 13);
	memset(big + 13, 'r', 4 * HTTP_CONNECT_HEAD_MAX - 13);
	assert_int_equal(http_connect_parse_response(big,
	    HTTP_CONNECT_HEAD_MAX - 1, &code, &head_len),
	    HTTP_CONNECT_INCOMPLETE);
	assert_int_equal(http_connect_parse_response(big,
	    HTTP_CONNECT_HEAD_MAX, &code, &head_len), HTTP_CONNECT_TOO_LARGE);
	assert_int_equal(http_connect_parse_response(big,
	    4 * HTTP_CONNECT_HEAD_MAX, &code, &head_len),
	    HTTP_CONNECT_TOO_LARGE);
	free(big);
}

/* What our server side answers a CONNECT with, we read. */
static void
test_response_from_our_server(void **state)
{
	uint8_t out[1024];
	size_t len, head_len;
	int code;

	(void)state;
	len = http_encode_response(out, sizeof(out), 200, NULL);
	assert_int_not_equal(len, 0);
	assert_int_equal(http_connect_parse_response(out, len, &code,
	    &head_len), HTTP_CONNECT_OK);
	assert_int_equal(code, 200);
	assert_int_equal(head_len, len);

	len = http_encode_response(out, sizeof(out), 407,
	    "Proxy-Authenticate: Basic realm=\"socks5d\"\r\n");
	assert_int_not_equal(len, 0);
	assert_int_equal(http_connect_parse_response(out, len, &code,
	    &head_len), HTTP_CONNECT_OK);
	assert_int_equal(code, 407);
	/* The reason phrase body follows the head. */
	assert_true(head_len < len);
	assert_memory_equal(out + head_len - 4, "\r\n\r\n", 4);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_name),
		cmocka_unit_test(test_encode_ipv4),
		cmocka_unit_test(test_encode_ipv6_bracketed),
		cmocka_unit_test(test_encode_basic),
		cmocka_unit_test(test_encode_max_roundtrip),
		cmocka_unit_test(test_encode_bad_credentials),
		cmocka_unit_test(test_encode_bad_destination),
		cmocka_unit_test(test_response_ok),
		cmocka_unit_test(test_response_bare_lf),
		cmocka_unit_test(test_response_refusals),
		cmocka_unit_test(test_response_interim),
		cmocka_unit_test(test_response_bad_status),
		cmocka_unit_test(test_response_size_bound),
		cmocka_unit_test(test_response_from_our_server),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
