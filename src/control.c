/*
 * The control socket in a serving process (control.h): connections read
 * one request line, the answer is built whole from the live sessions and
 * written as the socket takes it, all on the event loop. A worker's line
 * to the supervisor is one such connection that stays open.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "socks5d/addr.h"
#include "socks5d/control.h"
#include "socks5d/control_reply.h"
#include "socks5d/frontend.h"
#include "socks5d/log.h"
#include "socks5d/quota_service.h"
#include "socks5d/server.h"
#include "socks5d/session.h"

/* A client that does not finish its request (or read the answer) in
 * this long is dropped; there are at most this many at once. */
#define CONTROL_TIMEOUT   5.0
#define CONTROL_CONNS_MAX 16

struct control_conn {
	struct control *ctl;
	struct control_conn *prev, *next;
	int fd;
	bool worker;                   /* the supervisor's line: stays open */
	ev_io io;
	ev_timer timer;
	char in[CONTROL_LINE_MAX];
	size_t inlen;
	struct control_reply out;
	size_t sent;
};

struct control {
	struct server *srv;
	int listen_fd;
	char *path;
	ev_io accept_io;
	struct control_conn *conns;
	unsigned nconns;
};

static void control_conn_io_cb(struct ev_loop *loop, ev_io *w, int revents);

static void
control_conn_close(struct control_conn *c)
{
	struct control *ctl = c->ctl;

	ev_io_stop(ctl->srv->loop, &c->io);
	ev_timer_stop(ctl->srv->loop, &c->timer);
	close(c->fd);
	control_reply_free(&c->out);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		ctl->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	ctl->nconns--;
	free(c);
}

/* -- the commands ---------------------------------------------------------- */

/* One session as a record: "session" when listed, "killed" when ended. */
static void
control_session_record(struct control_reply *r, const struct session *s,
    const char *type)
{
	struct control_record rec;
	char id[48], client[ADDR_STRLEN], peer[ADDR_STRLEN];
	uint64_t up, down;

	if (control_reply_begin(r, &rec, type) == NULL)
		return;
	snprintf(id, sizeof(id), "%ld.%" PRIu64, (long)getpid(), s->id);
	addr_format(&s->client_addr.sa, client, sizeof(client));
	if (s->target_addr.sa.sa_family != 0)
		addr_format(&s->target_addr.sa, peer, sizeof(peer));
	else
		strcpy(peer, "-");
	session_bytes(s, &up, &down);
	control_record_str(&rec, "id", id);
	control_record_str(&rec, "client", client);
	control_record_str(&rec, "user", s->user != NULL ? s->user : "-");
	control_record_str(&rec, "proto", s->frontend != NULL ?
	    s->frontend->name : "-");
	control_record_str(&rec, "cmd", session_command_name(s));
	control_record_str(&rec, "dest", s->dest != NULL ? s->dest : "-");
	control_record_str(&rec, "peer", peer);
	control_record_u64(&rec, "up", up);
	control_record_u64(&rec, "down", down);
	control_record_double(&rec, "rate", session_rate(s));
	control_record_double(&rec, "age", ev_now(s->srv->loop) - s->started);
	control_reply_commit(r, &rec);
}

static bool
control_kill_matches(const struct control_request *req,
    const struct session *s)
{
	switch (req->kill) {
	case CONTROL_KILL_ID:
		return req->id_pid == (int32_t)getpid() && req->id_seq == s->id;
	case CONTROL_KILL_USER:
		return s->user != NULL && strcmp(s->user, req->arg1) == 0;
	case CONTROL_KILL_CLIENT:
		return control_client_match(req, &s->client_addr.sa);
	default:
		return false;
	}
}

/* End the matching sessions through the one close path; a worker says
 * "ok" with no record where it has none (another may have it). */
static void
control_kill(struct control_conn *c, const struct control_request *req)
{
	struct session *s, *next;
	unsigned killed = 0;

	for (s = c->ctl->srv->sessions; s != NULL; s = next) {
		next = s->next;
		if (!control_kill_matches(req, s))
			continue;
		control_session_record(&c->out, s, "killed");
		session_close(s, "killed");
		killed++;
	}
	if (killed == 0 && !c->worker && req->kill == CONTROL_KILL_ID)
		control_reply_end(&c->out, false, "no such session");
	else
		control_reply_end(&c->out, true, NULL);
}

static void
control_users(struct control_conn *c)
{
	struct server *srv = c->ctl->srv;
	struct control_users *u = control_users_new();
	uint64_t up, down;

	if (u == NULL) {
		c->out.nomem = true;
		return;
	}
	for (struct session *s = srv->sessions; s != NULL; s = s->next) {
		if (s->user == NULL)
			continue;
		session_bytes(s, &up, &down);
		if (control_users_add(u, s->user, up, down,
		    session_rate(s)) == -1)
			c->out.nomem = true;
	}
	control_users_emit(u, srv->cfg->quotas, quota_service_table(),
	    (int64_t)ev_now(srv->loop), &c->out);
	control_users_free(u);
}

static void
control_execute(struct control_conn *c, const struct control_request *req)
{
	struct server *srv = c->ctl->srv;

	switch (req->cmd) {
	case CONTROL_CMD_SESSIONS:
		for (struct session *s = srv->sessions; s != NULL; s = s->next)
			control_session_record(&c->out, s, "session");
		break;
	case CONTROL_CMD_KILL:
		control_kill(c, req);
		return;
	case CONTROL_CMD_USERS:
		control_users(c);
		break;
	case CONTROL_CMD_QUOTA_RESET:
		control_quota_reset(req, quota_service_table(), &c->out);
		log_info("control: quota reset for user %s", req->arg1);
		break;
	default:
		break;
	}
	control_reply_end(&c->out, true, NULL);
}

/* -- the connection -------------------------------------------------------- */

/* A whole line is in: answer it, then write. */
static void
control_conn_request(struct control_conn *c, size_t len)
{
	struct control_request req;
	const char *why;

	if (control_parse_request(c->in, len, &req, &why) == -1)
		control_reply_end(&c->out, false, why);
	else
		control_execute(c, &req);
	c->sent = 0;
	/* The rest of a worker's buffer is its next request. */
	memmove(c->in, c->in + len, c->inlen - len);
	c->inlen -= len;
	ev_io_stop(c->ctl->srv->loop, &c->io);
	ev_io_set(&c->io, c->fd, EV_WRITE);
	ev_io_start(c->ctl->srv->loop, &c->io);
}

static void
control_conn_read(struct control_conn *c)
{
	char *nl;
	ssize_t n;

	n = read(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen);
	if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR)) {
		control_conn_close(c);
		return;
	}
	if (n > 0)
		c->inlen += (size_t)n;
	if ((nl = memchr(c->in, '\n', c->inlen)) != NULL)
		control_conn_request(c, (size_t)(nl - c->in) + 1);
	else if (c->inlen == sizeof(c->in))
		control_conn_request(c, c->inlen);      /* "line too long" */
}

static void
control_conn_write(struct control_conn *c)
{
	struct ev_loop *loop = c->ctl->srv->loop;
	char *nl;
	ssize_t n;

	n = send(c->fd, c->out.buf + c->sent, c->out.len - c->sent,
	    MSG_NOSIGNAL);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n == -1) {
		control_conn_close(c);
		return;
	}
	c->sent += (size_t)n;
	if (c->sent < c->out.len)
		return;
	control_reply_free(&c->out);
	if (!c->worker) {
		control_conn_close(c);
		return;
	}
	ev_io_stop(loop, &c->io);
	ev_io_set(&c->io, c->fd, EV_READ);
	ev_io_start(loop, &c->io);
	if ((nl = memchr(c->in, '\n', c->inlen)) != NULL)
		control_conn_request(c, (size_t)(nl - c->in) + 1);
}

static void
control_conn_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct control_conn *c = w->data;

	(void)loop;
	if (revents & EV_READ)
		control_conn_read(c);
	else if (revents & EV_WRITE)
		control_conn_write(c);
}

static void
control_conn_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	control_conn_close(w->data);
}

static struct control_conn *
control_conn_new(struct control *ctl, int fd, bool worker)
{
	struct control_conn *c = calloc(1, sizeof(*c));

	if (c == NULL) {
		close(fd);
		return NULL;
	}
	c->ctl = ctl;
	c->fd = fd;
	c->worker = worker;
	ev_io_init(&c->io, control_conn_io_cb, fd, EV_READ);
	c->io.data = c;
	ev_io_start(ctl->srv->loop, &c->io);
	ev_timer_init(&c->timer, control_conn_timeout_cb, CONTROL_TIMEOUT, 0.);
	c->timer.data = c;
	if (!worker)
		ev_timer_start(ctl->srv->loop, &c->timer);
	c->next = ctl->conns;
	if (ctl->conns != NULL)
		ctl->conns->prev = c;
	ctl->conns = c;
	ctl->nconns++;
	return c;
}

static void
control_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct control *ctl = w->data;
	int fd;

	(void)loop;
	(void)revents;
	while ((fd = accept4(ctl->listen_fd, NULL, NULL,
	    SOCK_NONBLOCK | SOCK_CLOEXEC)) != -1) {
		if (ctl->nconns >= CONTROL_CONNS_MAX ||
		    !control_peer_allowed(fd)) {
			close(fd);
			continue;
		}
		(void)control_conn_new(ctl, fd, false);
	}
}

int
control_start(struct server *srv, bool own_socket, int worker_fd)
{
	struct control *ctl;

	if ((!own_socket || srv->cfg->control_socket == NULL) &&
	    worker_fd == -1)
		return 0;
	if ((ctl = calloc(1, sizeof(*ctl))) == NULL) {
		log_warnx("control: out of memory");
		return -1;
	}
	ctl->srv = srv;
	ctl->listen_fd = -1;
	srv->control = ctl;
	if (worker_fd != -1) {
		(void)fcntl(worker_fd, F_SETFL, O_NONBLOCK);
		return control_conn_new(ctl, worker_fd, true) != NULL ? 0 : -1;
	}
	if ((ctl->path = strdup(srv->cfg->control_socket)) == NULL ||
	    (ctl->listen_fd = control_socket_open(srv->cfg)) == -1)
		return -1;
	ev_io_init(&ctl->accept_io, control_accept_cb, ctl->listen_fd,
	    EV_READ);
	ctl->accept_io.data = ctl;
	ev_io_start(srv->loop, &ctl->accept_io);
	return 0;
}

void
control_stop(struct server *srv)
{
	struct control *ctl = srv->control;

	if (ctl == NULL)
		return;
	while (ctl->conns != NULL)
		control_conn_close(ctl->conns);
	if (ctl->listen_fd != -1) {
		ev_io_stop(srv->loop, &ctl->accept_io);
		control_socket_close(ctl->listen_fd, ctl->path);
	}
	free(ctl->path);
	free(ctl);
	srv->control = NULL;
}
