/*
 * Unit tests for Happy Eyeballs: the interleaved address order, and races
 * on loopback with real sockets. A listener whose accept queue is full
 * drops SYNs without an answer, which stands in for a path that loses
 * every packet: an attempt to it hangs until the next one wins or its
 * timeout ends it.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>

#include "socks5d/happy.h"

static union sockaddr_any
v4(const char *ip, uint16_t port)
{
	union sockaddr_any a;

	memset(&a, 0, sizeof(a));
	a.in.sin_family = AF_INET;
	a.in.sin_port = htons(port);
	assert_int_equal(inet_pton(AF_INET, ip, &a.in.sin_addr), 1);
	return a;
}

static union sockaddr_any
v6(const char *ip, uint16_t port)
{
	union sockaddr_any a;

	memset(&a, 0, sizeof(a));
	a.in6.sin6_family = AF_INET6;
	a.in6.sin6_port = htons(port);
	assert_int_equal(inet_pton(AF_INET6, ip, &a.in6.sin6_addr), 1);
	return a;
}

/* The order as a string of families and last address bytes: "6a 4b". */
static void
assert_order(union sockaddr_any *addrs, size_t n, const char *want)
{
	char got[64] = "";
	size_t i;

	happy_order(addrs, n);
	for (i = 0; i < n; i++) {
		char one[8];
		unsigned last = addrs[i].sa.sa_family == AF_INET ?
		    ((unsigned char *)&addrs[i].in.sin_addr)[3] :
		    addrs[i].in6.sin6_addr.s6_addr[15];

		snprintf(one, sizeof(one), "%s%c%c", i ? " " : "",
		    addrs[i].sa.sa_family == AF_INET ? '4' : '6',
		    'a' + (int)last - 1);
		strcat(got, one);
	}
	assert_string_equal(got, want);
}

static void
test_order_interleaves_families(void **state)
{
	union sockaddr_any a[6];

	(void)state;
	a[0] = v6("2001:db8::1", 1); a[1] = v6("2001:db8::2", 1);
	a[2] = v6("2001:db8::3", 1); a[3] = v4("192.0.2.1", 1);
	a[4] = v4("192.0.2.2", 1);
	assert_order(a, 5, "6a 4a 6b 4b 6c");

	/* The first address's family leads, whichever it is. */
	a[0] = v4("192.0.2.1", 1); a[1] = v6("2001:db8::1", 1);
	a[2] = v6("2001:db8::2", 1); a[3] = v6("2001:db8::3", 1);
	assert_order(a, 4, "4a 6a 6b 6c");

	a[0] = v6("2001:db8::1", 1); a[1] = v4("192.0.2.1", 1);
	a[2] = v4("192.0.2.2", 1); a[3] = v4("192.0.2.3", 1);
	a[4] = v6("2001:db8::2", 1); a[5] = v4("192.0.2.4", 1);
	assert_order(a, 6, "6a 4a 6b 4b 4c 4d");

	/* One family, or one address: as given. */
	a[0] = v4("192.0.2.3", 1); a[1] = v4("192.0.2.1", 1);
	a[2] = v4("192.0.2.2", 1);
	assert_order(a, 3, "4c 4a 4b");
	assert_order(a, 1, "4c");
	assert_order(a, 0, "");
}

/* -- races --------------------------------------------------------------- */

struct race {
	struct ev_loop *loop;
	ev_timer timer;
	ev_io io;                 /* the caller's watcher */
	struct happy *happy;
	unsigned opened, denied;
	const char *deny_ip;      /* allow() refuses this address */
	bool finished;
	int fd, err;
	union sockaddr_any addr;
	ev_tstamp started, ended;
};

/* Judge the address (deny_ip is refused), then open a socket for it. */
static int
race_open(void *arg, const struct sockaddr *addr)
{
	struct race *r = arg;
	char ip[64];

	if (addr->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)
		    addr)->sin_addr, ip, sizeof(ip));
	else
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)
		    addr)->sin6_addr, ip, sizeof(ip));
	if (r->deny_ip != NULL && strcmp(ip, r->deny_ip) == 0) {
		r->denied++;
		errno = EACCES;
		return -1;
	}
	r->opened++;
	return socket(addr->sa_family,
	    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

static void
race_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct race *r = w->data;

	(void)loop;
	(void)revents;
	happy_timer(r->happy);
}

static void
race_arm(void *arg, ev_tstamp after)
{
	struct race *r = arg;

	ev_timer_stop(r->loop, &r->timer);
	ev_timer_set(&r->timer, after, 0.);
	ev_timer_start(r->loop, &r->timer);
}

static void
race_done(void *arg, int fd, const union sockaddr_any *addr, int err)
{
	struct race *r = arg;

	assert_false(r->finished);
	r->finished = true;
	r->fd = fd;
	r->err = err;
	if (addr != NULL)
		r->addr = *addr;
	r->ended = ev_time();
	ev_timer_stop(r->loop, &r->timer);
	happy_free(r->happy);
	r->happy = NULL;
	ev_break(r->loop, EVBREAK_ALL);
}

static const struct happy_ops race_ops = {
	.open_socket = race_open,
	.arm = race_arm,
	.done = race_done,
};

static unsigned
open_fds(void)
{
	DIR *dir = opendir("/proc/self/fd");
	unsigned n = 0;

	assert_non_null(dir);
	while (readdir(dir) != NULL)
		n++;
	closedir(dir);
	return n;
}

static void
race_run(struct race *r, const union sockaddr_any *addrs, size_t n,
    ev_tstamp delay, ev_tstamp timeout)
{
	r->loop = ev_loop_new(EVFLAG_AUTO);
	ev_init(&r->timer, race_timer_cb);
	r->timer.data = r;
	ev_init(&r->io, NULL);
	r->fd = -2;
	r->started = ev_time();
	assert_true(happy_start(&r->happy, r->loop, &race_ops, r, &r->io,
	    addrs, n, delay, timeout));
	if (!r->finished)
		ev_run(r->loop, 0);
	assert_true(r->finished);
	assert_null(r->happy);
	ev_loop_destroy(r->loop);
}

/* A listener on ip; full: its accept queue filled, so SYNs go unanswered. */
static int
listener(const char *ip, uint16_t *port, bool full)
{
	union sockaddr_any a = strchr(ip, ':') ? v6(ip, 0) : v4(ip, 0);
	socklen_t len = sizeof(a);
	int fd = socket(a.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, &a.sa, addr_len(&a.sa)), 0);
	assert_int_equal(listen(fd, 0), 0);
	assert_int_equal(getsockname(fd, &a.sa, &len), 0);
	*port = ntohs(a.in.sin_port);
	if (full) {
		/* Backlog 0 holds one connection; two make sure. */
		for (int i = 0; i < 2; i++) {
			int c = socket(a.sa.sa_family,
			    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

			(void)connect(c, &a.sa, addr_len(&a.sa));
			usleep(20000);
		}
	}
	return fd;
}

/* An address nothing listens on: connecting is refused at once. */
static uint16_t
closed_port(void)
{
	uint16_t port;
	int fd = listener("127.0.0.1", &port, false);

	close(fd);
	return port;
}

static void
test_first_address_wins_alone(void **state)
{
	struct race r = { 0 };
	uint16_t port;
	int lfd = listener("127.0.0.1", &port, false);
	union sockaddr_any a[2] = { v4("127.0.0.1", port), v6("::1", port) };

	(void)state;
	race_run(&r, a, 2, 0.25, 5);
	assert_true(r.fd >= 0);
	assert_int_equal(r.err, 0);
	assert_int_equal(ntohs(r.addr.in.sin_port), port);
	assert_int_equal(r.addr.sa.sa_family, AF_INET);
	/* Connected before the delay: the second was never opened. */
	assert_int_equal(r.opened, 1);
	/* The winner is on the caller's watcher, stopped. */
	assert_int_equal(r.io.fd, r.fd);
	assert_false(ev_is_active(&r.io));
	close(r.fd);
	close(lfd);
}

static void
test_silent_address_loses_after_the_delay(void **state)
{
	struct race r = { 0 };
	uint16_t silent_port, port;
	int silent = listener("127.0.0.2", &silent_port, true);
	int good = listener("127.0.0.3", &port, false);
	union sockaddr_any a[2] = {
		v4("127.0.0.2", silent_port), v4("127.0.0.3", port)
	};
	unsigned fds = open_fds();

	(void)state;
	race_run(&r, a, 2, 0.2, 10);
	assert_true(r.fd >= 0);
	assert_int_equal(r.addr.in.sin_port, htons(port));
	assert_int_equal(r.opened, 2);
	/* Won by the second attempt one delay later, not after the timeout. */
	assert_true(r.ended - r.started >= 0.18);
	assert_true(r.ended - r.started < 1.0);
	/* The caller's watcher was left unset: the winner had its own. */
	assert_int_equal(r.io.fd, -1);
	/* The loser was closed: only the winner is new. */
	assert_int_equal(open_fds(), fds + 1);
	close(r.fd);
	close(silent);
	close(good);
}

static void
test_failure_starts_the_next_at_once(void **state)
{
	struct race r = { 0 };
	uint16_t port;
	int good = listener("127.0.0.1", &port, false);
	union sockaddr_any a[2] = {
		v4("127.0.0.1", closed_port()), v4("127.0.0.1", port)
	};

	(void)state;
	/* A delay far longer than the test: only a failure can start the
	 * second attempt this soon. */
	race_run(&r, a, 2, 2.0, 10);
	assert_true(r.fd >= 0);
	assert_int_equal(r.addr.in.sin_port, htons(port));
	assert_true(r.ended - r.started < 1.0);
	close(r.fd);
	close(good);
}

static void
test_all_refused_reports_the_error(void **state)
{
	struct race r = { 0 };
	union sockaddr_any a[2] = {
		v4("127.0.0.1", closed_port()), v6("::1", closed_port())
	};
	unsigned fds = open_fds();

	(void)state;
	race_run(&r, a, 2, 2.0, 10);
	assert_int_equal(r.fd, -1);
	assert_int_equal(r.err, ECONNREFUSED);
	assert_int_equal(r.opened, 2);
	assert_true(r.ended - r.started < 1.0);
	assert_int_equal(open_fds(), fds);
}

static void
test_timeout_ends_a_silent_race(void **state)
{
	struct race r = { 0 };
	uint16_t p1, p2;
	int s1 = listener("127.0.0.2", &p1, true);
	int s2 = listener("127.0.0.3", &p2, true);
	union sockaddr_any a[2] = { v4("127.0.0.2", p1), v4("127.0.0.3", p2) };
	unsigned fds = open_fds();

	(void)state;
	race_run(&r, a, 2, 0.1, 0.4);
	assert_int_equal(r.fd, -1);
	assert_int_equal(r.err, ETIMEDOUT);
	/* The second started 0.1 s in and had its own 0.4 s. */
	assert_true(r.ended - r.started >= 0.45);
	assert_true(r.ended - r.started < 2.0);
	assert_int_equal(open_fds(), fds);
	close(s1);
	close(s2);
}

/* At most two attempts are in flight: the third address waits for one of
 * them to end, not for the delay alone. */
static void
test_two_attempts_in_flight_at_most(void **state)
{
	struct race r = { 0 };
	uint16_t p[4];
	int s[4];
	union sockaddr_any a[4];
	char ip[16];

	(void)state;
	for (int i = 0; i < 4; i++) {
		snprintf(ip, sizeof(ip), "127.0.0.%d", 2 + i);
		s[i] = listener(ip, &p[i], true);
		a[i] = v4(ip, p[i]);
	}
	race_run(&r, a, 4, 0.05, 0.4);
	assert_int_equal(r.fd, -1);
	assert_int_equal(r.err, ETIMEDOUT);
	assert_int_equal(r.opened, 4);
	/* Two rounds of the timeout, not one (all four at once) or four. */
	assert_true(r.ended - r.started >= 0.8);
	assert_true(r.ended - r.started < 1.6);
	for (int i = 0; i < 4; i++)
		close(s[i]);
}

static void
test_denied_addresses_are_never_opened(void **state)
{
	struct race r = { .deny_ip = "127.0.0.1" };
	uint16_t port;
	int good = listener("::1", &port, false);
	union sockaddr_any a[3] = {
		v4("127.0.0.1", port), v6("::1", port), v4("127.0.0.1", port)
	};

	(void)state;
	race_run(&r, a, 3, 0.25, 5);
	assert_true(r.fd >= 0);
	assert_int_equal(r.addr.sa.sa_family, AF_INET6);
	assert_int_equal(r.opened, 1);
	assert_int_equal(r.denied, 1);
	close(r.fd);

	/* All denied: EACCES, at once, nothing opened. */
	memset(&r, 0, sizeof(r));
	r.deny_ip = "127.0.0.1";
	race_run(&r, a, 1, 0.25, 5);
	assert_int_equal(r.fd, -1);
	assert_int_equal(r.err, EACCES);
	assert_int_equal(r.opened, 0);
	close(good);
}

static void
test_free_mid_race_closes_everything(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct race r = { 0 };
	uint16_t p1, p2;
	int s1 = listener("127.0.0.2", &p1, true);
	int s2 = listener("127.0.0.3", &p2, true);
	union sockaddr_any a[2] = { v4("127.0.0.2", p1), v4("127.0.0.3", p2) };
	unsigned fds = open_fds();

	(void)state;
	r.loop = loop;
	ev_init(&r.timer, race_timer_cb);
	r.timer.data = &r;
	ev_init(&r.io, NULL);
	assert_true(happy_start(&r.happy, loop, &race_ops, &r, &r.io, a, 2,
	    0.05, 10));
	/* Let the second attempt start too (the delay's timer). */
	ev_run(loop, EVRUN_ONCE);
	assert_int_equal(r.opened, 2);
	assert_false(r.finished);
	assert_int_equal(open_fds(), fds + 2);
	happy_free(r.happy);
	assert_int_equal(open_fds(), fds);
	assert_false(ev_is_active(&r.io));
	assert_int_equal(r.io.fd, -1);
	ev_timer_stop(loop, &r.timer);
	ev_loop_destroy(loop);
	close(s1);
	close(s2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order_interleaves_families),
		cmocka_unit_test(test_first_address_wins_alone),
		cmocka_unit_test(test_silent_address_loses_after_the_delay),
		cmocka_unit_test(test_failure_starts_the_next_at_once),
		cmocka_unit_test(test_all_refused_reports_the_error),
		cmocka_unit_test(test_timeout_ends_a_silent_race),
		cmocka_unit_test(test_two_attempts_in_flight_at_most),
		cmocka_unit_test(test_denied_addresses_are_never_opened),
		cmocka_unit_test(test_free_mid_race_closes_everything),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
