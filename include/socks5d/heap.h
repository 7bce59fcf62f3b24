/*
 * Giving heap memory back to the system once a burst of sessions is over.
 */
#ifndef SOCKS5D_HEAP_H
#define SOCKS5D_HEAP_H

#include <ev.h>

/* Sessions gone since the highest count that make a burst worth giving
 * back: a few hundred sessions of a few KiB each, about a MiB. */
#define HEAP_BURST_SESSIONS	256
/* Seconds from the burst's end being seen to the memory going back: the
 * rest of a burst that ends at once (a timeout that struck them all) is
 * gone by then. */
#define HEAP_TRIM_DELAY		0.5
/* What a TLS session weighs against a plain one: OpenSSL's state for a
 * handshake is tens of KiB, so a burst of a hundred is one worth giving
 * back. */
#define HEAP_TLS_WEIGHT		16

struct heap_watch {
	ev_timer	 timer;
	struct ev_loop	*loop;
	unsigned	 live;		/* sessions now */
	unsigned	 peak;		/* most since the last trim */
};

void heap_watch_init(struct heap_watch *hw, struct ev_loop *loop);
/* The number of live sessions went up or down to live. */
void heap_watch_sessions(struct heap_watch *hw, unsigned live);
void heap_watch_stop(struct heap_watch *hw);

#endif
