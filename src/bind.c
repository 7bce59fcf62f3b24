/*
 * BIND (RFC 1928 §4, §6): listen on the client's behalf at an address the
 * expected peer can reach, send it as the first reply, accept exactly one
 * connection from DST.ADDR (anyone when DST is all zeros), send the peer's
 * address as the second reply and hand both sockets to the relay.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sodium.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "socks5d/addr.h"
#include "socks5d/command.h"
#include "socks5d/log.h"
#include "socks5d/policy.h"
#include "socks5d/session.h"
#include "socks5d/upstream_dial.h"

/* One peer is expected: a short queue is plenty, and strangers filling it
 * are closed as fast as they arrive. */
#define BIND_BACKLOG        4
/* Connections looked at per wake-up, so a flood of strangers on one BIND
 * cannot hold the loop. */
#define BIND_ACCEPT_BUDGET  16
/* Port for the routing probe when DST.PORT is 0; no packet is ever sent. */
#define BIND_PROBE_PORT     9

static struct session *
bind_session(ev_io *w)
{
	return (struct session *)((char *)w - offsetof(struct session,
	    target_io));
}

static bool
bind_is_unspecified(const union sockaddr_any *a)
{
	if (a->sa.sa_family == AF_INET)
		return a->in.sin_addr.s_addr == htonl(INADDR_ANY);
	return IN6_IS_ADDR_UNSPECIFIED(&a->in6.sin6_addr);
}


static uint8_t
bind_reply_for(int err)
{
	switch (err) {
	case ENETUNREACH:
	case ENETDOWN:
		return REPLY_NET_UNREACH;
	case EHOSTUNREACH:
	case EHOSTDOWN:
		return REPLY_HOST_UNREACH;
	default:
		return REPLY_FAILURE;
	}
}

/*
 * The local address this host would use toward dst. connect() on a UDP
 * socket only looks up the route and picks the source; nothing is sent and
 * nothing blocks. Returns 0 or a reply code.
 */
static uint8_t
bind_route_source(const union sockaddr_any *dst, union sockaddr_any *out)
{
	union sockaddr_any probe = *dst;
	socklen_t len = sizeof(*out);
	uint8_t rep = REPLY_SUCCESS;
	int fd;

	if (addr_port(&probe.sa) == 0)
		addr_set_port(&probe, BIND_PROBE_PORT);
	fd = socket(probe.sa.sa_family, SOCK_DGRAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd == -1) {
		log_warn("bind: route probe socket");
		return REPLY_FAILURE;
	}
	if (connect(fd, &probe.sa, addr_len(&probe.sa)) == -1)
		rep = bind_reply_for(errno);
	else if (getsockname(fd, &out->sa, &len) == -1)
		rep = REPLY_FAILURE;
	close(fd);
	return rep;
}

/*
 * The address to advertise: for an all-zeros DST the client gives no hint
 * about the peer, so the local address of its own connection (it reached us
 * there); otherwise the source address toward DST. Returns 0 or a reply
 * code.
 */
static uint8_t
bind_reachable_address(const struct session *s, const union sockaddr_any *dst,
    union sockaddr_any *out)
{
	if (bind_is_unspecified(dst))
		return session_local_addr(s, out) ? REPLY_SUCCESS :
		    REPLY_FAILURE;
	return bind_route_source(dst, out);
}

static int
bind_socket(int family)
{
	int fd, one = 1;

	fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	/* A port whose last BIND connection is in TIME_WAIT is free again;
	 * without this a small port_range runs dry after a few sessions. */
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	return fd;
}

/*
 * A listening socket on addr: the kernel's choice of port, or the first
 * free port of [bind] port_range from a random start (so concurrent BINDs
 * do not all contend for LOW). Returns the fd, or -1 with errno set
 * (EADDRINUSE: every port of the range is taken).
 */
static int
bind_open_listener(const struct config_port_range *range,
    union sockaddr_any *addr)
{
	uint32_t n = 1, start = 0;
	int fd = -1, err;

	if (range->low != 0) {
		n = range->high - range->low + 1;
		start = randombytes_uniform(n);
	}
	for (uint32_t i = 0; i < n; i++) {
		if (range->low != 0)
			addr_set_port(addr, (uint16_t)(range->low + (start + i) % n));
		if (fd == -1 && (fd = bind_socket(addr->sa.sa_family)) == -1)
			return -1;
		if (bind(fd, &addr->sa, addr_len(&addr->sa)) == -1) {
			/* The socket stays unbound: try the next port. */
			if (errno == EADDRINUSE)
				continue;
			goto fail;
		}
		if (listen(fd, BIND_BACKLOG) == 0)
			return fd;
		if (errno != EADDRINUSE)
			goto fail;
		/* Bound beside another SO_REUSEADDR socket that listened
		 * first; a bound socket cannot move, so start over. */
		close(fd);
		fd = -1;
	}
	errno = EADDRINUSE;
fail:
	err = errno;
	if (fd != -1)
		close(fd);
	errno = err;
	return -1;
}

/* Open the listener for dst into s->target_fd and find the address to
 * advertise. Returns 0 or a reply code. */
static uint8_t
bind_listen_for(struct session *s, const union sockaddr_any *dst,
    union sockaddr_any *bnd)
{
	const struct config *cfg = s->srv->cfg;
	const struct config_addr *configured;
	union sockaddr_any listen_addr, reachable;
	socklen_t len = sizeof(*bnd);
	char where[ADDR_STRLEN];
	uint8_t rep;

	configured = dst->sa.sa_family == AF_INET ? &cfg->bind_address.ipv4 :
	    &cfg->bind_address.ipv6;
	memset(&listen_addr, 0, sizeof(listen_addr));
	if (configured->len != 0)
		memcpy(&listen_addr, &configured->ss, configured->len);
	else if ((rep = bind_reachable_address(s, dst, &listen_addr)) != 0)
		return rep;
	addr_set_port(&listen_addr, 0);

	s->target_fd = bind_open_listener(&cfg->bind_ports, &listen_addr);
	if (s->target_fd == -1) {
		addr_format(&listen_addr.sa, where, sizeof(where));
		if (errno == EADDRINUSE && cfg->bind_ports.low != 0)
			log_warnx("bind: no free port in port_range %u-%u on %s",
			    cfg->bind_ports.low, cfg->bind_ports.high, where);
		else
			log_warn("bind: listen on %s", where);
		return REPLY_FAILURE;
	}
	if (getsockname(s->target_fd, &bnd->sa, &len) == -1) {
		log_warn("bind: getsockname");
		return REPLY_FAILURE;
	}
	/* A wildcard [bind] address listens everywhere, but the peer needs
	 * one concrete address to connect to. */
	if (bind_is_unspecified(bnd)) {
		if ((rep = bind_reachable_address(s, dst, &reachable)) != 0)
			return rep;
		addr_set_port(&reachable, (uint16_t)addr_port(&bnd->sa));
		*bnd = reachable;
	}
	return REPLY_SUCCESS;
}

/* Is this accepted connection the one the client announced? */
static bool
bind_peer_expected(const struct session *s, const union sockaddr_any *peer)
{
	const union sockaddr_any *dst = &s->hs->addrs[0];

	/* The port is ignored: clients put arbitrary values in DST.PORT. */
	return bind_is_unspecified(dst) || addr_same_ip(dst, peer);
}

/* The name the expected peer was asked by, for rules written with names:
 * none for a wildcard, whose peer is known only by its address. */
static const char *
bind_peer_name(const struct session *s)
{
	return bind_is_unspecified(&s->hs->addrs[0]) ? NULL : s->hs->dst_name;
}

static void
bind_established(struct session *s, int fd, const union sockaddr_any *peer)
{
	int one = 1;

	/* Exactly one peer per BIND: nobody else may connect from here on. */
	ev_io_stop(s->srv->loop, &s->target_io);
	ev_io_set(&s->target_io, -1, 0);
	close(s->target_fd);
	s->target_fd = fd;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	s->target_addr = *peer;
	session_start_relay(s, &peer->sa);
}

static void
bind_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct session *s = bind_session(w);
	union sockaddr_any peer;
	char who[ADDR_STRLEN];
	socklen_t len;
	int fd;

	(void)loop;
	(void)revents;
	for (int i = 0; i < BIND_ACCEPT_BUDGET; i++) {
		len = sizeof(peer);
		fd = accept4(s->target_fd, &peer.sa, &len,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			/* Out of descriptors included: the listener would
			 * stay readable and spin the loop. */
			log_warn("bind: accept");
			session_fail(s, REPLY_FAILURE);
			return;
		}
		addr_normalize(&peer.sa, &peer);
		if (!bind_peer_expected(s, &peer)) {
			/* A stranger (a port scanner, say) must not break
			 * the wait for the real peer. */
			close(fd);
			if (log_enabled(LOG_LEVEL_DEBUG)) {
				addr_format(&peer.sa, who, sizeof(who));
				log_debug("bind: closed connection from "
				    "unexpected %s", who);
			}
			continue;
		}
		/* Whoever dials in is judged too, or a wildcard BIND would
		 * let a denied network reach the client. */
		if (!policy_allow_bind_peer(s, bind_peer_name(s), &peer.sa,
		    s->hs->req.dst.port)) {
			close(fd);
			continue;
		}
		bind_established(s, fd, &peer);
		return;
	}
}

static void
bind_listen(struct session *s, union sockaddr_any *dst)
{
	struct handshake *hs = s->hs;
	union sockaddr_any bnd;
	uint8_t rep;

	if (hs->client_eof) {
		/* Nobody is left to tell about a peer. */
		session_close(s, "client-eof");
		return;
	}
	addr_normalize(&dst->sa, dst);
	hs->addrs[0] = *dst;
	hs->naddrs = 1;
	/* The rules judge BIND by the peer it expects. */
	if (!policy_allow_dest(s, hs->dst_name, &dst->sa, hs->req.dst.port)) {
		session_fail(s, REPLY_NOT_ALLOWED);
		return;
	}
	if ((rep = bind_listen_for(s, dst, &bnd)) != REPLY_SUCCESS) {
		session_fail(s, rep);
		return;
	}
	if (session_send_reply(s, REPLY_SUCCESS, &bnd.sa) == -1) {
		session_close(s, "reset");
		return;
	}
	if (log_enabled(LOG_LEVEL_DEBUG)) {
		char where[ADDR_STRLEN], from[ADDR_STRLEN];

		addr_format(&bnd.sa, where, sizeof(where));
		addr_format(&dst->sa, from, sizeof(from));
		log_debug("bind: listening on %s for a peer from %s", where,
		    bind_is_unspecified(dst) ? "anywhere" : from);
	}
	session_set_state(s, SESSION_WAITING);
	ev_io_init(&s->target_io, bind_accept_cb, s->target_fd, EV_READ);
	ev_io_start(s->srv->loop, &s->target_io);
	session_set_timeout(s, s->srv->cfg->timeout_bind);
}

static void
bind_resolved(void *arg, enum resolver_status status,
    const union sockaddr_any *addrs, size_t n)
{
	struct session *s = arg;
	union sockaddr_any dst;

	(void)n;
	s->hs->query = NULL;
	if (status != RESOLVER_OK) {
		session_fail(s, status == RESOLVER_NOT_FOUND ?
		    REPLY_HOST_UNREACH : REPLY_FAILURE);
		return;
	}
	/* The peer is expected from the preferred address of the name. */
	dst = addrs[0];
	bind_listen(s, &dst);
}

/* -- through an upstream ----------------------------------------------------
 * The upstream listens and answers twice; we pass both answers on, the
 * peer it reports judged by our rules like a peer of our own. */

/* The upstream's second reply: the peer that connected to it. */
static void
bind_via_peer_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct session *s = w->data;
	struct socks5_reply reply;
	union sockaddr_any peer;
	int got;

	(void)loop;
	(void)revents;
	if ((got = upstream_dial_next_reply(s->hs->dial, s->target_fd,
	    &reply)) == 0)
		return;
	ev_io_stop(s->srv->loop, &s->target_io);
	if (got == -1) {
		session_fail(s, REPLY_FAILURE);
		return;
	}
	if (reply.rep != REPLY_SUCCESS) {
		session_fail(s, reply.rep);
		return;
	}
	if (!addr_from_socks5(&reply.bnd, &peer)) {
		memset(&peer, 0, sizeof(peer));
		peer.in.sin_family = AF_INET;
	}
	/* One peer is all the upstream accepts: a denied one ends it. */
	if (!policy_allow_bind_peer(s, bind_peer_name(s), &peer.sa,
	    s->hs->req.dst.port)) {
		session_fail(s, REPLY_NOT_ALLOWED);
		return;
	}
	s->target_addr = peer;
	session_start_relay(s, &peer.sa);
}

/* The upstream listens: its address is our first reply. */
static void
bind_via_listening(struct session *s, uint8_t rep, int fd,
    const union sockaddr_any *addr, const struct socks5_addr *bnd)
{
	union sockaddr_any where;

	/* The dial stays for the second reply, which it reads. */
	if (rep != REPLY_SUCCESS) {
		upstream_dial_free(s->hs->dial);
		s->hs->dial = NULL;
		session_fail(s, rep);
		return;
	}
	s->target_fd = fd;
	/* A BND of no use to the client (a name, all zeros) means the
	 * member's own address, as for UDP. */
	if (bnd == NULL || !addr_from_socks5(bnd, &where) ||
	    bind_is_unspecified(&where)) {
		addr_normalize(&addr->sa, &where);
		if (bnd != NULL)
			addr_set_port(&where, bnd->port);
	}
	if (session_send_reply(s, REPLY_SUCCESS, &where.sa) == -1) {
		session_close(s, "reset");
		return;
	}
	session_set_state(s, SESSION_WAITING);
	ev_io_init(&s->target_io, bind_via_peer_cb, fd, EV_READ);
	s->target_io.data = s;
	ev_io_start(s->srv->loop, &s->target_io);
	/* Through TLS the second reply may be decrypted already. */
	if (s->target_ssl != NULL && SSL_pending(s->target_ssl) > 0)
		ev_feed_event(s->srv->loop, &s->target_io, EV_READ);
	session_set_timeout(s, s->srv->cfg->timeout_bind);
}

static void
bind_start(struct session *s)
{
	const struct upstream *via;
	union sockaddr_any dst;
	bool allowed = policy_route_request(s, &via);

	if (via != NULL) {
		if (!allowed) {
			session_fail(s, REPLY_NOT_ALLOWED);
			return;
		}
		upstream_dial_start(s, via, REQUEST_CMD_BIND, &s->hs->req.dst,
		    bind_via_listening);
		return;
	}
	if (session_find_dst(s, &dst, bind_resolved))
		bind_listen(s, &dst);
}

/* The session timer fired while waiting for the peer. */
static void
bind_timeout(struct session *s)
{
	if (s->hs->dial != NULL && upstream_dial_busy(s->hs->dial)) {
		upstream_dial_timeout(s->hs->dial);
		return;
	}
	/* No peer in [timeouts] bind: the second reply says so. */
	session_fail(s, REPLY_TTL_EXPIRED);
}

static bool
bind_enabled(const struct config *cfg)
{
	return cfg->bind_enabled;
}

const struct command command_bind = {
	.name = "bind",
	.cmd = REQUEST_CMD_BIND,
	.enabled = bind_enabled,
	.start = bind_start,
	.timeout = bind_timeout,
};
