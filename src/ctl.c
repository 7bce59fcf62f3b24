/*
 * "socks5d ctl": the command line made into one request line, sent to the
 * control socket (-s, or [control] socket in the config), and the records
 * that come back printed as tables or JSON. The wire is control_proto.c's.
 */
#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "socks5d/config.h"
#include "socks5d/control_proto.h"
#include "socks5d/ctl.h"

#define CTL_EXIT_ERROR		1	/* the daemon said "end error" */
#define CTL_EXIT_USAGE		2	/* and any failure to talk to it */
#define CTL_RESPONSE_MAX	(256u << 20)	/* a runaway daemon's limit */
#define CTL_CELL_MAX		1024	/* bytes of one table cell */
#define CTL_COLS_MAX		16

/* A whole response, its lines decoded in place in buf. */
struct ctl_response {
	char			*buf;
	struct ctl_record	*recs;
	size_t			 n;
	struct control_field	*fields;
	bool			 ok;
	const char		*reason;
};

static const char *const ctl_session_cols[] = { "id", "client", "user",
	"proto", "cmd", "dest", "peer", "up", "down", "rate", "age", NULL };
static const char *const ctl_user_cols[] = { "user", "sessions", "up",
	"down", "rate", "quota", "used", NULL };

static void ctl_warnx(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static void
ctl_warnx(const char *fmt, ...)
{
	va_list ap;

	fputs("socks5d ctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void
ctl_usage(FILE *out)
{
	fprintf(out,
	    "usage: socks5d ctl [-s SOCKET] [-c FILE] [--json] COMMAND\n"
	    "\n"
	    "  sessions                  list the sessions\n"
	    "  kill ID                   end one session (ID as listed: "
	    "PID.N)\n"
	    "  kill --user NAME          end every session of user NAME\n"
	    "  kill --client CIDR        end every session from an address "
	    "or network\n"
	    "  users                     per-user totals\n"
	    "  quota reset USER [QUOTA]  zero USER's usage of [quota QUOTA] "
	    "(or of all)\n"
	    "  ping                      check that the daemon answers\n"
	    "\n"
	    "  -s SOCKET  control socket (default: [control] socket in FILE)\n"
	    "  -c FILE    configuration file (default "
	    CONFIG_DEFAULT_PATH ")\n"
	    "  --json     print one JSON document\n");
}

/* A stalled daemon shows as a timeout, not as "Resource temporarily
 * unavailable". */
static const char *
ctl_strerror(int err)
{
	if (err == EAGAIN || err == EWOULDBLOCK || err == EINPROGRESS)
		return "timed out";
	return strerror(err);
}

static int
ctl_ini_key(void *user, const char *section, const char *key,
    const char *value)
{
	char **socket_path = user;

	if (strcmp(section, "control") == 0 && strcmp(key, "socket") == 0) {
		free(*socket_path);
		*socket_path = value[0] != '\0' ? strdup(value) : NULL;
	}
	return 1;
}

/*
 * [control] socket and nothing else: config_load would build TLS contexts
 * and read key files that may need root. A relative path is taken from
 * the config file's directory, as the daemon takes its paths.
 */
static char *
ctl_socket_from_config(const char *config)
{
	const char *slash = strrchr(config, '/');
	char *value = NULL, *path;
	int dirlen;

	if (ini_parse(config, ctl_ini_key, &value) == -1) {
		ctl_warnx("%s: %s (or pass -s SOCKET)", config,
		    strerror(errno));
		return NULL;
	}
	if (value == NULL) {
		ctl_warnx("no control socket: set [control] socket or pass -s");
		return NULL;
	}
	if (value[0] == '/' || slash == NULL)
		return value;
	dirlen = (int)(slash - config);
	if (asprintf(&path, "%.*s/%s", dirlen, config, value) == -1) {
		ctl_warnx("out of memory");
		path = NULL;
	}
	free(value);
	return path;
}

/*
 * The request line for COMMAND [ARGS] (argv[0] is COMMAND), checked by
 * the same parser the daemon uses. *main_type is the records' type the
 * command lists, for the table header. Returns the length, or 0.
 */
static size_t
ctl_request(int argc, char **argv, char *line, size_t cap,
    const char **main_type)
{
	const char *w[CONTROL_WORDS_MAX] = { "v1", argv[0] }, *why;
	const char *cmd = argv[0], *a1 = argc > 1 ? argv[1] : "";
	struct control_request req;
	size_t nw = 2, len = 0, wlen;

	if (argc == 1 && (strcmp(cmd, "sessions") == 0 ||
	    strcmp(cmd, "users") == 0 || strcmp(cmd, "ping") == 0))
		*main_type = strcmp(cmd, "ping") == 0 ? NULL : cmd[0] == 's' ?
		    "session" : "user";
	else if (strcmp(cmd, "kill") == 0 && argc == 2 && a1[0] != '-')
		w[nw++] = a1;
	else if (strcmp(cmd, "kill") == 0 && argc == 3 &&
	    (strcmp(a1, "--user") == 0 || strcmp(a1, "--client") == 0)) {
		w[nw++] = a1 + 2;
		w[nw++] = argv[2];
	} else if (strcmp(cmd, "quota") == 0 && (argc == 3 || argc == 4) &&
	    strcmp(a1, "reset") == 0)
		for (int i = 1; i < argc; i++)
			w[nw++] = argv[i];
	else {
		ctl_usage(stderr);
		return 0;
	}
	for (size_t i = 0; i < nw; i++) {
		if (w[i][strcspn(w[i], " \t")] != '\0' || w[i][0] == '\0') {
			ctl_warnx("\"%s\": empty, or holds a space or tab",
			    w[i]);
			return 0;
		}
		if ((wlen = strlen(w[i])) + 1 > cap - len) {
			ctl_warnx("request line too long");
			return 0;
		}
		memcpy(line + len, w[i], wlen);
		len += wlen;
		line[len++] = i + 1 < nw ? ' ' : '\n';
	}
	if (control_parse_request(line, len, &req, &why) == -1) {
		ctl_warnx("%s", why);
		return 0;
	}
	return len;
}

static int
ctl_connect(const char *path)
{
	struct timeval tv = { .tv_sec = CTL_TIMEOUT_SEC };
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd, err;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	/* SO_SNDTIMEO bounds connect too: a full backlog would block. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == -1 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

/* Everything up to and including the "end" line, NUL-terminated and
 * without NULs inside; NULL when cut short (reported). */
static char *
ctl_read(int fd, const char *path)
{
	size_t len = 0, cap = 0, line = 0;
	char *buf = NULL, *bigger;
	const char *why = NULL;
	ssize_t n;

	while (why == NULL) {
		if (cap - len < 4096) {
			cap = cap == 0 ? 65536 : cap * 2;
			if (cap > CTL_RESPONSE_MAX ||
			    (bigger = realloc(buf, cap)) == NULL) {
				why = "response too large";
				break;
			}
			buf = bigger;
		}
		if ((n = recv(fd, buf + len, cap - len - 1, 0)) == -1 &&
		    errno == EINTR)
			continue;
		if (n <= 0)
			why = n == 0 ? "connection closed before the end of "
			    "the response" : ctl_strerror(errno);
		for (size_t i = len; n > 0 && i < len + (size_t)n; i++) {
			if (buf[i] == '\0')
				why = "NUL byte in the response";
			if (buf[i] != '\n' || why != NULL)
				continue;
			if (strncmp(buf + line, "end", 3) == 0 &&
			    (buf[line + 3] == ' ' || buf[line + 3] == '\n')) {
				buf[i + 1] = '\0';
				return buf;
			}
			line = i + 1;
		}
		len += n > 0 ? (size_t)n : 0;
	}
	ctl_warnx("%s: %s", path, why);
	free(buf);
	return NULL;
}

/* Split buf into records and the end line, each decoded in place. */
static int
ctl_parse(struct ctl_response *r, const char *path)
{
	size_t nlines = 0, nspaces = 0, used = 0, max;
	char *line = r->buf, *nl;
	struct ctl_record *rec;

	for (char *p = r->buf; *p != '\0'; p++) {
		nlines += *p == '\n';
		nspaces += *p == ' ';
	}
	r->recs = calloc(nlines, sizeof(*r->recs));
	r->fields = calloc(nspaces + 1, sizeof(*r->fields));
	if (r->recs == NULL || r->fields == NULL) {
		ctl_warnx("out of memory");
		return -1;
	}
	for (size_t i = 1; i <= nlines; i++, line = nl + 1) {
		nl = strchr(line, '\n');
		*nl = '\0';
		rec = &r->recs[r->n];
		max = 0;
		for (const char *p = line; p < nl; p++)
			max += *p == ' ';
		if (i < nlines ? control_parse_record(line, r->fields + used,
		    max, &rec->nfields, &rec->type) == -1 :
		    control_parse_end(line, &r->ok, &r->reason) == -1) {
			ctl_warnx("%s: malformed response line %zu", path, i);
			return -1;
		}
		rec->fields = r->fields + used;
		used += rec->nfields;
		r->n += i < nlines;
	}
	return 0;
}

static void
ctl_json_string(FILE *out, const char *s, size_t len)
{
	putc('"', out);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(out, "\\u%04x", c);
		else
			putc(c, out);
	}
	putc('"', out);
}

static bool
ctl_json_is_number(const char *key, const char *v, size_t len)
{
	static const char *const names[] = { "id", "user", "client", "dest",
		"peer", "name", NULL };
	size_t i = v[0] == '-', digits;

	for (size_t k = 0; names[k] != NULL; k++)
		if (strcmp(key, names[k]) == 0)
			return false;
	for (digits = 0; i < len && v[i] >= '0' && v[i] <= '9'; i++)
		digits++;
	if (digits == 0 || (digits > 1 && v[i - digits] == '0'))
		return false;
	if (i < len && v[i] == '.') {
		for (digits = 0, i++; i < len && v[i] >= '0' && v[i] <= '9';
		    i++)
			digits++;
		if (digits == 0)
			return false;
	}
	return i == len;
}

int
ctl_print_json(FILE *out, const struct ctl_record *recs, size_t n, bool ok,
    const char *reason)
{
	const struct control_field *f;

	fprintf(out, "{\"ok\":%s", ok ? "true" : "false");
	if (!ok) {
		fputs(",\"error\":", out);
		ctl_json_string(out, reason, strlen(reason));
	}
	fputs(",\"records\":[", out);
	for (size_t i = 0; i < n; i++) {
		fputs(i > 0 ? ",{\"type\":" : "{\"type\":", out);
		ctl_json_string(out, recs[i].type, strlen(recs[i].type));
		for (size_t k = 0; k < recs[i].nfields; k++) {
			f = &recs[i].fields[k];
			putc(',', out);
			ctl_json_string(out, f->key, strlen(f->key));
			putc(':', out);
			if (ctl_json_is_number(f->key, f->value, f->value_len))
				fwrite(f->value, 1, f->value_len, out);
			else
				ctl_json_string(out, f->value, f->value_len);
		}
		putc('}', out);
	}
	fputs("]}\n", out);
	return ferror(out) ? -1 : 0;
}

/*
 * Values come from clients (user names, host names): no byte of theirs
 * may steer the terminal. C0 controls, DEL and C1 controls (as UTF-8, C2
 * 80..9F) become '?'; other bytes from 0x80 up pass, for UTF-8 names.
 * Returns the width: the bytes that do not continue a UTF-8 character.
 */
static size_t
ctl_safe(char *buf, size_t cap, const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t o = 0, width = 0;

	for (size_t i = 0; i < len && o + 1 < cap; i++) {
		bool c1 = u[i] == 0xc2 && i + 1 < len && u[i + 1] >= 0x80 &&
		    u[i + 1] <= 0x9f;

		width += (u[i] & 0xc0) != 0x80;
		buf[o++] = c1 || u[i] < 0x20 || u[i] == 0x7f ? '?' : s[i];
		i += c1;
	}
	buf[o] = '\0';
	return width;
}

/* The cell for key in r: its value made safe, or "-". */
static size_t
ctl_cell(const struct ctl_record *r, const char *key, char *buf, size_t cap)
{
	for (size_t k = 0; k < r->nfields; k++)
		if (strcmp(r->fields[k].key, key) == 0 &&
		    r->fields[k].value_len > 0)
			return ctl_safe(buf, cap, r->fields[k].value,
			    r->fields[k].value_len);
	return ctl_safe(buf, cap, "-", 1);
}

/* The records of type as a table, columns two spaces apart. */
static void
ctl_print_rows(FILE *out, const struct ctl_record *recs, size_t n,
    const char *type, const char *const *cols, bool always)
{
	size_t width[CTL_COLS_MAX], w, ncols, rows = 0;
	char cell[CTL_CELL_MAX];

	for (ncols = 0; cols[ncols] != NULL; ncols++)
		width[ncols] = strlen(cols[ncols]);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(recs[i].type, type) != 0)
			continue;
		rows++;
		for (size_t c = 0; c < ncols; c++)
			if ((w = ctl_cell(&recs[i], cols[c], cell,
			    sizeof(cell))) > width[c])
				width[c] = w;
	}
	/* Row 0 is the header, row i the record i - 1. */
	for (size_t i = 0; (rows > 0 || always) && i <= n; i++) {
		if (i > 0 && strcmp(recs[i - 1].type, type) != 0)
			continue;
		for (size_t c = 0; c < ncols; c++) {
			w = i == 0 ? ctl_safe(cell, sizeof(cell), cols[c],
			    strlen(cols[c])) : ctl_cell(&recs[i - 1], cols[c],
			    cell, sizeof(cell));
			if (c + 1 < ncols)
				fprintf(out, "%s%*s  ", cell,
				    (int)(width[c] - w), "");
			else
				fprintf(out, "%s\n", cell);
		}
	}
}

int
ctl_print_table(FILE *out, const struct ctl_record *recs, size_t n,
    const char *main_type)
{
	char cell[CTL_CELL_MAX];
	const struct control_field *f;

	ctl_print_rows(out, recs, n, "session", ctl_session_cols,
	    main_type != NULL && strcmp(main_type, "session") == 0);
	ctl_print_rows(out, recs, n, "user", ctl_user_cols,
	    main_type != NULL && strcmp(main_type, "user") == 0);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(recs[i].type, "session") == 0 ||
		    strcmp(recs[i].type, "user") == 0)
			continue;
		ctl_safe(cell, sizeof(cell), recs[i].type,
		    strlen(recs[i].type));
		fputs(cell, out);
		for (size_t k = 0; k < recs[i].nfields; k++) {
			f = &recs[i].fields[k];
			ctl_safe(cell, sizeof(cell), f->key, strlen(f->key));
			fprintf(out, " %s=", cell);
			ctl_safe(cell, sizeof(cell), f->value, f->value_len);
			fputs(cell, out);
		}
		putc('\n', out);
	}
	return ferror(out) ? -1 : 0;
}

/* Connect, ask, print; returns the exit status. */
static int
ctl_run(const char *path, const char *line, size_t len, bool json,
    const char *main_type)
{
	struct ctl_response r = { 0 };
	char why[256];
	int fd, status = CTL_EXIT_USAGE;

	/* One short line: a stream socket takes it whole or fails. The
	 * daemon gone away is an error, not a SIGPIPE. */
	if ((fd = ctl_connect(path)) == -1 ||
	    send(fd, line, len, MSG_NOSIGNAL) != (ssize_t)len) {
		ctl_warnx("%s: %s", path, ctl_strerror(errno));
		if (fd != -1)
			close(fd);
		return CTL_EXIT_USAGE;
	}
	r.buf = ctl_read(fd, path);
	close(fd);
	if (r.buf != NULL && ctl_parse(&r, path) == 0) {
		if (json)
			ctl_print_json(stdout, r.recs, r.n, r.ok, r.reason);
		else if (ctl_print_table(stdout, r.recs, r.n, main_type) ==
		    0 && r.ok && r.n == 0 && main_type == NULL)
			puts("ok");
		status = r.ok ? 0 : CTL_EXIT_ERROR;
		if (!r.ok) {
			ctl_safe(why, sizeof(why), r.reason, strlen(r.reason));
			ctl_warnx("%s", why[0] != '\0' ? why : "error");
		}
	}
	if (fflush(stdout) == EOF && status != CTL_EXIT_USAGE) {
		ctl_warnx("writing: %s", strerror(errno));
		status = CTL_EXIT_USAGE;
	}
	free(r.buf);
	free(r.recs);
	free(r.fields);
	return status;
}

int
ctl_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = CONFIG_DEFAULT_PATH, *main_type = NULL;
	const char *path = NULL;
	char line[CONTROL_LINE_MAX + 1], *found = NULL;
	bool json = false;
	size_t len;
	int ch, status;

	/* 0, not 1: glibc then starts afresh, "+" included. Stop at the
	 * command, so that "kill --user" is not taken for an option. */
	optind = 0;
	while ((ch = getopt_long(argc, argv, "+s:c:h", opts, NULL)) != -1) {
		switch (ch) {
		case 's':
			path = optarg;
			break;
		case 'c':
			config = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			ctl_usage(stdout);
			return 0;
		default:
			ctl_usage(stderr);
			return CTL_EXIT_USAGE;
		}
	}
	if (optind == argc || (len = ctl_request(argc - optind, argv + optind,
	    line, sizeof(line), &main_type)) == 0) {
		if (optind == argc)
			ctl_usage(stderr);
		return CTL_EXIT_USAGE;
	}
	if (path == NULL && (path = found = ctl_socket_from_config(config)) ==
	    NULL)
		return CTL_EXIT_USAGE;
	status = ctl_run(path, line, len, json, main_type);
	free(found);
	return status;
}
