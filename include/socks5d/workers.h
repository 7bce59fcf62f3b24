/*
 * [server] workers: a supervisor process that forks the serving processes
 * (each a normal single-loop server binding its listeners with
 * SO_REUSEPORT), restarts one that dies, passes signals on and speaks
 * sd_notify for all of them; and the few hooks a worker calls back.
 */
#ifndef SOCKS5D_WORKERS_H
#define SOCKS5D_WORKERS_H

#include "socks5d/config.h"

/* How many serving processes cfg asks for: [server] workers, with 0 meaning
 * workers_for_cpus(online CPUs). */
unsigned workers_count(const struct config *cfg);

/* The automatic count: one worker per CPU but one (left to the kernel's
 * share of relaying), at least 1, at most CONFIG_MAX_WORKERS. */
unsigned workers_for_cpus(long cpus);

/* Supervise workers_count(cfg) workers until SIGTERM or SIGINT. Takes
 * ownership of cfg. Returns the process exit status. */
int workers_run(struct config *cfg);

/* In a worker: true, and the worker's end of its control socket pair
 * (-1 without [control] socket). In one process: false and -1. */
bool workers_in_worker(void);
int workers_control_fd(void);

/* In a worker (no-ops in a single process): privileges were dropped, so
 * re-arm the parent-death signal the credential change cleared; the
 * listeners are open and the loop is about to run; a SIGHUP is being
 * handled (before the file is read), and its handling is over, applied or
 * rejected (the supervisor's READY=1 waits for that). */
void workers_worker_privdropped(void);
void workers_worker_ready(void);
void workers_worker_reloading(void);
void workers_worker_reloaded(void);

#endif
