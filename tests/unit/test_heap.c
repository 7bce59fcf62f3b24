/*
 * Unit tests for the heap watch: when a burst of sessions counts as over
 * (the live count HEAP_BURST_SESSIONS below its peak), that the memory goes
 * back HEAP_TRIM_DELAY later and again while the burst goes on ending, that
 * the ticks stop once nothing more closed, and that the next burst is
 * measured from what was live then.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <ev.h>

#include "socks5d/heap.h"

static void
count_to(struct heap_watch *hw, unsigned from, unsigned to)
{
	while (from < to)
		heap_watch_sessions(hw, ++from);
	while (from > to)
		heap_watch_sessions(hw, --from);
}

static void
test_small_swings_do_nothing(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct heap_watch hw;

	(void)state;
	heap_watch_init(&hw, loop);
	count_to(&hw, 0, HEAP_BURST_SESSIONS);
	count_to(&hw, HEAP_BURST_SESSIONS, 1);
	assert_false(ev_is_active(&hw.timer));
	assert_int_equal(hw.peak, HEAP_BURST_SESSIONS);
	heap_watch_stop(&hw);
	ev_loop_destroy(loop);
}

static void
test_burst_over_at_once_trims_once(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct heap_watch hw;
	ev_tstamp started;

	(void)state;
	heap_watch_init(&hw, loop);
	count_to(&hw, 0, 3000);
	count_to(&hw, 3000, 3000 - HEAP_BURST_SESSIONS + 1);
	assert_false(ev_is_active(&hw.timer));
	count_to(&hw, 3000 - HEAP_BURST_SESSIONS + 1, 3000 - HEAP_BURST_SESSIONS);
	assert_true(ev_is_active(&hw.timer));
	/* The rest of the burst ends before the timer: one trim, then a tick
	 * that finds nothing more closed and stops. */
	count_to(&hw, 3000 - HEAP_BURST_SESSIONS, 10);
	ev_now_update(loop);
	started = ev_now(loop);
	ev_run(loop, 0);	/* returns once the timer has stopped */
	ev_now_update(loop);
	assert_true(ev_now(loop) - started >= 2 * HEAP_TRIM_DELAY - 0.05);
	assert_false(ev_is_active(&hw.timer));
	assert_int_equal(hw.trims, 1);
	/* The next burst counts from the 10 live at the trim. */
	assert_int_equal(hw.peak, 10);
	count_to(&hw, 10, 10 + HEAP_BURST_SESSIONS);
	count_to(&hw, 10 + HEAP_BURST_SESSIONS, 11);
	assert_false(ev_is_active(&hw.timer));
	heap_watch_sessions(&hw, 10);
	assert_true(ev_is_active(&hw.timer));
	heap_watch_stop(&hw);
	assert_false(ev_is_active(&hw.timer));
	ev_loop_destroy(loop);
}

/* A burst that ends over several ticks (clients held to a timeout time out
 * as spread as they were accepted): each tick that finds fewer sessions
 * than the last trim trims again, so the end of the burst is given back
 * too, not only its first few hundred sessions. */
static void
test_burst_ending_slowly_trims_its_tail(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct heap_watch hw;

	(void)state;
	heap_watch_init(&hw, loop);
	count_to(&hw, 0, 3000);
	count_to(&hw, 3000, 3000 - HEAP_BURST_SESSIONS);
	ev_run(loop, EVRUN_ONCE);	/* the first tick */
	assert_int_equal(hw.trims, 1);
	assert_true(ev_is_active(&hw.timer));
	/* Fewer than HEAP_BURST_SESSIONS more: left to the next tick. */
	count_to(&hw, 3000 - HEAP_BURST_SESSIONS, 3000 - HEAP_BURST_SESSIONS - 100);
	ev_run(loop, EVRUN_ONCE);
	assert_int_equal(hw.trims, 2);
	count_to(&hw, 3000 - HEAP_BURST_SESSIONS - 100, 5);
	ev_run(loop, EVRUN_ONCE);
	assert_int_equal(hw.trims, 3);
	/* A session opened is no reason to trim: the next tick stops. */
	heap_watch_sessions(&hw, 6);
	ev_run(loop, 0);
	assert_int_equal(hw.trims, 3);
	assert_false(ev_is_active(&hw.timer));
	assert_int_equal(hw.peak, 6);
	heap_watch_stop(&hw);
	ev_loop_destroy(loop);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_small_swings_do_nothing),
		cmocka_unit_test(test_burst_over_at_once_trims_once),
		cmocka_unit_test(test_burst_ending_slowly_trims_its_tail),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
