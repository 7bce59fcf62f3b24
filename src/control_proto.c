/*
 * The control socket's wire codec: request lines in, percent-encoded
 * "TYPE key=value" records and the "end" line out, and the client's parser
 * of those records. Pure: no I/O, no allocation, no clock.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "socks5d/control_proto.h"
#include "socks5d/quota.h"

/* One word of a request line: not NUL-terminated. */
struct control_word {
	const char	*w;
	size_t		 len;
};

static bool
control_word_is(const struct control_word *w, const char *s)
{
	return w->len == strlen(s) && memcmp(w->w, s, w->len) == 0;
}

static void
control_word_copy(char *dst, const struct control_word *w)
{
	memcpy(dst, w->w, w->len);
	dst[w->len] = '\0';
}

/* Digits only, no sign, at most max (no overflow). */
static int
control_number(const char *s, size_t len, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9' ||
		    v > (max - (uint64_t)(s[i] - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return len > 0 ? 0 : -1;
}

/* "PID.N", as the daemon names sessions. */
static int
control_parse_id(const struct control_word *w, struct control_request *out)
{
	const char *dot = memchr(w->w, '.', w->len);
	uint64_t pid;

	if (dot == NULL ||
	    control_number(w->w, (size_t)(dot - w->w), INT32_MAX, &pid) == -1 ||
	    pid == 0 || control_number(dot + 1, w->len - (size_t)(dot - w->w) -
	    1, UINT64_MAX, &out->id_seq) == -1)
		return -1;
	out->id_pid = (int32_t)pid;
	return 0;
}

static void
control_clear_host_bits(uint8_t addr[16], unsigned prefix)
{
	for (unsigned i = prefix / 8; i < 16; i++, prefix = 0)
		addr[i] &= (uint8_t)(0xff00u >> (prefix % 8));
}

/* ::ffff:a.b.c.d is IPv4: one spelling for each address. */
static bool
control_unmap(uint8_t a[16], int *family)
{
	static const uint8_t mapped[12] = {
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
	};

	if (*family != AF_INET6 || memcmp(a, mapped, sizeof(mapped)) != 0)
		return false;
	memmove(a, a + 12, 4);
	memset(a + 4, 0, 12);
	*family = AF_INET;
	return true;
}

/* An IPv4 or IPv6 address, bare or with "/n": the texts a config CIDR
 * list takes (cidr_set_add), parsed without allocating. */
static int
control_parse_cidr(const struct control_word *w, struct control_request *out)
{
	const char *slash = memchr(w->w, '/', w->len);
	size_t alen = slash != NULL ? (size_t)(slash - w->w) : w->len;
	char text[INET6_ADDRSTRLEN];
	uint64_t bits = 0;

	if (alen >= sizeof(text))
		return -1;
	memcpy(text, w->w, alen);
	text[alen] = '\0';
	if (inet_pton(AF_INET, text, out->addr) == 1)
		out->family = AF_INET;
	else if (inet_pton(AF_INET6, text, out->addr) == 1)
		out->family = AF_INET6;
	else
		return -1;
	out->prefix = out->family == AF_INET ? 32 : 128;
	if (slash != NULL && (w->len - alen - 1 > 5 || control_number(slash +
	    1, w->len - alen - 1, out->prefix, &bits) == -1))
		return -1;
	out->prefix = slash != NULL ? (unsigned)bits : out->prefix;
	if (out->prefix >= 96 && control_unmap(out->addr, &out->family))
		out->prefix -= 96;
	control_clear_host_bits(out->addr, out->prefix);
	return 0;
}

/* On any error: out says no command, *why says why. */
static int
control_fail(struct control_request *out, const char **why, const char *r)
{
	out->cmd = CONTROL_CMD_NONE;
	out->kill = CONTROL_KILL_NONE;
	*why = r;
	return -1;
}

/* Split into words, refusing the bytes no request holds. */
static int
control_split(const char *line, size_t len, struct control_word *words,
    size_t *n, struct control_request *out, const char **why)
{
	size_t start = 0;

	*n = 0;
	for (size_t i = 0; i < len; i++) {
		if (line[i] == '\0')
			return control_fail(out, why, "NUL byte in request");
		if (((unsigned char)line[i] < 0x20 && line[i] != '\t') ||
		    line[i] == 0x7f)
			return control_fail(out, why,
			    "control character in request");
	}
	if (len == 0)
		return control_fail(out, why, "empty request");
	for (size_t i = 0; i <= len; i++) {
		if (i < len && line[i] != ' ' && line[i] != '\t')
			continue;
		if (i == start)
			return control_fail(out, why,
			    "empty word (one space or tab between words)");
		if (*n == CONTROL_WORDS_MAX)
			return control_fail(out, why, "too many arguments");
		words[*n].w = line + start;
		words[(*n)++].len = i - start;
		start = i + 1;
	}
	return 0;
}

/* a[0..nargs): the words after "kill". */
static int
control_parse_kill(const struct control_word *a, size_t nargs,
    struct control_request *out, const char **why)
{
	bool user = nargs > 0 && control_word_is(&a[0], "user");
	bool client = nargs > 0 && control_word_is(&a[0], "client");

	if (nargs == 0 || ((user || client) && nargs == 1))
		return control_fail(out, why, user ? "missing user name" :
		    client ? "missing client address" : "missing session id");
	if (nargs > (user || client ? 2u : 1u))
		return control_fail(out, why, "too many arguments");
	out->kill = user ? CONTROL_KILL_USER : client ? CONTROL_KILL_CLIENT :
	    CONTROL_KILL_ID;
	control_word_copy(out->arg1, &a[nargs - 1]);
	if (out->kill == CONTROL_KILL_ID &&
	    control_parse_id(&a[nargs - 1], out) == -1)
		return control_fail(out, why, "bad session id (want PID.N)");
	if (client && control_parse_cidr(&a[nargs - 1], out) == -1)
		return control_fail(out, why, "bad client address or CIDR");
	return 0;
}

/* a[0..nargs): the words after "quota". */
static int
control_parse_quota_reset(const struct control_word *a, size_t nargs,
    struct control_request *out, const char **why)
{
	if (nargs == 0 || !control_word_is(&a[0], "reset"))
		return control_fail(out, why,
		    "unknown quota command (want quota reset)");
	if (nargs < 2 || nargs > 3)
		return control_fail(out, why, nargs < 2 ?
		    "missing user name" : "too many arguments");
	control_word_copy(out->arg1, &a[1]);
	if (nargs == 3)
		control_word_copy(out->arg2, &a[2]);
	if (nargs == 3 && !quotas_name_valid(out->arg2))
		return control_fail(out, why, "bad quota name");
	return 0;
}

int
control_parse_request(const char *line, size_t len,
    struct control_request *out, const char **why)
{
	struct control_word w[CONTROL_WORDS_MAX];
	bool lf = len > 0 && line[len - 1] == '\n';
	size_t n;

	memset(out, 0, sizeof(*out));
	/* Without its "\n" the line must leave room for one. */
	if (len + !lf > CONTROL_LINE_MAX)
		return control_fail(out, why, "request line too long");
	if (lf && --len > 0 && line[len - 1] == '\r')
		len--;
	if (control_split(line, len, w, &n, out, why) == -1)
		return -1;
	if (!control_word_is(&w[0], "v1"))
		return control_fail(out, why,
		    "unknown protocol version (want v1)");
	if (n == 1)
		return control_fail(out, why, "missing command");
	for (size_t i = 2; i < n; i++)
		if (w[i].len > CONTROL_ARG_MAX)
			return control_fail(out, why,
			    "argument longer than 255 bytes");
	if (control_word_is(&w[1], "kill")) {
		out->cmd = CONTROL_CMD_KILL;
		return control_parse_kill(w + 2, n - 2, out, why);
	}
	if (control_word_is(&w[1], "quota")) {
		out->cmd = CONTROL_CMD_QUOTA_RESET;
		return control_parse_quota_reset(w + 2, n - 2, out, why);
	}
	if (control_word_is(&w[1], "sessions"))
		out->cmd = CONTROL_CMD_SESSIONS;
	else if (control_word_is(&w[1], "users"))
		out->cmd = CONTROL_CMD_USERS;
	else if (control_word_is(&w[1], "ping"))
		out->cmd = CONTROL_CMD_PING;
	else
		return control_fail(out, why, "unknown command");
	return n > 2 ? control_fail(out, why, "too many arguments") : 0;
}

bool
control_client_match(const struct control_request *req,
    const struct sockaddr *sa)
{
	const struct sockaddr_in6 *in6 = (const void *)sa;
	const struct sockaddr_in *in = (const void *)sa;
	uint8_t a[16] = { 0 };
	int family = sa->sa_family;

	if (req->cmd != CONTROL_CMD_KILL || req->kill != CONTROL_KILL_CLIENT ||
	    (family != AF_INET && family != AF_INET6))
		return false;
	if (family == AF_INET)
		memcpy(a, &in->sin_addr, 4);
	else
		memcpy(a, &in6->sin6_addr, 16);
	control_unmap(a, &family);
	control_clear_host_bits(a, req->prefix);
	return family == req->family && memcmp(a, req->addr, 16) == 0;
}

/* Raw bytes, keeping room for the NUL. */
static void
control_record_put(struct control_record *rec, const char *s, size_t len)
{
	if (rec->overflow || len >= rec->cap - rec->len) {
		rec->overflow = true;
		return;
	}
	memcpy(rec->buf + rec->len, s, len);
	rec->len += len;
	rec->buf[rec->len] = '\0';
}

static bool
control_needs_encoding(unsigned char c)
{
	return c < 0x21 || c >= 0x7f || c == '%' || c == '=';
}

static void
control_record_encode(struct control_record *rec, const void *p, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *s = p;

	for (size_t i = 0; i < len && !rec->overflow; i++) {
		char esc[3] = { '%', hex[s[i] >> 4], hex[s[i] & 0xf] };

		if (control_needs_encoding(s[i]))
			control_record_put(rec, esc, 3);
		else
			control_record_put(rec, (const char *)s + i, 1);
	}
}

void
control_record_begin(struct control_record *rec, char *buf, size_t cap,
    const char *type)
{
	rec->buf = buf;
	rec->cap = cap;
	rec->len = 0;
	rec->overflow = cap == 0;
	if (cap > 0)
		buf[0] = '\0';
	control_record_encode(rec, type, strlen(type));
}

void
control_record_mem(struct control_record *rec, const char *key,
    const void *value, size_t len)
{
	control_record_put(rec, " ", 1);
	control_record_encode(rec, key, strlen(key));
	control_record_put(rec, "=", 1);
	control_record_encode(rec, value, len);
}

void
control_record_str(struct control_record *rec, const char *key,
    const char *value)
{
	control_record_mem(rec, key, value, value != NULL ? strlen(value) : 0);
}

void
control_record_u64(struct control_record *rec, const char *key, uint64_t v)
{
	char num[24];

	snprintf(num, sizeof(num), "%" PRIu64, v);
	control_record_str(rec, key, num);
}

void
control_record_double(struct control_record *rec, const char *key, double v)
{
	char num[400];	/* %f of DBL_MAX is 309 digits */
	size_t len;

	if (!isfinite(v))
		v = 0;
	len = (size_t)snprintf(num, sizeof(num), "%.3f", v);
	while (num[len - 1] == '0')
		num[--len] = '\0';
	if (num[len - 1] == '.')
		num[--len] = '\0';
	/* A small negative rounds to "-0". */
	control_record_str(rec, key, strcmp(num, "-0") == 0 ? "0" : num);
}

int
control_record_end(struct control_record *rec)
{
	control_record_put(rec, "\n", 1);
	if (rec->overflow) {
		rec->len = 0;
		if (rec->cap > 0)
			rec->buf[0] = '\0';
		return -1;
	}
	return 0;
}

size_t
control_format_end(char *buf, size_t cap, bool ok, const char *reason)
{
	const char *head = ok ? "end ok" : "end error";
	size_t len = strlen(head);

	if (cap < len + 2)
		return 0;
	memcpy(buf, head, len);
	/* Room for the space, one byte of reason, "\n" and the NUL. */
	if (!ok && reason != NULL && reason[0] != '\0' && cap >= len + 4) {
		buf[len++] = ' ';
		for (; *reason != '\0' && len + 2 < cap; reason++)
			buf[len++] = (unsigned char)*reason < 0x20 ||
			    *reason == 0x7f ? '?' : *reason;
	}
	buf[len++] = '\n';
	buf[len] = '\0';
	return len;
}

static int
control_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)(c | 0x20);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decode s[0..len) in place; returns the decoded length or -1. */
static long
control_decode(char *s, size_t len)
{
	size_t o = 0;
	int hi, lo;

	for (size_t i = 0; i < len; i++) {
		if (s[i] != '%') {
			s[o++] = s[i];
			continue;
		}
		if (len - i < 3 || (hi = control_hex(s[i + 1])) == -1 ||
		    (lo = control_hex(s[i + 2])) == -1)
			return -1;
		s[o++] = (char)(hi << 4 | lo);
		i += 2;
	}
	s[o] = '\0';
	return (long)o;
}

/* A type or key: not empty, and no NUL once decoded. */
static const char *
control_decode_name(char *s, size_t len)
{
	long n = control_decode(s, len);

	return n > 0 && strlen(s) == (size_t)n ? s : NULL;
}

int
control_parse_record(char *line, struct control_field *fields, size_t max,
    size_t *n, const char **type)
{
	size_t len = strlen(line), start, end;
	char *eq;
	long vlen;

	*n = 0;
	if (len > 0 && line[len - 1] == '\n')
		line[--len] = '\0';
	for (size_t i = 0; i < len; i++)
		if (line[i] != ' ' &&
		    control_needs_encoding((unsigned char)line[i]) &&
		    line[i] != '%' && line[i] != '=')
			return -1;
	end = strcspn(line, " ");
	if (memchr(line, '=', end) != NULL || (*type =
	    control_decode_name(line, end)) == NULL)
		return -1;
	for (start = end + 1; start <= len; start = end + 1) {
		end = start + strcspn(line + start, " ");
		eq = memchr(line + start, '=', end - start);
		if (*n == max || eq == NULL ||
		    memchr(eq + 1, '=', (size_t)(line + end - eq - 1)) != NULL)
			return -1;
		line[end] = '\0';
		vlen = control_decode(eq + 1, (size_t)(line + end - eq - 1));
		if (vlen == -1 || (fields[*n].key = control_decode_name(line +
		    start, (size_t)(eq - (line + start)))) == NULL)
			return -1;
		fields[*n].value = eq + 1;
		fields[(*n)++].value_len = (size_t)vlen;
	}
	return 0;
}

int
control_parse_end(char *line, bool *ok, const char **reason)
{
	size_t len = strlen(line);

	if (len > 0 && line[len - 1] == '\n')
		line[--len] = '\0';
	*ok = strcmp(line, "end ok") == 0;
	*reason = "";
	if (*ok || strcmp(line, "end error") == 0)
		return 0;
	if (strncmp(line, "end error ", 10) != 0)
		return -1;
	*reason = line + 10;
	return 0;
}
