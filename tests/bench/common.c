/* The pieces both benchmark programs share: pattern, clock, histogram,
 * address parsing and HTTP head lookups (see bench.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>

#include "bench.h"

unsigned char pattern_bytes[2 * PATTERN_PERIOD];

void
pattern_init(void)
{
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	size_t i;

	/* xorshift64: fixed, so the targets and the generator agree. */
	for (i = 0; i < PATTERN_PERIOD; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		pattern_bytes[i] = (unsigned char)(x >> 24);
	}
	memcpy(pattern_bytes + PATTERN_PERIOD, pattern_bytes, PATTERN_PERIOD);
}

int
pattern_check(const unsigned char *buf, size_t len, uint64_t pos)
{
	while (len > 0) {
		size_t n = len < PATTERN_PERIOD ? len : PATTERN_PERIOD;

		if (memcmp(buf, pattern_at(pos), n) != 0)
			return -1;
		buf += n;
		pos += n;
		len -= n;
	}
	return 0;
}

uint64_t
clock_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static size_t
histogram_index(uint64_t ns)
{
	uint64_t tenths = ns / 100;
	int msb, shift;

	if (tenths < HISTOGRAM_LINEAR)
		return (size_t)tenths;
	msb = 63 - __builtin_clzll(tenths);
	shift = msb - 9;
	return HISTOGRAM_LINEAR + (size_t)(msb - 10) * HISTOGRAM_SUB +
	    (size_t)((tenths >> shift) - HISTOGRAM_SUB);
}

/* The upper edge of bucket i, in ns: percentiles never understate. */
static uint64_t
histogram_value(size_t i)
{
	size_t group, sub;
	int shift;

	if (i < HISTOGRAM_LINEAR)
		return (uint64_t)(i + 1) * 100;
	group = (i - HISTOGRAM_LINEAR) / HISTOGRAM_SUB;
	sub = (i - HISTOGRAM_LINEAR) % HISTOGRAM_SUB;
	shift = (int)group + 1;
	return (((uint64_t)(HISTOGRAM_SUB + sub + 1)) << shift) * 100;
}

void
histogram_add(struct histogram *h, uint64_t ns)
{
	h->buckets[histogram_index(ns)]++;
	h->count++;
}

uint64_t
histogram_percentile(const struct histogram *h, double p)
{
	uint64_t rank, seen = 0;
	size_t i;

	if (h->count == 0)
		return 0;
	rank = (uint64_t)(p * (double)h->count);
	if (rank >= h->count)
		rank = h->count - 1;
	for (i = 0; i < HISTOGRAM_BUCKETS; i++) {
		seen += h->buckets[i];
		if (seen > rank)
			return histogram_value(i);
	}
	return histogram_value(HISTOGRAM_BUCKETS - 1);
}

int
fd_set_nonblocking(int fd)
{
	int flags = fcntl(fd, F_GETFL);

	if (flags == -1 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1)
		return -1;
	return 0;
}

int
fd_raise_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return -1;
	rl.rlim_cur = rl.rlim_max;
	return setrlimit(RLIMIT_NOFILE, &rl);
}

int
addr_parse(const char *text, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[64];
	const char *colon, *start = text;
	size_t hostlen;
	long port;
	char *end;

	memset(ss, 0, sizeof(*ss));
	if (*text == '[') {
		const char *close = strchr(text, ']');

		if (close == NULL || close[1] != ':')
			return -1;
		start = text + 1;
		hostlen = (size_t)(close - start);
		colon = close + 1;
	} else {
		colon = strrchr(text, ':');
		if (colon == NULL)
			return -1;
		hostlen = (size_t)(colon - text);
	}
	if (hostlen == 0 || hostlen >= sizeof(host))
		return -1;
	memcpy(host, start, hostlen);
	host[hostlen] = '\0';
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || port < 0 || port > 65535)
		return -1;
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*sin6);
		return 0;
	}
	return -1;
}

const char *
http_head_header(const char *head, const char *end, const char *name,
    size_t *len)
{
	size_t n = strlen(name);
	const char *line = memchr(head, '\n', (size_t)(end - head));

	while (line != NULL && ++line < end) {
		const char *eol = memchr(line, '\r', (size_t)(end - line));

		if (eol == NULL)
			eol = end;
		if ((size_t)(eol - line) >= n &&
		    strncasecmp(line, name, n) == 0) {
			line += n;
			while (line < eol && (*line == ' ' || *line == '\t'))
				line++;
			*len = (size_t)(eol - line);
			return line;
		}
		line = memchr(eol, '\n', (size_t)(end - eol));
	}
	return NULL;
}

/* "close" anywhere in the value: a token list ("keep-alive, close") may
 * name it after others. */
int
http_head_closes(const char *head, const char *end)
{
	const char *value;
	size_t i, len;

	if ((value = http_head_header(head, end, "connection:", &len)) == NULL)
		return 0;
	for (i = 0; i + 5 <= len; i++)
		if (strncasecmp(value + i, "close", 5) == 0)
			return 1;
	return 0;
}
