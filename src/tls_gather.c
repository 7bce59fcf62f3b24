/*
 * A socket BIO that gathers records (tls_gather.h). OpenSSL writes each
 * record of an SSL_write with its own BIO write; on a relay that moves
 * 64 KiB at a time that is four write(2)s where one would do, and on
 * loopback each also runs the receiver's TCP input. Holding the first
 * records and sending them with the last in one writev(2) costs a copy
 * of what is held (memory bandwidth) to save the system calls.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <openssl/bio.h>

#include "socks5d/tls_gather.h"

/* Room for three full records and then some (a key update, TLS 1.2
 * padding): a 64 KiB relay buffer is four records, the last sent with
 * these. More than fits is sent at once. */
#define GATHER_MAX (64 * 1024)

struct tls_gather {
	int fd;
	bool hold;
	size_t len;             /* bytes kept, not yet sent */
	unsigned char *buf;     /* GATHER_MAX bytes while len > 0 or holding */
};

static BIO_METHOD *tls_gather_method;
static int tls_gather_type;

static void
tls_gather_release(struct tls_gather *g)
{
	free(g->buf);
	g->buf = NULL;
}

/* Send what was kept and then in; write(2) conventions, counting both. */
static ssize_t
tls_gather_send(struct tls_gather *g, const char *in, size_t inl)
{
	struct iovec iov[2];
	int n = 0;
	ssize_t sent;

	if (g->len > 0) {
		iov[n].iov_base = g->buf;
		iov[n++].iov_len = g->len;
	}
	iov[n].iov_base = (void *)(uintptr_t)in;
	iov[n++].iov_len = inl;
	do
		sent = writev(g->fd, iov, n);
	while (sent < 0 && errno == EINTR);
	return sent;
}

static int
tls_gather_write(BIO *b, const char *in, size_t inl, size_t *written)
{
	struct tls_gather *g = BIO_get_data(b);
	ssize_t sent;

	BIO_clear_retry_flags(b);
	*written = 0;
	if (g->hold && g->len + inl <= GATHER_MAX &&
	    (g->buf != NULL || (g->buf = malloc(GATHER_MAX)) != NULL)) {
		memcpy(g->buf + g->len, in, inl);
		g->len += inl;
		*written = inl;
		return 1;
	}
	if ((sent = tls_gather_send(g, in, inl)) < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			BIO_set_retry_write(b);
		return 0;
	}
	/* What was kept goes first; while some of it is left, none of
	 * in went: OpenSSL writes in again once the socket has room. */
	if ((size_t)sent < g->len) {
		g->len -= (size_t)sent;
		memmove(g->buf, g->buf + sent, g->len);
		BIO_set_retry_write(b);
		return 0;
	}
	sent -= (ssize_t)g->len;
	g->len = 0;
	if (!g->hold)
		tls_gather_release(g);
	if (sent == 0) {
		BIO_set_retry_write(b);
		return 0;
	}
	*written = (size_t)sent;
	return 1;
}

static long
tls_gather_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct tls_gather *g = BIO_get_data(b);

	(void)num;
	switch (cmd) {
	case BIO_C_GET_FD:
		if (ptr != NULL)
			*(int *)ptr = g->fd;
		return g->fd;
	case BIO_CTRL_WPENDING:
		return (long)g->len;
	case BIO_CTRL_FLUSH:
		/* Only a write OpenSSL will repeat leaves bytes kept, and it
		 * sends them: nothing to do here. */
		return 1;
	case BIO_CTRL_DUP:
		return 1;
	default:
		return 0;
	}
}

static int
tls_gather_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static int
tls_gather_destroy(BIO *b)
{
	struct tls_gather *g = BIO_get_data(b);

	if (g != NULL) {
		tls_gather_release(g);
		free(g);
	}
	BIO_set_data(b, NULL);
	return 1;
}

static BIO_METHOD *
tls_gather_get_method(void)
{
	BIO_METHOD *m;

	if (tls_gather_method != NULL)
		return tls_gather_method;
	tls_gather_type = BIO_get_new_index() | BIO_TYPE_SOURCE_SINK |
	    BIO_TYPE_DESCRIPTOR;
	m = BIO_meth_new(tls_gather_type, "socks5d gather");
	if (m == NULL || !BIO_meth_set_write_ex(m, tls_gather_write) ||
	    !BIO_meth_set_ctrl(m, tls_gather_ctrl) ||
	    !BIO_meth_set_create(m, tls_gather_create) ||
	    !BIO_meth_set_destroy(m, tls_gather_destroy)) {
		BIO_meth_free(m);
		return NULL;
	}
	/* Kept for the process's life: every TLS session uses it. */
	tls_gather_method = m;
	return m;
}

BIO *
tls_gather_new(int fd)
{
	BIO_METHOD *m = tls_gather_get_method();
	struct tls_gather *g;
	BIO *b;

	if (m == NULL || (g = calloc(1, sizeof(*g))) == NULL)
		return NULL;
	if ((b = BIO_new(m)) == NULL) {
		free(g);
		return NULL;
	}
	g->fd = fd;
	BIO_set_data(b, g);
	return b;
}

BIO *
tls_gather_of(BIO *b)
{
	return b != NULL && tls_gather_method != NULL &&
	    BIO_method_type(b) == tls_gather_type ? b : NULL;
}

void
tls_gather_hold(BIO *b, bool hold)
{
	struct tls_gather *g = BIO_get_data(b);

	g->hold = hold;
	if (!hold && g->len == 0)
		tls_gather_release(g);
}
