/*
 * The SOCKS4 and SOCKS4a wire format: parsing a client's request out of a
 * byte buffer and encoding the 8-byte reply. Pure functions, like socks5.h;
 * the destination comes out as a struct socks5_addr so the rest of the
 * daemon sees one kind of request whichever protocol the client spoke.
 */
#ifndef SOCKS5D_SOCKS4_H
#define SOCKS5D_SOCKS4_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "socks5d/socks5.h"

#define SOCKS4_VERSION          0x04

/* Commands (CD in a request). */
#define SOCKS4_CMD_CONNECT      0x01
#define SOCKS4_CMD_BIND         0x02

/* Reply codes (CD in a reply). */
#define SOCKS4_REP_GRANTED      90
#define SOCKS4_REP_REJECTED     91      /* rejected or failed */
#define SOCKS4_REP_NO_IDENTD    92      /* client's identd unreachable */
#define SOCKS4_REP_IDENT_FAILED 93      /* identd and USERID disagree */

#define SOCKS4_REPLY_LEN        8
#define SOCKS4_USERID_MAX       255     /* longer: SOCKS4_TOO_LONG */
#define SOCKS4_NAME_MAX         255     /* a 4a host name, as in SOCKS5 */
/* Longest request a client can send: the fixed part, then USERID and a 4a
 * name of the longest lengths, each with its NUL. From this many bytes on,
 * a parse is never SOCKS4_INCOMPLETE. */
#define SOCKS4_REQUEST_MAX      (8 + SOCKS4_USERID_MAX + 1 + \
                                 SOCKS4_NAME_MAX + 1)

/*
 * Result of socks4_parse_request. SOCKS4_OK means a whole request was parsed
 * and *consumed says how many bytes it took; SOCKS4_INCOMPLETE means the
 * buffer holds a valid prefix. Every other value is answered with
 * SOCKS4_REP_REJECTED and a close.
 */
enum socks4_status {
	SOCKS4_OK = 0,
	SOCKS4_INCOMPLETE,
	SOCKS4_BAD_VERSION,     /* VN is not 4 */
	SOCKS4_BAD_COMMAND,     /* CD is not CONNECT or BIND */
	SOCKS4_BAD_NAME,        /* 4a name empty or longer than 255 */
	SOCKS4_TOO_LONG,        /* USERID over 255 bytes without NUL */
};

struct socks4_request {
	uint8_t cmd;
	/* NUL-terminated, may be empty. */
	char userid[SOCKS4_USERID_MAX + 1];
	/* SOCKS5_ATYP_IPV4 with DSTIP, or SOCKS5_ATYP_NAME for 4a; the port
	 * in host order. */
	struct socks5_addr dst;
};

/*
 * Parse a request at the start of buf. Never reads past len. BAD_COMMAND is
 * decided once the 8 fixed bytes are in, before USERID has arrived. *out is
 * written only on SOCKS4_OK.
 */
enum socks4_status socks4_parse_request(const uint8_t *buf, size_t len,
    struct socks4_request *out, size_t *consumed);

/*
 * Write the reply: rep is a SOCKS4_REP_* code; bnd is NULL (0.0.0.0:0) or an
 * AF_INET address. An IPv4-mapped AF_INET6 address goes out as its IPv4
 * address; any other IPv6 address, which SOCKS4 cannot carry, as 0.0.0.0
 * with its port. Always writes SOCKS4_REPLY_LEN bytes and returns that.
 */
size_t socks4_encode_reply(uint8_t *out, uint8_t rep,
    const struct sockaddr *bnd);

#endif
