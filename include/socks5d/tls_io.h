/*
 * I/O on a non-blocking TLS connection with the conventions of read(2) and
 * write(2), so the relay and the front-end driver treat a TLS client like
 * a socket: -1 with errno EAGAIN while OpenSSL waits for the socket (and
 * *wants says for which event: a read may have to write first, a write
 * read first), 0 for the peer's close_notify or FIN, -1 with EPROTO for a
 * TLS failure and the socket's errno for a socket one.
 */
#ifndef SOCKS5D_TLS_IO_H
#define SOCKS5D_TLS_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <openssl/ssl.h>

/* The most plaintext one TLS record carries: a read into at least this
 * much room takes a whole record, so OpenSSL keeps no decrypted bytes
 * back (SSL_pending is 0). Records it read ahead it may still hold
 * (SSL_has_pending): readers come back for those themselves. */
#define TLS_RECORD_MAX 16384

/* *wants gets EV_READ or EV_WRITE (the libev constants) when the call
 * returns -1/EAGAIN, else 0. */
ssize_t tls_io_read(SSL *ssl, void *buf, size_t len, int *wants);
ssize_t tls_io_write(SSL *ssl, const void *buf, size_t len, int *wants);
/* tls_io_read without taking the bytes: the next read gets them again.
 * At most one record's worth shows. */
ssize_t tls_io_peek(SSL *ssl, void *buf, size_t len, int *wants);

/* Send close_notify, best effort (the caller then shuts the socket's
 * write side or closes it). */
void tls_io_close_notify(SSL *ssl);

/*
 * Send close_notify for a caller that can wait for the socket: 0 once it
 * went out (or never will: no handshake, a failure), -1 with errno EAGAIN
 * and *wants set while the socket has no room for it; then call again,
 * with again set, once the socket is ready. A FIN or close before it is
 * out would lose it, and the peer would see a truncated stream.
 */
int tls_io_send_close_notify(SSL *ssl, bool again, int *wants);

/* ssl reads from fd and writes to it through the gather BIO
 * (tls_gather.h). Returns 0, or -1 when out of memory. */
int tls_io_set_fd(SSL *ssl, int fd);

/*
 * Let ssl read len bytes already taken from its socket (the start of a
 * ClientHello read while looking for a PROXY header or a TLS record)
 * before it reads on from fd; it writes as tls_io_set_fd's does. Returns
 * 0, or -1 when out of memory.
 */
int tls_io_set_fd_with_prefix(SSL *ssl, int fd, const uint8_t *prefix,
    size_t len);

/*
 * The same inside another TLS connection: ssl (an intercepted client's,
 * say) reads the prefix and then outer's plaintext, and writes through
 * outer, which must outlive it (free ssl first).
 */
int tls_io_set_ssl_with_prefix(SSL *ssl, SSL *outer, const uint8_t *prefix,
    size_t len);

#endif
