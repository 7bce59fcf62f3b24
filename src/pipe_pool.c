/*
 * The splice relay's pipe pool: a stack of empty pipes, so sessions borrow
 * a pipe only while bytes are in flight and the pipe(2) cost is paid once.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "socks5d/log.h"
#include "socks5d/pipe_pool.h"

int
pipe_pool_init(struct pipe_pool *pool, size_t capacity)
{
	int probe[2];
	int size;

	pool->free_pipes = calloc(capacity, sizeof(*pool->free_pipes));
	if (pool->free_pipes == NULL)
		return -1;
	pool->count = 0;
	pool->capacity = capacity;

	/* The relay must know how much a pipe takes, to read no more than
	 * fits: a splice into a full pipe would look like an idle socket. */
	if (pipe2(probe, O_NONBLOCK | O_CLOEXEC) == -1) {
		log_warn("%s: pipe2", __func__);
		free(pool->free_pipes);
		pool->free_pipes = NULL;
		return -1;
	}
	size = fcntl(probe[0], F_GETPIPE_SZ);
	pool->pipe_size = size > 0 ? (size_t)size : 65536;
	pipe_pool_put(pool, probe);
	return 0;
}

int
pipe_pool_get(struct pipe_pool *pool, int fds[2])
{
	if (pool->count > 0) {
		pool->count--;
		fds[0] = pool->free_pipes[pool->count][0];
		fds[1] = pool->free_pipes[pool->count][1];
		return 0;
	}
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) == -1) {
		fds[0] = fds[1] = -1;
		return -1;
	}
	return 0;
}

void
pipe_pool_put(struct pipe_pool *pool, int fds[2])
{
	if (fds[0] == -1)
		return;
	if (pool->count < pool->capacity) {
		pool->free_pipes[pool->count][0] = fds[0];
		pool->free_pipes[pool->count][1] = fds[1];
		pool->count++;
		fds[0] = fds[1] = -1;
		return;
	}
	pipe_pool_discard(fds);
}

void
pipe_pool_discard(int fds[2])
{
	if (fds[0] != -1)
		close(fds[0]);
	if (fds[1] != -1)
		close(fds[1]);
	fds[0] = fds[1] = -1;
}

void
pipe_pool_clear(struct pipe_pool *pool)
{
	while (pool->count > 0) {
		pool->count--;
		pipe_pool_discard(pool->free_pipes[pool->count]);
	}
	free(pool->free_pipes);
	pool->free_pipes = NULL;
	pool->capacity = 0;
}
