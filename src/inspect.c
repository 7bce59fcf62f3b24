/*
 * [inspect] sniff for a CONNECT session: the relay shows the client's first
 * bytes here before they go on; the TLS ClientHello's server name or the
 * HTTP request's Host is learnt (sniff_*.c), judged by the rules when the
 * client asked for a bare address, compared with the name it asked for,
 * and kept for the access log. Nothing is decrypted, nothing delayed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "socks5d/addr.h"
#include "socks5d/frontend.h"
#include "socks5d/rules.h"
#include "socks5d/inspect.h"
#include "socks5d/log.h"
#include "socks5d/metrics.h"
#include "socks5d/policy.h"
#include "socks5d/request.h"
#include "socks5d/session.h"
#include "socks5d/sniff.h"

/* The client's first bytes are looked at up to this many, then given up
 * on: a ClientHello with post-quantum key shares is about 2 KiB. */
#define INSPECT_BYTES_MAX (16 * 1024)

struct inspect {
	enum inspect_kind kind;
	size_t len;
	uint8_t buf[INSPECT_BYTES_MAX];
};

/* What was learnt, kept to the end of the session. */
struct inspect_found {
	enum inspect_kind kind;
	bool ech, mismatch;
	char alpn[64];
	char name[256];
};

/* QUIC on a UDP association: the flow to its first destination. */
struct inspect_quic {
	union sockaddr_any dst;
	bool decided;
	struct sniff_quic state;
};

/* What info says, kept for the session (NULL: out of memory, and only
 * the log would have had it). */
static struct inspect_found *
inspect_found_new(enum inspect_kind kind, const struct sniff_info *info)
{
	struct inspect_found *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return NULL;
	f->kind = kind;
	f->ech = info->ech;
	memcpy(f->alpn, info->alpn, sizeof(f->alpn));
	memcpy(f->name, info->name, sizeof(f->name));
	return f;
}

void
inspect_free(struct session *s)
{
	free(s->inspect);
	s->inspect = NULL;
	free(s->inspect_quic);
	s->inspect_quic = NULL;
	free(s->inspected);
	s->inspected = NULL;
}

/* The host the client asked for, when it asked by name: lower case, no
 * trailing dot; "" for an address. */
static void
inspect_asked_name(const struct session *s, char *out, size_t len)
{
	const char *colon = s->dest != NULL ? strrchr(s->dest, ':') : NULL;
	struct sockaddr_storage ss;
	size_t n;

	out[0] = '\0';
	if (colon == NULL || addr_parse_hostport(s->dest, &ss, NULL, true) == 0)
		return;
	n = (size_t)(colon - s->dest);
	if (n > 0 && s->dest[n - 1] == '.')
		n--;
	snprintf(out, len, "%.*s", (int)n, s->dest);
	for (char *c = out; *c != '\0'; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
}

/*
 * A name was found: a client that asked for an address is judged again
 * by the rules with it; one that asked for another name is a mismatch
 * ([inspect] mismatch says what that does). 0, or -1 with *reason.
 */
static int
inspect_decide(struct session *s, struct inspect_found *f,
    const char **reason)
{
	char asked[256];

	metrics_count_sniffed(f->kind == INSPECT_TLS ? "tls" : "http");
	if (f->name[0] == '\0')
		return 0;
	inspect_asked_name(s, asked, sizeof(asked));
	if (asked[0] == '\0') {
		if (!policy_recheck_name(s, f->name)) {
			*reason = "rejected";
			return -1;
		}
		return 0;
	}
	if (strcmp(asked, f->name) == 0 ||
	    s->srv->cfg->inspect_mismatch == INSPECT_MISMATCH_ALLOW)
		return 0;
	f->mismatch = true;
	metrics_count_sniff_mismatch();
	if (s->srv->cfg->inspect_mismatch == INSPECT_MISMATCH_DENY) {
		*reason = "sni-mismatch";
		return -1;
	}
	return 0;
}

static int
inspect_keep(struct session *s, enum inspect_kind kind,
    const struct sniff_info *info, const char **reason)
{
	struct inspect_found *f = inspect_found_new(kind, info);

	if (f == NULL)
		return 1;               /* only the log would have it */
	s->inspected = f;
	return inspect_decide(s, f, reason) == -1 ? -1 : 1;
}

static int
inspect_peek(struct relay *r, const uint8_t *buf, size_t len,
    const char **reason)
{
	struct session *s = (struct session *)
	    ((char *)r - offsetof(struct session, relay));
	struct inspect *in = s->inspect;
	struct sniff_info info;
	enum sniff_result result;
	size_t take = len < sizeof(in->buf) - in->len ? len :
	    sizeof(in->buf) - in->len;
	int seen = 1;

	memcpy(in->buf + in->len, buf, take);
	in->len += take;
	result = in->kind == INSPECT_TLS ?
	    sniff_tls_client_hello(in->buf, in->len, &info) :
	    sniff_http_host(in->buf, in->len, &info);
	if (result == SNIFF_FOUND)
		seen = inspect_keep(s, in->kind, &info, reason);
	else if (result == SNIFF_NEED_MORE && in->len < sizeof(in->buf))
		return 0;
	else
		metrics_count_sniffed("none");
	free(s->inspect);
	s->inspect = NULL;
	return seen;
}

/* Forward: the first byte picks the parser. */
static bool inspect_kind_of(const struct session *s, uint8_t first,
    enum inspect_kind *kind);

/* -- deciding before connecting ------------------------------------------- */

bool
inspect_should_wait(const struct session *s)
{
	union sockaddr_any literal;

	return (s->srv->cfg->inspect_sniff & ((1u << INSPECT_TLS) |
	    (1u << INSPECT_HTTP))) != 0 && s->cmd == REQUEST_CMD_CONNECT &&
	    addr_from_socks5(&s->hs->req.dst, &literal) &&
	    rules_have_names(s->srv->cfg->rules);
}

/* Enough has been read (or waited for): decide with what was learnt. */
static void
inspect_wait_done(struct session *s)
{
	struct handshake *hs = s->hs;
	void (*then)(struct session *) = hs->sniffed;

	hs->early_data = NULL;
	hs->sniffed = NULL;
	s->inspect_done = true;
	then(s);
}

/* The client's bytes so far, in the handshake buffer: enough? */
static void
inspect_wait_read(struct session *s)
{
	struct handshake *hs = s->hs;
	struct sniff_info info;
	enum inspect_kind kind;
	enum sniff_result result = SNIFF_NONE;
	struct inspect_found *f;

	/* After the client's FIN nothing more comes to learn from: decide
	 * with what was sent, if anything. */
	if (hs->len == 0 && !hs->client_eof)
		return;
	if (hs->len > 0 && inspect_kind_of(s, hs->buf[0], &kind))
		result = kind == INSPECT_TLS ?
		    sniff_tls_client_hello(hs->buf, hs->len, &info) :
		    sniff_http_host(hs->buf, hs->len, &info);
	if (result == SNIFF_NEED_MORE && hs->len < hs->cap && !hs->client_eof)
		return;
	if (result == SNIFF_FOUND &&
	    (f = inspect_found_new(kind, &info)) != NULL) {
		s->inspected = f;
		metrics_count_sniffed(kind == INSPECT_TLS ? "tls" : "http");
	} else {
		metrics_count_sniffed("none");
	}
	inspect_wait_done(s);
}

void
inspect_wait(struct session *s, void (*then)(struct session *))
{
	struct handshake *hs = s->hs;
	union sockaddr_any none;

	/* The reply a CONNECT gets says nothing of where it leaves from
	 * yet: all zeros, as a server that cannot tell sends. */
	memset(&none, 0, sizeof(none));
	none.in.sin_family = AF_INET;
	if (session_grow_handshake(s, INSPECT_BYTES_MAX) == -1 ||
	    session_send_reply(s, REPLY_SUCCESS, &none.sa) == -1) {
		session_close(s, "reset");
		return;
	}
	hs->replied = true;
	hs->sniffed = then;
	hs->early_data = inspect_wait_read;
	session_set_state(s, SESSION_WAITING);
	session_set_timeout(s, s->srv->cfg->sniff_timeout_ms / 1000.);
	/* Bytes sent behind the request are here already. */
	inspect_wait_read(s);
}

bool
inspect_wait_timeout(struct session *s)
{
	if (s->hs == NULL || s->hs->sniffed == NULL)
		return false;
	/* Nothing (or not enough) came: a protocol whose server speaks
	 * first. The address alone decides. */
	metrics_count_sniffed("none");
	inspect_wait_done(s);
	return true;
}

/* -- watching the relay --------------------------------------------------- */

/* Which parser the first byte calls for, if [inspect] sniff lists it. */
static bool
inspect_kind_of(const struct session *s, uint8_t first,
    enum inspect_kind *kind)
{
	unsigned want = s->srv->cfg->inspect_sniff;

	if (first == 0x16 && (want & (1u << INSPECT_TLS))) {
		*kind = INSPECT_TLS;
		return true;
	}
	if (first >= 'A' && first <= 'Z' && (want & (1u << INSPECT_HTTP))) {
		*kind = INSPECT_HTTP;
		return true;
	}
	return false;
}

/* The first bytes decide the parser: the peek that sees them first. */
static int
inspect_first_peek(struct relay *r, const uint8_t *buf, size_t len,
    const char **reason)
{
	struct session *s = (struct session *)
	    ((char *)r - offsetof(struct session, relay));
	enum inspect_kind kind;
	enum sniff_result result;
	struct sniff_info info;

	if (len == 0)
		return 0;
	if (!inspect_kind_of(s, buf[0], &kind)) {
		metrics_count_sniffed("none");
		return 1;
	}
	/* The first read mostly holds the whole ClientHello or request
	 * head: read where it lies, and copy only what needs more. */
	result = kind == INSPECT_TLS ? sniff_tls_client_hello(buf, len, &info) :
	    sniff_http_host(buf, len, &info);
	if (result == SNIFF_FOUND)
		return inspect_keep(s, kind, &info, reason);
	if (result != SNIFF_NEED_MORE || len >= INSPECT_BYTES_MAX ||
	    (s->inspect = malloc(sizeof(*s->inspect))) == NULL) {
		metrics_count_sniffed("none");
		return 1;
	}
	s->inspect->kind = kind;
	s->inspect->len = 0;
	r->peek = inspect_peek;
	return inspect_peek(r, buf, len, reason);
}

int
inspect_start(struct session *s, const char **reason)
{
	if (s->inspect_done)
		return 0;
	if ((s->srv->cfg->inspect_sniff & ((1u << INSPECT_TLS) |
	    (1u << INSPECT_HTTP))) == 0 || s->cmd != REQUEST_CMD_CONNECT)
		return 0;
	return relay_peek_up(&s->relay, inspect_first_peek, reason);
}

int
inspect_record(struct session *s, const struct sniff_info *info,
    const char **reason)
{
	struct inspect_found *f;

	if (s->inspected != NULL)
		return 0;
	if ((f = inspect_found_new(INSPECT_TLS, info)) == NULL)
		return 0;
	s->inspected = f;
	s->inspect_done = true;
	/* Judged as the relay's peek judges it, when sniffing is on. */
	if ((s->srv->cfg->inspect_sniff & (1u << INSPECT_TLS)) == 0)
		return 0;
	return inspect_decide(s, f, reason);
}

const char *
inspect_datagram(struct session *s, const union sockaddr_any *dst,
    const uint8_t *payload, size_t len)
{
	struct inspect_quic *q = s->inspect_quic;
	struct sniff_info info;
	struct inspect_found *f;
	enum sniff_result result;

	if ((s->srv->cfg->inspect_sniff & (1u << INSPECT_QUIC)) == 0)
		return NULL;
	if (q == NULL) {
		if ((q = s->inspect_quic = calloc(1, sizeof(*q))) == NULL)
			return NULL;
		q->dst = *dst;
	}
	if (!addr_same_ip(&q->dst, dst) ||
	    addr_port(&q->dst.sa) != addr_port(&dst->sa))
		return NULL;
	if (q->decided)
		return inspect_name(s);
	result = sniff_quic_initial(&q->state, payload, len, &info);
	if (result == SNIFF_NEED_MORE)
		return NULL;
	q->decided = true;
	if (result != SNIFF_FOUND ||
	    (f = inspect_found_new(INSPECT_QUIC, &info)) == NULL) {
		metrics_count_sniffed("none");
		return NULL;
	}
	free(s->inspected);
	s->inspected = f;
	metrics_count_sniffed("quic");
	return inspect_name(s);
}

const char *
inspect_name(const struct session *s)
{
	return s->inspected != NULL && s->inspected->name[0] != '\0' ?
	    s->inspected->name : NULL;
}

void
inspect_log_fields(const struct session *s, char *extra, size_t len)
{
	const struct inspect_found *f = s->inspected;
	size_t used = strlen(extra);
	char name[256];

	if (f == NULL)
		return;
	if (f->name[0] != '\0') {
		log_safe_text(f->name, name, sizeof(name));
		if (f->kind != INSPECT_HTTP)
			used += (size_t)snprintf(extra + used, len - used,
			    " sni=%s", name);
		else
			used += (size_t)snprintf(extra + used, len - used,
			    " host=%s", name);
	}
	if (used < len && f->alpn[0] != '\0') {
		log_safe_text(f->alpn, name, sizeof(name));
		used += (size_t)snprintf(extra + used, len - used, " alpn=%s",
		    name);
	}
	if (used < len && f->ech)
		used += (size_t)snprintf(extra + used, len - used, " ech=1");
	if (used < len && f->mismatch)
		snprintf(extra + used, len - used, " sni_mismatch=1");
}
