/*
 * Loading a config file by the table (config.c): the line-counting reader
 * inih parses through, errors as "file:line: [section] key: why", defaults,
 * and the checks that span keys (open proxy guard, users file).
 */
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <arpa/inet.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "socks5d/addr.h"
#include "socks5d/auth.h"
#include "socks5d/config.h"
#include "socks5d/config_values.h"
#include "socks5d/file.h"
#include "socks5d/hosts.h"
#include "socks5d/intercept.h"
#include "socks5d/log.h"
#include "socks5d/quota.h"
#include "socks5d/rules.h"
#include "socks5d/tls_client.h"
#include "socks5d/tls_ctx.h"

/* One named section ("[rule office]") as the file gave it. */
struct config_instance {
	const struct config_row *row;   /* any row of its section */
	char *section;                  /* "rule office" */
	void *base;
	unsigned line;                  /* of the header */
	unsigned row_line[CONFIG_NROWS];  /* first set on; 0: never */
	bool row_bad[CONFIG_NROWS];
};

struct config_load {
	struct config *cfg;
	const char *path;
	char *dir;
	FILE *in;
	FILE *errors;
	unsigned lineno;
	unsigned nerrors;
	int read_errno;                 /* set when reading failed */
	bool skip_section;              /* under a bad or unknown [header] */
	/* Per row, for the cross-key checks; a named section's rows are
	 * tracked per instance instead. */
	unsigned row_line[CONFIG_NROWS];  /* first set on; 0: the default */
	bool row_bad[CONFIG_NROWS];
	struct config_instance **inst;  /* named sections, in file order */
	size_t ninst;
	struct config_instance *cur;    /* the named section being read */
};

static void
config_error(struct config_load *ld, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
config_error(struct config_load *ld, unsigned line, const char *fmt, ...)
{
	va_list ap;

	ld->nerrors++;
	if (line > 0)
		fprintf(ld->errors, "%s:%u: ", ld->path, line);
	else
		fprintf(ld->errors, "%s: ", ld->path);
	va_start(ap, fmt);
	vfprintf(ld->errors, fmt, ap);
	va_end(ap);
	fputc('\n', ld->errors);
}

/* Parse value through row; remember where it came from for later checks. */
static void
config_row_set(struct config_load *ld, const struct config_row *row,
    void *base, const char *section, const char *value, unsigned line)
{
	size_t i = (size_t)(row - config_rows);
	unsigned *row_line = ld->row_line;
	bool *row_bad = ld->row_bad;
	char why[512];

	if (row->named && ld->cur != NULL) {
		row_line = ld->cur->row_line;
		row_bad = ld->cur->row_bad;
	}
	/*
	 * A second value would silently replace the first, and which one
	 * the operator meant is a guess. A fixed section reopened later in
	 * the file is the same section. The first value stays, so the
	 * cross-key checks speak of the line this error points back to.
	 */
	if (line > 0 && row_line[i] > 0 && !config_row_appends(row)) {
		config_error(ld, line, "[%s] %s: set twice (first on line %u)",
		    section, row->key, row_line[i]);
		return;
	}
	if (config_value_parse(row, base, value, ld->dir, why,
	    sizeof(why)) == -1) {
		if (line > 0)
			config_error(ld, line, "[%s] %s: %s", section, row->key,
			    why);
		else
			config_error(ld, 0, "[%s] %s: bad built-in default: %s",
			    section, row->key, why);
		row_bad[i] = true;
	}
	if (row_line[i] == 0)
		row_line[i] = line;
}

/*
 * Defaults go through the same parsers as the file: the fixed sections'
 * once at load, a named section's rows each time a new instance appears.
 */
static void
config_apply_defaults(struct config_load *ld, const struct config_row *named,
    void *base)
{
	for (size_t i = 0; i < CONFIG_NROWS; i++) {
		const struct config_row *row = &config_rows[i];
		bool mine = named == NULL ? !row->named :
		    (row->named && strcmp(row->section, named->section) == 0);

		if (mine && row->def != NULL)
			config_row_set(ld, row, base, row->section, row->def,
			    0);
	}
}

/* inih hands section text verbatim; "[ server ]" still means server. */
static void
config_section_name(const char *text, char *out, size_t outlen)
{
	size_t n;

	while (isspace((unsigned char)*text))
		text++;
	n = strlen(text);
	while (n > 0 && isspace((unsigned char)text[n - 1]))
		n--;
	snprintf(out, outlen, "%.*s", (int)n, text);
}

static int
config_handle(void *user, const char *section_text, const char *key,
    const char *value)
{
	struct config_load *ld = user;
	const struct config_row *row;
	const char *name = NULL;
	char section[256];
	void *base;

	if (ld->skip_section)
		return 1;
	config_section_name(section_text, section, sizeof(section));
	if (*section == '\0') {
		config_error(ld, ld->lineno, "%s: keys must follow a [section] "
		    "header", key);
		return 1;
	}
	if (*key == '\0') {
		config_error(ld, ld->lineno, "[%s]: missing key name before "
		    "'='", section);
		return 1;
	}
	row = config_row_find(section, key, &name);
	if (row == NULL) {
		config_error(ld, ld->lineno, "[%s] %s: unknown key", section,
		    key);
		return 1;
	}
	base = ld->cfg;
	if (row->named) {
		/* Opened by its header (config_open_section). */
		if (ld->cur == NULL) {
			config_error(ld, ld->lineno, "[%s]: cannot add this "
			    "section", section);
			return 1;
		}
		base = ld->cur->base;
	}
	config_row_set(ld, row, base, section, value, ld->lineno);
	return 1;
}

static struct config_instance *
config_instance_find(struct config_load *ld, const char *section)
{
	for (size_t i = 0; i < ld->ninst; i++)
		if (strcmp(ld->inst[i]->section, section) == 0)
			return ld->inst[i];
	return NULL;
}

static struct config_instance *
config_instance_new(struct config_load *ld, const struct config_row *row,
    const char *section)
{
	struct config_instance *in, **v;

	v = reallocarray(ld->inst, ld->ninst + 1, sizeof(*v));
	if (v == NULL)
		return NULL;
	ld->inst = v;
	if ((in = calloc(1, sizeof(*in))) == NULL)
		return NULL;
	if ((in->section = strdup(section)) == NULL) {
		free(in);
		return NULL;
	}
	in->row = row;
	in->line = ld->lineno;
	v[ld->ninst++] = in;
	return in;
}

/*
 * A header opens a named section's instance at once, so an empty
 * section is still checked, and a second header with the same NAME is
 * refused instead of merged into the first.
 */
static void
config_open_section(struct config_load *ld, const char *section)
{
	const struct config_row *row;
	struct config_instance *in;
	const char *name = NULL;
	bool created = false;

	ld->cur = NULL;
	if ((row = config_named_row(section, &name)) == NULL)
		return;
	ld->skip_section = true;
	if (!row->name_valid(name)) {
		config_error(ld, ld->lineno, "[%s]: bad name \"%s\" (letters, "
		    "digits, '_', '.' and '-', at most 64)", section, name);
		return;
	}
	if ((in = config_instance_find(ld, section)) != NULL) {
		config_error(ld, ld->lineno, "[%s]: duplicate section (the "
		    "first is at line %u)", section, in->line);
		return;
	}
	if ((in = config_instance_new(ld, row, section)) == NULL ||
	    (in->base = row->instance(ld->cfg, name, &created)) == NULL) {
		config_error(ld, ld->lineno, "[%s]: out of memory", section);
		return;
	}
	ld->cur = in;
	ld->skip_section = false;
	if (created)
		config_apply_defaults(ld, row, in->base);
}

/*
 * inih's own idea of a bad line (no '=', no closing ']') only yields the
 * first line number; the reader checks each line the way inih will split
 * it, reports it, and hands inih an empty line instead.
 */
static const char *
config_find(const char *s, const char *chars)
{
	bool was_space = false;

	while (*s != '\0' && (chars == NULL || strchr(chars, *s) == NULL) &&
	    !(was_space && ini_allow_inline_comments &&
	    strchr(ini_inline_comment_prefixes, *s) != NULL)) {
		was_space = isspace((unsigned char)*s);
		s++;
	}
	return s;
}

static bool
config_is_comment(const char *s)
{
	return *s == '\0' || strchr(ini_start_comment_prefixes, *s) != NULL;
}

static void
config_check_header(struct config_load *ld, const char *s)
{
	const char *end = config_find(s + 1, "]"), *rest;
	char text[256], section[256], list[256];

	ld->skip_section = true;
	if (*end != ']') {
		config_error(ld, ld->lineno, "section header without a closing "
		    "']'");
		return;
	}
	snprintf(text, sizeof(text), "%.*s", (int)(end - s - 1), s + 1);
	config_section_name(text, section, sizeof(section));
	for (rest = end + 1; isspace((unsigned char)*rest); rest++)
		continue;
	if (!config_is_comment(rest)) {
		config_error(ld, ld->lineno, "[%s]: unexpected text after the "
		    "section header", section);
	} else if (!config_section_known(section)) {
		config_section_list(list, sizeof(list));
		config_error(ld, ld->lineno, "[%s]: unknown section (known: "
		    "%s)", section, list);
	} else {
		ld->skip_section = false;
		config_open_section(ld, section);
	}
}

/* Returns false when inih must not see the line. */
static bool
config_check_line(struct config_load *ld, const char *line)
{
	const char *s = line, *end;

	if (ld->lineno == 1 && ini_allow_bom &&
	    strncmp(s, "\xEF\xBB\xBF", 3) == 0)
		s += 3;
	while (isspace((unsigned char)*s))
		s++;
	if (config_is_comment(s))
		return true;
	if (*s == '[') {
		config_check_header(ld, s);
		/* inih must not move on to a section we refused. */
		return !ld->skip_section;
	}
	end = config_find(s, "=:");
	if (*end != '=' && *end != ':') {
		config_error(ld, ld->lineno, "expected \"key = value\", a "
		    "[section] header or a comment");
		return false;
	}
	return true;
}

/*
 * inih's reader: whole lines only, so a line longer than inih's buffer is
 * reported rather than split into two lines, and lineno stays exact.
 */
static char *
config_read_line(char *buf, int size, void *stream)
{
	struct config_load *ld = stream;
	size_t n = 0, max = size > 2 ? (size_t)size - 2 : 0;
	bool too_long = false, nul = false;
	int c;

	while ((c = getc(ld->in)) != EOF && c != '\n') {
		nul = nul || c == '\0';
		if (n < max)
			buf[n++] = (char)c;
		else
			too_long = true;
	}
	if (c == EOF && ferror(ld->in) && ld->read_errno == 0)
		ld->read_errno = errno;
	if (c == EOF && n == 0 && !too_long)
		return NULL;
	ld->lineno++;
	buf[n++] = '\n';
	buf[n] = '\0';
	if (too_long)
		config_error(ld, ld->lineno, "line too long (the limit is %zu "
		    "characters)", max);
	else if (nul)
		config_error(ld, ld->lineno, "line contains a NUL byte");
	if (too_long || nul || !config_check_line(ld, buf))
		buf[0] = '\0';
	return buf;
}

/* Returns -1 when the file could not be read at all. */
static int
config_read(struct config_load *ld)
{
	char why[128];
	int rc;

	ld->in = file_open_regular(ld->path, why, sizeof(why));
	if (ld->in == NULL) {
		config_error(ld, 0, "%s", why);
		return -1;
	}
	/* A continuation line would be counted as its own line by us but
	 * folded into the previous value by inih. */
	ini_allow_multiline = false;
	rc = ini_parse_stream(config_read_line, ld, config_handle, ld);
	if (ld->read_errno != 0) {
		config_error(ld, 0, "cannot read: %s",
		    strerror(ld->read_errno));
		rc = -1;
	} else if (rc == -2) {
		config_error(ld, 0, "out of memory");
	} else if (rc > 0 && ld->nerrors == 0) {
		config_error(ld, (unsigned)rc, "syntax error");
	}
	fclose(ld->in);
	ld->in = NULL;
	return rc == -1 ? -1 : 0;
}

static void
config_check_users(struct config_load *ld)
{
	struct config *cfg = ld->cfg;
	size_t method = config_row_index("auth", "method");
	size_t file = config_row_index("auth", "users_file");

	if (cfg->auth_method != AUTH_PASSWORD || ld->row_bad[file])
		return;
	if (cfg->users_file == NULL) {
		config_error(ld, ld->row_line[method], "[auth] method: "
		    "password needs [auth] users_file");
		return;
	}
	cfg->users = users_load(cfg->users_file, ld->errors);
	if (cfg->users == NULL)
		config_error(ld, ld->row_line[file], "[auth] users_file: "
		    "cannot load users from %s", cfg->users_file);
	else if (users_count(cfg->users) == 0)
		config_error(ld, ld->row_line[file], "[auth] users_file: "
		    "%s has no users, so nobody could log in",
		    cfg->users_file);
}

/* The line of a named section's key ("rule", NAME, "via"): its first
 * "[rule NAME]" section's. */
static unsigned
config_named_key_line(const struct config_load *ld, const char *kind,
    const char *name, const char *key)
{
	char section[128];

	snprintf(section, sizeof(section), "%s %s", kind, name);
	for (size_t n = 0; n < ld->ninst; n++)
		if (strcmp(ld->inst[n]->section, section) == 0)
			return ld->inst[n]->row_line[config_row_index(section,
			    key)];
	return 0;
}

/* Is member m (a literal host) one of our own listeners? Through it every
 * request would come back to us and go out again, until descriptors run
 * out. */
static bool
config_member_is_us(const struct config *cfg, const struct upstream_member *m)
{
	union sockaddr_any a, l;

	memset(&a, 0, sizeof(a));
	if (inet_pton(AF_INET, m->host, &a.in.sin_addr) == 1)
		a.sa.sa_family = AF_INET;
	else if (inet_pton(AF_INET6, m->host, &a.in6.sin6_addr) == 1)
		a.sa.sa_family = AF_INET6;
	else
		return false;
	addr_normalize(&a.sa, &a);
	/* [server] listen, then [tls] listen: a TLS member may be us too. */
	for (size_t i = 0; i < cfg->nlisten + cfg->tls_nlisten; i++) {
		const struct config_addr *ours = i < cfg->nlisten ?
		    &cfg->listen[i] : &cfg->tls_listen[i - cfg->nlisten];

		addr_normalize((const struct sockaddr *)&ours->ss, &l);
		bool wildcard = l.sa.sa_family == AF_INET ?
		    l.in.sin_addr.s_addr == htonl(INADDR_ANY) :
		    IN6_IS_ADDR_UNSPECIFIED(&l.in6.sin6_addr);

		if (addr_port(&l.sa) == m->port && (addr_same_ip(&l, &a) ||
		    (wildcard && config_addr_is_loopback(&a.sa))))
			return true;
	}
	return false;
}

/* An upstream with TLS members gets its client context now, so a CA file
 * that cannot be read is the config's error. */
static void
config_upstream_tls(struct config_load *ld, struct upstream *u)
{
	char why[512];
	bool any = false;

	for (size_t j = 0; j < u->n; j++)
		any = any || u->members[j].tls;
	if (!any)
		return;
	if ((u->tls = tls_client_ctx_new(u->tls_ca, u->tls_verify, why,
	    sizeof(why))) == NULL)
		config_error(ld, config_named_key_line(ld, "upstream", u->name,
		    u->tls_ca != NULL ? "tls_ca" : "url"), "[upstream %s] %s: %s",
		    u->name, u->tls_ca != NULL ? "tls_ca" : "url", why);
}

/* Every via names an [upstream NAME]; members get their health records;
 * no member is ourselves. */
static void
config_check_routes(struct config_load *ld)
{
	struct config *cfg = ld->cfg;
	const char *rule, *name;

	if (upstreams_attach_health(cfg->upstreams) == -1)
		config_error(ld, 0, "out of memory");
	for (size_t i = 0; i < upstreams_count(cfg->upstreams); i++) {
		const struct upstream *u = upstreams_at(cfg->upstreams, i);

		unsigned line = config_named_key_line(ld, "upstream", u->name,
		    "url");

		for (size_t j = 0; j < u->n; j++)
			if (config_member_is_us(cfg, &u->members[j]))
				config_error(ld, line, "[upstream %s] url: "
				    "member %zu is this daemon's own listener "
				    "(a loop)", u->name, j + 1);
		config_upstream_tls(ld, upstreams_find(cfg->upstreams,
		    u->name));
	}
	if (cfg->via_name != NULL &&
	    (cfg->via = upstreams_find(cfg->upstreams, cfg->via_name)) == NULL)
		config_error(ld, ld->row_line[config_row_index("outbound",
		    "via")], "[outbound] via: no [upstream %s] section",
		    cfg->via_name);
	if (!rules_resolve_via(cfg->rules, cfg->upstreams, &rule, &name))
		config_error(ld, config_named_key_line(ld, "rule", rule, "via"),
		    "[rule %s] via: no [upstream %s] section", rule, name);
}

/* Read now, so lookups answer from memory and never read it on the loop. */
static void
config_check_hosts(struct config_load *ld)
{
	struct config *cfg = ld->cfg;
	size_t row = config_row_index("dns", "hosts_file");
	char why[256];

	if (cfg->hosts_file == NULL || ld->row_bad[row])
		return;
	cfg->hosts = hosts_load(cfg->hosts_file, why, sizeof(why));
	if (cfg->hosts == NULL)
		config_error(ld, ld->row_line[row], "[dns] hosts_file: %s: %s",
		    cfg->hosts_file, why);
}

/* Do two listen addresses take the same connections: the same port, and
 * the same IP or a wildcard of the same family (IPv6 sockets are
 * V6ONLY)? */
static bool
config_addr_overlap(const struct config_addr *x, const struct config_addr *y)
{
	union sockaddr_any a, b;

	addr_normalize((const struct sockaddr *)&x->ss, &a);
	addr_normalize((const struct sockaddr *)&y->ss, &b);
	if (a.sa.sa_family != b.sa.sa_family ||
	    addr_port(&a.sa) != addr_port(&b.sa))
		return false;
	if (a.sa.sa_family == AF_INET)
		return a.in.sin_addr.s_addr == b.in.sin_addr.s_addr ||
		    a.in.sin_addr.s_addr == htonl(INADDR_ANY) ||
		    b.in.sin_addr.s_addr == htonl(INADDR_ANY);
	return addr_same_ip(&a, &b) ||
	    IN6_IS_ADDR_UNSPECIFIED(&a.in6.sin6_addr) ||
	    IN6_IS_ADDR_UNSPECIFIED(&b.in6.sin6_addr);
}

/*
 * tls_ctx_new's reason names the file it failed on first ("key /x: ...");
 * report it under that key's row, at the line that set it.
 */
static void
config_tls_error(struct config_load *ld, const char *why)
{
	static const char *const keys[] = { "certificate", "key",
	    "client_ca" };
	const char *key = "listen";
	size_t n;

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		n = strlen(keys[i]);
		if (strncmp(why, keys[i], n) == 0 && why[n] == ' ') {
			key = keys[i];
			why += n + 1;
			break;
		}
	}
	config_error(ld, ld->row_line[config_row_index("tls", key)],
	    "[tls] %s: %s", key, why);
}

/*
 * With [tls] listen addresses: the keys they need, no port shared with a
 * plain listener, and the context built now, so -t and a reload see a bad
 * certificate or key before any client does. Without, the other keys are
 * left unchecked (nothing uses them).
 */
static void
config_check_tls(struct config_load *ld)
{
	struct config *cfg = ld->cfg;
	size_t listen = config_row_index("tls", "listen");
	size_t cert = config_row_index("tls", "client_certificate");
	size_t user = config_row_index("tls", "client_user");
	static const char *const keys[] = { "listen", "certificate", "key",
	    "client_ca", "client_certificate", "client_user" };
	char text[ADDR_STRLEN], why[1024];
	unsigned before = ld->nerrors;
	struct tls_settings set;

	if (cfg->tls_nlisten == 0)
		return;
	/* A bad value is reported already. */
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (ld->row_bad[config_row_index("tls", keys[i])])
			return;
	if (cfg->tls_certificate == NULL || cfg->tls_key == NULL)
		config_error(ld, ld->row_line[listen], "[tls] listen: needs "
		    "[tls] certificate and key");
	if (cfg->tls_client_cert != TLS_CLIENT_CERT_NONE &&
	    cfg->tls_client_ca == NULL)
		config_error(ld, ld->row_line[cert], "[tls] "
		    "client_certificate: needs [tls] client_ca, the CAs "
		    "client certificates are checked against");
	/* With optional, a client without a certificate logs in the
	 * ordinary way. */
	if (cfg->tls_client_user != TLS_CLIENT_USER_NONE &&
	    cfg->tls_client_cert == TLS_CLIENT_CERT_NONE)
		config_error(ld, ld->row_line[user], "[tls] client_user: "
		    "needs [tls] client_certificate = optional or require");
	for (size_t i = 0; i < cfg->tls_nlisten; i++) {
		const struct config_addr *t = &cfg->tls_listen[i];

		addr_format((const struct sockaddr *)&t->ss, text,
		    sizeof(text));
		for (size_t j = 0; j < cfg->nlisten; j++)
			if (config_addr_overlap(t, &cfg->listen[j])) {
				config_error(ld, ld->row_line[listen], "[tls] "
				    "listen: %s is also a [server] listen "
				    "address; one port cannot serve both plain "
				    "and TLS", text);
				break;
			}
		if (cfg->metrics_listen.len > 0 &&
		    config_addr_overlap(t, &cfg->metrics_listen))
			config_error(ld, ld->row_line[listen], "[tls] listen: "
			    "%s is also the [metrics] listen address", text);
	}
	if (ld->nerrors > before)
		return;
	set = (struct tls_settings){
		.certificate = cfg->tls_certificate,
		.key = cfg->tls_key,
		.client_ca = cfg->tls_client_ca,
		.client_cert = cfg->tls_client_cert,
		.client_user = cfg->tls_client_user,
	};
	if ((cfg->tls = tls_ctx_new(&set, why, sizeof(why))) == NULL)
		config_tls_error(ld, why);
}

/*
 * [inspect] interception: a CA and its key together, built now (so -t and
 * a reload see a bad file before a client does); rules that ask for it
 * need them, and only allow rules can ask. upstream_verify = no is said
 * loudly: every origin's certificate is then taken on trust.
 */
static void
config_check_intercept(struct config_load *ld)
{
	struct config *cfg = ld->cfg;
	size_t cert = config_row_index("inspect", "ca_certificate");
	size_t key = config_row_index("inspect", "ca_key");
	size_t verify = config_row_index("inspect", "upstream_verify");
	static const char *const keys[] = { "ca_certificate", "ca_key",
	    "upstream_ca" };
	const char *rule, *at = "ca_certificate";
	char why[1024];
	size_t n;

	rules_finish(cfg->inspect_bypass);
	if ((rule = rules_intercepting(cfg->rules, true)) != NULL)
		config_error(ld, config_named_key_line(ld, "rule", rule,
		    "intercept"), "[rule %s] intercept: only an allow rule "
		    "can intercept", rule);
	if (cfg->inspect_ca_certificate == NULL &&
	    cfg->inspect_ca_key == NULL) {
		if ((rule = rules_intercepting(cfg->rules, false)) != NULL)
			config_error(ld, config_named_key_line(ld, "rule",
			    rule, "intercept"), "[rule %s] intercept: needs "
			    "[inspect] ca_certificate and ca_key", rule);
		return;
	}
	if (cfg->inspect_ca_certificate == NULL ||
	    cfg->inspect_ca_key == NULL) {
		config_error(ld, ld->row_line[cfg->inspect_ca_key == NULL ?
		    cert : key], "[inspect] %s: needs [inspect] %s too",
		    cfg->inspect_ca_key == NULL ? "ca_certificate" : "ca_key",
		    cfg->inspect_ca_key == NULL ? "ca_key" : "ca_certificate");
		return;
	}
	if ((cfg->intercept = intercept_ctx_new(cfg->inspect_ca_certificate,
	    cfg->inspect_ca_key, cfg->inspect_upstream_ca,
	    cfg->inspect_upstream_verify, why, sizeof(why))) == NULL) {
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
			n = strlen(keys[i]);
			if (strncmp(why, keys[i], n) == 0 && why[n] == ' ') {
				at = keys[i];
				break;
			}
		}
		config_error(ld, ld->row_line[config_row_index("inspect", at)],
		    "[inspect] %s", why);
		return;
	}
	if (!cfg->inspect_upstream_verify)
		log_warnx("%s:%u: [inspect] upstream_verify = no: intercepted "
		    "sessions take every origin's certificate on trust; a "
		    "man in the middle between us and the origin reads them",
		    cfg->path, ld->row_line[verify]);
}

/* Rules that let only some clients in are as good as a password here. */
bool
config_listener_allowed(const struct config *cfg, const struct sockaddr *sa)
{
	if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)
		return true;
	/* Behind load balancers the clients are theirs, not local ones,
	 * whatever address the daemon listens on. */
	return (config_addr_is_loopback(sa) &&
	    cidr_set_empty(&cfg->proxy_from)) ||
	    cfg->auth_method != AUTH_NONE || cfg->allow_open ||
	    rules_restrict_clients(cfg->rules);
}

/* A client certificate that must verify is a login of its own. */
bool
config_tls_listener_allowed(const struct config *cfg,
    const struct sockaddr *sa)
{
	return config_listener_allowed(cfg, sa) ||
	    cfg->tls_client_cert == TLS_CLIENT_CERT_REQUIRE;
}

static void
config_check_open(struct config_load *ld)
{
	struct config *cfg = ld->cfg;
	size_t listen = config_row_index("server", "listen");
	size_t tls_listen = config_row_index("tls", "listen");
	char text[ADDR_STRLEN];

	/* A bad method or allow_open is reported already; guessing the
	 * intent would only add a confusing second error. */
	if (ld->row_bad[listen] ||
	    ld->row_bad[config_row_index("auth", "method")] ||
	    ld->row_bad[config_row_index("server", "allow_open")])
		return;
	for (size_t i = 0; i < cfg->nlisten; i++) {
		const struct sockaddr *sa =
		    (const struct sockaddr *)&cfg->listen[i].ss;

		if (config_listener_allowed(cfg, sa))
			continue;
		addr_format(sa, text, sizeof(text));
		config_error(ld, ld->row_line[listen], "[server] listen: %s is "
		    CONFIG_OPEN_PROXY_WHY, text);
	}
	if (ld->row_bad[tls_listen] ||
	    ld->row_bad[config_row_index("tls", "client_certificate")])
		return;
	for (size_t i = 0; i < cfg->tls_nlisten; i++) {
		const struct sockaddr *sa =
		    (const struct sockaddr *)&cfg->tls_listen[i].ss;

		if (config_tls_listener_allowed(cfg, sa))
			continue;
		addr_format(sa, text, sizeof(text));
		config_error(ld, ld->row_line[tls_listen], "[tls] listen: %s "
		    "is " CONFIG_OPEN_PROXY_WHY CONFIG_OPEN_PROXY_TLS, text);
	}
}

/* Every required key of every named section was given. */
static void
config_check_instances(struct config_load *ld)
{
	for (size_t n = 0; n < ld->ninst; n++) {
		const struct config_instance *in = ld->inst[n];

		for (size_t i = 0; i < CONFIG_NROWS; i++) {
			const struct config_row *row = &config_rows[i];

			if (row->named && row->required &&
			    strcmp(row->section, in->row->section) == 0 &&
			    in->row_line[i] == 0)
				config_error(ld, in->line, "[%s] %s: missing",
				    in->section, row->key);
		}
	}
}

static void
config_instances_free(struct config_load *ld)
{
	for (size_t i = 0; i < ld->ninst; i++) {
		free(ld->inst[i]->section);
		free(ld->inst[i]);
	}
	free(ld->inst);
}

static char *
config_dir_of(const char *path)
{
	char *copy = strdup(path), *dir;

	if (copy == NULL)
		return NULL;
	dir = strdup(dirname(copy));
	free(copy);
	return dir;
}

/* Set once, before the first load, from the command line. */
static const char *config_user_override;

void
config_set_user_override(const char *user)
{
	config_user_override = user;
}

static void
config_apply_user_override(struct config_load *ld)
{
	if (config_user_override == NULL)
		return;
	free(ld->cfg->run_user);
	if ((ld->cfg->run_user = strdup(config_user_override)) == NULL)
		config_error(ld, 0, "out of memory");
}

struct config *
config_load(const char *path, FILE *errors)
{
	struct config_load ld = { .path = path, .errors = errors };

	ld.cfg = calloc(1, sizeof(*ld.cfg));
	if (ld.cfg == NULL || (ld.cfg->path = strdup(path)) == NULL ||
	    (ld.dir = config_dir_of(path)) == NULL) {
		config_error(&ld, 0, "out of memory");
		config_free(ld.cfg);
		free(ld.dir);
		return NULL;
	}
	config_apply_defaults(&ld, NULL, ld.cfg);
	if (config_read(&ld) == 0) {
		config_apply_user_override(&ld);
		/* The guard asks the rules, which must be compiled first. */
		rules_finish(ld.cfg->rules);
		config_check_instances(&ld);
		config_check_routes(&ld);
		config_check_users(&ld);
		config_check_hosts(&ld);
		config_check_tls(&ld);
		config_check_intercept(&ld);
		config_check_open(&ld);
	}
	config_instances_free(&ld);
	free(ld.dir);
	if (ld.nerrors > 0) {
		config_free(ld.cfg);
		return NULL;
	}
	return ld.cfg;
}

struct config *
config_reload(const char *path)
{
	struct config *next;
	char *errors = NULL;
	size_t errlen = 0;
	FILE *errstream;

	log_info("reloading %s", path);
	if ((errstream = open_memstream(&errors, &errlen)) == NULL) {
		log_warn("reload: open_memstream");
		return NULL;
	}
	next = config_load(path, errstream);
	fclose(errstream);
	if (next == NULL) {
		log_error_lines("reload rejected: ", errors);
		log_error("reload rejected: the old configuration stays in "
		    "force");
	}
	free(errors);
	return next;
}

void
config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < CONFIG_NROWS; i++)
		if (!config_rows[i].named)
			config_value_free(&config_rows[i], cfg);
	if (cfg->users != NULL)
		users_free(cfg->users);
	hosts_unref(cfg->hosts);
	tls_ctx_free(cfg->tls);
	intercept_ctx_unref(cfg->intercept);
	rules_free(cfg->rules);
	quotas_free(cfg->quotas);
	upstreams_free(cfg->upstreams);
	free(cfg->path);
	free(cfg);
}
