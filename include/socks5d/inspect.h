/*
 * [inspect] sniff on a CONNECT session (inspect.c): the destination's real
 * name from the client's first bytes (TLS server name, HTTP Host), for
 * the rules when the client gave an address, for [inspect] mismatch, and
 * for the access log.
 */
#ifndef SOCKS5D_INSPECT_H
#define SOCKS5D_INSPECT_H

#include <stddef.h>

struct session;

/* The relay just started: watch the client's first bytes when [inspect]
 * sniff asks for it. -1 (*reason set) when bytes the client sent ahead
 * were already enough to refuse the session; the caller closes it. */
int inspect_start(struct session *s, const char **reason);
/* " sni=NAME alpn=h2 ech=1 sni_mismatch=1" as learnt, for the log. */
void inspect_log_fields(const struct session *s, char *extra, size_t len);
/* Release what the session holds of it (session_close). */
void inspect_free(struct session *s);

#endif
