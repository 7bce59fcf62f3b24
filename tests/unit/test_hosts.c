/*
 * Unit tests for the in-memory hosts file: what counts as an entry, name
 * folding, file order within a name, repeats, and loading from a path.
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
#include <unistd.h>

#include <cmocka.h>

#include "socks5d/hosts.h"

static const char sample[] =
    "# comment line\n"
    "127.0.0.1\tlocalhost\n"
    "::1 localhost ip6-localhost   # trailing comment\n"
    "\n"
    "   192.0.2.10 Web.Example. www.example mail\r\n"
    "192.0.2.10 www.example\n"                /* a repeat: kept once */
    "2001:db8::20 www.example\n"
    "not-an-address bogus\n"                  /* skipped */
    "fe80::1%eth0 linklocal\n"                /* scoped: skipped */
    "192.0.2.30 bad!name good-name\n"         /* bad alias skipped only */
    "192.0.2.40";                            /* no name, no newline */

static struct hosts *
parse_sample(void)
{
	struct hosts *h = hosts_parse(sample, strlen(sample));

	assert_non_null(h);
	return h;
}

static const char *
ip_of(const union sockaddr_any *a, char *buf)
{
	if (a->sa.sa_family == AF_INET)
		return inet_ntop(AF_INET, &a->in.sin_addr, buf, 64);
	return inet_ntop(AF_INET6, &a->in6.sin6_addr, buf, 64);
}

static void
test_file_order_within_a_name(void **state)
{
	struct hosts *h = parse_sample();
	union sockaddr_any out[8];
	char buf[64];

	(void)state;
	assert_int_equal(hosts_find(h, "localhost", 80, out, 8), 2);
	assert_string_equal(ip_of(&out[0], buf), "127.0.0.1");
	assert_int_equal(ntohs(out[0].in.sin_port), 80);
	assert_string_equal(ip_of(&out[1], buf), "::1");
	assert_int_equal(ntohs(out[1].in6.sin6_port), 80);
	hosts_unref(h);
}

static void
test_names_fold_and_repeats_collapse(void **state)
{
	struct hosts *h = parse_sample();
	union sockaddr_any out[8];
	char buf[64];

	(void)state;
	/* Case and one trailing dot do not matter, on either side. */
	assert_int_equal(hosts_find(h, "WEB.example", 1, out, 8), 1);
	assert_int_equal(hosts_find(h, "web.example.", 1, out, 8), 1);
	assert_string_equal(ip_of(&out[0], buf), "192.0.2.10");
	/* Listed twice with the same address, then with an IPv6 one. */
	assert_int_equal(hosts_find(h, "www.example", 443, out, 8), 2);
	assert_string_equal(ip_of(&out[0], buf), "192.0.2.10");
	assert_string_equal(ip_of(&out[1], buf), "2001:db8::20");
	assert_int_equal(hosts_find(h, "mail", 25, out, 8), 1);
	assert_int_equal(hosts_find(h, "ip6-localhost", 25, out, 8), 1);
	hosts_unref(h);
}

static void
test_bad_lines_and_names_skipped(void **state)
{
	struct hosts *h = parse_sample();
	union sockaddr_any out[8];

	(void)state;
	assert_int_equal(hosts_find(h, "bogus", 1, out, 8), 0);
	assert_int_equal(hosts_find(h, "linklocal", 1, out, 8), 0);
	assert_int_equal(hosts_find(h, "bad!name", 1, out, 8), 0);
	assert_int_equal(hosts_find(h, "good-name", 1, out, 8), 1);
	assert_int_equal(hosts_find(h, "comment", 1, out, 8), 0);
	assert_int_equal(hosts_find(h, "example", 1, out, 8), 0);
	assert_int_equal(hosts_find(h, "", 1, out, 8), 0);
	assert_int_equal(hosts_find(h, ".", 1, out, 8), 0);
	/* localhost x2, web.example, www.example x3 (one a repeat), mail,
	 * ip6-localhost, good-name. */
	assert_int_equal(hosts_count(h), 9);
	hosts_unref(h);
}

static void
test_max_bounds_the_answer(void **state)
{
	struct hosts *h = parse_sample();
	union sockaddr_any out[1];

	(void)state;
	assert_int_equal(hosts_find(h, "localhost", 1, out, 1), 1);
	assert_int_equal(hosts_find(NULL, "localhost", 1, out, 1), 0);
	hosts_unref(h);
}

static void
test_many_entries_found_by_search(void **state)
{
	size_t cap = 5000 * 40, len = 0;
	char *text = malloc(cap), name[32];
	union sockaddr_any out[4];
	struct hosts *h;

	(void)state;
	assert_non_null(text);
	/* Written in reverse order, so only the sort makes a search work. */
	for (int i = 4999; i >= 0; i--)
		len += (size_t)snprintf(text + len, cap - len,
		    "10.0.%d.%d host%d\n", i / 256, i % 256, i);
	h = hosts_parse(text, len);
	assert_non_null(h);
	assert_int_equal(hosts_count(h), 5000);
	for (int i = 0; i < 5000; i += 499) {
		char want[32], buf[64];

		snprintf(name, sizeof(name), "HOST%d", i);
		snprintf(want, sizeof(want), "10.0.%d.%d", i / 256, i % 256);
		assert_int_equal(hosts_find(h, name, 1, out, 4), 1);
		assert_string_equal(ip_of(&out[0], buf), want);
	}
	assert_int_equal(hosts_find(h, "host5000", 1, out, 4), 0);
	hosts_unref(h);
	free(text);
}

static void
test_load_from_path_and_refcount(void **state)
{
	char path[] = "/tmp/socks5d-test-hosts-XXXXXX";
	union sockaddr_any out[4];
	char why[128];
	struct hosts *h;
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, sample, strlen(sample)),
	    (ssize_t)strlen(sample));
	close(fd);
	h = hosts_load(path, why, sizeof(why));
	assert_non_null(h);
	assert_ptr_equal(hosts_ref(h), h);
	hosts_unref(h);                 /* still held once */
	assert_int_equal(hosts_find(h, "localhost", 1, out, 4), 2);
	hosts_unref(h);
	unlink(path);
	assert_null(hosts_load(path, why, sizeof(why)));
	assert_non_null(strstr(why, "No such file"));
	assert_null(hosts_load("/dev/null", why, sizeof(why)));
	assert_non_null(strstr(why, "regular file"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_file_order_within_a_name),
		cmocka_unit_test(test_names_fold_and_repeats_collapse),
		cmocka_unit_test(test_bad_lines_and_names_skipped),
		cmocka_unit_test(test_max_bounds_the_answer),
		cmocka_unit_test(test_many_entries_found_by_search),
		cmocka_unit_test(test_load_from_path_and_refcount),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
