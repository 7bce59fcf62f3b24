/*
 * TLS reads and writes with socket conventions (tls_io.h), and the BIO
 * that gives OpenSSL the first bytes of a connection we had to read
 * ourselves: a PROXY header comes before the ClientHello in the same
 * segment, and the record type byte is checked before OpenSSL sees any.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <ev.h>
#include <openssl/bio.h>
#include <openssl/err.h>

#include "socks5d/tls_gather.h"
#include "socks5d/tls_io.h"

/* errno and *wants for a call that returned 0 (its _ex failure). */
static ssize_t
tls_io_failed(SSL *ssl, int *wants)
{
	switch (SSL_get_error(ssl, 0)) {
	case SSL_ERROR_WANT_READ:
		*wants = EV_READ;
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_WANT_WRITE:
		*wants = EV_WRITE;
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		/* close_notify, or (SSL_OP_IGNORE_UNEXPECTED_EOF) a FIN
		 * without one: a TCP half-close, as on a plain socket. */
		return 0;
	case SSL_ERROR_SYSCALL:
		if (errno == 0)
			errno = ECONNRESET;
		return -1;
	default:
		errno = EPROTO;
		return -1;
	}
}

ssize_t
tls_io_read(SSL *ssl, void *buf, size_t len, int *wants)
{
	size_t n;

	*wants = 0;
	ERR_clear_error();
	errno = 0;
	if (SSL_read_ex(ssl, buf, len, &n) == 1)
		return (ssize_t)n;
	return tls_io_failed(ssl, wants);
}

ssize_t
tls_io_peek(SSL *ssl, void *buf, size_t len, int *wants)
{
	size_t n;

	*wants = 0;
	ERR_clear_error();
	errno = 0;
	if (SSL_peek_ex(ssl, buf, len, &n) == 1)
		return (ssize_t)n;
	return tls_io_failed(ssl, wants);
}

/*
 * More than a record goes one record per SSL_write, the socket's gather
 * BIO holding all but the last (tls_gather.h): one writev(2) for the
 * lot. A record the socket had no room for is offered again by the next
 * call, which starts with it (the same length: OpenSSL checks).
 */
ssize_t
tls_io_write(SSL *ssl, const void *buf, size_t len, int *wants)
{
	BIO *gather = tls_gather_of(SSL_get_wbio(ssl));
	size_t done = 0, n;

	*wants = 0;
	if (len == 0)
		return 0;
	ERR_clear_error();
	errno = 0;
	if (gather == NULL || len <= TLS_RECORD_MAX) {
		if (SSL_write_ex(ssl, buf, len, &n) == 1)
			return (ssize_t)n;
		return tls_io_failed(ssl, wants);
	}
	while (done < len) {
		size_t chunk = len - done < TLS_RECORD_MAX ? len - done :
		    TLS_RECORD_MAX;
		int ok;

		tls_gather_hold(gather, done + chunk < len);
		ok = SSL_write_ex(ssl, (const char *)buf + done, chunk, &n);
		tls_gather_hold(gather, false);
		if (ok != 1 && done > 0) {
			/* Bytes went, so no failure now: the next call meets
			 * it again and says so. A record left unfinished
			 * still shows in *wants, as it would alone: a read
			 * must not write behind it (see relay.c). */
			int saved = errno;

			(void)tls_io_failed(ssl, wants);
			ERR_clear_error();
			errno = saved;
			break;
		}
		if (ok != 1)
			return tls_io_failed(ssl, wants);
		done += n;
	}
	return (ssize_t)done;
}

int
tls_io_send_close_notify(SSL *ssl, bool again, int *wants)
{
	int rc = 0;

	*wants = 0;
	ERR_clear_error();
	/* Only once a handshake completed (otherwise there is nothing to
	 * close, and OpenSSL would only queue an error), and only once:
	 * called again, SSL_shutdown flushes an alert it still holds, or
	 * else reads on for the peer's close_notify, dropping data. */
	if (SSL_is_init_finished(ssl) && (again ||
	    (SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN) == 0))
		rc = SSL_shutdown(ssl);
	if (rc < 0 && SSL_get_error(ssl, rc) == SSL_ERROR_WANT_WRITE) {
		ERR_clear_error();
		*wants = EV_WRITE;
		errno = EAGAIN;
		return -1;
	}
	ERR_clear_error();
	return 0;
}

void
tls_io_close_notify(SSL *ssl)
{
	int wants;

	(void)tls_io_send_close_notify(ssl, false, &wants);
}

/* -- the prefix BIO ------------------------------------------------------ */

struct tls_prefix {
	size_t len;
	size_t off;
	uint8_t data[];
};

static BIO_METHOD *tls_prefix_method;

static int
tls_prefix_read(BIO *b, char *out, size_t outl, size_t *readbytes)
{
	struct tls_prefix *p = BIO_get_data(b);
	int ret;

	BIO_clear_retry_flags(b);
	if (p != NULL) {
		size_t n = p->len - p->off < outl ? p->len - p->off : outl;

		memcpy(out, p->data + p->off, n);
		p->off += n;
		*readbytes = n;
		if (p->off == p->len) {
			free(p);
			BIO_set_data(b, NULL);
		}
		return 1;
	}
	ret = BIO_read_ex(BIO_next(b), out, outl, readbytes);
	BIO_copy_next_retry(b);
	return ret;
}

static int
tls_prefix_write(BIO *b, const char *in, size_t inl, size_t *written)
{
	int ret;

	BIO_clear_retry_flags(b);
	ret = BIO_write_ex(BIO_next(b), in, inl, written);
	BIO_copy_next_retry(b);
	return ret;
}

static long
tls_prefix_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct tls_prefix *p = BIO_get_data(b);

	if (cmd == BIO_CTRL_PENDING && p != NULL)
		return (long)(p->len - p->off) + BIO_ctrl(BIO_next(b), cmd,
		    num, ptr);
	if (BIO_next(b) == NULL)
		return 0;
	return BIO_ctrl(BIO_next(b), cmd, num, ptr);
}

static int
tls_prefix_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static int
tls_prefix_destroy(BIO *b)
{
	free(BIO_get_data(b));
	BIO_set_data(b, NULL);
	return 1;
}

static BIO_METHOD *
tls_prefix_get_method(void)
{
	BIO_METHOD *m;

	if (tls_prefix_method != NULL)
		return tls_prefix_method;
	m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_FILTER,
	    "socks5d prefix");
	if (m == NULL || !BIO_meth_set_read_ex(m, tls_prefix_read) ||
	    !BIO_meth_set_write_ex(m, tls_prefix_write) ||
	    !BIO_meth_set_ctrl(m, tls_prefix_ctrl) ||
	    !BIO_meth_set_create(m, tls_prefix_create) ||
	    !BIO_meth_set_destroy(m, tls_prefix_destroy)) {
		BIO_meth_free(m);
		return NULL;
	}
	/* Kept for the process's life: every TLS session may use it. */
	tls_prefix_method = m;
	return m;
}

/* ssl reads prefix, then from rbio, and writes to wbio; both BIOs are
 * its own now (or freed, on failure: -1). */
static int
tls_io_set_bio_with_prefix(SSL *ssl, BIO *rbio, BIO *wbio,
    const uint8_t *prefix, size_t len)
{
	BIO_METHOD *m = tls_prefix_get_method();
	BIO *filter = NULL;
	struct tls_prefix *p = NULL;

	if (rbio == NULL || wbio == NULL || (len > 0 && (m == NULL ||
	    (p = malloc(sizeof(*p) + len)) == NULL ||
	    (filter = BIO_new(m)) == NULL))) {
		free(p);
		BIO_free(rbio);
		BIO_free(wbio);
		ERR_clear_error();
		return -1;
	}
	if (len > 0) {
		p->len = len;
		p->off = 0;
		memcpy(p->data, prefix, len);
		BIO_set_data(filter, p);
		rbio = BIO_push(filter, rbio);
	}
	/* SSL_free frees both chains. */
	SSL_set_bio(ssl, rbio, wbio);
	return 0;
}

int
tls_io_set_fd_with_prefix(SSL *ssl, int fd, const uint8_t *prefix,
    size_t len)
{
	return tls_io_set_bio_with_prefix(ssl, BIO_new_socket(fd,
	    BIO_NOCLOSE), tls_gather_new(fd), prefix, len);
}

int
tls_io_set_fd(SSL *ssl, int fd)
{
	return tls_io_set_fd_with_prefix(ssl, fd, NULL, 0);
}

/* A BIO that reads and writes through outer's TLS, which stays the
 * caller's. */
static BIO *
tls_io_bio_over(SSL *outer)
{
	BIO *b = BIO_new(BIO_f_ssl());

	if (b != NULL && BIO_set_ssl(b, outer, BIO_NOCLOSE) != 1) {
		BIO_free(b);
		return NULL;
	}
	return b;
}

int
tls_io_set_ssl_with_prefix(SSL *ssl, SSL *outer, const uint8_t *prefix,
    size_t len)
{
	/* One BIO each way, as for a socket: the chains are freed apart. */
	return tls_io_set_bio_with_prefix(ssl, tls_io_bio_over(outer),
	    tls_io_bio_over(outer), prefix, len);
}
