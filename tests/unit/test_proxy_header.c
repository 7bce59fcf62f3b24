/*
 * Unit tests for the PROXY protocol header (src/proxy_header.c): v1 and v2
 * headers of every kind, every truncation point, the byte at which each
 * malformed header is first refused, and encode/parse round trips.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "socks5d/proxy_header.h"

#include "prefixes.h"

/* What a client sends after the header; must never be consumed. */
static const uint8_t trailer[] = { 'G', 'E', 'T', ' ', 0x0D, 0x0A, 0x00 };

static int
parse_header(const uint8_t *buf, size_t len, size_t *consumed)
{
	struct proxy_header h;

	return proxy_header_parse(buf, len, &h, consumed);
}

/* Every prefix, then the header with the client's bytes behind it; see
 * prefixes.h. */
static void
check_prefixes(const void *msg, size_t len, size_t at, enum proxy_status want)
{
	check_every_prefix(parse_header, (struct prefix_codes){
	    PROXY_INCOMPLETE, PROXY_OK }, msg, len, at, want, trailer,
	    sizeof(trailer));
}

static void
check_ok(const void *msg, size_t len)
{
	check_prefixes(msg, len, len, PROXY_OK);
}

static void
check_text_ok(const char *msg)
{
	check_ok(msg, strlen(msg));
}

/* A header that goes wrong at the first byte past the text `good`. */
static void
check_text_bad(const char *msg, const char *good)
{
	assert_memory_equal(msg, good, strlen(good));
	check_prefixes(msg, strlen(msg), strlen(good) + 1, PROXY_BAD);
}

static void
parse_ok(const void *msg, size_t len, struct proxy_header *h)
{
	size_t consumed = 0;

	memset(h, 0x55, sizeof(*h));
	assert_int_equal(proxy_header_parse(msg, len, h, &consumed), PROXY_OK);
	assert_int_equal(consumed, len);
}

static void
assert_addr4(const union sockaddr_any *a, const char *ip, unsigned port)
{
	struct in_addr want;

	assert_int_equal(a->sa.sa_family, AF_INET);
	assert_int_equal(inet_pton(AF_INET, ip, &want), 1);
	assert_memory_equal(&a->in.sin_addr, &want, 4);
	assert_int_equal(ntohs(a->in.sin_port), port);
}

static void
assert_addr6(const union sockaddr_any *a, const char *ip, unsigned port)
{
	struct in6_addr want;

	assert_int_equal(a->sa.sa_family, AF_INET6);
	assert_int_equal(inet_pton(AF_INET6, ip, &want), 1);
	assert_memory_equal(&a->in6.sin6_addr, &want, 16);
	assert_int_equal(ntohs(a->in6.sin6_port), port);
}

static void
make_v4(union sockaddr_any *a, const char *ip, uint16_t port)
{
	memset(a, 0, sizeof(*a));
	a->in.sin_family = AF_INET;
	a->in.sin_port = htons(port);
	assert_int_equal(inet_pton(AF_INET, ip, &a->in.sin_addr), 1);
}

static void
make_v6(union sockaddr_any *a, const char *ip, uint16_t port)
{
	memset(a, 0, sizeof(*a));
	a->in6.sin6_family = AF_INET6;
	a->in6.sin6_port = htons(port);
	assert_int_equal(inet_pton(AF_INET6, ip, &a->in6.sin6_addr), 1);
}

/* ---- v1 ---- */

static void
test_v1_tcp4(void **state)
{
	static const char msg[] =
	    "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
	struct proxy_header h;

	(void)state;
	check_text_ok(msg);
	parse_ok(msg, strlen(msg), &h);
	assert_int_equal(h.version, 1);
	assert_false(h.local);
	assert_addr4(&h.src, "192.168.0.1", 56324);
	assert_addr4(&h.dst, "192.168.0.11", 443);
}

static void
test_v1_tcp6(void **state)
{
	static const char msg[] =
	    "PROXY TCP6 2001:DB8::1 ::ffff:10.0.0.1 0 65535\r\n";
	struct proxy_header h;

	(void)state;
	check_text_ok(msg);
	parse_ok(msg, strlen(msg), &h);
	assert_int_equal(h.version, 1);
	assert_false(h.local);
	assert_addr6(&h.src, "2001:db8::1", 0);
	/* Passed on as sent: the caller normalizes. */
	assert_addr6(&h.dst, "::ffff:10.0.0.1", 65535);
}

/* The longest addresses a v1 line can carry: the 107-byte bound holds even
 * for addresses inet_pton takes. */
static void
test_v1_tcp6_longest(void **state)
{
	static const char msg[] = "PROXY TCP6 "
	    "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:: 65535 65535\r\n";
	static const char over[] = "PROXY TCP6 "
	    "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
	struct proxy_header h;

	(void)state;
	assert_int_equal(strlen(msg), PROXY_V1_MAX);
	check_text_ok(msg);
	parse_ok(msg, strlen(msg), &h);
	assert_addr6(&h.src, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
	assert_addr6(&h.dst, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:0", 65535);
	check_prefixes(over, strlen(over), PROXY_V1_MAX, PROXY_BAD);
}

static void
test_v1_unknown(void **state)
{
	static const char shortform[] = "PROXY UNKNOWN\r\n";
	static const char longform[] = "PROXY UNKNOWN "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
	/* Whatever is before the CRLF is ignored, however odd. */
	static const char odd[] = "PROXY UNKNOWN  anything\tat all \x01\r\n";
	struct proxy_header h;

	(void)state;
	assert_int_equal(strlen(longform), PROXY_V1_MAX);
	check_text_ok(shortform);
	check_text_ok(longform);
	check_text_ok(odd);
	check_text_ok("PROXY UNKNOWN \r\n");
	parse_ok(shortform, strlen(shortform), &h);
	assert_int_equal(h.version, 1);
	assert_true(h.local);
	parse_ok(longform, strlen(longform), &h);
	assert_true(h.local);
}

static void
test_v1_bad_keyword(void **state)
{
	(void)state;
	check_text_bad("PROXZ TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "PROX");
	check_text_bad("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "");
	check_text_bad("PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", "PROXY ");
	check_text_bad("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "PROXY TCP");
	check_text_bad("PROXY TCP4\r\n", "PROXY TCP4");
	check_text_bad("PROXY UNKNOWNX\r\n", "PROXY UNKNOWN");
	check_text_bad("PROXY\r\n", "PROXY");
	check_text_bad("GET / HTTP/1.1\r\n", "");
	check_text_bad("\x05\x01\x00", "");
}

static void
test_v1_bad_spacing(void **state)
{
	(void)state;
	check_text_bad("PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "PROXY ");
	check_text_bad("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", "PROXY TCP4 ");
	check_text_bad("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
	    "PROXY TCP4 1.2.3.4 ");
	check_text_bad("PROXY TCP4 1.2.3.4 5.6.7.8  1 2\r\n",
	    "PROXY TCP4 1.2.3.4 5.6.7.8 ");
	check_text_bad("PROXY TCP4 1.2.3.4 5.6.7.8 1  2\r\n",
	    "PROXY TCP4 1.2.3.4 5.6.7.8 1 ");
	check_text_bad("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
	    "PROXY TCP4 1.2.3.4 5.6.7.8 1 2");
	check_text_bad("PROXY\tTCP4 1.2.3.4 5.6.7.8 1 2\r\n", "PROXY");
}

static void
test_v1_bad_address(void **state)
{
	/* inet_pton would stop at the NUL and take what is before it. */
	static const char nul4[] = "PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n";
	static const char nul6[] = "PROXY TCP6 ::fff\0:1 ::1 1 2\r\n";

	(void)state;
	check_prefixes(nul4, sizeof(nul4) - 1, strlen(nul4) + 1, PROXY_BAD);
	check_prefixes(nul6, sizeof(nul6) - 1, strlen(nul6) + 1, PROXY_BAD);
	/* Refused at the byte that makes it impossible... */
	check_text_bad("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
	    "PROXY TCP4 1.2.3.25");
	check_text_bad("PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", "PROXY TCP4 0");
	check_text_bad("PROXY TCP4 1..2.3 5.6.7.8 1 2\r\n", "PROXY TCP4 1.");
	check_text_bad("PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n",
	    "PROXY TCP4 1.2.3.4");
	check_text_bad("PROXY TCP4 ::1 5.6.7.8 1 2\r\n", "PROXY TCP4 ");
	check_text_bad("PROXY TCP4 localhost 5.6.7.8 1 2\r\n", "PROXY TCP4 ");
	check_text_bad("PROXY TCP6 1::2::3 ::1 1 2\r\n", "PROXY TCP6 1::2:");
	check_text_bad("PROXY TCP6 1:::2 ::1 1 2\r\n", "PROXY TCP6 1::");
	check_text_bad("PROXY TCP6 12345::1 ::1 1 2\r\n", "PROXY TCP6 1234");
	check_text_bad("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",
	    "PROXY TCP6 fe80::1");
	check_text_bad("PROXY TCP6 "
	    "0000:0000:0000:0000:0000:0000:000.000.000.000 ::1 1 2\r\n",
	    "PROXY TCP6 0000:0000:0000:0000:0000:0000:000.000.000.000");
	/* ...or, when only the whole of it can tell, at its space. */
	check_text_bad("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", "PROXY TCP4 1.2.3");
	check_text_bad("PROXY TCP6 1:2 ::1 1 2\r\n", "PROXY TCP6 1:2");
	check_text_bad("PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "PROXY TCP6 1.2.3.4");
	check_text_bad("PROXY TCP6 :1:: ::1 1 2\r\n", "PROXY TCP6 :1::");
	check_text_bad("PROXY TCP4 1.2.3.4 ::1 1 2\r\n", "PROXY TCP4 1.2.3.4 ");
}

static void
test_v1_bad_port(void **state)
{
	(void)state;
	check_text_ok("PROXY TCP4 1.2.3.4 5.6.7.8 0 65535\r\n");
	check_text_bad("PROXY TCP4 1.2.3.4 5.6.7.8 65536 80\r\n",
	    "PROXY TCP4 1.2.3.4 5.6.7.8 6553");
	check_text_bad("PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n",
	    "PROXY TCP4 1.2.3.4 5.6.7.8 1 9999");
	check_text_bad("PROXY TCP4 1.2.3.4 5.6.7.8 080 80\r\n",
	    "PROXY TCP4 1.2.3.4 5.6.7.8 0");
	check_text_bad("PROXY TCP4 1.2.3.4 5.6.7.8 80 00\r\n",
	    "PROXY TCP4 1.2.3.4 5.6.7.8 80 0");
	check_text_bad("PROXY TCP4 1.2.3.4 5.6.7.8 -1 80\r\n",
	    "PROXY TCP4 1.2.3.4 5.6.7.8 ");
	check_text_bad("PROXY TCP4 1.2.3.4 5.6.7.8 +1 80\r\n",
	    "PROXY TCP4 1.2.3.4 5.6.7.8 ");
	check_text_bad("PROXY TCP4 1.2.3.4 5.6.7.8 0x50 80\r\n",
	    "PROXY TCP4 1.2.3.4 5.6.7.8 0");
	check_text_bad("PROXY TCP4 1.2.3.4 5.6.7.8 80\r\n",
	    "PROXY TCP4 1.2.3.4 5.6.7.8 80");
}

static void
test_v1_bad_line_end(void **state)
{
	(void)state;
	check_text_bad("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
	    "PROXY TCP4 1.2.3.4 5.6.7.8 1 2");
	check_text_bad("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n",
	    "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r");
	check_text_bad("PROXY UNKNOWN\n", "PROXY UNKNOWN");
	check_text_bad("PROXY UNKNOWN 1.2.3.4\nGET\r\n",
	    "PROXY UNKNOWN 1.2.3.4");
	check_text_bad("PROXY UNKNOWN 1.2.3.4\rGET\r\n",
	    "PROXY UNKNOWN 1.2.3.4\r");
}

/* 107 bytes without the CRLF: BAD at the 107th, not before. */
static void
test_v1_too_long(void **state)
{
	char msg[PROXY_V1_MAX + 3];

	(void)state;
	memset(msg, 'x', sizeof(msg));
	memcpy(msg, "PROXY UNKNOWN ", 14);
	/* CRLF at bytes 108-109: one too far. */
	memcpy(msg + PROXY_V1_MAX, "\r\n", 2);
	msg[PROXY_V1_MAX + 2] = '\0';
	check_prefixes(msg, strlen(msg), PROXY_V1_MAX, PROXY_BAD);
	/* CR as byte 107, LF beyond it. */
	memcpy(msg + PROXY_V1_MAX - 1, "\r\n", 2);
	msg[PROXY_V1_MAX + 1] = '\0';
	check_prefixes(msg, strlen(msg), PROXY_V1_MAX, PROXY_BAD);
	/* Ending exactly at byte 107 is fine. */
	memcpy(msg + PROXY_V1_MAX - 2, "\r\n", 2);
	msg[PROXY_V1_MAX] = '\0';
	check_text_ok(msg);
}

/* ---- v2 ---- */

static const uint8_t v2_sig[12] = {
	0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A
};

/* Build a v2 header: body is the address block and any TLVs. */
static size_t
make_v2(uint8_t *out, uint8_t ver_cmd, uint8_t fam, const void *body,
    size_t blen)
{
	memcpy(out, v2_sig, 12);
	out[12] = ver_cmd;
	out[13] = fam;
	out[14] = (uint8_t)(blen >> 8);
	out[15] = (uint8_t)blen;
	if (blen > 0)
		memcpy(out + 16, body, blen);
	return 16 + blen;
}

static const uint8_t v2_addr4[] = {
	192, 0, 2, 1,  198, 51, 100, 2,  0xDB, 0x04,  0x01, 0xBB,
	/* TLVs: PP2_TYPE_ALPN "h2", PP2_TYPE_NOOP of 1 byte */
	0x01, 0x00, 0x02, 'h', '2',  0x04, 0x00, 0x01, 0x00,
};
static const uint8_t v2_addr6[] = {
	0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
	0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
	0x00, 0x01,  0xFF, 0xFF,
	0x04, 0x00, 0x03, 0, 0, 0,
};

static void
test_v2_tcp4(void **state)
{
	uint8_t msg[64];
	struct proxy_header h;
	size_t len;

	(void)state;
	len = make_v2(msg, 0x21, 0x11, v2_addr4, 12);
	check_ok(msg, len);
	parse_ok(msg, len, &h);
	assert_int_equal(h.version, 2);
	assert_false(h.local);
	assert_addr4(&h.src, "192.0.2.1", 56068);
	assert_addr4(&h.dst, "198.51.100.2", 443);

	/* With TLVs: skipped, but consumed. */
	len = make_v2(msg, 0x21, 0x11, v2_addr4, sizeof(v2_addr4));
	check_ok(msg, len);
	parse_ok(msg, len, &h);
	assert_false(h.local);
	assert_addr4(&h.src, "192.0.2.1", 56068);
	assert_addr4(&h.dst, "198.51.100.2", 443);
}

static void
test_v2_tcp6(void **state)
{
	uint8_t msg[64];
	struct proxy_header h;
	size_t len;

	(void)state;
	len = make_v2(msg, 0x21, 0x21, v2_addr6, 36);
	check_ok(msg, len);
	parse_ok(msg, len, &h);
	assert_int_equal(h.version, 2);
	assert_false(h.local);
	assert_addr6(&h.src, "2001:db8::1", 1);
	assert_addr6(&h.dst, "2001:db8::2", 65535);

	len = make_v2(msg, 0x21, 0x21, v2_addr6, sizeof(v2_addr6));
	check_ok(msg, len);
	parse_ok(msg, len, &h);
	assert_addr6(&h.src, "2001:db8::1", 1);
	assert_addr6(&h.dst, "2001:db8::2", 65535);
}

/* LOCAL: the balancer's own connection. Its family is ignored, its length
 * is still honoured. */
static void
test_v2_local(void **state)
{
	static const uint8_t fams[] = { 0x00, 0x11, 0x12, 0x21, 0x31, 0xFF };
	uint8_t msg[64];
	struct proxy_header h;
	size_t len;

	(void)state;
	len = make_v2(msg, 0x20, 0x00, NULL, 0);
	check_ok(msg, len);
	parse_ok(msg, len, &h);
	assert_int_equal(h.version, 2);
	assert_true(h.local);
	for (size_t i = 0; i < sizeof(fams); i++) {
		len = make_v2(msg, 0x20, fams[i], v2_addr4, sizeof(v2_addr4));
		check_ok(msg, len);
		parse_ok(msg, len, &h);
		assert_true(h.local);
	}
}

static void
test_v2_unspec(void **state)
{
	uint8_t msg[64];
	struct proxy_header h;
	size_t len;

	(void)state;
	len = make_v2(msg, 0x21, 0x00, NULL, 0);
	check_ok(msg, len);
	parse_ok(msg, len, &h);
	assert_true(h.local);
	len = make_v2(msg, 0x21, 0x00, v2_addr6, 7);
	check_ok(msg, len);
	parse_ok(msg, len, &h);
	assert_true(h.local);
}

static void
test_v2_bad_signature(void **state)
{
	uint8_t msg[64];
	size_t len;

	(void)state;
	len = make_v2(msg, 0x21, 0x11, v2_addr4, 12);
	for (size_t i = 0; i < 12; i++) {
		msg[i] ^= 0x20;
		check_prefixes(msg, len, i + 1, PROXY_BAD);
		msg[i] ^= 0x20;
	}
	check_ok(msg, len);
}

static void
test_v2_bad_version_command(void **state)
{
	static const uint8_t bad[] = { 0x01, 0x11, 0x31, 0xF1, 0x22, 0x2F };
	uint8_t msg[64];
	size_t len;

	(void)state;
	for (size_t i = 0; i < sizeof(bad); i++) {
		len = make_v2(msg, bad[i], 0x11, v2_addr4, 12);
		check_prefixes(msg, len, 13, PROXY_BAD);
	}
}

/* With PROXY, only TCP over IPv4 or IPv6, or UNSPEC. */
static void
test_v2_bad_family(void **state)
{
	static const uint8_t bad[] = { 0x01, 0x10, 0x12, 0x20, 0x22, 0x31,
	    0x32, 0x41 };
	uint8_t msg[64];
	size_t len;

	(void)state;
	for (size_t i = 0; i < sizeof(bad); i++) {
		len = make_v2(msg, 0x21, bad[i], v2_addr6, 36);
		check_prefixes(msg, len, 14, PROXY_BAD);
	}
}

/* The length must cover the family's address block, decided at byte 16. */
static void
test_v2_short_length(void **state)
{
	uint8_t msg[64];
	size_t len;

	(void)state;
	len = make_v2(msg, 0x21, 0x11, v2_addr4, 11);
	check_prefixes(msg, len, 16, PROXY_BAD);
	len = make_v2(msg, 0x21, 0x21, v2_addr6, 35);
	check_prefixes(msg, len, 16, PROXY_BAD);
	len = make_v2(msg, 0x21, 0x11, NULL, 0);
	check_prefixes(msg, len, 16, PROXY_BAD);
	/* An IPv4 block is too short for IPv6, whatever it holds. */
	len = make_v2(msg, 0x21, 0x21, v2_addr4, 12);
	check_prefixes(msg, len, 16, PROXY_BAD);
}

static void
test_v2_size_bound(void **state)
{
	uint8_t msg[PROXY_HEADER_MAX + 1], tlv[PROXY_HEADER_MAX];
	struct proxy_header h;
	size_t len;

	(void)state;
	memset(tlv, 0, sizeof(tlv));
	memcpy(tlv, v2_addr4, 12);
	/* 16 + 1008 = PROXY_HEADER_MAX: accepted. */
	len = make_v2(msg, 0x21, 0x11, tlv, PROXY_HEADER_MAX - 16);
	assert_int_equal(len, PROXY_HEADER_MAX);
	check_ok(msg, len);
	parse_ok(msg, len, &h);
	assert_addr4(&h.src, "192.0.2.1", 56068);
	/* One more byte: refused as soon as the length is in. */
	len = make_v2(msg, 0x21, 0x11, tlv, PROXY_HEADER_MAX - 15);
	check_prefixes(msg, len, 16, PROXY_BAD);
	len = make_v2(msg, 0x20, 0x00, tlv, 0);
	msg[14] = 0xFF;
	msg[15] = 0xFF;
	check_prefixes(msg, len, 16, PROXY_BAD);
}

/* ---- encoders ---- */

static void
check_roundtrip(const union sockaddr_any *s, const union sockaddr_any *d)
{
	uint8_t out[PROXY_HEADER_MAX];
	struct proxy_header h;
	size_t len;
	socklen_t alen = s->sa.sa_family == AF_INET ?
	    sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);

	len = proxy_header_encode_v1(out, &s->sa, &d->sa);
	assert_true(len <= PROXY_V1_MAX);
	check_ok(out, len);
	parse_ok(out, len, &h);
	assert_int_equal(h.version, 1);
	assert_false(h.local);
	assert_memory_equal(&h.src, s, alen);
	assert_memory_equal(&h.dst, d, alen);

	len = proxy_header_encode_v2(out, &s->sa, &d->sa);
	check_ok(out, len);
	parse_ok(out, len, &h);
	assert_int_equal(h.version, 2);
	assert_false(h.local);
	assert_memory_equal(&h.src, s, alen);
	assert_memory_equal(&h.dst, d, alen);
}

static void
test_encode_v1_text(void **state)
{
	union sockaddr_any s, d;
	uint8_t out[PROXY_HEADER_MAX];
	size_t len;

	(void)state;
	make_v4(&s, "192.168.0.1", 56324);
	make_v4(&d, "192.168.0.11", 443);
	len = proxy_header_encode_v1(out, &s.sa, &d.sa);
	assert_int_equal(len, strlen(
	    "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"));
	assert_memory_equal(out,
	    "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", len);

	make_v6(&s, "2001:db8::1", 0);
	make_v6(&d, "::1", 65535);
	len = proxy_header_encode_v1(out, &s.sa, &d.sa);
	assert_int_equal(len, strlen("PROXY TCP6 2001:db8::1 ::1 0 65535\r\n"));
	assert_memory_equal(out, "PROXY TCP6 2001:db8::1 ::1 0 65535\r\n",
	    len);
}

static void
test_encode_v2_bytes(void **state)
{
	union sockaddr_any s, d;
	uint8_t out[PROXY_HEADER_MAX], want[64];
	size_t len;

	(void)state;
	make_v4(&s, "192.0.2.1", 56068);
	make_v4(&d, "198.51.100.2", 443);
	len = proxy_header_encode_v2(out, &s.sa, &d.sa);
	assert_int_equal(len, make_v2(want, 0x21, 0x11, v2_addr4, 12));
	assert_memory_equal(out, want, len);

	make_v6(&s, "2001:db8::1", 1);
	make_v6(&d, "2001:db8::2", 65535);
	len = proxy_header_encode_v2(out, &s.sa, &d.sa);
	assert_int_equal(len, make_v2(want, 0x21, 0x21, v2_addr6, 36));
	assert_memory_equal(out, want, len);
}

static void
test_encode_roundtrip(void **state)
{
	union sockaddr_any s, d;

	(void)state;
	make_v4(&s, "0.0.0.0", 0);
	make_v4(&d, "255.255.255.255", 65535);
	check_roundtrip(&s, &d);
	make_v6(&s, "::", 0);
	make_v6(&d, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
	check_roundtrip(&s, &d);
	make_v6(&s, "::ffff:192.0.2.1", 1234);
	make_v6(&d, "fe80::1", 80);
	check_roundtrip(&s, &d);
}

/* Nothing to say: UNKNOWN and UNSPEC, which parse back as local. */
static void
test_encode_no_addresses(void **state)
{
	union sockaddr_any s, d;
	struct sockaddr_un sun;
	uint8_t out[PROXY_HEADER_MAX], want[16];
	struct proxy_header h;
	size_t len;

	(void)state;
	make_v4(&s, "192.0.2.1", 1);
	make_v6(&d, "2001:db8::1", 2);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;

	len = proxy_header_encode_v1(out, &s.sa, &d.sa);
	assert_int_equal(len, strlen("PROXY UNKNOWN\r\n"));
	assert_memory_equal(out, "PROXY UNKNOWN\r\n", len);
	parse_ok(out, len, &h);
	assert_true(h.local);
	len = proxy_header_encode_v1(out, NULL, &d.sa);
	assert_memory_equal(out, "PROXY UNKNOWN\r\n", len);
	len = proxy_header_encode_v1(out, (struct sockaddr *)&sun,
	    (struct sockaddr *)&sun);
	assert_memory_equal(out, "PROXY UNKNOWN\r\n", len);

	len = proxy_header_encode_v2(out, &s.sa, &d.sa);
	assert_int_equal(len, make_v2(want, 0x21, 0x00, NULL, 0));
	assert_memory_equal(out, want, len);
	parse_ok(out, len, &h);
	assert_true(h.local);
	assert_int_equal(proxy_header_encode_v2(out, &s.sa, NULL), 16);
	assert_memory_equal(out, want, 16);
	assert_int_equal(proxy_header_encode_v2(out, (struct sockaddr *)&sun,
	    (struct sockaddr *)&sun), 16);
	assert_memory_equal(out, want, 16);
}

static void
test_empty(void **state)
{
	struct proxy_header h;
	size_t consumed;
	uint8_t b = 0;

	(void)state;
	assert_int_equal(proxy_header_parse(&b, 0, &h, &consumed),
	    PROXY_INCOMPLETE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_v1_tcp4),
		cmocka_unit_test(test_v1_tcp6),
		cmocka_unit_test(test_v1_tcp6_longest),
		cmocka_unit_test(test_v1_unknown),
		cmocka_unit_test(test_v1_bad_keyword),
		cmocka_unit_test(test_v1_bad_spacing),
		cmocka_unit_test(test_v1_bad_address),
		cmocka_unit_test(test_v1_bad_port),
		cmocka_unit_test(test_v1_bad_line_end),
		cmocka_unit_test(test_v1_too_long),
		cmocka_unit_test(test_v2_tcp4),
		cmocka_unit_test(test_v2_tcp6),
		cmocka_unit_test(test_v2_local),
		cmocka_unit_test(test_v2_unspec),
		cmocka_unit_test(test_v2_bad_signature),
		cmocka_unit_test(test_v2_bad_version_command),
		cmocka_unit_test(test_v2_bad_family),
		cmocka_unit_test(test_v2_short_length),
		cmocka_unit_test(test_v2_size_bound),
		cmocka_unit_test(test_encode_v1_text),
		cmocka_unit_test(test_encode_v2_bytes),
		cmocka_unit_test(test_encode_roundtrip),
		cmocka_unit_test(test_encode_no_addresses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
