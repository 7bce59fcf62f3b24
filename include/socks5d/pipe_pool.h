/*
 * A pool of empty pipes for the splice relay. A relay direction holds a pipe
 * only while bytes are in flight and returns it when it drains, so an idle
 * session holds no pipe at all.
 *
 * Pipes come in two sizes. Every direction starts with a default pipe
 * (64 KiB on Linux). A direction that fills one completely is moving bulk
 * data; it may then grow its pipe to a large one (1 MiB, or the system's
 * pipe-max-size if lower), which takes sixteen times fewer splices, ACKs
 * and wake-ups per byte. Large pipes count against the per-user pipe
 * budget the kernel enforces (fs.pipe-user-pages-soft), so only a bounded
 * number exists at once; they circulate among bulk directions through
 * their own free list.
 *
 * Every change is published to /metrics (idle, in use and large pipes, and
 * the pipes the kernel made small), so the pool is meant to be one per
 * process.
 */
#ifndef SOCKS5D_PIPE_POOL_H
#define SOCKS5D_PIPE_POOL_H

#include <stdbool.h>
#include <stddef.h>

struct pipe_pool {
	int (*free_pipes)[2];
	size_t count;
	size_t capacity;
	size_t pipe_size;      /* bytes a default pipe holds (F_GETPIPE_SZ) */
	size_t in_use;         /* handed out and not yet put or discarded */
	int (*free_large)[2];
	size_t large_free;     /* large pipes in free_large */
	size_t large_total;    /* large pipes in existence, free or in use */
	size_t large_max;      /* growing allowed below this; 0: never */
	size_t large_budget;   /* large_max before a refused grow lowered it */
	size_t large_size;     /* bytes a large pipe holds */
};

/*
 * Keep at most capacity idle default pipes; allow large_max large pipes of
 * about large_size bytes (the kernel may round it). Returns 0 or -1.
 */
int pipe_pool_init(struct pipe_pool *pool, size_t capacity, size_t large_max,
    size_t large_size);
/*
 * Hand out an empty pipe and the bytes it holds: a free large one when
 * large is set and one is free, otherwise a default one (or, when the
 * user's kernel pipe budget is spent, a smaller one: logged, never pooled).
 * Returns 0 or -1.
 */
int pipe_pool_get(struct pipe_pool *pool, int fds[2], bool large,
    size_t *size);
/*
 * Grow a default pipe in use (its bytes stay) to a large one, when the
 * budget allows. Returns true and updates *size, or false (nothing changed).
 */
bool pipe_pool_grow(struct pipe_pool *pool, int fds[2], size_t *size);
/*
 * pipe_pool_init with the large pipes sized and counted from the system's
 * settings (fs.pipe-max-size, fs.pipe-user-pages-soft) for nprocs
 * processes of the same user.
 */
int pipe_pool_init_system(struct pipe_pool *pool, size_t capacity,
    unsigned nprocs);
/* Take back an empty pipe of the given size; sets fds to -1. */
void pipe_pool_put(struct pipe_pool *pool, int fds[2], size_t size);
/* Close a pipe that may still hold bytes; sets fds to -1. */
void pipe_pool_discard(struct pipe_pool *pool, int fds[2], size_t size);
void pipe_pool_clear(struct pipe_pool *pool);

/*
 * How many large pipes one process may hold: a quarter of the user's pipe
 * budget (pages_soft, from /proc/sys/fs/pipe-user-pages-soft; 0 means no
 * limit) shared by nprocs processes, so default pipes keep the rest.
 */
size_t pipe_pool_large_budget(long pages_soft, size_t large_size,
    unsigned nprocs);

#endif
