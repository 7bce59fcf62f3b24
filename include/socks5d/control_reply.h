/*
 * Building a control socket answer (control.c in a serving process,
 * control_sup.c in the supervisor): records appended to one growing
 * buffer, and the "users" summary added up from session records.
 */
#ifndef SOCKS5D_CONTROL_REPLY_H
#define SOCKS5D_CONTROL_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "socks5d/control_proto.h"
#include "socks5d/quota.h"

/* Room one record may take; a longer one is dropped (never happens with
 * names of at most 255 bytes). */
#define CONTROL_RECORD_MAX 4096

struct control_reply {
	char *buf;
	size_t len, cap;
	bool nomem;                    /* answered "end error out of memory" */
};

/* Start a record at the end of the answer: NULL when out of memory. */
struct control_record *control_reply_begin(struct control_reply *r,
    struct control_record *rec, const char *type);
/* Keep the record begun (dropped when it overflowed). */
void control_reply_commit(struct control_reply *r,
    struct control_record *rec);
/* The final line; on nomem the answer becomes that error alone. */
void control_reply_end(struct control_reply *r, bool ok, const char *reason);
void control_reply_free(struct control_reply *r);

/* Sessions added up per user, then "user" records with each user's
 * quota use (users with usage but no session too). */
struct control_users;
struct control_users *control_users_new(void);
int control_users_add(struct control_users *u, const char *user,
    uint64_t up, uint64_t down, double rate);
void control_users_emit(struct control_users *u, const struct quotas *defs,
    struct quota_table *table, int64_t now, struct control_reply *r);
void control_users_free(struct control_users *u);

/* "quota reset USER [QUOTA]" on the shared table: one "reset" record. */
void control_quota_reset(const struct control_request *req,
    struct quota_table *table, struct control_reply *r);

#endif
