/*
 * CIDR sets: lists of IPv4 and IPv6 networks, as the access rules' client
 * and dest lists and [server] proxy_protocol_from use them. Pure: no I/O,
 * and no allocation when looking up.
 */
#ifndef SOCKS5D_CIDR_H
#define SOCKS5D_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "socks5d/addr.h"

typedef unsigned __int128 cidr_u128;

/* A set of IPv4 and IPv6 networks, searched in logarithmic time. Build with
 * cidr_set_add, then cidr_set_finish once (sorts and merges), then look up. */
struct cidr_span4 { uint32_t lo, hi; };
struct cidr_span6 { cidr_u128 lo, hi; };
struct cidr_set {
	struct cidr_span4 *v4;
	size_t n4, cap4;
	struct cidr_span6 *v6;
	size_t n6, cap6;
};

/* A zeroed struct is an empty set; cidr_set_release frees its arrays (the
 * struct itself is the caller's) and leaves it empty. */
void cidr_set_release(struct cidr_set *c);

/* Add "a.b.c.d/n", "x::/n" or a bare address (/32, /128); host bits
 * ignored; ::ffff:a.b.c.d/n with n >= 96 is IPv4. Returns 0, -1 for bad
 * syntax, -2 when out of memory. */
int cidr_set_add(struct cidr_set *c, const char *text);

/* As cidr_set_add, for a pool of source addresses: a network's addresses
 * that no host may use as its own are left out (IPv4's network and
 * broadcast addresses, IPv6's first, in networks of more than two). */
int cidr_set_add_hosts(struct cidr_set *c, const char *text);

/* Sort, merge and deduplicate; call after the last cidr_set_add and before
 * any look-up (adding more later needs another call). */
void cidr_set_finish(struct cidr_set *c);

/* Does the (finished) set hold sa (AF_INET or AF_INET6, not NULL)?
 * IPv4-mapped IPv6 is looked up as IPv4; other families are never held. */
bool cidr_set_has(const struct cidr_set *c, const struct sockaddr *sa);

bool cidr_set_empty(const struct cidr_set *c);

/* Does the (finished) set hold every address of one family (0.0.0.0/0 or
 * ::/0, or lists that merge into one)? */
bool cidr_set_covers_a_family(const struct cidr_set *c);

/* How many addresses of family (AF_INET, AF_INET6) the finished set holds;
 * all of IPv6 counts one short, the most a u128 holds. */
cidr_u128 cidr_set_count(const struct cidr_set *c, int family);

/* The nth (from 0, in address order) address of family in the finished
 * set, port 0. false when nth is past the end. */
bool cidr_set_nth(const struct cidr_set *c, int family, cidr_u128 nth,
    union sockaddr_any *out);

#endif
