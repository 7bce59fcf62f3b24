/*
 * The quota usage table: one shared mapping made before the workers fork,
 * entries per (quota, user) found without a lock and counted into with
 * compare-and-swap, and the tick that expires periods and buckets.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "socks5d/quota.h"

/* ---- the usage table ---- */

/*
 * A bucket is one word: a 12-bit tag (its period or bucket index mod 4096)
 * over 52 bits of bytes. Whoever finds a stale tag swaps in the new tag
 * and the new bytes with one compare-and-swap, and so knows exactly which
 * bytes it displaced: a worker counting into a bucket never races with a
 * clear, and no byte of the new period is lost. A tag that is ahead of
 * the caller's (another process's clock read a moment later) is added
 * to, never replaced. Every add goes into the total before the bucket and
 * leaves the total after it left the bucket, so the total never drops
 * below the sum of the buckets (and never wraps below 0). A tag is only
 * mistaken when a bucket goes undrained for some 4000 indexes (126
 * rolling windows, 11 years of days); the tick drains within a second.
 */
#define QUOTA_TAG_SHIFT	52
#define QUOTA_TAG_MASK	0xfffu
#define QUOTA_TAG_AHEAD	64	/* indexes a clock may lag another's */
#define QUOTA_TAG(i)	((unsigned)((uint64_t)(i) & QUOTA_TAG_MASK))
#define QUOTA_W_BYTES(w) ((w) & QUOTA_BYTES_MAX)
#define QUOTA_W_TAG(w)	((unsigned)((w) >> QUOTA_TAG_SHIFT))

struct quota_usage {
	uint64_t	 qu_bucket[QUOTA_BUCKETS];
	uint64_t	 qu_total;
	uint64_t	 qu_hash;
	uint64_t	 qu_period;	/* kind | seconds << 3; the tick's */
	uint32_t	 qu_index;	/* in qt_entries */
	uint32_t	 qu_ready;	/* filled in (release) */
	char		 qu_quota[QUOTA_NAME_MAX + 1];
	char		 qu_user[QUOTA_USER_MAX + 1];
} __attribute__((aligned(64)));

/*
 * The whole mapping: this header, capacity entries, then the index, a
 * power of two at least twice capacity of words (hash high 32 bits |
 * entry + 1), 0 when empty. Only inserts write the index, under qt_lock,
 * publishing a filled entry with a release store; readers probe it with
 * acquire loads and no lock.
 */
struct quota_table {
	pthread_mutex_t	 qt_lock;	/* process-shared and robust */
	size_t		 qt_mapsize;
	size_t		 qt_capacity;
	size_t		 qt_nslots;
	uint64_t	*qt_slots;	/* same address in every process */
	size_t		 qt_count;	/* entries handed out (atomic) */
	/* A flag, not a counter, so counting bytes reads it and leaves the
	 * cache line shared instead of every add writing it. */
	int		 qt_changed;
	struct quota_usage qt_entries[];
};

/* Not keyed: user names are the operator's, not chosen by clients. */
static uint64_t
quota_hash(const char *quota, const char *user)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);

	for (const char *s = quota; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * UINT64_C(0x100000001b3);
	h *= UINT64_C(0x100000001b3);	/* the NUL between the two */
	for (const char *s = user; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * UINT64_C(0x100000001b3);
	return h;
}

static uint64_t
quota_period_pack(const struct quota_period *p)
{
	return (uint64_t)p->kind |
	    (p->kind == QUOTA_PERIOD_ROLLING ? (uint64_t)p->seconds << 3 : 0);
}

static struct quota_table *
quota_usage_table(struct quota_usage *u)
{
	return (struct quota_table *)(void *)((char *)(u - u->qu_index) -
	    offsetof(struct quota_table, qt_entries));
}

/* index mod n, for n 1 or QUOTA_BUCKETS (divides 2^64, so negative
 * indexes wrap right). */
static size_t
quota_table_mod(int64_t index, size_t n)
{
	return (size_t)((uint64_t)index % n);
}

struct quota_table *
quota_table_create(size_t capacity)
{
	pthread_mutexattr_t attr;
	struct quota_table *t;
	size_t nslots = 1, head, size;
	void *map;
	int error;

	if (capacity == 0 || capacity > (size_t)INT32_MAX) {
		errno = EINVAL;
		return NULL;
	}
	while (nslots < capacity * 2)
		nslots *= 2;
	head = offsetof(struct quota_table, qt_entries) +
	    capacity * sizeof(struct quota_usage);
	size = head + nslots * sizeof(uint64_t);
	map = mmap(NULL, size, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (map == MAP_FAILED)
		return NULL;
	t = map;
	t->qt_mapsize = size;
	t->qt_capacity = capacity;
	t->qt_nslots = nslots;
	t->qt_slots = (uint64_t *)(void *)((char *)map + head);
	/* Robust: a worker killed while inserting must not wedge the rest. */
	if ((error = pthread_mutexattr_init(&attr)) == 0) {
		if ((error = pthread_mutexattr_setpshared(&attr,
		    PTHREAD_PROCESS_SHARED)) == 0 &&
		    (error = pthread_mutexattr_setrobust(&attr,
		    PTHREAD_MUTEX_ROBUST)) == 0)
			error = pthread_mutex_init(&t->qt_lock, &attr);
		pthread_mutexattr_destroy(&attr);
	}
	if (error != 0) {
		munmap(map, size);
		errno = error;
		return NULL;
	}
	return t;
}

void
quota_table_destroy(struct quota_table *t)
{
	/* No pthread_mutex_destroy: other processes may still use it. */
	if (t != NULL)
		munmap(t, t->qt_mapsize);
}

size_t
quota_table_count(const struct quota_table *t)
{
	return __atomic_load_n(&t->qt_count, __ATOMIC_ACQUIRE);
}

/* The entry for the key, or NULL with *slot the empty index slot where it
 * would go. */
static struct quota_usage *
quota_table_find(struct quota_table *t, uint64_t h, const char *quota,
    const char *user, size_t *slot)
{
	size_t mask = t->qt_nslots - 1, i;
	struct quota_usage *u;
	uint64_t v;

	/* At most half full, so an empty slot always ends the probe. */
	for (i = (size_t)h & mask;; i = (i + 1) & mask) {
		v = __atomic_load_n(&t->qt_slots[i], __ATOMIC_ACQUIRE);
		if (v == 0)
			break;
		if (v >> 32 != h >> 32)
			continue;
		u = &t->qt_entries[(uint32_t)v - 1];
		if (strcmp(u->qu_quota, quota) == 0 &&
		    strcmp(u->qu_user, user) == 0)
			return u;
	}
	*slot = i;
	return NULL;
}

/* Under qt_lock: fill the next entry and publish it at slot. */
static struct quota_usage *
quota_table_insert(struct quota_table *t, const struct quota *q,
    const char *user, uint64_t h, size_t slot)
{
	struct quota_usage *u;
	size_t n = t->qt_count;

	/* Entries a dead inserter got as far as filling count too. */
	while (n < t->qt_capacity &&
	    __atomic_load_n(&t->qt_entries[n].qu_ready, __ATOMIC_ACQUIRE))
		n++;
	if (n == t->qt_capacity)
		return NULL;
	u = &t->qt_entries[n];
	memset(u, 0, sizeof(*u));
	u->qu_hash = h;
	u->qu_period = quota_period_pack(quota_period(q));
	u->qu_index = (uint32_t)n;
	snprintf(u->qu_quota, sizeof(u->qu_quota), "%s", quota_name(q));
	snprintf(u->qu_user, sizeof(u->qu_user), "%s", user);
	__atomic_store_n(&u->qu_ready, 1, __ATOMIC_RELEASE);
	__atomic_store_n(&t->qt_slots[slot], (h >> 32 << 32) | (n + 1),
	    __ATOMIC_RELEASE);
	__atomic_store_n(&t->qt_count, n + 1, __ATOMIC_RELEASE);
	return u;
}

struct quota_usage *
quota_table_get(struct quota_table *t, const struct quota *q,
    const char *user)
{
	struct quota_usage *u;
	uint64_t h;
	size_t slot;
	int error;

	if (user == NULL || *user == '\0' || strlen(user) > QUOTA_USER_MAX)
		return NULL;
	h = quota_hash(quota_name(q), user);
	if ((u = quota_table_find(t, h, quota_name(q), user, &slot)) != NULL)
		return u;
	if ((error = pthread_mutex_lock(&t->qt_lock)) == EOWNERDEAD)
		pthread_mutex_consistent(&t->qt_lock);
	else if (error != 0)
		return NULL;
	/* Another process may have inserted it since the lock-free look. */
	if ((u = quota_table_find(t, h, quota_name(q), user, &slot)) == NULL)
		u = quota_table_insert(t, q, user, h, slot);
	pthread_mutex_unlock(&t->qt_lock);
	return u;
}

/* Is tag a a little later than b? */
static bool
quota_tag_after(unsigned a, unsigned b)
{
	unsigned d = (a - b) & QUOTA_TAG_MASK;

	return d != 0 && d <= QUOTA_TAG_AHEAD;
}

void
quota_table_mark_changed(struct quota_table *t)
{
	if (!__atomic_load_n(&t->qt_changed, __ATOMIC_RELAXED))
		__atomic_store_n(&t->qt_changed, 1, __ATOMIC_RELEASE);
}

bool
quota_table_take_changed(struct quota_table *t)
{
	return __atomic_exchange_n(&t->qt_changed, 0, __ATOMIC_ACQ_REL);
}

void
quota_usage_add_index(struct quota_usage *u, const struct quota_period *p,
    int64_t index, uint64_t bytes)
{
	uint64_t *b, w, nw, kept, add, gone;
	unsigned tag = QUOTA_TAG(index), wtag;

	if (bytes == 0)
		return;
	if (bytes > QUOTA_BYTES_MAX)
		bytes = QUOTA_BYTES_MAX;	/* so the total cannot wrap */
	b = &u->qu_bucket[quota_table_mod(index, quota_period_buckets(p))];
	__atomic_fetch_add(&u->qu_total, bytes, __ATOMIC_RELAXED);
	w = __atomic_load_n(b, __ATOMIC_RELAXED);
	do {
		wtag = QUOTA_W_TAG(w);
		kept = QUOTA_W_BYTES(w);
		gone = 0;
		/* An empty bucket's tag means nothing (0 when new). */
		if (kept == 0 || (wtag != tag &&
		    !quota_tag_after(wtag, tag))) {
			gone = kept;	/* an ended period's bytes */
			kept = 0;
			wtag = tag;
		}
		add = bytes < QUOTA_BYTES_MAX - kept ? bytes :
		    QUOTA_BYTES_MAX - kept;
		nw = (uint64_t)wtag << QUOTA_TAG_SHIFT | (kept + add);
	} while (!__atomic_compare_exchange_n(b, &w, nw, true,
	    __ATOMIC_RELAXED, __ATOMIC_RELAXED));
	/* What was displaced, and what did not fit (saturated). */
	if (gone + (bytes - add) > 0)
		__atomic_fetch_sub(&u->qu_total, gone + (bytes - add),
		    __ATOMIC_RELAXED);
	quota_table_mark_changed(quota_usage_table(u));
}

void
quota_usage_add(struct quota_usage *u, const struct quota *q,
    uint64_t bytes, int64_t now)
{
	quota_usage_add_index(u, quota_period(q),
	    quota_period_index(quota_period(q), now), bytes);
}

uint64_t
quota_usage_used(const struct quota_usage *u)
{
	return __atomic_load_n(&u->qu_total, __ATOMIC_RELAXED);
}

bool
quota_usage_over(const struct quota_usage *u, const struct quota *q)
{
	return quota_usage_used(u) >= quota_bytes(q);
}

/* Empty bucket s unless its tag is live (keep, or after keep); keep -1:
 * whatever it holds. */
static void
quota_bucket_drain(struct quota_usage *u, size_t s, int keep)
{
	uint64_t *b = &u->qu_bucket[s], w, nw;

	w = __atomic_load_n(b, __ATOMIC_RELAXED);
	do {
		if (QUOTA_W_BYTES(w) == 0 || (keep >= 0 &&
		    (QUOTA_W_TAG(w) == (unsigned)keep ||
		    quota_tag_after(QUOTA_W_TAG(w), (unsigned)keep))))
			return;
		nw = w & ~QUOTA_BYTES_MAX;
	} while (!__atomic_compare_exchange_n(b, &w, nw, true,
	    __ATOMIC_RELAXED, __ATOMIC_RELAXED));
	__atomic_fetch_sub(&u->qu_total, QUOTA_W_BYTES(w), __ATOMIC_RELAXED);
}

/* The index bucket s holds when it is in the window ending at cur. */
static int64_t
quota_bucket_index(int64_t cur, size_t window, size_t s)
{
	return cur - (int64_t)quota_table_mod(cur - (int64_t)s, window);
}

static void
quota_usage_expire(struct quota_usage *u, const struct quota_period *p,
    int64_t now)
{
	int64_t cur = quota_period_index(p, now);
	size_t window = quota_period_buckets(p);

	/* All of them: a worker still on an older config may have counted
	 * into buckets this period does not use. */
	for (size_t s = 0; s < QUOTA_BUCKETS; s++)
		quota_bucket_drain(u, s, s < window ?
		    (int)QUOTA_TAG(quota_bucket_index(cur, window, s)) : -1);
}

void
quota_table_tick(struct quota_table *t, const struct quotas *defs,
    int64_t now)
{
	size_t n = quota_table_count(t);
	struct quota_usage *u;
	const struct quota *q;
	uint64_t packed;

	for (size_t i = 0; i < n; i++) {
		u = &t->qt_entries[i];
		if (!__atomic_load_n(&u->qu_ready, __ATOMIC_ACQUIRE) ||
		    (q = quotas_find(defs, u->qu_quota)) == NULL)
			continue;
		packed = quota_period_pack(quota_period(q));
		if (packed != __atomic_load_n(&u->qu_period,
		    __ATOMIC_RELAXED)) {
			/* Another period counts differently: start again. */
			for (size_t s = 0; s < QUOTA_BUCKETS; s++)
				quota_bucket_drain(u, s, -1);
			__atomic_store_n(&u->qu_period, packed,
			    __ATOMIC_RELAXED);
		} else if (quota_usage_used(u) > 0)
			quota_usage_expire(u, quota_period(q), now);
	}
}

size_t
quota_table_reset(struct quota_table *t, const char *quota,
    const char *user)
{
	size_t n = quota_table_count(t), matched = 0;
	struct quota_usage *u;

	for (size_t i = 0; i < n; i++) {
		u = &t->qt_entries[i];
		if (!__atomic_load_n(&u->qu_ready, __ATOMIC_ACQUIRE) ||
		    (quota != NULL && strcmp(u->qu_quota, quota) != 0) ||
		    (user != NULL && strcmp(u->qu_user, user) != 0))
			continue;
		for (size_t s = 0; s < QUOTA_BUCKETS; s++)
			quota_bucket_drain(u, s, -1);
		matched++;
	}
	if (matched > 0)
		quota_table_mark_changed(t);
	return matched;
}

/* The index a tag stands for, seen at cur: at most QUOTA_TAG_AHEAD
 * later, or else earlier. */
static int64_t
quota_tag_index(int64_t cur, unsigned tag)
{
	int64_t d = (int64_t)((tag - QUOTA_TAG(cur)) & QUOTA_TAG_MASK);

	return cur + (d > QUOTA_TAG_AHEAD ? d - QUOTA_TAG_MASK - 1 : d);
}

int
quota_table_row(const struct quota_table *t, size_t i, int64_t now,
    struct quota_row *row)
{
	const struct quota_usage *u;
	int64_t cur, window, index;
	uint64_t packed, w;
	size_t s;

	if (i >= quota_table_count(t))
		return -1;
	u = &t->qt_entries[i];
	if (!__atomic_load_n(&u->qu_ready, __ATOMIC_ACQUIRE))
		return -1;
	memset(row, 0, sizeof(*row));
	memcpy(row->quota, u->qu_quota, sizeof(row->quota));
	memcpy(row->user, u->qu_user, sizeof(row->user));
	packed = __atomic_load_n(&u->qu_period, __ATOMIC_RELAXED);
	row->period.kind = (enum quota_period_kind)(packed & 7);
	row->period.seconds = (int64_t)(packed >> 3);
	row->nbuckets = quota_period_buckets(&row->period);
	window = (int64_t)row->nbuckets;
	cur = quota_period_index(&row->period, now);
	row->start = quota_period_index_start(&row->period, cur - window + 1);
	for (size_t k = 0; k < row->nbuckets; k++) {
		/* Oldest first: position k holds index cur - window + 1 + k
		 * unless its bucket is ahead of this clock. */
		index = cur - window + 1 + (int64_t)k;
		s = quota_table_mod(index, row->nbuckets);
		w = __atomic_load_n(&u->qu_bucket[s], __ATOMIC_RELAXED);
		row->bucket[k].index = index;
		if (QUOTA_W_BYTES(w) == 0 ||
		    quota_tag_index(cur, QUOTA_W_TAG(w)) <= cur - window)
			continue;
		row->bucket[k].index = quota_tag_index(cur, QUOTA_W_TAG(w));
		row->bucket[k].bytes = QUOTA_W_BYTES(w);
		row->used += QUOTA_W_BYTES(w);
	}
	return 0;
}

size_t
quota_table_snapshot(const struct quota_table *t, int64_t now,
    struct quota_row *out, size_t max)
{
	size_t n = quota_table_count(t), stored = 0;

	for (size_t i = 0; i < n && stored < max; i++)
		if (quota_table_row(t, i, now, &out[stored]) == 0)
			stored++;
	return stored;
}
