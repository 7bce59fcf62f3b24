/*
 * libFuzzer target: the HTTP/1.x proxy codec. http_parse_request on the
 * input and its prefixes, each in a buffer that ends where the prefix
 * does; on a good head, the field helpers, the Basic credentials and the
 * origin head, which must itself be a well-formed head framed as the
 * request was.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "socks5d/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Big: one per parse call would not fit libFuzzer's stack comfortably. */
static struct http_request req, prefix_req, reparsed;

static int
is_ows(char c)
{
	return c == ' ' || c == '\t';
}

static int
within(const char *p, size_t n, const uint8_t *buf, size_t len)
{
	return (const uint8_t *)p >= buf && n <= len &&
	    (const uint8_t *)p - buf <= (ptrdiff_t)(len - n);
}

/* What an OK parse promises, checked on its own terms. */
static void
check_request(const struct http_request *r, const uint8_t *buf, size_t len)
{
	const struct http_field *f;

	if (r->head_len == 0 || r->head_len > len ||
	    r->head_len > HTTP_HEAD_MAX || r->nfields > HTTP_HEADERS_MAX ||
	    r->version_minor > 1 || r->method_len == 0 ||
	    !within(r->method, r->method_len, buf, r->head_len))
		abort();
	if (r->content_length < -1 || (r->chunked && r->content_length != -1))
		abort();
	switch (r->dst.atyp) {
	case SOCKS5_ATYP_NAME:
		if (strnlen(r->dst.u.name, sizeof(r->dst.u.name)) == 0 ||
		    strnlen(r->dst.u.name, sizeof(r->dst.u.name)) >
		    HTTP_HOST_MAX)
			abort();
		break;
	case SOCKS5_ATYP_IPV4:
	case SOCKS5_ATYP_IPV6:
		break;
	default:
		abort();
	}
	if (r->dst.port == 0)
		abort();
	if (r->form == HTTP_FORM_AUTHORITY) {
		if (r->path != NULL || r->method_len != 7 ||
		    memcmp(r->method, "CONNECT", 7) != 0)
			abort();
	} else if (r->form == HTTP_FORM_ABSOLUTE) {
		if (r->path == NULL || r->path_len == 0 ||
		    (r->path[0] != '/' && r->path[0] != '?') ||
		    (r->path_len > 1 &&
		    !within(r->path, r->path_len, buf, r->head_len)))
			abort();
	} else {
		abort();
	}
	for (size_t k = 0; k < r->nfields; k++) {
		f = &r->fields[k];
		if (f->name_len == 0 ||
		    !within(f->name, f->name_len, buf, r->head_len) ||
		    !within(f->value, f->value_len, buf, r->head_len) ||
		    memchr(f->value, '\r', f->value_len) != NULL ||
		    memchr(f->value, '\n', f->value_len) != NULL ||
		    memchr(f->value, '\0', f->value_len) != NULL ||
		    (f->value_len > 0 && (is_ows(f->value[0]) ||
		    is_ows(f->value[f->value_len - 1]))))
			abort();
	}
}

/*
 * Parse a copy of data in a buffer that ends where it does, so ASan sees
 * any over-read. The copy is returned through keep (for r to point into)
 * or freed.
 */
static enum http_status
parse_copy(const uint8_t *data, size_t len, struct http_request *r,
    uint8_t **keep)
{
	uint8_t *buf = malloc(len ? len : 1);
	enum http_status st;

	if (buf == NULL)
		abort();
	memcpy(buf, data, len);
	st = http_parse_request(buf, len, r);
	if (st == HTTP_OK)
		check_request(r, buf, len);
	else if (st != HTTP_INCOMPLETE && http_status_code(st) == 0)
		abort();
	if (st == HTTP_INCOMPLETE && len >= HTTP_HEAD_MAX)
		abort();
	if (keep != NULL)
		*keep = buf;
	else
		free(buf);
	return st;
}

/* Both framings must agree: the origin may not read another body. */
static void
check_same_framing(const struct http_request *a, const struct http_request *b)
{
	if (a->content_length != b->content_length || a->chunked != b->chunked)
		abort();
}

/*
 * The origin head: no CR or LF but in line ends, one empty line at the
 * very end, no hop-by-hop fields left. Given back an absolute-form target
 * it must parse again, framed the same.
 */
static void
check_origin(const struct http_request *r)
{
	static const char via[] = "socks5d";
	const size_t cap = HTTP_ORIGIN_HEAD_MAX;
	uint8_t *out = malloc(cap), *again;
	const uint8_t *end;
	size_t len, sp, alen;
	enum http_status st;

	if (out == NULL)
		abort();
	len = http_encode_origin_request(r, via, out, cap);
	if (len == 0 || len > cap || len < 4 ||
	    memcmp(out + len - 4, "\r\n\r\n", 4) != 0)
		abort();
	end = memmem(out, len, "\r\n\r\n", 4);
	if (end != out + len - 4 || memchr(out, '\0', len) != NULL)
		abort();
	for (size_t i = 0; i < len; i++) {
		if (out[i] == '\r' && (i + 1 == len || out[i + 1] != '\n'))
			abort();
		if (out[i] == '\n' && (i == 0 || out[i - 1] != '\r'))
			abort();
	}
	/* One byte short never writes a truncated head. */
	if (http_encode_origin_request(r, via, out, len - 1) != 0)
		abort();

	/* "METHOD /path" becomes "METHOD http://h/path" and parses OK,
	 * unless the three fields we add pushed it over a limit. */
	sp = r->method_len + 1;
	alen = len + 8;
	if ((again = malloc(alen)) == NULL)
		abort();
	memcpy(again, out, sp);
	memcpy(again + sp, "http://h", 8);
	memcpy(again + sp + 8, out + sp, len - sp);
	st = http_parse_request(again, alen, &reparsed);
	if (st == HTTP_OK) {
		check_request(&reparsed, again, alen);
		check_same_framing(r, &reparsed);
		if (reparsed.head_len != alen || reparsed.version_minor != 1 ||
		    http_find_field(&reparsed, "Proxy-Authorization") ||
		    http_find_field(&reparsed, "Proxy-Connection") ||
		    http_find_field(&reparsed, "Keep-Alive") ||
		    http_find_field(&reparsed, "TE") ||
		    http_find_field(&reparsed, "Trailer") ||
		    http_find_field(&reparsed, "Host") == NULL ||
		    http_find_field(&reparsed, "Connection") == NULL ||
		    (http_find_field(&reparsed, "Upgrade") != NULL) !=
		    http_is_websocket(r) ||
		    http_is_websocket(&reparsed) != http_is_websocket(r))
			abort();
	} else if (st != HTTP_TOO_LARGE) {
		abort();
	}
	free(again);
	free(out);
}

static void
check_helpers(const struct http_request *r, const uint8_t *data, size_t size)
{
	char user[256], password[256], token[16];
	const struct http_field *f;
	size_t tlen = size < sizeof(token) - 1 ? size : sizeof(token) - 1;

	if (http_basic_credentials(r, user, password)) {
		if (strnlen(user, sizeof(user)) > HTTP_CREDENTIAL_MAX ||
		    strnlen(password, sizeof(password)) > HTTP_CREDENTIAL_MAX)
			abort();
	} else if (user[0] != '\0' || password[0] != '\0') {
		abort();
	}
	(void)http_is_websocket(r);
	/* A token from the input itself, so that some lists hold it. */
	memcpy(token, data, tlen);
	token[tlen] = '\0';
	for (size_t k = 0; k < r->nfields; k++) {
		f = &r->fields[k];
		(void)http_list_has(f->value, f->value_len, token);
		(void)http_list_has(f->value, f->value_len, "chunked");
	}
	if (r->nfields > 0) {
		char name[64];
		size_t n = r->fields[0].name_len < sizeof(name) - 1 ?
		    r->fields[0].name_len : sizeof(name) - 1;

		memcpy(name, r->fields[0].name, n);
		name[n] = '\0';
		if (n == r->fields[0].name_len &&
		    http_find_field(r, name) != &r->fields[0])
			abort();
	}
}

/* Every status we send: exact fit works, one byte short does not. */
static void
check_responses(const uint8_t *data, size_t size)
{
	static const int statuses[] = {
		200, 400, 403, 405, 407, 431, 500, 501, 502, 503, 504, 505,
	};
	uint8_t out[512];
	int status;
	size_t len;

	status = statuses[(size > 0 ? data[0] : 0) % 12];
	len = http_encode_response(out, sizeof(out), status, "X-A: 1\r\n");
	if (len == 0 || http_encode_response(out, len, status, "X-A: 1\r\n")
	    != len || http_encode_response(out, len - 1, status,
	    "X-A: 1\r\n") != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum http_status full, st, first = HTTP_INCOMPLETE;
	size_t len, step;
	uint8_t *buf;

	if (size > 2 * HTTP_HEAD_MAX)
		return 0;
	check_responses(data, size);
	full = parse_copy(data, size, &req, &buf);

	/*
	 * Prefixes: every length for short inputs, a stride for long ones.
	 * Until the first verdict every prefix is INCOMPLETE; from then on
	 * every one gives that verdict, however the reads were split.
	 */
	step = size <= 1024 ? 1 : size / 512;
	for (len = 0; len < size; len += step) {
		st = parse_copy(data, len, &prefix_req, NULL);
		if (first == HTTP_INCOMPLETE) {
			if (st != HTTP_INCOMPLETE) {
				first = st;
				if (st != full)
					abort();
			}
		} else if (st != first) {
			abort();
		}
		if (st == HTTP_OK && prefix_req.head_len != req.head_len)
			abort();
		if (full == HTTP_OK && len < req.head_len &&
		    st != HTTP_INCOMPLETE)
			abort();
	}

	if (full == HTTP_OK) {
		/* The stride may have stepped over the end of the head. */
		if (parse_copy(data, req.head_len - 1, &prefix_req, NULL) !=
		    HTTP_INCOMPLETE ||
		    parse_copy(data, req.head_len, &prefix_req, NULL) !=
		    HTTP_OK || prefix_req.head_len != req.head_len)
			abort();
		check_helpers(&req, data, size);
		if (req.form == HTTP_FORM_ABSOLUTE)
			check_origin(&req);
		else if (http_encode_origin_request(&req, NULL,
		    (uint8_t[1]){ 0 }, 1) != 0)
			abort();
	}
	free(buf);
	return 0;
}
