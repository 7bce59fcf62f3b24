/*
 * Unit tests for the SOCKS4/4a wire format (src/socks4.c): requests of every
 * shape, every truncation point, every invalid field, and the reply.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "socks5d/socks4.h"

#include "prefixes.h"

static int
parse4(const uint8_t *buf, size_t len, size_t *consumed)
{
	struct socks4_request r;

	return socks4_parse_request(buf, len, &r, consumed);
}

/* Every prefix, then the request with the client's first bytes (NULs
 * included) behind it; see prefixes.h. */
static void
check_prefixes(const uint8_t *msg, size_t len, size_t at,
    enum socks4_status want)
{
	static const uint8_t after[3] = { 0, 0, 0 };

	check_every_prefix(parse4, (struct prefix_codes){ SOCKS4_INCOMPLETE,
	    SOCKS4_OK }, msg, len, at, want, after, sizeof(after));
}

static void
check_ok(const uint8_t *msg, size_t len)
{
	check_prefixes(msg, len, len, SOCKS4_OK);
}

/* ---- requests ---- */

static const uint8_t req_connect[] = { 4, 1, 0x01, 0xBB, 192, 0, 2, 1,
    'b', 'o', 'b', 0 };
static const uint8_t req_4a[] = { 4, 1, 0x00, 0x50, 0, 0, 0, 1,
    'u', 0, 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'c', 'o', 'm', 0 };
static const uint8_t req_bind[] = { 4, 2, 0x1F, 0x90, 198, 51, 100, 7, 0 };

static void
test_request_connect(void **state)
{
	static const uint8_t ip[] = { 192, 0, 2, 1 };
	struct socks4_request r;
	size_t consumed = 0;

	(void)state;
	memset(&r, 0x55, sizeof(r));
	assert_int_equal(socks4_parse_request(req_connect, sizeof(req_connect),
	    &r, &consumed), SOCKS4_OK);
	assert_int_equal(consumed, sizeof(req_connect));
	assert_int_equal(r.cmd, SOCKS4_CMD_CONNECT);
	assert_string_equal(r.userid, "bob");
	assert_int_equal(r.dst.atyp, SOCKS5_ATYP_IPV4);
	assert_memory_equal(r.dst.u.ipv4, ip, 4);
	assert_int_equal(r.dst.port, 443);
}

static void
test_request_4a(void **state)
{
	struct socks4_request r;
	size_t consumed = 0;

	(void)state;
	memset(&r, 0x55, sizeof(r));
	assert_int_equal(socks4_parse_request(req_4a, sizeof(req_4a), &r,
	    &consumed), SOCKS4_OK);
	assert_int_equal(consumed, sizeof(req_4a));
	assert_int_equal(r.cmd, SOCKS4_CMD_CONNECT);
	assert_string_equal(r.userid, "u");
	assert_int_equal(r.dst.atyp, SOCKS5_ATYP_NAME);
	assert_string_equal(r.dst.u.name, "example.com");
	assert_int_equal(r.dst.port, 80);
}

/* 0.0.0.x with x == 0 is a plain (if useless) IPv4 destination, and only
 * the last three bytes zero makes it 4a. */
static void
test_request_not_4a(void **state)
{
	uint8_t msg[] = { 4, 1, 0, 80, 0, 0, 0, 0, 0, 'x', 0 };
	struct socks4_request r;
	size_t consumed = 0;

	(void)state;
	assert_int_equal(socks4_parse_request(msg, sizeof(msg), &r, &consumed),
	    SOCKS4_OK);
	assert_int_equal(consumed, 9);
	assert_int_equal(r.dst.atyp, SOCKS5_ATYP_IPV4);

	msg[4] = 1;
	msg[7] = 1;
	assert_int_equal(socks4_parse_request(msg, sizeof(msg), &r, &consumed),
	    SOCKS4_OK);
	assert_int_equal(consumed, 9);
	assert_int_equal(r.dst.atyp, SOCKS5_ATYP_IPV4);

	/* 0.0.0.255 is 4a. */
	msg[4] = 0;
	msg[7] = 255;
	assert_int_equal(socks4_parse_request(msg, sizeof(msg), &r, &consumed),
	    SOCKS4_OK);
	assert_int_equal(consumed, 11);
	assert_int_equal(r.dst.atyp, SOCKS5_ATYP_NAME);
	assert_string_equal(r.dst.u.name, "x");
}

static void
test_request_bind(void **state)
{
	static const uint8_t ip[] = { 198, 51, 100, 7 };
	struct socks4_request r;
	size_t consumed = 0;

	(void)state;
	memset(&r, 0x55, sizeof(r));
	assert_int_equal(socks4_parse_request(req_bind, sizeof(req_bind), &r,
	    &consumed), SOCKS4_OK);
	assert_int_equal(consumed, sizeof(req_bind));
	assert_int_equal(r.cmd, SOCKS4_CMD_BIND);
	assert_string_equal(r.userid, "");
	assert_int_equal(r.dst.atyp, SOCKS5_ATYP_IPV4);
	assert_memory_equal(r.dst.u.ipv4, ip, 4);
	assert_int_equal(r.dst.port, 8080);
}

static void
test_request_prefixes(void **state)
{
	(void)state;
	check_ok(req_connect, sizeof(req_connect));
	check_ok(req_4a, sizeof(req_4a));
	check_ok(req_bind, sizeof(req_bind));
}

/* The longest USERID and the longest name: exactly SOCKS4_REQUEST_MAX. */
static void
test_request_max(void **state)
{
	uint8_t msg[SOCKS4_REQUEST_MAX];
	struct socks4_request r;
	size_t consumed = 0;

	(void)state;
	memcpy(msg, req_4a, 8);
	memset(msg + 8, 'u', SOCKS4_USERID_MAX);
	msg[8 + SOCKS4_USERID_MAX] = 0;
	memset(msg + 9 + SOCKS4_USERID_MAX, 'n', SOCKS4_NAME_MAX);
	msg[sizeof(msg) - 1] = 0;
	check_ok(msg, sizeof(msg));
	assert_int_equal(socks4_parse_request(msg, sizeof(msg), &r, &consumed),
	    SOCKS4_OK);
	assert_int_equal(consumed, SOCKS4_REQUEST_MAX);
	assert_int_equal(strlen(r.userid), SOCKS4_USERID_MAX);
	assert_int_equal(strlen(r.dst.u.name), SOCKS4_NAME_MAX);
}

static void
test_request_bad_version(void **state)
{
	static const uint8_t vers[] = { 0, 5, 0x40, 0xFF };
	uint8_t msg[sizeof(req_connect)];

	(void)state;
	memcpy(msg, req_connect, sizeof(msg));
	for (size_t i = 0; i < sizeof(vers); i++) {
		msg[0] = vers[i];
		check_prefixes(msg, sizeof(msg), 1, SOCKS4_BAD_VERSION);
	}
}

/* Decided at the eighth byte, not before, and without waiting for USERID. */
static void
test_request_bad_command(void **state)
{
	static const uint8_t cmds[] = { 0, 3, 4, 90, 0xFF };
	uint8_t msg[sizeof(req_connect)];

	(void)state;
	memcpy(msg, req_connect, sizeof(msg));
	for (size_t i = 0; i < sizeof(cmds); i++) {
		msg[1] = cmds[i];
		check_prefixes(msg, sizeof(msg), 8, SOCKS4_BAD_COMMAND);
	}
}

static void
test_request_userid_too_long(void **state)
{
	uint8_t msg[8 + SOCKS4_USERID_MAX + 2];
	struct socks4_request r;
	size_t consumed;

	(void)state;
	memcpy(msg, req_connect, 8);
	memset(msg + 8, 'u', sizeof(msg) - 8);
	/* 255 bytes without NUL may still end; the 256th proves it cannot. */
	check_prefixes(msg, sizeof(msg), 8 + SOCKS4_USERID_MAX + 1,
	    SOCKS4_TOO_LONG);
	/* A NUL just past the bound does not rescue it. */
	msg[sizeof(msg) - 1] = 0;
	assert_int_equal(socks4_parse_request(msg, sizeof(msg), &r, &consumed),
	    SOCKS4_TOO_LONG);
}

static void
test_request_empty_name(void **state)
{
	static const uint8_t msg[] = { 4, 1, 0, 80, 0, 0, 0, 9, 'u', 0, 0 };

	(void)state;
	check_prefixes(msg, sizeof(msg), sizeof(msg), SOCKS4_BAD_NAME);
}

static void
test_request_name_too_long(void **state)
{
	uint8_t msg[8 + 2 + SOCKS4_NAME_MAX + 2];
	struct socks4_request r;
	size_t consumed;

	(void)state;
	memcpy(msg, req_4a, 10);        /* fixed part and "u\0" */
	memset(msg + 10, 'n', sizeof(msg) - 10);
	check_prefixes(msg, sizeof(msg), 10 + SOCKS4_NAME_MAX + 1,
	    SOCKS4_BAD_NAME);
	msg[sizeof(msg) - 1] = 0;
	assert_int_equal(socks4_parse_request(msg, sizeof(msg), &r, &consumed),
	    SOCKS4_BAD_NAME);
}

/* From SOCKS4_REQUEST_MAX bytes on, the answer is never "wait". */
static void
test_request_never_incomplete(void **state)
{
	uint8_t msg[SOCKS4_REQUEST_MAX];
	struct socks4_request r;
	size_t consumed;

	(void)state;
	memcpy(msg, req_4a, 8);
	memset(msg + 8, 'x', sizeof(msg) - 8);
	assert_int_not_equal(socks4_parse_request(msg, sizeof(msg), &r,
	    &consumed), SOCKS4_INCOMPLETE);
	msg[8] = 0;
	assert_int_not_equal(socks4_parse_request(msg, sizeof(msg), &r,
	    &consumed), SOCKS4_INCOMPLETE);
}

/* ---- reply ---- */

static void
test_reply_ipv4(void **state)
{
	static const uint8_t want[] = { 0, 90, 0x1F, 0x90, 203, 0, 113, 5 };
	struct sockaddr_in sin;
	uint8_t out[SOCKS4_REPLY_LEN + 1];

	(void)state;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(8080);
	assert_int_equal(inet_pton(AF_INET, "203.0.113.5", &sin.sin_addr), 1);
	out[SOCKS4_REPLY_LEN] = 0xEE;
	assert_int_equal(socks4_encode_reply(out, SOCKS4_REP_GRANTED,
	    (struct sockaddr *)&sin), SOCKS4_REPLY_LEN);
	assert_memory_equal(out, want, sizeof(want));
	assert_int_equal(out[SOCKS4_REPLY_LEN], 0xEE);
}

static void
test_reply_mapped(void **state)
{
	static const uint8_t want[] = { 0, 90, 0x04, 0x00, 192, 0, 2, 9 };
	struct sockaddr_in6 sin6;
	uint8_t out[SOCKS4_REPLY_LEN];

	(void)state;
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons(1024);
	assert_int_equal(inet_pton(AF_INET6, "::ffff:192.0.2.9",
	    &sin6.sin6_addr), 1);
	assert_int_equal(socks4_encode_reply(out, SOCKS4_REP_GRANTED,
	    (struct sockaddr *)&sin6), SOCKS4_REPLY_LEN);
	assert_memory_equal(out, want, sizeof(want));
}

static void
test_reply_null(void **state)
{
	static const uint8_t want[] = { 0, 91, 0, 0, 0, 0, 0, 0 };
	uint8_t out[SOCKS4_REPLY_LEN];

	(void)state;
	memset(out, 0xAA, sizeof(out));
	assert_int_equal(socks4_encode_reply(out, SOCKS4_REP_REJECTED, NULL),
	    SOCKS4_REPLY_LEN);
	assert_memory_equal(out, want, sizeof(want));
}

static void
test_reply_ipv6(void **state)
{
	static const uint8_t want[] = { 0, 90, 0xC3, 0x50, 0, 0, 0, 0 };
	struct sockaddr_in6 sin6;
	uint8_t out[SOCKS4_REPLY_LEN];

	(void)state;
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons(50000);
	assert_int_equal(inet_pton(AF_INET6, "2001:db8::1", &sin6.sin6_addr),
	    1);
	memset(out, 0xAA, sizeof(out));
	assert_int_equal(socks4_encode_reply(out, SOCKS4_REP_GRANTED,
	    (struct sockaddr *)&sin6), SOCKS4_REPLY_LEN);
	assert_memory_equal(out, want, sizeof(want));
}

/* A family SOCKS4 knows nothing of gives the all-zero address. */
static void
test_reply_other_family(void **state)
{
	static const uint8_t want[] = { 0, 92, 0, 0, 0, 0, 0, 0 };
	struct sockaddr_un sun;
	uint8_t out[SOCKS4_REPLY_LEN];

	(void)state;
	memset(&sun, 0xFF, sizeof(sun));
	sun.sun_family = AF_UNIX;
	assert_int_equal(socks4_encode_reply(out, SOCKS4_REP_NO_IDENTD,
	    (struct sockaddr *)&sun), SOCKS4_REPLY_LEN);
	assert_memory_equal(out, want, sizeof(want));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_connect),
		cmocka_unit_test(test_request_4a),
		cmocka_unit_test(test_request_not_4a),
		cmocka_unit_test(test_request_bind),
		cmocka_unit_test(test_request_prefixes),
		cmocka_unit_test(test_request_max),
		cmocka_unit_test(test_request_bad_version),
		cmocka_unit_test(test_request_bad_command),
		cmocka_unit_test(test_request_userid_too_long),
		cmocka_unit_test(test_request_empty_name),
		cmocka_unit_test(test_request_name_too_long),
		cmocka_unit_test(test_request_never_incomplete),
		cmocka_unit_test(test_reply_ipv4),
		cmocka_unit_test(test_reply_mapped),
		cmocka_unit_test(test_reply_null),
		cmocka_unit_test(test_reply_ipv6),
		cmocka_unit_test(test_reply_other_family),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
