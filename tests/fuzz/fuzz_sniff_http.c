/*
 * libFuzzer target: the HTTP Host sniffer. sniff_http_host on the input's
 * prefixes (each ending where its buffer does) must keep its first
 * verdict and, once FOUND, the same answer, and every answer must be a
 * well-formed sniff_info.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "socks5d/sniff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Prefixes longer than this are not all tried: quadratic. */
#define PREFIX_BOUND    2048

static void
check_info(const struct sniff_info *i, enum sniff_result r)
{
	size_t n, k;

	if (r != SNIFF_NEED_MORE && r != SNIFF_FOUND && r != SNIFF_NONE)
		abort();
	if (memchr(i->name, '\0', sizeof(i->name)) == NULL ||
	    memchr(i->alpn, '\0', sizeof(i->alpn)) == NULL ||
	    i->alpn[0] != '\0' || i->ech)
		abort();
	n = strlen(i->name);
	if (n > 253 || (n > 0 && (i->name_is_ip || i->several_hosts ||
	    i->name[0] == '.' || i->name[n - 1] == '.' ||
	    strstr(i->name, "..") != NULL)))
		abort();
	if (i->several_hosts && i->name_is_ip)
		abort();
	for (k = 0; k < n; k++)
		if (strchr("abcdefghijklmnopqrstuvwxyz0123456789-_.",
		    i->name[k]) == NULL)
			abort();
	if (r != SNIFF_FOUND && (n > 0 || i->name_is_ip || i->several_hosts))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct sniff_info first, info;
	size_t n = size < PREFIX_BOUND ? size : PREFIX_BOUND, l;
	enum sniff_result decided = SNIFF_NEED_MORE, r;
	uint8_t *tmp = malloc(n ? n : 1);

	if (tmp == NULL)
		abort();
	for (l = 0; l <= n; l++) {
		memcpy(tmp + n - l, data, l);
		r = sniff_http_host(tmp + n - l, l, &info);
		check_info(&info, r);
		if (decided == SNIFF_NEED_MORE) {
			decided = r;
			first = info;
		} else if (r != decided ||
		    memcmp(&info, &first, sizeof(info)) != 0)
			abort();
	}
	free(tmp);
	r = sniff_http_host(data, size, &info);
	check_info(&info, r);
	if (decided != SNIFF_NEED_MORE && (r != decided ||
	    memcmp(&info, &first, sizeof(info)) != 0))
		abort();
	/* A request line past its limit can never be waited on. */
	if (r == SNIFF_NEED_MORE && size > SNIFF_HTTP_LINE_MAX + 64 &&
	    memchr(data, '\n', SNIFF_HTTP_LINE_MAX + 64) == NULL)
		abort();
	return 0;
}
