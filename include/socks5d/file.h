/*
 * Opening the files an operator names (config, users file) safely: only
 * regular files of bounded size, and never by blocking on a FIFO or a
 * device, since reloads read them on the event loop.
 */
#ifndef SOCKS5D_FILE_H
#define SOCKS5D_FILE_H

#include <stddef.h>
#include <stdio.h>

/* Files read at start and on reload are small; anything bigger is a
 * mistake (or /dev/zero) and must not stall the loop. */
#define FILE_MAX_BYTES (64L * 1024 * 1024)

/* Open path for reading. NULL with the reason in why (e.g. "cannot open:
 * No such file or directory", "not a regular file") on failure. */
FILE *file_open_regular(const char *path, char *why, size_t whylen);

/* The same for a key or another secret, which must not be open to others
 * (its group may read it): else NULL with "readable by others (mode
 * 0644); chmod o-rwx PATH" (or "writable", "accessible") in why. */
FILE *file_open_secret(const char *path, char *why, size_t whylen);

#endif
