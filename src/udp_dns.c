/*
 * The name table of one UDP association: which names resolved to what (for
 * the association's lifetime, oldest evicted first), which are being looked
 * up, and the few datagrams waiting for those lookups.
 */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "socks5d/log.h"
#include "socks5d/socks5.h"
#include "socks5d/udp_dns.h"

enum udp_dns_state {
	UDP_DNS_EMPTY,
	UDP_DNS_PENDING,       /* lookup running, datagrams may be held */
	UDP_DNS_RESOLVED,
	UDP_DNS_UNRESOLVED,    /* remembered for UDP_DNS_RETRY seconds */
};

struct udp_dns_name {
	struct udp_dns *d;
	enum udp_dns_state state;
	struct resolver_query *query;
	union sockaddr_any addr;           /* port 0: datagrams bring theirs */
	ev_tstamp stamp;                   /* lookup started, or failed */
	uint64_t age;                      /* order of entry, for eviction */
	char name[SOCKS5_NAME_MAX + 1];
};

struct udp_dns_held {
	struct udp_dns_name *name;
	uint16_t port;
	size_t len;
	uint8_t *payload;
};

struct udp_dns {
	struct ev_loop *loop;
	/* The server's current resolver: a reload may replace it. */
	struct resolver *const *resolver;
	enum dns_family family;
	ev_tstamp timeout;
	udp_dns_release_cb *cb;
	void *arg;
	uint64_t next_age;
	struct udp_dns_name names[UDP_DNS_NAMES];
	struct udp_dns_held held[UDP_DNS_HELD_MAX];
	size_t nheld;
	size_t held_bytes;
};

struct udp_dns *
udp_dns_create(struct ev_loop *loop, struct resolver *const *r,
    enum dns_family family, ev_tstamp timeout, udp_dns_release_cb *cb,
    void *arg)
{
	struct udp_dns *d;
	size_t i;

	if ((d = calloc(1, sizeof(*d))) == NULL)
		return NULL;
	d->loop = loop;
	d->resolver = r;
	d->family = family;
	d->timeout = timeout;
	d->cb = cb;
	d->arg = arg;
	for (i = 0; i < UDP_DNS_NAMES; i++)
		d->names[i].d = d;
	return d;
}

static void
udp_dns_set_port(union sockaddr_any *addr, uint16_t port)
{
	if (addr->sa.sa_family == AF_INET)
		addr->in.sin_port = htons(port);
	else
		addr->in6.sin6_port = htons(port);
}

/* Hand back, in arrival order, every datagram held for this name. */
static void
udp_dns_release(struct udp_dns *d, struct udp_dns_name *e)
{
	union sockaddr_any addr;
	size_t i, kept = 0;

	for (i = 0; i < d->nheld; i++) {
		struct udp_dns_held *h = &d->held[i];

		if (h->name != e) {
			d->held[kept++] = *h;
			continue;
		}
		if (e->state == UDP_DNS_RESOLVED) {
			addr = e->addr;
			udp_dns_set_port(&addr, h->port);
			d->cb(d->arg, e->name, &addr, h->payload, h->len);
		} else {
			d->cb(d->arg, e->name, NULL, h->payload, h->len);
		}
		d->held_bytes -= h->len;
		free(h->payload);
	}
	d->nheld = kept;
}

static void
udp_dns_answer(void *arg, enum resolver_status status,
    const union sockaddr_any *addrs, size_t n)
{
	struct udp_dns_name *e = arg;

	e->query = NULL;
	e->stamp = ev_now(e->d->loop);
	if (status == RESOLVER_OK && n > 0) {
		/* The resolver orders by [dns] family: take the first. */
		e->state = UDP_DNS_RESOLVED;
		e->addr = addrs[0];
		udp_dns_set_port(&e->addr, 0);
	} else {
		e->state = UDP_DNS_UNRESOLVED;
	}
	udp_dns_release(e->d, e);
}

static struct udp_dns_name *
udp_dns_find(struct udp_dns *d, const char *name)
{
	size_t i;

	for (i = 0; i < UDP_DNS_NAMES; i++) {
		if (d->names[i].state != UDP_DNS_EMPTY &&
		    strcasecmp(d->names[i].name, name) == 0)
			return &d->names[i];
	}
	return NULL;
}

/* An empty slot, else the oldest settled name; NULL when every slot has a
 * lookup running. */
static struct udp_dns_name *
udp_dns_slot(struct udp_dns *d)
{
	struct udp_dns_name *oldest = NULL;
	size_t i;

	for (i = 0; i < UDP_DNS_NAMES; i++) {
		struct udp_dns_name *e = &d->names[i];

		if (e->state == UDP_DNS_EMPTY)
			return e;
		if (e->state != UDP_DNS_PENDING &&
		    (oldest == NULL || e->age < oldest->age))
			oldest = e;
	}
	return oldest;
}

static enum udp_dns_result
udp_dns_hold(struct udp_dns *d, struct udp_dns_name *e, uint16_t port,
    const uint8_t *payload, size_t len)
{
	struct udp_dns_held *h;

	if (d->nheld == UDP_DNS_HELD_MAX ||
	    d->held_bytes + len > UDP_DNS_HELD_BYTES)
		return UDP_DNS_FULL;
	h = &d->held[d->nheld];
	/* Only datagrams to a name not yet known are copied: the first few
	 * per name, never the steady flow. */
	if ((h->payload = malloc(len > 0 ? len : 1)) == NULL)
		return UDP_DNS_FULL;
	memcpy(h->payload, payload, len);
	h->name = e;
	h->port = port;
	h->len = len;
	d->nheld++;
	d->held_bytes += len;
	return UDP_DNS_HELD;
}

static enum udp_dns_result
udp_dns_lookup(struct udp_dns *d, const char *name, uint16_t port,
    const uint8_t *payload, size_t len)
{
	struct udp_dns_name *e;
	size_t nlen = strnlen(name, SOCKS5_NAME_MAX);

	if (d->nheld == UDP_DNS_HELD_MAX ||
	    d->held_bytes + len > UDP_DNS_HELD_BYTES ||
	    (e = udp_dns_slot(d)) == NULL)
		return UDP_DNS_FULL;
	memcpy(e->name, name, nlen);
	e->name[nlen] = '\0';
	e->state = UDP_DNS_PENDING;
	e->stamp = ev_now(d->loop);
	e->age = d->next_age++;
	e->query = resolver_lookup(*d->resolver, e->name, 0, d->family,
	    udp_dns_answer, e);
	if (e->query == NULL) {
		e->state = UDP_DNS_EMPTY;
		return UDP_DNS_FAILED;
	}
	return udp_dns_hold(d, e, port, payload, len);
}

enum udp_dns_result
udp_dns_route(struct udp_dns *d, const char *name, uint16_t port,
    const uint8_t *payload, size_t len, union sockaddr_any *addr)
{
	struct udp_dns_name *e = udp_dns_find(d, name);

	if (e == NULL)
		return udp_dns_lookup(d, name, port, payload, len);
	switch (e->state) {
	case UDP_DNS_RESOLVED:
		*addr = e->addr;
		udp_dns_set_port(addr, port);
		return UDP_DNS_FOUND;
	case UDP_DNS_PENDING:
		return udp_dns_hold(d, e, port, payload, len);
	case UDP_DNS_UNRESOLVED:
		if (ev_now(d->loop) - e->stamp < UDP_DNS_RETRY)
			return UDP_DNS_FAILED;
		e->state = UDP_DNS_EMPTY;
		return udp_dns_lookup(d, name, port, payload, len);
	case UDP_DNS_EMPTY:
	default:
		return UDP_DNS_FAILED;
	}
}

ev_tstamp
udp_dns_expire(struct udp_dns *d)
{
	ev_tstamp now = ev_now(d->loop), next = 0;
	size_t i;

	for (i = 0; i < UDP_DNS_NAMES; i++) {
		struct udp_dns_name *e = &d->names[i];
		ev_tstamp deadline = e->stamp + d->timeout;

		if (e->state != UDP_DNS_PENDING)
			continue;
		if (deadline <= now) {
			/* c-ares has timeouts of its own; this guards against
			 * an answer that never comes. */
			log_debug("udp: lookup of a datagram's name timed out");
			resolver_cancel(e->query);
			e->query = NULL;
			e->state = UDP_DNS_UNRESOLVED;
			e->stamp = now;
			udp_dns_release(d, e);
		} else if (next == 0 || deadline < next) {
			next = deadline;
		}
	}
	return next;
}

size_t
udp_dns_held(const struct udp_dns *d)
{
	return d != NULL ? d->nheld : 0;
}

void
udp_dns_free(struct udp_dns *d)
{
	size_t i;

	if (d == NULL)
		return;
	for (i = 0; i < UDP_DNS_NAMES; i++) {
		if (d->names[i].query != NULL)
			resolver_cancel(d->names[i].query);
	}
	for (i = 0; i < d->nheld; i++)
		free(d->held[i].payload);
	free(d);
}
