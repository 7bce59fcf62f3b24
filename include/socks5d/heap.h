/*
 * Giving heap memory back to the system once a burst of sessions is over.
 */
#ifndef SOCKS5D_HEAP_H
#define SOCKS5D_HEAP_H

#include <ev.h>

/* Sessions gone since the highest count that make a burst worth giving
 * back: a few hundred sessions of a few KiB each, about a MiB. */
#define HEAP_BURST_SESSIONS	256
/* Seconds from a burst's end being seen to the memory going back, and
 * between further trims while the count goes on falling. */
#define HEAP_TRIM_DELAY		0.5
/* What a TLS session weighs against a plain one: OpenSSL's state for a
 * handshake is tens of KiB, so a burst of a hundred is one worth giving
 * back. */
#define HEAP_TLS_WEIGHT		16

struct heap_watch {
	ev_timer	 timer;
	struct ev_loop	*loop;
	unsigned	 live;		/* sessions now */
	unsigned	 peak;		/* most since the last burst */
	unsigned	 trimmed_at;	/* live at the last trim of this burst */
	unsigned long	 trims;		/* memory given back, times */
};

void heap_watch_init(struct heap_watch *hw, struct ev_loop *loop);
/* The number of live sessions went up or down to live. */
void heap_watch_sessions(struct heap_watch *hw, unsigned live);
void heap_watch_stop(struct heap_watch *hw);

#endif
