/*
 * The handshake stage of a session: reading the client's greeting, RFC 1929
 * login and request from the byte stream, answering each, and handing the
 * parsed request to its command.
 */
#ifndef SOCKS5D_HANDSHAKE_H
#define SOCKS5D_HANDSHAKE_H

struct session;

/* Arm the client watcher for the greeting. */
void handshake_start(struct session *s);

#endif
