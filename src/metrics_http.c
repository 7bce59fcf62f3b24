/*
 * The /metrics HTTP endpoint on the daemon's event loop: its listening
 * socket, its few connections (one request, one response, close), and the
 * request-head parser. Nothing a client sends is trusted: the head is
 * bounded, the whole request has a deadline, and connections are capped.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "socks5d/addr.h"
#include "socks5d/listener.h"
#include "socks5d/log.h"
#include "socks5d/metrics.h"
#include "socks5d/metrics_http.h"
#include "socks5d/quota_service.h"

/* Scrapers are few; more at once is a client misbehaving. */
#define METRICS_HTTP_MAX_CONNS      16
#define METRICS_HTTP_BACKLOG        64
/* Seconds for a whole request head to arrive, and for the response to be
 * written; a slow sender is closed, not waited for. */
#define METRICS_HTTP_TIMEOUT        5.0
/* After the response: how long, and how much, the client may still send
 * before we close (closing on unread bytes would reset the connection and
 * could cost the client our response). */
#define METRICS_HTTP_LINGER         2.0
#define METRICS_HTTP_LINGER_MAX     (64 * 1024)
#define METRICS_HTTP_ACCEPT_PAUSE   0.5
/* The response: the exposition has a bounded set of series (a fixed
 * set, and at most METRICS_UPSTREAM_MAX upstream members), so it has a
 * fixed upper size; the head is written in front of the body. */
#define METRICS_HTTP_HEAD_ROOM      256
#define METRICS_HTTP_OUT_MAX        (METRICS_HTTP_HEAD_ROOM + METRICS_TEXT_MAX)

struct metrics_conn {
	struct metrics_conn *prev, *next;
	int fd;
	ev_io io;
	ev_timer timer;
	size_t in_len;
	size_t out_off, out_len;       /* what is left to write */
	size_t drained;                /* bytes read after the response */
	char in[METRICS_HTTP_HEAD_MAX];
	char out[METRICS_HTTP_OUT_MAX];
};

/* One endpoint per process, like the loop it runs on. */
static struct {
	struct server *srv;
	int fd;                        /* -1: off */
	struct config_addr addr;
	ev_io io;
	ev_timer resume;               /* accept paused on EMFILE */
	bool paused;
	bool pending;                  /* a reload prepared next_fd */
	int next_fd;
	struct config_addr next_addr;
	struct metrics_conn *conns;
	unsigned nconns;
} http = { .fd = -1, .next_fd = -1 };

/* -- the request parser (pure) --------------------------------------- */

enum parse_state {
	PARSE_METHOD,
	PARSE_TARGET,
	PARSE_VERSION,
	PARSE_LINE_LF,                 /* request line ended in CR */
	PARSE_FIELD_START,
	PARSE_FIELD_NAME,
	PARSE_FIELD_VALUE,
	PARSE_FIELD_LF,
	PARSE_END_LF,                  /* blank line's CR seen */
};

/* RFC 9110 tchar: what a method or field name is made of. */
static bool
metrics_http_is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') ||
	    (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* Field value bytes: visible ASCII, space, tab and obs-text; no controls. */
static bool
metrics_http_is_value_byte(unsigned char c)
{
	return c == '\t' || (c >= ' ' && c != 0x7f);
}

static enum metrics_http_status
metrics_http_finish(struct metrics_http_request *out,
    const struct metrics_http_request *req, unsigned hosts)
{
	/* RFC 9112 3.2: HTTP/1.1 needs exactly one Host; never two. */
	if (hosts > 1 || (req->minor >= 1 && hosts == 0))
		return METRICS_HTTP_BAD;
	*out = *req;
	return METRICS_HTTP_OK;
}

enum metrics_http_status
metrics_http_parse(const char *buf, size_t len,
    struct metrics_http_request *out)
{
	static const char version[] = "HTTP/1.";
	enum parse_state state = PARSE_METHOD;
	struct metrics_http_request req;
	size_t target = 0, vers = 0, name = 0, end;
	bool query = false;
	unsigned hosts = 0;

	memset(&req, 0, sizeof(req));
	req.method = buf;
	end = len < METRICS_HTTP_HEAD_MAX ? len : METRICS_HTTP_HEAD_MAX;
	for (size_t i = 0; i < end; i++) {
		unsigned char c = (unsigned char)buf[i];

		switch (state) {
		case PARSE_METHOD:
			if (metrics_http_is_tchar(c))
				break;
			if (c != ' ' || i == 0)
				return METRICS_HTTP_BAD;
			req.method_len = i;
			target = i + 1;
			req.path = buf + target;
			state = PARSE_TARGET;
			break;
		case PARSE_TARGET:
			/* Origin form only: a path, maybe a query. */
			if (i == target && c != '/')
				return METRICS_HTTP_BAD;
			if (c == ' ') {
				if (!query)
					req.path_len = i - target;
				vers = i + 1;
				state = PARSE_VERSION;
			} else if (c < 0x21 || c > 0x7e) {
				return METRICS_HTTP_BAD;
			} else if (c == '?' && !query) {
				req.path_len = i - target;
				query = true;
			}
			break;
		case PARSE_VERSION:
			if (i - vers < sizeof(version) - 1) {
				if (c != (unsigned char)version[i - vers])
					return METRICS_HTTP_BAD;
			} else if (i - vers == sizeof(version) - 1) {
				if (c < '0' || c > '9')
					return METRICS_HTTP_BAD;
				req.minor = c - '0';
			} else if (c == '\r') {
				state = PARSE_LINE_LF;
			} else if (c == '\n') {
				state = PARSE_FIELD_START;
			} else {
				return METRICS_HTTP_BAD;
			}
			break;
		case PARSE_LINE_LF:
		case PARSE_FIELD_LF:
			/* A CR anywhere but before LF is a bare CR: refused,
			 * as RFC 9112 2.2 allows, rather than guessed at. */
			if (c != '\n')
				return METRICS_HTTP_BAD;
			state = PARSE_FIELD_START;
			break;
		case PARSE_FIELD_START:
			if (c == '\r') {
				state = PARSE_END_LF;
			} else if (c == '\n') {
				req.head_len = i + 1;
				return metrics_http_finish(out, &req, hosts);
			} else if (metrics_http_is_tchar(c)) {
				/* Not whitespace: obsolete line folding is
				 * refused (RFC 9112 5.2). */
				name = i;
				state = PARSE_FIELD_NAME;
			} else {
				return METRICS_HTTP_BAD;
			}
			break;
		case PARSE_FIELD_NAME:
			if (metrics_http_is_tchar(c))
				break;
			/* No whitespace between name and colon (5.1). */
			if (c != ':')
				return METRICS_HTTP_BAD;
			if (i - name == 4 && strncasecmp(buf + name, "host", 4) == 0)
				hosts++;
			state = PARSE_FIELD_VALUE;
			break;
		case PARSE_FIELD_VALUE:
			if (c == '\r')
				state = PARSE_FIELD_LF;
			else if (c == '\n')
				state = PARSE_FIELD_START;
			else if (!metrics_http_is_value_byte(c))
				return METRICS_HTTP_BAD;
			break;
		case PARSE_END_LF:
			if (c != '\n')
				return METRICS_HTTP_BAD;
			req.head_len = i + 1;
			return metrics_http_finish(out, &req, hosts);
		}
	}
	return len >= METRICS_HTTP_HEAD_MAX ? METRICS_HTTP_TOO_LARGE :
	    METRICS_HTTP_INCOMPLETE;
}

/* -- gauges read at scrape time ---------------------------------------- */

static void
metrics_http_gauges(struct metrics_gauges *g)
{
	const struct server *srv = http.srv;

	/* A worker's own scan would be thrown away: not on its loop. */
	g->fds_open = metrics_wants_own_fds() ? metrics_count_fds(0) : -1;
	g->max_clients = srv->max_clients;
	/* This process's config and clock: the ones upstream_report used. */
	g->upstreams = srv->cfg->upstreams;
	g->now = ev_now(srv->loop);
	g->rules = srv->cfg->rules;
	g->quotas = srv->cfg->quotas;
	g->quota_table = quota_service_table();
}

/* -- connections ------------------------------------------------------- */

static struct ev_loop *
metrics_http_loop(void)
{
	return http.srv->loop;
}

static struct metrics_conn *
metrics_conn_of_io(ev_io *w)
{
	return (struct metrics_conn *)((char *)w -
	    offsetof(struct metrics_conn, io));
}

static void
metrics_conn_close(struct metrics_conn *c)
{
	ev_io_stop(metrics_http_loop(), &c->io);
	ev_timer_stop(metrics_http_loop(), &c->timer);
	close(c->fd);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		http.conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	http.nconns--;
	free(c);
}

static void
metrics_conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct metrics_conn *c = (struct metrics_conn *)((char *)w -
	    offsetof(struct metrics_conn, timer));

	(void)loop;
	(void)revents;
	metrics_conn_close(c);
}

static void
metrics_conn_watch(struct metrics_conn *c,
    void (*cb)(struct ev_loop *, ev_io *, int), int events, ev_tstamp timeout)
{
	struct ev_loop *loop = metrics_http_loop();

	ev_io_stop(loop, &c->io);
	ev_io_init(&c->io, cb, c->fd, events);
	ev_io_start(loop, &c->io);
	ev_timer_stop(loop, &c->timer);
	ev_timer_set(&c->timer, timeout, 0.);
	ev_timer_start(loop, &c->timer);
}

/* Read and drop whatever the client still sends, until it closes. */
static void
metrics_conn_linger_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct metrics_conn *c = metrics_conn_of_io(w);
	char sink[4096];
	ssize_t n;

	(void)loop;
	(void)revents;
	n = read(c->fd, sink, sizeof(sink));
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0 && (c->drained += (size_t)n) < METRICS_HTTP_LINGER_MAX)
		return;
	metrics_conn_close(c);
}

/* Write what is left of the response; once it is all out, half-close and
 * linger. Returns after closing c on a write error. */
static void
metrics_conn_flush(struct metrics_conn *c)
{
	ssize_t n;

	while (c->out_off < c->out_len) {
		n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return;
		if (n <= 0) {
			metrics_conn_close(c);
			return;
		}
		c->out_off += (size_t)n;
	}
	(void)shutdown(c->fd, SHUT_WR);
	metrics_conn_watch(c, metrics_conn_linger_cb, EV_READ,
	    METRICS_HTTP_LINGER);
}

static void
metrics_conn_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	metrics_conn_flush(metrics_conn_of_io(w));
}

/*
 * Put the response head in front of the body_len bytes already at
 * out + HEAD_ROOM, and start writing. head_only leaves the body out (HEAD)
 * while Content-Length still gives its size.
 */
static void
metrics_conn_send(struct metrics_conn *c, const char *status,
    const char *type, const char *extra, size_t body_len, bool head_only)
{
	char head[METRICS_HTTP_HEAD_ROOM];
	int n;

	n = snprintf(head, sizeof(head), "HTTP/1.1 %s\r\n"
	    "Content-Type: %s\r\nContent-Length: %zu\r\n%s"
	    "Connection: close\r\n\r\n", status, type, body_len, extra);
	if (n < 0 || (size_t)n >= sizeof(head)) {
		/* Only our own constants go into it; cannot happen. */
		metrics_conn_close(c);
		return;
	}
	memcpy(c->out + METRICS_HTTP_HEAD_ROOM - n, head, (size_t)n);
	c->out_off = METRICS_HTTP_HEAD_ROOM - (size_t)n;
	c->out_len = METRICS_HTTP_HEAD_ROOM + (head_only ? 0 : body_len);
	metrics_conn_watch(c, metrics_conn_write_cb, EV_WRITE,
	    METRICS_HTTP_TIMEOUT);
	metrics_conn_flush(c);
}

static void
metrics_conn_send_error(struct metrics_conn *c, const char *status,
    const char *extra)
{
	size_t len;

	len = (size_t)snprintf(c->out + METRICS_HTTP_HEAD_ROOM,
	    sizeof(c->out) - METRICS_HTTP_HEAD_ROOM, "%s\n", status);
	metrics_conn_send(c, status, "text/plain; charset=utf-8", extra, len,
	    false);
}

static void
metrics_conn_send_metrics(struct metrics_conn *c, bool head_only)
{
	struct metrics_gauges g;
	size_t cap = sizeof(c->out) - METRICS_HTTP_HEAD_ROOM, len;

	metrics_http_gauges(&g);
	len = metrics_render(c->out + METRICS_HTTP_HEAD_ROOM, cap, &g);
	if (len >= cap) {
		log_warnx("metrics: the exposition needs %zu bytes, more than "
		    "the %zu reserved", len, cap);
		metrics_conn_send_error(c, "500 Internal Server Error", "");
		return;
	}
	metrics_conn_send(c, "200 OK",
	    "text/plain; version=0.0.4; charset=utf-8", "", len, head_only);
}

static bool
metrics_http_token_is(const char *s, size_t len, const char *word)
{
	return len == strlen(word) && memcmp(s, word, len) == 0;
}

static void
metrics_conn_answer(struct metrics_conn *c, enum metrics_http_status status,
    const struct metrics_http_request *req)
{
	bool get, head;

	switch (status) {
	case METRICS_HTTP_INCOMPLETE:
		return;
	case METRICS_HTTP_BAD:
		metrics_conn_send_error(c, "400 Bad Request", "");
		return;
	case METRICS_HTTP_TOO_LARGE:
		metrics_conn_send_error(c,
		    "431 Request Header Fields Too Large", "");
		return;
	case METRICS_HTTP_OK:
		break;
	}
	if (!metrics_http_token_is(req->path, req->path_len, "/metrics")) {
		metrics_conn_send_error(c, "404 Not Found", "");
		return;
	}
	get = metrics_http_token_is(req->method, req->method_len, "GET");
	head = metrics_http_token_is(req->method, req->method_len, "HEAD");
	if (!get && !head) {
		metrics_conn_send_error(c, "405 Method Not Allowed",
		    "Allow: GET, HEAD\r\n");
		return;
	}
	metrics_conn_send_metrics(c, head);
}

static void
metrics_conn_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct metrics_conn *c = metrics_conn_of_io(w);
	struct metrics_http_request req;
	ssize_t n;

	(void)loop;
	(void)revents;
	/* The parser answers TOO_LARGE once the buffer is full, so there is
	 * always room here. */
	n = read(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* Gone before a whole request: nobody to answer. */
		metrics_conn_close(c);
		return;
	}
	c->in_len += (size_t)n;
	metrics_conn_answer(c, metrics_http_parse(c->in, c->in_len, &req),
	    &req);
}

static void
metrics_conn_start(int fd)
{
	struct metrics_conn *c;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		log_warn("%s: calloc", __func__);
		close(fd);
		return;
	}
	c->fd = fd;
	c->next = http.conns;
	if (http.conns != NULL)
		http.conns->prev = c;
	http.conns = c;
	http.nconns++;
	ev_init(&c->timer, metrics_conn_timer_cb);
	metrics_conn_watch(c, metrics_conn_read_cb, EV_READ,
	    METRICS_HTTP_TIMEOUT);
}

/* -- the listening socket ---------------------------------------------- */

static void
metrics_http_resume_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)w;
	(void)revents;
	http.paused = false;
	if (http.fd != -1)
		ev_io_start(loop, &http.io);
}

static void
metrics_http_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	int fd;

	(void)revents;
	for (int i = 0; i < METRICS_HTTP_MAX_CONNS; i++) {
		fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				/* The socket stays readable: do not spin. */
				http.paused = true;
				ev_io_stop(loop, w);
				ev_timer_set(&http.resume,
				    METRICS_HTTP_ACCEPT_PAUSE, 0.);
				ev_timer_start(loop, &http.resume);
			} else if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED) {
				log_warn("metrics: accept");
			}
			return;
		}
		if (http.nconns >= METRICS_HTTP_MAX_CONNS) {
			close(fd);
			continue;
		}
		metrics_conn_start(fd);
	}
}

/* A listening socket on addr, or -1 (logged). */
static int
metrics_http_socket(const struct config_addr *addr)
{
	const struct sockaddr *sa = (const struct sockaddr *)&addr->ss;
	char text[ADDR_STRLEN];
	int fd;

	fd = listener_socket(addr, METRICS_HTTP_BACKLOG, "metrics listen");
	if (fd == -1)
		return -1;
	addr_format(sa, text, sizeof(text));
	log_info("metrics on http://%s/metrics", text);
	/* The open-proxy guard does not apply, but the numbers show who
	 * moves how much: say so when anyone beyond this host may ask. */
	if (!config_addr_is_loopback(sa))
		log_warnx("metrics listen %s is not a loopback address: "
		    "anyone who can reach it sees traffic volumes", text);
	return fd;
}

static bool
metrics_http_same_addr(const struct config_addr *a,
    const struct config_addr *b)
{
	return a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

/* Serve on fd (or nothing, -1) from now on. */
static void
metrics_http_use(int fd, const struct config_addr *addr)
{
	struct ev_loop *loop = metrics_http_loop();

	if (http.fd != -1) {
		ev_io_stop(loop, &http.io);
		close(http.fd);
	}
	http.fd = fd;
	http.addr = *addr;
	if (fd == -1)
		return;
	ev_io_init(&http.io, metrics_http_accept_cb, fd, EV_READ);
	if (!http.paused)
		ev_io_start(loop, &http.io);
}

int
metrics_http_open(struct server *srv)
{
	const struct config_addr *addr = &srv->cfg->metrics_listen;
	int fd = -1;

	http.srv = srv;
	ev_init(&http.resume, metrics_http_resume_cb);
	if (addr->len != 0 && (fd = metrics_http_socket(addr)) == -1)
		return -1;
	metrics_http_use(fd, addr);
	return 0;
}

int
metrics_http_prepare_reload(const struct config *cfg)
{
	metrics_http_abort_reload();
	if (metrics_http_same_addr(&http.addr, &cfg->metrics_listen))
		return 0;
	http.next_addr = cfg->metrics_listen;
	if (http.next_addr.len != 0 &&
	    (http.next_fd = metrics_http_socket(&http.next_addr)) == -1)
		return -1;
	http.pending = true;
	return 0;
}

void
metrics_http_commit_reload(void)
{
	if (!http.pending)
		return;
	if (http.next_fd == -1)
		log_info("metrics: no longer listening");
	metrics_http_use(http.next_fd, &http.next_addr);
	http.next_fd = -1;
	http.pending = false;
}

void
metrics_http_abort_reload(void)
{
	if (http.next_fd != -1)
		close(http.next_fd);
	http.next_fd = -1;
	http.pending = false;
}

void
metrics_http_close(void)
{
	static const struct config_addr none;

	if (http.srv == NULL)
		return;
	metrics_http_abort_reload();
	ev_timer_stop(metrics_http_loop(), &http.resume);
	http.paused = false;
	metrics_http_use(-1, &none);
	while (http.conns != NULL)
		metrics_conn_close(http.conns);
}
