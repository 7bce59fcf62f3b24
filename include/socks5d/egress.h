/*
 * Egress pools: the source addresses outbound connections and UDP
 * associations leave from, chosen per user, per session, at random or in
 * turn from a list of addresses and networks ([outbound] egress, a rule's
 * egress). A pool's addresses need not be configured on an interface: the
 * socket is bound with IP_FREEBIND, so a whole routed IPv6 /64 can serve
 * (the operator adds "ip -6 route add local PREFIX dev lo").
 */
#ifndef SOCKS5D_EGRESS_H
#define SOCKS5D_EGRESS_H

#include <stdbool.h>
#include <stddef.h>

#include "socks5d/addr.h"
#include "socks5d/cidr.h"

enum egress_select {
	EGRESS_UNSET = -1,      /* a rule's: [outbound] egress_select */
	EGRESS_USER,            /* a keyed hash of the user (or client IP) */
	EGRESS_SESSION,         /* a fresh address for each session */
	EGRESS_RANDOM,
	EGRESS_ROUND_ROBIN,
};

/* { name, value } pairs, for every table of the names. */
#define EGRESS_SELECT_NAMES                                             \
	{ "user", EGRESS_USER }, { "session", EGRESS_SESSION },        \
	{ "random", EGRESS_RANDOM }, { "round-robin", EGRESS_ROUND_ROBIN }

/* The mode named (any case), or EGRESS_UNSET. */
enum egress_select egress_select_parse(const char *name);

struct egress_walk;

/* A configured pool: empty when none is set. */
struct egress {
	struct cidr_set pool;
	cidr_u128 size[2];                 /* [0] IPv4, [1] IPv6 */
	struct egress_walk *walk;          /* this process's session and
	                                    * round-robin positions */
};

/* Add a comma-separated list of addresses and CIDRs. 0, or -1 with why
 * (which never holds more than the bad item). */
int egress_add(struct egress *e, const char *list, char *why, size_t whylen);

/* After the last egress_add (and before any pick): merge and count. */
void egress_finish(struct egress *e);

void egress_release(struct egress *e);

bool egress_empty(const struct egress *e);

/*
 * The source address for a session's outbound socket of family (port 0),
 * chosen from e by select: false when e has no address of that family
 * (the kernel's choice, or [outbound] bind_ipv4/6, then applies). user
 * NULL: no login, and the user mode keys on the client's address.
 */
bool egress_pick(const struct egress *e, enum egress_select select,
    int family, const char *user, const struct sockaddr *client,
    union sockaddr_any *out);

/* The user mode's choice, for tests: the index of user's address in a
 * pool of size addresses. Stable across processes and reloads, and a pool
 * that grows moves few users (jump consistent hash). */
cidr_u128 egress_user_index(const char *key, size_t keylen, cidr_u128 size);

/* Log a warning for each network of the pool whose first address is not
 * this host's (neither configured nor under a local route): connections
 * from it would leave but get no answer. where names the key ("[outbound]
 * egress", "[rule NAME] egress"). */
void egress_warn_not_local(const struct egress *e, const char *where);

/* Bind fd (a new socket of src's family) to src, which need not be a
 * local address yet (IP_FREEBIND); TCP sockets get their port at
 * connect() (IP_BIND_ADDRESS_NO_PORT). -1 with errno. */
int egress_bind(int fd, const union sockaddr_any *src, bool stream);

#endif
