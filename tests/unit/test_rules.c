/*
 * Unit tests for the access rules: every key both ways, first-match order,
 * names against CIDRs, suffixes, IPv6 and IPv4-mapped addresses, ports,
 * the UDP "any destination" walk, the open-proxy check, bad patterns, and
 * a 10,000-entry CIDR list for load and lookup speed, and the index by
 * user against a walk of every rule on random rule sets.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "socks5d/addr.h"
#include "socks5d/request.h"
#include "socks5d/rules.h"
#include "socks5d/rules_private.h"
#include "socks5d/socks5.h"

/*
 * Build a rule set from specs like "office: action=allow; dest=a, b":
 * NAME, then "key=value" pairs split at ';'.
 */
static struct rules *
test_build_n(const char *const *specs, size_t n)
{
	struct rules *rules = rules_new();
	char why[256];

	assert_non_null(rules);
	for (size_t i = 0; i < n; i++) {
		char *copy = strdup(specs[i]), *colon, *cursor, *pair;
		struct rule *r;

		assert_non_null(copy);
		colon = strchr(copy, ':');
		assert_non_null(colon);
		*colon = '\0';
		assert_true(rules_name_valid(copy));
		r = rules_add(rules, copy);
		assert_non_null(r);
		cursor = colon + 1;
		while ((pair = strsep(&cursor, ";")) != NULL) {
			char *eq = strchr(pair, '=');

			assert_non_null(eq);
			*eq = '\0';
			while (*pair == ' ')
				pair++;
			if (rules_set(r, pair, eq + 1, why, sizeof(why)) == -1)
				fail_msg("%s: %s = %s: %s", specs[i], pair,
				    eq + 1, why);
		}
		free(copy);
	}
	rules_finish(rules);
	return rules;
}

#define test_build(...)                                                 \
	test_build_n((const char *const[]){ __VA_ARGS__ },              \
	    sizeof((const char *const[]){ __VA_ARGS__ }) / sizeof(char *))

/* An address from its text; port 0. */
static const struct sockaddr *
test_sa(const char *ip, union sockaddr_any *out)
{
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, ip, &out->in.sin_addr) == 1) {
		out->in.sin_family = AF_INET;
	} else {
		assert_int_equal(inet_pton(AF_INET6, ip,
		    &out->in6.sin6_addr), 1);
		out->in6.sin6_family = AF_INET6;
	}
	return &out->sa;
}

/* The verdict for one request; NULL strings mean "not known". */
static struct rules_verdict
test_eval(const struct rules *rules, const char *client, const char *user,
    uint8_t cmd, const char *name, const char *addr, uint16_t port)
{
	union sockaddr_any c, d;
	struct rules_query q = {
		.client = test_sa(client, &c),
		.user = user,
		.cmd = cmd,
		.dest_name = name,
		.dest_addr = addr != NULL ? test_sa(addr, &d) : NULL,
		.port = port,
	};

	return rules_evaluate(rules, &q);
}

/* Could the request be allowed anywhere (UDP ASSOCIATE's first look)? */
static struct rules_verdict
test_any(const struct rules *rules, const struct sockaddr *client,
    const char *user, uint8_t cmd)
{
	struct rules_query q = { .client = client, .user = user, .cmd = cmd };

	return rules_evaluate_any_dest(rules, &q);
}

/* Allowed by the named rule? "-" for denied with no rule matching. */
static void
test_expect(struct rules_verdict v, bool allow, const char *rule)
{
	if (v.allow != allow)
		fail_msg("expected %s, got %s (rule %s)", allow ? "allow" :
		    "deny", v.allow ? "allow" : "deny",
		    v.rule != NULL ? v.rule : "NULL");
	if (rule == NULL)
		assert_null(v.rule);
	else if (v.rule == NULL || strcmp(v.rule, rule) != 0)
		fail_msg("expected rule %s, got %s", rule,
		    v.rule != NULL ? v.rule : "NULL");
}

#define CONNECT SOCKS5_CMD_CONNECT

static void
test_no_rules(void **state)
{
	struct rules *empty = rules_new();
	union sockaddr_any c;

	(void)state;
	test_expect(test_eval(NULL, "1.2.3.4", NULL, CONNECT, "x.org", NULL,
	    80), true, NULL);
	test_expect(test_any(NULL, test_sa("1.2.3.4", &c),
	    NULL, SOCKS5_CMD_UDP), true, NULL);
	assert_false(rules_restrict_clients(NULL));
	assert_int_equal(rules_count(NULL), 0);
	assert_null(rules_name(NULL, 0));
	/* An empty set behaves like none. */
	rules_finish(empty);
	test_expect(test_eval(empty, "1.2.3.4", NULL, CONNECT, NULL,
	    "5.6.7.8", 80), true, NULL);
	assert_false(rules_restrict_clients(empty));
	rules_free(empty);
	rules_free(NULL);
}

static void
test_action_and_default_deny(void **state)
{
	struct rules *r = test_build("a: action=deny; port=25",
	    "b: action=allow; port=80");

	(void)state;
	assert_int_equal(rules_count(r), 2);
	assert_string_equal(rules_name(r, 0), "a");
	assert_string_equal(rules_name(r, 1), "b");
	assert_null(rules_name(r, 2));
	test_expect(test_eval(r, "1.2.3.4", NULL, CONNECT, "x.org", NULL, 25),
	    false, "a");
	test_expect(test_eval(r, "1.2.3.4", NULL, CONNECT, "x.org", NULL, 80),
	    true, "b");
	/* Rules exist and none matches: deny, no rule. */
	test_expect(test_eval(r, "1.2.3.4", NULL, CONNECT, "x.org", NULL, 22),
	    false, NULL);
	rules_free(r);
}

static void
test_first_match(void **state)
{
	struct rules *r = test_build("narrow: action=deny; dest=.bad.org",
	    "wide: action=allow",
	    "never: action=deny");

	(void)state;
	test_expect(test_eval(r, "1.2.3.4", NULL, CONNECT, "www.bad.org", NULL,
	    443), false, "narrow");
	test_expect(test_eval(r, "1.2.3.4", NULL, CONNECT, "good.org", NULL,
	    443), true, "wide");
	rules_free(r);
	/* Same rules, other order: the wide allow shadows the deny. */
	r = test_build("wide: action=allow", "narrow: action=deny; "
	    "dest=.bad.org");
	test_expect(test_eval(r, "1.2.3.4", NULL, CONNECT, "www.bad.org", NULL,
	    443), true, "wide");
	rules_free(r);
}

static void
test_client(void **state)
{
	struct rules *r = test_build("lan: action=allow; client=10.0.0.0/8, "
	    "192.168.1.7, 2001:db8::/32, ::ffff:172.16.0.0/108");

	(void)state;
	test_expect(test_eval(r, "10.200.3.4", NULL, CONNECT, "x.org", NULL,
	    80), true, "lan");
	test_expect(test_eval(r, "11.0.0.1", NULL, CONNECT, "x.org", NULL, 80),
	    false, NULL);
	test_expect(test_eval(r, "192.168.1.7", NULL, CONNECT, "x.org", NULL,
	    80), true, "lan");
	test_expect(test_eval(r, "192.168.1.8", NULL, CONNECT, "x.org", NULL,
	    80), false, NULL);
	test_expect(test_eval(r, "2001:db8:ffff::1", NULL, CONNECT, "x.org",
	    NULL, 80), true, "lan");
	test_expect(test_eval(r, "2001:db9::1", NULL, CONNECT, "x.org", NULL,
	    80), false, NULL);
	/* A dual-stack socket's view of an IPv4 client. */
	test_expect(test_eval(r, "::ffff:10.1.2.3", NULL, CONNECT, "x.org",
	    NULL, 80), true, "lan");
	test_expect(test_eval(r, "::ffff:11.1.2.3", NULL, CONNECT, "x.org",
	    NULL, 80), false, NULL);
	/* A mapped pattern is an IPv4 pattern (172.16.0.0/12). */
	test_expect(test_eval(r, "172.31.255.255", NULL, CONNECT, "x.org",
	    NULL, 80), true, "lan");
	test_expect(test_eval(r, "172.32.0.0", NULL, CONNECT, "x.org", NULL,
	    80), false, NULL);
	rules_free(r);
}

static void
test_user(void **state)
{
	struct rules *r = test_build("staff: action=allow; user=alice, bob");

	(void)state;
	test_expect(test_eval(r, "1.2.3.4", "alice", CONNECT, "x.org", NULL,
	    80), true, "staff");
	test_expect(test_eval(r, "1.2.3.4", "bob", CONNECT, "x.org", NULL, 80),
	    true, "staff");
	test_expect(test_eval(r, "1.2.3.4", "Alice", CONNECT, "x.org", NULL,
	    80), false, NULL);
	test_expect(test_eval(r, "1.2.3.4", "carol", CONNECT, "x.org", NULL,
	    80), false, NULL);
	/* No login never matches a user list. */
	test_expect(test_eval(r, "1.2.3.4", NULL, CONNECT, "x.org", NULL, 80),
	    false, NULL);
	rules_free(r);
	/* And a rule without user= matches with or without login. */
	r = test_build("all: action=allow");
	test_expect(test_eval(r, "1.2.3.4", NULL, CONNECT, "x.org", NULL, 80),
	    true, "all");
	test_expect(test_eval(r, "1.2.3.4", "alice", CONNECT, "x.org", NULL,
	    80), true, "all");
	rules_free(r);
}

static void
test_command(void **state)
{
	struct rules *r = test_build("tcp: action=allow; command=connect, "
	    "BIND");

	(void)state;
	test_expect(test_eval(r, "1.2.3.4", NULL, SOCKS5_CMD_CONNECT, "x.org",
	    NULL, 80), true, "tcp");
	test_expect(test_eval(r, "1.2.3.4", NULL, SOCKS5_CMD_BIND, "x.org",
	    NULL, 80), true, "tcp");
	test_expect(test_eval(r, "1.2.3.4", NULL, SOCKS5_CMD_UDP, "x.org",
	    NULL, 80), false, NULL);
	test_expect(test_eval(r, "1.2.3.4", NULL, 0x7f, "x.org", NULL, 80),
	    false, NULL);
	rules_free(r);
}

static void
test_names_and_cidrs(void **state)
{
	struct rules *r = test_build(
	    "noloop: action=deny; dest=127.0.0.0/8, ::1",
	    "web: action=allow; dest=example.com, 93.184.0.0/16");

	(void)state;
	/* A literal request is matched against CIDRs only. */
	test_expect(test_eval(r, "1.2.3.4", NULL, CONNECT, NULL,
	    "93.184.216.34", 80), true, "web");
	test_expect(test_eval(r, "1.2.3.4", NULL, CONNECT, NULL, "1.1.1.1",
	    80), false, NULL);
	/* Not resolved yet: names only. */
	test_expect(test_eval(r, "1.2.3.4", NULL, CONNECT, "example.com", NULL,
	    80), true, "web");
	test_expect(test_eval(r, "1.2.3.4", NULL, CONNECT, "Example.COM.",
	    NULL, 80), true, "web");
	test_expect(test_eval(r, "1.2.3.4", NULL, CONNECT, "www.example.com",
	    NULL, 80), false, NULL);
	/* Resolved: a name may lead to a denied address. */
	test_expect(test_eval(r, "1.2.3.4", NULL, CONNECT, "localhost",
	    "127.0.0.1", 80), false, "noloop");
	test_expect(test_eval(r, "1.2.3.4", NULL, CONNECT, "localhost", "::1",
	    80), false, "noloop");
	test_expect(test_eval(r, "1.2.3.4", NULL, CONNECT, "localhost", NULL,
	    80), false, NULL);
	/* The name matches even where the address does not. */
	test_expect(test_eval(r, "1.2.3.4", NULL, CONNECT, "example.com",
	    "10.9.9.9", 80), true, "web");
	/* IPv4-mapped destinations are IPv4. */
	test_expect(test_eval(r, "1.2.3.4", NULL, CONNECT, NULL,
	    "::ffff:127.0.0.2", 80), false, "noloop");
	rules_free(r);
}

static void
test_suffixes(void **state)
{
	struct rules *r = test_build("org: action=allow; dest=.example.org, "
	    ".Co.UK.");

	(void)state;
	test_expect(test_eval(r, "1.2.3.4", NULL, CONNECT, "example.org", NULL,
	    80), true, "org");
	test_expect(test_eval(r, "1.2.3.4", NULL, CONNECT, "www.example.org",
	    NULL, 80), true, "org");
	test_expect(test_eval(r, "1.2.3.4", NULL, CONNECT,
	    "a.b.c.EXAMPLE.org.", NULL, 80), true, "org");
	test_expect(test_eval(r, "1.2.3.4", NULL, CONNECT, "bbc.co.uk", NULL,
	    80), true, "org");
	test_expect(test_eval(r, "1.2.3.4", NULL, CONNECT, "badexample.org",
	    NULL, 80), false, NULL);
	test_expect(test_eval(r, "1.2.3.4", NULL, CONNECT, "org", NULL, 80),
	    false, NULL);
	test_expect(test_eval(r, "1.2.3.4", NULL, CONNECT, "example.org.evil",
	    NULL, 80), false, NULL);
	test_expect(test_eval(r, "1.2.3.4", NULL, CONNECT, "", NULL, 80),
	    false, NULL);
	test_expect(test_eval(r, "1.2.3.4", NULL, CONNECT, ".", NULL, 80),
	    false, NULL);
	rules_free(r);
}

static void
test_ipv6_dest(void **state)
{
	struct rules *r = test_build("v6: action=allow; dest=2001:db8::/48, "
	    "::/128, fe80::1");

	(void)state;
	test_expect(test_eval(r, "::1", NULL, CONNECT, NULL,
	    "2001:db8:0:ffff::", 80), true, "v6");
	test_expect(test_eval(r, "::1", NULL, CONNECT, NULL, "2001:db8:1::",
	    80), false, NULL);
	test_expect(test_eval(r, "::1", NULL, CONNECT, NULL, "::", 80), true,
	    "v6");
	test_expect(test_eval(r, "::1", NULL, CONNECT, NULL, "fe80::1", 80),
	    true, "v6");
	test_expect(test_eval(r, "::1", NULL, CONNECT, NULL, "fe80::2", 80),
	    false, NULL);
	/* An IPv4 address is not in any IPv6 range. */
	test_expect(test_eval(r, "::1", NULL, CONNECT, NULL, "0.0.0.0", 80),
	    false, NULL);
	rules_free(r);
}

static void
test_ports(void **state)
{
	struct rules *r = test_build("web: action=allow; port=80, 443, "
	    "8000-8999, 8500-9000, 0");

	(void)state;
	for (unsigned p = 0; p < 65536; p += 1) {
		bool want = p == 0 || p == 80 || p == 443 ||
		    (p >= 8000 && p <= 9000);
		struct rules_verdict v = test_eval(r, "1.2.3.4", NULL, CONNECT,
		    "x.org", NULL, (uint16_t)p);

		if (v.allow != want)
			fail_msg("port %u: got %d", p, v.allow);
	}
	rules_free(r);
	r = test_build("top: action=allow; port=65535");
	test_expect(test_eval(r, "1.2.3.4", NULL, CONNECT, "x.org", NULL,
	    65535), true, "top");
	test_expect(test_eval(r, "1.2.3.4", NULL, CONNECT, "x.org", NULL,
	    65534), false, NULL);
	rules_free(r);
}

static void
test_any_dest(void **state)
{
	struct rules *r = test_build(
	    "nodns: action=deny; command=udp; port=53",
	    "guests: action=deny; client=192.0.2.0/24",
	    "udp-staff: action=allow; command=udp; user=alice",
	    "tcp: action=allow; command=connect");
	union sockaddr_any c;

	(void)state;
	/* The narrow deny is passed over; alice's allow is found. */
	test_expect(test_any(r, test_sa("10.0.0.1", &c),
	    "alice", SOCKS5_CMD_UDP), true, "udp-staff");
	/* A deny without dest or port stops the walk. */
	test_expect(test_any(r, test_sa("192.0.2.9", &c),
	    "alice", SOCKS5_CMD_UDP), false, "guests");
	/* Nothing allows: deny, no rule. */
	test_expect(test_any(r, test_sa("10.0.0.1", &c), NULL,
	    SOCKS5_CMD_UDP), false, NULL);
	test_expect(test_any(r, test_sa("10.0.0.1", &c), "bob",
	    SOCKS5_CMD_CONNECT), true, "tcp");
	/* Each datagram still meets the narrow deny. */
	test_expect(test_eval(r, "10.0.0.1", "alice", SOCKS5_CMD_UDP, NULL,
	    "8.8.8.8", 53), false, "nodns");
	test_expect(test_eval(r, "10.0.0.1", "alice", SOCKS5_CMD_UDP, NULL,
	    "8.8.8.8", 123), true, "udp-staff");
	rules_free(r);
	/* A deny with only a dest is passed over too. */
	r = test_build("a: action=deny; dest=10.0.0.0/8");
	test_expect(test_any(r, test_sa("1.2.3.4", &c), NULL,
	    SOCKS5_CMD_UDP), false, NULL);
	rules_free(r);
}

static void
test_restrict_clients(void **state)
{
	struct rules *r;

	(void)state;
	r = test_build("lan: action=allow; client=10.0.0.0/8, fd00::/8",
	    "rest: action=deny");
	assert_true(rules_restrict_clients(r));
	rules_free(r);
	/* Only denies: nothing is open. */
	r = test_build("none: action=deny");
	assert_true(rules_restrict_clients(r));
	rules_free(r);
	r = test_build("lan: action=allow; client=10.0.0.0/8",
	    "web: action=allow; port=80");
	assert_false(rules_restrict_clients(r));
	rules_free(r);
	r = test_build("v4: action=allow; client=0.0.0.0/0");
	assert_false(rules_restrict_clients(r));
	rules_free(r);
	r = test_build("v6: action=allow; client=10.0.0.0/8, ::/0");
	assert_false(rules_restrict_clients(r));
	rules_free(r);
	/* Two halves merge into everything. */
	r = test_build("halves: action=allow; client=0.0.0.0/1, 128.0.0.0/1");
	assert_false(rules_restrict_clients(r));
	rules_free(r);
	/* A deny rule may be wide open; it grants nothing. */
	r = test_build("open: action=deny; client=0.0.0.0/0",
	    "lan: action=allow; client=192.168.0.0/16");
	assert_true(rules_restrict_clients(r));
	rules_free(r);
}

static void
test_append_and_merge(void **state)
{
	struct rules *r = rules_new();
	struct rule *rule;
	char why[128];

	(void)state;
	rule = rules_add(r, "a");
	assert_non_null(rule);
	assert_false(rules_has_action(rule));
	assert_int_equal(rules_set(rule, "action", " Allow ", why,
	    sizeof(why)), 0);
	assert_true(rules_has_action(rule));
	/* Setting a list again appends; overlaps and repeats merge. */
	assert_int_equal(rules_set(rule, "dest", "10.0.0.0/24, 10.0.1.0/24",
	    why, sizeof(why)), 0);
	assert_int_equal(rules_set(rule, "dest", "10.0.0.128/25, 10.0.2.0/23, "
	    "10.0.0.0/24, a.org, A.org", why, sizeof(why)), 0);
	assert_ptr_equal(rules_find(r, "a"), rule);
	assert_null(rules_find(r, "b"));
	rules_finish(r);
	test_expect(test_eval(r, "1.1.1.1", NULL, CONNECT, NULL, "10.0.0.0",
	    1), true, "a");
	test_expect(test_eval(r, "1.1.1.1", NULL, CONNECT, NULL, "10.0.3.255",
	    1), true, "a");
	test_expect(test_eval(r, "1.1.1.1", NULL, CONNECT, NULL, "10.0.4.0",
	    1), false, NULL);
	test_expect(test_eval(r, "1.1.1.1", NULL, CONNECT, NULL,
	    "9.255.255.255", 1), false, NULL);
	test_expect(test_eval(r, "1.1.1.1", NULL, CONNECT, "a.org", NULL, 1),
	    true, "a");
	/* Host bits are ignored: 10.0.0.1/8 is 10.0.0.0/8. */
	rule = rules_add(r, "b");
	assert_int_equal(rules_set(rule, "action", "deny", why, sizeof(why)),
	    0);
	assert_int_equal(rules_set(rule, "client", "172.16.5.5/12", why,
	    sizeof(why)), 0);
	rules_finish(r);
	test_expect(test_eval(r, "172.31.0.1", NULL, CONNECT, NULL, "8.8.8.8",
	    1), false, "b");
	rules_free(r);
}

/* key = value must fail with exactly why. */
static void
test_bad(const char *key, const char *value, const char *want)
{
	struct rules *r = rules_new();
	struct rule *rule = rules_add(r, "x");
	char why[256] = "";

	assert_non_null(rule);
	if (rules_set(rule, key, value, why, sizeof(why)) != -1)
		fail_msg("%s = %s was accepted", key, value);
	if (strcmp(why, want) != 0)
		fail_msg("%s = %s: expected \"%s\", got \"%s\"", key, value,
		    want, why);
	rules_free(r);
}

static void
test_bad_values(void **state)
{
	(void)state;
	test_bad("action", "permit", "\"permit\" is not allow or deny");
	test_bad("action", "", "\"\" is not allow or deny");
	test_bad("dest", "10.0.0.0/33", "bad pattern \"10.0.0.0/33\"");
	test_bad("dest", "10.0.0.300", "bad pattern \"10.0.0.300\"");
	test_bad("dest", "2001:db8::/129", "bad pattern \"2001:db8::/129\"");
	test_bad("dest", "10.0.0.0/", "bad pattern \"10.0.0.0/\"");
	test_bad("dest", "10.0.0.0/-1", "bad pattern \"10.0.0.0/-1\"");
	test_bad("dest", "a..b", "bad pattern \"a..b\"");
	test_bad("dest", ".", "bad pattern \".\"");
	test_bad("dest", "*.example.org", "bad pattern \"*.example.org\"");
	test_bad("dest", "exa mple.org", "bad pattern \"exa mple.org\"");
	test_bad("dest", "a.org,", "empty item in the list");
	test_bad("dest", " ", "empty list (leave the key out to match "
	    "anything)");
	test_bad("client", "example.com", "bad CIDR \"example.com\"");
	test_bad("client", "1.2.3.4/8x", "bad CIDR \"1.2.3.4/8x\"");
	test_bad("port", "65536", "bad port \"65536\" (0-65535 or LOW-HIGH)");
	test_bad("port", "90-80", "bad port \"90-80\" (0-65535 or LOW-HIGH)");
	test_bad("port", "http", "bad port \"http\" (0-65535 or LOW-HIGH)");
	test_bad("port", "-5", "bad port \"-5\" (0-65535 or LOW-HIGH)");
	test_bad("command", "associate", "bad command \"associate\" (connect, "
	    "bind, udp, resolve or resolve_ptr)");
	test_bad("colour", "red", "unknown key");
	assert_true(rules_name_valid("office-1_b.c"));
	assert_false(rules_name_valid(""));
	assert_false(rules_name_valid("a b"));
	assert_false(rules_name_valid("a]"));
	assert_false(rules_name_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaa"));
}

/* Digits make a name an address only when the last label is all digits. */
static void
test_names_with_digits(void **state)
{
	struct rules *r = test_build("n: action=allow; dest=server1, "
	    "1.example, .10.in-addr.arpa");

	(void)state;
	test_expect(test_eval(r, "1.2.3.4", NULL, CONNECT, "SERVER1", NULL,
	    80), true, "n");
	test_expect(test_eval(r, "1.2.3.4", NULL, CONNECT, "1.example", NULL,
	    80), true, "n");
	test_expect(test_eval(r, "1.2.3.4", NULL, CONNECT,
	    "4.3.2.10.in-addr.arpa", NULL, 80), true, "n");
	test_expect(test_eval(r, "1.2.3.4", NULL, CONNECT, "server2", NULL,
	    80), false, NULL);
	rules_free(r);
}

static double
test_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 10,000 distinct /24s: 10.i.j.0/24 for every other j, so misses sit
 * between hits. Appended one line at a time, as a long config would. */
static void
test_big_list(void **state)
{
	struct rules *r = rules_new();
	struct rule *rule = rules_add(r, "big");
	struct rules_query q = { .cmd = CONNECT, .port = 80 };
	union sockaddr_any c, d;
	char why[128], line[64];
	double t0, t1;
	unsigned hits = 0;

	(void)state;
	assert_non_null(rule);
	assert_int_equal(rules_set(rule, "action", "allow", why, sizeof(why)),
	    0);
	t0 = test_now();
	for (unsigned k = 0; k < 10000; k++) {
		snprintf(line, sizeof(line), "10.%u.%u.0/24", k / 128,
		    (k % 128) * 2);
		if (rules_set(rule, "dest", line, why, sizeof(why)) != 0)
			fail_msg("%s: %s", line, why);
	}
	rules_finish(r);
	t1 = test_now();
	if (t1 - t0 > 1.0)
		fail_msg("loading 10,000 CIDRs took %.3f s", t1 - t0);
	q.client = test_sa("192.0.2.1", &c);
	q.dest_addr = test_sa("10.0.0.0", &d);
	for (unsigned k = 0; k < 10000; k++) {
		unsigned a = k / 128, b = (k % 128) * 2;

		d.in.sin_addr.s_addr = htonl(10u << 24 | a << 16 | b << 8 | 77);
		assert_true(rules_evaluate(r, &q).allow);
		d.in.sin_addr.s_addr = htonl(10u << 24 | a << 16 |
		    (b + 1) << 8 | 77);
		assert_false(rules_evaluate(r, &q).allow);
	}
	test_expect(test_eval(r, "1.1.1.1", NULL, CONNECT, NULL, "10.78.31.0",
	    80), false, NULL);
	test_expect(test_eval(r, "1.1.1.1", NULL, CONNECT, NULL, "11.0.0.0",
	    80), false, NULL);
	t0 = test_now();
	for (uint32_t i = 0; i < 1000000; i++) {
		d.in.sin_addr.s_addr = htonl(10u << 24 | (i * 2654435761u >> 8
		    & 0xffffff));
		hits += rules_evaluate(r, &q).allow;
	}
	t1 = test_now();
	if (t1 - t0 > 2.0)
		fail_msg("1,000,000 evaluations took %.3f s", t1 - t0);
	assert_true(hits > 0 && hits < 1000000);
	rules_free(r);
}

/* protocol= matches the front-end a request came in; a rule that names
 * both protocols and clients says so in its verdict. */
static void
test_protocol_condition(void **state)
{
	struct rules *r = test_build(
	    "socks4-office: action=allow; protocol=socks4; client=10.0.0.0/8",
	    "http-any: action=allow; protocol=HTTP",
	    "no-socks4: action=deny; protocol=socks4",
	    "rest: action=allow");
	union sockaddr_any c;
	struct rules_query q = { .cmd = CONNECT, .port = 80 };
	struct rules_verdict v;
	char why[128];

	(void)state;
	q.client = test_sa("10.1.2.3", &c);
	q.proto = REQUEST_PROTO_SOCKS4;
	v = rules_evaluate(r, &q);
	test_expect(v, true, "socks4-office");
	assert_true(v.by_client_and_protocol);
	q.client = test_sa("192.0.2.1", &c);
	test_expect(rules_evaluate(r, &q), false, "no-socks4");
	q.proto = REQUEST_PROTO_HTTP;
	v = rules_evaluate(r, &q);
	test_expect(v, true, "http-any");
	assert_false(v.by_client_and_protocol);
	q.proto = REQUEST_PROTO_SOCKS5;
	v = rules_evaluate(r, &q);
	test_expect(v, true, "rest");
	assert_false(v.by_client_and_protocol);
	q.proto = REQUEST_PROTO_SOCKS4;
	test_expect(rules_evaluate_any_dest(r, &q), false, "no-socks4");
	rules_free(r);

	r = rules_new();
	assert_int_equal(rules_set(rules_add(r, "x"), "protocol", "socks6",
	    why, sizeof(why)), -1);
	assert_non_null(strstr(why, "socks6"));
	rules_free(r);
}

/*
 * The index by user decides as a walk of every rule does: random rule sets
 * (rules naming none, one or several of six users, some also a client, a
 * command or a destination, allow or deny, and the same user in rules far
 * apart), asked with every user and none, for destinations in and out of
 * the rules' networks, by rules_evaluate and rules_evaluate_any_dest, with
 * the index and then without it.
 */
static void
test_user_index_matches_full_walk(void **state)
{
	static const char *const users[] = { "ann", "bob", "cy", "dee", "ed",
	    "flo" };
	static const char *const dests[] = { "10.0.0.1", "10.1.2.3",
	    "192.0.2.7", "2001:db8::1" };
	char specs[40][160];
	const char *spec_ptrs[40];
	unsigned seed = 1234567;

	(void)state;
	for (int round = 0; round < 200; round++) {
		size_t n = 1 + (size_t)(rand_r(&seed) % 40);
		struct rules *rules;
		struct rules_verdict v[2][7][4][2];

		for (size_t i = 0; i < n; i++) {
			int len = snprintf(specs[i], sizeof(specs[i]),
			    "r%zu: action=%s", i,
			    rand_r(&seed) % 3 == 0 ? "deny" : "allow");
			unsigned nusers = (unsigned)rand_r(&seed) % 4;

			for (unsigned u = 0; u < nusers; u++)
				len += snprintf(specs[i] + len,
				    sizeof(specs[i]) - (size_t)len, "%s%s",
				    u == 0 ? "; user=" : ", ",
				    users[rand_r(&seed) % 6]);
			if (rand_r(&seed) % 3 == 0)
				len += snprintf(specs[i] + len,
				    sizeof(specs[i]) - (size_t)len,
				    "; dest=10.%d.0.0/16", rand_r(&seed) % 2);
			if (rand_r(&seed) % 5 == 0)
				len += snprintf(specs[i] + len,
				    sizeof(specs[i]) - (size_t)len,
				    "; command=connect");
			if (rand_r(&seed) % 6 == 0)
				snprintf(specs[i] + len,
				    sizeof(specs[i]) - (size_t)len,
				    "; client=127.0.0.0/8");
			spec_ptrs[i] = specs[i];
		}
		rules = test_build_n(spec_ptrs, n);
		assert_true(rules->indexed);
		for (int pass = 0; pass < 2; pass++) {
			for (int u = 0; u < 7; u++) {
				for (int d = 0; d < 4; d++) {
					union sockaddr_any client, dest;
					struct rules_query q = {
						.client = test_sa(d % 2 ?
						    "127.0.0.1" : "192.0.2.1",
						    &client),
						.user = u < 6 ? users[u] : NULL,
						.cmd = d == 3 ?
						    REQUEST_CMD_BIND :
						    REQUEST_CMD_CONNECT,
						.dest_addr = test_sa(dests[d],
						    &dest),
						.port = 443,
					};

					v[pass][u][d][0] =
					    rules_evaluate(rules, &q);
					v[pass][u][d][1] =
					    rules_evaluate_any_dest(rules, &q);
				}
			}
			/* The second pass walks every rule. */
			rules_index_free(rules);
		}
		for (int u = 0; u < 7; u++)
			for (int d = 0; d < 4; d++)
				for (int k = 0; k < 2; k++) {
					assert_int_equal(v[0][u][d][k].allow,
					    v[1][u][d][k].allow);
					assert_ptr_equal(v[0][u][d][k].rule,
					    v[1][u][d][k].rule);
				}
		rules_free(rules);
	}
}

/* intercept = yes travels with the verdict of the rule that matched, and
 * the loader can find the rules that ask for it. */
static void
test_intercept_key(void **state)
{
	struct rules *rules = test_build(
	    "lab: action=allow; dest=10.0.0.0/8; intercept=yes",
	    "rest: action=allow; intercept=no");
	struct rules *denying = test_build("no: action=deny; intercept=yes");
	union sockaddr_any a, b;
	struct rules_query q = { .cmd = REQUEST_CMD_CONNECT, .port = 443 };
	struct rule *r = rules_add(denying, "bad");
	char why[128];

	(void)state;
	q.dest_addr = test_sa("10.1.2.3", &a);
	assert_true(rules_evaluate(rules, &q).intercept);
	q.dest_addr = test_sa("192.0.2.1", &b);
	assert_false(rules_evaluate(rules, &q).intercept);
	assert_string_equal(rules_intercepting(rules, false), "lab");
	assert_null(rules_intercepting(rules, true));
	assert_string_equal(rules_intercepting(denying, true), "no");
	assert_int_equal(rules_set(r, "intercept", "maybe", why, sizeof(why)),
	    -1);
	assert_non_null(strstr(why, "yes or no"));
	assert_int_equal(rules_set(r, "intercept", " YES ", why, sizeof(why)),
	    0);
	rules_free(rules);
	rules_free(denying);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_intercept_key),
		cmocka_unit_test(test_user_index_matches_full_walk),
		cmocka_unit_test(test_no_rules),
		cmocka_unit_test(test_action_and_default_deny),
		cmocka_unit_test(test_first_match),
		cmocka_unit_test(test_client),
		cmocka_unit_test(test_user),
		cmocka_unit_test(test_command),
		cmocka_unit_test(test_names_and_cidrs),
		cmocka_unit_test(test_suffixes),
		cmocka_unit_test(test_ipv6_dest),
		cmocka_unit_test(test_ports),
		cmocka_unit_test(test_any_dest),
		cmocka_unit_test(test_restrict_clients),
		cmocka_unit_test(test_append_and_merge),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_names_with_digits),
		cmocka_unit_test(test_big_list),
		cmocka_unit_test(test_protocol_condition),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
