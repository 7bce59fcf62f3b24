/*
 * Front-ends: the wire protocols a client may speak. The driver here
 * reads the client's first bytes into the session's handshake buffer,
 * picks the protocol by the first byte, and lets that front-end parse its
 * messages into one struct request; replies go back through the same
 * front-end's encoder. Nothing here knows how a command is carried out.
 */
#ifndef SOCKS5D_FRONTEND_H
#define SOCKS5D_FRONTEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "socks5d/auth.h"
#include "socks5d/relay.h"
#include "socks5d/request.h"

struct session;

/* What a front-end's parse step did: go on parsing; wait for more client
 * bytes; or stop (an answer is awaited, the request was handed on, or the
 * session is gone and must not be touched). */
enum frontend_step { FRONTEND_CONTINUE, FRONTEND_NEED_INPUT, FRONTEND_STOP };

/* The largest answer any front-end encodes (an HTTP error with its body,
 * a SOCKS5 reply with a name). */
#define FRONTEND_REPLY_MAX 512

struct frontend {
	const char *name;              /* the access log's proto= */
	enum request_proto proto;
	/* The handshake buffer it needs, when more than the default, and
	 * how much of it stays free while the request is read (for the
	 * request to be rewritten in place). */
	size_t handshake_bufsize;
	size_t handshake_slack;
	/* Parse what s->hs->buf holds, consuming whole messages. */
	enum frontend_step (*advance)(struct session *s);
	/* Encode the answer to the request into out (FRONTEND_REPLY_MAX
	 * bytes): rep is an enum request_reply, bnd the bound address on
	 * success (else NULL). Returns the length; 0 sends nothing. */
	size_t (*encode_reply)(const struct session *s, uint8_t rep,
	    const struct sockaddr *bnd, uint8_t *out);
	/* Encode a success whose answer is a name (RESOLVE_PTR); NULL when
	 * the protocol cannot carry one. */
	size_t (*encode_name_reply)(const char *name, uint8_t *out);
	/* Encode the refusal a client of a protocol [server] protocols
	 * does not list gets (FRONTEND_REPLY_MAX bytes); returns the length,
	 * 0 when the protocol has none. */
	size_t (*encode_refusal)(uint8_t *out);
	/* Adjust the relay that was just started for this protocol (filter
	 * the target's first bytes, limit what the client may send); NULL
	 * when the bytes pass as they are. */
	void (*relay_setup)(const struct session *s, struct relay *r);
};

extern const struct frontend frontend_socks5;
extern const struct frontend frontend_socks4;
extern const struct frontend frontend_http;

/* Arm the client watcher for the first bytes; tls: from a [tls] listen
 * socket, so TLS comes first (after a PROXY header, when one is due). */
void frontend_start(struct session *s, bool tls);

/* Parse on after a wait (a login checked off the loop) ended well. */
void frontend_resume(struct session *s);

/* Drop a parsed message from the front of the handshake buffer, wiping
 * the bytes it vacated (one of them may have been a password). */
void frontend_consume(struct session *s, size_t used);

/*
 * A login any front-end received (user and password as sent, with their
 * lengths, since a NUL inside can never match): checked against the users
 * file, at once from the cache or off the loop, when cb gets the verdict
 * later (the session is then in SESSION_AUTH_WAIT). The user is kept in
 * s->user either way.
 */
enum frontend_login { FRONTEND_LOGIN_OK, FRONTEND_LOGIN_FAILED,
    FRONTEND_LOGIN_PENDING };
enum frontend_login frontend_login_check(struct session *s, const char *user,
    size_t ulen, const char *password, size_t plen,
    auth_done_cb *cb);

/* Must the client log in with a password? [auth] method = password,
 * unless a verified TLS client certificate named the user already. */
bool frontend_password_required(const struct session *s);

/* A login's verdict, counted once: /metrics, the user limit on success,
 * the failed-login ban and a log line (never the password) on failure. */
void frontend_login_counted(struct session *s, bool ok);

/* Write a short answer that does not end the session (a SOCKS5 method
 * choice or login status). Returns 0, or -1 when the client is gone. */
int frontend_send(struct session *s, const uint8_t *msg, size_t len);

#endif
