/*
 * Unit tests for what TLS interception passes through: the bypass list
 * (names, suffixes and CIDRs, as a rule's dest list) and the learnt
 * names, in this process's table and in the shared one.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "socks5d/addr.h"
#include "socks5d/bypass.h"
#include "socks5d/rules.h"

static struct rules *
test_list(const char *dest)
{
	struct rules *list = rules_new();
	struct rule *r;
	char why[128];

	assert_non_null(list);
	r = rules_add(list, "bypass");
	assert_non_null(r);
	assert_int_equal(rules_set(r, "action", "allow", why, sizeof(why)), 0);
	assert_int_equal(rules_set(r, "dest", dest, why, sizeof(why)), 0);
	rules_finish(list);
	return list;
}

static void
test_listed(void **state)
{
	struct rules *list = test_list(".bank.example, pinned.test, "
	    "192.0.2.0/24, 2001:db8::/32");
	union sockaddr_any a;

	(void)state;
	memset(&a, 0, sizeof(a));
	a.in.sin_family = AF_INET;
	inet_pton(AF_INET, "192.0.2.7", &a.in.sin_addr);
	assert_true(bypass_listed(list, "www.bank.example", NULL));
	assert_true(bypass_listed(list, "bank.example", NULL));
	assert_true(bypass_listed(list, "PINNED.test", NULL));
	assert_false(bypass_listed(list, "notbank.example", NULL));
	assert_false(bypass_listed(list, "sub.pinned.test", NULL));
	/* The address counts when the name does not. */
	assert_true(bypass_listed(list, "other.example", &a.sa));
	assert_true(bypass_listed(list, NULL, &a.sa));
	inet_pton(AF_INET, "198.51.100.1", &a.in.sin_addr);
	assert_false(bypass_listed(list, "other.example", &a.sa));
	assert_false(bypass_listed(NULL, "www.bank.example", &a.sa));
	assert_false(bypass_listed(list, NULL, NULL));
	rules_free(list);
}

static void
test_learnt(void **state)
{
	char name[64];

	(void)state;
	assert_false(bypass_learned("pinned.example"));
	assert_true(bypass_learn("pinned.example", 60));
	assert_true(bypass_learned("pinned.example"));
	assert_false(bypass_learned("other.example"));
	/* Learnt again: refreshed, not new. */
	assert_false(bypass_learn("pinned.example", 60));
	/* No time at all is no pass-through. */
	assert_true(bypass_learn("gone.example", 0));
	assert_false(bypass_learned("gone.example"));
	assert_int_equal(bypass_learned_count(), 1);
	/* A flood of names never grows the table, and the newest stay. */
	for (int i = 0; i < 20000; i++) {
		snprintf(name, sizeof(name), "flood-%d.example", i);
		bypass_learn(name, 60);
	}
	assert_true(bypass_learned("flood-19999.example"));
	assert_true(bypass_learned_count() <= 4096);
}

/* Learnt in one process, seen in another forked after the share. */
static void
test_shared_with_children(void **state)
{
	pid_t pid;
	int status;

	(void)state;
	assert_int_equal(bypass_learned_share(), 0);
	assert_false(bypass_learned("child.example"));
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(bypass_learn("child.example", 60) ? 0 : 1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_true(bypass_learned("child.example"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_listed),
		cmocka_unit_test(test_learnt),
		cmocka_unit_test(test_shared_with_children),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
