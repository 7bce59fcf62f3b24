/*
 * libFuzzer target: the control socket's codec. control_parse_request on
 * the input in a buffer of exactly its size; on success what a parse
 * promises, and the canonical line parsed again to the same request; kill
 * client addresses agree with the config's CIDR parser either way. A
 * record-looking input goes through control_parse_record and back through
 * the formatter; the input as a value and as an end reason round-trips.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "socks5d/cidr.h"
#include "socks5d/control_proto.h"

#define FIELDS_MAX	64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct control_request req, again;

static bool
is_word(const char *s)
{
	size_t len = strnlen(s, CONTROL_ARG_MAX + 1);

	if (len > CONTROL_ARG_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
			return false;
	return true;
}

static bool
cidr_ok(const char *text)
{
	struct cidr_set c = { 0 };
	int rc = cidr_set_add(&c, text);

	cidr_set_release(&c);
	return rc == 0;
}

/* A kill-client request's own network address, as a client's. */
static const struct sockaddr *
network(const struct control_request *r)
{
	static struct sockaddr_in6 in6;
	static struct sockaddr_in in;

	if (r->family == AF_INET) {
		in.sin_family = AF_INET;
		memcpy(&in.sin_addr, r->addr, 4);
		return (const struct sockaddr *)&in;
	}
	in6.sin6_family = AF_INET6;
	memcpy(&in6.sin6_addr, r->addr, 16);
	return (const struct sockaddr *)&in6;
}

/* The request written back the way ctl writes it. */
static int
render(const struct control_request *r, char *out, size_t cap)
{
	static const char *const kinds[] = { "", "", "user ", "client " };

	switch (r->cmd) {
	case CONTROL_CMD_SESSIONS:
		return snprintf(out, cap, "v1 sessions\n");
	case CONTROL_CMD_USERS:
		return snprintf(out, cap, "v1 users\n");
	case CONTROL_CMD_PING:
		return snprintf(out, cap, "v1 ping\n");
	case CONTROL_CMD_KILL:
		if (r->kill == CONTROL_KILL_NONE)
			abort();
		return snprintf(out, cap, "v1 kill %s%s\n", kinds[r->kill],
		    r->arg1);
	case CONTROL_CMD_QUOTA_RESET:
		return snprintf(out, cap, "v1 quota reset %s%s%s\n", r->arg1,
		    r->arg2[0] != '\0' ? " " : "", r->arg2);
	default:
		abort();
	}
}

static void
check_request(size_t size)
{
	char line[2 * CONTROL_LINE_MAX], id[48];
	const char *why = NULL;
	int len;

	if (!is_word(req.arg1) || !is_word(req.arg2) ||
	    (req.cmd == CONTROL_CMD_KILL) != (req.kill != CONTROL_KILL_NONE) ||
	    (req.arg1[0] == '\0') != (req.cmd != CONTROL_CMD_KILL &&
	    req.cmd != CONTROL_CMD_QUOTA_RESET))
		abort();
	len = render(&req, line, sizeof(line));
	if (len <= 0 || (size_t)len > size + 1 ||
	    control_parse_request(line, (size_t)len, &again, &why) != 0 ||
	    memcmp(&req, &again, sizeof(req)) != 0)
		abort();
	if (req.kill == CONTROL_KILL_ID) {
		snprintf(id, sizeof(id), "v1 kill %" PRId32 ".%" PRIu64,
		    req.id_pid, req.id_seq);
		if (req.id_pid <= 0 || control_parse_request(id, strlen(id),
		    &again, &why) != 0 || again.id_pid != req.id_pid ||
		    again.id_seq != req.id_seq)
			abort();
	}
	if (req.kill == CONTROL_KILL_CLIENT &&
	    (!cidr_ok(req.arg1) || req.prefix > (req.family == AF_INET ?
	    32u : 128u) || !control_client_match(&req, network(&req))))
		abort();
}

/* A refused address must be one the config refuses too. */
static void
check_refused(const uint8_t *data, size_t size, const char *why)
{
	char word[CONTROL_LINE_MAX];
	size_t end = size, start;

	if (why == NULL || why[0] == '\0' || req.cmd != CONTROL_CMD_NONE ||
	    strpbrk(why, "\r\n") != NULL)
		abort();
	if (strcmp(why, "bad client address or CIDR") != 0)
		return;
	if (end > 0 && data[end - 1] == '\n')
		end--;
	if (end > 0 && data[end - 1] == '\r')
		end--;
	for (start = end; start > 0 && data[start - 1] != ' ' &&
	    data[start - 1] != '\t'; start--)
		;
	memcpy(word, data + start, end - start);
	word[end - start] = '\0';
	if (cidr_ok(word))
		abort();
}

/* Parsed, formatted again, parsed again: the same record, and the second
 * formatting is byte for byte the first. */
static void
check_record(const uint8_t *data, size_t size)
{
	static char buf[CONTROL_LINE_MAX * 8], out[3][CONTROL_LINE_MAX * 8];
	static struct control_field f[2][FIELDS_MAX];
	struct control_record rec;
	const char *type[2];
	size_t n[2];

	memcpy(buf, data, size);
	buf[size] = '\0';
	if (control_parse_record(buf, f[0], FIELDS_MAX, &n[0], &type[0]) != 0)
		return;
	for (int pass = 0; pass < 2; pass++) {
		const struct control_field *src = f[pass];

		control_record_begin(&rec, out[pass], sizeof(out[pass]),
		    type[pass]);
		for (size_t i = 0; i < n[pass]; i++)
			control_record_mem(&rec, src[i].key, src[i].value,
			    src[i].value_len);
		if (control_record_end(&rec) != 0 ||
		    rec.len != strlen(out[pass]))
			abort();
		if (pass == 1)
			break;
		memcpy(out[2], out[0], rec.len + 1);
		if (control_parse_record(out[2], f[1], FIELDS_MAX, &n[1],
		    &type[1]) != 0 || n[1] != n[0] ||
		    strcmp(type[0], type[1]) != 0)
			abort();
		for (size_t i = 0; i < n[0]; i++)
			if (strcmp(f[0][i].key, f[1][i].key) != 0 ||
			    f[0][i].value_len != f[1][i].value_len ||
			    memcmp(f[0][i].value, f[1][i].value,
			    f[0][i].value_len) != 0)
				abort();
	}
	if (strcmp(out[0], out[1]) != 0)
		abort();
}

/* Any bytes as a value, in a buffer that may be too small; any text as
 * an end reason. */
static void
check_value(const uint8_t *data, size_t size)
{
	static char buf[CONTROL_LINE_MAX * 8];
	size_t cap = size > 0 ? (size_t)data[0] * 8 : 64, n;
	struct control_record rec;
	struct control_field f;
	const char *type, *reason;
	bool ok;

	control_record_begin(&rec, buf, cap, "t");
	control_record_mem(&rec, "k", data, size);
	if (control_record_end(&rec) == 0) {
		if (control_parse_record(buf, &f, 1, &n, &type) != 0 ||
		    n != 1 || f.value_len != size ||
		    memcmp(f.value, data, size) != 0)
			abort();
	} else if (cap > 5 + 3 * size) {
		abort();
	}
	memcpy(buf, data, size);
	buf[size] = '\0';
	n = control_format_end(buf + size + 1, cap, false, buf);
	if ((n == 0) != (cap < 11) ||
	    (n > 0 && (control_parse_end(buf + size + 1, &ok, &reason) != 0 ||
	    ok || strpbrk(reason, "\r\n") != NULL)))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *why = NULL;
	char *copy;

	if (size > 2 * CONTROL_LINE_MAX)
		return 0;
	if ((copy = malloc(size > 0 ? size : 1)) == NULL)
		abort();
	memcpy(copy, data, size);
	if (control_parse_request(copy, size, &req, &why) == 0)
		check_request(size);
	else
		check_refused(data, size, why);
	free(copy);
	if (memchr(data, '=', size) != NULL)
		check_record(data, size);
	check_value(data, size);
	return 0;
}
