/*
 * Quota usage across restarts: the text state file, written atomically
 * and checked whole before anything is loaded from it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "socks5d/log.h"
#include "socks5d/quota.h"
#include "socks5d/why.h"

#define QUOTA_STATE_HEADER	"socks5d-quota 1"
#define QUOTA_STATE_LINE_MAX	4096	/* a full line is about 1.5K */
#define QUOTA_STATE_NUM_MAX	(INT64_C(1) << 58)

/* ---- writing ---- */

/* %, space, control and non-ASCII bytes as %XX, so USER is one field. */
static void
quota_state_encode(const char *s, char *out)
{
	static const char hex[] = "0123456789ABCDEF";
	unsigned char c;

	for (; (c = (unsigned char)*s) != '\0'; s++) {
		if (c <= ' ' || c >= 0x7f || c == '%') {
			*out++ = '%';
			*out++ = hex[c >> 4];
			*out++ = hex[c & 15];
		} else
			*out++ = (char)c;
	}
	*out = '\0';
}

static void
quota_state_line_out(FILE *fp, const struct quota_row *row)
{
	char user[QUOTA_USER_MAX * 3 + 1], period[32];

	quota_state_encode(row->user, user);
	quota_period_format(&row->period, period, sizeof(period));
	fprintf(fp, "%s %s %s %lld %llu", row->quota, user, period,
	    (long long)row->start, (unsigned long long)row->used);
	if (row->period.kind == QUOTA_PERIOD_ROLLING)
		for (size_t k = 0; k < row->nbuckets; k++)
			fprintf(fp, " %lld:%llu",
			    (long long)row->bucket[k].index,
			    (unsigned long long)row->bucket[k].bytes);
	fputc('\n', fp);
}

/* So the rename itself survives a crash. */
static int
quota_state_sync_dir(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	int fd, rc;

	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else
		snprintf(dir, sizeof(dir), "%.*s",
		    slash == path ? 1 : (int)(slash - path), path);
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

int
quota_state_write(const struct quota_table *t, const char *path,
    int64_t now)
{
	struct quota_row row;
	char tmp[PATH_MAX];
	FILE *fp = NULL;
	size_t n = quota_table_count(t);
	int fd, saved;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
	    0600);
	if (fd == -1)
		return -1;
	if ((fp = fdopen(fd, "w")) == NULL) {
		saved = errno;
		close(fd);
		unlink(tmp);
		errno = saved;
		return -1;
	}
	errno = 0;	/* so a bare ferror() reports EIO below */
	fprintf(fp, "%s\n", QUOTA_STATE_HEADER);
	for (size_t i = 0; i < n; i++)
		if (quota_table_row(t, i, now, &row) == 0 && row.used > 0)
			quota_state_line_out(fp, &row);
	if (ferror(fp) || fflush(fp) == EOF || fsync(fileno(fp)) == -1)
		goto fail;
	if (fclose(fp) == EOF) {
		fp = NULL;
		goto fail;
	}
	fp = NULL;
	if (rename(tmp, path) == -1)
		goto fail;
	return quota_state_sync_dir(path);
fail:
	saved = errno != 0 ? errno : EIO;
	if (fp != NULL)
		fclose(fp);
	unlink(tmp);
	errno = saved;
	return -1;
}

/* ---- reading ---- */

struct quota_state_entry {
	char			 name[QUOTA_NAME_MAX + 1];
	char			 user[QUOTA_USER_MAX + 1];
	struct quota_period	 period;
	int64_t			 start;
	int64_t			 total;
	size_t			 npairs;
	int64_t			 index[QUOTA_BUCKETS];
	int64_t			 bytes[QUOTA_BUCKETS];
};

/* A decimal integer, all of s, within [min, max]. */
static int
quota_state_number(const char *s, int64_t min, int64_t max, int64_t *out)
{
	bool neg = *s == '-';
	int64_t v = 0;

	s += neg;
	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9' || v > QUOTA_STATE_NUM_MAX)
			return -1;
		v = v * 10 + (*s - '0');
	}
	v = neg ? -v : v;
	if (v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int
quota_state_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static int
quota_state_decode(const char *s, char *out)
{
	size_t n = 0;
	int hi, lo;

	for (; *s != '\0'; s++, n++) {
		if (n == QUOTA_USER_MAX)
			return -1;
		if (*s <= ' ' || *s >= 0x7f)
			return -1;	/* the writer encodes those */
		if (*s != '%') {
			out[n] = *s;
			continue;
		}
		if ((hi = quota_state_hex(s[1])) < 0 ||
		    (lo = quota_state_hex(s[2])) < 0 || hi + lo == 0)
			return -1;
		out[n] = (char)(hi << 4 | lo);
		s += 2;
	}
	out[n] = '\0';
	return n > 0 ? 0 : -1;
}

/* One "INDEX:BYTES" field. */
static int
quota_state_pair(char *f, struct quota_state_entry *e)
{
	char *colon = strchr(f, ':');

	if (colon == NULL || e->npairs == QUOTA_BUCKETS)
		return -1;
	*colon = '\0';
	if (quota_state_number(f, -QUOTA_STATE_NUM_MAX, QUOTA_STATE_NUM_MAX,
	    &e->index[e->npairs]) == -1 || quota_state_number(colon + 1, 0,
	    (int64_t)QUOTA_BYTES_MAX, &e->bytes[e->npairs]) == -1)
		return -1;
	e->npairs++;
	return 0;
}

/* START, TOTAL and the pairs, once the period is known. */
static int
quota_state_numbers(char **f, char *rest, struct quota_state_entry *e,
    char *why, size_t whylen)
{
	bool rolling = e->period.kind == QUOTA_PERIOD_ROLLING;
	int64_t sum = 0, max;

	if (quota_state_number(f[3], -QUOTA_STATE_NUM_MAX,
	    QUOTA_STATE_NUM_MAX, &e->start) == -1 || (!rolling &&
	    quota_period_start(&e->period, e->start) != e->start))
		return why_set(why, whylen, "bad start \"%.24s\"",
		    f[3]);
	max = (rolling ? QUOTA_BUCKETS : 1) * (int64_t)QUOTA_BYTES_MAX;
	if (quota_state_number(f[4], 0, max, &e->total) == -1)
		return why_set(why, whylen, "bad total \"%.24s\"",
		    f[4]);
	while (rest != NULL)
		if (quota_state_pair(strsep(&rest, " "), e) == -1)
			return why_set(why, whylen, "bad bucket");
	if (e->npairs != (rolling ? QUOTA_BUCKETS : 0))
		return why_set(why, whylen, "%zu buckets for a %s "
		    "period", e->npairs, rolling ? "rolling" : "calendar");
	for (size_t k = 0; k < e->npairs; k++)
		sum += e->bytes[k];
	if (rolling && sum != e->total)
		return why_set(why, whylen, "total is not the sum of "
		    "the buckets");
	return 0;
}

/* Split and check one entry line; why gets what is wrong with it. */
static int
quota_state_parse(char *line, struct quota_state_entry *e, char *why,
    size_t whylen)
{
	char *f[5], *rest = line;

	memset(e, 0, sizeof(*e));
	for (size_t i = 0; i < 5; i++)
		if ((f[i] = strsep(&rest, " ")) == NULL || *f[i] == '\0')
			return why_set(why, whylen, "too few fields");
	if (!quotas_name_valid(f[0]))
		return why_set(why, whylen, "bad quota name");
	snprintf(e->name, sizeof(e->name), "%s", f[0]);
	if (quota_state_decode(f[1], e->user) == -1)
		return why_set(why, whylen, "bad user");
	if (quota_period_parse(f[2], &e->period) == -1)
		return why_set(why, whylen, "bad period \"%.40s\"",
		    f[2]);
	return quota_state_numbers(f, rest, e, why, whylen);
}

/* Add bytes at index to user's entry if that is still in the window (or
 * the period) ending at cur; *u is looked up on the first add, so a line
 * with nothing left makes no entry. */
static void
quota_state_add(struct quota_table *t, const struct quota *q,
    const char *user, struct quota_usage **u, int64_t index, int64_t bytes,
    int64_t cur)
{
	const struct quota_period *p = quota_period(q);
	int64_t window = (int64_t)quota_period_buckets(p);

	if (bytes == 0 || index > cur || index <= cur - window)
		return;
	if (*u == NULL && (*u = quota_table_get(t, q, user)) == NULL)
		return;
	quota_usage_add_index(*u, p, index, (uint64_t)bytes);
}

static void
quota_state_load(struct quota_table *t, const struct quotas *defs,
    const struct quota_state_entry *e, int64_t now)
{
	const struct quota *q = quotas_find(defs, e->name);
	const struct quota_period *p = &e->period;
	struct quota_usage *u = NULL;
	int64_t cur = quota_period_index(p, now);

	/* Gone from the config, or counted over another period: drop. */
	if (q == NULL || !quota_period_equal(quota_period(q), p))
		return;
	/* A calendar line is one bucket: START's period, TOTAL bytes. */
	if (e->npairs == 0)
		quota_state_add(t, q, e->user, &u,
		    quota_period_index(p, e->start), e->total, cur);
	for (size_t k = 0; k < e->npairs; k++)
		quota_state_add(t, q, e->user, &u, e->index[k], e->bytes[k],
		    cur);
}

/* Check one line (the header when lineno is 1); load it when t is not
 * NULL. why gets what is wrong. */
static int
quota_state_line_in(char *line, ssize_t len, size_t lineno,
    struct quota_table *t, const struct quotas *defs, int64_t now,
    char *why, size_t whylen)
{
	struct quota_state_entry e;

	if (len > QUOTA_STATE_LINE_MAX)
		return why_set(why, whylen, "too long");
	if (line[len - 1] != '\n')
		return why_set(why, whylen, "truncated");
	line[len - 1] = '\0';
	if (lineno == 1) {
		if (strcmp(line, QUOTA_STATE_HEADER) != 0)
			return why_set(why, whylen, "not \"%s\"",
			    QUOTA_STATE_HEADER);
		return 0;
	}
	if (quota_state_parse(line, &e, why, whylen) == -1)
		return -1;
	if (t != NULL)
		quota_state_load(t, defs, &e, now);
	return 0;
}

/* One pass over the file: check every line, and load them when t is not
 * NULL. */
static int
quota_state_pass(FILE *fp, struct quota_table *t, const struct quotas *defs,
    int64_t now, char *why, size_t whylen)
{
	char *line = NULL, what[96];
	size_t cap = 0, lineno = 0;
	ssize_t len;
	int rc = 0;

	while (rc == 0 && (len = getline(&line, &cap, fp)) != -1)
		if ((rc = quota_state_line_in(line, len, ++lineno, t, defs,
		    now, what, sizeof(what))) == -1)
			why_set(why, whylen, "line %zu: %s", lineno,
			    what);
	if (rc == 0 && ferror(fp))
		rc = why_set(why, whylen, "read error: %s",
		    strerror(errno));
	else if (rc == 0 && lineno == 0)
		rc = why_set(why, whylen, "line 1: empty file");
	free(line);
	return rc;
}

int
quota_state_read(struct quota_table *t, const struct quotas *defs,
    const char *path, int64_t now, char *why, size_t whylen)
{
	FILE *fp;
	int rc;

	if ((fp = fopen(path, "re")) == NULL) {
		if (errno != ENOENT)
			return why_set(why, whylen, "cannot open: %s",
			    strerror(errno));
		why_set(why, whylen, "no state file yet");
		return 1;
	}
	/* Check all of it first, so a corrupt file loads nothing. */
	if ((rc = quota_state_pass(fp, NULL, defs, now, why, whylen)) == 0) {
		rewind(fp);
		rc = quota_state_pass(fp, t, defs, now, why, whylen);
	}
	fclose(fp);
	return rc;
}

int
quota_state_quarantine(const char *path)
{
	char bad[PATH_MAX];

	if ((size_t)snprintf(bad, sizeof(bad), "%s.bad", path) >= sizeof(bad)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return rename(path, bad);
}
