/*
 * The handshake: greeting, optional RFC 1929 login, request. Client bytes
 * accumulate in the session's handshake buffer and are parsed as a stream,
 * so a message split into single bytes and several messages in one segment
 * are the same case; whatever follows the request stays in the buffer as
 * early payload for the target.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <sodium.h>
#include <string.h>
#include <unistd.h>

#include "socks5d/addr.h"
#include "socks5d/auth.h"
#include "socks5d/bind.h"
#include "socks5d/connect.h"
#include "socks5d/handshake.h"
#include "socks5d/log.h"
#include "socks5d/metrics.h"
#include "socks5d/policy.h"
#include "socks5d/session.h"
#include "socks5d/udp.h"

/* What a stage did: go on parsing; wait for more client bytes; or stop
 * (an answer is awaited, the request was handed on, or the session is
 * gone and must not be touched). */
enum step { STEP_CONTINUE, STEP_NEED_INPUT, STEP_STOP };

static enum step handshake_advance(struct session *s);

static struct session *
handshake_session(ev_io *w)
{
	return (struct session *)((char *)w - offsetof(struct session, client_io));
}

/* Drop a parsed message from the front of the buffer, and wipe the bytes
 * it vacated: one of them may have been a password. */
static void
handshake_consume(struct handshake *hs, size_t used)
{
	memmove(hs->buf, hs->buf + used, hs->len - used);
	hs->len -= used;
	sodium_memzero(hs->buf + hs->len, used);
}

static int
handshake_send(struct session *s, const uint8_t *msg, size_t len)
{
	/* Handshake answers are a few bytes on a fresh socket: they fit. */
	return write(s->client_fd, msg, len) == (ssize_t)len ? 0 : -1;
}

static void
handshake_reject_method(struct session *s)
{
	static const uint8_t no_method[2] = { SOCKS5_VERSION,
	    SOCKS5_METHOD_REJECT };

	session_send_final(s, no_method, sizeof(no_method), "no-method");
}

static enum step
handshake_on_greeting(struct session *s)
{
	struct handshake *hs = s->hs;
	struct socks5_greeting greeting;
	enum socks5_status status;
	uint8_t method, answer[2];
	size_t used;

	status = socks5_parse_greeting(hs->buf, hs->len, &greeting, &used);
	if (status == SOCKS5_INCOMPLETE)
		return STEP_NEED_INPUT;
	if (status == SOCKS5_BAD_VERSION) {
		/* Not SOCKS5: there is no way to answer it. */
		session_close(s, "bad-version");
		return STEP_STOP;
	}
	/* The server's policy decides, not the order the client offers. */
	method = s->srv->cfg->auth_method == AUTH_PASSWORD ?
	    SOCKS5_METHOD_PASSWORD : SOCKS5_METHOD_NONE;
	if (status != SOCKS5_OK || !socks5_greeting_offers(&greeting, method)) {
		handshake_reject_method(s);
		return STEP_STOP;
	}
	handshake_consume(hs, used);
	answer[0] = SOCKS5_VERSION;
	answer[1] = method;
	if (handshake_send(s, answer, sizeof(answer)) == -1) {
		session_close(s, "reset");
		return STEP_STOP;
	}
	session_set_state(s, method == SOCKS5_METHOD_PASSWORD ?
	    SESSION_AUTH : SESSION_REQUEST);
	return STEP_CONTINUE;
}

static void
handshake_login_failed(struct session *s)
{
	static const uint8_t failed[2] = { SOCKS5_AUTH_VERSION,
	    SOCKS5_AUTH_FAILED };
	char client[ADDR_STRLEN], user[SOCKS5_NAME_MAX + 1];

	metrics_count_auth(false);
	policy_login_failed(s);
	addr_format(&s->client_addr.sa, client, sizeof(client));
	log_safe_text(s->user != NULL ? s->user : "-", user, sizeof(user));
	log_warnx("login failed: client=%s user=%s", client, user);
	session_send_final(s, failed, sizeof(failed), "auth-failed");
}

static enum step
handshake_login_ok(struct session *s)
{
	static const uint8_t ok[2] = { SOCKS5_AUTH_VERSION, SOCKS5_AUTH_OK };

	metrics_count_auth(true);
	policy_login_ok(s);
	if (handshake_send(s, ok, sizeof(ok)) == -1) {
		session_close(s, "reset");
		return STEP_STOP;
	}
	session_set_state(s, SESSION_REQUEST);
	return STEP_CONTINUE;
}

static void
handshake_auth_done(void *arg, bool ok)
{
	struct session *s = arg;

	s->hs->auth = NULL;
	if (!ok) {
		handshake_login_failed(s);
		return;
	}
	if (!s->hs->client_eof) {
		/* Reading may have stopped on a full buffer meanwhile. */
		ev_io_start(s->srv->loop, &s->client_io);
	}
	if (handshake_login_ok(s) == STEP_CONTINUE &&
	    handshake_advance(s) == STEP_NEED_INPUT && s->hs->client_eof)
		session_close(s, "client-eof");
}

static enum step
handshake_on_credentials(struct session *s)
{
	struct handshake *hs = s->hs;
	struct socks5_credentials cred;
	enum socks5_status status;
	enum auth_result result;
	size_t used;

	status = socks5_parse_credentials(hs->buf, hs->len, &cred, &used);
	if (status == SOCKS5_INCOMPLETE)
		return STEP_NEED_INPUT;
	if (status != SOCKS5_OK) {
		handshake_login_failed(s);
		return STEP_STOP;
	}
	handshake_consume(hs, used);
	s->user = strndup(cred.user, cred.ulen);
	/* A NUL inside a name or password cannot match any user. */
	if (s->user == NULL || strlen(cred.user) != cred.ulen ||
	    strlen(cred.password) != cred.plen) {
		result = AUTH_RESULT_FAIL;
	} else {
		result = auth_check(s->srv->auth, cred.user, cred.password,
		    handshake_auth_done, s, &hs->auth);
	}
	sodium_memzero(&cred, sizeof(cred));
	switch (result) {
	case AUTH_RESULT_OK:
		return handshake_login_ok(s);
	case AUTH_RESULT_PENDING:
		session_set_state(s, SESSION_AUTH_WAIT);
		return STEP_STOP;
	case AUTH_RESULT_FAIL:
	default:
		handshake_login_failed(s);
		return STEP_STOP;
	}
}

/* One place decides whether and how a command runs: the [bind] and [udp]
 * switches, then the limits and access rules (which look at the
 * destination again once it is resolved). */
static void
handshake_dispatch(struct session *s)
{
	const struct config *cfg = s->srv->cfg;
	void (*start)(struct session *);

	switch (s->hs->req.cmd) {
	case SOCKS5_CMD_CONNECT:
		start = connect_start;
		break;
	case SOCKS5_CMD_BIND:
		start = cfg->bind_enabled ? bind_start : NULL;
		break;
	case SOCKS5_CMD_UDP:
		start = cfg->udp_enabled ? udp_start : NULL;
		break;
	default:
		start = NULL;
		break;
	}
	if (start == NULL) {
		session_fail(s, SOCKS5_REP_CMD_UNSUPPORTED);
		return;
	}
	if (!policy_allow_request(s)) {
		session_fail(s, SOCKS5_REP_NOT_ALLOWED);
		return;
	}
	start(s);
}

static enum step
handshake_on_request(struct session *s)
{
	struct handshake *hs = s->hs;
	char dest[SOCKS5_ADDR_STRLEN];
	enum socks5_status status;
	size_t used;

	status = socks5_parse_request(hs->buf, hs->len, &hs->req, &used);
	if (status == SOCKS5_INCOMPLETE)
		return STEP_NEED_INPUT;
	if (status != SOCKS5_OK) {
		if (status == SOCKS5_BAD_COMMAND)
			s->cmd = hs->buf[1];
		session_fail(s, socks5_status_reply(status));
		return STEP_STOP;
	}
	handshake_consume(hs, used);
	s->cmd = hs->req.cmd;
	socks5_addr_format(&hs->req.dst, dest, sizeof(dest));
	s->dest = strdup(dest);
	handshake_dispatch(s);
	return STEP_STOP;
}

static enum step
handshake_advance(struct session *s)
{
	enum step step = STEP_CONTINUE;

	while (step == STEP_CONTINUE) {
		switch (s->state) {
		case SESSION_GREETING:
			step = handshake_on_greeting(s);
			break;
		case SESSION_AUTH:
			step = handshake_on_credentials(s);
			break;
		case SESSION_REQUEST:
			step = handshake_on_request(s);
			break;
		default:
			return STEP_STOP;
		}
	}
	return step;
}

/* How often a session whose buffer is full checks on its client. */
#define HANDSHAKE_FULL_PROBE_SECONDS 1.0

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
handshake_full_probe_cb(struct ev_loop *loop, ev_timer *w, int revents)
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
	if (info.tcpi_state == TCP_CLOSE_WAIT &&
	    s->state != SESSION_AUTH_WAIT && s->state != SESSION_RESOLVING &&
	    s->state != SESSION_CONNECTING)
		session_close(s, "client-eof");
}

static void
handshake_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct session *s = handshake_session(w);
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
		if (s->state != SESSION_AUTH_WAIT &&
		    s->state != SESSION_RESOLVING &&
		    s->state != SESSION_CONNECTING)
			session_close(s, "client-eof");
		return;
	}
	hs->len += (size_t)n;
	handshake_advance(s);
}

void
handshake_start(struct session *s)
{
	s->state = SESSION_GREETING;
	s->hs->session = s;
	ev_timer_init(&s->hs->full_probe, handshake_full_probe_cb,
	    HANDSHAKE_FULL_PROBE_SECONDS, HANDSHAKE_FULL_PROBE_SECONDS);
	ev_io_init(&s->client_io, handshake_read_cb, s->client_fd, EV_READ);
	ev_io_start(s->srv->loop, &s->client_io);
}
