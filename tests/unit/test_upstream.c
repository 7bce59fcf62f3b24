/*
 * Unit tests for upstream sections: URL lists (schemes, logins with
 * percent-escapes, hosts, ports, and errors that never quote a value),
 * deep copies, and each member's health: down after fail_after failures
 * in a row, skipped for retry_after, kept across a reload.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "socks5d/upstream.h"

static struct upstream *
parsed(struct upstreams *set, const char *name, const char *urls)
{
	struct upstream *u = upstreams_add(set, name);
	char why[256];

	assert_non_null(u);
	u->fail_after = 2;
	u->retry_after = 10;
	assert_int_equal(upstream_set_urls(u, urls, why, sizeof(why)), 0);
	return u;
}

static void
test_urls(void **state)
{
	struct upstreams *set = upstreams_new();
	struct upstream *u;

	(void)state;
	u = parsed(set, "corp", "socks5://us%3Aer:p%40ss%2Cw@proxy.example:1080, "
	    " socks5h://10.0.0.1:1081 ,HTTP://[2001:db8::3]:3128/");
	assert_int_equal(u->n, 3);
	assert_int_equal(u->members[0].scheme, UPSTREAM_SOCKS5);
	assert_string_equal(u->members[0].host, "proxy.example");
	assert_int_equal(u->members[0].port, 1080);
	assert_string_equal(u->members[0].user, "us:er");
	assert_string_equal(u->members[0].password, "p@ss,w");
	assert_string_equal(u->members[0].label, "socks5://proxy.example:1080");
	assert_int_equal(u->members[1].scheme, UPSTREAM_SOCKS5H);
	assert_null(u->members[1].user);
	assert_string_equal(u->members[1].label, "socks5h://10.0.0.1:1081");
	assert_int_equal(u->members[2].scheme, UPSTREAM_HTTP);
	assert_string_equal(u->members[2].host, "2001:db8::3");
	assert_string_equal(u->members[2].label, "http://[2001:db8::3]:3128");
	assert_ptr_equal(upstreams_find(set, "corp"), u);
	assert_null(upstreams_find(set, "other"));
	upstreams_free(set);
}

static void
test_tls_urls(void **state)
{
	struct upstreams *set = upstreams_new();
	struct upstream *u;

	(void)state;
	u = parsed(set, "sealed", "socks5+tls://a:1, SOCKS5H+TLS://u:p@b:2, "
	    "https://[::1]:3, http://c:4");
	assert_int_equal(u->n, 4);
	assert_int_equal(u->members[0].scheme, UPSTREAM_SOCKS5);
	assert_true(u->members[0].tls);
	assert_string_equal(u->members[0].label, "socks5+tls://a:1");
	assert_int_equal(u->members[1].scheme, UPSTREAM_SOCKS5H);
	assert_true(u->members[1].tls);
	assert_string_equal(u->members[1].user, "u");
	assert_string_equal(u->members[1].label, "socks5h+tls://b:2");
	assert_int_equal(u->members[2].scheme, UPSTREAM_HTTP);
	assert_true(u->members[2].tls);
	assert_string_equal(u->members[2].label, "https://[::1]:3");
	assert_false(u->members[3].tls);
	upstreams_free(set);
}

static void
test_bad_urls_never_quote_the_value(void **state)
{
	static const struct {
		const char *urls, *why;
	} bad[] = {
		{ "ftp://h:1", "member 1: the scheme must be" },
		{ "socks5://h", "member 1: a port is needed" },
		{ "socks5://h:0", "member 1: the port must be 1 to 65535" },
		{ "socks5://h:65536", "member 1: the port must be" },
		{ "socks5://h:1x", "member 1: the port must be" },
		{ "socks5://h:1, socks5://user:topsecret@h", "member 2: a port" },
		{ "socks5://user@h:1", "member 1: a login is user:password@" },
		{ "socks5://:pw@h:1", "member 1: the user and password" },
		{ "socks5://u:%zz@h:1", "member 1: the user and password" },
		{ "socks5://u:%00@h:1", "member 1: the user and password" },
		{ "http://a%3Ab:pw@h:1", "member 1: an HTTP user name" },
		{ "socks5://::1:1080", "member 1: an IPv6 address needs brackets" },
		{ "socks5://[::1:1080", "member 1: an IPv6 address must end" },
		{ "socks5://[nothex]:1080", "member 1: not an IPv6 address" },
		{ "socks5://ho st:1", "member 1: the host has a character" },
		{ "socks5://:1", "member 1: no host" },
		{ "socks5://h:1,", "member 2: empty" },
		{ "s://1:1,s://1:1,s://1:1", "member 1: the scheme" },
		{ "socks5://a:1,socks5://a:2,socks5://a:3,socks5://a:4,"
		  "socks5://a:5,socks5://a:6,socks5://a:7,socks5://a:8,"
		  "socks5://a:9", "member 9: at most 8 members" },
	};
	struct upstreams *set = upstreams_new();
	struct upstream *u = upstreams_add(set, "x");
	char why[256];

	(void)state;
	assert_int_equal(upstream_set_urls(u, "socks5://keep:me@h:1", why,
	    sizeof(why)), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(upstream_set_urls(u, bad[i].urls, why,
		    sizeof(why)), -1);
		if (strstr(why, bad[i].why) == NULL)
			fail_msg("\"%s\": got \"%s\"", bad[i].urls, why);
		assert_null(strstr(why, "topsecret"));
		assert_null(strstr(why, "zz"));
		/* A failed list leaves the members as they were. */
		assert_int_equal(u->n, 1);
		assert_string_equal(u->members[0].user, "keep");
	}
	assert_true(upstream_name_valid("corp-2.eu_west"));
	assert_false(upstream_name_valid("direct"));
	assert_false(upstream_name_valid("DIRECT"));
	assert_false(upstream_name_valid("a b"));
	assert_false(upstream_name_valid(""));
	upstreams_free(set);
}

static void
test_copy_is_deep(void **state)
{
	struct upstreams *set = upstreams_new();
	struct upstream *u = parsed(set, "corp", "socks5://a:b@h:1");
	struct upstream copy;

	(void)state;
	assert_int_equal(upstream_copy(&copy, u), 0);
	assert_string_equal(copy.name, "corp");
	assert_ptr_not_equal(copy.name, u->name);
	assert_ptr_not_equal(copy.members[0].password, u->members[0].password);
	upstreams_free(set);
	/* The copy outlives the config it came from. */
	assert_string_equal(copy.members[0].password, "b");
	upstream_copy_release(&copy);
	assert_null(copy.name);
}

static void
test_health_down_after_failures_and_back(void **state)
{
	struct upstreams *set = upstreams_new(), *reloaded;
	struct upstream *u = parsed(set, "corp", "socks5://h:1, socks5://h:2");
	const struct upstream_member *m;

	(void)state;
	upstream_health_reset();
	assert_int_equal(upstreams_attach_health(set), 0);
	m = &u->members[0];
	assert_true(upstream_usable(u, m, 100));
	upstream_report(u, m, false, 100);
	assert_true(upstream_usable(u, m, 100));
	/* A success in between starts the count again. */
	upstream_report(u, m, true, 100);
	upstream_report(u, m, false, 101);
	assert_true(upstream_usable(u, m, 101));
	upstream_report(u, m, false, 102);
	assert_false(upstream_usable(u, m, 102));
	assert_false(upstream_usable(u, m, 111.9));
	/* The other member is its own. */
	assert_true(upstream_usable(u, &u->members[1], 102));
	assert_int_equal(m->health->failed, 3);
	assert_int_equal(m->health->ok, 1);

	/* A reload with the same member finds the same record. */
	reloaded = upstreams_new();
	u = parsed(reloaded, "corp", "socks5://h:1");
	assert_int_equal(upstreams_attach_health(reloaded), 0);
	assert_ptr_equal(u->members[0].health, m->health);
	assert_false(upstream_usable(u, &u->members[0], 105));
	assert_true(upstream_usable(u, &u->members[0], 112));
	/* On trial after retry_after: its first failure puts it down again. */
	upstream_report(u, &u->members[0], false, 112);
	assert_false(upstream_usable(u, &u->members[0], 113));
	assert_true(upstream_usable(u, &u->members[0], 122));
	upstream_report(u, &u->members[0], true, 130);
	assert_true(upstream_usable(u, &u->members[0], 130));
	upstreams_free(set);
	upstreams_free(reloaded);
	upstream_health_reset();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_urls),
		cmocka_unit_test(test_tls_urls),
		cmocka_unit_test(test_bad_urls_never_quote_the_value),
		cmocka_unit_test(test_copy_is_deep),
		cmocka_unit_test(test_health_down_after_failures_and_back),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
