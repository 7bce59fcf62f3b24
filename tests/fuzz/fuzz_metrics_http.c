/*
 * libFuzzer target: metrics_http_parse on the input and on its prefixes,
 * each in a buffer that ends where the prefix does. A prefix that is not
 * INCOMPLETE must give the same verdict as the whole input: a complete
 * head (or a malformed one) is final whatever follows it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "socks5d/metrics_http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static enum metrics_http_status
parse_copy(const uint8_t *data, size_t len, struct metrics_http_request *req)
{
	char *buf = malloc(len ? len : 1);
	enum metrics_http_status st;

	if (buf == NULL)
		abort();
	memcpy(buf, data, len);
	memset(req, 0, sizeof(*req));
	st = metrics_http_parse(buf, len, req);
	if (st == METRICS_HTTP_OK) {
		if (req->head_len == 0 || req->head_len > len ||
		    req->head_len > METRICS_HTTP_HEAD_MAX ||
		    req->method < buf || req->method + req->method_len >
		    buf + req->head_len ||
		    req->path < buf || req->path + req->path_len >
		    buf + req->head_len)
			abort();
	}
	free(buf);
	return st;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct metrics_http_request req, full_req;
	enum metrics_http_status full, st, first = METRICS_HTTP_INCOMPLETE;
	size_t len, step, first_len = 0;

	if (size > 2 * METRICS_HTTP_HEAD_MAX)
		return 0;
	full = parse_copy(data, size, &full_req);
	/* Prefixes: every length for short inputs, a stride for long ones. */
	step = size <= 512 ? 1 : size / 256;
	for (len = 0; len < size; len += step) {
		st = parse_copy(data, len, &req);
		if (first == METRICS_HTTP_INCOMPLETE && st !=
		    METRICS_HTTP_INCOMPLETE) {
			first = st;
			first_len = len;
		}
	}
	if (first != METRICS_HTTP_INCOMPLETE && full != first)
		abort();
	if (first == METRICS_HTTP_OK) {
		(void)parse_copy(data, first_len, &req);
		if (req.head_len != full_req.head_len)
			abort();
	}
	if (size > METRICS_HTTP_HEAD_MAX && full == METRICS_HTTP_INCOMPLETE)
		abort();
	return 0;
}
