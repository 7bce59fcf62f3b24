/*
 * Unit tests for the bandwidth-limit buckets: parsing rates, merging a
 * rule's keys over [limits]', sharing buckets by key, the burst, the
 * debt a datagram may leave, and waking waiters from the bucket's timer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <ev.h>

#include "socks5d/ratelimit.h"
#include "socks5d/size.h"

static void
test_sizes(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(size_parse("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(size_parse("512k", &v), 0);
	assert_int_equal(v, 512 * 1024);
	assert_int_equal(size_parse("10M", &v), 0);
	assert_int_equal(v, 10ull << 20);
	assert_int_equal(size_parse("3G", &v), 0);
	assert_int_equal(v, 3ull << 30);
	assert_int_equal(size_parse("2T", &v), 0);
	assert_int_equal(v, 2ull << 40);
	assert_int_equal(size_parse("18446744073709551615", &v), 0);
	assert_int_equal(v, UINT64_MAX);
	assert_int_equal(size_parse("18446744073709551616", &v), -1);
	assert_int_equal(size_parse("17179869184G", &v), -1);
	assert_int_equal(size_parse("", &v), -1);
	assert_int_equal(size_parse("-1", &v), -1);
	assert_int_equal(size_parse("1.5M", &v), -1);
	assert_int_equal(size_parse("10X", &v), -1);
	assert_int_equal(size_parse("10MM", &v), -1);
	assert_int_equal(size_parse("M", &v), -1);
}

static void
test_spec_keys_and_merge(void **state)
{
	struct rate_spec limits = { .up = 100, .down = 200,
		.per = RATE_PER_USER }, rule, merged;
	char why[128];

	(void)state;
	memset(&rule, 0, sizeof(rule));
	assert_false(rate_spec_given(&rule));
	merged = rate_spec_merge(&limits, NULL);
	assert_int_equal(merged.down, 200);
	assert_int_equal(rate_spec_set(&rule, "rate_down", "0", why,
	    sizeof(why)), 0);
	assert_int_equal(rate_spec_set(&rule, "rate_per", " rule ", why,
	    sizeof(why)), 0);
	assert_true(rate_spec_given(&rule));
	merged = rate_spec_merge(&limits, &rule);
	/* The rule lifted the download limit and kept [limits]' upload. */
	assert_int_equal(merged.down, 0);
	assert_int_equal(merged.up, 100);
	assert_int_equal(merged.per, RATE_PER_RULE);
	assert_int_equal(rate_spec_set(&rule, "rate_up", "1.5M", why,
	    sizeof(why)), -1);
	assert_non_null(strstr(why, "\"1.5M\" is not a rate"));
	assert_int_equal(rate_spec_set(&rule, "rate_per", "host", why,
	    sizeof(why)), -1);
	assert_non_null(strstr(why, "not user, client, session or rule"));
	assert_int_equal(rate_spec_set(&rule, "rate_sideways", "1", why,
	    sizeof(why)), -1);
}

static void
test_buckets_shared_by_key(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct rate_bucket *a, *b, *c, *mine;

	(void)state;
	a = rate_bucket_acquire(loop, "u:alice", 1000);
	b = rate_bucket_acquire(loop, "u:alice", 2000);
	c = rate_bucket_acquire(loop, "u:bob", 1000);
	mine = rate_bucket_acquire(loop, NULL, 1000);
	assert_ptr_equal(a, b);
	assert_ptr_not_equal(a, c);
	assert_int_equal(rate_buckets_live(), 3);
	/* The burst is one second of the latest rate; what one spends, the
	 * other no longer has. */
	assert_int_equal(rate_bucket_allow(a, NULL, 5000), 1000);
	rate_bucket_spend(a, NULL, 700);
	assert_true(rate_bucket_allow(b, NULL, 5000) <= 300 + 10);
	assert_int_equal(rate_bucket_allow(c, NULL, 5000), 1000);
	rate_bucket_release(a);
	assert_int_equal(rate_buckets_live(), 3);
	rate_bucket_release(b);
	rate_bucket_release(c);
	rate_bucket_release(mine);
	rate_bucket_release(NULL);
	assert_int_equal(rate_buckets_live(), 0);
	ev_loop_destroy(loop);
}

static void
test_datagram_debt(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct rate_bucket *b = rate_bucket_acquire(loop, NULL, 1000);

	(void)state;
	/* A datagram larger than what is left still passes once, leaving a
	 * debt that holds back everything after it. */
	assert_true(rate_bucket_take(b, 900));
	assert_true(rate_bucket_take(b, 900));
	assert_false(rate_bucket_take(b, 1));
	assert_int_equal(rate_bucket_allow(b, NULL, 100), 0);
	rate_bucket_release(b);
	ev_loop_destroy(loop);
}

struct waker {
	struct rate_waiter w;
	int woken;
	int order;
	struct rate_bucket *b;
	size_t took;
};

static int test_wakes;

/* A woken relay direction: read what its turn allows, then queue again
 * at the back, as the relay does. */
static void
test_wake(struct rate_waiter *w)
{
	struct waker *k = (struct waker *)(void *)w;
	size_t n = rate_bucket_allow(k->b, w, 1 << 20);

	k->woken++;
	k->order = ++test_wakes;
	rate_bucket_spend(k->b, w, n);
	k->took += n;
	assert_int_equal(rate_bucket_allow(k->b, w, 1), 0);
}

static void
test_stop_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)w;
	(void)revents;
	ev_break(loop, EVBREAK_ALL);
}

static void
test_turns_in_order_and_even_shares(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	/* 20 ms of 100000 B/s is 2000 B: the level worth waking for. */
	struct rate_bucket *b = rate_bucket_acquire(loop, "k", 100000);
	struct waker k[3];
	ev_timer stop;

	(void)state;
	memset(k, 0, sizeof(k));
	test_wakes = 0;
	rate_bucket_spend(b, NULL, rate_bucket_allow(b, NULL, 1 << 20));
	for (int i = 0; i < 3; i++) {
		k[i].w.wake = test_wake;
		k[i].b = b;
		rate_bucket_wait(b, &k[i].w);
	}
	/* One queued while others wait may not read ahead of them. */
	assert_int_equal(rate_bucket_allow(b, NULL, 1), 0);
	/* The first turn goes to the first to wait, then the next. */
	ev_timer_init(&stop, test_stop_cb, 0.03, 0.);
	ev_timer_start(loop, &stop);
	ev_run(loop, 0);
	assert_int_equal(k[0].woken, 1);
	assert_int_equal(k[0].order, 1);
	assert_true(k[0].took >= 1500 && k[0].took <= 3500);
	/* Each woken one re-queues only by waiting again (the relay does). */
	for (int round = 0; round < 20; round++) {
		for (int i = 0; i < 3; i++)
			if (k[i].w.next == NULL && k[i].w.bucket == NULL)
				rate_bucket_wait(b, &k[i].w);
		ev_timer_set(&stop, 0.03, 0.);
		ev_timer_start(loop, &stop);
		ev_run(loop, 0);
	}
	/* About 0.63 s of 100000 B/s, shared three ways within a turn. */
	for (int i = 0; i < 3; i++) {
		assert_true(k[i].woken >= 5);
		assert_true(k[i].took * 3 + 12000 >= k[0].took + k[1].took +
		    k[2].took);
	}
	for (int i = 0; i < 3; i++)
		rate_waiter_cancel(&k[i].w);
	ev_timer_stop(loop, &stop);
	rate_bucket_release(b);
	ev_loop_destroy(loop);
}

static void
test_a_turn_given_back_passes_on(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct rate_bucket *b = rate_bucket_acquire(loop, NULL, 100000);
	struct rate_waiter gone = { .wake = NULL };
	struct waker next = { .w.wake = test_wake };

	(void)state;
	test_wakes = 0;
	next.b = b;
	rate_bucket_spend(b, NULL, rate_bucket_allow(b, NULL, 1 << 20));
	rate_bucket_wait(b, &gone);
	rate_bucket_wait(b, &next.w);
	/* gone's session ends while queued: next is first now. */
	rate_waiter_cancel(&gone);
	rate_waiter_cancel(&gone);
	ev_run(loop, EVRUN_ONCE);
	while (next.woken == 0)
		ev_run(loop, EVRUN_ONCE);
	assert_int_equal(next.woken, 1);
	assert_true(next.took >= 1500);
	rate_bucket_release(b);
	ev_loop_destroy(loop);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_spec_keys_and_merge),
		cmocka_unit_test(test_buckets_shared_by_key),
		cmocka_unit_test(test_datagram_debt),
		cmocka_unit_test(test_turns_in_order_and_even_shares),
		cmocka_unit_test(test_a_turn_given_back_passes_on),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
