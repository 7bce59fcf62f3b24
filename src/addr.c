/*
 * Socket address literals: parsing "host:port" and bare IPs (numeric only,
 * never a name lookup), formatting them for logs, and the loopback test the
 * config uses to refuse accidental open proxies.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "socks5d/addr.h"
#include "socks5d/socks5.h"
#include "socks5d/config.h"

/* A decimal port with no sign, spaces or junk; 0 only when allowed. */
static int
addr_parse_port(const char *text, bool allow_zero, uint16_t *port)
{
	unsigned long v = 0;
	const char *p;

	if (*text == '\0' || strlen(text) > 5)
		return -1;
	for (p = text; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	if (v > 65535 || (v == 0 && !allow_zero))
		return -1;
	*port = (uint16_t)v;
	return 0;
}

static void
addr_fill(struct sockaddr_storage *ss, socklen_t *len, int family,
    const void *ip, uint16_t port)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		memcpy(&sin->sin_addr, ip, sizeof(sin->sin_addr));
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		memcpy(&sin6->sin6_addr, ip, sizeof(sin6->sin6_addr));
	}
	if (len != NULL)
		*len = addr_len((struct sockaddr *)ss);
}

/* Copy [start, start+n) into a bounded buffer; -1 when it cannot fit. */
static int
addr_copy_host(char *dst, size_t dstlen, const char *start, size_t n)
{
	if (n == 0 || n >= dstlen)
		return -1;
	memcpy(dst, start, n);
	dst[n] = '\0';
	return 0;
}

int
addr_parse_hostport(const char *text, struct sockaddr_storage *ss,
    socklen_t *len, bool allow_port_zero)
{
	char host[INET6_ADDRSTRLEN];
	unsigned char ip[sizeof(struct in6_addr)];
	const char *colon, *end;
	uint16_t port;
	int family;

	if (text[0] == '[') {
		end = strchr(text, ']');
		if (end == NULL || end[1] != ':' ||
		    addr_copy_host(host, sizeof(host), text + 1,
		    (size_t)(end - text - 1)) == -1)
			return -1;
		family = AF_INET6;
		colon = end + 1;
	} else {
		colon = strchr(text, ':');
		/* A second colon means an unbracketed IPv6 address. */
		if (colon == NULL || strchr(colon + 1, ':') != NULL ||
		    addr_copy_host(host, sizeof(host), text,
		    (size_t)(colon - text)) == -1)
			return -1;
		family = AF_INET;
	}
	if (inet_pton(family, host, ip) != 1 ||
	    addr_parse_port(colon + 1, allow_port_zero, &port) == -1)
		return -1;
	addr_fill(ss, len, family, ip, port);
	return 0;
}

int
addr_parse_ip(const char *text, struct sockaddr_storage *ss, socklen_t *len)
{
	unsigned char ip[sizeof(struct in6_addr)];
	int family;

	family = strchr(text, ':') != NULL ? AF_INET6 : AF_INET;
	if (inet_pton(family, text, ip) != 1)
		return -1;
	addr_fill(ss, len, family, ip, 0);
	return 0;
}

void
addr_format(const struct sockaddr *sa, char *out, size_t outlen)
{
	char ip[INET6_ADDRSTRLEN];
	const struct sockaddr_in6 *sin6;
	const struct sockaddr_in *sin;

	if (outlen == 0)
		return;
	if (sa == NULL) {
		snprintf(out, outlen, "(none)");
		return;
	}
	switch (sa->sa_family) {
	case AF_INET:
		sin = (const struct sockaddr_in *)(const void *)sa;
		inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
		snprintf(out, outlen, "%s:%u", ip, addr_port(sa));
		break;
	case AF_INET6:
		sin6 = (const struct sockaddr_in6 *)(const void *)sa;
		/* Dual-stack sockets report IPv4 peers as mapped addresses;
		 * logs should show the address the peer actually used. */
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], ip,
			    sizeof(ip));
			snprintf(out, outlen, "%s:%u", ip, addr_port(sa));
		} else {
			inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
			snprintf(out, outlen, "[%s]:%u", ip, addr_port(sa));
		}
		break;
	default:
		snprintf(out, outlen, "(family %d)", sa->sa_family);
		break;
	}
}

unsigned
addr_port(const struct sockaddr *sa)
{
	switch (sa->sa_family) {
	case AF_INET:
		return ntohs(((const struct sockaddr_in *)(const void *)sa)
		    ->sin_port);
	case AF_INET6:
		return ntohs(((const struct sockaddr_in6 *)(const void *)sa)
		    ->sin6_port);
	default:
		return 0;
	}
}

socklen_t
addr_len(const struct sockaddr *sa)
{
	switch (sa->sa_family) {
	case AF_INET:
		return sizeof(struct sockaddr_in);
	case AF_INET6:
		return sizeof(struct sockaddr_in6);
	default:
		return 0;
	}
}

bool
config_addr_is_loopback(const struct sockaddr *sa)
{
	const struct sockaddr_in6 *sin6;
	const struct sockaddr_in *sin;

	switch (sa->sa_family) {
	case AF_INET:
		sin = (const struct sockaddr_in *)(const void *)sa;
		return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
	case AF_INET6:
		sin6 = (const struct sockaddr_in6 *)(const void *)sa;
		if (IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr))
			return true;
		return IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr) &&
		    sin6->sin6_addr.s6_addr[12] == 127;
	default:
		return false;
	}
}

void
addr_set_port(union sockaddr_any *a, uint16_t port)
{
	if (a->sa.sa_family == AF_INET)
		a->in.sin_port = htons(port);
	else if (a->sa.sa_family == AF_INET6)
		a->in6.sin6_port = htons(port);
}

bool
addr_same_ip(const union sockaddr_any *a, const union sockaddr_any *b)
{
	if (a->sa.sa_family != b->sa.sa_family)
		return false;
	if (a->sa.sa_family == AF_INET)
		return a->in.sin_addr.s_addr == b->in.sin_addr.s_addr;
	return IN6_ARE_ADDR_EQUAL(&a->in6.sin6_addr, &b->in6.sin6_addr);
}

void
addr_normalize(const struct sockaddr *sa, union sockaddr_any *out)
{
	union sockaddr_any copy;

	memset(&copy, 0, sizeof(copy));
	if (sa->sa_family == AF_INET)
		memcpy(&copy.in, sa, sizeof(copy.in));
	else if (sa->sa_family == AF_INET6)
		memcpy(&copy.in6, sa, sizeof(copy.in6));
	if (copy.sa.sa_family == AF_INET6 &&
	    IN6_IS_ADDR_V4MAPPED(&copy.in6.sin6_addr)) {
		struct sockaddr_in in;

		memset(&in, 0, sizeof(in));
		in.sin_family = AF_INET;
		in.sin_port = copy.in6.sin6_port;
		memcpy(&in.sin_addr, &copy.in6.sin6_addr.s6_addr[12], 4);
		memset(&copy, 0, sizeof(copy));
		copy.in = in;
	}
	*out = copy;
}

bool
addr_from_socks5(const struct socks5_addr *dst, union sockaddr_any *out)
{
	union sockaddr_any raw;

	memset(&raw, 0, sizeof(raw));
	if (dst->atyp == SOCKS5_ATYP_IPV4) {
		raw.in.sin_family = AF_INET;
		memcpy(&raw.in.sin_addr, dst->u.ipv4, 4);
	} else if (dst->atyp == SOCKS5_ATYP_IPV6) {
		raw.in6.sin6_family = AF_INET6;
		memcpy(&raw.in6.sin6_addr, dst->u.ipv6, 16);
	} else if (inet_pton(AF_INET, dst->u.name, &raw.in.sin_addr) == 1) {
		raw.in.sin_family = AF_INET;
	} else if (inet_pton(AF_INET6, dst->u.name, &raw.in6.sin6_addr) == 1) {
		raw.in6.sin6_family = AF_INET6;
	} else {
		return false;
	}
	addr_normalize(&raw.sa, out);
	addr_set_port(out, dst->port);
	return true;
}

void
addr_to_socks5(const union sockaddr_any *a, struct socks5_addr *out)
{
	union sockaddr_any n;

	addr_normalize(&a->sa, &n);
	memset(out, 0, sizeof(*out));
	out->port = addr_port(&n.sa);
	if (n.sa.sa_family == AF_INET) {
		out->atyp = SOCKS5_ATYP_IPV4;
		memcpy(out->u.ipv4, &n.in.sin_addr, 4);
	} else {
		out->atyp = SOCKS5_ATYP_IPV6;
		memcpy(out->u.ipv6, &n.in6.sin6_addr, 16);
	}
}

void
addr_format_ip(const struct sockaddr *sa, char *out, size_t outlen)
{
	union sockaddr_any a;

	addr_normalize(sa, &a);
	if (a.sa.sa_family == AF_INET)
		inet_ntop(AF_INET, &a.in.sin_addr, out, (socklen_t)outlen);
	else if (a.sa.sa_family == AF_INET6)
		inet_ntop(AF_INET6, &a.in6.sin6_addr, out, (socklen_t)outlen);
	else
		snprintf(out, outlen, "?");
}
