/*
 * Readiness and reloads under [server] workers: both ends of the report
 * pipe, READY=1 once every first worker has its listeners open, and a
 * SIGHUP re-read and passed on, with READY=1 once every worker has read it.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "socks5d/listener.h"
#include "socks5d/log.h"
#include "socks5d/metrics.h"
#include "socks5d/control_sup.h"
#include "socks5d/notify.h"
#include "socks5d/quota_service.h"
#include "socks5d/workers.h"
#include "socks5d/workers_private.h"

/* How long READY=1 after a reload waits for the workers: a stuck one must
 * not leave the unit reloading for ever. */
#define WORKERS_RELOAD_TIMEOUT   10.0

/*
 * What a worker writes on the report pipe: once when its listeners are
 * open, then once per SIGHUP it has handled (applied or rejected), with
 * the configuration generation it has read. Records are far below
 * PIPE_BUF, so the workers' writes to the one pipe never interleave.
 */
struct workers_report {
	pid_t pid;
	unsigned generation;
};

/* In a worker: where to report, and the generation of the configuration
 * it runs (or last read). */
static int worker_report_fd = -1;
static unsigned worker_generation;

/* -- in a worker -------------------------------------------------------- */

void
workers_worker_report_to(int fd, unsigned generation)
{
	worker_report_fd = fd;
	worker_generation = generation;
}

static void
workers_worker_report(const char *what)
{
	struct workers_report r = { getpid(), worker_generation };

	if (worker_report_fd == -1)
		return;
	/* Non-blocking: a supervisor that stopped reading costs a late
	 * READY=1 (its reload deadline), never a stalled worker. */
	if (write(worker_report_fd, &r, sizeof(r)) != (ssize_t)sizeof(r))
		log_warn("worker: cannot report %s", what);
}

void
workers_worker_ready(void)
{
	workers_worker_report("ready");
}

void
workers_worker_reloading(void)
{
	/* Read before the file is: a worker that reports this generation
	 * has read the file the supervisor read for it, or a newer one. */
	if (worker_report_fd != -1)
		worker_generation = __atomic_load_n(sup.shared_generation,
		    __ATOMIC_ACQUIRE);
}

void
workers_worker_reloaded(void)
{
	workers_worker_report("a finished reload");
}

/* -- the supervisor ----------------------------------------------------- */

/* A reload's state change, once READY=1 has gone out (not before: a
 * READY=1 then would announce workers still starting). */
static void
workers_notify(const char *state)
{
	if (sup.announced)
		notify_status(state, false, metrics_sessions_active());
}

/*
 * Pass an accepted reload on; READY=1 waits until every worker signalled
 * has answered (workers_reload_progress). Signals coalesce: two SIGHUPs
 * close together may make one reload in a worker, so a count of answers
 * cannot say which reload an answer is for. A generation can: each
 * accepted reload gets the next one, published before the signal, and a
 * worker answers with the one it read as it began reloading. So a second
 * SIGHUP while waiting just restarts the wait for the newest generation,
 * with a new deadline: answers to the older reload no longer count, and
 * READY=1 goes out once, when the newest is done everywhere.
 */
static void
workers_reload_start(void)
{
	sup.generation++;
	__atomic_store_n(sup.shared_generation, sup.generation,
	    __ATOMIC_RELEASE);
	for (unsigned i = 0; i < sup.count; i++) {
		struct worker *w = &sup.slots[i];

		if (w->pid == 0)
			continue;
		/* Before the first READY=1 there is no one to answer to. */
		w->awaited = sup.announced;
		kill(w->pid, SIGHUP);
	}
	sup.reloading = sup.announced;
	sup.reload_deadline = workers_now() + WORKERS_RELOAD_TIMEOUT;
}

/* READY=1 once no signalled worker is still reloading (a dead one's
 * replacement starts with the new file), or at the deadline. */
void
workers_reload_progress(double now)
{
	bool pending = false;

	if (!sup.reloading)
		return;
	for (unsigned i = 0; i < sup.count; i++)
		pending |= sup.slots[i].awaited;
	if (pending && now < sup.reload_deadline)
		return;
	for (unsigned i = 0; i < sup.count; i++) {
		struct worker *w = &sup.slots[i];

		if (!w->awaited)
			continue;
		log_warnx("reload: worker %u (pid %ld) has not finished "
		    "reloading after %.0fs; READY=1 without it", i + 1,
		    (long)w->pid, WORKERS_RELOAD_TIMEOUT);
		w->awaited = false;
	}
	if (!pending)
		log_info("supervisor: reload finished in every worker");
	sup.reloading = false;
	workers_notify("READY=1");
}

/* The supervisor rejected the file: nothing to wait for, unless an
 * earlier reload still is in progress, whose end sends READY=1. */
static void
workers_reload_rejected(void)
{
	if (!sup.reloading)
		workers_notify("READY=1");
}

static bool
workers_same_text(const char *a, const char *b)
{
	return (a == NULL && b == NULL) ||
	    (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void
workers_swap_text(char **a, char **b)
{
	char *t = *a;

	*a = *b;
	*b = t;
}

/*
 * Read the config again for the workers started from now on, and pass
 * SIGHUP on so the running ones reload it themselves. A file the
 * supervisor rejects is not passed on: the workers would reject it too.
 */
void
workers_reload(void)
{
	struct config *next;

	workers_notify("RELOADING=1");
	if ((next = config_reload(sup.cfg->path)) == NULL) {
		workers_reload_rejected();
		return;
	}
	/* As in one process (server_reload_config): checked here, the file
	 * is not passed on to workers that would each reject it. */
	if (sup.activated &&
	    listener_check_activation(next, "reload rejected: ") == -1) {
		log_error("reload rejected: the old configuration stays in "
		    "force");
		config_free(next);
		workers_reload_rejected();
		return;
	}
	if (workers_count(next) != sup.count)
		log_warnx("reload: [server] workers takes effect at the next "
		    "restart");
	if (!workers_same_text(sup.cfg->run_user, next->run_user) ||
	    !workers_same_text(sup.cfg->run_group, next->run_group)) {
		/* As in one process; and a worker restarted as another user
		 * could not share the listeners (workers_set_socket_owner). */
		log_warnx("reload: [server] user and group take effect at the "
		    "next restart");
		workers_swap_text(&sup.cfg->run_user, &next->run_user);
		workers_swap_text(&sup.cfg->run_group, &next->run_group);
	}
	quota_service_reload(next);
	control_sup_set_config(next);
	config_free(sup.cfg);
	sup.cfg = next;
	log_set_level(next->log_level);
	log_set_target(next->log_target == LOG_TARGET_SYSLOG);
	workers_reload_start();
}

/*
 * A worker's first report says its listeners are open: READY=1 goes out
 * when every first worker has sent one (a restarted worker's comes after
 * it). Later ones end a reload; workers_reload_progress sees the rest.
 * Every write is one whole record, so whole records are read.
 */
void
workers_read_reports(void)
{
	struct workers_report r;
	struct worker *w;

	while (read(sup.report_read, &r, sizeof(r)) == (ssize_t)sizeof(r)) {
		/* NULL: from a worker reaped since. */
		if ((w = workers_find(r.pid)) == NULL)
			continue;
		if (!w->ready) {
			w->ready = true;
			sup.nready++;
		}
		if (r.generation == sup.generation)
			w->awaited = false;
	}
	if (sup.announced || sup.stopping || sup.nready < sup.count)
		return;
	sup.announced = true;
	log_info("supervisor: %u workers ready", sup.count);
	notify_status("READY=1", false, metrics_sessions_active());
}
