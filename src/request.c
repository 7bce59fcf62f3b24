/*
 * From a parsed request to its command: the commands' table, the config
 * switches, and the policy's first look. Every front-end hands its request
 * here, so what a command is allowed to do does not depend on the protocol
 * it was asked in.
 */
#include <stdlib.h>
#include <string.h>

#include "socks5d/command.h"
#include "socks5d/policy.h"
#include "socks5d/request.h"
#include "socks5d/session.h"

static const char *const proto_names[REQUEST_PROTO_COUNT] = {
	[REQUEST_PROTO_SOCKS5] = "socks5",
	[REQUEST_PROTO_SOCKS4] = "socks4",
	[REQUEST_PROTO_HTTP] = "http",
};

const char *
request_proto_name(enum request_proto proto)
{
	return proto < REQUEST_PROTO_COUNT ? proto_names[proto] : "-";
}

const struct command *
command_find(uint8_t cmd)
{
	switch (cmd) {
	case REQUEST_CMD_CONNECT:
		return &command_connect;
	case REQUEST_CMD_BIND:
		return &command_bind;
	case REQUEST_CMD_UDP:
		return &command_udp;
	case REQUEST_CMD_RESOLVE:
		return &command_resolve;
	case REQUEST_CMD_RESOLVE_PTR:
		return &command_resolve_ptr;
	default:
		return NULL;
	}
}

void
request_dispatch(struct session *s)
{
	const struct command *command = command_find(s->hs->req.cmd);
	char dest[SOCKS5_ADDR_STRLEN];

	s->cmd = s->hs->req.cmd;
	socks5_addr_format(&s->hs->req.dst, dest, sizeof(dest));
	free(s->dest);
	s->dest = strdup(dest);
	/* Named even when switched off, for the access log's cmd=. */
	s->command = command;
	if (command == NULL || (command->enabled != NULL &&
	    !command->enabled(s->srv->cfg))) {
		session_fail(s, REPLY_CMD_UNSUPPORTED);
		return;
	}
	if (!policy_allow_request(s)) {
		session_fail(s, REPLY_NOT_ALLOWED);
		return;
	}
	command->start(s);
}
