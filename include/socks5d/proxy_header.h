/*
 * The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and
 * 2) that a load balancer puts in front of the client's stream to say whom
 * the connection is really from: parsing it out of the first bytes of a
 * connection, and encoding it for the test and benchmark tools. Pure
 * functions: no I/O, no allocation.
 */
#ifndef SOCKS5D_PROXY_HEADER_H
#define SOCKS5D_PROXY_HEADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "socks5d/addr.h"

/* Largest header accepted (and the size of an encoder's output buffer): a
 * v2 header is 16 bytes plus its length field, TLVs included. */
#define PROXY_HEADER_MAX        1024
/* A v1 line, CRLF included, is never longer than this. */
#define PROXY_V1_MAX            107
#define PROXY_V2_HEADER_LEN     16

/*
 * PROXY_OK: a whole header, *consumed bytes long. PROXY_INCOMPLETE: the
 * buffer is a strict prefix of some valid header (an empty one included).
 * PROXY_BAD: no bytes that may follow can make it one.
 */
enum proxy_status {
	PROXY_OK = 0,
	PROXY_INCOMPLETE,
	PROXY_BAD,
};

struct proxy_header {
	uint8_t version;                /* 1 or 2 */
	/* v2 LOCAL, v2 UNSPEC or v1 UNKNOWN: there are no addresses, and the
	 * connection's own endpoints stand. */
	bool local;
	/* When !local: both AF_INET or both AF_INET6, ports set, as sent (an
	 * IPv4-mapped address is not normalized). Zeroed when local. */
	union sockaddr_any src, dst;
};

/*
 * Parse a header at the start of buf; the bytes after *consumed are the
 * client's stream. Verdicts are monotonic in len: once a prefix is OK or
 * BAD, every longer buffer gives the same answer. A v1 address is checked
 * with inet_pton once its terminating space is in; before that only its
 * characters and length are. A v2 LOCAL header is accepted whatever its
 * family byte says; with PROXY, the family must be TCP over IPv4 or IPv6,
 * or UNSPEC. v2 TLVs are skipped unread. *out is written only on PROXY_OK.
 */
enum proxy_status proxy_header_parse(const uint8_t *buf, size_t len,
    struct proxy_header *out, size_t *consumed);

/*
 * Write a header saying the connection is from src to dst into out
 * (PROXY_HEADER_MAX bytes) and return its length. When src and dst are not
 * both AF_INET or both AF_INET6 (or either is NULL), v1 writes
 * "PROXY UNKNOWN\r\n" and v2 a PROXY command with family UNSPEC and no
 * addresses; both parse back as local.
 */
size_t proxy_header_encode_v1(uint8_t *out, const struct sockaddr *src,
    const struct sockaddr *dst);
size_t proxy_header_encode_v2(uint8_t *out, const struct sockaddr *src,
    const struct sockaddr *dst);

#endif
