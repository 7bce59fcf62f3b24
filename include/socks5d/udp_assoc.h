/*
 * The inside of one UDP association, shared by udp.c (its lifetime: relay
 * socket, control connection, timer) and udp_forward.c (its datagrams).
 */
#ifndef SOCKS5D_UDP_ASSOC_H
#define SOCKS5D_UDP_ASSOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <ev.h>

#include "socks5d/metrics.h"
#include "socks5d/resolver.h"
#include "socks5d/socks5.h"

/* The largest UDP payload over IPv4, and over IPv6 without jumbograms. */
#define UDP_MAX_IPV4           65507
#define UDP_MAX_IPV6           65527

/* Which outbound socket a datagram leaves by. */
enum udp_route {
	UDP_ROUTE_NONE = -1,   /* dropped (and counted), or held for DNS */
	UDP_ROUTE_IPV4 = 0,
	UDP_ROUTE_IPV6 = 1,
};
#define UDP_ROUTES 2

struct udp_stats {
	uint64_t dgrams_up, dgrams_down;
	uint64_t bytes_up, bytes_down;     /* payload bytes */
	uint64_t drops[METRICS_UDP_DROP_COUNT];    /* by reason */
};

struct udp_out {
	struct udp_assoc *a;
	int fd;
	ev_io io;
};

struct session;
struct udp_dns;

/* A remembered access decision for one destination. */
struct udp_verdict {
	uint64_t name_hash;                /* 0 for an address destination */
	union sockaddr_any dst;            /* with the port; AF_UNSPEC: a
	                                    * name an upstream resolves */
	uint16_t port;
	unsigned generation;               /* server config generation */
	bool used;
	bool allow;
};

#define UDP_VERDICTS 8

struct udp_assoc {
	struct session *s;
	int relay_fd;                      /* BND: the client's side */
	ev_io relay_io;
	struct udp_out out[UDP_ROUTES];    /* fd -1 until needed */
	union sockaddr_any client;         /* who may send; see client_port */
	bool client_port;                  /* false: learn from the first */
	size_t client_max;                 /* largest datagram to the client */
	ev_tstamp last_activity;
	struct udp_dns *dns;               /* NULL until a datagram names one */
	bool warned;                       /* outbound socket trouble logged */
	struct udp_stats stats;
	struct udp_stats published;        /* the part /metrics has seen */
	struct udp_verdict verdicts[UDP_VERDICTS];
	unsigned next_verdict;             /* the slot to replace next */
	/* Through an upstream: its control connection, which ends the
	 * association when it ends, and its relay, where every datagram
	 * goes (header and all) and the only source taken back. */
	int up_ctl_fd;                     /* -1: direct */
	ev_io up_ctl_io;
	union sockaddr_any up_relay;
};

/* A non-blocking datagram socket; IPv6 ones are IPv6-only. */
int udp_socket(int family);
/* Re-arm the session timer: the idle deadline, or sooner for a lookup. */
void udp_arm_timer(struct udp_assoc *a);
/* Hand /metrics what the counters gained since the last call. */
void udp_publish_stats(struct udp_assoc *a);
/* After a callback's datagrams were published: when they used up one of
 * the user's quotas, end the session ("quota") and return true (a is
 * gone; the caller returns). */
bool udp_quota_spent(struct udp_assoc *a);

/* The route through the upstream relay (by its family). */
enum udp_route udp_upstream_route(const struct udp_assoc *a);

/* udp_forward.c */
/* Set up the watchers (nothing runs yet). */
void udp_forward_init(struct udp_assoc *a);
/* Start reading datagrams from the client on a->relay_fd. */
void udp_forward_start(struct udp_assoc *a);
/* Stop every watcher and close the outbound sockets. */
void udp_forward_stop(struct udp_assoc *a);

#endif
