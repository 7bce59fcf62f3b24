/*
 * The SOCKS4 and SOCKS4a front-end: one request (CONNECT or BIND, an IPv4
 * address or a 4a name), parsed by the pure codec in socks4.c and answered
 * with 8-byte replies. SOCKS4 has no login: its USERID is not a proof of
 * anything, so it is ignored, and under [auth] method = password only a
 * rule naming the protocol and the client's address admits it (policy.c).
 */
#include "socks5d/frontend.h"
#include "socks5d/session.h"
#include "socks5d/socks4.h"

static enum frontend_step
socks4_front_advance(struct session *s)
{
	struct handshake *hs = s->hs;
	struct socks4_request req;
	enum socks4_status status;
	size_t used;

	status = socks4_parse_request(hs->buf, hs->len, &req, &used);
	if (status == SOCKS4_INCOMPLETE)
		return FRONTEND_NEED_INPUT;
	if (status != SOCKS4_OK) {
		/* Named "unknown" whatever the byte: SOCKS4's codes are not
		 * the request's. */
		if (status == SOCKS4_BAD_COMMAND)
			s->cmd = 0xFF;
		session_fail(s, status == SOCKS4_BAD_COMMAND ?
		    REPLY_CMD_UNSUPPORTED : REPLY_FAILURE);
		return FRONTEND_STOP;
	}
	frontend_consume(s, used);
	/* The codec numbers the two commands as SOCKS5 does. */
	hs->req.cmd = req.cmd == SOCKS4_CMD_BIND ? REQUEST_CMD_BIND :
	    REQUEST_CMD_CONNECT;
	hs->req.dst = req.dst;
	request_dispatch(s);
	return FRONTEND_STOP;
}

/* SOCKS4 has one failure code for every reason. */
static size_t
socks4_front_encode_reply(const struct session *s, uint8_t rep,
    const struct sockaddr *bnd, uint8_t *out)
{
	(void)s;
	return socks4_encode_reply(out, rep == REPLY_SUCCESS ?
	    SOCKS4_REP_GRANTED : SOCKS4_REP_REJECTED, bnd);
}

static size_t
socks4_front_encode_refusal(uint8_t *out)
{
	return socks4_encode_reply(out, SOCKS4_REP_REJECTED, NULL);
}

const struct frontend frontend_socks4 = {
	.name = "socks4",
	.proto = REQUEST_PROTO_SOCKS4,
	.advance = socks4_front_advance,
	.encode_reply = socks4_front_encode_reply,
	.encode_refusal = socks4_front_encode_refusal,
};
