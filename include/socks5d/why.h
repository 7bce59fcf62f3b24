/*
 * The reason a parser gives when it refuses a value: one phrase, written
 * into the caller's buffer (config errors quote it after file:line: key).
 */
#ifndef SOCKS5D_WHY_H
#define SOCKS5D_WHY_H

#include <stddef.h>

/* Format the reason into why and return -1, the refusal itself. */
int why_set(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
