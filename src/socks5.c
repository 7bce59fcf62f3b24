/*
 * The SOCKS5 wire format (RFC 1928, RFC 1929): parsing client messages out of
 * a byte-stream prefix and encoding server replies, and for chaining, the
 * same for our side as a client of an upstream server. Pure functions only.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "socks5d/socks5.h"

/*
 * Parse ATYP DST.ADDR DST.PORT starting at p. The ATYP check comes before
 * the length check because an unknown type leaves no way to know how many
 * bytes to wait for. The name check waits for the whole address, so that
 * a request can still rank its own CMD check ahead of it.
 */
static enum socks5_status
socks5_parse_addr(const uint8_t *p, size_t len, struct socks5_addr *a,
    size_t *used)
{
	size_t alen, need;

	if (len < 1)
		return SOCKS5_INCOMPLETE;
	switch (p[0]) {
	case SOCKS5_ATYP_IPV4:
		alen = 4;
		break;
	case SOCKS5_ATYP_IPV6:
		alen = 16;
		break;
	case SOCKS5_ATYP_NAME:
		if (len < 2)
			return SOCKS5_INCOMPLETE;
		alen = 1 + (size_t)p[1];
		break;
	default:
		return SOCKS5_BAD_ATYP;
	}
	need = 1 + alen + 2;
	if (len < need)
		return SOCKS5_INCOMPLETE;

	if (p[0] == SOCKS5_ATYP_NAME) {
		size_t nlen = p[1];

		/* An embedded NUL would make the name we resolve differ from
		 * the name the client sent (and the one the ACL sees). */
		if (nlen == 0 || memchr(p + 2, '\0', nlen) != NULL)
			return SOCKS5_BAD_NAME;
		memcpy(a->u.name, p + 2, nlen);
		a->u.name[nlen] = '\0';
	} else {
		memcpy(p[0] == SOCKS5_ATYP_IPV4 ? a->u.ipv4 : a->u.ipv6, p + 1,
		    alen);
	}
	a->atyp = p[0];
	a->port = (uint16_t)(p[need - 2] << 8 | p[need - 1]);
	*used = need;
	return SOCKS5_OK;
}

enum socks5_status
socks5_parse_greeting(const uint8_t *buf, size_t len,
    struct socks5_greeting *out, size_t *consumed)
{
	if (len < 1)
		return SOCKS5_INCOMPLETE;
	if (buf[0] != SOCKS5_VERSION)
		return SOCKS5_BAD_VERSION;
	if (len < 2)
		return SOCKS5_INCOMPLETE;
	if (buf[1] == 0)
		return SOCKS5_NO_METHODS;
	if (len < 2 + (size_t)buf[1])
		return SOCKS5_INCOMPLETE;
	out->nmethods = buf[1];
	out->methods = buf + 2;
	*consumed = 2 + (size_t)buf[1];
	return SOCKS5_OK;
}

/*
 * Empty or NUL-containing fields parse fine: rejecting the syntax would drop
 * the stream out of sync, while a failed login answers and closes cleanly.
 * ulen and plen stay the wire lengths, so strlen(user) != ulen exposes a NUL.
 */
enum socks5_status
socks5_parse_credentials(const uint8_t *buf, size_t len,
    struct socks5_credentials *out, size_t *consumed)
{
	size_t ulen, plen;

	if (len < 1)
		return SOCKS5_INCOMPLETE;
	if (buf[0] != SOCKS5_AUTH_VERSION)
		return SOCKS5_BAD_VERSION;
	if (len < 2)
		return SOCKS5_INCOMPLETE;
	ulen = buf[1];
	if (len < 2 + ulen + 1)
		return SOCKS5_INCOMPLETE;
	plen = buf[2 + ulen];
	if (len < 3 + ulen + plen)
		return SOCKS5_INCOMPLETE;

	out->ulen = (uint8_t)ulen;
	out->plen = (uint8_t)plen;
	memcpy(out->user, buf + 2, ulen);
	out->user[ulen] = '\0';
	memcpy(out->password, buf + 3 + ulen, plen);
	out->password[plen] = '\0';
	*consumed = 3 + ulen + plen;
	return SOCKS5_OK;
}

enum socks5_status
socks5_parse_request(const uint8_t *buf, size_t len,
    struct socks5_request *out, size_t *consumed)
{
	enum socks5_status st;
	size_t used;

	if (len < 1)
		return SOCKS5_INCOMPLETE;
	if (buf[0] != SOCKS5_VERSION)
		return SOCKS5_BAD_VERSION;
	if (len < 4)
		return SOCKS5_INCOMPLETE;
	/* RSV (buf[2]) is deliberately not checked: be liberal. */
	st = socks5_parse_addr(buf + 3, len - 3, &out->dst, &used);
	if (st == SOCKS5_INCOMPLETE || st == SOCKS5_BAD_ATYP)
		return st;
	/* Only now, with the whole request read, so that the error reply and
	 * close leave no unread bytes behind to turn the close into a reset. */
	if (buf[1] != SOCKS5_CMD_CONNECT && buf[1] != SOCKS5_CMD_BIND &&
	    buf[1] != SOCKS5_CMD_UDP && buf[1] != SOCKS5_CMD_RESOLVE &&
	    buf[1] != SOCKS5_CMD_RESOLVE_PTR)
		return SOCKS5_BAD_COMMAND;
	if (st != SOCKS5_OK)
		return st;
	out->cmd = buf[1];
	*consumed = 3 + used;
	return SOCKS5_OK;
}

enum socks5_status
socks5_parse_udp_header(const uint8_t *buf, size_t len,
    struct socks5_udp_header *out, size_t *consumed)
{
	enum socks5_status st;
	size_t used;

	if (len < 2)
		return SOCKS5_INCOMPLETE;
	if (buf[0] != 0 || buf[1] != 0)
		return SOCKS5_BAD_RESERVED;
	if (len < 3)
		return SOCKS5_INCOMPLETE;
	if (buf[2] != 0)
		return SOCKS5_FRAGMENTED;
	st = socks5_parse_addr(buf + 3, len - 3, &out->dst, &used);
	if (st != SOCKS5_OK)
		return st;
	out->frag = buf[2];
	*consumed = 3 + used;
	return SOCKS5_OK;
}

int
socks5_greeting_offers(const struct socks5_greeting *g, uint8_t method)
{
	return memchr(g->methods, method, g->nmethods) != NULL;
}

uint8_t
socks5_status_reply(enum socks5_status status)
{
	switch (status) {
	case SOCKS5_BAD_COMMAND:
		return SOCKS5_REP_CMD_UNSUPPORTED;
	case SOCKS5_BAD_ATYP:
		return SOCKS5_REP_ATYP_UNSUPPORTED;
	case SOCKS5_BAD_NAME:
		return SOCKS5_REP_HOST_UNREACH;
	default:
		return SOCKS5_REP_FAILURE;
	}
}

/*
 * Write ATYP BND.ADDR BND.PORT for sa. IPv4-mapped IPv6 goes out as IPv4
 * because that is what the peer really is, and IPv4-only clients can use it.
 * The sockaddr is copied rather than cast: the caller's pointer may only be
 * aligned for struct sockaddr.
 */
static size_t
socks5_encode_addr(uint8_t *out, const struct sockaddr *sa)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;

	if (sa != NULL && sa->sa_family == AF_INET) {
		memcpy(&sin, sa, sizeof(sin));
		out[0] = SOCKS5_ATYP_IPV4;
		memcpy(out + 1, &sin.sin_addr, 4);
		memcpy(out + 5, &sin.sin_port, 2);
		return 7;
	}
	if (sa != NULL && sa->sa_family == AF_INET6) {
		memcpy(&sin6, sa, sizeof(sin6));
		if (IN6_IS_ADDR_V4MAPPED(&sin6.sin6_addr)) {
			out[0] = SOCKS5_ATYP_IPV4;
			memcpy(out + 1, sin6.sin6_addr.s6_addr + 12, 4);
			memcpy(out + 5, &sin6.sin6_port, 2);
			return 7;
		}
		out[0] = SOCKS5_ATYP_IPV6;
		memcpy(out + 1, &sin6.sin6_addr, 16);
		memcpy(out + 17, &sin6.sin6_port, 2);
		return 19;
	}
	out[0] = SOCKS5_ATYP_IPV4;
	memset(out + 1, 0, 6);
	return 7;
}

size_t
socks5_encode_reply(uint8_t *out, uint8_t rep, const struct sockaddr *bnd)
{
	out[0] = SOCKS5_VERSION;
	out[1] = rep;
	out[2] = 0;
	return 3 + socks5_encode_addr(out + 3, bnd);
}

size_t
socks5_encode_name_reply(uint8_t *out, const char *name, uint16_t port)
{
	size_t n = strnlen(name, SOCKS5_NAME_MAX);

	out[0] = SOCKS5_VERSION;
	out[1] = SOCKS5_REP_SUCCESS;
	out[2] = 0;
	out[3] = SOCKS5_ATYP_NAME;
	out[4] = (uint8_t)n;
	memcpy(out + 5, name, n);
	out[5 + n] = (uint8_t)(port >> 8);
	out[6 + n] = (uint8_t)(port & 0xFF);
	return 7 + n;
}

size_t
socks5_encode_udp_header(uint8_t *out, const struct sockaddr *src)
{
	out[0] = 0;
	out[1] = 0;
	out[2] = 0;
	return 3 + socks5_encode_addr(out + 3, src);
}

void
socks5_addr_format(const struct socks5_addr *a, char *out, size_t outlen)
{
	char ip[INET6_ADDRSTRLEN];

	switch (a->atyp) {
	case SOCKS5_ATYP_IPV4:
		if (inet_ntop(AF_INET, a->u.ipv4, ip, sizeof(ip)) == NULL)
			break;
		snprintf(out, outlen, "%s:%u", ip, (unsigned)a->port);
		return;
	case SOCKS5_ATYP_IPV6:
		if (inet_ntop(AF_INET6, a->u.ipv6, ip, sizeof(ip)) == NULL)
			break;
		snprintf(out, outlen, "[%s]:%u", ip, (unsigned)a->port);
		return;
	case SOCKS5_ATYP_NAME:
		/* Bounded, in case a caller built an unterminated name. */
		snprintf(out, outlen, "%.*s:%u", SOCKS5_NAME_MAX, a->u.name,
		    (unsigned)a->port);
		return;
	}
	snprintf(out, outlen, "?:%u", (unsigned)a->port);
}

/* ---- client side: talking to an upstream SOCKS5 server ---- */

size_t
socks5_encode_greeting(uint8_t *out, bool with_password)
{
	out[0] = SOCKS5_VERSION;
	out[1] = with_password ? 2 : 1;
	out[2] = SOCKS5_METHOD_NONE;
	if (!with_password)
		return 3;
	out[3] = SOCKS5_METHOD_PASSWORD;
	return 4;
}

/* The two-byte replies (method choice, RFC 1929 status): VER, then one
 * byte for the caller. VER is judged as soon as it arrives. */
static enum socks5_status
socks5_parse_pair(const uint8_t *buf, size_t len, uint8_t version,
    uint8_t *value, size_t *consumed)
{
	if (len < 1)
		return SOCKS5_INCOMPLETE;
	if (buf[0] != version)
		return SOCKS5_BAD_VERSION;
	if (len < 2)
		return SOCKS5_INCOMPLETE;
	*value = buf[1];
	*consumed = 2;
	return SOCKS5_OK;
}

enum socks5_status
socks5_parse_method_choice(const uint8_t *buf, size_t len, uint8_t *method,
    size_t *consumed)
{
	return socks5_parse_pair(buf, len, SOCKS5_VERSION, method, consumed);
}

/*
 * The server side accepts empty fields to stay in sync with a client; as
 * the client we refuse them instead, since no server can grant them and a
 * configuration that produces one is a mistake worth reporting.
 */
size_t
socks5_encode_credentials(uint8_t *out, const char *user, const char *password)
{
	size_t ulen = strnlen(user, SOCKS5_NAME_MAX + 1);
	size_t plen = strnlen(password, SOCKS5_NAME_MAX + 1);

	if (ulen == 0 || ulen > SOCKS5_NAME_MAX || plen == 0 ||
	    plen > SOCKS5_NAME_MAX)
		return 0;
	out[0] = SOCKS5_AUTH_VERSION;
	out[1] = (uint8_t)ulen;
	memcpy(out + 2, user, ulen);
	out[2 + ulen] = (uint8_t)plen;
	memcpy(out + 3 + ulen, password, plen);
	return 3 + ulen + plen;
}

enum socks5_status
socks5_parse_auth_reply(const uint8_t *buf, size_t len, uint8_t *auth_status,
    size_t *consumed)
{
	return socks5_parse_pair(buf, len, SOCKS5_AUTH_VERSION, auth_status,
	    consumed);
}

/* ATYP DST.ADDR DST.PORT for a; 0, with nothing written, when a holds no
 * valid destination. */
static size_t
socks5_encode_dst(uint8_t *out, const struct socks5_addr *a)
{
	size_t alen;

	switch (a->atyp) {
	case SOCKS5_ATYP_IPV4:
		alen = 4;
		memcpy(out + 1, a->u.ipv4, alen);
		break;
	case SOCKS5_ATYP_IPV6:
		alen = 16;
		memcpy(out + 1, a->u.ipv6, alen);
		break;
	case SOCKS5_ATYP_NAME:
		/* Bounded: a caller may have filled the name by hand. */
		alen = strnlen(a->u.name, sizeof(a->u.name));
		if (alen == 0 || alen > SOCKS5_NAME_MAX)
			return 0;
		out[1] = (uint8_t)alen;
		memcpy(out + 2, a->u.name, alen);
		alen++;
		break;
	default:
		return 0;
	}
	out[0] = a->atyp;
	out[1 + alen] = (uint8_t)(a->port >> 8);
	out[2 + alen] = (uint8_t)(a->port & 0xFF);
	return 3 + alen;
}

size_t
socks5_encode_request(uint8_t *out, uint8_t cmd, const struct socks5_addr *dst)
{
	size_t alen = socks5_encode_dst(out + 3, dst);

	if (alen == 0)
		return 0;
	out[0] = SOCKS5_VERSION;
	out[1] = cmd;
	out[2] = 0;
	return 3 + alen;
}

enum socks5_status
socks5_parse_reply(const uint8_t *buf, size_t len, struct socks5_reply *out,
    size_t *consumed)
{
	enum socks5_status st;
	size_t used;

	if (len < 1)
		return SOCKS5_INCOMPLETE;
	if (buf[0] != SOCKS5_VERSION)
		return SOCKS5_BAD_VERSION;
	if (len < 4)
		return SOCKS5_INCOMPLETE;
	/* RSV (buf[2]) is not checked: some servers put junk there, and
	 * ATYP still tells us exactly where the reply ends. */
	st = socks5_parse_addr(buf + 3, len - 3, &out->bnd, &used);
	if (st != SOCKS5_OK)
		return st;
	out->rep = buf[1];
	*consumed = 3 + used;
	return SOCKS5_OK;
}
