/*
 * The BIO a TLS connection writes its socket through: while told to hold,
 * it keeps the records OpenSSL writes and sends them with the next one in
 * one writev(2), so a relayed buffer of several records costs one system
 * call instead of one per record. Not holding, it is a plain socket BIO
 * that sends whatever it kept first.
 *
 * It keeps bytes only while a write is unfinished: the caller holds for
 * every record of a buffer but the last, and OpenSSL's write of that last
 * one sends them all (or reports the socket full, and is repeated).
 */
#ifndef SOCKS5D_TLS_GATHER_H
#define SOCKS5D_TLS_GATHER_H

#include <stdbool.h>
#include <openssl/bio.h>

/* A BIO writing to fd (which stays the caller's), or NULL. */
BIO *tls_gather_new(int fd);

/* b if it is such a BIO, else NULL. */
BIO *tls_gather_of(BIO *b);

/* Keep the records written from now on (hold), or send them with the
 * next one (not). */
void tls_gather_hold(BIO *b, bool hold);

#endif
