/*
 * CIDR sets: each network becomes an inclusive span of addresses taken as
 * numbers (IPv6 as 128-bit integers, so ranges compare with < and merge
 * with +1); finishing sorts and merges them, and a look-up is one binary
 * search.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "socks5d/addr.h"
#include "socks5d/cidr.h"
#include "socks5d/span.h"

SPAN_FUNCS(cidr_span4, struct cidr_span4, uint32_t)
SPAN_FUNCS(cidr_span6, struct cidr_span6, cidr_u128)

static cidr_u128
cidr_u128_of(const uint8_t bytes[16])
{
	cidr_u128 x = 0;

	for (int i = 0; i < 16; i++)
		x = x << 8 | bytes[i];
	return x;
}

static uint32_t
cidr_u32_of(const uint8_t bytes[4])
{
	return (uint32_t)bytes[0] << 24 | (uint32_t)bytes[1] << 16 |
	    (uint32_t)bytes[2] << 8 | bytes[3];
}

/*
 * hosts: only the addresses a host may use as its own. An IPv4 network
 * of more than two addresses loses its network and broadcast addresses,
 * an IPv6 one of more than two its first (the subnet-router anycast).
 */
static int
cidr_add4(struct cidr_set *c, uint32_t addr, unsigned prefix, bool hosts)
{
	uint32_t mask = prefix == 0 ? 0 : UINT32_MAX << (32 - prefix);
	uint32_t lo = addr & mask, hi = (addr & mask) | ~mask;

	if (hosts && prefix < 31) {
		lo++;
		hi--;
	}
	return cidr_span4_push(&c->v4, &c->n4, &c->cap4, lo, hi);
}

static int
cidr_add6(struct cidr_set *c, cidr_u128 addr, unsigned prefix, bool hosts)
{
	cidr_u128 mask = prefix == 0 ? 0 : ~(cidr_u128)0 << (128 - prefix);
	cidr_u128 lo = addr & mask;

	if (hosts && prefix < 127)
		lo++;
	return cidr_span6_push(&c->v6, &c->n6, &c->cap6, lo,
	    (addr & mask) | ~mask);
}

void
cidr_set_release(struct cidr_set *c)
{
	free(c->v4);
	free(c->v6);
	memset(c, 0, sizeof(*c));
}

/* IPv4-mapped IPv6 becomes IPv4, as look-ups do. */
static int
cidr_set_add_text(struct cidr_set *c, const char *text, bool hosts)
{
	const char *slash = strchr(text, '/');
	size_t alen = slash != NULL ? (size_t)(slash - text) : strlen(text);
	const char *bits = slash != NULL ? slash + 1 : NULL;
	unsigned prefix;
	struct in_addr a4;
	struct in6_addr a6;
	char addr[INET6_ADDRSTRLEN];
	int rc;

	if (alen >= sizeof(addr))
		return -1;
	memcpy(addr, text, alen);
	addr[alen] = '\0';
	if (inet_pton(AF_INET, addr, &a4) == 1) {
		prefix = 32;
		if (bits != NULL &&
		    span_number(bits, strlen(bits), 32, &prefix) == -1)
			return -1;
		rc = cidr_add4(c, ntohl(a4.s_addr), prefix, hosts);
	} else if (inet_pton(AF_INET6, addr, &a6) == 1) {
		prefix = 128;
		if (bits != NULL &&
		    span_number(bits, strlen(bits), 128, &prefix) == -1)
			return -1;
		if (IN6_IS_ADDR_V4MAPPED(&a6) && prefix >= 96)
			rc = cidr_add4(c, cidr_u32_of(a6.s6_addr + 12),
			    prefix - 96, hosts);
		else
			rc = cidr_add6(c, cidr_u128_of(a6.s6_addr), prefix,
			    hosts);
	} else {
		return -1;
	}
	return rc == -1 ? -2 : 0;
}

int
cidr_set_add(struct cidr_set *c, const char *text)
{
	return cidr_set_add_text(c, text, false);
}

int
cidr_set_add_hosts(struct cidr_set *c, const char *text)
{
	return cidr_set_add_text(c, text, true);
}

void
cidr_set_finish(struct cidr_set *c)
{
	c->n4 = cidr_span4_merge(c->v4, c->n4);
	c->n6 = cidr_span6_merge(c->v6, c->n6);
}

bool
cidr_set_has(const struct cidr_set *c, const struct sockaddr *sa)
{
	union sockaddr_any a;

	addr_normalize(sa, &a);
	if (a.sa.sa_family == AF_INET)
		return cidr_span4_has(c->v4, c->n4,
		    ntohl(a.in.sin_addr.s_addr));
	if (a.sa.sa_family == AF_INET6)
		return cidr_span6_has(c->v6, c->n6,
		    cidr_u128_of(a.in6.sin6_addr.s6_addr));
	return false;
}

bool
cidr_set_empty(const struct cidr_set *c)
{
	return c->n4 == 0 && c->n6 == 0;
}

bool
cidr_set_covers_a_family(const struct cidr_set *c)
{
	return (c->n4 > 0 && c->v4[0].lo == 0 && c->v4[0].hi == UINT32_MAX) ||
	    (c->n6 > 0 && c->v6[0].lo == 0 && c->v6[0].hi == ~(cidr_u128)0);
}

cidr_u128
cidr_set_count(const struct cidr_set *c, int family)
{
	cidr_u128 n = 0;
	size_t i;

	if (family == AF_INET) {
		for (i = 0; i < c->n4; i++)
			n += (cidr_u128)(c->v4[i].hi - c->v4[i].lo) + 1;
		return n;
	}
	for (i = 0; i < c->n6; i++) {
		cidr_u128 span = c->v6[i].hi - c->v6[i].lo;

		/* ::/0 holds one more than a u128 counts: saturate. */
		if (span == ~(cidr_u128)0 || n + span + 1 < n)
			return ~(cidr_u128)0;
		n += span + 1;
	}
	return n;
}

bool
cidr_set_nth(const struct cidr_set *c, int family, cidr_u128 nth,
    union sockaddr_any *out)
{
	size_t i;

	memset(out, 0, sizeof(*out));
	if (family == AF_INET) {
		for (i = 0; i < c->n4; i++) {
			cidr_u128 span = (cidr_u128)(c->v4[i].hi - c->v4[i].lo);

			if (nth <= span) {
				out->in.sin_family = AF_INET;
				out->in.sin_addr.s_addr =
				    htonl(c->v4[i].lo + (uint32_t)nth);
				return true;
			}
			nth -= span + 1;
		}
		return false;
	}
	for (i = 0; i < c->n6; i++) {
		cidr_u128 span = c->v6[i].hi - c->v6[i].lo;

		if (nth <= span) {
			cidr_u128 x = c->v6[i].lo + nth;

			out->in6.sin6_family = AF_INET6;
			for (int b = 15; b >= 0; b--, x >>= 8)
				out->in6.sin6_addr.s6_addr[b] = (uint8_t)x;
			return true;
		}
		nth -= span + 1;
	}
	return false;
}
