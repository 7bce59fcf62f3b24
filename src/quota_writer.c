/*
 * The owner's quota thread: it ticks the usage table every second and
 * saves the state file every few, so the event loops never touch the disk
 * for quotas.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "socks5d/log.h"
#include "socks5d/quota.h"

/* ---- the writer thread ---- */

struct quota_writer {
	pthread_t		 qw_thread;
	pthread_mutex_t		 qw_lock;	/* qw_defs, qw_stop */
	pthread_cond_t		 qw_wake;	/* CLOCK_MONOTONIC */
	struct quota_table	*qw_table;
	const struct quotas	*qw_defs;
	char			*qw_path;
	unsigned		 qw_interval;
	bool			 qw_stop;
	bool			 qw_running;	/* past its start-up */
	struct log_ratelimit	 qw_warned;	/* the thread's alone */
};

/* Write the state file if anything changed; on failure keep it marked
 * changed, so the next interval tries again. */
static void
quota_writer_save(struct quota_writer *w, bool always_log)
{
	struct timespec ts;
	unsigned long covered = 1;
	char times[48] = "";
	int saved;

	if (!quota_table_take_changed(w->qw_table))
		return;
	if (quota_state_write(w->qw_table, w->qw_path,
	    (int64_t)time(NULL)) == 0)
		return;
	saved = errno;
	quota_table_mark_changed(w->qw_table);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (always_log || log_ratelimit_pass(&w->qw_warned, (double)ts.tv_sec +
	    (double)ts.tv_nsec / 1e9, 60, &covered)) {
		if (covered > 1)
			snprintf(times, sizeof(times), " (%lu failures)",
			    covered);
		errno = saved;
		log_warn("quota: cannot write state file %s%s", w->qw_path,
		    times);
	}
}

static void *
quota_writer_main(void *arg)
{
	struct quota_writer *w = arg;
	struct timespec next, now;
	unsigned ticks = 0;
	int rc;

	clock_gettime(CLOCK_MONOTONIC, &next);
	pthread_mutex_lock(&w->qw_lock);
	w->qw_running = true;
	pthread_cond_broadcast(&w->qw_wake);
	while (!w->qw_stop) {
		/* A slow write must not make a burst of catch-up ticks. */
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (++next.tv_sec < now.tv_sec)
			next = now;
		rc = 0;
		while (!w->qw_stop && rc == 0)
			rc = pthread_cond_timedwait(&w->qw_wake, &w->qw_lock,
			    &next);
		if (w->qw_stop)
			break;
		quota_table_tick(w->qw_table, w->qw_defs, (int64_t)time(NULL));
		if (++ticks < w->qw_interval)
			continue;
		ticks = 0;
		/* Under the lock too: the supervisor takes it to fork, so no
		 * worker starts life while this thread is in malloc or stdio
		 * (a sanitizer's allocator, unlike glibc's, is not made safe
		 * across fork). */
		quota_writer_save(w, false);
	}
	pthread_mutex_unlock(&w->qw_lock);
	return NULL;
}

static int
quota_writer_init(struct quota_writer *w)
{
	pthread_condattr_t attr;
	int error;

	if ((error = pthread_condattr_init(&attr)) != 0)
		return error;
	if ((error = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)) == 0 &&
	    (error = pthread_cond_init(&w->qw_wake, &attr)) == 0 &&
	    (error = pthread_mutex_init(&w->qw_lock, NULL)) != 0)
		pthread_cond_destroy(&w->qw_wake);
	pthread_condattr_destroy(&attr);
	return error;
}

struct quota_writer *
quota_writer_start(struct quota_table *t, const struct quotas *defs,
    const char *path, unsigned interval_seconds)
{
	struct quota_writer *w;
	sigset_t all, old;
	int error;

	if ((w = calloc(1, sizeof(*w))) == NULL ||
	    (w->qw_path = strdup(path)) == NULL) {
		log_warn("quota: cannot start the state writer");
		free(w);
		return NULL;
	}
	w->qw_table = t;
	w->qw_defs = defs;
	w->qw_interval = interval_seconds > 0 ? interval_seconds : 1;
	if ((error = quota_writer_init(w)) != 0)
		goto fail;
	/* Born with every signal blocked, so the process's handlers and
	 * signalfd-style waits keep getting them. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	error = pthread_create(&w->qw_thread, NULL, quota_writer_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (error == 0) {
		/* A thread starting up allocates (its stack, its TLS): a
		 * worker forked meanwhile would inherit a locked allocator.
		 * Return once it is parked in its own loop. */
		pthread_mutex_lock(&w->qw_lock);
		while (!w->qw_running)
			pthread_cond_wait(&w->qw_wake, &w->qw_lock);
		pthread_mutex_unlock(&w->qw_lock);
		return w;
	}
	pthread_cond_destroy(&w->qw_wake);
	pthread_mutex_destroy(&w->qw_lock);
fail:
	log_warnx("quota: cannot start the state writer: %s",
	    strerror(error));
	free(w->qw_path);
	free(w);
	return NULL;
}

void
quota_writer_hold(struct quota_writer *w)
{
	pthread_mutex_lock(&w->qw_lock);
}

void
quota_writer_release(struct quota_writer *w)
{
	pthread_mutex_unlock(&w->qw_lock);
}

void
quota_writer_set_defs(struct quota_writer *w, const struct quotas *defs)
{
	pthread_mutex_lock(&w->qw_lock);
	w->qw_defs = defs;
	pthread_mutex_unlock(&w->qw_lock);
}

void
quota_writer_stop(struct quota_writer *w)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->qw_lock);
	w->qw_stop = true;
	pthread_cond_signal(&w->qw_wake);
	pthread_mutex_unlock(&w->qw_lock);
	pthread_join(w->qw_thread, NULL);
	quota_table_tick(w->qw_table, w->qw_defs, (int64_t)time(NULL));
	quota_writer_save(w, true);
	pthread_cond_destroy(&w->qw_wake);
	pthread_mutex_destroy(&w->qw_lock);
	free(w->qw_path);
	free(w);
}
