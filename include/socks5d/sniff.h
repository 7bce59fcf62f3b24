/*
 * Inspection: the name a client is really going to, learnt from the first
 * bytes it sends (a TLS ClientHello, an HTTP/1.x request head, a QUIC
 * Initial) without decrypting anything of the connection's own. Pure
 * parsers: no I/O, no libev, no allocation (but what libcrypto does
 * inside the QUIC sniffer's HKDF and AES calls).
 */
#ifndef SOCKS5D_SNIFF_H
#define SOCKS5D_SNIFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest TLS handshake message reassembled from records (the caller
 * gives up at about this many bytes anyway). */
#define SNIFF_TLS_HELLO_MAX     16384
/* An HTTP request line longer than this is not HTTP worth reading. */
#define SNIFF_HTTP_LINE_MAX     8192
/* QUIC CRYPTO stream bytes kept: a ClientHello message longer than this,
 * its 4-byte header included, is given up on. */
#define SNIFF_QUIC_CRYPTO_MAX   8192
/* Largest QUIC packet decrypted; a bigger one is skipped. Initial
 * packets are padded to the path's first datagram, 1200-1500 bytes. */
#define SNIFF_QUIC_PACKET_MAX   16384
#define SNIFF_QUIC_CID_MAX      20

#define SNIFF_QUIC_V1           0x00000001u     /* RFC 9000 */
#define SNIFF_QUIC_V2           0x6b3343cfu     /* RFC 9369 */

/*
 * SNIFF_NEED_MORE: the bytes so far are a valid prefix of the protocol;
 * call again with more. SNIFF_FOUND: parsed, *out filled in. SNIFF_NONE:
 * not this protocol, or malformed; no more bytes can change that.
 * Verdicts are monotonic in the bytes given: once FOUND or NONE, longer
 * input gives the same answer (and the same *out).
 */
enum sniff_result {
	SNIFF_NEED_MORE = 0,
	SNIFF_FOUND,
	SNIFF_NONE,
};

/* Always written: zeroed on entry, filled in on SNIFF_FOUND. */
struct sniff_info {
	/* Lower case, no trailing dot, a plausible DNS name (1-253 bytes,
	 * labels of 1-63 [a-z0-9_-]); "" when none was sent, or it was
	 * not plausible, or it was an IP literal. */
	char name[256];
	/* The SNI or Host was an IP literal (any form inet_aton takes, or
	 * IPv6 text): name is left empty. */
	bool name_is_ip;
	/* The first ALPN protocol offered that is not GREASE and is
	 * printable ASCII, e.g. "h2"; "" when none. */
	char alpn[64];
	/* An encrypted_client_hello extension was present: name is the
	 * outer (public) one, not where the client is really going. */
	bool ech;
	/* HTTP: more than one Host header; name is left empty. */
	bool several_hosts;
};

/* The client's Initial packet protection keys (AEAD_AES_128_GCM). */
struct sniff_quic_keys {
	uint8_t key[16];
	uint8_t iv[12];
	uint8_t hp[16];
};

/*
 * QUIC sniffing state for one flow: caller-owned, zero-initialised, no
 * cleanup needed, about 9 KiB. Holds the CRYPTO stream of the client's
 * Initial packets as it arrives, in any order, and the keys that last
 * opened one.
 */
struct sniff_quic {
	uint8_t crypto[SNIFF_QUIC_CRYPTO_MAX];
	uint8_t have[SNIFF_QUIC_CRYPTO_MAX / 8];        /* a bit per byte */
	struct sniff_quic_keys keys;    /* the last that opened a packet */
	uint32_t version;               /* of the keys */
	uint64_t next_pn;               /* largest packet number opened + 1 */
	bool started;                   /* an Initial has been opened */
	enum sniff_result verdict;      /* NEED_MORE until decided */
};

/*
 * buf is the client's first bytes on a TCP stream: TLS handshake records
 * (content type 22, record version 0x0301-0x0304) carrying a ClientHello,
 * which may be split over several records and arrive in any number of
 * pieces. SSLv2-style hellos, other record types and any length that
 * overruns are SNIFF_NONE.
 */
enum sniff_result sniff_tls_client_hello(const uint8_t *buf, size_t len,
    struct sniff_info *out);

/*
 * The body of a ClientHello handshake message (after its type and 3-byte
 * length), all len bytes of it: legacy version, random, session id,
 * cipher suites, compression methods, extensions (server_name, ALPN and
 * encrypted_client_hello read, GREASE and the rest skipped). Returns
 * SNIFF_FOUND or SNIFF_NONE. Shared by the TLS and QUIC sniffers.
 */
enum sniff_result sniff_tls_hello_body(const uint8_t *body, size_t len,
    struct sniff_info *out);

/*
 * Store a host name as sent (SNI, Host header, URI authority without its
 * port) into out: a trailing dot dropped, upper case lowered, an IPv4 or
 * IPv6 literal ("[...]" too) flagged name_is_ip; anything not a
 * plausible DNS name leaves name empty. Returns false when nothing
 * usable was there (name empty and not an IP).
 */
bool sniff_name_set(struct sniff_info *out, const uint8_t *host,
    size_t len);

/*
 * buf is a client's first bytes on a TCP stream: an HTTP/1.x request head
 * (method of A-Z, SP, target, SP, HTTP/1.0 or HTTP/1.1, CRLF, header
 * lines, empty line; bare LF line ends are taken too). SNIFF_NEED_MORE
 * until the empty line; SNIFF_NONE as soon as it cannot be HTTP (a bad
 * method byte, a request line over SNIFF_HTTP_LINE_MAX, a malformed
 * header line). The name is an absolute-form target's host, else the Host
 * header's, port stripped; two or more Host headers set several_hosts and
 * leave no name; no Host is SNIFF_FOUND with an empty name.
 */
enum sniff_result sniff_http_host(const uint8_t *buf, size_t len,
    struct sniff_info *out);

/*
 * Feed one UDP datagram from the client toward the server. Initial
 * packets of QUIC v1 and v2 in it (coalesced ones too) are opened with
 * the Initial keys (RFC 9001 5.2, RFC 9369 3.3) and their CRYPTO frames
 * stored at their offsets; once the stream's contiguous start holds a
 * whole ClientHello it is parsed. SNIFF_NONE when the first datagram
 * does not start with a v1/v2 Initial that opens, or the stream does not
 * start with a ClientHello that fits and parses; later datagrams that
 * hold no Initial are ignored (SNIFF_NEED_MORE). Once FOUND or NONE,
 * every later call gives the same answer.
 */
enum sniff_result sniff_quic_initial(struct sniff_quic *state,
    const uint8_t *pkt, size_t len, struct sniff_info *out);

/* A client Initial packet for sniff_quic_seal to build. */
struct sniff_quic_packet {
	uint32_t version;               /* SNIFF_QUIC_V1 or SNIFF_QUIC_V2 */
	const uint8_t *dcid;            /* as sent in the header */
	size_t dcid_len;
	/* The client's first DCID, which the keys come from; NULL: dcid. */
	const uint8_t *key_dcid;
	size_t key_dcid_len;
	uint64_t pn;                    /* sent in 4 bytes */
	const uint8_t *payload;         /* frames, padding included */
	size_t payload_len;
};

/*
 * The other direction, for the tests and the fuzzer: protect p as a
 * client Initial (empty SCID and token, 2-byte Length) into out. Returns
 * its length, or 0 when it does not fit in cap or in a 2-byte Length, or
 * libcrypto fails. Byte for byte RFC 9001 A.2 given its inputs.
 */
size_t sniff_quic_seal(const struct sniff_quic_packet *p, uint8_t *out,
    size_t cap);

#endif
