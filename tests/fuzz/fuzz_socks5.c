/*
 * libFuzzer target: the SOCKS5 codec fed one client byte stream in
 * arbitrary splits, the way the handshake consumes it (greeting, RFC 1929
 * credentials when 0x02 is offered, request), plus the reply encoders.
 *
 * Input: byte 0 is the number of split points (low 4 bits), then that many
 * chunk sizes (1-256 bytes each), then the stream. Whatever the chunks do
 * not cover arrives in one last chunk.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "socks5d/socks5.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum phase { PH_GREETING, PH_AUTH, PH_REQUEST, PH_DONE };

/* One parse call of the given phase, with its result summarised. */
struct verdict {
	enum socks5_status st;
	size_t consumed;
	int offers_password;
};

static struct verdict
parse_phase(enum phase ph, const uint8_t *buf, size_t len)
{
	struct verdict v = { SOCKS5_INCOMPLETE, 0, 0 };
	struct socks5_greeting g;
	struct socks5_credentials c;
	struct socks5_request r;
	char text[SOCKS5_ADDR_STRLEN];

	switch (ph) {
	case PH_GREETING:
		v.st = socks5_parse_greeting(buf, len, &g, &v.consumed);
		if (v.st == SOCKS5_OK) {
			if (g.nmethods == 0 || g.nmethods != buf[1] ||
			    g.methods != buf + 2 || v.consumed != 2u + g.nmethods)
				abort();
			v.offers_password = socks5_greeting_offers(&g,
			    SOCKS5_METHOD_PASSWORD);
			(void)socks5_greeting_offers(&g, SOCKS5_METHOD_NONE);
		}
		break;
	case PH_AUTH:
		v.st = socks5_parse_credentials(buf, len, &c, &v.consumed);
		if (v.st == SOCKS5_OK) {
			if (strlen(c.user) > c.ulen ||
			    strlen(c.password) > c.plen ||
			    v.consumed != 3u + c.ulen + c.plen)
				abort();
		}
		break;
	case PH_REQUEST:
		v.st = socks5_parse_request(buf, len, &r, &v.consumed);
		if (v.st == SOCKS5_OK) {
			if ((r.cmd < SOCKS5_CMD_CONNECT ||
			    r.cmd > SOCKS5_CMD_UDP) &&
			    r.cmd != SOCKS5_CMD_RESOLVE &&
			    r.cmd != SOCKS5_CMD_RESOLVE_PTR)
				abort();
			if (r.dst.atyp == SOCKS5_ATYP_NAME &&
			    (strlen(r.dst.u.name) == 0 ||
			    strlen(r.dst.u.name) != buf[4]))
				abort();
			if (r.dst.atyp != SOCKS5_ATYP_IPV4 &&
			    r.dst.atyp != SOCKS5_ATYP_IPV6 &&
			    r.dst.atyp != SOCKS5_ATYP_NAME)
				abort();
			socks5_addr_format(&r.dst, text, sizeof(text));
			if (strnlen(text, sizeof(text)) >= sizeof(text))
				abort();
		}
		break;
	case PH_DONE:
		break;
	}
	if (v.st == SOCKS5_OK && (v.consumed == 0 || v.consumed > len))
		abort();
	if (v.st != SOCKS5_OK && v.st != SOCKS5_INCOMPLETE)
		(void)socks5_status_reply(v.st);
	return v;
}

static size_t
phase_max(enum phase ph)
{
	switch (ph) {
	case PH_GREETING:
		return SOCKS5_GREETING_MAX;
	case PH_AUTH:
		return SOCKS5_AUTH_MAX;
	default:
		return SOCKS5_REQUEST_MAX;
	}
}

/*
 * Every prefix of the message at the start of rest, each in a buffer that
 * ends exactly where the prefix does (so ASan sees any over-read): once one
 * is not INCOMPLETE, every longer one must give the same verdict. Returns
 * the verdict for the whole of rest.
 */
static struct verdict
check_prefixes(enum phase ph, const uint8_t *rest, size_t restlen)
{
	size_t max = phase_max(ph), n = restlen < max ? restlen : max;
	uint8_t *tmp = malloc(n ? n : 1);
	struct verdict first = { SOCKS5_INCOMPLETE, 0, 0 }, v, full;
	size_t l;

	if (tmp == NULL)
		abort();
	for (l = 0; l <= n; l++) {
		memcpy(tmp + n - l, rest, l);
		v = parse_phase(ph, tmp + n - l, l);
		if (first.st == SOCKS5_INCOMPLETE)
			first = v;
		else if (v.st != first.st || v.consumed != first.consumed ||
		    v.offers_password != first.offers_password)
			abort();
	}
	free(tmp);
	full = parse_phase(ph, rest, restlen);
	if (first.st != SOCKS5_INCOMPLETE &&
	    (full.st != first.st || full.consumed != first.consumed))
		abort();
	/* A message no longer than its maximum never needs more bytes. */
	if (restlen >= max && full.st == SOCKS5_INCOMPLETE)
		abort();
	return full;
}

/* Build addresses from the input and check the encoders round-trip. */
static void
check_encoders(const uint8_t *d, size_t n)
{
	uint8_t raw[19] = { 0 }, out[SOCKS5_REPLY_MAX + 8];
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	struct socks5_udp_header h;
	size_t len, used;

	memcpy(raw, d, n < sizeof(raw) ? n : sizeof(raw));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	memcpy(&sin.sin_addr, raw + 1, 4);
	memcpy(&sin.sin_port, raw + 17, 2);
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	memcpy(&sin6.sin6_addr, raw + 1, 16);
	memcpy(&sin6.sin6_port, raw + 17, 2);

	len = socks5_encode_reply(out, raw[0], NULL);
	if (len != 10 || out[0] != SOCKS5_VERSION || out[1] != raw[0])
		abort();
	len = socks5_encode_reply(out, raw[0], (struct sockaddr *)&sin);
	if (len != 10 || out[1] != raw[0] || out[3] != SOCKS5_ATYP_IPV4 ||
	    memcmp(out + 4, raw + 1, 4) != 0 || memcmp(out + 8, raw + 17, 2))
		abort();
	len = socks5_encode_reply(out, raw[0], (struct sockaddr *)&sin6);
	if (len != (IN6_IS_ADDR_V4MAPPED(&sin6.sin6_addr) ? 10u : 22u) ||
	    len > SOCKS5_REPLY_MAX)
		abort();

	len = socks5_encode_udp_header(out, (struct sockaddr *)&sin6);
	if (len > SOCKS5_REPLY_MAX ||
	    socks5_parse_udp_header(out, len, &h, &used) != SOCKS5_OK ||
	    used != len || h.dst.port != ((unsigned)raw[17] << 8 | raw[18]))
		abort();
	if (h.dst.atyp == SOCKS5_ATYP_IPV6 ?
	    memcmp(h.dst.u.ipv6, raw + 1, 16) != 0 :
	    memcmp(h.dst.u.ipv4, raw + 13, 4) != 0)
		abort();
	len = socks5_encode_udp_header(out, (struct sockaddr *)&sin);
	if (len != 10 ||
	    socks5_parse_udp_header(out, len, &h, &used) != SOCKS5_OK ||
	    used != len || memcmp(h.dst.u.ipv4, raw + 1, 4) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *stream;
	size_t nsplit, slen, delivered = 0, off = 0, i;
	uint8_t *buf = NULL, *nbuf;
	enum phase ph = PH_GREETING;
	struct verdict ref, v;

	if (size < 1)
		return 0;
	nsplit = data[0] & 0x0f;
	if (size < 1 + nsplit)
		return 0;
	stream = data + 1 + nsplit;
	slen = size - 1 - nsplit;

	check_encoders(stream, slen);

	/* The verdict for the current phase on all of the remaining stream. */
	ref = check_prefixes(ph, stream, slen);

	for (i = 0; delivered < slen && ph != PH_DONE; i++) {
		size_t chunk = i < nsplit ? (size_t)data[1 + i] + 1 :
		    slen - delivered;

		if (chunk > slen - delivered)
			chunk = slen - delivered;
		/* A growing buffer holding exactly what has arrived. */
		nbuf = realloc(buf, delivered + chunk);
		if (nbuf == NULL)
			abort();
		buf = nbuf;
		memcpy(buf + delivered, stream + delivered, chunk);
		delivered += chunk;

		while (ph != PH_DONE) {
			v = parse_phase(ph, buf + off, delivered - off);
			if (v.st == SOCKS5_INCOMPLETE) {
				/* Only the full stream may be short too. */
				if (ref.st != SOCKS5_INCOMPLETE &&
				    delivered == slen)
					abort();
				break;
			}
			if (v.st != ref.st || v.consumed != ref.consumed)
				abort();
			if (v.st != SOCKS5_OK) {
				ph = PH_DONE;      /* the daemon replies, closes */
				break;
			}
			off += v.consumed;
			if (ph == PH_GREETING)
				ph = v.offers_password ? PH_AUTH : PH_REQUEST;
			else if (ph == PH_AUTH)
				ph = PH_REQUEST;
			else
				ph = PH_DONE;
			if (ph != PH_DONE)
				ref = check_prefixes(ph, stream + off,
				    slen - off);
		}
	}
	free(buf);
	return 0;
}
