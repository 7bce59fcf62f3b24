/*
 * Giving heap memory back after bursts. A session is a few small heap
 * blocks (the session with its inline handshake buffer, names, a copy
 * buffer while it relays), so a burst of a few thousand clients (hostile
 * ones held to the handshake timeout, a flood of garbage) grows the heap by
 * megabytes. When they go, glibc keeps the freed blocks for reuse: it
 * returns only a free top of the heap, and one block still in use above
 * them (a session that outlived the burst) pins everything below. Left
 * alone, a daemon that once met a flood keeps its high-water mark for
 * good.
 *
 * malloc_trim() also releases whole free pages inside the heap (madvise
 * MADV_DONTNEED), so a call after a burst gives back what it took. It
 * walks the allocator's free lists, about a millisecond for a heap of tens
 * of MB, so it runs per burst, never per session: HEAP_TRIM_DELAY after
 * the count of live sessions fell HEAP_BURST_SESSIONS below its peak, and
 * again every HEAP_TRIM_DELAY while the count goes on falling. A burst
 * rarely ends at once: clients held to the handshake timeout were
 * accepted over a second or two and time out just as spread, and a single
 * trim 0.5 s after the first few hundred left the rest of the burst (up to
 * hundreds of sessions, a MiB or more) in the heap. The ticks stop at the
 * first one that finds no session closed since the last trim; under
 * steady load the count never falls HEAP_BURST_SESSIONS below its peak
 * and nothing runs.
 */
#include <malloc.h>
#ifdef __SANITIZE_ADDRESS__
/* libasan's; GCC 12 ships no header that declares it. */
void __sanitizer_purge_allocator(void);
#endif

#include "socks5d/heap.h"

/* Under AddressSanitizer malloc is its own allocator, which malloc_trim
 * does not reach: its purge gives back the same, so the test builds show
 * the footprint the release build has. */
static void
heap_give_back(void)
{
#ifdef __SANITIZE_ADDRESS__
	__sanitizer_purge_allocator();
#else
	malloc_trim(0);
#endif
}

static void
heap_trim_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct heap_watch *hw = w->data;

	(void)revents;
	if (hw->live < hw->trimmed_at) {
		heap_give_back();
		hw->trims++;
		hw->trimmed_at = hw->live;
		return;		/* the timer repeats: the burst may go on ending */
	}
	/* Nothing closed since the last trim: the burst is over, and the next
	 * one is measured from what is live now. */
	ev_timer_stop(loop, w);
	hw->peak = hw->live;
}

void
heap_watch_init(struct heap_watch *hw, struct ev_loop *loop)
{
	hw->loop = loop;
	hw->live = hw->peak = 0;
	hw->trimmed_at = 0;
	hw->trims = 0;
	ev_timer_init(&hw->timer, heap_trim_cb, HEAP_TRIM_DELAY, HEAP_TRIM_DELAY);
	hw->timer.data = hw;
}

void
heap_watch_sessions(struct heap_watch *hw, unsigned live)
{
	hw->live = live;
	if (live > hw->peak)
		hw->peak = live;
	else if (hw->peak - live >= HEAP_BURST_SESSIONS &&
	    !ev_is_active(&hw->timer)) {
		hw->trimmed_at = hw->peak;
		ev_timer_start(hw->loop, &hw->timer);
	}
}

void
heap_watch_stop(struct heap_watch *hw)
{
	if (hw->loop != NULL)
		ev_timer_stop(hw->loop, &hw->timer);
}
