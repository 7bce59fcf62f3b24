/* Placeholder until BIND lands: answers "command not supported". */
#include "socks5d/bind.h"
#include "socks5d/session.h"

void
bind_start(struct session *s)
{
	session_fail(s, SOCKS5_REP_CMD_UNSUPPORTED);
}

void
bind_timeout(struct session *s)
{
	session_close(s, "timeout");
}
