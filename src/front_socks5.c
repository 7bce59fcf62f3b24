/*
 * The SOCKS5 front-end (RFC 1928, RFC 1929): greeting, optional login and
 * request, each parsed by the pure codec in socks5.c and answered here;
 * the request goes on as a struct request, and replies are SOCKS5 replies.
 */
#include <sodium.h>
#include <string.h>

#include "socks5d/config.h"
#include "socks5d/frontend.h"
#include "socks5d/request.h"
#include "socks5d/session.h"

/* Where in the handshake a SOCKS5 session is (struct handshake's phase). */
enum socks5_phase { PHASE_GREETING = 0, PHASE_AUTH, PHASE_REQUEST };

static void
socks5_front_reject_method(struct session *s)
{
	static const uint8_t no_method[2] = { SOCKS5_VERSION,
	    SOCKS5_METHOD_REJECT };

	session_send_final(s, no_method, sizeof(no_method), "no-method");
}

static enum frontend_step
socks5_front_greeting(struct session *s)
{
	struct handshake *hs = s->hs;
	struct socks5_greeting greeting;
	enum socks5_status status;
	uint8_t method, answer[2];
	size_t used;

	status = socks5_parse_greeting(hs->buf, hs->len, &greeting, &used);
	if (status == SOCKS5_INCOMPLETE)
		return FRONTEND_NEED_INPUT;
	if (status == SOCKS5_BAD_VERSION) {
		/* Not SOCKS5: there is no way to answer it. */
		session_close(s, "bad-version");
		return FRONTEND_STOP;
	}
	/* The server's policy decides, not the order the client offers. A
	 * client certificate is the login; a client that offers only a
	 * password may still send one, which then proves nothing more. */
	method = frontend_password_required(s) ? SOCKS5_METHOD_PASSWORD :
	    SOCKS5_METHOD_NONE;
	if (s->cert_login && !socks5_greeting_offers(&greeting, method))
		method = SOCKS5_METHOD_PASSWORD;
	if (status != SOCKS5_OK || !socks5_greeting_offers(&greeting, method)) {
		socks5_front_reject_method(s);
		return FRONTEND_STOP;
	}
	frontend_consume(s, used);
	answer[0] = SOCKS5_VERSION;
	answer[1] = method;
	if (frontend_send(s, answer, sizeof(answer)) == -1) {
		session_close(s, "reset");
		return FRONTEND_STOP;
	}
	hs->phase = method == SOCKS5_METHOD_PASSWORD ? PHASE_AUTH :
	    PHASE_REQUEST;
	return FRONTEND_CONTINUE;
}

static void
socks5_front_login_failed(struct session *s)
{
	static const uint8_t failed[2] = { SOCKS5_AUTH_VERSION,
	    SOCKS5_AUTH_FAILED };

	frontend_login_counted(s, false);
	session_send_final(s, failed, sizeof(failed), "auth-failed");
}

static enum frontend_step
socks5_front_login_ok(struct session *s)
{
	static const uint8_t ok[2] = { SOCKS5_AUTH_VERSION, SOCKS5_AUTH_OK };

	frontend_login_counted(s, true);
	if (frontend_send(s, ok, sizeof(ok)) == -1) {
		session_close(s, "reset");
		return FRONTEND_STOP;
	}
	s->hs->phase = PHASE_REQUEST;
	if (s->state != SESSION_HANDSHAKE)
		session_set_state(s, SESSION_HANDSHAKE);
	return FRONTEND_CONTINUE;
}

/* A password from a client whose certificate logged it in already. */
static enum frontend_step
socks5_front_password_ignored(struct session *s)
{
	static const uint8_t ok[2] = { SOCKS5_AUTH_VERSION, SOCKS5_AUTH_OK };

	if (frontend_send(s, ok, sizeof(ok)) == -1) {
		session_close(s, "reset");
		return FRONTEND_STOP;
	}
	s->hs->phase = PHASE_REQUEST;
	return FRONTEND_CONTINUE;
}

static void
socks5_front_auth_done(void *arg, bool ok)
{
	struct session *s = arg;

	s->hs->auth = NULL;
	if (!ok) {
		socks5_front_login_failed(s);
		return;
	}
	if (socks5_front_login_ok(s) == FRONTEND_CONTINUE)
		frontend_resume(s);
}

static enum frontend_step
socks5_front_credentials(struct session *s)
{
	struct handshake *hs = s->hs;
	struct socks5_credentials cred;
	enum socks5_status status;
	enum frontend_login login;
	size_t used;

	status = socks5_parse_credentials(hs->buf, hs->len, &cred, &used);
	if (status == SOCKS5_INCOMPLETE)
		return FRONTEND_NEED_INPUT;
	if (status != SOCKS5_OK) {
		socks5_front_login_failed(s);
		return FRONTEND_STOP;
	}
	frontend_consume(s, used);
	if (s->cert_login) {
		/* The certificate's user stays, counted once. */
		sodium_memzero(&cred, sizeof(cred));
		return socks5_front_password_ignored(s);
	}
	login = frontend_login_check(s, cred.user, cred.ulen, cred.password,
	    cred.plen, socks5_front_auth_done);
	sodium_memzero(&cred, sizeof(cred));
	switch (login) {
	case FRONTEND_LOGIN_OK:
		return socks5_front_login_ok(s);
	case FRONTEND_LOGIN_PENDING:
		return FRONTEND_STOP;
	case FRONTEND_LOGIN_FAILED:
	default:
		socks5_front_login_failed(s);
		return FRONTEND_STOP;
	}
}

static enum frontend_step
socks5_front_request(struct session *s)
{
	struct handshake *hs = s->hs;
	struct socks5_request req;
	enum socks5_status status;
	size_t used;

	status = socks5_parse_request(hs->buf, hs->len, &req, &used);
	if (status == SOCKS5_INCOMPLETE)
		return FRONTEND_NEED_INPUT;
	if (status != SOCKS5_OK) {
		if (status == SOCKS5_BAD_COMMAND)
			s->cmd = hs->buf[1];
		session_fail(s, socks5_status_reply(status));
		return FRONTEND_STOP;
	}
	frontend_consume(s, used);
	hs->req.cmd = req.cmd;
	hs->req.dst = req.dst;
	request_dispatch(s);
	return FRONTEND_STOP;
}

static enum frontend_step
socks5_front_advance(struct session *s)
{
	switch (s->hs->phase) {
	case PHASE_GREETING:
		return socks5_front_greeting(s);
	case PHASE_AUTH:
		return socks5_front_credentials(s);
	default:
		return socks5_front_request(s);
	}
}

static size_t
socks5_front_encode_name_reply(const char *name, uint8_t *out)
{
	return socks5_encode_name_reply(out, name, 0);
}

/* RFC 1928's reply codes are the request's outcomes as they are. */
static size_t
socks5_front_encode_reply(const struct session *s, uint8_t rep,
    const struct sockaddr *bnd, uint8_t *out)
{
	(void)s;
	return socks5_encode_reply(out, rep, bnd);
}

/* A SOCKS5 client that is not served: no acceptable method (05 FF). */
static size_t
socks5_front_encode_refusal(uint8_t *out)
{
	out[0] = SOCKS5_VERSION;
	out[1] = SOCKS5_METHOD_REJECT;
	return 2;
}

const struct frontend frontend_socks5 = {
	.name = "socks5",
	.proto = REQUEST_PROTO_SOCKS5,
	.advance = socks5_front_advance,
	.encode_reply = socks5_front_encode_reply,
	.encode_name_reply = socks5_front_encode_name_reply,
	.encode_refusal = socks5_front_encode_refusal,
};
