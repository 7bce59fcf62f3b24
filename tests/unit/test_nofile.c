/*
 * Unit tests for fitting max_clients to the descriptor limit: the sizing
 * rule at its edges, and nofile_fit() in a child process whose limits are
 * set first (so the test runner's own limit is left alone).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "socks5d/nofile.h"

static void
test_clients_for_limit(void **state)
{
	(void)state;
	assert_int_equal(nofile_needed(10000), 20256);
	assert_int_equal(nofile_clients_for(0), 1);
	assert_int_equal(nofile_clients_for(258), 1);
	assert_int_equal(nofile_clients_for(260), 2);
	assert_int_equal(nofile_clients_for(1024), 384);
	assert_int_equal(nofile_clients_for(20000), 9872);
	assert_int_equal(nofile_clients_for(20255), 9999);
	assert_int_equal(nofile_clients_for(20256), NOFILE_AUTO_CLIENTS);
	assert_int_equal(nofile_clients_for(UINT64_MAX), NOFILE_AUTO_CLIENTS);
}

/* nofile_fit(max_clients) in a child started with soft:hard limits; its
 * answer and its soft limit afterwards come back as the exit status (the
 * soft limit in units of 256 descriptors). */
struct fit_result {
	unsigned clients;
	rlim_t soft;
};

static struct fit_result
fit_in_child(rlim_t soft, rlim_t hard, unsigned max_clients)
{
	int fds[2], status;
	struct fit_result r = { 0, 0 };
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		struct rlimit rl = { .rlim_cur = soft, .rlim_max = hard };
		struct fit_result out;

		close(fds[0]);
		/* Unprivileged, as a service is once it dropped root: lower
		 * the hard limit, then give up raising it again. */
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			_exit(2);
		if (geteuid() == 0 && setresuid(65534, 65534, 65534) == -1)
			_exit(3);
		out.clients = nofile_fit(max_clients);
		getrlimit(RLIMIT_NOFILE, &rl);
		out.soft = rl.rlim_cur;
		_exit(write(fds[1], &out, sizeof(out)) == sizeof(out) ? 0 : 4);
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], &r, sizeof(r)), sizeof(r));
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	return r;
}

static void
test_fit_automatic(void **state)
{
	struct fit_result r;
	struct rlimit now;

	(void)state;
	/* 0 takes the hard limit and serves what it holds. */
	r = fit_in_child(1024, 4096, 0);
	assert_int_equal(r.soft, 4096);
	assert_int_equal(r.clients, 1920);
	/* The whole hard limit this runs under (a container may not let
	 * even root raise it): 10,000 when it is enough, no more. */
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &now), 0);
	if (now.rlim_max > 4096) {
		r = fit_in_child(1024, now.rlim_max, 0);
		assert_int_equal(r.soft, now.rlim_max);
		assert_int_equal(r.clients, now.rlim_max >= 20256 ?
		    NOFILE_AUTO_CLIENTS : (now.rlim_max - 256) / 2);
	}
}

static void
test_fit_chosen(void **state)
{
	struct fit_result r;

	(void)state;
	/* A chosen number is kept even when the limit is short (the
	 * warning says so). */
	r = fit_in_child(1024, 1024, 5000);
	assert_int_equal(r.soft, 1024);
	assert_int_equal(r.clients, 5000);
	r = fit_in_child(512, 2048, 300);
	assert_int_equal(r.soft, 2048);
	assert_int_equal(r.clients, 300);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_clients_for_limit),
		cmocka_unit_test(test_fit_automatic),
		cmocka_unit_test(test_fit_chosen),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
