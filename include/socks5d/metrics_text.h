/*
 * Writing the Prometheus text exposition: families, samples and escaped
 * label values into a bounded buffer (metrics.c, metrics_users.c).
 */
#ifndef SOCKS5D_METRICS_TEXT_H
#define SOCKS5D_METRICS_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* The exposition being written: like snprintf, len keeps counting past
 * cap so the caller learns how much room the whole text needs. */
struct metrics_out {
	char *buf;
	size_t cap;
	size_t len;
};

void metrics_printf(struct metrics_out *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* "# HELP" and "# TYPE" lines. */
void metrics_family(struct metrics_out *out, const char *name,
    const char *type, const char *help);
/* name n, or name{label="value"} n (value written as given). */
void metrics_sample(struct metrics_out *out, const char *name,
    const char *label, const char *value, uint64_t n);
/* A label value with backslash, double quote and line feed escaped. */
void metrics_print_value(struct metrics_out *out, const char *s);

#endif
