/*
 * The front-end driver: client bytes accumulate in the session's handshake
 * buffer and are parsed as a stream by whichever front-end the first byte
 * picked, so a message split into single bytes and several messages in
 * one segment are the same case; whatever follows the request stays in
 * the buffer as early payload for the target.
 */
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "socks5d/addr.h"
#include "socks5d/auth.h"
#include "socks5d/command.h"
#include "socks5d/frontend.h"
#include "socks5d/log.h"
#include "socks5d/metrics.h"
#include "socks5d/policy.h"
#include "socks5d/proxy_header.h"
#include "socks5d/session.h"
#include "socks5d/socks4.h"
#include "socks5d/tls_front.h"

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
	return session_client_write(s, msg, len) == (ssize_t)len ? 0 : -1;
}

enum frontend_login
frontend_login_check(struct session *s, const char *user, size_t ulen,
    const char *password, size_t plen, auth_done_cb *cb)
{
	free(s->user);
	s->user = strndup(user, ulen);
	/* A NUL inside a name or password cannot match any user. */
	if (s->user == NULL || strlen(s->user) != ulen ||
	    strnlen(password, plen) != plen)
		return FRONTEND_LOGIN_FAILED;
	switch (auth_check(s->srv->auth, s->user, password, cb, s,
	    &s->hs->auth)) {
	case AUTH_RESULT_OK:
		return FRONTEND_LOGIN_OK;
	case AUTH_RESULT_PENDING:
		session_set_state(s, SESSION_AUTH_WAIT);
		return FRONTEND_LOGIN_PENDING;
	case AUTH_RESULT_FAIL:
	default:
		return FRONTEND_LOGIN_FAILED;
	}
}

bool
frontend_password_required(const struct session *s)
{
	return s->srv->cfg->auth_method == AUTH_PASSWORD && !s->cert_login;
}

void
frontend_login_counted(struct session *s, bool ok)
{
	char client[ADDR_STRLEN], user[SOCKS5_NAME_MAX + 1];

	metrics_count_auth(ok);
	if (ok) {
		policy_login_ok(s);
		return;
	}
	policy_login_failed(s);
	addr_format(&s->client_addr.sa, client, sizeof(client));
	log_safe_text(s->user != NULL ? s->user : "-", user, sizeof(user));
	log_warnx("login failed: client=%s proto=%s user=%s", client,
	    s->frontend->name, user);
}

/* The front-end for a connection's first byte: each protocol's first
 * message starts with a byte no other one's can. NULL: none speaks it. */
static const struct frontend *
frontend_detect(uint8_t first)
{
	switch (first) {
	case SOCKS5_VERSION:
		return &frontend_socks5;
	case SOCKS4_VERSION:
		return &frontend_socks4;
	default:
		/* Every HTTP method is a token of letters. */
		return isalpha(first) ? &frontend_http : NULL;
	}
}

/* Pick the front-end on the first byte; false when the session ended. */
static bool
frontend_pick(struct session *s)
{
	uint8_t refusal[FRONTEND_REPLY_MAX];

	s->frontend = frontend_detect(s->hs->buf[0]);
	if (s->frontend == NULL) {
		/* No protocol we speak: there is no way to answer. A TLS
		 * client belongs on a [tls] listen port. */
		session_close(s, s->hs->buf[0] == TLS_CONTENT_HANDSHAKE ?
		    "unexpected-tls" : "bad-version");
		return false;
	}
	if ((s->srv->cfg->protocols & 1u << s->frontend->proto) == 0) {
		session_send_final(s, refusal,
		    s->frontend->encode_refusal(refusal), "protocol-off");
		return false;
	}
	if (session_grow_handshake(s, s->frontend->handshake_bufsize) == -1) {
		log_warn("%s: malloc", __func__);
		session_close(s, "nomem");
		return false;
	}
	return true;
}

/* At most one line a second per kind of PROXY header refused. */
static struct log_ratelimit missing_header_log, untrusted_header_log;

static void
frontend_log_proxy_refusal(const struct session *s, struct log_ratelimit *rl,
    const char *what)
{
	char client[ADDR_STRLEN];
	unsigned long covered;

	if (!log_ratelimit_pass(rl, ev_now(s->srv->loop), 1.0, &covered))
		return;
	addr_format_ip(&s->client_addr.sa, client, sizeof(client));
	log_warnx("%s: client=%s (%lu refusal(s) in the last second)", what,
	    client, covered);
}

/*
 * A connection from [server] proxy_protocol_from starts with a PROXY
 * header (v1 or v2) naming the real client, who from then on is the
 * session's client for limits, bans, rules, the log and UDP. Anything
 * else from there is refused: the balancer is broken or bypassed.
 */
static enum frontend_step
frontend_proxy_header(struct session *s)
{
	struct proxy_header header;
	union sockaddr_any real;
	size_t used;

	switch (proxy_header_parse(s->hs->buf, s->hs->len, &header, &used)) {
	case PROXY_INCOMPLETE:
		return FRONTEND_NEED_INPUT;
	case PROXY_BAD:
		frontend_log_proxy_refusal(s, &missing_header_log,
		    "no valid PROXY header from a "
		    "proxy_protocol_from address");
		session_close(s, "bad-proxy-header");
		return FRONTEND_STOP;
	default:
		break;
	}
	frontend_consume(s, used);
	s->hs->proxy_header_due = false;
	/* LOCAL: the balancer's own health check; it stays the client. */
	if (header.local)
		return FRONTEND_CONTINUE;
	addr_normalize(&header.src.sa, &real);
	if (!policy_readmit_client(s, &real.sa)) {
		session_close(s, "refused");
		return FRONTEND_STOP;
	}
	return FRONTEND_CONTINUE;
}

/*
 * From an address not in proxy_protocol_from, a PROXY header is never
 * believed (the client could claim any address) but refused as the
 * mistake it is. NEED_INPUT while the first bytes may still be one.
 */
static enum frontend_step
frontend_refuse_untrusted_header(struct session *s)
{
	struct proxy_header header;
	size_t used;

	if (s->hs->buf[0] != 'P' && s->hs->buf[0] != '\r')
		return FRONTEND_CONTINUE;
	switch (proxy_header_parse(s->hs->buf, s->hs->len, &header, &used)) {
	case PROXY_BAD:
		return FRONTEND_CONTINUE;
	case PROXY_INCOMPLETE:
		return FRONTEND_NEED_INPUT;
	default:
		frontend_log_proxy_refusal(s, &untrusted_header_log,
		    "a PROXY header from an address "
		    "not in proxy_protocol_from");
		session_close(s, "untrusted-proxy-header");
		return FRONTEND_STOP;
	}
}

static void frontend_read_cb(struct ev_loop *loop, ev_io *w, int revents);

/* After a read that brought bytes: OpenSSL may hold more (the rest of a
 * record larger than the room left, or records it read ahead), and no
 * socket event will say so. (Stopping the watcher, as a close does,
 * drops the fed event.) */
static void
frontend_tls_read_on(struct session *s)
{
	if (s->ssl != NULL && (SSL_pending(s->ssl) > 0 ||
	    SSL_has_pending(s->ssl)))
		ev_feed_event(s->srv->loop, &s->client_io, EV_READ);
}

/* TLS is up: the client's bytes come through it from now on. */
static void
frontend_tls_done(struct session *s)
{
	struct ev_loop *loop = s->srv->loop;

	ev_io_stop(loop, &s->client_io);
	ev_set_cb(&s->client_io, frontend_read_cb);
	ev_io_modify(&s->client_io, EV_READ);
	ev_io_start(loop, &s->client_io);
	/* The client's first bytes may have come with its Finished. */
	frontend_tls_read_on(s);
}

static enum frontend_step
frontend_advance(struct session *s)
{
	enum frontend_step step;

	if (s->hs->proxy_header_due)
		return frontend_proxy_header(s);
	if (s->hs->tls_due) {
		if (s->hs->len == 0)
			return FRONTEND_NEED_INPUT;
		return tls_front_begin(s, frontend_tls_done);
	}
	if (s->frontend == NULL) {
		if (s->hs->len == 0)
			return FRONTEND_NEED_INPUT;
		if ((step = frontend_refuse_untrusted_header(s)) !=
		    FRONTEND_CONTINUE)
			return step;
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
	/* The slack stays free until the request is handed on, a login
	 * checked off the loop included. */
	bool reading_request = s->state == SESSION_HANDSHAKE ||
	    s->state == SESSION_AUTH_WAIT;
	size_t limit = hs->cap - (reading_request && s->frontend != NULL ?
	    s->frontend->handshake_slack : 0);
	size_t space = hs->len < limit ? limit - hs->len : 0;
	ssize_t n;
	int wants;

	(void)revents;
	if (space == 0) {
		/* Only early payload fills the buffer: wait for the relay
		 * (or tell a command that waits on it: it is all there is). */
		if (hs->early_data != NULL) {
			ev_io_stop(loop, w);
			hs->early_data(s);
			return;
		}
		ev_io_stop(loop, w);
		if (!ev_is_active(&hs->full_probe))
			ev_timer_start(loop, &hs->full_probe);
		return;
	}
	n = session_client_read(s, hs->buf + hs->len, space, &wants);
	if (n == -1) {
		if (errno == EAGAIN || errno == EINTR) {
			/* TLS may have to send (a key update) first. */
			session_watch(s, &s->client_io, wants == EV_WRITE ?
			    EV_WRITE : EV_READ);
			return;
		}
		session_close(s, errno == ECONNRESET ? "reset" :
		    errno == EPROTO ? "tls-error" : "error");
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
		else if (s->state == SESSION_WAITING && hs->early_data != NULL)
			/* A command waiting on the client's first bytes
			 * gets no more: it decides with what it has. */
			hs->early_data(s);
		return;
	}
	hs->len += (size_t)n;
	session_watch(s, &s->client_io, EV_READ);
	frontend_tls_read_on(s);
	if (s->state != SESSION_HANDSHAKE && s->state != SESSION_TLS) {
		/* Early payload, kept for the target; a command that waits
		 * for it to decide is told. */
		if (hs->early_data != NULL)
			hs->early_data(s);
		return;
	}
	while (frontend_advance(s) == FRONTEND_CONTINUE)
		;
}

void
frontend_start(struct session *s, bool tls)
{
	s->hs->session = s;
	s->hs->proxy_header_due = cidr_set_has(&s->srv->cfg->proxy_from,
	    &s->client_addr.sa);
	if ((s->hs->tls_due = tls))
		session_set_state(s, SESSION_TLS);
	ev_timer_init(&s->hs->full_probe, frontend_full_probe_cb,
	    FRONTEND_FULL_PROBE_SECONDS, FRONTEND_FULL_PROBE_SECONDS);
	ev_io_init(&s->client_io, frontend_read_cb, s->client_fd, EV_READ);
	ev_io_start(s->srv->loop, &s->client_io);
}
