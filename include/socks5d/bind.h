/*
 * The BIND command (RFC 1928 §4, §6): listen on the client's behalf, send
 * the listening address, accept exactly one peer, send the peer's address
 * and relay.
 */
#ifndef SOCKS5D_BIND_H
#define SOCKS5D_BIND_H

struct session;

/* Carry out s->hs->req (cmd BIND); ends in session_start_relay,
 * session_fail or session_close. */
void bind_start(struct session *s);
/* The session timer fired while resolving DST or waiting for the peer. */
void bind_timeout(struct session *s);

#endif
