/*
 * The I/O batch: an io_uring of our own (raw system calls, no liburing),
 * used only for socket sends and receives. Operations queue in a table
 * during a turn of the loop; the loop's pending-callback hook runs every
 * callback and then flushes: one io_uring_enter submits the queued
 * receives and waits for their completions, which are immediate
 * (MSG_DONTWAIT: an operation that cannot be done now fails with EAGAIN
 * instead of waiting), and their done functions run; they queue the
 * sends, which the next round makes the same way. Done functions may also
 * end sessions, which cancels other queued operations: results are
 * collected first and handed out afterwards, skipping cancelled entries.
 */
#include <errno.h>
#include <linux/io_uring.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "socks5d/log.h"
#include "socks5d/io_batch.h"

/* Operations one turn may queue; callers make any more themselves. */
#define IO_BATCH_MAX 128
/* Calls that made no progress before the ring is given up as broken. */
#define IO_BATCH_STUCK 1000

/* From Linux 6.0's uapi header, for building against older ones (the
 * kernel refuses them with EINVAL, and the plain set-up follows). */
#ifndef IORING_SETUP_SUBMIT_ALL
#define IORING_SETUP_SUBMIT_ALL (1U << 7)
#endif
#ifndef IORING_SETUP_COOP_TASKRUN
#define IORING_SETUP_COOP_TASKRUN (1U << 8)
#endif
#ifndef IORING_SETUP_SINGLE_ISSUER
#define IORING_SETUP_SINGLE_ISSUER (1U << 12)
#endif

struct io_batch_entry {
	int op;                    /* IORING_OP_SEND or IORING_OP_RECV */
	int fd;
	void *buf;
	size_t len;
	io_batch_done_fn *done;
	void *owner;               /* NULL once cancelled */
	int tag;
	ssize_t result;
};

struct io_batch_ring {
	int fd;
	void *sq_map, *cq_map;
	size_t sq_map_len, cq_map_len;
	struct io_uring_sqe *sqes;
	size_t sqes_len;
	unsigned *sq_tail, *sq_mask, *sq_array;
	unsigned *cq_head, *cq_tail, *cq_mask;
	struct io_uring_cqe *cqes;
};

/* One loop per process, single-threaded. */
static struct io_batch_ring ring = { .fd = -1 };
static struct ev_loop *hooked;
static struct io_batch_entry entries[IO_BATCH_MAX];
static size_t nqueued;

static int
sys_io_uring_setup(unsigned n, struct io_uring_params *p)
{
	return (int)syscall(__NR_io_uring_setup, n, p);
}

static int
sys_io_uring_register(int fd, unsigned what, void *arg, unsigned n)
{
	return (int)syscall(__NR_io_uring_register, fd, what, arg, n);
}

static int
sys_io_uring_enter(int fd, unsigned submit, unsigned wait, unsigned flags)
{
	return (int)syscall(__NR_io_uring_enter, fd, submit, wait, flags,
	    NULL, (size_t)0);
}

static void
io_batch_unmap(void)
{
	if (ring.sqes != NULL)
		munmap(ring.sqes, ring.sqes_len);
	if (ring.cq_map != NULL && ring.cq_map != ring.sq_map)
		munmap(ring.cq_map, ring.cq_map_len);
	if (ring.sq_map != NULL)
		munmap(ring.sq_map, ring.sq_map_len);
	if (ring.fd != -1)
		close(ring.fd);
	memset(&ring, 0, sizeof(ring));
	ring.fd = -1;
}

static void *
io_batch_map(size_t len, off_t what)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_POPULATE, ring.fd, what);

	return p == MAP_FAILED ? NULL : p;
}

/* io_uring came in Linux 5.1, its send and receive in 5.6: a kernel in
 * between sets a ring up and then fails every operation. */
static bool
io_batch_ops_supported(void)
{
	union {
		struct io_uring_probe probe;
		char room[sizeof(struct io_uring_probe) +
		    256 * sizeof(struct io_uring_probe_op)];
	} u;

	memset(&u, 0, sizeof(u));
	if (sys_io_uring_register(ring.fd, IORING_REGISTER_PROBE, &u.probe,
	    256) == -1)
		return false;
	if (u.probe.last_op < IORING_OP_SEND || u.probe.last_op < IORING_OP_RECV ||
	    !(u.probe.ops[IORING_OP_SEND].flags & IO_URING_OP_SUPPORTED) ||
	    !(u.probe.ops[IORING_OP_RECV].flags & IO_URING_OP_SUPPORTED)) {
		errno = EOPNOTSUPP;
		return false;
	}
	return true;
}

static int
io_batch_ring_open(void)
{
	struct io_uring_params p;
	unsigned i;

	/* One issuer, and completions run when we enter: the cheapest
	 * set-up, from Linux 6.0; older kernels take the plain one. */
	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN |
	    IORING_SETUP_SINGLE_ISSUER;
	if ((ring.fd = sys_io_uring_setup(IO_BATCH_MAX, &p)) == -1 &&
	    errno == EINVAL) {
		memset(&p, 0, sizeof(p));
		ring.fd = sys_io_uring_setup(IO_BATCH_MAX, &p);
	}
	if (ring.fd == -1 || !io_batch_ops_supported())
		return -1;
	ring.sq_map_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
	ring.cq_map_len = p.cq_off.cqes +
	    p.cq_entries * sizeof(struct io_uring_cqe);
	if (p.features & IORING_FEAT_SINGLE_MMAP) {
		if (ring.cq_map_len > ring.sq_map_len)
			ring.sq_map_len = ring.cq_map_len;
		ring.cq_map_len = ring.sq_map_len;
	}
	if ((ring.sq_map = io_batch_map(ring.sq_map_len,
	    IORING_OFF_SQ_RING)) == NULL)
		return -1;
	ring.cq_map = (p.features & IORING_FEAT_SINGLE_MMAP) ? ring.sq_map :
	    io_batch_map(ring.cq_map_len, IORING_OFF_CQ_RING);
	if (ring.cq_map == NULL)
		return -1;
	ring.sqes_len = p.sq_entries * sizeof(struct io_uring_sqe);
	if ((ring.sqes = io_batch_map(ring.sqes_len,
	    IORING_OFF_SQES)) == NULL)
		return -1;
	ring.sq_tail = (unsigned *)((char *)ring.sq_map + p.sq_off.tail);
	ring.sq_mask = (unsigned *)((char *)ring.sq_map +
	    p.sq_off.ring_mask);
	ring.sq_array = (unsigned *)((char *)ring.sq_map + p.sq_off.array);
	ring.cq_head = (unsigned *)((char *)ring.cq_map + p.cq_off.head);
	ring.cq_tail = (unsigned *)((char *)ring.cq_map + p.cq_off.tail);
	ring.cq_mask = (unsigned *)((char *)ring.cq_map +
	    p.cq_off.ring_mask);
	ring.cqes = (struct io_uring_cqe *)((char *)ring.cq_map +
	    p.cq_off.cqes);
	/* Slot i of the ring always names SQE i. */
	for (i = 0; i < p.sq_entries; i++)
		ring.sq_array[i] = i;
	return 0;
}

static void
io_batch_swap(struct io_batch_entry *a, struct io_batch_entry *b)
{
	struct io_batch_entry t = *a;

	*a = *b;
	*b = t;
}

/* Take every completion there is; returns how many. */
static unsigned
io_batch_reap(void)
{
	unsigned head = *ring.cq_head, n = 0;
	unsigned tail = __atomic_load_n(ring.cq_tail, __ATOMIC_ACQUIRE);

	for (; head != tail; head++, n++) {
		const struct io_uring_cqe *cqe =
		    &ring.cqes[head & *ring.cq_mask];

		if (cqe->user_data < IO_BATCH_MAX)
			entries[cqe->user_data].result = cqe->res;
	}
	__atomic_store_n(ring.cq_head, head, __ATOMIC_RELEASE);
	return n;
}

/* The ring is gone (io_batch_submit gave it up): what was queued beside
 * the failed batch is made one call at a time. */
static void
io_batch_make_each(size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		struct io_batch_entry *e = &entries[i];
		ssize_t got = e->op == IORING_OP_RECV ?
		    recv(e->fd, e->buf, e->len, MSG_DONTWAIT) :
		    send(e->fd, e->buf, e->len, MSG_DONTWAIT | MSG_NOSIGNAL);

		e->result = got >= 0 ? got : -errno;
	}
}

/* Make entries[0..n) and fill in their results. */
static void
io_batch_submit(size_t n)
{
	unsigned tail = *ring.sq_tail, submitted = 0, done = 0, stuck = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		struct io_uring_sqe *sqe =
		    &ring.sqes[(tail + i) & *ring.sq_mask];

		memset(sqe, 0, sizeof(*sqe));
		sqe->opcode = (uint8_t)entries[i].op;
		sqe->fd = entries[i].fd;
		sqe->addr = (uint64_t)(uintptr_t)entries[i].buf;
		sqe->len = entries[i].len > UINT32_MAX ? UINT32_MAX :
		    (uint32_t)entries[i].len;
		sqe->msg_flags = MSG_DONTWAIT |
		    (entries[i].op == IORING_OP_SEND ? MSG_NOSIGNAL : 0);
		sqe->user_data = i;
		entries[i].result = -ECANCELED;
	}
	__atomic_store_n(ring.sq_tail, tail + (unsigned)n, __ATOMIC_RELEASE);
	/* The operations complete during the call (none may wait), so this
	 * returns with every result; it is still a loop, for a signal or
	 * a kernel that defers a completion. */
	while (done < n) {
		int rc = sys_io_uring_enter(ring.fd, (unsigned)n - submitted,
		    (unsigned)n - done, IORING_ENTER_GETEVENTS);
		unsigned got;

		if (rc == -1 && errno != EINTR && errno != EAGAIN &&
		    errno != EBUSY)
			break;
		if (rc > 0)
			submitted += (unsigned)rc;
		done += (got = io_batch_reap());
		stuck = rc > 0 || got > 0 ? 0 : stuck + 1;
		if (stuck == IO_BATCH_STUCK)
			break;
	}
	if (done < n) {
		/* Cannot happen with a ring of our own. Should it, the ring
		 * goes, with any operation it still holds (one left in it
		 * could later reach a buffer or descriptor reused by then):
		 * the operations without a result fail (-ECANCELED), their
		 * sessions end, and from now on every call is made at once. */
		log_error("io_uring_enter: %s; socket calls one at a time from "
		    "now on", stuck < IO_BATCH_STUCK ? strerror(errno) :
		    "no progress");
		io_batch_unmap();
	}
}

/* Receives first: the sends their done functions queue then leave in
 * the next round, and those of a turn in as few calls as can be. */
static void
io_batch_flush(void)
{
	while (nqueued > 0) {
		size_t n = 0, i;

		/* A cancelled operation is never made: its session is gone,
		 * and its descriptor may already be another's. */
		for (i = 0; i < nqueued; i++)
			if (entries[i].owner != NULL &&
			    entries[i].op == IORING_OP_RECV)
				io_batch_swap(&entries[n++], &entries[i]);
		for (i = n; i < nqueued; i++)
			if (entries[i].owner != NULL)
				io_batch_swap(&entries[n++], &entries[i]);
		if ((nqueued = n) == 0)
			break;
		if (entries[0].op == IORING_OP_RECV)
			while (n > 0 && entries[n - 1].op != IORING_OP_RECV)
				n--;
		if (ring.fd != -1)
			io_batch_submit(n);
		else
			io_batch_make_each(n);
		/* Done functions may queue more (after n) and cancel. */
		for (i = 0; i < n; i++) {
			struct io_batch_entry *e = &entries[i];

			if (e->owner != NULL)
				e->done(e->owner, e->tag, e->result);
		}
		memmove(entries, entries + n, (nqueued - n) * sizeof(*entries));
		nqueued -= n;
	}
}

/* Every callback of the turn first, then their writes; a done function
 * may feed events, which run before the loop waits. */
static void
io_batch_invoke(struct ev_loop *loop)
{
	do {
		ev_invoke_pending(loop);
		io_batch_flush();
	} while (ev_pending_count(loop) > 0);
}

bool
io_batch_start(struct ev_loop *loop)
{
	if (ring.fd == -1 && io_batch_ring_open() == -1) {
		log_info("socket calls one at a time: no io_uring (%s)",
		    strerror(errno));
		io_batch_unmap();
		return false;
	}
	ev_set_invoke_pending_cb(loop, io_batch_invoke);
	hooked = loop;
	return true;
}

void
io_batch_stop(void)
{
	if (hooked != NULL)
		ev_set_invoke_pending_cb(hooked, ev_invoke_pending);
	hooked = NULL;
	nqueued = 0;
	io_batch_unmap();
}

bool
io_batch_enabled(void)
{
	return ring.fd != -1;
}

static int
io_batch_add(int op, int fd, void *buf, size_t len, io_batch_done_fn *done,
    void *owner, int tag)
{
	struct io_batch_entry *e;

	if (ring.fd == -1 || nqueued == IO_BATCH_MAX)
		return -1;
	e = &entries[nqueued++];
	e->op = op;
	e->fd = fd;
	e->buf = buf;
	e->len = len;
	e->done = done;
	e->owner = owner;
	e->tag = tag;
	e->result = 0;
	return 0;
}

int
io_batch_send(int fd, const void *buf, size_t len, io_batch_done_fn *done,
    void *owner, int tag)
{
	/* The kernel only reads it. */
	return io_batch_add(IORING_OP_SEND, fd, (void *)(uintptr_t)buf, len,
	    done, owner, tag);
}

int
io_batch_recv(int fd, void *buf, size_t len, io_batch_done_fn *done,
    void *owner, int tag)
{
	return io_batch_add(IORING_OP_RECV, fd, buf, len, done, owner, tag);
}

void
io_batch_cancel(const void *owner)
{
	size_t i;

	for (i = 0; i < nqueued; i++)
		if (entries[i].owner == owner)
			entries[i].owner = NULL;
}
