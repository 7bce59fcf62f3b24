/*
 * libFuzzer target: proxy_header_parse on every prefix of the input, the way
 * a connection's first bytes arrive split across reads, and the encoders
 * against the parser: whatever parses, re-encoded in either version, must
 * parse back to the same addresses.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "socks5d/proxy_header.h"

#include "fuzz_prefixes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const union sockaddr_any zero_addr;

/* Encode with both versions and parse back: the same addresses, or local
 * again when there were none. */
static void
check_reencode(const struct proxy_header *h)
{
	uint8_t out[PROXY_HEADER_MAX];
	const struct sockaddr *s = h->local ? NULL : &h->src.sa;
	const struct sockaddr *d = h->local ? NULL : &h->dst.sa;
	struct proxy_header back;
	size_t len, used;
	int v;

	for (v = 1; v <= 2; v++) {
		len = v == 1 ? proxy_header_encode_v1(out, s, d) :
		    proxy_header_encode_v2(out, s, d);
		if (len == 0 ||
		    len > (v == 1 ? PROXY_V1_MAX : PROXY_HEADER_MAX))
			abort();
		if (proxy_header_parse(out, len, &back, &used) != PROXY_OK ||
		    used != len || back.version != v || back.local != h->local)
			abort();
		if (!h->local &&
		    (memcmp(&back.src, &h->src, sizeof(back.src)) != 0 ||
		    memcmp(&back.dst, &h->dst, sizeof(back.dst)) != 0))
			abort();
	}
}

/* One parse, with the invariants of an OK result checked against buf. */
static struct fuzz_verdict
parse_checked(const uint8_t *buf, size_t len)
{
	struct proxy_header h;
	struct fuzz_verdict v = { PROXY_INCOMPLETE, 0 };

	v.st = proxy_header_parse(buf, len, &h, &v.consumed);
	switch (v.st) {
	case PROXY_OK:
		if (v.consumed > len || v.consumed > PROXY_HEADER_MAX)
			abort();
		if (h.version == 1) {
			if (buf[0] != 'P' || v.consumed > PROXY_V1_MAX ||
			    v.consumed < 15 || buf[v.consumed - 2] != '\r' ||
			    buf[v.consumed - 1] != '\n')
				abort();
		} else if (h.version == 2) {
			if (buf[0] != 0x0D ||
			    v.consumed < PROXY_V2_HEADER_LEN ||
			    v.consumed != PROXY_V2_HEADER_LEN +
			    ((size_t)buf[14] << 8 | buf[15]))
				abort();
		} else
			abort();
		if (h.local) {
			if (memcmp(&h.src, &zero_addr, sizeof(h.src)) != 0 ||
			    memcmp(&h.dst, &zero_addr, sizeof(h.dst)) != 0)
				abort();
		} else {
			if ((h.src.sa.sa_family != AF_INET &&
			    h.src.sa.sa_family != AF_INET6) ||
			    h.dst.sa.sa_family != h.src.sa.sa_family)
				abort();
			/* Addresses come only from TCP4/TCP6 or v2 PROXY. */
			if (h.version == 1 ? memcmp(buf, "PROXY TCP", 9) != 0 :
			    buf[12] != 0x21 ||
			    (buf[13] != 0x11 && buf[13] != 0x21))
				abort();
		}
		check_reencode(&h);
		break;
	case PROXY_INCOMPLETE:
		/* Neither version waits for more than the size bound. */
		if (len >= PROXY_HEADER_MAX ||
		    (len >= PROXY_V1_MAX && buf[0] == 'P'))
			abort();
		break;
	case PROXY_BAD:
		if (len == 0)
			abort();
		break;
	default:
		abort();
	}
	return v;
}

static void
check_prefixes(const uint8_t *data, size_t size)
{
	fuzz_check_prefixes(parse_checked, data, size, PROXY_HEADER_MAX, PROXY_INCOMPLETE);
}

/* Addresses straight from the input bytes, through both encoders. */
static void
check_encoders(const uint8_t *d, size_t n)
{
	uint8_t raw[1 + 2 * 18] = { 0 }, out[PROXY_HEADER_MAX];
	union sockaddr_any s, t, u;
	struct proxy_header h;
	size_t len, used;
	int family;

	memcpy(raw, d, n < sizeof(raw) ? n : sizeof(raw));
	family = raw[0] & 1 ? AF_INET6 : AF_INET;
	memset(&s, 0, sizeof(s));
	memset(&t, 0, sizeof(t));
	if (family == AF_INET) {
		s.in.sin_family = t.in.sin_family = AF_INET;
		memcpy(&s.in.sin_addr, raw + 1, 4);
		memcpy(&s.in.sin_port, raw + 17, 2);
		memcpy(&t.in.sin_addr, raw + 19, 4);
		memcpy(&t.in.sin_port, raw + 35, 2);
	} else {
		s.in6.sin6_family = t.in6.sin6_family = AF_INET6;
		memcpy(&s.in6.sin6_addr, raw + 1, 16);
		memcpy(&s.in6.sin6_port, raw + 17, 2);
		memcpy(&t.in6.sin6_addr, raw + 19, 16);
		memcpy(&t.in6.sin6_port, raw + 35, 2);
	}
	memset(&h, 0, sizeof(h));
	h.src = s;
	h.dst = t;
	check_reencode(&h);
	/* Mixed families have nothing to say: local. */
	u = t;
	u.sa.sa_family = family == AF_INET ? AF_INET6 : AF_INET;
	len = proxy_header_encode_v1(out, &s.sa, &u.sa);
	if (proxy_header_parse(out, len, &h, &used) != PROXY_OK || !h.local ||
	    h.version != 1 || used != len)
		abort();
	len = proxy_header_encode_v2(out, &s.sa, &u.sa);
	if (proxy_header_parse(out, len, &h, &used) != PROXY_OK || !h.local ||
	    h.version != 2 || used != len)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_prefixes(data, size);
	check_encoders(data, size);
	return 0;
}
