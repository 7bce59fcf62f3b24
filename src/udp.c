/* Placeholder until UDP ASSOCIATE lands: answers "command not supported". */
#include "socks5d/session.h"
#include "socks5d/udp.h"

void
udp_start(struct session *s)
{
	session_fail(s, SOCKS5_REP_CMD_UNSUPPORTED);
}

void
udp_timeout(struct session *s)
{
	session_close(s, "idle");
}

void
udp_free(struct udp_assoc *a)
{
	(void)a;
}

void
udp_log_fields(const struct udp_assoc *a, uint64_t *up, uint64_t *down,
    char *extra, size_t extralen)
{
	(void)a;
	(void)up;
	(void)down;
	if (extralen > 0)
		extra[0] = '\0';
}
