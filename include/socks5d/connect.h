/*
 * The CONNECT command (command_connect in command.h): from a request to a
 * connected target socket, resolving names and racing their addresses.
 * What it shares with the other commands: its errno mapping, and the
 * outbound socket every TCP connection out of the daemon starts from.
 */
#ifndef SOCKS5D_CONNECT_H
#define SOCKS5D_CONNECT_H

#include <stdint.h>

/*
 * The common mapping of a connect(2) errno to a request's outcome (enum
 * request_reply): ENETUNREACH/ENETDOWN 0x03, EHOSTUNREACH/EHOSTDOWN 0x04,
 * ECONNREFUSED/ECONNRESET 0x05, ETIMEDOUT 0x06, EACCES/EPERM 0x02 (also an
 * access rule's refusal), anything else 0x01.
 */
uint8_t connect_reply_for(int err);

struct session;
struct policy_route;

/* A non-blocking TCP socket (TCP_NODELAY) of family for a connection out
 * of the daemon, bound where route says (an egress pool's address) or
 * else to [outbound] bind_ipv4/6 when set. -1 with errno set. */
int connect_outbound_socket(const struct session *s, int family,
    const struct policy_route *route);

#endif
