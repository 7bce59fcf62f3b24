/*
 * libFuzzer target: socks4_parse_request on every prefix of the input, the
 * way a request arrives split across reads, plus the reply encoder on
 * addresses built from the input.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "socks5d/socks4.h"

#include "fuzz_prefixes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One parse, with the invariants of an OK result checked against buf. */
static struct fuzz_verdict
parse_checked(const uint8_t *buf, size_t len)
{
	struct socks4_request r;
	struct fuzz_verdict v = { SOCKS4_INCOMPLETE, 0 };
	size_t ulen, nlen, want;
	int is4a;

	v.st = socks4_parse_request(buf, len, &r, &v.consumed);
	switch (v.st) {
	case SOCKS4_OK:
		if (v.consumed < 9 || v.consumed > len ||
		    v.consumed > SOCKS4_REQUEST_MAX)
			abort();
		if (buf[0] != SOCKS4_VERSION ||
		    (r.cmd != SOCKS4_CMD_CONNECT && r.cmd != SOCKS4_CMD_BIND) ||
		    r.cmd != buf[1])
			abort();
		if (r.dst.port != ((unsigned)buf[2] << 8 | buf[3]))
			abort();
		ulen = strlen(r.userid);
		if (ulen > SOCKS4_USERID_MAX ||
		    memcmp(r.userid, buf + 8, ulen + 1) != 0)
			abort();
		want = 8 + ulen + 1;
		is4a = buf[4] == 0 && buf[5] == 0 && buf[6] == 0 && buf[7] != 0;
		if (is4a) {
			if (r.dst.atyp != SOCKS5_ATYP_NAME)
				abort();
			nlen = strlen(r.dst.u.name);
			if (nlen == 0 || nlen > SOCKS4_NAME_MAX ||
			    memcmp(r.dst.u.name, buf + want, nlen + 1) != 0)
				abort();
			want += nlen + 1;
		} else if (r.dst.atyp != SOCKS5_ATYP_IPV4 ||
		    memcmp(r.dst.u.ipv4, buf + 4, 4) != 0)
			abort();
		if (v.consumed != want)
			abort();
		break;
	case SOCKS4_INCOMPLETE:
		if (len >= SOCKS4_REQUEST_MAX)
			abort();
		break;
	case SOCKS4_BAD_VERSION:
	case SOCKS4_BAD_COMMAND:
	case SOCKS4_BAD_NAME:
	case SOCKS4_TOO_LONG:
		break;
	default:
		abort();
	}
	return v;
}

static void
check_prefixes(const uint8_t *data, size_t size)
{
	fuzz_check_prefixes(parse_checked, data, size, SOCKS4_REQUEST_MAX, SOCKS4_INCOMPLETE);
}

static void
check_reply(const uint8_t *d, size_t n)
{
	uint8_t raw[19] = { 0 }, out[SOCKS4_REPLY_LEN + 1];
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;

	memcpy(raw, d, n < sizeof(raw) ? n : sizeof(raw));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	memcpy(&sin.sin_addr, raw + 1, 4);
	memcpy(&sin.sin_port, raw + 17, 2);
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	memcpy(&sin6.sin6_addr, raw + 1, 16);
	memcpy(&sin6.sin6_port, raw + 17, 2);

	out[SOCKS4_REPLY_LEN] = 0xEE;
	if (socks4_encode_reply(out, raw[0], NULL) != SOCKS4_REPLY_LEN ||
	    out[0] != 0 || out[1] != raw[0] || out[2] | out[3] | out[4] |
	    out[5] | out[6] | out[7])
		abort();
	if (socks4_encode_reply(out, raw[0], (struct sockaddr *)&sin) !=
	    SOCKS4_REPLY_LEN || out[0] != 0 || out[1] != raw[0] ||
	    memcmp(out + 2, raw + 17, 2) != 0 || memcmp(out + 4, raw + 1, 4))
		abort();
	if (socks4_encode_reply(out, raw[0], (struct sockaddr *)&sin6) !=
	    SOCKS4_REPLY_LEN || out[0] != 0 || out[1] != raw[0] ||
	    memcmp(out + 2, raw + 17, 2) != 0)
		abort();
	if (IN6_IS_ADDR_V4MAPPED(&sin6.sin6_addr) ?
	    memcmp(out + 4, raw + 13, 4) != 0 :
	    (out[4] | out[5] | out[6] | out[7]) != 0)
		abort();
	if (out[SOCKS4_REPLY_LEN] != 0xEE)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_prefixes(data, size);
	check_reply(data, size);
	return 0;
}
