/*
 * Unit tests for resource limits: per-IP and per-user session counts, the
 * failed-login ban and its expiry, reload, and forgetting entries so memory
 * follows the live sessions.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "socks5d/addr.h"
#include "socks5d/limits.h"

/* Parse "ip" or "ip:port" / "[ip6]:port" into a sockaddr. */
static union sockaddr_any
test_addr(const char *text)
{
	struct sockaddr_storage ss;
	union sockaddr_any a;

	if (addr_parse_hostport(text, &ss, NULL, true) == -1)
		assert_int_equal(addr_parse_ip(text, &ss, NULL), 0);
	memset(&a, 0, sizeof(a));
	memcpy(&a, &ss, addr_len((struct sockaddr *)&ss));
	return a;
}

static struct limits *
test_limits(unsigned per_ip, unsigned per_user, unsigned failures)
{
	struct limits_config cfg = {
		.max_per_client_ip = per_ip,
		.max_per_user = per_user,
		.auth_failures = failures,
		.auth_window = 60,
		.auth_ban = 300,
	};
	struct limits *l = limits_create();

	assert_non_null(l);
	limits_configure(l, &cfg);
	return l;
}

static enum limits_result
test_enter(struct limits *l, const char *text, double now)
{
	union sockaddr_any a = test_addr(text);

	return limits_client_enter(l, &a.sa, now);
}

static void
test_leave(struct limits *l, const char *text)
{
	union sockaddr_any a = test_addr(text);

	limits_client_leave(l, &a.sa);
}

static bool
test_fail(struct limits *l, const char *text, double now)
{
	union sockaddr_any a = test_addr(text);

	return limits_auth_failed(l, &a.sa, now);
}

static void
test_client_limit(void **state)
{
	struct limits *l = test_limits(2, 0, 5);

	(void)state;
	assert_int_equal(test_enter(l, "10.0.0.1:1000", 0), LIMITS_OK);
	assert_int_equal(test_enter(l, "10.0.0.1:1001", 0), LIMITS_OK);
	assert_int_equal(test_enter(l, "10.0.0.1:1002", 0), LIMITS_CLIENT_FULL);
	/* Another IP has its own count. */
	assert_int_equal(test_enter(l, "10.0.0.2:1000", 0), LIMITS_OK);
	assert_int_equal(limits_tracked(l), 2);
	test_leave(l, "10.0.0.1:1000");
	assert_int_equal(test_enter(l, "10.0.0.1:1003", 0), LIMITS_OK);
	assert_int_equal(test_enter(l, "10.0.0.1:1004", 0), LIMITS_CLIENT_FULL);
	test_leave(l, "10.0.0.1:1001");
	test_leave(l, "10.0.0.1:1003");
	test_leave(l, "10.0.0.2:1000");
	assert_int_equal(limits_tracked(l), 0);
	limits_destroy(l);
}

static void
test_port_never_matters(void **state)
{
	struct limits *l = test_limits(1, 0, 5);

	(void)state;
	assert_int_equal(test_enter(l, "192.0.2.7:40000", 0), LIMITS_OK);
	assert_int_equal(test_enter(l, "192.0.2.7:40001", 0),
	    LIMITS_CLIENT_FULL);
	assert_int_equal(test_enter(l, "[2001:db8::1]:1", 0), LIMITS_OK);
	assert_int_equal(test_enter(l, "[2001:db8::1]:2", 0),
	    LIMITS_CLIENT_FULL);
	/* Leave with a different port releases the same count. */
	test_leave(l, "192.0.2.7:9");
	test_leave(l, "[2001:db8::1]:9");
	assert_int_equal(limits_tracked(l), 0);
	limits_destroy(l);
}

static void
test_ipv6_per_128(void **state)
{
	struct limits *l = test_limits(1, 0, 2);

	(void)state;
	assert_int_equal(test_enter(l, "[2001:db8:1:2::1]:5", 0), LIMITS_OK);
	assert_int_equal(test_enter(l, "[2001:db8:1:2::2]:5", 0), LIMITS_OK);
	assert_int_equal(test_enter(l, "[2001:db8:1:2::1]:6", 0),
	    LIMITS_CLIENT_FULL);
	/* A ban in the same /64 does not touch its neighbour. */
	assert_false(test_fail(l, "2001:db8:1:2::3", 0));
	assert_true(test_fail(l, "2001:db8:1:2::3", 0));
	assert_int_equal(test_enter(l, "[2001:db8:1:2::3]:5", 1),
	    LIMITS_BANNED);
	assert_int_equal(test_enter(l, "[2001:db8:1:2::4]:5", 1), LIMITS_OK);
	/* The scope id is not part of the key either. */
	{
		union sockaddr_any a = test_addr("[fe80::1]:7");

		a.in6.sin6_scope_id = 1;
		assert_int_equal(limits_client_enter(l, &a.sa, 1), LIMITS_OK);
		a.in6.sin6_scope_id = 2;
		assert_int_equal(limits_client_enter(l, &a.sa, 1),
		    LIMITS_CLIENT_FULL);
		limits_client_leave(l, &a.sa);
	}
	limits_destroy(l);
}

static void
test_mapped_equals_ipv4(void **state)
{
	struct limits *l = test_limits(2, 0, 2);

	(void)state;
	assert_int_equal(test_enter(l, "198.51.100.9:1", 0), LIMITS_OK);
	assert_int_equal(test_enter(l, "[::ffff:198.51.100.9]:2", 0),
	    LIMITS_OK);
	assert_int_equal(test_enter(l, "198.51.100.9:3", 0),
	    LIMITS_CLIENT_FULL);
	assert_int_equal(test_enter(l, "[::ffff:198.51.100.9]:4", 0),
	    LIMITS_CLIENT_FULL);
	assert_int_equal(limits_tracked(l), 1);
	/* Not mapped: ::198.51.100.9 (compatible form) is another key. */
	assert_int_equal(test_enter(l, "[::198.51.100.9]:4", 0), LIMITS_OK);
	test_leave(l, "[::198.51.100.9]:4");
	/* Failures add up across spellings too. */
	assert_false(test_fail(l, "::ffff:198.51.100.9", 0));
	assert_true(test_fail(l, "198.51.100.9", 0));
	assert_int_equal(test_enter(l, "[::ffff:198.51.100.9]:5", 1),
	    LIMITS_BANNED);
	test_leave(l, "[::ffff:198.51.100.9]:1");
	test_leave(l, "198.51.100.9:2");
	limits_expire(l, 1000);
	assert_int_equal(limits_tracked(l), 0);
	limits_destroy(l);
}

static void
test_unlimited(void **state)
{
	struct limits *l = test_limits(0, 0, 5);
	int i;

	(void)state;
	for (i = 0; i < 1000; i++) {
		assert_int_equal(test_enter(l, "10.1.1.1:1", 0), LIMITS_OK);
		assert_int_equal(limits_user_enter(l, "alice"), LIMITS_OK);
	}
	assert_int_equal(limits_tracked(l), 2);
	for (i = 0; i < 1000; i++) {
		test_leave(l, "10.1.1.1:1");
		limits_user_leave(l, "alice");
	}
	assert_int_equal(limits_tracked(l), 0);
	limits_destroy(l);
}

static void
test_user_limit(void **state)
{
	struct limits *l = test_limits(0, 2, 5);
	char longname[256];

	(void)state;
	assert_int_equal(limits_user_enter(l, "alice"), LIMITS_OK);
	assert_int_equal(limits_user_enter(l, "alice"), LIMITS_OK);
	assert_int_equal(limits_user_enter(l, "alice"), LIMITS_USER_FULL);
	/* Exact bytes: case and prefixes are other users. */
	assert_int_equal(limits_user_enter(l, "Alice"), LIMITS_OK);
	assert_int_equal(limits_user_enter(l, "alic"), LIMITS_OK);
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(limits_user_enter(l, longname), LIMITS_OK);
	assert_int_equal(limits_user_enter(l, longname), LIMITS_OK);
	assert_int_equal(limits_user_enter(l, longname), LIMITS_USER_FULL);
	assert_int_equal(limits_tracked(l), 4);
	limits_user_leave(l, "alice");
	assert_int_equal(limits_user_enter(l, "alice"), LIMITS_OK);
	limits_user_leave(l, "alice");
	limits_user_leave(l, "alice");
	limits_user_leave(l, "Alice");
	limits_user_leave(l, "alic");
	limits_user_leave(l, longname);
	limits_user_leave(l, longname);
	assert_int_equal(limits_tracked(l), 0);
	/* Leave without enter does not underflow. */
	limits_user_leave(l, "bob");
	assert_int_equal(limits_user_enter(l, "bob"), LIMITS_OK);
	limits_user_leave(l, "bob");
	limits_user_leave(l, "bob");
	assert_int_equal(limits_user_enter(l, "bob"), LIMITS_OK);
	assert_int_equal(limits_user_enter(l, "bob"), LIMITS_OK);
	assert_int_equal(limits_user_enter(l, "bob"), LIMITS_USER_FULL);
	limits_user_leave(l, "bob");
	limits_user_leave(l, "bob");
	assert_int_equal(limits_tracked(l), 0);
	limits_destroy(l);
}

static void
test_ban(void **state)
{
	struct limits *l = test_limits(0, 0, 3);

	(void)state;
	assert_false(test_fail(l, "203.0.113.5", 100));
	assert_false(test_fail(l, "203.0.113.5", 101));
	/* N-1 failures: no ban. */
	assert_int_equal(test_enter(l, "203.0.113.5:1", 102), LIMITS_OK);
	test_leave(l, "203.0.113.5:1");
	/* The Nth bans, once. */
	assert_true(test_fail(l, "203.0.113.5", 102));
	assert_false(test_fail(l, "203.0.113.5", 103));
	assert_false(test_fail(l, "203.0.113.5", 104));
	assert_false(test_fail(l, "203.0.113.5", 105));
	assert_int_equal(test_enter(l, "203.0.113.5:2", 110), LIMITS_BANNED);
	assert_int_equal(test_enter(l, "203.0.113.6:2", 110), LIMITS_OK);
	test_leave(l, "203.0.113.6:2");
	/* Until the last instant of the ban, then it is over. */
	assert_int_equal(test_enter(l, "203.0.113.5:3", 401.5), LIMITS_BANNED);
	assert_int_equal(test_enter(l, "203.0.113.5:3", 402), LIMITS_OK);
	test_leave(l, "203.0.113.5:3");
	assert_int_equal(limits_tracked(l), 0);
	/* The counter restarted: a fresh ban needs N failures again. */
	assert_false(test_fail(l, "203.0.113.5", 403));
	assert_false(test_fail(l, "203.0.113.5", 404));
	assert_true(test_fail(l, "203.0.113.5", 405));
	limits_destroy(l);
}

static void
test_ban_window(void **state)
{
	struct limits *l = test_limits(0, 0, 3);
	double t = 0;
	int i;

	(void)state;
	/* Two failures per window, forever: never a ban. */
	for (i = 0; i < 20; i++) {
		assert_false(test_fail(l, "203.0.113.9", t));
		assert_false(test_fail(l, "203.0.113.9", t + 59));
		t += 60;
	}
	assert_int_equal(test_enter(l, "203.0.113.9:1", t), LIMITS_OK);
	test_leave(l, "203.0.113.9:1");
	/* Three inside one window do ban. */
	assert_false(test_fail(l, "203.0.113.9", t));
	assert_false(test_fail(l, "203.0.113.9", t + 30));
	assert_true(test_fail(l, "203.0.113.9", t + 59.9));
	limits_destroy(l);
}

static void
test_ban_disabled(void **state)
{
	struct limits *l = test_limits(0, 0, 0);
	int i;

	(void)state;
	for (i = 0; i < 100; i++)
		assert_false(test_fail(l, "203.0.113.1", i));
	assert_int_equal(test_enter(l, "203.0.113.1:1", 100), LIMITS_OK);
	test_leave(l, "203.0.113.1:1");
	assert_int_equal(limits_tracked(l), 0);
	limits_destroy(l);
}

static void
test_reconfigure_keeps_counts(void **state)
{
	struct limits_config cfg = {
		.max_per_client_ip = 0, .max_per_user = 0, .auth_failures = 2,
		.auth_window = 60, .auth_ban = 300,
	};
	struct limits *l = test_limits(0, 0, 2);

	(void)state;
	/* Counted while unlimited... */
	assert_int_equal(test_enter(l, "10.9.9.9:1", 0), LIMITS_OK);
	assert_int_equal(test_enter(l, "10.9.9.9:2", 0), LIMITS_OK);
	assert_int_equal(limits_user_enter(l, "carol"), LIMITS_OK);
	assert_int_equal(limits_user_enter(l, "carol"), LIMITS_OK);
	assert_false(test_fail(l, "10.8.8.8", 0));
	assert_false(test_fail(l, "10.7.7.7", 0));
	assert_true(test_fail(l, "10.7.7.7", 0));
	/* ...so the new limit of 2 applies at once. */
	cfg.max_per_client_ip = 2;
	cfg.max_per_user = 2;
	cfg.auth_ban = 10;
	limits_configure(l, &cfg);
	assert_int_equal(test_enter(l, "10.9.9.9:3", 1), LIMITS_CLIENT_FULL);
	assert_int_equal(limits_user_enter(l, "carol"), LIMITS_USER_FULL);
	/* The running ban is kept at its old length; failures too. */
	assert_true(test_fail(l, "10.8.8.8", 1));
	assert_int_equal(test_enter(l, "10.8.8.8:1", 10.5), LIMITS_BANNED);
	assert_int_equal(test_enter(l, "10.8.8.8:1", 11), LIMITS_OK);
	test_leave(l, "10.8.8.8:1");
	assert_int_equal(test_enter(l, "10.7.7.7:1", 100), LIMITS_BANNED);
	/* Lower still: releases bring the count under it. */
	cfg.max_per_client_ip = 1;
	limits_configure(l, &cfg);
	test_leave(l, "10.9.9.9:1");
	assert_int_equal(test_enter(l, "10.9.9.9:4", 101), LIMITS_CLIENT_FULL);
	test_leave(l, "10.9.9.9:2");
	assert_int_equal(test_enter(l, "10.9.9.9:5", 101), LIMITS_OK);
	test_leave(l, "10.9.9.9:5");
	limits_user_leave(l, "carol");
	limits_user_leave(l, "carol");
	limits_expire(l, 301);
	assert_int_equal(limits_tracked(l), 0);
	limits_destroy(l);
}

static void
test_forgetting(void **state)
{
	struct limits *l = test_limits(4, 0, 2);
	char ip[32];
	int i;

	(void)state;
	/* One failure each from many IPs, never coming back. */
	for (i = 0; i < 500; i++) {
		snprintf(ip, sizeof(ip), "10.2.%d.%d", i / 250, i % 250);
		assert_false(test_fail(l, ip, 0));
	}
	assert_int_equal(limits_tracked(l), 500);
	/* A ban that outlives the windows. */
	assert_false(test_fail(l, "10.3.0.1", 0));
	assert_true(test_fail(l, "10.3.0.1", 0));
	/* Live sessions keep their IP even with expired state. */
	assert_int_equal(test_enter(l, "10.2.0.0:1", 0), LIMITS_OK);
	limits_expire(l, 60);
	assert_int_equal(limits_tracked(l), 2);
	test_leave(l, "10.2.0.0:1");
	assert_int_equal(limits_tracked(l), 1);
	limits_expire(l, 299);
	assert_int_equal(limits_tracked(l), 1);
	limits_expire(l, 300);
	assert_int_equal(limits_tracked(l), 0);
	limits_destroy(l);
}

static void
test_forgetting_without_timer(void **state)
{
	struct limits *l = test_limits(4, 0, 2);
	char ip[32];
	int i;

	(void)state;
	for (i = 0; i < 2000; i++) {
		snprintf(ip, sizeof(ip), "10.4.%d.%d", i / 250, i % 250);
		assert_false(test_fail(l, ip, 0));
	}
	assert_int_equal(limits_tracked(l), 2000);
	/* Only ordinary traffic after the windows ran out: the incremental
	 * sweep forgets the stale entries. */
	for (i = 0; i < 2000; i++) {
		assert_int_equal(test_enter(l, "10.5.0.1:1", 1000), LIMITS_OK);
		test_leave(l, "10.5.0.1:1");
	}
	assert_int_equal(limits_tracked(l), 0);
	/* A banned IP that expired is forgotten when it leaves. */
	assert_false(test_fail(l, "10.6.0.1", 2000));
	assert_true(test_fail(l, "10.6.0.1", 2000));
	assert_int_equal(test_enter(l, "10.6.0.1:1", 2300), LIMITS_OK);
	test_leave(l, "10.6.0.1:1");
	assert_int_equal(limits_tracked(l), 0);
	limits_destroy(l);
}

/* Client i of the big test: odd ones IPv4, even ones IPv6 in one /64. */
static union sockaddr_any
test_nth_client(int i, const char *port)
{
	union sockaddr_any a;
	char text[64];
	uint32_t n = (uint32_t)i;

	if (i % 2) {
		snprintf(text, sizeof(text), "10.0.0.0:%s", port);
		a = test_addr(text);
		a.in.sin_addr.s_addr = htonl(0x0a000000u + n);
	} else {
		snprintf(text, sizeof(text), "[2001:db8::]:%s", port);
		a = test_addr(text);
		memcpy(&a.in6.sin6_addr.s6_addr[12], &n, sizeof(n));
	}
	return a;
}

static void
test_many_clients(void **state)
{
	struct limits *l = test_limits(2, 0, 5);
	union sockaddr_any a;
	int i, round;

	(void)state;
	for (round = 0; round < 2; round++) {
		for (i = 0; i < 20000; i++) {
			a = test_nth_client(i, "1");
			assert_int_equal(limits_client_enter(l, &a.sa, 0),
			    LIMITS_OK);
			assert_int_equal(limits_client_enter(l, &a.sa, 0),
			    LIMITS_OK);
			assert_int_equal(limits_client_enter(l, &a.sa, 0),
			    LIMITS_CLIENT_FULL);
		}
		assert_int_equal(limits_tracked(l), 20000);
		for (i = 0; i < 20000; i++) {
			a = test_nth_client(i, "2");
			/* Still found, with its count, after the shifts and
			 * shrinks that earlier removals caused. */
			limits_client_leave(l, &a.sa);
			assert_int_equal(limits_client_enter(l, &a.sa, 0),
			    LIMITS_OK);
			assert_int_equal(limits_client_enter(l, &a.sa, 0),
			    LIMITS_CLIENT_FULL);
			limits_client_leave(l, &a.sa);
			limits_client_leave(l, &a.sa);
			assert_int_equal(limits_tracked(l),
			    (size_t)(20000 - i - 1));
		}
		assert_int_equal(limits_tracked(l), 0);
	}
	limits_destroy(l);
}

static void
test_leave_without_enter(void **state)
{
	struct limits *l = test_limits(1, 0, 5);

	(void)state;
	test_leave(l, "10.0.0.1:1");
	assert_int_equal(limits_tracked(l), 0);
	assert_int_equal(test_enter(l, "10.0.0.1:1", 0), LIMITS_OK);
	test_leave(l, "10.0.0.1:1");
	test_leave(l, "10.0.0.1:1");
	assert_int_equal(test_enter(l, "10.0.0.1:1", 0), LIMITS_OK);
	assert_int_equal(test_enter(l, "10.0.0.1:1", 0), LIMITS_CLIENT_FULL);
	/* An entry kept by failure state does not go below zero either. */
	test_leave(l, "10.0.0.1:1");
	assert_false(test_fail(l, "10.0.0.1", 0));
	test_leave(l, "10.0.0.1:1");
	test_leave(l, "10.0.0.1:1");
	assert_int_equal(test_enter(l, "10.0.0.1:1", 1), LIMITS_OK);
	assert_int_equal(test_enter(l, "10.0.0.1:1", 1), LIMITS_CLIENT_FULL);
	test_leave(l, "10.0.0.1:1");
	limits_expire(l, 61);
	assert_int_equal(limits_tracked(l), 0);
	limits_destroy(l);
}

static void
test_other_family(void **state)
{
	struct limits *l = test_limits(1, 0, 1);
	struct sockaddr sa;

	(void)state;
	memset(&sa, 0, sizeof(sa));
	sa.sa_family = AF_UNIX;
	assert_int_equal(limits_client_enter(l, &sa, 0), LIMITS_OK);
	assert_int_equal(limits_client_enter(l, &sa, 0), LIMITS_OK);
	assert_false(limits_auth_failed(l, &sa, 0));
	limits_client_leave(l, &sa);
	assert_int_equal(limits_tracked(l), 0);
	limits_destroy(l);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_client_limit),
		cmocka_unit_test(test_port_never_matters),
		cmocka_unit_test(test_ipv6_per_128),
		cmocka_unit_test(test_mapped_equals_ipv4),
		cmocka_unit_test(test_unlimited),
		cmocka_unit_test(test_user_limit),
		cmocka_unit_test(test_ban),
		cmocka_unit_test(test_ban_window),
		cmocka_unit_test(test_ban_disabled),
		cmocka_unit_test(test_reconfigure_keeps_counts),
		cmocka_unit_test(test_forgetting),
		cmocka_unit_test(test_forgetting_without_timer),
		cmocka_unit_test(test_many_clients),
		cmocka_unit_test(test_leave_without_enter),
		cmocka_unit_test(test_other_family),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
