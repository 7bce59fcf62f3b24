/*
 * Per-user counters (metrics_users.h): entries found by a hash of the
 * name, claimed with compare-and-swap so processes never need a lock,
 * and the check that keeps them to the users the config names.
 */
#include <inttypes.h>
#include <string.h>
#include <sys/mman.h>

#include "socks5d/log.h"
#include "socks5d/metrics_text.h"
#include "socks5d/metrics_users.h"
#include "socks5d/quota.h"
#include "socks5d/rules.h"

struct metrics_user {
	uint64_t key;                  /* 0: free */
	uint64_t sessions, up, down;
};

static struct metrics_user local_users[METRICS_USERS_MAX];
static struct metrics_user *users = local_users;

int
metrics_users_share(void)
{
	void *p = mmap(NULL, sizeof(local_users), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		log_warn("metrics: mmap");
		return -1;
	}
	users = p;
	return 0;
}

/* FNV-1a of the name; names come from the operator's config, not from
 * clients (only named users get an entry). 0 is kept for "free". */
static uint64_t
metrics_user_key(const char *user)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (const char *c = user; *c != '\0'; c++) {
		h ^= (unsigned char)*c;
		h *= 0x100000001b3ULL;
	}
	return h != 0 ? h : 1;
}

bool
metrics_users_named(const struct rules *rules, const struct quotas *quotas,
    const char *user)
{
	if (rules_name_user(rules, user))
		return true;
	for (size_t i = 0; i < quotas_count(quotas); i++) {
		const struct quota *q = quotas_at(quotas, i);

		for (size_t j = 0; j < quota_user_count(q); j++)
			if (strcmp(quota_user_at(q, j), user) == 0)
				return true;
	}
	return false;
}

static struct metrics_user *
metrics_user_find(uint64_t key, bool claim)
{
	for (size_t i = 0; i < METRICS_USERS_MAX; i++) {
		uint64_t k = __atomic_load_n(&users[i].key, __ATOMIC_ACQUIRE);

		if (k == key)
			return &users[i];
		if (k != 0)
			continue;
		if (!claim)
			return NULL;
		/* Another process may claim it first, for this key or
		 * another: look again at what it holds then. */
		if (__atomic_compare_exchange_n(&users[i].key, &k, key, false,
		    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE) || k == key)
			return &users[i];
	}
	return NULL;
}

struct metrics_user *
metrics_user_get(const char *user)
{
	return metrics_user_find(metrics_user_key(user), true);
}

void
metrics_user_count(struct metrics_user *u, uint64_t sessions, uint64_t up,
    uint64_t down)
{
	if (sessions != 0)
		__atomic_add_fetch(&u->sessions, sessions, __ATOMIC_RELAXED);
	if (up != 0)
		__atomic_add_fetch(&u->up, up, __ATOMIC_RELAXED);
	if (down != 0)
		__atomic_add_fetch(&u->down, down, __ATOMIC_RELAXED);
}

void
metrics_user_totals(const char *user, uint64_t *sessions, uint64_t *up,
    uint64_t *down)
{
	const struct metrics_user *u = metrics_user_find(
	    metrics_user_key(user), false);

	*sessions = *up = *down = 0;
	if (u == NULL)
		return;
	*sessions = __atomic_load_n(&u->sessions, __ATOMIC_RELAXED);
	*up = __atomic_load_n(&u->up, __ATOMIC_RELAXED);
	*down = __atomic_load_n(&u->down, __ATOMIC_RELAXED);
}

struct metrics_users_walk {
	struct metrics_out *out;
	size_t shown;
	int pass;                      /* 0 sessions, 1 bytes up, 2 down */
};

static bool
metrics_users_sample(const char *user, void *arg)
{
	struct metrics_users_walk *w = arg;
	uint64_t sessions, up, down;

	if (w->shown++ >= METRICS_USERS_MAX)
		return false;
	metrics_user_totals(user, &sessions, &up, &down);
	if (w->pass == 0) {
		metrics_printf(w->out, "socks5d_user_sessions_total{user=\"");
		metrics_print_value(w->out, user);
		metrics_printf(w->out, "\"} %" PRIu64 "\n", sessions);
		return true;
	}
	metrics_printf(w->out, "socks5d_user_bytes_total{user=\"");
	metrics_print_value(w->out, user);
	metrics_printf(w->out, "\",direction=\"%s\"} %" PRIu64 "\n",
	    w->pass == 1 ? "up" : "down", w->pass == 1 ? up : down);
	return true;
}

/* Every user rules name, then those only quotas name, each once. */
static void
metrics_users_walk(const struct rules *rules, const struct quotas *quotas,
    struct metrics_users_walk *w)
{
	w->shown = 0;
	rules_each_user(rules, metrics_users_sample, w);
	for (size_t i = 0; i < quotas_count(quotas); i++) {
		const struct quota *q = quotas_at(quotas, i);

		for (size_t j = 0; j < quota_user_count(q); j++) {
			const char *user = quota_user_at(q, j);
			bool seen = rules_name_user(rules, user);

			for (size_t k = 0; k <= i && !seen; k++) {
				const struct quota *p = quotas_at(quotas, k);

				for (size_t m = 0; m < quota_user_count(p) &&
				    (k < i || m < j) && !seen; m++)
					seen = strcmp(quota_user_at(p, m),
					    user) == 0;
			}
			if (!seen && !metrics_users_sample(user, w))
				return;
		}
	}
}

void
metrics_users_render(struct metrics_out *out, const struct rules *rules,
    const struct quotas *quotas, struct quota_table *table, int64_t now)
{
	struct metrics_users_walk w = { .out = out };
	struct quota_row row;

	metrics_family(out, "socks5d_user_sessions_total", "counter",
	    "Sessions ended, per user a rule or a quota names.");
	w.pass = 0;
	metrics_users_walk(rules, quotas, &w);
	metrics_family(out, "socks5d_user_bytes_total", "counter",
	    "Bytes relayed (UDP: payload), per user a rule or a quota "
	    "names, by direction (up: client to destination).");
	w.pass = 1;
	metrics_users_walk(rules, quotas, &w);
	w.pass = 2;
	metrics_users_walk(rules, quotas, &w);
	metrics_family(out, "socks5d_quota_limit_bytes", "gauge",
	    "Each [quota NAME]'s bytes per user and period.");
	for (size_t i = 0; i < quotas_count(quotas); i++) {
		metrics_printf(out, "socks5d_quota_limit_bytes{quota=\"");
		metrics_print_value(out, quota_name(quotas_at(quotas, i)));
		metrics_printf(out, "\"} %" PRIu64 "\n",
		    quota_bytes(quotas_at(quotas, i)));
	}
	metrics_family(out, "socks5d_quota_used_bytes", "gauge",
	    "Bytes used in the current period, per quota and user its user "
	    "key names.");
	for (size_t i = 0; table != NULL && i < quota_table_count(table) &&
	    i < METRICS_USERS_MAX * 4; i++) {
		const struct quota *q;
		bool named = false;

		if (quota_table_row(table, i, now, &row) == -1 ||
		    (q = quotas_find(quotas, row.quota)) == NULL)
			continue;
		for (size_t j = 0; j < quota_user_count(q) && !named; j++)
			named = strcmp(quota_user_at(q, j), row.user) == 0;
		if (!named)
			continue;
		metrics_printf(out, "socks5d_quota_used_bytes{quota=\"");
		metrics_print_value(out, row.quota);
		metrics_printf(out, "\",user=\"");
		metrics_print_value(out, row.user);
		metrics_printf(out, "\"} %" PRIu64 "\n", row.used);
	}
}
