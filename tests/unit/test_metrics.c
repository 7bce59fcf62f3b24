/*
 * Unit tests for the worker slots of the metrics: counters summed over
 * slots, a restarted worker's counters going on while its gauges start
 * again, a forked writer seen through the shared mapping, the upstream
 * members' table in each slot, and the workers count that [server]
 * workers = 0 resolves to.
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
#include "socks5d/upstream.h"
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

/* -- upstream members ------------------------------------------------------ */

#define A "socks5://127.0.0.1:1080"
#define B "http://[::1]:3128"

/* [upstream up] with members A, then B with a login, then A again with
 * another login (one member, shown once). */
static struct upstreams *
upstream_config(void)
{
	struct upstreams *u = upstreams_new();
	struct upstream *up;
	char why[128];

	assert_non_null(u);
	assert_non_null(up = upstreams_add(u, "up"));
	assert_int_equal(upstream_set_urls(up, "socks5://127.0.0.1:1080, "
	    "http://u5er:s3cret@[::1]:3128, socks5://th1rd:s3cret2@127.0.0.1:1080",
	    why, sizeof(why)), 0);
	assert_string_equal(up->members[1].label, B);
	return u;
}

static char *
render_upstreams(const struct upstreams *u, double now)
{
	struct metrics_gauges g = gauges;
	size_t need;
	char *buf;

	g.upstreams = u;
	g.now = now;
	need = metrics_render(NULL, 0, &g);
	assert_non_null(buf = malloc(need + 1));
	assert_int_equal(metrics_render(buf, need + 1, &g), need);
	return buf;
}

/* How many times line is a whole line of text. */
static int
count_line(const char *text, const char *line)
{
	size_t len = strlen(line);
	int n = 0;

	for (const char *p = text; (p = strstr(p, line)) != NULL; p += len)
		if ((p == text || p[-1] == '\n') && p[len] == '\n')
			n++;
	return n;
}

/* The member's three series in text are ok, failed and up. */
static void
assert_member(const char *text, const char *label, unsigned ok,
    unsigned failed, int up)
{
	char line[3][256];

	snprintf(line[0], sizeof(line[0]), "socks5d_upstream_hops_total{"
	    "upstream=\"up\",member=\"%s\",result=\"ok\"} %u", label, ok);
	snprintf(line[1], sizeof(line[1]), "socks5d_upstream_hops_total{"
	    "upstream=\"up\",member=\"%s\",result=\"failed\"} %u", label,
	    failed);
	snprintf(line[2], sizeof(line[2]), "socks5d_upstream_up{"
	    "upstream=\"up\",member=\"%s\"} %d", label, up);
	for (size_t i = 0; i < 3; i++)
		if (count_line(text, line[i]) != 1)
			fail_msg("not one line \"%s\" in:\n%s", line[i], text);
}

static void
assert_untracked(const char *text, unsigned n)
{
	char line[64];

	snprintf(line, sizeof(line), "socks5d_upstream_hops_untracked_total %u",
	    n);
	if (count_line(text, line) != 1)
		fail_msg("no line \"%s\" in:\n%s", line, text);
}

/* One process: hops counted by member, down until down_until, members
 * without hops at 0 and up, no credentials, a repeated member once. */
static void
test_upstream_one_process(void **state)
{
	struct upstreams *u = upstream_config();
	char *text;

	(void)state;
	metrics_reset();
	text = render_upstreams(u, 50);
	assert_member(text, A, 0, 0, 1);
	assert_member(text, B, 0, 0, 1);
	assert_untracked(text, 0);
	assert_non_null(strstr(text, "# TYPE socks5d_upstream_hops_total "
	    "counter\n"));
	assert_non_null(strstr(text, "# TYPE socks5d_upstream_up gauge\n"));
	free(text);

	metrics_count_upstream("up", A, true, 0);
	metrics_count_upstream("up", A, false, 0);
	metrics_count_upstream("up", A, false, 100);
	metrics_count_upstream("up", B, true, 0);
	text = render_upstreams(u, 50);
	assert_member(text, A, 1, 2, 0);
	assert_member(text, B, 1, 0, 1);
	assert_null(strstr(text, "s3cret"));
	assert_null(strstr(text, "u5er"));
	assert_null(strstr(text, "th1rd"));
	free(text);
	/* retry_after has passed. */
	text = render_upstreams(u, 100.5);
	assert_member(text, A, 1, 2, 1);
	free(text);
	/* No config, no member series. */
	text = render_upstreams(NULL, 50);
	assert_null(strstr(text, "socks5d_upstream_hops_total{"));
	assert_null(strstr(text, "socks5d_upstream_up{"));
	free(text);
	metrics_reset();
	upstreams_free(u);
}

/* Workers: a member's hops summed over the slots, down while one live
 * worker has it down, unknown keys ignored, a full table's hops counted
 * apart; a restarted worker's counts go on, its health does not. */
static void
test_upstream_slots(void **state)
{
	struct upstreams *u = upstream_config();
	char label[64], *text;
	unsigned i;

	(void)state;
	/* Fresh slots, whatever the tests before left in theirs. */
	assert_int_equal(metrics_share(2), 0);
	metrics_slot_running(0, true);
	metrics_slot_running(1, true);
	metrics_use_slot(0);
	metrics_count_upstream("up", A, true, 0);
	metrics_count_upstream("up", A, true, 0);
	metrics_count_upstream("up", A, false, 0);
	/* Not in the config: a member a reload took away, or another
	 * upstream's. */
	metrics_count_upstream("gone", A, true, 0);
	metrics_count_upstream("up", "socks5://192.0.2.1:1", false, 1000);
	metrics_use_slot(1);
	metrics_count_upstream("up", A, true, 0);
	metrics_count_upstream("up", A, false, 200);
	text = render_upstreams(u, 100);
	assert_member(text, A, 3, 2, 0);
	assert_member(text, B, 0, 0, 1);
	assert_null(strstr(text, "gone"));
	assert_null(strstr(text, "192.0.2.1"));
	assert_untracked(text, 0);
	free(text);

	/* Worker 2 dies: its hops stay counted, its health is gone. */
	metrics_slot_running(1, false);
	text = render_upstreams(u, 100);
	assert_member(text, A, 3, 2, 1);
	free(text);
	/* Only a live worker's health counts. */
	metrics_count_upstream("up", A, false, 200);
	text = render_upstreams(u, 100);
	assert_member(text, A, 3, 3, 1);
	free(text);
	/* Its replacement starts with every member up. */
	metrics_slot_running(1, true);
	text = render_upstreams(u, 100);
	assert_member(text, A, 3, 3, 0);
	free(text);
	metrics_use_slot(1);
	text = render_upstreams(u, 100);
	assert_member(text, A, 3, 3, 1);
	free(text);

	/* Worker 1's table fills up (3 entries taken): the hops of members
	 * it has no room for are counted apart, its own members go on, and
	 * worker 2 still has room for B. */
	metrics_use_slot(0);
	for (i = 3; i < METRICS_UPSTREAM_MAX; i++) {
		snprintf(label, sizeof(label), "socks5://192.0.2.2:%u", i);
		metrics_count_upstream("up", label, true, 0);
	}
	metrics_count_upstream("up", B, true, 0);
	metrics_count_upstream("up", B, false, 1000);
	metrics_count_upstream("up", A, true, 0);
	metrics_use_slot(1);
	metrics_count_upstream("up", B, true, 0);
	text = render_upstreams(u, 100);
	assert_member(text, A, 4, 3, 1);
	assert_member(text, B, 1, 0, 1);
	assert_untracked(text, 2);
	free(text);
	upstreams_free(u);
}

/* The most the exposition can need fits what the endpoint reserves:
 * METRICS_UPSTREAM_MAX members of the longest name and label shown (and
 * no more), with room for every counter to grow to 20 digits. */
static void
test_upstream_text_bound(void **state)
{
	struct upstreams *u = upstreams_new();
	char name[65], *text;
	size_t need, lines = 0, shown = 0;

	(void)state;
	assert_non_null(u);
	for (unsigned i = 0; i <= METRICS_UPSTREAM_MAX / UPSTREAM_MAX_MEMBERS;
	    i++) {
		struct upstream *up;

		/* 64: upstream_name_valid's longest. */
		snprintf(name, sizeof(name), "%062u%02u", 0, i);
		assert_non_null(up = upstreams_add(u, name));
		up->n = UPSTREAM_MAX_MEMBERS;
		for (unsigned j = 0; j < up->n; j++) {
			char *label = up->members[j].label;
			size_t len = UPSTREAM_LABEL_MAX - 1;

			memset(label, 'h', len);
			memcpy(label, "socks5h://", 10);
			snprintf(label + len - 6, 7, ":%05u", 60000 + j);
			metrics_count_upstream(name, label, true, 1e12);
		}
	}
	text = render_upstreams(u, 0);
	need = strlen(text);
	for (const char *p = text; (p = strchr(p, '\n')) != NULL; p++)
		lines++;
	for (const char *p = text; (p = strstr(p, "\nsocks5d_upstream_up{")) !=
	    NULL; p++)
		shown++;
	assert_int_equal(shown, METRICS_UPSTREAM_MAX);
	assert_true(need + lines * 19 <= METRICS_TEXT_MAX);
	free(text);
	upstreams_free(u);
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
		cmocka_unit_test(test_upstream_one_process),
		cmocka_unit_test(test_slots),
		cmocka_unit_test(test_upstream_slots),
		cmocka_unit_test(test_upstream_text_bound),
		cmocka_unit_test(test_workers_count),
		cmocka_unit_test(test_workers_for_cpus),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
