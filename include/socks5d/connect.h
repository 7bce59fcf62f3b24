/*
 * The CONNECT command: from a parsed request to a connected target socket,
 * resolving names and trying each address in turn.
 */
#ifndef SOCKS5D_CONNECT_H
#define SOCKS5D_CONNECT_H

struct session;

/* Carry out s->hs->req; ends in session_start_relay or session_fail. */
void connect_start(struct session *s);
/* The session timer fired during a connection attempt. */
void connect_timeout(struct session *s);

#endif
