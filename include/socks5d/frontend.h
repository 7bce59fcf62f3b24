/*
 * Front-ends: the wire protocols a client may speak. The driver here
 * reads the client's first bytes into the session's handshake buffer,
 * picks the protocol by the first byte, and lets that front-end parse its
 * messages into one struct request; replies go back through the same
 * front-end's encoder. Nothing here knows how a command is carried out.
 */
#ifndef SOCKS5D_FRONTEND_H
#define SOCKS5D_FRONTEND_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "socks5d/request.h"

struct session;

/* What a front-end's parse step did: go on parsing; wait for more client
 * bytes; or stop (an answer is awaited, the request was handed on, or the
 * session is gone and must not be touched). */
enum frontend_step { FRONTEND_CONTINUE, FRONTEND_NEED_INPUT, FRONTEND_STOP };

/* The largest answer any front-end encodes (an HTTP error with its body). */
#define FRONTEND_REPLY_MAX 512

struct frontend {
	const char *name;              /* the access log's proto= */
	enum request_proto proto;
	/* Parse what s->hs->buf holds, consuming whole messages. */
	enum frontend_step (*advance)(struct session *s);
	/* Encode the answer to the request into out (FRONTEND_REPLY_MAX
	 * bytes): rep is an enum request_reply, bnd the bound address on
	 * success (else NULL). Returns the length; 0 sends nothing. */
	size_t (*encode_reply)(const struct session *s, uint8_t rep,
	    const struct sockaddr *bnd, uint8_t *out);
};

extern const struct frontend frontend_socks5;

/* Arm the client watcher for the first bytes. */
void frontend_start(struct session *s);

/* Parse on after a wait (a login checked off the loop) ended well. */
void frontend_resume(struct session *s);

/* Drop a parsed message from the front of the handshake buffer, wiping
 * the bytes it vacated (one of them may have been a password). */
void frontend_consume(struct session *s, size_t used);

/* Write a short answer that does not end the session (a SOCKS5 method
 * choice or login status). Returns 0, or -1 when the client is gone. */
int frontend_send(struct session *s, const uint8_t *msg, size_t len);

#endif
