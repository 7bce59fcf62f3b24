/*
 * The front-end driver: client bytes accumulate in the session's handshake
 * buffer and are parsed as a stream by whichever front-end the first byte
 * picked, so a message split into single bytes and several messages in
 * one segment are the same case; whatever follows the request stays in
 * the buffer as early payload for the target.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <sodium.h>
#include <string.h>
#include <unistd.h>

#include "socks5d/command.h"
#include "socks5d/frontend.h"
#include "socks5d/session.h"

/* How often a session whose buffer is full checks on its client. */
#define FRONTEND_FULL_PROBE_SECONDS 1.0

static struct session *
frontend_session(ev_io *w)
{
	return (struct session *)((char *)w - offsetof(struct session, client_io));
}

void
frontend_consume(struct session *s, size_t used)
{
	struct handshake *hs = s->hs;

	memmove(hs->buf, hs->buf + used, hs->len - used);
	hs->len -= used;
	sodium_memzero(hs->buf + hs->len, used);
}

int
frontend_send(struct session *s, const uint8_t *msg, size_t len)
{
	/* Handshake answers are a few bytes on a fresh socket: they fit. */
	return write(s->client_fd, msg, len) == (ssize_t)len ? 0 : -1;
}

/* The front-end for a connection's first byte: each protocol's first
 * message starts with a byte no other one's can. NULL: none speaks it. */
static const struct frontend *
frontend_detect(uint8_t first)
{
	switch (first) {
	case SOCKS5_VERSION:
		return &frontend_socks5;
	default:
		return NULL;
	}
}

/* Pick the front-end on the first byte; false when the session ended. */
static bool
frontend_pick(struct session *s)
{
	s->frontend = frontend_detect(s->hs->buf[0]);
	if (s->frontend == NULL) {
		/* No protocol we speak: there is no way to answer. */
		session_close(s, "bad-version");
		return false;
	}
	return true;
}

static enum frontend_step
frontend_advance(struct session *s)
{
	if (s->frontend == NULL) {
		if (s->hs->len == 0)
			return FRONTEND_NEED_INPUT;
		if (!frontend_pick(s))
			return FRONTEND_STOP;
	}
	return s->frontend->advance(s);
}

/* Does a wait under way outlive the client's half-close? A login, a
 * lookup and a connect go on (the FIN is passed on once relaying); a
 * wait nobody will be told about ends. */
static bool
frontend_waits_through_eof(const struct session *s)
{
	switch (s->state) {
	case SESSION_AUTH_WAIT:
	case SESSION_RESOLVING:
		return true;
	case SESSION_WAITING:
		return s->command->waits_through_client_eof;
	default:
		return false;
	}
}

void
frontend_resume(struct session *s)
{
	enum frontend_step step;

	if (!s->hs->client_eof) {
		/* Reading may have stopped on a full buffer meanwhile. */
		ev_io_start(s->srv->loop, &s->client_io);
	}
	while ((step = frontend_advance(s)) == FRONTEND_CONTINUE)
		;
	if (step == FRONTEND_NEED_INPUT && s->hs->client_eof)
		session_close(s, "client-eof");
}

/*
 * The buffer is full of early payload, so reading stopped and a FIN or RST
 * from the client would go unseen until the phase timeout (up to
 * [timeouts] bind for a BIND wait). The kernel knows: TCP_INFO's state is
 * CLOSE_WAIT after a FIN and CLOSE after a reset. A FIN only ends the
 * session where EOF would have; while a login, lookup or connect is under
 * way the unread bytes behind it still belong to the target, and the relay
 * will read them and the FIN in order.
 */
static void
frontend_full_probe_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct handshake *hs = (struct handshake *)((char *)w -
	    offsetof(struct handshake, full_probe));
	struct session *s = hs->session;
	struct tcp_info info;
	socklen_t len = sizeof(info);

	(void)loop;
	(void)revents;
	if (getsockopt(s->client_fd, IPPROTO_TCP, TCP_INFO, &info, &len) == -1)
		return;
	if (info.tcpi_state == TCP_CLOSE) {
		session_close(s, "reset");
		return;
	}
	if (info.tcpi_state == TCP_CLOSE_WAIT && !frontend_waits_through_eof(s))
		session_close(s, "client-eof");
}

static void
frontend_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct session *s = frontend_session(w);
	struct handshake *hs = s->hs;
	size_t space = sizeof(hs->buf) - hs->len;
	ssize_t n;

	(void)revents;
	if (space == 0) {
		/* Only early payload fills the buffer: wait for the relay. */
		ev_io_stop(loop, w);
		if (!ev_is_active(&hs->full_probe))
			ev_timer_start(loop, &hs->full_probe);
		return;
	}
	n = read(s->client_fd, hs->buf + hs->len, space);
	if (n == -1) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		session_close(s, errno == ECONNRESET ? "reset" : "error");
		return;
	}
	if (n == 0) {
		/* A client may send everything and half-close before our
		 * answers: a login being checked or a connect in progress
		 * goes on, and the FIN is passed on once connected. Every
		 * byte before it has been parsed already. */
		hs->client_eof = true;
		ev_io_stop(loop, w);
		if (!frontend_waits_through_eof(s))
			session_close(s, "client-eof");
		return;
	}
	hs->len += (size_t)n;
	if (s->state != SESSION_HANDSHAKE)
		return;         /* early payload, kept for the target */
	while (frontend_advance(s) == FRONTEND_CONTINUE)
		;
}

void
frontend_start(struct session *s)
{
	s->hs->session = s;
	ev_timer_init(&s->hs->full_probe, frontend_full_probe_cb,
	    FRONTEND_FULL_PROBE_SECONDS, FRONTEND_FULL_PROBE_SECONDS);
	ev_io_init(&s->client_io, frontend_read_cb, s->client_fd, EV_READ);
	ev_io_start(s->srv->loop, &s->client_io);
}
