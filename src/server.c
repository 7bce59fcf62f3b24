/*
 * Start-up and shutdown of one serving process: open the listeners, set up
 * the shared services, run the loop, and on SIGTERM/SIGINT stop accepting,
 * close every session and release everything.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "socks5d/auth.h"
#include "socks5d/listener.h"
#include "socks5d/log.h"
#include "socks5d/resolver.h"
#include "socks5d/server.h"
#include "socks5d/session.h"

/* Idle pipes kept for reuse; each costs two descriptors. */
#define PIPE_POOL_SIZE 64

static void
server_stop_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct server *srv = w->data;

	(void)revents;
	log_info("signal %d: shutting down (%u session(s))", w->signum,
	    srv->nsessions);
	srv->stopping = true;
	listener_close_all(srv);
	session_close_all(srv, "shutdown");
	ev_break(loop, EVBREAK_ALL);
}

int
server_run(struct config *cfg)
{
	struct server srv;
	ev_signal sigterm, sigint;
	int status = 1;

	memset(&srv, 0, sizeof(srv));
	srv.cfg = cfg;
	srv.loop = ev_default_loop(EVFLAG_AUTO);
	if (srv.loop == NULL) {
		log_error("cannot create the event loop");
		goto out;
	}
	if (pipe_pool_init(&srv.pipes, PIPE_POOL_SIZE) == -1) {
		log_error("cannot create pipes");
		goto out;
	}
	if ((srv.resolver = resolver_create(srv.loop, cfg)) == NULL)
		goto out;
	if ((srv.auth = auth_create(srv.loop)) == NULL) {
		log_error("cannot start the password verifier");
		goto out;
	}
	auth_set_users(srv.auth, cfg->users);
	cfg->users = NULL;
	if (listener_open_all(&srv) == -1)
		goto out;

	ev_signal_init(&sigterm, server_stop_cb, SIGTERM);
	ev_signal_init(&sigint, server_stop_cb, SIGINT);
	sigterm.data = sigint.data = &srv;
	ev_signal_start(srv.loop, &sigterm);
	ev_signal_start(srv.loop, &sigint);
	listener_start_all(&srv);
	log_info("socks5d ready: %zu listener(s), auth %s, relay %s",
	    srv.nlisteners, cfg->auth_method == AUTH_PASSWORD ? "password" :
	    "none", cfg->relay == RELAY_SPLICE ? "splice" : "copy");

	ev_run(srv.loop, 0);
	ev_signal_stop(srv.loop, &sigterm);
	ev_signal_stop(srv.loop, &sigint);
	status = 0;
out:
	if (srv.loop != NULL) {
		listener_close_all(&srv);
		session_close_all(&srv, "shutdown");
	}
	auth_destroy(srv.auth);
	resolver_destroy(srv.resolver);
	pipe_pool_clear(&srv.pipes);
	if (srv.loop != NULL)
		ev_loop_destroy(srv.loop);
	config_free(cfg);
	return status;
}
