/*
 * The counters behind /metrics and their Prometheus text exposition. Each
 * process writes only its own slot: one static slot for a single process,
 * or one per worker in a shared mapping, summed at scrape time. A single
 * writer per slot makes a bump a load, an add and a relaxed store: no
 * lock, no locked instruction, no allocation on the path being measured.
 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <openssl/ssl.h>

#include "socks5d/bypass.h"
#include "socks5d/log.h"
#include "socks5d/metrics.h"
#include "socks5d/metrics_text.h"
#include "socks5d/metrics_users.h"
#include "socks5d/request.h"
#include "socks5d/socks5.h"
#include "socks5d/upstream.h"
#include "socks5d/version.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* "cmd" label values; index 0 is a session that never sent a request. */
enum { CMD_NONE, CMD_CONNECT, CMD_BIND, CMD_UDP, CMD_RESOLVE, CMD_RESOLVE_PTR,
    CMD_UNKNOWN, CMD_COUNT };
static const char *const cmd_labels[CMD_COUNT] = {
	[CMD_NONE] = "none",
	[CMD_CONNECT] = "connect",
	[CMD_BIND] = "bind",
	[CMD_UDP] = "udp",
	[CMD_RESOLVE] = "resolve",
	[CMD_RESOLVE_PTR] = "resolve_ptr",
	[CMD_UNKNOWN] = "unknown",
};

/* The access log's close words for a session that never got a success
 * reply; anything else (a command's own word) is "other". */
static const char *const failure_labels[] = {
	"no-method", "auth-failed", "handshake-timeout", "client-eof",
	"bad-version", "protocol-off", "bad-request", "auth-required",
	"bad-proxy-header", "untrusted-proxy-header", "refused", "rejected",
	"reset", "error", "nomem", "shutdown", "unexpected-tls",
	TLS_FAILURE_LABELS, "other",
};
#define FAILURE_COUNT ARRAY_LEN(failure_labels)

/* The TLS versions a handshake may agree on, and the others. */
static const char *const tls_version_labels[] = { "1.2", "1.3", "other" };
#define TLS_VERSIONS ARRAY_LEN(tls_version_labels)
static const char *const tls_failure_labels[] = { TLS_FAILURE_LABELS };
#define TLS_FAILURES ARRAY_LEN(tls_failure_labels)

/* Also the access log's words for UDP drops. */
static const char *const udp_drop_labels[METRICS_UDP_DROP_COUNT] = {
	[METRICS_UDP_DROP_STRANGER] = "stranger",
	[METRICS_UDP_DROP_FRAG] = "frag",
	[METRICS_UDP_DROP_RSV] = "rsv",
	[METRICS_UDP_DROP_BAD] = "bad",
	[METRICS_UDP_DROP_TRUNC] = "trunc",
	[METRICS_UDP_DROP_OVERSIZE] = "oversize",
	[METRICS_UDP_DROP_QUEUE] = "queue",
	[METRICS_UDP_DROP_DNS] = "dns",
	[METRICS_UDP_DROP_DENIED] = "denied",
	[METRICS_UDP_DROP_SEND] = "send",
	[METRICS_UDP_DROP_RATE] = "rate",
};

/* Upper bounds of the DNS latency buckets, with the text of their "le"
 * label written out so it never depends on float formatting. */
static const struct {
	double le;
	const char *text;
} dns_buckets[] = {
	{ 0.001, "0.001" }, { 0.0025, "0.0025" }, { 0.005, "0.005" },
	{ 0.01, "0.01" }, { 0.025, "0.025" }, { 0.05, "0.05" },
	{ 0.1, "0.1" }, { 0.25, "0.25" }, { 0.5, "0.5" }, { 1, "1" },
	{ 2.5, "2.5" }, { 5, "5" },
};
#define DNS_BUCKET_COUNT ARRAY_LEN(dns_buckets)

#define REPLY_CODES (REPLY_ATYP_UNSUPPORTED + 1)

/* Front-ends by enum request_proto, then sessions that never showed one. */
#define PROTO_LABELS (REQUEST_PROTO_COUNT + 1)

/* One upstream member's counts in one slot, found by its key. */
struct metrics_upstream_entry {
	uint64_t key;                  /* metrics_upstream_key(); 0: free */
	uint64_t ok, failed;
	double down_until;             /* the worker's health (ev_now) */
};

struct metrics_slot {
	uint64_t sessions[CMD_COUNT];
	uint64_t protocols[PROTO_LABELS];
	uint64_t failures[FAILURE_COUNT];
	uint64_t auth_ok, auth_failed;
	uint64_t tls_sessions[TLS_VERSIONS];
	uint64_t tls_resumed;
	uint64_t tls_failures[TLS_FAILURES];
	uint64_t replies[REPLY_CODES];
	uint64_t bytes_up, bytes_down;
	uint64_t dns_lookups, dns_failures;
	/* Per bucket, not cumulative; the last slot is beyond the top. */
	uint64_t dns_buckets[DNS_BUCKET_COUNT + 1];
	uint64_t dns_count;
	uint64_t dns_nanoseconds;      /* an integer, so it can be summed */
	uint64_t udp_up, udp_down;
	uint64_t udp_drops[METRICS_UDP_DROP_COUNT];
	uint64_t refused[METRICS_REFUSED_COUNT];
	uint64_t sniffed[4];           /* tls, http, quic, none */
	uint64_t sniff_mismatches;
	uint64_t intercepts[7];        /* intercept_labels, in order */
	uint64_t http_exchanges;       /* intercepted sessions' http lines */
	uint64_t leaves_minted, leaves_cached;
	uint64_t pipes_small;
	uint64_t upstream_untracked;   /* hops the full table had no room for */
	/* Gauges: the worker's own, reset when it (re)starts. */
	struct metrics_gauge_words {
		uint64_t active[CMD_COUNT];    /* open sessions by command */
		uint64_t pipes_idle, pipes_in_use, pipes_large;
	} gauges;
	uint64_t running;              /* set by the supervisor */
	uint64_t fds;                  /* the supervisor's last count of the
	                                  worker's open descriptors */
	/* Not summed word by word: keys are not numbers to add, and a scrape
	 * sums each member it shows by its key. Entries are taken in order
	 * and never given back, so the used ones are a prefix; their counts
	 * go on across restarts like the counters above. */
	struct metrics_upstream_entry upstreams[METRICS_UPSTREAM_MAX];
};

_Static_assert(offsetof(struct metrics_slot, upstreams) % sizeof(uint64_t) == 0,
    "a slot up to its upstream table is summed as an array of uint64_t");

/* The number of uint64_t before the upstream table, summed all alike. */
#define SLOT_WORDS (offsetof(struct metrics_slot, upstreams) / sizeof(uint64_t))

static struct metrics_slot local_slot;
/* This process's slot, and every slot a scrape sums. */
static struct metrics_slot *mine = &local_slot;
static struct metrics_slot *slots = &local_slot;
static size_t nslots = 1;
static bool shared;

/* Only this process writes *mine, so reading it back is safe; the store is
 * atomic so a sibling summing the slot never sees half a value. */
#define METRICS_ADD(field, n)                                           \
	__atomic_store_n(&mine->field, mine->field + (uint64_t)(n),    \
	    __ATOMIC_RELAXED)
#define METRICS_SET(slot, field, v)                                     \
	__atomic_store_n(&(slot)->field, (uint64_t)(v), __ATOMIC_RELAXED)

static const char *const refusal_labels[METRICS_REFUSED_COUNT] = {
	[METRICS_REFUSED_MAX_CLIENTS] = "max_clients",
	[METRICS_REFUSED_CLIENT_IP] = "max_per_client_ip",
	[METRICS_REFUSED_USER] = "max_per_user",
	[METRICS_REFUSED_BANNED] = "banned",
	[METRICS_REFUSED_RULE] = "rule",
	[METRICS_REFUSED_BIND_PEER] = "bind_peer",
	[METRICS_REFUSED_QUOTA] = "quota",
};

void
metrics_count_refused(enum metrics_refusal reason)
{
	if (reason < METRICS_REFUSED_COUNT)
		METRICS_ADD(refused[reason], 1);
}

/* The index of label among n labels, or n for none of them. */
static size_t
metrics_label_index(const char *const *labels, size_t n, const char *label)
{
	size_t i = 0;

	while (i < n && strcmp(label, labels[i]) != 0)
		i++;
	return i;
}

static const char *const sniff_labels[] = { "tls", "http", "quic", "none" };

void
metrics_count_sniffed(const char *kind)
{
	size_t i = metrics_label_index(sniff_labels, ARRAY_LEN(sniff_labels),
	    kind);

	if (i < ARRAY_LEN(sniff_labels))
		METRICS_ADD(sniffed[i], 1);
}

void
metrics_count_sniff_mismatch(void)
{
	METRICS_ADD(sniff_mismatches, 1);
}

static const char *const intercept_labels[] = { "yes", "bypass", "learnt",
    "plain", "none", "refused", "untrusted" };
_Static_assert(ARRAY_LEN(intercept_labels) ==
    sizeof(((struct metrics_slot *)0)->intercepts) / sizeof(uint64_t),
    "a counter per intercept result");

void
metrics_count_intercept(const char *result)
{
	size_t i = metrics_label_index(intercept_labels,
	    ARRAY_LEN(intercept_labels), result);

	if (i < ARRAY_LEN(intercept_labels))
		METRICS_ADD(intercepts[i], 1);
}

void
metrics_count_http_exchange(void)
{
	METRICS_ADD(http_exchanges, 1);
}

void
metrics_count_leaf(bool minted)
{
	if (minted)
		METRICS_ADD(leaves_minted, 1);
	else
		METRICS_ADD(leaves_cached, 1);
}

static unsigned
metrics_cmd_index(uint8_t cmd)
{
	switch (cmd) {
	case 0:
		return CMD_NONE;
	case REQUEST_CMD_CONNECT:
		return CMD_CONNECT;
	case REQUEST_CMD_BIND:
		return CMD_BIND;
	case REQUEST_CMD_UDP:
		return CMD_UDP;
	case REQUEST_CMD_RESOLVE:
		return CMD_RESOLVE;
	case REQUEST_CMD_RESOLVE_PTR:
		return CMD_RESOLVE_PTR;
	default:
		return CMD_UNKNOWN;
	}
}

/* The last label counts every reason the others do not name. */
static size_t
metrics_failure_index(const char *reason)
{
	return reason == NULL ? FAILURE_COUNT - 1 :
	    metrics_label_index(failure_labels, FAILURE_COUNT - 1, reason);
}

void
metrics_count_session(uint8_t cmd, int reply, const char *reason)
{
	METRICS_ADD(sessions[metrics_cmd_index(cmd)], 1);
	if (reply != REPLY_SUCCESS)
		METRICS_ADD(failures[metrics_failure_index(reason)], 1);
}

void
metrics_count_protocol(int proto)
{
	METRICS_ADD(protocols[proto >= 0 && proto < REQUEST_PROTO_COUNT ?
	    proto : REQUEST_PROTO_COUNT], 1);
}

void
metrics_add_active(uint8_t cmd, int delta)
{
	/* -1 wraps to a subtraction in the unsigned word. */
	METRICS_ADD(gauges.active[metrics_cmd_index(cmd)], (int64_t)delta);
}

void
metrics_count_bytes(bool up, uint64_t n)
{
	if (up)
		METRICS_ADD(bytes_up, n);
	else
		METRICS_ADD(bytes_down, n);
}

void
metrics_set_pipes(size_t idle, size_t in_use, size_t large)
{
	METRICS_SET(mine, gauges.pipes_idle, idle);
	METRICS_SET(mine, gauges.pipes_in_use, in_use);
	METRICS_SET(mine, gauges.pipes_large, large);
}

void
metrics_count_small_pipe(void)
{
	METRICS_ADD(pipes_small, 1);
}

void
metrics_count_reply(uint8_t rep)
{
	/* The codec only encodes RFC 1928 codes; anything else is a bug
	 * elsewhere, and a counter is no place to crash over it. */
	if (rep < REPLY_CODES)
		METRICS_ADD(replies[rep], 1);
}

void
metrics_count_auth(bool ok)
{
	if (ok)
		METRICS_ADD(auth_ok, 1);
	else
		METRICS_ADD(auth_failed, 1);
}

void
metrics_count_tls_session(int version, bool resumed)
{
	METRICS_ADD(tls_sessions[version == TLS1_2_VERSION ? 0 :
	    version == TLS1_3_VERSION ? 1 : 2], 1);
	if (resumed)
		METRICS_ADD(tls_resumed, 1);
}

void
metrics_count_tls_failure(const char *reason)
{
	size_t i = metrics_label_index(tls_failure_labels, TLS_FAILURES,
	    reason);

	if (i < TLS_FAILURES)
		METRICS_ADD(tls_failures[i], 1);
}

void
metrics_count_dns_lookup(void)
{
	METRICS_ADD(dns_lookups, 1);
}

void
metrics_observe_dns(double seconds, bool ok)
{
	size_t i;

	if (!ok)
		METRICS_ADD(dns_failures, 1);
	if (!(seconds >= 0))    /* also NaN: a clock step must not poison the sum */
		seconds = 0;
	if (seconds > 1e9)      /* nanoseconds must fit in 64 bits */
		seconds = 1e9;
	for (i = 0; i < DNS_BUCKET_COUNT; i++)
		if (seconds <= dns_buckets[i].le)
			break;
	METRICS_ADD(dns_buckets[i], 1);
	METRICS_ADD(dns_count, 1);
	METRICS_ADD(dns_nanoseconds, seconds * 1e9);
}

void
metrics_count_udp_datagrams(bool up, uint64_t n)
{
	if (up)
		METRICS_ADD(udp_up, n);
	else
		METRICS_ADD(udp_down, n);
}

void
metrics_count_udp_drops(enum metrics_udp_drop reason, uint64_t n)
{
	if ((unsigned)reason < METRICS_UDP_DROP_COUNT)
		METRICS_ADD(udp_drops[reason], n);
}

/*
 * An upstream member's key: 64-bit FNV-1a of "NAME label", the same in
 * every worker and across reloads. Members come from the config, not from
 * clients, so nobody picks collisions; 0 is kept for a free entry.
 */
static uint64_t
metrics_upstream_key(const char *name, const char *label)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	const char *parts[] = { name, " ", label };

	for (size_t i = 0; i < ARRAY_LEN(parts); i++)
		for (const char *c = parts[i]; *c != '\0'; c++) {
			h ^= (unsigned char)*c;
			h *= 0x100000001b3ULL;
		}
	return h != 0 ? h : 1;
}

/* key's entry in slot, or NULL. */
static const struct metrics_upstream_entry *
metrics_upstream_find(const struct metrics_slot *slot, uint64_t key)
{
	for (size_t i = 0; i < METRICS_UPSTREAM_MAX; i++) {
		uint64_t k = __atomic_load_n(&slot->upstreams[i].key,
		    __ATOMIC_RELAXED);

		if (k == key)
			return &slot->upstreams[i];
		if (k == 0)
			break;
	}
	return NULL;
}

void
metrics_count_upstream(const char *name, const char *label, bool ok,
    double down_until)
{
	uint64_t key = metrics_upstream_key(name, label);
	size_t i;

	/* A linear scan of at most METRICS_UPSTREAM_MAX keys, once per hop,
	 * which costs a connection to a proxy anyway. */
	for (i = 0; i < METRICS_UPSTREAM_MAX; i++) {
		if (mine->upstreams[i].key == key)
			break;
		if (mine->upstreams[i].key == 0) {
			METRICS_SET(mine, upstreams[i].key, key);
			break;
		}
	}
	if (i == METRICS_UPSTREAM_MAX) {
		METRICS_ADD(upstream_untracked, 1);
		return;
	}
	if (ok)
		METRICS_ADD(upstreams[i].ok, 1);
	else
		METRICS_ADD(upstreams[i].failed, 1);
	__atomic_store(&mine->upstreams[i].down_until, &down_until,
	    __ATOMIC_RELAXED);
}

void
metrics_reset(void)
{
	memset(mine, 0, sizeof(*mine));
}

/* A slot's gauges describe one process: a new one starts from zero, and
 * a dead one's sessions and pipes are gone. So is its upstream health, kept
 * in that process's memory: a new worker tries every member afresh. */
static void
metrics_clear_gauges(struct metrics_slot *slot)
{
	uint64_t *w = (uint64_t *)&slot->gauges;
	double up = 0;

	for (size_t i = 0; i < sizeof(slot->gauges) / sizeof(*w); i++)
		__atomic_store_n(&w[i], 0, __ATOMIC_RELAXED);
	for (size_t i = 0; i < METRICS_UPSTREAM_MAX; i++)
		__atomic_store(&slot->upstreams[i].down_until, &up,
		    __ATOMIC_RELAXED);
}

int
metrics_share(size_t count)
{
	void *map;

	map = mmap(NULL, count * sizeof(*slots), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED) {
		log_warn("metrics: mmap of %zu worker slot(s)", count);
		return -1;
	}
	slots = map;
	nslots = count;
	mine = &slots[0];
	shared = true;
	return 0;
}

void
metrics_use_slot(size_t i)
{
	mine = &slots[i];
	/* Counters go on from where the previous worker left them, so they
	 * never go backwards; the gauges are this process's alone. */
	metrics_clear_gauges(mine);
}

void
metrics_slot_running(size_t i, bool running)
{
	METRICS_SET(&slots[i], running, running);
	if (!running) {
		metrics_clear_gauges(&slots[i]);
		METRICS_SET(&slots[i], fds, 0);
	}
}

bool
metrics_wants_own_fds(void)
{
	return !shared;
}

void
metrics_slot_fds(size_t i, uint64_t fds)
{
	METRICS_SET(&slots[i], fds, fds);
}

/*
 * Open descriptors, from /proc/PID/fd (pid 0: this process): the cost is
 * one getdents64 per few hundred descriptors, so it is bounded by the
 * descriptor limit. Returns -1 when /proc cannot be read (or no descriptor
 * is left for it).
 */
long
metrics_count_fds(pid_t pid)
{
	_Alignas(struct dirent64) char buf[8192];
	char path[32];
	long count = 0;
	ssize_t got;
	int dir;

	if (pid == 0)
		snprintf(path, sizeof(path), "/proc/self/fd");
	else
		snprintf(path, sizeof(path), "/proc/%ld/fd", (long)pid);
	dir = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir == -1)
		return -1;
	while ((got = getdents64(dir, buf, sizeof(buf))) > 0) {
		for (ssize_t off = 0; off < got;) {
			const struct dirent64 *d = (const void *)(buf + off);

			if (d->d_name[0] != '.')
				count++;
			off += d->d_reclen;
		}
	}
	close(dir);
	if (got == -1)
		return -1;
	/* The directory read through is ours, not the counted process's. */
	if (pid == 0 && count > 0)
		count--;
	return count;
}

unsigned
metrics_sessions_active(void)
{
	uint64_t n = 0;

	for (size_t i = 0; i < nslots; i++)
		for (size_t c = 0; c < CMD_COUNT; c++)
			n += __atomic_load_n(&slots[i].gauges.active[c],
			    __ATOMIC_RELAXED);
	return (unsigned)n;
}

/* Every slot added up, word by word: each field is a uint64_t sum. */
static void
metrics_sum(struct metrics_slot *total)
{
	uint64_t *out = (uint64_t *)total;

	memset(total, 0, sizeof(*total));
	for (size_t i = 0; i < nslots; i++) {
		const uint64_t *in = (const uint64_t *)&slots[i];

		for (size_t w = 0; w < SLOT_WORDS; w++)
			out[w] += __atomic_load_n(&in[w], __ATOMIC_RELAXED);
	}
}

static void
metrics_render_sessions(struct metrics_out *out, const struct metrics_slot *c)
{
	metrics_family(out, "socks5d_sessions_active", "gauge",
	    "Client connections open now, by command (none: no request read "
	    "yet).");
	for (size_t i = 0; i < CMD_COUNT; i++)
		metrics_sample(out, "socks5d_sessions_active", "cmd",
		    cmd_labels[i], c->gauges.active[i]);
	metrics_family(out, "socks5d_sessions_total", "counter",
	    "Sessions ended, by command (none: no request was read).");
	for (size_t i = 0; i < CMD_COUNT; i++)
		metrics_sample(out, "socks5d_sessions_total", "cmd",
		    cmd_labels[i], c->sessions[i]);
	metrics_family(out, "socks5d_sessions_by_protocol_total", "counter",
	    "Sessions ended, by the protocol the client spoke (none: no "
	    "byte told).");
	for (int i = 0; i < PROTO_LABELS; i++)
		metrics_sample(out, "socks5d_sessions_by_protocol_total",
		    "proto", i < REQUEST_PROTO_COUNT ? request_proto_name(i) :
		    "none", c->protocols[i]);
	metrics_family(out, "socks5d_handshake_failures_total", "counter",
	    "Sessions ended without a success reply, by close reason.");
	for (size_t i = 0; i < FAILURE_COUNT; i++)
		metrics_sample(out, "socks5d_handshake_failures_total",
		    "reason", failure_labels[i], c->failures[i]);
	metrics_family(out, "socks5d_auth_successes_total", "counter",
	    "RFC 1929 logins accepted.");
	metrics_sample(out, "socks5d_auth_successes_total", NULL, NULL,
	    c->auth_ok);
	metrics_family(out, "socks5d_auth_failures_total", "counter",
	    "RFC 1929 logins refused.");
	metrics_sample(out, "socks5d_auth_failures_total", NULL, NULL,
	    c->auth_failed);
}

static void
metrics_render_tls(struct metrics_out *out, const struct metrics_slot *c)
{
	metrics_family(out, "socks5d_tls_sessions_total", "counter",
	    "TLS handshakes completed on [tls] listeners, by TLS version.");
	for (size_t i = 0; i < TLS_VERSIONS; i++)
		metrics_sample(out, "socks5d_tls_sessions_total", "version",
		    tls_version_labels[i], c->tls_sessions[i]);
	metrics_family(out, "socks5d_tls_resumed_total", "counter",
	    "TLS handshakes that resumed a session from a ticket.");
	metrics_sample(out, "socks5d_tls_resumed_total", NULL, NULL,
	    c->tls_resumed);
	metrics_family(out, "socks5d_tls_handshake_failures_total", "counter",
	    "TLS handshakes that failed, by reason (the access log's close "
	    "word).");
	for (size_t i = 0; i < TLS_FAILURES; i++)
		metrics_sample(out, "socks5d_tls_handshake_failures_total",
		    "reason", tls_failure_labels[i], c->tls_failures[i]);
}

static void
metrics_render_replies(struct metrics_out *out, const struct metrics_slot *c)
{
	char code[4];

	metrics_family(out, "socks5d_replies_total", "counter",
	    "SOCKS5 replies sent, by reply code.");
	for (unsigned i = 0; i < REPLY_CODES; i++) {
		snprintf(code, sizeof(code), "%u", i);
		metrics_sample(out, "socks5d_replies_total", "code", code,
		    c->replies[i]);
	}
	metrics_family(out, "socks5d_relayed_bytes_total", "counter",
	    "Bytes relayed as they move (up: client to target; UDP: "
	    "payload bytes).");
	metrics_sample(out, "socks5d_relayed_bytes_total", "direction", "up",
	    c->bytes_up);
	metrics_sample(out, "socks5d_relayed_bytes_total", "direction", "down",
	    c->bytes_down);
}

static void
metrics_render_dns(struct metrics_out *out, const struct metrics_slot *c)
{
	uint64_t cumulative = 0;

	metrics_family(out, "socks5d_dns_lookups_total", "counter",
	    "Name lookups started.");
	metrics_sample(out, "socks5d_dns_lookups_total", NULL, NULL,
	    c->dns_lookups);
	metrics_family(out, "socks5d_dns_failures_total", "counter",
	    "Name lookups that ended without an address.");
	metrics_sample(out, "socks5d_dns_failures_total", NULL, NULL,
	    c->dns_failures);
	metrics_family(out, "socks5d_dns_lookup_duration_seconds", "histogram",
	    "Time from the start of a name lookup to its answer.");
	for (size_t i = 0; i < DNS_BUCKET_COUNT; i++) {
		cumulative += c->dns_buckets[i];
		metrics_sample(out, "socks5d_dns_lookup_duration_seconds_bucket",
		    "le", dns_buckets[i].text, cumulative);
	}
	metrics_sample(out, "socks5d_dns_lookup_duration_seconds_bucket", "le",
	    "+Inf", c->dns_count);
	metrics_printf(out, "socks5d_dns_lookup_duration_seconds_sum %.9g\n",
	    (double)c->dns_nanoseconds / 1e9);
	metrics_sample(out, "socks5d_dns_lookup_duration_seconds_count", NULL,
	    NULL, c->dns_count);
}

static void
metrics_render_udp(struct metrics_out *out, const struct metrics_slot *c)
{
	metrics_family(out, "socks5d_udp_datagrams_total", "counter",
	    "UDP datagrams relayed (up: client to target).");
	metrics_sample(out, "socks5d_udp_datagrams_total", "direction", "up",
	    c->udp_up);
	metrics_sample(out, "socks5d_udp_datagrams_total", "direction", "down",
	    c->udp_down);
	metrics_family(out, "socks5d_udp_dropped_total", "counter",
	    "UDP datagrams dropped, by reason.");
	for (size_t i = 0; i < METRICS_UDP_DROP_COUNT; i++)
		metrics_sample(out, "socks5d_udp_dropped_total", "reason",
		    udp_drop_labels[i], c->udp_drops[i]);
}

static void
metrics_render_refusals(struct metrics_out *out, const struct metrics_slot *c)
{
	metrics_family(out, "socks5d_refused_total", "counter",
	    "Connections and requests refused by limits and access rules.");
	for (size_t i = 0; i < METRICS_REFUSED_COUNT; i++)
		metrics_sample(out, "socks5d_refused_total", "reason",
		    refusal_labels[i], c->refused[i]);
	metrics_family(out, "socks5d_sniffed_total", "counter",
	    "Sessions whose first bytes (UDP associations: first datagrams) "
	    "[inspect] sniff looked at, by what they were (none: nothing it "
	    "could read).");
	for (size_t i = 0; i < ARRAY_LEN(sniff_labels); i++)
		metrics_sample(out, "socks5d_sniffed_total", "kind",
		    sniff_labels[i], c->sniffed[i]);
	metrics_family(out, "socks5d_sniff_mismatches_total", "counter",
	    "Sniffed names that were not the name the client asked for.");
	metrics_sample(out, "socks5d_sniff_mismatches_total", NULL, NULL,
	    c->sniff_mismatches);
	metrics_family(out, "socks5d_intercepted_total", "counter",
	    "CONNECT sessions a rule with intercept = yes allowed, by what "
	    "became of them (yes: intercepted; bypass, learnt: passed "
	    "through by [inspect] bypass or learn_bypass; plain: not TLS; "
	    "none: no ClientHello that could be read; "
	    "refused: the origin failed verification; untrusted: the client "
	    "refused our certificate).");
	for (size_t i = 0; i < ARRAY_LEN(intercept_labels); i++)
		metrics_sample(out, "socks5d_intercepted_total", "result",
		    intercept_labels[i], c->intercepts[i]);
	metrics_family(out, "socks5d_intercepted_http_total", "counter",
	    "HTTP exchanges seen in intercepted sessions (http log lines).");
	metrics_sample(out, "socks5d_intercepted_http_total", NULL, NULL,
	    c->http_exchanges);
	metrics_family(out, "socks5d_intercept_leaves_total", "counter",
	    "Certificates for intercepted names, by whether they were made "
	    "now or found in the cache.");
	metrics_sample(out, "socks5d_intercept_leaves_total", "source",
	    "minted", c->leaves_minted);
	metrics_sample(out, "socks5d_intercept_leaves_total", "source",
	    "cache", c->leaves_cached);
	metrics_family(out, "socks5d_intercept_learnt_bypass", "gauge",
	    "Names passing through now because a client refused the "
	    "certificate made for them ([inspect] learn_bypass).");
	metrics_sample(out, "socks5d_intercept_learnt_bypass", NULL, NULL,
	    bypass_learned_count());
}

/* One member's series summed over the slots. */
struct metrics_upstream_sum {
	const char *name, *label;
	uint64_t ok, failed;
	bool up;
};

/* A sample of member m: labels upstream and member, then result unless
 * NULL. */
static void
metrics_upstream_sample(struct metrics_out *out, const char *name,
    const struct metrics_upstream_sum *m, const char *result, uint64_t n)
{
	metrics_printf(out, "%s{upstream=\"", name);
	metrics_print_value(out, m->name);
	metrics_printf(out, "\",member=\"");
	metrics_print_value(out, m->label);
	if (result != NULL)
		metrics_printf(out, "\",result=\"%s", result);
	metrics_printf(out, "\"} %" PRIu64 "\n", n);
}

/* Whether member j of u has the label of an earlier one: the same series,
 * shown once (two logins to one proxy share its health too). */
static bool
metrics_upstream_repeated(const struct upstream *u, size_t j)
{
	for (size_t k = 0; k < j; k++)
		if (strcmp(u->members[k].label, u->members[j].label) == 0)
			return true;
	return false;
}

/*
 * Each member of the current config, up to METRICS_UPSTREAM_MAX: its hops
 * summed over every slot (a dead worker's count as much as the counters
 * above), and down while a live worker skips it. Keys in the slots that no
 * member of this config has (a reload removed them) are not shown.
 */
static void
metrics_render_upstreams(struct metrics_out *out, const struct metrics_slot *c,
    const struct metrics_gauges *g)
{
	struct metrics_upstream_sum sums[METRICS_UPSTREAM_MAX];
	size_t n = 0;

	for (size_t i = 0; i < upstreams_count(g->upstreams); i++) {
		const struct upstream *u = upstreams_at(g->upstreams, i);

		for (size_t j = 0; j < u->n && n < METRICS_UPSTREAM_MAX; j++) {
			struct metrics_upstream_sum *m = &sums[n];
			uint64_t key;

			if (metrics_upstream_repeated(u, j))
				continue;
			n++;
			m->name = u->name;
			m->label = u->members[j].label;
			m->ok = m->failed = 0;
			m->up = true;
			key = metrics_upstream_key(m->name, m->label);
			for (size_t s = 0; s < nslots; s++) {
				const struct metrics_upstream_entry *e;
				double down_until;

				if ((e = metrics_upstream_find(&slots[s], key)) ==
				    NULL)
					continue;
				m->ok += __atomic_load_n(&e->ok,
				    __ATOMIC_RELAXED);
				m->failed += __atomic_load_n(&e->failed,
				    __ATOMIC_RELAXED);
				__atomic_load(&e->down_until, &down_until,
				    __ATOMIC_RELAXED);
				if (down_until > g->now && (!shared ||
				    __atomic_load_n(&slots[s].running,
				    __ATOMIC_RELAXED)))
					m->up = false;
			}
		}
	}
	metrics_family(out, "socks5d_upstream_hops_total", "counter",
	    "Hops through each upstream member, by result (failed: it could "
	    "not be reached, did not speak its protocol or refused us).");
	for (size_t i = 0; i < n; i++) {
		metrics_upstream_sample(out, "socks5d_upstream_hops_total",
		    &sums[i], "ok", sums[i].ok);
		metrics_upstream_sample(out, "socks5d_upstream_hops_total",
		    &sums[i], "failed", sums[i].failed);
	}
	metrics_family(out, "socks5d_upstream_up", "gauge",
	    "0 while a worker skips the upstream member after fail_after "
	    "failures in a row, else 1.");
	for (size_t i = 0; i < n; i++)
		metrics_upstream_sample(out, "socks5d_upstream_up", &sums[i],
		    NULL, sums[i].up);
	metrics_family(out, "socks5d_upstream_hops_untracked_total", "counter",
	    "Hops through upstream members not counted by member: a "
	    "worker's table of members was full.");
	metrics_sample(out, "socks5d_upstream_hops_untracked_total", NULL, NULL,
	    c->upstream_untracked);
}

static void
metrics_render_process(struct metrics_out *out, const struct metrics_slot *c,
    const struct metrics_gauges *g)
{
	metrics_family(out, "socks5d_pipe_pool_idle", "gauge",
	    "Empty pipes kept for the splice relay.");
	metrics_sample(out, "socks5d_pipe_pool_idle", NULL, NULL,
	    c->gauges.pipes_idle);
	metrics_family(out, "socks5d_pipe_pool_in_use", "gauge",
	    "Pipes lent to relay directions with bytes in flight.");
	metrics_sample(out, "socks5d_pipe_pool_in_use", NULL, NULL,
	    c->gauges.pipes_in_use);
	metrics_family(out, "socks5d_pipe_pool_large", "gauge",
	    "Large pipes of bulk directions held, kept or lent.");
	metrics_sample(out, "socks5d_pipe_pool_large", NULL, NULL,
	    c->gauges.pipes_large);
	metrics_family(out, "socks5d_pipe_pool_small_total", "counter",
	    "Pipes the kernel made smaller than the default because the "
	    "user's pipe budget (fs.pipe-user-pages-soft) was spent.");
	metrics_sample(out, "socks5d_pipe_pool_small_total", NULL, NULL,
	    c->pipes_small);
	/* No worker can read another's /proc/PID/fd once it has dropped
	 * privileges: with workers, the supervisor counts for them. */
	metrics_family(out, "socks5d_open_fds", "gauge", shared ?
	    "Open file descriptors of all workers, as the supervisor last "
	    "counted them (every second)." :
	    "Open file descriptors of the process.");
	if (shared)
		metrics_sample(out, "socks5d_open_fds", NULL, NULL, c->fds);
	else if (g->fds_open >= 0)
		metrics_sample(out, "socks5d_open_fds", NULL, NULL,
		    (uint64_t)g->fds_open);
	metrics_family(out, "socks5d_max_clients", "gauge",
	    "The configured [server] max_clients.");
	metrics_sample(out, "socks5d_max_clients", NULL, NULL, g->max_clients);
	if (shared) {
		metrics_family(out, "socks5d_workers", "gauge",
		    "Worker processes running now.");
		metrics_sample(out, "socks5d_workers", NULL, NULL, c->running);
	}
	metrics_family(out, "socks5d_build_info", "gauge",
	    "Always 1; the version is in the label.");
	metrics_sample(out, "socks5d_build_info", "version", SOCKS5D_VERSION, 1);
}

size_t
metrics_render(char *buf, size_t cap, const struct metrics_gauges *g)
{
	struct metrics_out out = { .buf = buf, .cap = cap, .len = 0 };
	struct metrics_slot total;

	if (cap > 0)
		buf[0] = '\0';
	metrics_sum(&total);
	metrics_render_sessions(&out, &total);
	metrics_render_tls(&out, &total);
	metrics_render_replies(&out, &total);
	metrics_render_dns(&out, &total);
	metrics_render_udp(&out, &total);
	metrics_render_refusals(&out, &total);
	metrics_render_upstreams(&out, &total, g);
	metrics_users_render(&out, g->rules, g->quotas, g->quota_table,
	    (int64_t)g->now);
	metrics_render_process(&out, &total, g);
	return out.len;
}

const char *
metrics_udp_drop_name(enum metrics_udp_drop reason)
{
	return reason < METRICS_UDP_DROP_COUNT ? udp_drop_labels[reason] : "?";
}
