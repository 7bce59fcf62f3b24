/*
 * CONNECT: turn the requested destination into addresses (literals as
 * given, names through the resolver), race them (Happy Eyeballs: each
 * attempt with its own timeout, the next one started after a short delay
 * or when one fails), and hand the first connected socket to the relay.
 * The reply code for a failure comes from the last attempt's error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "socks5d/addr.h"
#include "socks5d/command.h"
#include "socks5d/connect.h"
#include "socks5d/egress.h"
#include "socks5d/happy.h"
#include "socks5d/inspect.h"
#include "socks5d/intercept.h"
#include "socks5d/log.h"
#include "socks5d/upstream_dial.h"
#include "socks5d/policy.h"
#include "socks5d/session.h"

uint8_t
connect_reply_for(int err)
{
	switch (err) {
	case ENETUNREACH:
	case ENETDOWN:
		return REPLY_NET_UNREACH;
	case EHOSTUNREACH:
	case EHOSTDOWN:
		return REPLY_HOST_UNREACH;
	case ECONNREFUSED:
	case ECONNRESET:
		return REPLY_REFUSED;
	case ETIMEDOUT:
		return REPLY_TTL_EXPIRED;
	case EACCES:            /* also: an access rule refused it */
	case EPERM:
		return REPLY_NOT_ALLOWED;
	default:
		return REPLY_FAILURE;
	}
}

static void
connect_done(struct session *s)
{
	union sockaddr_any bnd;
	socklen_t len = sizeof(bnd);

	ev_io_stop(s->srv->loop, &s->target_io);
	if (getsockname(s->target_fd, &bnd.sa, &len) == -1) {
		session_fail(s, REPLY_FAILURE);
		return;
	}
	session_start_relay(s, &bnd.sa);
}

/* A pool address that will not bind fails every connection given it: say
 * so, once a second however many. */
static void
connect_log_egress_failure(const struct session *s,
    const union sockaddr_any *source)
{
	static struct log_ratelimit egress_log;
	char addr[ADDR_STRLEN];
	unsigned long covered;
	int err = errno;

	if (!log_ratelimit_pass(&egress_log, ev_now(s->srv->loop), 1.0,
	    &covered))
		return;
	addr_format_ip(&source->sa, addr, sizeof(addr));
	errno = err;
	log_warn("connect: egress address %s (%lu failure(s) in the last "
	    "second)", addr, covered);
}

int
connect_outbound_socket(const struct session *s, int family,
    const struct policy_route *route)
{
	const struct config *cfg = s->srv->cfg;
	const struct config_addr *bind_addr;
	int fd, one = 1, err;

	fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		log_warn("connect: socket");
		return -1;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (route->has_source) {
		if (egress_bind(fd, &route->source, true) == 0)
			return fd;
		err = errno;
		connect_log_egress_failure(s, &route->source);
		close(fd);
		errno = err;
		return -1;
	}
	bind_addr = family == AF_INET ? &cfg->bind_ipv4 : &cfg->bind_ipv6;
	if (bind_addr->len == 0)
		return fd;
	/* Let connect() pick the port, so outbound connections are not
	 * limited to one ephemeral range per source address. */
	(void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
	    sizeof(one));
	if (bind(fd, (const struct sockaddr *)&bind_addr->ss,
	    bind_addr->len) == 0)
		return fd;
	err = errno;
	close(fd);
	errno = err;
	return -1;
}

/*
 * A socket for one attempt. Every address a name resolves to is checked
 * before it is connected to (a name may point into a denied network), and
 * the verdict says where it leaves from.
 */
static int
connect_socket(void *arg, const struct sockaddr *dst)
{
	struct session *s = arg;
	struct policy_route route;

	if (!policy_route_dest(s, s->hs->dst_name, dst, s->hs->req.dst.port,
	    &route)) {
		errno = EACCES;
		return -1;
	}
	return connect_outbound_socket(s, dst->sa_family, &route);
}

static void
connect_arm(void *arg, ev_tstamp after)
{
	session_set_timeout(arg, after);
}

static void
connect_finished(void *arg, int fd, const union sockaddr_any *addr, int err)
{
	struct session *s = arg;

	happy_free(s->hs->happy);
	s->hs->happy = NULL;
	if (fd == -1) {
		session_fail(s, connect_reply_for(err));
		return;
	}
	s->target_fd = fd;
	s->target_addr = *addr;
	connect_done(s);
}

static const struct happy_ops connect_race = {
	.open_socket = connect_socket,
	.arm = connect_arm,
	.done = connect_finished,
};

/* Race the destination's addresses (RFC 8305): the first to connect is
 * relayed to. */
static void
connect_addresses(struct session *s, size_t n)
{
	struct handshake *hs = s->hs;
	const struct config *cfg = s->srv->cfg;

	happy_order(hs->addrs, n);
	session_set_state(s, SESSION_WAITING);
	if (!happy_start(&hs->happy, s->srv->loop, &connect_race, s,
	    &s->target_io, hs->addrs, n,
	    cfg->connection_attempt_delay_ms / 1000.,
	    cfg->timeout_connect)) {
		log_warn("%s: calloc", __func__);
		session_fail(s, REPLY_FAILURE);
	}
}

static void
connect_resolved(void *arg, enum resolver_status status,
    const union sockaddr_any *addrs, size_t n)
{
	struct session *s = arg;
	struct handshake *hs = s->hs;

	hs->query = NULL;
	if (status != RESOLVER_OK) {
		session_fail(s, status == RESOLVER_NOT_FOUND ?
		    REPLY_HOST_UNREACH : REPLY_FAILURE);
		return;
	}
	memcpy(hs->addrs, addrs, n * sizeof(*addrs));
	connect_addresses(s, n);
}

/* Through an upstream: its answer is the session's. */
static void
connect_via_done(struct session *s, uint8_t rep, int fd,
    const union sockaddr_any *addr, const struct socks5_addr *bnd)
{
	(void)bnd;
	upstream_dial_free(s->hs->dial);
	s->hs->dial = NULL;
	if (rep != REPLY_SUCCESS) {
		session_fail(s, rep);
		return;
	}
	s->target_fd = fd;
	s->target_addr = *addr;
	connect_done(s);
}

static void
connect_go(struct session *s)
{
	const struct upstream *via;
	bool allowed = policy_route_request(s, &via);

	if (via != NULL) {
		if (!allowed) {
			session_fail(s, REPLY_NOT_ALLOWED);
			return;
		}
		upstream_dial_start(s, via, REQUEST_CMD_CONNECT,
		    &s->hs->req.dst, connect_via_done);
		return;
	}
	if (session_find_dst(s, &s->hs->addrs[0], connect_resolved))
		connect_addresses(s, 1);
}

static void
connect_start(struct session *s)
{
	/* A bare address the rules could judge otherwise by name: the
	 * client's first bytes say the name first. */
	if (inspect_should_wait(s)) {
		inspect_wait(s, connect_go);
		return;
	}
	connect_go(s);
}

/* The session timer fired while connecting: the race (or the upstream
 * dial) asked for it; or while the client's first bytes were awaited, or
 * interception's handshakes. */
static void
connect_timeout(struct session *s)
{
	if (inspect_wait_timeout(s) || intercept_timeout(s))
		return;
	if (s->hs->dial != NULL)
		upstream_dial_timeout(s->hs->dial);
	else
		happy_timer(s->hs->happy);
}

const struct command command_connect = {
	.name = "connect",
	.cmd = REQUEST_CMD_CONNECT,
	.waits_through_client_eof = true,
	.start = connect_start,
	.timeout = connect_timeout,
};
