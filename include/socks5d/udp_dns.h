/*
 * Names in UDP ASSOCIATE datagrams: a small per-association table of names
 * already looked up, and a bounded queue of datagrams held while their name
 * is being resolved. Knows nothing of sockets: a held datagram comes back
 * through a callback once its name resolved or failed.
 */
#ifndef SOCKS5D_UDP_DNS_H
#define SOCKS5D_UDP_DNS_H

#include <stddef.h>
#include <stdint.h>
#include <ev.h>

#include "socks5d/config.h"
#include "socks5d/resolver.h"

/* Names remembered per association; the oldest settled one makes room. */
#define UDP_DNS_NAMES          32
/* Datagrams held while names resolve, and their payload bytes in all. */
#define UDP_DNS_HELD_MAX       16
#define UDP_DNS_HELD_BYTES     (128 * 1024)
/* Seconds a name that did not resolve is answered from the table. */
#define UDP_DNS_RETRY          5.0

enum udp_dns_result {
	UDP_DNS_FOUND,         /* *addr holds the address with the port */
	UDP_DNS_HELD,          /* copied; comes back through the callback */
	UDP_DNS_FULL,          /* no room to hold it */
	UDP_DNS_FAILED,        /* the name does not resolve */
};

/*
 * A held datagram's turn: addr (with its port) is where it may go, or NULL
 * when the name did not resolve. The callback must not free the table.
 */
typedef void udp_dns_release_cb(void *arg, const char *name,
    const union sockaddr_any *addr, const uint8_t *payload, size_t len);

struct udp_dns;

/* timeout: seconds after which a lookup is given up (udp_dns_expire).
 * Returns NULL when out of memory. */
struct udp_dns *udp_dns_create(struct ev_loop *loop,
    struct resolver *const *r,
    enum dns_family family, ev_tstamp timeout, udp_dns_release_cb *cb,
    void *arg);
/* Where a datagram for name:port goes: known now, held, or dropped. */
enum udp_dns_result udp_dns_route(struct udp_dns *d, const char *name,
    uint16_t port, const uint8_t *payload, size_t len,
    union sockaddr_any *addr);
/* Give up on lookups past their timeout (their datagrams come back with
 * addr NULL). Returns when to call again, or 0 when nothing is pending. */
ev_tstamp udp_dns_expire(struct udp_dns *d);
/* How many datagrams are held right now. */
size_t udp_dns_held(const struct udp_dns *d);
/* Cancel lookups and free held datagrams without calling back. */
void udp_dns_free(struct udp_dns *d);

#endif
