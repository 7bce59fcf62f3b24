/*
 * Unit tests for the I/O batch: queued socket calls are made once the
 * loop's callbacks have run, reads before writes, each result handed to
 * its done function; a cancelled call is never made; a full socket
 * answers -EAGAIN at once; a full batch and no batch say "make the call
 * yourself"; a ring that fails is given up without losing what was
 * queued beside the failed batch.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "socks5d/io_batch.h"

struct done_log {
	int n;
	int tags[8];
	ssize_t results[8];
};

static struct done_log log_;

static void
record_done(void *owner, int tag, ssize_t result)
{
	(void)owner;
	if (log_.n < 8) {
		log_.tags[log_.n] = tag;
		log_.results[log_.n] = result;
	}
	log_.n++;
}

struct fixture {
	struct ev_loop *loop;
	int a[2], b[2];
};

static int
setup(void **state)
{
	static struct fixture f;

	memset(&log_, 0, sizeof(log_));
	if ((f.loop = ev_loop_new(EVFLAG_AUTO)) == NULL ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, f.a) == -1 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, f.b) == -1)
		return -1;
	*state = &f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	io_batch_stop();
	ev_loop_destroy(f->loop);
	close(f->a[0]);
	close(f->a[1]);
	close(f->b[0]);
	close(f->b[1]);
	return 0;
}

/* What is waiting on fd now, without waiting: -1 for nothing. */
static ssize_t
peek_now(int fd, char *buf, size_t len)
{
	return recv(fd, buf, len, MSG_DONTWAIT);
}

static void
test_calls_wait_for_the_turn(void **state)
{
	struct fixture *f = *state;
	char buf[16];
	int owner;

	assert_true(io_batch_start(f->loop));
	assert_true(io_batch_enabled());
	assert_int_equal(io_batch_send(f->a[0], "hello", 5, record_done,
	    &owner, 1), 0);
	/* Queued, not sent: the turn has not ended. */
	assert_int_equal(peek_now(f->a[1], buf, sizeof(buf)), -1);
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(log_.n, 0);
	ev_run(f->loop, EVRUN_NOWAIT);
	assert_int_equal(log_.n, 1);
	assert_int_equal(log_.tags[0], 1);
	assert_int_equal(log_.results[0], 5);
	assert_int_equal(peek_now(f->a[1], buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "hello", 5);
}

/* A read's done function queues the write of what it read: both are made
 * in the same turn, the read first. */
static char echo_buf[64];
static int echo_fd;

static void
echo_done(void *owner, int tag, ssize_t result)
{
	record_done(owner, tag, result);
	if (tag == 2 && result > 0)
		assert_int_equal(io_batch_send(echo_fd, echo_buf,
		    (size_t)result, record_done, owner, 3), 0);
}

static void
test_reads_first_then_their_writes(void **state)
{
	struct fixture *f = *state;
	char buf[16];
	int owner;

	assert_true(io_batch_start(f->loop));
	assert_int_equal(write(f->b[1], "ping", 4), 4);
	echo_fd = f->a[0];
	/* Queued in the other order: the read still goes first. */
	assert_int_equal(io_batch_send(f->a[0], "x", 1, echo_done, &owner, 1),
	    0);
	assert_int_equal(io_batch_recv(f->b[0], echo_buf, sizeof(echo_buf),
	    echo_done, &owner, 2), 0);
	ev_run(f->loop, EVRUN_NOWAIT);
	assert_int_equal(log_.n, 3);
	assert_int_equal(log_.tags[0], 2);
	assert_int_equal(log_.results[0], 4);
	assert_int_equal(log_.tags[1], 1);
	assert_int_equal(log_.results[1], 1);
	assert_int_equal(log_.tags[2], 3);
	assert_int_equal(log_.results[2], 4);
	assert_int_equal(peek_now(f->a[1], buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "xping", 5);
	/* An empty socket: EAGAIN, at once. */
	assert_int_equal(io_batch_recv(f->b[0], echo_buf, sizeof(echo_buf),
	    record_done, &owner, 4), 0);
	ev_run(f->loop, EVRUN_NOWAIT);
	assert_int_equal(log_.n, 4);
	assert_int_equal(log_.results[3], -EAGAIN);
}

/* Cancelling owner "second" from owner "first"'s done function. */
static int first_owner, second_owner;

static void
cancel_done(void *owner, int tag, ssize_t result)
{
	record_done(owner, tag, result);
	io_batch_cancel(&second_owner);
}

static void
test_cancelled_calls_are_not_made(void **state)
{
	struct fixture *f = *state;
	char buf[16];

	assert_true(io_batch_start(f->loop));
	assert_int_equal(io_batch_send(f->a[0], "gone", 4, record_done,
	    &second_owner, 1), 0);
	io_batch_cancel(&second_owner);
	ev_run(f->loop, EVRUN_NOWAIT);
	assert_int_equal(log_.n, 0);
	assert_int_equal(peek_now(f->a[1], buf, sizeof(buf)), -1);
	/* Cancelled while its batch completes: made, but no done. */
	assert_int_equal(io_batch_send(f->a[0], "one", 3, cancel_done,
	    &first_owner, 1), 0);
	assert_int_equal(io_batch_send(f->b[0], "two", 3, record_done,
	    &second_owner, 2), 0);
	ev_run(f->loop, EVRUN_NOWAIT);
	assert_int_equal(log_.n, 1);
	assert_int_equal(log_.tags[0], 1);
	assert_int_equal(peek_now(f->a[1], buf, sizeof(buf)), 3);
	assert_int_equal(peek_now(f->b[1], buf, sizeof(buf)), 3);
}

static void
test_full_socket_says_eagain(void **state)
{
	struct fixture *f = *state;
	static char chunk[65536];
	int owner;

	assert_true(io_batch_start(f->loop));
	while (send(f->a[0], chunk, sizeof(chunk), MSG_DONTWAIT) > 0)
		;
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(io_batch_send(f->a[0], chunk, sizeof(chunk),
	    record_done, &owner, 1), 0);
	ev_run(f->loop, EVRUN_NOWAIT);
	assert_int_equal(log_.n, 1);
	assert_int_equal(log_.results[0], -EAGAIN);
}

static void
test_full_or_no_batch_says_call_yourself(void **state)
{
	struct fixture *f = *state;
	int owner, i, queued = 0;

	assert_false(io_batch_enabled());
	assert_int_equal(io_batch_send(f->a[0], "x", 1, record_done, &owner,
	    1), -1);
	assert_true(io_batch_start(f->loop));
	for (i = 0; i < 1000; i++)
		if (io_batch_send(f->a[0], "x", 1, record_done, &owner, 1) == 0)
			queued++;
	/* Bounded, and a full batch is not an error. */
	assert_true(queued > 0 && queued < 1000);
	ev_run(f->loop, EVRUN_NOWAIT);
	assert_int_equal(log_.n, queued);
	io_batch_stop();
	assert_false(io_batch_enabled());
	assert_int_equal(io_batch_recv(f->a[1], echo_buf, 1, record_done,
	    &owner, 1), -1);
}

/* The ring's descriptor, as /proc/self/fd names it. */
static int
ring_fd(void)
{
	char path[64], target[64];
	int fd;

	for (fd = 3; fd < 1024; fd++) {
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n = readlink(path, target, sizeof(target) - 1);
		if (n > 0) {
			target[n] = '\0';
			if (strstr(target, "io_uring") != NULL)
				return fd;
		}
	}
	return -1;
}

/* A ring that fails (here: its descriptor closed under it) is given up:
 * the operations of the failed batch end with an error, those queued
 * beside it are made one by one, and from then on nothing is queued. */
static void
test_broken_ring_is_given_up(void **state)
{
	struct fixture *f = *state;
	char buf[16];
	int owner, fd;

	assert_true(io_batch_start(f->loop));
	assert_int_equal(write(f->b[1], "in", 2), 2);
	assert_int_equal(io_batch_recv(f->b[0], echo_buf, sizeof(echo_buf),
	    record_done, &owner, 1), 0);
	assert_int_equal(io_batch_send(f->a[0], "out", 3, record_done,
	    &owner, 2), 0);
	assert_true((fd = ring_fd()) != -1);
	assert_int_equal(close(fd), 0);
	ev_run(f->loop, EVRUN_NOWAIT);
	assert_int_equal(log_.n, 2);
	assert_int_equal(log_.tags[0], 1);
	assert_int_equal(log_.results[0], -ECANCELED);
	assert_int_equal(log_.tags[1], 2);
	assert_int_equal(log_.results[1], 3);
	assert_int_equal(peek_now(f->a[1], buf, sizeof(buf)), 3);
	assert_false(io_batch_enabled());
	assert_int_equal(io_batch_send(f->a[0], "x", 1, record_done, &owner,
	    3), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_calls_wait_for_the_turn,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_reads_first_then_their_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_cancelled_calls_are_not_made, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_socket_says_eagain,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_full_or_no_batch_says_call_yourself, setup, teardown),
		cmocka_unit_test_setup_teardown(test_broken_ring_is_given_up,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
