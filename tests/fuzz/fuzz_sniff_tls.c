/*
 * libFuzzer target: the TLS ClientHello sniffer. sniff_tls_client_hello on
 * the input's prefixes (each ending where its buffer does) must keep its
 * first verdict and, once FOUND, the same answer; the input as a
 * ClientHello body, parsed directly and through records of a size its
 * first byte picks, must agree; sniff_name_set on the input, and again on
 * its own output, must agree with itself.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "socks5d/sniff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Prefixes longer than this are not all tried: quadratic. */
#define PREFIX_BOUND    1024

/* What any answer promises: strings that end, a name that is a name. */
static void
check_info(const struct sniff_info *i, enum sniff_result r)
{
	size_t n, k;

	if (r != SNIFF_NEED_MORE && r != SNIFF_FOUND && r != SNIFF_NONE)
		abort();
	if (memchr(i->name, '\0', sizeof(i->name)) == NULL ||
	    memchr(i->alpn, '\0', sizeof(i->alpn)) == NULL || i->several_hosts)
		abort();
	n = strlen(i->name);
	if (n > 253 || (n > 0 && (i->name_is_ip || i->name[0] == '.' ||
	    i->name[n - 1] == '.' || strstr(i->name, "..") != NULL)))
		abort();
	for (k = 0; k < n; k++)
		if (strchr("abcdefghijklmnopqrstuvwxyz0123456789-_.",
		    i->name[k]) == NULL)
			abort();
	for (k = 0; i->alpn[k] != '\0'; k++)
		if (i->alpn[k] <= ' ' || i->alpn[k] >= 0x7f)
			abort();
	if (r != SNIFF_FOUND && (n > 0 || i->alpn[0] != '\0' ||
	    i->name_is_ip || i->ech))
		abort();
}

static void
check_prefixes(const uint8_t *data, size_t size)
{
	static struct sniff_info first, info;
	size_t n = size < PREFIX_BOUND ? size : PREFIX_BOUND, l;
	enum sniff_result decided = SNIFF_NEED_MORE, r;
	uint8_t *tmp = malloc(n ? n : 1);

	if (tmp == NULL)
		abort();
	for (l = 0; l <= n; l++) {
		memcpy(tmp + n - l, data, l);
		r = sniff_tls_client_hello(tmp + n - l, l, &info);
		check_info(&info, r);
		if (decided == SNIFF_NEED_MORE) {
			decided = r;
			first = info;
		} else if (r != decided ||
		    memcmp(&info, &first, sizeof(info)) != 0)
			abort();
	}
	free(tmp);
	r = sniff_tls_client_hello(data, size, &info);
	check_info(&info, r);
	if (decided != SNIFF_NEED_MORE && (r != decided ||
	    memcmp(&info, &first, sizeof(info)) != 0))
		abort();
}

/* data[1..] as a ClientHello body: the same straight and in records. */
static void
check_body(const uint8_t *data, size_t size)
{
	static struct sniff_info direct, framed;
	size_t frag, blen, n = 0, off, k;
	enum sniff_result a, b;
	uint8_t *rec;

	if (size < 1 || size - 1 > SNIFF_TLS_HELLO_MAX - 4)
		return;
	frag = ((size_t)data[0] + 1) * 8;
	blen = size - 1;
	a = sniff_tls_hello_body(data + 1, blen, &direct);
	check_info(&direct, a);
	if (a == SNIFF_NEED_MORE)
		abort();
	if ((rec = malloc(4 + blen + 5 * (blen / frag + 2))) == NULL)
		abort();
	for (off = 0; off < 4 + blen; off += k) {
		k = 4 + blen - off < frag ? 4 + blen - off : frag;
		rec[n++] = 22;
		rec[n++] = 3;
		rec[n++] = 1;
		rec[n++] = (uint8_t)(k >> 8);
		rec[n++] = (uint8_t)k;
		for (size_t i = off; i < off + k; i++)
			rec[n++] = i == 0 ? 1 : i == 1 ? (uint8_t)(blen >> 16) :
			    i == 2 ? (uint8_t)(blen >> 8) : i == 3 ?
			    (uint8_t)blen : data[i - 3];
	}
	b = sniff_tls_client_hello(rec, n, &framed);
	free(rec);
	if (a != b || memcmp(&direct, &framed, sizeof(direct)) != 0)
		abort();
}

/* Whatever name is kept, stored again, is kept as it is. */
static void
check_name(const uint8_t *data, size_t size)
{
	static struct sniff_info a, b;
	bool ok;

	memset(&a, 0, sizeof(a));
	ok = sniff_name_set(&a, data, size);
	check_info(&a, SNIFF_FOUND);
	if (ok != (a.name[0] != '\0' || a.name_is_ip))
		abort();
	if (a.name[0] == '\0')
		return;
	memset(&b, 0, sizeof(b));
	if (!sniff_name_set(&b, (const uint8_t *)a.name, strlen(a.name)) ||
	    strcmp(a.name, b.name) != 0 || b.name_is_ip)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_prefixes(data, size);
	check_body(data, size);
	check_name(data, size);
	return 0;
}
