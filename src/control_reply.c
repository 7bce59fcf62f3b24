/*
 * Control answers (control_reply.h): the growing record buffer, the
 * per-user summary, and quota resets, the parts a serving process and the
 * supervisor answer alike.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "socks5d/control_reply.h"
#include "socks5d/span.h"

struct control_reply_user {
	char *name;
	unsigned sessions;
	uint64_t up, down;
	double rate;
};

struct control_users {
	struct control_reply_user *v;
	size_t n, cap;
};

struct control_record *
control_reply_begin(struct control_reply *r, struct control_record *rec,
    const char *type)
{
	if (r->nomem)
		return NULL;
	if (r->cap - r->len < CONTROL_RECORD_MAX) {
		size_t cap = r->cap == 0 ? 2 * CONTROL_RECORD_MAX : 2 * r->cap;
		char *buf = realloc(r->buf, cap);

		if (buf == NULL) {
			r->nomem = true;
			return NULL;
		}
		r->buf = buf;
		r->cap = cap;
	}
	control_record_begin(rec, r->buf + r->len, CONTROL_RECORD_MAX, type);
	return rec;
}

void
control_reply_commit(struct control_reply *r, struct control_record *rec)
{
	if (control_record_end(rec) == 0)
		r->len += rec->len;
}

void
control_reply_end(struct control_reply *r, bool ok, const char *reason)
{
	struct control_record rec;

	/* The end line takes at most a record's room. */
	if (control_reply_begin(r, &rec, "end") == NULL) {
		free(r->buf);
		r->buf = strdup("end error out of memory\n");
		r->len = r->buf != NULL ? strlen(r->buf) : 0;
		r->cap = r->len;
		return;
	}
	r->len += control_format_end(r->buf + r->len, r->cap - r->len, ok,
	    reason);
}

void
control_reply_free(struct control_reply *r)
{
	free(r->buf);
	memset(r, 0, sizeof(*r));
}

struct control_users *
control_users_new(void)
{
	return calloc(1, sizeof(struct control_users));
}

static struct control_reply_user *
control_users_find(struct control_users *u, const char *user, bool add)
{
	struct control_reply_user *v;

	for (size_t i = 0; i < u->n; i++)
		if (strcmp(u->v[i].name, user) == 0)
			return &u->v[i];
	if (!add)
		return NULL;
	if ((v = span_reserve(u->v, &u->cap, u->n + 1, sizeof(*v))) == NULL)
		return NULL;
	u->v = v;
	v = &u->v[u->n];
	memset(v, 0, sizeof(*v));
	if ((v->name = strdup(user)) == NULL)
		return NULL;
	u->n++;
	return v;
}

int
control_users_add(struct control_users *u, const char *user, uint64_t up,
    uint64_t down, double rate)
{
	struct control_reply_user *e = control_users_find(u, user, true);

	if (e == NULL)
		return -1;
	e->sessions++;
	e->up += up;
	e->down += down;
	e->rate += rate;
	return 0;
}

static void
control_users_record(struct control_reply *r,
    const struct control_reply_user *e, const struct quota_row *q)
{
	struct control_record rec;

	if (control_reply_begin(r, &rec, "user") == NULL)
		return;
	control_record_str(&rec, "user", e != NULL ? e->name : q->user);
	control_record_u64(&rec, "sessions", e != NULL ? e->sessions : 0);
	control_record_u64(&rec, "up", e != NULL ? e->up : 0);
	control_record_u64(&rec, "down", e != NULL ? e->down : 0);
	control_record_double(&rec, "rate", e != NULL ? e->rate : 0.);
	if (q != NULL) {
		control_record_str(&rec, "quota", q->quota);
		control_record_u64(&rec, "used", q->used);
		control_record_u64(&rec, "since", (uint64_t)q->start);
	}
	control_reply_commit(r, &rec);
}

/* The usage row of a quota still defined, for user (NULL: any). */
static bool
control_users_quota_row(struct quota_table *table, const struct quotas *defs,
    size_t i, int64_t now, struct quota_row *row)
{
	return quota_table_row(table, i, now, row) == 0 &&
	    quotas_find(defs, row->quota) != NULL;
}

void
control_users_emit(struct control_users *u, const struct quotas *defs,
    struct quota_table *table, int64_t now, struct control_reply *r)
{
	size_t nrows = table != NULL ? quota_table_count(table) : 0;
	struct quota_row *row = malloc(sizeof(*row));
	bool *listed = calloc(u->n + 1, sizeof(bool));

	if (row == NULL || listed == NULL) {
		r->nomem = true;
		free(row);
		free(listed);
		return;
	}
	/* One record per user and quota; a user without any, one alone. */
	for (size_t i = 0; i < nrows; i++) {
		struct control_reply_user *e;

		if (!control_users_quota_row(table, defs, i, now, row))
			continue;
		e = control_users_find(u, row->user, false);
		if (e != NULL)
			listed[e - u->v] = true;
		control_users_record(r, e, row);
	}
	for (size_t i = 0; i < u->n; i++)
		if (!listed[i])
			control_users_record(r, &u->v[i], NULL);
	free(row);
	free(listed);
}

void
control_users_free(struct control_users *u)
{
	if (u == NULL)
		return;
	for (size_t i = 0; i < u->n; i++)
		free(u->v[i].name);
	free(u->v);
	free(u);
}

void
control_quota_reset(const struct control_request *req,
    struct quota_table *table, struct control_reply *r)
{
	const char *quota = req->arg2[0] != '\0' ? req->arg2 : NULL;
	size_t n = table != NULL ? quota_table_reset(table, quota, req->arg1) :
	    0;
	struct control_record rec;

	if (control_reply_begin(r, &rec, "reset") == NULL)
		return;
	control_record_str(&rec, "user", req->arg1);
	control_record_str(&rec, "quota", quota != NULL ? quota : "*");
	control_record_u64(&rec, "entries", n);
	control_reply_commit(r, &rec);
}
