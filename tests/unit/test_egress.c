/*
 * Unit tests for egress pools: parsing (which addresses of a network a
 * host may use), counting and numbering the merged pool, and each
 * selection mode: user (stable, spread, few moves when the pool grows),
 * session (no repeats until the pool is used up), random, round-robin.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "socks5d/egress.h"

static void
pool_of(struct egress *e, const char *list)
{
	char why[128];

	memset(e, 0, sizeof(*e));
	assert_int_equal(egress_add(e, list, why, sizeof(why)), 0);
	egress_finish(e);
}

static const char *
ip_of(const union sockaddr_any *a, char *buf, size_t len)
{
	if (a->sa.sa_family == AF_INET)
		return inet_ntop(AF_INET, &a->in.sin_addr, buf, (socklen_t)len);
	return inet_ntop(AF_INET6, &a->in6.sin6_addr, buf, (socklen_t)len);
}

static const char *
pick(const struct egress *e, enum egress_select mode, int family,
    const char *user)
{
	static char buf[INET6_ADDRSTRLEN];
	union sockaddr_any out, client;

	memset(&client, 0, sizeof(client));
	client.in.sin_family = AF_INET;
	client.in.sin_addr.s_addr = htonl(0x7f000001);
	assert_true(egress_pick(e, mode, family, user, &client.sa, &out));
	assert_int_equal(out.sa.sa_family, family);
	assert_int_equal(out.in.sin_port, 0);
	return ip_of(&out, buf, sizeof(buf));
}

static void
test_networks_lose_what_no_host_may_use(void **state)
{
	struct egress e;
	char why[128];

	(void)state;
	/* /30: .1 and .2; a bare address and a /31 keep everything; IPv6
	 * /126 loses its first (subnet-router anycast) address. */
	pool_of(&e, "10.0.0.0/30, 10.0.0.9, 10.0.1.0/31, fd00::/126");
	assert_true(e.size[0] == 5);
	assert_true(e.size[1] == 3);
	assert_string_equal(pick(&e, EGRESS_ROUND_ROBIN, AF_INET, NULL),
	    "10.0.0.1");
	assert_string_equal(pick(&e, EGRESS_ROUND_ROBIN, AF_INET, NULL),
	    "10.0.0.2");
	assert_string_equal(pick(&e, EGRESS_ROUND_ROBIN, AF_INET, NULL),
	    "10.0.0.9");
	assert_string_equal(pick(&e, EGRESS_ROUND_ROBIN, AF_INET, NULL),
	    "10.0.1.0");
	assert_string_equal(pick(&e, EGRESS_ROUND_ROBIN, AF_INET, NULL),
	    "10.0.1.1");
	/* Round and round, each family on its own. */
	assert_string_equal(pick(&e, EGRESS_ROUND_ROBIN, AF_INET, NULL),
	    "10.0.0.1");
	assert_string_equal(pick(&e, EGRESS_ROUND_ROBIN, AF_INET6, NULL),
	    "fd00::1");
	assert_string_equal(pick(&e, EGRESS_ROUND_ROBIN, AF_INET6, NULL),
	    "fd00::2");
	egress_release(&e);

	/* Bad lists name the bad item, no more. */
	memset(&e, 0, sizeof(e));
	assert_int_equal(egress_add(&e, "10.0.0.1, 10.0.0.300", why,
	    sizeof(why)), -1);
	assert_non_null(strstr(why, "\"10.0.0.300\" is not an address"));
	egress_release(&e);
	assert_int_equal(egress_add(&e, "10.0.0.1,,10.0.0.2", why,
	    sizeof(why)), -1);
	assert_string_equal(why, "empty item in the list");
	egress_release(&e);
	assert_int_equal(egress_add(&e, "fd00::/129", why, sizeof(why)), -1);
	egress_release(&e);
	assert_int_equal(egress_add(&e, "example.org", why, sizeof(why)), -1);
	egress_release(&e);
	/* Networks holding addresses no connection can leave from. */
	{
		static const char *const unusable[] = {
			"0.0.0.0/0", "0.0.0.0", "224.0.0.1", "239.1.2.0/24",
			"255.255.255.255", "240.0.0.0/4", "::", "::/0",
			"ff02::1", "ff00::/8",
		};

		for (size_t i = 0; i < sizeof(unusable) / sizeof(unusable[0]);
		    i++) {
			assert_int_equal(egress_add(&e, unusable[i], why,
			    sizeof(why)), -1);
			assert_non_null(strstr(why, "no connection can leave"));
			assert_true(egress_empty(&e));
			egress_release(&e);
		}
		/* Their neighbours are fine. */
		assert_int_equal(egress_add(&e, "1.0.0.0/8, 223.255.255.0/24, "
		    "::1, fe80::/10, fc00::/7", why, sizeof(why)), 0);
		egress_release(&e);
	}
	assert_true(egress_empty(&e));
}

static void
test_a_family_the_pool_lacks_is_not_picked(void **state)
{
	struct egress e;
	union sockaddr_any out, client;

	(void)state;
	memset(&client, 0, sizeof(client));
	client.in.sin_family = AF_INET;
	pool_of(&e, "fd00:e9::/64");
	assert_false(egress_pick(&e, EGRESS_USER, AF_INET, "ann", &client.sa,
	    &out));
	assert_true(egress_pick(&e, EGRESS_USER, AF_INET6, "ann", &client.sa,
	    &out));
	egress_release(&e);
	memset(&e, 0, sizeof(e));
	assert_false(egress_pick(&e, EGRESS_RANDOM, AF_INET6, "ann",
	    &client.sa, &out));
}

static void
test_user_is_stable_and_spread(void **state)
{
	struct egress a, b;
	unsigned counts[18] = { 0 };
	char user[32];

	(void)state;
	/* Two pools built alike stand for two processes or a restart. */
	pool_of(&a, "198.51.100.0/28, 198.51.100.16, 198.51.100.17");
	pool_of(&b, "198.51.100.16, 198.51.100.0/28, 198.51.100.17");
	assert_true(a.size[0] == 16);
	for (int i = 0; i < 1000; i++) {
		char first[INET6_ADDRSTRLEN];
		struct in_addr ip;

		snprintf(user, sizeof(user), "user%d", i);
		snprintf(first, sizeof(first), "%s",
		    pick(&a, EGRESS_USER, AF_INET, user));
		assert_string_equal(first, pick(&a, EGRESS_USER, AF_INET, user));
		assert_string_equal(first, pick(&b, EGRESS_USER, AF_INET, user));
		assert_int_equal(inet_pton(AF_INET, first, &ip), 1);
		counts[ntohl(ip.s_addr) - 0xc6336400]++;
	}
	/* .1-.14, .16 and .17: 62.5 each on average; four standard
	 * deviations either way. */
	assert_int_equal(counts[0], 0);
	assert_int_equal(counts[15], 0);
	for (int i = 1; i < 18; i++) {
		if (i == 15)
			continue;
		assert_true(counts[i] >= 32);
		assert_true(counts[i] <= 93);
	}
	egress_release(&a);
	egress_release(&b);
}

static void
test_user_moves_few_when_the_pool_grows(void **state)
{
	unsigned moved = 0;
	char user[32];

	(void)state;
	for (int i = 0; i < 2000; i++) {
		snprintf(user, sizeof(user), "member-%d", i);
		if (egress_user_index(user, strlen(user), 16) !=
		    egress_user_index(user, strlen(user), 17))
			moved++;
		/* Growing only ever moves a user to the new address. */
		assert_true(egress_user_index(user, strlen(user), 16) ==
		    egress_user_index(user, strlen(user), 17) ||
		    egress_user_index(user, strlen(user), 17) == 16);
	}
	/* 1/17 of them (118) on average: not a reshuffle. */
	assert_true(moved > 60);
	assert_true(moved < 200);
}

static void
test_user_without_login_keys_on_the_client(void **state)
{
	struct egress e;
	union sockaddr_any c1, c2, mapped, o1, o2, o3;

	(void)state;
	pool_of(&e, "fd00:e9::/64");
	memset(&c1, 0, sizeof(c1));
	c1.in.sin_family = AF_INET;
	c1.in.sin_addr.s_addr = htonl(0xc0000201);
	c2 = c1;
	c2.in.sin_addr.s_addr = htonl(0xc0000202);
	memset(&mapped, 0, sizeof(mapped));
	mapped.in6.sin6_family = AF_INET6;
	assert_int_equal(inet_pton(AF_INET6, "::ffff:192.0.2.1",
	    &mapped.in6.sin6_addr), 1);
	assert_true(egress_pick(&e, EGRESS_USER, AF_INET6, NULL, &c1.sa, &o1));
	assert_true(egress_pick(&e, EGRESS_USER, AF_INET6, NULL, &mapped.sa,
	    &o2));
	assert_true(egress_pick(&e, EGRESS_USER, AF_INET6, NULL, &c2.sa, &o3));
	assert_memory_equal(&o1.in6.sin6_addr, &o2.in6.sin6_addr, 16);
	assert_memory_not_equal(&o1.in6.sin6_addr, &o3.in6.sin6_addr, 16);
	/* Inside the /64. */
	assert_memory_equal(o1.in6.sin6_addr.s6_addr, "\xfd\x00\x00\xe9\0\0\0\0",
	    8);
	egress_release(&e);
}

static void
test_session_is_fresh_until_the_pool_is_used_up(void **state)
{
	struct egress e;
	char seen[254][INET6_ADDRSTRLEN], first[INET6_ADDRSTRLEN];

	(void)state;
	pool_of(&e, "203.0.113.0/24");
	assert_true(e.size[0] == 254);
	for (int i = 0; i < 254; i++) {
		snprintf(seen[i], sizeof(seen[i]), "%s",
		    pick(&e, EGRESS_SESSION, AF_INET, "same-user"));
		assert_string_not_equal(seen[i], "203.0.113.0");
		assert_string_not_equal(seen[i], "203.0.113.255");
		for (int j = 0; j < i; j++)
			assert_string_not_equal(seen[i], seen[j]);
	}
	/* Then the walk comes round again. */
	snprintf(first, sizeof(first), "%s",
	    pick(&e, EGRESS_SESSION, AF_INET, "same-user"));
	assert_string_equal(first, seen[0]);
	egress_release(&e);

	/* A /64: a thousand sessions, a thousand addresses, all inside. */
	pool_of(&e, "2001:db8:5d::/64");
	{
		static char many[1000][INET6_ADDRSTRLEN];

		for (int i = 0; i < 1000; i++) {
			snprintf(many[i], sizeof(many[i]), "%s",
			    pick(&e, EGRESS_SESSION, AF_INET6, NULL));
			assert_int_equal(strncmp(many[i], "2001:db8:5d:0:", 14)
			    == 0 || strncmp(many[i], "2001:db8:5d::", 13) == 0,
			    1);
			for (int j = 0; j < i; j++)
				assert_string_not_equal(many[i], many[j]);
		}
	}
	egress_release(&e);
}

static void
test_random_reaches_every_address(void **state)
{
	struct egress e;
	bool hit[4] = { false };

	(void)state;
	pool_of(&e, "192.0.2.10, 192.0.2.11, 192.0.2.12, 192.0.2.13");
	for (int i = 0; i < 2000; i++) {
		const char *ip = pick(&e, EGRESS_RANDOM, AF_INET, "u");
		int last;

		assert_int_equal(sscanf(ip, "192.0.2.%d", &last), 1);
		assert_true(last >= 10 && last <= 13);
		hit[last - 10] = true;
	}
	for (int i = 0; i < 4; i++)
		assert_true(hit[i]);
	egress_release(&e);
}

static void
test_select_names(void **state)
{
	(void)state;
	assert_int_equal(egress_select_parse("user"), EGRESS_USER);
	assert_int_equal(egress_select_parse("Session"), EGRESS_SESSION);
	assert_int_equal(egress_select_parse("random"), EGRESS_RANDOM);
	assert_int_equal(egress_select_parse("round-robin"),
	    EGRESS_ROUND_ROBIN);
	assert_int_equal(egress_select_parse("roundrobin"), EGRESS_UNSET);
	assert_int_equal(egress_select_parse(""), EGRESS_UNSET);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_networks_lose_what_no_host_may_use),
		cmocka_unit_test(test_a_family_the_pool_lacks_is_not_picked),
		cmocka_unit_test(test_user_is_stable_and_spread),
		cmocka_unit_test(test_user_moves_few_when_the_pool_grows),
		cmocka_unit_test(test_user_without_login_keys_on_the_client),
		cmocka_unit_test(test_session_is_fresh_until_the_pool_is_used_up),
		cmocka_unit_test(test_random_reaches_every_address),
		cmocka_unit_test(test_select_names),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
