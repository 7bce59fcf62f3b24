/*
 * Token buckets for the bandwidth limits (ratelimit.h): their refill, the
 * queue of relay directions waiting on each, and the table that lets the
 * sessions of one user, client or rule find the same bucket.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "socks5d/log.h"
#include "socks5d/ratelimit.h"
#include "socks5d/size.h"

/* A bucket holds this many seconds of its rate: the burst. */
#define RATE_BURST_SECONDS 1.0
/* A waiter is woken once this share of a second has refilled: reads of
 * a useful size, at most 50 wake-ups a second per bucket. */
#define RATE_WAKE_SECONDS  0.02
#define RATE_TABLE_SLOTS   1024

struct rate_bucket {
	struct ev_loop *loop;
	char *key;                     /* NULL: private */
	uint64_t rate;                 /* bytes per second */
	double tokens;                 /* may be negative: a datagram's debt */
	ev_tstamp refilled;            /* when tokens were last brought up */
	unsigned refs;
	ev_timer timer;                /* running while anyone waits */
	struct rate_waiter waiters;    /* list head: prev/next of a ring */
	struct rate_waiter *turn;      /* woken to read, until it has */
	struct rate_bucket *chain;     /* next in its table slot */
};

/* The loop is single-threaded: the table is the process's. */
static struct rate_bucket *rate_table[RATE_TABLE_SLOTS];
static size_t rate_live;

int
rate_parse(const char *value, uint64_t *out, char *why, size_t whylen)
{
	if (size_parse(value, out) == -1)
	{
		snprintf(why, whylen, "\"%.32s\" is not a rate in bytes per "
		    "second (a number, with K, M or G for 1024s)", value);
		return -1;
	}
	return 0;
}

static const char *const rate_per_names[] = {
	[RATE_PER_USER] = "user",
	[RATE_PER_CLIENT] = "client",
	[RATE_PER_SESSION] = "session",
	[RATE_PER_RULE] = "rule",
};

int
rate_parse_per(const char *value, enum rate_per *out, char *why,
    size_t whylen)
{
	size_t len = strlen(value);

	while (len > 0 && isspace((unsigned char)value[len - 1]))
		len--;
	while (len > 0 && isspace((unsigned char)*value)) {
		value++;
		len--;
	}
	for (size_t i = 0; i < sizeof(rate_per_names) /
	    sizeof(rate_per_names[0]); i++)
		if (strlen(rate_per_names[i]) == len &&
		    strncmp(value, rate_per_names[i], len) == 0) {
			*out = (enum rate_per)i;
			return 0;
		}
	snprintf(why, whylen, "\"%.32s\" is not user, client, session or "
	    "rule", value);
	return -1;
}

int
rate_spec_set(struct rate_spec *spec, const char *key, const char *value,
    char *why, size_t whylen)
{
	if (strcmp(key, "rate_up") == 0) {
		spec->up_set = true;
		return rate_parse(value, &spec->up, why, whylen);
	}
	if (strcmp(key, "rate_down") == 0) {
		spec->down_set = true;
		return rate_parse(value, &spec->down, why, whylen);
	}
	if (strcmp(key, "rate_per") == 0) {
		spec->per_set = true;
		return rate_parse_per(value, &spec->per, why, whylen);
	}
	snprintf(why, whylen, "unknown key");
	return -1;
}

bool
rate_spec_given(const struct rate_spec *spec)
{
	return spec->up_set || spec->down_set || spec->per_set;
}

struct rate_spec
rate_spec_merge(const struct rate_spec *base, const struct rate_spec *over)
{
	struct rate_spec out = *base;

	if (over == NULL)
		return out;
	if (over->up_set)
		out.up = over->up;
	if (over->down_set)
		out.down = over->down;
	if (over->per_set)
		out.per = over->per;
	return out;
}

static size_t
rate_slot(const char *key)
{
	uint32_t h = 2166136261u;

	for (const unsigned char *p = (const unsigned char *)key; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h % RATE_TABLE_SLOTS;
}

static double
rate_burst(const struct rate_bucket *b)
{
	return (double)b->rate * RATE_BURST_SECONDS;
}

static void
rate_refill(struct rate_bucket *b)
{
	ev_tstamp now = ev_now(b->loop);

	if (now > b->refilled) {
		b->tokens += (now - b->refilled) * (double)b->rate;
		if (b->tokens > rate_burst(b))
			b->tokens = rate_burst(b);
	}
	b->refilled = now;
}

/* Tokens worth waking a waiter for. */
static double
rate_wake_level(const struct rate_bucket *b)
{
	double level = (double)b->rate * RATE_WAKE_SECONDS;

	return level < 1.0 ? 1.0 : level;
}

/* Arm the timer for the next turn: when the bucket holds a read's
 * worth, or at once. */
static void
rate_timer_arm(struct rate_bucket *b, double after)
{
	ev_timer_stop(b->loop, &b->timer);
	ev_timer_set(&b->timer, after > 0 ? after : 0., 0.);
	ev_timer_start(b->loop, &b->timer);
}

static double
rate_refill_time(const struct rate_bucket *b)
{
	return (rate_wake_level(b) - b->tokens) / (double)b->rate;
}

/*
 * A tick: the turn given at the last one is over, used or not (its owner
 * may have had nothing to read), and the first waiter gets the next once
 * the bucket holds a read's worth.
 */
static void
rate_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct rate_bucket *b = w->data;
	struct rate_waiter *first;

	(void)loop;
	(void)revents;
	rate_refill(b);
	if (b->turn != NULL) {
		b->turn->bucket = NULL;
		b->turn = NULL;
	}
	if ((first = b->waiters.next) == &b->waiters)
		return;
	if (b->tokens < rate_wake_level(b)) {
		rate_timer_arm(b, rate_refill_time(b));
		return;
	}
	rate_waiter_cancel(first);
	first->bucket = b;
	b->turn = first;
	/* Until the turn is used (spend brings the next one forward). */
	rate_timer_arm(b, RATE_WAKE_SECONDS);
	first->wake(first);
}

struct rate_bucket *
rate_bucket_acquire(struct ev_loop *loop, const char *key, uint64_t rate)
{
	struct rate_bucket *b;
	size_t slot = 0;

	if (key != NULL) {
		slot = rate_slot(key);
		for (b = rate_table[slot]; b != NULL; b = b->chain)
			if (strcmp(b->key, key) == 0) {
				rate_refill(b);
				b->rate = rate;
				b->refs++;
				return b;
			}
	}
	if ((b = calloc(1, sizeof(*b))) == NULL ||
	    (key != NULL && (b->key = strdup(key)) == NULL)) {
		free(b);
		log_warnx("rate limit: out of memory; a session runs "
		    "unlimited");
		return NULL;
	}
	b->loop = loop;
	b->rate = rate;
	b->tokens = rate_burst(b);
	b->refilled = ev_now(loop);
	b->refs = 1;
	b->waiters.next = b->waiters.prev = &b->waiters;
	ev_timer_init(&b->timer, rate_timer_cb, 0., 0.);
	b->timer.data = b;
	if (key != NULL) {
		b->chain = rate_table[slot];
		rate_table[slot] = b;
	}
	rate_live++;
	return b;
}

void
rate_bucket_release(struct rate_bucket *b)
{
	if (b == NULL || --b->refs > 0)
		return;
	if (b->key != NULL) {
		struct rate_bucket **p = &rate_table[rate_slot(b->key)];

		while (*p != b)
			p = &(*p)->chain;
		*p = b->chain;
	}
	/* Every waiter belongs to a holder of a reference: none is left. */
	ev_timer_stop(b->loop, &b->timer);
	free(b->key);
	free(b);
	rate_live--;
}

size_t
rate_bucket_allow(struct rate_bucket *b, const struct rate_waiter *w,
    size_t want)
{
	rate_refill(b);
	/* Others queued first, or holding the turn: wait behind them. */
	if (b->turn != w && (b->turn != NULL || b->waiters.next != &b->waiters))
		return 0;
	if (b->tokens < 1.0)
		return 0;
	return b->tokens < (double)want ? (size_t)b->tokens : want;
}

void
rate_bucket_spend(struct rate_bucket *b, struct rate_waiter *w, size_t n)
{
	b->tokens -= (double)n;
	if (b->turn != w || w == NULL)
		return;
	w->bucket = NULL;
	b->turn = NULL;
	/* The next waiter's turn: now if a read's worth is left. */
	if (b->waiters.next != &b->waiters)
		rate_timer_arm(b, rate_refill_time(b));
}

bool
rate_bucket_take(struct rate_bucket *b, size_t len)
{
	rate_refill(b);
	if (b->tokens <= 0.0)
		return false;
	b->tokens -= (double)len;
	return true;
}

void
rate_bucket_wait(struct rate_bucket *b, struct rate_waiter *w)
{
	w->bucket = b;
	w->next = &b->waiters;
	w->prev = b->waiters.prev;
	w->prev->next = w;
	b->waiters.prev = w;
	if (!ev_is_active(&b->timer)) {
		rate_refill(b);
		rate_timer_arm(b, rate_refill_time(b));
	}
}

void
rate_waiter_cancel(struct rate_waiter *w)
{
	struct rate_bucket *b = w->bucket;

	if (w->next != NULL) {
		w->prev->next = w->next;
		w->next->prev = w->prev;
		w->next = w->prev = NULL;
	}
	/* A turn given back (its session ends) passes on at once. */
	if (b != NULL && b->turn == w) {
		b->turn = NULL;
		if (b->waiters.next != &b->waiters)
			rate_timer_arm(b, 0.);
	}
	w->bucket = NULL;
}

size_t
rate_buckets_live(void)
{
	return rate_live;
}
