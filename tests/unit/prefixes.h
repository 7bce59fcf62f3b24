/*
 * Shared by the codec unit tests: a message fed in every prefix, each in a
 * heap buffer of exactly its size so ASan catches a read past it, and then
 * whole with the client's next bytes behind it. Include after cmocka.h.
 */
#ifndef SOCKS5D_TEST_PREFIXES_H
#define SOCKS5D_TEST_PREFIXES_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A codec's parse call, its status as an int and *consumed on success. */
typedef int prefix_parse_fn(const uint8_t *buf, size_t len, size_t *consumed);

/* The codec's INCOMPLETE and OK status values. */
struct prefix_codes {
	int incomplete;
	int ok;
};

/*
 * Prefixes shorter than `at` (one past the byte that decides) must be
 * INCOMPLETE, the rest must give `want`. When want is OK, the whole message
 * is consumed exactly, also with after[0..after_len) behind it.
 */
static inline void
check_every_prefix(prefix_parse_fn *fn, struct prefix_codes codes,
    const uint8_t *msg, size_t len, size_t at, int want,
    const uint8_t *after, size_t after_len)
{
	size_t consumed;
	uint8_t *buf;

	for (size_t i = 0; i <= len; i++) {
		buf = malloc(i > 0 ? i : 1);
		assert_non_null(buf);
		memcpy(buf, msg, i);
		consumed = 12345;
		assert_int_equal(fn(buf, i, &consumed),
		    i < at ? codes.incomplete : want);
		if (i == len && want == codes.ok)
			assert_int_equal(consumed, len);
		free(buf);
	}
	if (want != codes.ok)
		return;
	buf = malloc(len + after_len);
	assert_non_null(buf);
	memcpy(buf, msg, len);
	memcpy(buf + len, after, after_len);
	assert_int_equal(fn(buf, len + after_len, &consumed), codes.ok);
	assert_int_equal(consumed, len);
	free(buf);
}

#endif
