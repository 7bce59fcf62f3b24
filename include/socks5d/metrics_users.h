/*
 * Per-user counters for /metrics, kept only for users a rule or a quota
 * names (so label cardinality is bounded by the config, and at most
 * METRICS_USERS_MAX). One table in memory every worker shares, counted
 * into with atomic adds.
 */
#ifndef SOCKS5D_METRICS_USERS_H
#define SOCKS5D_METRICS_USERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define METRICS_USERS_MAX 128

struct metrics_user;
struct rules;
struct quotas;

/* Before the workers fork: the table in shared memory (without, each
 * process counts in its own). 0, or -1 (logged). */
int metrics_users_share(void);

/* Is user one /metrics shows (named by a rule's or a quota's user key)? */
bool metrics_users_named(const struct rules *rules,
    const struct quotas *quotas, const char *user);
/* user's counters, made when new; NULL when the table is full. */
struct metrics_user *metrics_user_get(const char *user);
void metrics_user_count(struct metrics_user *u, uint64_t sessions,
    uint64_t up, uint64_t down);

/* The per-user and per-quota families: every user rules or quotas name
 * (at most METRICS_USERS_MAX), and each quota's limit and its named
 * users' use from table (NULL: none). */
struct metrics_out;
struct quota_table;
void metrics_users_render(struct metrics_out *out, const struct rules *rules,
    const struct quotas *quotas, struct quota_table *table, int64_t now);

/* Totals of user (zeros when never counted). */
void metrics_user_totals(const char *user, uint64_t *sessions, uint64_t *up,
    uint64_t *down);

#endif
