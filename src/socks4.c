/*
 * The SOCKS4 and SOCKS4a wire format: parsing a request out of a byte-stream
 * prefix and encoding the reply. Pure functions only.
 */
#include <netinet/in.h>
#include <string.h>

#include "socks5d/socks4.h"

/*
 * Find the NUL ending a string that starts at p with avail bytes in, allowed
 * max bytes before its NUL. Returns 1 and sets *slen when found, 0 when more
 * bytes may still bring it, -1 when it cannot be within the bound.
 */
static int
socks4_find_nul(const uint8_t *p, size_t avail, size_t max, size_t *slen)
{
	const uint8_t *nul;

	nul = memchr(p, '\0', avail < max + 1 ? avail : max + 1);
	if (nul != NULL) {
		*slen = (size_t)(nul - p);
		return 1;
	}
	return avail > max ? -1 : 0;
}

enum socks4_status
socks4_parse_request(const uint8_t *buf, size_t len,
    struct socks4_request *out, size_t *consumed)
{
	size_t ulen, nlen = 0, off;
	int found, is4a;

	if (len < 1)
		return SOCKS4_INCOMPLETE;
	if (buf[0] != SOCKS4_VERSION)
		return SOCKS4_BAD_VERSION;
	if (len < 8)
		return SOCKS4_INCOMPLETE;
	if (buf[1] != SOCKS4_CMD_CONNECT && buf[1] != SOCKS4_CMD_BIND)
		return SOCKS4_BAD_COMMAND;

	/* USERID is unbounded on the wire; bound it so a client cannot make
	 * us wait, buffering, for a NUL that never comes. */
	found = socks4_find_nul(buf + 8, len - 8, SOCKS4_USERID_MAX, &ulen);
	if (found < 0)
		return SOCKS4_TOO_LONG;
	if (found == 0)
		return SOCKS4_INCOMPLETE;
	off = 8 + ulen + 1;

	/* 4a: DSTIP 0.0.0.x, x != 0, is an address no client can mean, so it
	 * announces that a host name follows USERID. */
	is4a = buf[4] == 0 && buf[5] == 0 && buf[6] == 0 && buf[7] != 0;
	if (is4a) {
		found = socks4_find_nul(buf + off, len - off, SOCKS4_NAME_MAX,
		    &nlen);
		if (found < 0)
			return SOCKS4_BAD_NAME;
		if (found == 0)
			return SOCKS4_INCOMPLETE;
		if (nlen == 0)
			return SOCKS4_BAD_NAME;
	}

	out->cmd = buf[1];
	memcpy(out->userid, buf + 8, ulen);
	out->userid[ulen] = '\0';
	out->dst.port = (uint16_t)(buf[2] << 8 | buf[3]);
	if (is4a) {
		out->dst.atyp = SOCKS5_ATYP_NAME;
		memcpy(out->dst.u.name, buf + off, nlen);
		out->dst.u.name[nlen] = '\0';
		off += nlen + 1;
	} else {
		out->dst.atyp = SOCKS5_ATYP_IPV4;
		memcpy(out->dst.u.ipv4, buf + 4, 4);
	}
	*consumed = off;
	return SOCKS4_OK;
}

/*
 * The sockaddr is copied rather than cast: the caller's pointer may only be
 * aligned for struct sockaddr.
 */
size_t
socks4_encode_reply(uint8_t *out, uint8_t rep, const struct sockaddr *bnd)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;

	/* VN is 0 in replies, not 4. */
	out[0] = 0;
	out[1] = rep;
	memset(out + 2, 0, 6);
	if (bnd != NULL && bnd->sa_family == AF_INET) {
		memcpy(&sin, bnd, sizeof(sin));
		memcpy(out + 2, &sin.sin_port, 2);
		memcpy(out + 4, &sin.sin_addr, 4);
	} else if (bnd != NULL && bnd->sa_family == AF_INET6) {
		memcpy(&sin6, bnd, sizeof(sin6));
		memcpy(out + 2, &sin6.sin6_port, 2);
		/* Dual-stack sockets report IPv4 peers as mapped addresses;
		 * a real IPv6 address cannot be said, so the IP stays zero
		 * and only the port is of use to the client. */
		if (IN6_IS_ADDR_V4MAPPED(&sin6.sin6_addr))
			memcpy(out + 4, sin6.sin6_addr.s6_addr + 12, 4);
	}
	return SOCKS4_REPLY_LEN;
}
