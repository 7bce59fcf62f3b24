/*
 * A pool of empty pipes for the splice relay. A relay direction holds a pipe
 * only while bytes are in flight and returns it when it drains, so an idle
 * session holds no pipe at all.
 */
#ifndef SOCKS5D_PIPE_POOL_H
#define SOCKS5D_PIPE_POOL_H

#include <stddef.h>

struct pipe_pool {
	int (*free_pipes)[2];
	size_t count;
	size_t capacity;
	size_t pipe_size;      /* bytes a pipe holds (F_GETPIPE_SZ) */
};

/* Keep at most capacity idle pipes. Returns 0 or -1. */
int pipe_pool_init(struct pipe_pool *pool, size_t capacity);
/* Hand out an empty pipe (from the pool or new). Returns 0 or -1. */
int pipe_pool_get(struct pipe_pool *pool, int fds[2]);
/* Take back a pipe that is empty; sets fds to -1. */
void pipe_pool_put(struct pipe_pool *pool, int fds[2]);
/* Close a pipe that may still hold bytes; sets fds to -1. */
void pipe_pool_discard(int fds[2]);
void pipe_pool_clear(struct pipe_pool *pool);

#endif
