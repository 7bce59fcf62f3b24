/*
 * CONNECT: turn the requested destination into addresses (literals as
 * given, names through the resolver), try each in turn with a per-attempt
 * timeout, and hand the first connected socket to the relay. The reply code
 * for a failure comes from the last attempt's error.
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
#include "socks5d/log.h"
#include "socks5d/policy.h"
#include "socks5d/session.h"

static void connect_next(struct session *s);

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
	hs->naddrs = n;
	hs->next_addr = 0;
	connect_next(s);
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

/* Give up on the socket of the current attempt. */
static void
connect_abandon(struct session *s, int err)
{
	ev_io_stop(s->srv->loop, &s->target_io);
	if (s->target_fd != -1) {
		close(s->target_fd);
		s->target_fd = -1;
	}
	/* The next attempt's socket may get the same number: the watcher
	 * must not look set on it (see struct relay_side). */
	ev_io_set(&s->target_io, -1, 0);
	memset(&s->target_addr, 0, sizeof(s->target_addr));
	s->hs->last_errno = err;
}

static void
connect_writable_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct session *s = (struct session *)
	    ((char *)w - offsetof(struct session, target_io));
	socklen_t len = sizeof(int);
	int err = 0;

	(void)loop;
	(void)revents;
	if (getsockopt(s->target_fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (err != 0) {
		connect_abandon(s, err);
		connect_next(s);
		return;
	}
	connect_done(s);
}

/* A socket for one attempt, bound to [outbound] when configured. */
static int
connect_socket(const struct config *cfg, int family)
{
	const struct config_addr *bind_addr;
	int fd, one = 1;

	fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	bind_addr = family == AF_INET ? &cfg->bind_ipv4 : &cfg->bind_ipv6;
	if (bind_addr->len != 0) {
		/* Let connect() pick the port, so outbound connections are
		 * not limited to one ephemeral range per source address. */
		(void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
		    sizeof(one));
		if (bind(fd, (const struct sockaddr *)&bind_addr->ss,
		    bind_addr->len) == -1) {
			int err = errno;

			close(fd);
			errno = err;
			return -1;
		}
	}
	return fd;
}

static void
connect_next(struct session *s)
{
	struct handshake *hs = s->hs;
	const struct config *cfg = s->srv->cfg;

	while (hs->next_addr < hs->naddrs) {
		const union sockaddr_any *dst = &hs->addrs[hs->next_addr++];

		/* Every address a name resolves to is checked before it is
		 * connected to: a name may point into a denied network. */
		if (!policy_allow_dest(s, hs->dst_name, &dst->sa,
		    hs->req.dst.port)) {
			hs->last_errno = EACCES;
			continue;
		}
		s->target_fd = connect_socket(cfg, dst->sa.sa_family);
		if (s->target_fd == -1) {
			log_warn("connect: socket");
			hs->last_errno = errno;
			continue;
		}
		s->target_addr = *dst;
		if (connect(s->target_fd, &dst->sa, addr_len(&dst->sa)) == 0) {
			connect_done(s);
			return;
		}
		if (errno == EINPROGRESS) {
			session_set_state(s, SESSION_WAITING);
			ev_io_init(&s->target_io, connect_writable_cb,
			    s->target_fd, EV_WRITE);
			ev_io_start(s->srv->loop, &s->target_io);
			session_set_timeout(s, cfg->timeout_connect);
			return;
		}
		connect_abandon(s, errno);
	}
	session_fail(s, connect_reply_for(hs->last_errno));
}

static void
connect_start(struct session *s)
{
	struct handshake *hs = s->hs;

	hs->naddrs = 0;
	hs->next_addr = 0;
	hs->last_errno = 0;
	if (session_find_dst(s, &hs->addrs[0], connect_resolved)) {
		hs->naddrs = 1;
		connect_next(s);
	}
}

/* The session timer fired during a connection attempt. */
static void
connect_timeout(struct session *s)
{
	connect_abandon(s, ETIMEDOUT);
	connect_next(s);
}

const struct command command_connect = {
	.name = "connect",
	.cmd = REQUEST_CMD_CONNECT,
	.waits_through_client_eof = true,
	.start = connect_start,
	.timeout = connect_timeout,
};
