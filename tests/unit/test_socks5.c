/*
 * Unit tests for the SOCKS5 wire format (src/socks5.c): every message type,
 * every truncation point, every invalid field, and the reply encodings;
 * then the client side used to chain through an upstream server.
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

#include "socks5d/socks5.h"

#include "prefixes.h"

/* One output slot per message type, so the parsers share a signature. */
struct any_out {
	struct socks5_greeting g;
	struct socks5_credentials c;
	struct socks5_request r;
	struct socks5_udp_header u;
	struct socks5_reply rp;
	uint8_t byte;
};

typedef prefix_parse_fn *parse_fn;

static int
parse_greeting(const uint8_t *b, size_t n, size_t *c)
{
	struct any_out o;

	return socks5_parse_greeting(b, n, &o.g, c);
}

static int
parse_credentials(const uint8_t *b, size_t n, size_t *c)
{
	struct any_out o;

	return socks5_parse_credentials(b, n, &o.c, c);
}

static int
parse_request(const uint8_t *b, size_t n, size_t *c)
{
	struct any_out o;

	return socks5_parse_request(b, n, &o.r, c);
}

static int
parse_udp(const uint8_t *b, size_t n, size_t *c)
{
	struct any_out o;

	return socks5_parse_udp_header(b, n, &o.u, c);
}

static int
parse_method_choice(const uint8_t *b, size_t n, size_t *c)
{
	struct any_out o;

	return socks5_parse_method_choice(b, n, &o.byte, c);
}

static int
parse_auth_reply(const uint8_t *b, size_t n, size_t *c)
{
	struct any_out o;

	return socks5_parse_auth_reply(b, n, &o.byte, c);
}

static int
parse_reply(const uint8_t *b, size_t n, size_t *c)
{
	struct any_out o;

	return socks5_parse_reply(b, n, &o.rp, c);
}

/* Every prefix, then the message with trailing bytes behind it; see
 * prefixes.h. */
static void
check_prefixes(parse_fn fn, const uint8_t *msg, size_t len, size_t at,
    enum socks5_status want)
{
	static const uint8_t after[3] = { 0x05, 0x05, 0x05 };

	check_every_prefix(fn, (struct prefix_codes){ SOCKS5_INCOMPLETE,
	    SOCKS5_OK }, msg, len, at, want, after, sizeof(after));
}

static void
check_ok(parse_fn fn, const uint8_t *msg, size_t len)
{
	check_prefixes(fn, msg, len, len, SOCKS5_OK);
}

/* ---- greeting ---- */

static void
test_greeting_ok(void **state)
{
	static const uint8_t msg[] = { 5, 2, 0x00, 0x02, 0xAA };
	struct socks5_greeting g;
	size_t consumed = 0;

	(void)state;
	assert_int_equal(socks5_parse_greeting(msg, sizeof(msg), &g, &consumed),
	    SOCKS5_OK);
	assert_int_equal(consumed, 4);
	assert_int_equal(g.nmethods, 2);
	assert_ptr_equal(g.methods, msg + 2);
}

static void
test_greeting_prefixes(void **state)
{
	static const uint8_t one[] = { 5, 1, 0x00 };
	uint8_t full[2 + 255];

	(void)state;
	check_ok(parse_greeting, one, sizeof(one));
	full[0] = 5;
	full[1] = 255;
	for (int i = 0; i < 255; i++)
		full[2 + i] = (uint8_t)i;
	check_ok(parse_greeting, full, sizeof(full));
}

static void
test_greeting_bad_version(void **state)
{
	static const uint8_t vers[] = { 0, 1, 4, 6, 0xFF };
	uint8_t msg[] = { 0, 1, 0x00 };

	(void)state;
	for (size_t i = 0; i < sizeof(vers); i++) {
		msg[0] = vers[i];
		check_prefixes(parse_greeting, msg, sizeof(msg), 1,
		    SOCKS5_BAD_VERSION);
	}
}

static void
test_greeting_no_methods(void **state)
{
	static const uint8_t msg[] = { 5, 0, 0x00, 0x02 };

	(void)state;
	check_prefixes(parse_greeting, msg, sizeof(msg), 2, SOCKS5_NO_METHODS);
}

static void
test_greeting_offers(void **state)
{
	static const uint8_t methods[] = { 0x01, 0x02, 0x80 };
	struct socks5_greeting g = { .nmethods = 3, .methods = methods };
	struct socks5_greeting g1 = { .nmethods = 1, .methods = methods };

	(void)state;
	assert_true(socks5_greeting_offers(&g, SOCKS5_METHOD_PASSWORD));
	assert_true(socks5_greeting_offers(&g, 0x80));
	assert_false(socks5_greeting_offers(&g, SOCKS5_METHOD_NONE));
	assert_false(socks5_greeting_offers(&g, SOCKS5_METHOD_REJECT));
	/* Only the first nmethods bytes count. */
	assert_false(socks5_greeting_offers(&g1, SOCKS5_METHOD_PASSWORD));
	assert_true(socks5_greeting_offers(&g1, 0x01));
}

/* ---- credentials (RFC 1929) ---- */

static void
test_credentials_ok(void **state)
{
	static const uint8_t msg[] = { 1, 4, 'u', 's', 'e', 'r',
	    6, 's', 'e', 'c', 'r', 'e', 't', 0xEE };
	struct socks5_credentials c;
	size_t consumed = 0;

	(void)state;
	memset(&c, 0x55, sizeof(c));
	assert_int_equal(socks5_parse_credentials(msg, sizeof(msg), &c,
	    &consumed), SOCKS5_OK);
	assert_int_equal(consumed, sizeof(msg) - 1);
	assert_int_equal(c.ulen, 4);
	assert_int_equal(c.plen, 6);
	assert_string_equal(c.user, "user");
	assert_string_equal(c.password, "secret");
	check_ok(parse_credentials, msg, sizeof(msg) - 1);
}

static void
test_credentials_max(void **state)
{
	uint8_t msg[SOCKS5_AUTH_MAX];
	struct socks5_credentials c;
	size_t consumed = 0;

	(void)state;
	msg[0] = 1;
	msg[1] = 255;
	memset(msg + 2, 'u', 255);
	msg[257] = 255;
	memset(msg + 258, 'p', 255);
	check_ok(parse_credentials, msg, sizeof(msg));
	assert_int_equal(socks5_parse_credentials(msg, sizeof(msg), &c,
	    &consumed), SOCKS5_OK);
	assert_int_equal(consumed, SOCKS5_AUTH_MAX);
	assert_int_equal(strlen(c.user), 255);
	assert_int_equal(strlen(c.password), 255);
	assert_int_equal(c.user[0], 'u');
	assert_int_equal(c.password[254], 'p');
}

static void
test_credentials_bad_version(void **state)
{
	static const uint8_t vers[] = { 0, 2, 5, 0xFF };
	uint8_t msg[] = { 0, 1, 'a', 1, 'b' };

	(void)state;
	for (size_t i = 0; i < sizeof(vers); i++) {
		msg[0] = vers[i];
		check_prefixes(parse_credentials, msg, sizeof(msg), 1,
		    SOCKS5_BAD_VERSION);
	}
}

/* Empty fields are valid syntax; the login fails later, in sync. */
static void
test_credentials_empty(void **state)
{
	static const uint8_t both[] = { 1, 0, 0 };
	static const uint8_t nouser[] = { 1, 0, 2, 'p', 'w' };
	static const uint8_t nopass[] = { 1, 2, 'u', 'n', 0 };
	struct socks5_credentials c;
	size_t consumed;

	(void)state;
	check_ok(parse_credentials, both, sizeof(both));
	check_ok(parse_credentials, nouser, sizeof(nouser));
	check_ok(parse_credentials, nopass, sizeof(nopass));

	memset(&c, 0x55, sizeof(c));
	assert_int_equal(socks5_parse_credentials(both, sizeof(both), &c,
	    &consumed), SOCKS5_OK);
	assert_int_equal(consumed, 3);
	assert_int_equal(c.ulen, 0);
	assert_int_equal(c.plen, 0);
	assert_string_equal(c.user, "");
	assert_string_equal(c.password, "");

	assert_int_equal(socks5_parse_credentials(nouser, sizeof(nouser), &c,
	    &consumed), SOCKS5_OK);
	assert_string_equal(c.user, "");
	assert_string_equal(c.password, "pw");

	assert_int_equal(socks5_parse_credentials(nopass, sizeof(nopass), &c,
	    &consumed), SOCKS5_OK);
	assert_string_equal(c.user, "un");
	assert_string_equal(c.password, "");
}

/* A NUL parses, but the wire lengths survive so the caller can spot it. */
static void
test_credentials_nul(void **state)
{
	static const uint8_t msg[] = { 1, 3, 'a', 0, 'b', 2, 0, 'x' };
	struct socks5_credentials c;
	size_t consumed;

	(void)state;
	check_ok(parse_credentials, msg, sizeof(msg));
	assert_int_equal(socks5_parse_credentials(msg, sizeof(msg), &c,
	    &consumed), SOCKS5_OK);
	assert_int_equal(c.ulen, 3);
	assert_int_equal(c.plen, 2);
	assert_int_not_equal(strlen(c.user), c.ulen);
	assert_int_not_equal(strlen(c.password), c.plen);
	assert_memory_equal(c.user, "a\0b", 4);
	assert_memory_equal(c.password, "\0x", 3);
}

/* ---- request ---- */

static const uint8_t req_v4[] = { 5, 1, 0, 1, 192, 0, 2, 1, 0x01, 0xBB };
static const uint8_t req_v6[] = { 5, 1, 0, 4,
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x00, 0x50 };
static const uint8_t req_name[] = { 5, 1, 0, 3, 11,
    'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'c', 'o', 'm', 0xFF, 0xFF };

static void
test_request_ipv4(void **state)
{
	static const uint8_t ip[] = { 192, 0, 2, 1 };
	struct socks5_request r;
	size_t consumed = 0;

	(void)state;
	assert_int_equal(socks5_parse_request(req_v4, sizeof(req_v4), &r,
	    &consumed), SOCKS5_OK);
	assert_int_equal(consumed, 10);
	assert_int_equal(r.cmd, SOCKS5_CMD_CONNECT);
	assert_int_equal(r.dst.atyp, SOCKS5_ATYP_IPV4);
	assert_memory_equal(r.dst.u.ipv4, ip, 4);
	assert_int_equal(r.dst.port, 443);
}

static void
test_request_ipv6(void **state)
{
	struct socks5_request r;
	size_t consumed = 0;

	(void)state;
	assert_int_equal(socks5_parse_request(req_v6, sizeof(req_v6), &r,
	    &consumed), SOCKS5_OK);
	assert_int_equal(consumed, 22);
	assert_int_equal(r.dst.atyp, SOCKS5_ATYP_IPV6);
	assert_memory_equal(r.dst.u.ipv6, req_v6 + 4, 16);
	assert_int_equal(r.dst.port, 80);
}

static void
test_request_name(void **state)
{
	struct socks5_request r;
	size_t consumed = 0;

	(void)state;
	memset(&r, 0x55, sizeof(r));
	assert_int_equal(socks5_parse_request(req_name, sizeof(req_name), &r,
	    &consumed), SOCKS5_OK);
	assert_int_equal(consumed, sizeof(req_name));
	assert_int_equal(r.dst.atyp, SOCKS5_ATYP_NAME);
	assert_string_equal(r.dst.u.name, "example.com");
	assert_int_equal(r.dst.port, 65535);
}

static void
test_request_name_max(void **state)
{
	uint8_t msg[SOCKS5_REQUEST_MAX];
	struct socks5_request r;
	size_t consumed = 0;

	(void)state;
	msg[0] = 5;
	msg[1] = SOCKS5_CMD_CONNECT;
	msg[2] = 0;
	msg[3] = SOCKS5_ATYP_NAME;
	msg[4] = 255;
	memset(msg + 5, 'a', 255);
	msg[260] = 0;
	msg[261] = 1;
	check_ok(parse_request, msg, sizeof(msg));
	assert_int_equal(socks5_parse_request(msg, sizeof(msg), &r, &consumed),
	    SOCKS5_OK);
	assert_int_equal(consumed, SOCKS5_REQUEST_MAX);
	assert_int_equal(strlen(r.dst.u.name), 255);
	assert_int_equal(r.dst.port, 1);
}

static void
test_request_commands(void **state)
{
	static const uint8_t cmds[] = { SOCKS5_CMD_CONNECT, SOCKS5_CMD_BIND,
	    SOCKS5_CMD_UDP };
	uint8_t msg[sizeof(req_v4)];
	struct socks5_request r;
	size_t consumed;

	(void)state;
	memcpy(msg, req_v4, sizeof(msg));
	for (size_t i = 0; i < sizeof(cmds); i++) {
		msg[1] = cmds[i];
		assert_int_equal(socks5_parse_request(msg, sizeof(msg), &r,
		    &consumed), SOCKS5_OK);
		assert_int_equal(r.cmd, cmds[i]);
	}
}

static void
test_request_prefixes(void **state)
{
	(void)state;
	check_ok(parse_request, req_v4, sizeof(req_v4));
	check_ok(parse_request, req_v6, sizeof(req_v6));
	check_ok(parse_request, req_name, sizeof(req_name));
}

/* RSV is ignored in requests: be liberal in what we accept. */
static void
test_request_rsv_ignored(void **state)
{
	uint8_t msg[sizeof(req_v4)];

	(void)state;
	memcpy(msg, req_v4, sizeof(msg));
	msg[2] = 0xFF;
	check_ok(parse_request, msg, sizeof(msg));
}

static void
test_request_bad_version(void **state)
{
	static const uint8_t vers[] = { 0, 4, 1, 0xFF };
	uint8_t msg[sizeof(req_v4)];

	(void)state;
	memcpy(msg, req_v4, sizeof(msg));
	for (size_t i = 0; i < sizeof(vers); i++) {
		msg[0] = vers[i];
		check_prefixes(parse_request, msg, sizeof(msg), 1,
		    SOCKS5_BAD_VERSION);
	}
}

/* An unknown CMD is only reported once the whole request is in. */
static void
test_request_bad_command(void **state)
{
	static const uint8_t cmds[] = { 0x00, 0x04, 0xFF };
	const uint8_t *reqs[] = { req_v4, req_v6, req_name };
	const size_t lens[] = { sizeof(req_v4), sizeof(req_v6),
	    sizeof(req_name) };
	uint8_t msg[64];

	(void)state;
	for (size_t r = 0; r < 3; r++) {
		for (size_t i = 0; i < sizeof(cmds); i++) {
			memcpy(msg, reqs[r], lens[r]);
			msg[1] = cmds[i];
			check_prefixes(parse_request, msg, lens[r], lens[r],
			    SOCKS5_BAD_COMMAND);
		}
	}
}

/* An unknown ATYP is reported at 4 bytes: its length cannot be known. */
static void
test_request_bad_atyp(void **state)
{
	static const uint8_t atyps[] = { 0, 2, 5, 0xFF };
	uint8_t msg[sizeof(req_v4)];

	(void)state;
	memcpy(msg, req_v4, sizeof(msg));
	for (size_t i = 0; i < sizeof(atyps); i++) {
		msg[1] = SOCKS5_CMD_CONNECT;
		msg[3] = atyps[i];
		check_prefixes(parse_request, msg, sizeof(msg), 4,
		    SOCKS5_BAD_ATYP);
		/* ATYP wins over CMD: it is known first. */
		msg[1] = 0x09;
		check_prefixes(parse_request, msg, sizeof(msg), 4,
		    SOCKS5_BAD_ATYP);
	}
}

static void
test_request_bad_name(void **state)
{
	static const uint8_t empty[] = { 5, 1, 0, 3, 0, 0x00, 0x50 };
	static const uint8_t nul[] = { 5, 1, 0, 3, 3, 'a', 0, 'b', 0x00, 0x50 };
	static const uint8_t nul_end[] = { 5, 1, 0, 3, 2, 'a', 0, 0x00, 0x50 };
	uint8_t msg[sizeof(nul)];

	(void)state;
	check_prefixes(parse_request, empty, sizeof(empty), sizeof(empty),
	    SOCKS5_BAD_NAME);
	check_prefixes(parse_request, nul, sizeof(nul), sizeof(nul),
	    SOCKS5_BAD_NAME);
	check_prefixes(parse_request, nul_end, sizeof(nul_end),
	    sizeof(nul_end), SOCKS5_BAD_NAME);
	/* With both wrong, the command is reported: it gets reply 0x07. */
	memcpy(msg, nul, sizeof(msg));
	msg[1] = 0x04;
	check_prefixes(parse_request, msg, sizeof(msg), sizeof(msg),
	    SOCKS5_BAD_COMMAND);
}

/* Tor's RESOLVE and RESOLVE_PTR parse like any request; a name-form reply
 * carries RESOLVE_PTR's answer. */
static void
test_resolve_requests_and_name_reply(void **state)
{
	static const uint8_t resolve[] = { 0x05, 0xF0, 0x00, 0x03, 0x07,
	    'v', '4', '.', 't', 'e', 's', 't', 0x00, 0x00 };
	static const uint8_t ptr[] = { 0x05, 0xF1, 0x00, 0x01, 127, 0, 0, 7,
	    0x00, 0x00 };
	static const uint8_t want[] = { 0x05, 0x00, 0x00, 0x03, 0x0a,
	    's', 'e', 'v', 'e', 'n', '.', 't', 'e', 's', 't', 0x00, 0x00 };
	struct socks5_request req;
	uint8_t out[SOCKS5_NAME_REPLY_MAX];
	char longest[SOCKS5_NAME_MAX + 2];
	size_t used;

	(void)state;
	assert_int_equal(socks5_parse_request(resolve, sizeof(resolve), &req,
	    &used), SOCKS5_OK);
	assert_int_equal(req.cmd, SOCKS5_CMD_RESOLVE);
	assert_string_equal(req.dst.u.name, "v4.test");
	assert_int_equal(socks5_parse_request(ptr, sizeof(ptr), &req, &used),
	    SOCKS5_OK);
	assert_int_equal(req.cmd, SOCKS5_CMD_RESOLVE_PTR);
	assert_int_equal(used, sizeof(ptr));
	assert_int_equal(socks5_encode_name_reply(out, "seven.test", 0),
	    sizeof(want));
	assert_memory_equal(out, want, sizeof(want));
	/* A name over 255 bytes is cut to what the length byte can say. */
	memset(longest, 'a', sizeof(longest) - 1);
	longest[sizeof(longest) - 1] = '\0';
	assert_int_equal(socks5_encode_name_reply(out, longest, 80),
	    SOCKS5_NAME_REPLY_MAX);
	assert_int_equal(out[4], 255);
	assert_int_equal(out[5 + 255], 0);
	assert_int_equal(out[6 + 255], 80);
}

/* ---- UDP header ---- */

static const uint8_t udp_v4[] = { 0, 0, 0, 1, 10, 0, 0, 1, 0x00, 0x35 };
static const uint8_t udp_v6[] = { 0, 0, 0, 4,
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0x12, 0x34 };
static const uint8_t udp_name[] = { 0, 0, 0, 3, 5,
    'h', 'o', 's', 't', 's', 0x00, 0x35 };

static void
test_udp_ok(void **state)
{
	uint8_t dgram[sizeof(udp_name) + 4];
	struct socks5_udp_header h;
	size_t consumed = 0;

	(void)state;
	memcpy(dgram, udp_name, sizeof(udp_name));
	memcpy(dgram + sizeof(udp_name), "data", 4);
	assert_int_equal(socks5_parse_udp_header(dgram, sizeof(dgram), &h,
	    &consumed), SOCKS5_OK);
	assert_int_equal(consumed, sizeof(udp_name));
	assert_int_equal(h.frag, 0);
	assert_int_equal(h.dst.atyp, SOCKS5_ATYP_NAME);
	assert_string_equal(h.dst.u.name, "hosts");
	assert_int_equal(h.dst.port, 53);

	assert_int_equal(socks5_parse_udp_header(udp_v4, sizeof(udp_v4), &h,
	    &consumed), SOCKS5_OK);
	assert_int_equal(consumed, 10);
	assert_int_equal(h.dst.atyp, SOCKS5_ATYP_IPV4);
	assert_memory_equal(h.dst.u.ipv4, udp_v4 + 4, 4);
	assert_int_equal(h.dst.port, 53);

	assert_int_equal(socks5_parse_udp_header(udp_v6, sizeof(udp_v6), &h,
	    &consumed), SOCKS5_OK);
	assert_int_equal(consumed, 22);
	assert_int_equal(h.dst.atyp, SOCKS5_ATYP_IPV6);
	assert_memory_equal(h.dst.u.ipv6, udp_v6 + 4, 16);
	assert_int_equal(h.dst.port, 0x1234);
}

static void
test_udp_prefixes(void **state)
{
	(void)state;
	check_ok(parse_udp, udp_v4, sizeof(udp_v4));
	check_ok(parse_udp, udp_v6, sizeof(udp_v6));
	check_ok(parse_udp, udp_name, sizeof(udp_name));
}

static void
test_udp_bad_reserved(void **state)
{
	static const uint8_t rsv[][2] = { { 0, 1 }, { 1, 0 }, { 0xFF, 0xFF } };
	uint8_t msg[sizeof(udp_v4)];

	(void)state;
	for (size_t i = 0; i < sizeof(rsv) / sizeof(rsv[0]); i++) {
		memcpy(msg, udp_v4, sizeof(msg));
		memcpy(msg, rsv[i], 2);
		check_prefixes(parse_udp, msg, sizeof(msg), 2,
		    SOCKS5_BAD_RESERVED);
	}
}

static void
test_udp_fragmented(void **state)
{
	static const uint8_t frags[] = { 1, 0x7F, 0x80, 0xFF };
	uint8_t msg[sizeof(udp_v4)];

	(void)state;
	memcpy(msg, udp_v4, sizeof(msg));
	for (size_t i = 0; i < sizeof(frags); i++) {
		msg[2] = frags[i];
		check_prefixes(parse_udp, msg, sizeof(msg), 3,
		    SOCKS5_FRAGMENTED);
	}
}

static void
test_udp_bad_atyp(void **state)
{
	static const uint8_t atyps[] = { 0, 2, 5, 0xFF };
	uint8_t msg[sizeof(udp_v4)];

	(void)state;
	memcpy(msg, udp_v4, sizeof(msg));
	for (size_t i = 0; i < sizeof(atyps); i++) {
		msg[3] = atyps[i];
		check_prefixes(parse_udp, msg, sizeof(msg), 4,
		    SOCKS5_BAD_ATYP);
	}
}

static void
test_udp_bad_name(void **state)
{
	static const uint8_t empty[] = { 0, 0, 0, 3, 0, 0x00, 0x35 };
	static const uint8_t nul[] = { 0, 0, 0, 3, 2, 0, 'a', 0x00, 0x35 };

	(void)state;
	check_prefixes(parse_udp, empty, sizeof(empty), sizeof(empty),
	    SOCKS5_BAD_NAME);
	check_prefixes(parse_udp, nul, sizeof(nul), sizeof(nul),
	    SOCKS5_BAD_NAME);
}

/* ---- reply codes ---- */

static void
test_status_reply(void **state)
{
	(void)state;
	assert_int_equal(socks5_status_reply(SOCKS5_BAD_COMMAND), 0x07);
	assert_int_equal(socks5_status_reply(SOCKS5_BAD_ATYP), 0x08);
	assert_int_equal(socks5_status_reply(SOCKS5_BAD_NAME), 0x04);
	assert_int_equal(socks5_status_reply(SOCKS5_BAD_VERSION), 0x01);
	assert_int_equal(socks5_status_reply(SOCKS5_NO_METHODS), 0x01);
	assert_int_equal(socks5_status_reply(SOCKS5_BAD_RESERVED), 0x01);
	assert_int_equal(socks5_status_reply(SOCKS5_FRAGMENTED), 0x01);
	assert_int_equal(socks5_status_reply(SOCKS5_INCOMPLETE), 0x01);
	assert_int_equal(socks5_status_reply(SOCKS5_OK), 0x01);
}

/* ---- encoders ---- */

static struct sockaddr_in
make_v4(const char *ip, uint16_t port)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	assert_int_equal(inet_pton(AF_INET, ip, &sin.sin_addr), 1);
	return sin;
}

static struct sockaddr_in6
make_v6(const char *ip, uint16_t port)
{
	struct sockaddr_in6 sin6;

	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons(port);
	assert_int_equal(inet_pton(AF_INET6, ip, &sin6.sin6_addr), 1);
	return sin6;
}

/*
 * Encode with a sentinel-filled buffer and check the exact bytes, that the
 * length matches, and that nothing past the returned length was written.
 */
static void
check_encoding(const struct sockaddr *sa, int udp, const uint8_t *want,
    size_t wantlen)
{
	uint8_t out[SOCKS5_REPLY_MAX + 8];
	size_t n;

	memset(out, 0xA5, sizeof(out));
	if (udp)
		n = socks5_encode_udp_header(out, sa);
	else
		n = socks5_encode_reply(out, want[1], sa);
	assert_int_equal(n, wantlen);
	assert_memory_equal(out, want, wantlen);
	for (size_t i = n; i < sizeof(out); i++)
		assert_int_equal(out[i], 0xA5);
}

static void
test_encode_reply_ipv4(void **state)
{
	static const uint8_t want[] = { 5, 0, 0, 1, 192, 0, 2, 7, 0x1F, 0x90 };
	struct sockaddr_in sin = make_v4("192.0.2.7", 8080);

	(void)state;
	check_encoding((const struct sockaddr *)&sin, 0, want, sizeof(want));
}

static void
test_encode_reply_ipv6(void **state)
{
	static const uint8_t want[] = { 5, 0x05, 0, 4,
	    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
	    0x00, 0x50 };
	struct sockaddr_in6 sin6 = make_v6("2001:db8::1", 80);

	(void)state;
	check_encoding((const struct sockaddr *)&sin6, 0, want, sizeof(want));
}

static void
test_encode_reply_mapped(void **state)
{
	static const uint8_t want[] = { 5, 0, 0, 1, 203, 0, 113, 9, 0x01, 0xBB };
	struct sockaddr_in6 sin6 = make_v6("::ffff:203.0.113.9", 443);

	(void)state;
	check_encoding((const struct sockaddr *)&sin6, 0, want, sizeof(want));
}

static void
test_encode_reply_null(void **state)
{
	static const uint8_t want[] = { 5, 0x07, 0, 1, 0, 0, 0, 0, 0, 0 };
	struct sockaddr_un sun;

	(void)state;
	check_encoding(NULL, 0, want, sizeof(want));
	/* Any other family is encoded the same way. */
	memset(&sun, 0x11, sizeof(sun));
	sun.sun_family = AF_UNIX;
	check_encoding((const struct sockaddr *)&sun, 0, want, sizeof(want));
}

static void
test_encode_udp_header(void **state)
{
	static const uint8_t want4[] = { 0, 0, 0, 1, 10, 1, 2, 3, 0x00, 0x35 };
	static const uint8_t want6[] = { 0, 0, 0, 4,
	    0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xab, 0xcd,
	    0xFF, 0xFF };
	static const uint8_t wantnull[] = { 0, 0, 0, 1, 0, 0, 0, 0, 0, 0 };
	struct sockaddr_in sin = make_v4("10.1.2.3", 53);
	struct sockaddr_in6 mapped = make_v6("::ffff:10.1.2.3", 53);
	struct sockaddr_in6 sin6 = make_v6("fe80::abcd", 65535);

	(void)state;
	check_encoding((const struct sockaddr *)&sin, 1, want4, sizeof(want4));
	check_encoding((const struct sockaddr *)&mapped, 1, want4,
	    sizeof(want4));
	check_encoding((const struct sockaddr *)&sin6, 1, want6, sizeof(want6));
	check_encoding(NULL, 1, wantnull, sizeof(wantnull));
}

/* What the daemon encodes, a client-side parse must read back. */
static void
test_udp_roundtrip(void **state)
{
	struct sockaddr_in6 sin6 = make_v6("2001:db8::42", 5353);
	struct socks5_udp_header h;
	uint8_t out[SOCKS5_REPLY_MAX];
	size_t n, consumed;

	(void)state;
	n = socks5_encode_udp_header(out, (const struct sockaddr *)&sin6);
	assert_int_equal(socks5_parse_udp_header(out, n, &h, &consumed),
	    SOCKS5_OK);
	assert_int_equal(consumed, n);
	assert_int_equal(h.dst.atyp, SOCKS5_ATYP_IPV6);
	assert_memory_equal(h.dst.u.ipv6, &sin6.sin6_addr, 16);
	assert_int_equal(h.dst.port, 5353);
}

/* ---- formatting ---- */

static void
test_addr_format(void **state)
{
	struct socks5_addr a;
	char out[SOCKS5_NAME_MAX + 8];

	(void)state;
	memset(&a, 0, sizeof(a));
	a.atyp = SOCKS5_ATYP_IPV4;
	memcpy(a.u.ipv4, "\x01\x02\x03\x04", 4);
	a.port = 80;
	socks5_addr_format(&a, out, sizeof(out));
	assert_string_equal(out, "1.2.3.4:80");

	a.atyp = SOCKS5_ATYP_IPV6;
	assert_int_equal(inet_pton(AF_INET6, "2001:db8::1", a.u.ipv6), 1);
	socks5_addr_format(&a, out, sizeof(out));
	assert_string_equal(out, "[2001:db8::1]:80");

	a.atyp = SOCKS5_ATYP_NAME;
	strcpy(a.u.name, "example.com");
	a.port = 443;
	socks5_addr_format(&a, out, sizeof(out));
	assert_string_equal(out, "example.com:443");

	a.port = 0;
	socks5_addr_format(&a, out, sizeof(out));
	assert_string_equal(out, "example.com:0");
}

static void
test_addr_format_long_name(void **state)
{
	struct socks5_addr a;
	char want[SOCKS5_NAME_MAX + 8];
	char out[SOCKS5_NAME_MAX + 8];

	(void)state;
	a.atyp = SOCKS5_ATYP_NAME;
	a.port = 65535;
	memset(a.u.name, 'n', SOCKS5_NAME_MAX);
	a.u.name[SOCKS5_NAME_MAX] = '\0';
	memset(want, 'n', SOCKS5_NAME_MAX);
	strcpy(want + SOCKS5_NAME_MAX, ":65535");
	/* 255 + ":65535" + NUL = 262 bytes, exactly what fits. */
	socks5_addr_format(&a, out, SOCKS5_NAME_MAX + 7);
	assert_string_equal(out, want);
	/* One byte less loses the last digit, still terminated. */
	socks5_addr_format(&a, out, SOCKS5_NAME_MAX + 6);
	assert_int_equal(strlen(out), SOCKS5_NAME_MAX + 5);
	assert_memory_equal(out, want, SOCKS5_NAME_MAX + 5);
}

static void
test_addr_format_truncates(void **state)
{
	struct socks5_addr a;
	char out[16];

	(void)state;
	memset(&a, 0, sizeof(a));
	a.atyp = SOCKS5_ATYP_IPV6;
	assert_int_equal(inet_pton(AF_INET6, "2001:db8::1", a.u.ipv6), 1);
	a.port = 8080;

	memset(out, 'X', sizeof(out));
	socks5_addr_format(&a, out, 6);
	assert_string_equal(out, "[2001");
	assert_int_equal(out[6], 'X');

	memset(out, 'X', sizeof(out));
	socks5_addr_format(&a, out, 1);
	assert_int_equal(out[0], '\0');
	assert_int_equal(out[1], 'X');

	/* outlen 0 must not write at all. */
	memset(out, 'X', sizeof(out));
	socks5_addr_format(&a, out, 0);
	assert_int_equal(out[0], 'X');
}

/* ---- client side: greeting and method choice ---- */

static void
test_client_greeting(void **state)
{
	static const uint8_t none[] = { 5, 1, SOCKS5_METHOD_NONE };
	static const uint8_t both[] = { 5, 2, SOCKS5_METHOD_NONE,
	    SOCKS5_METHOD_PASSWORD };
	uint8_t out[SOCKS5_CLIENT_GREETING_MAX + 4];
	struct socks5_greeting g;
	size_t consumed;

	(void)state;
	memset(out, 0xA5, sizeof(out));
	assert_int_equal(socks5_encode_greeting(out, false), sizeof(none));
	assert_memory_equal(out, none, sizeof(none));
	assert_int_equal(out[sizeof(none)], 0xA5);
	assert_int_equal(socks5_encode_greeting(out, true), sizeof(both));
	assert_memory_equal(out, both, sizeof(both));
	assert_int_equal(out[SOCKS5_CLIENT_GREETING_MAX], 0xA5);
	/* What our own server side makes of it. */
	assert_int_equal(socks5_parse_greeting(out, sizeof(both), &g,
	    &consumed), SOCKS5_OK);
	assert_int_equal(consumed, sizeof(both));
	assert_true(socks5_greeting_offers(&g, SOCKS5_METHOD_PASSWORD));
	assert_true(socks5_greeting_offers(&g, SOCKS5_METHOD_NONE));
}

static void
test_method_choice_ok(void **state)
{
	static const uint8_t methods[] = { SOCKS5_METHOD_NONE,
	    SOCKS5_METHOD_PASSWORD, SOCKS5_METHOD_REJECT, 0x01, 0x80 };
	uint8_t msg[] = { 5, 0 };
	uint8_t method;
	size_t consumed;

	(void)state;
	for (size_t i = 0; i < sizeof(methods); i++) {
		msg[1] = methods[i];
		check_ok(parse_method_choice, msg, sizeof(msg));
		method = 0x55;
		consumed = 0;
		assert_int_equal(socks5_parse_method_choice(msg, sizeof(msg),
		    &method, &consumed), SOCKS5_OK);
		assert_int_equal(method, methods[i]);
		assert_int_equal(consumed, 2);
	}
}

static void
test_method_choice_bad_version(void **state)
{
	static const uint8_t vers[] = { 0, 1, 4, 6, 0xFF };
	uint8_t msg[] = { 0, SOCKS5_METHOD_NONE };

	(void)state;
	for (size_t i = 0; i < sizeof(vers); i++) {
		msg[0] = vers[i];
		check_prefixes(parse_method_choice, msg, sizeof(msg), 1,
		    SOCKS5_BAD_VERSION);
	}
}

/* ---- client side: RFC 1929 ---- */

static void
test_client_credentials(void **state)
{
	static const uint8_t want[] = { 1, 4, 'u', 's', 'e', 'r',
	    6, 's', 'e', 'c', 'r', 'e', 't' };
	uint8_t out[SOCKS5_AUTH_MAX + 4];
	struct socks5_credentials c;
	size_t consumed;

	(void)state;
	memset(out, 0xA5, sizeof(out));
	assert_int_equal(socks5_encode_credentials(out, "user", "secret"),
	    sizeof(want));
	assert_memory_equal(out, want, sizeof(want));
	assert_int_equal(out[sizeof(want)], 0xA5);
	/* One-byte fields, the shortest allowed. */
	assert_int_equal(socks5_encode_credentials(out, "u", "p"), 5);
	assert_memory_equal(out, "\x01\x01u\x01p", 5);
	assert_int_equal(socks5_parse_credentials(out, 5, &c, &consumed),
	    SOCKS5_OK);
	assert_string_equal(c.user, "u");
	assert_string_equal(c.password, "p");
}

static void
test_client_credentials_max(void **state)
{
	char user[SOCKS5_NAME_MAX + 2], password[SOCKS5_NAME_MAX + 2];
	uint8_t out[SOCKS5_AUTH_MAX + 4];
	struct socks5_credentials c;
	size_t consumed;

	(void)state;
	memset(user, 'u', SOCKS5_NAME_MAX);
	user[SOCKS5_NAME_MAX] = '\0';
	memset(password, 'p', SOCKS5_NAME_MAX);
	password[SOCKS5_NAME_MAX] = '\0';
	memset(out, 0xA5, sizeof(out));
	assert_int_equal(socks5_encode_credentials(out, user, password),
	    SOCKS5_AUTH_MAX);
	assert_int_equal(out[SOCKS5_AUTH_MAX], 0xA5);
	assert_int_equal(socks5_parse_credentials(out, SOCKS5_AUTH_MAX, &c,
	    &consumed), SOCKS5_OK);
	assert_int_equal(consumed, SOCKS5_AUTH_MAX);
	assert_string_equal(c.user, user);
	assert_string_equal(c.password, password);

	/* One byte more in either does not fit its length byte. */
	user[SOCKS5_NAME_MAX] = 'u';
	user[SOCKS5_NAME_MAX + 1] = '\0';
	assert_int_equal(socks5_encode_credentials(out, user, "p"), 0);
	assert_int_equal(socks5_encode_credentials(out, "u", user), 0);
	password[SOCKS5_NAME_MAX] = 'p';
	password[SOCKS5_NAME_MAX + 1] = '\0';
	assert_int_equal(socks5_encode_credentials(out, user, password), 0);
}

static void
test_client_credentials_empty(void **state)
{
	uint8_t out[SOCKS5_AUTH_MAX];

	(void)state;
	assert_int_equal(socks5_encode_credentials(out, "", "secret"), 0);
	assert_int_equal(socks5_encode_credentials(out, "user", ""), 0);
	assert_int_equal(socks5_encode_credentials(out, "", ""), 0);
}

static void
test_auth_reply(void **state)
{
	static const uint8_t codes[] = { SOCKS5_AUTH_OK, SOCKS5_AUTH_FAILED,
	    0x02, 0xFF };
	uint8_t msg[] = { 1, 0 };
	uint8_t status;
	size_t consumed;

	(void)state;
	for (size_t i = 0; i < sizeof(codes); i++) {
		msg[1] = codes[i];
		check_ok(parse_auth_reply, msg, sizeof(msg));
		status = 0x55;
		consumed = 0;
		assert_int_equal(socks5_parse_auth_reply(msg, sizeof(msg),
		    &status, &consumed), SOCKS5_OK);
		assert_int_equal(status, codes[i]);
		assert_int_equal(consumed, 2);
	}
}

/* VER 5 here is a known server bug; it is refused all the same. */
static void
test_auth_reply_bad_version(void **state)
{
	static const uint8_t vers[] = { 0, 2, 5, 0xFF };
	uint8_t msg[] = { 0, SOCKS5_AUTH_OK };

	(void)state;
	for (size_t i = 0; i < sizeof(vers); i++) {
		msg[0] = vers[i];
		check_prefixes(parse_auth_reply, msg, sizeof(msg), 1,
		    SOCKS5_BAD_VERSION);
	}
}

/* ---- client side: request ---- */

/* Encode into a sentinel-filled buffer and compare with want. */
static void
check_request_encoding(uint8_t cmd, const struct socks5_addr *dst,
    const uint8_t *want, size_t wantlen)
{
	uint8_t out[SOCKS5_REQUEST_MAX + 8];
	struct socks5_request r;
	size_t consumed;

	memset(out, 0xA5, sizeof(out));
	assert_int_equal(socks5_encode_request(out, cmd, dst), wantlen);
	assert_memory_equal(out, want, wantlen);
	for (size_t i = wantlen; i < sizeof(out); i++)
		assert_int_equal(out[i], 0xA5);
	/* And our server side reads back what went in. */
	assert_int_equal(socks5_parse_request(out, wantlen, &r, &consumed),
	    SOCKS5_OK);
	assert_int_equal(consumed, wantlen);
	assert_int_equal(r.cmd, cmd);
	assert_int_equal(r.dst.atyp, dst->atyp);
	assert_int_equal(r.dst.port, dst->port);
}

static void
test_client_request(void **state)
{
	struct socks5_addr a;

	(void)state;
	memset(&a, 0, sizeof(a));
	a.atyp = SOCKS5_ATYP_IPV4;
	memcpy(a.u.ipv4, req_v4 + 4, 4);
	a.port = 443;
	check_request_encoding(SOCKS5_CMD_CONNECT, &a, req_v4, sizeof(req_v4));

	memset(&a, 0, sizeof(a));
	a.atyp = SOCKS5_ATYP_IPV6;
	memcpy(a.u.ipv6, req_v6 + 4, 16);
	a.port = 80;
	check_request_encoding(SOCKS5_CMD_CONNECT, &a, req_v6, sizeof(req_v6));

	memset(&a, 0, sizeof(a));
	a.atyp = SOCKS5_ATYP_NAME;
	strcpy(a.u.name, "example.com");
	a.port = 65535;
	check_request_encoding(SOCKS5_CMD_CONNECT, &a, req_name,
	    sizeof(req_name));
}

static void
test_client_request_commands(void **state)
{
	static const uint8_t cmds[] = { SOCKS5_CMD_BIND, SOCKS5_CMD_UDP,
	    SOCKS5_CMD_RESOLVE };
	uint8_t want[sizeof(req_v4)];
	struct socks5_addr a;

	(void)state;
	memset(&a, 0, sizeof(a));
	a.atyp = SOCKS5_ATYP_IPV4;
	memcpy(a.u.ipv4, req_v4 + 4, 4);
	a.port = 443;
	memcpy(want, req_v4, sizeof(want));
	for (size_t i = 0; i < sizeof(cmds); i++) {
		want[1] = cmds[i];
		check_request_encoding(cmds[i], &a, want, sizeof(want));
	}
}

static void
test_client_request_name_max(void **state)
{
	uint8_t want[SOCKS5_REQUEST_MAX];
	struct socks5_addr a;

	(void)state;
	memset(&a, 0, sizeof(a));
	a.atyp = SOCKS5_ATYP_NAME;
	memset(a.u.name, 'n', SOCKS5_NAME_MAX);
	a.u.name[SOCKS5_NAME_MAX] = '\0';
	a.port = 0x1234;
	want[0] = 5;
	want[1] = SOCKS5_CMD_CONNECT;
	want[2] = 0;
	want[3] = SOCKS5_ATYP_NAME;
	want[4] = 255;
	memset(want + 5, 'n', 255);
	want[260] = 0x12;
	want[261] = 0x34;
	check_request_encoding(SOCKS5_CMD_CONNECT, &a, want, sizeof(want));
}

/* An address that cannot go on the wire gives 0 and writes nothing. */
static void
check_request_refused(const struct socks5_addr *dst)
{
	uint8_t out[SOCKS5_REQUEST_MAX];

	memset(out, 0xA5, sizeof(out));
	assert_int_equal(socks5_encode_request(out, SOCKS5_CMD_CONNECT, dst),
	    0);
	for (size_t i = 0; i < sizeof(out); i++)
		assert_int_equal(out[i], 0xA5);
}

static void
test_client_request_refused(void **state)
{
	static const uint8_t atyps[] = { 0, 2, 5, 0xFF };
	struct socks5_addr a;

	(void)state;
	memset(&a, 0, sizeof(a));
	a.atyp = SOCKS5_ATYP_NAME;
	a.port = 80;
	check_request_refused(&a);              /* an empty name */
	/* A name with no NUL in its 256 bytes: too long, or garbage. */
	memset(a.u.name, 'n', sizeof(a.u.name));
	check_request_refused(&a);
	memset(&a, 0, sizeof(a));
	for (size_t i = 0; i < sizeof(atyps); i++) {
		a.atyp = atyps[i];
		check_request_refused(&a);
	}
}

/* ---- client side: the server's reply ---- */

static const uint8_t rep_v4[] = { 5, 0, 0, 1, 198, 51, 100, 9, 0xC3, 0x50 };
static const uint8_t rep_v6[] = { 5, 0, 0, 4,
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0x04, 0x38 };
static const uint8_t rep_name[] = { 5, 0, 0, 3, 8,
    'p', 'r', 'o', 'x', 'y', '.', 'i', 'o', 0x00, 0x16 };

static void
test_reply_ok(void **state)
{
	uint8_t stream[sizeof(rep_name) + 5];
	struct socks5_reply r;
	size_t consumed;

	(void)state;
	memset(&r, 0x55, sizeof(r));
	assert_int_equal(socks5_parse_reply(rep_v4, sizeof(rep_v4), &r,
	    &consumed), SOCKS5_OK);
	assert_int_equal(consumed, 10);
	assert_int_equal(r.rep, SOCKS5_REP_SUCCESS);
	assert_int_equal(r.bnd.atyp, SOCKS5_ATYP_IPV4);
	assert_memory_equal(r.bnd.u.ipv4, rep_v4 + 4, 4);
	assert_int_equal(r.bnd.port, 50000);

	assert_int_equal(socks5_parse_reply(rep_v6, sizeof(rep_v6), &r,
	    &consumed), SOCKS5_OK);
	assert_int_equal(consumed, 22);
	assert_int_equal(r.bnd.atyp, SOCKS5_ATYP_IPV6);
	assert_memory_equal(r.bnd.u.ipv6, rep_v6 + 4, 16);
	assert_int_equal(r.bnd.port, 1080);

	/* The relayed stream starts right behind the reply: not consumed. */
	memcpy(stream, rep_name, sizeof(rep_name));
	memcpy(stream + sizeof(rep_name), "\x05\x00\x00\x01\x00", 5);
	assert_int_equal(socks5_parse_reply(stream, sizeof(stream), &r,
	    &consumed), SOCKS5_OK);
	assert_int_equal(consumed, sizeof(rep_name));
	assert_int_equal(r.bnd.atyp, SOCKS5_ATYP_NAME);
	assert_string_equal(r.bnd.u.name, "proxy.io");
	assert_int_equal(r.bnd.port, 22);
}

static void
test_reply_prefixes(void **state)
{
	uint8_t longest[SOCKS5_NAME_REPLY_MAX];

	(void)state;
	check_ok(parse_reply, rep_v4, sizeof(rep_v4));
	check_ok(parse_reply, rep_v6, sizeof(rep_v6));
	check_ok(parse_reply, rep_name, sizeof(rep_name));
	memcpy(longest, rep_name, 4);
	longest[4] = 255;
	memset(longest + 5, 'x', 255);
	longest[260] = 0;
	longest[261] = 80;
	check_ok(parse_reply, longest, sizeof(longest));
}

/* A failure is still a whole reply: the caller reads REP from it. */
static void
test_reply_failure_codes(void **state)
{
	static const uint8_t reps[] = { SOCKS5_REP_FAILURE,
	    SOCKS5_REP_NOT_ALLOWED, SOCKS5_REP_REFUSED,
	    SOCKS5_REP_ATYP_UNSUPPORTED, 0x09, 0xFF };
	uint8_t msg[sizeof(rep_v4)];
	struct socks5_reply r;
	size_t consumed;

	(void)state;
	memcpy(msg, rep_v4, sizeof(msg));
	for (size_t i = 0; i < sizeof(reps); i++) {
		msg[1] = reps[i];
		check_ok(parse_reply, msg, sizeof(msg));
		assert_int_equal(socks5_parse_reply(msg, sizeof(msg), &r,
		    &consumed), SOCKS5_OK);
		assert_int_equal(r.rep, reps[i]);
	}
}

/* Servers in the wild put junk in RSV; ATYP still frames the reply. */
static void
test_reply_rsv_tolerated(void **state)
{
	uint8_t msg[sizeof(rep_v6)];

	(void)state;
	memcpy(msg, rep_v6, sizeof(msg));
	msg[2] = 0xFF;
	check_ok(parse_reply, msg, sizeof(msg));
	msg[2] = 0x01;
	check_ok(parse_reply, msg, sizeof(msg));
}

static void
test_reply_bad_version(void **state)
{
	static const uint8_t vers[] = { 0, 1, 4, 0xFF };
	uint8_t msg[sizeof(rep_v4)];

	(void)state;
	memcpy(msg, rep_v4, sizeof(msg));
	for (size_t i = 0; i < sizeof(vers); i++) {
		msg[0] = vers[i];
		check_prefixes(parse_reply, msg, sizeof(msg), 1,
		    SOCKS5_BAD_VERSION);
	}
}

/* Without a known ATYP there is no telling where the reply ends. */
static void
test_reply_bad_atyp(void **state)
{
	static const uint8_t atyps[] = { 0, 2, 5, 0xFF };
	uint8_t msg[sizeof(rep_v4)];

	(void)state;
	memcpy(msg, rep_v4, sizeof(msg));
	for (size_t i = 0; i < sizeof(atyps); i++) {
		msg[3] = atyps[i];
		check_prefixes(parse_reply, msg, sizeof(msg), 4,
		    SOCKS5_BAD_ATYP);
	}
}

static void
test_reply_bad_name(void **state)
{
	static const uint8_t empty[] = { 5, 0, 0, 3, 0, 0x00, 0x50 };
	static const uint8_t nul[] = { 5, 0, 0, 3, 3, 'a', 0, 'b', 0x00, 0x50 };

	(void)state;
	check_prefixes(parse_reply, empty, sizeof(empty), sizeof(empty),
	    SOCKS5_BAD_NAME);
	check_prefixes(parse_reply, nul, sizeof(nul), sizeof(nul),
	    SOCKS5_BAD_NAME);
}

/* What our server side encodes, our client side reads back. */
static void
test_reply_roundtrip(void **state)
{
	struct sockaddr_in sin = make_v4("203.0.113.5", 4242);
	struct sockaddr_in6 sin6 = make_v6("2001:db8::5", 4343);
	uint8_t out[SOCKS5_NAME_REPLY_MAX];
	struct socks5_reply r;
	size_t n, consumed;

	(void)state;
	n = socks5_encode_reply(out, SOCKS5_REP_REFUSED,
	    (const struct sockaddr *)&sin);
	assert_int_equal(socks5_parse_reply(out, n, &r, &consumed), SOCKS5_OK);
	assert_int_equal(consumed, n);
	assert_int_equal(r.rep, SOCKS5_REP_REFUSED);
	assert_memory_equal(r.bnd.u.ipv4, &sin.sin_addr, 4);
	assert_int_equal(r.bnd.port, 4242);

	n = socks5_encode_reply(out, SOCKS5_REP_SUCCESS,
	    (const struct sockaddr *)&sin6);
	assert_int_equal(socks5_parse_reply(out, n, &r, &consumed), SOCKS5_OK);
	assert_int_equal(consumed, 22);
	assert_memory_equal(r.bnd.u.ipv6, &sin6.sin6_addr, 16);
	assert_int_equal(r.bnd.port, 4343);

	n = socks5_encode_name_reply(out, "seven.test", 7);
	assert_int_equal(socks5_parse_reply(out, n, &r, &consumed), SOCKS5_OK);
	assert_int_equal(consumed, n);
	assert_string_equal(r.bnd.u.name, "seven.test");
	assert_int_equal(r.bnd.port, 7);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_greeting_ok),
		cmocka_unit_test(test_greeting_prefixes),
		cmocka_unit_test(test_greeting_bad_version),
		cmocka_unit_test(test_greeting_no_methods),
		cmocka_unit_test(test_greeting_offers),
		cmocka_unit_test(test_credentials_ok),
		cmocka_unit_test(test_credentials_max),
		cmocka_unit_test(test_credentials_bad_version),
		cmocka_unit_test(test_credentials_empty),
		cmocka_unit_test(test_credentials_nul),
		cmocka_unit_test(test_request_ipv4),
		cmocka_unit_test(test_request_ipv6),
		cmocka_unit_test(test_request_name),
		cmocka_unit_test(test_request_name_max),
		cmocka_unit_test(test_request_commands),
		cmocka_unit_test(test_request_prefixes),
		cmocka_unit_test(test_request_rsv_ignored),
		cmocka_unit_test(test_request_bad_version),
		cmocka_unit_test(test_request_bad_command),
		cmocka_unit_test(test_request_bad_atyp),
		cmocka_unit_test(test_request_bad_name),
		cmocka_unit_test(test_udp_ok),
		cmocka_unit_test(test_udp_prefixes),
		cmocka_unit_test(test_udp_bad_reserved),
		cmocka_unit_test(test_udp_fragmented),
		cmocka_unit_test(test_udp_bad_atyp),
		cmocka_unit_test(test_udp_bad_name),
		cmocka_unit_test(test_status_reply),
		cmocka_unit_test(test_encode_reply_ipv4),
		cmocka_unit_test(test_encode_reply_ipv6),
		cmocka_unit_test(test_encode_reply_mapped),
		cmocka_unit_test(test_encode_reply_null),
		cmocka_unit_test(test_encode_udp_header),
		cmocka_unit_test(test_resolve_requests_and_name_reply),
		cmocka_unit_test(test_udp_roundtrip),
		cmocka_unit_test(test_addr_format),
		cmocka_unit_test(test_addr_format_long_name),
		cmocka_unit_test(test_addr_format_truncates),
		cmocka_unit_test(test_client_greeting),
		cmocka_unit_test(test_method_choice_ok),
		cmocka_unit_test(test_method_choice_bad_version),
		cmocka_unit_test(test_client_credentials),
		cmocka_unit_test(test_client_credentials_max),
		cmocka_unit_test(test_client_credentials_empty),
		cmocka_unit_test(test_auth_reply),
		cmocka_unit_test(test_auth_reply_bad_version),
		cmocka_unit_test(test_client_request),
		cmocka_unit_test(test_client_request_commands),
		cmocka_unit_test(test_client_request_name_max),
		cmocka_unit_test(test_client_request_refused),
		cmocka_unit_test(test_reply_ok),
		cmocka_unit_test(test_reply_prefixes),
		cmocka_unit_test(test_reply_failure_codes),
		cmocka_unit_test(test_reply_rsv_tolerated),
		cmocka_unit_test(test_reply_bad_version),
		cmocka_unit_test(test_reply_bad_atyp),
		cmocka_unit_test(test_reply_bad_name),
		cmocka_unit_test(test_reply_roundtrip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
