/*
 * Listening sockets and accept. Accepts are taken in bounded batches so a
 * connection storm cannot starve established sessions; beyond max_clients a
 * new connection is closed at once; when the process runs out of
 * descriptors the listeners pause for a moment instead of spinning on a
 * socket that stays readable.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "socks5d/addr.h"
#include "socks5d/frontend.h"
#include "socks5d/listener.h"
#include "socks5d/log.h"
#include "socks5d/metrics.h"
#include "socks5d/session.h"

#define LISTEN_BACKLOG          1024
#define ACCEPT_BATCH            64
#define ACCEPT_PAUSE_SECONDS    0.5
/* At most one warning per this many seconds for a repeating event. */
#define LOG_INTERVAL            1.0

static ev_timer accept_pause_timer;
static bool accept_paused;
/* Set from the first EMFILE until an accept succeeds again: one warning
 * per episode, however many pauses it takes. */
static bool fd_exhausted;
static struct log_ratelimit limit_log;
static struct log_ratelimit accept_error_log;
/* Workers each bind the same addresses; the kernel spreads connections
 * over their accept queues. Off for one process, so a second daemon on a
 * port in use still fails with EADDRINUSE. */
static bool reuse_port;

void
listener_set_reuseport(bool on)
{
	reuse_port = on;
}

int
listener_socket(const struct config_addr *addr, int backlog, const char *what)
{
	const struct sockaddr *sa = (const struct sockaddr *)&addr->ss;
	char text[ADDR_STRLEN];
	int fd, one = 1;

	addr_format(sa, text, sizeof(text));
	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1) {
		log_warn("%s %s: socket", what, text);
		return -1;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one,
	    sizeof(one)) == -1) {
		log_warn("%s %s: SO_REUSEPORT", what, text);
		goto fail;
	}
	/* [::] must not also take IPv4: the config lists 0.0.0.0 when that
	 * is wanted, and the two must not collide. */
	if (sa->sa_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
		    sizeof(one));
	if (bind(fd, sa, addr->len) == -1) {
		log_warn("%s %s: bind", what, text);
		goto fail;
	}
	if (listen(fd, backlog) == -1) {
		log_warn("%s %s: listen", what, text);
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

/* A new listening socket for addr, or -1 (logged). */
static int
listener_open(const struct config_addr *addr, bool tls)
{
	char text[ADDR_STRLEN];
	int fd;

	if ((fd = listener_socket(addr, LISTEN_BACKLOG, tls ? "tls listen" :
	    "listen")) != -1) {
		addr_format((const struct sockaddr *)&addr->ss, text,
		    sizeof(text));
		log_info("listening on %s%s", text, tls ? " (TLS)" : "");
	}
	return fd;
}

/* Every address a config listens on: [server] listen, then [tls]
 * listen. */
static size_t
listener_count(const struct config *cfg)
{
	return cfg->nlisten + cfg->tls_nlisten;
}

static const struct config_addr *
listener_addr(const struct config *cfg, size_t i, bool *tls)
{
	*tls = i >= cfg->nlisten;
	return *tls ? &cfg->tls_listen[i - cfg->nlisten] : &cfg->listen[i];
}

static bool
listener_same_addr(const struct config_addr *a, const struct config_addr *b)
{
	return a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

/* Is sa one of the config's [tls] listen addresses? */
static bool
listener_is_tls_addr(const struct config *cfg, const struct config_addr *a)
{
	for (size_t i = 0; i < cfg->tls_nlisten; i++)
		if (listener_same_addr(&cfg->tls_listen[i], a))
			return true;
	return false;
}

static void listener_accept_cb(struct ev_loop *loop, ev_io *w, int revents);

static void
listener_resume_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct server *srv = w->data;

	(void)loop;
	(void)revents;
	accept_paused = false;
	if (!srv->stopping)
		listener_start_all(srv);
}

static void
listener_pause(struct server *srv)
{
	if (accept_paused)
		return;
	if (!fd_exhausted)
		log_warnx("out of file descriptors: accepting paused, retrying "
		    "every %.1fs", ACCEPT_PAUSE_SECONDS);
	fd_exhausted = true;
	accept_paused = true;
	listener_stop_all(srv);
	ev_timer_set(&accept_pause_timer, ACCEPT_PAUSE_SECONDS, 0.);
	accept_pause_timer.data = srv;
	ev_timer_start(srv->loop, &accept_pause_timer);
}

static void
listener_reject(struct server *srv, int fd)
{
	unsigned long covered;

	close(fd);
	metrics_count_refused(METRICS_REFUSED_MAX_CLIENTS);
	if (log_ratelimit_pass(&limit_log, ev_now(srv->loop), LOG_INTERVAL,
	    &covered))
		log_warnx("max_clients (%u) reached: %lu connection(s) refused",
		    srv->max_clients, covered);
}

static void
listener_accept_error(struct server *srv)
{
	unsigned long covered;
	int err = errno;

	if (log_ratelimit_pass(&accept_error_log, ev_now(srv->loop),
	    LOG_INTERVAL, &covered)) {
		errno = err;
		log_warn("accept (%lu time(s))", covered);
	}
}

static void
listener_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct listener *l = (struct listener *)
	    ((char *)w - offsetof(struct listener, io));
	struct server *srv = l->srv;
	union sockaddr_any peer;
	struct session *s;
	socklen_t len;
	int fd;

	(void)loop;
	(void)revents;
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		len = sizeof(peer);
		fd = accept4(l->fd, &peer.sa, &len,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM)
				listener_pause(srv);
			else if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				listener_accept_error(srv);
			return;
		}
		if (fd_exhausted) {
			log_info("file descriptors available again: accepting");
			fd_exhausted = false;
		}
		if (srv->nsessions >= srv->max_clients) {
			listener_reject(srv, fd);
			continue;
		}
		if ((s = session_accept(srv, fd, &peer.sa)) != NULL)
			frontend_start(s, l->tls);
	}
}

static void
listener_init(struct listener *l, struct server *srv, int fd,
    const struct config_addr *addr, bool tls)
{
	int one = 1;

	l->srv = srv;
	l->fd = fd;
	l->addr = *addr;
	l->tls = tls;
	/* Handshake messages are tiny; do not let Nagle hold the replies,
	 * nor the relayed request/response traffic. Set here, as Linux
	 * copies it to every accepted socket: one system call per
	 * listener, not per connection. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ev_io_init(&l->io, listener_accept_cb, fd, EV_READ);
}

/* Does $LISTEN_PID name this process (systemd socket activation)? Then
 * *count is $LISTEN_FDS, the sockets from descriptor 3 on, unchecked. */
static bool
listener_activation_named(long *count)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");

	if (pid == NULL || fds == NULL || strtol(pid, NULL, 10) != getpid())
		return false;
	*count = strtol(fds, NULL, 10);
	return true;
}

/*
 * The open-proxy guard for a socket no [server] listen names, by the
 * address it is really bound to; -1 (logged after prefix) when cfg would
 * serve it openly.
 */
static int
listener_guard(const struct config *cfg, int fd, const char *prefix)
{
	union sockaddr_any addr;
	struct config_addr bound;
	char text[ADDR_STRLEN];

	bound.len = sizeof(bound.ss);
	/* Not a socket: listener_take_activated says so. */
	if (getsockname(fd, (struct sockaddr *)&bound.ss, &bound.len) == -1)
		return 0;
	memcpy(&addr, &bound.ss, sizeof(addr));
	if (listener_is_tls_addr(cfg, &bound) ?
	    config_tls_listener_allowed(cfg, &addr.sa) :
	    config_listener_allowed(cfg, &addr.sa))
		return 0;
	addr_format(&addr.sa, text, sizeof(text));
	log_error("%ssocket activation: descriptor %d is bound to %s, "
	    CONFIG_OPEN_PROXY_WHY, prefix, fd, text);
	return -1;
}

int
listener_check_activation(const struct config *cfg, const char *prefix)
{
	long count = 0;
	int status = 0;

	/* A bad count is listener_take_activated's to report. */
	(void)listener_activation_named(&count);
	for (long i = 0; i < count && i < CONFIG_MAX_LISTEN; i++)
		if (listener_guard(cfg, 3 + (int)i, prefix) == -1)
			status = -1;
	return status;
}

int
listener_check_activated(const struct server *srv, const struct config *cfg,
    const char *prefix)
{
	int status = 0;

	if (!srv->activated)
		return 0;
	for (size_t i = 0; i < srv->nlisteners; i++)
		if (listener_guard(cfg, srv->listeners[i].fd, prefix) == -1)
			status = -1;
	return status;
}

/*
 * Sockets handed over by systemd socket activation. Returns how many were
 * taken (0: not activated), or -1.
 */
static int
listener_take_activated(struct server *srv)
{
	const char *fds = getenv("LISTEN_FDS");
	long count;

	if (!listener_activation_named(&count))
		return 0;
	/* Children (none today) must not think the sockets are theirs. */
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	if (count <= 0 || count > CONFIG_MAX_LISTEN) {
		log_error("LISTEN_FDS=%s: expected 1 to %d sockets", fds,
		    CONFIG_MAX_LISTEN);
		return -1;
	}
	srv->listeners = calloc((size_t)count, sizeof(*srv->listeners));
	if (srv->listeners == NULL)
		return -1;
	for (int i = 0; i < count; i++) {
		int fd = 3 + i, listening = 0;
		bool tls;
		socklen_t len = sizeof(listening);
		struct config_addr addr;
		char text[ADDR_STRLEN];

		addr.len = sizeof(addr.ss);
		if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening,
		    &len) == -1 || !listening ||
		    getsockname(fd, (struct sockaddr *)&addr.ss, &addr.len) == -1) {
			log_error("socket activation: descriptor %d is not a "
			    "listening socket", fd);
			return -1;
		}
		(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
		(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
		tls = listener_is_tls_addr(srv->cfg, &addr);
		listener_init(&srv->listeners[i], srv, fd, &addr, tls);
		srv->nlisteners++;
		addr_format((const struct sockaddr *)&addr.ss, text,
		    sizeof(text));
		log_info("listening on %s (socket activation%s)", text,
		    tls ? ", TLS" : "");
	}
	srv->activated = true;
	return (int)count;
}

int
listener_open_all(struct server *srv)
{
	const struct config *cfg = srv->cfg;
	int taken;

	ev_init(&accept_pause_timer, listener_resume_cb);
	if ((taken = listener_take_activated(srv)) != 0) {
		if (taken == -1)
			listener_close_all(srv);
		return taken == -1 ? -1 : 0;
	}
	srv->listeners = calloc(listener_count(cfg), sizeof(*srv->listeners));
	if (srv->listeners == NULL)
		return -1;
	for (size_t i = 0; i < listener_count(cfg); i++) {
		bool tls;
		const struct config_addr *addr = listener_addr(cfg, i, &tls);
		int fd = listener_open(addr, tls);

		if (fd == -1) {
			listener_close_all(srv);
			return -1;
		}
		listener_init(&srv->listeners[i], srv, fd, addr, tls);
		srv->nlisteners++;
	}
	return 0;
}

/* Stop and close every listener; the pause timer is left alone. */
static void
listener_release(struct server *srv)
{
	listener_stop_all(srv);
	for (size_t i = 0; i < srv->nlisteners; i++) {
		if (srv->listeners[i].fd != -1)
			close(srv->listeners[i].fd);
	}
	free(srv->listeners);
	srv->listeners = NULL;
	srv->nlisteners = 0;
}

int
listener_reload(struct server *srv, const struct config *cfg)
{
	struct listener *next;
	/* For each new listener, the old one whose socket it took, or -1. */
	int taken_from[2 * CONFIG_MAX_LISTEN];

	/* Socket-activated listeners belong to the service manager; which
	 * of them serve TLS follows [tls] listen. */
	if (srv->activated) {
		for (size_t i = 0; i < srv->nlisteners; i++)
			srv->listeners[i].tls = listener_is_tls_addr(cfg,
			    &srv->listeners[i].addr);
		return 0;
	}
	if ((next = calloc(listener_count(cfg), sizeof(*next))) == NULL)
		return -1;
	for (size_t i = 0; i < listener_count(cfg); i++) {
		bool tls;
		const struct config_addr *addr = listener_addr(cfg, i, &tls);
		int fd = -1;

		taken_from[i] = -1;
		for (size_t j = 0; j < srv->nlisteners; j++) {
			/* An address moved between plain and TLS keeps its
			 * socket and serves as it says now. */
			if (srv->listeners[j].fd != -1 &&
			    listener_same_addr(&srv->listeners[j].addr,
			    addr)) {
				fd = srv->listeners[j].fd;
				srv->listeners[j].fd = -1;
				taken_from[i] = (int)j;
				break;
			}
		}
		if (fd == -1 && (fd = listener_open(addr, tls)) == -1) {
			/* Undo: give taken sockets back, close new ones. */
			for (size_t k = 0; k < i; k++) {
				if (taken_from[k] == -1)
					close(next[k].fd);
				else
					srv->listeners[taken_from[k]].fd =
					    next[k].fd;
			}
			free(next);
			return -1;
		}
		listener_init(&next[i], srv, fd, addr, tls);
	}
	listener_release(srv);
	srv->listeners = next;
	srv->nlisteners = listener_count(cfg);
	if (!accept_paused)
		listener_start_all(srv);
	return 0;
}

void
listener_start_all(struct server *srv)
{
	for (size_t i = 0; i < srv->nlisteners; i++)
		if (srv->listeners[i].fd != -1)
			ev_io_start(srv->loop, &srv->listeners[i].io);
}

void
listener_stop_all(struct server *srv)
{
	for (size_t i = 0; i < srv->nlisteners; i++)
		ev_io_stop(srv->loop, &srv->listeners[i].io);
}

void
listener_close_all(struct server *srv)
{
	ev_timer_stop(srv->loop, &accept_pause_timer);
	accept_paused = false;
	listener_release(srv);
}
