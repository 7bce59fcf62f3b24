/*
 * Private helpers for sorted arrays of inclusive spans (CIDR sets, port
 * lists): growing the arrays, reading decimal bounds, and SPAN_FUNCS,
 * which defines sorting, merging and searching for one span type. Only
 * for the .c files that keep such arrays (cidr.c, rules.c).
 */
#ifndef SOCKS5D_SPAN_H
#define SOCKS5D_SPAN_H

#include <ctype.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

/* Room for want elements of size bytes; the old array survives a failure
 * (NULL is returned and *cap is left alone). */
static inline void *
span_reserve(void *v, size_t *cap, size_t want, size_t size)
{
	size_t ncap = *cap > 0 ? *cap : 8;

	if (want <= *cap)
		return v;
	while (ncap < want)
		ncap *= 2;
	v = reallocarray(v, ncap, size);
	if (v != NULL)
		*cap = ncap;
	return v;
}

/* A bound or prefix length of len chars: "0".."max", digits only, at most
 * five of them. Returns 0 with *out set, or -1. */
static inline int
span_number(const char *s, size_t len, unsigned max, unsigned *out)
{
	unsigned v = 0;

	if (len == 0 || len > 5)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

/*
 * Growing, sorting, merging and searching, alike for every span type (a
 * struct with unsigned lo and hi members, inclusive): prefix##_push appends
 * one span to a growing array (0, or -1 when out of memory), prefix##_merge
 * sorts by lo and merges overlapping or adjacent spans, so the his are
 * sorted too and one binary search (prefix##_has) finds the only span that
 * can hold a key.
 */
#define SPAN_FUNCS(prefix, type, key_type)                              \
static int                                                              \
prefix##_push(type **v, size_t *n, size_t *cap, key_type lo,            \
    key_type hi)                                                        \
{                                                                       \
	type *nv = span_reserve(*v, cap, *n + 1, sizeof(**v));          \
									\
	if (nv == NULL)                                                 \
		return -1;                                              \
	*v = nv;                                                        \
	nv[*n].lo = lo;                                                 \
	nv[*n].hi = hi;                                                 \
	(*n)++;                                                         \
	return 0;                                                       \
}                                                                       \
									\
static int                                                              \
prefix##_cmp(const void *a, const void *b)                              \
{                                                                       \
	const type *x = a, *y = b;                                      \
									\
	return x->lo < y->lo ? -1 : x->lo > y->lo;                      \
}                                                                       \
									\
static size_t                                                           \
prefix##_merge(type *v, size_t n)                                       \
{                                                                       \
	size_t out = 0;                                                 \
									\
	if (n == 0)                                                     \
		return 0;                                               \
	qsort(v, n, sizeof(*v), prefix##_cmp);                          \
	for (size_t i = 0; i < n; i++) {                                \
		if (out > 0 && (v[i].lo == 0 ||                         \
		    v[i].lo - 1 <= v[out - 1].hi)) {                    \
			if (v[i].hi > v[out - 1].hi)                    \
				v[out - 1].hi = v[i].hi;                \
		} else {                                                \
			v[out++] = v[i];                                \
		}                                                       \
	}                                                               \
	return out;                                                     \
}                                                                       \
									\
static bool                                                             \
prefix##_has(const type *v, size_t n, key_type key)                     \
{                                                                       \
	size_t lo = 0, hi = n;                                          \
									\
	while (lo < hi) {                                               \
		size_t mid = lo + (hi - lo) / 2;                        \
									\
		if (v[mid].hi < key)                                    \
			lo = mid + 1;                                   \
		else                                                    \
			hi = mid;                                       \
	}                                                               \
	return lo < n && v[lo].lo <= key;                               \
}

#endif
