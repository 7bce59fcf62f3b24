/*
 * Unit tests for the logging helpers that decide what reaches the log:
 * the rate limiter and the sanitizer for client-chosen text.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "socks5d/log.h"

static void
test_ratelimit_first_passes_then_one_per_interval(void **state)
{
	struct log_ratelimit rl = { 0, 0 };
	unsigned long covered = 0;

	(void)state;
	assert_true(log_ratelimit_pass(&rl, 100.0, 1.0, &covered));
	assert_int_equal(covered, 1);
	/* Within the interval: counted, not logged. */
	assert_false(log_ratelimit_pass(&rl, 100.2, 1.0, &covered));
	assert_false(log_ratelimit_pass(&rl, 100.9, 1.0, &covered));
	/* The next message covers everything since the last one. */
	assert_true(log_ratelimit_pass(&rl, 101.0, 1.0, &covered));
	assert_int_equal(covered, 3);
	assert_true(log_ratelimit_pass(&rl, 105.0, 1.0, &covered));
	assert_int_equal(covered, 1);
}

static void
test_safe_text_replaces_separators_and_controls(void **state)
{
	char out[32];

	(void)state;
	log_safe_text("alice", out, sizeof(out));
	assert_string_equal(out, "alice");
	log_safe_text("a b\tc\nd=e\x1b[0m\xc3\xa9", out, sizeof(out));
	assert_string_equal(out, "a?b?c?d=e?[0m??");
	log_safe_text("truncate me please", out, 9);
	assert_string_equal(out, "truncate");
	log_safe_text("", out, sizeof(out));
	assert_string_equal(out, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ratelimit_first_passes_then_one_per_interval),
		cmocka_unit_test(test_safe_text_replaces_separators_and_controls),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
