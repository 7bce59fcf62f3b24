/*
 * why_set (why.h): every parser's refusal, written the same way.
 */
#include <stdarg.h>
#include <stdio.h>

#include "socks5d/why.h"

int
why_set(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return -1;
}
