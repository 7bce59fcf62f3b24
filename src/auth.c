/*
 * Password checks: helper threads run argon2 verification and hand verdicts
 * back to the loop through an ev_async. Also owns the credential cache (a
 * keyed digest per verified user) and the dummy hash for unknown users.
 */
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sodium.h>

#include "socks5d/auth.h"
#include "socks5d/log.h"

#define AUTH_THREADS		2	/* one per core on a small box */
#define AUTH_FIELD_MAX		255	/* RFC 1929 length octet */
#define AUTH_DIGEST_BYTES	crypto_generichash_BYTES

enum auth_state {
	AUTH_STATE_QUEUED,
	AUTH_STATE_RUNNING,
	AUTH_STATE_DONE,
};

struct auth_request {
	TAILQ_ENTRY(auth_request) entry;	/* todo or done, under mutex */
	struct auth *auth;
	auth_done_cb *cb;
	void *arg;
	enum auth_state state;			/* under mutex */
	bool cancelled;				/* loop thread only */
	bool known;				/* hash is the user's own */
	bool ok;				/* written by the helper */
	char user[AUTH_FIELD_MAX + 1];
	char password[AUTH_FIELD_MAX + 1];	/* wiped by the helper */
	char hash[crypto_pwhash_STRBYTES];
	unsigned char digest[AUTH_DIGEST_BYTES];
};

TAILQ_HEAD(auth_queue, auth_request);

struct auth_slot {
	bool valid;
	unsigned char digest[AUTH_DIGEST_BYTES];
};

struct auth {
	struct ev_loop *loop;
	ev_async async;
	pthread_mutex_t mutex;
	pthread_cond_t cond;
	struct auth_queue todo;		/* under mutex */
	struct auth_queue done;		/* under mutex */
	bool stopping;			/* under mutex */
	pthread_t threads[AUTH_THREADS];
	size_t nthreads;
	size_t live;			/* requests allocated; loop only */
	struct users *users;
	struct auth_slot *cache;	/* parallel to users, may be NULL */
	unsigned char key[crypto_generichash_KEYBYTES];
};

static int
auth_hash_bytes(const char *password, size_t len, char *out)
{
	return crypto_pwhash_str_alg(out, password, len,
	    crypto_pwhash_OPSLIMIT_INTERACTIVE,
	    crypto_pwhash_MEMLIMIT_INTERACTIVE,
	    crypto_pwhash_ALG_ARGON2ID13) == 0 ? 0 : -1;
}

int
auth_hash_password(const char *password, char *out)
{
	return auth_hash_bytes(password, strlen(password), out);
}

/*
 * Unknown users are verified against this so that their answer costs as
 * much as a real user's. Made on first use, on a helper thread, so neither
 * start-up nor the loop pays for it.
 */
static char auth_dummy_hash[crypto_pwhash_STRBYTES];
static pthread_once_t auth_dummy_once = PTHREAD_ONCE_INIT;

static void
auth_dummy_make(void)
{
	unsigned char pw[32];

	randombytes_buf(pw, sizeof(pw));
	if (auth_hash_bytes((const char *)pw, sizeof(pw),
	    auth_dummy_hash) == -1)
		log_warnx("auth: cannot make the dummy hash; unknown users "
		    "will be rejected faster than known ones");
	sodium_memzero(pw, sizeof(pw));
}

static void
auth_digest(const struct auth *auth, const char *password, size_t len,
    unsigned char *out)
{
	crypto_generichash(out, AUTH_DIGEST_BYTES,
	    (const unsigned char *)password, len, auth->key, sizeof(auth->key));
}

/* Runs on a helper thread, without the mutex: this is the slow part. */
static void
auth_worker_verify(struct auth_request *req)
{
	const char *hash = req->hash;

	if (!req->known) {
		pthread_once(&auth_dummy_once, auth_dummy_make);
		hash = auth_dummy_hash;
	}
	req->ok = crypto_pwhash_str_verify(hash, req->password,
	    strlen(req->password)) == 0 && req->known;
	sodium_memzero(req->password, sizeof(req->password));
}

static void *
auth_worker_main(void *arg)
{
	struct auth *auth = arg;
	struct auth_request *req;

	pthread_mutex_lock(&auth->mutex);
	for (;;) {
		while (!auth->stopping && TAILQ_EMPTY(&auth->todo))
			pthread_cond_wait(&auth->cond, &auth->mutex);
		if (auth->stopping)
			break;
		req = TAILQ_FIRST(&auth->todo);
		TAILQ_REMOVE(&auth->todo, req, entry);
		req->state = AUTH_STATE_RUNNING;
		pthread_mutex_unlock(&auth->mutex);

		auth_worker_verify(req);

		pthread_mutex_lock(&auth->mutex);
		req->state = AUTH_STATE_DONE;
		TAILQ_INSERT_TAIL(&auth->done, req, entry);
		pthread_mutex_unlock(&auth->mutex);
		ev_async_send(auth->loop, &auth->async);
		pthread_mutex_lock(&auth->mutex);
	}
	pthread_mutex_unlock(&auth->mutex);
	return NULL;
}

/*
 * The async watcher is unreferenced while nothing is outstanding, so an
 * idle auth does not keep ev_run() going, and referenced while a verdict is
 * still to come.
 */
static struct auth_request *
auth_request_new(struct auth *auth)
{
	struct auth_request *req;

	if ((req = calloc(1, sizeof(*req))) == NULL)
		return NULL;
	req->auth = auth;
	if (auth->live++ == 0)
		ev_ref(auth->loop);
	return req;
}

static void
auth_request_wipe(struct auth_request *req)
{
	sodium_memzero(req, sizeof(*req));
	free(req);
}

static void
auth_request_free(struct auth *auth, struct auth_request *req)
{
	auth_request_wipe(req);
	if (--auth->live == 0)
		ev_unref(auth->loop);
}

/* Fill the cache only if the table still holds the hash that was verified:
 * a reload may have changed or removed the user meanwhile. */
static void
auth_cache_fill(struct auth *auth, const struct auth_request *req)
{
	const char *hash;
	size_t index;

	if (auth->cache == NULL)
		return;
	hash = users_find(auth->users, req->user, &index);
	if (hash == NULL || strcmp(hash, req->hash) != 0)
		return;
	memcpy(auth->cache[index].digest, req->digest, AUTH_DIGEST_BYTES);
	auth->cache[index].valid = true;
}

static bool
auth_cache_match(const struct auth *auth, size_t index,
    const unsigned char *digest)
{
	const struct auth_slot *slot;

	if (auth->cache == NULL)
		return false;
	slot = &auth->cache[index];
	return slot->valid &&
	    sodium_memcmp(slot->digest, digest, AUTH_DIGEST_BYTES) == 0;
}

static void
auth_cache_drop(struct auth *auth)
{
	if (auth->cache != NULL) {
		sodium_memzero(auth->cache,
		    users_count(auth->users) * sizeof(auth->cache[0]));
		free(auth->cache);
	}
	auth->cache = NULL;
}

/* A callback may cancel another request of the same batch, so the
 * cancelled flag is read just before each call, not when the batch is
 * taken. */
static void
auth_async_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	struct auth *auth = w->data;
	struct auth_queue batch;
	struct auth_request *req;

	(void)loop;
	(void)revents;
	TAILQ_INIT(&batch);
	pthread_mutex_lock(&auth->mutex);
	TAILQ_CONCAT(&batch, &auth->done, entry);
	pthread_mutex_unlock(&auth->mutex);

	while ((req = TAILQ_FIRST(&batch)) != NULL) {
		auth_done_cb *cb = req->cb;
		void *arg = req->arg;
		bool ok = req->ok, cancelled = req->cancelled;

		TAILQ_REMOVE(&batch, req, entry);
		if (ok && !cancelled)
			auth_cache_fill(auth, req);
		auth_request_free(auth, req);
		if (!cancelled)
			cb(arg, ok);
	}
}

/* Signals belong to the loop thread; helpers must never take them. */
static void
auth_threads_start(struct auth *auth)
{
	sigset_t all, old;
	int error;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (size_t i = 0; i < AUTH_THREADS; i++) {
		error = pthread_create(&auth->threads[auth->nthreads], NULL,
		    auth_worker_main, auth);
		if (error != 0) {
			log_warnx("auth: cannot start helper thread: %s",
			    strerror(error));
			break;
		}
		auth->nthreads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

struct auth *
auth_create(struct ev_loop *loop)
{
	struct auth *auth;

	if (sodium_init() < 0) {
		log_error("auth: cannot initialise libsodium");
		return NULL;
	}
	if ((auth = calloc(1, sizeof(*auth))) == NULL) {
		log_error("auth: out of memory");
		return NULL;
	}
	auth->loop = loop;
	randombytes_buf(auth->key, sizeof(auth->key));
	TAILQ_INIT(&auth->todo);
	TAILQ_INIT(&auth->done);
	pthread_mutex_init(&auth->mutex, NULL);
	pthread_cond_init(&auth->cond, NULL);
	ev_async_init(&auth->async, auth_async_cb);
	auth->async.data = auth;
	ev_async_start(loop, &auth->async);
	ev_unref(loop);

	auth_threads_start(auth);
	if (auth->nthreads == 0) {
		log_error("auth: no helper thread could be started");
		auth_destroy(auth);
		return NULL;
	}
	return auth;
}

void
auth_set_users(struct auth *auth, struct users *users)
{
	size_t count = users_count(users);

	auth_cache_drop(auth);
	users_free(auth->users);
	auth->users = users;
	if (count > 0 &&
	    (auth->cache = calloc(count, sizeof(auth->cache[0]))) == NULL)
		log_warnx("auth: out of memory for the credential cache; "
		    "every login will be slow");
}

bool
auth_knows_user(const struct auth *auth, const char *user)
{
	size_t index;

	return users_find(auth->users, user, &index) != NULL;
}

static void
auth_queue_wipe(struct auth_queue *queue)
{
	struct auth_request *req;

	while ((req = TAILQ_FIRST(queue)) != NULL) {
		TAILQ_REMOVE(queue, req, entry);
		auth_request_wipe(req);
	}
}

/* Helpers finish the hash in hand before they see the stop flag; what is
 * still queued or finished afterwards is freed without callbacks. */
void
auth_destroy(struct auth *auth)
{
	if (auth == NULL)
		return;
	pthread_mutex_lock(&auth->mutex);
	auth->stopping = true;
	pthread_cond_broadcast(&auth->cond);
	pthread_mutex_unlock(&auth->mutex);
	for (size_t i = 0; i < auth->nthreads; i++)
		pthread_join(auth->threads[i], NULL);

	/* libev wants an unreferenced watcher referenced again before it is
	 * stopped. */
	if (auth->live == 0)
		ev_ref(auth->loop);
	ev_async_stop(auth->loop, &auth->async);
	auth_queue_wipe(&auth->todo);
	auth_queue_wipe(&auth->done);

	auth_cache_drop(auth);
	users_free(auth->users);
	pthread_cond_destroy(&auth->cond);
	pthread_mutex_destroy(&auth->mutex);
	sodium_memzero(auth->key, sizeof(auth->key));
	free(auth);
}

static void
auth_enqueue(struct auth *auth, struct auth_request *req)
{
	pthread_mutex_lock(&auth->mutex);
	req->state = AUTH_STATE_QUEUED;
	TAILQ_INSERT_TAIL(&auth->todo, req, entry);
	pthread_cond_signal(&auth->cond);
	pthread_mutex_unlock(&auth->mutex);
}

static struct auth_request *
auth_request_make(struct auth *auth, const char *user, const char *password,
    const char *hash, const unsigned char *digest)
{
	struct auth_request *req;

	if ((req = auth_request_new(auth)) == NULL)
		return NULL;
	strcpy(req->user, user);
	strcpy(req->password, password);
	if (hash != NULL) {
		req->known = true;
		strcpy(req->hash, hash);
	}
	memcpy(req->digest, digest, AUTH_DIGEST_BYTES);
	return req;
}

/*
 * A cache miss, including a wrong password for a cached user, always takes
 * the slow path: the cache must make honest logins cheap, never guessing.
 * Lengths were bounded by the caller (RFC 1929) and the users file loader,
 * so the strcpy()s into the request cannot overflow.
 */
enum auth_result
auth_check(struct auth *auth, const char *user, const char *password,
    auth_done_cb *cb, void *arg, struct auth_request **pending)
{
	unsigned char digest[AUTH_DIGEST_BYTES];
	size_t ulen = strlen(user), plen = strlen(password), index = 0;
	struct auth_request *req;
	const char *hash;

	*pending = NULL;
	if (ulen == 0 || plen == 0 || ulen > AUTH_FIELD_MAX ||
	    plen > AUTH_FIELD_MAX)
		return AUTH_RESULT_FAIL;

	auth_digest(auth, password, plen, digest);
	hash = users_find(auth->users, user, &index);
	if (hash != NULL && auth_cache_match(auth, index, digest)) {
		sodium_memzero(digest, sizeof(digest));
		return AUTH_RESULT_OK;
	}
	req = auth_request_make(auth, user, password, hash, digest);
	sodium_memzero(digest, sizeof(digest));
	if (req == NULL) {
		log_warnx("auth: out of memory");
		return AUTH_RESULT_FAIL;
	}
	req->cb = cb;
	req->arg = arg;
	auth_enqueue(auth, req);
	*pending = req;
	return AUTH_RESULT_PENDING;
}

void
auth_cancel(struct auth_request *req)
{
	struct auth *auth = req->auth;
	bool queued;

	pthread_mutex_lock(&auth->mutex);
	queued = req->state == AUTH_STATE_QUEUED;
	if (queued)
		TAILQ_REMOVE(&auth->todo, req, entry);
	else
		req->cancelled = true;
	pthread_mutex_unlock(&auth->mutex);
	if (queued)
		auth_request_free(auth, req);
}
