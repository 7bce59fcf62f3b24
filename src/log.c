/*
 * Logging: one line per message, filtered by the configured level, to
 * stderr ("socks5d: level: text", with a "<N>" syslog priority in front
 * when stderr is the systemd journal, so the journal keeps levels) or to
 * syslog.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "socks5d/log.h"

static enum log_level current_level = LOG_LEVEL_INFO;
static bool to_syslog;
static bool journal_prefix;
static const char *line_tag = "";

static const int level_priorities[] = {
	[LOG_LEVEL_ERROR] = LOG_ERR,
	[LOG_LEVEL_WARN] = LOG_WARNING,
	[LOG_LEVEL_INFO] = LOG_INFO,
	[LOG_LEVEL_DEBUG] = LOG_DEBUG,
};

static const char *const level_names[] = {
	[LOG_LEVEL_ERROR] = "error",
	[LOG_LEVEL_WARN] = "warn",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_DEBUG] = "debug",
};

void
log_set_level(enum log_level level)
{
	current_level = level;
}

/* systemd sets JOURNAL_STREAM to the device:inode of the journal stream it
 * gave us; it only counts while stderr is still that stream. */
static bool
log_stderr_is_journal(void)
{
	const char *stream = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (stream == NULL || sscanf(stream, "%llu:%llu", &dev, &ino) != 2)
		return false;
	if (fstat(STDERR_FILENO, &st) == -1)
		return false;
	return (unsigned long long)st.st_dev == dev &&
	    (unsigned long long)st.st_ino == ino;
}

void
log_set_target(bool use_syslog)
{
	if (use_syslog && !to_syslog)
		openlog("socks5d", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	else if (!use_syslog && to_syslog)
		closelog();
	to_syslog = use_syslog;
	journal_prefix = !use_syslog && log_stderr_is_journal();
}

void
log_set_tag(const char *tag)
{
	line_tag = tag != NULL ? tag : "";
}

bool
log_enabled(enum log_level level)
{
	return level <= current_level;
}

int
log_level_parse(const char *name)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcasecmp(name, level_names[i]) == 0)
			return (int)i;
	return -1;
}

static void
log_emit(enum log_level level, const char *errtext, const char *fmt,
    va_list ap)
{
	char line[1024], prefix[8] = "";
	int n;

	n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n < 0)
		return;
	if (to_syslog) {
		if (errtext != NULL)
			syslog(level_priorities[level], "%s: %s", line, errtext);
		else
			syslog(level_priorities[level], "%s", line);
		return;
	}
	if (journal_prefix)
		snprintf(prefix, sizeof(prefix), "<%d>",
		    level_priorities[level]);
	/* One fprintf per line so lines from workers do not interleave. */
	fprintf(stderr, "%s%ssocks5d: %s: %s%s%s\n", prefix, line_tag,
	    level_names[level], line, errtext != NULL ? ": " : "",
	    errtext != NULL ? errtext : "");
}

#define LOG_BODY(level, errtext)                        \
	do {                                            \
		va_list ap;                             \
		if (!log_enabled(level))                \
			return;                         \
		va_start(ap, fmt);                      \
		log_emit(level, errtext, fmt, ap);      \
		va_end(ap);                             \
	} while (0)

void
log_error(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_ERROR, NULL);
}

void
log_warn(const char *fmt, ...)
{
	const char *errtext = strerror(errno);

	LOG_BODY(LOG_LEVEL_WARN, errtext);
}

void
log_warnx(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_WARN, NULL);
}

void
log_info(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_INFO, NULL);
}

void
log_debug(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_DEBUG, NULL);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_LEVEL_ERROR, NULL, fmt, ap);
	va_end(ap);
	exit(1);
}

void
log_safe_text(const char *in, char *out, size_t outlen)
{
	size_t i;

	for (i = 0; in[i] != '\0' && i + 1 < outlen; i++) {
		unsigned char c = (unsigned char)in[i];

		out[i] = (c > 0x20 && c < 0x7f) ? (char)c : '?';
	}
	out[i] = '\0';
}

bool
log_ratelimit_pass(struct log_ratelimit *rl, double now, double interval,
    unsigned long *covered)
{
	rl->count++;
	if (rl->last != 0 && now - rl->last < interval)
		return false;
	*covered = rl->count;
	rl->last = now;
	rl->count = 0;
	return true;
}

void
log_stderr_report(enum log_level level, const char *text)
{
	char prefix[8] = "";
	const char *end;

	if (log_stderr_is_journal())
		snprintf(prefix, sizeof(prefix), "<%d>", level_priorities[level]);
	for (; *text != '\0'; text = *end != '\0' ? end + 1 : end) {
		if ((end = strchr(text, '\n')) == NULL)
			end = text + strlen(text);
		fprintf(stderr, "%s%.*s\n", prefix, (int)(end - text), text);
	}
}

void
log_error_lines(const char *prefix, char *text)
{
	char *line, *save = NULL;

	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save))
		log_error("%s%s", prefix, line);
}
