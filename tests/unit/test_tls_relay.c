/*
 * Unit tests for the relay's TLS client side and for tls_io. The relay
 * runs on a libev loop between two socketpairs: on the client one it holds
 * the server SSL of a completed handshake (made by tls_ctx_new_ssl), and
 * the test holds an OpenSSL client on the other end; the target one is
 * plain. The test drives the loop without blocking (EVRUN_NOWAIT) while it
 * plays both peers, and waits in poll(2) on all four sockets when nothing
 * moved, so nothing here depends on timing but the generous deadlines.
 *
 * What is proved: bytes both ways, byte-exact and counted as plaintext
 * (TLS 1.3 and 1.2, and with key updates); backpressure both ways with
 * bounded buffers, whole records, and no busy loop; half-close in both
 * orders (close_notify <-> FIN), and a close_notify that meets a full
 * socket; a TLS error and a socket error end the relay with their words;
 * plaintext OpenSSL holds before relay_start goes on without a socket
 * event; the prefix BIO of tls_io_set_fd_with_prefix; tls_io's read(2)/
 * write(2) conventions; a TLS read that has to write first (a key update
 * answered into a full socket); and key update requests that meet a
 * write held up by a slow client.
 *
 * TLS_RELAY_TESTS and TLS_RELAY_SKIP (globs) pick tests to run or leave
 * out; TLS_RELAY_DEADLINE_MS shortens the deadlines, to see a hang fail
 * sooner.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "socks5d/pipe_pool.h"
#include "socks5d/relay.h"
#include "socks5d/tls_ctx.h"
#include "socks5d/tls_io.h"

#include "tls_certs.h"

/* Generous: another test run may share this machine, and valgrind makes
 * every byte through OpenSSL dozens of times slower. TLS_RELAY_DEADLINE_MS
 * in the environment overrides it. */
static uint64_t tr_deadline_ms = 240 * 1000;
/* How long a quiet relay is watched for callbacks it should not get. */
#define TR_QUIET_SECONDS        0.3
/* Callbacks allowed in that time: none is expected; a busy loop makes
 * thousands. */
#define TR_QUIET_MAX_CALLBACKS  2

static char test_dir[] = "/tmp/socks5d-test-tls-relay-XXXXXX";
static struct tls_ctx *server_ctx;
static SSL_CTX *client_ctx;

/* -- small helpers ------------------------------------------------------ */

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t
rng_next(uint64_t *s)
{
	/* xorshift64* */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

static void
set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	assert_true(fl != -1);
	assert_int_equal(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
}

/* Bytes waiting in a socket's receive queue. */
static size_t
inq(int fd)
{
	int n = 0;

	assert_int_equal(ioctl(fd, FIONREAD, &n), 0);
	assert_true(n >= 0);
	return (size_t)n;
}

static const char *
ssl_why(void)
{
	static char buf[256];
	unsigned long e = ERR_peek_error();

	if (e == 0)
		return "no OpenSSL error queued";
	ERR_error_string_n(e, buf, sizeof(buf));
	return buf;
}

/* Write zero bytes raw into fd until its send buffer is full; how many. */
static size_t
fill_raw(int fd)
{
	static const uint8_t junk[4096];
	size_t total = 0;

	for (;;) {
		ssize_t n = write(fd, junk, sizeof(junk));

		if (n > 0) {
			total += (size_t)n;
			continue;
		}
		assert_int_equal(n, -1);
		assert_int_equal(errno, EAGAIN);
		assert_true(total > 0);
		return total;
	}
}

/* Read exactly len raw bytes, all zero, that fill_raw put in the other
 * end: they are all there already. */
static void
drain_raw(int fd, size_t len)
{
	static uint8_t buf[4096];

	while (len > 0) {
		ssize_t n = read(fd, buf, len < sizeof(buf) ? len : sizeof(buf));

		assert_true(n > 0);
		for (ssize_t i = 0; i < n; i++)
			assert_int_equal(buf[i], 0);
		len -= (size_t)n;
	}
}

/* -- handshakes --------------------------------------------------------- */

static SSL *
client_new(int fd, int max_version)
{
	SSL *c = SSL_new(client_ctx);

	assert_non_null(c);
	assert_int_equal(SSL_set_fd(c, fd), 1);
	SSL_set_connect_state(c);
	if (max_version != 0)
		assert_int_equal(SSL_set_max_proto_version(c, max_version), 1);
	return c;
}

/* One step; true once done (fails the test on a handshake error). */
static bool
hs_step(SSL *ssl, const char *who)
{
	int rc, e;

	ERR_clear_error();
	rc = SSL_do_handshake(ssl);
	if (rc == 1)
		return true;
	e = SSL_get_error(ssl, rc);
	if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
		fail_msg("%s handshake: error %d: %s", who, e, ssl_why());
	return false;
}

static void
handshake(SSL *server, SSL *client)
{
	bool sdone = false, cdone = false;

	for (int i = 0; i < 200 && (!sdone || !cdone); i++) {
		if (!cdone)
			cdone = hs_step(client, "client");
		if (!sdone)
			sdone = hs_step(server, "server");
	}
	assert_true(sdone);
	assert_true(cdone);
}

/* -- the relay fixture -------------------------------------------------- */

struct tr {
	struct ev_loop *loop;
	struct pipe_pool pool;
	int cfd[2];            /* [0] the relay's client socket, [1] ours */
	int tfd[2];            /* [0] the relay's target socket, [1] ours */
	SSL *server;           /* on cfd[0]: the relay's */
	SSL *client;           /* on cfd[1]: the test's */
	ev_io cio, tio;
	struct relay r;
	const char *ended;     /* on_end's reason */
	char ended_why[512];   /* and OpenSSL's error then, if any */
	int nended;
	unsigned long callbacks;       /* relay_io_cb calls */
	void (*relay_cb)(struct ev_loop *, ev_io *, int);
};

#define TR_OF(rp) ((struct tr *)(void *)((char *)(rp) - \
    offsetof(struct tr, r)))

static void
tr_unused_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	fail_msg("a watcher fired before the relay took it over");
}

static void
tr_on_end(struct relay *r, const char *reason)
{
	struct tr *t = TR_OF(r);

	t->ended = reason;
	t->nended++;
	/* tls_io leaves OpenSSL's error queued. */
	{
		const char *file = "?", *func = "?";
		int line = 0;

		(void)ERR_peek_error_all(&file, &line, &func, NULL, NULL);
		snprintf(t->ended_why, sizeof(t->ended_why), "%s (%s, %s:%d)",
		    ssl_why(), func, file, line);
	}
}

/* The relay's own callback, counted. */
static void
tr_counting_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct tr *t = TR_OF(w->data);

	t->callbacks++;
	t->relay_cb(loop, w, revents);
}

/* The client reads what the server sent after the handshake (TLS 1.3
 * session tickets), so its socket is empty and what comes next is the
 * relay's. */
static void
client_settle(struct tr *t)
{
	uint8_t b;
	int n;

	ERR_clear_error();
	n = SSL_read(t->client, &b, 1);
	assert_true(n <= 0);
	assert_int_equal(SSL_get_error(t->client, n), SSL_ERROR_WANT_READ);
	assert_int_equal(inq(t->cfd[1]), 0);
}

/* Sockets, and a completed handshake; max_version 0: TLS 1.3. */
static void
tr_open(struct tr *t, int max_version)
{
	memset(t, 0, sizeof(*t));
	t->loop = ev_loop_new(EVFLAG_AUTO);
	assert_non_null(t->loop);
	assert_int_equal(pipe_pool_init(&t->pool, 4, 0, 0), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, t->cfd), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, t->tfd), 0);
	for (int i = 0; i < 2; i++) {
		set_nonblock(t->cfd[i]);
		set_nonblock(t->tfd[i]);
	}
	t->server = tls_ctx_new_ssl(server_ctx, t->cfd[0]);
	assert_non_null(t->server);
	t->client = client_new(t->cfd[1], max_version);
	handshake(t->server, t->client);
	assert_int_equal(SSL_version(t->server), max_version != 0 ?
	    max_version : TLS1_3_VERSION);
	client_settle(t);
}

/* relay_start in splice mode, which a TLS side must turn into copying. */
static void
tr_start(struct tr *t, const uint8_t *prefix, size_t len)
{
	ev_io_init(&t->cio, tr_unused_cb, t->cfd[0], EV_READ);
	ev_io_init(&t->tio, tr_unused_cb, t->tfd[0], EV_READ);
	assert_int_equal(relay_start(&t->r, t->loop, &t->pool, RELAY_SPLICE,
	    (struct relay_side){ t->cfd[0], &t->cio, t->server, NULL },
	    (struct relay_side){ t->tfd[0], &t->tio, NULL, NULL },
	    prefix, len, false, tr_on_end), 0);
	assert_int_equal(t->r.mode, RELAY_COPY);
	assert_ptr_equal(t->r.up.from_ssl, t->server);
	assert_ptr_equal(t->r.down.to_ssl, t->server);
	assert_null(t->r.up.to_ssl);
	assert_null(t->r.down.from_ssl);
	/* Count the relay's callbacks: it uses one for both watchers. */
	t->relay_cb = t->cio.cb;
	assert_true(t->tio.cb == t->relay_cb);
	ev_set_cb(&t->cio, tr_counting_cb);
	ev_set_cb(&t->tio, tr_counting_cb);
}

static void
tr_close(struct tr *t)
{
	relay_stop(&t->r);
	/* A TLS relay copies: it never took a pipe. */
	assert_int_equal(t->pool.in_use, 0);
	SSL_free(t->server);
	SSL_free(t->client);
	for (int i = 0; i < 2; i++) {
		if (t->cfd[i] != -1)
			close(t->cfd[i]);
		if (t->tfd[i] != -1)
			close(t->tfd[i]);
	}
	pipe_pool_clear(&t->pool);
	ev_loop_destroy(t->loop);
	ERR_clear_error();
}

static short
tr_pollev(int ev)
{
	return (short)(((ev & EV_READ) ? POLLIN : 0) |
	    ((ev & EV_WRITE) ? POLLOUT : 0));
}

/* Wait up to ms for our ends (cev, tev) or for what the relay's watchers
 * wait on. */
static void
tr_wait(struct tr *t, int cev, int tev, int ms)
{
	struct pollfd p[4];
	int rev = ev_is_active(&t->cio) ? t->cio.events & (EV_READ | EV_WRITE)
	    : 0;
	int tv = ev_is_active(&t->tio) ? t->tio.events & (EV_READ | EV_WRITE)
	    : 0;

	p[0] = (struct pollfd){ cev != 0 ? t->cfd[1] : -1, tr_pollev(cev), 0 };
	p[1] = (struct pollfd){ tev != 0 ? t->tfd[1] : -1, tr_pollev(tev), 0 };
	p[2] = (struct pollfd){ rev != 0 ? t->cfd[0] : -1, tr_pollev(rev), 0 };
	p[3] = (struct pollfd){ tv != 0 ? t->tfd[0] : -1, tr_pollev(tv), 0 };
	(void)poll(p, 4, ms);
}

/* One turn of the loop; when neither the test (busy) nor the relay moved,
 * wait a little for something to happen. */
static void
tr_step(struct tr *t, bool busy, int cev, int tev)
{
	unsigned long before = t->callbacks;

	ev_run(t->loop, EVRUN_NOWAIT);
	if (!busy && t->callbacks == before)
		tr_wait(t, cev, tev, 20);
}

static void
tr_deadline(uint64_t deadline, const char *what)
{
	if (now_ms() > deadline)
		fail_msg("timed out waiting for %s", what);
}

static void
tr_quiet_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
}

/* Let the loop block for seconds, as the daemon's would; the relay's
 * callbacks in that time. */
static unsigned long
tr_quiet(struct tr *t, double seconds)
{
	unsigned long before = t->callbacks;
	ev_timer timer;

	ev_timer_init(&timer, tr_quiet_timer_cb, seconds, 0.);
	ev_timer_start(t->loop, &timer);
	while (ev_is_active(&timer) && t->callbacks - before < 100000)
		ev_run(t->loop, EVRUN_ONCE);
	ev_timer_stop(t->loop, &timer);
	return t->callbacks - before;
}

/* Whether a relay watcher waits for ev. */
static bool
tr_watches(const ev_io *w, int ev)
{
	return ev_is_active(w) && (w->events & ev) != 0;
}

/* -- byte streams ------------------------------------------------------- */

struct flow {
	uint8_t *data;
	size_t len;
	size_t sent;
	size_t chunk;          /* a client SSL_write to retry as it was */
	size_t recvd;
	bool eof;              /* the receiver saw the end */
	uint64_t rng;
};

static void
flow_init(struct flow *f, size_t len, uint64_t seed)
{
	memset(f, 0, sizeof(*f));
	f->len = len;
	f->data = malloc(len > 0 ? len : 1);
	assert_non_null(f->data);
	f->rng = seed * 0x9E3779B97F4A7C15ULL + 1;
	for (size_t i = 0; i < len; i += 8) {
		uint64_t v = rng_next(&f->rng);

		memcpy(f->data + i, &v, len - i < 8 ? len - i : 8);
	}
}

static void
flow_free(struct flow *f)
{
	free(f->data);
	f->data = NULL;
}

/* 1..max bytes, no more than are left to send. */
static size_t
flow_chunk(struct flow *f, size_t max)
{
	size_t left = f->len - f->sent;
	size_t n = 1 + (size_t)(rng_next(&f->rng) % max);

	return n < left ? n : left;
}

static void
flow_check(struct flow *f, const uint8_t *buf, size_t n, const char *who)
{
	if (n > f->len - f->recvd)
		fail_msg("%s: got %zu bytes past the %zu sent", who,
		    n - (f->len - f->recvd), f->len);
	if (memcmp(buf, f->data + f->recvd, n) != 0) {
		size_t i = 0;

		while (buf[i] == f->data[f->recvd + i])
			i++;
		fail_msg("%s: byte %zu differs", who, f->recvd + i);
	}
	f->recvd += n;
}

/* One SSL_read on the test's client: bytes, 0 for close_notify, -1 when
 * nothing is there yet; anything else fails the test. */
static int
client_read_some(struct tr *t, uint8_t *buf, size_t len)
{
	int n, e;

	ERR_clear_error();
	errno = 0;
	n = SSL_read(t->client, buf, (int)len);
	if (n > 0)
		return n;
	e = SSL_get_error(t->client, n);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return -1;
	if (e == SSL_ERROR_ZERO_RETURN)
		return 0;
	fail_msg("client SSL_read: SSL error %d (%s), errno %d", e, ssl_why(),
	    errno);
	return -1;
}

static bool
client_write(struct tr *t, struct flow *f, size_t max)
{
	int n, e;

	if (f->sent == f->len)
		return false;
	if (f->chunk == 0)
		f->chunk = flow_chunk(f, max);
	ERR_clear_error();
	n = SSL_write(t->client, f->data + f->sent, (int)f->chunk);
	if (n > 0) {
		assert_int_equal(n, f->chunk);
		f->sent += (size_t)n;
		f->chunk = 0;
		return true;
	}
	e = SSL_get_error(t->client, n);
	if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ)
		fail_msg("client SSL_write: SSL error %d (%s)", e, ssl_why());
	return false;
}

/* All that is left of f in one SSL_write (records of 16 KiB at most);
 * the socket must have room. */
static void
client_write_all(struct tr *t, struct flow *f)
{
	assert_true(f->chunk == 0 && f->sent < f->len);
	f->chunk = f->len - f->sent;
	assert_true(client_write(t, f, 1));
}

static bool
client_read(struct tr *t, struct flow *f)
{
	static uint8_t buf[65536];
	bool moved = false;

	for (int i = 0; i < 16 && !f->eof; i++) {
		size_t want = 1 + (size_t)(rng_next(&f->rng) % sizeof(buf));
		int n = client_read_some(t, buf, want);

		if (n < 0)
			break;
		moved = true;
		if (n == 0)
			f->eof = true;
		else
			flow_check(f, buf, (size_t)n, "client");
	}
	return moved;
}

static bool
target_write(struct tr *t, struct flow *f, size_t max)
{
	ssize_t n;

	if (f->sent == f->len)
		return false;
	n = write(t->tfd[1], f->data + f->sent, flow_chunk(f, max));
	if (n > 0) {
		f->sent += (size_t)n;
		return true;
	}
	assert_int_equal(n, -1);
	assert_int_equal(errno, EAGAIN);
	return false;
}

static bool
target_read(struct tr *t, struct flow *f)
{
	static uint8_t buf[65536];
	bool moved = false;

	for (int i = 0; i < 16 && !f->eof; i++) {
		size_t want = 1 + (size_t)(rng_next(&f->rng) % sizeof(buf));
		ssize_t n = read(t->tfd[1], buf, want);

		if (n == -1 && errno == EAGAIN)
			break;
		if (n < 0)
			fail_msg("target read: %s", strerror(errno));
		moved = true;
		if (n == 0)
			f->eof = true;
		else
			flow_check(f, buf, (size_t)n, "target");
	}
	return moved;
}

static void
target_write_all(struct tr *t, struct flow *f)
{
	while (f->sent < f->len) {
		ssize_t n = write(t->tfd[1], f->data + f->sent,
		    f->len - f->sent);

		assert_true(n > 0);
		f->sent += (size_t)n;
	}
}

/* Run until the client holds all of f (and, when want_eof, its end). */
static void
tr_client_gets(struct tr *t, struct flow *f, bool want_eof)
{
	uint64_t deadline = now_ms() + tr_deadline_ms;

	while (f->recvd < f->len || (want_eof && !f->eof)) {
		tr_deadline(deadline, "the client's bytes");
		if (f->eof && f->recvd < f->len)
			fail_msg("client: the end after %zu of %zu bytes",
			    f->recvd, f->len);
		tr_step(t, client_read(t, f), EV_READ, 0);
	}
}

static void
tr_target_gets(struct tr *t, struct flow *f, bool want_eof)
{
	uint64_t deadline = now_ms() + tr_deadline_ms;

	while (f->recvd < f->len || (want_eof && !f->eof)) {
		tr_deadline(deadline, "the target's bytes");
		if (f->eof && f->recvd < f->len)
			fail_msg("target: the end after %zu of %zu bytes",
			    f->recvd, f->len);
		tr_step(t, target_read(t, f), 0, EV_READ);
	}
}

static void
tr_until_ended(struct tr *t)
{
	uint64_t deadline = now_ms() + tr_deadline_ms;

	while (t->nended == 0) {
		tr_deadline(deadline, "the relay's end");
		tr_step(t, false, 0, 0);
	}
}

/* The client's next read: the close_notify, not a bare FIN. */
static void
client_gets_close_notify(struct tr *t)
{
	uint64_t deadline = now_ms() + tr_deadline_ms;
	uint8_t b;
	int n;

	while ((n = client_read_some(t, &b, 1)) < 0) {
		tr_deadline(deadline, "the close_notify");
		tr_step(t, false, EV_READ, 0);
	}
	assert_int_equal(n, 0);
	assert_true(SSL_get_shutdown(t->client) & SSL_RECEIVED_SHUTDOWN);
}

/* -- 1. bytes both ways ------------------------------------------------- */

static void
tr_bulk(int max_version, size_t size, uint64_t seed, size_t key_update_every)
{
	struct flow up, down;
	uint64_t deadline = now_ms() + tr_deadline_ms;
	size_t next_update = key_update_every, most_held = 0;
	bool client_paused = false, target_paused = false;
	struct tr t;

	tr_open(&t, max_version);
	tr_start(&t, NULL, 0);
	flow_init(&up, size, seed);
	flow_init(&down, size, seed + 1);
	while (up.recvd < size || down.recvd < size) {
		bool busy = false;

		if (now_ms() > deadline)
			fail_msg("timed out: up %zu sent %zu received, down %zu "
			    "sent %zu received", up.sent, up.recvd, down.sent,
			    down.recvd);
		/* Now and then a TLS 1.3 key update that asks for one
		 * back: the relay's reads and writes change keys, whatever
		 * else they wait for. */
		if (key_update_every != 0 && up.chunk == 0 &&
		    up.sent >= next_update && up.sent < size) {
			assert_int_equal(SSL_key_update(t.client,
			    SSL_KEY_UPDATE_REQUESTED), 1);
			next_update += key_update_every;
		}
		busy |= client_write(&t, &up, 70000);
		busy |= target_write(&t, &down, 70000);
		/* Now and then a reader pauses for a while, so that
		 * sockets fill and the relay waits on either side. */
		if (rng_next(&down.rng) % 32 == 0)
			client_paused = !client_paused;
		if (rng_next(&up.rng) % 32 == 0)
			target_paused = !target_paused;
		if (!client_paused)
			busy |= client_read(&t, &down);
		if (!target_paused)
			busy |= target_read(&t, &up);
		tr_step(&t, busy, (client_paused ? 0 : EV_READ) |
		    (up.sent < size ? EV_WRITE : 0), (target_paused ? 0 :
		    EV_READ) | (down.sent < size ? EV_WRITE : 0));
		if (t.r.up.off + t.r.up.pending > most_held)
			most_held = t.r.up.off + t.r.up.pending;
		if (t.r.down.off + t.r.down.pending > most_held)
			most_held = t.r.down.off + t.r.down.pending;
		/* The relay reads whole records only. */
		assert_int_equal(SSL_pending(t.server), 0);
		if (t.nended != 0)
			fail_msg("the relay ended (%s: %s): up %zu sent %zu "
			    "received, down %zu sent %zu received", t.ended,
			    t.ended_why, up.sent,
			    up.recvd, down.sent, down.recvd);
	}
	/* Plaintext, counted once. */
	assert_int_equal(t.r.up.bytes, size);
	assert_int_equal(t.r.down.bytes, size);
	assert_true(most_held <= RELAY_COPY_BUFSIZE);
	assert_true(t.r.up.eof == false && t.r.down.eof == false);
	/* Nothing more came, either way. */
	assert_int_equal(inq(t.cfd[1]), 0);
	assert_int_equal(inq(t.tfd[1]), 0);
	flow_free(&up);
	flow_free(&down);
	tr_close(&t);
}

static void
test_bulk_both_ways(void **state)
{
	(void)state;
	tr_bulk(0, 4 << 20, 1, 0);
}

static void
test_bulk_tls12(void **state)
{
	(void)state;
	tr_bulk(TLS1_2_VERSION, 1 << 20, 2, 0);
}

/* -- 1b. records gathered ------------------------------------------------ */

/*
 * The relay's write(2)s and writev(2)s on one socket, counted: this
 * binary's own definitions stand in for libc's, for the library linked
 * into it and for OpenSSL's socket BIO alike.
 */
static int counted_fd = -1;
static unsigned long counted_writes, counted_writevs;

ssize_t
write(int fd, const void *buf, size_t len)
{
	if (fd == counted_fd)
		counted_writes++;
	return syscall(SYS_write, fd, buf, len);
}

ssize_t
writev(int fd, const struct iovec *iov, int iovcnt)
{
	if (fd == counted_fd)
		counted_writevs++;
	return syscall(SYS_writev, fd, iov, iovcnt);
}

static void
count_writes_on(int fd)
{
	counted_fd = fd;
	counted_writes = counted_writevs = 0;
}

/*
 * A relay buffer's worth (64 KiB, four records) moves with one system
 * call each way when the sockets have room: the client's records, read
 * ahead, go to the target in one write(2); the target's bytes go to the
 * client as four records in one writev(2).
 */
static void
test_records_gathered(void **state)
{
	struct flow up, down;
	struct tr t;

	(void)state;
	tr_open(&t, 0);
	tr_start(&t, NULL, 0);
	flow_init(&up, RELAY_COPY_BUFSIZE, 24);
	flow_init(&down, RELAY_COPY_BUFSIZE, 25);
	count_writes_on(t.tfd[0]);
	client_write_all(&t, &up);
	tr_target_gets(&t, &up, false);
	assert_int_equal(counted_writes, 1);
	assert_int_equal(counted_writevs, 0);
	count_writes_on(t.cfd[0]);
	target_write_all(&t, &down);
	tr_client_gets(&t, &down, false);
	assert_int_equal(counted_writevs, 1);
	assert_int_equal(counted_writes, 0);
	/* Nothing kept once it went. */
	assert_int_equal(BIO_wpending(SSL_get_wbio(t.server)), 0);
	count_writes_on(-1);
	assert_int_equal(t.r.up.bytes, up.len);
	assert_int_equal(t.r.down.bytes, down.len);
	flow_free(&up);
	flow_free(&down);
	tr_close(&t);
}

/* -- 2. backpressure ---------------------------------------------------- */

/* Turn the loop until neither the relay nor the writer moved for a few
 * turns in a row: the state the backpressure tests look at. */
static void
tr_settle(struct tr *t, struct flow *f, bool from_client)
{
	uint64_t deadline = now_ms() + tr_deadline_ms;
	int quiet = 0;

	while (quiet < 5) {
		unsigned long before = t->callbacks;
		bool busy;

		tr_deadline(deadline, "the relay to stop");
		busy = from_client ? client_write(t, f, 65536) :
		    target_write(t, f, 65536);
		ev_run(t->loop, EVRUN_NOWAIT);
		if (busy || t->callbacks != before) {
			quiet = 0;
		} else {
			quiet++;
			tr_wait(t, from_client ? EV_WRITE : 0,
			    from_client ? 0 : EV_WRITE, 50);
		}
		if (f->sent == f->len)
			fail_msg("all %zu bytes went: nothing held back",
			    f->len);
	}
}

/* The client stops reading: the relay stops reading the target. */
static void
test_backpressure_to_client(void **state)
{
	struct flow down;
	struct tr t;

	(void)state;
	tr_open(&t, 0);
	tr_start(&t, NULL, 0);
	flow_init(&down, 8 << 20, 3);
	tr_settle(&t, &down, false);

	/* Every byte the target wrote is in one place: its socket, the
	 * relay's buffer, or delivered (as plaintext) to the client's. */
	assert_true(inq(t.tfd[0]) > 0);
	assert_int_equal(down.sent, inq(t.tfd[0]) + t.r.down.pending +
	    t.r.down.bytes);
	assert_true(t.r.down.bytes > 0);
	assert_true(inq(t.cfd[1]) >= t.r.down.bytes);
	/* Bounded: one copy buffer, and not reading the target at all,
	 * though bytes wait there. */
	assert_true(t.r.down.off + t.r.down.pending <= RELAY_COPY_BUFSIZE);
	assert_false(tr_watches(&t.tio, EV_READ));
	assert_true(tr_watches(&t.cio, EV_WRITE));
	assert_true(down.sent < (2 << 20));
	/* Asleep, not spinning, while the client waits. */
	assert_true(tr_quiet(&t, TR_QUIET_SECONDS) <= TR_QUIET_MAX_CALLBACKS);
	assert_int_equal(down.sent, inq(t.tfd[0]) + t.r.down.pending +
	    t.r.down.bytes);

	/* The client reads again: the rest flows, every byte in order. */
	{
		uint64_t deadline = now_ms() + tr_deadline_ms;

		while (down.recvd < down.len) {
			bool busy;

			tr_deadline(deadline, "the rest");
			busy = target_write(&t, &down, 65536);
			busy |= client_read(&t, &down);
			tr_step(&t, busy, EV_READ,
			    down.sent < down.len ? EV_WRITE : 0);
		}
	}
	assert_int_equal(t.r.down.bytes, down.len);
	assert_int_equal(t.nended, 0);
	flow_free(&down);
	tr_close(&t);
}

/* The target stops reading: the relay stops reading the client's TLS. */
static void
test_backpressure_to_target(void **state)
{
	struct flow up;
	struct tr t;

	(void)state;
	tr_open(&t, 0);
	tr_start(&t, NULL, 0);
	flow_init(&up, 8 << 20, 4);
	tr_settle(&t, &up, true);

	/* The target read nothing: what was delivered waits in its
	 * socket; encrypted bytes wait in the relay's. */
	assert_int_equal(inq(t.tfd[1]), t.r.up.bytes);
	assert_true(t.r.up.bytes > 0);
	assert_true(inq(t.cfd[0]) > 0);
	assert_true(t.r.up.bytes + t.r.up.pending <= up.sent);
	assert_true(t.r.up.off + t.r.up.pending <= RELAY_COPY_BUFSIZE);
	/* It stopped between records: OpenSSL holds nothing back that no
	 * socket event would bring it back for. */
	assert_int_equal(SSL_pending(t.server), 0);
	assert_false(tr_watches(&t.cio, EV_READ));
	assert_true(tr_watches(&t.tio, EV_WRITE));
	assert_true(up.sent < (2 << 20));
	assert_true(tr_quiet(&t, TR_QUIET_SECONDS) <= TR_QUIET_MAX_CALLBACKS);
	assert_int_equal(inq(t.tfd[1]), t.r.up.bytes);

	{
		uint64_t deadline = now_ms() + tr_deadline_ms;

		while (up.recvd < up.len) {
			bool busy;

			tr_deadline(deadline, "the rest");
			busy = client_write(&t, &up, 65536);
			busy |= target_read(&t, &up);
			tr_step(&t, busy, up.sent < up.len ? EV_WRITE : 0,
			    EV_READ);
		}
	}
	assert_int_equal(t.r.up.bytes, up.len);
	assert_int_equal(t.nended, 0);
	flow_free(&up);
	tr_close(&t);
}

/* -- 3. half-close ------------------------------------------------------ */

/* The client's close_notify reaches the target as a FIN; the target's
 * answer still reaches the client, then its FIN as a close_notify, and
 * the relay ends. */
static void
test_client_closes_first(void **state)
{
	struct flow up, down;
	struct tr t;

	(void)state;
	tr_open(&t, 0);
	tr_start(&t, NULL, 0);
	flow_init(&up, 100000, 5);
	flow_init(&down, 300000, 6);
	{
		uint64_t deadline = now_ms() + tr_deadline_ms;

		while (up.sent < up.len) {
			bool busy;

			tr_deadline(deadline, "the request");
			busy = client_write(&t, &up, 30000);
			busy |= target_read(&t, &up);
			tr_step(&t, busy, EV_WRITE, EV_READ);
		}
	}
	ERR_clear_error();
	assert_int_equal(SSL_shutdown(t.client), 0);
	tr_target_gets(&t, &up, true);
	assert_true(t.r.up.eof);
	assert_true(t.r.up.done);
	assert_int_equal(t.nended, 0);

	/* Half-closed: the other way still works, and ends with the
	 * target's FIN. */
	{
		uint64_t deadline = now_ms() + tr_deadline_ms;

		while (down.recvd < down.len) {
			bool busy;

			tr_deadline(deadline, "the answer");
			busy = target_write(&t, &down, 30000);
			busy |= client_read(&t, &down);
			tr_step(&t, busy, EV_READ, EV_WRITE);
		}
	}
	assert_int_equal(t.nended, 0);
	assert_int_equal(shutdown(t.tfd[1], SHUT_WR), 0);
	tr_until_ended(&t);
	assert_int_equal(t.nended, 1);
	assert_string_equal(t.ended, "eof");
	/* A close_notify, not just the FIN of a close (the relay's socket
	 * is still open). */
	client_gets_close_notify(&t);
	assert_int_equal(SSL_get_error(t.client, 0), SSL_ERROR_ZERO_RETURN);
	assert_int_equal(t.r.up.bytes, up.len);
	assert_int_equal(t.r.down.bytes, down.len);
	flow_free(&up);
	flow_free(&down);
	tr_close(&t);
}

/* The target's FIN reaches the client as a close_notify (and a FIN); the
 * client may still send, and its close_notify ends the relay. */
static void
test_target_closes_first(void **state)
{
	struct flow up, down;
	struct tr t;
	uint8_t b;

	(void)state;
	tr_open(&t, 0);
	tr_start(&t, NULL, 0);
	flow_init(&up, 200000, 8);
	flow_init(&down, 150000, 9);
	{
		uint64_t deadline = now_ms() + tr_deadline_ms;

		while (down.sent < down.len) {
			bool busy;

			tr_deadline(deadline, "the answer");
			busy = target_write(&t, &down, 30000);
			busy |= client_read(&t, &down);
			tr_step(&t, busy, EV_READ, EV_WRITE);
		}
	}
	assert_int_equal(shutdown(t.tfd[1], SHUT_WR), 0);
	tr_client_gets(&t, &down, true);
	assert_true(SSL_get_shutdown(t.client) & SSL_RECEIVED_SHUTDOWN);
	assert_true(t.r.down.done);
	/* The relay also shut its write side of the client's socket. */
	assert_int_equal(recv(t.cfd[1], &b, 1, MSG_PEEK), 0);
	assert_int_equal(t.nended, 0);

	/* The client goes on sending after the close_notify it got. */
	{
		uint64_t deadline = now_ms() + tr_deadline_ms;

		while (up.recvd < up.len) {
			bool busy;

			tr_deadline(deadline, "the late request");
			busy = client_write(&t, &up, 30000);
			busy |= target_read(&t, &up);
			tr_step(&t, busy, up.sent < up.len ? EV_WRITE : 0,
			    EV_READ);
		}
	}
	assert_int_equal(t.nended, 0);
	ERR_clear_error();
	assert_int_equal(SSL_shutdown(t.client), 1);
	tr_until_ended(&t);
	assert_int_equal(t.nended, 1);
	assert_string_equal(t.ended, "eof");
	assert_int_equal(t.r.up.bytes, up.len);
	assert_int_equal(t.r.down.bytes, down.len);
	flow_free(&up);
	flow_free(&down);
	tr_close(&t);
}

/* A FIN without close_notify from the client is a half-close too
 * (SSL_OP_IGNORE_UNEXPECTED_EOF), as on a plain socket. */
static void
test_client_fin_without_close_notify(void **state)
{
	struct flow up, down;
	struct tr t;

	(void)state;
	tr_open(&t, 0);
	tr_start(&t, NULL, 0);
	flow_init(&up, 50000, 10);
	flow_init(&down, 50000, 11);
	{
		uint64_t deadline = now_ms() + tr_deadline_ms;

		while (up.sent < up.len) {
			tr_deadline(deadline, "the request");
			tr_step(&t, client_write(&t, &up, 30000), EV_WRITE, 0);
		}
	}
	assert_int_equal(shutdown(t.cfd[1], SHUT_WR), 0);
	tr_target_gets(&t, &up, true);
	{
		uint64_t deadline = now_ms() + tr_deadline_ms;

		while (down.recvd < down.len) {
			bool busy;

			tr_deadline(deadline, "the answer");
			busy = target_write(&t, &down, 30000);
			busy |= client_read(&t, &down);
			tr_step(&t, busy, EV_READ, EV_WRITE);
		}
	}
	assert_int_equal(shutdown(t.tfd[1], SHUT_WR), 0);
	tr_until_ended(&t);
	assert_string_equal(t.ended, "eof");
	client_gets_close_notify(&t);
	flow_free(&up);
	flow_free(&down);
	tr_close(&t);
}

/*
 * The close_notify that passes the target's FIN on meets a client socket
 * with no room (the client is slow to read the last bytes): it must still
 * reach the client before any FIN, or the client sees a truncated TLS
 * stream. Here the client's side is still open, and the relay shuts its
 * write side after the close_notify.
 */
static void
test_close_notify_into_full_socket(void **state)
{
	struct flow down;
	size_t junk;
	struct tr t;

	(void)state;
	tr_open(&t, 0);
	tr_start(&t, NULL, 0);
	flow_init(&down, 20000, 12);
	target_write_all(&t, &down);
	tr_client_gets(&t, &down, false);
	/* No room toward the client, though the relay has nothing left
	 * to write: its last bytes filled the socket. */
	junk = fill_raw(t.cfd[0]);
	assert_int_equal(shutdown(t.tfd[1], SHUT_WR), 0);
	(void)tr_quiet(&t, TR_QUIET_SECONDS);
	assert_true(t.r.down.eof);
	/* The client reads on. */
	drain_raw(t.cfd[1], junk);
	client_gets_close_notify(&t);
	flow_free(&down);
	tr_close(&t);
}

/* The same close_notify as the relay's last act, when the client had
 * sent its own first. */
static void
test_last_close_notify_into_full_socket(void **state)
{
	size_t junk;
	struct tr t;

	(void)state;
	tr_open(&t, 0);
	tr_start(&t, NULL, 0);
	ERR_clear_error();
	assert_int_equal(SSL_shutdown(t.client), 0);
	{
		uint64_t deadline = now_ms() + tr_deadline_ms;
		uint8_t b;

		while (read(t.tfd[1], &b, 1) != 0) {
			tr_deadline(deadline, "the FIN at the target");
			tr_step(&t, false, 0, EV_READ);
		}
	}
	junk = fill_raw(t.cfd[0]);
	assert_int_equal(shutdown(t.tfd[1], SHUT_WR), 0);
	{
		uint64_t deadline = now_ms() + tr_deadline_ms;

		/* The relay may wait for room, and must end once it got
		 * it; the client reads as it would. */
		while (t.nended == 0) {
			tr_deadline(deadline, "the relay's end");
			tr_step(&t, false, 0, 0);
			if (t.nended == 0 && tr_quiet(&t, 0.05) == 0 &&
			    junk != 0) {
				drain_raw(t.cfd[1], junk);
				junk = 0;
			}
		}
	}
	assert_string_equal(t.ended, "eof");
	/* What the session does next: close_notify (best effort) and
	 * close. */
	tls_io_close_notify(t.server);
	close(t.cfd[0]);
	t.cfd[0] = -1;
	if (junk != 0)
		drain_raw(t.cfd[1], junk);
	client_gets_close_notify(&t);
	tr_close(&t);
}

/* -- 4. errors end the relay -------------------------------------------- */

static void
test_tls_error(void **state)
{
	/* An application-data record whose tag cannot check out. */
	static const uint8_t garbage[] = { 0x17, 0x03, 0x03, 0x00, 0x20,
	    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18,
	    19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32 };
	struct flow up;
	struct tr t;

	(void)state;
	tr_open(&t, 0);
	tr_start(&t, NULL, 0);
	flow_init(&up, 5000, 13);
	/* Good bytes, then garbage past the client's SSL. */
	client_write_all(&t, &up);
	assert_int_equal(up.sent, up.len);
	assert_int_equal(write(t.cfd[1], garbage, sizeof(garbage)),
	    sizeof(garbage));
	tr_until_ended(&t);
	assert_int_equal(t.nended, 1);
	assert_string_equal(t.ended, "tls-error");
	/* What came before the garbage went on. */
	assert_int_equal(t.r.up.bytes, up.len);
	(void)target_read(&t, &up);
	assert_int_equal(up.recvd, up.len);
	/* Stopped: nothing is watched any more. */
	assert_false(ev_is_active(&t.cio));
	assert_false(ev_is_active(&t.tio));
	flow_free(&up);
	tr_close(&t);

	/* Garbage that is no record at all. */
	tr_open(&t, 0);
	tr_start(&t, NULL, 0);
	assert_int_equal(write(t.cfd[1], "GET / HTTP/1.1\r\n\r\n", 18), 18);
	tr_until_ended(&t);
	assert_string_equal(t.ended, "tls-error");
	tr_close(&t);
}

/* A socket error is no TLS error: the client goes away with bytes of the
 * relay's unread, which resets the connection. */
static void
test_socket_error(void **state)
{
	struct flow down;
	struct tr t;

	(void)state;
	tr_open(&t, 0);
	tr_start(&t, NULL, 0);
	flow_init(&down, 1000, 14);
	target_write_all(&t, &down);
	while (inq(t.cfd[1]) == 0)
		tr_step(&t, false, 0, 0);
	close(t.cfd[1]);
	t.cfd[1] = -1;
	tr_until_ended(&t);
	assert_string_equal(t.ended, "reset");
	flow_free(&down);
	tr_close(&t);
}

/* -- 5. plaintext OpenSSL holds before the relay starts ----------------- */

/*
 * The client's first bytes: records of the given sizes. The server reads
 * `taken` plaintext bytes of them before the relay starts, in reads that
 * stop where they must, so that the last leaves the rest of the last
 * record inside the SSL, and hands them to relay_start as the prefix.
 * Nothing is left in the socket, and the client sends nothing more: no
 * socket event will ever come for the rest.
 */
static void
tr_pending_case(const size_t *records, size_t nrecords, size_t taken)
{
	static uint8_t prefix[RELAY_COPY_BUFSIZE];
	struct flow up;
	size_t total = 0, got = 0;
	struct tr t;

	for (size_t i = 0; i < nrecords; i++)
		total += records[i];
	assert_true(taken < total && total - taken < records[nrecords - 1]);
	assert_true(taken <= sizeof(prefix));
	tr_open(&t, 0);
	flow_init(&up, total, 15);
	for (size_t i = 0; i < nrecords; i++) {
		/* Each SSL_write of at most 16 KiB is one record. */
		assert_true(records[i] <= TLS_RECORD_MAX);
		up.chunk = records[i];
		assert_true(client_write(&t, &up, 1));
	}
	while (got < taken) {
		int wants;
		ssize_t n = tls_io_read(t.server, prefix + got, taken - got,
		    &wants);

		assert_true(n > 0);
		got += (size_t)n;
	}
	assert_memory_equal(prefix, up.data, taken);
	assert_int_equal(SSL_pending(t.server), total - taken);
	assert_int_equal(inq(t.cfd[0]), 0);
	tr_start(&t, prefix, taken);
	/* No socket event is needed: the loop's first turns do it. */
	(void)tr_quiet(&t, 0.5);
	assert_int_equal(t.r.up.bytes, total);
	assert_int_equal(SSL_pending(t.server), 0);
	tr_target_gets(&t, &up, false);
	assert_int_equal(inq(t.tfd[1]), 0);
	flow_free(&up);
	tr_close(&t);
}

static void
test_ssl_pending_at_start(void **state)
{
	static const size_t one[] = { 10240 };
	/* A prefix so long that the relay may not read before it passed
	 * it on (no room for a record): the held bytes wait for that,
	 * then still come. */
	static const size_t five[] = { 16384, 16384, 16384, 10848, 10240 };

	(void)state;
	tr_pending_case(one, 1, 100);
	tr_pending_case(one, 1, 1);
	tr_pending_case(five, 5, 60100);
}

/* No prefix at all: the server only peeked, so all of the record is
 * inside the SSL. */
static void
test_ssl_pending_no_prefix(void **state)
{
	uint8_t first;
	struct flow up;
	struct tr t;

	(void)state;
	tr_open(&t, 0);
	flow_init(&up, 10000, 16);
	client_write_all(&t, &up);
	assert_int_equal(SSL_peek(t.server, &first, 1), 1);
	assert_int_equal(first, up.data[0]);
	assert_int_equal(SSL_pending(t.server), up.len);
	assert_int_equal(inq(t.cfd[0]), 0);
	tr_start(&t, NULL, 0);
	(void)tr_quiet(&t, 0.5);
	assert_int_equal(t.r.up.bytes, up.len);
	tr_target_gets(&t, &up, false);
	flow_free(&up);
	tr_close(&t);
}

/* -- 6. tls_io_set_fd_with_prefix ---------------------------------------- */

/*
 * The server takes `take` bytes of the client's first flight (0: all of
 * it but `leave`) off the socket, as the front end does to look at them,
 * and gives them back through the prefix BIO: the handshake completes,
 * and data flows both ways through the socket.
 */
static void
prefix_case(size_t take, size_t leave, int max_version)
{
	static uint8_t hello[16384];
	uint8_t buf[64];
	int fds[2], wants;
	size_t flight, n;
	SSL *server, *client;
	ssize_t got;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	set_nonblock(fds[0]);
	set_nonblock(fds[1]);
	client = client_new(fds[1], max_version);
	assert_false(hs_step(client, "client"));
	flight = inq(fds[0]);
	assert_true(flight > 5 && flight < sizeof(hello));
	n = take != 0 ? take : flight - leave;
	got = recv(fds[0], hello, n, 0);
	assert_int_equal(got, n);
	assert_int_equal(inq(fds[0]), flight - n);
	server = tls_ctx_new_ssl(server_ctx, fds[0]);
	assert_non_null(server);
	assert_int_equal(tls_io_set_fd_with_prefix(server, fds[0], hello, n),
	    0);
	/* The BIO says what it holds, and the fd is still found. */
	assert_int_equal(BIO_pending(SSL_get_rbio(server)), n);
	assert_int_equal(SSL_get_rfd(server), fds[0]);
	assert_int_equal(SSL_get_wfd(server), fds[0]);
	handshake(server, client);
	assert_int_equal(SSL_version(server), max_version != 0 ? max_version :
	    TLS1_3_VERSION);
	/* Writes go to the socket, reads come from it. */
	assert_int_equal(tls_io_write(server, "pong", 4, &wants), 4);
	{
		int r = -1;

		for (int i = 0; i < 100 && r <= 0; i++)
			r = SSL_read(client, buf, sizeof(buf));
		assert_int_equal(r, 4);
		assert_memory_equal(buf, "pong", 4);
	}
	assert_int_equal(SSL_write(client, "ping", 4), 4);
	assert_int_equal(tls_io_read(server, buf, sizeof(buf), &wants), 4);
	assert_memory_equal(buf, "ping", 4);
	assert_int_equal(tls_io_read(server, buf, sizeof(buf), &wants), -1);
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(wants, EV_READ);
	SSL_free(server);
	SSL_free(client);
	close(fds[0]);
	close(fds[1]);
	ERR_clear_error();
}

static void
test_prefix_bio(void **state)
{
	(void)state;
	/* All of the ClientHello. */
	prefix_case(0, 0, 0);
	prefix_case(0, 0, TLS1_2_VERSION);
	/* Split: within the record header, right after it, within the
	 * body, one byte short. */
	prefix_case(1, 0, 0);
	prefix_case(3, 0, 0);
	prefix_case(5, 0, 0);
	prefix_case(6, 0, 0);
	prefix_case(100, 0, 0);
	prefix_case(0, 1, 0);
	prefix_case(100, 0, TLS1_2_VERSION);
}

/* Nothing to give back: the plain socket; and a prefix never read is
 * freed with the SSL (valgrind sees to that). */
static void
test_prefix_bio_edges(void **state)
{
	int fds[2];
	SSL *server, *client;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	set_nonblock(fds[0]);
	set_nonblock(fds[1]);
	server = tls_ctx_new_ssl(server_ctx, fds[0]);
	assert_non_null(server);
	assert_int_equal(tls_io_set_fd_with_prefix(server, fds[0], NULL, 0),
	    0);
	assert_int_equal(SSL_get_fd(server), fds[0]);
	client = client_new(fds[1], 0);
	handshake(server, client);
	SSL_free(server);
	SSL_free(client);

	server = tls_ctx_new_ssl(server_ctx, fds[0]);
	assert_non_null(server);
	assert_int_equal(tls_io_set_fd_with_prefix(server, fds[0],
	    (const uint8_t *)"\x16\x03\x01", 3), 0);
	SSL_free(server);
	close(fds[0]);
	close(fds[1]);

	/* The BIO itself: the prefix in order, what it still holds, then
	 * the socket, with its retry; writes go straight to the socket. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	set_nonblock(fds[0]);
	set_nonblock(fds[1]);
	{
		uint8_t buf[16];
		BIO *rbio, *wbio;
		int n;

		server = tls_ctx_new_ssl(server_ctx, fds[0]);
		assert_non_null(server);
		assert_int_equal(tls_io_set_fd_with_prefix(server, fds[0],
		    (const uint8_t *)"abcdef", 6), 0);
		rbio = SSL_get_rbio(server);
		wbio = SSL_get_wbio(server);
		assert_int_equal(BIO_pending(rbio), 6);
		assert_int_equal(BIO_read(rbio, buf, 2), 2);
		assert_memory_equal(buf, "ab", 2);
		assert_int_equal(BIO_pending(rbio), 4);
		assert_int_equal(write(fds[1], "gh", 2), 2);
		/* The rest of the prefix, not yet the socket's bytes. */
		assert_int_equal(BIO_read(rbio, buf, sizeof(buf)), 4);
		assert_memory_equal(buf, "cdef", 4);
		assert_int_equal(BIO_read(rbio, buf, sizeof(buf)), 2);
		assert_memory_equal(buf, "gh", 2);
		n = BIO_read(rbio, buf, sizeof(buf));
		assert_true(n <= 0);
		assert_true(BIO_should_retry(rbio));
		assert_true(BIO_should_read(rbio));
		assert_int_equal(BIO_write(wbio, "ij", 2), 2);
		assert_int_equal(read(fds[1], buf, sizeof(buf)), 2);
		assert_memory_equal(buf, "ij", 2);
		SSL_free(server);
	}
	close(fds[0]);
	close(fds[1]);
	ERR_clear_error();
}

/* -- 7. tls_io conventions ---------------------------------------------- */

struct io_pair {
	int fds[2];            /* [0] server, [1] client */
	SSL *server, *client;
};

static void
io_open(struct io_pair *p)
{
	uint8_t b;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, p->fds), 0);
	set_nonblock(p->fds[0]);
	set_nonblock(p->fds[1]);
	p->server = tls_ctx_new_ssl(server_ctx, p->fds[0]);
	assert_non_null(p->server);
	p->client = client_new(p->fds[1], 0);
	handshake(p->server, p->client);
	assert_true(SSL_read(p->client, &b, 1) <= 0);
	ERR_clear_error();
}

static void
io_close(struct io_pair *p)
{
	SSL_free(p->server);
	SSL_free(p->client);
	if (p->fds[0] != -1)
		close(p->fds[0]);
	if (p->fds[1] != -1)
		close(p->fds[1]);
	ERR_clear_error();
}

static void
test_tls_io_read(void **state)
{
	static uint8_t buf[TLS_RECORD_MAX];
	struct io_pair p;
	int wants = -1;

	(void)state;
	/* Nothing there: EAGAIN, waiting to read. */
	io_open(&p);
	errno = 0;
	assert_int_equal(tls_io_read(p.server, buf, sizeof(buf), &wants), -1);
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(wants, EV_READ);
	/* A record: its bytes, and wants cleared. */
	assert_int_equal(SSL_write(p.client, "hello", 5), 5);
	assert_int_equal(tls_io_read(p.server, buf, sizeof(buf), &wants), 5);
	assert_int_equal(wants, 0);
	assert_memory_equal(buf, "hello", 5);
	/* Half a record: still EAGAIN. The record is taken off the
	 * server's socket raw and put back in two goes. */
	{
		static uint8_t rec[64];
		ssize_t len;

		assert_int_equal(SSL_write(p.client, "split", 5), 5);
		len = recv(p.fds[0], rec, sizeof(rec), 0);
		assert_true(len > 10);
		assert_int_equal(write(p.fds[1], rec, 7), 7);
		errno = 0;
		assert_int_equal(tls_io_read(p.server, buf, sizeof(buf),
		    &wants), -1);
		assert_int_equal(errno, EAGAIN);
		assert_int_equal(wants, EV_READ);
		assert_int_equal(write(p.fds[1], rec + 7, (size_t)len - 7),
		    len - 7);
		assert_int_equal(tls_io_read(p.server, buf, sizeof(buf),
		    &wants), 5);
		assert_memory_equal(buf, "split", 5);
	}
	/* close_notify: 0, and 0 again. */
	assert_int_equal(SSL_shutdown(p.client), 0);
	assert_int_equal(tls_io_read(p.server, buf, sizeof(buf), &wants), 0);
	assert_int_equal(wants, 0);
	assert_int_equal(tls_io_read(p.server, buf, sizeof(buf), &wants), 0);
	io_close(&p);

	/* A FIN without close_notify: 0 too. */
	io_open(&p);
	assert_int_equal(shutdown(p.fds[1], SHUT_WR), 0);
	assert_int_equal(tls_io_read(p.server, buf, sizeof(buf), &wants), 0);
	assert_int_equal(wants, 0);
	io_close(&p);

	/* Garbage: EPROTO. */
	io_open(&p);
	assert_int_equal(write(p.fds[1], "\x17\x03\x03\x00\x05" "abcde", 10),
	    10);
	errno = 0;
	assert_int_equal(tls_io_read(p.server, buf, sizeof(buf), &wants), -1);
	assert_int_equal(errno, EPROTO);
	assert_int_equal(wants, 0);
	io_close(&p);

	/* The peer is gone with our bytes unread: the socket's error. */
	io_open(&p);
	assert_int_equal(tls_io_write(p.server, "unread", 6, &wants), 6);
	close(p.fds[1]);
	p.fds[1] = -1;
	errno = 0;
	assert_int_equal(tls_io_read(p.server, buf, sizeof(buf), &wants), -1);
	assert_int_equal(errno, ECONNRESET);
	assert_int_equal(wants, 0);
	io_close(&p);
}

static void
test_tls_io_write(void **state)
{
	static uint8_t big[4 * TLS_RECORD_MAX];
	struct io_pair p;
	size_t total = 0, ciphertext;
	int wants = -1;
	ssize_t n;

	(void)state;
	io_open(&p);
	/* Nothing to write: 0, at once. */
	assert_int_equal(tls_io_write(p.server, big, 0, &wants), 0);
	assert_int_equal(wants, 0);
	/* Several records at once (the socket has room for them). */
	n = tls_io_write(p.server, big, sizeof(big), &wants);
	assert_int_equal(n, sizeof(big));
	assert_int_equal(wants, 0);
	total += (size_t)n;
	/* Until the socket is full: EAGAIN, waiting to write. */
	for (;;) {
		errno = 0;
		n = tls_io_write(p.server, big, sizeof(big), &wants);
		if (n < 0)
			break;
		assert_true(n > 0);
		/* Bytes went, and a record may wait for room (its retry
		 * leads the next call). */
		assert_true(wants == 0 || wants == EV_WRITE);
		total += (size_t)n;
		assert_true(total < (64 << 20));
	}
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(wants, EV_WRITE);
	/* Every byte taken is in the socket, or kept by the gather BIO
	 * ahead of the record waiting for room. */
	ciphertext = inq(p.fds[1]) +
	    (size_t)BIO_wpending(SSL_get_wbio(p.server));
	assert_true(ciphertext > total);
	/* The client reads: the same call goes on (OpenSSL's retry), and
	 * is repeated with what is left until all of it went; then every
	 * byte arrives. */
	{
		static uint8_t buf[TLS_RECORD_MAX];
		size_t got = 0, left = sizeof(big);

		for (int i = 0; i < 100000 && left > 0; i++) {
			int r = SSL_read(p.client, buf, sizeof(buf));

			if (r > 0)
				got += (size_t)r;
			n = tls_io_write(p.server, big, left, &wants);
			if (n > 0) {
				total += (size_t)n;
				left -= (size_t)n;
			}
		}
		assert_int_equal(left, 0);
		assert_int_equal(BIO_wpending(SSL_get_wbio(p.server)), 0);
		for (;;) {
			int r = SSL_read(p.client, buf, sizeof(buf));

			if (r <= 0)
				break;
			got += (size_t)r;
		}
		assert_int_equal(got, total);
	}
	/* A socket error: the socket's errno (SIGPIPE is ignored). */
	close(p.fds[1]);
	p.fds[1] = -1;
	errno = 0;
	assert_int_equal(tls_io_write(p.server, "x", 1, &wants), -1);
	assert_int_equal(errno, EPIPE);
	assert_int_equal(wants, 0);
	io_close(&p);
}

static void
test_tls_io_close_notify(void **state)
{
	struct io_pair p;
	size_t once;
	uint8_t b;
	SSL *fresh;

	(void)state;
	/* Before a handshake: nothing sent, no error left behind. */
	io_open(&p);
	fresh = tls_ctx_new_ssl(server_ctx, p.fds[0]);
	assert_non_null(fresh);
	tls_io_close_notify(fresh);
	assert_int_equal(inq(p.fds[1]), 0);
	assert_int_equal(ERR_peek_error(), 0);
	SSL_free(fresh);
	/* Once only, however often called. */
	tls_io_close_notify(p.server);
	once = inq(p.fds[1]);
	assert_true(once > 0);
	tls_io_close_notify(p.server);
	assert_int_equal(inq(p.fds[1]), once);
	assert_int_equal(ERR_peek_error(), 0);
	assert_int_equal(SSL_read(p.client, &b, 1), 0);
	assert_int_equal(SSL_get_error(p.client, 0), SSL_ERROR_ZERO_RETURN);
	io_close(&p);
}

/* -- 8. a TLS read that must write first -------------------------------- */

/*
 * TLS 1.3: the client asks for a key update. OpenSSL answers with its own
 * KeyUpdate before its next application data, and once an SSL_write has
 * started that answer into a full socket, every SSL_read must finish it
 * first: the read returns WANT_WRITE. The relay must then wait for the
 * client's socket to be writable, not readable (it is readable: the
 * client's next record waits there), and read on once it is.
 */
static void
test_read_wants_write(void **state)
{
	struct flow ping, pong, more;
	size_t junk;
	struct tr t;

	(void)state;
	tr_open(&t, 0);
	tr_start(&t, NULL, 0);
	flow_init(&ping, 4, 17);
	flow_init(&pong, 4, 18);
	flow_init(&more, 3000, 19);
	/* The request for an update, with bytes behind it. */
	assert_int_equal(SSL_key_update(t.client, SSL_KEY_UPDATE_REQUESTED),
	    1);
	client_write_all(&t, &ping);
	tr_target_gets(&t, &ping, false);
	/* No room toward the client (which has nothing left to read). */
	assert_int_equal(inq(t.cfd[1]), 0);
	junk = fill_raw(t.cfd[0]);
	/* The target answers: the relay's write starts the KeyUpdate,
	 * which cannot go out. */
	target_write_all(&t, &pong);
	{
		uint64_t deadline = now_ms() + tr_deadline_ms;

		while (t.r.down.to_wants != EV_WRITE) {
			tr_deadline(deadline, "the blocked write");
			tr_step(&t, false, 0, 0);
		}
	}
	assert_int_equal(t.r.down.pending, 4);
	assert_int_equal(t.r.down.bytes, 0);
	/* The client sends more: the relay's read has to write first. */
	client_write_all(&t, &more);
	{
		uint64_t deadline = now_ms() + tr_deadline_ms;

		while (t.r.up.from_wants != EV_WRITE) {
			tr_deadline(deadline, "the read to wait for a write");
			tr_step(&t, false, 0, 0);
		}
	}
	assert_int_equal(t.r.up.bytes, 4);
	assert_true(inq(t.cfd[0]) > 0);         /* readable, and ... */
	assert_false(tr_watches(&t.cio, EV_READ));      /* ... not watched */
	assert_true(tr_watches(&t.cio, EV_WRITE));
	assert_true(tr_quiet(&t, TR_QUIET_SECONDS) <= TR_QUIET_MAX_CALLBACKS);
	assert_int_equal(t.r.up.bytes, 4);
	/* Room again: the KeyUpdate goes, then both ways flow. */
	drain_raw(t.cfd[1], junk);
	tr_target_gets(&t, &more, false);
	tr_client_gets(&t, &pong, false);
	assert_true(t.r.up.from_wants != EV_WRITE);
	assert_int_equal(t.r.up.bytes, 3004);
	assert_int_equal(t.r.down.bytes, 4);
	assert_int_equal(t.nended, 0);
	flow_free(&ping);
	flow_free(&pong);
	flow_free(&more);
	tr_close(&t);
}

/*
 * Two key update requests while the relay's write to the client is held
 * up (the client reads nothing for a while): OpenSSL defers its answer to
 * the first until that write is done, but the second makes SSL_read start
 * the answer at once, behind the unfinished write, and fail for good
 * (SSL_R_BAD_LENGTH in ssl3_write_bytes, OpenSSL 3.0). The relay must not
 * end: once the client reads, every byte of both ways arrives.
 */
static void
test_key_update_requests_while_write_blocked(void **state)
{
	struct flow down, one, two;
	struct tr t;

	(void)state;
	tr_open(&t, 0);
	tr_start(&t, NULL, 0);
	flow_init(&down, 4 << 20, 21);
	flow_init(&one, 3000, 22);
	flow_init(&two, 3000, 23);
	tr_settle(&t, &down, false);
	assert_int_equal(t.r.down.to_wants, EV_WRITE);
	assert_true(t.r.down.pending > 0);
	assert_int_equal(SSL_key_update(t.client, SSL_KEY_UPDATE_REQUESTED),
	    1);
	client_write_all(&t, &one);
	assert_int_equal(SSL_key_update(t.client, SSL_KEY_UPDATE_REQUESTED),
	    1);
	client_write_all(&t, &two);
	(void)tr_quiet(&t, TR_QUIET_SECONDS);
	if (t.nended != 0)
		fail_msg("the relay ended (%s: %s) with %zu of %zu bytes of the "
		    "client's read by the target", t.ended, t.ended_why,
		    t.r.up.bytes, one.len + two.len);
	/* The client reads again: everything arrives, both ways. */
	{
		uint64_t deadline = now_ms() + tr_deadline_ms;

		while (down.recvd < down.len || one.recvd < one.len ||
		    two.recvd < two.len) {
			bool busy;

			tr_deadline(deadline, "the bytes after the updates");
			if (t.nended != 0)
				fail_msg("the relay ended (%s: %s)", t.ended,
				    t.ended_why);
			busy = target_write(&t, &down, 65536);
			busy |= client_read(&t, &down);
			busy |= target_read(&t, one.recvd < one.len ? &one :
			    &two);
			tr_step(&t, busy, EV_READ, EV_READ |
			    (down.sent < down.len ? EV_WRITE : 0));
		}
	}
	assert_int_equal(t.r.up.bytes, one.len + two.len);
	assert_int_equal(t.r.down.bytes, down.len);
	flow_free(&down);
	flow_free(&one);
	flow_free(&two);
	tr_close(&t);
}

/* Key updates under load (the client's own, without asking for the
 * relay's), with readers that pause: byte-exact. */
static void
test_bulk_key_updates(void **state)
{
	(void)state;
	tr_bulk(0, 2 << 20, 20, 128 << 10);
}

/* -- setup -------------------------------------------------------------- */

static int
test_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
test_setup(void **state)
{
	struct tc_spec spec = { .cn = "proxy.test", .san = "DNS:proxy.test" };
	char cert_path[256], key_path[256], why[512];
	struct tls_settings set = { cert_path, key_path, NULL,
	    TLS_CLIENT_CERT_NONE, TLS_CLIENT_USER_NONE };
	X509 *cert;

	(void)state;
	if (mkdtemp(test_dir) == NULL)
		return -1;
	spec.key = tc_key();
	cert = tc_cert(&spec);
	snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", test_dir);
	snprintf(key_path, sizeof(key_path), "%s/key.pem", test_dir);
	tc_write_certs(cert_path, cert, NULL);
	tc_write_key(key_path, spec.key, 0600);
	X509_free(cert);
	EVP_PKEY_free(spec.key);
	server_ctx = tls_ctx_new(&set, why, sizeof(why));
	if (server_ctx == NULL) {
		fprintf(stderr, "tls_ctx_new: %s\n", why);
		return -1;
	}
	client_ctx = SSL_CTX_new(TLS_client_method());
	if (client_ctx == NULL)
		return -1;
	SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL);
	return 0;
}

static int
test_teardown(void **state)
{
	(void)state;
	tls_ctx_free(server_ctx);
	SSL_CTX_free(client_ctx);
	return nftw(test_dir, test_rm, 8, FTW_DEPTH | FTW_PHYS);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bulk_both_ways),
		cmocka_unit_test(test_bulk_tls12),
		cmocka_unit_test(test_records_gathered),
		cmocka_unit_test(test_backpressure_to_client),
		cmocka_unit_test(test_backpressure_to_target),
		cmocka_unit_test(test_client_closes_first),
		cmocka_unit_test(test_target_closes_first),
		cmocka_unit_test(test_client_fin_without_close_notify),
		cmocka_unit_test(test_close_notify_into_full_socket),
		cmocka_unit_test(test_last_close_notify_into_full_socket),
		cmocka_unit_test(test_tls_error),
		cmocka_unit_test(test_socket_error),
		cmocka_unit_test(test_ssl_pending_at_start),
		cmocka_unit_test(test_ssl_pending_no_prefix),
		cmocka_unit_test(test_prefix_bio),
		cmocka_unit_test(test_prefix_bio_edges),
		cmocka_unit_test(test_tls_io_read),
		cmocka_unit_test(test_tls_io_write),
		cmocka_unit_test(test_tls_io_close_notify),
		cmocka_unit_test(test_read_wants_write),
		cmocka_unit_test(test_key_update_requests_while_write_blocked),
		cmocka_unit_test(test_bulk_key_updates),
	};

	const char *deadline = getenv("TLS_RELAY_DEADLINE_MS");

	if (deadline != NULL && atoi(deadline) > 0)
		tr_deadline_ms = (uint64_t)atoi(deadline);
	/* One test, or a few: TLS_RELAY_TESTS=test_tls_io_* (a glob);
	 * TLS_RELAY_SKIP leaves some out. */
	if (getenv("TLS_RELAY_TESTS") != NULL)
		cmocka_set_test_filter(getenv("TLS_RELAY_TESTS"));
	if (getenv("TLS_RELAY_SKIP") != NULL)
		cmocka_set_skip_filter(getenv("TLS_RELAY_SKIP"));
	/* A write to a closed peer must fail with EPIPE, not kill us. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, test_setup, test_teardown);
}
