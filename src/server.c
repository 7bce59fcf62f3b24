/*
 * One serving process from start to exit: bind the listeners, give up root,
 * start the shared services, run the loop; SIGHUP reloads the config
 * (all or nothing), SIGTERM/SIGINT stop accepting and give sessions
 * [timeouts] shutdown seconds to finish.
 */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "socks5d/auth.h"
#include "socks5d/control.h"
#include "socks5d/limits.h"
#include "socks5d/listener.h"
#include "socks5d/log.h"
#include "socks5d/metrics_http.h"
#include "socks5d/notify.h"
#include "socks5d/nofile.h"
#include "socks5d/policy.h"
#include "socks5d/privdrop.h"
#include "socks5d/quota_service.h"
#include "socks5d/resolver.h"
#include "socks5d/rules.h"
#include "socks5d/server.h"
#include "socks5d/session.h"
#include "socks5d/workers.h"
#include "socks5d/io_batch.h"

/* Idle pipes kept for reuse; each costs two descriptors. */
#define PIPE_POOL_SIZE 64

struct server_signals {
	ev_signal term, intr, hup;
	ev_timer shutdown_timer;
};

static void
server_apply_logging(const struct config *cfg)
{
	log_set_level(cfg->log_level);
	log_set_target(cfg->log_target == LOG_TARGET_SYSLOG);
}

static void
server_shutdown_expired_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct server *srv = w->data;

	(void)revents;
	log_info("shutdown: %u session(s) still open after %us, closing them",
	    srv->nsessions, srv->cfg->timeout_shutdown);
	session_close_all(srv, "shutdown");
	ev_break(loop, EVBREAK_ALL);
}

static void
server_stop_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct server *srv = w->data;
	struct server_signals *sig = srv->signals;

	(void)revents;
	if (srv->stopping) {
		/* A second signal: do not wait any longer. */
		log_info("signal %d: closing %u session(s) now", w->signum,
		    srv->nsessions);
		session_close_all(srv, "shutdown");
		ev_break(loop, EVBREAK_ALL);
		return;
	}
	srv->stopping = true;
	notify_state("STOPPING=1");
	listener_close_all(srv);
	metrics_http_close();
	log_info("signal %d: stopped accepting; %u session(s) may finish "
	    "within %us", w->signum, srv->nsessions,
	    srv->cfg->timeout_shutdown);
	if (srv->nsessions == 0 || srv->cfg->timeout_shutdown == 0) {
		session_close_all(srv, "shutdown");
		ev_break(loop, EVBREAK_ALL);
		return;
	}
	ev_timer_set(&sig->shutdown_timer, srv->cfg->timeout_shutdown, 0.);
	ev_timer_start(loop, &sig->shutdown_timer);
}

void
server_session_ended(struct server *srv)
{
	if (srv->stopping && srv->nsessions == 0)
		ev_break(srv->loop, EVBREAK_ALL);
}

static bool
server_same_text(const char *a, const char *b)
{
	return (a == NULL && b == NULL) ||
	    (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Pools whose addresses this host does not have get no answers: say so
 * when the file is applied. */
static void
server_check_egress(const struct config *cfg)
{
	egress_warn_not_local(&cfg->egress, "[outbound] egress");
	rules_warn_egress(cfg->rules);
}

/* Do the resolver's own settings differ (servers, timeout)? */
static bool
server_dns_changed(const struct config *old, const struct config *new)
{
	return !server_same_text(old->dns_servers, new->dns_servers) ||
	    old->dns_timeout != new->dns_timeout;
}

/* Settings a reload cannot change in a running process. */
static void
server_warn_restart_only(const struct config *old, const struct config *new)
{
	if ((old->run_user == NULL) != (new->run_user == NULL) ||
	    (old->run_user != NULL &&
	    strcmp(old->run_user, new->run_user) != 0))
		log_warnx("reload: [server] user takes effect at the next "
		    "restart");
	if (old->io_uring != new->io_uring)
		log_warnx("reload: [server] io_uring takes effect at the next "
		    "restart");
	if (old->workers != new->workers)
		log_warnx("reload: [server] workers takes effect at the next "
		    "restart");
}

/* Apply the file again, all or nothing; the caller tells systemd (and a
 * worker's supervisor) when this is over, however it ended. */
static void
server_reload_config(struct server *srv)
{
	struct config *next, *old = srv->cfg;
	struct resolver *resolver = NULL;
	unsigned old_max_clients;

	if ((next = config_reload(old->path)) == NULL)
		return;
	/* Activated sockets stay whatever the file says: the new settings
	 * must not make them an open proxy. */
	if (listener_check_activated(srv, next, "reload rejected: ") == -1) {
		log_error("reload rejected: the old configuration stays in "
		    "force");
		config_free(next);
		return;
	}
	/* Every part that can fail is prepared before anything changes. */
	if (server_dns_changed(old, next) &&
	    (resolver = resolver_create(srv->loop, next)) == NULL) {
		log_error("reload rejected: cannot set up the new [dns] "
		    "settings; the old configuration stays in force");
		config_free(next);
		return;
	}
	if (metrics_http_prepare_reload(next) == -1 ||
	    listener_reload(srv, next) == -1) {
		metrics_http_abort_reload();
		resolver_destroy(resolver);
		log_error("reload rejected: cannot open the new listeners; the "
		    "old configuration stays in force");
		config_free(next);
		return;
	}
	metrics_http_commit_reload();
	server_warn_restart_only(old, next);
	if (resolver != NULL) {
		/* Lookups in flight finish on the old one. */
		resolver_retire(srv->resolver);
		srv->resolver = resolver;
		log_info("reload: new [dns] settings in use");
	} else {
		resolver_set_hosts(srv->resolver, next->hosts);
	}
	auth_set_users(srv->auth, next->users);
	next->users = NULL;
	limits_configure(srv->limits, &next->limits);
	quota_service_reload(next);
	old_max_clients = old->max_clients;
	srv->cfg = next;
	srv->config_generation++;
	config_free(old);
	server_apply_logging(next);
	server_check_egress(next);
	if (next->max_clients != old_max_clients)
		srv->max_clients = nofile_fit(next->max_clients);
	log_info("reloaded: %zu listener(s), %u session(s) kept",
	    srv->nlisteners, srv->nsessions);
}

/* A quota used up by one session (or a worker) ends the user's other
 * sessions too, idle ones included; those that move bytes notice at
 * once. Runs only while [quota] sections exist. */
static void
server_quota_sweep_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct server *srv = (struct server *)(void *)((char *)w -
	    offsetof(struct server, quota_sweep));
	struct session *s, *next;

	(void)loop;
	(void)revents;
	for (s = srv->sessions; s != NULL; s = next) {
		next = s->next;
		if (s->nquotas > 0 && policy_quota_exhausted(s))
			session_close(s, "quota");
	}
}

/* [server] reload_recheck: end what the new users file or rules would
 * not let in now. */
static void
server_recheck_sessions(struct server *srv)
{
	struct session *s, *next;
	unsigned ended = 0;

	for (s = srv->sessions; s != NULL; s = next) {
		next = s->next;
		if (!policy_recheck(s)) {
			session_close(s, "reload");
			ended++;
		}
	}
	if (ended > 0)
		log_info("reload: %u session(s) ended: no longer allowed",
		    ended);
}

static void
server_quota_sweep_apply(struct server *srv)
{
	if (quotas_count(srv->cfg->quotas) > 0)
		ev_timer_again(srv->loop, &srv->quota_sweep);
	else
		ev_timer_stop(srv->loop, &srv->quota_sweep);
}

static void
server_reload(struct server *srv)
{
	workers_worker_reloading();
	notify_state("RELOADING=1");
	server_reload_config(srv);
	if (srv->cfg->reload_recheck)
		server_recheck_sessions(srv);
	server_quota_sweep_apply(srv);
	notify_state("READY=1");
	workers_worker_reloaded();
}

static void
server_reload_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct server *srv = w->data;

	(void)loop;
	(void)revents;
	if (!srv->stopping)
		server_reload(srv);
}

static void
server_start_signals(struct server *srv, struct server_signals *sig)
{
	sigset_t mask;

	srv->signals = sig;
	ev_signal_init(&sig->term, server_stop_cb, SIGTERM);
	ev_signal_init(&sig->intr, server_stop_cb, SIGINT);
	ev_signal_init(&sig->hup, server_reload_cb, SIGHUP);
	ev_init(&sig->shutdown_timer, server_shutdown_expired_cb);
	sig->term.data = sig->intr.data = sig->hup.data = srv;
	sig->shutdown_timer.data = srv;
	ev_signal_start(srv->loop, &sig->term);
	ev_signal_start(srv->loop, &sig->intr);
	ev_signal_start(srv->loop, &sig->hup);
	/* A worker starts with them blocked, so one passed on by the
	 * supervisor before now waits for the handlers instead of killing. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_UNBLOCK, &mask, NULL);
}

static void
server_stop_signals(struct server *srv, struct server_signals *sig)
{
	ev_signal_stop(srv->loop, &sig->term);
	ev_signal_stop(srv->loop, &sig->intr);
	ev_signal_stop(srv->loop, &sig->hup);
	ev_timer_stop(srv->loop, &sig->shutdown_timer);
}

int
server_run(struct config *cfg)
{
	struct server srv;
	struct server_signals sig;
	int status = 1;

	memset(&srv, 0, sizeof(srv));
	srv.cfg = cfg;
	server_apply_logging(cfg);
	server_check_egress(cfg);
	srv.max_clients = nofile_fit(cfg->max_clients);
	srv.loop = ev_default_loop(EVFLAG_AUTO);
	if (srv.loop == NULL) {
		log_error("cannot create the event loop");
		goto out;
	}
	/* Signals first: a SIGHUP or SIGTERM that arrives once the
	 * listeners are visible must not meet the default action (death);
	 * libev holds it until the loop runs. */
	server_start_signals(&srv, &sig);
	heap_watch_init(&srv.heap, srv.loop);
	/* Bind first, while privileged ports are still ours to take. */
	if (listener_open_all(&srv) == -1 || metrics_http_open(&srv) == -1)
		goto out;
	/* Before the privileges go: the socket file is made for the user
	 * the daemon becomes. A worker answers its supervisor instead. */
	if (control_start(&srv, !workers_in_worker(),
	    workers_control_fd()) == -1)
		goto out;
	if (privdrop_apply(cfg->run_user, cfg->run_group) == -1)
		goto out;
	workers_worker_privdropped();
	if (pipe_pool_init_system(&srv.pipes, PIPE_POOL_SIZE,
	    workers_count(cfg)) == -1) {
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
	if ((srv.limits = limits_create()) == NULL) {
		log_error("cannot set up [limits]");
		goto out;
	}
	limits_configure(srv.limits, &cfg->limits);
	ev_init(&srv.quota_sweep, server_quota_sweep_cb);
	srv.quota_sweep.repeat = 1.0;
	server_quota_sweep_apply(&srv);
	notify_init(srv.loop, &srv);

	/* Here, in each worker: a ring belongs to one process. */
	if (cfg->io_uring)
		io_batch_start(srv.loop);
	listener_start_all(&srv);
	log_info("socks5d ready: %zu listener(s), auth %s, relay %s%s",
	    srv.nlisteners, cfg->auth_method == AUTH_PASSWORD ? "password" :
	    "none", cfg->relay == RELAY_SPLICE ? "splice" : "copy",
	    io_batch_enabled() ? ", socket calls batched (io_uring)" : "");
	notify_state("READY=1");
	workers_worker_ready();

	ev_run(srv.loop, 0);
	status = 0;
out:
	if (srv.loop != NULL) {
		server_stop_signals(&srv, &sig);
		listener_close_all(&srv);
		metrics_http_close();
		control_stop(&srv);
		session_close_all(&srv, "shutdown");
		ev_timer_stop(srv.loop, &srv.quota_sweep);
		heap_watch_stop(&srv.heap);
		notify_close(srv.loop);
	}
	auth_destroy(srv.auth);
	resolver_destroy(srv.resolver);
	if (srv.limits != NULL)
		limits_destroy(srv.limits);
	pipe_pool_clear(&srv.pipes);
	io_batch_stop();
	if (srv.loop != NULL)
		ev_loop_destroy(srv.loop);
	/* The last write: after every session counted its bytes. */
	quota_service_stop();
	config_free(srv.cfg);
	return status;
}
