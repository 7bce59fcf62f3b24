/*
 * Unit tests for the worker slots of the metrics: counters summed over
 * slots, a restarted worker's counters going on while its gauges start
 * again, a forked writer seen through the shared mapping, and the workers
 * count that [server] workers = 0 resolves to.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "socks5d/config.h"
#include "socks5d/metrics.h"
#include "socks5d/socks5.h"
#include "socks5d/workers.h"

static const struct metrics_gauges gauges = {
	.fds_open = 10, .max_clients = 100,
};

static char *
render(void)
{
	size_t need = metrics_render(NULL, 0, &gauges);
	char *buf = malloc(need + 1);

	assert_non_null(buf);
	metrics_render(buf, need + 1, &gauges);
	return buf;
}

static void
assert_line(const char *line)
{
	char *text = render(), *want;

	assert_int_not_equal(asprintf(&want, "\n%s\n", line), -1);
	if (strstr(text, want) == NULL)
		fail_msg("no line \"%s\" in:\n%s", line, text);
	free(want);
	free(text);
}

static void
add_active(uint8_t cmd, int n)
{
	for (int i = 0; i < n; i++)
		metrics_add_active(cmd, 1);
}

/* One test, in order: the mapping cannot be undone within the process. */
static void
test_slots(void **state)
{
	pid_t pid;
	int status;

	(void)state;
	/* One process: no workers line. A session moves from "none" to its
	 * command once its request is read. */
	metrics_count_session(1, 0, "eof");
	metrics_count_bytes(true, 10);
	metrics_count_bytes(false, 20);
	add_active(0, 2);
	metrics_add_active(0, -1);
	metrics_add_active(SOCKS5_CMD_BIND, 1);
	assert_line("socks5d_sessions_active{cmd=\"none\"} 1");
	assert_line("socks5d_sessions_active{cmd=\"bind\"} 1");
	assert_line("socks5d_sessions_active{cmd=\"connect\"} 0");
	assert_int_equal(metrics_sessions_active(), 2);
	metrics_add_active(0, -1);
	metrics_add_active(SOCKS5_CMD_BIND, -1);
	assert_line("socks5d_sessions_active{cmd=\"bind\"} 0");
	assert_int_equal(metrics_sessions_active(), 0);
	{
		char *text = render();

		assert_null(strstr(text, "socks5d_workers"));
		free(text);
	}

	assert_int_equal(metrics_share(3), 0);
	metrics_slot_running(0, true);
	metrics_slot_running(1, true);
	metrics_use_slot(0);
	metrics_count_session(1, 0, "eof");
	metrics_count_bytes(true, 1);
	metrics_count_bytes(false, 2);
	add_active(SOCKS5_CMD_CONNECT, 4);
	metrics_set_pipes(3, 1, 1);
	metrics_use_slot(1);
	metrics_count_session(1, 0, "eof");
	metrics_count_bytes(true, 100);
	metrics_count_bytes(false, 200);
	metrics_count_session(0, -1, "client-eof");
	metrics_count_dns_lookup();
	metrics_observe_dns(0.5, true);
	add_active(SOCKS5_CMD_BIND, 1);
	add_active(0, 1);
	metrics_set_pipes(2, 2, 1);
	metrics_count_small_pipe();
	assert_int_equal(metrics_sessions_active(), 6);
	assert_line("socks5d_sessions_total{cmd=\"connect\"} 2");
	assert_line("socks5d_sessions_total{cmd=\"none\"} 1");
	assert_line("socks5d_relayed_bytes_total{direction=\"up\"} 101");
	assert_line("socks5d_relayed_bytes_total{direction=\"down\"} 202");
	assert_line("socks5d_dns_lookup_duration_seconds_sum 0.5");
	/* Every gauge is the sum of the slots'. */
	assert_line("socks5d_sessions_active{cmd=\"connect\"} 4");
	assert_line("socks5d_sessions_active{cmd=\"bind\"} 1");
	assert_line("socks5d_sessions_active{cmd=\"none\"} 1");
	assert_line("socks5d_pipe_pool_idle 5");
	assert_line("socks5d_pipe_pool_in_use 3");
	assert_line("socks5d_pipe_pool_large 2");
	assert_line("socks5d_pipe_pool_small_total 1");
	assert_line("socks5d_workers 2");

	/* Worker 2 dies: its sessions and pipes are gone, its counts are
	 * not. */
	metrics_slot_running(1, false);
	assert_int_equal(metrics_sessions_active(), 4);
	assert_line("socks5d_workers 1");
	assert_line("socks5d_sessions_total{cmd=\"connect\"} 2");
	assert_line("socks5d_sessions_active{cmd=\"bind\"} 0");
	assert_line("socks5d_pipe_pool_idle 3");
	assert_line("socks5d_pipe_pool_in_use 1");
	assert_line("socks5d_pipe_pool_large 1");
	assert_line("socks5d_pipe_pool_small_total 1");

	/* Its replacement, forked, writes the same slot. */
	metrics_slot_running(1, true);
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		metrics_use_slot(1);
		metrics_count_session(1, 0, "eof");
		metrics_count_bytes(true, 1000);
		add_active(SOCKS5_CMD_UDP, 7);
		metrics_set_pipes(4, 0, 0);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_line("socks5d_sessions_total{cmd=\"connect\"} 3");
	assert_line("socks5d_relayed_bytes_total{direction=\"up\"} 1101");
	assert_line("socks5d_sessions_active{cmd=\"udp\"} 7");
	assert_line("socks5d_pipe_pool_idle 7");
	assert_int_equal(metrics_sessions_active(), 11);
	assert_line("socks5d_workers 2");

	/* A new occupant of a slot starts its gauges from zero. */
	metrics_use_slot(1);
	assert_int_equal(metrics_sessions_active(), 4);
	assert_line("socks5d_sessions_active{cmd=\"udp\"} 0");
	assert_line("socks5d_pipe_pool_idle 3");
	assert_line("socks5d_sessions_total{cmd=\"connect\"} 3");
}

static void
test_workers_count(void **state)
{
	struct config cfg;

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	cfg.workers = 1;
	assert_int_equal(workers_count(&cfg), 1);
	cfg.workers = 5;
	assert_int_equal(workers_count(&cfg), 5);
	cfg.workers = 0;
	assert_int_equal(workers_count(&cfg),
	    workers_for_cpus(sysconf(_SC_NPROCESSORS_ONLN)));
}

/* One CPU is left to the kernel's share of relaying, never the only one. */
static void
test_workers_for_cpus(void **state)
{
	(void)state;
	assert_int_equal(workers_for_cpus(-1), 1);
	assert_int_equal(workers_for_cpus(0), 1);
	assert_int_equal(workers_for_cpus(1), 1);
	assert_int_equal(workers_for_cpus(2), 1);
	assert_int_equal(workers_for_cpus(3), 2);
	assert_int_equal(workers_for_cpus(16), 15);
	assert_int_equal(workers_for_cpus(CONFIG_MAX_WORKERS + 1),
	    CONFIG_MAX_WORKERS);
	assert_int_equal(workers_for_cpus(512), CONFIG_MAX_WORKERS);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_slots),
		cmocka_unit_test(test_workers_count),
		cmocka_unit_test(test_workers_for_cpus),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
