/*
 * The configuration: every INI key is one row of a table (section, key,
 * type, default, bounds), parsed with inih and validated into struct config.
 * Errors are reported as "file:line: [section] key: why" and loading goes on
 * to find them all.
 */
#ifndef SOCKS5D_CONFIG_H
#define SOCKS5D_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>

#include "socks5d/cidr.h"
#include "socks5d/egress.h"
#include "socks5d/upstream.h"
#include "socks5d/limits.h"
#include "socks5d/ratelimit.h"

#define CONFIG_DEFAULT_PATH   "/etc/socks5d/socks5d.conf"
#define CONFIG_MAX_LISTEN     32
/* [server] workers: more processes than this only add contention. */
#define CONFIG_MAX_WORKERS    64

enum relay_mode { RELAY_SPLICE, RELAY_COPY };
enum auth_method { AUTH_NONE, AUTH_PASSWORD };
enum dns_family { DNS_FAMILY_AUTO, DNS_FAMILY_IPV4, DNS_FAMILY_IPV6 };
enum log_target { LOG_TARGET_STDERR, LOG_TARGET_SYSLOG };
/* What [inspect] sniff may look for, and what a sniffed name that is not
 * the one asked for does. */
enum inspect_kind { INSPECT_TLS, INSPECT_HTTP, INSPECT_QUIC };
enum inspect_mismatch { INSPECT_MISMATCH_ALLOW, INSPECT_MISMATCH_LOG,
	INSPECT_MISMATCH_DENY };

struct tls_ctx;
struct intercept_ctx;
struct rules;

struct config_addr {
	struct sockaddr_storage ss;
	socklen_t len;
};

/* At most one address per family; len 0 where unset. */
struct config_addr_pair {
	struct config_addr ipv4;
	struct config_addr ipv6;
};

/* Inclusive port range; low 0 when unset (the kernel chooses). */
struct config_port_range {
	unsigned low;
	unsigned high;
};

struct config {
	char *path;

	/* [server] */
	struct config_addr listen[CONFIG_MAX_LISTEN];
	size_t nlisten;
	unsigned max_clients;          /* 0: as many as the descriptor limit allows */
	enum relay_mode relay;
	bool io_uring;                 /* batch relay socket calls (io_batch.h) */
	int log_level;                 /* LOG_ERROR .. LOG_DEBUG (log.h) */
	enum log_target log_target;
	bool allow_open;
	char *run_user;                /* drop to this user when root */
	char *run_group;
	unsigned workers;              /* serving processes; 0: one per CPU */
	unsigned protocols;            /* 1 << enum request_proto, served */
	struct cidr_set proxy_from;    /* who must send a PROXY header */

	/* [auth] */
	enum auth_method auth_method;
	char *users_file;
	struct users *users;           /* loaded and validated users_file */

	/* [timeouts], seconds */
	unsigned timeout_handshake;
	unsigned timeout_connect;
	unsigned connection_attempt_delay_ms;  /* [outbound], Happy Eyeballs */
	unsigned timeout_idle;
	unsigned timeout_bind;         /* BIND: wait for the peer */
	unsigned timeout_udp_idle;     /* UDP association without datagrams */
	unsigned timeout_shutdown;     /* SIGTERM: how long sessions may finish */

	/* [dns] */
	char *dns_servers;             /* c-ares CSV form, NULL: resolv.conf */
	unsigned dns_timeout;
	enum dns_family dns_family;
	char *hosts_file;              /* NULL: names go to DNS only */
	struct hosts *hosts;           /* hosts_file, read at load */

	/* [outbound] */
	struct config_addr bind_ipv4;  /* len 0 when unset */
	struct config_addr bind_ipv6;
	struct egress egress;          /* empty when unset */
	int egress_select;             /* enum egress_select */
	char *via_name;                /* NULL: direct */
	const struct upstream *via;    /* via_name's section, NULL: direct */

	/* [bind] */
	bool bind_enabled;
	struct config_addr_pair bind_address;  /* advertised/listened on */
	struct config_port_range bind_ports;

	/* [udp] */
	bool udp_enabled;
	struct config_port_range udp_ports;
	struct config_addr udp_advertise_ipv4;
	struct config_addr udp_advertise_ipv6;

	/* [limits] */
	struct limits_config limits;
	struct rate_spec rate;         /* every session's, unless its rule
	                                * sets its own */

	/* [quota NAME] sections; NULL when there are none */
	struct quotas *quotas;
	char *state_dir;               /* [server]: where usage is kept */
	bool reload_recheck;           /* [server]: a reload judges sessions */
	char *control_socket;          /* [control] socket; NULL: none */

	/* [rule NAME] sections, compiled; NULL when there are none */
	struct rules *rules;
	struct upstreams *upstreams;   /* [upstream NAME] sections */

	/* [http] */
	bool http_via;                 /* add Via to forwarded requests */

	/* [inspect] */
	unsigned inspect_sniff;        /* 1 << enum inspect_kind, sniffed */
	unsigned sniff_timeout_ms;     /* a decision waits this long for
	                                * the client's first bytes */
	int inspect_mismatch;          /* enum inspect_mismatch */
	char *inspect_ca_certificate;  /* interception CA; NULL: none */
	char *inspect_ca_key;
	char *inspect_upstream_ca;     /* NULL: the system's store */
	bool inspect_upstream_verify;
	struct rules *inspect_bypass;  /* names and CIDRs never intercepted,
	                                * as one rule's dest list; NULL */
	unsigned learn_bypass;         /* seconds a refused name passes
	                                * through; 0: never learnt */
	bool inspect_log_query;        /* http lines keep the query */
	struct intercept_ctx *intercept;   /* built when a CA is set */

	/* [metrics] */
	struct config_addr metrics_listen;     /* len 0: no /metrics */

	/* [tls] */
	struct config_addr tls_listen[CONFIG_MAX_LISTEN];
	size_t tls_nlisten;
	char *tls_certificate;
	char *tls_key;
	char *tls_client_ca;           /* NULL: none */
	int tls_client_cert;           /* enum tls_client_cert */
	int tls_client_user;           /* enum tls_client_user */
	struct tls_ctx *tls;           /* built when tls_nlisten > 0 */
};

/*
 * Load and validate the file at path. On success returns a new config; on
 * failure writes every error, one per line, to errors and returns NULL.
 */
struct config *config_load(const char *path, FILE *errors);

/*
 * Load path again for a SIGHUP: says so at info; on failure logs every
 * error and that the old configuration stays in force, and returns NULL.
 * Shared by a single process and the workers' supervisor.
 */
struct config *config_reload(const char *path);

/* socks5d -u USER: the [server] user of every config loaded from now on,
 * reloads included, whatever the file says. */
void config_set_user_override(const char *user);
void config_free(struct config *cfg);

/* Is this a loopback address (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104)? */
bool config_addr_is_loopback(const struct sockaddr *sa);

/*
 * The open-proxy guard: may cfg serve SOCKS on a socket bound to sa?
 * Loopback (and non-IP) sockets always may, unless proxy_protocol_from
 * says the clients come through load balancers; others only with a
 * password, [rule] sections that restrict client, or allow_open. config_load applies
 * it to [server] listen, the listener code to sockets from systemd.
 */
bool config_listener_allowed(const struct config *cfg,
    const struct sockaddr *sa);

/*
 * The guard for a [tls] listen address: the same, except that
 * client_certificate = require lets no one in without a certificate from
 * client_ca, which is as good as a password.
 */
bool config_tls_listener_allowed(const struct config *cfg,
    const struct sockaddr *sa);

/* What a refusal by the guard says after naming the address. */
#define CONFIG_OPEN_PROXY_WHY "not a loopback address (or its clients come " \
	"through the balancers of proxy_protocol_from) and [auth] method = " \
	"none: this would be an open proxy; set [auth] method = password, " \
	"add [rule] sections that restrict client, or allow_open = yes if " \
	"that is intended"
/* What it adds for a [tls] listen address. */
#define CONFIG_OPEN_PROXY_TLS "; or set [tls] client_certificate = require"

#endif
