/*
 * Sessions meet their users' quotas here: the quotas that apply are found
 * once per session, a request is refused while one is used up, the bytes
 * the session moves are counted into the shared table, and the session
 * that uses one up ends.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "socks5d/log.h"
#include "socks5d/metrics.h"
#include "socks5d/policy.h"
#include "socks5d/quota_service.h"
#include "socks5d/session.h"

/* Quotas counted for one session; more that apply are not counted (and
 * said so once). */
#define POLICY_QUOTAS_MAX 4

/* A copy of what the session needs of each quota: a reload may free the
 * definitions while the session runs on. */
struct session_quota {
	struct quota_usage *use;
	struct quota_period period;
	uint64_t bytes;
	char name[QUOTA_NAME_MAX + 1];
};

static struct log_ratelimit quota_log, quota_full_log;

/* Find the quotas that apply to the session's user, once. false when
 * memory is out. */
static bool
policy_quota_attach(struct session *s)
{
	const struct quota *found[POLICY_QUOTAS_MAX];
	struct quota_table *table = quota_service_table();
	size_t n, kept = 0;
	unsigned long covered;

	if (s->quotas != NULL || s->user == NULL || table == NULL)
		return true;
	n = quotas_for_user(s->srv->cfg->quotas, s->user, found,
	    POLICY_QUOTAS_MAX);
	if (n == 0)
		return true;
	if (n > POLICY_QUOTAS_MAX)
		log_warnx("quota: user %s matches %zu [quota] sections; the "
		    "first %d count", s->user, n, POLICY_QUOTAS_MAX);
	if (n > POLICY_QUOTAS_MAX)
		n = POLICY_QUOTAS_MAX;
	if ((s->quotas = calloc(n, sizeof(*s->quotas))) == NULL)
		return false;
	for (size_t i = 0; i < n; i++) {
		struct session_quota *sq = &s->quotas[kept];

		if ((sq->use = quota_table_get(table, found[i],
		    s->user)) == NULL) {
			if (log_ratelimit_pass(&quota_full_log,
			    ev_now(s->srv->loop), 60., &covered))
				log_warnx("quota: usage table full; user %s "
				    "is not counted for %s", s->user,
				    quota_name(found[i]));
			continue;
		}
		sq->period = *quota_period(found[i]);
		sq->bytes = quota_bytes(found[i]);
		snprintf(sq->name, sizeof(sq->name), "%s",
		    quota_name(found[i]));
		kept++;
	}
	s->nquotas = (uint8_t)kept;
	return true;
}

/* The first of the session's quotas that is used up, or NULL. */
static const struct session_quota *
policy_quota_spent(const struct session *s)
{
	for (size_t i = 0; i < s->nquotas; i++)
		if (quota_usage_used(s->quotas[i].use) >= s->quotas[i].bytes)
			return &s->quotas[i];
	return NULL;
}

/* Name the quota in the access log's rule= field. */
static void
policy_quota_record(struct session *s, const struct session_quota *sq)
{
	char rule[sizeof(sq->name) + 8];

	snprintf(rule, sizeof(rule), "quota:%s", sq->name);
	free(s->rule);
	s->rule = strdup(rule);
}

bool
policy_quota_admit(struct session *s)
{
	const struct session_quota *sq;
	unsigned long covered;

	if (!policy_quota_attach(s)) {
		log_warnx("quota: out of memory");
		return false;
	}
	if ((sq = policy_quota_spent(s)) == NULL)
		return true;
	metrics_count_refused(METRICS_REFUSED_QUOTA);
	policy_quota_record(s, sq);
	if (log_ratelimit_pass(&quota_log, ev_now(s->srv->loop), 1.,
	    &covered))
		log_warnx("quota %s used up: user %s refused (%lu refusal(s) "
		    "in the last second)", sq->name, s->user, covered);
	return false;
}

const char *
policy_quota_count(struct session *s, uint64_t bytes)
{
	int64_t now = (int64_t)ev_now(s->srv->loop);
	const struct session_quota *sq;

	for (size_t i = 0; i < s->nquotas; i++) {
		struct session_quota *q = &s->quotas[i];

		quota_usage_add_index(q->use, &q->period,
		    quota_period_index(&q->period, now), bytes);
	}
	if ((sq = policy_quota_spent(s)) == NULL)
		return NULL;
	policy_quota_record(s, sq);
	return "quota";
}

bool
policy_quota_exhausted(struct session *s)
{
	const struct session_quota *sq = policy_quota_spent(s);

	if (sq == NULL)
		return false;
	policy_quota_record(s, sq);
	return true;
}

void
policy_quota_release(struct session *s)
{
	free(s->quotas);
	s->quotas = NULL;
	s->nquotas = 0;
}
