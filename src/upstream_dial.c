/*
 * Reaching a destination through an upstream proxy; see upstream_dial.h.
 *
 * Each member goes resolve -> race -> handshake on the session's target
 * watcher and timer. Replies are peeked and then read to their exact
 * length: whatever the upstream sends after its reply already belongs to
 * the destination and must stay in the socket for the relay. A TLS member
 * (socks5+tls://, https://) gets its TLS handshake first and everything
 * after it through OpenSSL; what OpenSSL holds after the reply is the
 * relay's (it reads that first).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "socks5d/connect.h"
#include "socks5d/egress.h"
#include "socks5d/happy.h"
#include "socks5d/http_connect.h"
#include "socks5d/log.h"
#include "socks5d/policy.h"
#include "socks5d/resolver.h"
#include "socks5d/session.h"
#include "socks5d/tls_client.h"
#include "socks5d/tls_io.h"
#include "socks5d/upstream_dial.h"

enum dial_step {
	DIAL_IDLE,
	DIAL_RESOLVING_DST,     /* the destination, for a socks5:// member */
	DIAL_RESOLVING,         /* the member's host name */
	DIAL_CONNECTING,        /* racing its addresses */
	DIAL_TLS,               /* a TLS member's handshake */
	DIAL_METHOD,            /* SOCKS5: greeting sent */
	DIAL_AUTH,              /* SOCKS5: login sent */
	DIAL_REPLY,             /* SOCKS5: request sent */
	DIAL_HTTP_HEAD,         /* HTTP: CONNECT sent */
};

struct upstream_dial {
	struct session *s;
	struct upstream up;             /* a copy, with its credentials */
	size_t next;                    /* the next member to try */
	const struct upstream_member *m;        /* the one being tried */
	uint8_t cmd;
	struct socks5_addr dst;
	bool have_dst_ip;               /* dst_ip holds dst's address */
	struct socks5_addr dst_ip;      /* for socks5:// (not socks5h) */
	upstream_dial_cb *cb;
	enum dial_step step;
	struct resolver_query *query;
	struct happy *happy;
	int fd;
	SSL *ssl;                       /* a TLS member's, until finished */
	union sockaddr_any addr;        /* the member's, connected to */
	uint8_t in[HTTP_CONNECT_HEAD_MAX];      /* a reply read so far */
	size_t inlen;
	uint8_t last_rep;               /* the answer if no member serves */
	bool eligible;                  /* a member could serve cmd at all */
};

static void dial_try_next(struct upstream_dial *d);

/* Stop watching and close the member's socket, if any. */
static void
dial_close(struct upstream_dial *d)
{
	struct session *s = d->s;

	if (d->query != NULL) {
		resolver_cancel(d->query);
		d->query = NULL;
	}
	happy_free(d->happy);
	d->happy = NULL;
	if (d->ssl != NULL) {
		SSL_free(d->ssl);
		d->ssl = NULL;
	}
	if (d->fd != -1) {
		ev_io_stop(s->srv->loop, &s->target_io);
		close(d->fd);
		d->fd = -1;
		/* A new socket may get the number (see struct relay_side). */
		ev_io_set(&s->target_io, -1, 0);
	}
	d->step = DIAL_IDLE;
}

/* The member did not serve: count it and go on to the next. rep is what
 * the client hears if no member serves. */
static void
dial_member_failed(struct upstream_dial *d, uint8_t rep, const char *why)
{
	log_debug("upstream %s: %s: %s", d->up.name, d->m->label, why);
	upstream_report(&d->up, d->m, false, ev_now(d->s->srv->loop));
	d->last_rep = rep;
	dial_close(d);
	dial_try_next(d);
}

/* The member answered for the destination: the session's answer. */
static void
dial_finish(struct upstream_dial *d, uint8_t rep, const struct socks5_addr *bnd)
{
	union sockaddr_any addr = d->addr;
	int fd = -1;

	upstream_report(&d->up, d->m, true, ev_now(d->s->srv->loop));
	if (rep == REPLY_SUCCESS) {
		ev_io_stop(d->s->srv->loop, &d->s->target_io);
		fd = d->fd;
		d->fd = -1;
		/* The session's now: the relay reads and writes through it. */
		d->s->target_ssl = d->ssl;
		d->ssl = NULL;
	}
	dial_close(d);
	d->cb(d->s, rep, fd, &addr, bnd);
}

static bool
dial_send(struct upstream_dial *d, const uint8_t *msg, size_t len)
{
	int wants;

	/* A fresh connection's send buffer takes a handshake message whole;
	 * anything short means the member is gone. */
	if (d->ssl != NULL)
		return len > 0 && tls_io_write(d->ssl, msg, len, &wants) ==
		    (ssize_t)len;
	return len > 0 && send(d->fd, msg, len, MSG_NOSIGNAL) == (ssize_t)len;
}

/* recv(2) from the member, through TLS when it has it; peek leaves the
 * bytes to be read again. */
static ssize_t
dial_recv(int fd, SSL *ssl, void *buf, size_t len, bool peek)
{
	int wants;

	if (ssl != NULL)
		return peek ? tls_io_peek(ssl, buf, len, &wants) :
		    tls_io_read(ssl, buf, len, &wants);
	return recv(fd, buf, len, peek ? MSG_PEEK : 0);
}

/* What the member is asked for: socks5:// gets an address resolved (and
 * judged) here, socks5h:// and http:// the name as the client gave it. */
static const struct socks5_addr *
dial_asked(const struct upstream_dial *d)
{
	return d->m->scheme == UPSTREAM_SOCKS5 && d->have_dst_ip ?
	    &d->dst_ip : &d->dst;
}

static void
dial_send_request(struct upstream_dial *d)
{
	uint8_t msg[SOCKS5_REQUEST_MAX];

	if (!dial_send(d, msg, socks5_encode_request(msg, d->cmd,
	    dial_asked(d)))) {
		dial_member_failed(d, REPLY_FAILURE, "request not sent");
		return;
	}
	d->step = DIAL_REPLY;
}

static void
dial_on_method(struct upstream_dial *d, uint8_t method)
{
	uint8_t msg[SOCKS5_AUTH_MAX];
	size_t len;

	if (method == SOCKS5_METHOD_NONE) {
		dial_send_request(d);
		return;
	}
	if (method != SOCKS5_METHOD_PASSWORD || d->m->user == NULL) {
		dial_member_failed(d, REPLY_NOT_ALLOWED, method ==
		    SOCKS5_METHOD_REJECT ? "no acceptable method (a login?)" :
		    "chose a method we did not offer");
		return;
	}
	len = socks5_encode_credentials(msg, d->m->user, d->m->password);
	if (!dial_send(d, msg, len)) {
		sodium_memzero(msg, sizeof(msg));
		dial_member_failed(d, REPLY_FAILURE, "login not sent");
		return;
	}
	sodium_memzero(msg, sizeof(msg));
	d->step = DIAL_AUTH;
}

/* A SOCKS5 reply code speaks of the destination and is passed on, 0x01
 * too: servers answer it for names they cannot resolve, so counting it
 * against the member would let any client take a member down with a few
 * bad names. A code RFC 1928 does not know is the member's garbage. */
static void
dial_on_reply(struct upstream_dial *d, const struct socks5_reply *r)
{
	if (r->rep > REPLY_ATYP_UNSUPPORTED) {
		dial_member_failed(d, REPLY_FAILURE, "an unknown reply code");
		return;
	}
	dial_finish(d, r->rep, &r->bnd);
}

/* An HTTP proxy's status as a reply code; 0xFF: the member failed. */
static uint8_t
dial_http_reply(int status)
{
	if (status >= 200 && status < 300)
		return REPLY_SUCCESS;
	switch (status) {
	case 403:
		return REPLY_NOT_ALLOWED;
	case 404:
	case 500:
	case 502:
	case 503:
		return REPLY_HOST_UNREACH;
	case 504:
		return REPLY_TTL_EXPIRED;
	default:
		return 0xFF;
	}
}

/*
 * How long the SOCKS5 message awaited is, from what has come of it: 2 for
 * a method choice or a login status; a reply's length once its ATYP and
 * first address byte are in (5 until then); 0 for an unknown ATYP.
 */
static size_t
dial_socks5_want(const uint8_t *in, size_t len, bool reply)
{
	if (!reply)
		return 2;
	if (len < 5)
		return 5;
	switch (in[3]) {
	case SOCKS5_ATYP_IPV4:
		return 4 + 4 + 2;
	case SOCKS5_ATYP_IPV6:
		return 4 + 16 + 2;
	case SOCKS5_ATYP_NAME:
		return 4 + 1 + in[4] + 2;
	default:
		return 0;
	}
}

/*
 * Read one SOCKS5 message into in (len so far), never past its end:
 * exactly what is still missing is asked for, so nothing is left behind
 * to wake the loop again. 1: whole; 0: wait; -1: closed or garbage.
 */
static int
dial_read_socks5(int fd, SSL *ssl, uint8_t *in, size_t *len, bool reply)
{
	size_t want;
	ssize_t n;

	while ((want = dial_socks5_want(in, *len, reply)) > *len) {
		n = dial_recv(fd, ssl, in + *len, want - *len, false);
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return 0;
		if (n <= 0)
			return -1;
		*len += (size_t)n;
	}
	return want == 0 ? -1 : 1;
}

/*
 * The HTTP response head: peeked, and read to its exact end once it is
 * whole. While it is not, every byte peeked is part of it (its end is not
 * among them) and is read, so the socket is empty again for the loop (and
 * through TLS, where a peek shows one record, the next record can show).
 * 1: head_len bytes of in hold it; 0: wait; -1: closed, garbage, too long.
 */
static int
dial_read_http(int fd, SSL *ssl, uint8_t *in, size_t *len, size_t cap,
    int *status, size_t *head_len)
{
	ssize_t n = dial_recv(fd, ssl, in + *len, cap - *len, true);
	uint8_t sink[HTTP_CONNECT_HEAD_MAX];
	size_t take;

	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0)
		return -1;
	switch (http_connect_parse_response(in, *len + (size_t)n, status,
	    head_len)) {
	case HTTP_CONNECT_OK:
		take = *head_len - *len;
		break;
	case HTTP_CONNECT_INCOMPLETE:
		take = (size_t)n;
		break;
	default:
		return -1;
	}
	if (dial_recv(fd, ssl, sink, take, false) != (ssize_t)take)
		return -1;
	*len += take;
	return *len == *head_len ? 1 : 0;
}

static void
dial_readable_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct upstream_dial *d = w->data;
	struct socks5_reply reply;
	enum socks5_status st = SOCKS5_OK;
	size_t used, head_len = 0;
	uint8_t value = 0, rep;
	int status = 0, got;

	(void)loop;
	(void)revents;
	if (d->step == DIAL_HTTP_HEAD)
		got = dial_read_http(d->fd, d->ssl, d->in, &d->inlen,
		    sizeof(d->in), &status, &head_len);
	else
		got = dial_read_socks5(d->fd, d->ssl, d->in, &d->inlen,
		    d->step == DIAL_REPLY);
	if (got == 0)
		return;
	if (got == 1) {
		switch (d->step) {
		case DIAL_METHOD:
			st = socks5_parse_method_choice(d->in, d->inlen, &value,
			    &used);
			break;
		case DIAL_AUTH:
			st = socks5_parse_auth_reply(d->in, d->inlen, &value,
			    &used);
			break;
		case DIAL_REPLY:
			st = socks5_parse_reply(d->in, d->inlen, &reply, &used);
			break;
		default:
			break;
		}
	}
	d->inlen = 0;
	if (got == -1 || st != SOCKS5_OK) {
		dial_member_failed(d, REPLY_FAILURE, "closed, or does not speak "
		    "its protocol");
		return;
	}
	switch (d->step) {
	case DIAL_METHOD:
		dial_on_method(d, value);
		return;
	case DIAL_AUTH:
		if (value != 0) {
			log_warnx("upstream %s: %s refused our login", d->up.name,
			    d->m->label);
			dial_member_failed(d, REPLY_NOT_ALLOWED, "login refused");
			return;
		}
		dial_send_request(d);
		return;
	case DIAL_REPLY:
		dial_on_reply(d, &reply);
		return;
	default:
		break;
	}
	/* 407 is the standard answer; some proxies (tinyproxy) send 401. */
	if (status == 407 || status == 401) {
		log_warnx("upstream %s: %s refused our login (%d)", d->up.name,
		    d->m->label, status);
		dial_member_failed(d, REPLY_NOT_ALLOWED, "login refused");
		return;
	}
	if ((rep = dial_http_reply(status)) == 0xFF) {
		dial_member_failed(d, REPLY_FAILURE, "refused the CONNECT");
		return;
	}
	dial_finish(d, rep, NULL);
}

static void
dial_handshake(struct upstream_dial *d)
{
	struct session *s = d->s;
	uint8_t msg[HTTP_CONNECT_REQUEST_MAX];
	size_t len;

	ev_io_stop(s->srv->loop, &s->target_io);
	ev_io_init(&s->target_io, dial_readable_cb, d->fd, EV_READ);
	s->target_io.data = d;
	if (d->m->scheme == UPSTREAM_HTTP) {
		len = http_connect_encode(msg, sizeof(msg), dial_asked(d),
		    d->m->user, d->m->password);
		d->step = DIAL_HTTP_HEAD;
	} else {
		len = socks5_encode_greeting(msg, d->m->user != NULL);
		d->step = DIAL_METHOD;
	}
	if (!dial_send(d, msg, len)) {
		sodium_memzero(msg, sizeof(msg));
		dial_member_failed(d, REPLY_FAILURE, "handshake not sent");
		return;
	}
	sodium_memzero(msg, sizeof(msg));
	ev_io_start(s->srv->loop, &s->target_io);
	session_set_timeout(s, s->srv->cfg->timeout_connect);
}

/* -- a TLS member's handshake ------------------------------------------- */

/* Why a TLS member's handshake failed, for the debug log and the member's
 * health: its certificate (most often) or OpenSSL's reason. */
static void
dial_tls_failed(struct upstream_dial *d)
{
	long verify = SSL_get_verify_result(d->ssl);
	char why[256];

	if (verify != X509_V_OK)
		snprintf(why, sizeof(why), "TLS: certificate: %s",
		    X509_verify_cert_error_string(verify));
	else if (ERR_peek_error() != 0)
		ERR_error_string_n(ERR_peek_error(), why, sizeof(why));
	else
		snprintf(why, sizeof(why), "TLS: connection closed");
	ERR_clear_error();
	log_warnx("upstream %s: %s: %s", d->up.name, d->m->label, why);
	dial_member_failed(d, REPLY_FAILURE, why);
}

static void
dial_tls_step(struct upstream_dial *d)
{
	struct session *s = d->s;
	int error;

	switch (session_tls_handshake(s, d->ssl, &s->target_io, &error)) {
	case 1:
		dial_handshake(d);
		return;
	case 0:
		return;
	}
	dial_tls_failed(d);
}

static void
dial_tls_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	dial_tls_step(w->data);
}

static void
dial_tls_start(struct upstream_dial *d)
{
	struct session *s = d->s;

	if ((d->ssl = tls_client_new_ssl(d->up.tls, d->fd, d->m->host,
	    d->m->scheme == UPSTREAM_HTTP ? "http/1.1" : NULL)) == NULL) {
		log_warnx("upstream %s: %s: out of memory", d->up.name,
		    d->m->label);
		dial_close(d);
		d->cb(s, REPLY_FAILURE, -1, NULL, NULL);
		return;
	}
	d->step = DIAL_TLS;
	ev_io_stop(s->srv->loop, &s->target_io);
	ev_io_init(&s->target_io, dial_tls_cb, d->fd, EV_WRITE);
	s->target_io.data = d;
	session_set_timeout(s, s->srv->cfg->timeout_connect);
	dial_tls_step(d);
}

/* -- racing the member's addresses --------------------------------------- */

static int
dial_open(void *arg, const struct sockaddr *dst)
{
	struct upstream_dial *d = arg;
	struct policy_route route;

	/* The hop leaves as a direct connection would: from the session's
	 * egress address, else [outbound] bind_ipv4/6. */
	policy_route_hop(d->s, dst->sa_family, &route);
	return connect_outbound_socket(d->s, dst->sa_family, &route);
}

static void
dial_arm(void *arg, ev_tstamp after)
{
	struct upstream_dial *d = arg;

	session_set_timeout(d->s, after);
}

/* Errors of this host (descriptors, memory, the egress address), which say
 * nothing of the member. */
static bool
dial_local_error(int err)
{
	switch (err) {
	case EMFILE:
	case ENFILE:
	case ENOBUFS:
	case ENOMEM:
	case EADDRNOTAVAIL:
	case EADDRINUSE:
		return true;
	default:
		return false;
	}
}

static void
dial_connected(void *arg, int fd, const union sockaddr_any *addr, int err)
{
	struct upstream_dial *d = arg;

	happy_free(d->happy);
	d->happy = NULL;
	if (fd == -1 && dial_local_error(err)) {
		/* Our own shortage, not the member's fault: no other member
		 * would fare better, and its health is not ours to spoil. */
		log_warnx("upstream %s: %s: %s", d->up.name, d->m->label,
		    strerror(err));
		dial_close(d);
		d->cb(d->s, REPLY_FAILURE, -1, NULL, NULL);
		return;
	}
	if (fd == -1) {
		dial_member_failed(d, REPLY_FAILURE, strerror(err));
		return;
	}
	d->fd = fd;
	d->addr = *addr;
	if (d->m->tls)
		dial_tls_start(d);
	else
		dial_handshake(d);
}

static const struct happy_ops dial_race = {
	.open_socket = dial_open,
	.arm = dial_arm,
	.done = dial_connected,
};

static void
dial_race_addresses(struct upstream_dial *d, union sockaddr_any *addrs,
    size_t n)
{
	const struct config *cfg = d->s->srv->cfg;

	happy_order(addrs, n);
	d->step = DIAL_CONNECTING;
	if (!happy_start(&d->happy, d->s->srv->loop, &dial_race, d,
	    &d->s->target_io, addrs, n, cfg->connection_attempt_delay_ms / 1000.,
	    cfg->timeout_connect))
		dial_member_failed(d, REPLY_FAILURE, "out of memory");
}

static void
dial_resolved(void *arg, enum resolver_status status,
    const union sockaddr_any *addrs, size_t n)
{
	struct upstream_dial *d = arg;
	union sockaddr_any copy[RESOLVER_MAX_ADDRS];

	d->query = NULL;
	if (status != RESOLVER_OK || n == 0) {
		dial_member_failed(d, REPLY_FAILURE, "its name does not resolve");
		return;
	}
	memcpy(copy, addrs, n * sizeof(*addrs));
	dial_race_addresses(d, copy, n);
}

/* The member's host as an address, when it is a literal. */
static bool
dial_literal(const struct upstream_member *m, union sockaddr_any *out)
{
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, m->host, &out->in.sin_addr) == 1) {
		out->in.sin_family = AF_INET;
		out->in.sin_port = htons(m->port);
		return true;
	}
	if (inet_pton(AF_INET6, m->host, &out->in6.sin6_addr) == 1) {
		out->in6.sin6_family = AF_INET6;
		out->in6.sin6_port = htons(m->port);
		return true;
	}
	return false;
}

/* Resolve (unless a literal) and race the member d->m; false when its
 * lookup could not even start. */
static bool
dial_start_member(struct upstream_dial *d)
{
	struct session *s = d->s;
	const struct config *cfg = s->srv->cfg;
	union sockaddr_any addr;

	if (dial_literal(d->m, &addr)) {
		dial_race_addresses(d, &addr, 1);
		return true;
	}
	d->step = DIAL_RESOLVING;
	session_set_timeout(s, cfg->dns_timeout + 1);
	d->query = resolver_lookup(s->srv->resolver, d->m->host, d->m->port,
	    cfg->dns_family, dial_resolved, d);
	return d->query != NULL;
}

/* The destination's addresses, for socks5:// members: the first that the
 * rules allow is what they are asked for. */
static void
dial_dst_resolved(void *arg, enum resolver_status status,
    const union sockaddr_any *addrs, size_t n)
{
	struct upstream_dial *d = arg;
	struct session *s = d->s;

	d->query = NULL;
	d->step = DIAL_IDLE;
	if (status != RESOLVER_OK) {
		d->cb(s, status == RESOLVER_NOT_FOUND ? REPLY_HOST_UNREACH :
		    REPLY_FAILURE, -1, NULL, NULL);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (!policy_allow_dest(s, d->dst.u.name, &addrs[i].sa,
		    d->dst.port))
			continue;
		addr_to_socks5(&addrs[i], &d->dst_ip);
		d->have_dst_ip = true;
		if (!dial_start_member(d)) {
			upstream_report(&d->up, d->m, false, ev_now(s->srv->loop));
			dial_try_next(d);
		}
		return;
	}
	d->cb(s, REPLY_NOT_ALLOWED, -1, NULL, NULL);
}

/* Can a CONNECT head name the destination (RFC 3986 host characters)? */
static bool
dial_http_can_ask(const struct upstream_dial *d)
{
	uint8_t head[HTTP_CONNECT_REQUEST_MAX];

	return http_connect_encode(head, sizeof(head), &d->dst, NULL, NULL) >
	    0;
}

static void
dial_try_next(struct upstream_dial *d)
{
	struct session *s = d->s;
	const struct config *cfg = s->srv->cfg;

	while (d->next < d->up.n) {
		d->m = &d->up.members[d->next++];
		/* HTTP CONNECT has no BIND or UDP. */
		if (d->cmd != REQUEST_CMD_CONNECT &&
		    d->m->scheme == UPSTREAM_HTTP)
			continue;
		d->eligible = true;
		if (!upstream_usable(&d->up, d->m, ev_now(s->srv->loop)))
			continue;
		if (d->m->scheme == UPSTREAM_HTTP && !dial_http_can_ask(d)) {
			/* A name HTTP cannot carry: the client's doing, not
			 * the member's. */
			d->last_rep = REPLY_HOST_UNREACH;
			continue;
		}
		if (d->m->scheme == UPSTREAM_SOCKS5 &&
		    d->dst.atyp == SOCKS5_ATYP_NAME && !d->have_dst_ip) {
			d->step = DIAL_RESOLVING_DST;
			session_set_timeout(s, cfg->dns_timeout + 1);
			d->query = resolver_lookup(s->srv->resolver,
			    d->dst.u.name, d->dst.port, cfg->dns_family,
			    dial_dst_resolved, d);
			if (d->query != NULL)
				return;
			d->cb(s, REPLY_FAILURE, -1, NULL, NULL);
			return;
		}
		if (dial_start_member(d))
			return;
		upstream_report(&d->up, d->m, false, ev_now(s->srv->loop));
	}
	d->cb(s, d->eligible ? d->last_rep : REPLY_CMD_UNSUPPORTED, -1, NULL,
	    NULL);
}

int
upstream_dial_next_reply(struct upstream_dial *d, int fd,
    struct socks5_reply *out)
{
	size_t used;
	int got = dial_read_socks5(fd, d->s->target_ssl, d->in, &d->inlen,
	    true);

	if (got != 1)
		return got;
	got = socks5_parse_reply(d->in, d->inlen, out, &used) == SOCKS5_OK &&
	    out->rep <= REPLY_ATYP_UNSUPPORTED ? 1 : -1;
	d->inlen = 0;
	return got;
}

void
upstream_dial_start(struct session *s, const struct upstream *u, uint8_t cmd,
    const struct socks5_addr *dst, upstream_dial_cb *cb)
{
	struct upstream_dial *d = calloc(1, sizeof(*d));

	if (d == NULL || upstream_copy(&d->up, u) == -1) {
		free(d);
		log_warn("%s: calloc", __func__);
		cb(s, REPLY_FAILURE, -1, NULL, NULL);
		return;
	}
	/* For the access log: which upstream, whatever comes of it. */
	free(s->via);
	s->via = strdup(u->name);
	d->s = s;
	d->cmd = cmd;
	d->dst = *dst;
	d->cb = cb;
	d->fd = -1;
	d->last_rep = REPLY_FAILURE;
	s->hs->dial = d;
	session_set_state(s, SESSION_WAITING);
	dial_try_next(d);
}

bool
upstream_dial_busy(const struct upstream_dial *d)
{
	return d->step != DIAL_IDLE;
}

void
upstream_dial_timeout(struct upstream_dial *d)
{
	switch (d->step) {
	case DIAL_CONNECTING:
		happy_timer(d->happy);
		return;
	case DIAL_RESOLVING_DST:
		dial_close(d);
		d->cb(d->s, REPLY_HOST_UNREACH, -1, NULL, NULL);
		return;
	case DIAL_RESOLVING:
		dial_member_failed(d, REPLY_FAILURE, "its name lookup timed out");
		return;
	default:
		dial_member_failed(d, REPLY_FAILURE, "the handshake timed out");
		return;
	}
}

void
upstream_dial_free(struct upstream_dial *d)
{
	if (d == NULL)
		return;
	dial_close(d);
	upstream_copy_release(&d->up);
	free(d);
}
