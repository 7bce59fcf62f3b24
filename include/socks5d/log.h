/*
 * Logging to stderr with a level threshold. log_warn() appends the current
 * errno text, log_warnx() does not; fatalx() is for start-up failures and
 * broken invariants only.
 */
#ifndef SOCKS5D_LOG_H
#define SOCKS5D_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level {
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

void log_set_level(enum log_level level);
/* Log to syslog (facility daemon) instead of stderr. With stderr, lines get
 * a "<N>" priority prefix when stderr is the systemd journal. */
void log_set_target(bool use_syslog);
/* Text put in front of "socks5d:" on stderr lines (a worker's "[worker N] ");
 * tag must stay valid. Syslog lines carry the pid instead. */
void log_set_tag(const char *tag);
bool log_enabled(enum log_level level);
/* Parse "error", "warn", "info" or "debug"; -1 when unknown. */
int log_level_parse(const char *name);

void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* One log_error per line of text (config_load's error report), each after
 * prefix. text is cut up in place. */
void log_error_lines(const char *prefix, char *text);
/*
 * Write a report for a person at a terminal (config_load's errors at
 * start-up) to stderr line by line as it is, except that each line gets
 * the level's "<N>" priority in front when stderr is the systemd journal,
 * so a failed start keeps its level there. Needs no log_set_target.
 */
void log_stderr_report(enum log_level level, const char *text);
/*
 * Copy client-chosen text (names, user names) for a log line, replacing
 * spaces, control bytes and non-ASCII with '?', so a key=value line always
 * splits into its real fields and cannot fake one.
 */
void log_safe_text(const char *in, char *out, size_t outlen);

/*
 * At most one message per interval for a repeating event (accept errors,
 * limit hits): log_ratelimit_pass counts an occurrence and says whether to
 * log now; *suppressed then tells how many occurrences the message covers.
 */
struct log_ratelimit {
	double last;
	unsigned long count;
};

bool log_ratelimit_pass(struct log_ratelimit *rl, double now, double interval,
    unsigned long *covered);

void fatalx(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

#endif
