/*
 * Helpers shared by the file-based fuzz targets: the input goes to one
 * temp file per process (/tmp/socks5d-fuzz-NAME.PID) and error text goes
 * to /dev/null, still formatted in full.
 */
#ifndef SOCKS5D_FUZZ_COMMON_H
#define SOCKS5D_FUZZ_COMMON_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "socks5d/log.h"

/* Write data to the per-process temp file (mode 600) and return its path. */
static inline const char *
fuzz_write_temp(const char *name, const uint8_t *data, size_t size)
{
	static char path[128];
	size_t done = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/tmp/socks5d-fuzz-%s.%ld", name,
	    (long)getpid());
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1)
		abort();
	while (done < size) {
		n = write(fd, data + done, size - done);
		if (n <= 0)
			abort();
		done += (size_t)n;
	}
	close(fd);
	return path;
}

static inline FILE *
fuzz_errors(void)
{
	static FILE *errors;

	if (errors == NULL) {
		errors = fopen("/dev/null", "w");
		if (errors == NULL)
			abort();
		log_set_level(LOG_LEVEL_ERROR);
	}
	return errors;
}

/* Does data contain needle (not NUL-terminated)? */
static inline int
fuzz_contains(const uint8_t *data, size_t size, const char *needle)
{
	return memmem(data, size, needle, strlen(needle)) != NULL;
}

#endif
