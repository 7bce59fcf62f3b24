/*
 * Unit tests for the splice relay's pipe pool: default pipes, growing a
 * pipe in use to a large one without losing its bytes, the budget of large
 * pipes, their free list, a grow the kernel refuses, and the gauges and
 * counter the pool publishes to /metrics.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "socks5d/metrics.h"
#include "socks5d/pipe_pool.h"

#define LARGE (1024 * 1024)

static int
kernel_pipe_size(int fd)
{
	return fcntl(fd, F_GETPIPE_SZ);
}

static void
test_default_pipes_are_pooled(void **state)
{
	struct pipe_pool pool;
	int a[2], b[2];
	size_t size = 0;

	(void)state;
	assert_int_equal(pipe_pool_init(&pool, 4, 2, LARGE), 0);
	assert_int_equal(pool.pipe_size, kernel_pipe_size(pool.free_pipes[0][0]));
	/* The probe pipe is the first one handed out. */
	assert_int_equal(pipe_pool_get(&pool, a, false, &size), 0);
	assert_int_equal(size, pool.pipe_size);
	assert_int_equal(pool.count, 0);
	/* Asking for a large one with none free gives a default one. */
	assert_int_equal(pipe_pool_get(&pool, b, true, &size), 0);
	assert_int_equal(size, pool.pipe_size);
	assert_int_equal(kernel_pipe_size(b[0]), (int)pool.pipe_size);
	pipe_pool_put(&pool, a, pool.pipe_size);
	pipe_pool_put(&pool, b, pool.pipe_size);
	assert_int_equal(a[0], -1);
	assert_int_equal(pool.count, 2);
	assert_int_equal(pool.large_total, 0);
	pipe_pool_clear(&pool);
}

static void
test_grow_keeps_the_bytes_and_the_budget(void **state)
{
	struct pipe_pool pool;
	int p[3][2];
	size_t size[3];
	char buf[16];

	(void)state;
	assert_int_equal(pipe_pool_init(&pool, 4, 2, LARGE), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(pipe_pool_get(&pool, p[i], false, &size[i]), 0);
	assert_int_equal(write(p[0][1], "in flight", 9), 9);
	assert_true(pipe_pool_grow(&pool, p[0], &size[0]));
	assert_int_equal(size[0], LARGE);
	assert_int_equal(kernel_pipe_size(p[0][0]), LARGE);
	assert_int_equal(read(p[0][0], buf, sizeof(buf)), 9);
	assert_memory_equal(buf, "in flight", 9);
	/* Growing a large pipe again changes nothing. */
	assert_false(pipe_pool_grow(&pool, p[0], &size[0]));
	assert_int_equal(pool.large_total, 1);
	assert_true(pipe_pool_grow(&pool, p[1], &size[1]));
	/* The budget is two: the third stays a default pipe. */
	assert_false(pipe_pool_grow(&pool, p[2], &size[2]));
	assert_int_equal(size[2], pool.pipe_size);
	assert_int_equal(kernel_pipe_size(p[2][0]), (int)pool.pipe_size);
	assert_int_equal(pool.large_total, 2);

	/* Large pipes come back through their own free list... */
	pipe_pool_put(&pool, p[0], size[0]);
	assert_int_equal(pool.large_free, 1);
	assert_int_equal(pipe_pool_get(&pool, p[0], false, &size[0]), 0);
	assert_int_equal(size[0], pool.pipe_size);   /* not for a default ask */
	pipe_pool_put(&pool, p[0], size[0]);
	assert_int_equal(pipe_pool_get(&pool, p[0], true, &size[0]), 0);
	assert_int_equal(size[0], LARGE);
	assert_int_equal(kernel_pipe_size(p[0][0]), LARGE);
	assert_int_equal(pool.large_free, 0);

	/* ...and one closed with bytes in it frees its place in the budget. */
	pipe_pool_discard(&pool, p[1], size[1]);
	assert_int_equal(p[1][0], -1);
	assert_int_equal(pool.large_total, 1);
	assert_true(pipe_pool_grow(&pool, p[2], &size[2]));
	assert_int_equal(pool.large_total, 2);
	pipe_pool_put(&pool, p[0], size[0]);
	pipe_pool_put(&pool, p[2], size[2]);
	assert_int_equal(pool.large_free, 2);
	pipe_pool_clear(&pool);
	assert_null(pool.free_large);
}

static void
test_refused_grow_stops_asking_until_a_large_pipe_goes(void **state)
{
	struct pipe_pool pool;
	int p[2], q[2], not_a_pipe[2];
	size_t size, qsize, nsize;

	(void)state;
	assert_int_equal(pipe_pool_init(&pool, 4, 3, LARGE), 0);
	assert_int_equal(pipe_pool_get(&pool, p, false, &size), 0);
	assert_true(pipe_pool_grow(&pool, p, &size));
	/* The kernel says no (here: not a pipe at all, as EPERM would for
	 * a user over fs.pipe-user-pages-soft): nothing changes, and the
	 * pool stops asking for more than it has. */
	not_a_pipe[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	not_a_pipe[1] = -1;
	assert_true(not_a_pipe[0] >= 0);
	nsize = pool.pipe_size;
	assert_false(pipe_pool_grow(&pool, not_a_pipe, &nsize));
	assert_int_equal(nsize, pool.pipe_size);
	assert_int_equal(pool.large_max, 1);
	assert_int_equal(pipe_pool_get(&pool, q, false, &qsize), 0);
	assert_false(pipe_pool_grow(&pool, q, &qsize));
	assert_int_equal(kernel_pipe_size(q[0]), (int)pool.pipe_size);
	/* A large pipe going away restores the budget. */
	pipe_pool_discard(&pool, p, size);
	assert_int_equal(pool.large_max, 3);
	assert_true(pipe_pool_grow(&pool, q, &qsize));
	close(not_a_pipe[0]);
	pipe_pool_discard(&pool, q, qsize);
	assert_int_equal(pool.large_total, 0);
	pipe_pool_clear(&pool);
}

static void
test_no_large_pipes_when_not_larger(void **state)
{
	struct pipe_pool pool;
	int p[2];
	size_t size;

	(void)state;
	assert_int_equal(pipe_pool_init(&pool, 4, 8, 4096), 0);
	assert_int_equal(pool.large_max, 0);
	assert_int_equal(pipe_pool_get(&pool, p, true, &size), 0);
	assert_false(pipe_pool_grow(&pool, p, &size));
	assert_int_equal(size, pool.pipe_size);
	pipe_pool_put(&pool, p, size);
	pipe_pool_clear(&pool);
}

static void
test_large_budget_from_the_user_pipe_limit(void **state)
{
	(void)state;
	/* A quarter of 16384 pages, in 256-page pipes. */
	assert_int_equal(pipe_pool_large_budget(16384, LARGE, 1), 16);
	assert_int_equal(pipe_pool_large_budget(16384, LARGE, 2), 8);
	assert_int_equal(pipe_pool_large_budget(16384, 512 * 1024, 2), 16);
	assert_int_equal(pipe_pool_large_budget(16384, LARGE, 0), 16);
	assert_int_equal(pipe_pool_large_budget(16384, LARGE, 64), 0);
	assert_int_equal(pipe_pool_large_budget(1000, LARGE, 1), 0);
	/* No limit set: a fixed number. */
	assert_int_equal(pipe_pool_large_budget(0, LARGE, 1), 64);
	assert_int_equal(pipe_pool_large_budget(-1, LARGE, 4), 64);
}

/* What /metrics would say of the pool: idle, in use, large, small. */
static void
assert_published(unsigned idle, unsigned in_use, unsigned large,
    unsigned small)
{
	static const struct metrics_gauges g = { .fds_open = -1 };
	char text[16384], want[256];

	metrics_render(text, sizeof(text), &g);
	snprintf(want, sizeof(want), "\nsocks5d_pipe_pool_idle %u\n"
	    "# HELP socks5d_pipe_pool_in_use ", idle);
	if (strstr(text, want) == NULL)
		fail_msg("want idle %u in:\n%s", idle, text);
	snprintf(want, sizeof(want), "\nsocks5d_pipe_pool_in_use %u\n", in_use);
	if (strstr(text, want) == NULL)
		fail_msg("want in use %u in:\n%s", in_use, text);
	snprintf(want, sizeof(want), "\nsocks5d_pipe_pool_large %u\n", large);
	if (strstr(text, want) == NULL)
		fail_msg("want large %u in:\n%s", large, text);
	snprintf(want, sizeof(want), "\nsocks5d_pipe_pool_small_total %u\n",
	    small);
	if (strstr(text, want) == NULL)
		fail_msg("want small %u in:\n%s", small, text);
}

static void
test_metrics_follow_the_pool(void **state)
{
	struct pipe_pool pool;
	int a[2], b[2], c[2];
	size_t asize, bsize, csize;

	(void)state;
	metrics_reset();
	assert_int_equal(pipe_pool_init(&pool, 4, 2, LARGE), 0);
	assert_published(1, 0, 0, 0);
	assert_int_equal(pipe_pool_get(&pool, a, false, &asize), 0);
	assert_int_equal(pipe_pool_get(&pool, b, false, &bsize), 0);
	assert_published(0, 2, 0, 0);
	assert_true(pipe_pool_grow(&pool, a, &asize));
	assert_published(0, 2, 1, 0);
	/* A pipe closed with bytes in it is not kept. */
	assert_int_equal(write(b[1], "x", 1), 1);
	pipe_pool_discard(&pool, b, bsize);
	assert_published(0, 1, 1, 0);
	/* The large pipe goes back to its free list, still held. */
	pipe_pool_put(&pool, a, asize);
	assert_published(1, 0, 1, 0);
	assert_int_equal(pipe_pool_get(&pool, c, true, &csize), 0);
	assert_int_equal(csize, LARGE);
	assert_published(0, 1, 1, 0);
	pipe_pool_discard(&pool, c, csize);
	assert_published(0, 0, 0, 0);
	/* Putting back an already returned pipe changes nothing. */
	pipe_pool_put(&pool, c, csize);
	assert_published(0, 0, 0, 0);
	pipe_pool_clear(&pool);
}

static void
test_small_pipes_are_counted_and_not_kept(void **state)
{
	struct pipe_pool pool;
	int a[2], b[2];
	size_t asize, bsize, real;

	(void)state;
	metrics_reset();
	assert_int_equal(pipe_pool_init(&pool, 4, 0, LARGE), 0);
	/* Once the user's pipe budget is spent the kernel makes new pipes
	 * smaller than the default; pretending the default is larger makes
	 * every new pipe such a one. */
	real = pool.pipe_size;
	pool.pipe_size = real * 2;
	assert_int_equal(pipe_pool_get(&pool, a, false, &asize), 0);
	assert_published(0, 1, 0, 0);
	assert_int_equal(pipe_pool_get(&pool, b, false, &bsize), 0);
	assert_int_equal(bsize, real);
	assert_published(0, 2, 0, 1);
	pipe_pool_put(&pool, b, bsize);
	assert_int_equal(b[0], -1);
	assert_int_equal(pool.count, 0);
	assert_published(0, 1, 0, 1);
	assert_int_equal(pipe_pool_get(&pool, b, false, &bsize), 0);
	assert_published(0, 2, 0, 2);
	pipe_pool_put(&pool, b, bsize);
	pipe_pool_discard(&pool, a, asize);
	assert_published(0, 0, 0, 2);
	pipe_pool_clear(&pool);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_default_pipes_are_pooled),
		cmocka_unit_test(test_grow_keeps_the_bytes_and_the_budget),
		cmocka_unit_test(
		    test_refused_grow_stops_asking_until_a_large_pipe_goes),
		cmocka_unit_test(test_no_large_pipes_when_not_larger),
		cmocka_unit_test(test_large_budget_from_the_user_pipe_limit),
		cmocka_unit_test(test_metrics_follow_the_pool),
		cmocka_unit_test(test_small_pipes_are_counted_and_not_kept),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
