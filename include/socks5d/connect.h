/*
 * The CONNECT command (command_connect in command.h): from a request to a
 * connected target socket, resolving names and trying each address in
 * turn. What it shares with the other commands is its errno mapping.
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

#endif
