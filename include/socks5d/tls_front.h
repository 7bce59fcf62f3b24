/*
 * TLS under the front-ends: on a [tls] listen socket the first bytes
 * must be a TLS record; OpenSSL's handshake then runs on the loop with
 * the session's timer, and once it is done the usual front-end detection
 * reads the decrypted bytes. A verified client certificate may be the
 * session's login.
 */
#ifndef SOCKS5D_TLS_FRONT_H
#define SOCKS5D_TLS_FRONT_H

#include "socks5d/frontend.h"

struct session;

/* Called once the handshake is done, with the session in
 * SESSION_HANDSHAKE: the caller reads the client through TLS from now on. */
typedef void tls_front_done_cb(struct session *s);

/*
 * Start TLS with the raw bytes the handshake buffer holds (at least one):
 * refuse a client whose first byte is no TLS handshake record, else hand
 * the bytes to OpenSSL and drive the handshake from the client watcher.
 * Always FRONTEND_STOP: the session waits, or it is gone.
 */
enum frontend_step tls_front_begin(struct session *s, tls_front_done_cb *done);

/* The first byte of a TLS handshake record (a ClientHello). */
#define TLS_CONTENT_HANDSHAKE 0x16

#endif
