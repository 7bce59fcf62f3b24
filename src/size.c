/*
 * Byte counts from config values: a decimal number and an optional binary
 * multiplier letter, with overflow refused rather than wrapped.
 */
#include <ctype.h>
#include <stdint.h>
#include <string.h>

#include "socks5d/size.h"

int
size_parse(const char *s, uint64_t *out)
{
	static const char units[] = "KMGT";
	const char *u;
	uint64_t v = 0;
	unsigned shift = 0;

	if (!isdigit((unsigned char)*s))
		return -1;
	for (; isdigit((unsigned char)*s); s++) {
		if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	if (*s != '\0') {
		u = strchr(units, toupper((unsigned char)*s));
		if (u == NULL || s[1] != '\0')
			return -1;
		shift = 10 * (unsigned)(u - units + 1);
		if (v > UINT64_MAX >> shift)
			return -1;
	}
	*out = v << shift;
	return 0;
}
