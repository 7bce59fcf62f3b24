/*
 * libFuzzer target: the daemon's own session code (session.c, the
 * front-ends and the commands behind them) fed one client byte stream in arbitrary
 * splits over a real loopback TCP connection, on the real event loop.
 *
 * The stream goes to every front-end the daemon has (SOCKS5, SOCKS4/4a,
 * HTTP), picked by its first byte as for any client.
 *
 * Input: byte 0 picks the variant (bit 0 password auth, bit 1 BIND and UDP
 * enabled, bit 2 copy relay instead of splice, bit 3 client over ::1, bit 4
 * connect to a BIND listener as its peer, bit 5 half-close before the
 * close); byte 1's low 4 bits are the number of split points, then that
 * many chunk sizes (1-256 bytes each), then the stream. Whatever the chunks
 * do not cover arrives in one last chunk.
 *
 * Nothing leaves loopback: the access rules allow CONNECT only to
 * 127.77.0.0/16 and ::1 on FUZZ_TARGET_PORT (this target listens on
 * 127.77.0.1 and ::1 there, so connects succeed and the relay runs; other
 * 127.77.x.x addresses refuse; a second process gets a port of its own), BIND and UDP ASSOCIATE only toward
 * loopback (or "anyone", which listens on the loopback address the client
 * reached), and deny the rest; every resolved address meets the rules
 * before it is used. DNS goes to a loopback UDP port nobody listens on
 * (names in /etc/hosts still resolve, as c-ares reads it first).
 * After the input the client closes, and the session must be gone within
 * CLOSE_DEADLINE, or the target aborts (a leaked or hung session). Most
 * sessions notice the close at once; one whose handshake buffer is full of
 * early payload has stopped reading (BIND waiting for its peer, a connect
 * or lookup in progress) and ends at its phase timer instead, so those
 * timers are short here.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "socks5d/addr.h"
#include "socks5d/auth.h"
#include "socks5d/command.h"
#include "socks5d/config.h"
#include "socks5d/frontend.h"
#include "socks5d/limits.h"
#include "socks5d/log.h"
#include "socks5d/resolver.h"
#include "socks5d/server.h"
#include "socks5d/session.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_TARGET_PORT   4321
#define FUZZ_DNS_IP        "127.77.0.53"
#define FUZZ_USER          "fuzz"
#define FUZZ_PASSWORD      "secret"

#define VARIANT_PASSWORD   0x01
#define VARIANT_COMMANDS   0x02
#define VARIANT_COPY       0x04
#define VARIANT_IPV6       0x08
#define VARIANT_BIND_PEER  0x10
#define VARIANT_HALF_CLOSE 0x20
#define VARIANT_CONFIGS    8          /* the low three bits pick a config */

/* Loop turns per pump, and how long one blocking turn may wait for an
 * answer (a password check, a refused DNS query). */
#define PUMP_TURNS         64
#define PUMP_WAIT          0.5
/* After the client closed, the session must end within this: longer than
 * the phase timers of the configs (2 s; DNS 1 s + 1). */
#define CLOSE_DEADLINE     5.0
/* Target-side connections (CONNECT targets, BIND peers) held at once. */
#define MAX_PEERS          8

static struct server srv;
static struct config *configs[VARIANT_CONFIGS];
static int listen_fd[2] = { -1, -1 };          /* client side: v4, v6 */
static union sockaddr_any listen_addr[2];
static int target_fd[2] = { -1, -1 };          /* CONNECT targets */
static int peers[MAX_PEERS];
static size_t npeers;
static bool closing;                           /* input over: refuse peers */
static ev_timer guard;
/* Where CONNECT may go: only ports this process holds, so a second
 * fuzzing process (which finds FUZZ_TARGET_PORT taken) never reaches the
 * first one's targets. */
static unsigned target_port = FUZZ_TARGET_PORT;
static const char *target_dests = "127.77.0.0/16, ::1/128";

static void
die(const char *what)
{
	fprintf(stderr, "fuzz_handshake: %s: %s\n", what, strerror(errno));
	abort();
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f == NULL || fputs(text, f) == EOF || fclose(f) != 0)
		die(path);
	if (chmod(path, 0600) == -1)
		die(path);
}

/* A loopback listener on addr (port 0: any); -1 when the family or port
 * is not available. */
static int
open_listener(union sockaddr_any *addr)
{
	socklen_t len = sizeof(*addr);
	int fd, one = 1;

	fd = socket(addr->sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (addr->sa.sa_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
		    sizeof(one));
	if (bind(fd, &addr->sa, addr_len(&addr->sa)) == -1 ||
	    listen(fd, 64) == -1 ||
	    getsockname(fd, &addr->sa, &len) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

static void
loopback(union sockaddr_any *a, int family, const char *ip, uint16_t port)
{
	memset(a, 0, sizeof(*a));
	a->sa.sa_family = (sa_family_t)family;
	if (family == AF_INET) {
		inet_pton(AF_INET, ip, &a->in.sin_addr);
		a->in.sin_port = htons(port);
	} else {
		inet_pton(AF_INET6, ip, &a->in6.sin6_addr);
		a->in6.sin6_port = htons(port);
	}
}

/* A UDP port on FUZZ_DNS_IP that was free a moment ago: queries to it are
 * refused at once, so a name lookup fails fast and never leaves the host.
 * An address of its own keeps the queries away from test DNS servers,
 * which take ports on 127.0.0.1. */
static unsigned
dead_udp_port(void)
{
	union sockaddr_any a;
	socklen_t len = sizeof(a);
	int fd;

	loopback(&a, AF_INET, FUZZ_DNS_IP, 0);
	if ((fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1 ||
	    bind(fd, &a.sa, addr_len(&a.sa)) == -1 ||
	    getsockname(fd, &a.sa, &len) == -1)
		die("dns port");
	close(fd);
	return ntohs(a.in.sin_port);
}

static struct config *
load_variant(const char *dir, unsigned variant, const char *users,
    unsigned dns_port)
{
	char path[256], text[2048], errors_path[300];
	struct config *cfg;
	FILE *errors;

	snprintf(path, sizeof(path), "%s/variant%u.conf", dir, variant);
	snprintf(text, sizeof(text),
	    "[server]\n"
	    "listen = 127.0.0.1:1080\n"
	    "log_level = info\n"
	    "relay = %s\n"
	    /* Every front-end: the first byte picks one. */
	    "protocols = socks5, socks4, http\n"
	    "[auth]\n"
	    "method = %s\n"
	    "%s%s\n"
	    "[timeouts]\n"
	    "handshake = 10\n"
	    "connect = 2\n"
	    "bind = 2\n"
	    "[dns]\n"
	    "servers = " FUZZ_DNS_IP ":%u\n"
	    "timeout = 1\n"
	    "[bind]\n"
	    "enabled = %s\n"
	    "[udp]\n"
	    "enabled = %s\n"
	    "[limits]\n"
	    /* A ban would make an input's outcome depend on earlier ones. */
	    "auth_failures = 0\n"
	    "[rule targets]\n"
	    "action = allow\n"
	    "command = connect\n"
	    "dest = %s\n"
	    "port = %u\n"
	    "[rule bind]\n"
	    "action = allow\n"
	    "command = bind\n"
	    "dest = 127.0.0.0/8, ::1/128, 0.0.0.0/32, ::/128\n"
	    "[rule udp]\n"
	    "action = allow\n"
	    "command = udp\n"
	    "dest = 127.0.0.0/8, ::1/128\n"
	    "[rule rest]\n"
	    "action = deny\n",
	    variant & VARIANT_COPY ? "copy" : "splice",
	    variant & VARIANT_PASSWORD ? "password" : "none",
	    variant & VARIANT_PASSWORD ? "users_file = " : "",
	    variant & VARIANT_PASSWORD ? users : "",
	    dns_port,
	    variant & VARIANT_COMMANDS ? "yes" : "no",
	    variant & VARIANT_COMMANDS ? "yes" : "no",
	    target_dests, target_port);
	write_file(path, text);
	snprintf(errors_path, sizeof(errors_path), "%s/errors", dir);
	if ((errors = fopen(errors_path, "w+")) == NULL)
		die(errors_path);
	if ((cfg = config_load(path, errors)) == NULL) {
		rewind(errors);
		while (fgets(text, sizeof(text), errors) != NULL)
			fputs(text, stdout);
		fprintf(stdout, "fuzz_handshake: config %s rejected\n", path);
		abort();
	}
	fclose(errors);
	return cfg;
}

static void
guard_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char dir[] = "/tmp/socks5d-fuzz-handshake.XXXXXX";
	char users[300], line[400], hash[crypto_pwhash_STRBYTES];
	unsigned dns_port, v;
	union sockaddr_any a;

	(void)argc;
	(void)argv;
	signal(SIGPIPE, SIG_IGN);
	if (sodium_init() == -1)
		die("sodium_init");
	/* Access-log lines are formatted (that code runs) but go nowhere;
	 * sanitizer and libFuzzer reports use their own streams. */
	if (getenv("FUZZ_HANDSHAKE_LOG") == NULL &&
	    (stderr = fopen("/dev/null", "w")) == NULL)
		abort();

	if (mkdtemp(dir) == NULL)
		die("mkdtemp");
	/* The weakest argon2id settings keep a check in microseconds; the
	 * daemon verifies whatever parameters the hash string carries. */
	if (crypto_pwhash_str(hash, FUZZ_PASSWORD, strlen(FUZZ_PASSWORD),
	    crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_MEMLIMIT_MIN) != 0)
		die("crypto_pwhash_str");
	snprintf(users, sizeof(users), "%s/users", dir);
	snprintf(line, sizeof(line), FUZZ_USER ":%s\n", hash);
	write_file(users, line);
	dns_port = dead_udp_port();
	loopback(&a, AF_INET, "127.77.0.1", FUZZ_TARGET_PORT);
	if ((target_fd[0] = open_listener(&a)) == -1) {
		loopback(&a, AF_INET, "127.77.0.1", 0);
		if ((target_fd[0] = open_listener(&a)) == -1)
			die("target listener");
		target_port = ntohs(a.in.sin_port);
	}
	loopback(&a, AF_INET6, "::1", (uint16_t)target_port);
	if ((target_fd[1] = open_listener(&a)) == -1)
		target_dests = "127.77.0.0/16";
	for (v = 0; v < VARIANT_CONFIGS; v++)
		configs[v] = load_variant(dir, v, users, dns_port);

	/* The pieces server_run starts, minus listeners, signals and
	 * privilege dropping. */
	memset(&srv, 0, sizeof(srv));
	srv.cfg = configs[VARIANT_PASSWORD];
	log_set_level(LOG_LEVEL_INFO);
	if ((srv.loop = ev_default_loop(EVFLAG_AUTO)) == NULL)
		die("ev_default_loop");
	if (pipe_pool_init(&srv.pipes, 64, 4, 1024 * 1024) == -1)
		die("pipe_pool_init");
	if ((srv.resolver = resolver_create(srv.loop, srv.cfg)) == NULL)
		die("resolver_create");
	if ((srv.auth = auth_create(srv.loop)) == NULL)
		die("auth_create");
	auth_set_users(srv.auth, srv.cfg->users);
	srv.cfg->users = NULL;
	if ((srv.limits = limits_create()) == NULL)
		die("limits_create");
	limits_configure(srv.limits, &srv.cfg->limits);
	ev_init(&guard, guard_cb);

	loopback(&listen_addr[0], AF_INET, "127.0.0.1", 0);
	if ((listen_fd[0] = open_listener(&listen_addr[0])) == -1)
		die("client listener");
	loopback(&listen_addr[1], AF_INET6, "::1", 0);
	listen_fd[1] = open_listener(&listen_addr[1]);   /* may be absent */
	return 0;
}

static void
close_peers(void)
{
	for (size_t i = 0; i < npeers; i++)
		close(peers[i]);
	npeers = 0;
}

/* Read and drop what the daemon sent on fd; returns the bytes read, and
 * sets *eof when it closed. */
static size_t
drain(int fd, bool *eof)
{
	uint8_t buf[4096];
	size_t total = 0;
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0)
		total += (size_t)n;
	if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR))
		*eof = true;
	return total;
}

/* The far side of CONNECT: accept, greet (so the relay carries bytes
 * down as well as up), drain, and close once the daemon closes. */
static size_t
serve_targets(void)
{
	static const char hello[] = "hello from the target\n";
	size_t activity = 0;
	int fd;

	for (int t = 0; t < 2; t++) {
		if (target_fd[t] == -1)
			continue;
		while ((fd = accept4(target_fd[t], NULL, NULL,
		    SOCK_NONBLOCK | SOCK_CLOEXEC)) != -1) {
			activity++;
			if (closing || npeers == MAX_PEERS) {
				close(fd);
				continue;
			}
			(void)!write(fd, hello, sizeof(hello) - 1);
			peers[npeers++] = fd;
		}
	}
	for (size_t i = 0; i < npeers; i++) {
		bool eof = false;

		activity += drain(peers[i], &eof);
		if (eof) {
			activity++;
			close(peers[i]);
			peers[i--] = peers[--npeers];
		}
	}
	return activity;
}

/* Is some session waiting for an answer that arrives on its own (a
 * password check, a DNS reply, a connect)? */
static bool
session_waiting(void)
{
	for (struct session *s = srv.sessions; s != NULL; s = s->next) {
		if (s->state == SESSION_AUTH_WAIT ||
		    s->state == SESSION_RESOLVING ||
		    (s->state == SESSION_WAITING &&
		    s->command == &command_connect))
			return true;
	}
	return false;
}

/* One blocking loop turn, at most PUMP_WAIT long. */
static void
run_once_bounded(double wait)
{
	ev_timer_set(&guard, wait, 0.);
	ev_timer_start(srv.loop, &guard);
	ev_run(srv.loop, EVRUN_ONCE);
	ev_timer_stop(srv.loop, &guard);
}

/* Run the loop until nothing moves: no bytes either way, no session
 * change, nothing waited for. client may be -1 (closed). */
static void
pump(int client, bool *client_eof)
{
	unsigned quiet = 0;

	for (int i = 0; i < PUMP_TURNS && quiet < 2; i++) {
		unsigned before = srv.nsessions;
		enum session_state state = srv.sessions != NULL ?
		    srv.sessions->state : SESSION_HANDSHAKE;
		size_t activity = 0;

		if (session_waiting())
			run_once_bounded(PUMP_WAIT);
		else
			ev_run(srv.loop, EVRUN_NOWAIT);
		activity += serve_targets();
		if (client != -1 && !*client_eof)
			activity += drain(client, client_eof);
		if (activity == 0 && before == srv.nsessions &&
		    (srv.sessions == NULL || srv.sessions->state == state) &&
		    !session_waiting())
			quiet++;
		else
			quiet = 0;
	}
}

/* Send one chunk, pumping while the socket is full. false: the daemon is
 * gone (or will not read), stop sending. */
static bool
send_chunk(int client, const uint8_t *p, size_t len, bool *client_eof)
{
	for (int tries = 0; len > 0 && tries < 16; tries++) {
		ssize_t n = write(client, p, len);

		if (n > 0) {
			p += n;
			len -= (size_t)n;
		} else if (n == -1 && errno != EAGAIN && errno != EINTR) {
			return false;
		}
		pump(client, client_eof);
	}
	return len == 0;
}

/* BIND waits for a peer: be it, from loopback. */
static void
connect_bind_peer(void)
{
	union sockaddr_any a;
	socklen_t len = sizeof(a);
	int fd;

	if (srv.sessions == NULL || srv.sessions->state != SESSION_WAITING ||
	    srv.sessions->command != &command_bind ||
	    npeers == MAX_PEERS ||
	    getsockname(srv.sessions->target_fd, &a.sa, &len) == -1)
		return;
	if (a.sa.sa_family != AF_INET && a.sa.sa_family != AF_INET6)
		abort();
	if (!config_addr_is_loopback(&a.sa))
		abort();        /* the rules let BIND listen elsewhere */
	fd = socket(a.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1)
		return;
	if (connect(fd, &a.sa, len) == -1 && errno != EINPROGRESS) {
		close(fd);
		return;
	}
	(void)!write(fd, "peer", 4);
	peers[npeers++] = fd;
}

/* A loopback connection to ourselves; the accepted end goes to the
 * daemon's session_accept, as the listener would hand it over. */
static int
open_client(int family_index)
{
	union sockaddr_any peer;
	socklen_t len = sizeof(peer);
	struct session *s;
	int client, fd, one = 1;

	client = socket(listen_addr[family_index].sa.sa_family,
	    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (client == -1)
		die("client socket");
	if (connect(client, &listen_addr[family_index].sa,
	    addr_len(&listen_addr[family_index].sa)) == -1 &&
	    errno != EINPROGRESS)
		die("client connect");
	for (int tries = 0; ; tries++) {
		fd = accept4(listen_fd[family_index], &peer.sa, &len,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd != -1)
			break;
		if (errno != EAGAIN || tries == 1000)
			die("client accept");
		usleep(100);
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	s = session_accept(&srv, fd, &peer.sa);
	if (s != NULL)
		frontend_start(s, false);
	return client;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *stream;
	size_t nsplit, slen, delivered = 0;
	unsigned variant;
	bool client_eof = false;
	ev_tstamp deadline;
	int client;

	if (size < 2)
		return 0;
	variant = data[0];
	nsplit = data[1] & 0x0f;
	if (size < 2 + nsplit)
		return 0;
	stream = data + 2 + nsplit;
	slen = size - 2 - nsplit;

	srv.cfg = configs[variant % VARIANT_CONFIGS];
	closing = false;
	client = open_client((variant & VARIANT_IPV6) && listen_fd[1] != -1);
	pump(client, &client_eof);

	for (size_t i = 0; delivered < slen; i++) {
		size_t chunk = i < nsplit ? (size_t)data[2 + i] + 1 :
		    slen - delivered;

		if (chunk > slen - delivered)
			chunk = slen - delivered;
		if (!send_chunk(client, stream + delivered, chunk, &client_eof))
			break;
		delivered += chunk;
	}
	if (variant & VARIANT_BIND_PEER) {
		connect_bind_peer();
		pump(client, &client_eof);
	}
	if (variant & VARIANT_HALF_CLOSE) {
		(void)shutdown(client, SHUT_WR);
		pump(client, &client_eof);
	}

	/* The client goes: every session must end on its own. */
	close(client);
	closing = true;
	close_peers();
	ev_now_update(srv.loop);
	deadline = ev_now(srv.loop) + CLOSE_DEADLINE;
	while (srv.nsessions != 0 && ev_now(srv.loop) < deadline) {
		run_once_bounded(0.05);
		serve_targets();
		close_peers();
	}
	if (srv.nsessions != 0) {
		fprintf(stdout, "fuzz_handshake: %u session(s) still open "
		    "%.0fs after the client closed (state %d)\n",
		    srv.nsessions, CLOSE_DEADLINE, (int)srv.sessions->state);
		fflush(stdout);
		abort();
	}
	return 0;
}
