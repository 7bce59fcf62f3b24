/*
 * A command (CONNECT, BIND, UDP ASSOCIATE) as a table of operations the
 * session calls through a pointer: the session never switches over
 * commands, and no command reaches into another.
 */
#ifndef SOCKS5D_COMMAND_H
#define SOCKS5D_COMMAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;
struct session;

struct command {
	const char *name;              /* the access log's cmd= */
	uint8_t cmd;                   /* enum request_cmd */
	/* A client half-close while the command waits: true carries on and
	 * passes the FIN on once relaying (CONNECT); false ends the
	 * session, as nobody is left to answer (BIND, UDP). */
	bool waits_through_client_eof;
	/* Switched on in this config? NULL: always. */
	bool (*enabled)(const struct config *cfg);
	/* Carry out s->hs->req; ends in a reply and a relay (or an
	 * association), session_fail or session_close. */
	void (*start)(struct session *s);
	/* The session timer fired while the command waits. */
	void (*timeout)(struct session *s);
	/* Release what the command holds beyond the session's two sockets
	 * (called once, by session_close); NULL when nothing. */
	void (*teardown)(struct session *s);
	/* For the access log: bytes each way and extra " key=value"
	 * fields; NULL when the relay's counts say it all. */
	void (*log_fields)(const struct session *s, uint64_t *up,
	    uint64_t *down, char *extra, size_t extralen);
};

extern const struct command command_connect;
extern const struct command command_bind;
extern const struct command command_udp;
extern const struct command command_resolve;
extern const struct command command_resolve_ptr;

/* The command for an enum request_cmd value; NULL when there is none. */
const struct command *command_find(uint8_t cmd);

#endif
