/*
 * The supervisor of [server] workers. It serves no client and runs no event
 * loop: one poll() on a signalfd (SIGCHLD, SIGHUP, SIGTERM, SIGINT) and on
 * the pipe where each worker reports that its listeners are open and, later,
 * that it has finished each reload. Workers are forked from it and run
 * server_run() like a single process would.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "socks5d/listener.h"
#include "socks5d/log.h"
#include "socks5d/metrics.h"
#include "socks5d/notify.h"
#include "socks5d/server.h"
#include "socks5d/workers.h"

/* A worker that dies is started again at most this often (per slot), so a
 * crash loop costs one fork a second, not a spinning supervisor. */
#define WORKERS_RESTART_INTERVAL 1.0
/* How often STATUS= is refreshed while the session count changes. */
#define WORKERS_STATUS_INTERVAL  5.0
/* How long READY=1 after a reload waits for the workers: a stuck one must
 * not leave the unit reloading for ever. */
#define WORKERS_RELOAD_TIMEOUT   10.0
/* How often the workers' open descriptors are counted for /metrics. */
#define WORKERS_FDS_INTERVAL     1.0

struct worker {
	pid_t pid;                     /* 0: not running */
	double started;
	double restart_at;             /* when pid is 0 and a restart is due */
	bool ready;                    /* it reported its listeners open */
	bool awaited;                  /* the reload in progress waits for it */
};

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

static struct {
	struct config *cfg;
	unsigned count;
	struct worker slots[CONFIG_MAX_WORKERS];
	unsigned running;
	pid_t pid;
	int sigfd;
	int report_read, report_write;
	sigset_t old_mask;
	bool activated;                /* the workers share systemd's sockets */
	unsigned nready;               /* workers that reported ready */
	bool announced;                /* READY=1 went out */
	unsigned generation;           /* of sup.cfg: +1 per accepted reload */
	unsigned *shared_generation;   /* the same, where workers read it */
	bool reloading;                /* READY=1 waits for awaited workers */
	double reload_deadline;
	bool stopping;
	bool failed;                   /* start-up failed: exit non-zero */
	double next_watchdog, watchdog_interval;
	double next_status;
	unsigned last_status;
	double next_fds;
} sup = { .sigfd = -1, .report_read = -1, .report_write = -1 };

/* In a worker: where to report, the generation of the configuration it
 * runs (or last read), and the supervisor's pid. */
static int worker_report_fd = -1;
static unsigned worker_generation;
static pid_t worker_parent;
static char worker_tag[32];

unsigned
workers_count(const struct config *cfg)
{
	long cpus;

	if (cfg->workers != 0)
		return cfg->workers;
	cpus = sysconf(_SC_NPROCESSORS_ONLN);
	if (cpus < 1)
		return 1;
	return cpus > CONFIG_MAX_WORKERS ? CONFIG_MAX_WORKERS : (unsigned)cpus;
}

static double
workers_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* -- in a worker -------------------------------------------------------- */

/* The supervisor is gone (or about to be): stop like on SIGTERM. */
static void
workers_arm_parent_death(void)
{
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) == -1)
		log_warn("prctl(PR_SET_PDEATHSIG)");
	if (getppid() != worker_parent)
		kill(getpid(), SIGTERM);
}

void
workers_worker_privdropped(void)
{
	if (worker_parent != 0)
		workers_arm_parent_death();
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

/*
 * SO_REUSEPORT only groups sockets of one owner, and a socket's owner is
 * the fsuid that created it. Workers bind as root and then become
 * [server] user; one restarted later binds as root again, while listeners
 * a reload added were opened as the user. Creating every socket with the
 * user's fsuid keeps them all one owner (binding a port below 1024 is a
 * capability, which a changed fsuid keeps).
 */
static void
workers_set_socket_owner(const struct config *cfg)
{
	struct passwd *pw;

	if (geteuid() != 0 || cfg->run_user == NULL)
		return;
	/* An unknown user fails in privdrop_apply, with the message. */
	if ((pw = getpwnam(cfg->run_user)) != NULL)
		(void)setfsuid(pw->pw_uid);
}

/* The forked child: undo what belongs to the supervisor, then serve. */
static void __attribute__((noreturn))
workers_child(unsigned slot)
{
	struct config *cfg = sup.cfg;
	sigset_t mask = sup.old_mask;
	char pid[16];

	/* SIGCHLD as before; the stop and reload signals stay blocked until
	 * the worker's loop watches them (server_run unblocks them), so one
	 * passed on during start-up is held, not fatal. */
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_SETMASK, &mask, NULL);
	close(sup.sigfd);
	close(sup.report_read);
	/* Only the supervisor speaks for the service. */
	notify_close(NULL);
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	if (sup.activated) {
		/* The inherited sockets are this worker's to accept on. */
		snprintf(pid, sizeof(pid), "%ld", (long)getpid());
		setenv("LISTEN_PID", pid, 1);
	}
	worker_report_fd = sup.report_write;
	worker_generation = sup.generation;
	worker_parent = sup.pid;
	workers_arm_parent_death();
	snprintf(worker_tag, sizeof(worker_tag), "[worker %u] ", slot + 1);
	log_set_tag(worker_tag);
	metrics_use_slot(slot);
	listener_set_reuseport(true);
	workers_set_socket_owner(cfg);
	sup.cfg = NULL;
	exit(server_run(cfg));
}

/* -- the supervisor ----------------------------------------------------- */

static int
workers_spawn(unsigned slot)
{
	struct worker *w = &sup.slots[slot];
	pid_t pid;

	if ((pid = fork()) == -1) {
		log_warn("worker %u: fork", slot + 1);
		w->restart_at = workers_now() + WORKERS_RESTART_INTERVAL;
		return -1;
	}
	if (pid == 0)
		workers_child(slot);
	w->pid = pid;
	w->started = workers_now();
	w->ready = false;
	w->awaited = false;
	sup.running++;
	metrics_slot_running(slot, true);
	log_info("worker %u started (pid %ld)", slot + 1, (long)pid);
	return 0;
}

static void
workers_signal_all(int signum)
{
	for (unsigned i = 0; i < sup.count; i++)
		if (sup.slots[i].pid != 0)
			kill(sup.slots[i].pid, signum);
}

static void
workers_stop(int signum)
{
	if (sup.stopping) {
		log_info("signal %d: passing it on, workers stop now", signum);
		workers_signal_all(signum);
		return;
	}
	sup.stopping = true;
	/* STOPPING=1 ends a reload as far as systemd is concerned. */
	sup.reloading = false;
	notify_status("STOPPING=1", true, metrics_sessions_active());
	log_info("signal %d: stopping %u worker(s)", signum, sup.running);
	workers_signal_all(signum);
}

/* A reload's state change, once READY=1 has gone out (not before: a
 * READY=1 then would announce workers still starting). */
static void
workers_notify(const char *state)
{
	if (sup.announced)
		notify_status(state, false, metrics_sessions_active());
}

static struct worker *
workers_find(pid_t pid)
{
	for (unsigned i = 0; i < sup.count; i++)
		if (sup.slots[i].pid == pid)
			return &sup.slots[i];
	return NULL;
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
static void
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
static void
workers_reload(void)
{
	struct config *next;
	char *errors = NULL;
	size_t errlen = 0;
	FILE *errstream;

	workers_notify("RELOADING=1");
	log_info("reloading %s", sup.cfg->path);
	if ((errstream = open_memstream(&errors, &errlen)) == NULL) {
		log_warn("reload: open_memstream");
		workers_reload_rejected();
		return;
	}
	next = config_load(sup.cfg->path, errstream);
	fclose(errstream);
	if (next == NULL) {
		log_error_lines("reload rejected: ", errors);
		free(errors);
		log_error("reload rejected: the old configuration stays in "
		    "force");
		workers_reload_rejected();
		return;
	}
	free(errors);
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
	config_free(sup.cfg);
	sup.cfg = next;
	log_set_level(next->log_level);
	log_set_target(next->log_target == LOG_TARGET_SYSLOG);
	workers_reload_start();
}

static void
workers_exited(pid_t pid, int status)
{
	struct worker *w;
	unsigned slot;
	double now = workers_now();

	if ((w = workers_find(pid)) == NULL)
		return;
	slot = (unsigned)(w - sup.slots);
	w->pid = 0;
	/* Its replacement starts with the new file: no answer to wait for. */
	w->awaited = false;
	sup.running--;
	metrics_slot_running(slot, false);
	if (sup.stopping) {
		log_info("worker %u (pid %ld) stopped", slot + 1, (long)pid);
		return;
	}
	if (WIFSIGNALED(status))
		log_error("worker %u (pid %ld) killed by signal %d", slot + 1,
		    (long)pid, WTERMSIG(status));
	else
		log_error("worker %u (pid %ld) exited with status %d",
		    slot + 1, (long)pid, WEXITSTATUS(status));
	if (!sup.announced) {
		/* It never got its listeners open: the config or the host
		 * is wrong, and trying again will not fix it. */
		log_error("start-up failed: stopping the other workers");
		sup.failed = true;
		sup.stopping = true;
		workers_signal_all(SIGTERM);
		return;
	}
	w->restart_at = w->started + WORKERS_RESTART_INTERVAL;
	if (w->restart_at < now)
		w->restart_at = now;
	else
		log_warnx("worker %u: restarting in %.1fs", slot + 1,
		    w->restart_at - now);
}

static void
workers_reap(void)
{
	pid_t pid;
	int status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		workers_exited(pid, status);
}

static void
workers_read_signals(void)
{
	struct signalfd_siginfo si;

	while (read(sup.sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGCHLD:
			workers_reap();
			break;
		case SIGHUP:
			if (!sup.stopping)
				workers_reload();
			break;
		case SIGTERM:
		case SIGINT:
			workers_stop((int)si.ssi_signo);
			break;
		}
	}
}

/*
 * socks5d_open_fds for every worker. A worker that dropped privileges
 * cannot read a sibling's /proc/PID/fd, and counting its own on a timer
 * would cost its loop a scan of up to max_clients entries: the supervisor,
 * which serves no traffic, counts them all. A count that fails keeps the
 * previous one.
 */
static void
workers_count_fds(void)
{
	for (unsigned i = 0; i < sup.count; i++) {
		long n;

		if (sup.slots[i].pid == 0)
			continue;
		if ((n = metrics_count_fds(sup.slots[i].pid)) >= 0)
			metrics_slot_fds(i, (uint64_t)n);
	}
}

static void
workers_timers(double now)
{
	unsigned sessions;

	if (sup.watchdog_interval > 0 && now >= sup.next_watchdog) {
		notify_watchdog();
		sup.next_watchdog = now + sup.watchdog_interval;
	}
	if (now >= sup.next_status) {
		sessions = metrics_sessions_active();
		if (sup.announced && sessions != sup.last_status)
			notify_status("", sup.stopping, sessions);
		sup.last_status = sessions;
		sup.next_status = now + WORKERS_STATUS_INTERVAL;
	}
	if (now >= sup.next_fds) {
		workers_count_fds();
		sup.next_fds = now + WORKERS_FDS_INTERVAL;
	}
	if (sup.stopping)
		return;
	workers_reload_progress(now);
	for (unsigned i = 0; i < sup.count; i++) {
		struct worker *w = &sup.slots[i];

		if (w->pid == 0 && w->restart_at <= now)
			(void)workers_spawn(i);
	}
}

/* Milliseconds until the next timer is due, for poll(). */
static int
workers_poll_timeout(double now)
{
	double next = sup.next_status;

	if (sup.next_fds < next)
		next = sup.next_fds;
	if (sup.watchdog_interval > 0 && sup.next_watchdog < next)
		next = sup.next_watchdog;
	if (sup.reloading && sup.reload_deadline < next)
		next = sup.reload_deadline;
	for (unsigned i = 0; i < sup.count && !sup.stopping; i++)
		if (sup.slots[i].pid == 0 && sup.slots[i].restart_at < next)
			next = sup.slots[i].restart_at;
	if (next <= now)
		return 0;
	return (int)((next - now) * 1000) + 1;
}

/*
 * Bind each listen address once without SO_REUSEPORT, and let go: another
 * daemon already on a port then fails start-up here, with the usual
 * EADDRINUSE, instead of silently sharing it with the workers.
 */
static int
workers_probe_listeners(const struct config *cfg)
{
	int fd;

	for (size_t i = 0; i < cfg->nlisten; i++) {
		if ((fd = listener_socket(&cfg->listen[i], 1, "listen")) == -1)
			return -1;
		close(fd);
	}
	if (cfg->metrics_listen.len != 0) {
		if ((fd = listener_socket(&cfg->metrics_listen, 1,
		    "metrics listen")) == -1)
			return -1;
		close(fd);
	}
	return 0;
}

/* Sockets of systemd socket activation meant for this process stay open
 * here, so every worker, restarted ones too, inherits them. */
static void
workers_take_activation(void)
{
	const char *pid = getenv("LISTEN_PID");

	sup.activated = pid != NULL && getenv("LISTEN_FDS") != NULL &&
	    strtol(pid, NULL, 10) == (long)getpid();
}

/*
 * A worker's first report says its listeners are open: READY=1 goes out
 * when every first worker has sent one (a restarted worker's comes after
 * it). Later ones end a reload; workers_reload_progress sees the rest.
 * Every write is one whole record, so whole records are read.
 */
static void
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

static int
workers_setup(void)
{
	sigset_t mask;
	int report[2];

	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	if (sigprocmask(SIG_BLOCK, &mask, &sup.old_mask) == -1) {
		log_warn("sigprocmask");
		return -1;
	}
	sup.sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sup.sigfd == -1) {
		log_warn("signalfd");
		return -1;
	}
	/* Both ends non-blocking: the supervisor drains it from poll(), and
	 * a worker never waits on it (workers_worker_report). */
	if (pipe2(report, O_CLOEXEC | O_NONBLOCK) == -1) {
		log_warn("pipe");
		return -1;
	}
	sup.report_read = report[0];
	sup.report_write = report[1];
	sup.shared_generation = mmap(NULL, sizeof(*sup.shared_generation),
	    PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sup.shared_generation == MAP_FAILED) {
		sup.shared_generation = NULL;
		log_warn("mmap");
		return -1;
	}
	if (metrics_share(sup.count) == -1)
		return -1;
	(void)notify_open();
	sup.watchdog_interval = notify_watchdog_seconds() / 2;
	return 0;
}

int
workers_run(struct config *cfg)
{
	struct pollfd pfd[2];
	double now;

	sup.cfg = cfg;
	sup.count = workers_count(cfg);
	sup.pid = getpid();
	log_set_level(cfg->log_level);
	log_set_target(cfg->log_target == LOG_TARGET_SYSLOG);
	workers_take_activation();
	if ((!sup.activated && workers_probe_listeners(cfg) == -1) ||
	    workers_setup() == -1) {
		sup.failed = true;
		goto out;
	}
	log_info("supervisor: starting %u workers", sup.count);
	for (unsigned i = 0; i < sup.count; i++)
		if (workers_spawn(i) == -1) {
			sup.failed = true;
			sup.stopping = true;
			workers_signal_all(SIGTERM);
			break;
		}
	now = workers_now();
	sup.next_watchdog = now;
	sup.next_status = now + WORKERS_STATUS_INTERVAL;
	pfd[0].fd = sup.sigfd;
	pfd[0].events = POLLIN;
	pfd[1].fd = sup.report_read;
	pfd[1].events = POLLIN;
	while (!sup.stopping || sup.running > 0) {
		now = workers_now();
		workers_timers(now);
		if (sup.stopping && sup.running == 0)
			break;
		if (poll(pfd, 2, workers_poll_timeout(workers_now())) == -1 &&
		    errno != EINTR) {
			log_warn("poll");
			break;
		}
		if (pfd[1].revents & POLLIN)
			workers_read_reports();
		if (pfd[0].revents & POLLIN)
			workers_read_signals();
	}
out:
	if (sup.running > 0) {
		/* A poll failure: do not leave workers without a parent
		 * that restarts them; they get SIGTERM from their death
		 * signal anyway. */
		workers_signal_all(SIGTERM);
	}
	notify_close(NULL);
	if (sup.sigfd != -1)
		close(sup.sigfd);
	if (sup.report_read != -1)
		close(sup.report_read);
	if (sup.report_write != -1)
		close(sup.report_write);
	if (sup.shared_generation != NULL)
		munmap(sup.shared_generation, sizeof(*sup.shared_generation));
	config_free(sup.cfg);
	sup.cfg = NULL;
	return sup.failed || sup.running > 0 ? 1 : 0;
}
