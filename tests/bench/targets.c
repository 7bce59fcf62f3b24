/* The benchmark's loopback target servers, one epoll loop in one process:
 * TCP sink (checks the pattern, acknowledges what it verified), TCP source
 * (sends the pattern), TCP echo on 127.0.0.1 and ::1, and UDP echo. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

enum target_kind {
	KIND_LISTEN_SINK,
	KIND_LISTEN_SOURCE,
	KIND_LISTEN_ECHO,
	KIND_UDP_ECHO,
	KIND_SINK,
	KIND_SOURCE,
	KIND_ECHO,
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
};

static int epfd;
static unsigned char io_buf[4 * BENCH_CHUNK];
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
		if (c->kind == KIND_ECHO)
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
			    sizeof(one));
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
main(void)
{
	struct target_conn *sink, *source, *echo4, *echo6 = NULL, *udp;
	struct epoll_event events[256];
	struct sigaction sa;
	int attempt, i, n;

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
	if (sink == NULL || source == NULL || udp == NULL || echo4 == NULL) {
		fprintf(stderr, "targets: cannot listen: %s\n", strerror(errno));
		return 1;
	}
	printf("ports sink=%u source=%u echo=%u udp=%u echo6=%d\n",
	    target_port(sink), target_port(source), target_port(echo4),
	    target_port(udp), echo6 != NULL);
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
			}
			if (rc == -1)
				target_close(c);
		}
	}
	return 0;
}
