/*
 * The datagrams of UDP associations: from the client (checked, parsed,
 * routed by address or through udp_dns) out of per-family outbound
 * sockets, and back wrapped in the SOCKS header through the relay socket.
 * Batched with recvmmsg/sendmmsg through one set of buffers that every
 * association shares: the loop is single-threaded.
 */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "socks5d/addr.h"
#include "socks5d/egress.h"
#include "socks5d/log.h"
#include "socks5d/inspect.h"
#include "socks5d/policy.h"
#include "socks5d/session.h"
#include "socks5d/udp_assoc.h"
#include "socks5d/udp_dns.h"

/* Datagrams per recvmmsg/sendmmsg, and batches per readable event, so one
 * busy association cannot starve the others. */
#define UDP_BATCH              32
#define UDP_BATCHES_PER_EVENT  4
/* Every UDP payload fits, so MSG_TRUNC can only mean something odd. */
#define UDP_BUFSIZE            65536

/*
 * The shared batch. For datagrams from the client, in[i] lands in buf[i]
 * and goes out from buf[i] + offset[i] to dst[i]; for datagrams to the
 * client, header[j] is put in front of buf[i] by a second iovec.
 */
static struct udp_batch {
	struct mmsghdr in[UDP_BATCH];
	struct iovec in_iov[UDP_BATCH];
	union sockaddr_any in_addr[UDP_BATCH];
	int route[UDP_BATCH];
	size_t offset[UDP_BATCH];
	union sockaddr_any dst[UDP_BATCH];
	struct mmsghdr out[UDP_BATCH];
	struct iovec out_iov[UDP_BATCH][2];
	uint8_t header[UDP_BATCH][SOCKS5_REPLY_MAX];
	uint8_t buf[UDP_BATCH][UDP_BUFSIZE];
} udp_batch;

/* FNV-1a, to tell names apart in the verdict cache without keeping them. */
static uint64_t
udp_name_hash(const char *name)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	if (name == NULL)
		return 0;
	for (; *name != '\0'; name++)
		h = (h ^ (unsigned char)*name) * 0x100000001b3ULL;
	return h | 1;           /* never 0, which means "no name" */
}

static bool
udp_same_dst(const union sockaddr_any *a, const union sockaddr_any *b)
{
	socklen_t len = addr_len(&a->sa);

	return a->sa.sa_family == b->sa.sa_family && len > 0 &&
	    memcmp(a, b, len) == 0;
}

/*
 * The one place that decides whether a datagram may go to a destination:
 * a name (NULL when the client gave an address), an address (NULL for a
 * name an upstream resolves) and the port. The access rules are asked
 * once per destination; the answer is kept for the association until a
 * reload changes the rules.
 */
static bool
udp_may_send_to(struct udp_assoc *a, const char *name,
    const union sockaddr_any *dst, uint16_t port)
{
	unsigned generation = a->s->srv->config_generation;
	uint64_t hash = udp_name_hash(name);
	struct udp_verdict *v;

	for (size_t i = 0; i < UDP_VERDICTS; i++) {
		v = &a->verdicts[i];
		if (v->used && v->generation == generation &&
		    v->name_hash == hash && v->port == port &&
		    (dst == NULL ? v->dst.sa.sa_family == AF_UNSPEC :
		    udp_same_dst(&v->dst, dst)))
			return v->allow;
	}
	v = &a->verdicts[a->next_verdict];
	a->next_verdict = (a->next_verdict + 1) % UDP_VERDICTS;
	v->used = true;
	v->generation = generation;
	v->name_hash = hash;
	v->port = port;
	if (dst != NULL)
		v->dst = *dst;
	else
		memset(&v->dst, 0, sizeof(v->dst));
	v->allow = policy_allow_dest(a->s, name, dst != NULL ? &dst->sa : NULL,
	    port);
	return v->allow;
}

static bool
udp_may_send(struct udp_assoc *a, const char *name,
    const union sockaddr_any *dst)
{
	return udp_may_send_to(a, name, dst, (uint16_t)addr_port(&dst->sa));
}

/* -- sending and receiving in batches ------------------------------------ */

static int
udp_receive_batch(int fd)
{
	struct udp_batch *b = &udp_batch;
	int i, n;

	for (i = 0; i < UDP_BATCH; i++) {
		struct msghdr *h = &b->in[i].msg_hdr;

		b->in_iov[i].iov_base = b->buf[i];
		b->in_iov[i].iov_len = UDP_BUFSIZE;
		memset(h, 0, sizeof(*h));
		h->msg_name = &b->in_addr[i];
		h->msg_namelen = sizeof(b->in_addr[i]);
		h->msg_iov = &b->in_iov[i];
		h->msg_iovlen = 1;
	}
	do {
		n = recvmmsg(fd, b->in, UDP_BATCH, MSG_DONTWAIT, NULL);
	} while (n == -1 && errno == EINTR);
	if (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK)
		log_debug("udp: recvmmsg: %s", strerror(errno));
	return n;
}

static size_t
udp_payload_len(const struct mmsghdr *m)
{
	return m->msg_hdr.msg_iov[m->msg_hdr.msg_iovlen - 1].iov_len;
}

/* Send out[0..n) on fd; a datagram the kernel refuses is counted in *drops
 * and the rest still go. UDP has no backpressure: a full socket buffer
 * drops what is left of the batch. */
static void
udp_send_batch(int fd, unsigned n, uint64_t *dgrams, uint64_t *bytes,
    uint64_t *drops)
{
	struct mmsghdr *m = udp_batch.out;
	unsigned i = 0;
	int sent;

	while (i < n) {
		sent = sendmmsg(fd, m + i, n - i, 0);
		if (sent > 0) {
			for (; sent > 0; sent--, i++) {
				(*dgrams)++;
				*bytes += udp_payload_len(&m[i]);
			}
			continue;
		}
		if (sent == -1 && errno == EINTR)
			continue;
		if (sent == 0 || errno == EAGAIN || errno == EWOULDBLOCK ||
		    errno == ENOBUFS) {
			*drops += n - i;
			return;
		}
		(*drops)++;
		i++;
	}
}

/* -- client to remote ------------------------------------------------------ */

static int
udp_out_open(struct udp_assoc *a, enum udp_route route)
{
	struct udp_out *o = &a->out[route];
	const struct config *cfg = a->s->srv->cfg;
	const struct config_addr *src;
	int family = route == UDP_ROUTE_IPV4 ? AF_INET : AF_INET6, fd, err;
	struct policy_route out;

	if (o->fd != -1)
		return 0;
	/* An egress pool's address, else [outbound] bind_ipv4/6: picked once
	 * per association and family, so a peer sees one source. */
	policy_route_association(a->s, family, &out);
	src = route == UDP_ROUTE_IPV4 ? &cfg->bind_ipv4 : &cfg->bind_ipv6;
	fd = udp_socket(family);
	if (fd == -1 || (out.has_source ?
	    egress_bind(fd, &out.source, false) == -1 : (src->len != 0 &&
	    bind(fd, (const struct sockaddr *)&src->ss, src->len) == -1))) {
		err = errno;
		if (!a->warned) {
			/* Once per association: it would repeat per batch. */
			log_warn("udp: outbound IPv%c socket",
			    route == UDP_ROUTE_IPV4 ? '4' : '6');
			a->warned = true;
		}
		if (fd != -1)
			close(fd);
		errno = err;
		return -1;
	}
	o->fd = fd;
	ev_io_set(&o->io, fd, EV_READ);
	ev_io_start(a->s->srv->loop, &o->io);
	return 0;
}

/* Final checks on a destination; the route to send by, or NONE. */
static enum udp_route
udp_admit(struct udp_assoc *a, const char *name,
    const union sockaddr_any *dst, size_t len)
{
	int family = dst->sa.sa_family;

	if (!udp_may_send(a, name, dst)) {
		a->stats.drops[METRICS_UDP_DROP_DENIED]++;
		return UDP_ROUTE_NONE;
	}
	if (len > (family == AF_INET ? UDP_MAX_IPV4 : UDP_MAX_IPV6)) {
		a->stats.drops[METRICS_UDP_DROP_OVERSIZE]++;
		return UDP_ROUTE_NONE;
	}
	return family == AF_INET ? UDP_ROUTE_IPV4 : UDP_ROUTE_IPV6;
}

/* Send a held datagram to the address its name resolved to. */
static void
udp_send_held(struct udp_assoc *a, const char *name,
    const union sockaddr_any *addr, const uint8_t *payload, size_t len)
{
	union sockaddr_any dst;
	enum udp_route route;
	int fd;

	addr_normalize(&addr->sa, &dst);
	if ((route = udp_admit(a, name, &dst, len)) == UDP_ROUTE_NONE)
		return;
	if (udp_out_open(a, route) == -1) {
		a->stats.drops[METRICS_UDP_DROP_SEND]++;
		return;
	}
	fd = a->out[route].fd;
	if (sendto(fd, payload, len, 0, &dst.sa, addr_len(&dst.sa)) == -1) {
		a->stats.drops[METRICS_UDP_DROP_SEND]++;
		return;
	}
	a->stats.dgrams_up++;
	a->stats.bytes_up += len;
}

/* A held datagram's name lookup finished (udp_dns): addr NULL if it
 * failed. */
static void
udp_release_held(void *arg, const char *name, const union sockaddr_any *addr,
    const uint8_t *payload, size_t len)
{
	struct udp_assoc *a = arg;

	if (addr == NULL)
		a->stats.drops[METRICS_UDP_DROP_DNS]++;
	else
		udp_send_held(a, name, addr, payload, len);
	udp_publish_stats(a);
}

static enum udp_route
udp_route_name(struct udp_assoc *a, const struct socks5_addr *dst,
    const uint8_t *payload, size_t len, union sockaddr_any *out,
    bool *held)
{
	struct session *s = a->s;
	const struct config *cfg = s->srv->cfg;
	union sockaddr_any found;

	if (a->dns == NULL) {
		a->dns = udp_dns_create(s->srv->loop, &s->srv->resolver,
		    cfg->dns_family, cfg->dns_timeout + 1, udp_release_held, a);
		if (a->dns == NULL) {
			a->stats.drops[METRICS_UDP_DROP_DNS]++;
			return UDP_ROUTE_NONE;
		}
	}
	switch (udp_dns_route(a->dns, dst->u.name, dst->port, payload, len,
	    &found)) {
	case UDP_DNS_FOUND:
		addr_normalize(&found.sa, out);
		return udp_admit(a, dst->u.name, out, len);
	case UDP_DNS_HELD:
		*held = true;
		return UDP_ROUTE_NONE;
	case UDP_DNS_FULL:
		a->stats.drops[METRICS_UDP_DROP_QUEUE]++;
		return UDP_ROUTE_NONE;
	case UDP_DNS_FAILED:
	default:
		a->stats.drops[METRICS_UDP_DROP_DNS]++;
		return UDP_ROUTE_NONE;
	}
}

/* Is this datagram from the client? The first one fixes the port when the
 * request did not name it. */
static bool
udp_client_matches(struct udp_assoc *a, const union sockaddr_any *from)
{
	union sockaddr_any *c = &a->client;
	in_port_t port;

	if (from->sa.sa_family != c->sa.sa_family)
		return false;
	if (c->sa.sa_family == AF_INET) {
		if (from->in.sin_addr.s_addr != c->in.sin_addr.s_addr)
			return false;
		port = from->in.sin_port;
	} else {
		if (!IN6_ARE_ADDR_EQUAL(&from->in6.sin6_addr,
		    &c->in6.sin6_addr))
			return false;
		port = from->in6.sin6_port;
	}
	if (!a->client_port) {
		if (c->sa.sa_family == AF_INET)
			c->in.sin_port = port;
		else
			c->in6.sin6_port = port;
		a->client_port = true;
		return true;
	}
	return port == (c->sa.sa_family == AF_INET ? c->in.sin_port :
	    c->in6.sin6_port);
}

static void
udp_count_bad_header(struct udp_assoc *a, enum socks5_status status)
{
	if (status == SOCKS5_BAD_RESERVED)
		a->stats.drops[METRICS_UDP_DROP_RSV]++;
	else if (status == SOCKS5_FRAGMENTED)
		/* No reassembly (RFC 1928 §7). */
		a->stats.drops[METRICS_UDP_DROP_FRAG]++;
	else
		a->stats.drops[METRICS_UDP_DROP_BAD]++;
}

/*
 * Through an upstream the datagram goes on whole, header and all, to the
 * upstream's relay: names stay names for the upstream to resolve, and the
 * rules judge what the client named.
 */
static enum udp_route
udp_accept_for_upstream(struct udp_assoc *a, int i,
    const struct socks5_addr *dst, size_t payload)
{
	struct udp_batch *b = &udp_batch;
	union sockaddr_any addr;
	bool literal = addr_from_socks5(dst, &addr);

	if (!udp_may_send_to(a, literal ? NULL : dst->u.name,
	    literal ? &addr : NULL, dst->port)) {
		a->stats.drops[METRICS_UDP_DROP_DENIED]++;
		return UDP_ROUTE_NONE;
	}
	if (payload > UDP_MAX_IPV6) {
		a->stats.drops[METRICS_UDP_DROP_OVERSIZE]++;
		return UDP_ROUTE_NONE;
	}
	/* bytes_up counts payload, as for a direct association. */
	b->offset[i] = 0;
	b->dst[i] = a->up_relay;
	return udp_upstream_route(a);
}

/* Check and route datagram i of the batch from the client. */
static enum udp_route
udp_accept_up(struct udp_assoc *a, int i, bool *held)
{
	struct udp_batch *b = &udp_batch;
	struct socks5_udp_header hdr;
	enum socks5_status status;
	size_t used, len = b->in[i].msg_len;

	if (!udp_client_matches(a, &b->in_addr[i])) {
		a->stats.drops[METRICS_UDP_DROP_STRANGER]++;
		return UDP_ROUTE_NONE;
	}
	if (b->in[i].msg_hdr.msg_flags & MSG_TRUNC) {
		a->stats.drops[METRICS_UDP_DROP_TRUNC]++;
		return UDP_ROUTE_NONE;
	}
	status = socks5_parse_udp_header(b->buf[i], len, &hdr, &used);
	if (status != SOCKS5_OK) {
		udp_count_bad_header(a, status);
		return UDP_ROUTE_NONE;
	}
	a->last_activity = ev_now(a->s->srv->loop);
	/* Over the rate, a datagram is dropped: holding it would only
	 * add delay to what the sender must slow down for anyway. */
	if (a->s->rate_up != NULL &&
	    !rate_bucket_take(a->s->rate_up, len - used)) {
		a->stats.drops[METRICS_UDP_DROP_RATE]++;
		return UDP_ROUTE_NONE;
	}
	b->offset[i] = used;
	if (a->up_ctl_fd != -1)
		return udp_accept_for_upstream(a, i, &hdr.dst, len - used);
	/* An address: judged with the name a QUIC Initial to it gave. */
	if (addr_from_socks5(&hdr.dst, &b->dst[i]))
		return udp_admit(a, inspect_datagram(a->s, &b->dst[i],
		    b->buf[i] + used, len - used), &b->dst[i], len - used);
	return udp_route_name(a, &hdr.dst, b->buf[i] + used, len - used,
	    &b->dst[i], held);
}

/* Send the batch's datagrams routed this way, in their order. */
static void
udp_flush_up(struct udp_assoc *a, enum udp_route route, int n)
{
	struct udp_batch *b = &udp_batch;
	unsigned count = 0;
	int i;

	for (i = 0; i < n; i++) {
		struct msghdr *h = &b->out[count].msg_hdr;

		if (b->route[i] != (int)route)
			continue;
		b->out_iov[count][0].iov_base = b->buf[i] + b->offset[i];
		b->out_iov[count][0].iov_len = b->in[i].msg_len - b->offset[i];
		memset(h, 0, sizeof(*h));
		h->msg_name = &b->dst[i];
		h->msg_namelen = addr_len(&b->dst[i].sa);
		h->msg_iov = b->out_iov[count];
		h->msg_iovlen = 1;
		count++;
	}
	if (count == 0)
		return;
	if (udp_out_open(a, route) == -1) {
		a->stats.drops[METRICS_UDP_DROP_SEND] += count;
		return;
	}
	udp_send_batch(a->out[route].fd, count, &a->stats.dgrams_up,
	    &a->stats.bytes_up, &a->stats.drops[METRICS_UDP_DROP_SEND]);
}

static void
udp_forward_up(struct udp_assoc *a, int n)
{
	bool held = false;
	int i;

	for (i = 0; i < n; i++)
		udp_batch.route[i] = udp_accept_up(a, i, &held);
	udp_flush_up(a, UDP_ROUTE_IPV4, n);
	udp_flush_up(a, UDP_ROUTE_IPV6, n);
	/* A new lookup may end before the idle timer would next fire. */
	if (held)
		udp_arm_timer(a);
}

static void
udp_relay_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct udp_assoc *a = (struct udp_assoc *)
	    ((char *)w - offsetof(struct udp_assoc, relay_io));
	int batch, n;

	(void)loop;
	(void)revents;
	for (batch = 0; batch < UDP_BATCHES_PER_EVENT; batch++) {
		if ((n = udp_receive_batch(a->relay_fd)) <= 0)
			break;
		udp_forward_up(a, n);
		if (n < UDP_BATCH)
			break;
	}
	udp_publish_stats(a);
	(void)udp_quota_spent(a);
}

/* -- remote to client ------------------------------------------------------ */

static void
udp_forward_down(struct udp_assoc *a, int n)
{
	struct udp_batch *b = &udp_batch;
	unsigned count = 0;
	int i;

	a->last_activity = ev_now(a->s->srv->loop);
	for (i = 0; i < n; i++) {
		struct msghdr *h = &b->out[count].msg_hdr;
		size_t len = b->in[i].msg_len, hlen;

		if (b->in[i].msg_hdr.msg_flags & MSG_TRUNC) {
			a->stats.drops[METRICS_UDP_DROP_TRUNC]++;
			continue;
		}
		if (a->up_ctl_fd != -1) {
			/* Wrapped by the upstream already: passed on as it
			 * came, and only from its relay. */
			if (!addr_same_ip(&b->in_addr[i], &a->up_relay) ||
			    addr_port(&b->in_addr[i].sa) !=
			    addr_port(&a->up_relay.sa)) {
				a->stats.drops[METRICS_UDP_DROP_STRANGER]++;
				continue;
			}
			hlen = 0;
		} else {
			/* The sender in IP form; IPv4-mapped IPv6 as ATYP 1. */
			hlen = socks5_encode_udp_header(b->header[count],
			    &b->in_addr[i].sa);
		}
		if (hlen + len > a->client_max) {
			/* Fine for us to receive, too big once wrapped. */
			a->stats.drops[METRICS_UDP_DROP_OVERSIZE]++;
			continue;
		}
		if (a->s->rate_down != NULL &&
		    !rate_bucket_take(a->s->rate_down, len)) {
			a->stats.drops[METRICS_UDP_DROP_RATE]++;
			continue;
		}
		b->out_iov[count][0].iov_base = b->header[count];
		b->out_iov[count][0].iov_len = hlen;
		b->out_iov[count][1].iov_base = b->buf[i];
		b->out_iov[count][1].iov_len = len;
		memset(h, 0, sizeof(*h));
		h->msg_name = &a->client;
		h->msg_namelen = addr_len(&a->client.sa);
		h->msg_iov = b->out_iov[count];
		h->msg_iovlen = 2;
		count++;
	}
	if (count > 0)
		udp_send_batch(a->relay_fd, count, &a->stats.dgrams_down,
		    &a->stats.bytes_down,
		    &a->stats.drops[METRICS_UDP_DROP_SEND]);
}

static void
udp_out_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct udp_out *o = (struct udp_out *)
	    ((char *)w - offsetof(struct udp_out, io));
	int batch, n;

	(void)loop;
	(void)revents;
	for (batch = 0; batch < UDP_BATCHES_PER_EVENT; batch++) {
		if ((n = udp_receive_batch(o->fd)) <= 0)
			break;
		udp_forward_down(o->a, n);
		if (n < UDP_BATCH)
			break;
	}
	udp_publish_stats(o->a);
	(void)udp_quota_spent(o->a);
}

/* -- lifetime ------------------------------------------------------------ */

void
udp_forward_init(struct udp_assoc *a)
{
	int route;

	ev_init(&a->relay_io, udp_relay_read_cb);
	for (route = 0; route < UDP_ROUTES; route++) {
		a->out[route].a = a;
		a->out[route].fd = -1;
		ev_init(&a->out[route].io, udp_out_read_cb);
	}
}

void
udp_forward_start(struct udp_assoc *a)
{
	ev_io_set(&a->relay_io, a->relay_fd, EV_READ);
	ev_io_start(a->s->srv->loop, &a->relay_io);
}

void
udp_forward_stop(struct udp_assoc *a)
{
	struct ev_loop *loop = a->s->srv->loop;
	int route;

	ev_io_stop(loop, &a->relay_io);
	for (route = 0; route < UDP_ROUTES; route++) {
		ev_io_stop(loop, &a->out[route].io);
		if (a->out[route].fd != -1)
			close(a->out[route].fd);
		a->out[route].fd = -1;
	}
}
