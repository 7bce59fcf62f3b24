/* The benchmark's loopback target servers, one epoll loop in one process:
 * TCP sink (checks the pattern, acknowledges what it verified), TCP source
 * (sends the pattern), TCP echo on 127.0.0.1 and ::1, and UDP echo; with
 * -C CERT -K KEY also an HTTPS origin (HTTP/1.1 keep-alive, GET /N answered
 * with N bytes of the pattern), the intercept scenario's. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "bench.h"

enum target_kind {
	KIND_LISTEN_SINK,
	KIND_LISTEN_SOURCE,
	KIND_LISTEN_ECHO,
	KIND_LISTEN_HTTPS,
	KIND_UDP_ECHO,
	KIND_SINK,
	KIND_SOURCE,
	KIND_ECHO,
	KIND_HTTPS,
};

/* Most bytes one connection may move per wakeup, so one fast stream does
 * not starve the others. */
#define TARGET_BURST	(4u << 20)
#define TARGET_ACK	8

struct target_conn {
	int		 fd;
	enum target_kind kind;
	uint64_t	 pos;		/* stream offset: verified or sent */
	uint64_t	 acked;		/* sink: last offset acknowledged */
	unsigned char	 ack[TARGET_ACK];
	size_t		 ack_off;	/* sink: bytes of ack still unsent */
	unsigned char	*pending;	/* echo: bytes the client has not taken */
	size_t		 pending_len, pending_off;
	struct target_https *https;	/* KIND_HTTPS only */
};

/* The HTTPS origin: requests are taken one at a time (a pipelined one
 * waits in `in` until the response before it is out); a response is its
 * head with the first bytes of the body in `out`, then the rest of the
 * body straight from the pattern (the same bytes at every offset, so a
 * write OpenSSL asks to retry may come from a new address). */
#define HTTPS_IN_MAX	8192		/* longest request head taken */
#define HTTPS_OUT	16384
#define HTTPS_BODY_MAX	(16u << 20)	/* largest N of GET /N */

struct target_https {
	SSL		*ssl;
	uint32_t	 events;	/* watched for, in epoll */
	int		 handshaken;
	int		 responding;	/* a response is being written */
	int		 close_after;	/* Connection: close, HTTP/1.0, an error */
	size_t		 in_len;
	size_t		 out_len, out_off;
	uint64_t	 body_pos, body_left;	/* what is not in out */
	unsigned char	 in[HTTPS_IN_MAX];
	unsigned char	 out[HTTPS_OUT];
};

static int epfd;
static unsigned char io_buf[4 * BENCH_CHUNK];
static SSL_CTX *https_ctx;
static volatile sig_atomic_t stopping;

static void
target_on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static int
target_watch(struct target_conn *c, int op, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = c };

	return epoll_ctl(epfd, op, c->fd, &ev);
}

static void
target_close(struct target_conn *c)
{
	if (c->https != NULL) {
		/* close_notify, not waited for (as a server closing an idle
		 * keep-alive connection does). */
		if (c->https->handshaken)
			(void)SSL_shutdown(c->https->ssl);
		SSL_free(c->https->ssl);
		ERR_clear_error();
		free(c->https);
	}
	close(c->fd);		/* also leaves the epoll set */
	free(c->pending);
	free(c);
}

static struct target_conn *
target_listen(int family, const char *ip, uint16_t port, int type,
    enum target_kind kind)
{
	struct sockaddr_storage ss;
	socklen_t len;
	struct target_conn *c;
	int fd, one = 1;

	memset(&ss, 0, sizeof(ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		inet_pton(AF_INET, ip, &sin->sin_addr);
		len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		inet_pton(AF_INET6, ip, &sin6->sin6_addr);
		len = sizeof(*sin6);
	}
	fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return NULL;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) == -1 ||
	    (type == SOCK_STREAM && listen(fd, 4096) == -1)) {
		close(fd);
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		close(fd);
		return NULL;
	}
	c->fd = fd;
	c->kind = kind;
	if (target_watch(c, EPOLL_CTL_ADD, EPOLLIN) == -1) {
		target_close(c);
		return NULL;
	}
	return c;
}

static uint16_t
target_port(const struct target_conn *c)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(c->fd, (struct sockaddr *)&ss, &len) == -1)
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static void
target_accept(struct target_conn *l)
{
	static const enum target_kind served[] = {
		[KIND_LISTEN_SINK] = KIND_SINK,
		[KIND_LISTEN_SOURCE] = KIND_SOURCE,
		[KIND_LISTEN_ECHO] = KIND_ECHO,
		[KIND_LISTEN_HTTPS] = KIND_HTTPS,
	};
	int fd, i, one = 1;

	for (i = 0; i < 256; i++) {
		struct target_conn *c;
		uint32_t events;

		fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				fprintf(stderr, "targets: accept: %s\n",
				    strerror(errno));
			return;
		}
		c = calloc(1, sizeof(*c));
		if (c == NULL) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->kind = served[l->kind];
		c->ack_off = TARGET_ACK;	/* no ack under way */
		if (c->kind == KIND_ECHO || c->kind == KIND_HTTPS)
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
			    sizeof(one));
		if (c->kind == KIND_HTTPS && (c->https = calloc(1,
		    sizeof(*c->https))) != NULL) {
			c->https->events = EPOLLIN;
			c->https->ssl = SSL_new(https_ctx);
			if (c->https->ssl == NULL ||
			    SSL_set_fd(c->https->ssl, fd) != 1) {
				ERR_clear_error();
				target_close(c);
				continue;
			}
			SSL_set_accept_state(c->https->ssl);
		} else if (c->kind == KIND_HTTPS) {
			close(fd);
			free(c);
			continue;
		}
		events = c->kind == KIND_SOURCE ? EPOLLIN | EPOLLOUT : EPOLLIN;
		if (target_watch(c, EPOLL_CTL_ADD, events) == -1)
			target_close(c);
	}
}

/* Send the rest of the current ack; 1 when it is all out, 0 when the
 * socket is full (EPOLLOUT is then watched), -1 on error. */
static int
target_sink_flush_ack(struct target_conn *c)
{
	while (c->ack_off < TARGET_ACK) {
		ssize_t n = send(c->fd, c->ack + c->ack_off,
		    TARGET_ACK - c->ack_off, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
			if (target_watch(c, EPOLL_CTL_MOD,
			    EPOLLIN | EPOLLOUT) == -1)
				return -1;
			return 0;
		}
		if (n <= 0)
			return -1;
		c->ack_off += (size_t)n;
	}
	return 1;
}

static int
target_sink_ack(struct target_conn *c)
{
	int done;

	if (c->ack_off < TARGET_ACK) {
		done = target_sink_flush_ack(c);
		if (done <= 0)
			return done;
		if (target_watch(c, EPOLL_CTL_MOD, EPOLLIN) == -1)
			return -1;
	}
	if (c->acked == c->pos)
		return 0;
	c->acked = c->pos;
	memcpy(c->ack, &c->acked, TARGET_ACK);
	c->ack_off = 0;
	return target_sink_flush_ack(c) < 0 ? -1 : 0;
}

/* -1: close the connection (EOF, error or a byte off the pattern). */
static int
target_sink(struct target_conn *c, uint32_t events)
{
	size_t moved = 0;

	if ((events & EPOLLOUT) && target_sink_ack(c) == -1)
		return -1;
	while (moved < TARGET_BURST) {
		ssize_t n = read(c->fd, io_buf, sizeof(io_buf));

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			break;
		if (n <= 0)
			return -1;
		if (pattern_check(io_buf, (size_t)n, c->pos) == -1) {
			fprintf(stderr, "targets: sink: data off the pattern "
			    "near offset %llu; closing\n",
			    (unsigned long long)c->pos);
			return -1;
		}
		c->pos += (uint64_t)n;
		moved += (size_t)n;
	}
	return target_sink_ack(c);
}

static int
target_source(struct target_conn *c, uint32_t events)
{
	size_t moved = 0;

	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		ssize_t n = read(c->fd, io_buf, sizeof(io_buf));

		if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR))
			return -1;
	}
	while ((events & EPOLLOUT) && moved < TARGET_BURST) {
		ssize_t n = send(c->fd, pattern_at(c->pos), BENCH_CHUNK,
		    MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			break;
		if (n <= 0)
			return -1;
		c->pos += (uint64_t)n;
		moved += (size_t)n;
	}
	return 0;
}

static int
target_echo(struct target_conn *c, uint32_t events)
{
	size_t moved = 0;

	if (c->pending != NULL) {
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return 0;
		while (c->pending_off < c->pending_len) {
			ssize_t n = send(c->fd, c->pending + c->pending_off,
			    c->pending_len - c->pending_off,
			    MSG_DONTWAIT | MSG_NOSIGNAL);

			if (n == -1 && errno == EAGAIN)
				return 0;
			if (n <= 0)
				return -1;
			c->pending_off += (size_t)n;
		}
		free(c->pending);
		c->pending = NULL;
		return target_watch(c, EPOLL_CTL_MOD, EPOLLIN);
	}
	while (moved < TARGET_BURST) {
		ssize_t n = read(c->fd, io_buf, sizeof(io_buf)), w;

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return 0;
		if (n <= 0)
			return -1;
		w = send(c->fd, io_buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w == -1 && errno == EAGAIN)
			w = 0;
		if (w < 0)
			return -1;
		if (w < n) {
			/* Stop reading until the client takes the rest. */
			c->pending_len = (size_t)(n - w);
			c->pending_off = 0;
			c->pending = malloc(c->pending_len);
			if (c->pending == NULL)
				return -1;
			memcpy(c->pending, io_buf + w, c->pending_len);
			return target_watch(c, EPOLL_CTL_MOD, EPOLLOUT);
		}
		moved += (size_t)n;
	}
	return 0;
}

/* -- HTTPS origin ---------------------------------------------------------- */

static int
target_https_watch(struct target_conn *c, uint32_t events)
{
	if (c->https->events == events)
		return 0;
	c->https->events = events;
	return target_watch(c, EPOLL_CTL_MOD, events);
}

/* After an OpenSSL call failed with ret: 0 to wait (the readiness it
 * wants is watched), -1 to close. */
static int
target_https_wait(struct target_conn *c, int ret)
{
	switch (SSL_get_error(c->https->ssl, ret)) {
	case SSL_ERROR_WANT_READ:
		return target_https_watch(c, EPOLLIN);
	case SSL_ERROR_WANT_WRITE:
		return target_https_watch(c, EPOLLOUT);
	default:
		ERR_clear_error();
		return -1;	/* close_notify, EOF, reset, TLS alert */
	}
}

/* Take the first complete request head from in and queue its response:
 * 1 when one was queued, 0 when no complete head is there yet, -1 when the
 * head is too long. "GET /N HTTP/1.x" answers 200 with N bytes of the
 * pattern from offset 0; anything else 400 (not /N, N too large), 405 (not
 * GET) or 505 (not HTTP/1.x), each closing the connection after. */
static int
target_https_request(struct target_conn *c)
{
	struct target_https *h = c->https;
	const char *head = (const char *)h->in, *end;
	unsigned long long size = 0;
	size_t used, take;
	const char *status = "200 OK";
	char *num_end;
	int n;

	end = memmem(head, h->in_len, "\r\n\r\n", 4);
	if (end == NULL)
		return h->in_len == sizeof(h->in) ? -1 : 0;
	used = (size_t)(end - head) + 4;
	h->close_after = 0;
	if (strncmp(head, "GET ", 4) != 0) {
		status = "405 Method Not Allowed";
	} else if (head[4] != '/' || head[5] < '0' || head[5] > '9' ||
	    (size = strtoull(head + 5, &num_end, 10)) > HTTPS_BODY_MAX ||
	    *num_end != ' ') {
		status = "400 Bad Request";
	} else if (strncmp(num_end, " HTTP/1.1\r\n", 11) == 0) {
		h->close_after = http_head_closes(head, end);
	} else if (strncmp(num_end, " HTTP/1.0\r\n", 11) == 0) {
		h->close_after = 1;
	} else {
		status = "505 HTTP Version Not Supported";
	}
	if (status[0] != '2') {
		size = 0;
		h->close_after = 1;
	}
	n = snprintf((char *)h->out, sizeof(h->out), "HTTP/1.1 %s\r\n"
	    "Content-Type: application/octet-stream\r\n"
	    "Content-Length: %llu\r\n%s\r\n", status, size,
	    h->close_after ? "Connection: close\r\n" : "");
	h->out_len = (size_t)n;
	h->out_off = 0;
	/* As much of the body as fits goes with the head. */
	take = sizeof(h->out) - h->out_len;
	if (take > size)
		take = (size_t)size;
	memcpy(h->out + h->out_len, pattern_at(0), take);
	h->out_len += take;
	h->body_pos = take;
	h->body_left = size - take;
	h->responding = 1;
	memmove(h->in, h->in + used, h->in_len - used);
	h->in_len -= used;
	return 1;
}

/* Write the response under way: 1 when all of it is out, 0 to wait (the
 * socket is full, or this connection had its burst), -1 to close. */
static int
target_https_respond(struct target_conn *c)
{
	struct target_https *h = c->https;
	size_t moved = 0, n;
	int ret;

	while (h->out_off < h->out_len || h->body_left > 0) {
		const void *from;
		size_t len;

		if (moved >= TARGET_BURST)
			return target_https_watch(c, EPOLLOUT);
		if (h->out_off < h->out_len) {
			from = h->out + h->out_off;
			len = h->out_len - h->out_off;
		} else {
			from = pattern_at(h->body_pos);
			len = h->body_left < BENCH_CHUNK ? (size_t)h->body_left :
			    BENCH_CHUNK;
		}
		if ((ret = SSL_write_ex(h->ssl, from, len, &n)) != 1)
			return target_https_wait(c, ret);
		if (h->out_off < h->out_len) {
			h->out_off += n;
		} else {
			h->body_pos += n;
			h->body_left -= n;
		}
		moved += n;
	}
	h->responding = 0;
	return 1;
}

/* -1: close the connection (end of the stream, an error, a response that
 * closes it has gone out). */
static int
target_https(struct target_conn *c)
{
	struct target_https *h = c->https;
	size_t n;
	int ret;

	if (!h->handshaken) {
		ERR_clear_error();
		if ((ret = SSL_accept(h->ssl)) != 1)
			return target_https_wait(c, ret);
		h->handshaken = 1;
	}
	for (;;) {
		if (h->responding) {
			ERR_clear_error();
			if ((ret = target_https_respond(c)) <= 0)
				return ret;
			if (h->close_after)
				return -1;
		}
		if ((ret = target_https_request(c)) == 1)
			continue;
		if (ret == -1)
			return -1;	/* a request head over 8 KiB */
		/* Read until OpenSSL wants more from the socket: bytes it
		 * holds decrypted are invisible to epoll. */
		ERR_clear_error();
		if ((ret = SSL_read_ex(h->ssl, h->in + h->in_len,
		    sizeof(h->in) - h->in_len, &n)) != 1)
			return target_https_wait(c, ret);
		h->in_len += n;
	}
}

/* The origin's TLS context: the certificate (its chain) and key given. */
static SSL_CTX *
target_https_init(const char *cert, const char *key)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL ||
	    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		char why[256];

		ERR_error_string_n(ERR_get_error(), why, sizeof(why));
		fprintf(stderr, "targets: -C %s -K %s: %s\n", cert, key, why);
		return NULL;
	}
	/* A client gone without close_notify ends the connection quietly. */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	return ctx;
}

static void
target_udp_echo(struct target_conn *c)
{
	int i;

	for (i = 0; i < 256; i++) {
		struct sockaddr_storage from;
		socklen_t len = sizeof(from);
		ssize_t n = recvfrom(c->fd, io_buf, sizeof(io_buf), 0,
		    (struct sockaddr *)&from, &len);

		if (n == -1)
			return;
		sendto(c->fd, io_buf, (size_t)n, MSG_DONTWAIT,
		    (struct sockaddr *)&from, len);
	}
}

int
main(int argc, char **argv)
{
	struct target_conn *sink, *source, *echo4, *echo6 = NULL, *udp;
	struct target_conn *https = NULL;
	struct epoll_event events[256];
	struct sigaction sa;
	const char *cert = NULL, *key = NULL;
	int attempt, ch, i, n;

	while ((ch = getopt(argc, argv, "C:K:")) != -1) {
		switch (ch) {
		case 'C':
			cert = optarg;
			break;
		case 'K':
			key = optarg;
			break;
		default:
			fprintf(stderr, "usage: targets [-C CERT -K KEY]\n");
			return 2;
		}
	}
	if (optind != argc || (cert == NULL) != (key == NULL)) {
		fprintf(stderr, "usage: targets [-C CERT -K KEY]\n");
		return 2;
	}
	if (cert != NULL && (https_ctx = target_https_init(cert, key)) == NULL)
		return 1;
	pattern_init();
	fd_raise_limit();
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = target_on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd == -1)
		return 1;
	sink = target_listen(AF_INET, "127.0.0.1", 0, SOCK_STREAM,
	    KIND_LISTEN_SINK);
	source = target_listen(AF_INET, "127.0.0.1", 0, SOCK_STREAM,
	    KIND_LISTEN_SOURCE);
	udp = target_listen(AF_INET, "127.0.0.1", 0, SOCK_DGRAM, KIND_UDP_ECHO);
	/* The echo port also answers on ::1, so "localhost" works whichever
	 * address a proxy's resolver tries first. */
	for (attempt = 0, echo4 = NULL; attempt < 50 && echo6 == NULL;
	    attempt++) {
		if (echo4 != NULL)
			target_close(echo4);
		echo4 = target_listen(AF_INET, "127.0.0.1", 0, SOCK_STREAM,
		    KIND_LISTEN_ECHO);
		if (echo4 == NULL)
			break;
		echo6 = target_listen(AF_INET6, "::1", target_port(echo4),
		    SOCK_STREAM, KIND_LISTEN_ECHO);
	}
	if (https_ctx != NULL)
		https = target_listen(AF_INET, "127.0.0.1", 0, SOCK_STREAM,
		    KIND_LISTEN_HTTPS);
	if (sink == NULL || source == NULL || udp == NULL || echo4 == NULL ||
	    (https_ctx != NULL && https == NULL)) {
		fprintf(stderr, "targets: cannot listen: %s\n", strerror(errno));
		return 1;
	}
	printf("ports sink=%u source=%u echo=%u udp=%u echo6=%d",
	    target_port(sink), target_port(source), target_port(echo4),
	    target_port(udp), echo6 != NULL);
	if (https != NULL)
		printf(" https=%u", target_port(https));
	printf("\n");
	fflush(stdout);
	while (!stopping) {
		n = epoll_wait(epfd, events, 256, 500);
		for (i = 0; i < n; i++) {
			struct target_conn *c = events[i].data.ptr;
			uint32_t ev = events[i].events;
			int rc = 0;

			switch (c->kind) {
			case KIND_LISTEN_SINK:
			case KIND_LISTEN_SOURCE:
			case KIND_LISTEN_ECHO:
			case KIND_LISTEN_HTTPS:
				target_accept(c);
				break;
			case KIND_UDP_ECHO:
				target_udp_echo(c);
				break;
			case KIND_SINK:
				rc = target_sink(c, ev);
				break;
			case KIND_SOURCE:
				rc = target_source(c, ev);
				break;
			case KIND_ECHO:
				rc = target_echo(c, ev);
				break;
			case KIND_HTTPS:
				rc = target_https(c);
				break;
			}
			if (rc == -1)
				target_close(c);
		}
	}
	return 0;
}
