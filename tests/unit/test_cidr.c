/*
 * Unit tests for CIDR sets: IPv4, IPv6, bare and IPv4-mapped networks,
 * host bits, merging of adjacent, overlapping and duplicate spans, whole
 * families, bad syntax, look-ups of IPv4-mapped IPv6 addresses, release,
 * and random sets checked against a plain mask test.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "socks5d/addr.h"
#include "socks5d/cidr.h"

/* c, emptied, then filled with texts (each must parse) and finished. */
static void
test_fill_n(struct cidr_set *c, const char *const *texts, size_t n)
{
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < n; i++)
		if (cidr_set_add(c, texts[i]) != 0)
			fail_msg("cidr_set_add(\"%s\") failed", texts[i]);
	cidr_set_finish(c);
}

/* A list of strings as the pair (array, count). */
#define TEST_LIST(...)                                                  \
	(const char *const[]){ __VA_ARGS__ },                           \
	    sizeof((const char *const[]){ __VA_ARGS__ }) / sizeof(char *)

#define test_fill(c, ...)       test_fill_n(c, TEST_LIST(__VA_ARGS__))

/* Does c hold the IP literal ip (port 0, not normalized)? */
static bool
test_has(const struct cidr_set *c, const char *ip)
{
	struct sockaddr_storage ss;
	socklen_t len;

	if (addr_parse_ip(ip, &ss, &len) != 0)
		fail_msg("bad test address \"%s\"", ip);
	return cidr_set_has(c, (const struct sockaddr *)&ss);
}

/* Does c hold each IP literal (want true) or none of them (false)? */
static void
test_lookup_n(const struct cidr_set *c, bool want, const char *const *ips,
    size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (test_has(c, ips[i]) != want)
			fail_msg("%s: expected %sin the set", ips[i],
			    want ? "" : "not ");
}

#define test_in(c, ...)         test_lookup_n(c, true, TEST_LIST(__VA_ARGS__))
#define test_out(c, ...)        test_lookup_n(c, false, TEST_LIST(__VA_ARGS__))

/* The i-th merged IPv4 span of c is lo..hi. */
static void
test_span4(const struct cidr_set *c, size_t i, uint32_t lo, uint32_t hi)
{
	if (i >= c->n4 || c->v4[i].lo != lo || c->v4[i].hi != hi)
		fail_msg("span %zu: expected %08x-%08x", i, lo, hi);
}

static void
test_ipv4(void **state)
{
	struct cidr_set c;

	(void)state;
	test_fill(&c, "10.0.0.0/8", "192.168.1.7", "172.16.0.0/12");
	assert_int_equal(c.n4, 3);
	assert_int_equal(c.n6, 0);
	assert_false(cidr_set_empty(&c));
	assert_false(cidr_set_covers_a_family(&c));
	test_in(&c, "10.0.0.0", "10.255.255.255", "192.168.1.7",
	    "172.31.255.255");
	test_out(&c, "9.255.255.255", "11.0.0.0", "192.168.1.6",
	    "192.168.1.8", "172.32.0.0", "::1",
	    "::a00:1");                 /* ::10.0.0.1, not IPv4 */
	cidr_set_release(&c);
}

static void
test_ipv6(void **state)
{
	struct cidr_set c;

	(void)state;
	test_fill(&c, "2001:db8::/32", "::1", "fe80::/10", "2001:db8:1::/127");
	assert_int_equal(c.n4, 0);
	assert_int_equal(c.n6, 3);      /* the /127 lies in the /32 */
	assert_false(cidr_set_covers_a_family(&c));
	test_in(&c, "2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
	    "::1", "febf::1");
	test_out(&c, "2001:db9::", "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff",
	    "::2", "::", "fec0::", "0.0.0.1");
	cidr_set_release(&c);

	test_fill(&c, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127");
	test_in(&c, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
	test_out(&c, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffd");
	cidr_set_release(&c);
}

/* Host bits are dropped; the prefix decides. Leading zeros count. */
static void
test_host_bits(void **state)
{
	struct cidr_set c;

	(void)state;
	test_fill(&c, "10.1.2.3/8", "2001:db8:aaaa::1/32", "192.0.2.77/030");
	assert_int_equal(c.n4, 2);
	test_span4(&c, 0, 0x0a000000, 0x0affffff);
	test_span4(&c, 1, 0xc000024c, 0xc000024f);
	assert_int_equal(c.n6, 1);
	test_in(&c, "2001:db8::", "10.0.0.0");
	cidr_set_release(&c);

	test_fill(&c, "10.1.2.3/0");
	assert_true(cidr_set_covers_a_family(&c));
	test_in(&c, "0.0.0.0", "255.255.255.255");
	test_out(&c, "::");
	cidr_set_release(&c);
}

/* ::ffff:a.b.c.d/n with n >= 96 is stored as IPv4, and IPv4-mapped
 * addresses are looked up as IPv4. */
static void
test_mapped(void **state)
{
	struct cidr_set c;

	(void)state;
	test_fill(&c, "::ffff:10.0.0.0/104", "::ffff:192.0.2.1");
	assert_int_equal(c.n4, 2);
	assert_int_equal(c.n6, 0);
	test_span4(&c, 0, 0x0a000000, 0x0affffff);
	test_span4(&c, 1, 0xc0000201, 0xc0000201);
	test_in(&c, "10.9.8.7", "::ffff:10.9.8.7", "::ffff:192.0.2.1",
	    "192.0.2.1");
	test_out(&c, "::ffff:192.0.2.2", "::ffff:11.0.0.0",
	    "::10.9.8.7");              /* not mapped */
	cidr_set_release(&c);

	/* /96 of the mapped range is all of IPv4. */
	test_fill(&c, "::ffff:0:0/96");
	assert_int_equal(c.n4, 1);
	assert_int_equal(c.n6, 0);
	assert_true(cidr_set_covers_a_family(&c));
	test_in(&c, "1.2.3.4");
	cidr_set_release(&c);

	/* Shorter than /96: an IPv6 network, which mapped queries never
	 * reach, as they are looked up as IPv4. */
	test_fill(&c, "::ffff:0:0/95");
	assert_int_equal(c.n4, 0);
	assert_int_equal(c.n6, 1);
	test_out(&c, "::ffff:1.2.3.4");
	test_in(&c, "::fffe:1.2.3.4");
	cidr_set_release(&c);

	/* Likewise ::/0 holds every IPv6 address but no IPv4 one. */
	test_fill(&c, "::/0");
	assert_true(cidr_set_covers_a_family(&c));
	test_in(&c, "2001:db8::1");
	test_out(&c, "::ffff:1.2.3.4", "1.2.3.4");
	cidr_set_release(&c);
}

/* Overlapping, adjacent and duplicate spans merge; gaps do not. */
static void
test_merge(void **state)
{
	struct cidr_set c;

	(void)state;
	test_fill(&c, "10.0.0.128/25", "10.0.0.0/25", "10.0.1.0/24",
	    "10.0.3.0/24", "10.0.3.0/24", "10.0.3.7", "192.168.0.0/16",
	    "192.168.7.0/24");
	assert_int_equal(c.n4, 3);
	test_span4(&c, 0, 0x0a000000, 0x0a0001ff);
	test_span4(&c, 1, 0x0a000300, 0x0a0003ff);
	test_span4(&c, 2, 0xc0a80000, 0xc0a8ffff);
	test_in(&c, "10.0.1.255", "10.0.3.0");
	test_out(&c, "10.0.2.0");
	cidr_set_release(&c);

	/* Spans starting at 0 and ending at the top. */
	test_fill(&c, "0.0.0.0/16", "0.0.0.0/8", "0.0.0.0", "255.255.255.255",
	    "255.0.0.0/8");
	assert_int_equal(c.n4, 2);
	test_span4(&c, 0, 0, 0x00ffffff);
	test_span4(&c, 1, 0xff000000, 0xffffffff);
	cidr_set_release(&c);

	test_fill(&c, "2001:db8::/33", "2001:db8:8000::/33", "2001:db8::5",
	    "2001:db9::/32", "2001:dbb::/32");
	assert_int_equal(c.n6, 2);
	test_in(&c, "2001:db9:ffff::", "2001:dbb::");
	test_out(&c, "2001:dba::");
	cidr_set_release(&c);

	/* Finishing twice, or adding after finishing, keeps it right. */
	test_fill(&c, "10.0.0.0/24");
	assert_int_equal(cidr_set_add(&c, "10.0.1.0/24"), 0);
	cidr_set_finish(&c);
	cidr_set_finish(&c);
	assert_int_equal(c.n4, 1);
	test_in(&c, "10.0.1.1");
	cidr_set_release(&c);
}

/* Only what merges into a whole family covers one. */
static void
test_covers(void **state)
{
	struct cidr_set c;

	(void)state;
	memset(&c, 0, sizeof(c));
	cidr_set_finish(&c);
	assert_true(cidr_set_empty(&c));
	assert_false(cidr_set_covers_a_family(&c));
	test_out(&c, "1.2.3.4", "::1");

	test_fill(&c, "0.0.0.0/0");
	assert_true(cidr_set_covers_a_family(&c));
	cidr_set_release(&c);
	test_fill(&c, "10.0.0.0/8", "::/0");
	assert_true(cidr_set_covers_a_family(&c));
	cidr_set_release(&c);
	test_fill(&c, "128.0.0.0/1", "0.0.0.0/1");
	assert_true(cidr_set_covers_a_family(&c));
	cidr_set_release(&c);
	test_fill(&c, "::/1", "8000::/1");
	assert_true(cidr_set_covers_a_family(&c));
	cidr_set_release(&c);
	test_fill(&c, "0.0.0.0/1", "128.0.0.0/2", "::/1");
	assert_false(cidr_set_covers_a_family(&c));
	cidr_set_release(&c);
	test_fill(&c, "0.0.0.0/1", "::/1", "8000::/2");
	assert_false(cidr_set_covers_a_family(&c));
	cidr_set_release(&c);
}

static void
test_bad_syntax(void **state)
{
	static const char *const bad[] = {
		"", "/", "/8", "10.0.0.0/33", "10.0.0.0/", "10.0.0.0/-1",
		"10.0.0.0/+8", "10.0.0.0/ 8", "10.0.0.0/8 ", " 10.0.0.0",
		"10.0.0.0/8/8", "10.0.0.0/0x8", "10.0.0.0/000008",
		"10.0.0.300", "10.0.0", "10.0.0.0.0", "::/129", "::/128a",
		"::ffff:1.2.3.4/129", "2001:db8:::/32", "[::1]", "[::1]/128",
		"garbage", "example.com", "10.0.0.0/8,10.0.0.0/8",
		"1111:2222:3333:4444:5555:6666:255.255.255.255x/128",
		"0000000000000000000000000000000000000000000000000000000000001",
	};
	struct cidr_set c;

	(void)state;
	memset(&c, 0, sizeof(c));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (cidr_set_add(&c, bad[i]) != -1)
			fail_msg("\"%s\" was taken", bad[i]);
	cidr_set_finish(&c);
	assert_true(cidr_set_empty(&c));

	/* The edges that are fine. */
	assert_int_equal(cidr_set_add(&c, "10.0.0.0/32"), 0);
	assert_int_equal(cidr_set_add(&c, "10.0.0.0/00000"), 0);
	assert_int_equal(cidr_set_add(&c, "::/128"), 0);
	assert_int_equal(cidr_set_add(&c, "::/00128"), 0);
	assert_int_equal(cidr_set_add(&c, "1111:2222:3333:4444:5555:6666:"
	    "255.255.255.255/128"), 0);
	cidr_set_finish(&c);
	assert_int_equal(c.n4, 1);
	assert_int_equal(c.n6, 2);
	cidr_set_release(&c);
}

/* Other families are never held; ports do not matter. */
static void
test_lookup_other(void **state)
{
	struct cidr_set c;
	struct sockaddr_storage ss;
	union sockaddr_any a;
	socklen_t len;

	(void)state;
	test_fill(&c, "0.0.0.0/0", "::/0");
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	assert_false(cidr_set_has(&c, (const struct sockaddr *)&ss));
	assert_int_equal(addr_parse_ip("::ffff:10.0.0.1", &ss, &len), 0);
	memcpy(&a.in6, &ss, sizeof(a.in6));
	addr_set_port(&a, 443);
	cidr_set_release(&c);
	test_fill(&c, "10.0.0.1");
	assert_true(cidr_set_has(&c, &a.sa));
	cidr_set_release(&c);
}

static void
test_release(void **state)
{
	struct cidr_set c;

	(void)state;
	memset(&c, 0, sizeof(c));
	cidr_set_release(&c);           /* a zeroed set */
	assert_true(cidr_set_empty(&c));

	for (unsigned i = 0; i < 20; i++) {
		char text[64];

		snprintf(text, sizeof(text), "10.%u.0.0/16", i * 2);
		assert_int_equal(cidr_set_add(&c, text), 0);
		snprintf(text, sizeof(text), "2001:db8:%x::/48", i * 2);
		assert_int_equal(cidr_set_add(&c, text), 0);
	}
	cidr_set_finish(&c);
	assert_int_equal(c.n4, 20);
	assert_int_equal(c.n6, 20);
	cidr_set_release(&c);
	assert_null(c.v4);
	assert_null(c.v6);
	assert_int_equal(c.n4, 0);
	assert_int_equal(c.cap4, 0);
	assert_int_equal(c.n6, 0);
	assert_int_equal(c.cap6, 0);
	assert_true(cidr_set_empty(&c));
	test_out(&c, "10.0.0.1");

	/* Usable again. */
	test_fill(&c, "10.0.0.1");
	test_in(&c, "10.0.0.1");
	cidr_set_release(&c);
	cidr_set_release(&c);
	assert_true(cidr_set_empty(&c));
}

/* A fixed-seed generator, so failures repeat. */
static uint32_t
test_rand(uint32_t *seed)
{
	*seed = *seed * 1664525u + 1013904223u;
	return *seed;
}

/* Random sets against the plain test "addr & mask == net", mostly in
 * 10.0.0.0/8 so that spans overlap and touch. */
static void
test_random(void **state)
{
	enum { NETS = 300, PROBES = 50000 };
	uint32_t seed = 12345, nets[NETS], masks[NETS];
	unsigned hits = 0;
	struct cidr_set c;

	(void)state;
	for (int round = 0; round < 5; round++) {
		memset(&c, 0, sizeof(c));
		for (int i = 0; i < NETS; i++) {
			unsigned prefix = 12 + test_rand(&seed) % 21;
			uint32_t addr = 10u << 24 | (test_rand(&seed) >> 8);
			char text[32];

			masks[i] = UINT32_MAX << (32 - prefix);
			nets[i] = addr & masks[i];
			snprintf(text, sizeof(text), "%u.%u.%u.%u/%u",
			    addr >> 24, addr >> 16 & 255, addr >> 8 & 255,
			    addr & 255, prefix);
			assert_int_equal(cidr_set_add(&c, text), 0);
		}
		cidr_set_finish(&c);
		for (size_t i = 1; i < c.n4; i++)
			assert_true(c.v4[i - 1].hi + 1 < c.v4[i].lo);
		for (int p = 0; p < PROBES; p++) {
			uint32_t addr = 10u << 24 | (test_rand(&seed) >> 8);
			union sockaddr_any a;
			bool want = false;

			if (p % 16 == 0)
				addr = test_rand(&seed);
			for (int i = 0; i < NETS && !want; i++)
				want = (addr & masks[i]) == nets[i];
			memset(&a, 0, sizeof(a));
			a.in.sin_family = AF_INET;
			a.in.sin_addr.s_addr = htonl(addr);
			if (cidr_set_has(&c, &a.sa) != want)
				fail_msg("%08x: expected %d", addr, want);
			hits += want;
		}
		cidr_set_release(&c);
	}
	/* Both answers were asked for plenty. */
	assert_true(hits > 5 * PROBES / 10 && hits < 5 * PROBES * 9 / 10);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ipv4),
		cmocka_unit_test(test_ipv6),
		cmocka_unit_test(test_host_bits),
		cmocka_unit_test(test_mapped),
		cmocka_unit_test(test_merge),
		cmocka_unit_test(test_covers),
		cmocka_unit_test(test_bad_syntax),
		cmocka_unit_test(test_lookup_other),
		cmocka_unit_test(test_release),
		cmocka_unit_test(test_random),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
