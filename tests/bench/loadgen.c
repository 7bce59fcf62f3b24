/* The benchmark's load generator: one scenario per run, direct or through
 * a SOCKS5 or HTTP CONNECT proxy, optionally over TLS to the proxy (-T), or
 * HTTPS to an origin through the tunnel (https-conn, https-req: what an
 * intercepting proxy serves), one epoll loop, every byte checked against
 * the pattern.
 * Prints one "result key=value ..." line; any data error exits 3, any other
 * failure 1, so a broken proxy reports a failure instead of a number. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "bench.h"

#define LG_EXIT_ERROR	1
#define LG_EXIT_VERIFY	3
#define LG_IO_TIMEOUT	10	/* seconds, for set-up steps */
#define LG_CYCLE_TIMEOUT 10000000000ULL	/* ns a connection cycle may take */
#define LG_MAX_MSG	1024
#define LG_MAX_EVENTS	256
#define LG_HTTP_HEAD_MAX 512	/* longest HTTP response head taken */
#define LG_HTTP_REQ_MAX	1400	/* CONNECT, Host, a 684-byte Basic login */
#define LG_HTTPS_HEAD_MAX 4096	/* longest response head from the origin */
#define LG_HTTPS_BODY_MAX (16u << 20)	/* largest -s of https-conn/req */
#define LG_HTTPS_NAME	"origin.bench.test"	/* -S's default */

struct lg_options {
	const char		*mode;
	int			 proxied;
	int			 http;		/* -P http: HTTP CONNECT tunnels */
	struct sockaddr_storage	 proxy;
	socklen_t		 proxy_len;
	struct sockaddr_storage	 target;
	socklen_t		 target_len;
	const char		*name;		/* CONNECT by name, not -t's IP */
	const char		*user, *password;
	int			 conns;
	double			 seconds;
	size_t			 size;
	int			 window;
	/* After the run, how long the last bytes sent may take to come
	 * back verified (acknowledged by the sink, echoed) before the run
	 * counts as a proxy that lost them. */
	double			 settle;
	const char		*cafile;	/* -T: TLS to the proxy */
	/* https-conn, https-req: TLS to the origin through the tunnel, its
	 * chain verified against origin_ca (-O: an intercepting proxy's CA,
	 * or the origin's own without one), for the name sni (-S), the
	 * issuer's CN required to be issuer (-I) when given. */
	const char		*origin_ca;
	const char		*sni;
	const char		*issuer;
	int			 https;		/* the mode is one of those */
	int			 hello;		/* -H: connrate's message is a
						 * TLS ClientHello */
};

static struct lg_options opt = {
	.conns = 1, .seconds = 3.0, .size = 64, .window = 8, .settle = 20.0,
};
static unsigned char io_buf[4 * BENCH_CHUNK];
/* With -H every connrate cycle sends this ClientHello (echoed back), so
 * a proxy that sniffs server names reads a whole one: built once. */
static unsigned char lg_hello[1536];
static size_t lg_hello_len;
/* With -P http every tunnel sends the same request: built once. */
static char http_request[LG_HTTP_REQ_MAX];
static size_t http_request_len;
static struct histogram latency;

static void __attribute__((noreturn, format(printf, 2, 3)))
lg_fail(int status, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "loadgen: %s", status == LG_EXIT_VERIFY ?
	    "verify failed: " : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(status);
}

static void
lg_usage(void)
{
	fprintf(stderr,
	    "usage: loadgen MODE -t IP:PORT [-p PROXY:PORT [-T CAFILE]] "
	    "[-P socks5|http] [-n NAME]\n"
	    "               [-a USER:PASS] [-c CONNS] [-d SECONDS] [-s SIZE] "
	    "[-w WINDOW] [-W SETTLE]\n"
	    "               [-O CAFILE [-S NAME] [-I ISSUER_CN]] [-H]\n"
	    "modes: bulk-up bulk-down reqresp connrate idle udp "
	    "(udp: not with -P http or -T)\n"
	    "       https-conn https-req (with -O, not with -T; -s is the "
	    "body size)\n"
	    "-H: connrate cycles send a TLS ClientHello for bench.example, "
	    "not one byte\n");
	exit(2);
}

/* Wait up to LG_IO_TIMEOUT for fd to be ready for events; 0 or -1. */
static int
lg_wait(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };
	int n;

	do
		n = poll(&p, 1, LG_IO_TIMEOUT * 1000);
	while (n == -1 && errno == EINTR);
	if (n == 0)
		errno = ETIMEDOUT;
	return n == 1 ? 0 : -1;
}

/* -- TLS to the proxy (-T) ----------------------------------------------- */

/*
 * With -T every connection to the proxy is a TLS client (OpenSSL, TLS 1.2
 * or 1.3, the proxy's certificate verified against CAFILE and against the
 * proxy's IP address from -p), with the SOCKS5 or HTTP dialogue and the
 * data inside it. No session is ever kept or offered, so every handshake
 * is a full one (and that is checked).
 *
 * Everything goes through lg_recv, lg_peek and lg_send, which keep the
 * conventions of read(2), recv(MSG_PEEK) and send(2) for either kind of
 * connection: -1 with EAGAIN when OpenSSL wants to read for a read or to
 * write for a write, so a caller waits for the readiness it would wait for
 * on a plain socket. The other way round (a read that must write first, as
 * for a TLS 1.3 key update, or a write that must read) is waited for on
 * the spot with poll(2): these servers never make it happen, and callers'
 * epoll interests stay those of a plain socket.
 * A read may leave decrypted bytes inside OpenSSL, where epoll cannot see
 * them: TLS readers go on while lg_read_again says so (read_ahead stays
 * off, so nothing else hides there).
 */
#define LG_TLS_READS	16	/* reads per readiness, but for what OpenSSL
				 * holds already */
#define LG_TLS_GATHER	(4 * (16384 + 64))	/* a send's records (bulk-up) */

static SSL_CTX *tls_ctx;
static SSL_CTX *origin_ctx;	/* https-conn, https-req: TLS to the origin */
static SSL **tls_by_fd;
static size_t tls_by_fd_len;
static char tls_error[256];	/* why the last TLS call failed */
static char tls_params[128];	/* " tls=VERSION cipher=NAME", first session */
static char tls_issuer[160];	/* " issuer=CN" the client saw, first session */

static SSL *
lg_tls(int fd)
{
	return fd >= 0 && (size_t)fd < tls_by_fd_len ? tls_by_fd[fd] : NULL;
}

/* strerror(3), but for a TLS failure (EPROTO) what OpenSSL said. */
static const char *
lg_strerror(int err)
{
	if (err == EPROTO && tls_error[0] != '\0')
		return tls_error;
	return strerror(err);
}

/* Put into tls_error why a TLS call failed with SSL error code err. */
static void
lg_tls_note(SSL *ssl, int err)
{
	unsigned long e = ERR_peek_error();
	long verify = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;

	if (verify != X509_V_OK)
		snprintf(tls_error, sizeof(tls_error), "TLS: %s: %s",
		    SSL_get_SSL_CTX(ssl) == origin_ctx ? "the certificate "
		    "presented for the origin" : "the proxy's certificate",
		    X509_verify_cert_error_string(verify));
	else if (e != 0) {
		strcpy(tls_error, "TLS: ");
		ERR_error_string_n(e, tls_error + 5, sizeof(tls_error) - 5);
	} else if (err == SSL_ERROR_SYSCALL && errno != 0)
		snprintf(tls_error, sizeof(tls_error), "TLS: %s",
		    strerror(errno));
	else
		snprintf(tls_error, sizeof(tls_error), "TLS: connection "
		    "closed (SSL error %d)", err);
	ERR_clear_error();
}

static void
lg_tls_init(void)
{
	tls_ctx = SSL_CTX_new(TLS_client_method());
	if (tls_ctx == NULL ||
	    SSL_CTX_set_min_proto_version(tls_ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_load_verify_locations(tls_ctx, opt.cafile, NULL) != 1) {
		lg_tls_note(NULL, SSL_ERROR_SSL);
		lg_fail(LG_EXIT_ERROR, "-T %s: %s", opt.cafile, tls_error);
	}
	SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_PEER, NULL);
	/* A FIN without close_notify ends the stream as on a plain socket. */
	SSL_CTX_set_options(tls_ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* Full handshakes only: no client-side session cache (nothing is
	 * offered for resumption; tickets the server sends are dropped). */
	SSL_CTX_set_session_cache_mode(tls_ctx, SSL_SESS_CACHE_OFF);
	/* A write returns once a record has gone: send(2)'s short writes.
	 * A write retried after WANT_WRITE may come from another address
	 * (the pattern holds the same bytes at every period). */
	SSL_CTX_set_mode(tls_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* One read(2) for several records, as a browser's TLS stack does
	 * (OpenSSL alone reads a header, then its body: two per record),
	 * so the load generator's own cost weighs less in every row;
	 * readers go on while OpenSSL holds bytes (lg_read_again). */
	SSL_CTX_set_read_ahead(tls_ctx, 1);
	SSL_CTX_set_default_read_buffer_len(tls_ctx, 64 * 1024);
	/* Thousands of sessions held idle: buffers only while in use, so
	 * the load generator's own memory stays small. */
	if (strcmp(opt.mode, "idle") == 0)
		SSL_CTX_set_mode(tls_ctx, SSL_MODE_RELEASE_BUFFERS);
}

/* From now on lg_recv, lg_send and the rest go through ssl for fd. */
static void
lg_tls_register(int fd, SSL *ssl)
{
	if ((size_t)fd >= tls_by_fd_len) {
		size_t len = tls_by_fd_len ? tls_by_fd_len : 64;
		SSL **grown;

		while (len <= (size_t)fd)
			len *= 2;
		grown = realloc(tls_by_fd, len * sizeof(*grown));
		if (grown == NULL)
			lg_fail(LG_EXIT_ERROR, "out of memory");
		memset(grown + tls_by_fd_len, 0,
		    (len - tls_by_fd_len) * sizeof(*grown));
		tls_by_fd = grown;
		tls_by_fd_len = len;
	}
	tls_by_fd[fd] = ssl;
}

/* A TLS client on the connected socket fd, checking the proxy's address. */
static SSL *
lg_tls_attach(int fd)
{
	SSL *ssl = SSL_new(tls_ctx);
	const unsigned char *ip;
	size_t iplen;

	if (opt.proxy.ss_family == AF_INET) {
		ip = (const unsigned char *)
		    &((const struct sockaddr_in *)&opt.proxy)->sin_addr;
		iplen = 4;
	} else {
		ip = (const unsigned char *)
		    &((const struct sockaddr_in6 *)&opt.proxy)->sin6_addr;
		iplen = 16;
	}
	if (ssl == NULL || SSL_set_fd(ssl, fd) != 1 ||
	    X509_VERIFY_PARAM_set1_ip(SSL_get0_param(ssl), ip, iplen) != 1) {
		lg_tls_note(NULL, SSL_ERROR_SSL);
		lg_fail(LG_EXIT_ERROR, "%s", tls_error);
	}
	/* Bulk upload: the records of a send leave in one write(2), as a
	 * buffering client's would, not one each (lg_tls_write flushes). */
	if (strcmp(opt.mode, "bulk-up") == 0) {
		BIO *buffer = BIO_new(BIO_f_buffer());
		BIO *sock = BIO_new_socket(fd, BIO_NOCLOSE);

		if (buffer == NULL || sock == NULL ||
		    BIO_set_write_buffer_size(buffer, LG_TLS_GATHER) != 1)
			lg_fail(LG_EXIT_ERROR, "out of memory");
		BIO_up_ref(SSL_get_rbio(ssl));
		SSL_set_bio(ssl, SSL_get_rbio(ssl), BIO_push(buffer, sock));
	}
	lg_tls_register(fd, ssl);
	return ssl;
}

/* The handshake is done: it must have been a full one. */
static void
lg_tls_established(SSL *ssl)
{
	if (SSL_session_reused(ssl))
		lg_fail(LG_EXIT_ERROR, "TLS session resumed: every handshake "
		    "must be a full one");
	if (tls_params[0] == '\0')
		snprintf(tls_params, sizeof(tls_params), " tls=%s cipher=%s",
		    SSL_get_version(ssl), SSL_get_cipher_name(ssl));
}

/* The whole handshake on a blocking socket (the set-up of a tunnel). */
static void
lg_tls_connect_blocking(int fd)
{
	SSL *ssl = lg_tls_attach(fd);
	int ret;

	ERR_clear_error();
	errno = 0;
	if ((ret = SSL_connect(ssl)) != 1) {
		lg_tls_note(ssl, SSL_get_error(ssl, ret));
		lg_fail(LG_EXIT_ERROR, "%s", tls_error);
	}
	lg_tls_established(ssl);
}

/* A TLS call returned ret (not 1): 1 to make it again (the readiness it
 * wanted the other way round came), 0 at the end of the stream, -1 with
 * errno (EAGAIN: wait for the readiness a plain socket would wait for). */
static int
lg_tls_after(int fd, SSL *ssl, int ret, int writing)
{
	int err = SSL_get_error(ssl, ret);

	switch (err) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		if ((err == SSL_ERROR_WANT_WRITE) == (writing != 0)) {
			errno = EAGAIN;
			return -1;
		}
		return lg_wait(fd, err == SSL_ERROR_WANT_READ ? POLLIN :
		    POLLOUT) == 0 ? 1 : -1;
	case SSL_ERROR_ZERO_RETURN:
		return 0;	/* close_notify, or a FIN (see lg_tls_init) */
	case SSL_ERROR_SYSCALL:
		if (errno != 0)
			return -1;
		/* FALLTHROUGH */
	default:
		lg_tls_note(ssl, err);
		errno = EPROTO;
		return -1;
	}
}

static ssize_t
lg_tls_read(int fd, SSL *ssl, void *buf, size_t len, int peek)
{
	size_t n;
	int ret;

	do {
		ERR_clear_error();
		errno = 0;
		if ((peek ? SSL_peek_ex(ssl, buf, len, &n) :
		    SSL_read_ex(ssl, buf, len, &n)) == 1)
			return (ssize_t)n;
	} while ((ret = lg_tls_after(fd, ssl, 0, 0)) == 1);
	return ret;
}

/* Send what the write buffer holds (bulk-up): 0 once it is out, -1 with
 * errno (EAGAIN: the socket is full). */
static int
lg_tls_flush(SSL *ssl)
{
	BIO *wbio = SSL_get_wbio(ssl);

	if (BIO_wpending(wbio) == 0 || BIO_flush(wbio) == 1)
		return 0;
	if (!BIO_should_retry(wbio) && errno == 0)
		errno = EPIPE;
	else if (BIO_should_retry(wbio))
		errno = EAGAIN;
	return -1;
}

/* send(2) conventions: as much of buf as the socket takes now (records
 * of 16 KiB each; partial writes), then one flush for those the write
 * buffer gathered (bulk-up). Bytes taken but still buffered go first
 * at the next call. */
static ssize_t
lg_tls_write(int fd, SSL *ssl, const void *buf, size_t len)
{
	size_t n, done = 0;
	int ret = -1;

	if (lg_tls_flush(ssl) == -1)
		return -1;
	while (done < len) {
		ERR_clear_error();
		errno = 0;
		if (SSL_write_ex(ssl, (const char *)buf + done, len - done,
		    &n) == 1) {
			done += n;
			continue;
		}
		if ((ret = lg_tls_after(fd, ssl, 0, 1)) != 1)
			break;
	}
	if (done > 0) {
		(void)lg_tls_flush(ssl);
		return (ssize_t)done;
	}
	if (ret == 0)		/* the server's close_notify: no more writes */
		errno = EPIPE;
	return ret == 0 ? -1 : ret;
}

/* Everything a bulk-up stream's buffer holds goes out before the wait
 * for the sink's acknowledgements. */
static void
lg_tls_flush_all(int fd)
{
	SSL *ssl = lg_tls(fd);

	while (ssl != NULL && lg_tls_flush(ssl) == -1)
		if (errno != EAGAIN || lg_wait(fd, POLLOUT) == -1)
			lg_fail(LG_EXIT_ERROR, "send: %s",
			    lg_strerror(errno));
}

/* read(2) from a tunnel, plain or TLS. */
static ssize_t
lg_recv(int fd, void *buf, size_t len)
{
	SSL *ssl = lg_tls(fd);

	return ssl != NULL ? lg_tls_read(fd, ssl, buf, len, 0) :
	    read(fd, buf, len);
}

/* recv(2) with MSG_PEEK from a tunnel (TLS: from the current record). */
static ssize_t
lg_peek(int fd, void *buf, size_t len)
{
	SSL *ssl = lg_tls(fd);

	return ssl != NULL ? lg_tls_read(fd, ssl, buf, len, 1) :
	    recv(fd, buf, len, MSG_PEEK);
}

/* send(2) into a tunnel, plain or TLS. */
static ssize_t
lg_send(int fd, const void *buf, size_t len)
{
	SSL *ssl = lg_tls(fd);

	return ssl != NULL ? lg_tls_write(fd, ssl, buf, len) :
	    send(fd, buf, len, MSG_NOSIGNAL);
}

/* After a read that brought bytes, whether to read again before waiting
 * for readiness: a plain socket never (one read per readiness, level-
 * triggered epoll comes back); a TLS one while OpenSSL holds bytes epoll
 * cannot see, and otherwise until *reads (counted here) reaches
 * LG_TLS_READS: a read brings one record at most, and reading on spares
 * epoll_wait calls. Start *reads at LG_TLS_READS to read on only for what
 * OpenSSL holds (one message awaited at a time). */
static int
lg_read_again(int fd, int *reads)
{
	SSL *ssl = lg_tls(fd);

	if (ssl == NULL)
		return 0;
	return SSL_has_pending(ssl) || ++*reads < LG_TLS_READS;
}

/* close(2) a tunnel; a TLS one first says close_notify (not waited for
 * the server's), as a client ending its session does. */
static void
lg_close(int fd)
{
	SSL *ssl = lg_tls(fd);

	if (ssl != NULL) {
		ERR_clear_error();
		(void)SSL_shutdown(ssl);
		ERR_clear_error();
		SSL_free(ssl);
		tls_by_fd[fd] = NULL;
	}
	close(fd);
}

static int
lg_nonblocking(int fd)
{
	int flags = fcntl(fd, F_GETFL);

	return flags != -1 && (flags & O_NONBLOCK) != 0;
}

/* All of buf into a tunnel. A non-blocking socket that is full is waited
 * for; on a blocking one EAGAIN is its SO_SNDTIMEO, a failure. */
static int
lg_write_all(int fd, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	while (len > 0) {
		ssize_t n = lg_send(fd, p, len);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN && lg_nonblocking(fd)) {
			if (lg_wait(fd, POLLOUT) == -1)
				return -1;
			continue;
		}
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Exactly len bytes from a blocking tunnel. */
static int
lg_read_exact(int fd, void *buf, size_t len)
{
	unsigned char *p = buf;

	while (len > 0) {
		ssize_t n = lg_recv(fd, p, len);

		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Bytes of a CONNECT/UDP request for dst (or name) into buf. */
static size_t
lg_encode_request(unsigned char *buf, uint8_t cmd,
    const struct sockaddr_storage *dst, const char *name)
{
	size_t len = 0;
	uint16_t port;

	buf[len++] = 5;
	buf[len++] = cmd;
	buf[len++] = 0;
	if (dst->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)dst;

		port = sin->sin_port;
		if (name != NULL) {
			size_t n = strlen(name);

			buf[len++] = 3;
			buf[len++] = (unsigned char)n;
			memcpy(buf + len, name, n);
			len += n;
		} else {
			buf[len++] = 1;
			memcpy(buf + len, &sin->sin_addr, 4);
			len += 4;
		}
	} else {
		const struct sockaddr_in6 *sin6 =
		    (const struct sockaddr_in6 *)dst;

		port = sin6->sin6_port;
		buf[len++] = 4;
		memcpy(buf + len, &sin6->sin6_addr, 16);
		len += 16;
	}
	memcpy(buf + len, &port, 2);
	return len + 2;
}

/* Total length of a reply whose first 5 bytes are in buf, or 0 if bad. */
static size_t
lg_reply_length(const unsigned char *buf)
{
	if (buf[0] != 5)
		return 0;
	switch (buf[3]) {
	case 1:
		return 4 + 4 + 2;
	case 4:
		return 4 + 16 + 2;
	case 3:
		return 4 + 1 + (size_t)buf[4] + 2;
	default:
		return 0;
	}
}

static size_t
lg_encode_greeting(unsigned char *buf)
{
	buf[0] = 5;
	buf[1] = 1;
	buf[2] = opt.user != NULL ? 2 : 0;
	return 3;
}

static size_t
lg_encode_auth(unsigned char *buf)
{
	size_t ulen = strlen(opt.user), plen = strlen(opt.password);

	buf[0] = 1;
	buf[1] = (unsigned char)ulen;
	memcpy(buf + 2, opt.user, ulen);
	buf[2 + ulen] = (unsigned char)plen;
	memcpy(buf + 3 + ulen, opt.password, plen);
	return 3 + ulen + plen;
}

static size_t
lg_base64(char *out, const unsigned char *in, size_t len)
{
	static const char digits[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i, o = 0;

	for (i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;

		if (i + 1 < len)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < len)
			v |= in[i + 2];
		out[o++] = digits[v >> 18 & 63];
		out[o++] = digits[v >> 12 & 63];
		out[o++] = i + 1 < len ? digits[v >> 6 & 63] : '=';
		out[o++] = i + 2 < len ? digits[v & 63] : '=';
	}
	out[o] = '\0';
	return o;
}

/* The CONNECT request for -t (or -n's name) at its port, with a Basic
 * login when -a gave one, into http_request. */
static void
lg_build_http_request(void)
{
	char host[INET6_ADDRSTRLEN + 2], authority[300], login[512];
	char auth[720] = "";
	uint16_t port;
	int n;

	if (opt.target.ss_family == AF_INET) {
		const struct sockaddr_in *sin =
		    (const struct sockaddr_in *)&opt.target;

		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		port = ntohs(sin->sin_port);
	} else {
		const struct sockaddr_in6 *sin6 =
		    (const struct sockaddr_in6 *)&opt.target;

		host[0] = '[';
		inet_ntop(AF_INET6, &sin6->sin6_addr, host + 1, sizeof(host) - 2);
		strcat(host, "]");
		port = ntohs(sin6->sin6_port);
	}
	snprintf(authority, sizeof(authority), "%s:%u",
	    opt.name != NULL ? opt.name : host, port);
	if (opt.user != NULL) {
		n = snprintf(login, sizeof(login), "%s:%s", opt.user,
		    opt.password);
		strcpy(auth, "Proxy-Authorization: Basic ");
		lg_base64(auth + strlen(auth), (unsigned char *)login,
		    (size_t)n);
		strcat(auth, "\r\n");
	}
	n = snprintf(http_request, sizeof(http_request),
	    "CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", authority,
	    authority, auth);
	if (n < 0 || (size_t)n >= sizeof(http_request))
		lg_fail(LG_EXIT_ERROR, "HTTP request too long");
	http_request_len = (size_t)n;
}

/* The first have bytes of a response head must be able to begin
 * "HTTP/1.x 200 " (or "HTTP/1.x 200\r"): anything else fails at once, so a
 * server that is not an HTTP proxy (or refuses) is not waited on for a
 * head that never ends. */
static void
lg_http_check_status(const unsigned char *buf, size_t have)
{
	size_t i;

	for (i = 0; i < have && i < 13; i++) {
		int ok;

		if (i < 7)
			ok = buf[i] == (unsigned char)"HTTP/1."[i];
		else if (i == 7)
			ok = buf[i] == '0' || buf[i] == '1';
		else if (i == 8)
			ok = buf[i] == ' ';
		else if (i < 12)
			ok = buf[i] >= '0' && buf[i] <= '9';
		else
			ok = buf[i] == ' ' || buf[i] == '\r';
		if (!ok)
			lg_fail(LG_EXIT_ERROR, "malformed HTTP response "
			    "(byte %zu is %02x)", i, buf[i]);
		if (i == 11 && memcmp(buf + 9, "200", 3) != 0)
			lg_fail(LG_EXIT_ERROR, "CONNECT refused with status "
			    "%.3s", (const char *)buf + 9);
	}
}

/* Where the head in buf (have bytes, checked) ends, just after its blank
 * line, or NULL if not yet; too long a head fails. */
static const unsigned char *
lg_http_head_end(const unsigned char *buf, size_t have)
{
	const unsigned char *end;

	lg_http_check_status(buf, have);
	end = memmem(buf, have, "\r\n\r\n", 4);
	if (end == NULL && have >= LG_HTTP_HEAD_MAX)
		lg_fail(LG_EXIT_ERROR, "HTTP response head over %d bytes",
		    LG_HTTP_HEAD_MAX);
	return end != NULL ? end + 4 : NULL;
}

/* Take the response head from a blocking socket and not one byte more:
 * the tunnel's first bytes (a source sends at once) may share its read.
 * Each read is peeked first, then only the head's part of it taken (over
 * TLS a peek sees one record, and what is not taken stays in OpenSSL). */
static void
lg_http_read_head(int fd)
{
	unsigned char buf[LG_HTTP_HEAD_MAX];
	const unsigned char *end;
	size_t have = 0, take;
	ssize_t n;

	for (;;) {
		n = lg_peek(fd, buf + have, sizeof(buf) - have);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == 0)
			lg_fail(LG_EXIT_ERROR, "HTTP response: connection "
			    "closed after %zu bytes", have);
		if (n < 0)
			lg_fail(LG_EXIT_ERROR, "HTTP response: %s",
			    lg_strerror(errno));
		end = lg_http_head_end(buf, have + (size_t)n);
		take = end != NULL ? (size_t)(end - buf) - have : (size_t)n;
		if (lg_read_exact(fd, buf + have, take) == -1)
			lg_fail(LG_EXIT_ERROR, "HTTP response: %s",
			    lg_strerror(errno));
		have += take;
		if (end != NULL)
			return;
	}
}

static void
lg_set_timeouts(int fd, int seconds)
{
	struct timeval tv = { .tv_sec = seconds };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* A blocking connection to dst (directly or through the proxy with cmd);
 * the proxy's bound address goes to bound when asked for. An HTTP tunnel
 * (CONNECT only) goes to -t or -n, whose request is built once. With -T
 * the TLS handshake with the proxy comes first. */
static int
lg_open(uint8_t cmd, const struct sockaddr_storage *dst, const char *name,
    struct sockaddr_storage *bound)
{
	const struct sockaddr_storage *to = opt.proxied ? &opt.proxy : dst;
	socklen_t to_len = opt.proxied ? opt.proxy_len : opt.target_len;
	unsigned char buf[600];
	size_t len;
	int fd, one = 1;

	fd = socket(to->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		lg_fail(LG_EXIT_ERROR, "socket: %s", lg_strerror(errno));
	lg_set_timeouts(fd, LG_IO_TIMEOUT);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (const struct sockaddr *)to, to_len) == -1)
		lg_fail(LG_EXIT_ERROR, "connect: %s", lg_strerror(errno));
	if (!opt.proxied)
		return fd;
	if (tls_ctx != NULL)
		lg_tls_connect_blocking(fd);
	if (opt.http) {
		if (lg_write_all(fd, http_request, http_request_len) == -1)
			lg_fail(LG_EXIT_ERROR, "request: %s", lg_strerror(errno));
		lg_http_read_head(fd);
		return fd;
	}
	len = lg_encode_greeting(buf);
	if (lg_write_all(fd, buf, len) == -1 || lg_read_exact(fd, buf, 2) == -1)
		lg_fail(LG_EXIT_ERROR, "greeting: %s", lg_strerror(errno));
	if (buf[0] != 5 || buf[1] != (opt.user != NULL ? 2 : 0))
		lg_fail(LG_EXIT_ERROR, "greeting refused (%02x %02x)",
		    buf[0], buf[1]);
	if (opt.user != NULL) {
		len = lg_encode_auth(buf);
		if (lg_write_all(fd, buf, len) == -1 ||
		    lg_read_exact(fd, buf, 2) == -1)
			lg_fail(LG_EXIT_ERROR, "auth: %s", lg_strerror(errno));
		if (buf[1] != 0)
			lg_fail(LG_EXIT_ERROR, "login refused (%02x)", buf[1]);
	}
	len = lg_encode_request(buf, cmd, dst, name);
	if (lg_write_all(fd, buf, len) == -1 || lg_read_exact(fd, buf, 5) == -1)
		lg_fail(LG_EXIT_ERROR, "request: %s", lg_strerror(errno));
	len = lg_reply_length(buf);
	if (len == 0 || lg_read_exact(fd, buf + 5, len - 5) == -1)
		lg_fail(LG_EXIT_ERROR, "malformed reply");
	if (buf[1] != 0)
		lg_fail(LG_EXIT_ERROR, "request refused with reply %u", buf[1]);
	if (bound != NULL) {
		memset(bound, 0, sizeof(*bound));
		if (buf[3] == 1) {
			struct sockaddr_in *sin = (struct sockaddr_in *)bound;

			sin->sin_family = AF_INET;
			memcpy(&sin->sin_addr, buf + 4, 4);
			memcpy(&sin->sin_port, buf + 8, 2);
		} else if (buf[3] == 4) {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)bound;

			sin6->sin6_family = AF_INET6;
			memcpy(&sin6->sin6_addr, buf + 4, 16);
			memcpy(&sin6->sin6_port, buf + 20, 2);
		} else {
			lg_fail(LG_EXIT_ERROR, "bound address is a name");
		}
	}
	return fd;
}

static int
lg_epoll(void)
{
	int epfd = epoll_create1(EPOLL_CLOEXEC);

	if (epfd == -1)
		lg_fail(LG_EXIT_ERROR, "epoll_create1: %s", lg_strerror(errno));
	return epfd;
}

static void
lg_watch(int epfd, int op, int fd, uint32_t events, void *ptr)
{
	struct epoll_event ev = { .events = events, .data.ptr = ptr };

	if (epoll_ctl(epfd, op, fd, &ev) == -1)
		lg_fail(LG_EXIT_ERROR, "epoll_ctl: %s", lg_strerror(errno));
}

static double
lg_seconds(uint64_t ns)
{
	return (double)ns / 1e9;
}

/* -- bulk ---------------------------------------------------------------- */

struct lg_stream {
	int		 fd;
	uint64_t	 pos;		/* bytes sent (up) or verified (down) */
	uint64_t	 acked;		/* up: what the sink has verified */
	unsigned char	 ack[8];
	size_t		 ack_have;
};

static struct lg_stream *
lg_open_streams(int epfd, uint32_t events)
{
	struct lg_stream *s = calloc((size_t)opt.conns, sizeof(*s));
	int i;

	if (s == NULL)
		lg_fail(LG_EXIT_ERROR, "out of memory");
	for (i = 0; i < opt.conns; i++) {
		s[i].fd = lg_open(1, &opt.target, opt.name, NULL);
		fd_set_nonblocking(s[i].fd);
		lg_watch(epfd, EPOLL_CTL_ADD, s[i].fd, events, &s[i]);
	}
	return s;
}

/* Take the sink's acknowledgements: each is the stream offset up to which
 * it has checked every byte, so it may only grow and never pass what was
 * sent. Read until EAGAIN (over TLS, until OpenSSL holds none either). */
static void
lg_bulk_read_acks(struct lg_stream *s)
{
	for (;;) {
		ssize_t n = lg_recv(s->fd, s->ack + s->ack_have,
		    sizeof(s->ack) - s->ack_have);
		uint64_t value;

		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n == 0)
			lg_fail(LG_EXIT_VERIFY, "stream closed after %llu of "
			    "%llu bytes were verified (the sink closes on "
			    "data off the pattern)",
			    (unsigned long long)s->acked,
			    (unsigned long long)s->pos);
		if (n < 0)
			lg_fail(LG_EXIT_ERROR, "read: %s", lg_strerror(errno));
		s->ack_have += (size_t)n;
		if (s->ack_have < sizeof(s->ack))
			continue;
		s->ack_have = 0;
		memcpy(&value, s->ack, sizeof(value));
		if (value < s->acked || value > s->pos)
			lg_fail(LG_EXIT_VERIFY, "sink acknowledged %llu bytes, "
			    "sent %llu", (unsigned long long)value,
			    (unsigned long long)s->pos);
		s->acked = value;
	}
}

/* Every byte counted was verified, so bytes and verified are the same. */
static void
lg_report_bulk(const char *mode, uint64_t total, uint64_t elapsed_ns)
{
	printf("result mode=%s conns=%d seconds=%.3f bytes=%llu "
	    "verified=%llu mb_per_s=%.1f%s\n", mode, opt.conns,
	    lg_seconds(elapsed_ns), (unsigned long long)total,
	    (unsigned long long)total,
	    (double)total / 1e6 / lg_seconds(elapsed_ns), tls_params);
}

static void
lg_run_bulk_up(void)
{
	struct epoll_event events[LG_MAX_EVENTS];
	int epfd = lg_epoll(), i, stopped = 0;
	struct lg_stream *s = lg_open_streams(epfd, EPOLLIN | EPOLLOUT);
	uint64_t start = clock_now_ns(), now = start, total = 0;
	uint64_t end = start + (uint64_t)(opt.seconds * 1e9);

	for (;;) {
		int n, done = 1;

		now = clock_now_ns();
		if (!stopped && now >= end) {
			stopped = 1;
			for (i = 0; i < opt.conns; i++) {
				lg_tls_flush_all(s[i].fd);
				lg_watch(epfd, EPOLL_CTL_MOD, s[i].fd, EPOLLIN,
				    &s[i]);
			}
		}
		if (stopped) {
			for (i = 0; i < opt.conns; i++)
				done &= s[i].acked == s[i].pos;
			if (done)
				break;
			if (now > end + (uint64_t)(opt.settle * 1e9))
				lg_fail(LG_EXIT_VERIFY, "bytes sent were never "
				    "all acknowledged by the sink");
		}
		n = epoll_wait(epfd, events, LG_MAX_EVENTS, 50);
		for (i = 0; i < n; i++) {
			struct lg_stream *st = events[i].data.ptr;

			if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
				lg_bulk_read_acks(st);
			if ((events[i].events & EPOLLOUT) && !stopped) {
				ssize_t w = lg_send(st->fd,
				    pattern_at(st->pos), BENCH_CHUNK);

				if (w == -1 && errno != EAGAIN && errno != EINTR)
					lg_fail(LG_EXIT_ERROR, "send: %s",
					    lg_strerror(errno));
				if (w > 0)
					st->pos += (uint64_t)w;
			}
		}
	}
	for (i = 0; i < opt.conns; i++) {
		total += s[i].acked;
		lg_close(s[i].fd);
	}
	lg_report_bulk("bulk-up", total, now - start);
}

static void
lg_run_bulk_down(void)
{
	struct epoll_event events[LG_MAX_EVENTS];
	int epfd = lg_epoll(), i;
	struct lg_stream *s = lg_open_streams(epfd, EPOLLIN);
	uint64_t start = clock_now_ns(), now = start, total = 0;
	uint64_t end = start + (uint64_t)(opt.seconds * 1e9);

	while ((now = clock_now_ns()) < end) {
		int n = epoll_wait(epfd, events, LG_MAX_EVENTS, 50);

		for (i = 0; i < n; i++) {
			struct lg_stream *st = events[i].data.ptr;
			int reads = 0;
			ssize_t r;

			do {
				r = lg_recv(st->fd, io_buf, sizeof(io_buf));
				if (r == -1 && (errno == EAGAIN ||
				    errno == EINTR))
					break;
				if (r == 0)
					lg_fail(LG_EXIT_VERIFY, "stream ended "
					    "after %llu bytes",
					    (unsigned long long)st->pos);
				if (r < 0)
					lg_fail(LG_EXIT_ERROR, "read: %s",
					    lg_strerror(errno));
				if (pattern_check(io_buf, (size_t)r,
				    st->pos) == -1)
					lg_fail(LG_EXIT_VERIFY, "bytes off the "
					    "pattern near offset %llu",
					    (unsigned long long)st->pos);
				st->pos += (uint64_t)r;
			} while (lg_read_again(st->fd, &reads));
		}
	}
	for (i = 0; i < opt.conns; i++) {
		total += s[i].pos;
		lg_close(s[i].fd);
	}
	lg_report_bulk("bulk-down", total, now - start);
}

/* -- request/response ---------------------------------------------------- */

struct lg_echo {
	int		 fd;
	uint64_t	 pos;
	uint64_t	 sent_at;
	size_t		 have;
	unsigned char	 buf[LG_MAX_MSG];
};

static void
lg_echo_send(struct lg_echo *e)
{
	e->sent_at = clock_now_ns();
	e->have = 0;
	if (lg_write_all(e->fd, pattern_at(e->pos), opt.size) == -1)
		lg_fail(LG_EXIT_ERROR, "send: %s", lg_strerror(errno));
}

static void
lg_print_latency(const char *mode, uint64_t ops, uint64_t elapsed,
    uint64_t errors)
{
	printf("result mode=%s conns=%d seconds=%.3f ops=%llu verified=%llu "
	    "ops_per_s=%.1f p50_us=%.1f p99_us=%.1f errors=%llu%s\n", mode,
	    opt.conns, lg_seconds(elapsed), (unsigned long long)ops,
	    (unsigned long long)ops, (double)ops / lg_seconds(elapsed),
	    (double)histogram_percentile(&latency, 0.50) / 1000.0,
	    (double)histogram_percentile(&latency, 0.99) / 1000.0,
	    (unsigned long long)errors, tls_params);
}

static void
lg_run_reqresp(void)
{
	struct epoll_event events[LG_MAX_EVENTS];
	struct lg_echo *e = calloc((size_t)opt.conns, sizeof(*e));
	int epfd = lg_epoll(), i, outstanding = opt.conns;
	uint64_t start, now, end, ops = 0, elapsed;

	if (e == NULL)
		lg_fail(LG_EXIT_ERROR, "out of memory");
	for (i = 0; i < opt.conns; i++) {
		e[i].fd = lg_open(1, &opt.target, opt.name, NULL);
		fd_set_nonblocking(e[i].fd);
		lg_watch(epfd, EPOLL_CTL_ADD, e[i].fd, EPOLLIN, &e[i]);
	}
	start = now = clock_now_ns();
	end = start + (uint64_t)(opt.seconds * 1e9);
	for (i = 0; i < opt.conns; i++)
		lg_echo_send(&e[i]);
	/* After the end every message still out must come back: a proxy
	 * that lost bytes would otherwise pass as merely slow. */
	while (outstanding > 0) {
		int n = epoll_wait(epfd, events, LG_MAX_EVENTS, 50);

		now = clock_now_ns();
		if (now > end + (uint64_t)(opt.settle * 1e9))
			lg_fail(LG_EXIT_VERIFY, "%d echo replies never came back",
			    outstanding);
		for (i = 0; i < n; i++) {
			struct lg_echo *c = events[i].data.ptr;
			/* One message in flight: over TLS, read on only for
			 * what OpenSSL already holds. */
			int reads = LG_TLS_READS;

			do {
				ssize_t r = lg_recv(c->fd, c->buf + c->have,
				    opt.size - c->have);

				if (r == -1 && (errno == EAGAIN ||
				    errno == EINTR))
					break;
				if (r <= 0)
					lg_fail(LG_EXIT_VERIFY, "echo connection "
					    "ended after %llu bytes",
					    (unsigned long long)c->pos);
				c->have += (size_t)r;
				if (c->have < opt.size)
					continue;
				if (memcmp(c->buf, pattern_at(c->pos),
				    opt.size) != 0)
					lg_fail(LG_EXIT_VERIFY, "echoed message "
					    "differs at offset %llu",
					    (unsigned long long)c->pos);
				c->pos += opt.size;
				outstanding--;
				if (now >= end)
					continue;
				histogram_add(&latency, now - c->sent_at);
				ops++;
				lg_echo_send(c);
				outstanding++;
			} while (lg_read_again(c->fd, &reads));
		}
	}
	elapsed = (now < end ? now : end) - start;
	for (i = 0; i < opt.conns; i++)
		lg_close(e[i].fd);
	lg_print_latency("reqresp", ops, elapsed, 0);
}

/* -- connection rate ----------------------------------------------------- */

enum lg_cycle_state {
	CYCLE_CONNECTING,
	CYCLE_TLS,		/* the TLS handshake with the proxy (-T) */
	CYCLE_GREETING,
	CYCLE_AUTH,
	CYCLE_REPLY,
	CYCLE_HTTP,		/* the response head to an HTTP CONNECT */
	CYCLE_ECHO,
};

struct lg_cycle {
	int			 fd;
	uint32_t		 events;	/* watched for, in epoll */
	enum lg_cycle_state	 state;
	uint64_t		 started;
	size_t			 have, need;
	unsigned char		 token;
	unsigned char		 buf[sizeof(lg_hello)];
};

static void
lg_cycle_send(struct lg_cycle *c, const void *buf, size_t len)
{
	/* Handshake messages are tiny and the socket idle: one send(2) or
	 * one TLS record, waited for in the rare case the socket is full. */
	if (lg_write_all(c->fd, buf, len) == -1)
		lg_fail(LG_EXIT_ERROR, "cycle send: %s", lg_strerror(errno));
}

static void
lg_cycle_watch(int epfd, struct lg_cycle *c, uint32_t events)
{
	if (c->events == events)
		return;
	lg_watch(epfd, EPOLL_CTL_MOD, c->fd, events, c);
	c->events = events;
}

static void
lg_cycle_expect(struct lg_cycle *c, enum lg_cycle_state state, size_t need)
{
	c->state = state;
	c->have = 0;
	c->need = need;
}

/* The cycle's message to the echo target: one byte, or the ClientHello. */
static void
lg_cycle_message(struct lg_cycle *c)
{
	if (opt.hello) {
		lg_cycle_send(c, lg_hello, lg_hello_len);
		lg_cycle_expect(c, CYCLE_ECHO, lg_hello_len);
		return;
	}
	lg_cycle_send(c, &c->token, 1);
	lg_cycle_expect(c, CYCLE_ECHO, 1);
}

/* -H: the first flight of a real TLS client (SNI bench.example, ALPN h2
 * and http/1.1), taken from a memory BIO. */
static void
lg_make_hello(void)
{
	static const unsigned char alpn[] = "\x02h2\x08http/1.1";
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = ctx != NULL ? SSL_new(ctx) : NULL;
	BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
	int n;

	if (ssl == NULL || rb == NULL || wb == NULL)
		lg_fail(LG_EXIT_ERROR, "cannot set up TLS for -H");
	SSL_set_bio(ssl, rb, wb);
	if (SSL_set_tlsext_host_name(ssl, "bench.example") != 1 ||
	    SSL_set_alpn_protos(ssl, alpn, sizeof(alpn) - 1) != 0)
		lg_fail(LG_EXIT_ERROR, "cannot set up TLS for -H");
	SSL_set_connect_state(ssl);
	(void)SSL_do_handshake(ssl);
	n = BIO_read(wb, lg_hello, (int)sizeof(lg_hello));
	if (n <= 0 || lg_hello[0] != 0x16 || BIO_pending(wb) > 0)
		lg_fail(LG_EXIT_ERROR, "no ClientHello for -H");
	lg_hello_len = (size_t)n;
	SSL_free(ssl);
	SSL_CTX_free(ctx);
}

static void
lg_cycle_start(int epfd, struct lg_cycle *c, uint64_t cycle)
{
	const struct sockaddr_storage *to = opt.proxied ? &opt.proxy :
	    &opt.target;
	socklen_t to_len = opt.proxied ? opt.proxy_len : opt.target_len;
	int one = 1;

	c->started = clock_now_ns();
	c->token = (unsigned char)(cycle * 131 + 7);
	c->fd = socket(to->ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (c->fd == -1)
		lg_fail(LG_EXIT_ERROR, "socket: %s", lg_strerror(errno));
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->state = CYCLE_CONNECTING;
	if (connect(c->fd, (const struct sockaddr *)to, to_len) == -1 &&
	    errno != EINPROGRESS)
		lg_fail(LG_EXIT_ERROR, "connect: %s", lg_strerror(errno));
	lg_watch(epfd, EPOLL_CTL_ADD, c->fd, EPOLLOUT, c);
	c->events = EPOLLOUT;
}

/* The connection (and its TLS session) is up: start the SOCKS dialogue or
 * send the HTTP CONNECT (or go straight to the echo when there is no
 * proxy). */
static void
lg_cycle_begin(int epfd, struct lg_cycle *c)
{
	unsigned char buf[8];

	lg_cycle_watch(epfd, c, EPOLLIN);
	if (!opt.proxied) {
		lg_cycle_message(c);
		return;
	}
	if (opt.http) {
		/* A head has no length: each read is looked at. */
		lg_cycle_send(c, http_request, http_request_len);
		lg_cycle_expect(c, CYCLE_HTTP, LG_HTTP_HEAD_MAX);
		return;
	}
	lg_cycle_send(c, buf, lg_encode_greeting(buf));
	lg_cycle_expect(c, CYCLE_GREETING, 2);
}

/* One step of the TLS handshake: on, or wait for what OpenSSL wants. */
static void
lg_cycle_tls(int epfd, struct lg_cycle *c)
{
	SSL *ssl = lg_tls(c->fd);
	int ret, err;

	ERR_clear_error();
	errno = 0;
	if ((ret = SSL_connect(ssl)) == 1) {
		lg_tls_established(ssl);
		lg_cycle_begin(epfd, c);
		return;
	}
	switch ((err = SSL_get_error(ssl, ret))) {
	case SSL_ERROR_WANT_READ:
		lg_cycle_watch(epfd, c, EPOLLIN);
		break;
	case SSL_ERROR_WANT_WRITE:
		lg_cycle_watch(epfd, c, EPOLLOUT);
		break;
	default:
		lg_tls_note(ssl, err);
		lg_fail(LG_EXIT_ERROR, "%s", tls_error);
	}
}

static void
lg_cycle_connected(int epfd, struct lg_cycle *c)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1 ||
	    err != 0)
		lg_fail(LG_EXIT_ERROR, "connect: %s", strerror(err));
	if (tls_ctx != NULL && opt.proxied) {
		lg_tls_attach(c->fd);
		c->state = CYCLE_TLS;
		lg_cycle_tls(epfd, c);
		return;
	}
	lg_cycle_begin(epfd, c);
}

/* A complete message for the current state is in c->buf (of an HTTP
 * head, whatever has come so far); 1 when the cycle is finished. */
static int
lg_cycle_advance(struct lg_cycle *c)
{
	unsigned char buf[600];
	const unsigned char *end;

	switch (c->state) {
	case CYCLE_GREETING:
		if (c->buf[0] != 5 || c->buf[1] != (opt.user ? 2 : 0))
			lg_fail(LG_EXIT_ERROR, "greeting refused (%02x %02x)",
			    c->buf[0], c->buf[1]);
		if (opt.user != NULL) {
			lg_cycle_send(c, buf, lg_encode_auth(buf));
			lg_cycle_expect(c, CYCLE_AUTH, 2);
			return 0;
		}
		/* FALLTHROUGH */
	case CYCLE_AUTH:
		if (c->state == CYCLE_AUTH && c->buf[1] != 0)
			lg_fail(LG_EXIT_ERROR, "login refused (%02x)",
			    c->buf[1]);
		lg_cycle_send(c, buf, lg_encode_request(buf, 1, &opt.target,
		    opt.name));
		lg_cycle_expect(c, CYCLE_REPLY, 5);
		return 0;
	case CYCLE_REPLY:
		if (c->need == 5) {
			c->need = lg_reply_length(c->buf);
			if (c->need == 0)
				lg_fail(LG_EXIT_ERROR, "malformed reply");
			if (c->have < c->need)
				return 0;
		}
		if (c->buf[1] != 0)
			lg_fail(LG_EXIT_ERROR, "CONNECT refused with reply %u",
			    c->buf[1]);
		lg_cycle_message(c);
		return 0;
	case CYCLE_HTTP:
		end = lg_http_head_end(c->buf, c->have);
		if (end == NULL)
			return 0;
		/* The echo target says nothing before the token. */
		if (end != c->buf + c->have)
			lg_fail(LG_EXIT_ERROR, "%zu bytes after the HTTP "
			    "response head", (size_t)(c->buf + c->have - end));
		lg_cycle_message(c);
		return 0;
	case CYCLE_ECHO:
		if (opt.hello) {
			if (memcmp(c->buf, lg_hello, lg_hello_len) != 0)
				lg_fail(LG_EXIT_VERIFY, "the ClientHello came "
				    "back changed");
			return 1;
		}
		if (c->buf[0] != c->token)
			lg_fail(LG_EXIT_VERIFY, "echoed byte %02x, sent %02x",
			    c->buf[0], c->token);
		return 1;
	case CYCLE_CONNECTING:
	case CYCLE_TLS:
		break;
	}
	return 0;
}

static void
lg_run_connrate(void)
{
	struct epoll_event events[LG_MAX_EVENTS];
	struct lg_cycle *w = calloc((size_t)opt.conns, sizeof(*w));
	int epfd = lg_epoll(), i, active = opt.conns;
	uint64_t start, now, end, cycles = 0, started = 0;

	if (w == NULL)
		lg_fail(LG_EXIT_ERROR, "out of memory");
	/* One cycle first, outside the clock: a password login is then
	 * cached and a name resolved, as for any client after its first. */
	lg_close(lg_open(1, &opt.target, opt.name, NULL));
	start = now = clock_now_ns();
	end = start + (uint64_t)(opt.seconds * 1e9);
	for (i = 0; i < opt.conns; i++)
		lg_cycle_start(epfd, &w[i], started++);
	while (active > 0) {
		int n = epoll_wait(epfd, events, LG_MAX_EVENTS, 50);

		now = clock_now_ns();
		for (i = 0; i < n; i++) {
			struct lg_cycle *c = events[i].data.ptr;
			/* One message awaited at a time: over TLS, read on
			 * only for what OpenSSL already holds. */
			int reads = LG_TLS_READS;
			ssize_t r;

			if (c->state == CYCLE_CONNECTING) {
				lg_cycle_connected(epfd, c);
				continue;
			}
			if (c->state == CYCLE_TLS) {
				lg_cycle_tls(epfd, c);
				continue;
			}
			do {
				r = lg_recv(c->fd, c->buf + c->have,
				    c->need - c->have);
				if (r == -1 && (errno == EAGAIN ||
				    errno == EINTR))
					break;
				if (r <= 0)
					lg_fail(LG_EXIT_ERROR, "connection "
					    "closed in cycle state %d%s%s",
					    (int)c->state, r < 0 ? ": " : "",
					    r < 0 ? lg_strerror(errno) : "");
				c->have += (size_t)r;
				if ((c->have < c->need &&
				    c->state != CYCLE_HTTP) ||
				    !lg_cycle_advance(c))
					continue;
				lg_close(c->fd);
				histogram_add(&latency, now - c->started);
				cycles++;
				if (now < end)
					lg_cycle_start(epfd, c, started++);
				else
					active--;
				break;
			} while (lg_read_again(c->fd, &reads));
		}
		for (i = 0; i < opt.conns; i++)
			if (now - w[i].started > LG_CYCLE_TIMEOUT &&
			    now > w[i].started)
				lg_fail(LG_EXIT_ERROR, "a cycle hung in state "
				    "%d", (int)w[i].state);
	}
	lg_print_latency("connrate", cycles, now - start, 0);
}

/* -- idle footprint ------------------------------------------------------ */

/* Open conns tunnels to the echo target, prove each with one byte, say
 * "ready", hold them until a line on stdin, then prove each again. */
static void
lg_run_idle(void)
{
	int *fds = calloc((size_t)opt.conns, sizeof(*fds));
	unsigned char byte;
	char line[64];
	int i;
	uint64_t start = clock_now_ns();

	if (fds == NULL)
		lg_fail(LG_EXIT_ERROR, "out of memory");
	for (i = 0; i < opt.conns; i++) {
		fds[i] = lg_open(1, &opt.target, opt.name, NULL);
		byte = (unsigned char)i;
		if (lg_write_all(fds[i], &byte, 1) == -1 ||
		    lg_read_exact(fds[i], &byte, 1) == -1)
			lg_fail(LG_EXIT_ERROR, "idle connection %d: no echo", i);
		if (byte != (unsigned char)i)
			lg_fail(LG_EXIT_VERIFY, "idle connection %d: wrong "
			    "echo", i);
	}
	printf("ready conns=%d seconds=%.3f\n", opt.conns,
	    lg_seconds(clock_now_ns() - start));
	fflush(stdout);
	if (fgets(line, sizeof(line), stdin) == NULL)
		lg_fail(LG_EXIT_ERROR, "stdin closed before the release line");
	for (i = 0; i < opt.conns; i++) {
		byte = (unsigned char)(i + 1);
		if (lg_write_all(fds[i], &byte, 1) == -1 ||
		    lg_read_exact(fds[i], &byte, 1) == -1)
			lg_fail(LG_EXIT_ERROR, "idle connection %d died while "
			    "idle", i);
		if (byte != (unsigned char)(i + 1))
			lg_fail(LG_EXIT_VERIFY, "idle connection %d: wrong "
			    "echo", i);
	}
	for (i = 0; i < opt.conns; i++)
		lg_close(fds[i]);
	printf("result mode=idle conns=%d verified=%d%s\n", opt.conns,
	    opt.conns, tls_params);
}

/* -- HTTPS through the tunnel: https-conn, https-req ----------------------- */

/*
 * What an intercepting proxy serves. After the tunnel (SOCKS5 or HTTP
 * CONNECT to -t, or none: straight to the origin) the client is a TLS
 * client to the origin for the name -S (its SNI, and the name the
 * certificate must carry), the chain verified against -O's CA (an
 * intercepting proxy's: the certificate it presents is one it made), no
 * session offered (every handshake a full one, as for -T). Then HTTP/1.1
 * GETs of /SIZE, each answer checked: status 200, Content-Length SIZE, and
 * the body the pattern's first SIZE bytes (the targets' HTTPS origin).
 *   https-conn: each of -c workers does connect, tunnel, handshake, one GET
 *     (Connection: close) and its response, close_notify, close, and again:
 *     new intercepted sessions per second (latency: the whole cycle). One
 *     cycle runs before the clock, as in connrate.
 *   https-req: -c keep-alive sessions opened before the clock, each with
 *     one GET in flight at a time: requests per second (latency: request
 *     to the response's last byte). Responses still out when time is up
 *     must come back, but do not count.
 * A session or response that goes wrong (closed or reset, a failed
 * handshake, a status other than 200, a wrong length or body, no progress
 * for 10 s) is counted, its session closed and a new one started; the
 * result line gives the count (errors=) and any at all exit 3 after it. A
 * certificate that does not verify, or whose issuer's CN is not -I's, ends
 * the run at once (status 1): the proxy did not intercept, or not with the
 * CA it was given. So do a refused tunnel and a proxy that cannot be
 * reached, as in connrate.
 */

enum lg_https_state {
	HTTPS_CONNECTING,
	HTTPS_GREETING,
	HTTPS_AUTH,
	HTTPS_REPLY,
	HTTPS_TUNNEL_HEAD,	/* the response head to the HTTP CONNECT */
	HTTPS_HANDSHAKE,	/* TLS with the origin, through the tunnel */
	HTTPS_READY,		/* https-req: up, no request in flight */
	HTTPS_HEAD,		/* the response head to a GET */
	HTTPS_BODY,
	HTTPS_DONE,		/* no session: finished */
};

static const char *const lg_https_states[] = {
	"connecting", "greeting", "login", "SOCKS5 reply", "CONNECT response",
	"TLS handshake with the origin", "idle", "response head",
	"response body", "done",
};

struct lg_https {
	int			 fd;
	uint32_t		 events;	/* watched for, in epoll */
	enum lg_https_state	 state;
	uint64_t		 started;	/* the session's start */
	uint64_t		 sent_at;	/* the request's */
	uint64_t		 since;		/* what it waits for, since */
	size_t			 have, need;
	uint64_t		 body_got;
	int			 closing;	/* the response said close */
	unsigned char		 buf[LG_HTTPS_HEAD_MAX];
};

static struct {
	int		 epfd;
	int		 keepalive;	/* https-req */
	int		 warmup;	/* https-conn: the cycle before the clock */
	int		 timed;		/* https-req: the clock has started */
	uint64_t	 end;
	uint64_t	 ops;		/* sessions or responses, all verified */
	uint64_t	 failures;
	char		 first_failure[320];
	char		 request[512];
	size_t		 request_len;
} hx;

static void
lg_origin_init(void)
{
	origin_ctx = SSL_CTX_new(TLS_client_method());
	if (origin_ctx == NULL ||
	    SSL_CTX_set_min_proto_version(origin_ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_load_verify_locations(origin_ctx, opt.origin_ca,
	    NULL) != 1) {
		lg_tls_note(NULL, SSL_ERROR_SSL);
		lg_fail(LG_EXIT_ERROR, "-O %s: %s", opt.origin_ca, tls_error);
	}
	SSL_CTX_set_verify(origin_ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_options(origin_ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* Full handshakes only, as for -T. */
	SSL_CTX_set_session_cache_mode(origin_ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_mode(origin_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
}

/* A TLS client to the origin on the tunnel fd: SNI and the name checked
 * are -S's. */
static void
lg_origin_attach(int fd)
{
	SSL *ssl = SSL_new(origin_ctx);

	if (ssl == NULL || SSL_set_fd(ssl, fd) != 1 ||
	    SSL_set_tlsext_host_name(ssl, opt.sni) != 1 ||
	    SSL_set1_host(ssl, opt.sni) != 1) {
		lg_tls_note(NULL, SSL_ERROR_SSL);
		lg_fail(LG_EXIT_ERROR, "%s", tls_error);
	}
	lg_tls_register(fd, ssl);
}

/* The issuer's CN of the certificate the client was shown must be -I's;
 * the first session's goes to the result line. */
static void
lg_https_check_issuer(SSL *ssl)
{
	X509 *cert = SSL_get0_peer_certificate(ssl);
	char cn[128];
	size_t i, at;

	if (cert == NULL)
		lg_fail(LG_EXIT_ERROR, "no certificate for %s", opt.sni);
	if (X509_NAME_get_text_by_NID(X509_get_issuer_name(cert),
	    NID_commonName, cn, sizeof(cn)) < 0)
		strcpy(cn, "(none)");
	if (opt.issuer != NULL && strcmp(cn, opt.issuer) != 0)
		lg_fail(LG_EXIT_ERROR, "the certificate for %s was issued by "
		    "CN \"%s\", not \"%s\": the proxy did not intercept with "
		    "that CA", opt.sni, cn, opt.issuer);
	if (tls_issuer[0] != '\0')
		return;
	at = (size_t)snprintf(tls_issuer, sizeof(tls_issuer), " issuer=");
	for (i = 0; cn[i] != '\0' && at + 1 < sizeof(tls_issuer); i++)
		tls_issuer[at++] = cn[i] > ' ' && cn[i] < 0x7f ? cn[i] : '_';
	tls_issuer[at] = '\0';
}

/* A message of the tunnel's set-up: tiny, the socket idle (as for
 * lg_cycle_send). */
static void
lg_https_tunnel_send(int fd, const void *buf, size_t len)
{
	if (lg_write_all(fd, buf, len) == -1)
		lg_fail(LG_EXIT_ERROR, "tunnel set-up: %s", lg_strerror(errno));
}

static void
lg_https_watch(struct lg_https *c, uint32_t events)
{
	if (c->events == events)
		return;
	lg_watch(hx.epfd, EPOLL_CTL_MOD, c->fd, events, c);
	c->events = events;
}

static void
lg_https_expect(struct lg_https *c, enum lg_https_state state, size_t need,
    uint64_t now)
{
	c->state = state;
	c->have = 0;
	c->need = need;
	c->since = now;
}

/* Count a failed session or response, with why (the first one's is
 * kept), and close the session. */
static void __attribute__((format(printf, 2, 3)))
lg_https_failed(struct lg_https *c, const char *fmt, ...)
{
	va_list ap;

	if (hx.failures++ == 0) {
		int n = snprintf(hx.first_failure, sizeof(hx.first_failure),
		    "%s: ", lg_https_states[c->state]);

		va_start(ap, fmt);
		vsnprintf(hx.first_failure + n, sizeof(hx.first_failure) -
		    (size_t)n, fmt, ap);
		va_end(ap);
	}
	lg_close(c->fd);
	c->fd = -1;
	c->state = HTTPS_DONE;
}

static void
lg_https_start(struct lg_https *c, uint64_t now)
{
	const struct sockaddr_storage *to = opt.proxied ? &opt.proxy :
	    &opt.target;
	socklen_t to_len = opt.proxied ? opt.proxy_len : opt.target_len;
	int one = 1;

	c->fd = socket(to->ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (c->fd == -1)
		lg_fail(LG_EXIT_ERROR, "socket: %s", lg_strerror(errno));
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (const struct sockaddr *)to, to_len) == -1 &&
	    errno != EINPROGRESS)
		lg_fail(LG_EXIT_ERROR, "connect: %s", lg_strerror(errno));
	lg_watch(hx.epfd, EPOLL_CTL_ADD, c->fd, EPOLLOUT, c);
	c->events = EPOLLOUT;
	c->started = now;
	lg_https_expect(c, HTTPS_CONNECTING, 0, now);
}

/* After a session ended (done or failed): another one, or none. */
static void
lg_https_next(struct lg_https *c, uint64_t now)
{
	/* https-req's set-up replaces every session that failed. */
	int setting_up = hx.keepalive && !hx.timed;

	if (hx.warmup || (!setting_up && now >= hx.end))
		return;			/* stays HTTPS_DONE */
	lg_https_start(c, now);
}

/* Send the GET; 0, or -1 when the session failed. */
static int
lg_https_send(struct lg_https *c, uint64_t now)
{
	c->sent_at = now;
	lg_https_expect(c, HTTPS_HEAD, sizeof(c->buf), now);
	c->body_got = 0;
	lg_https_watch(c, EPOLLIN);
	if (lg_write_all(c->fd, hx.request, hx.request_len) == -1) {
		lg_https_failed(c, "sending the request: %s",
		    lg_strerror(errno));
		return -1;
	}
	return 0;
}

/* One step of the handshake with the origin: on to the request (or to
 * idle), a wait for what OpenSSL wants, or a failure (a certificate that
 * does not verify ends the run). */
static void
lg_https_handshake(struct lg_https *c, uint64_t now)
{
	SSL *ssl = lg_tls(c->fd);
	int ret, err;

	ERR_clear_error();
	errno = 0;
	if ((ret = SSL_connect(ssl)) == 1) {
		lg_tls_established(ssl);
		lg_https_check_issuer(ssl);
		if (hx.keepalive && (!hx.timed || now >= hx.end)) {
			lg_https_expect(c, HTTPS_READY, 0, now);
			lg_https_watch(c, EPOLLIN);
		} else if (lg_https_send(c, now) == -1) {
			lg_https_next(c, now);
		}
		return;
	}
	switch ((err = SSL_get_error(ssl, ret))) {
	case SSL_ERROR_WANT_READ:
		lg_https_watch(c, EPOLLIN);
		return;
	case SSL_ERROR_WANT_WRITE:
		lg_https_watch(c, EPOLLOUT);
		return;
	default:
		lg_tls_note(ssl, err);
		if (SSL_get_verify_result(ssl) != X509_V_OK)
			lg_fail(LG_EXIT_ERROR, "%s", tls_error);
		lg_https_failed(c, "%s", tls_error);
		lg_https_next(c, now);
	}
}

static void
lg_https_tunnel_up(struct lg_https *c, uint64_t now)
{
	lg_origin_attach(c->fd);
	lg_https_expect(c, HTTPS_HANDSHAKE, 0, now);
	lg_https_handshake(c, now);
}

static void
lg_https_connected(struct lg_https *c, uint64_t now)
{
	unsigned char buf[600];
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1 ||
	    err != 0)
		lg_fail(LG_EXIT_ERROR, "connect: %s", strerror(err));
	lg_https_watch(c, EPOLLIN);
	if (!opt.proxied) {
		lg_https_tunnel_up(c, now);
		return;
	}
	if (opt.http) {
		lg_https_tunnel_send(c->fd, http_request, http_request_len);
		lg_https_expect(c, HTTPS_TUNNEL_HEAD, LG_HTTP_HEAD_MAX, now);
		return;
	}
	lg_https_tunnel_send(c->fd, buf, lg_encode_greeting(buf));
	lg_https_expect(c, HTTPS_GREETING, 2, now);
}

/* The response is all in and verified. In https-req a response that
 * says `Connection: close` ends its session (no failure: a client opens
 * another, and so does this one). */
static void
lg_https_complete(struct lg_https *c, uint64_t now)
{
	if (!hx.keepalive || c->closing) {
		lg_close(c->fd);
		c->fd = -1;
		c->state = HTTPS_DONE;
		if (!hx.warmup && (!hx.keepalive || now < hx.end)) {
			histogram_add(&latency, now - (hx.keepalive ?
			    c->sent_at : c->started));
			hx.ops++;
		}
		lg_https_next(c, now);
		return;
	}
	if (now >= hx.end) {
		/* Out when time was up: verified, not counted. */
		lg_https_expect(c, HTTPS_READY, 0, now);
		return;
	}
	histogram_add(&latency, now - c->sent_at);
	hx.ops++;
	if (lg_https_send(c, now) == -1)
		lg_https_next(c, now);
}

/* Body bytes at offset c->body_got; 0 to read on, 1 when the session
 * went on (done, or failed and replaced). */
static int
lg_https_body(struct lg_https *c, const unsigned char *buf, size_t len,
    uint64_t now)
{
	if (len > opt.size - c->body_got) {
		lg_https_failed(c, "%zu bytes after the %zu-byte body",
		    len - (size_t)(opt.size - c->body_got), opt.size);
		lg_https_next(c, now);
		return 1;
	}
	if (pattern_check(buf, len, c->body_got) == -1) {
		lg_https_failed(c, "body off the pattern near offset %llu",
		    (unsigned long long)c->body_got);
		lg_https_next(c, now);
		return 1;
	}
	c->body_got += len;
	c->state = HTTPS_BODY;
	if (c->body_got < opt.size)
		return 0;
	lg_https_complete(c, now);
	return 1;
}

/* What has come of the response head: status 200, Content-Length the size
 * asked for, no chunks. 0 to read on, 1 when the session went on. */
static int
lg_https_head(struct lg_https *c, uint64_t now)
{
	const char *head = (const char *)c->buf, *end, *value;
	unsigned long long length;
	size_t len, used;
	char *stop;

	end = memmem(head, c->have, "\r\n\r\n", 4);
	if (end == NULL) {
		if (c->have < sizeof(c->buf))
			return 0;
		lg_https_failed(c, "a head over %d bytes", LG_HTTPS_HEAD_MAX);
		lg_https_next(c, now);
		return 1;
	}
	used = (size_t)(end - head) + 4;
	if ((strncmp(head, "HTTP/1.1 ", 9) != 0 &&
	    strncmp(head, "HTTP/1.0 ", 9) != 0) ||
	    strncmp(head + 9, "200", 3) != 0 ||
	    (head[12] != ' ' && head[12] != '\r')) {
		len = strcspn(head, "\r");
		lg_https_failed(c, "\"%.*s\"", (int)(len < 80 ? len : 80),
		    head);
		lg_https_next(c, now);
		return 1;
	}
	if (http_head_header(head, end, "transfer-encoding:", &len) != NULL ||
	    (value = http_head_header(head, end, "content-length:",
	    &len)) == NULL) {
		lg_https_failed(c, "no Content-Length");
		lg_https_next(c, now);
		return 1;
	}
	errno = 0;
	length = strtoull(value, &stop, 10);
	if (errno != 0 || stop == value || length != opt.size) {
		lg_https_failed(c, "Content-Length %.*s, asked for %zu",
		    (int)(len < 20 ? len : 20), value, opt.size);
		lg_https_next(c, now);
		return 1;
	}
	c->closing = http_head_closes(head, end);
	return lg_https_body(c, c->buf + used, c->have - used, now);
}

/* Bytes read in the current state; 0 to read on, 1 to stop reading (the
 * state wants another readiness, or the session went on). */
static int
lg_https_took(struct lg_https *c, uint64_t now)
{
	unsigned char buf[600];
	const unsigned char *end;

	switch (c->state) {
	case HTTPS_GREETING:
		if (c->have < c->need)
			return 0;
		if (c->buf[0] != 5 || c->buf[1] != (opt.user ? 2 : 0))
			lg_fail(LG_EXIT_ERROR, "greeting refused (%02x %02x)",
			    c->buf[0], c->buf[1]);
		if (opt.user != NULL) {
			lg_https_tunnel_send(c->fd, buf, lg_encode_auth(buf));
			lg_https_expect(c, HTTPS_AUTH, 2, now);
			return 1;
		}
		lg_https_tunnel_send(c->fd, buf, lg_encode_request(buf, 1,
		    &opt.target, opt.name));
		lg_https_expect(c, HTTPS_REPLY, 5, now);
		return 1;
	case HTTPS_AUTH:
		if (c->have < c->need)
			return 0;
		if (c->buf[1] != 0)
			lg_fail(LG_EXIT_ERROR, "login refused (%02x)",
			    c->buf[1]);
		lg_https_tunnel_send(c->fd, buf, lg_encode_request(buf, 1,
		    &opt.target, opt.name));
		lg_https_expect(c, HTTPS_REPLY, 5, now);
		return 1;
	case HTTPS_REPLY:
		if (c->have < c->need)
			return 0;
		if (c->need == 5) {
			c->need = lg_reply_length(c->buf);
			if (c->need == 0)
				lg_fail(LG_EXIT_ERROR, "malformed reply");
			if (c->have < c->need)
				return 0;
		}
		if (c->buf[1] != 0)
			lg_fail(LG_EXIT_ERROR, "CONNECT refused with reply %u",
			    c->buf[1]);
		lg_https_tunnel_up(c, now);
		return 1;
	case HTTPS_TUNNEL_HEAD:
		end = lg_http_head_end(c->buf, c->have);
		if (end == NULL)
			return 0;
		/* The origin says nothing before the ClientHello. */
		if (end != c->buf + c->have)
			lg_fail(LG_EXIT_ERROR, "%zu bytes after the HTTP "
			    "response head", (size_t)(c->buf + c->have - end));
		lg_https_tunnel_up(c, now);
		return 1;
	case HTTPS_HEAD:
		return lg_https_head(c, now);
	default:
		return 1;
	}
}

/* The session's socket is readable (or has an error). */
static void
lg_https_readable(struct lg_https *c, uint64_t now)
{
	int reads = 0;

	for (;;) {
		unsigned char *into = c->buf + c->have;
		size_t room = c->need - c->have;
		ssize_t r;

		switch (c->state) {
		case HTTPS_HANDSHAKE:
			lg_https_handshake(c, now);
			return;
		case HTTPS_READY:
			/* Nothing may come (a TLS 1.3 ticket is OpenSSL's). */
			into = c->buf;
			room = 1;
			break;
		case HTTPS_BODY:
			into = io_buf;
			room = opt.size - c->body_got;
			if (room > sizeof(io_buf))
				room = sizeof(io_buf);
			break;
		case HTTPS_CONNECTING:
		case HTTPS_DONE:
			return;
		default:
			break;
		}
		r = lg_recv(c->fd, into, room);
		if (r == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		if (r <= 0 || c->state == HTTPS_READY) {
			if (r > 0)
				lg_https_failed(c, "bytes from the origin "
				    "with no request in flight");
			else if (r == 0)
				lg_https_failed(c, "connection closed after "
				    "%llu bytes", (unsigned long long)(c->have +
				    c->body_got));
			else
				lg_https_failed(c, "%s", lg_strerror(errno));
			lg_https_next(c, now);
			return;
		}
		if (c->state == HTTPS_BODY) {
			if (lg_https_body(c, into, (size_t)r, now))
				return;
		} else {
			c->have += (size_t)r;
			if (lg_https_took(c, now))
				return;
		}
		if (!lg_read_again(c->fd, &reads))
			return;
	}
}

/* Sessions neither finished nor (https-req) idle. */
static int
lg_https_busy(const struct lg_https *c, int n)
{
	int i, busy = 0;

	for (i = 0; i < n; i++)
		busy += c[i].state != HTTPS_DONE && c[i].state != HTTPS_READY;
	return busy;
}

/* Run the sessions until none is busy and, once the clock runs for
 * https-req, time is up; gives the time it stopped. A session that has
 * waited 10 s for its next step fails. Setting up (before the clock) may
 * take 20 s at most. */
static uint64_t
lg_https_loop(struct lg_https *c, int n)
{
	struct epoll_event events[LG_MAX_EVENTS];
	uint64_t now = clock_now_ns(), since = now;
	int i;

	while (lg_https_busy(c, n) > 0 || (hx.timed && now < hx.end)) {
		int k = epoll_wait(hx.epfd, events, LG_MAX_EVENTS, 50);

		now = clock_now_ns();
		for (i = 0; i < k; i++) {
			struct lg_https *s = events[i].data.ptr;

			if (s->state == HTTPS_CONNECTING)
				lg_https_connected(s, now);
			else if (s->state == HTTPS_HANDSHAKE)
				lg_https_handshake(s, now);
			else
				lg_https_readable(s, now);
		}
		for (i = 0; i < n; i++) {
			if (c[i].state == HTTPS_DONE ||
			    c[i].state == HTTPS_READY ||
			    now < c[i].since + LG_CYCLE_TIMEOUT)
				continue;
			lg_https_failed(&c[i], "nothing for %llu s",
			    LG_CYCLE_TIMEOUT / 1000000000ULL);
			lg_https_next(&c[i], now);
		}
		if (!hx.timed && hx.keepalive &&
		    now > since + 2 * LG_CYCLE_TIMEOUT)
			lg_fail(LG_EXIT_ERROR, "%d of %d sessions not set up in "
			    "20 s (%llu failed, first: %s)", lg_https_busy(c, n),
			    n, (unsigned long long)hx.failures,
			    hx.failures ? hx.first_failure : "none");
	}
	return now;
}

static void
lg_run_https(void)
{
	struct lg_https *c = calloc((size_t)opt.conns, sizeof(*c));
	const struct sockaddr_in *t = (const struct sockaddr_in *)&opt.target;
	uint16_t port = ntohs(t->sin_port);	/* same offset in sin6 */
	char host[300];
	uint64_t start, now, elapsed;
	int i, n;

	if (c == NULL)
		lg_fail(LG_EXIT_ERROR, "out of memory");
	hx.epfd = lg_epoll();
	hx.keepalive = strcmp(opt.mode, "https-req") == 0;
	if (port == 443)
		snprintf(host, sizeof(host), "%s", opt.sni);
	else
		snprintf(host, sizeof(host), "%s:%u", opt.sni, port);
	n = snprintf(hx.request, sizeof(hx.request), "GET /%zu HTTP/1.1\r\n"
	    "Host: %s\r\nUser-Agent: socks5d-bench-loadgen\r\n%s\r\n",
	    opt.size, host, hx.keepalive ? "" : "Connection: close\r\n");
	hx.request_len = (size_t)n;
	for (i = 0; i < opt.conns; i++)
		c[i].state = HTTPS_DONE;
	if (!hx.keepalive) {
		/* One cycle before the clock: the proxy's first leaf for the
		 * name is made, as for any session after a site's first. */
		hx.warmup = 1;
		hx.end = UINT64_MAX;
		lg_https_start(&c[0], clock_now_ns());
		lg_https_loop(c, 1);
		hx.warmup = 0;
		start = clock_now_ns();
		hx.end = start + (uint64_t)(opt.seconds * 1e9);
		for (i = 0; i < opt.conns; i++)
			lg_https_start(&c[i], start);
		now = lg_https_loop(c, opt.conns);
		elapsed = now - start;
	} else {
		hx.end = UINT64_MAX;
		now = clock_now_ns();
		for (i = 0; i < opt.conns; i++)
			lg_https_start(&c[i], now);
		lg_https_loop(c, opt.conns);
		hx.timed = 1;
		start = clock_now_ns();
		hx.end = start + (uint64_t)(opt.seconds * 1e9);
		for (i = 0; i < opt.conns; i++)
			if (c[i].state == HTTPS_READY &&
			    lg_https_send(&c[i], start) == -1)
				lg_https_next(&c[i], start);
		lg_https_loop(c, opt.conns);
		elapsed = hx.end - start;
		for (i = 0; i < opt.conns; i++)
			if (c[i].state != HTTPS_DONE)
				lg_close(c[i].fd);
	}
	printf("result mode=%s conns=%d seconds=%.3f ops=%llu verified=%llu "
	    "ops_per_s=%.1f p50_us=%.1f p99_us=%.1f errors=%llu size=%zu%s%s\n",
	    opt.mode, opt.conns, lg_seconds(elapsed),
	    (unsigned long long)hx.ops, (unsigned long long)hx.ops,
	    (double)hx.ops / lg_seconds(elapsed),
	    (double)histogram_percentile(&latency, 0.50) / 1000.0,
	    (double)histogram_percentile(&latency, 0.99) / 1000.0,
	    (unsigned long long)hx.failures, opt.size, tls_params, tls_issuer);
	fflush(stdout);
	if (hx.failures > 0)
		lg_fail(LG_EXIT_VERIFY, "%llu %s failed beside %llu verified "
		    "(the first: %s)", (unsigned long long)hx.failures,
		    hx.keepalive ? "sessions or requests" : "sessions",
		    (unsigned long long)hx.ops, hx.first_failure);
}

/* -- UDP ----------------------------------------------------------------- */

#define LG_UDP_LOSS_NS	50000000ULL	/* silence that counts as a loss */

struct lg_assoc {
	int		 control;	/* the TCP connection (proxied) */
	int		 fd;
	size_t		 header;	/* SOCKS UDP header length we send */
	unsigned char	 out[LG_MAX_MSG + 32];
	uint64_t	 next_seq;	/* next to send */
	uint64_t	 low_seq;	/* every seq below is answered or lost */
	int		 inflight;
	uint64_t	 last_rx;
};

static void
lg_udp_send(struct lg_assoc *a)
{
	unsigned char *payload = a->out + a->header;
	uint64_t seq = a->next_seq++;

	memcpy(payload, &seq, 8);
	memcpy(payload + 8, pattern_at(seq * 61), opt.size - 8);
	if (send(a->fd, a->out, a->header + opt.size, 0) == -1 &&
	    errno != EAGAIN && errno != ENOBUFS)
		lg_fail(LG_EXIT_ERROR, "udp send: %s", lg_strerror(errno));
	a->inflight++;
}

static void
lg_udp_open(struct lg_assoc *a)
{
	struct sockaddr_storage local, relay;
	socklen_t len = sizeof(local);
	const struct sockaddr_in *t = (const struct sockaddr_in *)&opt.target;

	a->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (a->fd == -1)
		lg_fail(LG_EXIT_ERROR, "socket: %s", lg_strerror(errno));
	memset(&local, 0, sizeof(local));
	((struct sockaddr_in *)&local)->sin_family = AF_INET;
	((struct sockaddr_in *)&local)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(a->fd, (struct sockaddr *)&local, sizeof(struct sockaddr_in))
	    == -1 || getsockname(a->fd, (struct sockaddr *)&local, &len) == -1)
		lg_fail(LG_EXIT_ERROR, "udp bind: %s", lg_strerror(errno));
	if (!opt.proxied) {
		a->control = -1;
		a->header = 0;
		if (connect(a->fd, (const struct sockaddr *)&opt.target,
		    opt.target_len) == -1)
			lg_fail(LG_EXIT_ERROR, "udp connect: %s",
			    lg_strerror(errno));
		return;
	}
	a->control = lg_open(3, &local, NULL, &relay);
	if (relay.ss_family == AF_INET &&
	    ((struct sockaddr_in *)&relay)->sin_addr.s_addr == INADDR_ANY)
		((struct sockaddr_in *)&relay)->sin_addr =
		    ((struct sockaddr_in *)&opt.proxy)->sin_addr;
	if (connect(a->fd, (struct sockaddr *)&relay, relay.ss_family ==
	    AF_INET ? sizeof(struct sockaddr_in) :
	    sizeof(struct sockaddr_in6)) == -1)
		lg_fail(LG_EXIT_ERROR, "udp connect to relay: %s",
		    lg_strerror(errno));
	a->header = 10;
	memset(a->out, 0, 3);
	a->out[3] = 1;
	memcpy(a->out + 4, &t->sin_addr, 4);
	memcpy(a->out + 8, &t->sin_port, 2);
}

/* 1 for a valid answer to an outstanding datagram; corrupt data fails. */
static int
lg_udp_check(struct lg_assoc *a, const unsigned char *buf, size_t len)
{
	size_t header = 0;
	uint64_t seq;

	if (opt.proxied) {
		if (len < 10 || buf[0] != 0 || buf[1] != 0 || buf[2] != 0)
			lg_fail(LG_EXIT_VERIFY, "bad SOCKS UDP header");
		header = buf[3] == 1 ? 10 : buf[3] == 4 ? 22 : 0;
		if (header == 0)
			lg_fail(LG_EXIT_VERIFY, "bad ATYP %u in UDP reply",
			    buf[3]);
	}
	if (len != header + opt.size)
		lg_fail(LG_EXIT_VERIFY, "datagram of %zu bytes, expected %zu",
		    len - header, opt.size);
	memcpy(&seq, buf + header, 8);
	if (memcmp(buf + header + 8, pattern_at(seq * 61), opt.size - 8) != 0)
		lg_fail(LG_EXIT_VERIFY, "datagram payload corrupted");
	if (seq < a->low_seq || seq >= a->next_seq)
		return 0;	/* late answer to one already counted lost */
	a->low_seq = seq + 1;
	return 1;
}

static void
lg_run_udp(void)
{
	struct epoll_event events[LG_MAX_EVENTS];
	struct lg_assoc *a = calloc((size_t)opt.conns, sizeof(*a));
	int epfd = lg_epoll(), i, j;
	uint64_t start, now, end, ok = 0, lost = 0;

	if (a == NULL)
		lg_fail(LG_EXIT_ERROR, "out of memory");
	if (opt.size < 8 || opt.size > LG_MAX_MSG)
		lg_fail(LG_EXIT_ERROR, "size must be 8..%d", LG_MAX_MSG);
	for (i = 0; i < opt.conns; i++) {
		lg_udp_open(&a[i]);
		fd_set_nonblocking(a[i].fd);
		lg_watch(epfd, EPOLL_CTL_ADD, a[i].fd, EPOLLIN, &a[i]);
	}
	start = now = clock_now_ns();
	end = start + (uint64_t)(opt.seconds * 1e9);
	for (i = 0; i < opt.conns; i++) {
		a[i].last_rx = start;
		for (j = 0; j < opt.window; j++)
			lg_udp_send(&a[i]);
	}
	while (now < end) {
		int n = epoll_wait(epfd, events, LG_MAX_EVENTS, 20);

		now = clock_now_ns();
		for (i = 0; i < n; i++) {
			struct lg_assoc *as = events[i].data.ptr;

			for (j = 0; j < 64; j++) {
				ssize_t r = recv(as->fd, io_buf,
				    sizeof(io_buf), 0);
				uint64_t before = as->low_seq;

				if (r == -1)
					break;
				if (!lg_udp_check(as, io_buf, (size_t)r))
					continue;
				/* Skipped sequence numbers were lost. */
				lost += as->low_seq - before - 1;
				as->inflight -= (int)(as->low_seq - before);
				as->last_rx = now;
				ok++;
				while (now < end && as->inflight < opt.window)
					lg_udp_send(as);
			}
		}
		for (i = 0; i < opt.conns; i++) {
			if (now - a[i].last_rx < LG_UDP_LOSS_NS || now >= end)
				continue;
			lost += (uint64_t)a[i].inflight;
			a[i].inflight = 0;
			a[i].low_seq = a[i].next_seq;
			a[i].last_rx = now;
			for (j = 0; j < opt.window; j++)
				lg_udp_send(&a[i]);
		}
	}
	if (ok == 0)
		lg_fail(LG_EXIT_ERROR, "no datagram came back");
	for (i = 0; i < opt.conns; i++) {
		close(a[i].fd);
		if (a[i].control != -1)
			close(a[i].control);
	}
	printf("result mode=udp conns=%d seconds=%.3f ops=%llu verified=%llu "
	    "ops_per_s=%.1f lost=%llu\n", opt.conns, lg_seconds(now - start),
	    (unsigned long long)ok, (unsigned long long)ok,
	    (double)ok / lg_seconds(now - start), (unsigned long long)lost);
}

int
main(int argc, char **argv)
{
	const char *target = NULL;
	char *colon;
	int ch, sni_given = 0;

	if (argc < 2)
		lg_usage();
	opt.mode = argv[1];
	optind = 2;
	opt.sni = LG_HTTPS_NAME;
	while ((ch = getopt(argc, argv, "a:c:d:HI:n:O:p:P:s:S:t:T:w:W:")) !=
	    -1) {
		switch (ch) {
		case 'H':
			opt.hello = 1;
			break;
		case 'a':
			opt.user = optarg;
			colon = strchr(optarg, ':');
			if (colon == NULL || colon - optarg > 255 ||
			    strlen(colon + 1) > 255)
				lg_usage();
			*colon = '\0';
			opt.password = colon + 1;
			break;
		case 'c':
			opt.conns = atoi(optarg);
			break;
		case 'd':
			opt.seconds = atof(optarg);
			break;
		case 'I':
			opt.issuer = optarg;
			break;
		case 'O':
			opt.origin_ca = optarg;
			break;
		case 'S':
			opt.sni = optarg;
			sni_given = 1;
			if (strlen(optarg) > 255)
				lg_usage();
			break;
		case 'n':
			opt.name = optarg;
			if (strlen(optarg) > 255)
				lg_usage();
			break;
		case 'p':
			if (addr_parse(optarg, &opt.proxy, &opt.proxy_len) == -1)
				lg_usage();
			opt.proxied = 1;
			break;
		case 'P':
			if (strcmp(optarg, "http") == 0)
				opt.http = 1;
			else if (strcmp(optarg, "socks5") == 0)
				opt.http = 0;
			else
				lg_usage();
			break;
		case 's':
			opt.size = (size_t)atol(optarg);
			break;
		case 't':
			target = optarg;
			break;
		case 'T':
			opt.cafile = optarg;
			break;
		case 'w':
			opt.window = atoi(optarg);
			break;
		case 'W':
			opt.settle = atof(optarg);
			break;
		default:
			lg_usage();
		}
	}
	opt.https = strcmp(opt.mode, "https-conn") == 0 ||
	    strcmp(opt.mode, "https-req") == 0;
	if (target == NULL || addr_parse(target, &opt.target,
	    &opt.target_len) == -1 || opt.conns < 1 || opt.seconds <= 0 || opt.settle <= 0 ||
	    opt.size < 1 || opt.size > (opt.https ? LG_HTTPS_BODY_MAX :
	    LG_MAX_MSG) || opt.window < 1)
		lg_usage();
	/* HTTPS to the origin verifies against -O, and is not nested in TLS
	 * to the proxy; -O, -S and -I are for those modes alone. */
	if (opt.https ? opt.origin_ca == NULL || opt.cafile != NULL :
	    opt.origin_ca != NULL || opt.issuer != NULL || sni_given)
		lg_usage();
	if (!opt.proxied) {
		opt.name = NULL;	/* direct runs always go by IP */
		opt.http = 0;
	}
	if (opt.http && strcmp(opt.mode, "udp") == 0)
		lg_usage();		/* HTTP has no UDP ASSOCIATE */
	/* TLS is to a proxy; UDP associations carry their datagrams
	 * outside the TCP connection anyway. */
	if (opt.cafile != NULL && (!opt.proxied || strcmp(opt.mode, "udp") == 0))
		lg_usage();
	if (opt.http)
		lg_build_http_request();
	pattern_init();
	fd_raise_limit();
	signal(SIGPIPE, SIG_IGN);
	if (opt.cafile != NULL)
		lg_tls_init();
	if (opt.https)
		lg_origin_init();
	if (strcmp(opt.mode, "bulk-up") == 0)
		lg_run_bulk_up();
	else if (strcmp(opt.mode, "bulk-down") == 0)
		lg_run_bulk_down();
	else if (strcmp(opt.mode, "reqresp") == 0)
		lg_run_reqresp();
	else if (strcmp(opt.mode, "connrate") == 0) {
		if (opt.hello)
			lg_make_hello();
		lg_run_connrate();
	}
	else if (strcmp(opt.mode, "idle") == 0)
		lg_run_idle();
	else if (strcmp(opt.mode, "udp") == 0)
		lg_run_udp();
	else if (opt.https)
		lg_run_https();
	else
		lg_usage();
	return 0;
}
