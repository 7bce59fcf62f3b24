/*
 * The hosts file (/etc/hosts format) held in memory. It is read when the
 * config is loaded (start and SIGHUP), so a name lookup never reads a file
 * on the event loop; the resolver answers from it before asking DNS.
 */
#ifndef SOCKS5D_HOSTS_H
#define SOCKS5D_HOSTS_H

#include <stddef.h>
#include <stdint.h>

#include "socks5d/addr.h"

struct hosts;

/* Parse hosts-file text (need not be NUL-terminated). Lines that are not
 * "ADDRESS NAME [ALIAS...]" are skipped, as the C library does. NULL only
 * when out of memory. */
struct hosts *hosts_parse(const char *text, size_t len);
/* Read and parse path. NULL with the reason in why. */
struct hosts *hosts_load(const char *path, char *why, size_t whylen);
/* The config and each resolver built from it hold a reference. */
struct hosts *hosts_ref(struct hosts *h);
void hosts_unref(struct hosts *h);
size_t hosts_count(const struct hosts *h);
/* The addresses listed for name (case-insensitive, a trailing dot
 * ignored) in file order without repeats, port set, at most max.
 * Returns how many; 0: the name is not in the file. */
size_t hosts_find(const struct hosts *h, const char *name, uint16_t port,
    union sockaddr_any *out, size_t max);

#endif
