/*
 * UDP ASSOCIATE (RFC 1928 §4, §6, §7), the association's lifetime: the
 * relay socket on the address the client reached us at, who may use it,
 * the reply, and the TCP control connection whose end (or idleness) ends
 * it all. The datagrams themselves are udp_forward.c's.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "socks5d/addr.h"
#include "socks5d/command.h"
#include "socks5d/log.h"
#include "socks5d/metrics_users.h"
#include "socks5d/policy.h"
#include "socks5d/session.h"
#include "socks5d/udp_assoc.h"
#include "socks5d/udp_dns.h"
#include "socks5d/upstream_dial.h"

/* Stray control-connection bytes discarded per event. */
#define UDP_CONTROL_BUDGET     (64 * 1024)

/* -- addresses and sockets (shared with udp_forward.c) --------------------- */

static bool
udp_ip_is_zero(const union sockaddr_any *addr)
{
	if (addr->sa.sa_family == AF_INET)
		return addr->in.sin_addr.s_addr == INADDR_ANY;
	return IN6_IS_ADDR_UNSPECIFIED(&addr->in6.sin6_addr);
}

int
udp_socket(int family)
{
	int fd, one = 1;

	fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd != -1 && family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6,
	    IPV6_V6ONLY, &one, sizeof(one)) == -1) {
		int err = errno;

		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

/* -- the association ------------------------------------------------------- */

/* The control connection: nothing more is said on it, and its end (EOF
 * or error) ends the association. Stray bytes are read and dropped. */
static void
udp_control_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct session *s = (struct session *)
	    ((char *)w - offsetof(struct session, client_io));
	uint8_t sink[4096];
	size_t total = 0;
	ssize_t n;

	(void)loop;
	(void)revents;
	while (total < UDP_CONTROL_BUDGET) {
		n = read(s->client_fd, sink, sizeof(sink));
		if (n > 0) {
			total += (size_t)n;
			continue;
		}
		if (n == 0) {
			session_close(s, "eof");
			return;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		session_close(s, errno == ECONNRESET ? "reset" : "error");
		return;
	}
}

/* Re-arm the session timer for the idle deadline, or sooner when a name
 * lookup must be given up before that. */
void
udp_arm_timer(struct udp_assoc *a)
{
	struct session *s = a->s;
	ev_tstamp now = ev_now(s->srv->loop), left, next;

	left = a->last_activity + s->srv->cfg->timeout_udp_idle - now;
	if (a->dns != NULL && (next = udp_dns_expire(a->dns)) != 0 &&
	    next - now < left)
		left = next - now;
	session_set_timeout(s, left > 0.001 ? left : 0.001);
}

static struct udp_assoc *
udp_assoc_create(struct session *s)
{
	struct udp_assoc *a;

	if ((a = calloc(1, sizeof(*a))) == NULL)
		return NULL;
	a->s = s;
	a->relay_fd = -1;
	a->up_ctl_fd = -1;
	udp_forward_init(a);
	return a;
}

/* Bind fd to local with a port from range (random start, skipping ports in
 * use), or one the kernel picks when no range is set. */
static int
udp_bind_port(int fd, union sockaddr_any *local,
    const struct config_port_range *range)
{
	unsigned span, start, i;

	if (range->low == 0)
		return bind(fd, &local->sa, addr_len(&local->sa));
	span = range->high - range->low + 1;
	start = randombytes_uniform(span);
	for (i = 0; i < span; i++) {
		uint16_t port = (uint16_t)(range->low + (start + i) % span);

		addr_set_port(local, port);
		if (bind(fd, &local->sa, addr_len(&local->sa)) == 0)
			return 0;
		if (errno != EADDRINUSE && errno != EACCES)
			return -1;
	}
	errno = EADDRINUSE;
	return -1;
}

/* The relay socket, on the address the client reached us at, so the
 * client can reach it too. *bnd gets its concrete address. */
static int
udp_relay_open(struct udp_assoc *a, union sockaddr_any *bnd)
{
	struct session *s = a->s;
	union sockaddr_any local, reached;
	socklen_t len = sizeof(*bnd);
	char where[ADDR_STRLEN];

	(void)session_local_addr(s, &reached);
	addr_normalize(&reached.sa, &local);
	if (local.sa.sa_family != AF_INET && local.sa.sa_family != AF_INET6) {
		log_warnx("udp: no local address for the relay socket");
		return -1;
	}
	addr_set_port(&local, 0);
	addr_format(&local.sa, where, sizeof(where));
	if ((a->relay_fd = udp_socket(local.sa.sa_family)) == -1 ||
	    udp_bind_port(a->relay_fd, &local, &s->srv->cfg->udp_ports) == -1 ||
	    getsockname(a->relay_fd, &bnd->sa, &len) == -1) {
		log_warn("udp: relay socket on %s%s", where,
		    errno == EADDRINUSE ? " (port_range exhausted)" : "");
		return -1;
	}
	a->client_max = local.sa.sa_family == AF_INET ? UDP_MAX_IPV4 :
	    UDP_MAX_IPV6;
	return 0;
}

/* Servers behind NAT tell clients another address; the port stays. */
static void
udp_advertise(const struct config *cfg, union sockaddr_any *bnd)
{
	const struct config_addr *adv;
	uint16_t port = (uint16_t)addr_port(&bnd->sa);

	adv = bnd->sa.sa_family == AF_INET ? &cfg->udp_advertise_ipv4 :
	    &cfg->udp_advertise_ipv6;
	if (adv->len == 0)
		return;
	memcpy(bnd, &adv->ss, adv->len);
	addr_set_port(bnd, port);
}

/*
 * Who may send: the TCP client's address, or DST.ADDR when the request
 * names a non-zero address of the same family (one of another family could
 * never reach the relay socket). DST.PORT 0, an all-zero DST.ADDR and names
 * ("0") mean the port is learnt from the first datagram.
 */
static void
udp_expect_client(struct udp_assoc *a, const struct socks5_addr *dst)
{
	union sockaddr_any given;

	addr_normalize(&a->s->client_addr.sa, &a->client);
	addr_set_port(&a->client, 0);
	a->client_port = false;
	if (dst->atyp == SOCKS5_ATYP_NAME || !addr_from_socks5(dst, &given))
		return;
	/* An all-zero address says the client does not know yet where it
	 * will send from; the port beside it is no better informed. */
	if (udp_ip_is_zero(&given))
		return;
	if (given.sa.sa_family == a->client.sa.sa_family)
		a->client = given;
	addr_set_port(&a->client, dst->port);
	a->client_port = dst->port != 0;
}

enum udp_route
udp_upstream_route(const struct udp_assoc *a)
{
	return a->up_relay.sa.sa_family == AF_INET ? UDP_ROUTE_IPV4 :
	    UDP_ROUTE_IPV6;
}

/* The upstream's control connection: its end is the association's. */
static void
udp_upstream_control_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct udp_assoc *a = w->data;
	uint8_t sink[512];
	ssize_t n;

	(void)loop;
	(void)revents;
	n = read(a->up_ctl_fd, sink, sizeof(sink));
	if (n > 0 || (n == -1 && (errno == EAGAIN || errno == EINTR)))
		return;
	session_close(a->s, "upstream-eof");
}

/*
 * Send datagrams to the upstream's relay from the control connection's
 * own address, which SOCKS5 servers (Dante) require; an all-zero BND means
 * the address the control connection reached.
 */
static int
udp_upstream_attach(struct udp_assoc *a, int fd,
    const union sockaddr_any *member, const struct socks5_addr *bnd)
{
	struct session *s = a->s;
	union sockaddr_any relay, local;
	socklen_t len = sizeof(local);
	int route;

	/* Ours from here on: teardown closes it, whatever happens next. */
	a->up_ctl_fd = fd;
	if (bnd == NULL || !addr_from_socks5(bnd, &relay) ||
	    udp_ip_is_zero(&relay)) {
		/* A name, or all zeros: the member's own address. */
		addr_normalize(&member->sa, &relay);
		addr_set_port(&relay, bnd != NULL ? bnd->port : 0);
	}
	a->up_relay = relay;
	ev_io_init(&a->up_ctl_io, udp_upstream_control_cb, fd, EV_READ);
	a->up_ctl_io.data = a;
	ev_io_start(s->srv->loop, &a->up_ctl_io);
	route = udp_upstream_route(a);
	if (getsockname(fd, &local.sa, &len) == -1 ||
	    local.sa.sa_family != relay.sa.sa_family ||
	    (a->out[route].fd = udp_socket(local.sa.sa_family)) == -1)
		return -1;
	addr_set_port(&local, 0);
	if (bind(a->out[route].fd, &local.sa, addr_len(&local.sa)) == -1)
		return -1;
	ev_io_set(&a->out[route].io, a->out[route].fd, EV_READ);
	ev_io_start(s->srv->loop, &a->out[route].io);
	return 0;
}

/* Create the association (through the upstream when fd is not -1),
 * reply, and keep the session waiting until the control connection ends. */
static void
udp_begin(struct session *s, int fd, const union sockaddr_any *member,
    const struct socks5_addr *up_bnd)
{
	struct server *srv = s->srv;
	struct udp_assoc *a;
	union sockaddr_any bnd;

	if (s->hs->client_eof) {
		/* The control connection already ended: so did this. */
		if (fd != -1)
			close(fd);
		session_close(s, "client-eof");
		return;
	}
	if ((a = udp_assoc_create(s)) == NULL) {
		log_warn("%s: calloc", __func__);
		if (fd != -1)
			close(fd);
		session_fail(s, REPLY_FAILURE);
		return;
	}
	s->command_state = a;
	policy_rate_start(s);
	if (fd != -1 && udp_upstream_attach(a, fd, member, up_bnd) == -1) {
		log_warnx("udp: no relay socket toward the upstream's relay");
		session_fail(s, REPLY_FAILURE);
		return;
	}
	if (udp_relay_open(a, &bnd) == -1) {
		session_fail(s, REPLY_FAILURE);
		return;
	}
	udp_expect_client(a, &s->hs->req.dst);
	udp_advertise(srv->cfg, &bnd);
	if (session_send_reply(s, REPLY_SUCCESS, &bnd.sa) == -1) {
		session_close(s, "reset");
		return;
	}
	session_free_handshake(s);
	ev_io_stop(srv->loop, &s->client_io);
	ev_io_init(&s->client_io, udp_control_cb, s->client_fd, EV_READ);
	ev_io_start(srv->loop, &s->client_io);
	udp_forward_start(a);
	a->last_activity = ev_now(srv->loop);
	session_set_state(s, SESSION_WAITING);
	session_set_timeout(s, srv->cfg->timeout_udp_idle);
}

/* The upstream's association is up (or not). */
static void
udp_via_ready(struct session *s, uint8_t rep, int fd,
    const union sockaddr_any *addr, const struct socks5_addr *bnd)
{
	struct socks5_addr relay;

	upstream_dial_free(s->hs->dial);
	s->hs->dial = NULL;
	if (rep != REPLY_SUCCESS) {
		session_fail(s, rep);
		return;
	}
	relay = *bnd;
	/* The watcher was the dial's: the relay's watchers are our own. */
	ev_io_stop(s->srv->loop, &s->target_io);
	ev_io_set(&s->target_io, -1, 0);
	udp_begin(s, fd, addr, &relay);
}

static void
udp_start(struct session *s)
{
	const struct upstream *via;
	struct socks5_addr any;

	policy_route_udp(s, &via);
	if (via == NULL) {
		udp_begin(s, -1, NULL, NULL);
		return;
	}
	/* Our request names no client address: datagrams come from ours. */
	memset(&any, 0, sizeof(any));
	any.atyp = SOCKS5_ATYP_IPV4;
	upstream_dial_start(s, via, REQUEST_CMD_UDP, &any, udp_via_ready);
}

/* The session timer fired while the association runs (idle check). */
static void
udp_timeout(struct session *s)
{
	struct udp_assoc *a = s->command_state;
	ev_tstamp idle = s->srv->cfg->timeout_udp_idle;

	if (a == NULL && s->hs != NULL && s->hs->dial != NULL) {
		upstream_dial_timeout(s->hs->dial);
		return;
	}
	/* Datagrams only stamp a time; the timer re-arms for what is left. */
	if (a->last_activity + idle <= ev_now(s->srv->loop)) {
		session_close(s, "idle");
		return;
	}
	udp_arm_timer(a);
}

/* Called once per callback, not per datagram: the hot path only bumps
 * the association's own counters. */
void
udp_publish_stats(struct udp_assoc *a)
{
	struct udp_stats *now = &a->stats, *seen = &a->published;
	int reason;

	if (now->dgrams_up != seen->dgrams_up)
		metrics_count_udp_datagrams(true,
		    now->dgrams_up - seen->dgrams_up);
	if (now->dgrams_down != seen->dgrams_down)
		metrics_count_udp_datagrams(false,
		    now->dgrams_down - seen->dgrams_down);
	if (now->bytes_up != seen->bytes_up)
		metrics_count_bytes(true, now->bytes_up - seen->bytes_up);
	if (now->bytes_down != seen->bytes_down)
		metrics_count_bytes(false, now->bytes_down - seen->bytes_down);
	for (reason = 0; reason < METRICS_UDP_DROP_COUNT; reason++) {
		if (now->drops[reason] != seen->drops[reason])
			metrics_count_udp_drops(reason,
			    now->drops[reason] - seen->drops[reason]);
	}
	if (a->s->user_stats != NULL)
		metrics_user_count(a->s->user_stats, 0,
		    now->bytes_up - seen->bytes_up,
		    now->bytes_down - seen->bytes_down);
	if (a->s->nquotas > 0 && (now->bytes_up != seen->bytes_up ||
	    now->bytes_down != seen->bytes_down))
		(void)policy_quota_count(a->s, now->bytes_up - seen->bytes_up +
		    now->bytes_down - seen->bytes_down);
	*seen = *now;
}

bool
udp_quota_spent(struct udp_assoc *a)
{
	if (a->s->nquotas == 0 || !policy_quota_exhausted(a->s))
		return false;
	session_close(a->s, "quota");
	return true;
}

/* Release every socket and buffer of the association. */
static void
udp_teardown(struct session *s)
{
	struct udp_assoc *a = s->command_state;

	if (a == NULL)
		return;
	s->command_state = NULL;
	/* Datagrams still waiting for a name die with the association. */
	a->stats.drops[METRICS_UDP_DROP_DNS] += udp_dns_held(a->dns);
	udp_publish_stats(a);
	udp_forward_stop(a);
	if (a->relay_fd != -1)
		close(a->relay_fd);
	if (a->up_ctl_fd != -1) {
		ev_io_stop(s->srv->loop, &a->up_ctl_io);
		close(a->up_ctl_fd);
	}
	udp_dns_free(a->dns);
	free(a);
}

/* Append " prefixname=value" if it fits whole; returns the new length. */
static size_t
udp_append_field(char *out, size_t outlen, size_t used, const char *prefix,
    const char *name, uint64_t value)
{
	int n;

	if (used >= outlen)
		return used;
	n = snprintf(out + used, outlen - used, " %s%s=%" PRIu64, prefix, name,
	    value);
	if (n < 0 || (size_t)n >= outlen - used) {
		out[used] = '\0';
		return outlen;
	}
	return used + (size_t)n;
}

/* For the access-log line: payload bytes each way, datagrams, and drops
 * by reason. */
static void
udp_log_fields(const struct session *s, uint64_t *up, uint64_t *down,
    char *extra, size_t extralen)
{
	const struct udp_assoc *a = s->command_state;
	const struct udp_stats *st;
	size_t used = 0;
	int reason;

	if (a == NULL)
		return;         /* refused before it began: the relay's zeros */
	st = &a->stats;

	*up = st->bytes_up;
	*down = st->bytes_down;
	if (extralen == 0)
		return;
	extra[0] = '\0';
	used = udp_append_field(extra, extralen, used, "", "dgrams_up",
	    st->dgrams_up);
	used = udp_append_field(extra, extralen, used, "", "dgrams_down",
	    st->dgrams_down);
	for (reason = 0; reason < METRICS_UDP_DROP_COUNT; reason++) {
		uint64_t count = st->drops[reason];

		/* The log comes before udp_free: count the held ones here. */
		if (reason == METRICS_UDP_DROP_DNS)
			count += udp_dns_held(a->dns);
		used = udp_append_field(extra, extralen, used, "drop_",
		    metrics_udp_drop_name(reason), count);
	}
}

static bool
udp_enabled(const struct config *cfg)
{
	return cfg->udp_enabled;
}

const struct command command_udp = {
	.name = "udp",
	.cmd = REQUEST_CMD_UDP,
	.enabled = udp_enabled,
	.start = udp_start,
	.timeout = udp_timeout,
	.teardown = udp_teardown,
	.log_fields = udp_log_fields,
};
