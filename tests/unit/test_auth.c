/*
 * Unit tests for the users file (src/users.c) and password checks
 * (src/auth.c): parse errors by line, the threaded verify path on a real ev
 * loop, the credential cache, cancellation and teardown with work in flight.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <ev.h>
#include <sodium.h>

#include "socks5d/auth.h"

/* Hashes are made once per run: each costs about 0.1 s. */
static char alice_hash[crypto_pwhash_STRBYTES];
static char alice_hash2[crypto_pwhash_STRBYTES];	/* same password */

struct users_text {
	char path[64];
	char *errors;
	size_t errors_len;
};

static void
write_file(char *path, size_t size, const char *content)
{
	int fd;

	snprintf(path, size, "/tmp/test_auth.XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, strlen(content)),
	    (ssize_t)strlen(content));
	close(fd);
}

/* Load content as a users file, capturing the errors text. */
static struct users *
load_text(struct users_text *t, const char *content)
{
	struct users *users;
	FILE *errors;

	write_file(t->path, sizeof(t->path), content);
	errors = open_memstream(&t->errors, &t->errors_len);
	assert_non_null(errors);
	users = users_load(t->path, errors);
	fclose(errors);
	unlink(t->path);
	return users;
}

static char *
format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *
format(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	assert_true(vasprintf(&s, fmt, ap) >= 0);
	va_end(ap);
	return s;
}

static struct users *
users_with_alice(const char *hash)
{
	struct users_text t = { .errors = NULL };
	struct users *users;
	char *content;

	content = format("alice:%s\n", hash);
	users = load_text(&t, content);
	assert_non_null(users);
	assert_string_equal(t.errors, "");
	free(t.errors);
	free(content);
	return users;
}

static int
group_setup(void **state)
{
	(void)state;
	if (sodium_init() < 0)
		return -1;
	if (auth_hash_password("secret", alice_hash) != 0 ||
	    auth_hash_password("secret", alice_hash2) != 0)
		return -1;
	return 0;
}

static void
test_hash_password(void **state)
{
	(void)state;
	assert_memory_equal(alice_hash, "$argon2id$", 10);
	assert_string_not_equal(alice_hash, alice_hash2);
	assert_int_equal(crypto_pwhash_str_verify(alice_hash, "secret", 6), 0);
	assert_int_not_equal(crypto_pwhash_str_verify(alice_hash, "Secret", 6),
	    0);
}

static void
test_users_valid(void **state)
{
	struct users_text t = { .errors = NULL };
	struct users *users;
	char name255[256], *content;
	const char *hash;
	size_t index = 99;

	(void)state;
	memset(name255, 'n', 255);
	name255[255] = '\0';
	content = format("# users\n\n   \n  # indented comment\n"
	    "alice:%s\r\n"
	    "bob:%s  \t\n"
	    "%s:%s\n"
	    "carol:%s", alice_hash, alice_hash2, name255, alice_hash,
	    alice_hash);
	users = load_text(&t, content);
	assert_non_null(users);
	assert_string_equal(t.errors, "");
	assert_int_equal(users_count(users), 4);

	hash = users_find(users, "alice", &index);
	assert_non_null(hash);
	assert_string_equal(hash, alice_hash);	/* CR trimmed */
	assert_true(index < 4);
	assert_string_equal(users_find(users, "bob", &index), alice_hash2);
	assert_string_equal(users_find(users, "carol", &index), alice_hash);
	assert_non_null(users_find(users, name255, &index));
	assert_null(users_find(users, "dave", &index));
	assert_null(users_find(users, "alic", &index));
	users_free(users);
	free(t.errors);
	free(content);
}

static void
test_users_empty_file(void **state)
{
	struct users_text t = { .errors = NULL };
	struct users *users;
	size_t index;

	(void)state;
	users = load_text(&t, "# nobody yet\n");
	assert_non_null(users);
	assert_int_equal(users_count(users), 0);
	assert_null(users_find(users, "alice", &index));
	users_free(users);
	free(t.errors);
}

static void
assert_error_on_line(const struct users_text *t, int line, const char *why)
{
	char *prefix = format("%s:%d: ", t->path, line);
	const char *at = strstr(t->errors, prefix);

	if (at == NULL || strstr(at, why) == NULL)
		fail_msg("no \"%s...%s\" in:\n%s", prefix, why, t->errors);
	free(prefix);
}

static size_t
count_lines(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		n += *s == '\n';
	return n;
}

static void
test_users_errors(void **state)
{
	struct users_text t = { .errors = NULL };
	char name256[257], long_hash[200], *content;

	(void)state;
	memset(name256, 'n', 256);
	name256[256] = '\0';
	memset(long_hash, 'a', sizeof(long_hash) - 1);
	long_hash[sizeof(long_hash) - 1] = '\0';
	memcpy(long_hash, "$argon2id$", 10);
	content = format(
	    "# line 1\n"
	    "nocolon\n"				/* 2 */
	    ":%s\n"				/* 3 */
	    "%s:%s\n"				/* 4 */
	    "carol:$2y$10$abcdefghijklmnopqrstuv\n"	/* 5 */
	    "dave:%s\n"				/* 6 */
	    "alice:%s\n"			/* 7 */
	    "\n"
	    "alice:%s\n"			/* 9 */
	    "e ve:%s\n"				/* 10 */
	    "frank:$argon2id$garbage\n",	/* 11 */
	    alice_hash, name256, alice_hash, long_hash, alice_hash,
	    alice_hash2, alice_hash);
	assert_null(load_text(&t, content));
	assert_error_on_line(&t, 2, "missing ':'");
	assert_error_on_line(&t, 3, "empty user name");
	assert_error_on_line(&t, 4, "longer than 255");
	assert_error_on_line(&t, 5, "$argon2id$");
	assert_error_on_line(&t, 6, "hash longer than");
	assert_error_on_line(&t, 9, "duplicate user (already on line 7)");
	assert_error_on_line(&t, 10, "whitespace");
	assert_error_on_line(&t, 11, "malformed");
	assert_int_equal(count_lines(t.errors), 8);
	free(t.errors);
	free(content);
}

static void
test_users_unreadable(void **state)
{
	char *errors = NULL;
	size_t len;
	FILE *fp;

	(void)state;
	fp = open_memstream(&errors, &len);
	assert_non_null(fp);
	assert_null(users_load("/nonexistent/socks5d-users", fp));
	fclose(fp);
	assert_string_equal(errors, "/nonexistent/socks5d-users: cannot "
	    "open: No such file or directory\n");
	free(errors);
}

/* ---- auth_check on a real loop ---- */

struct fixture {
	struct ev_loop *loop;
	struct auth *auth;
	int calls;
	bool ok;
};

static void
done_cb(void *arg, bool ok)
{
	struct fixture *f = arg;

	f->calls++;
	f->ok = ok;
}

static void
never_cb(void *arg, bool ok)
{
	(void)arg;
	(void)ok;
	fail_msg("callback of a cancelled or destroyed check ran");
}

static int
auth_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	f->loop = ev_loop_new(EVFLAG_AUTO);
	f->auth = auth_create(f->loop);
	if (f->loop == NULL || f->auth == NULL)
		return -1;
	auth_set_users(f->auth, users_with_alice(alice_hash));
	*state = f;
	return 0;
}

static int
auth_teardown(void **state)
{
	struct fixture *f = *state;

	auth_destroy(f->auth);
	ev_loop_destroy(f->loop);
	free(f);
	return 0;
}

static void
guard_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
}

/* Run until one more callback arrived, or give up after 10 s. */
static void
run_until_called(struct fixture *f)
{
	int before = f->calls;
	ev_timer guard;

	ev_timer_init(&guard, guard_cb, 10., 0.);
	ev_timer_start(f->loop, &guard);
	while (f->calls == before && ev_is_active(&guard))
		ev_run(f->loop, EVRUN_ONCE);
	ev_timer_stop(f->loop, &guard);
	assert_int_equal(f->calls, before + 1);
}

/* Expect a PENDING answer, then the given verdict from the callback. */
static void
check_slow(struct fixture *f, const char *user, const char *password,
    bool want)
{
	struct auth_request *req = NULL;

	assert_int_equal(auth_check(f->auth, user, password, done_cb, f, &req),
	    AUTH_RESULT_PENDING);
	assert_non_null(req);
	assert_int_equal(f->calls, 0);		/* never from inside */
	run_until_called(f);
	assert_int_equal(f->ok, want);
	f->calls = 0;
}

static void
check_fast(struct fixture *f, const char *user, const char *password,
    enum auth_result want)
{
	struct auth_request *req = (struct auth_request *)&req;

	assert_int_equal(auth_check(f->auth, user, password, never_cb, f,
	    &req), want);
	assert_null(req);
}

static void
test_auth_right_password(void **state)
{
	struct fixture *f = *state;
	struct auth_request *req;

	assert_int_equal(auth_check(f->auth, "alice", "secret", done_cb, f,
	    &req), AUTH_RESULT_PENDING);
	/* The pending check alone keeps ev_run() going, and only it. */
	ev_run(f->loop, 0);
	assert_int_equal(f->calls, 1);
	assert_true(f->ok);
}

static void
test_auth_wrong_password(void **state)
{
	struct fixture *f = *state;

	check_slow(f, "alice", "Secret", false);
	check_slow(f, "alice", "secret2", false);
}

static void
test_auth_unknown_user(void **state)
{
	struct fixture *f = *state;

	check_slow(f, "mallory", "secret", false);
	auth_set_users(f->auth, NULL);
	check_slow(f, "alice", "secret", false);
}

static void
test_auth_empty_fails_at_once(void **state)
{
	struct fixture *f = *state;
	char long_password[300];

	memset(long_password, 'p', sizeof(long_password) - 1);
	long_password[sizeof(long_password) - 1] = '\0';
	check_fast(f, "", "secret", AUTH_RESULT_FAIL);
	check_fast(f, "alice", "", AUTH_RESULT_FAIL);
	check_fast(f, "", "", AUTH_RESULT_FAIL);
	check_fast(f, "alice", long_password, AUTH_RESULT_FAIL);
	ev_run(f->loop, EVRUN_NOWAIT);
	assert_int_equal(f->calls, 0);
}

static void
test_auth_cache(void **state)
{
	struct fixture *f = *state;

	check_slow(f, "alice", "secret", true);
	check_fast(f, "alice", "secret", AUTH_RESULT_OK);
	/* A miss on a cached user must cost a full verify. */
	check_slow(f, "alice", "secreT", false);
	check_fast(f, "alice", "secret", AUTH_RESULT_OK);
}

static void
test_auth_reload_drops_cache(void **state)
{
	struct fixture *f = *state;

	check_slow(f, "alice", "secret", true);
	check_fast(f, "alice", "secret", AUTH_RESULT_OK);
	auth_set_users(f->auth, users_with_alice(alice_hash));
	check_slow(f, "alice", "secret", true);
	check_fast(f, "alice", "secret", AUTH_RESULT_OK);
}

/* A verdict for a hash the table no longer holds must not fill the cache. */
static void
test_auth_reload_during_check(void **state)
{
	struct fixture *f = *state;
	struct auth_request *req;

	assert_int_equal(auth_check(f->auth, "alice", "secret", done_cb, f,
	    &req), AUTH_RESULT_PENDING);
	auth_set_users(f->auth, users_with_alice(alice_hash2));
	run_until_called(f);
	assert_true(f->ok);
	f->calls = 0;
	check_slow(f, "alice", "secret", true);
	check_fast(f, "alice", "secret", AUTH_RESULT_OK);
}

/* Three checks on two helpers: some are hashing, some still queued. */
static void
test_auth_cancel(void **state)
{
	struct fixture *f = *state;
	struct auth_request *req[3];

	for (size_t i = 0; i < 3; i++)
		assert_int_equal(auth_check(f->auth, "alice", "secret",
		    never_cb, f, &req[i]), AUTH_RESULT_PENDING);
	usleep(10000);
	for (size_t i = 0; i < 3; i++)
		auth_cancel(req[i]);
	ev_run(f->loop, 0);	/* returns once the helpers handed them back */
	check_slow(f, "alice", "secret", true);
}

static void
test_auth_destroy_in_flight(void **state)
{
	struct fixture *f = *state;
	struct auth_request *req;

	for (size_t i = 0; i < 3; i++)
		assert_int_equal(auth_check(f->auth, i == 1 ? "mallory" :
		    "alice", "secret", never_cb, f, &req),
		    AUTH_RESULT_PENDING);
	usleep(10000);
	/* The teardown destroys auth with all three outstanding. */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_password),
		cmocka_unit_test(test_users_valid),
		cmocka_unit_test(test_users_empty_file),
		cmocka_unit_test(test_users_errors),
		cmocka_unit_test(test_users_unreadable),
#define AUTH_TEST(fn) cmocka_unit_test_setup_teardown(fn, auth_setup, \
	auth_teardown)
		AUTH_TEST(test_auth_right_password),
		AUTH_TEST(test_auth_wrong_password),
		AUTH_TEST(test_auth_unknown_user),
		AUTH_TEST(test_auth_empty_fails_at_once),
		AUTH_TEST(test_auth_cache),
		AUTH_TEST(test_auth_reload_drops_cache),
		AUTH_TEST(test_auth_reload_during_check),
		AUTH_TEST(test_auth_cancel),
		AUTH_TEST(test_auth_destroy_in_flight),
#undef AUTH_TEST
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
