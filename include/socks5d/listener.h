/*
 * Listening sockets: open them from the config, accept clients in bounded
 * batches, enforce max_clients, and back off on descriptor exhaustion
 * instead of spinning.
 */
#ifndef SOCKS5D_LISTENER_H
#define SOCKS5D_LISTENER_H

#include <stdbool.h>
#include <ev.h>

#include "socks5d/config.h"
#include "socks5d/server.h"

struct listener {
	struct server *srv;
	int fd;
	ev_io io;
	struct config_addr addr;
	bool tls;              /* a [tls] listen socket */
};

/* Take the sockets of systemd socket activation when $LISTEN_PID names
 * this process (those bound to a [tls] listen address serve TLS), else
 * open every [server] and [tls] listen address. Returns 0, or -1
 * with errors logged (and nothing left open). */
int listener_open_all(struct server *srv);
/* Move to cfg's listen addresses: keep sockets whose address stays, open
 * new ones, close removed ones. All or nothing: returns -1 (logged) with
 * the old listeners untouched. Socket-activated listeners are kept. */
int listener_reload(struct server *srv, const struct config *cfg);
void listener_start_all(struct server *srv);
/*
 * The open-proxy guard for the sockets of systemd socket activation,
 * which no [server] listen names: by the address each is bound to, is cfg
 * allowed to serve it (config_listener_allowed)? Returns 0, or -1 with
 * one error per open socket logged after prefix. _activation looks at the
 * sockets $LISTEN_PID/$LISTEN_FDS hand this process (before they are
 * taken); _activated at the listeners srv took (none unless activated).
 */
int listener_check_activation(const struct config *cfg, const char *prefix);
int listener_check_activated(const struct server *srv,
    const struct config *cfg, const char *prefix);
/* A non-blocking listening TCP socket on addr (IPv6 ones IPv6-only), or -1
 * with the failure logged as "WHAT ADDR: call: error". */
int listener_socket(const struct config_addr *addr, int backlog,
    const char *what);
void listener_stop_all(struct server *srv);
/* Set SO_REUSEPORT on every socket listener_socket opens from now on
 * (workers: each binds the same addresses). */
void listener_set_reuseport(bool on);
void listener_close_all(struct server *srv);

#endif
