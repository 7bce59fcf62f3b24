/*
 * Moving bytes between two connected sockets: splice(2) through pooled
 * pipes for a direction that carries bulk data, or a bounded userspace
 * buffer per direction (small messages, relay = copy, and the fallback
 * when a socket refuses splice). Each direction is independent, with
 * backpressure and half-close. Knows nothing of SOCKS.
 */
#ifndef SOCKS5D_RELAY_H
#define SOCKS5D_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <ev.h>
#include <openssl/ssl.h>

#include "socks5d/config.h"
#include "socks5d/pipe_pool.h"
#include "socks5d/ratelimit.h"

/* The copy buffer per direction, and the bytes after which a callback
 * stops reading, so one busy session cannot starve the others (the read
 * that crosses it may fill a whole pipe, up to a large pipe's 1 MiB). */
#define RELAY_COPY_BUFSIZE  (64 * 1024)
#define RELAY_BUDGET        (256 * 1024)

/* A read this large shows bulk data: in splice mode the direction splices
 * from then on. Half the copy buffer, not all of it: on loopback one TCP
 * segment is just under 64 KiB, and a relay that keeps up with its sender
 * reads one segment at a time. Interactive protocols (TLS records are at
 * most 16 KiB) stay far below it. */
#define RELAY_BULK_READ     (32 * 1024)

/* A direction whose last read emptied its socket with at most this much
 * carries small messages: its reads (of at most this much) go to the I/O
 * batch. Others read at once, so a burst of sessions with data waiting
 * does not hold a copy buffer each until the turn ends, and a batched
 * read touches few of its buffer's pages. */
#define RELAY_BATCH_READ    (16 * 1024)

/*
 * A filter on the first bytes a direction carries (an HTTP response head
 * to rewrite, say): it sees the bytes it holds, buf[0..*len) with cap
 * bytes of room, and may rewrite them in place. MORE holds them back and
 * reads on, except the first *release bytes, which go on now (an interim
 * response, say) and are not shown to it again; DONE passes *len bytes on
 * and filters nothing more. A filter that fills the copy buffer, or meets
 * EOF, passes what it holds.
 */
enum relay_filter_result { RELAY_FILTER_MORE, RELAY_FILTER_DONE };
/* Room kept free in the copy buffer while a filter holds bytes, so it
 * can grow them (a header added) even after a read that filled it. */
#define RELAY_FILTER_ROOM   64
typedef enum relay_filter_result relay_filter_fn(uint8_t *buf, size_t *len,
    size_t cap, size_t *release);

struct relay;

/* A direction's bandwidth limit: its bucket, and its place in the
 * bucket's queue of waiters. */
struct relay_rate {
	struct rate_bucket *bucket;
	struct rate_waiter wait;
	struct relay *relay;
};

struct relay_dir {
	int from;
	int to;
	SSL *from_ssl;         /* TLS on "from" (copying only), or NULL */
	SSL *to_ssl;           /* TLS on "to", or NULL */
	int from_wants;        /* a TLS read waits for this event on
	                          "from" (EV_WRITE: a key update to send) */
	bool from_starved;     /* the last TLS read found no whole record:
	                          what OpenSSL holds needs the socket */
	int from_held;         /* what a TLS read met after bytes it took,
	                          the next one's answer: -1 the end, an
	                          errno, or 0 nothing */
	int got;               /* got_ready: the batched read's bytes, or
	                          -errno (at most RELAY_BATCH_READ) */
	SSL *from_outer;       /* the TLS from_ssl runs inside, or NULL:
	                          its buffered bytes are from_ssl's too */
	int to_wants;          /* a TLS write waits for this one on "to" */
	int pipe[2];           /* splicing: -1 while nothing is in flight */
	unsigned got_room;     /* got_ready: the room it was given */
	size_t pipe_size;      /* bytes the pipe held now takes */
	uint8_t *buf;          /* copying: NULL while nothing is in flight */
	size_t off;            /* copying: first unsent byte in buf */
	size_t pending;        /* bytes read from "from", not yet written */
	uint64_t bytes;        /* bytes delivered to "to" */
	bool stalled;          /* the pipe took no more: wait for a drain */
	bool queued;           /* a read into buf, or the write of the
	                          ready bytes (relay_dir_ready), is in the
	                          I/O batch (io_batch.h), done before the
	                          loop waits */
	bool small;            /* the last read emptied the socket with at
	                          most RELAY_BATCH_READ: batch the next */
	bool got_ready;        /* the batch's read completed: got is the
	                          next fill's result, for got_room bytes
	                          (the new fields fill holes: a session
	                          stays the size it was) */
	bool bulk;             /* once read RELAY_BULK_READ: splices (in
	                          splice mode); once filled a pipe: may use a
	                          large one */
	bool eof;              /* "from" sent FIN */
	bool done;             /* FIN passed on to "to" */
	relay_filter_fn *filter;       /* until it is DONE; copying only */
	size_t released;       /* filtering: pending bytes it let go */
	bool limited;          /* copying only; what passes "limit" is read
	                          and dropped */
	uint64_t limit;        /* limited: bytes that may still pass */
	struct relay_rate *rate;       /* a bandwidth limit, or NULL: kept
	                                * apart so unlimited sessions do not
	                                * carry its waiter */
};

struct relay;
/* Called once when the relay ends: both directions finished, an error, or
 * a failure to allocate. reason is a short static word for the log. */
typedef void relay_end_cb(struct relay *r, const char *reason);
/* Shown the client's bytes as they are read, before they are sent on
 * (copying, not splicing, while it looks): 0 to see more (it may set
 * r->peek to another function for the rest), 1 when it has seen enough,
 * -1 to end the relay before they go, with *reason. */
typedef int relay_peek_fn(struct relay *r, const uint8_t *buf, size_t len,
    const char **reason);
/* Shown every byte read, both ways (up: the client's), before it is
 * sent on, for as long as it returns 0 (copying, not splicing, while it
 * watches): 1 stops watching, -1 ends the relay with *reason. */
typedef int relay_watch_fn(struct relay *r, bool up, const uint8_t *buf,
    size_t len, const char **reason);
/* Told of the bytes each pump delivered (up: client to target); a reason
 * word ends the relay as an error would, NULL goes on. */
typedef const char *relay_meter_fn(struct relay *r, bool up, uint64_t bytes);

struct relay {
	struct ev_loop *loop;
	struct pipe_pool *pipes;
	enum relay_mode mode;
	struct relay_dir up;       /* client -> target */
	struct relay_dir down;     /* target -> client */
	/* The caller's watchers on the two sockets, taken over (callback
	 * and data) for the relay's life: see struct relay_side. */
	ev_io *client_io;
	ev_io *target_io;
	ev_tstamp last_activity;
	/* The rate over the last second or two, for the control socket:
	 * bytes both ways at rate_at, and the rate of the window before. */
	ev_tstamp rate_at;
	uint64_t rate_mark;
	double rate_last;
	relay_end_cb *on_end;
	relay_meter_fn *meter;     /* NULL: nobody counts */
	relay_peek_fn *peek;       /* NULL: nobody looks */
	relay_watch_fn *watch;     /* NULL: nobody watches */
	bool running;
};

/*
 * One end of the relay: a connected socket, its TLS connection when it
 * has one (the relay then copies, through OpenSSL), and the watcher the
 * caller already had on it (stopped or not), which the relay reuses. libev
 * treats a watcher newly set on an fd as a possibly new file and adds the
 * fd to epoll again, a failed epoll_ctl (EEXIST) per session; the same
 * watcher on the same fd only changes its events. If io was set on
 * another fd, the relay sets it on fd; a watcher must never be left set
 * on a closed fd whose number a new socket may get.
 */
struct relay_side {
	int fd;
	ev_io *io;
	SSL *ssl;              /* TLS on fd (after its handshake), or NULL */
	SSL *outer;            /* the TLS ssl runs inside, or NULL */
};

/*
 * Start relaying between client and target. prefix holds bytes the
 * client already sent after its request (at most RELAY_COPY_BUFSIZE); they
 * go to the target first. client_eof says the client already half-closed.
 * Returns 0, or -1 when it could not start (nothing to stop then).
 */
int relay_start(struct relay *r, struct ev_loop *loop, struct pipe_pool *pipes,
    enum relay_mode mode, struct relay_side client, struct relay_side target,
    const uint8_t *prefix, size_t prefix_len, bool client_eof,
    relay_end_cb *on_end);
/* Filter what the target sends first (call right after relay_start,
 * before the loop runs). */
void relay_filter_down(struct relay *r, relay_filter_fn *filter);

/* Pass at most limit more bytes from the client to the target; read and
 * drop what the client sends after them (a forwarded HTTP request's body
 * ends where a pipelined next request, meant for another origin, would
 * begin). Call right after relay_start. */
void relay_limit_up(struct relay *r, uint64_t limit);

/* Hold each direction to a bucket's rate (NULL: unlimited). The caller
 * keeps the buckets and releases them after relay_stop. Call right after
 * relay_start. */
void relay_limit_rate(struct relay *r, struct rate_bucket *up,
    struct rate_bucket *down);

/* Let fn see the client's bytes from the first on (call right after
 * relay_start): those the client sent ahead of the reply at once. -1 when
 * fn refused them (*reason set): the caller ends the session. */
int relay_peek_up(struct relay *r, relay_peek_fn *fn, const char **reason);

/* Let fn watch both directions from the first byte on (call right after
 * relay_start); -1 when it refused the client's bytes already here
 * (*reason set): the caller ends the session. */
int relay_watch_both(struct relay *r, relay_watch_fn *fn, const char **reason);

/* Bytes per second both ways, over about the last second. */
double relay_rate(const struct relay *r);

/* Stop watchers and release pipes and buffers; the fds are not closed. */
void relay_stop(struct relay *r);

/*
 * Copy-mode buffers (RELAY_COPY_BUFSIZE bytes) with up to RELAY_COPY_KEEP
 * kept for reuse: a copy-mode direction goes idle after every message of
 * a request/response protocol and must not cost a malloc each time. get
 * returns NULL when out of memory; put takes NULL.
 */
#define RELAY_COPY_KEEP 16
uint8_t *relay_copy_buf_get(void);
void relay_copy_buf_put(uint8_t *buf);

#endif
