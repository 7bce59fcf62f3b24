/*
 * The UDP ASSOCIATE command (RFC 1928 §4, §6, §7): a UDP relay per
 * association, alive as long as its TCP control connection.
 */
#ifndef SOCKS5D_UDP_H
#define SOCKS5D_UDP_H

#include <stddef.h>
#include <stdint.h>

struct session;
struct udp_assoc;

/* Carry out s->hs->req (cmd UDP ASSOCIATE): create the association, reply,
 * and keep the session in SESSION_UDP until the control connection ends. */
void udp_start(struct session *s);
/* The session timer fired in SESSION_UDP (idle check). */
void udp_timeout(struct session *s);
/* Release every socket and buffer of the association (session_close). */
void udp_free(struct udp_assoc *a);
/* For the access-log line: bytes relayed each way into *up and *down, and
 * extra " key=value" fields (datagrams, drops by reason) into extra. */
void udp_log_fields(const struct udp_assoc *a, uint64_t *up, uint64_t *down,
    char *extra, size_t extralen);

#endif
