/*
 * TLS interception for CONNECT sessions whose rule says intercept = yes
 * ([inspect] ca_certificate and ca_key set): the client's ClientHello is
 * read, the origin is reached over TLS with the client's server name and
 * its certificate verified, a leaf for that name signed by the operator's
 * CA finishes TLS with the client, and the relay copies between the two,
 * writing one http log line per HTTP/1.1 exchange it sees. Names on the
 * bypass list, learnt from clients that refuse the leaf, or that are not
 * TLS at all, pass through untouched (plain HTTP is still logged).
 */
#ifndef SOCKS5D_INTERCEPT_H
#define SOCKS5D_INTERCEPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct session;
struct intercept_ctx;

/* What interception needs from the config, built by config_load (so -t
 * and a reload see a bad CA first). NULL with why, which starts with the
 * key at fault ("ca_key PATH: ...", "upstream_ca PATH: ..."). */
struct intercept_ctx *intercept_ctx_new(const char *ca_certificate,
    const char *ca_key, const char *upstream_ca, bool upstream_verify,
    char *why, size_t whylen);
/* Sessions hold a reference while they use it; a reload's new config
 * brings a new one, and the old goes with its last session. */
void intercept_ctx_unref(struct intercept_ctx *ctx);

/* Leaves made, and found in the cache, so far. */
void intercept_ctx_stats(const struct intercept_ctx *ctx, uint64_t *minted,
    uint64_t *hits);

/* Is this CONNECT (success just sent) to be intercepted? */
bool intercept_wanted(const struct session *s);
/* Take the session over: read the ClientHello, set up both sides' TLS,
 * then relay (session_relay), or pass through. */
void intercept_begin(struct session *s);
/* The session timer fired while interception waits: true when it was
 * its wait (the session is closed). */
bool intercept_timeout(struct session *s);

/* The session ends (session_close): log the exchanges still open, send
 * close_notify to the client; then free. */
void intercept_close(struct session *s);
void intercept_free(struct session *s);

/* " intercept=yes" (or bypass, learnt, plain, none) for the access log. */
void intercept_log_fields(const struct session *s, char *extra, size_t len);

#endif
