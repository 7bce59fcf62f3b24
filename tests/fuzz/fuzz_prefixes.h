/*
 * Shared by the codec fuzz targets: every prefix of the input, each in a
 * buffer that ends exactly where the prefix does (so ASan sees any
 * over-read), must keep the first verdict that is not INCOMPLETE. So no
 * prefix of a good message is an error, and no error is undone by more
 * bytes.
 */
#ifndef SOCKS5D_FUZZ_PREFIXES_H
#define SOCKS5D_FUZZ_PREFIXES_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A parse's status (the codec's enum, as an int) and what it consumed. */
struct fuzz_verdict {
	int st;
	size_t consumed;
};

/* One parse, with whatever invariants the target checks on its result. */
typedef struct fuzz_verdict fuzz_parse_fn(const uint8_t *buf, size_t len);

/* Prefixes up to bound (a longer input is never INCOMPLETE), then the
 * whole input. */
static inline void
fuzz_check_prefixes(fuzz_parse_fn *parse, const uint8_t *data, size_t size,
    size_t bound, int incomplete)
{
	size_t n = size < bound ? size : bound;
	uint8_t *tmp = malloc(n ? n : 1);
	struct fuzz_verdict first = { incomplete, 0 }, v;

	if (tmp == NULL)
		abort();
	for (size_t l = 0; l <= n; l++) {
		memcpy(tmp + n - l, data, l);
		v = parse(tmp + n - l, l);
		if (first.st == incomplete)
			first = v;
		else if (v.st != first.st || v.consumed != first.consumed)
			abort();
	}
	free(tmp);
	v = parse(data, size);
	if (first.st != incomplete &&
	    (v.st != first.st || v.consumed != first.consumed))
		abort();
}

#endif
