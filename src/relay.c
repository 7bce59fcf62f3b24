/*
 * The relay: two independent directions between a client and a target
 * socket. Each direction reads only while its pipe (or buffer) has room and
 * stops reading while the other side cannot take more, so memory stays
 * bounded whatever the peers do. A FIN is passed on with shutdown(SHUT_WR)
 * once everything before it was delivered; the second FIN of a relay goes
 * out with the close that ends it.
 *
 * In splice mode a direction starts out copying: for small messages
 * read(2) and write(2) through a pooled buffer cost less than two splices
 * through a pipe. The first read of RELAY_BULK_READ or more shows bulk
 * data; from then on, once the buffer has drained (bytes leave in order),
 * the direction splices.
 *
 * A TLS side is read and written through OpenSSL, so its relay copies;
 * a TLS read may have to wait for the socket to take a write first (a key
 * update), and a write for a read, which is what from_wants and to_wants
 * track.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "socks5d/log.h"
#include "socks5d/metrics.h"
#include "socks5d/relay.h"
#include "socks5d/tls_io.h"
#include "socks5d/io_batch.h"

static void relay_io_cb(struct ev_loop *loop, ev_io *w, int revents);

/* The loop is single-threaded, and workers fork before any relay runs. */
static uint8_t *relay_copy_kept[RELAY_COPY_KEEP];
static size_t relay_copy_nkept;

uint8_t *
relay_copy_buf_get(void)
{
	if (relay_copy_nkept > 0)
		return relay_copy_kept[--relay_copy_nkept];
	return malloc(RELAY_COPY_BUFSIZE);
}

void
relay_copy_buf_put(uint8_t *buf)
{
	if (buf == NULL)
		return;
	if (relay_copy_nkept < RELAY_COPY_KEEP)
		relay_copy_kept[relay_copy_nkept++] = buf;
	else
		free(buf);
}

static void
relay_dir_init(struct relay_dir *d, int from, int to)
{
	memset(d, 0, sizeof(*d));
	d->from = from;
	d->to = to;
	d->pipe[0] = d->pipe[1] = -1;
}

/* Whether the next read goes into a pipe: a bulk direction in splice mode
 * whose copied bytes have all left. */
static bool
relay_dir_splicing(const struct relay *r, const struct relay_dir *d)
{
	/* A filter, a limit or a peek sees bytes only in the copy buffer. */
	return r->mode == RELAY_SPLICE && d->bulk && d->buf == NULL &&
	    d->filter == NULL && !d->limited && r->watch == NULL &&
	    (d != &r->up || r->peek == NULL);
}

static size_t
relay_dir_capacity(const struct relay *r, const struct relay_dir *d)
{
	if (!relay_dir_splicing(r, d))
		return RELAY_COPY_BUFSIZE - (d->filter != NULL ?
		    RELAY_FILTER_ROOM : 0);
	/* Without a pipe: the smallest it could get. */
	return d->pipe[0] != -1 ? d->pipe_size : r->pipes->pipe_size;
}

static bool
relay_dir_wants_read(const struct relay *r, const struct relay_dir *d)
{
	/* off is 0 in splice mode, and in copy mode whenever the buffer
	 * drained, so this is "there is room to read into"; for TLS, room
	 * for a whole record, so OpenSSL keeps none of it back. */
	size_t least = d->from_ssl != NULL ? TLS_RECORD_MAX : 1;
	const struct relay_dir *other = d == &r->up ? &r->down : &r->up;

	/* OpenSSL 3.0 fails a read that meets a second key update request
	 * while its answer to the first waits behind an unfinished write:
	 * read on once that write went out. */
	if (d->from_ssl != NULL && other->to_wants != 0 &&
	    SSL_get_key_update_type(d->from_ssl) != SSL_KEY_UPDATE_NONE)
		return false;
	return !d->eof && !d->stalled &&
	    (d->rate == NULL || d->rate->wait.next == NULL) &&
	    d->off + d->pending + least <= relay_dir_capacity(r, d);
}

/* Bytes that may be written: all pending ones, but while a filter holds
 * some back only those it let go. */
static size_t
relay_dir_ready(const struct relay_dir *d)
{
	return d->filter != NULL ? d->released : d->pending;
}

/* A queued write is the I/O batch's until it completes: no EV_WRITE for
 * it (the watchers stay as they were, so queueing costs no epoll_ctl). */
static bool
relay_dir_wants_write(const struct relay_dir *d)
{
	return !d->queued && (relay_dir_ready(d) > 0 || (d->eof && !d->done));
}

/* Words for the access log: why a relay ended. */
static const char *
relay_errno_reason(int err)
{
	switch (err) {
	case ECONNRESET:
	case EPIPE:
		return "reset";
	case ETIMEDOUT:
		return "timeout";
	case EPROTO:
		return "tls-error";
	case ENOMEM:
	case EMFILE:
	case ENFILE:
		log_warnx("relay: out of memory or descriptors");
		return "nomem";
	default:
		return "error";
	}
}

static void
relay_dir_release(struct relay *r, struct relay_dir *d)
{
	if (d->pipe[0] != -1) {
		if (d->pending == 0)
			pipe_pool_put(r->pipes, d->pipe, d->pipe_size);
		else
			pipe_pool_discard(r->pipes, d->pipe, d->pipe_size);
	}
	relay_copy_buf_put(d->buf);
	d->buf = NULL;
}

/*
 * After the last byte before a FIN went out, pass the FIN on. If the other
 * direction already did, the relay ends now and close() sends this FIN:
 * both sockets were read to their FIN, so closing cannot turn into a
 * reset, and a shutdown() first would be a wasted system call. A TLS
 * "to" gets a close_notify first, and the FIN waits until the socket took
 * all of it (to_wants set meanwhile: the direction still wants to write).
 */
static void
relay_dir_finish(const struct relay *r, struct relay_dir *d)
{
	const struct relay_dir *other = d == &r->up ? &r->down : &r->up;

	if (d->eof && d->pending == 0 && !d->done) {
		/* Only a close_notify that did not fit makes to_wants set
		 * here: every write before it went out whole. */
		if (d->to_ssl != NULL && tls_io_send_close_notify(d->to_ssl,
		    d->to_wants != 0, &d->to_wants) == -1)
			return;
		/* ENOTCONN here means the peer is gone; the other
		 * direction's I/O will report that. */
		if (!other->done)
			(void)shutdown(d->to, SHUT_WR);
		d->done = true;
	}
}

/* What a bandwidth limit lets this read take of room: all of it without
 * one. */
static size_t
relay_dir_allowed(const struct relay_dir *d, size_t room)
{
	return d->rate == NULL ? room :
	    rate_bucket_allow(d->rate->bucket, &d->rate->wait, room);
}

static bool relay_ssl_holds(SSL *, bool);

/*
 * A TLS read: one SSL_read takes one record, but reading ahead brought
 * several in with one read(2). Take every record OpenSSL already holds
 * while a whole one fits, so that one write(2) to the other side carries
 * them all instead of one each. A failure or the end after some bytes
 * is kept for the next call: the bytes before it go out first.
 */
static ssize_t
relay_fill_tls(struct relay_dir *d, unsigned char *at, size_t room)
{
	size_t got = 0;

	if (d->from_held == -1)
		return 0;
	if (d->from_held != 0) {
		errno = d->from_held;
		return -1;
	}
	for (;;) {
		ssize_t n = tls_io_read(d->from_ssl, at + got, room - got,
		    &d->from_wants);

		/* A partial record left needs the socket: starved, so the
		 * relay waits for it instead of coming back at once. */
		d->from_starved = n < 0 && d->from_wants == EV_READ;
		if (n <= 0 && got > 0) {
			if (n == 0 || (errno != EAGAIN && errno != EINTR))
				d->from_held = n == 0 ? -1 : errno;
			d->from_wants = 0;
			break;
		}
		if (n <= 0)
			return n;
		got += (size_t)n;
		/* A key update to answer: the next read might answer it
		 * behind an unfinished write (relay_dir_wants_read). */
		if (room - got < TLS_RECORD_MAX ||
		    !relay_ssl_holds(d->from_ssl, false) ||
		    SSL_get_key_update_type(d->from_ssl) !=
		    SSL_KEY_UPDATE_NONE)
			break;
	}
	return (ssize_t)got;
}

/* Plain sockets on both sides: OpenSSL makes its own calls, and its
 * readiness events are fed, not polled. */
static bool
relay_batchable(const struct relay *r)
{
	return r->up.from_ssl == NULL && r->down.from_ssl == NULL;
}

static void relay_read_done(void *owner, int up, ssize_t result);

/* Read from d->from into the pipe or buffer, at most *room bytes (set
 * here, and at most what the direction's rate allows, at least 1);
 * read(2) conventions. With may_queue, a copying read may go to the I/O
 * batch instead (-1 with d->queued set); its result is the next call's. */
static ssize_t
relay_fill(struct relay *r, struct relay_dir *d, size_t *room,
    bool may_queue)
{
	size_t end = d->off + d->pending;

	if (d->got_ready) {
		d->got_ready = false;
		*room = d->got_room;
		if (d->got >= 0)
			return d->got;
		errno = (int)-d->got;
		return -1;
	}

	if (relay_dir_splicing(r, d)) {
		if (d->pipe[0] == -1 && pipe_pool_get(r->pipes, d->pipe,
		    d->bulk, &d->pipe_size) == -1)
			return -1;
		*room = relay_dir_allowed(d, d->pipe_size - d->pending);
		return splice(d->from, NULL, d->pipe[1], NULL, *room,
		    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	}
	if (d->buf == NULL && (d->buf = relay_copy_buf_get()) == NULL)
		return -1;
	*room = relay_dir_allowed(d, relay_dir_capacity(r, d) - end);
	if (d->from_ssl != NULL)
		return relay_fill_tls(d, d->buf + end, *room);
	/* Not under a bandwidth limit: what a read may take is decided when
	 * it is made, and sessions sharing a bucket would all be allowed
	 * the same bytes before any spent them. */
	if (may_queue && d->small && d->rate == NULL && relay_batchable(r)) {
		size_t batched = *room < RELAY_BATCH_READ ? *room :
		    RELAY_BATCH_READ;

		if (io_batch_recv(d->from, d->buf + end, batched,
		    relay_read_done, r, d == &r->up) == 0) {
			d->queued = true;
			d->got_room = (unsigned)batched;
			return -1;
		}
	}
	return read(d->from, d->buf + end, *room);
}

/*
 * This direction carries bulk data: a copying read brought at least
 * RELAY_BULK_READ, or a pipeful was waiting. It splices from now on (in
 * splice mode), and a large pipe moves bulk with far fewer splices, ACKs
 * and wake-ups: grow the pipe it holds (its bytes stay) while the pool's
 * budget allows, and ask for a large one whenever it borrows a pipe.
 */
static void
relay_dir_bulk(struct relay *r, struct relay_dir *d)
{
	d->bulk = true;
	if (d->pipe[0] != -1)
		(void)pipe_pool_grow(r->pipes, d->pipe, &d->pipe_size);
}

/* Let the direction's filter see what was read so far: the bytes stay
 * held until it is done with them (or can hold no more). */
static void
relay_dir_filter(struct relay_dir *d)
{
	size_t held_at = d->off + d->released, len = d->pending - d->released;
	size_t release = 0;
	enum relay_filter_result result = RELAY_FILTER_DONE;

	/* No buffer: nothing held, and only an EOF brought us here. */
	if (d->buf != NULL)
		result = d->filter(d->buf + held_at, &len,
		    RELAY_COPY_BUFSIZE - held_at, &release);
	d->pending = d->released + len;
	/* Full is when no further read fits: through TLS, a whole record
	 * must (relay_dir_wants_read), or the direction would stall. */
	if (result == RELAY_FILTER_DONE || d->eof ||
	    d->off + d->pending + (d->from_ssl != NULL ? TLS_RECORD_MAX : 1) >
	    RELAY_COPY_BUFSIZE - RELAY_FILTER_ROOM) {
		d->filter = NULL;
		d->released = 0;
		return;
	}
	d->released += release < len ? release : len;
}

/* Write pending bytes to d->to from wherever they wait; write(2)
 * conventions. */
static ssize_t
relay_drain(struct relay_dir *d)
{
	if (d->buf == NULL)
		return splice(d->pipe[0], NULL, d->to, NULL, d->pending,
		    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	if (d->to_ssl != NULL)
		return tls_io_write(d->to_ssl, d->buf + d->off,
		    relay_dir_ready(d), &d->to_wants);
	return write(d->to, d->buf + d->off, relay_dir_ready(d));
}

/* Nothing in flight: give the pipe or buffer back, so an idle session
 * holds neither. */
static void
relay_dir_idle(struct relay *r, struct relay_dir *d)
{
	if (d->pending != 0)
		return;
	d->off = 0;
	pipe_pool_put(r->pipes, d->pipe, d->pipe_size);
	relay_copy_buf_put(d->buf);
	d->buf = NULL;
}

static void
relay_dir_sent(struct relay_dir *d, size_t n)
{
	d->pending -= n;
	d->off += n;
	if (d->filter != NULL)
		d->released -= n;
	d->bytes += n;
	d->stalled = false;
}

/* Everything read went out. */
static void
relay_dir_emptied(struct relay *r, struct relay_dir *d)
{
	d->off = 0;
	/* A bulk direction's copied bytes are out: splice the rest. */
	if (r->mode == RELAY_SPLICE && d->bulk) {
		relay_copy_buf_put(d->buf);
		d->buf = NULL;
	}
}

/* After a move: give back what is idle, pass a FIN on, note activity. */
static void
relay_dir_settle(struct relay *r, struct relay_dir *d, uint64_t before,
    bool was_eof)
{
	relay_dir_idle(r, d);
	relay_dir_finish(r, d);
	if (d->bytes != before || d->eof != was_eof) {
		ev_tstamp now = ev_now(r->loop);

		r->last_activity = now;
		if (now - r->rate_at >= 1.0) {
			uint64_t total = r->up.bytes + r->down.bytes;

			r->rate_last = (double)(total - r->rate_mark) /
			    (now - r->rate_at);
			r->rate_mark = total;
			r->rate_at = now;
		}
	}
}

static void relay_write_done(void *owner, int up, ssize_t result);

/*
 * Hand the write to the I/O batch when that saves a system call: after a
 * small read that emptied the socket (d->small; bulk keeps writing at
 * once, reading on as it goes).
 */
static bool
relay_dir_queue(struct relay *r, struct relay_dir *d)
{
	if (d->buf == NULL || !relay_batchable(r) ||
	    io_batch_send(d->to, d->buf + d->off, relay_dir_ready(d),
	    relay_write_done, r, d == &r->up) == -1)
		return false;
	d->queued = true;
	return true;
}

/*
 * Move what can be moved now in one direction. Returns NULL, or the reason
 * the relay must end. may_queue: its first read may go to the I/O batch
 * (a readable socket's; the others come from a completion).
 */
static const char *
relay_move(struct relay *r, struct relay_dir *d, bool may_queue)
{
	uint64_t before = d->bytes;
	bool was_eof = d->eof;
	size_t moved = 0;
	ssize_t n;

	/* Its write completes before the loop waits, and moves on then. */
	if (d->queued)
		return NULL;
	while (moved < RELAY_BUDGET) {
		bool filled = false, write_blocked = false, drained = false;

		/* A batched read's result is taken whatever else holds. */
		if (!d->got_ready && relay_dir_wants_read(r, d) &&
		    d->rate != NULL && rate_bucket_allow(d->rate->bucket,
		    &d->rate->wait, 1) == 0) {
			/* Out of budget: read on when the bucket wakes us
			 * (relay_dir_wants_read is false until then). */
			rate_bucket_wait(d->rate->bucket, &d->rate->wait);
		} else if (d->got_ready || relay_dir_wants_read(r, d)) {
			bool spliced = relay_dir_splicing(r, d);
			size_t room = 0, at = d->off + d->pending;

			n = relay_fill(r, d, &room, may_queue && moved == 0);
			/* Queued: its completion moves on. */
			if (n == -1 && d->queued)
				return NULL;
			if (n > 0 && d == &r->up && r->peek != NULL) {
				const char *why = "error";
				int seen = r->peek(r, d->buf + at, (size_t)n,
				    &why);

				if (seen != 0)
					r->peek = NULL;
				if (seen < 0)
					return why;
			}
			if (n > 0 && r->watch != NULL) {
				const char *why = "error";
				int seen = r->watch(r, d == &r->up,
				    d->buf + at, (size_t)n, &why);

				if (seen != 0)
					r->watch = NULL;
				if (seen < 0)
					return why;
			}
			if (n > 0 && d->rate != NULL)
				rate_bucket_spend(d->rate->bucket, &d->rate->wait,
				    (size_t)n);
			if (n > 0 && d->limited) {
				size_t keep = (uint64_t)n < d->limit ?
				    (size_t)n : (size_t)d->limit;

				/* Past the limit: read, counted as moved
				 * so the budget holds, and dropped. */
				d->limit -= keep;
				d->pending += keep;
				moved += (size_t)n;
				filled = true;
				drained = (size_t)n < room;
			} else if (n > 0) {
				d->pending += (size_t)n;
				moved += (size_t)n;
				filled = true;
				/* Less than asked for: the socket is empty
				 * for now, and another read would only say
				 * EAGAIN. Level-triggered readiness brings
				 * us back for whatever comes next. A TLS
				 * read takes one record: only a full one
				 * suggests that more follow. */
				drained = (size_t)n < (d->from_ssl != NULL ?
				    TLS_RECORD_MAX : room);
				d->small = drained &&
				    (size_t)n <= RELAY_BATCH_READ;
				if (r->mode == RELAY_SPLICE &&
				    d->filter == NULL && (spliced ?
				    !drained : (size_t)n >= RELAY_BULK_READ))
					relay_dir_bulk(r, d);
			} else if (n == 0) {
				d->eof = true;
			} else if (errno == EINVAL && spliced &&
			    r->up.pending == 0 && r->down.pending == 0) {
				/* This socket cannot splice: copy instead,
				 * for the whole relay. */
				log_debug("%s: splice refused, copying",
				    __func__);
				relay_dir_idle(r, d);
				r->mode = RELAY_COPY;
				continue;
			} else if (errno == EAGAIN && relay_dir_ready(d) > 0) {
				/* Either the socket is empty or the pipe is
				 * full: a pipe holds a fixed number of
				 * buffers, and small segments fill them well
				 * before pipe_size bytes. Reading again before
				 * a drain could spin, so wait for one. */
				d->stalled = true;
			} else if (errno != EAGAIN && errno != EINTR) {
				return relay_errno_reason(errno);
			}
		}
		if (d->filter != NULL && (filled || d->eof))
			relay_dir_filter(d);
		if (relay_dir_ready(d) > 0 && filled && d->small &&
		    relay_dir_queue(r, d))
			break;
		if (relay_dir_ready(d) > 0) {
			n = relay_drain(d);
			if (n > 0) {
				relay_dir_sent(d, (size_t)n);
			} else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
				write_blocked = true;
			} else {
				return relay_errno_reason(n < 0 ? errno : EPIPE);
			}
		}
		if (d->pending == 0)
			relay_dir_emptied(r, d);
		if ((!filled || drained) && (relay_dir_ready(d) == 0 ||
		    write_blocked))
			break;
	}
	relay_dir_settle(r, d, before, was_eof);
	return NULL;
}

/* What a move delivered (since before), counted for /metrics once per
 * call (an error ending the relay still counts what went before it). */
static const char *
relay_counted(struct relay *r, struct relay_dir *d, uint64_t before,
    const char *reason)
{
	if (d->bytes != before) {
		metrics_count_bytes(d == &r->up, d->bytes - before);
		if (r->meter != NULL && reason == NULL)
			reason = r->meter(r, d == &r->up, d->bytes - before);
	}
	return reason;
}

static const char *
relay_pump(struct relay *r, struct relay_dir *d, bool may_queue)
{
	uint64_t before = d->bytes;

	return relay_counted(r, d, before, relay_move(r, d, may_queue));
}

static void
relay_watch(struct relay *r, ev_io *w, int fd, int events)
{
	if (ev_is_active(w)) {
		if ((w->events & (EV_READ | EV_WRITE)) == events && w->fd == fd)
			return;
		ev_io_stop(r->loop, w);
	}
	if (events == 0)
		return;
	/* Only a new fd needs ev_io_set: it makes libev add the fd to epoll
	 * again, which fails (EEXIST) for one it already watches. */
	if (w->fd == fd)
		ev_io_modify(w, events);
	else
		ev_io_set(w, fd, events);
	ev_io_start(r->loop, w);
}

/* Does OpenSSL hold bytes of this direction that no socket event will
 * announce: decrypted ones, or whole records read ahead? (Not a partial
 * record: that needs the socket, and coming back for it would spin.) */
static bool
relay_ssl_holds(SSL *ssl, bool starved)
{
	return SSL_pending(ssl) > 0 || (!starved && SSL_has_pending(ssl));
}

/* An outer TLS (the listener's, around an intercepted client's) may hold
 * records the inner one has not asked for yet. */
static bool
relay_dir_tls_holds(const struct relay_dir *d)
{
	return d->from_ssl != NULL && d->from_wants == 0 &&
	    (d->from_held != 0 ||
	    relay_ssl_holds(d->from_ssl, d->from_starved) ||
	    (d->from_outer != NULL && relay_ssl_holds(d->from_outer,
	    d->from_starved)));
}

/* The events a socket is watched for: those its reading direction
 * (reads) and its writing direction (writes) wait on. */
static int
relay_side_events(const struct relay *r, const struct relay_dir *reads,
    const struct relay_dir *writes)
{
	int events = 0;

	if (relay_dir_wants_read(r, reads))
		events |= reads->from_wants != 0 ? reads->from_wants : EV_READ;
	if (relay_dir_wants_write(writes))
		events |= writes->to_wants != 0 ? writes->to_wants : EV_WRITE;
	return events;
}

static void
relay_update_watchers(struct relay *r)
{
	relay_watch(r, r->client_io, r->up.from,
	    relay_side_events(r, &r->up, &r->down));
	relay_watch(r, r->target_io, r->down.from,
	    relay_side_events(r, &r->down, &r->up));
	/* Bytes OpenSSL holds (read ahead, or before the relay started)
	 * make no socket readable: come back for them. */
	if (relay_dir_tls_holds(&r->up) && relay_dir_wants_read(r, &r->up))
		ev_feed_event(r->loop, r->client_io, EV_READ);
	if (relay_dir_tls_holds(&r->down) &&
	    relay_dir_wants_read(r, &r->down))
		ev_feed_event(r->loop, r->target_io, EV_READ);
}

/* Either pump failed (reason set) or both directions may be finished. */
static void
relay_after_pump(struct relay *r, const char *reason)
{
	if (reason == NULL && r->up.done && r->down.done)
		reason = "eof";
	if (reason != NULL) {
		relay_stop(r);
		r->on_end(r, reason);
		return;
	}
	relay_update_watchers(r);
}

/*
 * One callback for both sockets: readable feeds the direction that reads
 * this socket, writable drains the direction that writes to it.
 */
static void
relay_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct relay *r = w->data;
	bool is_client = w == r->client_io;
	struct relay_dir *reads_here = is_client ? &r->up : &r->down;
	struct relay_dir *writes_here = is_client ? &r->down : &r->up;
	/* The event each direction waits for on this socket. */
	int reads_on = reads_here->from_wants != 0 ? reads_here->from_wants :
	    EV_READ;
	int writes_on = writes_here->to_wants != 0 ? writes_here->to_wants :
	    EV_WRITE;
	const char *reason = NULL;

	(void)loop;
	if (revents & reads_on)
		reason = relay_pump(r, reads_here, true);
	if (reason == NULL && (revents & writes_on))
		reason = relay_pump(r, writes_here, false);
	relay_after_pump(r, reason);
}

/*
 * A queued write completed: what relay_move does after its write(2). The
 * socket it read was empty, so nothing is read now. Bytes left over (a
 * short write, or all of them for EAGAIN) mean the other socket is full:
 * the watchers then ask for EV_WRITE, as after a direct write.
 */
static void
relay_write_done(void *owner, int up, ssize_t result)
{
	struct relay *r = owner;
	struct relay_dir *d = up ? &r->up : &r->down;
	uint64_t before = d->bytes;
	const char *reason = NULL;

	d->queued = false;
	if (result > 0)
		relay_dir_sent(d, (size_t)result);
	if (result < 0 && result != -EAGAIN && result != -EINTR)
		reason = relay_errno_reason((int)-result);
	else if (result == 0)
		reason = relay_errno_reason(EPIPE);
	else {
		if (d->pending == 0)
			relay_dir_emptied(r, d);
		relay_dir_settle(r, d, before, d->eof);
	}
	relay_after_pump(r, relay_counted(r, d, before, reason));
}

/* A queued read completed: relay_move takes its result as its first
 * read's, and goes on from there as usual. */
static void
relay_read_done(void *owner, int up, ssize_t result)
{
	struct relay *r = owner;
	struct relay_dir *d = up ? &r->up : &r->down;

	d->queued = false;
	/* At most RELAY_BATCH_READ, or -errno. */
	d->got = (int)result;
	d->got_ready = true;
	relay_after_pump(r, relay_pump(r, d, false));
}

/* Put bytes the client sent ahead of the reply in front of the upstream
 * direction, as if they had just been read (a direction starts out
 * copying, whatever the mode). */
static int
relay_preload(struct relay *r, const uint8_t *prefix, size_t len)
{
	struct relay_dir *d = &r->up;

	if (len == 0)
		return 0;
	if ((d->buf = relay_copy_buf_get()) == NULL)
		return -1;
	memcpy(d->buf, prefix, len);
	d->off = 0;
	d->pending = len;
	return 0;
}

int
relay_start(struct relay *r, struct ev_loop *loop, struct pipe_pool *pipes,
    enum relay_mode mode, struct relay_side client, struct relay_side target,
    const uint8_t *prefix, size_t prefix_len, bool client_eof,
    relay_end_cb *on_end)
{
	r->loop = loop;
	r->pipes = pipes;
	r->mode = mode;
	r->on_end = on_end;
	r->meter = NULL;
	r->peek = NULL;
	r->watch = NULL;
	relay_dir_init(&r->up, client.fd, target.fd);
	relay_dir_init(&r->down, target.fd, client.fd);
	r->up.from_ssl = r->down.to_ssl = client.ssl;
	r->up.from_outer = client.outer;
	r->down.from_outer = target.outer;
	r->down.from_ssl = r->up.to_ssl = target.ssl;
	/* Bytes through OpenSSL pass through userspace anyway. */
	if (client.ssl != NULL || target.ssl != NULL)
		r->mode = RELAY_COPY;
	r->client_io = client.io;
	r->target_io = target.io;
	/* Stopped first: a started watcher's callback must not change. */
	ev_io_stop(loop, r->client_io);
	ev_io_stop(loop, r->target_io);
	ev_set_cb(r->client_io, relay_io_cb);
	ev_set_cb(r->target_io, relay_io_cb);
	r->client_io->data = r->target_io->data = r;
	r->last_activity = r->rate_at = ev_now(loop);
	r->rate_mark = 0;
	r->rate_last = 0.;
	if (prefix_len > RELAY_COPY_BUFSIZE ||
	    relay_preload(r, prefix, prefix_len) == -1) {
		log_warn("%s: cannot hold early data", __func__);
		return -1;
	}
	r->up.eof = client_eof;
	r->running = true;
	/* Only arm watchers: nothing moves before relay_start returns. */
	relay_update_watchers(r);
	return 0;
}

double
relay_rate(const struct relay *r)
{
	ev_tstamp now = ev_now(r->loop), age = now - r->rate_at;
	uint64_t since = r->up.bytes + r->down.bytes - r->rate_mark;

	if (!r->running || age <= 0)
		return 0.;
	/* A window not closed for a while: what moved in it, spread. */
	if (age >= 2.0 || r->rate_last == 0.)
		return (double)since / age;
	return r->rate_last;
}

void
relay_limit_up(struct relay *r, uint64_t limit)
{
	r->up.limited = true;
	r->up.limit = limit;
}

/* A bucket that made a direction wait has refilled. */
static void
relay_rate_wake(struct rate_waiter *w)
{
	struct relay_rate *rate = (struct relay_rate *)(void *)((char *)w -
	    offsetof(struct relay_rate, wait));

	relay_update_watchers(rate->relay);
}

static void
relay_dir_limit(struct relay *r, struct relay_dir *d,
    struct rate_bucket *bucket)
{
	if (bucket == NULL)
		return;
	if ((d->rate = calloc(1, sizeof(*d->rate))) == NULL) {
		log_warnx("relay: out of memory; a session runs unlimited");
		return;
	}
	d->rate->bucket = bucket;
	d->rate->wait.wake = relay_rate_wake;
	d->rate->relay = r;
}

/* Off its bucket's queue (or turn) and freed; the bucket is the
 * caller's. */
static void
relay_dir_unlimit(struct relay_dir *d)
{
	if (d->rate == NULL)
		return;
	rate_waiter_cancel(&d->rate->wait);
	free(d->rate);
	d->rate = NULL;
}

void
relay_limit_rate(struct relay *r, struct rate_bucket *up,
    struct rate_bucket *down)
{
	relay_dir_limit(r, &r->up, up);
	relay_dir_limit(r, &r->down, down);
}

int
relay_peek_up(struct relay *r, relay_peek_fn *fn, const char **reason)
{
	int seen = 0;

	/* Set first: fn may hand over to another peek for what follows. */
	r->peek = fn;
	if (r->up.pending > 0)
		seen = fn(r, r->up.buf + r->up.off, r->up.pending, reason);
	if (seen != 0)
		r->peek = NULL;
	return seen < 0 ? -1 : 0;
}

int
relay_watch_both(struct relay *r, relay_watch_fn *fn, const char **reason)
{
	int seen = 0;

	r->watch = fn;
	if (r->up.pending > 0)
		seen = fn(r, true, r->up.buf + r->up.off, r->up.pending,
		    reason);
	if (seen != 0)
		r->watch = NULL;
	return seen < 0 ? -1 : 0;
}

void
relay_filter_down(struct relay *r, relay_filter_fn *filter)
{
	r->down.filter = filter;
}

void
relay_stop(struct relay *r)
{
	if (!r->running)
		return;
	r->running = false;
	io_batch_cancel(r);
	ev_io_stop(r->loop, r->client_io);
	ev_io_stop(r->loop, r->target_io);
	relay_dir_unlimit(&r->up);
	relay_dir_unlimit(&r->down);
	relay_dir_release(r, &r->up);
	relay_dir_release(r, &r->down);
}
