/*
 * Unit tests for the logging helpers that decide what reaches the log:
 * the rate limiter, the sanitizer for client-chosen text, and the
 * start-up report's journal priorities.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
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

/* log_stderr_report(text) with stderr a scratch file, which is the journal
 * when journal is set; returns what it wrote. */
static char *
report_to_file(const char *text, bool journal)
{
	char path[] = "/tmp/socks5d-test-log-XXXXXX", env[64];
	static char out[512];
	int fd = mkstemp(path), saved = dup(STDERR_FILENO);
	struct stat st;
	ssize_t n;

	assert_true(fd >= 0 && saved >= 0);
	unlink(path);
	assert_int_equal(fstat(fd, &st), 0);
	snprintf(env, sizeof(env), "%llu:%llu",
	    (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
	if (journal)
		setenv("JOURNAL_STREAM", env, 1);
	else
		unsetenv("JOURNAL_STREAM");
	fflush(stderr);
	dup2(fd, STDERR_FILENO);
	log_stderr_report(LOG_LEVEL_ERROR, text);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	unsetenv("JOURNAL_STREAM");
	n = pread(fd, out, sizeof(out) - 1, 0);
	close(fd);
	assert_true(n >= 0);
	out[n] = '\0';
	return out;
}

static void
test_report_gets_priorities_only_in_the_journal(void **state)
{
	const char *text = "a.conf:3: [server] x: unknown key\na.conf: bad\n";

	(void)state;
	assert_string_equal(report_to_file(text, true),
	    "<3>a.conf:3: [server] x: unknown key\n<3>a.conf: bad\n");
	assert_string_equal(report_to_file(text, false), text);
	/* A last line without its newline still ends in one. */
	assert_string_equal(report_to_file("one\ntwo", true),
	    "<3>one\n<3>two\n");
	assert_string_equal(report_to_file("", true), "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ratelimit_first_passes_then_one_per_interval),
		cmocka_unit_test(test_safe_text_replaces_separators_and_controls),
		cmocka_unit_test(test_report_gets_priorities_only_in_the_journal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
