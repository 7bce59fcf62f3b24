/*
 * The process-wide state one event loop serves: the loaded configuration,
 * the listeners, the shared services (resolver, auth, pipe pool) and the
 * list of live sessions.
 */
#ifndef SOCKS5D_SERVER_H
#define SOCKS5D_SERVER_H

#include <stdbool.h>
#include <ev.h>

#include "socks5d/config.h"
#include "socks5d/heap.h"
#include "socks5d/pipe_pool.h"

struct session;
struct listener;
struct resolver;
struct auth;
struct limits;
struct server_signals;

struct server {
	struct ev_loop *loop;
	struct config *cfg;
	struct listener *listeners;
	size_t nlisteners;
	bool activated;                /* listeners came from systemd */
	struct resolver *resolver;
	struct auth *auth;
	struct limits *limits;
	unsigned config_generation;    /* bumped by every reload */
	struct pipe_pool pipes;
	struct session *sessions;      /* doubly linked, newest first */
	unsigned nsessions;
	uint64_t next_session_id;      /* for socks5d ctl */
	struct control *control;       /* [control] socket, or NULL */
	unsigned ntls;                 /* of them, with a TLS connection */
	unsigned max_clients;          /* in effect: see nofile_fit() */
	struct heap_watch heap;        /* gives memory back after bursts */
	ev_timer quota_sweep;          /* ends idle sessions whose user's
	                                * quota another session used up */
	bool stopping;
	struct server_signals *signals;
};

/* A session ended: during a graceful stop, the last one ends the loop. */
void server_session_ended(struct server *srv);

/* Serve with this configuration until SIGTERM or SIGINT. Takes ownership
 * of cfg. Returns the process exit status. */
int server_run(struct config *cfg);

#endif
