/*
 * RFC 1929 username/password verification. The users file is parsed here;
 * argon2id verification runs on helper threads and reports back to the loop
 * through an ev_async, so the loop never waits for a hash. After a user's
 * first successful login a keyed BLAKE2b digest of the password is cached,
 * so later logins are a constant-time compare.
 */
#ifndef SOCKS5D_AUTH_H
#define SOCKS5D_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <ev.h>

struct users;
struct auth;
struct auth_request;

/*
 * Parse a users file: one "name:$argon2id$..." per line, '#' comments and
 * blank lines ignored. Every problem is written to errors as
 * "file:line: why" (or "file: why" when it cannot be read) and NULL is
 * returned.
 */
struct users *users_load(const char *path, FILE *errors);
void users_free(struct users *users);
size_t users_count(const struct users *users);
/*
 * The stored hash for name, or NULL when there is no such user; *index is
 * set to the user's position (0 .. users_count - 1) for per-user state.
 */
const char *users_find(const struct users *users, const char *name,
    size_t *index);

enum auth_result {
	AUTH_RESULT_OK,
	AUTH_RESULT_FAIL,
	AUTH_RESULT_PENDING,   /* the callback will report the answer */
};

/* Called on the loop thread with the verdict of a pending check. */
typedef void auth_done_cb(void *arg, bool ok);

struct auth *auth_create(struct ev_loop *loop);
/* Take ownership of users (may be NULL), dropping the previous table and
 * with it the credential cache. */
void auth_set_users(struct auth *auth, struct users *users);
/* Is user in the users file in force? */
bool auth_knows_user(const struct auth *auth, const char *user);
void auth_destroy(struct auth *auth);

/*
 * Check a user's password. Answers at once when it can (cache hit, empty
 * name or password); otherwise hands the work to a helper thread, stores a
 * handle in *pending and returns AUTH_RESULT_PENDING. The callback is never
 * called from inside auth_check. The caller wipes its own copy of the
 * password; auth keeps a copy only as long as the check runs.
 */
enum auth_result auth_check(struct auth *auth, const char *user,
    const char *password, auth_done_cb *cb, void *arg,
    struct auth_request **pending);

/* Forget a pending check: its callback will not be called. */
void auth_cancel(struct auth_request *req);

/*
 * Hash a password for the users file with crypto_pwhash_str (argon2id).
 * out must hold crypto_pwhash_STRBYTES bytes. Returns 0 or -1.
 */
int auth_hash_password(const char *password, char *out);

#endif
