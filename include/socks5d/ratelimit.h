/*
 * Bandwidth limits: token buckets on the event loop. A bucket holds up to
 * one second of its rate (the burst) and refills continuously; sessions
 * that share a budget (one user's, one client address's, one rule's) share
 * one bucket in the process, found by key. A relay direction that finds
 * its bucket empty waits on it. While any wait, the bucket's one timer
 * gives turns in arrival order: the first waiter is woken to take one
 * read's worth, and goes to the back if it wants more, so sessions that
 * share a budget share it evenly. No busy loop, no timer per session.
 */
#ifndef SOCKS5D_RATELIMIT_H
#define SOCKS5D_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <ev.h>

/* Whose budget a limit is: every session of the same user (sessions
 * without a login: of the same client address), of the same client
 * address, of the same rule, or each session its own. */
enum rate_per { RATE_PER_USER, RATE_PER_CLIENT, RATE_PER_SESSION,
	RATE_PER_RULE };

/* A rule's or [limits]' rate keys; 0 is unlimited. A rule's keys each
 * replace [limits]' when given (the *_set flags), so a rule may also lift
 * a limit (rate_down = 0). */
struct rate_spec {
	uint64_t up;                   /* bytes/s, client -> target */
	uint64_t down;                 /* bytes/s, target -> client */
	enum rate_per per;
	bool up_set, down_set, per_set;
};

/* Parse a rate_up/rate_down value ("0", "512K", "10M", "1G": bytes per
 * second, powers of 1024) or a rate_per value. 0, or -1 with why. */
int rate_parse(const char *value, uint64_t *out, char *why, size_t whylen);
int rate_parse_per(const char *value, enum rate_per *out, char *why,
    size_t whylen);
/* Set rate_up, rate_down or rate_per of spec from an INI value. */
int rate_spec_set(struct rate_spec *spec, const char *key, const char *value,
    char *why, size_t whylen);
/* Does spec set any key? */
bool rate_spec_given(const struct rate_spec *spec);
/* base with what over sets in its place (over may be NULL). */
struct rate_spec rate_spec_merge(const struct rate_spec *base,
    const struct rate_spec *over);

/* Something waiting on a bucket: wake is called once, from the bucket's
 * timer, when it is the waiter's turn; it is no longer queued then. */
struct rate_waiter {
	struct rate_waiter *prev, *next;
	struct rate_bucket *bucket;    /* queued on, or holding the turn of */
	void (*wake)(struct rate_waiter *w);
};

struct rate_bucket;

/*
 * A bucket of rate bytes/s: the one named key when key is not NULL
 * (shared, reference-counted; its rate set to rate, the latest
 * configuration winning), else a private one. NULL when out of memory
 * (the session then runs unlimited, logged).
 */
struct rate_bucket *rate_bucket_acquire(struct ev_loop *loop, const char *key,
    uint64_t rate);
void rate_bucket_release(struct rate_bucket *b);

/* How many of want bytes may w's owner read now (0: none; then wait).
 * While others wait for their turn, only the one whose turn it is may. */
size_t rate_bucket_allow(struct rate_bucket *b, const struct rate_waiter *w,
    size_t want);
/* w's owner read n bytes: its turn, if it had one, is over. */
void rate_bucket_spend(struct rate_bucket *b, struct rate_waiter *w,
    size_t n);
/* May a datagram pass now? Spends its length when it may. */
bool rate_bucket_take(struct rate_bucket *b, size_t len);

/* Queue w (at the back) until its turn comes and the bucket has refilled
 * enough to be worth a read. */
void rate_bucket_wait(struct rate_bucket *b, struct rate_waiter *w);
/* Take w off its bucket's queue, or give back its turn. */
void rate_waiter_cancel(struct rate_waiter *w);

/* Buckets held in this process (tests, /metrics). */
size_t rate_buckets_live(void);

#endif
