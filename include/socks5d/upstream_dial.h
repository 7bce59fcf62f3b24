/*
 * Reaching a destination through an upstream proxy: the members of an
 * [upstream NAME] in order, each resolved, raced (Happy Eyeballs, with the
 * session's egress address) and greeted in its own protocol (SOCKS5 with
 * an optional RFC 1929 login, or HTTP CONNECT with Basic), until one
 * answers. A member that does not answer, or refuses us, counts against
 * its health and the next is tried; a member's answer about the
 * destination (refused, unreachable, not allowed) is the session's answer.
 *
 * The dial copies what it needs of the upstream, so a reload that frees
 * the config does not pull the members from under it.
 */
#ifndef SOCKS5D_UPSTREAM_DIAL_H
#define SOCKS5D_UPSTREAM_DIAL_H

#include <stdbool.h>
#include <stdint.h>

#include "socks5d/addr.h"
#include "socks5d/socks5.h"
#include "socks5d/upstream.h"

struct session;
struct upstream_dial;

/*
 * The dial is over. rep REPLY_SUCCESS: fd is connected through the
 * upstream (the caller's, watched by nothing, though s->target_io may be
 * set on it), addr is the member's address and bnd what it answered;
 * otherwise fd is -1 and rep is the session's answer. Called last: it may
 * free the dial (s->hs->dial).
 */
typedef void upstream_dial_cb(struct session *s, uint8_t rep, int fd,
    const union sockaddr_any *addr, const struct socks5_addr *bnd);

/* Start cmd to dst through u; the dial is kept in s->hs->dial. CONNECT
 * goes through any member, BIND only through SOCKS5 ones (0x07 when u has
 * none); for BIND, success is the upstream's first reply, bnd the address
 * it listens on. cb may run before this returns. */
void upstream_dial_start(struct session *s, const struct upstream *u,
    uint8_t cmd, const struct socks5_addr *dst, upstream_dial_cb *cb);

/*
 * One more SOCKS5 reply on fd (BIND's second), after the dial answered:
 * read to its exact length into the dial's buffer, so keep the dial until
 * this gives 1 (*out holds it) or -1 (the upstream closed or spoke
 * garbage); 0: not all here yet, wait for readable.
 */
int upstream_dial_next_reply(struct upstream_dial *d, int fd,
    struct socks5_reply *out);

/* Is the dial still at work (not yet answered)? */
bool upstream_dial_busy(const struct upstream_dial *d);

/* The session timer fired while dialling. */
void upstream_dial_timeout(struct upstream_dial *d);

/* Stop and free a dial (NULL is fine): its sockets closed, its lookups
 * cancelled, the copied credentials wiped. */
void upstream_dial_free(struct upstream_dial *d);

#endif
