/*
 * The splice relay's pipe pool: stacks of empty pipes, so sessions borrow
 * a pipe only while bytes are in flight and the pipe(2) and F_SETPIPE_SZ
 * costs are paid once per pipe, not once per burst.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "socks5d/log.h"
#include "socks5d/metrics.h"
#include "socks5d/pipe_pool.h"

/* Large pipes when fs.pipe-user-pages-soft sets no limit. */
#define PIPE_POOL_LARGE_UNLIMITED 64
/* The large pipe's size: past 1 MiB the benchmark saw no further gain, and
 * an unprivileged process may not exceed fs.pipe-max-size anyway. */
#define PIPE_POOL_LARGE_SIZE (1024 * 1024)

/* Seconds between warnings that the kernel hands out minimal pipes. */
#define PIPE_POOL_SMALL_LOG_INTERVAL 60.0

static struct log_ratelimit small_pipe_log;

/*
 * A new pipe holds less than the default: this user's pipe budget
 * (fs.pipe-user-pages-soft) is spent, and from now on the kernel gives the
 * user's new pipes two pages. Relaying still works, slowly; say why.
 */
static void
pipe_pool_note_small(size_t got, size_t want)
{
	struct timespec ts;
	unsigned long covered;

	metrics_count_small_pipe();
	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (log_ratelimit_pass(&small_pipe_log,
	    (double)ts.tv_sec + (double)ts.tv_nsec / 1e9,
	    PIPE_POOL_SMALL_LOG_INTERVAL, &covered))
		log_warnx("splice pipes: the kernel gave %zu-byte pipes "
		    "instead of %zu (%lu time(s)): this user's pipe budget is "
		    "spent; raise fs.pipe-user-pages-soft", got, want,
		    covered);
}

/* Three stores into this process's metrics slot: cheap enough for every
 * get and put, and a scrape in any worker then sees every pool. */
static void
pipe_pool_publish(const struct pipe_pool *pool)
{
	metrics_set_pipes(pool->count + pool->large_free, pool->in_use,
	    pool->large_total);
}

static void
pipe_close(int fds[2])
{
	if (fds[0] != -1)
		close(fds[0]);
	if (fds[1] != -1)
		close(fds[1]);
	fds[0] = fds[1] = -1;
}

int
pipe_pool_init(struct pipe_pool *pool, size_t capacity, size_t large_max,
    size_t large_size)
{
	int probe[2];
	int size;

	pool->count = 0;
	pool->in_use = 0;
	pool->capacity = capacity;
	pool->large_free = pool->large_total = 0;
	pool->large_max = pool->large_budget = large_max;
	pool->large_size = large_size;
	pool->free_pipes = calloc(capacity, sizeof(*pool->free_pipes));
	pool->free_large = calloc(large_max + 1, sizeof(*pool->free_large));
	if (pool->free_pipes == NULL || pool->free_large == NULL)
		goto fail;

	/* The relay must know how much a pipe takes, to read no more than
	 * fits: a splice into a full pipe would look like an idle socket. */
	if (pipe2(probe, O_NONBLOCK | O_CLOEXEC) == -1) {
		log_warn("%s: pipe2", __func__);
		goto fail;
	}
	size = fcntl(probe[0], F_GETPIPE_SZ);
	pool->pipe_size = size > 0 ? (size_t)size : 65536;
	if (pool->large_size <= pool->pipe_size)
		pool->large_max = pool->large_budget = 0;
	/* The probe, as if handed out, becomes the first idle pipe. */
	pool->in_use = 1;
	pipe_pool_put(pool, probe, pool->pipe_size);
	return 0;
fail:
	free(pool->free_pipes);
	free(pool->free_large);
	pool->free_pipes = NULL;
	pool->free_large = NULL;
	return -1;
}

int
pipe_pool_get(struct pipe_pool *pool, int fds[2], bool large, size_t *size)
{
	int got;

	if (large && pool->large_free > 0) {
		pool->large_free--;
		fds[0] = pool->free_large[pool->large_free][0];
		fds[1] = pool->free_large[pool->large_free][1];
		*size = pool->large_size;
	} else if (pool->count > 0) {
		pool->count--;
		fds[0] = pool->free_pipes[pool->count][0];
		fds[1] = pool->free_pipes[pool->count][1];
		*size = pool->pipe_size;
	} else {
		if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) == -1) {
			fds[0] = fds[1] = -1;
			return -1;
		}
		*size = pool->pipe_size;
		got = fcntl(fds[0], F_GETPIPE_SZ);
		if (got > 0 && (size_t)got < pool->pipe_size) {
			*size = (size_t)got;
			pipe_pool_note_small(*size, pool->pipe_size);
		}
	}
	pool->in_use++;
	pipe_pool_publish(pool);
	return 0;
}

bool
pipe_pool_grow(struct pipe_pool *pool, int fds[2], size_t *size)
{
	int got;

	if (pool->large_total >= pool->large_max || *size >= pool->large_size)
		return false;
	got = fcntl(fds[0], F_SETPIPE_SZ, (int)pool->large_size);
	if (got < (int)pool->large_size) {
		/* EPERM: the user's pipe budget is spent, by this process or
		 * another. Stop asking until one of ours goes away. */
		log_debug("%s: F_SETPIPE_SZ: %s; %zu large pipe(s) for now",
		    __func__, got == -1 ? "refused" : "rounded down",
		    pool->large_total);
		if (got > 0)
			(void)fcntl(fds[0], F_SETPIPE_SZ, (int)*size);
		pool->large_max = pool->large_total;
		return false;
	}
	pool->large_total++;
	*size = pool->large_size;
	pipe_pool_publish(pool);
	return true;
}

void
pipe_pool_put(struct pipe_pool *pool, int fds[2], size_t size)
{
	if (fds[0] == -1)
		return;
	pool->in_use--;
	if (size > pool->pipe_size) {
		/* Room is kept for every large pipe: large_total never
		 * exceeds the array's size. */
		pool->free_large[pool->large_free][0] = fds[0];
		pool->free_large[pool->large_free][1] = fds[1];
		pool->large_free++;
		fds[0] = fds[1] = -1;
	} else if (size == pool->pipe_size && pool->count < pool->capacity) {
		pool->free_pipes[pool->count][0] = fds[0];
		pool->free_pipes[pool->count][1] = fds[1];
		pool->count++;
		fds[0] = fds[1] = -1;
	} else {
		/* A minimal pipe is not kept: closing it gives the budget
		 * back, and the next pipe may be a full one again. */
		pipe_close(fds);
	}
	pipe_pool_publish(pool);
}

void
pipe_pool_discard(struct pipe_pool *pool, int fds[2], size_t size)
{
	if (fds[0] == -1)
		return;
	pool->in_use--;
	if (size > pool->pipe_size && pool->large_total > 0) {
		pool->large_total--;
		pool->large_max = pool->large_budget;
	}
	pipe_close(fds);
	pipe_pool_publish(pool);
}

void
pipe_pool_clear(struct pipe_pool *pool)
{
	while (pool->count > 0) {
		pool->count--;
		pipe_close(pool->free_pipes[pool->count]);
	}
	while (pool->large_free > 0) {
		pool->large_free--;
		pool->large_total--;
		pipe_close(pool->free_large[pool->large_free]);
	}
	free(pool->free_pipes);
	free(pool->free_large);
	pool->free_pipes = NULL;
	pool->free_large = NULL;
	pool->capacity = 0;
	pipe_pool_publish(pool);
}

size_t
pipe_pool_large_budget(long pages_soft, size_t large_size, unsigned nprocs)
{
	size_t pages = large_size / 4096;

	if (nprocs == 0)
		nprocs = 1;
	if (pages_soft <= 0)
		return PIPE_POOL_LARGE_UNLIMITED;
	if (pages == 0)
		return 0;
	return (size_t)pages_soft / 4 / nprocs / pages;
}

/* One number from a /proc/sys file, or fallback. */
static long
pipe_pool_sysctl(const char *path, long fallback)
{
	FILE *f = fopen(path, "re");
	long v;

	if (f == NULL)
		return fallback;
	if (fscanf(f, "%ld", &v) != 1)
		v = fallback;
	fclose(f);
	return v;
}

int
pipe_pool_init_system(struct pipe_pool *pool, size_t capacity,
    unsigned nprocs)
{
	long max_size = pipe_pool_sysctl("/proc/sys/fs/pipe-max-size",
	    PIPE_POOL_LARGE_SIZE);
	long pages_soft = pipe_pool_sysctl("/proc/sys/fs/pipe-user-pages-soft",
	    16384);
	size_t large_size = PIPE_POOL_LARGE_SIZE;

	if (max_size > 0 && (size_t)max_size < large_size)
		large_size = (size_t)max_size;
	if (pipe_pool_init(pool, capacity, pipe_pool_large_budget(pages_soft,
	    large_size, nprocs), large_size) == -1)
		return -1;
	log_debug("splice pipes: %zu bytes, up to %zu large ones of %zu",
	    pool->pipe_size, pool->large_max, pool->large_size);
	return 0;
}
