/*
 * The process-wide side of quotas: the usage table every process counts
 * into, made before the workers fork, and in the process that owns it
 * (the supervisor, or the only process) the state file read at start and
 * the thread that keeps it current until the stop.
 */
#ifndef SOCKS5D_QUOTA_SERVICE_H
#define SOCKS5D_QUOTA_SERVICE_H

#include "socks5d/config.h"
#include "socks5d/quota.h"

/* How often the state file is rewritten when usage changed: a crash
 * loses at most this much counting. */
#define QUOTA_SAVE_SECONDS 5
#define QUOTA_STATE_FILE   "quota.state"

/* Make the table (once) and, when cfg has [quota] sections, load the
 * state file (a corrupt one is set aside as .bad, logged) and start the
 * writer. The caller becomes the owner. -1 only when the table cannot be
 * made. */
int quota_service_start(const struct config *cfg);

/* The owner took a new config: its quotas from now on (the writer starts
 * with the first [quota] section a reload brings). Call before the old
 * config is freed. */
void quota_service_reload(const struct config *next);

/* The owner stops: a last write, and the thread joins. Elsewhere (a
 * worker) nothing. */
void quota_service_stop(void);

/* Around the supervisor's fork of a worker: the writer thread waits. */
void quota_service_fork_prepare(void);
void quota_service_fork_done(void);

/* The shared table, or NULL before quota_service_start. */
struct quota_table *quota_service_table(void);

#endif
