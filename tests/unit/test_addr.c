/*
 * Unit tests for address literals: host:port and bare IP parsing, the log
 * format (mapped IPv6 shown as IPv4), ports, lengths and loopback checks.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "socks5d/addr.h"
#include "socks5d/config.h"

static const char *
test_format(const struct sockaddr_storage *ss, char *buf)
{
	addr_format((const struct sockaddr *)ss, buf, ADDR_STRLEN);
	return buf;
}

static void
test_hostport_round_trip(void **state)
{
	static const struct {
		const char *in, *out;
		int family;
		unsigned port;
	} cases[] = {
		{ "1.2.3.4:80", "1.2.3.4:80", AF_INET, 80 },
		{ "0.0.0.0:1", "0.0.0.0:1", AF_INET, 1 },
		{ "255.255.255.255:65535", "255.255.255.255:65535", AF_INET,
		  65535 },
		{ "[::1]:1080", "[::1]:1080", AF_INET6, 1080 },
		{ "[::]:1080", "[::]:1080", AF_INET6, 1080 },
		{ "[2001:DB8:0:0:0:0:0:1]:443", "[2001:db8::1]:443", AF_INET6,
		  443 },
		{ "[::ffff:1.2.3.4]:80", "1.2.3.4:80", AF_INET6, 80 },
		{ "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
		  "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535", AF_INET6,
		  65535 },
	};
	struct sockaddr_storage ss;
	char buf[ADDR_STRLEN];
	socklen_t len;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		len = 0;
		assert_int_equal(addr_parse_hostport(cases[i].in, &ss, &len,
		    false), 0);
		assert_int_equal(ss.ss_family, cases[i].family);
		assert_int_equal(len, addr_len((struct sockaddr *)&ss));
		assert_int_equal(addr_port((struct sockaddr *)&ss),
		    cases[i].port);
		assert_string_equal(test_format(&ss, buf), cases[i].out);
	}
}

static void
test_hostport_bad(void **state)
{
	static const char *const bad[] = {
		"", "1.2.3.4", "1.2.3.4:", ":80", "1.2.3.4:0", "1.2.3.4:65536",
		"1.2.3.4:99999", "1.2.3.4:-1", "1.2.3.4:+80", "1.2.3.4: 80",
		"1.2.3.4:80 ", " 1.2.3.4:80", "1.2.3.4:80x", "1.2.3.4:0x50",
		"1.2.3:80", "1.2.3.4.5:80", "256.1.1.1:80", "localhost:80",
		"example.com:443", "::1:80", "::1", "[::1]", "[::1]:",
		"[::1]80", "[::1:80", "::1]:80", "[1.2.3.4]:80", "[]:80",
		"[::1]:0", "[::1]:65536", "[fe80::1%lo]:80", "[[::1]]:80",
		"1.2.3.4:000000080",
	};
	struct sockaddr_storage ss;
	socklen_t len;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (addr_parse_hostport(bad[i], &ss, &len, false) != -1)
			fail_msg("\"%s\" was accepted", bad[i]);
}

static void
test_hostport_port_zero(void **state)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char buf[ADDR_STRLEN];

	(void)state;
	assert_int_equal(addr_parse_hostport("1.2.3.4:0", &ss, &len, true), 0);
	assert_string_equal(test_format(&ss, buf), "1.2.3.4:0");
	assert_int_equal(addr_parse_hostport("[::1]:0", &ss, &len, true), 0);
	assert_int_equal(addr_port((struct sockaddr *)&ss), 0);
	assert_int_equal(addr_parse_hostport("1.2.3.4:65536", &ss, &len,
	    true), -1);
}

static void
test_parse_ip(void **state)
{
	struct sockaddr_storage ss;
	char buf[ADDR_STRLEN];
	socklen_t len;

	(void)state;
	assert_int_equal(addr_parse_ip("192.0.2.1", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(len, sizeof(struct sockaddr_in));
	assert_string_equal(test_format(&ss, buf), "192.0.2.1:0");
	assert_int_equal(addr_parse_ip("2001:db8::1", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(len, sizeof(struct sockaddr_in6));
	assert_int_equal(addr_port((struct sockaddr *)&ss), 0);
	assert_string_equal(test_format(&ss, buf), "[2001:db8::1]:0");
	assert_int_equal(addr_parse_ip("::", &ss, NULL), 0);

	assert_int_equal(addr_parse_ip("[::1]", &ss, &len), -1);
	assert_int_equal(addr_parse_ip("1.2.3.4:80", &ss, &len), -1);
	assert_int_equal(addr_parse_ip("", &ss, &len), -1);
	assert_int_equal(addr_parse_ip("localhost", &ss, &len), -1);
	assert_int_equal(addr_parse_ip(" 1.2.3.4", &ss, &len), -1);
	assert_int_equal(addr_parse_ip("1.2.3", &ss, &len), -1);
}

/* Parsed addresses are fully zeroed, so they compare byte for byte. */
static void
test_parse_zero_fills(void **state)
{
	struct sockaddr_storage a, b;
	socklen_t len;

	(void)state;
	memset(&a, 0xa5, sizeof(a));
	memset(&b, 0x5a, sizeof(b));
	assert_int_equal(addr_parse_hostport("[::1]:1", &a, &len, false), 0);
	assert_int_equal(addr_parse_hostport("[0::1]:1", &b, &len, false), 0);
	assert_memory_equal(&a, &b, sizeof(a));
}

static void
test_format_mapped_and_truncated(void **state)
{
	struct sockaddr_in6 sin6;
	struct sockaddr_in sin;
	struct sockaddr_storage ss;
	char buf[ADDR_STRLEN], small[8];

	(void)state;
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons(8080);
	assert_int_equal(inet_pton(AF_INET6, "::ffff:10.0.0.1",
	    &sin6.sin6_addr), 1);
	addr_format((struct sockaddr *)&sin6, buf, sizeof(buf));
	assert_string_equal(buf, "10.0.0.1:8080");

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(80);
	sin.sin_addr.s_addr = htonl(0x7f000001);
	addr_format((struct sockaddr *)&sin, buf, sizeof(buf));
	assert_string_equal(buf, "127.0.0.1:80");

	/* Too small a buffer still ends in a NUL. */
	memset(small, 'x', sizeof(small));
	addr_format((struct sockaddr *)&sin, small, sizeof(small));
	assert_string_equal(small, "127.0.0");
	assert_int_equal(addr_parse_hostport("[2001:db8::1]:443", &ss, NULL,
	    false), 0);
	memset(small, 'x', sizeof(small));
	addr_format((struct sockaddr *)&ss, small, sizeof(small));
	assert_int_equal(small[sizeof(small) - 1], '\0');
	small[0] = 'x';
	addr_format((struct sockaddr *)&ss, small, 0);
	assert_int_equal(small[0], 'x');

	/* The longest form fits ADDR_STRLEN. */
	assert_int_equal(addr_parse_hostport(
	    "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535", &ss, NULL,
	    false), 0);
	addr_format((struct sockaddr *)&ss, buf, sizeof(buf));
	assert_string_equal(buf,
	    "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
}

static void
test_other_family(void **state)
{
	struct sockaddr_storage ss;
	char buf[ADDR_STRLEN];

	(void)state;
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	assert_int_equal(addr_port((struct sockaddr *)&ss), 0);
	assert_int_equal(addr_len((struct sockaddr *)&ss), 0);
	assert_false(config_addr_is_loopback((struct sockaddr *)&ss));
	addr_format((struct sockaddr *)&ss, buf, sizeof(buf));
	assert_string_equal(buf, "(family 1)");
}

static void
test_loopback(void **state)
{
	static const struct {
		const char *ip;
		bool loopback;
	} cases[] = {
		{ "127.0.0.1", true }, { "127.0.0.0", true },
		{ "127.255.255.255", true }, { "127.1.2.3", true },
		{ "::1", true }, { "::ffff:127.0.0.1", true },
		{ "::ffff:127.200.0.9", true },
		{ "126.255.255.255", false }, { "128.0.0.1", false },
		{ "0.0.0.0", false }, { "10.0.0.1", false },
		{ "::", false }, { "::2", false }, { "::ffff:10.0.0.1", false },
		{ "::127.0.0.1", false }, { "fe80::1", false },
		{ "2001:db8::1", false }, { "::ffff:128.0.0.1", false },
	};
	struct sockaddr_storage ss;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(addr_parse_ip(cases[i].ip, &ss, NULL), 0);
		if (config_addr_is_loopback((struct sockaddr *)&ss) !=
		    cases[i].loopback)
			fail_msg("%s: expected loopback %d", cases[i].ip,
			    cases[i].loopback);
	}
}

static union sockaddr_any
ip_port(const char *ip, uint16_t port)
{
	union sockaddr_any a;
	struct sockaddr_storage ss;
	socklen_t len;

	assert_int_equal(addr_parse_ip(ip, &ss, &len), 0);
	memset(&a, 0, sizeof(a));
	memcpy(&a, &ss, len);
	addr_set_port(&a, port);
	return a;
}

/* Same IP whatever the ports; family, address and mapping all count. */
static void
test_same_ip(void **state)
{
	union sockaddr_any v4 = ip_port("192.0.2.1", 80);
	union sockaddr_any v4b = ip_port("192.0.2.1", 9999);
	union sockaddr_any other4 = ip_port("192.0.2.2", 80);
	union sockaddr_any v6 = ip_port("2001:db8::1", 80);
	union sockaddr_any v6b = ip_port("2001:db8::1", 1);
	union sockaddr_any other6 = ip_port("2001:db8::2", 80);
	union sockaddr_any mapped = ip_port("::ffff:192.0.2.1", 80);

	(void)state;
	assert_true(addr_same_ip(&v4, &v4b));
	assert_false(addr_same_ip(&v4, &other4));
	assert_true(addr_same_ip(&v6, &v6b));
	assert_false(addr_same_ip(&v6, &other6));
	assert_false(addr_same_ip(&v4, &v6));
	/* Mapped only equals its IPv4 twin after addr_normalize. */
	assert_false(addr_same_ip(&v4, &mapped));
	addr_normalize(&mapped.sa, &mapped);
	assert_true(addr_same_ip(&v4, &mapped));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hostport_round_trip),
		cmocka_unit_test(test_hostport_bad),
		cmocka_unit_test(test_hostport_port_zero),
		cmocka_unit_test(test_parse_ip),
		cmocka_unit_test(test_parse_zero_fills),
		cmocka_unit_test(test_format_mapped_and_truncated),
		cmocka_unit_test(test_other_family),
		cmocka_unit_test(test_loopback),
		cmocka_unit_test(test_same_ip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
