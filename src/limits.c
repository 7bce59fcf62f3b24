/*
 * Resource limits: concurrent sessions per client IP and per user, and the
 * failed-login ban per client IP. Owns two hash tables (IPs, users) that
 * grow and shrink with the number of live entries; no I/O, no clock.
 */
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "socks5d/limits.h"

/* Open addressing, linear probing, deletion by backward shift (so no
 * tombstones pile up). Grow past 3/4 full, halve below 1/8 full: the gap
 * keeps resizing amortized O(1) when one key comes and goes at a border. */
#define LIMITS_TABLE_MIN	16
#define LIMITS_SWEEP_SLOTS	8	/* slots checked per call for expiry */

/* Every entry starts with this, so one table implementation serves both
 * entry types. */
struct limits_head {
	uint64_t	 lh_hash;
	bool		 lh_used;
};

struct limits_table {
	void		*lt_slots;
	size_t		 lt_size;	/* 0 or a power of two */
	size_t		 lt_used;
	size_t		 lt_esize;
	bool		(*lt_match)(const void *entry, const void *key);
};

/* IPv4 is stored as IPv4-mapped IPv6, so both spellings are one key. */
struct limits_ip {
	struct limits_head li_head;
	unsigned char	 li_addr[16];
	unsigned	 li_count;	/* concurrent sessions */
	unsigned	 li_failures;	/* in the window starting at... */
	double		 li_window_start;
	double		 li_ban_until;	/* valid when li_banned */
	bool		 li_banned;
};

struct limits_user {
	struct limits_head lu_head;
	char		*lu_name;	/* owned copy */
	size_t		 lu_len;
	unsigned	 lu_count;
};

/* A user name as looked up, before it is copied into an entry. */
struct limits_name {
	const char	*ln_name;
	size_t		 ln_len;
};

struct limits {
	struct limits_config lim_cfg;
	struct limits_table lim_ips;
	struct limits_table lim_users;
	size_t		 lim_sweep;	/* next IP slot the sweep checks */
	double		 lim_now;	/* latest time a caller passed */
	/* Keyed hash: clients choose their addresses (a whole IPv6 /64), so
	 * they must not be able to aim for one probe chain. */
	unsigned char	 lim_key[crypto_shorthash_KEYBYTES];
};

static void *
limits_slot(const struct limits_table *t, size_t i)
{
	return (char *)t->lt_slots + i * t->lt_esize;
}

static struct limits_head *
limits_head(const struct limits_table *t, size_t i)
{
	return limits_slot(t, i);
}

static void
limits_table_init(struct limits_table *t, size_t esize,
    bool (*match)(const void *, const void *))
{
	memset(t, 0, sizeof(*t));
	t->lt_esize = esize;
	t->lt_match = match;
}

static size_t
limits_table_find(const struct limits_table *t, uint64_t hash,
    const void *key)
{
	size_t mask, i;
	struct limits_head *h;

	if (t->lt_size == 0)
		return SIZE_MAX;
	mask = t->lt_size - 1;
	for (i = (size_t)hash & mask;; i = (i + 1) & mask) {
		h = limits_head(t, i);
		if (!h->lh_used)
			return SIZE_MAX;
		if (h->lh_hash == hash && t->lt_match(h, key))
			return i;
	}
}

/* Place an entry whose key is known to be absent; the table has room. */
static void *
limits_table_place(struct limits_table *t, const void *entry)
{
	const struct limits_head *src = entry;
	size_t mask = t->lt_size - 1, i;
	void *slot;

	for (i = (size_t)src->lh_hash & mask; limits_head(t, i)->lh_used;
	    i = (i + 1) & mask)
		;
	slot = limits_slot(t, i);
	memcpy(slot, entry, t->lt_esize);
	t->lt_used++;
	return slot;
}

static int
limits_table_resize(struct limits_table *t, size_t size)
{
	struct limits_table old = *t;
	size_t i;

	if ((t->lt_slots = calloc(size, t->lt_esize)) == NULL) {
		*t = old;
		return -1;
	}
	t->lt_size = size;
	t->lt_used = 0;
	for (i = 0; i < old.lt_size; i++)
		if (limits_head(&old, i)->lh_used)
			limits_table_place(t, limits_slot(&old, i));
	free(old.lt_slots);
	return 0;
}

/* Copy entry (head filled in by the caller) into the table; returns the
 * slot, or NULL when out of memory. Slot pointers die on the next insert
 * or removal. */
static void *
limits_table_insert(struct limits_table *t, const void *entry)
{
	size_t size;

	if ((t->lt_used + 1) * 4 > t->lt_size * 3) {
		size = t->lt_size == 0 ? LIMITS_TABLE_MIN : t->lt_size * 2;
		if (limits_table_resize(t, size) == -1)
			return NULL;
	}
	return limits_table_place(t, entry);
}

/* Empty slot i and pull later entries of its probe chain back into the
 * hole. Never resizes, so callers may keep walking the slots. */
static void
limits_table_remove(struct limits_table *t, size_t i)
{
	size_t mask = t->lt_size - 1, j, home;
	struct limits_head *h;

	for (j = (i + 1) & mask;; j = (j + 1) & mask) {
		h = limits_head(t, j);
		if (!h->lh_used)
			break;
		home = (size_t)h->lh_hash & mask;
		/* j may move to i unless its home lies in (i, j]. */
		if (((j - home) & mask) >= ((j - i) & mask)) {
			memcpy(limits_slot(t, i), h, t->lt_esize);
			i = j;
		}
	}
	memset(limits_slot(t, i), 0, t->lt_esize);
	t->lt_used--;
}

/* Give memory back once entries are gone; failure only means we keep the
 * bigger table. */
static void
limits_table_shrink(struct limits_table *t)
{
	if (t->lt_used == 0) {
		free(t->lt_slots);
		t->lt_slots = NULL;
		t->lt_size = 0;
		return;
	}
	while (t->lt_size > LIMITS_TABLE_MIN && t->lt_used * 8 < t->lt_size)
		if (limits_table_resize(t, t->lt_size / 2) == -1)
			return;
}

static uint64_t
limits_hash(const struct limits *l, const void *data, size_t len)
{
	unsigned char out[crypto_shorthash_BYTES];
	uint64_t h;

	crypto_shorthash(out, data, len, l->lim_key);
	memcpy(&h, out, sizeof(h));
	return h;
}

static bool
limits_ip_match(const void *entry, const void *key)
{
	const struct limits_ip *e = entry;

	return memcmp(e->li_addr, key, sizeof(e->li_addr)) == 0;
}

static bool
limits_user_match(const void *entry, const void *key)
{
	const struct limits_user *e = entry;
	const struct limits_name *n = key;

	return e->lu_len == n->ln_len &&
	    memcmp(e->lu_name, n->ln_name, n->ln_len) == 0;
}

/* The table key for a client: the address only, never the port or scope;
 * false for a family we do not track. */
static bool
limits_ip_key(const struct sockaddr *sa, unsigned char key[16])
{
	const struct sockaddr_in *sin;
	const struct sockaddr_in6 *sin6;

	if (sa == NULL)
		return false;
	switch (sa->sa_family) {
	case AF_INET:
		sin = (const struct sockaddr_in *)(const void *)sa;
		memset(key, 0, 10);
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &sin->sin_addr, 4);
		return true;
	case AF_INET6:
		sin6 = (const struct sockaddr_in6 *)(const void *)sa;
		memcpy(key, &sin6->sin6_addr, 16);
		return true;
	default:
		return false;
	}
}

/* Drop a ban or failure window that has run out. */
static void
limits_ip_expire(const struct limits *l, struct limits_ip *e, double now)
{
	if (e->li_banned && now >= e->li_ban_until)
		e->li_banned = false;
	if (e->li_failures > 0 &&
	    now - e->li_window_start >= (double)l->lim_cfg.auth_window)
		e->li_failures = 0;
}

static bool
limits_ip_idle(const struct limits_ip *e)
{
	return e->li_count == 0 && !e->li_banned && e->li_failures == 0;
}

/* Expire slot i and forget it if nothing is left; true if removed. */
static bool
limits_ip_reap(struct limits *l, size_t i, double now)
{
	struct limits_ip *e = limits_slot(&l->lim_ips, i);

	limits_ip_expire(l, e, now);
	if (!limits_ip_idle(e))
		return false;
	limits_table_remove(&l->lim_ips, i);
	return true;
}

/* Bounded incremental expiry, so IPs that failed once and never came back
 * do not stay forever even without limits_expire(). */
static void
limits_ip_sweep(struct limits *l, double now)
{
	struct limits_table *t = &l->lim_ips;
	int n;

	if (t->lt_size == 0)
		return;
	for (n = 0; n < LIMITS_SWEEP_SLOTS; n++) {
		l->lim_sweep &= t->lt_size - 1;
		/* A removal pulls the next entry into this slot: look again. */
		if (!limits_head(t, l->lim_sweep)->lh_used ||
		    !limits_ip_reap(l, l->lim_sweep, now))
			l->lim_sweep++;
	}
	limits_table_shrink(t);
}

/* Remember the clock for calls that have none (leave). */
static void
limits_tick(struct limits *l, double now)
{
	if (now > l->lim_now)
		l->lim_now = now;
}

/* The entry for key, created empty when absent; NULL when out of memory. */
static struct limits_ip *
limits_ip_get(struct limits *l, const unsigned char key[16], double now)
{
	struct limits_ip fresh, *e;
	uint64_t hash = limits_hash(l, key, 16);
	size_t i;

	if ((i = limits_table_find(&l->lim_ips, hash, key)) != SIZE_MAX) {
		e = limits_slot(&l->lim_ips, i);
		limits_ip_expire(l, e, now);
		return e;
	}
	memset(&fresh, 0, sizeof(fresh));
	fresh.li_head.lh_hash = hash;
	fresh.li_head.lh_used = true;
	memcpy(fresh.li_addr, key, sizeof(fresh.li_addr));
	return limits_table_insert(&l->lim_ips, &fresh);
}

struct limits *
limits_create(void)
{
	struct limits *l;

	/* For the hash key; safe to call again after auth.c did. */
	if (sodium_init() < 0)
		return NULL;
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	limits_table_init(&l->lim_ips, sizeof(struct limits_ip),
	    limits_ip_match);
	limits_table_init(&l->lim_users, sizeof(struct limits_user),
	    limits_user_match);
	crypto_shorthash_keygen(l->lim_key);
	return l;
}

void
limits_destroy(struct limits *l)
{
	struct limits_user *u;
	size_t i;

	if (l == NULL)
		return;
	for (i = 0; i < l->lim_users.lt_size; i++) {
		u = limits_slot(&l->lim_users, i);
		if (u->lu_head.lh_used)
			free(u->lu_name);
	}
	free(l->lim_users.lt_slots);
	free(l->lim_ips.lt_slots);
	free(l);
}

void
limits_configure(struct limits *l, const struct limits_config *cfg)
{
	l->lim_cfg = *cfg;
}

enum limits_result
limits_client_enter(struct limits *l, const struct sockaddr *client,
    double now)
{
	unsigned char key[16];
	struct limits_ip *e;
	unsigned max = l->lim_cfg.max_per_client_ip;

	if (!limits_ip_key(client, key))
		return LIMITS_OK;	/* not an IP: nothing to count */
	limits_tick(l, now);
	limits_ip_sweep(l, now);
	/* Out of memory: refuse rather than admit a session we could not
	 * release exactly. */
	if ((e = limits_ip_get(l, key, now)) == NULL)
		return LIMITS_CLIENT_FULL;
	if (e->li_banned)
		return LIMITS_BANNED;
	/* A fresh entry never gets here (count 0 is below any max), so a
	 * refusal never leaves an empty entry behind. */
	if ((max > 0 && e->li_count >= max) || e->li_count == UINT_MAX)
		return LIMITS_CLIENT_FULL;
	e->li_count++;
	return LIMITS_OK;
}

void
limits_client_leave(struct limits *l, const struct sockaddr *client)
{
	unsigned char key[16];
	struct limits_ip *e;
	size_t i;

	if (!limits_ip_key(client, key))
		return;
	i = limits_table_find(&l->lim_ips, limits_hash(l, key, 16), key);
	if (i == SIZE_MAX)
		return;
	e = limits_slot(&l->lim_ips, i);
	if (e->li_count > 0)
		e->li_count--;
	if (limits_ip_reap(l, i, l->lim_now))
		limits_table_shrink(&l->lim_ips);
}

bool
limits_auth_failed(struct limits *l, const struct sockaddr *client,
    double now)
{
	unsigned char key[16];
	struct limits_ip *e;

	if (l->lim_cfg.auth_failures == 0 || !limits_ip_key(client, key))
		return false;
	limits_tick(l, now);
	limits_ip_sweep(l, now);
	if ((e = limits_ip_get(l, key, now)) == NULL)
		return false;
	/* Logins already under way when the ban began: it is running. */
	if (e->li_banned)
		return false;
	if (e->li_failures == 0)
		e->li_window_start = now;
	if (++e->li_failures < l->lim_cfg.auth_failures)
		return false;
	e->li_failures = 0;
	e->li_banned = true;
	e->li_ban_until = now + (double)l->lim_cfg.auth_ban;
	return true;
}

void
limits_expire(struct limits *l, double now)
{
	struct limits_table *t = &l->lim_ips;
	size_t i = 0;

	limits_tick(l, now);
	/* Removal shifts later entries back into slot i (or wraps entries
	 * from the start to the end, which only checks them twice). */
	while (i < t->lt_size)
		if (!limits_head(t, i)->lh_used || !limits_ip_reap(l, i, now))
			i++;
	limits_table_shrink(t);
}

static void
limits_name_init(struct limits_name *n, const char *user)
{
	n->ln_name = user;
	n->ln_len = strlen(user);
}

enum limits_result
limits_user_enter(struct limits *l, const char *user)
{
	struct limits_user fresh, *e;
	struct limits_name n;
	unsigned max = l->lim_cfg.max_per_user;
	uint64_t hash;
	size_t i;

	if (user == NULL)
		return LIMITS_OK;	/* no login, no user to count */
	limits_name_init(&n, user);
	hash = limits_hash(l, n.ln_name, n.ln_len);
	if ((i = limits_table_find(&l->lim_users, hash, &n)) != SIZE_MAX) {
		e = limits_slot(&l->lim_users, i);
		if ((max > 0 && e->lu_count >= max) || e->lu_count == UINT_MAX)
			return LIMITS_USER_FULL;
		e->lu_count++;
		return LIMITS_OK;
	}
	memset(&fresh, 0, sizeof(fresh));
	fresh.lu_head.lh_hash = hash;
	fresh.lu_head.lh_used = true;
	fresh.lu_len = n.ln_len;
	fresh.lu_count = 1;
	/* Out of memory: refuse, as for clients. */
	if ((fresh.lu_name = malloc(n.ln_len + 1)) == NULL)
		return LIMITS_USER_FULL;
	memcpy(fresh.lu_name, user, n.ln_len + 1);
	if (limits_table_insert(&l->lim_users, &fresh) == NULL) {
		free(fresh.lu_name);
		return LIMITS_USER_FULL;
	}
	return LIMITS_OK;
}

void
limits_user_leave(struct limits *l, const char *user)
{
	struct limits_user *e;
	struct limits_name n;
	size_t i;

	if (user == NULL)
		return;
	limits_name_init(&n, user);
	i = limits_table_find(&l->lim_users,
	    limits_hash(l, n.ln_name, n.ln_len), &n);
	if (i == SIZE_MAX)
		return;
	e = limits_slot(&l->lim_users, i);
	if (--e->lu_count > 0)
		return;
	free(e->lu_name);
	limits_table_remove(&l->lim_users, i);
	limits_table_shrink(&l->lim_users);
}

size_t
limits_tracked(const struct limits *l)
{
	return l->lim_ips.lt_used + l->lim_users.lt_used;
}
