/*
 * [inspect] sniff on a CONNECT session (inspect.c): the destination's real
 * name from the client's first bytes (TLS server name, HTTP Host), for
 * the rules when the client gave an address, for [inspect] mismatch, and
 * for the access log.
 */
#ifndef SOCKS5D_INSPECT_H
#define SOCKS5D_INSPECT_H

#include <stddef.h>
#include <stdint.h>

struct session;

/* The relay just started: watch the client's first bytes when [inspect]
 * sniff asks for it. -1 (*reason set) when bytes the client sent ahead
 * were already enough to refuse the session; the caller closes it. */
int inspect_start(struct session *s, const char **reason);
/*
 * A CONNECT to a bare address whose verdict a name could change (rules
 * with name patterns): should the decision wait for the client's first
 * bytes? Then inspect_wait answers success now, reads them (up to 16 KiB,
 * or [inspect] sniff_timeout), learns the name, and calls then(s) to
 * decide and connect with it as the request's name (s->hs->dst_name); a
 * failure after that can only close. inspect_wait_timeout: the session
 * timer fired meanwhile (the command's timeout passes it on).
 */
bool inspect_should_wait(const struct session *s);
void inspect_wait(struct session *s, void (*then)(struct session *));
bool inspect_wait_timeout(struct session *s);

/* TLS interception read the ClientHello itself (info): keep what it
 * says for the log, unless the session learnt a name already, and judge
 * it as sniffing would when [inspect] sniff lists tls. -1 (*reason set)
 * when the rules refuse it; the caller closes. */
struct sniff_info;
int inspect_record(struct session *s, const struct sniff_info *info,
    const char **reason);

/* A UDP association's datagram toward dst: QUIC Initial packets to its
 * first destination are sniffed (when [inspect] sniff lists quic). The
 * name learnt for dst, for the rules to judge the datagram by, or NULL. */
union sockaddr_any;
const char *inspect_datagram(struct session *s,
    const union sockaddr_any *dst, const uint8_t *payload, size_t len);

/* The name sniffed (before connecting, or on the way), or NULL. */
const char *inspect_name(const struct session *s);

/* " sni=NAME alpn=h2 ech=1 sni_mismatch=1" as learnt, for the log. */
void inspect_log_fields(const struct session *s, char *extra, size_t len);
/* Release what the session holds of it (session_close). */
void inspect_free(struct session *s);

#endif
