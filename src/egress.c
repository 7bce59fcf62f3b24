/*
 * Egress pools; see egress.h. Addresses are numbered in address order
 * across the pool's merged networks (cidr_set_nth), and each mode turns a
 * session into such a number:
 *   user: SipHash of the user name (or the client's address) under a
 *         fixed key, so the choice is the same in every process, after
 *         every restart and reload; jump consistent hash spreads users
 *         evenly and moves few of them when the pool grows;
 *   session: a walk over the pool with a random start and a random step
 *         coprime with its size, so no address repeats until all were
 *         used (a fresh address per session, not merely a random one);
 *   random: uniform;
 *   round-robin: in address order, per process.
 */
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "socks5d/egress.h"
#include "socks5d/log.h"

/* Per family: where round-robin and the session walk are. */
struct egress_walk {
	cidr_u128 next[2];
	cidr_u128 at[2];
	cidr_u128 step[2];
	bool started[2];
};

enum egress_select
egress_select_parse(const char *name)
{
	static const struct {
		const char *name;
		enum egress_select value;
	} names[] = { EGRESS_SELECT_NAMES };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(name, names[i].name) == 0)
			return names[i].value;
	return EGRESS_UNSET;
}

static int
egress_fam(int family)
{
	return family == AF_INET ? 0 : 1;
}

/*
 * Can every address of the one network in t be a source? Not 0.0.0.0/8,
 * multicast, 240.0.0.0/4 and the broadcast address, nor :: and ff00::/8:
 * the kernel would send from none of them, or nothing would come back.
 */
static bool
egress_sources_only(const struct cidr_set *t)
{
	for (size_t i = 0; i < t->n4; i++)
		if (t->v4[i].lo <= 0x00ffffffu || t->v4[i].hi >= 0xe0000000u)
			return false;
	for (size_t i = 0; i < t->n6; i++)
		if (t->v6[i].lo == 0 || t->v6[i].hi >> 120 == 0xff)
			return false;
	return true;
}

int
egress_add(struct egress *e, const char *list, char *why, size_t whylen)
{
	char *copy = strdup(list), *cursor, *item;
	int rc = 0, n = 0;

	if (copy == NULL ||
	    (e->walk == NULL && (e->walk = calloc(1, sizeof(*e->walk))) == NULL)) {
		free(copy);
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	for (cursor = copy; rc == 0 && cursor != NULL; n++) {
		char *end;

		item = cursor;
		if ((cursor = strchr(cursor, ',')) != NULL)
			*cursor++ = '\0';
		while (*item == ' ' || *item == '\t')
			item++;
		end = item + strlen(item);
		while (end > item && (end[-1] == ' ' || end[-1] == '\t'))
			*--end = '\0';
		if (*item == '\0') {
			snprintf(why, whylen, n == 0 && cursor == NULL ?
			    "empty list" : "empty item in the list");
			rc = -1;
		} else {
			struct cidr_set one = { 0 };

			if ((rc = cidr_set_add_hosts(&one, item)) == -1) {
				snprintf(why, whylen, "\"%.64s\" is not an "
				    "address or CIDR", item);
			} else if (rc == 0 && (cidr_set_finish(&one),
			    !egress_sources_only(&one))) {
				snprintf(why, whylen, "\"%.64s\" holds "
				    "addresses no connection can leave from "
				    "(unspecified, multicast or broadcast)",
				    item);
				rc = -1;
			} else if (rc == 0) {
				rc = cidr_set_add_hosts(&e->pool, item);
			}
			if (rc == -2) {
				snprintf(why, whylen, "out of memory");
				rc = -1;
			}
			cidr_set_release(&one);
		}
	}
	free(copy);
	return rc;
}

void
egress_finish(struct egress *e)
{
	cidr_set_finish(&e->pool);
	e->size[0] = cidr_set_count(&e->pool, AF_INET);
	e->size[1] = cidr_set_count(&e->pool, AF_INET6);
}

void
egress_release(struct egress *e)
{
	cidr_set_release(&e->pool);
	free(e->walk);
	memset(e, 0, sizeof(*e));
}

bool
egress_empty(const struct egress *e)
{
	return cidr_set_empty(&e->pool);
}

static cidr_u128
egress_random_below(cidr_u128 n)
{
	cidr_u128 x;

	if (n <= UINT32_MAX)
		return randombytes_uniform((uint32_t)n);
	/* 128 random bits: the modulo's bias is below 2^-64 for any pool
	 * this large. */
	randombytes_buf(&x, sizeof(x));
	return x % n;
}

static cidr_u128
egress_gcd(cidr_u128 a, cidr_u128 b)
{
	while (b != 0) {
		cidr_u128 t = a % b;

		a = b;
		b = t;
	}
	return a;
}

/* Lamping and Veach's jump consistent hash: key into [0, buckets). */
static uint32_t
egress_jump(uint64_t key, uint32_t buckets)
{
	int64_t b = -1, j = 0;

	while (j < buckets) {
		b = j;
		key = key * 2862933555777941757ULL + 1;
		j = (int64_t)((double)(b + 1) *
		    ((double)(1LL << 31) / (double)((key >> 33) + 1)));
	}
	return (uint32_t)b;
}

cidr_u128
egress_user_index(const char *key, size_t keylen, cidr_u128 size)
{
	/* Fixed, so every process and every restart agrees; it only spreads
	 * names, it guards no secret. */
	static const unsigned char siphash_key[crypto_shorthash_KEYBYTES + 1] =
	    "socks5d-egress-1";
	unsigned char h[2][crypto_shorthash_BYTES];
	uint64_t lo, hi;

	crypto_shorthash(h[0], (const unsigned char *)key, keylen,
	    siphash_key);
	memcpy(&lo, h[0], sizeof(lo));
	if (size <= INT32_MAX)
		return egress_jump(lo, (uint32_t)size);
	/* Too large a pool for the jump hash: a 128-bit hash modulo. */
	crypto_shorthash(h[1], h[0], sizeof(h[0]), siphash_key);
	memcpy(&hi, h[1], sizeof(hi));
	return (((cidr_u128)hi << 64) | lo) % size;
}

/* Advance a walk position by step in a pool of size, without overflow. */
static cidr_u128
egress_advance(cidr_u128 at, cidr_u128 step, cidr_u128 size)
{
	return at >= size - step ? at - (size - step) : at + step;
}

static cidr_u128
egress_session_index(struct egress_walk *w, int f, cidr_u128 size)
{
	cidr_u128 index;

	if (!w->started[f]) {
		w->at[f] = egress_random_below(size);
		w->step[f] = 1;
		if (size > 2) {
			do
				w->step[f] = 1 + egress_random_below(size - 1);
			while (egress_gcd(w->step[f], size) != 1);
		}
		w->started[f] = true;
	}
	index = w->at[f];
	w->at[f] = egress_advance(w->at[f], w->step[f] % size, size);
	return index;
}

bool
egress_pick(const struct egress *e, enum egress_select select,
    int family, const char *user, const struct sockaddr *client,
    union sockaddr_any *out)
{
	int f = egress_fam(family);
	cidr_u128 size = e->size[f], index = 0;

	if (size == 0 || e->walk == NULL)
		return false;
	switch (select) {
	case EGRESS_UNSET:
	case EGRESS_USER:
		if (user != NULL) {
			index = egress_user_index(user, strlen(user), size);
		} else {
			union sockaddr_any c;

			addr_normalize(client, &c);
			index = c.sa.sa_family == AF_INET ?
			    egress_user_index((const char *)&c.in.sin_addr, 4,
			    size) :
			    egress_user_index((const char *)&c.in6.sin6_addr,
			    16, size);
		}
		break;
	case EGRESS_SESSION:
		index = egress_session_index(e->walk, f, size);
		break;
	case EGRESS_RANDOM:
		index = egress_random_below(size);
		break;
	case EGRESS_ROUND_ROBIN:
		index = e->walk->next[f];
		e->walk->next[f] = egress_advance(index, 1, size);
		break;
	}
	return cidr_set_nth(&e->pool, family, index, out);
}

/* Is this address one of a loopback interface's? */
static bool
egress_on_loopback(const union sockaddr_any *src)
{
	struct ifaddrs *all, *i;
	bool found = false;

	if (getifaddrs(&all) == -1)
		return true;
	for (i = all; i != NULL && !found; i = i->ifa_next)
		found = i->ifa_addr != NULL &&
		    i->ifa_addr->sa_family == AF_INET6 &&
		    (i->ifa_flags & IFF_LOOPBACK) != 0 &&
		    IN6_ARE_ADDR_EQUAL(&((const struct sockaddr_in6 *)
		    (const void *)i->ifa_addr)->sin6_addr,
		    &src->in6.sin6_addr);
	freeifaddrs(all);
	return found;
}

/*
 * Is a this host's own? IPv4 binds a local-route address without
 * IP_FREEBIND, so a plain bind tells. IPv6 needs a configured address for
 * that even under a local route, so the route the host would take to a is
 * asked instead: toward its own addresses it picks the address itself or
 * one of the loopback interface's (::1) as the source. Unsure (no socket) counts as local: only a warning
 * hangs on this.
 */
static bool
egress_is_local(const union sockaddr_any *a)
{
	union sockaddr_any probe = *a, src;
	socklen_t len = sizeof(src);
	bool local = true;
	int fd;

	if ((fd = socket(a->sa.sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return true;
	if (a->sa.sa_family == AF_INET) {
		local = bind(fd, &a->sa, addr_len(&a->sa)) == 0 ||
		    errno != EADDRNOTAVAIL;
	} else {
		addr_set_port(&probe, 9);
		local = connect(fd, &probe.sa, addr_len(&probe.sa)) == 0 &&
		    getsockname(fd, &src.sa, &len) == 0 &&
		    (IN6_ARE_ADDR_EQUAL(&src.in6.sin6_addr,
		    &a->in6.sin6_addr) || egress_on_loopback(&src));
	}
	close(fd);
	return local;
}

void
egress_warn_not_local(const struct egress *e, const char *where)
{
	static const int families[] = { AF_INET, AF_INET6 };
	char text[ADDR_STRLEN];

	for (size_t f = 0; f < 2; f++) {
		union sockaddr_any a;
		cidr_u128 seen = 0;

		/* The first address of each merged network. */
		for (size_t i = 0; i < (f == 0 ? e->pool.n4 : e->pool.n6); i++) {
			if (!cidr_set_nth(&e->pool, families[f], seen, &a))
				break;
			seen += f == 0 ? (cidr_u128)(e->pool.v4[i].hi -
			    e->pool.v4[i].lo) + 1 : e->pool.v6[i].hi -
			    e->pool.v6[i].lo + 1;
			if (egress_is_local(&a))
				continue;
			addr_format_ip(&a.sa, text, sizeof(text));
			log_warnx("%s: %s is not an address of this host (no "
			    "address or local route): connections from it "
			    "will get no answer; see socks5d.conf(5)", where,
			    text);
		}
	}
}

int
egress_bind(int fd, const union sockaddr_any *src, bool stream)
{
	int one = 1;

	/* A pool address need not be on an interface: a local route for
	 * the whole prefix makes it the host's. */
	if (setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one)) == -1)
		return -1;
	/* Let connect() pick the port, so each address of the pool has the
	 * whole ephemeral range toward each destination. */
	if (stream)
		(void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
		    sizeof(one));
	return bind(fd, &src->sa, addr_len(&src->sa));
}
