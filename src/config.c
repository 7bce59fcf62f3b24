/*
 * The config table: every section and key with its type, default and bounds
 * (config_rows[]; tests/integration/test_docs.py reads it and the name lists
 * from this file), and the lookups into it. config_load.c reads files by it.
 */
#include <stdio.h>
#include <string.h>

#include "socks5d/config.h"
#include "socks5d/config_values.h"
#include "socks5d/log.h"
#include "socks5d/quota.h"
#include "socks5d/request.h"
#include "socks5d/rules.h"
#include "socks5d/tls_ctx.h"

static const struct config_enum_name config_relay_names[] = {
	{ "splice", RELAY_SPLICE },
	{ "copy", RELAY_COPY },
	{ NULL, 0 },
};

static const struct config_enum_name config_log_level_names[] = {
	{ "error", LOG_LEVEL_ERROR },
	{ "warn", LOG_LEVEL_WARN },
	{ "info", LOG_LEVEL_INFO },
	{ "debug", LOG_LEVEL_DEBUG },
	{ NULL, 0 },
};

static const struct config_enum_name config_log_target_names[] = {
	{ "stderr", LOG_TARGET_STDERR },
	{ "syslog", LOG_TARGET_SYSLOG },
	{ NULL, 0 },
};

static const struct config_enum_name config_auth_names[] = {
	{ "none", AUTH_NONE },
	{ "password", AUTH_PASSWORD },
	{ NULL, 0 },
};

static const struct config_enum_name config_protocol_names[] = {
	{ "socks5", REQUEST_PROTO_SOCKS5 },
	{ "socks4", REQUEST_PROTO_SOCKS4 },
	{ "http", REQUEST_PROTO_HTTP },
	{ NULL, 0 },
};

static const struct config_enum_name config_egress_select_names[] = {
	EGRESS_SELECT_NAMES,
	{ NULL, 0 },
};

static const struct config_enum_name config_family_names[] = {
	{ "auto", DNS_FAMILY_AUTO },
	{ "ipv4", DNS_FAMILY_IPV4 },
	{ "ipv6", DNS_FAMILY_IPV6 },
	{ NULL, 0 },
};

static const struct config_enum_name config_rate_per_names[] = {
	{ "user", RATE_PER_USER },
	{ "client", RATE_PER_CLIENT },
	{ "session", RATE_PER_SESSION },
	{ "rule", RATE_PER_RULE },
	{ NULL, 0 },
};

static const struct config_enum_name config_sniff_names[] = {
	{ "tls", INSPECT_TLS },
	{ "http", INSPECT_HTTP },
	{ "quic", INSPECT_QUIC },
	{ NULL, 0 },
};

static const struct config_enum_name config_mismatch_names[] = {
	{ "allow", INSPECT_MISMATCH_ALLOW },
	{ "log", INSPECT_MISMATCH_LOG },
	{ "deny", INSPECT_MISMATCH_DENY },
	{ NULL, 0 },
};

static const struct config_enum_name config_tls_client_cert_names[] = {
	{ "none", TLS_CLIENT_CERT_NONE },
	{ "optional", TLS_CLIENT_CERT_OPTIONAL },
	{ "require", TLS_CLIENT_CERT_REQUIRE },
	{ NULL, 0 },
};

static const struct config_enum_name config_tls_client_user_names[] = {
	{ "none", TLS_CLIENT_USER_NONE },
	{ "cn", TLS_CLIENT_USER_CN },
	{ "san-email", TLS_CLIENT_USER_SAN_EMAIL },
	{ "san-dns", TLS_CLIENT_USER_SAN_DNS },
	{ NULL, 0 },
};

#define ROW(sec, name, t, field, dflt)                                  \
	.section = (sec), .key = (name), .type = (t),                   \
	.offset = offsetof(struct config, field), .def = (dflt)
#define ROW_BOOL(sec, name, field, dflt)                                \
	{ ROW(sec, name, CONFIG_BOOL, field, dflt) }
#define ROW_UINT(sec, name, field, dflt, lo, hi)                        \
	{ ROW(sec, name, CONFIG_UINT, field, dflt), .min = (lo), .max = (hi) }
#define ROW_ENUM(sec, name, field, dflt, list)                          \
	{ ROW(sec, name, CONFIG_ENUM, field, dflt), .names = (list) }
#define ROW_ENUM_SET(sec, name, field, dflt, list)                      \
	{ ROW(sec, name, CONFIG_ENUM_SET, field, dflt), .names = (list),  \
	  .min = 1 }
/* The same, where an empty list means "none of them". */
#define ROW_ENUM_SET_OPT(sec, name, field, dflt, list)                  \
	{ ROW(sec, name, CONFIG_ENUM_SET, field, dflt), .names = (list) }
#define ROW_CIDRS(sec, name, field, dflt)                                \
	{ ROW(sec, name, CONFIG_CIDRS, field, dflt) }
#define ROW_STRING(sec, name, field, dflt)                               \
	{ ROW(sec, name, CONFIG_STRING, field, dflt) }
#define ROW_PATH(sec, name, field, dflt)                                \
	{ ROW(sec, name, CONFIG_PATH, field, dflt) }
#define ROW_IP(sec, name, field, dflt, fam)                             \
	{ ROW(sec, name, CONFIG_IP, field, dflt), .family = (fam) }
#define ROW_DNS(sec, name, field, dflt)                                 \
	{ ROW(sec, name, CONFIG_DNS_SERVERS, field, dflt) }
#define ROW_IP_PAIR(sec, name, field, dflt)                              \
	{ ROW(sec, name, CONFIG_IP_PAIR, field, dflt) }
#define ROW_PORTS(sec, name, field, dflt)                               \
	{ ROW(sec, name, CONFIG_PORT_RANGE, field, dflt) }
#define ROW_EGRESS(sec, name, field, dflt)                              \
	{ ROW(sec, name, CONFIG_EGRESS, field, dflt) }
#define ROW_RATE(sec, name, field, dflt)                                \
	{ ROW(sec, name, CONFIG_RATE, field, dflt) }
#define ROW_BYPASS(sec, name, field, dflt)                              \
	{ ROW(sec, name, CONFIG_BYPASS, field, dflt) }
#define ROW_HOSTPORT(sec, name, field, dflt)                            \
	{ ROW(sec, name, CONFIG_HOSTPORT, field, dflt) }
/* least 0: an empty list is allowed (no such listeners). */
#define ROW_LISTEN(sec, name, field, count, dflt, least, most)          \
	{ ROW(sec, name, CONFIG_LISTEN, field, dflt), .min = (least),   \
	  .max = (most), .count_offset = offsetof(struct config, count) }
#define ROW_VIA(sec, name, field, dflt)                                 \
	{ ROW(sec, name, CONFIG_VIA, field, dflt) }
/* An [upstream NAME] key, with offsets into struct upstream. */
#define ROW_UPSTREAM(name, t, field, dflt)                              \
	.section = "upstream ", .named = true,                          \
	.instance = config_upstream_instance,                           \
	.name_valid = upstream_name_valid, .key = (name), .type = (t),  \
	.offset = offsetof(struct upstream, field), .def = (dflt)
#define ROW_UPSTREAM_URLS(name)                                         \
	{ ROW_UPSTREAM(name, CONFIG_UPSTREAM_URLS, members, NULL),      \
	  .required = true }
#define ROW_UPSTREAM_UINT(name, field, dflt, lo, hi)                    \
	{ ROW_UPSTREAM(name, CONFIG_UINT, field, dflt), .min = (lo),    \
	  .max = (hi) }
#define ROW_UPSTREAM_PATH(name, field, dflt)                            \
	{ ROW_UPSTREAM(name, CONFIG_PATH, field, dflt) }
#define ROW_UPSTREAM_BOOL(name, field, dflt)                            \
	{ ROW_UPSTREAM(name, CONFIG_BOOL, field, dflt) }
/* A [rule NAME] key: no default (unset matches anything). */
#define ROW_RULE(name, req)                                             \
	{ .section = "rule ", .named = true,                            \
	  .instance = config_rule_instance,                             \
	  .name_valid = rules_name_valid, .key = (name),                \
	  .type = CONFIG_RULE, .required = (req) }

/* A [quota NAME] key, with the instance a struct quota. */
#define ROW_QUOTA(name, req)                                            \
	{ .section = "quota ", .named = true,                           \
	  .instance = config_quota_instance,                            \
	  .name_valid = quotas_name_valid, .key = (name),               \
	  .type = CONFIG_QUOTA, .required = (req) }

static void *
config_quota_instance(struct config *cfg, const char *name, bool *created)
{
	struct quota *q;

	if (cfg->quotas == NULL && (cfg->quotas = quotas_new()) == NULL)
		return NULL;
	if ((q = quotas_find(cfg->quotas, name)) != NULL)
		return q;
	*created = true;
	return quotas_add(cfg->quotas, name);
}

/* Each [rule NAME] section appends one rule, so file order is kept. */
static void *
config_rule_instance(struct config *cfg, const char *name, bool *created)
{
	struct rule *r;

	if (cfg->rules == NULL && (cfg->rules = rules_new()) == NULL)
		return NULL;
	if ((r = rules_find(cfg->rules, name)) != NULL)
		return r;
	*created = true;
	return rules_add(cfg->rules, name);
}

/* Each [upstream NAME] section is one upstream; a name used twice is the
 * same section continued. */
static void *
config_upstream_instance(struct config *cfg, const char *name, bool *created)
{
	struct upstream *u;

	if (cfg->upstreams == NULL &&
	    (cfg->upstreams = upstreams_new()) == NULL)
		return NULL;
	if ((u = upstreams_find(cfg->upstreams, name)) != NULL)
		return u;
	*created = true;
	return upstreams_add(cfg->upstreams, name);
}

/*
 * Every key the file may hold. A section is known because some row names
 * it. Rows of a "[rule NAME]"-style section set .named, a section prefix
 * ("rule "), .instance, .name_valid and offsets into the instance's
 * struct; config_free frees the instances too (cfg->rules).
 */
const struct config_row config_rows[] = {
	ROW_LISTEN("server", "listen", listen, nlisten,
	    "127.0.0.1:1080, [::1]:1080", 1, CONFIG_MAX_LISTEN),
	ROW_UINT("server", "max_clients", max_clients, "0", 0, 1000000),
	ROW_ENUM("server", "relay", relay, "splice", config_relay_names),
	ROW_BOOL("server", "io_uring", io_uring, "yes"),
	ROW_ENUM("server", "log_level", log_level, "info",
	    config_log_level_names),
	ROW_ENUM("server", "log", log_target, "stderr",
	    config_log_target_names),
	ROW_BOOL("server", "allow_open", allow_open, "no"),
	ROW_STRING("server", "user", run_user, ""),
	ROW_STRING("server", "group", run_group, ""),
	ROW_UINT("server", "workers", workers, "0", 0, CONFIG_MAX_WORKERS),
	ROW_ENUM_SET("server", "protocols", protocols, "socks5, http",
	    config_protocol_names),
	ROW_CIDRS("server", "proxy_protocol_from", proxy_from, ""),
	ROW_PATH("server", "state_dir", state_dir, "/var/lib/socks5d"),
	ROW_BOOL("server", "reload_recheck", reload_recheck, "yes"),

	ROW_ENUM("auth", "method", auth_method, "none", config_auth_names),
	ROW_PATH("auth", "users_file", users_file, "/etc/socks5d/users"),

	ROW_UINT("timeouts", "handshake", timeout_handshake, "10", 1, 86400),
	ROW_UINT("timeouts", "connect", timeout_connect, "10", 1, 86400),
	ROW_UINT("timeouts", "idle", timeout_idle, "300", 1, 86400),
	ROW_UINT("timeouts", "bind", timeout_bind, "120", 1, 86400),
	ROW_UINT("timeouts", "udp_idle", timeout_udp_idle, "120", 1, 86400),
	ROW_UINT("timeouts", "shutdown", timeout_shutdown, "30", 0, 86400),

	ROW_DNS("dns", "servers", dns_servers, ""),
	ROW_UINT("dns", "timeout", dns_timeout, "5", 1, 300),
	ROW_ENUM("dns", "family", dns_family, "auto", config_family_names),
	ROW_PATH("dns", "hosts_file", hosts_file, "/etc/hosts"),

	ROW_IP("outbound", "bind_ipv4", bind_ipv4, "", AF_INET),
	ROW_IP("outbound", "bind_ipv6", bind_ipv6, "", AF_INET6),
	ROW_EGRESS("outbound", "egress", egress, ""),
	ROW_ENUM("outbound", "egress_select", egress_select, "user",
	    config_egress_select_names),
	ROW_VIA("outbound", "via", via_name, "direct"),
	ROW_UINT("outbound", "connection_attempt_delay",
	    connection_attempt_delay_ms, "250", 10, 2000),

	ROW_BOOL("bind", "enabled", bind_enabled, "yes"),
	ROW_IP_PAIR("bind", "address", bind_address, ""),
	ROW_PORTS("bind", "port_range", bind_ports, ""),

	ROW_BOOL("udp", "enabled", udp_enabled, "yes"),
	ROW_PORTS("udp", "port_range", udp_ports, ""),
	ROW_IP("udp", "advertise_ipv4", udp_advertise_ipv4, "", AF_INET),
	ROW_IP("udp", "advertise_ipv6", udp_advertise_ipv6, "", AF_INET6),

	ROW_UINT("limits", "max_per_client_ip", limits.max_per_client_ip, "0",
	    0, 1000000),
	ROW_UINT("limits", "max_per_user", limits.max_per_user, "0", 0,
	    1000000),
	ROW_UINT("limits", "auth_failures", limits.auth_failures, "5", 0,
	    1000000),
	ROW_UINT("limits", "auth_window", limits.auth_window, "60", 1, 86400),
	ROW_UINT("limits", "auth_ban", limits.auth_ban, "300", 1, 86400),
	ROW_RATE("limits", "rate_up", rate.up, "0"),
	ROW_RATE("limits", "rate_down", rate.down, "0"),
	ROW_ENUM("limits", "rate_per", rate.per, "user", config_rate_per_names),

	ROW_BOOL("http", "via", http_via, "yes"),
	ROW_ENUM_SET_OPT("inspect", "sniff", inspect_sniff, "",
	    config_sniff_names),
	ROW_UINT("inspect", "sniff_timeout", sniff_timeout_ms, "200", 10,
	    10000),
	ROW_ENUM("inspect", "mismatch", inspect_mismatch, "log",
	    config_mismatch_names),
	ROW_PATH("inspect", "ca_certificate", inspect_ca_certificate, ""),
	ROW_PATH("inspect", "ca_key", inspect_ca_key, ""),
	ROW_PATH("inspect", "upstream_ca", inspect_upstream_ca, ""),
	ROW_BOOL("inspect", "upstream_verify", inspect_upstream_verify, "yes"),
	ROW_BYPASS("inspect", "bypass", inspect_bypass, ""),
	ROW_UINT("inspect", "learn_bypass", learn_bypass, "3600", 0, 2592000),
	ROW_BOOL("inspect", "log_query", inspect_log_query, "no"),
	ROW_HOSTPORT("metrics", "listen", metrics_listen, ""),
	ROW_PATH("control", "socket", control_socket, ""),

	ROW_LISTEN("tls", "listen", tls_listen, tls_nlisten, "", 0,
	    CONFIG_MAX_LISTEN),
	ROW_PATH("tls", "certificate", tls_certificate, ""),
	ROW_PATH("tls", "key", tls_key, ""),
	ROW_PATH("tls", "client_ca", tls_client_ca, ""),
	ROW_ENUM("tls", "client_certificate", tls_client_cert, "none",
	    config_tls_client_cert_names),
	ROW_ENUM("tls", "client_user", tls_client_user, "none",
	    config_tls_client_user_names),

	ROW_RULE("action", true),
	ROW_RULE("client", false),
	ROW_RULE("user", false),
	ROW_RULE("command", false),
	ROW_RULE("protocol", false),
	ROW_RULE("dest", false),
	ROW_RULE("port", false),
	ROW_RULE("egress", false),
	ROW_RULE("egress_select", false),
	ROW_RULE("via", false),
	ROW_RULE("rate_up", false),
	ROW_RULE("rate_down", false),
	ROW_RULE("rate_per", false),
	ROW_RULE("intercept", false),

	ROW_QUOTA("user", false),
	ROW_QUOTA("bytes", true),
	ROW_QUOTA("period", true),

	ROW_UPSTREAM_URLS("url"),
	ROW_UPSTREAM_UINT("fail_after", fail_after, "3", 1, 100),
	ROW_UPSTREAM_UINT("retry_after", retry_after, "30", 1, 86400),
	ROW_UPSTREAM_PATH("tls_ca", tls_ca, ""),
	ROW_UPSTREAM_BOOL("tls_verify", tls_verify, "yes"),
};

_Static_assert(sizeof(config_rows) / sizeof(config_rows[0]) == CONFIG_NROWS,
    "CONFIG_NROWS (config_values.h) must count the rows of config_rows[]");

/* Does row belong to section text? *name gets a named section's name. */
static bool
config_row_in(const struct config_row *row, const char *section,
    const char **name)
{
	size_t n;

	if (!row->named)
		return strcmp(row->section, section) == 0;
	n = strlen(row->section);
	if (strncmp(row->section, section, n) != 0 || section[n] == '\0')
		return false;
	*name = section + n;
	return true;
}

const struct config_row *
config_row_find(const char *section, const char *key, const char **name)
{
	for (size_t i = 0; i < CONFIG_NROWS; i++)
		if (config_row_in(&config_rows[i], section, name) &&
		    strcmp(config_rows[i].key, key) == 0)
			return &config_rows[i];
	return NULL;
}

bool
config_section_known(const char *section)
{
	const char *name;

	for (size_t i = 0; i < CONFIG_NROWS; i++)
		if (config_row_in(&config_rows[i], section, &name))
			return true;
	return false;
}

/* "[server], [auth], ...": each section once, in table order. */
void
config_section_list(char *out, size_t outlen)
{
	size_t off = 0;

	out[0] = '\0';
	for (size_t i = 0; i < CONFIG_NROWS && off < outlen; i++) {
		const struct config_row *row = &config_rows[i];
		bool seen = false;

		for (size_t j = 0; j < i && !seen; j++)
			seen = strcmp(config_rows[j].section,
			    row->section) == 0;
		if (!seen)
			off += (size_t)snprintf(out + off, outlen - off,
			    "%s[%s%s]", off > 0 ? ", " : "", row->section,
			    row->named ? "NAME" : "");
	}
}

/* Only for keys that are in the table. */
size_t
config_row_index(const char *section, const char *key)
{
	const char *name;

	return (size_t)(config_row_find(section, key, &name) - config_rows);
}

/*
 * A rule's list keys add to the list when given again, so long lists can
 * span lines (rules.h); every other key holds one value.
 */
bool
config_row_appends(const struct config_row *row)
{
	if (row->type == CONFIG_QUOTA)
		return strcmp(row->key, "user") == 0;
	return row->type == CONFIG_RULE && strcmp(row->key, "action") != 0 &&
	    strcmp(row->key, "egress_select") != 0 &&
	    strcmp(row->key, "via") != 0 &&
	    strncmp(row->key, "rate_", 5) != 0;
}

const struct config_row *
config_named_row(const char *section, const char **name)
{
	for (size_t i = 0; i < CONFIG_NROWS; i++)
		if (config_rows[i].named &&
		    config_row_in(&config_rows[i], section, name))
			return &config_rows[i];
	return NULL;
}
