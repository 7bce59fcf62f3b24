/*
 * libFuzzer target: the HTTP CONNECT client side (src/http_connect.c).
 *
 * The proxy's response head parser is fed every prefix of one upstream
 * byte stream (all up to ALL_PREFIXES, then a sample), each in a buffer
 * of exactly its size so ASan sees any over-read, and checked against a
 * model of the contract written apart from the code: which head is final,
 * where it ends, when a status line is malformed, when it is too large.
 *
 * The request encoder is fed a destination and a login taken from the
 * same stream, and its output is checked line by line: no field forged
 * through the name, the Basic token decoding back to the login, nothing
 * written when it does not fit, and our own server-side parser agreeing.
 *
 * Input: byte 0, when not 0, inserts a field of 64 * byte 0 bytes after
 * the stream's first line, to reach HTTP_CONNECT_HEAD_MAX cheaply; the
 * rest is the stream.
 */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "socks5d/http.h"
#include "socks5d/http_connect.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Prefixes tried one by one before sampling. */
#define ALL_PREFIXES    1024
#define SAMPLES         256

struct verdict {
	enum http_connect_status st;
	int code;
	size_t head_len;
};

/* ---- the response model ---- */

static bool
is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

/* Can the n bytes at p start a status line "HTTP/1.D DDD"? */
static bool
model_may_be_status(const uint8_t *p, size_t n)
{
	static const char fixed[] = "HTTP/1.";

	for (size_t i = 0; i < n && i < 12; i++) {
		if (i < 7 ? p[i] != (uint8_t)fixed[i] :
		    i == 8 ? p[i] != ' ' : !is_digit(p[i]))
			return false;
	}
	return true;
}

/* The code of a whole status line (its line end dropped), or -1. */
static int
model_status(const uint8_t *p, size_t n)
{
	int code;

	if (n > 0 && p[n - 1] == '\r')
		n--;
	if (n < 12 || !model_may_be_status(p, 12) || (n > 12 && p[12] != ' '))
		return -1;
	code = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	return code >= 100 ? code : -1;
}

/* Just past the first empty line ("\n" or "\r\n") after the LF at lf,
 * or 0 when there is none in b[0, n). */
static size_t
model_head_end(const uint8_t *b, size_t n, size_t lf)
{
	const uint8_t *next;

	for (;;) {
		if (lf + 1 < n && b[lf + 1] == '\n')
			return lf + 2;
		if (lf + 2 < n && b[lf + 1] == '\r' && b[lf + 2] == '\n')
			return lf + 3;
		next = lf + 1 < n ? memchr(b + lf + 1, '\n', n - lf - 1) :
		    NULL;
		if (next == NULL)
			return 0;
		lf = (size_t)(next - b);
	}
}

static struct verdict
model(const uint8_t *b, size_t len)
{
	struct verdict m = { HTTP_CONNECT_INCOMPLETE, -1, 0 };
	size_t n = len < HTTP_CONNECT_HEAD_MAX ? len : HTTP_CONNECT_HEAD_MAX;
	enum http_connect_status short_st = len >= HTTP_CONNECT_HEAD_MAX ?
	    HTTP_CONNECT_TOO_LARGE : HTTP_CONNECT_INCOMPLETE;
	const uint8_t *lf;
	size_t pos = 0, end;
	int code;

	for (;;) {
		lf = pos < n ? memchr(b + pos, '\n', n - pos) : NULL;
		if (lf == NULL) {
			m.st = model_may_be_status(b + pos, n - pos) ?
			    short_st : HTTP_CONNECT_BAD_STATUS;
			return m;
		}
		code = model_status(b + pos, (size_t)(lf - b) - pos);
		if (code < 0) {
			m.st = HTTP_CONNECT_BAD_STATUS;
			return m;
		}
		end = model_head_end(b, n, (size_t)(lf - b));
		if (end == 0) {
			m.st = short_st;
			return m;
		}
		if (code >= 200 || code == 101) {
			m.st = HTTP_CONNECT_OK;
			m.code = code;
			m.head_len = end;
			return m;
		}
		pos = end;
	}
}

/* One parse of in[0..len) in a buffer of exactly len bytes, against the
 * model. */
static struct verdict
check_parse(const uint8_t *in, size_t len)
{
	struct verdict v = { HTTP_CONNECT_INCOMPLETE, -1, 0 }, m;
	uint8_t *buf = malloc(len > 0 ? len : 1);

	if (buf == NULL)
		abort();
	memcpy(buf, in, len);
	v.st = http_connect_parse_response(buf, len, &v.code, &v.head_len);
	free(buf);
	m = model(in, len);
	if (v.st != m.st)
		abort();
	if (v.st == HTTP_CONNECT_OK && (v.code != m.code ||
	    v.head_len != m.head_len || v.head_len > len ||
	    v.head_len > HTTP_CONNECT_HEAD_MAX))
		abort();
	return v;
}

/* Every prefix (or a sample, in order): INCOMPLETE until the first other
 * verdict, which every longer prefix and the whole stream keep. */
static void
check_response(const uint8_t *in, size_t len)
{
	struct verdict whole = check_parse(in, len), v;
	struct verdict first = { HTTP_CONNECT_INCOMPLETE, -1, 0 };
	size_t k, step;
	bool decided = false;

	step = len <= ALL_PREFIXES ? 1 : (len - ALL_PREFIXES) / SAMPLES + 1;
	for (k = 0; k < len; k += k < ALL_PREFIXES ? 1 : step) {
		v = check_parse(in, k);
		if (!decided) {
			decided = v.st != HTTP_CONNECT_INCOMPLETE;
			first = v;
		} else if (v.st != first.st || v.code != first.code ||
		    v.head_len != first.head_len) {
			abort();
		}
	}
	if (decided && (whole.st != first.st || whole.code != first.code ||
	    whole.head_len != first.head_len))
		abort();
	/* The head alone is the same head: the tunnel's bytes are extra. */
	if (whole.st == HTTP_CONNECT_OK) {
		v = check_parse(in, whole.head_len);
		if (v.st != HTTP_CONNECT_OK || v.code != whole.code)
			abort();
	}
}

/* ---- the request encoder ---- */

struct login {
	struct socks5_addr dst;
	char user[HTTP_CREDENTIAL_MAX + 2];
	char password[HTTP_CREDENTIAL_MAX + 2];
	bool has_user;
};

/* The next NUL-terminated field at *pos, at most max bytes; false when
 * the input ended before it. */
static bool
next_field(const uint8_t *d, size_t n, size_t *pos, char *field, size_t max)
{
	size_t len = 0;

	if (*pos >= n)
		return false;
	while (*pos < n && d[*pos] != 0 && len < max)
		field[len++] = (char)d[(*pos)++];
	if (len < max)
		field[len] = '\0';
	while (*pos < n && d[*pos] != 0)
		(*pos)++;               /* the rest of an overlong field */
	if (*pos < n)
		(*pos)++;
	return true;
}

/*
 * s[0] % 4 picks IPv4, IPv6, a name, or s[0] itself as ATYP; s[1..2] is
 * the port; then the address bytes or the name, then user and password,
 * NUL-separated. A 256-byte name is left unterminated on purpose.
 */
static void
build_login(const uint8_t *s, size_t n, struct login *l)
{
	uint8_t head[3] = { 0, 0, 0 };
	size_t pos = 3;

	memset(l, 0, sizeof(*l));
	memcpy(head, s, n < 3 ? n : 3);
	l->dst.port = (uint16_t)(head[1] << 8 | head[2]);
	switch (head[0] % 4) {
	case 0:
		l->dst.atyp = SOCKS5_ATYP_IPV4;
		if (pos < n)
			memcpy(l->dst.u.ipv4, s + pos, n - pos < 4 ? n - pos : 4);
		pos += 4;
		break;
	case 1:
		l->dst.atyp = SOCKS5_ATYP_IPV6;
		if (pos < n)
			memcpy(l->dst.u.ipv6, s + pos,
			    n - pos < 16 ? n - pos : 16);
		pos += 16;
		break;
	default:
		l->dst.atyp = head[0] % 4 == 2 ? SOCKS5_ATYP_NAME : head[0];
		(void)next_field(s, n, &pos, l->dst.u.name,
		    sizeof(l->dst.u.name));
		break;
	}
	l->has_user = next_field(s, n, &pos, l->user, sizeof(l->user) - 1);
	if (l->has_user &&
	    !next_field(s, n, &pos, l->password, sizeof(l->password) - 1))
		l->password[0] = '\0';
}

/* The contract's own word on what can be encoded. */
static bool
encodable(const struct login *l)
{
	static const char extra[] = "-._~%!$&'()*+,;=";
	size_t n;

	if (l->has_user && (strlen(l->user) > HTTP_CREDENTIAL_MAX ||
	    strlen(l->password) > HTTP_CREDENTIAL_MAX ||
	    strchr(l->user, ':') != NULL))
		return false;
	if (l->dst.atyp == SOCKS5_ATYP_IPV4 || l->dst.atyp == SOCKS5_ATYP_IPV6)
		return true;
	if (l->dst.atyp != SOCKS5_ATYP_NAME)
		return false;
	n = strnlen(l->dst.u.name, sizeof(l->dst.u.name));
	if (n == 0 || n > SOCKS5_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = (uint8_t)l->dst.u.name[i];

		if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') &&
		    !is_digit(c) && strchr(extra, c) == NULL)
			return false;
	}
	return true;
}

/* Does out[*pos..) start with want then CRLF? Moves *pos past both. */
static bool
take_line(const uint8_t *out, size_t len, size_t *pos, const char *want,
    size_t want_len)
{
	if (len - *pos < want_len + 2 || memcmp(out + *pos, want,
	    want_len) != 0 || memcmp(out + *pos + want_len, "\r\n", 2) != 0)
		return false;
	*pos += want_len + 2;
	return true;
}

/* The Basic line: its token must decode to user ":" password. */
static void
check_basic_line(const uint8_t *out, size_t len, size_t *pos,
    const struct login *l)
{
	static const char prefix[] = "Proxy-Authorization: Basic ";
	unsigned char plain[2 * HTTP_CREDENTIAL_MAX + 1];
	char want[sizeof(plain) + 1];
	const uint8_t *cr;
	size_t plain_len, p = sizeof(prefix) - 1;

	if (len - *pos < p || memcmp(out + *pos, prefix, p) != 0)
		abort();
	cr = memchr(out + *pos + p, '\r', len - *pos - p);
	if (cr == NULL || sodium_base642bin(plain, sizeof(plain),
	    (const char *)out + *pos + p, (size_t)(cr - out) - *pos - p,
	    NULL, &plain_len, NULL, sodium_base64_VARIANT_ORIGINAL) != 0)
		abort();
	snprintf(want, sizeof(want), "%s:%s", l->user, l->password);
	if (plain_len != strlen(want) || memcmp(plain, want, plain_len) != 0)
		abort();
	if (!take_line(out, len, pos, (const char *)out + *pos,
	    (size_t)(cr - out) - *pos))
		abort();
}

/* Our server-side parser, where it takes the request, reads back the
 * same destination and login. */
static void
check_server_reads(const uint8_t *out, size_t len, const struct login *l)
{
	struct http_request *req = malloc(sizeof(*req));
	char user[256], password[256];

	if (req == NULL)
		abort();
	if (http_parse_request(out, len, req) == HTTP_OK) {
		if (req->head_len != len || req->dst.port != l->dst.port)
			abort();
		/* A name may read as an address ("192.0.2.1"); an address
		 * never reads as anything else. */
		if (req->dst.atyp != l->dst.atyp &&
		    l->dst.atyp != SOCKS5_ATYP_NAME)
			abort();
		if (req->dst.atyp == l->dst.atyp &&
		    memcmp(&req->dst.u, &l->dst.u, l->dst.atyp ==
		    SOCKS5_ATYP_IPV4 ? 4 : l->dst.atyp == SOCKS5_ATYP_IPV6 ?
		    16 : strlen(l->dst.u.name) + 1) != 0)
			abort();
		if (http_basic_credentials(req, user, password) !=
		    l->has_user)
			abort();
		if (l->has_user && (strcmp(user, l->user) != 0 ||
		    strcmp(password, l->password) != 0))
			abort();
	}
	free(req);
}

/* Exactly the lines the contract lists, and nothing else. */
static void
check_request_lines(const uint8_t *out, size_t len, const struct login *l)
{
	char authority[SOCKS5_ADDR_STRLEN], line[SOCKS5_ADDR_STRLEN + 32];
	size_t pos = 0;
	int n;

	socks5_addr_format(&l->dst, authority, sizeof(authority));
	n = snprintf(line, sizeof(line), "CONNECT %s HTTP/1.1", authority);
	if (!take_line(out, len, &pos, line, (size_t)n))
		abort();
	n = snprintf(line, sizeof(line), "Host: %s", authority);
	if (!take_line(out, len, &pos, line, (size_t)n))
		abort();
	if (l->has_user)
		check_basic_line(out, len, &pos, l);
	if (!take_line(out, len, &pos, "", 0) || pos != len)
		abort();
}

static void
check_encoder(const uint8_t *s, size_t n)
{
	struct login l;
	const char *user, *password;
	uint8_t *out, *exact;
	size_t len;

	build_login(s, n, &l);
	user = l.has_user ? l.user : NULL;
	password = l.has_user ? l.password : NULL;
	out = malloc(HTTP_CONNECT_REQUEST_MAX);
	if (out == NULL)
		abort();
	len = http_connect_encode(out, HTTP_CONNECT_REQUEST_MAX, &l.dst, user,
	    password);
	if ((len != 0) != encodable(&l) || len > HTTP_CONNECT_REQUEST_MAX)
		abort();
	if (len == 0) {
		free(out);
		return;
	}
	check_request_lines(out, len, &l);
	check_server_reads(out, len, &l);

	/* One byte short: refused, and no credential byte left behind. */
	exact = malloc(len);
	if (exact == NULL)
		abort();
	if (http_connect_encode(exact, len - 1, &l.dst, user, password) != 0)
		abort();
	for (size_t i = 0; l.has_user && i < len - 1; i++)
		if (exact[i] != 0)
			abort();
	if (http_connect_encode(exact, len, &l.dst, user, password) != len ||
	    memcmp(exact, out, len) != 0)
		abort();
	free(exact);
	free(out);
}

/* The stream, with the padding field inserted after its first line. */
static uint8_t *
build(const uint8_t *s, size_t slen, size_t pad, size_t *len)
{
	const uint8_t *lf = memchr(s, '\n', slen);
	size_t at = lf == NULL ? slen : (size_t)(lf - s) + 1;
	uint8_t *b;

	*len = slen + (pad > 0 ? pad + 9 : 0);
	b = malloc(*len > 0 ? *len : 1);
	if (b == NULL)
		abort();
	memcpy(b, s, at);
	if (pad > 0) {
		memcpy(b + at, "X-Pad: ", 7);
		memset(b + at + 7, 'p', pad);
		memcpy(b + at + 7 + pad, "\r\n", 2);
	}
	memcpy(b + *len - (slen - at), s + at, slen - at);
	return b;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *in;
	size_t len;

	if (size < 1)
		return 0;
	in = build(data + 1, size - 1, (size_t)data[0] * 64, &len);
	check_response(in, len);
	free(in);
	check_encoder(data + 1, size - 1);
	return 0;
}
