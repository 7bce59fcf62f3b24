/*
 * Happy Eyeballs (RFC 8305): connect to one of several addresses of a
 * destination by racing attempts. The addresses are put in interleaved
 * family order, the first attempt starts at once and each next one after
 * the connection attempt delay, or at once when the one before failed;
 * the first socket to connect wins and every other attempt is closed. A
 * destination whose IPv6 path drops packets silently is thus reached
 * over IPv4 after one delay, not after the connect timeout.
 *
 * The race knows nothing of sessions: the owner judges each address as it
 * opens its socket (with its source address), keeps the one timer and
 * takes the result.
 */
#ifndef SOCKS5D_HAPPY_H
#define SOCKS5D_HAPPY_H

#include <stdbool.h>
#include <stddef.h>
#include <ev.h>

#include "socks5d/addr.h"

struct happy;

struct happy_ops {
	/* A non-blocking stream socket for connecting to dst (bound to its
	 * source address), or -1 with errno set: EACCES when dst may not be
	 * connected to. Either way the race goes on with the next address. */
	int (*open_socket)(void *arg, const struct sockaddr *dst);
	/* Call happy_timer() after this many seconds, replacing any earlier
	 * request. */
	void (*arm)(void *arg, ev_tstamp after);
	/* The race is over. fd >= 0: connected to *addr and the caller's;
	 * when it is not on the caller's watcher (io given to happy_start),
	 * that watcher is left unset. fd -1: every attempt failed, err says
	 * how the last one did. Called once, last: it may free the race. */
	void (*done)(void *arg, int fd, const union sockaddr_any *addr,
	    int err);
};

/*
 * Put addrs in the order to try them: the family of the first address
 * (the resolver's preference, or [dns] family) first, then the other,
 * alternating while both have addresses left; each family keeps its own
 * order.
 */
void happy_order(union sockaddr_any *addrs, size_t n);

/*
 * Start racing the n addresses (already in happy_order order, ports set)
 * with attempts delay seconds apart, each given timeout seconds. io is
 * the caller's watcher, used for an attempt while free, so the usual
 * winner needs no new watcher. *hp is set before the first attempt, so
 * ops->done, which may come before this returns, can free the race
 * through it. false when out of memory: nothing started, no done.
 */
bool happy_start(struct happy **hp, struct ev_loop *loop,
    const struct happy_ops *ops, void *arg, ev_io *io,
    const union sockaddr_any *addrs, size_t n, ev_tstamp delay,
    ev_tstamp timeout);

/* The time asked for with ops->arm has come: give up on attempts past
 * their timeout and start the next one when it is due. */
void happy_timer(struct happy *h);

/* Close every attempt still running and free the race. Done with its
 * result, or abandoned (the session closed): the same call. */
void happy_free(struct happy *h);

#endif
