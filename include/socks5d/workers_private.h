/*
 * Private to the [server] workers supervisor, shared by src/workers.c (the
 * processes: fork, restart, signals, the poll loop) and src/workers_reload.c
 * (the report pipe: start-up READY=1 and reloads). Nothing else includes it.
 */
#ifndef SOCKS5D_WORKERS_PRIVATE_H
#define SOCKS5D_WORKERS_PRIVATE_H

#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

#include "socks5d/config.h"

struct worker {
	pid_t pid;                     /* 0: not running */
	double started;
	double restart_at;             /* when pid is 0 and a restart is due */
	bool ready;                    /* it reported its listeners open */
	bool awaited;                  /* the reload in progress waits for it */
};

struct workers_supervisor {
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
};

/* The supervisor's state (defined in workers.c). */
extern struct workers_supervisor sup;

/* workers.c */
double workers_now(void);
struct worker *workers_find(pid_t pid);

/* workers_reload.c: in a new worker, where to report and the generation
 * of the configuration it runs; in the supervisor, SIGHUP, the reload
 * deadline and the report pipe's read end. */
void workers_worker_report_to(int fd, unsigned generation);
void workers_reload(void);
void workers_reload_progress(double now);
void workers_read_reports(void);

#endif
