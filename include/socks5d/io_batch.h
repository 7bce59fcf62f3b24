/*
 * Socket reads and writes gathered over one turn of the event loop and
 * made together: one io_uring_enter(2) carries every socket's read (or
 * write) instead of one read(2) or write(2) each. On loopback a relayed
 * small message costs a read and a write per direction, and the kernel's
 * entry and exit are a large share of each call (about 1 us on a virtual
 * machine), so batching them is what is left to save.
 *
 * An operation is queued by a callback and made once every callback of
 * that turn has run, before the loop waits again; its result comes back
 * through the done function as read(2) or write(2) would have returned it
 * (a negative errno for a failure), still before the loop waits. Reads go
 * first, so the writes their done functions queue leave in the same turn.
 * Nothing blocks: every operation is MSG_DONTWAIT, so an empty or full
 * socket answers -EAGAIN. Without io_uring (an old kernel, io_uring
 * disabled by sysctl or a seccomp filter, or io_uring = no) nothing is
 * queued and callers make their own calls.
 */
#ifndef SOCKS5D_IO_BATCH_H
#define SOCKS5D_IO_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <ev.h>

/* The result of one queued operation: bytes moved, or -errno. */
typedef void io_batch_done_fn(void *owner, int tag, ssize_t result);

/* Sets up the batch for this process's loop (after any fork: a ring is
 * one process's). Returns whether operations will be batched. */
bool io_batch_start(struct ev_loop *loop);
void io_batch_stop(void);
bool io_batch_enabled(void);

/* Queue a write of buf[0..len) to fd, or a read of up to len bytes into
 * buf (fd and buf stay valid until done runs). Return -1 when it cannot
 * be queued (no batching, or the batch is full): make the call now. */
int io_batch_send(int fd, const void *buf, size_t len,
    io_batch_done_fn *done, void *owner, int tag);
int io_batch_recv(int fd, void *buf, size_t len,
    io_batch_done_fn *done, void *owner, int tag);
/* Forgets what owner queued: no done of its runs again, and what was not
 * made yet never is (what was made in a batch still finishing stays
 * made). Call it before closing the descriptors or freeing the
 * buffers. */
void io_batch_cancel(const void *owner);

#endif
