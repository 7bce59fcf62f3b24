/*
 * Unit tests for quotas: size and key parsing, calendar and rolling period
 * arithmetic, the shared usage table (expiry, fork, reset, full), the state
 * file (round trip, corruption, what is dropped) and the writer thread.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "socks5d/quota.h"
#include "socks5d/size.h"

#define T_2024_02_29	INT64_C(1709164800)	/* a Thursday */
#define T_DAY		INT64_C(86400)

static uint64_t
test_size(const char *s)
{
	uint64_t v = 12345;

	assert_int_equal(size_parse(s, &v), 0);
	return v;
}

static void
test_size_parse(void **state)
{
	static const char *const bad[] = { "", "K", "-1", "+1", " 1", "1 ",
	    "10MB", "1.5G", "1KK", "0x10", "18446744073709551616",
	    "16777216T", "99999999999999999999" };
	uint64_t v = 7;

	(void)state;
	assert_int_equal(test_size("0"), 0);
	assert_int_equal(test_size("1500"), 1500);
	assert_int_equal(test_size("10K"), 10240);
	assert_int_equal(test_size("2m"), 2 * 1048576);
	assert_int_equal(test_size("3G"), UINT64_C(3) << 30);
	assert_int_equal(test_size("1t"), UINT64_C(1) << 40);
	assert_int_equal(test_size("16777215T"), UINT64_C(16777215) << 40);
	assert_true(test_size("18446744073709551615") == UINT64_MAX);
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		assert_int_equal(size_parse(bad[i], &v), -1);
		assert_int_equal(v, 7);		/* untouched on failure */
	}
}

/* A quota with the given keys set; fails the test on any error. */
static struct quota *
test_quota(struct quotas *qs, const char *name, const char *bytes,
    const char *period, const char *users)
{
	struct quota *q = quotas_add(qs, name);
	char why[128] = "";

	assert_non_null(q);
	assert_int_equal(quota_set(q, "bytes", bytes, why, sizeof(why)), 0);
	assert_int_equal(quota_set(q, "period", period, why, sizeof(why)), 0);
	if (users != NULL)
		assert_int_equal(quota_set(q, "user", users, why, sizeof(why)),
		    0);
	assert_true(quota_complete(q, why, sizeof(why)));
	return q;
}

static void
test_set_good(void **state)
{
	static const struct {
		const char *text;
		enum quota_period_kind kind;
		int64_t seconds;
	} periods[] = {
		{ "day", QUOTA_PERIOD_DAY, 0 },
		{ "WEEK", QUOTA_PERIOD_WEEK, 0 },
		{ " month ", QUOTA_PERIOD_MONTH, 0 },
		{ "rolling:10s", QUOTA_PERIOD_ROLLING, 10 },
		{ "rolling:30 days", QUOTA_PERIOD_ROLLING, 30 * T_DAY },
		{ "Rolling:5 Minutes", QUOTA_PERIOD_ROLLING, 300 },
		{ "rolling: 2h", QUOTA_PERIOD_ROLLING, 7200 },
		{ "rolling:1hour", QUOTA_PERIOD_ROLLING, 3600 },
		{ "rolling:3650d", QUOTA_PERIOD_ROLLING, 3650 * T_DAY },
	};
	struct quotas *qs = quotas_new();
	struct quota *q = quotas_add(qs, "q");
	char why[128];

	(void)state;
	assert_false(quota_complete(q, why, sizeof(why)));
	assert_string_equal(why, "bytes is missing");
	assert_int_equal(quota_set(q, "bytes", " 10G ", why, sizeof(why)), 0);
	assert_true(quota_bytes(q) == UINT64_C(10) << 30);
	assert_false(quota_complete(q, why, sizeof(why)));
	assert_string_equal(why, "period is missing");
	for (size_t i = 0; i < sizeof(periods) / sizeof(*periods); i++) {
		assert_int_equal(quota_set(q, "period", periods[i].text, why,
		    sizeof(why)), 0);
		assert_int_equal(quota_period(q)->kind, periods[i].kind);
		if (periods[i].kind == QUOTA_PERIOD_ROLLING)
			assert_int_equal(quota_period(q)->seconds,
			    periods[i].seconds);
	}
	assert_true(quota_complete(q, why, sizeof(why)));
	/* No user yet: everyone logged in; an empty value changes nothing. */
	assert_true(quota_applies(q, "anyone"));
	assert_false(quota_applies(q, NULL));
	assert_int_equal(quota_set(q, "user", "", why, sizeof(why)), 0);
	assert_true(quota_applies(q, "anyone"));
	assert_int_equal(quota_set(q, "user", "alice, bob", why, sizeof(why)),
	    0);
	assert_int_equal(quota_set(q, "user", "carol", why, sizeof(why)), 0);
	assert_true(quota_applies(q, "bob"));
	assert_true(quota_applies(q, "carol"));
	assert_false(quota_applies(q, "anyone"));
	assert_false(quota_applies(q, "Alice"));
	quotas_free(qs);
}

static void
test_set_bad(void **state)
{
	static const struct {
		const char *key, *value, *why;
	} cases[] = {
		{ "bytes", "12Q", "bad size \"12Q\"" },
		{ "bytes", "-5", "bad size \"-5\"" },
		{ "bytes", "", "bad size \"\"" },
		{ "bytes", "0", "bytes must be more than 0" },
		{ "bytes", "4096T", "\"4096T\" is more than a quota can count "
		    "(4095T)" },
		{ "period", "fortnight", "bad period \"fortnight\" (day, week, "
		    "month or rolling:N with s, m, h or d, at most 3650 "
		    "days)" },
		{ "period", "rolling:10", NULL },
		{ "period", "rolling:0s", NULL },
		{ "period", "rolling:3651d", NULL },
		{ "period", "rolling:xs", NULL }, { "period", "daily", NULL },
		{ "period", "rolling:5 weeks", NULL },
		{ "user", "alice,,bob", "empty item in the user list" },
		{ "user", "alice,", "empty item in the user list" },
		{ "colour", "red", "unknown key" },
	};
	struct quotas *qs = quotas_new();
	struct quota *q = quotas_add(qs, "q");
	char why[256], long_user[300];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		why[0] = '\0';
		assert_int_equal(quota_set(q, cases[i].key, cases[i].value,
		    why, sizeof(why)), -1);
		if (cases[i].why != NULL)
			assert_string_equal(why, cases[i].why);
		else
			assert_non_null(strstr(why, "bad period"));
	}
	memset(long_user, 'u', 256);
	long_user[256] = '\0';
	assert_int_equal(quota_set(q, "user", long_user, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "longer than 255 bytes"));
	/* Nothing bad was kept. */
	assert_int_equal(quota_bytes(q), 0);
	assert_int_equal(quota_period(q)->kind, QUOTA_PERIOD_UNSET);
	quotas_free(qs);
}

static void
test_definitions(void **state)
{
	struct quotas *qs = quotas_new();
	const struct quota *out[2];
	char name[70];

	(void)state;
	assert_true(quotas_name_valid("monthly-10G_v1.2"));
	assert_false(quotas_name_valid(""));
	assert_false(quotas_name_valid("has space"));
	assert_false(quotas_name_valid("a/b"));
	memset(name, 'n', 64);
	name[64] = '\0';
	assert_true(quotas_name_valid(name));
	name[64] = 'n';
	name[65] = '\0';
	assert_false(quotas_name_valid(name));

	test_quota(qs, "all", "1G", "day", NULL);
	test_quota(qs, "staff", "1G", "week", "alice,bob");
	test_quota(qs, "bob", "1G", "month", "bob");
	assert_int_equal(quotas_count(qs), 3);
	assert_string_equal(quota_name(quotas_at(qs, 1)), "staff");
	assert_null(quotas_at(qs, 3));
	assert_ptr_equal(quotas_find(qs, "bob"), quotas_at(qs, 2));
	assert_null(quotas_find(qs, "nobody"));
	assert_null(quotas_find(NULL, "bob"));
	/* All three apply to bob; only two fit in out. */
	assert_int_equal(quotas_for_user(qs, "bob", out, 2), 3);
	assert_string_equal(quota_name(out[0]), "all");
	assert_string_equal(quota_name(out[1]), "staff");
	assert_int_equal(quotas_for_user(qs, "carol", out, 2), 1);
	assert_ptr_equal(out[0], quotas_at(qs, 0));
	assert_int_equal(quotas_for_user(qs, NULL, out, 2), 0);
	quotas_free(qs);
}

/* Check period start and end for p at now. */
static void
test_bounds(const char *period, int64_t now, int64_t start, int64_t end)
{
	struct quota_period p;

	assert_int_equal(quota_period_parse(period, &p), 0);
	assert_int_equal(quota_period_start(&p, now), start);
	assert_int_equal(quota_period_end(&p, now), end);
}

static void
test_period_calendar(void **state)
{
	(void)state;
	/* Days: midnight UTC belongs to the day it starts. */
	test_bounds("day", T_2024_02_29 + 43200, T_2024_02_29,
	    T_2024_02_29 + T_DAY);
	test_bounds("day", T_2024_02_29, T_2024_02_29, T_2024_02_29 + T_DAY);
	test_bounds("day", T_2024_02_29 - 1, T_2024_02_29 - T_DAY,
	    T_2024_02_29);
	test_bounds("day", -1, -T_DAY, 0);
	/* Weeks start on Monday: 1970-01-01 was a Thursday. */
	test_bounds("week", 0, -3 * T_DAY, 4 * T_DAY);
	test_bounds("week", 1704067200, 1704067200, 1704672000);
	test_bounds("week", 1704067199, 1703462400, 1704067200);
	test_bounds("week", 1735689600, 1735516800, 1736121600);
	test_bounds("week", T_2024_02_29, 1708905600, 1709510400);
	/* Months, leap days and year ends. */
	test_bounds("month", 1709251199, 1706745600, 1709251200);
	test_bounds("month", 1709251200, 1709251200, 1711929600);
	test_bounds("month", 1677542400, 1675209600, 1677628800);
	test_bounds("month", 951782400, 949363200, 951868800);	/* 2000 */
	test_bounds("month", 4107456000, 4105123200, 4107542400); /* 2100 */
	test_bounds("month", -2203977600, -2206310400, -2203891200); /* 1900 */
	test_bounds("month", 1704067199, 1701388800, 1704067200);
	test_bounds("month", 1704067200, 1704067200, 1706745600);
	test_bounds("month", 0, 0, 31 * T_DAY);
	test_bounds("month", -1, -31 * T_DAY, 0);
}

static void
test_period_rolling(void **state)
{
	struct quota_period p;

	(void)state;
	/* 3200 s: buckets of 100 s, the window the current one and 31 more. */
	assert_int_equal(quota_period_parse("rolling:3200s", &p), 0);
	assert_int_equal(quota_period_index(&p, 1000), 10);
	assert_int_equal(quota_period_index(&p, 1099), 10);
	assert_int_equal(quota_period_index(&p, -1), -1);
	assert_int_equal(quota_period_index_start(&p, 10), 1000);
	test_bounds("rolling:3200s", 1050, -2100, 1100);
	/* 10 s: buckets of 0.3125 s start at the next whole second. */
	assert_int_equal(quota_period_parse("rolling:10s", &p), 0);
	assert_int_equal(quota_period_index(&p, 1), 3);
	assert_int_equal(quota_period_index(&p, 2), 6);
	assert_int_equal(quota_period_index_start(&p, 3), 1);
	assert_int_equal(quota_period_index_start(&p, 4), 2);
	assert_int_equal(quota_period_index_start(&p, -4), -1);
}

static void
test_table_calendar(void **state)
{
	struct quotas *qs = quotas_new();
	struct quota *q = test_quota(qs, "daily", "1000", "day", NULL);
	struct quota_table *t = quota_table_create(16);
	struct quota_usage *u;
	struct quota_row row;

	(void)state;
	assert_non_null(t);
	assert_non_null(u = quota_table_get(t, q, "alice"));
	assert_ptr_equal(quota_table_get(t, q, "alice"), u);
	assert_false(quota_table_take_changed(t));
	quota_usage_add(u, q, 600, T_2024_02_29 + 10);
	assert_true(quota_table_take_changed(t));
	assert_false(quota_usage_over(u, q));
	quota_usage_add(u, q, 400, T_2024_02_29 + 20);
	assert_int_equal(quota_usage_used(u), 1000);
	assert_true(quota_usage_over(u, q));
	/* Still the same day: the tick keeps it. */
	quota_table_tick(t, qs, T_2024_02_29 + T_DAY - 1);
	assert_int_equal(quota_usage_used(u), 1000);
	assert_int_equal(quota_table_row(t, 0, T_2024_02_29, &row), 0);
	assert_string_equal(row.user, "alice");
	assert_int_equal(row.start, T_2024_02_29);
	assert_int_equal(row.used, 1000);
	/* The next day starts from zero, at the tick... */
	quota_table_tick(t, qs, T_2024_02_29 + T_DAY);
	assert_int_equal(quota_usage_used(u), 0);
	/* ...or at the first add of the new day, before any tick. */
	quota_usage_add(u, q, 700, T_2024_02_29 + T_DAY);
	quota_usage_add(u, q, 5, T_2024_02_29 + 2 * T_DAY);
	assert_int_equal(quota_usage_used(u), 5);
	/* A late add for the day before goes to the newer period. */
	quota_usage_add(u, q, 3, T_2024_02_29 + T_DAY);
	assert_int_equal(quota_usage_used(u), 8);
	/* A listing after the period ended shows 0 even before a tick. */
	assert_int_equal(quota_table_row(t, 0, T_2024_02_29 + 3 * T_DAY,
	    &row), 0);
	assert_int_equal(row.used, 0);
	assert_int_equal(row.start, T_2024_02_29 + 3 * T_DAY);
	assert_int_equal(quota_table_row(t, 1, T_2024_02_29, &row), -1);
	quota_table_destroy(t);
	quotas_free(qs);
}

static void
test_table_rolling(void **state)
{
	struct quotas *qs = quotas_new();
	struct quota *q = test_quota(qs, "r", "1G", "rolling:3200s", NULL);
	struct quota_table *t = quota_table_create(16);
	struct quota_usage *u = quota_table_get(t, q, "bob");
	struct quota_row row;

	(void)state;
	assert_non_null(u);
	quota_usage_add(u, q, 100, 0);		/* bucket 0 */
	quota_usage_add(u, q, 200, 1000);	/* bucket 10 */
	quota_usage_add(u, q, 300, 3000);	/* bucket 30 */
	quota_table_tick(t, qs, 3199);		/* window 0..31 */
	assert_int_equal(quota_usage_used(u), 600);
	assert_int_equal(quota_table_row(t, 0, 3199, &row), 0);
	assert_int_equal(row.nbuckets, QUOTA_BUCKETS);
	assert_int_equal(row.bucket[0].index, 0);
	assert_int_equal(row.bucket[0].bytes, 100);
	assert_int_equal(row.bucket[10].bytes, 200);
	assert_int_equal(row.bucket[31].index, 31);
	assert_int_equal(row.used, 600);
	quota_table_tick(t, qs, 3200);		/* window 1..32 */
	assert_int_equal(quota_usage_used(u), 500);
	quota_table_tick(t, qs, 4199);		/* window 10..41 */
	assert_int_equal(quota_usage_used(u), 500);
	quota_table_tick(t, qs, 4200);		/* window 11..42 */
	assert_int_equal(quota_usage_used(u), 300);
	/* Bucket 62 shares bucket 30's slot: the add displaces it exactly. */
	quota_usage_add(u, q, 7, 6200);
	assert_int_equal(quota_usage_used(u), 7);
	quota_table_tick(t, qs, 9400);		/* window 63..94 */
	assert_int_equal(quota_usage_used(u), 0);
	quota_table_destroy(t);
	quotas_free(qs);
}

/* A worker a little ahead of the owner's clock: the owner's tick must not
 * clear the new bucket, and a worker a little behind adds to it. */
static void
test_table_rolling_skew(void **state)
{
	struct quotas *qs = quotas_new();
	struct quota *q = test_quota(qs, "r", "1G", "rolling:3200s", NULL);
	struct quota_table *t = quota_table_create(16);
	struct quota_usage *u = quota_table_get(t, q, "bob");

	(void)state;
	quota_usage_add(u, q, 100, 0);		/* bucket 0, slot 0 */
	quota_usage_add(u, q, 50, 3200);	/* bucket 32, slot 0 */
	assert_int_equal(quota_usage_used(u), 50);
	quota_table_tick(t, qs, 3199);		/* slot 0 should hold 0 */
	assert_int_equal(quota_usage_used(u), 50);
	quota_usage_add(u, q, 25, 0);		/* into bucket 32 */
	assert_int_equal(quota_usage_used(u), 75);
	quota_table_tick(t, qs, 3200);
	assert_int_equal(quota_usage_used(u), 75);
	/* A period change restarts the count. */
	assert_int_equal(quota_set(q, "period", "day", NULL, 0), 0);
	quota_table_tick(t, qs, 3200);
	assert_int_equal(quota_usage_used(u), 0);
	quota_table_destroy(t);
	quotas_free(qs);
}

static void
test_table_fork(void **state)
{
	struct quotas *qs = quotas_new();
	struct quota *q = test_quota(qs, "daily", "1G", "day", NULL);
	struct quota_table *t = quota_table_create(64);
	struct quota_usage *a = quota_table_get(t, q, "alice");
	int status;
	pid_t pid;

	(void)state;
	quota_usage_add(a, q, 1, T_2024_02_29);
	assert_true(quota_table_take_changed(t));
	if ((pid = fork()) == 0) {
		struct quota_usage *c = quota_table_get(t, q, "carol");

		for (int i = 0; i < 1000; i++)
			quota_usage_add(a, q, 10, T_2024_02_29);
		if (c != NULL)
			quota_usage_add(c, q, 42, T_2024_02_29);
		status = c != NULL && quota_table_get(t, q, "alice") == a;
		quota_table_destroy(t);		/* here only */
		quotas_free(qs);
		_exit(status ? 0 : 1);
	}
	assert_true(pid > 0);
	for (int i = 0; i < 1000; i++)
		quota_usage_add(a, q, 1, T_2024_02_29);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(quota_usage_used(a), 1 + 10000 + 1000);
	assert_int_equal(quota_table_count(t), 2);
	assert_int_equal(quota_usage_used(quota_table_get(t, q, "carol")), 42);
	assert_true(quota_table_take_changed(t));
	quota_table_destroy(t);
	quotas_free(qs);
}

static void
test_table_reset(void **state)
{
	struct quotas *qs = quotas_new();
	struct quota *q1 = test_quota(qs, "q1", "1G", "day", NULL);
	struct quota *q2 = test_quota(qs, "q2", "1G", "rolling:1h", NULL);
	struct quota_table *t = quota_table_create(16);
	struct quota_usage *a1 = quota_table_get(t, q1, "alice");
	struct quota_usage *b1 = quota_table_get(t, q1, "bob");
	struct quota_usage *a2 = quota_table_get(t, q2, "alice");

	(void)state;
	quota_usage_add(a1, q1, 10, 0);
	quota_usage_add(b1, q1, 20, 0);
	quota_usage_add(a2, q2, 30, 0);
	(void)quota_table_take_changed(t);
	assert_int_equal(quota_table_reset(t, "nosuch", NULL), 0);
	assert_false(quota_table_take_changed(t));
	assert_int_equal(quota_table_reset(t, "q1", NULL), 2);
	assert_true(quota_table_take_changed(t));
	assert_int_equal(quota_usage_used(a1), 0);
	assert_int_equal(quota_usage_used(b1), 0);
	assert_int_equal(quota_usage_used(a2), 30);
	quota_usage_add(b1, q1, 5, 0);
	assert_int_equal(quota_table_reset(t, NULL, "alice"), 2);
	assert_int_equal(quota_usage_used(a2), 0);
	assert_int_equal(quota_usage_used(b1), 5);
	assert_int_equal(quota_table_reset(t, "q1", "bob"), 1);
	assert_int_equal(quota_usage_used(b1), 0);
	assert_int_equal(quota_table_reset(t, NULL, NULL), 3);
	quota_table_destroy(t);
	quotas_free(qs);
}

static void
test_table_full(void **state)
{
	struct quotas *qs = quotas_new();
	struct quota *q = test_quota(qs, "q", "1G", "day", NULL);
	struct quota *q2 = test_quota(qs, "q2", "1G", "day", NULL);
	struct quota_table *t = quota_table_create(2);
	struct quota_row rows[4];
	char user[300];

	(void)state;
	assert_null(quota_table_create(0));
	assert_int_equal(errno, EINVAL);
	assert_non_null(quota_table_get(t, q, "alice"));
	assert_non_null(quota_table_get(t, q2, "alice"));
	assert_null(quota_table_get(t, q, "bob"));
	assert_non_null(quota_table_get(t, q, "alice"));
	assert_int_equal(quota_table_count(t), 2);
	assert_null(quota_table_get(t, q, NULL));
	assert_null(quota_table_get(t, q, ""));
	memset(user, 'x', 256);
	user[256] = '\0';
	assert_null(quota_table_get(t, q, user));
	assert_int_equal(quota_table_snapshot(t, 0, rows, 4), 2);
	assert_string_equal(rows[1].quota, "q2");
	assert_int_equal(quota_table_snapshot(t, 0, rows, 1), 1);
	quota_table_destroy(t);
	quotas_free(qs);
}

/* A scratch directory and a state file path in it. */
static void
test_dir(char dir[64], char path[96])
{
	snprintf(dir, 64, "/tmp/test_quota.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, 96, "%s/state", dir);
}

static void
test_rmdir(const char *dir, const char *path)
{
	char other[128];

	unlink(path);
	snprintf(other, sizeof(other), "%s.bad", path);
	unlink(other);
	snprintf(other, sizeof(other), "%s.tmp", path);
	unlink(other);
	assert_int_equal(rmdir(dir), 0);	/* nothing else left behind */
}

static void
test_put(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
}

static struct quotas *
test_defs(void)
{
	struct quotas *qs = quotas_new();

	test_quota(qs, "daily", "1G", "day", NULL);
	test_quota(qs, "roll", "1G", "rolling:3200s", NULL);
	return qs;
}

static void
test_state_round_trip(void **state)
{
	static const char *const users[] = { "alice", "bob smith",
	    "\xc3\xbcn%i\tc" };
	struct quotas *qs = test_defs();
	struct quota_table *t = quota_table_create(16), *t2;
	const struct quota *q;
	struct quota_row a[8], b[8];
	char dir[64], path[96], why[128], line[256];
	int64_t now = T_2024_02_29 + 3000;
	size_t n;
	FILE *fp;

	(void)state;
	test_dir(dir, path);
	for (size_t i = 0; i < 3; i++)
		for (size_t j = 0; j < 2; j++) {
			q = quotas_at(qs, j);
			quota_usage_add(quota_table_get(t, q, users[i]), q,
			    100 * (i + 1), now - (int64_t)(j * 1000 * i));
		}
	(void)quota_table_get(t, quotas_at(qs, 0), "idle");  /* not saved */
	assert_int_equal(quota_state_write(t, path, now), 0);
	assert_non_null(fp = fopen(path, "r"));
	assert_non_null(fgets(line, sizeof(line), fp));
	assert_string_equal(line, "socks5d-quota 1\n");
	assert_non_null(fgets(line, sizeof(line), fp));
	assert_string_equal(line, "daily alice day 1709164800 100\n");
	while (fgets(line, sizeof(line), fp) != NULL &&
	    strncmp(line, "daily ", 6) != 0)
		;
	assert_string_equal(line, "daily bob%20smith day 1709164800 200\n");
	fclose(fp);

	assert_non_null(t2 = quota_table_create(16));
	assert_int_equal(quota_state_read(t2, qs, path, now, why,
	    sizeof(why)), 0);
	assert_int_equal(n = quota_table_snapshot(t, now, a, 8), 7);
	assert_int_equal(quota_table_snapshot(t2, now, b, 8), 6);
	for (size_t i = 0; i < 6; i++) {
		assert_string_equal(a[i].quota, b[i].quota);
		assert_string_equal(a[i].user, b[i].user);
		assert_int_equal(a[i].used, b[i].used);
		assert_true(a[i].used > 0);
		assert_int_equal(a[i].start, b[i].start);
		assert_memory_equal(a[i].bucket, b[i].bucket,
		    sizeof(a[i].bucket));
	}
	assert_string_equal(b[5].user, users[2]);
	assert_int_equal(b[5].used, 300);
	test_rmdir(dir, path);
	quota_table_destroy(t2);
	quota_table_destroy(t);
	quotas_free(qs);
}

static void
test_state_corrupt(void **state)
{
	static const struct {
		const char *text, *why;
	} cases[] = {
		{ "", "line 1: empty file" },
		{ "socks5d-quota 2\n", "line 1: not \"socks5d-quota 1\"" },
		{ "socks5d-quota 1", "line 1: truncated" },
		{ "socks5d-quota 1\ndaily alice day 1709164800 10\n"
		    "daily bob day 1709164800 1", "line 3: truncated" },
		{ "socks5d-quota 1\ndaily alice day 1709164800 12x\n",
		    "line 2: bad total \"12x\"" },
		{ "socks5d-quota 1\ndaily alice day 1709164801 12\n",
		    "line 2: bad start \"1709164801\"" },
		{ "socks5d-quota 1\ndaily alice day\n",
		    "line 2: too few fields" },
		{ "socks5d-quota 1\ndaily al%2 day 1709164800 1\n",
		    "line 2: bad user" },
		{ "socks5d-quota 1\nda/ly alice day 1709164800 1\n",
		    "line 2: bad quota name" },
		{ "socks5d-quota 1\ndaily alice fortnight 0 1\n",
		    "line 2: bad period \"fortnight\"" },
		{ "socks5d-quota 1\ndaily alice day 1709164800 1 5:1\n",
		    "line 2: 1 buckets for a calendar period" },
		{ "socks5d-quota 1\nroll alice rolling:3200s 0 1 0:1\n",
		    "line 2: 1 buckets for a rolling period" },
		{ "socks5d-quota 1\nroll alice rolling:3200s 0 1 0:x\n",
		    "line 2: bad bucket" },
	};
	struct quotas *qs = test_defs();
	struct quota_table *t = quota_table_create(16);
	char dir[64], path[96], why[128];
	struct stat st;

	(void)state;
	test_dir(dir, path);
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		test_put(path, cases[i].text);
		why[0] = '\0';
		assert_int_equal(quota_state_read(t, qs, path, T_2024_02_29,
		    why, sizeof(why)), -1);
		assert_string_equal(why, cases[i].why);
	}
	/* Checked whole first: the good line 2 of case 4 loaded nothing. */
	assert_int_equal(quota_table_count(t), 0);
	assert_int_equal(quota_state_quarantine(path), 0);
	assert_int_equal(stat(path, &st), -1);
	strcat(path, ".bad");
	assert_int_equal(stat(path, &st), 0);
	path[strlen(path) - 4] = '\0';
	assert_int_equal(quota_state_read(t, qs, path, 0, why, sizeof(why)),
	    1);
	assert_string_equal(why, "no state file yet");
	test_rmdir(dir, path);
	quota_table_destroy(t);
	quotas_free(qs);
}

static void
test_state_dropped(void **state)
{
	struct quotas *qs = test_defs();
	struct quota_table *t = quota_table_create(16);
	struct quota_row rows[4];
	char dir[64], path[96], why[128], text[2048];
	size_t len;

	(void)state;
	test_dir(dir, path);
	/* Unknown quota, period changed, an ended day, a live day, and a
	 * rolling line whose buckets 0..31 meet a window of 20..51. */
	len = (size_t)snprintf(text, sizeof(text), "socks5d-quota 1\n"
	    "gone alice day 1709164800 10\n"
	    "daily carol week 1708905600 20\n"
	    "daily bob day 1709078400 30\n"
	    "daily dave day 1709164800 40\n"
	    "roll erin rolling:3200s -3100 %d", 32 * 5);
	for (int k = 0; k < 32; k++)
		len += (size_t)snprintf(text + len, sizeof(text) - len,
		    " %d:5", k);
	snprintf(text + len, sizeof(text) - len, "\n");
	test_put(path, text);
	/* In 1970 the rolling line keeps buckets 20..31; the days are in
	 * the future, so dropped. */
	assert_int_equal(quota_state_read(t, qs, path, 5100, why,
	    sizeof(why)), 0);
	assert_int_equal(quota_table_snapshot(t, 5100, rows, 4), 1);
	assert_string_equal(rows[0].user, "erin");
	assert_int_equal(rows[0].used, 12 * 5);
	assert_int_equal(rows[0].bucket[0].index, 20);
	assert_int_equal(rows[0].bucket[11].bytes, 5);
	assert_int_equal(rows[0].bucket[12].bytes, 0);
	quota_table_destroy(t);
	/* At 2024-02-29 only dave's day is current: bob's has ended, and
	 * erin's buckets left the window long ago. */
	assert_non_null(t = quota_table_create(16));
	assert_int_equal(quota_state_read(t, qs, path, T_2024_02_29 + 5100,
	    why, sizeof(why)), 0);
	assert_int_equal(quota_table_snapshot(t, T_2024_02_29 + 5100, rows,
	    4), 1);
	assert_string_equal(rows[0].user, "dave");
	assert_int_equal(rows[0].used, 40);
	/* The next day it loads as zero. */
	quota_table_destroy(t);
	assert_non_null(t = quota_table_create(16));
	assert_int_equal(quota_state_read(t, qs, path, T_2024_02_29 + T_DAY,
	    why, sizeof(why)), 0);
	assert_int_equal(quota_table_count(t), 0);
	test_rmdir(dir, path);
	quota_table_destroy(t);
	quotas_free(qs);
}

static void
test_writer(void **state)
{
	struct quotas *qs = test_defs(), *qs2 = test_defs();
	struct quota_table *t = quota_table_create(16), *t2;
	const struct quota *q = quotas_at(qs, 1);	/* no midnight reset */
	struct quota_writer *w;
	struct quota_row row;
	char dir[64], path[96], why[128];
	struct stat st;
	int tries;

	(void)state;
	test_dir(dir, path);
	assert_non_null(w = quota_writer_start(t, qs, path, 1));
	quota_usage_add(quota_table_get(t, q, "alice"), q, 1234, time(NULL));
	/* Written within about a second of the change. */
	for (tries = 0; tries < 40 && stat(path, &st) == -1; tries++)
		usleep(100 * 1000);
	assert_int_equal(stat(path, &st), 0);
	quota_writer_set_defs(w, qs2);
	quotas_free(qs);
	quota_usage_add(quota_table_get(t, quotas_at(qs2, 1), "bob"),
	    quotas_at(qs2, 1), 99, time(NULL));
	quota_writer_stop(w);		/* the last write has bob */
	assert_non_null(t2 = quota_table_create(16));
	assert_int_equal(quota_state_read(t2, qs2, path, time(NULL), why,
	    sizeof(why)), 0);
	assert_int_equal(quota_table_count(t2), 2);
	assert_int_equal(quota_table_row(t2, 0, time(NULL), &row), 0);
	assert_int_equal(row.used, 1234);
	assert_int_equal(quota_table_row(t2, 1, time(NULL), &row), 0);
	assert_string_equal(row.user, "bob");
	assert_int_equal(row.used, 99);
	/* A directory that is not there: the write fails, errno says why. */
	assert_int_equal(quota_state_write(t, "/nonexistent/dir/state",
	    time(NULL)), -1);
	assert_int_equal(errno, ENOENT);
	/* The writer logs it and keeps the change for the next try. */
	assert_false(quota_table_take_changed(t));
	assert_non_null(w = quota_writer_start(t, qs2,
	    "/nonexistent/dir/state", 60));
	quota_usage_add(quota_table_get(t, quotas_at(qs2, 1), "bob"),
	    quotas_at(qs2, 1), 1, time(NULL));
	quota_writer_stop(w);
	assert_true(quota_table_take_changed(t));
	test_rmdir(dir, path);
	quota_table_destroy(t2);
	quota_table_destroy(t);
	quotas_free(qs2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_size_parse),
		cmocka_unit_test(test_set_good),
		cmocka_unit_test(test_set_bad),
		cmocka_unit_test(test_definitions),
		cmocka_unit_test(test_period_calendar),
		cmocka_unit_test(test_period_rolling),
		cmocka_unit_test(test_table_calendar),
		cmocka_unit_test(test_table_rolling),
		cmocka_unit_test(test_table_rolling_skew),
		cmocka_unit_test(test_table_fork),
		cmocka_unit_test(test_table_reset),
		cmocka_unit_test(test_table_full),
		cmocka_unit_test(test_state_round_trip),
		cmocka_unit_test(test_state_corrupt),
		cmocka_unit_test(test_state_dropped),
		cmocka_unit_test(test_writer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
