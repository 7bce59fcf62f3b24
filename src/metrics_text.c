/*
 * The text exposition's pieces (metrics_text.h).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "socks5d/metrics_text.h"

void
metrics_printf(struct metrics_out *out, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	if (out->len < out->cap)
		n = vsnprintf(out->buf + out->len, out->cap - out->len, fmt, ap);
	else
		n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n > 0)
		out->len += (size_t)n;
}

void
metrics_family(struct metrics_out *out, const char *name, const char *type,
    const char *help)
{
	metrics_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
	    type);
}

void
metrics_sample(struct metrics_out *out, const char *name, const char *label,
    const char *value, uint64_t n)
{
	if (label == NULL)
		metrics_printf(out, "%s %" PRIu64 "\n", name, n);
	else
		metrics_printf(out, "%s{%s=\"%s\"} %" PRIu64 "\n", name, label,
		    value, n);
}

/* A label value as the text format wants it: backslash, double quote and
 * line feed escaped. No config value holds them today; should one ever,
 * it must not break the exposition. */
void
metrics_print_value(struct metrics_out *out, const char *s)
{
	size_t n;

	for (;;) {
		n = strcspn(s, "\\\"\n");
		if (n > 0)
			metrics_printf(out, "%.*s", (int)n, s);
		s += n;
		if (*s == '\0')
			return;
		metrics_printf(out, "\\%c", *s == '\n' ? 'n' : *s);
		s++;
	}
}

