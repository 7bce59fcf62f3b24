/*
 * The PROXY protocol header, versions 1 (text) and 2 (binary): parsing it
 * from a connection's first bytes, however they were split, and encoding
 * it for the tools. Pure functions only.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "socks5d/proxy_header.h"

/* v2: the signature, then ver_cmd, family and a 2-byte length. */
static const uint8_t proxy_v2_sig[12] = {
	0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A
};
#define PROXY_V2_VERSION        0x20
#define PROXY_V2_CMD_LOCAL      0x00
#define PROXY_V2_CMD_PROXY      0x01
#define PROXY_V2_FAM_UNSPEC     0x00
#define PROXY_V2_FAM_TCP4       0x11
#define PROXY_V2_FAM_TCP6       0x21
#define PROXY_V2_ADDR_LEN4      12      /* two addresses, two ports */
#define PROXY_V2_ADDR_LEN6      36

/* Longest IPv6 literal inet_pton takes: "ffff:...:ffff:255.255.255.255". */
#define PROXY_V1_ADDR_MAX       (INET6_ADDRSTRLEN - 1)
#define PROXY_V1_ADDR4_MAX      (INET_ADDRSTRLEN - 1)

/* Where a v1 parse has got to in the line. */
struct proxy_v1_cursor {
	const uint8_t *buf;
	size_t len;             /* never more than PROXY_V1_MAX */
	size_t pos;
};

static void
proxy_set_addr(union sockaddr_any *a, int family, const void *ip,
    uint16_t port)
{
	memset(a, 0, sizeof(*a));
	if (family == AF_INET) {
		a->in.sin_family = AF_INET;
		memcpy(&a->in.sin_addr, ip, 4);
		a->in.sin_port = htons(port);
	} else {
		a->in6.sin6_family = AF_INET6;
		memcpy(&a->in6.sin6_addr, ip, 16);
		a->in6.sin6_port = htons(port);
	}
}

/* Do the bytes at the cursor match lit, as far as they go? */
static enum proxy_status
proxy_v1_match(const struct proxy_v1_cursor *c, const char *lit)
{
	size_t i;

	for (i = 0; lit[i] != '\0'; i++) {
		if (c->pos + i >= c->len)
			return PROXY_INCOMPLETE;
		if (c->buf[c->pos + i] != (uint8_t)lit[i])
			return PROXY_BAD;
	}
	return PROXY_OK;
}

static enum proxy_status
proxy_v1_expect(struct proxy_v1_cursor *c, const char *lit)
{
	enum proxy_status st;

	if ((st = proxy_v1_match(c, lit)) == PROXY_OK)
		c->pos += strlen(lit);
	return st;
}

/*
 * Can an address that has not seen its terminating space yet still become
 * one inet_pton accepts? Only conditions that every longer text inherits
 * are checked, so a false here stays false and a true never hides a prefix
 * of a valid address: no prefix of a good header is ever called BAD.
 */
static bool
proxy_v1_addr_prefix_ok(int family, const uint8_t *p, size_t n)
{
	size_t i, run = 0, dots = 0, doubles = 0;
	unsigned value = 0;

	if (family == AF_INET) {
		/* Dotted quad, no leading zeros, as glibc's inet_pton wants. */
		for (i = 0; i < n; i++) {
			if (p[i] == '.') {
				if (run == 0 || ++dots > 3)
					return false;
				run = 0;
				value = 0;
			} else if (p[i] >= '0' && p[i] <= '9') {
				if (run > 0 && value == 0)
					return false;
				value = value * 10 + (unsigned)(p[i] - '0');
				if (value > 255)
					return false;
				run++;
			} else
				return false;
		}
		return true;
	}
	for (i = 0; i < n; i++) {
		if (p[i] == ':' || p[i] == '.') {
			/* One "::" at most, so ":::" is out too. */
			if (p[i] == ':' && i > 0 && p[i - 1] == ':' &&
			    ++doubles > 1)
				return false;
			run = 0;
		} else if ((p[i] >= '0' && p[i] <= '9') ||
		    (p[i] >= 'a' && p[i] <= 'f') ||
		    (p[i] >= 'A' && p[i] <= 'F')) {
			if (++run > 4)
				return false;
		} else
			return false;
	}
	return true;
}

/*
 * An address ended by a space. inet_pton has the last word, once the space
 * is in; until then the text only has to be able to become an address.
 */
static enum proxy_status
proxy_v1_addr(struct proxy_v1_cursor *c, int family, void *ip)
{
	const uint8_t *p = c->buf + c->pos, *sp;
	size_t avail = c->len - c->pos, max, n;
	char text[INET6_ADDRSTRLEN];

	max = family == AF_INET ? PROXY_V1_ADDR4_MAX : PROXY_V1_ADDR_MAX;
	sp = memchr(p, ' ', avail < max + 1 ? avail : max + 1);
	if (sp == NULL) {
		if (avail > max || !proxy_v1_addr_prefix_ok(family, p, avail))
			return PROXY_BAD;
		return PROXY_INCOMPLETE;
	}
	n = (size_t)(sp - p);
	/* The prefix check runs here too: it refuses a NUL, which would
	 * have inet_pton judge only the text before it. */
	if (n == 0 || !proxy_v1_addr_prefix_ok(family, p, n))
		return PROXY_BAD;
	memcpy(text, p, n);
	text[n] = '\0';
	if (inet_pton(family, text, ip) != 1)
		return PROXY_BAD;
	c->pos += n + 1;
	return PROXY_OK;
}

/* A decimal port 0-65535 without leading zeros, ended by term. */
static enum proxy_status
proxy_v1_port(struct proxy_v1_cursor *c, uint8_t term, uint16_t *port)
{
	size_t i;
	unsigned value = 0;
	uint8_t ch;

	for (i = c->pos; i < c->len; i++) {
		ch = c->buf[i];
		if (ch == term && i > c->pos) {
			*port = (uint16_t)value;
			c->pos = i + 1;
			return PROXY_OK;
		}
		/* "0" is a port, "08" is not: octal is not to be guessed. */
		if (ch < '0' || ch > '9' || (i > c->pos && value == 0))
			return PROXY_BAD;
		value = value * 10 + (unsigned)(ch - '0');
		if (value > 65535)
			return PROXY_BAD;
	}
	return PROXY_INCOMPLETE;
}

/*
 * "PROXY UNKNOWN" is followed by CRLF, or by a space and text to ignore up
 * to the CRLF. A lone CR or LF in that text is refused rather than skipped:
 * a sender that ends its line with one would otherwise have us take the
 * client's first bytes as part of the header.
 */
static enum proxy_status
proxy_v1_unknown(struct proxy_v1_cursor *c)
{
	size_t i;

	if (c->pos >= c->len)
		return PROXY_INCOMPLETE;
	if (c->buf[c->pos] == ' ') {
		for (i = c->pos + 1; i < c->len; i++)
			if (c->buf[i] == '\r' || c->buf[i] == '\n')
				break;
		c->pos = i;
	}
	return proxy_v1_expect(c, "\r\n");
}

static enum proxy_status
proxy_v1_line(struct proxy_v1_cursor *c, struct proxy_header *h)
{
	enum proxy_status st, st4, st6, stu;
	uint8_t sip[16], dip[16];
	uint16_t sport, dport;
	int family;

	if ((st = proxy_v1_expect(c, "PROXY ")) != PROXY_OK)
		return st;
	st4 = proxy_v1_match(c, "TCP4 ");
	st6 = proxy_v1_match(c, "TCP6 ");
	stu = proxy_v1_match(c, "UNKNOWN");
	if (stu == PROXY_OK) {
		c->pos += strlen("UNKNOWN");
		if ((st = proxy_v1_unknown(c)) != PROXY_OK)
			return st;
		h->local = true;
		return PROXY_OK;
	}
	if (st4 != PROXY_OK && st6 != PROXY_OK)
		return st4 == PROXY_BAD && st6 == PROXY_BAD &&
		    stu == PROXY_BAD ? PROXY_BAD : PROXY_INCOMPLETE;
	family = st4 == PROXY_OK ? AF_INET : AF_INET6;
	c->pos += strlen("TCP4 ");

	if ((st = proxy_v1_addr(c, family, sip)) != PROXY_OK ||
	    (st = proxy_v1_addr(c, family, dip)) != PROXY_OK ||
	    (st = proxy_v1_port(c, ' ', &sport)) != PROXY_OK ||
	    (st = proxy_v1_port(c, '\r', &dport)) != PROXY_OK ||
	    (st = proxy_v1_expect(c, "\n")) != PROXY_OK)
		return st;
	h->local = false;
	proxy_set_addr(&h->src, family, sip, sport);
	proxy_set_addr(&h->dst, family, dip, dport);
	return PROXY_OK;
}

static enum proxy_status
proxy_parse_v1(const uint8_t *buf, size_t len, struct proxy_header *out,
    size_t *consumed)
{
	struct proxy_v1_cursor c;
	struct proxy_header h;
	enum proxy_status st;

	/* Look no further than the longest line: a parse that runs out
	 * there has been given 107 bytes without the CRLF. */
	c.buf = buf;
	c.len = len < PROXY_V1_MAX ? len : PROXY_V1_MAX;
	c.pos = 0;
	memset(&h, 0, sizeof(h));
	h.version = 1;
	st = proxy_v1_line(&c, &h);
	if (st == PROXY_INCOMPLETE && len >= PROXY_V1_MAX)
		return PROXY_BAD;
	if (st != PROXY_OK)
		return st;
	*out = h;
	*consumed = c.pos;
	return PROXY_OK;
}

/*
 * Each field is judged as soon as its bytes are in, so a wrong signature
 * byte, version, command, family or length is BAD without waiting for the
 * rest of the header.
 */
static enum proxy_status
proxy_parse_v2(const uint8_t *buf, size_t len, struct proxy_header *out,
    size_t *consumed)
{
	struct proxy_header h;
	size_t total, need = 0;
	uint8_t cmd, fam = PROXY_V2_FAM_UNSPEC;

	if (memcmp(buf, proxy_v2_sig, len < sizeof(proxy_v2_sig) ? len :
	    sizeof(proxy_v2_sig)) != 0)
		return PROXY_BAD;
	if (len < 13)
		return PROXY_INCOMPLETE;
	if ((buf[12] & 0xF0) != PROXY_V2_VERSION)
		return PROXY_BAD;
	cmd = buf[12] & 0x0F;
	if (cmd != PROXY_V2_CMD_LOCAL && cmd != PROXY_V2_CMD_PROXY)
		return PROXY_BAD;
	if (len < 14)
		return PROXY_INCOMPLETE;
	/* LOCAL (a health check from the balancer itself) carries no
	 * addresses and the spec says to ignore its family. UDP and UNIX
	 * sources cannot be the peer of a TCP connection we accepted. */
	if (cmd == PROXY_V2_CMD_PROXY) {
		fam = buf[13];
		switch (fam) {
		case PROXY_V2_FAM_UNSPEC:
			break;
		case PROXY_V2_FAM_TCP4:
			need = PROXY_V2_ADDR_LEN4;
			break;
		case PROXY_V2_FAM_TCP6:
			need = PROXY_V2_ADDR_LEN6;
			break;
		default:
			return PROXY_BAD;
		}
	}
	if (len < PROXY_V2_HEADER_LEN)
		return PROXY_INCOMPLETE;
	total = PROXY_V2_HEADER_LEN + (size_t)(buf[14] << 8 | buf[15]);
	/* The header is held whole before it is parsed: bound it. */
	if (total > PROXY_HEADER_MAX || total < PROXY_V2_HEADER_LEN + need)
		return PROXY_BAD;
	if (len < total)
		return PROXY_INCOMPLETE;

	memset(&h, 0, sizeof(h));
	h.version = 2;
	h.local = need == 0;
	if (fam == PROXY_V2_FAM_TCP4) {
		proxy_set_addr(&h.src, AF_INET, buf + 16,
		    (uint16_t)(buf[24] << 8 | buf[25]));
		proxy_set_addr(&h.dst, AF_INET, buf + 20,
		    (uint16_t)(buf[26] << 8 | buf[27]));
	} else if (fam == PROXY_V2_FAM_TCP6) {
		proxy_set_addr(&h.src, AF_INET6, buf + 16,
		    (uint16_t)(buf[48] << 8 | buf[49]));
		proxy_set_addr(&h.dst, AF_INET6, buf + 32,
		    (uint16_t)(buf[50] << 8 | buf[51]));
	}
	/* What follows the addresses, up to total, is TLVs: skipped. */
	*out = h;
	*consumed = total;
	return PROXY_OK;
}

enum proxy_status
proxy_header_parse(const uint8_t *buf, size_t len, struct proxy_header *out,
    size_t *consumed)
{
	if (len < 1)
		return PROXY_INCOMPLETE;
	/* The first byte tells the versions apart: 'P' or CR. */
	if (buf[0] == 'P')
		return proxy_parse_v1(buf, len, out, consumed);
	if (buf[0] == proxy_v2_sig[0])
		return proxy_parse_v2(buf, len, out, consumed);
	return PROXY_BAD;
}

/*
 * The family both addresses share, AF_UNSPEC when they do not share one we
 * can write. The sockaddrs are copied out rather than cast: the caller's
 * pointers may only be aligned for struct sockaddr.
 */
static int
proxy_encode_family(const struct sockaddr *src, const struct sockaddr *dst,
    union sockaddr_any *s, union sockaddr_any *d)
{
	if (src == NULL || dst == NULL || src->sa_family != dst->sa_family)
		return AF_UNSPEC;
	if (src->sa_family == AF_INET) {
		memcpy(&s->in, src, sizeof(s->in));
		memcpy(&d->in, dst, sizeof(d->in));
		return AF_INET;
	}
	if (src->sa_family == AF_INET6) {
		memcpy(&s->in6, src, sizeof(s->in6));
		memcpy(&d->in6, dst, sizeof(d->in6));
		return AF_INET6;
	}
	return AF_UNSPEC;
}

size_t
proxy_header_encode_v1(uint8_t *out, const struct sockaddr *src,
    const struct sockaddr *dst)
{
	union sockaddr_any s, d;
	char stext[INET6_ADDRSTRLEN], dtext[INET6_ADDRSTRLEN];
	const void *sip = NULL, *dip = NULL;
	unsigned sport = 0, dport = 0;
	int family, n;

	family = proxy_encode_family(src, dst, &s, &d);
	if (family == AF_INET) {
		sip = &s.in.sin_addr;
		dip = &d.in.sin_addr;
		sport = ntohs(s.in.sin_port);
		dport = ntohs(d.in.sin_port);
	} else if (family == AF_INET6) {
		sip = &s.in6.sin6_addr;
		dip = &d.in6.sin6_addr;
		sport = ntohs(s.in6.sin6_port);
		dport = ntohs(d.in6.sin6_port);
	}
	if (family == AF_UNSPEC ||
	    inet_ntop(family, sip, stext, sizeof(stext)) == NULL ||
	    inet_ntop(family, dip, dtext, sizeof(dtext)) == NULL)
		n = snprintf((char *)out, PROXY_HEADER_MAX,
		    "PROXY UNKNOWN\r\n");
	else
		n = snprintf((char *)out, PROXY_HEADER_MAX,
		    "PROXY %s %s %s %u %u\r\n",
		    family == AF_INET ? "TCP4" : "TCP6", stext, dtext,
		    sport, dport);
	return n > 0 ? (size_t)n : 0;
}

size_t
proxy_header_encode_v2(uint8_t *out, const struct sockaddr *src,
    const struct sockaddr *dst)
{
	union sockaddr_any s, d;
	size_t alen = 0;
	int family;

	memcpy(out, proxy_v2_sig, sizeof(proxy_v2_sig));
	out[12] = PROXY_V2_VERSION | PROXY_V2_CMD_PROXY;
	out[13] = PROXY_V2_FAM_UNSPEC;
	family = proxy_encode_family(src, dst, &s, &d);
	if (family == AF_INET) {
		out[13] = PROXY_V2_FAM_TCP4;
		memcpy(out + 16, &s.in.sin_addr, 4);
		memcpy(out + 20, &d.in.sin_addr, 4);
		memcpy(out + 24, &s.in.sin_port, 2);
		memcpy(out + 26, &d.in.sin_port, 2);
		alen = PROXY_V2_ADDR_LEN4;
	} else if (family == AF_INET6) {
		out[13] = PROXY_V2_FAM_TCP6;
		memcpy(out + 16, &s.in6.sin6_addr, 16);
		memcpy(out + 32, &d.in6.sin6_addr, 16);
		memcpy(out + 48, &s.in6.sin6_port, 2);
		memcpy(out + 50, &d.in6.sin6_port, 2);
		alen = PROXY_V2_ADDR_LEN6;
	}
	out[14] = 0;
	out[15] = (uint8_t)alen;
	return PROXY_V2_HEADER_LEN + alen;
}
