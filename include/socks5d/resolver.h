/*
 * Asynchronous name resolution: c-ares driven by the libev loop (an ev_io
 * per c-ares socket and one ev_timer from ares_timeout). Callers get a
 * handle they can cancel; the callback never runs inside resolver_lookup.
 */
#ifndef SOCKS5D_RESOLVER_H
#define SOCKS5D_RESOLVER_H

#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <ev.h>

#include "socks5d/addr.h"
#include "socks5d/config.h"

#define RESOLVER_MAX_ADDRS 16

enum resolver_status {
	RESOLVER_OK,
	RESOLVER_NOT_FOUND,    /* NXDOMAIN, no A/AAAA data, or no answer in time */
	RESOLVER_FAILED,       /* local failure (memory, channel) */
};

/* addrs holds n addresses (n >= 1 when status is RESOLVER_OK), with the
 * requested port set, in the order they should be tried. */
typedef void resolver_cb(void *arg, enum resolver_status status,
    const union sockaddr_any *addrs, size_t n);

struct resolver;
struct resolver_query;

/* Returns NULL with an error logged when c-ares cannot be set up. */
struct resolver *resolver_create(struct ev_loop *loop,
    const struct config *cfg);
void resolver_destroy(struct resolver *r);
/* A reload replaced r: destroy it once the answers to its queries in
 * flight are delivered (at once when there are none). */
void resolver_retire(struct resolver *r);

struct resolver_query *resolver_lookup(struct resolver *r, const char *name,
    uint16_t port, enum dns_family family, resolver_cb *cb, void *arg);
/* The name an address has in DNS (its PTR record), to name_cb; name is
 * NULL unless status is RESOLVER_OK. Cancelled like any query. */
typedef void resolver_name_cb(void *arg, enum resolver_status status,
    const char *name);
struct resolver_query *resolver_reverse(struct resolver *r,
    const union sockaddr_any *addr, resolver_name_cb *cb, void *arg);

/* A reload read the hosts file again: answer from this one from now on
 * (answers already given keep their addresses). */
struct hosts;
void resolver_set_hosts(struct resolver *r, struct hosts *hosts);
/* The callback of a cancelled query is never called. */
void resolver_cancel(struct resolver_query *q);

#endif
