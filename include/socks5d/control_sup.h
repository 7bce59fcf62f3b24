/*
 * The supervisor's control socket under [server] workers (control_sup.c):
 * a thread answers socks5d ctl by asking every worker over a socket pair
 * made for it at each spawn.
 */
#ifndef SOCKS5D_CONTROL_SUP_H
#define SOCKS5D_CONTROL_SUP_H

#include "socks5d/config.h"

/* Open cfg's [control] socket (none: nothing to do) and start the
 * thread, for nslots workers. -1 (logged) when it cannot. */
int control_sup_start(const struct config *cfg, unsigned nslots);

/*
 * Around each fork of a worker: pair() makes the slot's socket pair and
 * returns the worker's end (-1 without a control socket), holding the
 * thread off until forked() (in the supervisor, with that end, which it
 * closes) or child() (in the worker, which keeps that end and closes every
 * other descriptor of the supervisor's control).
 */
int control_sup_pair(unsigned slot);
void control_sup_forked(int worker_end);
void control_sup_child(int keep);

/* A worker exited: its pair is closed. */
void control_sup_worker_gone(unsigned slot);
/* A reload: the quotas "users" reports come from cfg from now on (call
 * before the old one is freed). */
void control_sup_set_config(const struct config *cfg);
/* Stop the thread, close everything, remove the socket file. */
void control_sup_stop(void);

#endif
