/*
 * Listening sockets and accept. Accepts are taken in bounded batches so a
 * connection storm cannot starve established sessions; beyond max_clients a
 * new connection is closed at once; when the process runs out of
 * descriptors the listeners pause for a moment instead of spinning on a
 * socket that stays readable.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "socks5d/addr.h"
#include "socks5d/listener.h"
#include "socks5d/log.h"
#include "socks5d/session.h"

#define LISTEN_BACKLOG          1024
#define ACCEPT_BATCH            64
#define ACCEPT_PAUSE_SECONDS    0.5
/* At most one "over max_clients" warning per this many seconds. */
#define LIMIT_LOG_INTERVAL      1.0

static ev_timer accept_pause_timer;
static bool accept_paused;
/* Set from the first EMFILE until an accept succeeds again: one warning
 * per episode, however many pauses it takes. */
static bool fd_exhausted;
static ev_tstamp last_limit_log;
static unsigned long limit_hits;

static int
listener_open(struct listener *l)
{
	const struct sockaddr *sa = (const struct sockaddr *)&l->addr.ss;
	char text[ADDR_STRLEN];
	int one = 1;

	addr_format(sa, text, sizeof(text));
	l->fd = socket(sa->sa_family,
	    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->fd == -1) {
		log_warn("listen %s: socket", text);
		return -1;
	}
	(void)setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* [::] must not also take IPv4: the config lists 0.0.0.0 when that
	 * is wanted, and the two must not collide. */
	if (sa->sa_family == AF_INET6)
		(void)setsockopt(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
		    sizeof(one));
	if (bind(l->fd, sa, l->addr.len) == -1) {
		log_warn("listen %s: bind", text);
		goto fail;
	}
	if (listen(l->fd, LISTEN_BACKLOG) == -1) {
		log_warn("listen %s: listen", text);
		goto fail;
	}
	log_info("listening on %s", text);
	return 0;
fail:
	close(l->fd);
	l->fd = -1;
	return -1;
}

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
	ev_tstamp now = ev_now(srv->loop);

	close(fd);
	limit_hits++;
	if (now - last_limit_log >= LIMIT_LOG_INTERVAL) {
		log_warnx("max_clients (%u) reached: %lu connection(s) refused",
		    srv->cfg->max_clients, limit_hits);
		last_limit_log = now;
		limit_hits = 0;
	}
}

static void
listener_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct listener *l = (struct listener *)
	    ((char *)w - offsetof(struct listener, io));
	struct server *srv = l->srv;
	union sockaddr_any peer;
	socklen_t len;
	int fd, one = 1;

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
				log_warn("accept");
			return;
		}
		if (fd_exhausted) {
			log_info("file descriptors available again: accepting");
			fd_exhausted = false;
		}
		if (srv->nsessions >= srv->cfg->max_clients) {
			listener_reject(srv, fd);
			continue;
		}
		/* Handshake messages are tiny; do not let Nagle hold the
		 * replies, nor the relayed request/response traffic. */
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
		session_accept(srv, fd, &peer.sa);
	}
}

int
listener_open_all(struct server *srv)
{
	const struct config *cfg = srv->cfg;

	srv->listeners = calloc(cfg->nlisten, sizeof(*srv->listeners));
	if (srv->listeners == NULL)
		return -1;
	srv->nlisteners = cfg->nlisten;
	ev_init(&accept_pause_timer, listener_resume_cb);
	for (size_t i = 0; i < cfg->nlisten; i++) {
		struct listener *l = &srv->listeners[i];

		l->srv = srv;
		l->fd = -1;
		l->addr = cfg->listen[i];
		ev_init(&l->io, listener_accept_cb);
	}
	for (size_t i = 0; i < cfg->nlisten; i++) {
		if (listener_open(&srv->listeners[i]) == -1) {
			listener_close_all(srv);
			return -1;
		}
		ev_io_set(&srv->listeners[i].io, srv->listeners[i].fd, EV_READ);
	}
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
	listener_stop_all(srv);
	ev_timer_stop(srv->loop, &accept_pause_timer);
	for (size_t i = 0; i < srv->nlisteners; i++) {
		if (srv->listeners[i].fd != -1)
			close(srv->listeners[i].fd);
	}
	free(srv->listeners);
	srv->listeners = NULL;
	srv->nlisteners = 0;
}
