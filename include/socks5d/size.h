/*
 * Byte counts as operators write them in the config: "1500", "10K", "2g"
 * (binary multiples), shared by quotas and rate limits. Pure parsing.
 */
#ifndef SOCKS5D_SIZE_H
#define SOCKS5D_SIZE_H

#include <stdint.h>

/*
 * Parse digits with an optional K, M, G or T (any case; powers of 1024)
 * into *out. Returns 0, or -1 for an empty string, a sign, spaces, any
 * other suffix ("10MB", "1.5G") or a value above UINT64_MAX; the caller
 * trims spaces first and decides whether 0 is allowed.
 */
int size_parse(const char *s, uint64_t *out);

#endif
