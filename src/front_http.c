/*
 * The HTTP proxy front-end (RFC 9110, RFC 9112): a CONNECT request opens a
 * tunnel, an absolute-form request (GET http://host/path) is rewritten to
 * origin-form and forwarded, both as the same CONNECT command every other
 * front-end uses. Logins come as Proxy-Authorization: Basic. Every failure
 * is an HTTP answer, never a bare close. The head is parsed by the pure
 * codec in http.c and http_encode.c.
 */
#include <sodium.h>
#include <string.h>

#include "socks5d/config.h"
#include "socks5d/frontend.h"
#include "socks5d/http.h"
#include "socks5d/http_response.h"
#include "socks5d/session.h"

/* Where an HTTP session is (struct handshake's phase). */
enum http_phase {
	PHASE_HEAD = 0,        /* reading the request head */
	PHASE_AUTHED,          /* logged in: parse the head again, dispatch */
	PHASE_TUNNEL,          /* CONNECT: the tunnel's 200 is the reply */
	PHASE_FORWARD,         /* absolute form: the origin's answer is */
};

/* The Via pseudonym forwarded requests carry. */
#define HTTP_FRONT_VIA "socks5d"

/* Answer with status (and extra header lines) and close once read. */
static void
http_front_reject(struct session *s, int status, const char *extra,
    const char *reason)
{
	uint8_t msg[FRONTEND_REPLY_MAX];

	session_send_final(s, msg, http_encode_response(msg, sizeof(msg),
	    status, extra), reason);
}

static void
http_front_ask_login(struct session *s, const char *reason)
{
	http_front_reject(s, 407,
	    "Proxy-Authenticate: Basic realm=\"socks5d\"\r\n", reason);
}

static void
http_front_auth_done(void *arg, bool ok)
{
	struct session *s = arg;

	s->hs->auth = NULL;
	frontend_login_counted(s, ok);
	if (!ok) {
		http_front_ask_login(s, "auth-failed");
		return;
	}
	s->hs->phase = PHASE_AUTHED;
	session_set_state(s, SESSION_HANDSHAKE);
	frontend_resume(s);
}

/* [auth] method = password: the request must carry a good login.
 * FRONTEND_CONTINUE when it did; otherwise the session waits or ended. */
static enum frontend_step
http_front_login(struct session *s, const struct http_request *req)
{
	char user[HTTP_CREDENTIAL_MAX + 1], password[HTTP_CREDENTIAL_MAX + 1];
	enum frontend_login login;

	if (!http_basic_credentials(req, user, password)) {
		http_front_ask_login(s, "auth-required");
		return FRONTEND_STOP;
	}
	login = frontend_login_check(s, user, strlen(user), password,
	    strlen(password), http_front_auth_done);
	sodium_memzero(password, sizeof(password));
	switch (login) {
	case FRONTEND_LOGIN_OK:
		frontend_login_counted(s, true);
		return FRONTEND_CONTINUE;
	case FRONTEND_LOGIN_PENDING:
		return FRONTEND_STOP;
	case FRONTEND_LOGIN_FAILED:
	default:
		frontend_login_counted(s, false);
		http_front_ask_login(s, "auth-failed");
		return FRONTEND_STOP;
	}
}

/*
 * Put the origin-form head where the client's head was, ahead of whatever
 * body bytes followed it, so the relay sends both to the origin first. The
 * client's head (with its Proxy-Authorization) is wiped. false when the
 * rewritten head does not fit.
 */
static bool
http_front_rewrite(struct session *s, const struct http_request *req)
{
	struct handshake *hs = s->hs;
	uint8_t head[HTTP_ORIGIN_HEAD_MAX];
	size_t len, body = hs->len - req->head_len;

	/*
	 * One request per connection: the origin gets this request's body
	 * and nothing after it. A pipelined next request (another origin's,
	 * with its Proxy-Authorization) must not reach this one. A chunked
	 * body's end is not tracked, nor a WebSocket's stream: those pass.
	 */
	hs->upload_left = -1;
	if (!req->chunked && !http_is_websocket(req)) {
		uint64_t framed = req->content_length > 0 ?
		    (uint64_t)req->content_length : 0;

		if (body > framed) {
			sodium_memzero(hs->buf + req->head_len + framed,
			    body - framed);
			hs->len -= body - (size_t)framed;
			body = (size_t)framed;
		}
		hs->upload_left = (int64_t)(framed - body);
	}
	len = http_encode_origin_request(req, s->srv->cfg->http_via ?
	    HTTP_FRONT_VIA : NULL, head, sizeof(head));
	if (len == 0 || len + body > hs->cap)
		return false;
	memmove(hs->buf + len, hs->buf + req->head_len, body);
	memcpy(hs->buf, head, len);
	if (len < req->head_len)
		sodium_memzero(hs->buf + len + body, req->head_len - len);
	hs->len = len + body;
	sodium_memzero(head, sizeof(head));
	return true;
}

static enum frontend_step
http_front_advance(struct session *s)
{
	struct handshake *hs = s->hs;
	struct http_request req;
	enum http_status status;

	status = http_parse_request(hs->buf, hs->len, &req);
	if (status == HTTP_INCOMPLETE)
		return FRONTEND_NEED_INPUT;
	if (status != HTTP_OK) {
		http_front_reject(s, http_status_code(status), NULL,
		    "bad-request");
		return FRONTEND_STOP;
	}
	if (frontend_password_required(s) && hs->phase != PHASE_AUTHED &&
	    http_front_login(s, &req) != FRONTEND_CONTINUE)
		return FRONTEND_STOP;
	hs->req.cmd = REQUEST_CMD_CONNECT;
	hs->req.dst = req.dst;
	if (req.form == HTTP_FORM_AUTHORITY) {
		hs->phase = PHASE_TUNNEL;
		frontend_consume(s, req.head_len);
	} else {
		hs->phase = PHASE_FORWARD;
		hs->req.forwarded = true;
		if (!http_front_rewrite(s, &req)) {
			http_front_reject(s, 431, NULL, "bad-request");
			return FRONTEND_STOP;
		}
	}
	request_dispatch(s);
	return FRONTEND_STOP;
}

/* The status for a request's outcome. */
static int
http_front_status(uint8_t rep)
{
	switch (rep) {
	case REPLY_SUCCESS:
		return 200;
	case REPLY_NOT_ALLOWED:
		return 403;
	case REPLY_TTL_EXPIRED:
		return 504;
	case REPLY_CMD_UNSUPPORTED:
		return 501;
	default:
		return 502;
	}
}

static size_t
http_front_encode_reply(const struct session *s, uint8_t rep,
    const struct sockaddr *bnd, uint8_t *out)
{
	(void)bnd;
	/* A forwarded request's answer is the origin's own response. */
	if (rep == REPLY_SUCCESS && s->hs != NULL &&
	    s->hs->phase == PHASE_FORWARD)
		return 0;
	return http_encode_response(out, FRONTEND_REPLY_MAX,
	    http_front_status(rep), NULL);
}

/* The proxy serves one request per connection: the client learns it from
 * the response head. */
static enum relay_filter_result
http_front_response_filter(uint8_t *buf, size_t *len, size_t cap,
    size_t *release)
{
	return http_response_rewrite_interim(buf, len, cap, true, release) ==
	    HTTP_RESPONSE_DONE ? RELAY_FILTER_DONE : RELAY_FILTER_MORE;
}

_Static_assert(HTTP_RESPONSE_GROWTH <= RELAY_FILTER_ROOM,
    "the relay keeps room for what a response head may grow by");

/* The same for [http] via = no. */
static enum relay_filter_result
http_front_response_filter_no_via(uint8_t *buf, size_t *len, size_t cap,
    size_t *release)
{
	return http_response_rewrite_interim(buf, len, cap, false, release) ==
	    HTTP_RESPONSE_DONE ? RELAY_FILTER_DONE : RELAY_FILTER_MORE;
}

/* A forwarded request: its body only goes up, and the response head comes
 * down rewritten. */
static void
http_front_relay_setup(const struct session *s, struct relay *r)
{
	if (s->hs->phase != PHASE_FORWARD)
		return;
	relay_filter_down(r, s->srv->cfg->http_via ?
	    http_front_response_filter : http_front_response_filter_no_via);
	if (s->hs->upload_left >= 0)
		relay_limit_up(r, (uint64_t)s->hs->upload_left);
}

static size_t
http_front_encode_refusal(uint8_t *out)
{
	return http_encode_response(out, FRONTEND_REPLY_MAX, 403, NULL);
}

const struct frontend frontend_http = {
	.name = "http",
	.proto = REQUEST_PROTO_HTTP,
	/* A whole head, early payload behind it, and room for the head to
	 * grow (a Via, a Host, Connection: close) when it is rewritten for
	 * the origin ahead of the body bytes that came with it. */
	.handshake_bufsize = HTTP_HEAD_MAX + 4096,
	.handshake_slack = HTTP_ORIGIN_HEAD_MAX - HTTP_HEAD_MAX,
	.advance = http_front_advance,
	.encode_reply = http_front_encode_reply,
	.encode_refusal = http_front_encode_refusal,
	.relay_setup = http_front_relay_setup,
};
