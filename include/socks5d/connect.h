/*
 * The CONNECT command: from a parsed request to a connected target socket,
 * resolving names and trying each address in turn.
 */
#ifndef SOCKS5D_CONNECT_H
#define SOCKS5D_CONNECT_H

#include <stdint.h>

struct session;

/* Carry out s->hs->req; ends in session_start_relay or session_fail. */
void connect_start(struct session *s);
/* The session timer fired during a connection attempt. */
void connect_timeout(struct session *s);
/*
 * The common mapping of a connect(2) errno to a SOCKS5 reply code:
 * ENETUNREACH/ENETDOWN 0x03, EHOSTUNREACH/EHOSTDOWN 0x04,
 * ECONNREFUSED/ECONNRESET 0x05, ETIMEDOUT 0x06, EACCES/EPERM 0x02 (also an
 * access rule's refusal), anything else 0x01.
 */
uint8_t connect_reply_for(int err);

#endif
