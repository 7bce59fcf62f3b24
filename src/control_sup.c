/*
 * The control socket under [server] workers: the supervisor owns it, and
 * a thread of the supervisor answers each request by asking every worker
 * over its socket pair and putting the answers together. The supervisor's
 * own loop never waits for a worker.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "socks5d/control.h"
#include "socks5d/control_reply.h"
#include "socks5d/control_sup.h"
#include "socks5d/log.h"
#include "socks5d/quota_service.h"

/* How long a worker may take to answer, a client to send its request
 * line (the thread holds the lock meanwhile, and the supervisor waits on
 * it to fork: a local client sends at once), and to read the answer. */
#define CONTROL_SUP_WORKER_MS 3000
#define CONTROL_SUP_ASK_S     1
#define CONTROL_SUP_CLIENT_S  5
#define CONTROL_SUP_ANSWER_MAX (64u << 20)

static struct {
	pthread_t thread;
	bool running;
	int listen_fd;
	char *path;
	int stop[2];
	/* Held by the thread through each whole request, and by the main
	 * thread to change the pairs, to fork (so no request's socket is
	 * open to be inherited) and to swap the config. */
	pthread_mutex_t lock;
	int *pairs;                    /* the supervisor's end per slot */
	unsigned npairs;
	const struct config *cfg;
	bool pairing;                  /* lock held from pair() to fork */
	bool started;                  /* the thread is past its start-up */
	pthread_cond_t start;
} sup = { .listen_fd = -1, .stop = { -1, -1 },
	  .lock = PTHREAD_MUTEX_INITIALIZER, .start = PTHREAD_COND_INITIALIZER };

/* -- asking the workers ---------------------------------------------------- */

/* A worker's whole answer to line, without its end line, into *buf.
 * Returns 1 for "end ok", 0 for "end error", -1 for no answer. */
static int
control_sup_ask(int fd, const char *line, size_t len, char **buf,
    size_t *blen)
{
	struct timespec start;
	size_t cap = 0, have = 0;
	char junk[4096], *b = NULL, *end;

	*buf = NULL;
	*blen = 0;
	/* A late answer to an earlier request must not be taken for this
	 * one's. */
	while (recv(fd, junk, sizeof(junk), MSG_DONTWAIT) > 0)
		;
	if (send(fd, line, len, MSG_NOSIGNAL) != (ssize_t)len)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		struct timespec now;
		long left;
		ssize_t n;

		clock_gettime(CLOCK_MONOTONIC, &now);
		left = CONTROL_SUP_WORKER_MS - (now.tv_sec - start.tv_sec) *
		    1000 - (now.tv_nsec - start.tv_nsec) / 1000000;
		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			break;
		if (cap - have < 65536) {
			char *nb;

			if (cap >= CONTROL_SUP_ANSWER_MAX ||
			    (nb = realloc(b, cap + 262144)) == NULL)
				break;
			b = nb;
			cap += 262144;
		}
		if ((n = recv(fd, b + have, cap - have - 1, 0)) <= 0)
			break;
		have += (size_t)n;
		b[have] = '\0';
		/* The end line is the last, and only it starts "end". */
		if (have > 0 && b[have - 1] == '\n') {
			end = have >= 2 ? memrchr(b, '\n', have - 1) : NULL;
			end = end != NULL ? end + 1 : b;
			if (strncmp(end, "end ", 4) == 0) {
				*blen = (size_t)(end - b);
				*buf = b;
				return strncmp(end, "end ok", 6) == 0 ? 1 : 0;
			}
		}
	}
	free(b);
	return -1;
}

/* Every worker's records for line appended to r; the number that did
 * not answer in *missing. */
static void
control_sup_gather(const char *line, size_t len, struct control_reply *r,
    unsigned *missing)
{
	*missing = 0;
	for (unsigned i = 0; i < sup.npairs; i++) {
		char *buf;
		size_t blen;

		if (sup.pairs[i] == -1)
			continue;
		if (control_sup_ask(sup.pairs[i], line, len, &buf, &blen) ==
		    -1) {
			(*missing)++;
			continue;
		}
		if (blen > 0 && !r->nomem) {
			char *nb = realloc(r->buf, r->len + blen +
			    CONTROL_RECORD_MAX);

			if (nb == NULL) {
				r->nomem = true;
			} else {
				r->buf = nb;
				memcpy(r->buf + r->len, buf, blen);
				r->len += blen;
				r->cap = r->len + CONTROL_RECORD_MAX;
			}
		}
		free(buf);
	}
}

/* "users": the workers' sessions added up here, with the quota use. */
static void
control_sup_users(struct control_reply *r, unsigned *missing)
{
	struct control_reply all = { 0 };
	struct control_users *u = control_users_new();
	struct control_field f[16];
	char *line, *next;

	control_sup_gather("v1 sessions\n", 12, &all, missing);
	if (u == NULL || all.nomem) {
		r->nomem = true;
		goto out;
	}
	for (line = all.buf; line != NULL && line < all.buf + all.len;
	    line = next) {
		const char *type, *user = NULL;
		uint64_t up = 0, down = 0;
		double rate = 0;
		size_t n;

		next = memchr(line, '\n', (size_t)(all.buf + all.len - line));
		if (next == NULL)
			break;
		*next++ = '\0';
		if (control_parse_record(line, f, 16, &n, &type) == -1)
			continue;
		for (size_t i = 0; i < n; i++) {
			if (strcmp(f[i].key, "user") == 0)
				user = f[i].value;
			else if (strcmp(f[i].key, "up") == 0)
				up = strtoull(f[i].value, NULL, 10);
			else if (strcmp(f[i].key, "down") == 0)
				down = strtoull(f[i].value, NULL, 10);
			else if (strcmp(f[i].key, "rate") == 0)
				rate = strtod(f[i].value, NULL);
		}
		if (user != NULL && strcmp(user, "-") != 0 &&
		    control_users_add(u, user, up, down, rate) == -1)
			r->nomem = true;
	}
	control_users_emit(u, sup.cfg->quotas, quota_service_table(),
	    (int64_t)time(NULL), r);
out:
	control_users_free(u);
	control_reply_free(&all);
}

static void
control_sup_answer(const char *line, size_t len, struct control_reply *r)
{
	struct control_request req;
	const char *why;
	unsigned missing = 0;
	size_t before;

	if (control_parse_request(line, len, &req, &why) == -1) {
		control_reply_end(r, false, why);
		return;
	}
	switch (req.cmd) {
	case CONTROL_CMD_SESSIONS:
		control_sup_gather(line, len, r, &missing);
		break;
	case CONTROL_CMD_KILL:
		before = r->len;
		control_sup_gather(line, len, r, &missing);
		if (req.kill == CONTROL_KILL_ID && r->len == before) {
			control_reply_end(r, false, "no such session");
			return;
		}
		break;
	case CONTROL_CMD_USERS:
		control_sup_users(r, &missing);
		break;
	case CONTROL_CMD_QUOTA_RESET:
		control_quota_reset(&req, quota_service_table(), r);
		log_info("control: quota reset for user %s", req.arg1);
		break;
	default:
		break;
	}
	if (missing > 0)
		log_warnx("control: %u worker(s) did not answer in time",
		    missing);
	control_reply_end(r, true, NULL);
}

/* -- the client ------------------------------------------------------------ */

static void
control_sup_serve(int fd)
{
	struct timeval ask = { .tv_sec = CONTROL_SUP_ASK_S };
	struct timeval tv = { .tv_sec = CONTROL_SUP_CLIENT_S };
	struct control_reply r = { 0 };
	char line[CONTROL_LINE_MAX];
	size_t len = 0, sent = 0;
	ssize_t n;

	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &ask, sizeof(ask));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	while (len < sizeof(line) && memchr(line, '\n', len) == NULL) {
		if ((n = recv(fd, line + len, sizeof(line) - len, 0)) <= 0)
			return;
		len += (size_t)n;
	}
	if (memchr(line, '\n', len) != NULL)
		len = (size_t)((char *)memchr(line, '\n', len) - line) + 1;
	control_sup_answer(line, len, &r);
	while (sent < r.len &&
	    (n = send(fd, r.buf + sent, r.len - sent, MSG_NOSIGNAL)) > 0)
		sent += (size_t)n;
	control_reply_free(&r);
}

static void *
control_sup_main(void *arg)
{
	struct pollfd p[2] = {
		{ .fd = sup.listen_fd, .events = POLLIN },
		{ .fd = sup.stop[0], .events = POLLIN },
	};
	int fd;

	(void)arg;
	pthread_mutex_lock(&sup.lock);
	sup.started = true;
	pthread_cond_signal(&sup.start);
	pthread_mutex_unlock(&sup.lock);
	for (;;) {
		if (poll(p, 2, -1) == -1 && errno != EINTR)
			break;
		if (p[1].revents != 0)
			break;
		if ((p[0].revents & POLLIN) == 0)
			continue;
		pthread_mutex_lock(&sup.lock);
		fd = accept4(sup.listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd != -1) {
			if (control_peer_allowed(fd))
				control_sup_serve(fd);
			close(fd);
		}
		pthread_mutex_unlock(&sup.lock);
	}
	return NULL;
}

/* -- the supervisor's side ------------------------------------------------- */

int
control_sup_start(const struct config *cfg, unsigned nslots)
{
	sigset_t all, old;

	sup.cfg = cfg;
	if (cfg->control_socket == NULL)
		return 0;
	if ((sup.pairs = malloc(nslots * sizeof(int))) == NULL)
		return -1;
	for (unsigned i = 0; i < nslots; i++)
		sup.pairs[i] = -1;
	sup.npairs = nslots;
	if ((sup.path = strdup(cfg->control_socket)) == NULL ||
	    (sup.listen_fd = control_socket_open(cfg)) == -1)
		return -1;
	/* Blocking accepts: the thread polls first, under no lock. */
	(void)fcntl(sup.listen_fd, F_SETFL, 0);
	if (pipe2(sup.stop, O_CLOEXEC) == -1)
		return -1;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	sup.running = pthread_create(&sup.thread, NULL, control_sup_main,
	    NULL) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	/* As quota_writer_start: no worker may be forked while the new
	 * thread is still starting up (it allocates meanwhile). */
	pthread_mutex_lock(&sup.lock);
	while (sup.running && !sup.started)
		pthread_cond_wait(&sup.start, &sup.lock);
	pthread_mutex_unlock(&sup.lock);
	if (!sup.running)
		log_warnx("control: cannot start the supervisor's thread");
	return sup.running ? 0 : -1;
}

int
control_sup_pair(unsigned slot)
{
	int pair[2];

	if (slot >= sup.npairs ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == -1)
		return -1;
	pthread_mutex_lock(&sup.lock);
	sup.pairing = true;
	if (sup.pairs[slot] != -1)
		close(sup.pairs[slot]);
	sup.pairs[slot] = pair[0];
	return pair[1];
}

void
control_sup_forked(int worker_end)
{
	/* Taken by control_sup_pair: held across the fork, so the thread
	 * had no client socket open to leave in the child. */
	if (sup.pairing) {
		sup.pairing = false;
		pthread_mutex_unlock(&sup.lock);
	}
	if (worker_end != -1)
		close(worker_end);
}

void
control_sup_child(int keep)
{
	/* In the worker: none of the supervisor's ends but its own. */
	if (sup.listen_fd != -1)
		close(sup.listen_fd);
	for (unsigned i = 0; i < sup.npairs; i++)
		if (sup.pairs[i] != -1 && sup.pairs[i] != keep)
			close(sup.pairs[i]);
	if (sup.stop[0] != -1) {
		close(sup.stop[0]);
		close(sup.stop[1]);
	}
	sup.listen_fd = sup.stop[0] = sup.stop[1] = -1;
	free(sup.path);
	sup.path = NULL;
	free(sup.pairs);
	sup.pairs = NULL;
	sup.npairs = 0;
	sup.running = false;
}

void
control_sup_worker_gone(unsigned slot)
{
	pthread_mutex_lock(&sup.lock);
	if (slot < sup.npairs && sup.pairs[slot] != -1) {
		close(sup.pairs[slot]);
		sup.pairs[slot] = -1;
	}
	pthread_mutex_unlock(&sup.lock);
}

void
control_sup_set_config(const struct config *cfg)
{
	pthread_mutex_lock(&sup.lock);
	sup.cfg = cfg;
	pthread_mutex_unlock(&sup.lock);
}

void
control_sup_stop(void)
{
	if (sup.running) {
		(void)write(sup.stop[1], "", 1);
		pthread_join(sup.thread, NULL);
		sup.running = false;
	}
	control_socket_close(sup.listen_fd, sup.path);
	sup.listen_fd = -1;
	for (unsigned i = 0; i < sup.npairs; i++)
		if (sup.pairs[i] != -1)
			close(sup.pairs[i]);
	free(sup.pairs);
	sup.pairs = NULL;
	sup.npairs = 0;
	if (sup.stop[0] != -1) {
		close(sup.stop[0]);
		close(sup.stop[1]);
	}
	free(sup.path);
	sup.path = NULL;
}
