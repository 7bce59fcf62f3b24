/*
 * Counters for /metrics: one slot of integers per serving process that the
 * rest of the daemon bumps at the single place each event is decided (with
 * workers, the slots live in a shared mapping and a scrape sums them), and
 * the Prometheus text exposition (version 0.0.4) written from them.
 */
#ifndef SOCKS5D_METRICS_H
#define SOCKS5D_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct upstreams;

/* Upstream members each slot keeps counts for, and the most a scrape
 * shows (the config's first ones, in file order): what bounds the text. */
#define METRICS_UPSTREAM_MAX 64
/* The most bytes the exposition needs, whatever the config and however
 * large the counters: what the endpoint reserves for it. */
#define METRICS_TEXT_MAX     (128 * 1024)

/* Why a UDP datagram was dropped; each is one "reason" label value. */
enum metrics_udp_drop {
	METRICS_UDP_DROP_STRANGER,     /* not from the associated client */
	METRICS_UDP_DROP_FRAG,         /* FRAG != 0: no reassembly */
	METRICS_UDP_DROP_RSV,          /* RSV != 0 */
	METRICS_UDP_DROP_BAD,          /* malformed header */
	METRICS_UDP_DROP_TRUNC,        /* did not fit the buffer */
	METRICS_UDP_DROP_OVERSIZE,     /* too big for the next hop */
	METRICS_UDP_DROP_QUEUE,        /* no room while a name resolves */
	METRICS_UDP_DROP_DNS,          /* the name did not resolve */
	METRICS_UDP_DROP_DENIED,       /* a rule said no */
	METRICS_UDP_DROP_SEND,         /* the kernel refused it */
	METRICS_UDP_DROP_RATE,         /* over the bandwidth limit */
	METRICS_UDP_DROP_COUNT,
};

/* Why a connection or request was turned away by policy. */
enum metrics_refusal {
	METRICS_REFUSED_MAX_CLIENTS,   /* [server] max_clients */
	METRICS_REFUSED_CLIENT_IP,     /* [limits] max_per_client_ip */
	METRICS_REFUSED_USER,          /* [limits] max_per_user */
	METRICS_REFUSED_BANNED,        /* failed-login ban */
	METRICS_REFUSED_RULE,          /* an access rule denied a request */
	METRICS_REFUSED_BIND_PEER,     /* a rule denied a peer BIND accepted */
	METRICS_REFUSED_QUOTA,         /* the user's [quota] is used up */
	METRICS_REFUSED_COUNT,
};

/* Values of this process read at scrape time rather than counted. */
struct metrics_gauges {
	long fds_open;                 /* -1: could not be counted */
	unsigned max_clients;
	/* The config's [upstream NAME] sections (NULL: none), whose members
	 * get series, and the loop's ev_now to tell which are down now. */
	const struct upstreams *upstreams;
	double now;
	/* The users rules and quotas name get per-user series; the quota
	 * table (NULL: none) their quota use. */
	const struct rules *rules;
	const struct quotas *quotas;
	struct quota_table *quota_table;
};

/*
 * A session ended (session_close): cmd is the SOCKS5 command byte (0: no
 * request was read), reply the last reply code sent (-1: none), reason the
 * access log's close word.
 */
void metrics_count_session(uint8_t cmd, int reply, const char *reason);
/* [inspect] sniff looked at a session's first bytes: what it found them
 * to be ("tls", "http", "none"), and names that were not the one asked
 * for. */
void metrics_count_sniffed(const char *kind);
void metrics_count_sniff_mismatch(void);
/* TLS interception: what became of a session a rule asked to intercept
 * ("yes", "bypass", "learnt", "plain", "none", "refused", "untrusted"); an http line written; a leaf made (or found cached). */
void metrics_count_intercept(const char *result);
void metrics_count_http_exchange(void);
void metrics_count_leaf(bool minted);
/* A session ended that spoke this front-end (enum request_proto; -1: no
 * protocol was recognised). */
void metrics_count_protocol(int proto);
/* One more (delta 1) or one fewer (-1) session open under the command byte
 * cmd (0: no request read yet); a session whose request has been read
 * moves from 0 to its command. */
void metrics_add_active(uint8_t cmd, int delta);
/* n bytes relayed client -> target (up) or target -> client, counted as
 * they move (the relay adds each pump's bytes), so a long transfer shows
 * before it ends. */
void metrics_count_bytes(bool up, uint64_t n);
/* The splice pipe pool now: empty pipes kept, pipes lent to relay
 * directions, large pipes in existence (kept or lent). */
void metrics_set_pipes(size_t idle, size_t in_use, size_t large);
/* The kernel handed out a pipe smaller than the default: the user's pipe
 * budget (fs.pipe-user-pages-soft) is spent. */
void metrics_count_small_pipe(void);
/* A SOCKS5 reply with this code went to a client. */
void metrics_count_reply(uint8_t rep);
/* An RFC 1929 login was accepted or refused. */
void metrics_count_auth(bool ok);
/* A TLS handshake completed with this version (SSL_version()), resumed
 * from a ticket or not; one failed, for reason (one of
 * TLS_FAILURE_LABELS, the access log's close word). */
void metrics_count_tls_session(int version, bool resumed);
void metrics_count_tls_failure(const char *reason);
#define TLS_FAILURE_LABELS "not-tls", "tls-timeout", "tls-eof", \
	"tls-version", "tls-cipher", "tls-client-cert", "tls-alert", \
	"tls-error"
/* A name lookup started; one ended after seconds, with or without an
 * address. */
void metrics_count_dns_lookup(void);
void metrics_observe_dns(double seconds, bool ok);
/* n datagrams relayed client -> target (up) or target -> client. */
void metrics_count_udp_datagrams(bool up, uint64_t n);
/* n datagrams dropped for this reason. */
void metrics_count_udp_drops(enum metrics_udp_drop reason, uint64_t n);
/* A connection or request was refused for this reason. */
void metrics_count_refused(enum metrics_refusal reason);
/* A hop through member label of [upstream name] was made (ok) or failed;
 * down_until is the member's health after it (ev_now; skipped until then,
 * 0: up). Called by upstream_report. */
void metrics_count_upstream(const char *name, const char *label, bool ok,
    double down_until);
/* The label of a drop reason, shared with the access log. */
const char *metrics_udp_drop_name(enum metrics_udp_drop reason);

/*
 * Write the exposition text into buf (at most cap bytes, NUL-terminated
 * when cap > 0). Returns the length the whole text needs, like snprintf:
 * a result >= cap means it was cut short.
 */
size_t metrics_render(char *buf, size_t cap, const struct metrics_gauges *g);

/* Start every counter of this process's slot from zero (unit tests). */
void metrics_reset(void);

/* Active sessions summed over every slot (STATUS= of sd_notify). */
unsigned metrics_sessions_active(void);

/*
 * Workers: the supervisor calls metrics_share once, before the first fork,
 * for count slots in memory every worker shares; it marks a slot running
 * while its worker lives (the socks5d_workers gauge). A worker writes only
 * slot i from metrics_use_slot on: counters continue the previous
 * occupant's, gauges (and upstream members marked down) start again.
 * Returns 0, or -1 (logged).
 */
int metrics_share(size_t count);
void metrics_use_slot(size_t i);
void metrics_slot_running(size_t i, bool running);
/* The supervisor's count of worker i's open descriptors; with workers,
 * socks5d_open_fds is the sum of these. */
void metrics_slot_fds(size_t i, uint64_t fds);

/* Open descriptors of process pid (0: this one), or -1 when /proc cannot
 * be read. */
long metrics_count_fds(pid_t pid);
/* Whether a scrape needs this process's own count (metrics_gauges
 * fds_open): not with workers, whose counts the supervisor keeps. */
bool metrics_wants_own_fds(void);

#endif
