/*
 * Traffic quotas: "[quota NAME]" sections giving each matching user a
 * number of bytes per calendar or rolling period (quota.c), the usage
 * table that forked workers share, and its state file and the thread that
 * ticks and saves it (quota_state.c). Times are unix seconds, UTC.
 */
#ifndef SOCKS5D_QUOTA_H
#define SOCKS5D_QUOTA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QUOTA_NAME_MAX		64
#define QUOTA_USER_MAX		255		/* as RFC 1929 */
#define QUOTA_BUCKETS		32		/* of a rolling window */
#define QUOTA_BYTES_MAX		((UINT64_C(1) << 52) - 1)   /* 4096T - 1 */
#define QUOTA_ROLLING_MAX	(INT64_C(3650) * 86400)

/* ---- periods ---- */

enum quota_period_kind {
	QUOTA_PERIOD_UNSET = 0,
	QUOTA_PERIOD_DAY,		/* from 00:00 UTC */
	QUOTA_PERIOD_WEEK,		/* from Monday 00:00 UTC */
	QUOTA_PERIOD_MONTH,		/* from the 1st, 00:00 UTC */
	QUOTA_PERIOD_ROLLING,		/* the last `seconds` */
};

struct quota_period {
	enum quota_period_kind kind;
	int64_t seconds;		/* ROLLING only: 1..QUOTA_ROLLING_MAX */
};

/*
 * "day", "week", "month" or "rolling:N UNIT" (any case; UNIT s, m, h, d
 * or second(s), minute(s), hour(s), day(s), with or without a space
 * before it). Returns 0, or -1 when s is none of these or out of range.
 */
int quota_period_parse(const char *s, struct quota_period *out);
/* The spelling the state file uses ("week", "rolling:600s"). */
void quota_period_format(const struct quota_period *p, char *buf,
    size_t len);
bool quota_period_equal(const struct quota_period *a,
    const struct quota_period *b);

/*
 * Periods are numbered. Calendar: whole days, weeks or months since the
 * one holding 1970-01-01. Rolling: buckets of seconds/32 (not rounded) since
 * 1970, and a window is the current bucket and the 31 before it, so usage
 * leaves the window between 31/32 of the period and the whole period after
 * it was counted: the precision is period/32 (and at least the one second
 * between two ticks).
 */
int64_t quota_period_index(const struct quota_period *p, int64_t now);
/* The first whole second of period or bucket index. */
int64_t quota_period_index_start(const struct quota_period *p,
    int64_t index);
/* Buckets an entry keeps: 1 for a calendar period, QUOTA_BUCKETS rolling. */
size_t quota_period_buckets(const struct quota_period *p);
/* Start of the current period, or of the rolling window's oldest bucket. */
int64_t quota_period_start(const struct quota_period *p, int64_t now);
/* When the next period starts, or the oldest bucket leaves the window. */
int64_t quota_period_end(const struct quota_period *p, int64_t now);

/* ---- definitions ---- */

/*
 * Building, for the config parser and tests: quotas_new, then per section
 * quotas_add and quota_set for each key, then quota_complete. Keys:
 *
 *   user    comma-separated user names; setting it again appends; never
 *           set (or only empty): every logged-in user
 *   bytes   per user and period, both directions added: size_parse()
 *           syntax, 1..QUOTA_BYTES_MAX (required; the last set wins)
 *   period  see quota_period_parse (required; the last set wins)
 */
struct quotas;	/* the [quota] sections of one config, in file order */
struct quota;	/* one of them */

struct quotas *quotas_new(void);
void quotas_free(struct quotas *qs);
/* Is name usable as a quota NAME ([A-Za-z0-9_.-], 1 to 64 of them)? */
bool quotas_name_valid(const char *name);
/* Append a quota named name (not checked); NULL when out of memory. */
struct quota *quotas_add(struct quotas *qs, const char *name);
/* By exact name; NULL when absent (qs may be NULL). */
struct quota *quotas_find(const struct quotas *qs, const char *name);
size_t quotas_count(const struct quotas *qs);
/* Quota i in file order, NULL past the end. */
const struct quota *quotas_at(const struct quotas *qs, size_t i);

/*
 * Set key from its INI value. Returns 0, or -1 with why filled in (e.g.
 * "bad size \"12Q\"", "unknown key"); a failed user list may be partly
 * added, and the set should then be discarded.
 */
int quota_set(struct quota *q, const char *key, const char *value,
    char *why, size_t whylen);
/* Are bytes and period set? If not, false with why ("bytes is missing"). */
bool quota_complete(const struct quota *q, char *why, size_t whylen);

const char *quota_name(const struct quota *q);
uint64_t quota_bytes(const struct quota *q);
const struct quota_period *quota_period(const struct quota *q);

/* The users q's user key names (none: it counts every user). */
size_t quota_user_count(const struct quota *q);
const char *quota_user_at(const struct quota *q, size_t i);

/* Does q count user's traffic? Never for user NULL (no login). */
bool quota_applies(const struct quota *q, const char *user);
/* Store the first max quotas that apply to user, in file order, in out;
 * returns how many apply in all. */
size_t quotas_for_user(const struct quotas *qs, const char *user,
    const struct quota **out, size_t max);

/* ---- usage, shared by forked processes ---- */

/*
 * One mapping, made before the workers fork and never moved, holds up to
 * capacity entries, one per (quota NAME, user); untouched pages cost no
 * memory. Lookups and byte counts take no lock, inserts take a
 * process-shared mutex. Entries are never freed: an entry whose quota left
 * the config just stops being looked up (and comes back if it returns).
 * Usage is kept per bucket (one for a calendar period, QUOTA_BUCKETS for a
 * rolling window) with a running total beside them. A bucket holds its
 * index (mod 4096) and its bytes in one word changed by compare-and-swap,
 * so bytes counted while a bucket is being recycled or cleared are never
 * lost. quota_table_tick is what expires buckets, so it must run about
 * once a second (quota_writer does that).
 */
struct quota_table;
struct quota_usage;		/* one entry, in the mapping */

/* NULL with errno set on failure (EINVAL: capacity 0 or above 2^31). */
struct quota_table *quota_table_create(size_t capacity);
/* Unmap it in this process only (each process that has it may). */
void quota_table_destroy(struct quota_table *t);
/* Entries in use. */
size_t quota_table_count(const struct quota_table *t);

/*
 * The entry for (q's name, user), made when absent. NULL when the table is
 * full, user is NULL, empty or longer than QUOTA_USER_MAX, or the mutex
 * failed: the caller then leaves that user uncounted (and logs it once).
 * The pointer stays valid as long as the table.
 */
struct quota_usage *quota_table_get(struct quota_table *t,
    const struct quota *q, const char *user);

/* Count bytes (either direction) for now against q's period. Lock-free. */
void quota_usage_add(struct quota_usage *u, const struct quota *q,
    uint64_t bytes, int64_t now);
/* The same for period or bucket index of p: for loading the state file. */
void quota_usage_add_index(struct quota_usage *u,
    const struct quota_period *p, int64_t index, uint64_t bytes);
/*
 * The running total: may still hold expired usage until the next tick, and
 * bytes other processes are just adding, never less than what is counted.
 */
uint64_t quota_usage_used(const struct quota_usage *u);
/* Is the running total at or above q's bytes? */
bool quota_usage_over(const struct quota_usage *u, const struct quota *q);

/*
 * For the owning process, about once a second: against each entry's quota
 * in defs, empty buckets now outside their period or window (a calendar
 * entry starts again at 0 when its period does), and zero an entry whose
 * period setting changed. Entries of quotas defs lacks are left alone.
 */
void quota_table_tick(struct quota_table *t, const struct quotas *defs,
    int64_t now);

/* Zero the entries of quota (NULL: any) and user (NULL: any); returns how
 * many matched. */
size_t quota_table_reset(struct quota_table *t, const char *quota,
    const char *user);

/* One entry as seen at now, for listings and the state file. */
struct quota_row {
	char quota[QUOTA_NAME_MAX + 1];
	char user[QUOTA_USER_MAX + 1];
	struct quota_period period;	/* the one it was counted with */
	int64_t start;			/* quota_period_start at now */
	uint64_t used;			/* live buckets only, so exact */
	size_t nbuckets;		/* 1 calendar, QUOTA_BUCKETS rolling */
	struct {
		int64_t index;		/* quota_period_index numbering */
		uint64_t bytes;		/* 0 when outside the window */
	} bucket[QUOTA_BUCKETS];	/* oldest first */
};

/* Entry i (0 <= i < quota_table_count): 0, or -1 when i is out of range
 * or still being inserted. */
int quota_table_row(const struct quota_table *t, size_t i, int64_t now,
    struct quota_row *row);
/* Up to max rows in table order; returns how many were stored. */
size_t quota_table_snapshot(const struct quota_table *t, int64_t now,
    struct quota_row *out, size_t max);

/* Has anything been counted or reset since the last call? Clears it. */
bool quota_table_take_changed(struct quota_table *t);
/* Set it again (a failed write must be retried). */
void quota_table_mark_changed(struct quota_table *t);

/* ---- state file (quota_state.c) ---- */

/*
 * Text, first line "socks5d-quota 1", then one line per entry with usage:
 *
 *   NAME USER PERIOD START TOTAL [INDEX:BYTES x 32, rolling only]
 *
 * USER percent-encoded (%, space, control and non-ASCII bytes as %XX),
 * PERIOD as quota_period_format, START as quota_period_start, TOTAL the
 * sum of the buckets. Written to path.tmp, fsynced, renamed over path,
 * then the directory fsynced. Returns 0, or -1 with errno set.
 */
int quota_state_write(const struct quota_table *t, const char *path,
    int64_t now);

/*
 * Load path into t (normally empty) for the quotas in defs: lines of
 * quotas defs lacks or whose period changed are dropped, a calendar
 * period that has ended loads as zero, rolling buckets that left the
 * window are dropped. Returns 0 when loaded, 1 when there is no file
 * (why: "no state file yet"), -1 when it cannot be read or is corrupt
 * (why e.g. "line 3: bad total \"12x\""); the file is checked whole before
 * anything is loaded, so on -1 t is untouched.
 */
int quota_state_read(struct quota_table *t, const struct quotas *defs,
    const char *path, int64_t now, char *why, size_t whylen);

/* Rename a corrupt path to path.bad, so the next write starts afresh and
 * the operator can look at it. Returns 0, or -1 with errno set. */
int quota_state_quarantine(const char *path);

/*
 * A thread of the owning process: every second quota_table_tick with the
 * current defs; every interval seconds quota_state_write when something
 * changed (a failure is logged at most once a minute, and retried). All
 * signals are blocked in it. NULL when the thread cannot start (logged).
 * defs must stay valid until quota_writer_set_defs replaces it or
 * quota_writer_stop returns.
 */
struct quota_writer;

struct quota_writer *quota_writer_start(struct quota_table *t,
    const struct quotas *defs, const char *path, unsigned interval_seconds);
/* Keep the thread between ticks (hold) until release: around a fork, so
 * the child is not born while the thread holds allocator or stdio
 * locks. */
void quota_writer_hold(struct quota_writer *w);
void quota_writer_release(struct quota_writer *w);
/* After a reload. Returns once the thread no longer uses the old defs
 * (it waits for a tick under way, microseconds to milliseconds). */
void quota_writer_set_defs(struct quota_writer *w, const struct quotas *defs);
/* At shutdown: stop and join the thread, tick and write a last time if
 * anything changed, free w. NULL is ignored. */
void quota_writer_stop(struct quota_writer *w);

#endif
