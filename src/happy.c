/*
 * Happy Eyeballs (RFC 8305) connection racing; see happy.h. Each attempt
 * is a non-blocking connect() watched for writability. Whatever may end
 * the race (done) is the last thing a function does, and every caller up
 * the stack returns at once when told the race is over, because done may
 * free it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "socks5d/happy.h"

/* Attempts in flight at once. RFC 8305 sets no bound, but a name with
 * sixteen silent addresses would otherwise hold sixteen sockets for the
 * whole connect timeout, against the two a session is budgeted; two
 * cover a family each. A next attempt waits for one to end. */
#define HAPPY_MAX_RUNNING 2

struct happy_attempt {
	struct happy *race;
	ev_io *io;             /* the caller's watcher or own */
	ev_io own;
	int fd;                /* -1: not running */
	ev_tstamp deadline;
	const union sockaddr_any *addr;
};

struct happy {
	struct ev_loop *loop;
	const struct happy_ops *ops;
	void *arg;
	ev_io *caller_io;
	bool caller_io_busy;
	ev_tstamp delay;
	ev_tstamp timeout;
	ev_tstamp next_start;  /* when the next address is due */
	size_t n;
	size_t next;           /* the next address to try */
	size_t running;
	int last_errno;
	union sockaddr_any *addrs;
	struct happy_attempt at[];  /* one per address, in order */
};

void
happy_order(union sockaddr_any *addrs, size_t n)
{
	sa_family_t first = n > 0 ? addrs[0].sa.sa_family : AF_UNSPEC;
	size_t i, j;

	/* Each position wants the family its predecessor is not: bring the
	 * next address of that family forward, keeping both families' own
	 * orders. Once one family runs out, the rest stay as they are. */
	for (i = 1; i < n; i++) {
		bool want_first = addrs[i - 1].sa.sa_family != first;
		union sockaddr_any moved;

		for (j = i; j < n; j++)
			if ((addrs[j].sa.sa_family == first) == want_first)
				break;
		if (j == n)
			return;
		moved = addrs[j];
		memmove(&addrs[i + 1], &addrs[i], (j - i) * sizeof(*addrs));
		addrs[i] = moved;
	}
}

/* Stop and close one attempt; its watcher is left set on no descriptor,
 * since a new socket may get the number (see struct relay_side). */
static void
happy_close(struct happy *h, struct happy_attempt *a)
{
	ev_io_stop(h->loop, a->io);
	close(a->fd);
	a->fd = -1;
	ev_io_set(a->io, -1, 0);
	if (a->io == h->caller_io)
		h->caller_io_busy = false;
	h->running--;
}

/* Tell the owner when the next thing is due: the next address, or the
 * earliest timeout of a running attempt. */
static void
happy_rearm(struct happy *h)
{
	ev_tstamp when = 0, now = ev_now(h->loop);
	bool any = false;
	size_t i;

	if (h->next < h->n && h->running < HAPPY_MAX_RUNNING) {
		when = h->next_start;
		any = true;
	}
	for (i = 0; i < h->next; i++) {
		if (h->at[i].fd != -1 && (!any || h->at[i].deadline < when)) {
			when = h->at[i].deadline;
			any = true;
		}
	}
	h->ops->arm(h->arg, when > now ? when - now : 0.);
}

static void
happy_won(struct happy *h, struct happy_attempt *winner)
{
	union sockaddr_any addr = *winner->addr;
	const struct happy_ops *ops = h->ops;
	void *arg = h->arg;
	int fd = winner->fd;
	size_t i;

	ev_io_stop(h->loop, winner->io);
	if (winner->io != h->caller_io)
		ev_io_set(&winner->own, -1, 0);
	winner->fd = -1;
	h->running--;
	for (i = 0; i < h->next; i++)
		if (h->at[i].fd != -1)
			happy_close(h, &h->at[i]);
	ops->done(arg, fd, &addr, 0);
}

static void
happy_lost(struct happy *h)
{
	h->ops->done(h->arg, -1, NULL, h->last_errno);
}

static void happy_io_cb(struct ev_loop *loop, ev_io *w, int revents);

/*
 * Start the next address that gets as far as an attempt in flight;
 * addresses refused by the owner, or failing at once, are passed over.
 * Returns true when the race is over (h may be gone).
 */
static bool
happy_launch(struct happy *h)
{
	while (h->next < h->n) {
		struct happy_attempt *a = &h->at[h->next];
		const union sockaddr_any *dst = &h->addrs[h->next++];

		a->fd = h->ops->open_socket(h->arg, &dst->sa);
		if (a->fd == -1) {
			h->last_errno = errno;
			continue;
		}
		a->race = h;
		a->addr = dst;
		a->io = h->caller_io_busy ? &a->own : h->caller_io;
		if (a->io == h->caller_io)
			h->caller_io_busy = true;
		h->running++;
		if (connect(a->fd, &dst->sa, addr_len(&dst->sa)) == 0) {
			happy_won(h, a);
			return true;
		}
		if (errno != EINPROGRESS) {
			h->last_errno = errno;
			close(a->fd);
			a->fd = -1;
			if (a->io == h->caller_io)
				h->caller_io_busy = false;
			h->running--;
			continue;
		}
		ev_io_init(a->io, happy_io_cb, a->fd, EV_WRITE);
		a->io->data = a;
		ev_io_start(h->loop, a->io);
		a->deadline = ev_now(h->loop) + h->timeout;
		h->next_start = ev_now(h->loop) + h->delay;
		happy_rearm(h);
		return false;
	}
	if (h->running == 0) {
		happy_lost(h);
		return true;
	}
	happy_rearm(h);
	return false;
}

static void
happy_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct happy_attempt *a = w->data;
	struct happy *h = a->race;
	socklen_t len = sizeof(int);
	int err = 0;

	(void)loop;
	(void)revents;
	if (getsockopt(a->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (err == 0) {
		happy_won(h, a);
		return;
	}
	h->last_errno = err;
	happy_close(h, a);
	/* A failed attempt makes room for the next address at once. */
	(void)happy_launch(h);
}

bool
happy_start(struct happy **hp, struct ev_loop *loop,
    const struct happy_ops *ops, void *arg, ev_io *io,
    const union sockaddr_any *addrs, size_t n, ev_tstamp delay,
    ev_tstamp timeout)
{
	struct happy *h;
	size_t i;

	h = calloc(1, sizeof(*h) + n * sizeof(h->at[0]) + n * sizeof(*addrs));
	if (h == NULL)
		return false;
	h->loop = loop;
	h->ops = ops;
	h->arg = arg;
	h->caller_io = io;
	h->delay = delay;
	h->timeout = timeout;
	h->n = n;
	h->addrs = (union sockaddr_any *)(void *)&h->at[n];
	memcpy(h->addrs, addrs, n * sizeof(*addrs));
	for (i = 0; i < n; i++)
		h->at[i].fd = -1;
	h->last_errno = EHOSTUNREACH;   /* no address at all */
	*hp = h;
	(void)happy_launch(h);
	return true;
}

void
happy_timer(struct happy *h)
{
	ev_tstamp now = ev_now(h->loop);
	size_t i;

	for (i = 0; i < h->next; i++) {
		if (h->at[i].fd != -1 && h->at[i].deadline <= now) {
			h->last_errno = ETIMEDOUT;
			happy_close(h, &h->at[i]);
		}
	}
	if (h->next < h->n && (h->running == 0 ||
	    (h->next_start <= now && h->running < HAPPY_MAX_RUNNING))) {
		(void)happy_launch(h);
		return;
	}
	if (h->running == 0) {
		happy_lost(h);
		return;
	}
	happy_rearm(h);
}

void
happy_free(struct happy *h)
{
	size_t i;

	if (h == NULL)
		return;
	for (i = 0; i < h->next; i++)
		if (h->at[i].fd != -1)
			happy_close(h, &h->at[i]);
	free(h);
}
