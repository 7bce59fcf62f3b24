/*
 * The one thing every front-end produces and every command consumes: what
 * was asked (command, destination) in words no wire protocol owns, and the
 * outcomes a command can answer with, which each front-end encodes in its
 * own format (a SOCKS5 or SOCKS4 reply, an HTTP status).
 */
#ifndef SOCKS5D_REQUEST_H
#define SOCKS5D_REQUEST_H

#include <stdbool.h>
#include <stdint.h>

#include "socks5d/socks5.h"

/* Commands. The numbers are RFC 1928's, which rules and /metrics index. */
enum request_cmd {
	REQUEST_CMD_NONE = 0,          /* no request read yet */
	REQUEST_CMD_CONNECT = 1,
	REQUEST_CMD_BIND = 2,
	REQUEST_CMD_UDP = 3,
	REQUEST_CMD_RESOLVE = 0xF0,    /* Tor's: a name's address */
	REQUEST_CMD_RESOLVE_PTR = 0xF1,        /* Tor's: an address's name */
};

/*
 * Outcomes. RFC 1928's reply codes are the common vocabulary (the access
 * log's reply= field and /metrics count them whatever protocol asked), so
 * the values are its numbers; a front-end maps each to its own answer.
 */
enum request_reply {
	REPLY_SUCCESS = 0x00,
	REPLY_FAILURE = 0x01,
	REPLY_NOT_ALLOWED = 0x02,
	REPLY_NET_UNREACH = 0x03,
	REPLY_HOST_UNREACH = 0x04,
	REPLY_REFUSED = 0x05,
	REPLY_TTL_EXPIRED = 0x06,
	REPLY_CMD_UNSUPPORTED = 0x07,
	REPLY_ATYP_UNSUPPORTED = 0x08,
};

/* Which front-end a session speaks (the access log's proto=, /metrics). */
enum request_proto {
	REQUEST_PROTO_SOCKS5 = 0,
	REQUEST_PROTO_SOCKS4,
	REQUEST_PROTO_HTTP,
	REQUEST_PROTO_COUNT,
};

/*
 * A destination is a name or an address and a port. The SOCKS5 address
 * record already holds exactly that (and the UDP header reuses it), so it
 * is the shared shape rather than a copy of it.
 */
struct request {
	uint8_t cmd;                   /* enum request_cmd */
	bool forwarded;                /* CONNECT that carries the client's
	                                * own request (an HTTP proxy's
	                                * absolute form), not a tunnel */
	struct socks5_addr dst;
};

struct session;

/* "socks5", "socks4", "http". */
const char *request_proto_name(enum request_proto proto);

/*
 * A front-end parsed s->hs->req: record it for the log, then one place
 * decides whether and how it runs (the command's switch in the config,
 * the limits and access rules, which look at the destination again once
 * it is resolved) and starts its command. Callers return right after.
 */
void request_dispatch(struct session *s);

#endif
