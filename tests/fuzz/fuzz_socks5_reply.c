/*
 * libFuzzer target: the SOCKS5 client side (src/socks5.c) fed one upstream
 * server's byte stream, the way a chained session reads it: the method
 * choice, the RFC 1929 status when the server chose username/password,
 * then the reply, with the relayed stream behind it. Each parser is also
 * run on every prefix of the whole input (fuzz_prefixes.h). The client
 * encoders are run on values taken from the input and read back by the
 * server-side parsers.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "socks5d/socks5.h"

#include "fuzz_prefixes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct fuzz_verdict
parse_method_checked(const uint8_t *buf, size_t len)
{
	struct fuzz_verdict v = { SOCKS5_INCOMPLETE, 0 };
	uint8_t method;

	v.st = socks5_parse_method_choice(buf, len, &method, &v.consumed);
	if (v.st == SOCKS5_OK && (v.consumed != 2 || len < 2 ||
	    buf[0] != SOCKS5_VERSION || method != buf[1]))
		abort();
	if (v.st != SOCKS5_OK && v.st != SOCKS5_INCOMPLETE &&
	    v.st != SOCKS5_BAD_VERSION)
		abort();
	return v;
}

static struct fuzz_verdict
parse_auth_checked(const uint8_t *buf, size_t len)
{
	struct fuzz_verdict v = { SOCKS5_INCOMPLETE, 0 };
	uint8_t status;

	v.st = socks5_parse_auth_reply(buf, len, &status, &v.consumed);
	if (v.st == SOCKS5_OK && (v.consumed != 2 || len < 2 ||
	    buf[0] != SOCKS5_AUTH_VERSION || status != buf[1]))
		abort();
	if (v.st != SOCKS5_OK && v.st != SOCKS5_INCOMPLETE &&
	    v.st != SOCKS5_BAD_VERSION)
		abort();
	return v;
}

/* The length a reply must have, from its ATYP (and name length) alone. */
static size_t
reply_length(const uint8_t *buf)
{
	switch (buf[3]) {
	case SOCKS5_ATYP_IPV4:
		return 10;
	case SOCKS5_ATYP_IPV6:
		return 22;
	case SOCKS5_ATYP_NAME:
		return 7u + buf[4];
	default:
		abort();
	}
}

/* A parsed BND goes back out as a request's DST: the same bytes. */
static void
check_bnd_reencodes(const uint8_t *buf, const struct socks5_reply *r,
    size_t consumed)
{
	uint8_t out[SOCKS5_REQUEST_MAX];
	struct socks5_request req;
	size_t n, used;

	n = socks5_encode_request(out, SOCKS5_CMD_CONNECT, &r->bnd);
	if (n != consumed || memcmp(out + 3, buf + 3, n - 3) != 0)
		abort();
	if (socks5_parse_request(out, n, &req, &used) != SOCKS5_OK ||
	    used != n || req.dst.port != r->bnd.port)
		abort();
}

static struct fuzz_verdict
parse_reply_checked(const uint8_t *buf, size_t len)
{
	struct fuzz_verdict v = { SOCKS5_INCOMPLETE, 0 };
	struct socks5_reply r;
	char text[SOCKS5_ADDR_STRLEN];

	v.st = socks5_parse_reply(buf, len, &r, &v.consumed);
	switch (v.st) {
	case SOCKS5_OK:
		if (v.consumed > len || v.consumed > SOCKS5_NAME_REPLY_MAX ||
		    buf[0] != SOCKS5_VERSION || r.rep != buf[1] ||
		    r.bnd.atyp != buf[3] || v.consumed != reply_length(buf))
			abort();
		if (r.bnd.port != ((unsigned)buf[v.consumed - 2] << 8 |
		    buf[v.consumed - 1]))
			abort();
		if (r.bnd.atyp == SOCKS5_ATYP_NAME &&
		    (buf[4] == 0 || strlen(r.bnd.u.name) != buf[4]))
			abort();
		check_bnd_reencodes(buf, &r, v.consumed);
		socks5_addr_format(&r.bnd, text, sizeof(text));
		if (strnlen(text, sizeof(text)) >= sizeof(text))
			abort();
		break;
	case SOCKS5_INCOMPLETE:
		if (len >= SOCKS5_NAME_REPLY_MAX)
			abort();
		break;
	case SOCKS5_BAD_VERSION:
	case SOCKS5_BAD_ATYP:
	case SOCKS5_BAD_NAME:
		break;
	default:
		abort();        /* not a status a reply can give */
	}
	return v;
}

/*
 * The stream as a chained session consumes it: each message starts where
 * the one before ended, and nothing past the reply is taken.
 */
static void
check_stream(const uint8_t *data, size_t size)
{
	struct fuzz_verdict v;
	size_t off;

	v = parse_method_checked(data, size);
	if (v.st != SOCKS5_OK)
		return;
	off = v.consumed;
	if (data[1] == SOCKS5_METHOD_PASSWORD) {
		fuzz_check_prefixes(parse_auth_checked, data + off, size - off,
		    2, SOCKS5_INCOMPLETE);
		v = parse_auth_checked(data + off, size - off);
		if (v.st != SOCKS5_OK || data[off + 1] != SOCKS5_AUTH_OK)
			return;
		off += v.consumed;
	} else if (data[1] != SOCKS5_METHOD_NONE) {
		return;         /* nothing we offered: the session ends */
	}
	fuzz_check_prefixes(parse_reply_checked, data + off, size - off,
	    SOCKS5_NAME_REPLY_MAX, SOCKS5_INCOMPLETE);
	v = parse_reply_checked(data + off, size - off);
	if (v.st == SOCKS5_OK && off + v.consumed > size)
		abort();
}

/* The next NUL-terminated field of the input, at most max bytes. */
static size_t
next_field(const uint8_t *d, size_t n, size_t *pos, char *field, size_t max)
{
	size_t len = 0;

	while (*pos < n && d[*pos] != 0 && len < max)
		field[len++] = (char)d[(*pos)++];
	field[len] = '\0';
	if (*pos < n)
		(*pos)++;
	return len;
}

/* Greeting and credentials from the input, read back by the server side. */
static void
check_encoders(const uint8_t *d, size_t n)
{
	char user[SOCKS5_NAME_MAX + 2], password[SOCKS5_NAME_MAX + 2];
	uint8_t out[SOCKS5_AUTH_MAX];
	struct socks5_greeting g;
	struct socks5_credentials c;
	size_t len, used, ulen, plen, pos = 0;
	bool with_password = n > 0 && (d[0] & 1);

	len = socks5_encode_greeting(out, with_password);
	if (len > SOCKS5_CLIENT_GREETING_MAX ||
	    socks5_parse_greeting(out, len, &g, &used) != SOCKS5_OK ||
	    used != len || !socks5_greeting_offers(&g, SOCKS5_METHOD_NONE) ||
	    socks5_greeting_offers(&g, SOCKS5_METHOD_PASSWORD) !=
	    with_password)
		abort();

	ulen = next_field(d, n, &pos, user, SOCKS5_NAME_MAX + 1);
	plen = next_field(d, n, &pos, password, SOCKS5_NAME_MAX + 1);
	len = socks5_encode_credentials(out, user, password);
	if (ulen == 0 || ulen > SOCKS5_NAME_MAX || plen == 0 ||
	    plen > SOCKS5_NAME_MAX) {
		if (len != 0)
			abort();
		return;
	}
	if (len != 3 + ulen + plen ||
	    socks5_parse_credentials(out, len, &c, &used) != SOCKS5_OK ||
	    used != len || strcmp(c.user, user) != 0 ||
	    strcmp(c.password, password) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_check_prefixes(parse_method_checked, data, size, 2,
	    SOCKS5_INCOMPLETE);
	fuzz_check_prefixes(parse_auth_checked, data, size, 2,
	    SOCKS5_INCOMPLETE);
	fuzz_check_prefixes(parse_reply_checked, data, size,
	    SOCKS5_NAME_REPLY_MAX, SOCKS5_INCOMPLETE);
	check_stream(data, size);
	check_encoders(data, size);
	return 0;
}
