/*
 * Unit tests for the splice relay's pipe pool: default pipes, growing a
 * pipe in use to a large one without losing its bytes, the budget of large
 * pipes, their free list, and a grow the kernel refuses.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
