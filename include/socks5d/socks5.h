/*
 * The SOCKS5 wire format (RFC 1928, RFC 1929): parsing client messages out
 * of a byte buffer and encoding server replies, and the other way round for
 * chaining through an upstream SOCKS5 proxy. No I/O, no allocation, no
 * libev: everything here is a pure function of its arguments, so it can be
 * unit-tested and fuzzed directly.
 */
#ifndef SOCKS5D_SOCKS5_H
#define SOCKS5D_SOCKS5_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define SOCKS5_VERSION          0x05
#define SOCKS5_AUTH_VERSION     0x01

/* Method codes (RFC 1928 §3). */
#define SOCKS5_METHOD_NONE      0x00
#define SOCKS5_METHOD_PASSWORD  0x02
#define SOCKS5_METHOD_REJECT    0xFF

/* Commands (RFC 1928 §4). */
#define SOCKS5_CMD_CONNECT      0x01
#define SOCKS5_CMD_BIND         0x02
#define SOCKS5_CMD_UDP          0x03
/* Tor's extensions (torsocks uses them): a name to its address, and an
 * address to its name, answered in the reply. */
#define SOCKS5_CMD_RESOLVE      0xF0
#define SOCKS5_CMD_RESOLVE_PTR  0xF1

/* Address types. */
#define SOCKS5_ATYP_IPV4        0x01
#define SOCKS5_ATYP_NAME        0x03
#define SOCKS5_ATYP_IPV6        0x04

/* Reply codes (RFC 1928 §6). */
#define SOCKS5_REP_SUCCESS          0x00
#define SOCKS5_REP_FAILURE          0x01
#define SOCKS5_REP_NOT_ALLOWED      0x02
#define SOCKS5_REP_NET_UNREACH      0x03
#define SOCKS5_REP_HOST_UNREACH     0x04
#define SOCKS5_REP_REFUSED          0x05
#define SOCKS5_REP_TTL_EXPIRED      0x06
#define SOCKS5_REP_CMD_UNSUPPORTED  0x07
#define SOCKS5_REP_ATYP_UNSUPPORTED 0x08

/* RFC 1929 status bytes. */
#define SOCKS5_AUTH_OK          0x00
#define SOCKS5_AUTH_FAILED      0x01

/* Largest messages a client can send, for sizing buffers. */
#define SOCKS5_GREETING_MAX     (2 + 255)
#define SOCKS5_AUTH_MAX         (3 + 255 + 255)
#define SOCKS5_REQUEST_MAX      (4 + 1 + 255 + 2)
/* An IP-form reply: 10 bytes for IPv4, 22 for IPv6. */
#define SOCKS5_REPLY_MAX        22
/* A name-form reply (RESOLVE_PTR's answer). */
#define SOCKS5_NAME_REPLY_MAX   (4 + 1 + 255 + 2)
#define SOCKS5_NAME_MAX         255
/* Our own greeting as a client: at most two methods. */
#define SOCKS5_CLIENT_GREETING_MAX 4
/* socks5_addr_format output: a longest name, ":65535" and the NUL. */
#define SOCKS5_ADDR_STRLEN      (SOCKS5_NAME_MAX + 7)

/*
 * Result of a parse call. SOCKS5_OK means a whole message was parsed and
 * *consumed says how many bytes it took; SOCKS5_INCOMPLETE means the buffer
 * holds a valid prefix and more bytes are needed. Every other value means the
 * message is malformed and the connection cannot continue.
 */
enum socks5_status {
	SOCKS5_OK = 0,
	SOCKS5_INCOMPLETE,
	SOCKS5_BAD_VERSION,       /* VER is not 5 (or 1 for RFC 1929) */
	SOCKS5_NO_METHODS,        /* NMETHODS = 0 */
	SOCKS5_BAD_COMMAND,       /* CMD not 1, 2 or 3: reply 0x07 */
	SOCKS5_BAD_ATYP,          /* ATYP not 1, 3 or 4: reply 0x08 */
	SOCKS5_BAD_NAME,          /* empty or NUL-containing name: reply 0x04 */
	SOCKS5_BAD_RESERVED,      /* UDP header RSV not zero */
	SOCKS5_FRAGMENTED,        /* UDP header FRAG not zero */
};

struct socks5_greeting {
	uint8_t nmethods;
	const uint8_t *methods;   /* points into the parsed buffer */
};

/* An RFC 1929 request. The strings are copied and NUL-terminated; a zero
 * length is valid wire syntax (it must then fail authentication). */
struct socks5_credentials {
	uint8_t ulen;
	uint8_t plen;
	char user[256];
	char password[256];
};

/* A destination as the client wrote it: an IP address or a name. */
struct socks5_addr {
	uint8_t atyp;
	uint16_t port;            /* host order */
	union {
		uint8_t ipv4[4];
		uint8_t ipv6[16];
		char name[SOCKS5_NAME_MAX + 1];   /* NUL-terminated */
	} u;
};

struct socks5_request {
	uint8_t cmd;
	struct socks5_addr dst;
};

/* An upstream server's reply to our request (RFC 1928 §6). */
struct socks5_reply {
	uint8_t rep;              /* SOCKS5_REP_*, or whatever it sent */
	struct socks5_addr bnd;
};

/* A UDP ASSOCIATE datagram header (RFC 1928 §7). */
struct socks5_udp_header {
	uint8_t frag;
	struct socks5_addr dst;
};

enum socks5_status socks5_parse_greeting(const uint8_t *buf, size_t len,
    struct socks5_greeting *out, size_t *consumed);
enum socks5_status socks5_parse_credentials(const uint8_t *buf, size_t len,
    struct socks5_credentials *out, size_t *consumed);
enum socks5_status socks5_parse_request(const uint8_t *buf, size_t len,
    struct socks5_request *out, size_t *consumed);
enum socks5_status socks5_parse_udp_header(const uint8_t *buf, size_t len,
    struct socks5_udp_header *out, size_t *consumed);

/* Does the greeting offer this method? */
int socks5_greeting_offers(const struct socks5_greeting *g, uint8_t method);

/* The reply code a malformed request must be answered with. */
uint8_t socks5_status_reply(enum socks5_status status);

/*
 * Encode a full IP-form reply into out (at least SOCKS5_REPLY_MAX bytes) and
 * return its length: ATYP 1 for IPv4 and IPv4-mapped IPv6 addresses, ATYP 4
 * for other IPv6 addresses, and 0.0.0.0:0 when bnd is NULL.
 */
size_t socks5_encode_reply(uint8_t *out, uint8_t rep,
    const struct sockaddr *bnd);

/* Encode a name-form success reply (ATYP 3) for name (at most
 * SOCKS5_NAME_MAX bytes are used) and port; returns its length. */
size_t socks5_encode_name_reply(uint8_t *out, const char *name,
    uint16_t port);

/* Encode a UDP datagram header for the given source address; returns its
 * length (10 or 22) and writes at most SOCKS5_REPLY_MAX bytes. */
size_t socks5_encode_udp_header(uint8_t *out, const struct sockaddr *src);

/* Write "host:port" for a destination ("[v6]:port" for IPv6). */
void socks5_addr_format(const struct socks5_addr *a, char *out, size_t outlen);

/*
 * The client side, for chaining through an upstream SOCKS5 server. The
 * encoders write into out, which must hold the maximum named for each; the
 * parsers follow the server side's contract (SOCKS5_OK with *consumed, or
 * SOCKS5_INCOMPLETE, or a final error), and never consume a byte past the
 * message, since what follows a reply belongs to the relayed stream.
 */

/* Our greeting: "no authentication", plus "username/password" when we
 * have credentials. Returns its length (3 or 4); out holds at least
 * SOCKS5_CLIENT_GREETING_MAX bytes. */
size_t socks5_encode_greeting(uint8_t *out, bool with_password);

/* The server's method choice (VER METHOD). On SOCKS5_OK *method is the
 * byte it chose, which may be SOCKS5_METHOD_REJECT or one never offered:
 * the caller decides. SOCKS5_BAD_VERSION when VER is not 5. */
enum socks5_status socks5_parse_method_choice(const uint8_t *buf, size_t len,
    uint8_t *method, size_t *consumed);

/* An RFC 1929 request for user and password (NUL-terminated, 1-255 bytes
 * each). Returns its length, or 0 when either is empty or too long; out
 * holds at least SOCKS5_AUTH_MAX bytes. */
size_t socks5_encode_credentials(uint8_t *out, const char *user,
    const char *password);

/* The RFC 1929 status reply (VER STATUS). On SOCKS5_OK *auth_status is the
 * STATUS byte: SOCKS5_AUTH_OK, anything else is a refusal.
 * SOCKS5_BAD_VERSION when VER is not 1. */
enum socks5_status socks5_parse_auth_reply(const uint8_t *buf, size_t len,
    uint8_t *auth_status, size_t *consumed);

/* A request for cmd to dst (an IPv4 or IPv6 address, or a NUL-terminated
 * name of 1-255 bytes). Returns its length, or 0 when dst is none of
 * those; out holds at least SOCKS5_REQUEST_MAX bytes. */
size_t socks5_encode_request(uint8_t *out, uint8_t cmd,
    const struct socks5_addr *dst);

/*
 * The server's reply to our request: VER REP RSV ATYP BND.ADDR BND.PORT,
 * at most SOCKS5_NAME_REPLY_MAX bytes. On SOCKS5_OK *consumed is its exact
 * length and out holds REP and BND, whatever REP says. A nonzero RSV is
 * tolerated, as servers in the wild send one; SOCKS5_BAD_VERSION (VER not
 * 5), SOCKS5_BAD_ATYP and SOCKS5_BAD_NAME (empty or NUL-containing) are
 * not, since after them the stream cannot be trusted to be in sync.
 */
enum socks5_status socks5_parse_reply(const uint8_t *buf, size_t len,
    struct socks5_reply *out, size_t *consumed);

#endif
