/*
 * The control socket ([control] socket, socks5d ctl): a Unix socket only
 * the daemon's own user (and root) may use, answering one request per
 * connection about the sessions of this process. With [server] workers the
 * supervisor owns the socket (control_sup.c) and asks each worker over a
 * socket pair that the worker serves here.
 */
#ifndef SOCKS5D_CONTROL_H
#define SOCKS5D_CONTROL_H

#include <stdbool.h>
#include <sys/types.h>

#include "socks5d/config.h"

struct server;

/* Open and listen on cfg's [control] socket: mode 0600, owned by
 * [server] user when root starts the daemon, a stale socket file of a
 * dead daemon replaced. Returns the fd, or -1 (logged). */
int control_socket_open(const struct config *cfg);
/* Close fd and remove the socket file at path. */
void control_socket_close(int fd, const char *path);
/* May the peer of this accepted connection ask? root or our own user. */
bool control_peer_allowed(int fd);

/* A serving process: answer on [control] socket (when set and own_socket:
 * the only process), or on worker_fd (a worker's line to the supervisor,
 * or -1). 0, or -1 (logged) when the socket cannot be opened. */
int control_start(struct server *srv, bool own_socket, int worker_fd);
/* Close the socket and every control connection. */
void control_stop(struct server *srv);

#endif
