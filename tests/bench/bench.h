/* Shared by the benchmark's load generator and its target servers: the
 * byte pattern every stream is checked against, the monotonic clock, the
 * latency histogram, a few socket helpers and HTTP head lookups. */
#ifndef BENCH_H
#define BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Byte i of every stream is pattern_bytes[i % PATTERN_PERIOD]. The period
 * is prime (2^17 - 1), so a dropped or repeated chunk of any power-of-two
 * size shifts the stream against the pattern and is caught. */
#define PATTERN_PERIOD	131071u
#define BENCH_CHUNK	65536u

extern unsigned char pattern_bytes[2 * PATTERN_PERIOD];

void	 pattern_init(void);
/* At least PATTERN_PERIOD contiguous bytes of the stream from offset pos. */
static inline const unsigned char *
pattern_at(uint64_t pos)
{
	return pattern_bytes + pos % PATTERN_PERIOD;
}
/* 0 when buf holds the stream's bytes from offset pos, -1 otherwise. */
int	 pattern_check(const unsigned char *buf, size_t len, uint64_t pos);

uint64_t clock_now_ns(void);

/* Log-linear latency histogram: exact below 102.4 us in 0.1 us steps,
 * then 1/512 relative precision, so percentiles need no sample array. */
#define HISTOGRAM_LINEAR	1024
#define HISTOGRAM_SUB		512
#define HISTOGRAM_BUCKETS	(HISTOGRAM_LINEAR + 54 * HISTOGRAM_SUB)

struct histogram {
	uint64_t	 count;
	uint64_t	 buckets[HISTOGRAM_BUCKETS];
};

void	 histogram_add(struct histogram *, uint64_t ns);
/* The latency (ns) below which fraction p (0..1) of the samples fall. */
uint64_t histogram_percentile(const struct histogram *, double p);

int	 fd_set_nonblocking(int fd);
/* Raise the soft descriptor limit to the hard one; 0 or -1. */
int	 fd_raise_limit(void);
/* "IP:PORT" or "[IP6]:PORT" into a sockaddr; 0 or -1. */
int	 addr_parse(const char *, struct sockaddr_storage *, socklen_t *);

/* The value of header name (lower case, with its colon) in the HTTP head
 * [head, end), or NULL; *len gets its length. */
const char *http_head_header(const char *head, const char *end,
    const char *name, size_t *len);
/* 1 when the head's Connection header names close, else 0. */
int	 http_head_closes(const char *head, const char *end);

#endif
