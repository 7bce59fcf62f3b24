/*
 * Quotas: building "[quota NAME]" sections key by key, matching users,
 * and numbering calendar periods and rolling buckets (the usage table is
 * quota_table.c's).
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>

#include "socks5d/quota.h"
#include "socks5d/rules.h"
#include "socks5d/size.h"
#include "socks5d/text.h"
#include "socks5d/why.h"

struct quota {
	char			*q_name;
	uint64_t		 q_bytes;	/* 0: not set */
	struct quota_period	 q_period;
	char			**q_users;	/* none: every user */
	size_t			 q_nusers;
};

struct quotas {
	struct quota		**qs_v;
	size_t			 qs_n;
};

/* ---- periods ---- */

#define QUOTA_DAY	INT64_C(86400)
/* 1970-01-01 was a Thursday: weeks count from Monday 1969-12-29. */
#define QUOTA_MONDAY	(3 * QUOTA_DAY)

static int64_t
quota_div(int64_t a, int64_t b)
{
	return a / b - (a % b < 0);	/* floor, for b > 0 */
}

static int64_t
quota_mod(int64_t a, int64_t b)
{
	return a - quota_div(a, b) * b;
}

/* Days since 1970-01-01 to year y, month m (1-12), day 1 (H. Hinnant's
 * days_from_civil). */
static int64_t
quota_days(int64_t y, unsigned m)
{
	int64_t era, yoe, doy;

	y -= m <= 2;
	era = quota_div(y, 400);
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5;
	return era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
}

/* Months since January 1970 holding day `days` (civil_from_days). */
static int64_t
quota_month(int64_t days)
{
	int64_t era, doe, yoe, doy, mp, y, m;

	days += 719468;
	era = quota_div(days, 146097);
	doe = days - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	m = mp < 10 ? mp + 3 : mp - 9;
	y = yoe + era * 400 + (m <= 2);
	return (y - 1970) * 12 + m - 1;
}

int64_t
quota_period_index(const struct quota_period *p, int64_t now)
{
	switch (p->kind) {
	case QUOTA_PERIOD_DAY:
		return quota_div(now, QUOTA_DAY);
	case QUOTA_PERIOD_WEEK:
		return quota_div(now + QUOTA_MONDAY, 7 * QUOTA_DAY);
	case QUOTA_PERIOD_MONTH:
		return quota_month(quota_div(now, QUOTA_DAY));
	case QUOTA_PERIOD_ROLLING:
		return quota_div(now * QUOTA_BUCKETS, p->seconds);
	default:
		return 0;
	}
}

int64_t
quota_period_index_start(const struct quota_period *p, int64_t index)
{
	switch (p->kind) {
	case QUOTA_PERIOD_DAY:
		return index * QUOTA_DAY;
	case QUOTA_PERIOD_WEEK:
		return index * 7 * QUOTA_DAY - QUOTA_MONDAY;
	case QUOTA_PERIOD_MONTH:
		return quota_days(1970 + quota_div(index, 12),
		    (unsigned)quota_mod(index, 12) + 1) * QUOTA_DAY;
	case QUOTA_PERIOD_ROLLING:
		/* Buckets need not be whole seconds: round up to the first
		 * second whose index is this one. */
		return -quota_div(-index * p->seconds, QUOTA_BUCKETS);
	default:
		return 0;
	}
}

size_t
quota_period_buckets(const struct quota_period *p)
{
	return p->kind == QUOTA_PERIOD_ROLLING ? QUOTA_BUCKETS : 1;
}

int64_t
quota_period_start(const struct quota_period *p, int64_t now)
{
	return quota_period_index_start(p,
	    quota_period_index(p, now) - (int64_t)quota_period_buckets(p) + 1);
}

int64_t
quota_period_end(const struct quota_period *p, int64_t now)
{
	return quota_period_index_start(p, quota_period_index(p, now) + 1);
}

static const struct {
	const char *name;
	int64_t seconds;
} quota_units[] = {
	{ "s", 1 }, { "second", 1 }, { "seconds", 1 },
	{ "m", 60 }, { "minute", 60 }, { "minutes", 60 },
	{ "h", 3600 }, { "hour", 3600 }, { "hours", 3600 },
	{ "d", QUOTA_DAY }, { "day", QUOTA_DAY }, { "days", QUOTA_DAY },
};

static int
quota_period_rolling(const char *s, struct quota_period *out)
{
	int64_t n = 0;

	if (!isdigit((unsigned char)*s))
		return -1;
	for (; isdigit((unsigned char)*s); s++)
		if ((n = n * 10 + (*s - '0')) > QUOTA_ROLLING_MAX)
			return -1;
	while (*s == ' ' || *s == '\t')
		s++;
	for (size_t i = 0; i < sizeof(quota_units) / sizeof(*quota_units);
	    i++) {
		if (strcasecmp(s, quota_units[i].name) != 0)
			continue;
		if (n == 0 || n > QUOTA_ROLLING_MAX / quota_units[i].seconds)
			return -1;
		out->kind = QUOTA_PERIOD_ROLLING;
		out->seconds = n * quota_units[i].seconds;
		return 0;
	}
	return -1;
}

int
quota_period_parse(const char *s, struct quota_period *out)
{
	static const char *const names[] = { "day", "week", "month" };

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++)
		if (strcasecmp(s, names[i]) == 0) {
			out->kind = (enum quota_period_kind)
			    (QUOTA_PERIOD_DAY + (int)i);
			return 0;
		}
	if (strncasecmp(s, "rolling:", 8) != 0)
		return -1;
	s += 8;
	while (*s == ' ' || *s == '\t')
		s++;
	return quota_period_rolling(s, out);
}

void
quota_period_format(const struct quota_period *p, char *buf, size_t len)
{
	static const char *const names[] = { "unset", "day", "week", "month" };

	if (p->kind == QUOTA_PERIOD_ROLLING)
		snprintf(buf, len, "rolling:%llds", (long long)p->seconds);
	else
		snprintf(buf, len, "%s", names[p->kind]);
}

bool
quota_period_equal(const struct quota_period *a,
    const struct quota_period *b)
{
	return a->kind == b->kind && (a->kind != QUOTA_PERIOD_ROLLING ||
	    a->seconds == b->seconds);
}

/* ---- definitions ---- */

static int
quota_add_user(struct quota *q, const char *user, char *why, size_t whylen)
{
	char **v;

	if (*user == '\0')
		return why_set(why, whylen, "empty item in the user list");
	if (strlen(user) > QUOTA_USER_MAX)
		return why_set(why, whylen, "user \"%.32s...\" is longer "
		    "than %d bytes", user, QUOTA_USER_MAX);
	v = reallocarray(q->q_users, q->q_nusers + 1, sizeof(*v));
	if (v == NULL)
		return why_set(why, whylen, "out of memory");
	q->q_users = v;
	if ((v[q->q_nusers] = strdup(user)) == NULL)
		return why_set(why, whylen, "out of memory");
	q->q_nusers++;
	return 0;
}

/* An empty value adds nothing: "every user" is the default anyway. */
static int
quota_set_users(struct quota *q, char *v, char *why, size_t whylen)
{
	char *item;
	int rc = 0;

	if (*v == '\0')
		return 0;
	while (rc == 0 && v != NULL) {
		item = v;
		if ((v = strchr(v, ',')) != NULL)
			*v++ = '\0';
		rc = quota_add_user(q, text_trim(item), why, whylen);
	}
	return rc;
}

static int
quota_set_value(struct quota *q, const char *key, char *v, char *why,
    size_t whylen)
{
	uint64_t n;

	if (strcmp(key, "user") == 0)
		return quota_set_users(q, v, why, whylen);
	if (strcmp(key, "bytes") == 0) {
		if (size_parse(v, &n) == -1)
			return why_set(why, whylen, "bad size \"%.32s\"", v);
		if (n == 0)
			return why_set(why, whylen, "bytes must be more "
			    "than 0");
		if (n > QUOTA_BYTES_MAX)
			return why_set(why, whylen, "\"%.32s\" is more than "
			    "a quota can count (4095T)", v);
		q->q_bytes = n;
		return 0;
	}
	if (strcmp(key, "period") == 0) {
		if (quota_period_parse(v, &q->q_period) == 0)
			return 0;
		return why_set(why, whylen, "bad period \"%.40s\" (day, "
		    "week, month or rolling:N with s, m, h or d, at most "
		    "3650 days)", v);
	}
	return why_set(why, whylen, "unknown key");
}

int
quota_set(struct quota *q, const char *key, const char *value, char *why,
    size_t whylen)
{
	char *copy;
	int rc;

	if ((copy = strdup(value)) == NULL)
		return why_set(why, whylen, "out of memory");
	rc = quota_set_value(q, key, text_trim(copy), why, whylen);
	free(copy);
	return rc;
}

bool
quota_complete(const struct quota *q, char *why, size_t whylen)
{
	if (q->q_bytes == 0)
		why_set(why, whylen, "bytes is missing");
	else if (q->q_period.kind == QUOTA_PERIOD_UNSET)
		why_set(why, whylen, "period is missing");
	else
		return true;
	return false;
}

/* Named as rules are. */
bool
quotas_name_valid(const char *name)
{
	return rules_name_valid(name);
}

struct quotas *
quotas_new(void)
{
	return calloc(1, sizeof(struct quotas));
}

void
quotas_free(struct quotas *qs)
{
	struct quota *q;

	if (qs == NULL)
		return;
	for (size_t i = 0; i < qs->qs_n; i++) {
		q = qs->qs_v[i];
		for (size_t j = 0; j < q->q_nusers; j++)
			free(q->q_users[j]);
		free(q->q_users);
		free(q->q_name);
		free(q);
	}
	free(qs->qs_v);
	free(qs);
}

struct quota *
quotas_add(struct quotas *qs, const char *name)
{
	struct quota **v, *q;

	if ((v = reallocarray(qs->qs_v, qs->qs_n + 1, sizeof(*v))) == NULL)
		return NULL;
	qs->qs_v = v;
	if ((q = calloc(1, sizeof(*q))) == NULL)
		return NULL;
	if ((q->q_name = strdup(name)) == NULL) {
		free(q);
		return NULL;
	}
	return v[qs->qs_n++] = q;
}

struct quota *
quotas_find(const struct quotas *qs, const char *name)
{
	for (size_t i = 0; qs != NULL && i < qs->qs_n; i++)
		if (strcmp(qs->qs_v[i]->q_name, name) == 0)
			return qs->qs_v[i];
	return NULL;
}

size_t
quotas_count(const struct quotas *qs)
{
	return qs == NULL ? 0 : qs->qs_n;
}

const struct quota *
quotas_at(const struct quotas *qs, size_t i)
{
	return i < quotas_count(qs) ? qs->qs_v[i] : NULL;
}

const char *
quota_name(const struct quota *q)
{
	return q->q_name;
}

uint64_t
quota_bytes(const struct quota *q)
{
	return q->q_bytes;
}

const struct quota_period *
quota_period(const struct quota *q)
{
	return &q->q_period;
}

size_t
quota_user_count(const struct quota *q)
{
	return q->q_nusers;
}

const char *
quota_user_at(const struct quota *q, size_t i)
{
	return i < q->q_nusers ? q->q_users[i] : NULL;
}

bool
quota_applies(const struct quota *q, const char *user)
{
	if (user == NULL)
		return false;
	if (q->q_nusers == 0)
		return true;
	for (size_t i = 0; i < q->q_nusers; i++)
		if (strcmp(q->q_users[i], user) == 0)
			return true;
	return false;
}

size_t
quotas_for_user(const struct quotas *qs, const char *user,
    const struct quota **out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < quotas_count(qs); i++)
		if (quota_applies(qs->qs_v[i], user)) {
			if (n < max)
				out[n] = qs->qs_v[i];
			n++;
		}
	return n;
}
