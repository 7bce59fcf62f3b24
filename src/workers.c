/*
 * The supervisor of [server] workers, as processes: fork, restart with
 * backoff, signals passed on, its timers and its exit. What the workers
 * report on their pipe, and the reloads, are workers_reload.c's.
 *
 * It serves no client and runs no event loop: one poll() on a signalfd
 * (SIGCHLD, SIGHUP, SIGTERM, SIGINT) and on the pipe where each worker
 * reports that its listeners are open and, later, that it has finished
 * each reload. Workers are forked from it and run server_run() like a
 * single process would.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
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
#include "socks5d/control_sup.h"
#include "socks5d/quota_service.h"
#include "socks5d/server.h"
#include "socks5d/tls_ctx.h"
#include "socks5d/workers.h"
#include "socks5d/workers_private.h"

/* A worker that dies is started again at most this often (per slot), so a
 * crash loop costs one fork a second, not a spinning supervisor. */
#define WORKERS_RESTART_INTERVAL 1.0
/* How often STATUS= is refreshed while the session count changes. */
#define WORKERS_STATUS_INTERVAL  5.0
/* How often the workers' open descriptors are counted for /metrics. */
#define WORKERS_FDS_INTERVAL     1.0

struct workers_supervisor sup = {
	.sigfd = -1, .report_read = -1, .report_write = -1
};

/* In a worker: the supervisor's pid. */
static pid_t worker_parent;
static char worker_tag[32];

/*
 * A splice relay's bytes are moved by the kernel (TCP, splice, softirq
 * work), which runs beside the workers on the same CPUs. One CPU is left
 * to it: on the two-CPU benchmark machine one worker beats two in
 * alternating pairs (RESULTS.md) on small messages and new connections,
 * because two workers mostly trade wake-ups across CPUs.
 */
unsigned
workers_for_cpus(long cpus)
{
	if (cpus <= 2)
		return 1;
	return cpus - 1 > CONFIG_MAX_WORKERS ? CONFIG_MAX_WORKERS :
	    (unsigned)(cpus - 1);
}

unsigned
workers_count(const struct config *cfg)
{
	if (cfg->workers != 0)
		return cfg->workers;
	return workers_for_cpus(sysconf(_SC_NPROCESSORS_ONLN));
}

double
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

/* A worker's end of its control socket pair; -1 without one. */
static int worker_control_fd = -1;
static bool worker_is_child;

bool
workers_in_worker(void)
{
	return worker_is_child;
}

int
workers_control_fd(void)
{
	return worker_control_fd;
}

/* The forked child: undo what belongs to the supervisor, then serve. */
static void __attribute__((noreturn))
workers_child(unsigned slot, int control_end)
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
	control_sup_child(control_end);
	worker_control_fd = control_end;
	worker_is_child = true;
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
	workers_worker_report_to(sup.report_write, sup.generation);
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
	int control_end = control_sup_pair(slot);
	pid_t pid;

	/* The supervisor's threads wait while it forks (control_sup_pair
	 * holds the control thread). */
	quota_service_fork_prepare();
	if ((pid = fork()) == -1) {
		log_warn("worker %u: fork", slot + 1);
		quota_service_fork_done();
		control_sup_forked(control_end);
		w->restart_at = workers_now() + WORKERS_RESTART_INTERVAL;
		return -1;
	}
	if (pid == 0)
		workers_child(slot, control_end);
	quota_service_fork_done();
	control_sup_forked(control_end);
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

struct worker *
workers_find(pid_t pid)
{
	for (unsigned i = 0; i < sup.count; i++)
		if (sup.slots[i].pid == pid)
			return &sup.slots[i];
	return NULL;
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
	control_sup_worker_gone(slot);
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

	tls_tickets_advance();
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
	for (size_t i = 0; i < cfg->tls_nlisten; i++) {
		if ((fd = listener_socket(&cfg->tls_listen[i], 1,
		    "tls listen")) == -1)
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
	    workers_setup() == -1 || control_sup_start(cfg, sup.count) == -1) {
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
	control_sup_stop();
	/* The workers are gone: their counts are all in. */
	quota_service_stop();
	config_free(sup.cfg);
	sup.cfg = NULL;
	return sup.failed || sup.running > 0 ? 1 : 0;
}
