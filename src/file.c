/*
 * Opening operator-named files for reading: O_NONBLOCK so a FIFO cannot
 * hold open() hostage, then a check that it really is a regular file of a
 * sane size before anything reads it; secrets must also be closed to others.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "socks5d/file.h"

FILE *
file_open_regular(const char *path, char *why, size_t whylen)
{
	struct stat st;
	FILE *fp;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd == -1) {
		snprintf(why, whylen, "cannot open: %s", strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		snprintf(why, whylen, "not a regular file");
		close(fd);
		return NULL;
	}
	if (st.st_size > FILE_MAX_BYTES) {
		snprintf(why, whylen, "too large (%lld bytes; at most %ld)",
		    (long long)st.st_size, FILE_MAX_BYTES);
		close(fd);
		return NULL;
	}
	if ((fp = fdopen(fd, "r")) == NULL) {
		snprintf(why, whylen, "cannot open: %s", strerror(errno));
		close(fd);
	}
	return fp;
}

/*
 * Judged on the descriptor that is then read, so the file cannot be
 * swapped between the check and the read. Its group may read it: workers
 * load the config again after dropping root, so a deployment is
 * root:socks5d 0640.
 */
FILE *
file_open_secret(const char *path, char *why, size_t whylen)
{
	struct stat st;
	FILE *fp;

	if ((fp = file_open_regular(path, why, whylen)) == NULL)
		return NULL;
	if (fstat(fileno(fp), &st) == -1) {
		snprintf(why, whylen, "cannot stat");
		fclose(fp);
		return NULL;
	}
	if (st.st_mode & S_IRWXO) {
		snprintf(why, whylen, "%s by others (mode %04o); "
		    "chmod o-rwx %s", st.st_mode & S_IROTH ? "readable" :
		    st.st_mode & S_IWOTH ? "writable" : "accessible",
		    (unsigned)(st.st_mode & 07777), path);
		fclose(fp);
		return NULL;
	}
	return fp;
}
