/*
 * Sessions: creation on accept, the one timer, the hand-off to the relay,
 * error replies with a lingering close, and session_close, the single way
 * a session ends (it also writes the session's access-log line).
 */
#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <openssl/err.h>

#include "socks5d/addr.h"
#include "socks5d/auth.h"
#include "socks5d/command.h"
#include "socks5d/frontend.h"
#include "socks5d/happy.h"
#include "socks5d/inspect.h"
#include "socks5d/intercept.h"
#include "socks5d/upstream_dial.h"
#include "socks5d/log.h"
#include "socks5d/limits.h"
#include "socks5d/metrics.h"
#include "socks5d/metrics_users.h"
#include "socks5d/policy.h"
#include "socks5d/session.h"
#include "socks5d/tls_io.h"

/* How long an error reply may wait for the client to read it and close. */
#define LINGER_SECONDS      2.0
/* How much a lingering client may still send before we stop caring. */
#define LINGER_MAX_BYTES    (64 * 1024)

#define SESSION_OF(w, member) \
	((struct session *)((char *)(w) - offsetof(struct session, member)))

static const char *const state_names[] = {
	[SESSION_TLS] = "tls",
	[SESSION_HANDSHAKE] = "handshake",
	[SESSION_AUTH_WAIT] = "auth-wait",
	[SESSION_RESOLVING] = "resolving",
	[SESSION_WAITING] = "waiting",
	[SESSION_RELAY] = "relay",
	[SESSION_LINGER] = "linger",
};

/* Move the session in the open-sessions gauge to the command its request
 * named. The request is parsed in the handshake, and every command changes
 * state (or closes) before it waits for anything, so the move is seen
 * here without a call on any per-event path. */
static void
session_sync_active(struct session *s)
{
	if (s->cmd == s->active_cmd)
		return;
	metrics_add_active(s->active_cmd, -1);
	if (s->user_stats != NULL)
		metrics_user_count(s->user_stats, 1, 0, 0);
	metrics_add_active(s->cmd, 1);
	s->active_cmd = s->cmd;
}

void
session_set_state(struct session *s, enum session_state state)
{
	if (log_enabled(LOG_LEVEL_DEBUG)) {
		char client[ADDR_STRLEN];

		addr_format(&s->client_addr.sa, client, sizeof(client));
		log_debug("session %s: %s -> %s", client,
		    state_names[s->state], state_names[state]);
	}
	s->state = state;
	session_sync_active(s);
}

void
session_set_timeout(struct session *s, ev_tstamp seconds)
{
	ev_timer_stop(s->srv->loop, &s->timer);
	ev_timer_set(&s->timer, seconds, 0.);
	ev_timer_start(s->srv->loop, &s->timer);
}

static void
session_idle_check(struct session *s)
{
	ev_tstamp idle = s->srv->cfg->timeout_idle;
	ev_tstamp left = s->relay.last_activity + idle - ev_now(s->srv->loop);

	/* Activity only stamps a time; the timer re-arms itself for what is
	 * left instead of being reset on every read (ev.pod, strategy 3). */
	if (left > 0) {
		session_set_timeout(s, left);
		return;
	}
	session_close(s, "idle");
}

static void
session_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct session *s = SESSION_OF(w, timer);

	(void)loop;
	(void)revents;
	switch (s->state) {
	case SESSION_TLS:
		metrics_count_tls_failure("tls-timeout");
		session_close(s, "tls-timeout");
		return;
	case SESSION_HANDSHAKE:
	case SESSION_AUTH_WAIT:
		session_close(s, "handshake-timeout");
		return;
	case SESSION_RESOLVING:
		/* c-ares has timeouts of its own; this guards against an
		 * answer that never comes back. */
		resolver_cancel(s->hs->query);
		s->hs->query = NULL;
		session_fail(s, REPLY_HOST_UNREACH);
		return;
	case SESSION_WAITING:
		s->command->timeout(s);
		return;
	case SESSION_RELAY:
		session_idle_check(s);
		return;
	case SESSION_LINGER:
		session_close(s, s->linger_reason);
		return;
	}
}

/* Tell the heap watch what the live sessions weigh. */
static void
session_heap_watch(struct server *srv)
{
	heap_watch_sessions(&srv->heap, srv->nsessions +
	    (HEAP_TLS_WEIGHT - 1) * srv->ntls);
}

void
session_tls_attached(struct session *s)
{
	s->srv->ntls++;
	session_heap_watch(s->srv);
}

struct session *
session_accept(struct server *srv, int fd, const struct sockaddr *peer)
{
	/* A balancer's connections count under the client its PROXY header
	 * names (policy_readmit_client), or a busy balancer would hit the
	 * per-IP limit for all of its clients at once. */
	bool balancer = cidr_set_has(&srv->cfg->proxy_from, peer);
	struct session *s;

	if (!balancer && !policy_admit_client(srv, peer)) {
		close(fd);
		return NULL;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->hs = calloc(1, sizeof(*s->hs))) == NULL) {
		log_warn("%s: calloc", __func__);
		free(s);
		close(fd);
		if (!balancer)
			limits_client_leave(srv->limits, peer);
		return NULL;
	}
	s->client_counted = !balancer;
	s->hs->buf = s->hs->small;
	s->hs->cap = sizeof(s->hs->small);
	s->srv = srv;
	s->client_fd = fd;
	s->target_fd = -1;
	s->reply = -1;
	s->started = ev_now(srv->loop);
	s->id = ++srv->next_session_id;
	/* [limits]' bandwidth limit, until a rule's verdict says more. */
	s->rate = srv->cfg->rate;
	s->state = SESSION_HANDSHAKE;
	memcpy(&s->client_addr, peer, addr_len(peer));

	s->next = srv->sessions;
	if (srv->sessions != NULL)
		srv->sessions->prev = s;
	srv->sessions = s;
	srv->nsessions++;
	session_heap_watch(srv);
	metrics_add_active(0, 1);

	ev_init(&s->timer, session_timer_cb);
	session_set_timeout(s, srv->cfg->timeout_handshake);
	return s;
}

bool
session_local_addr(const struct session *s, union sockaddr_any *out)
{
	socklen_t len = sizeof(*out);

	/* Zeroed first: a failed call leaves AF_UNSPEC behind. */
	memset(out, 0, sizeof(*out));
	return getsockname(s->client_fd, &out->sa, &len) == 0;
}

const char *
session_command_name(const struct session *s)
{
	if (s->command != NULL)
		return s->command->name;
	return s->cmd == REQUEST_CMD_NONE ? "-" : "unknown";
}

/* Bytes relayed each way (UDP: payload bytes) and the command's own extra
 * " key=value" log fields, for the access log and /metrics alike. */
static void
session_totals(const struct session *s, uint64_t *up, uint64_t *down,
    char *extra, size_t extralen)
{
	*up = s->relay.up.bytes;
	*down = s->relay.down.bytes;
	extra[0] = '\0';
	if (s->command != NULL && s->command->log_fields != NULL)
		s->command->log_fields(s, up, down, extra, extralen);
}

void
session_bytes(const struct session *s, uint64_t *up, uint64_t *down)
{
	char extra[512];

	session_totals(s, up, down, extra, sizeof(extra));
}

double
session_rate(const struct session *s)
{
	uint64_t up, down;
	ev_tstamp age = ev_now(s->srv->loop) - s->started;

	if (s->state == SESSION_RELAY && s->relay.running)
		return relay_rate(&s->relay);
	/* A UDP association: its average. */
	session_bytes(s, &up, &down);
	return age > 0 ? (double)(up + down) / age : 0.;
}

/* " tls=1.3 tls_sni=NAME resumed=yes" for a TLS client whose handshake got
 * that far (sni and resumed only when there is something to say). */
static void
session_log_tls(const struct session *s, char *extra, size_t extralen)
{
	const char *sni = SSL_get_servername(s->ssl, TLSEXT_NAMETYPE_host_name);
	size_t used = strlen(extra);
	char name[SOCKS5_NAME_MAX + 1];

	if (!SSL_is_init_finished(s->ssl))
		return;
	used += (size_t)snprintf(extra + used, extralen - used, " tls=%s",
	    SSL_version(s->ssl) == TLS1_3_VERSION ? "1.3" : "1.2");
	if (used < extralen && sni != NULL) {
		log_safe_text(sni, name, sizeof(name));
		used += (size_t)snprintf(extra + used, extralen - used,
		    " tls_sni=%s", name);
	}
	if (used < extralen && SSL_session_reused(s->ssl) == 1)
		snprintf(extra + used, extralen - used, " resumed=yes");
}

static void
session_log_access(const struct session *s, const char *reason)
{
	char client[ADDR_STRLEN], addr[ADDR_STRLEN], reply[12];
	char user[SOCKS5_NAME_MAX + 1], dest[SOCKS5_ADDR_STRLEN];
	char extra[512];
	uint64_t up, down, ms;

	if (!log_enabled(LOG_LEVEL_INFO))
		return;
	addr_format(&s->client_addr.sa, client, sizeof(client));
	if (s->target_addr.sa.sa_family != 0)
		addr_format(&s->target_addr.sa, addr, sizeof(addr));
	else
		strcpy(addr, "-");
	log_safe_text(s->user != NULL ? s->user : "-", user, sizeof(user));
	log_safe_text(s->dest != NULL ? s->dest : "-", dest, sizeof(dest));
	if (s->reply >= 0)
		snprintf(reply, sizeof(reply), "%d", s->reply);
	else
		strcpy(reply, "-");
	session_totals(s, &up, &down, extra, sizeof(extra));
	if (s->rule != NULL) {
		char rule[SOCKS5_NAME_MAX + 1];
		size_t used = strlen(extra);

		log_safe_text(s->rule, rule, sizeof(rule));
		snprintf(extra + used, sizeof(extra) - used, " rule=%s", rule);
	}
	if (s->via != NULL) {
		size_t used = strlen(extra);

		snprintf(extra + used, sizeof(extra) - used, " via=%s", s->via);
	}
	if (s->ssl != NULL)
		session_log_tls(s, extra, sizeof(extra));
	inspect_log_fields(s, extra, sizeof(extra));
	intercept_log_fields(s, extra, sizeof(extra));
	ms = (uint64_t)((ev_now(s->srv->loop) - s->started) * 1000.);
	log_info("session client=%s user=%s proto=%s cmd=%s dest=%s addr=%s "
	    "reply=%s up=%" PRIu64 " down=%" PRIu64 " ms=%" PRIu64
	    " close=%s%s", client, user, s->frontend != NULL ?
	    s->frontend->name : "-", session_command_name(s), dest, addr,
	    reply,
	    up, down, ms, reason, extra);
}

int
session_grow_handshake(struct session *s, size_t size)
{
	struct handshake *hs = s->hs;
	uint8_t *larger;

	if (size <= hs->cap)
		return 0;
	if ((larger = malloc(size)) == NULL)
		return -1;
	memcpy(larger, hs->buf, hs->len);
	sodium_memzero(hs->buf, hs->cap);
	if (hs->buf != hs->small)
		free(hs->buf);
	hs->buf = larger;
	hs->cap = size;
	return 0;
}

void
session_free_handshake(struct session *s)
{
	if (s->hs == NULL)
		return;
	if (s->hs->buf != s->hs->small) {
		sodium_memzero(s->hs->buf, s->hs->cap);
		free(s->hs->buf);
	}
	if (s->hs->auth != NULL)
		auth_cancel(s->hs->auth);
	if (s->hs->query != NULL)
		resolver_cancel(s->hs->query);
	happy_free(s->hs->happy);
	upstream_dial_free(s->hs->dial);
	ev_timer_stop(s->srv->loop, &s->hs->full_probe);
	/* The buffer may have held a password. */
	sodium_memzero(s->hs, sizeof(*s->hs));
	free(s->hs);
	s->hs = NULL;
}

/* The session's totals for /metrics. Bytes were counted as they moved:
 * by the relay, or by the association with its datagram counts. */
static void
session_count_metrics(const struct session *s, const char *reason)
{
	metrics_add_active(s->active_cmd, -1);
	metrics_count_session(s->cmd, s->reply, reason);
	metrics_count_protocol(s->frontend != NULL ? (int)s->frontend->proto :
	    -1);
}

void
session_close(struct session *s, const char *reason)
{
	struct server *srv = s->srv;

	session_count_metrics(s, reason);
	session_free_handshake(s);
	relay_stop(&s->relay);
	/* Its http lines come before the session's; its TLS may run inside
	 * target_ssl. */
	intercept_close(s);
	/* Before a command's teardown closes the socket under it. */
	if (s->target_ssl != NULL) {
		tls_io_close_notify(s->target_ssl);
		SSL_free(s->target_ssl);
		s->target_ssl = NULL;
	}
	ev_io_stop(srv->loop, &s->client_io);
	ev_io_stop(srv->loop, &s->target_io);
	ev_timer_stop(srv->loop, &s->timer);
	session_log_access(s, reason);
	policy_release(s);
	if (s->command != NULL && s->command->teardown != NULL)
		s->command->teardown(s);
	if (s->ssl != NULL) {
		tls_io_close_notify(s->ssl);
		SSL_free(s->ssl);
	}
	close(s->client_fd);
	if (s->target_fd != -1)
		close(s->target_fd);

	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		srv->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	srv->nsessions--;
	if (s->ssl != NULL)
		srv->ntls--;
	session_heap_watch(srv);
	free(s->user);
	free(s->dest);
	free(s->rule);
	free(s->via);
	inspect_free(s);
	intercept_free(s);
	free(s);
	server_session_ended(srv);
}

void
session_close_all(struct server *srv, const char *reason)
{
	while (srv->sessions != NULL)
		session_close(srv->sessions, reason);
}

/* Read and drop what the client still sends until it closes. */
static void
session_linger_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct session *s = SESSION_OF(w, client_io);
	uint8_t sink[4096];
	size_t total = 0;
	ssize_t n;

	(void)loop;
	(void)revents;
	while ((n = read(s->client_fd, sink, sizeof(sink))) > 0) {
		total += (size_t)n;
		if (total >= LINGER_MAX_BYTES)
			break;
	}
	if (n == -1 && (errno == EAGAIN || errno == EINTR) &&
	    total < LINGER_MAX_BYTES)
		return;
	session_close(s, s->linger_reason);
}

/*
 * Send a final message (an error reply, 05 FF, a failed login) and close
 * gracefully: closing with unread client bytes would make the kernel send
 * a reset, and the client could lose our reply.
 */
void
session_send_final(struct session *s, const uint8_t *msg, size_t len,
    const char *reason)
{
	struct ev_loop *loop = s->srv->loop;

	/* Best effort: a short write just means the client reads less. */
	if (len > 0)
		(void)session_client_write(s, msg, len);
	/* What the client sends from now on is read raw and dropped. */
	if (s->ssl != NULL)
		tls_io_close_notify(s->ssl);
	session_free_handshake(s);
	ev_io_stop(loop, &s->target_io);
	if (s->target_ssl != NULL) {
		SSL_free(s->target_ssl);
		s->target_ssl = NULL;
	}
	if (s->target_fd != -1) {
		close(s->target_fd);
		s->target_fd = -1;
	}
	(void)shutdown(s->client_fd, SHUT_WR);
	s->linger_reason = reason;
	session_set_state(s, SESSION_LINGER);
	ev_io_stop(loop, &s->client_io);
	ev_io_init(&s->client_io, session_linger_cb, s->client_fd, EV_READ);
	ev_io_start(loop, &s->client_io);
	session_set_timeout(s, LINGER_SECONDS);
}

/* Look up the request's DST name; cb gets the answer and must first clear
 * s->hs->query. A lookup that never answers ends in reply 0x04. */
static void
session_resolve(struct session *s, resolver_cb *cb)
{
	const struct config *cfg = s->srv->cfg;
	struct handshake *hs = s->hs;

	session_set_state(s, SESSION_RESOLVING);
	/* c-ares has its own timeouts; the session timer guards against an
	 * answer that never comes back (see session_timer_cb). */
	session_set_timeout(s, cfg->dns_timeout + 1);
	hs->query = resolver_lookup(s->srv->resolver, hs->req.dst.u.name,
	    hs->req.dst.port, cfg->dns_family, cb, s);
	if (hs->query == NULL)
		session_fail(s, REPLY_FAILURE);
}

bool
session_find_dst(struct session *s, union sockaddr_any *out, resolver_cb *cb)
{
	struct handshake *hs = s->hs;

	if (addr_from_socks5(&hs->req.dst, out)) {
		/* A literal (even a name that is one) meets CIDRs only, and
		 * the name [inspect] sniff learnt, when it did. */
		hs->dst_name = inspect_name(s);
		return true;
	}
	hs->dst_name = hs->req.dst.u.name;
	session_resolve(s, cb);
	return false;
}


int
session_send_reply(struct session *s, uint8_t rep, const struct sockaddr *bnd)
{
	uint8_t msg[FRONTEND_REPLY_MAX];
	size_t len;

	len = s->frontend->encode_reply(s, rep, bnd, msg);
	s->reply = rep;
	metrics_count_reply(rep);
	/* The socket is fresh and we sent at most a few bytes before, so a
	 * reply this small always fits; a short write means a dead client. */
	if (len == 0)
		return 0;
	return session_client_write(s, msg, len) == (ssize_t)len ? 0 : -1;
}

void
session_watch(struct session *s, ev_io *w, int events)
{
	struct ev_loop *loop = s->srv->loop;

	if (ev_is_active(w) && (w->events & (EV_READ | EV_WRITE)) == events)
		return;
	ev_io_stop(loop, w);
	ev_io_modify(w, events);
	ev_io_start(loop, w);
}

int
session_tls_handshake(struct session *s, SSL *ssl, ev_io *w, int *error)
{
	int ret;

	ERR_clear_error();
	if ((ret = SSL_do_handshake(ssl)) == 1)
		return 1;
	switch ((*error = SSL_get_error(ssl, ret))) {
	case SSL_ERROR_WANT_READ:
		session_watch(s, w, EV_READ);
		return 0;
	case SSL_ERROR_WANT_WRITE:
		session_watch(s, w, EV_WRITE);
		return 0;
	default:
		return -1;
	}
}

ssize_t
session_client_read(struct session *s, void *buf, size_t len, int *wants)
{
	*wants = 0;
	if (s->ssl != NULL)
		return tls_io_read(s->ssl, buf, len, wants);
	return read(s->client_fd, buf, len);
}

ssize_t
session_client_write(struct session *s, const void *buf, size_t len)
{
	int wants;

	if (s->ssl != NULL)
		return tls_io_write(s->ssl, buf, len, &wants);
	return write(s->client_fd, buf, len);
}

void
session_answer(struct session *s, uint8_t rep, const struct sockaddr *bnd,
    const char *reason)
{
	uint8_t msg[FRONTEND_REPLY_MAX];
	size_t len;

	/* The client was told success already and sent its data: no
	 * reply can follow, only the close. */
	if (s->hs != NULL && s->hs->replied) {
		session_close(s, reason);
		return;
	}
	len = s->frontend->encode_reply(s, rep, bnd, msg);
	s->reply = rep;
	metrics_count_reply(rep);
	session_send_final(s, msg, len, reason);
}

void
session_answer_name(struct session *s, const char *name, const char *reason)
{
	uint8_t msg[FRONTEND_REPLY_MAX];

	if (s->frontend->encode_name_reply == NULL) {
		session_fail(s, REPLY_CMD_UNSUPPORTED);
		return;
	}
	s->reply = REPLY_SUCCESS;
	metrics_count_reply(REPLY_SUCCESS);
	session_send_final(s, msg, s->frontend->encode_name_reply(name, msg),
	    reason);
}

void
session_fail(struct session *s, uint8_t rep)
{
	session_answer(s, rep, NULL, "rejected");
}

static void
session_relay_end(struct relay *r, const char *reason)
{
	struct session *s = (struct session *)
	    ((char *)r - offsetof(struct session, relay));

	session_close(s, reason);
}

/* Every pump's bytes count toward the user's quotas and, for a user the
 * config names, the user's /metrics. */
static const char *
session_relay_meter(struct relay *r, bool up, uint64_t bytes)
{
	struct session *s = (struct session *)
	    ((char *)r - offsetof(struct session, relay));

	if (s->user_stats != NULL)
		metrics_user_count(s->user_stats, 0, up ? bytes : 0,
		    up ? 0 : bytes);
	return s->nquotas > 0 ? policy_quota_count(s, bytes) : NULL;
}

void
session_start_relay(struct session *s, const struct sockaddr *bnd)
{
	if (!s->hs->replied && session_send_reply(s, REPLY_SUCCESS, bnd) == -1) {
		session_close(s, "reset");
		return;
	}
	/* A rule asks for interception: TLS is set up on both sides
	 * first, and the relay starts from there. */
	if (intercept_wanted(s)) {
		intercept_begin(s);
		return;
	}
	session_relay(s, s->ssl, s->target_ssl, NULL);
}

void
session_relay(struct session *s, SSL *client_ssl, SSL *target_ssl,
    relay_watch_fn *watch)
{
	struct server *srv = s->srv;
	const char *reason = "error";

	if (relay_start(&s->relay, srv->loop, &srv->pipes, srv->cfg->relay,
	    (struct relay_side){ s->client_fd, &s->client_io, client_ssl,
	    client_ssl != s->ssl ? s->ssl : NULL },
	    (struct relay_side){ s->target_fd, &s->target_io, target_ssl,
	    target_ssl != s->target_ssl ? s->target_ssl : NULL },
	    s->hs->buf, s->hs->len, s->hs->client_eof,
	    session_relay_end) == -1) {
		session_close(s, "nomem");
		return;
	}
	if (s->nquotas > 0 || s->user_stats != NULL)
		s->relay.meter = session_relay_meter;
	policy_rate_start(s);
	if (s->rate_up != NULL || s->rate_down != NULL)
		relay_limit_rate(&s->relay, s->rate_up, s->rate_down);
	if (s->frontend->relay_setup != NULL)
		s->frontend->relay_setup(s, &s->relay);
	if (inspect_start(s, &reason) == -1 || (watch != NULL &&
	    relay_watch_both(&s->relay, watch, &reason) == -1)) {
		session_close(s, reason);
		return;
	}
	session_free_handshake(s);
	session_set_state(s, SESSION_RELAY);
	session_set_timeout(s, srv->cfg->timeout_idle);
}
