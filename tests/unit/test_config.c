/*
 * Unit tests for the config loader: defaults, every key, every kind of bad
 * value and line, the open proxy guard, the users file, and the shipped
 * conf/socks5d.conf. Config files are written to a fresh temp dir.
 */
#include <ares.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "socks5d/addr.h"
#include "socks5d/auth.h"
#include "socks5d/config.h"
#include "socks5d/log.h"
#include "socks5d/config_values.h"
#include "socks5d/request.h"
#include "socks5d/rules.h"
#include "socks5d/socks5.h"
#include "socks5d/tls_ctx.h"

#include "tls_certs.h"

static char test_dir[] = "/tmp/socks5d-test-config-XXXXXX";
static char test_users_line[crypto_pwhash_STRBYTES + 16];
static unsigned test_nfiles;

/* The result of loading one config text. */
struct loaded {
	char path[256];
	struct config *cfg;
	char *errs;
	size_t errlen;
};

static void
test_write(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void
test_load_path(struct loaded *l, const char *path)
{
	FILE *errors;

	snprintf(l->path, sizeof(l->path), "%s", path);
	errors = open_memstream(&l->errs, &l->errlen);
	assert_non_null(errors);
	l->cfg = config_load(path, errors);
	assert_int_equal(fclose(errors), 0);
}

static void
test_load(struct loaded *l, const char *text)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/t%u.conf", test_dir, ++test_nfiles);
	test_write(path, text);
	test_load_path(l, path);
}

static void
test_done(struct loaded *l)
{
	config_free(l->cfg);
	free(l->errs);
	l->cfg = NULL;
	l->errs = NULL;
}

static unsigned
test_count_lines(const char *s)
{
	unsigned n = 0;

	for (; *s != '\0'; s++)
		n += *s == '\n';
	return n;
}

/* Fails showing all errors unless one starts "path:line: what". */
static void
test_has_error(const struct loaded *l, unsigned line, const char *what)
{
	char want[512];

	if (line > 0)
		snprintf(want, sizeof(want), "%s:%u: %s", l->path, line, what);
	else
		snprintf(want, sizeof(want), "%s: %s", l->path, what);
	if (strstr(l->errs, want) == NULL)
		fail_msg("expected \"%s\" among errors:\n%s", want, l->errs);
}

static void
test_loads_clean(const struct loaded *l)
{
	if (l->cfg == NULL || l->errlen != 0)
		fail_msg("expected a clean load of %s, got:\n%s", l->path,
		    l->errs);
}

/* A file with one bad value on line 3 gives exactly one error. */
static void
test_bad_value(const char *section, const char *key, const char *value,
    const char *why)
{
	struct loaded l;
	char text[1024], what[512];

	snprintf(text, sizeof(text), "[%s]\n; the next line is wrong\n"
	    "%s = %s\n", section, key, value);
	test_load(&l, text);
	snprintf(what, sizeof(what), "[%s] %s: %s", section, key, why);
	if (l.cfg != NULL)
		fail_msg("%s = %s was accepted", key, value);
	test_has_error(&l, 3, what);
	if (test_count_lines(l.errs) != 1)
		fail_msg("expected one error, got:\n%s", l.errs);
	test_done(&l);
}

static const char *
test_addr_text(const struct config_addr *a, char *buf)
{
	addr_format((const struct sockaddr *)&a->ss, buf, ADDR_STRLEN);
	return buf;
}

static void
test_defaults(void **state)
{
	struct loaded l;
	char buf[ADDR_STRLEN];

	(void)state;
	test_load(&l, "");
	test_loads_clean(&l);
	assert_string_equal(l.cfg->path, l.path);
	assert_int_equal(l.cfg->nlisten, 2);
	assert_string_equal(test_addr_text(&l.cfg->listen[0], buf),
	    "127.0.0.1:1080");
	assert_string_equal(test_addr_text(&l.cfg->listen[1], buf),
	    "[::1]:1080");
	assert_int_equal(l.cfg->listen[0].len, sizeof(struct sockaddr_in));
	assert_int_equal(l.cfg->listen[1].len, sizeof(struct sockaddr_in6));
	assert_int_equal(l.cfg->max_clients, 0);
	assert_int_equal(l.cfg->workers, 0);
	assert_int_equal(l.cfg->relay, RELAY_SPLICE);
	assert_int_equal(l.cfg->log_level, LOG_LEVEL_INFO);
	assert_false(l.cfg->allow_open);
	assert_int_equal(l.cfg->auth_method, AUTH_NONE);
	assert_string_equal(l.cfg->users_file, "/etc/socks5d/users");
	assert_null(l.cfg->users);
	assert_int_equal(l.cfg->timeout_handshake, 10);
	assert_int_equal(l.cfg->timeout_connect, 10);
	assert_int_equal(l.cfg->timeout_idle, 300);
	assert_null(l.cfg->dns_servers);
	assert_int_equal(l.cfg->dns_timeout, 5);
	assert_int_equal(l.cfg->dns_family, DNS_FAMILY_AUTO);
	assert_int_equal(l.cfg->bind_ipv4.len, 0);
	assert_int_equal(l.cfg->bind_ipv6.len, 0);
	test_done(&l);
}

static void
test_every_key(void **state)
{
	struct loaded l;
	char buf[ADDR_STRLEN];

	(void)state;
	test_load(&l,
	    "[server]\n"
	    "listen = 0.0.0.0:1081, [::]:1082, [2001:db8::1]:65535\n"
	    "max_clients = 1000000\n"
	    "relay = copy\n"
	    "log_level = debug\n"
	    "allow_open = yes\n"
	    "[auth]\n"
	    "method = none\n"
	    "[timeouts]\n"
	    "handshake = 1\n"
	    "connect = 86400\n"
	    "idle = 77\n"
	    "[dns]\n"
	    "servers = 127.0.0.1:5353, [::1], 10.0.0.1 ,[2001:db8::1]:5300\n"
	    "timeout = 300\n"
	    "family = ipv6\n"
	    "[outbound]\n"
	    "bind_ipv4 = 192.0.2.7\n"
	    "bind_ipv6 = 2001:db8::7\n");
	test_loads_clean(&l);
	assert_int_equal(l.cfg->nlisten, 3);
	assert_string_equal(test_addr_text(&l.cfg->listen[0], buf),
	    "0.0.0.0:1081");
	assert_string_equal(test_addr_text(&l.cfg->listen[1], buf),
	    "[::]:1082");
	assert_string_equal(test_addr_text(&l.cfg->listen[2], buf),
	    "[2001:db8::1]:65535");
	assert_int_equal(l.cfg->max_clients, 1000000);
	assert_int_equal(l.cfg->relay, RELAY_COPY);
	assert_int_equal(l.cfg->log_level, LOG_LEVEL_DEBUG);
	assert_true(l.cfg->allow_open);
	assert_int_equal(l.cfg->timeout_handshake, 1);
	assert_int_equal(l.cfg->timeout_connect, 86400);
	assert_int_equal(l.cfg->timeout_idle, 77);
	assert_string_equal(l.cfg->dns_servers,
	    "127.0.0.1:5353,::1,10.0.0.1,[2001:db8::1]:5300");
	assert_int_equal(l.cfg->dns_timeout, 300);
	assert_int_equal(l.cfg->dns_family, DNS_FAMILY_IPV6);
	assert_int_equal(l.cfg->bind_ipv4.ss.ss_family, AF_INET);
	assert_int_equal(l.cfg->bind_ipv4.len, sizeof(struct sockaddr_in));
	assert_string_equal(test_addr_text(&l.cfg->bind_ipv4, buf),
	    "192.0.2.7:0");
	assert_int_equal(l.cfg->bind_ipv6.ss.ss_family, AF_INET6);
	assert_int_equal(l.cfg->bind_ipv6.len, sizeof(struct sockaddr_in6));
	assert_string_equal(test_addr_text(&l.cfg->bind_ipv6, buf),
	    "[2001:db8::7]:0");
	test_done(&l);
}

static void
test_enum_values(void **state)
{
	static const struct {
		const char *line;
		size_t offset;
		int value;
	} cases[] = {
		{ "[server]\nrelay = splice", offsetof(struct config, relay),
		  RELAY_SPLICE },
		{ "[server]\nrelay = COPY", offsetof(struct config, relay),
		  RELAY_COPY },
		{ "[server]\nlog_level = error",
		  offsetof(struct config, log_level), LOG_LEVEL_ERROR },
		{ "[server]\nlog_level = warn",
		  offsetof(struct config, log_level), LOG_LEVEL_WARN },
		{ "[server]\nlog_level = info",
		  offsetof(struct config, log_level), LOG_LEVEL_INFO },
		{ "[dns]\nfamily = ipv4", offsetof(struct config, dns_family),
		  DNS_FAMILY_IPV4 },
		{ "[dns]\nfamily = auto", offsetof(struct config, dns_family),
		  DNS_FAMILY_AUTO },
	};
	struct loaded l;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		test_load(&l, cases[i].line);
		test_loads_clean(&l);
		assert_int_equal(*(int *)((char *)l.cfg + cases[i].offset),
		    cases[i].value);
		test_done(&l);
	}
	/* log_level must agree with log.h's own parser. */
	assert_int_equal(log_level_parse("debug"), LOG_LEVEL_DEBUG);
}

static void
test_bool_words(void **state)
{
	static const struct {
		const char *word;
		bool value;
	} cases[] = {
		{ "yes", true }, { "true", true }, { "on", true },
		{ "1", true }, { "YES", true }, { "True", true },
		{ "no", false }, { "false", false }, { "off", false },
		{ "0", false }, { "No", false },
	};
	struct loaded l;
	char text[128];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "[server]\nallow_open = %s\n",
		    cases[i].word);
		test_load(&l, text);
		test_loads_clean(&l);
		assert_int_equal(l.cfg->allow_open, cases[i].value);
		test_done(&l);
	}
}

static void
test_bad_numbers(void **state)
{
	static const char *const bad[] = {
		"abc", "1000001", "-1", "+5", "10x", "1 0", "0x10",
		"99999999999999999999999", "",
	};
	char why[128];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(why, sizeof(why), "must be a number from 0 to "
		    "1000000, got \"%s\"", bad[i]);
		test_bad_value("server", "max_clients", bad[i], why);
	}
	test_bad_value("timeouts", "handshake", "0",
	    "must be a number from 1 to 86400, got \"0\"");
	test_bad_value("timeouts", "connect", "86401",
	    "must be a number from 1 to 86400, got \"86401\"");
	test_bad_value("timeouts", "idle", "5m",
	    "must be a number from 1 to 86400, got \"5m\"");
	test_bad_value("dns", "timeout", "301",
	    "must be a number from 1 to 300, got \"301\"");
}

static void
test_bad_enums_and_bools(void **state)
{
	(void)state;
	test_bad_value("server", "relay", "sendfile",
	    "must be one of splice, copy; got \"sendfile\"");
	test_bad_value("server", "log_level", "verbose",
	    "must be one of error, warn, info, debug; got \"verbose\"");
	test_bad_value("auth", "method", "pam",
	    "must be one of none, password; got \"pam\"");
	test_bad_value("dns", "family", "both",
	    "must be one of auto, ipv4, ipv6; got \"both\"");
	test_bad_value("server", "allow_open", "maybe",
	    "must be yes or no (or true/false, on/off, 1/0), got \"maybe\"");
	test_bad_value("server", "allow_open", "",
	    "must be yes or no (or true/false, on/off, 1/0), got \"\"");
}

static void
test_bad_listen(void **state)
{
	static const char *const bad[] = {
		"1.2.3.4", "localhost:1080", "::1:1080", "[::1]:0",
		"1.2.3.4:65536", "1.2.3.4:80x", "[1.2.3.4]:80", "[::1]1080",
		"1.2.3:80", "1.2.3.4:",
	};
	char why[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(why, sizeof(why), "\"%s\" is not an IP:port", bad[i]);
		test_bad_value("server", "listen", bad[i], why);
	}
	test_bad_value("server", "listen", "",
	    "must list at least one address:port");
	test_bad_value("server", "listen", "127.0.0.1:1080,",
	    "empty item in the list");
	test_bad_value("server", "listen", "127.0.0.1:1080, , [::1]:1080",
	    "empty item in the list");
	test_bad_value("server", "listen", "127.0.0.1:1080, 127.0.0.1:1080",
	    "\"127.0.0.1:1080\" is listed twice");
	test_bad_value("server", "listen", "[::1]:1, [0:0::1]:1",
	    "\"[0:0::1]:1\" is listed twice");
}

/* The line limit keeps 33 addresses off one line; test the row itself. */
static void
test_listen_limit(void **state)
{
	const struct config_row row = {
		.section = "server", .key = "listen", .type = CONFIG_LISTEN,
		.offset = offsetof(struct config, listen),
		.count_offset = offsetof(struct config, nlisten),
		.max = CONFIG_MAX_LISTEN,
	};
	struct config cfg = { .nlisten = 0 };
	char value[2048], why[256];
	size_t off = 0;

	(void)state;
	for (unsigned i = 0; i < CONFIG_MAX_LISTEN; i++)
		off += (size_t)snprintf(value + off, sizeof(value) - off,
		    "%s127.0.0.1:%u", i > 0 ? "," : "", 1000 + i);
	assert_int_equal(config_value_parse(&row, &cfg, value, ".", why,
	    sizeof(why)), 0);
	assert_int_equal(cfg.nlisten, CONFIG_MAX_LISTEN);
	snprintf(value + off, sizeof(value) - off, ",127.0.0.1:2000");
	assert_int_equal(config_value_parse(&row, &cfg, value, ".", why,
	    sizeof(why)), -1);
	assert_string_equal(why, "more than 32 addresses");
	assert_int_equal(cfg.nlisten, CONFIG_MAX_LISTEN);
}

static void
test_bad_ips(void **state)
{
	(void)state;
	test_bad_value("outbound", "bind_ipv4", "::1",
	    "must be an IPv4 address literal, got \"::1\"");
	test_bad_value("outbound", "bind_ipv4", "192.0.2.1:80",
	    "must be an IPv4 address literal, got \"192.0.2.1:80\"");
	test_bad_value("outbound", "bind_ipv4", "example.com",
	    "must be an IPv4 address literal, got \"example.com\"");
	test_bad_value("outbound", "bind_ipv6", "192.0.2.1",
	    "must be an IPv6 address literal without brackets, got "
	    "\"192.0.2.1\"");
	test_bad_value("outbound", "bind_ipv6", "[::1]",
	    "must be an IPv6 address literal without brackets, got \"[::1]\"");
}

static void
test_bad_dns(void **state)
{
	static const char *const bad[] = {
		"1.2.3.4:0", "::1", "dns.google", "[::1", "[1.2.3.4]",
		"[::1]:65536", "1.2.3.4:53:53", "[]",
	};
	char why[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(why, sizeof(why), "\"%s\" is not an IP or IP:port",
		    bad[i]);
		test_bad_value("dns", "servers", bad[i], why);
	}
	test_bad_value("dns", "servers", "1.1.1.1,,8.8.8.8",
	    "empty item in the list");
}

/* What we store must be what c-ares will take. */
static void
test_dns_csv_for_cares(void **state)
{
	struct ares_addr_port_node *servers = NULL;
	struct ares_options opts;
	ares_channel channel;
	struct loaded l;
	int n = 0;

	(void)state;
	test_load(&l, "[dns]\nservers = [::1], 1.2.3.4, [::1]:5300, "
	    "9.9.9.9:53\n");
	test_loads_clean(&l);
	assert_string_equal(l.cfg->dns_servers, "::1,1.2.3.4,[::1]:5300,"
	    "9.9.9.9:53");
	assert_int_equal(ares_library_init(ARES_LIB_INIT_ALL), ARES_SUCCESS);
	memset(&opts, 0, sizeof(opts));
	assert_int_equal(ares_init_options(&channel, &opts, 0), ARES_SUCCESS);
	assert_int_equal(ares_set_servers_ports_csv(channel,
	    l.cfg->dns_servers), ARES_SUCCESS);
	assert_int_equal(ares_get_servers_ports(channel, &servers),
	    ARES_SUCCESS);
	for (struct ares_addr_port_node *s = servers; s != NULL; s = s->next)
		n++;
	assert_int_equal(n, 4);
	ares_free_data(servers);
	ares_destroy(channel);
	ares_library_cleanup();
	test_done(&l);
}

static void
test_unknown_section_and_key(void **state)
{
	struct loaded l;

	(void)state;
	test_load(&l,
	    "[server]\n"
	    "max_clients = 5\n"
	    "[bogus]\n"
	    "foo = 1\n"
	    "bar = 2\n"
	    "[dns]\n"
	    "timeout = 7\n"
	    "nope = 1\n"
	    "[rules office]\n");
	assert_null(l.cfg);
	test_has_error(&l, 3, "[bogus]: unknown section (known: [server], "
	    "[auth], [timeouts], [dns], [outbound], [bind], [udp], [limits], "
	    "[http], [inspect], [metrics], [control], [tls], [rule NAME], [quota NAME], [upstream NAME])");
	test_has_error(&l, 8, "[dns] nope: unknown key");
	test_has_error(&l, 9, "[rules office]: unknown section");
	/* Keys under an unknown section are not errors of their own. */
	assert_int_equal(test_count_lines(l.errs), 3);
	test_done(&l);
}

static void
test_bad_lines(void **state)
{
	struct loaded l;

	(void)state;
	test_load(&l,
	    "max_clients = 5\n"
	    "[server]\n"
	    "just some words\n"
	    "[server\n"
	    "relay = copy\n"
	    "[server] trailing\n"
	    "[ server ]\n"
	    "= 5\n"
	    "relay = copy\n");
	assert_null(l.cfg);
	test_has_error(&l, 1, "max_clients: keys must follow a [section] "
	    "header");
	test_has_error(&l, 3, "expected \"key = value\", a [section] header "
	    "or a comment");
	test_has_error(&l, 4, "section header without a closing ']'");
	test_has_error(&l, 6, "[server]: unexpected text after the section "
	    "header");
	test_has_error(&l, 8, "[server]: missing key name before '='");
	assert_int_equal(test_count_lines(l.errs), 5);
	test_done(&l);
}

static void
test_long_line(void **state)
{
	struct loaded l;
	char text[4096];

	(void)state;
	/* Well under the limit is fine... */
	snprintf(text, sizeof(text), "[server]\n;%0150d\nmax_clients = 3\n", 0);
	test_load(&l, text);
	test_loads_clean(&l);
	assert_int_equal(l.cfg->max_clients, 3);
	test_done(&l);

	/* ...far over it is an error on that line, and counting goes on. */
	snprintf(text, sizeof(text), "[server]\n; c\nmax_clients = 5 ; %0*d\n"
	    "relay = bogus\nmax_clients = 6\n", 3000, 0);
	test_load(&l, text);
	assert_null(l.cfg);
	test_has_error(&l, 3, "line too long");
	test_has_error(&l, 4, "[server] relay: must be one of");
	assert_int_equal(test_count_lines(l.errs), 2);
	test_done(&l);
}

static void
test_every_error_reported(void **state)
{
	struct loaded l;

	(void)state;
	test_load(&l,
	    "[server]\n"
	    "max_clients = many\n"
	    "relay = copy\n"
	    "log_level = loud\n"
	    "[timeouts]\n"
	    "idle = 0\n"
	    "[outbound]\n"
	    "bind_ipv4 = nowhere\n");
	assert_null(l.cfg);
	test_has_error(&l, 2, "[server] max_clients: must be a number from 0 "
	    "to 1000000, got \"many\"");
	test_has_error(&l, 4, "[server] log_level: ");
	test_has_error(&l, 6, "[timeouts] idle: ");
	test_has_error(&l, 8, "[outbound] bind_ipv4: ");
	assert_int_equal(test_count_lines(l.errs), 4);
	test_done(&l);
}

static void
test_no_continuation_lines(void **state)
{
	struct loaded l;

	(void)state;
	test_load(&l, "[dns]\nservers = 1.1.1.1\n  8.8.8.8\ntimeout = x\n");
	assert_null(l.cfg);
	test_has_error(&l, 3, "expected \"key = value\"");
	test_has_error(&l, 4, "[dns] timeout: ");
	assert_int_equal(test_count_lines(l.errs), 2);
	test_done(&l);
}

static void
test_syntax_details(void **state)
{
	struct loaded l;
	char buf[ADDR_STRLEN];

	(void)state;
	test_load(&l,
	    "\xEF\xBB\xBF; a BOM, CRLF lines, comments and spaces\r\n"
	    "# hash comment\r\n"
	    "[ server ]   ; comment\r\n"
	    "   max_clients   =   42   ; comment\r\n"
	    "listen =  127.0.0.1:1080 ,  [::1]:1081 ; two\r\n"
	    "\r\n"
	    "log_level: warn\r\n");
	test_loads_clean(&l);
	assert_int_equal(l.cfg->max_clients, 42);
	assert_int_equal(l.cfg->nlisten, 2);
	assert_string_equal(test_addr_text(&l.cfg->listen[1], buf),
	    "[::1]:1081");
	assert_int_equal(l.cfg->log_level, LOG_LEVEL_WARN);
	test_done(&l);
}

static void
test_unreadable(void **state)
{
	struct loaded l;
	char want[512];

	(void)state;
	test_load_path(&l, "/nonexistent/socks5d.conf");
	assert_null(l.cfg);
	assert_string_equal(l.errs, "/nonexistent/socks5d.conf: cannot open: "
	    "No such file or directory\n");
	test_done(&l);

	test_load_path(&l, test_dir);
	assert_null(l.cfg);
	snprintf(want, sizeof(want), "%s: not a regular file\n", test_dir);
	assert_string_equal(l.errs, want);
	test_done(&l);

	/* A FIFO must be refused, not waited on: reloads run on the loop. */
	snprintf(want, sizeof(want), "%s/fifo.conf", test_dir);
	assert_int_equal(mkfifo(want, 0600), 0);
	test_load_path(&l, want);
	assert_null(l.cfg);
	assert_non_null(strstr(l.errs, "fifo.conf: not a regular file\n"));
	test_done(&l);
	unlink(want);

	/* Likewise a users file that is a device. */
	test_load(&l, "[auth]\nmethod = password\nusers_file = /dev/zero\n");
	assert_null(l.cfg);
	assert_non_null(strstr(l.errs, "/dev/zero: not a regular file\n"));
	test_done(&l);
}

static void
test_open_proxy_guard(void **state)
{
	struct loaded l;

	(void)state;
	test_load(&l, "[server]\nlisten = 0.0.0.0:1080\n");
	assert_null(l.cfg);
	test_has_error(&l, 2, "[server] listen: 0.0.0.0:1080 is not a "
	    "loopback address (or its clients come through the balancers of "
	    "proxy_protocol_from) and [auth] method = none: this would be an "
	    "open proxy; set [auth] method = password, add [rule] sections "
	    "that restrict client, or allow_open = yes if that is intended");
	assert_int_equal(test_count_lines(l.errs), 1);
	test_done(&l);

	test_load(&l, "[auth]\nmethod = none\n[server]\n; x\n"
	    "listen = [::]:1080\n");
	assert_null(l.cfg);
	test_has_error(&l, 5, "[server] listen: [::]:1080 is not a loopback "
	    "address");
	test_done(&l);

	test_load(&l, "[server]\nlisten = 127.0.0.1:1080, 10.1.2.3:1080\n");
	assert_null(l.cfg);
	test_has_error(&l, 2, "[server] listen: 10.1.2.3:1080 is not");
	assert_int_equal(test_count_lines(l.errs), 1);
	test_done(&l);

	test_load(&l, "[server]\nlisten = 0.0.0.0:1080, [::]:1080\n"
	    "allow_open = yes\n");
	test_loads_clean(&l);
	test_done(&l);

	test_load(&l, "[server]\nlisten = 127.9.8.7:1080, [::1]:1080, "
	    "[::ffff:127.0.0.1]:1081\n");
	test_loads_clean(&l);
	test_done(&l);
}

/* A users file with one real argon2id line; returns its path. */
static void
test_write_users(char *path, size_t pathlen, const char *name)
{
	char text[512];

	snprintf(path, pathlen, "%s/%s", test_dir, name);
	snprintf(text, sizeof(text), "# test users\nalice:%s\n",
	    test_users_line);
	test_write(path, text);
	assert_int_equal(chmod(path, 0600), 0);
}

static void
test_password(void **state)
{
	struct loaded l;
	char users[256], text[512], want[640];

	(void)state;
	test_write_users(users, sizeof(users), "users");

	/* Without users_file the default path is used; here it does not
	 * exist, and the error says which key to fix. */
	test_load(&l, "[auth]\nmethod = password\n");
	assert_null(l.cfg);
	assert_non_null(strstr(l.errs, "[auth] users_file: cannot load users "
	    "from /etc/socks5d/users"));
	test_done(&l);

	test_load(&l, "[auth]\nmethod = password\n"
	    "users_file = /nonexistent/users\n");
	assert_null(l.cfg);
	test_has_error(&l, 3, "[auth] users_file: cannot load users from "
	    "/nonexistent/users");
	test_done(&l);

	snprintf(text, sizeof(text), "[server]\nlisten = 0.0.0.0:1080\n"
	    "[auth]\nmethod = password\nusers_file = %s\n", users);
	test_load(&l, text);
	test_loads_clean(&l);
	assert_int_equal(l.cfg->auth_method, AUTH_PASSWORD);
	assert_string_equal(l.cfg->users_file, users);
	assert_non_null(l.cfg->users);
	assert_int_equal(users_count(l.cfg->users), 1);
	test_done(&l);

	/* Relative to the config file's directory, not the cwd. */
	test_load(&l, "[auth]\nmethod = password\nusers_file = users\n");
	test_loads_clean(&l);
	assert_string_equal(l.cfg->users_file, users);
	assert_non_null(l.cfg->users);
	test_done(&l);

	/* A users file with nobody in it would lock everyone out. */
	snprintf(text, sizeof(text), "%s/empty-users", test_dir);
	test_write(text, "# nobody yet\n");
	assert_int_equal(chmod(text, 0600), 0);
	test_load(&l, "[auth]\nmethod = password\nusers_file = empty-users\n");
	assert_null(l.cfg);
	snprintf(want, sizeof(want), "[auth] users_file: %s has no users, "
	    "so nobody could log in", text);
	test_has_error(&l, 3, want);
	test_done(&l);

	/* With method = none the file is not even read. */
	test_load(&l, "[auth]\nusers_file = /nonexistent/users\n");
	test_loads_clean(&l);
	assert_null(l.cfg->users);
	test_done(&l);
}

static void
test_bind_and_udp_keys(void **state)
{
	struct loaded l;
	char buf[ADDR_STRLEN];

	(void)state;
	test_load(&l, "[bind]\nenabled = no\naddress = 192.0.2.7, [2001:db8::7]\n"
	    "port_range = 40000-40010\n[udp]\nenabled = no\n"
	    "port_range = 5000-5000\nadvertise_ipv4 = 198.51.100.1\n"
	    "advertise_ipv6 = 2001:db8::1\n[timeouts]\nbind = 7\n"
	    "udp_idle = 9\n");
	test_loads_clean(&l);
	assert_false(l.cfg->bind_enabled);
	assert_string_equal(test_addr_text(&l.cfg->bind_address.ipv4, buf),
	    "192.0.2.7:0");
	assert_string_equal(test_addr_text(&l.cfg->bind_address.ipv6, buf),
	    "[2001:db8::7]:0");
	assert_int_equal(l.cfg->bind_ports.low, 40000);
	assert_int_equal(l.cfg->bind_ports.high, 40010);
	assert_false(l.cfg->udp_enabled);
	assert_int_equal(l.cfg->udp_ports.low, 5000);
	assert_int_equal(l.cfg->udp_ports.high, 5000);
	assert_string_equal(test_addr_text(&l.cfg->udp_advertise_ipv4, buf),
	    "198.51.100.1:0");
	assert_string_equal(test_addr_text(&l.cfg->udp_advertise_ipv6, buf),
	    "[2001:db8::1]:0");
	assert_int_equal(l.cfg->timeout_bind, 7);
	assert_int_equal(l.cfg->timeout_udp_idle, 9);
	test_done(&l);

	/* Defaults: both commands on, kernel-chosen ports, no addresses. */
	test_load(&l, "");
	test_loads_clean(&l);
	assert_true(l.cfg->bind_enabled);
	assert_true(l.cfg->udp_enabled);
	assert_int_equal(l.cfg->bind_address.ipv4.len, 0);
	assert_int_equal(l.cfg->bind_address.ipv6.len, 0);
	assert_int_equal(l.cfg->bind_ports.low, 0);
	assert_int_equal(l.cfg->udp_ports.low, 0);
	assert_int_equal(l.cfg->timeout_bind, 120);
	assert_int_equal(l.cfg->timeout_udp_idle, 120);
	test_done(&l);
}

static void
test_bad_ports_and_pairs(void **state)
{
	static const char *const bad_ranges[] = { "5-4", "0-10", "10-65536",
	    "2000-", "-2000", "2000", "a-b", "10-20-30", "10 - 20x" };
	char why[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad_ranges) / sizeof(bad_ranges[0]);
	    i++) {
		snprintf(why, sizeof(why), "must be LOW-HIGH with 1 <= LOW <= "
		    "HIGH <= 65535, got \"%s\"", bad_ranges[i]);
		test_bad_value("bind", "port_range", bad_ranges[i], why);
		test_bad_value("udp", "port_range", bad_ranges[i], why);
	}
	test_bad_value("bind", "address", "127.0.0.1, 127.0.0.2",
	    "at most one address per family, got a second: \"127.0.0.2\"");
	test_bad_value("bind", "address", "::1, ::2",
	    "at most one address per family, got a second: \"::2\"");
	test_bad_value("bind", "address", "example.com",
	    "must be IP address literals, at most one IPv4 and one IPv6, got "
	    "\"example.com\"");
	test_bad_value("bind", "address", "127.0.0.1:80",
	    "must be IP address literals, at most one IPv4 and one IPv6, got "
	    "\"127.0.0.1:80\"");
	test_bad_value("udp", "advertise_ipv4", "::1",
	    "must be an IPv4 address literal, got \"::1\"");
	test_bad_value("udp", "advertise_ipv6", "127.0.0.1",
	    "must be an IPv6 address literal without brackets, got "
	    "\"127.0.0.1\"");
	test_bad_value("timeouts", "bind", "0",
	    "must be a number from 1 to 86400, got \"0\"");
}

static void
test_shipped_conf(void **state)
{
	struct loaded l;
	char buf[ADDR_STRLEN];

	(void)state;
	test_load_path(&l, "conf/socks5d.conf");
	test_loads_clean(&l);
	assert_int_equal(l.cfg->nlisten, 2);
	assert_string_equal(test_addr_text(&l.cfg->listen[0], buf),
	    "127.0.0.1:1080");
	assert_string_equal(test_addr_text(&l.cfg->listen[1], buf),
	    "[::1]:1080");
	assert_int_equal(l.cfg->auth_method, AUTH_NONE);
	test_done(&l);
	config_free(NULL);
}

/* A [rule office] with action = allow and key = value on line 3. */
static void
test_bad_rule_value(const char *key, const char *value, const char *why)
{
	struct loaded l;
	char text[1024], what[512];

	snprintf(text, sizeof(text), "[rule office]\naction = allow\n"
	    "%s = %s\n", key, value);
	test_load(&l, text);
	snprintf(what, sizeof(what), "[rule office] %s: %s", key, why);
	if (l.cfg != NULL)
		fail_msg("%s = %s was accepted", key, value);
	test_has_error(&l, 3, what);
	if (test_count_lines(l.errs) != 1)
		fail_msg("expected one error, got:\n%s", l.errs);
	test_done(&l);
}

static bool
test_rule_allows(const struct config *cfg, const char *client,
    const char *user, const char *name, uint16_t port, const char *rule)
{
	struct sockaddr_storage ss;
	socklen_t len;
	struct rules_query q = {
		.user = user,
		.cmd = SOCKS5_CMD_CONNECT,
		.dest_name = name,
		.port = port,
	};
	struct rules_verdict v;

	assert_int_equal(addr_parse_ip(client, &ss, &len), 0);
	q.client = (const struct sockaddr *)&ss;
	v = rules_evaluate(cfg->rules, &q);
	if (rule == NULL)
		assert_null(v.rule);
	else
		assert_string_equal(v.rule, rule);
	return v.allow;
}

static void
test_rules_in_file_order(void **state)
{
	struct loaded l;

	(void)state;
	test_load(&l, "[server]\nmax_clients = 5\n");
	test_loads_clean(&l);
	assert_null(l.cfg->rules);
	test_done(&l);

	test_load(&l,
	    "[rule no-mail]\n"
	    "action = deny\n"
	    "port = 25, 465, 587\n"
	    "[server]\n"
	    "max_clients = 5\n"
	    "[ rule office ]   ; evaluated in file order\n"
	    "action = Allow\n"
	    "client = 10.0.0.0/8, 2001:db8::/32\n"
	    "; a long list may go on over several lines\n"
	    "client = 192.168.0.0/16\n"
	    "user = alice, bob\n"
	    "command = connect, bind, udp\n"
	    "dest = 0.0.0.0/0, example.com, .example.org\n"
	    "port = 80, 443, 8000-8999\n"
	    "[rule z.last_1]\n"
	    "action = deny\n");
	test_loads_clean(&l);
	assert_int_equal(rules_count(l.cfg->rules), 3);
	assert_string_equal(rules_name(l.cfg->rules, 0), "no-mail");
	assert_string_equal(rules_name(l.cfg->rules, 1), "office");
	assert_string_equal(rules_name(l.cfg->rules, 2), "z.last_1");
	assert_false(test_rule_allows(l.cfg, "10.1.1.1", "alice",
	    "www.example.org", 25, "no-mail"));
	assert_true(test_rule_allows(l.cfg, "10.1.1.1", "alice",
	    "www.example.org", 8080, "office"));
	assert_true(test_rule_allows(l.cfg, "192.168.3.3", "bob",
	    "example.com", 443, "office"));
	assert_false(test_rule_allows(l.cfg, "172.16.0.1", "bob",
	    "example.com", 443, "z.last_1"));
	assert_false(test_rule_allows(l.cfg, "10.1.1.1", NULL, "example.com",
	    443, "z.last_1"));
	assert_true(rules_restrict_clients(l.cfg->rules));
	test_done(&l);
}

static void
test_rule_errors(void **state)
{
	struct loaded l;

	(void)state;
	test_bad_value("rule office", "action", "permit",
	    "\"permit\" is not allow or deny");
	test_bad_rule_value("dest", "10.0.0.0/33",
	    "bad pattern \"10.0.0.0/33\"");
	test_bad_rule_value("dest", "example.com, ex ample.org",
	    "bad pattern \"ex ample.org\"");
	test_bad_rule_value("client", "10.0.0.0/8, 300.0.0.0/8",
	    "bad CIDR \"300.0.0.0/8\"");
	test_bad_rule_value("client", "", "empty list (leave the key out to "
	    "match anything)");
	test_bad_rule_value("port", "80, 0-70000",
	    "bad port \"0-70000\" (0-65535 or LOW-HIGH)");
	test_bad_rule_value("command", "connect, associate",
	    "bad command \"associate\" (connect, bind, udp, resolve or resolve_ptr)");
	test_bad_rule_value("user", "alice,,bob", "empty item in the list");
	test_bad_rule_value("colour", "red", "unknown key");

	/* Missing action, reported at the section's header; also for a
	 * section with no keys at all. */
	test_load(&l,
	    "[server]\n"
	    "max_clients = 5\n"
	    "[rule office]\n"
	    "user = alice\n"
	    "[rule empty]\n");
	assert_null(l.cfg);
	test_has_error(&l, 3, "[rule office] action: missing");
	test_has_error(&l, 5, "[rule empty] action: missing");
	assert_int_equal(test_count_lines(l.errs), 2);
	test_done(&l);

	/* A duplicate NAME; its keys are not read. */
	test_load(&l,
	    "[rule office]\n"
	    "action = allow\n"
	    "[rule office]\n"
	    "action = bogus\n");
	assert_null(l.cfg);
	test_has_error(&l, 3, "[rule office]: duplicate section (the first "
	    "is at line 1)");
	assert_int_equal(test_count_lines(l.errs), 1);
	test_done(&l);

	/* Bad and missing names. */
	test_load(&l,
	    "[rule a/b]\n"
	    "action = allow\n"
	    "[rule]\n"
	    "action = allow\n"
	    "[rule ok]\n"
	    "action = deny\n");
	assert_null(l.cfg);
	test_has_error(&l, 1, "[rule a/b]: bad name \"a/b\" (letters, digits, "
	    "'_', '.' and '-', at most 64)");
	test_has_error(&l, 3, "[rule]: unknown section");
	assert_int_equal(test_count_lines(l.errs), 2);
	test_done(&l);
}

/*
 * A key given again in the same section is an error on the repeat that
 * names the first line, whatever the key's type, also when the section is
 * reopened, and a third time still points back to the first.
 */
static void
test_key_set_twice(void **state)
{
	struct loaded l;

	(void)state;
	test_load(&l,
	    "[server]\n"
	    "max_clients = 5\n"
	    "listen = 127.0.0.1:1080\n"
	    "max_clients = 6\n"
	    "listen = 127.0.0.1:1081, [::1]:1081\n"
	    "[dns]\n"
	    "servers = 127.0.0.1\n"
	    "servers = 127.0.0.2\n"
	    "[server]\n"
	    "max_clients = 7\n"
	    "relay = copy\n"
	    "[rule office]\n"
	    "action = allow\n"
	    "action = deny\n");
	assert_null(l.cfg);
	test_has_error(&l, 4, "[server] max_clients: set twice (first on "
	    "line 2)");
	test_has_error(&l, 5, "[server] listen: set twice (first on line 3)");
	test_has_error(&l, 8, "[dns] servers: set twice (first on line 7)");
	test_has_error(&l, 10, "[server] max_clients: set twice (first on "
	    "line 2)");
	test_has_error(&l, 14, "[rule office] action: set twice (first on "
	    "line 13)");
	assert_int_equal(test_count_lines(l.errs), 5);
	test_done(&l);

	/* The repeat is refused before its value is read: one error, not a
	 * second about the value. */
	test_load(&l, "[timeouts]\nidle = 30\nidle = never\n");
	assert_null(l.cfg);
	test_has_error(&l, 3, "[timeouts] idle: set twice (first on line 2)");
	assert_int_equal(test_count_lines(l.errs), 1);
	test_done(&l);

	/* The same key in two different [rule NAME] sections is no repeat. */
	test_load(&l,
	    "[rule a]\naction = deny\nport = 25\n"
	    "[rule b]\naction = allow\nport = 25\n");
	test_loads_clean(&l);
	assert_int_equal(rules_count(l.cfg->rules), 2);
	test_done(&l);
}

/* A rule's list keys add to the list when repeated (rules.h), so they are
 * the one exception. */
static void
test_rule_list_keys_append(void **state)
{
	struct loaded l;

	(void)state;
	test_load(&l,
	    "[rule office]\n"
	    "action = allow\n"
	    "client = 10.0.0.0/8\n"
	    "client = 192.168.0.0/16\n"
	    "user = alice\n"
	    "user = bob\n"
	    "command = connect\n"
	    "command = bind\n"
	    "dest = example.com\n"
	    "dest = example.org\n"
	    "port = 80\n"
	    "port = 443\n");
	test_loads_clean(&l);
	assert_true(test_rule_allows(l.cfg, "192.168.1.1", "bob",
	    "example.org", 443, "office"));
	assert_true(test_rule_allows(l.cfg, "10.1.1.1", "alice",
	    "example.com", 80, "office"));
	test_done(&l);
}

static int
test_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
test_setup(void **state)
{
	(void)state;
	if (mkdtemp(test_dir) == NULL || sodium_init() < 0)
		return -1;
	strcpy(test_users_line, "");
	return crypto_pwhash_str(test_users_line, "secret", 6,
	    crypto_pwhash_OPSLIMIT_INTERACTIVE,
	    crypto_pwhash_MEMLIMIT_INTERACTIVE);
}

static int
test_teardown(void **state)
{
	(void)state;
	return nftw(test_dir, test_rm, 8, FTW_DEPTH | FTW_PHYS);
}

/* A certificate and key for [tls] in the test dir: cert.pem (also as
 * ca.pem), key.pem (0640), open-key.pem (0644), and other-key.pem, which
 * does not match. */
static void
test_write_tls_files(void)
{
	static bool done;
	struct tc_spec spec = { .cn = "proxy.test" };
	EVP_PKEY *other;
	char path[256];
	X509 *x;

	if (done)
		return;
	done = true;
	spec.key = tc_key();
	other = tc_key();
	x = tc_cert(&spec);
	snprintf(path, sizeof(path), "%s/cert.pem", test_dir);
	tc_write_certs(path, x, NULL);
	snprintf(path, sizeof(path), "%s/ca.pem", test_dir);
	tc_write_certs(path, x, NULL);
	snprintf(path, sizeof(path), "%s/key.pem", test_dir);
	tc_write_key(path, spec.key, 0640);
	snprintf(path, sizeof(path), "%s/open-key.pem", test_dir);
	tc_write_key(path, spec.key, 0644);
	snprintf(path, sizeof(path), "%s/other-key.pem", test_dir);
	tc_write_key(path, other, 0600);
	X509_free(x);
	EVP_PKEY_free(spec.key);
	EVP_PKEY_free(other);
}

static void
test_tls_keys(void **state)
{
	struct loaded l;
	char buf[ADDR_STRLEN], want[512];

	(void)state;
	test_write_tls_files();
	/* Off by default; the other keys alone build nothing. */
	test_load(&l, "");
	test_loads_clean(&l);
	assert_int_equal(l.cfg->tls_nlisten, 0);
	assert_null(l.cfg->tls_certificate);
	assert_null(l.cfg->tls_key);
	assert_null(l.cfg->tls_client_ca);
	assert_int_equal(l.cfg->tls_client_cert, TLS_CLIENT_CERT_NONE);
	assert_int_equal(l.cfg->tls_client_user, TLS_CLIENT_USER_NONE);
	assert_null(l.cfg->tls);
	test_done(&l);
	test_load(&l, "[tls]\nlisten =\ncertificate = missing.pem\n"
	    "client_certificate = require\nclient_user = san-email\n");
	test_loads_clean(&l);
	assert_null(l.cfg->tls);
	assert_int_equal(l.cfg->tls_client_user, TLS_CLIENT_USER_SAN_EMAIL);
	test_done(&l);

	/* Paths are relative to the config file. */
	test_load(&l, "[tls]\nlisten = 127.0.0.1:8443, [::1]:8443\n"
	    "certificate = cert.pem\nkey = key.pem\nclient_ca = ca.pem\n"
	    "client_certificate = optional\nclient_user = cn\n");
	test_loads_clean(&l);
	assert_int_equal(l.cfg->tls_nlisten, 2);
	assert_string_equal(test_addr_text(&l.cfg->tls_listen[1], buf),
	    "[::1]:8443");
	snprintf(want, sizeof(want), "%s/cert.pem", test_dir);
	assert_string_equal(l.cfg->tls_certificate, want);
	assert_int_equal(l.cfg->tls_client_cert, TLS_CLIENT_CERT_OPTIONAL);
	assert_int_equal(l.cfg->tls_client_user, TLS_CLIENT_USER_CN);
	assert_non_null(l.cfg->tls);
	assert_int_equal(tls_ctx_client_user(l.cfg->tls), TLS_CLIENT_USER_CN);
	test_done(&l);

	test_bad_value("tls", "client_certificate", "yes",
	    "must be one of none, optional, require; got \"yes\"");
	test_bad_value("tls", "client_user", "email",
	    "must be one of none, cn, san-email, san-dns; got \"email\"");
	test_bad_value("tls", "listen", "127.0.0.1",
	    "\"127.0.0.1\" is not an IP:port");
	test_bad_value("tls", "listen", "127.0.0.1:1, ",
	    "empty item in the list");
}

/* What [tls] needs, each reported at the line that is wrong. */
static void
test_tls_errors(void **state)
{
	struct loaded l;
	char want[512];

	(void)state;
	test_write_tls_files();
	test_load(&l, "[tls]\nlisten = 127.0.0.1:8443\ncertificate = "
	    "cert.pem\n");
	assert_null(l.cfg);
	test_has_error(&l, 2, "[tls] listen: needs [tls] certificate and key");
	assert_int_equal(test_count_lines(l.errs), 1);
	test_done(&l);

	test_load(&l, "[tls]\nlisten = 127.0.0.1:8443\ncertificate = "
	    "cert.pem\nkey = key.pem\nclient_certificate = require\n"
	    "client_user = cn\n");
	assert_null(l.cfg);
	test_has_error(&l, 5, "[tls] client_certificate: needs [tls] "
	    "client_ca");
	assert_int_equal(test_count_lines(l.errs), 1);
	test_done(&l);

	test_load(&l, "[tls]\nlisten = 127.0.0.1:8443\ncertificate = "
	    "cert.pem\nkey = key.pem\nclient_user = cn\n");
	assert_null(l.cfg);
	test_has_error(&l, 5, "[tls] client_user: needs [tls] "
	    "client_certificate = optional or require");
	test_done(&l);

	/* One port, plain and TLS: also through a wildcard. */
	test_load(&l, "[server]\nlisten = 127.0.0.1:1080\n[tls]\n"
	    "listen = [::1]:1080, 127.0.0.1:1080\ncertificate = cert.pem\n"
	    "key = key.pem\n");
	assert_null(l.cfg);
	test_has_error(&l, 4, "[tls] listen: 127.0.0.1:1080 is also a "
	    "[server] listen address; one port cannot serve both plain and "
	    "TLS");
	assert_int_equal(test_count_lines(l.errs), 1);
	test_done(&l);
	test_load(&l, "[server]\nlisten = 0.0.0.0:1080\nallow_open = yes\n"
	    "[tls]\nlisten = 127.0.0.1:1080, [::1]:1080\n"
	    "certificate = cert.pem\nkey = key.pem\n");
	assert_null(l.cfg);
	test_has_error(&l, 5, "[tls] listen: 127.0.0.1:1080 is also");
	assert_int_equal(test_count_lines(l.errs), 1);
	test_done(&l);

	/* The files, under their own keys. */
	test_load(&l, "[tls]\nlisten = 127.0.0.1:8443\ncertificate = "
	    "nope.pem\nkey = key.pem\n");
	assert_null(l.cfg);
	snprintf(want, sizeof(want), "[tls] certificate: %s/nope.pem: cannot "
	    "open: No such file or directory", test_dir);
	test_has_error(&l, 3, want);
	test_done(&l);
	test_load(&l, "[tls]\nlisten = 127.0.0.1:8443\ncertificate = "
	    "cert.pem\n\nkey = other-key.pem\n");
	assert_null(l.cfg);
	snprintf(want, sizeof(want), "[tls] key: %s/other-key.pem: does not "
	    "match the certificate %s/cert.pem", test_dir, test_dir);
	test_has_error(&l, 5, want);
	test_done(&l);
	test_load(&l, "[tls]\nkey = open-key.pem\nlisten = 127.0.0.1:8443\n"
	    "certificate = cert.pem\n");
	assert_null(l.cfg);
	snprintf(want, sizeof(want), "[tls] key: %s/open-key.pem: readable by "
	    "others (mode 0644)", test_dir);
	test_has_error(&l, 2, want);
	test_done(&l);
	test_load(&l, "[tls]\nlisten = 127.0.0.1:8443\ncertificate = "
	    "cert.pem\nkey = key.pem\nclient_ca = /dev/null\n"
	    "client_certificate = optional\n");
	assert_null(l.cfg);
	test_has_error(&l, 5, "[tls] client_ca: /dev/null: not a regular "
	    "file");
	test_done(&l);
}

/* The open-proxy guard covers [tls] listen too; a required client
 * certificate is a login of its own. */
static void
test_tls_open_proxy_guard(void **state)
{
	struct loaded l;

	(void)state;
	test_write_tls_files();
	test_load(&l, "[tls]\nlisten = 127.0.0.1:8443, 0.0.0.0:8443\n"
	    "certificate = cert.pem\nkey = key.pem\n");
	assert_null(l.cfg);
	test_has_error(&l, 2, "[tls] listen: 0.0.0.0:8443 is not a loopback "
	    "address (or its clients come through the balancers of "
	    "proxy_protocol_from) and [auth] method = none: this would be an "
	    "open proxy; set [auth] method = password, add [rule] sections "
	    "that restrict client, or allow_open = yes if that is intended; "
	    "or set [tls] client_certificate = require");
	assert_int_equal(test_count_lines(l.errs), 1);
	test_done(&l);

	test_load(&l, "[tls]\nlisten = 0.0.0.0:8443\ncertificate = cert.pem\n"
	    "key = key.pem\nclient_ca = ca.pem\n"
	    "client_certificate = optional\n");
	assert_null(l.cfg);
	test_has_error(&l, 2, "[tls] listen: 0.0.0.0:8443 is not a loopback");
	test_done(&l);

	test_load(&l, "[tls]\nlisten = 0.0.0.0:8443\ncertificate = cert.pem\n"
	    "key = key.pem\nclient_ca = ca.pem\n"
	    "client_certificate = require\n");
	test_loads_clean(&l);
	assert_true(config_tls_listener_allowed(l.cfg,
	    (const struct sockaddr *)&l.cfg->tls_listen[0].ss));
	/* Not the plain listeners, though. */
	assert_false(config_listener_allowed(l.cfg,
	    (const struct sockaddr *)&l.cfg->tls_listen[0].ss));
	test_done(&l);
}

/* The lists new with the front-ends: protocols (a set of names) and
 * proxy_protocol_from (networks). Each bad value names itself. */
static void
test_protocol_lists(void **state)
{
	struct loaded l;

	(void)state;
	test_bad_value("server", "protocols", "socks5, socks6",
	    "must be one of socks5, socks4, http; got \"socks6\"");
	test_bad_value("server", "protocols", "http, HTTP",
	    "\"http\" listed twice");
	test_bad_value("server", "protocols", "",
	    "must list at least one");
	test_bad_value("server", "proxy_protocol_from", "10.0.0.1, 10.0.0.0/33",
	    "bad CIDR \"10.0.0.0/33\" (a.b.c.d/n, x::/n or an address)");
	/* Behind balancers, loopback is no exemption from the open-proxy
	 * guard. */
	test_load(&l, "[server]\nprotocols = http , socks4\n"
	    "proxy_protocol_from = 10.0.0.0/8, ::1\nallow_open = yes\n");
	test_loads_clean(&l);
	assert_int_equal(l.cfg->protocols, 1u << REQUEST_PROTO_HTTP |
	    1u << REQUEST_PROTO_SOCKS4);
	assert_false(cidr_set_empty(&l.cfg->proxy_from));
	test_done(&l);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_every_key),
		cmocka_unit_test(test_bind_and_udp_keys),
		cmocka_unit_test(test_bad_ports_and_pairs),
		cmocka_unit_test(test_enum_values),
		cmocka_unit_test(test_bool_words),
		cmocka_unit_test(test_bad_numbers),
		cmocka_unit_test(test_bad_enums_and_bools),
		cmocka_unit_test(test_bad_listen),
		cmocka_unit_test(test_listen_limit),
		cmocka_unit_test(test_bad_ips),
		cmocka_unit_test(test_bad_dns),
		cmocka_unit_test(test_dns_csv_for_cares),
		cmocka_unit_test(test_unknown_section_and_key),
		cmocka_unit_test(test_bad_lines),
		cmocka_unit_test(test_long_line),
		cmocka_unit_test(test_every_error_reported),
		cmocka_unit_test(test_no_continuation_lines),
		cmocka_unit_test(test_syntax_details),
		cmocka_unit_test(test_unreadable),
		cmocka_unit_test(test_open_proxy_guard),
		cmocka_unit_test(test_password),
		cmocka_unit_test(test_shipped_conf),
		cmocka_unit_test(test_rules_in_file_order),
		cmocka_unit_test(test_rule_errors),
		cmocka_unit_test(test_key_set_twice),
		cmocka_unit_test(test_rule_list_keys_append),
		cmocka_unit_test(test_protocol_lists),
		cmocka_unit_test(test_tls_keys),
		cmocka_unit_test(test_tls_errors),
		cmocka_unit_test(test_tls_open_proxy_guard),
	};

	return cmocka_run_group_tests(tests, test_setup, test_teardown);
}
