/*
 * TLS interception of one CONNECT session (intercept.h): read the
 * ClientHello, decide whether to pass it through, reach the origin over
 * TLS with the client's name and verify it, finish TLS with the client
 * under a leaf for that name, then relay with an HTTP/1.1 watch on both
 * directions that writes one http log line per exchange.
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "socks5d/addr.h"
#include "socks5d/bypass.h"
#include "socks5d/frontend.h"
#include "socks5d/http_observe.h"
#include "socks5d/inspect.h"
#include "socks5d/intercept.h"
#include "socks5d/intercept_ctx.h"
#include "socks5d/log.h"
#include "socks5d/metrics.h"
#include "socks5d/mint.h"
#include "socks5d/request.h"
#include "socks5d/rules.h"
#include "socks5d/session.h"
#include "socks5d/sniff.h"
#include "socks5d/tls_client.h"
#include "socks5d/tls_io.h"

/* The ClientHello is read up to this many bytes, as sniffing reads it. */
#define INTERCEPT_HELLO_MAX (16 * 1024)

enum intercept_outcome {
	INTERCEPT_WAITING,             /* still setting up */
	INTERCEPT_YES,
	INTERCEPT_BYPASS,              /* on [inspect] bypass */
	INTERCEPT_LEARNT,              /* a client refused our leaf before */
	INTERCEPT_PLAIN,               /* not TLS: relayed, HTTP logged */
	INTERCEPT_NONE,                /* no ClientHello we could read */
	INTERCEPT_REFUSED,             /* the origin failed verification */
	INTERCEPT_UNTRUSTED,           /* the client refused our leaf */
};

/* The access log's intercept= words and /metrics' result labels. */
static const char *const intercept_words[] = {
	[INTERCEPT_WAITING] = "waiting",
	[INTERCEPT_YES] = "yes",
	[INTERCEPT_BYPASS] = "bypass",
	[INTERCEPT_LEARNT] = "learnt",
	[INTERCEPT_PLAIN] = "plain",
	[INTERCEPT_NONE] = "none",
	[INTERCEPT_REFUSED] = "refused",
	[INTERCEPT_UNTRUSTED] = "untrusted",
};

struct intercept {
	struct intercept_ctx *ctx;     /* held to the end */
	SSL *client;                   /* our TLS toward the client */
	SSL *origin;                   /* our TLS toward the origin (inside
	                                * s->target_ssl, an upstream's, when
	                                * there is one) */
	enum intercept_outcome outcome;
	char name[256];                /* the server name, or the address */
	struct http_observe *http;     /* the watch, while there is one */
};

/* At most one line a second for each kind of failure. */
static struct log_ratelimit origin_fail_log, client_refusal_log;

static struct session *
intercept_session_of_target(ev_io *w)
{
	return (struct session *)((char *)w - offsetof(struct session,
	    target_io));
}

static struct session *
intercept_session_of_client(ev_io *w)
{
	return (struct session *)((char *)w - offsetof(struct session,
	    client_io));
}

static struct session *
intercept_session_of_relay(struct relay *r)
{
	return (struct session *)((char *)r - offsetof(struct session, relay));
}

bool
intercept_wanted(const struct session *s)
{
	/* A [tls] listener's client gets our TLS inside the listener's;
	 * through an upstream reached over TLS, the origin's runs inside
	 * the upstream's. */
	return s->intercept_rule && s->srv->cfg->intercept != NULL &&
	    s->cmd == REQUEST_CMD_CONNECT && !s->hs->req.forwarded;
}

static void
intercept_set_outcome(struct session *s, enum intercept_outcome outcome)
{
	s->intercept->outcome = outcome;
	metrics_count_intercept(intercept_words[outcome]);
}

/* -- http lines --------------------------------------------------------- */

static void
intercept_http_line(void *arg, const struct http_exchange *x)
{
	struct session *s = arg;
	char client[ADDR_STRLEN], user[256], method[64], host[512];
	char path[1024];
	double ms = x->ended > x->started ? (x->ended - x->started) * 1000. :
	    0.;

	metrics_count_http_exchange();
	if (!log_enabled(LOG_LEVEL_INFO))
		return;
	addr_format(&s->client_addr.sa, client, sizeof(client));
	log_safe_text(s->user != NULL ? s->user : "-", user, sizeof(user));
	log_safe_text(x->method[0] != '\0' ? x->method : "-", method,
	    sizeof(method));
	log_safe_text(x->host[0] != '\0' ? x->host : "-", host, sizeof(host));
	log_safe_text(x->path[0] != '\0' ? x->path : "-", path, sizeof(path));
	log_info("http client=%s user=%s method=%s host=%s path=%s%s "
	    "status=%d up=%" PRIu64 " down=%" PRIu64 " ms=%" PRIu64 "%s",
	    client, user, method, host, path, x->path_truncated ? "..." : "",
	    x->status, x->bytes_up, x->bytes_down, (uint64_t)ms,
	    x->upgraded ? " upgraded=1" : "");
}

static int
intercept_watch(struct relay *r, bool up, const uint8_t *buf, size_t len,
    const char **reason)
{
	struct session *s = intercept_session_of_relay(r);
	struct http_observe *o = s->intercept->http;
	double now = ev_now(s->srv->loop);
	int rc = up ? http_observe_up(o, buf, len, now) :
	    http_observe_down(o, buf, len, now);

	if (rc < 0)
		*reason = o->error;
	return rc;
}

/* The relay starts with the watch on (when memory allows: the log is
 * all it would cost). */
static void
intercept_relay(struct session *s, SSL *client, SSL *target, bool watch)
{
	struct intercept *in = s->intercept;

	s->hs->early_data = NULL;
	if (watch && (in->http = malloc(sizeof(*in->http))) != NULL)
		http_observe_init(in->http, intercept_http_line, s,
		    s->srv->cfg->inspect_log_query);
	session_relay(s, client, target, in->http != NULL ? intercept_watch :
	    NULL);
}

/* -- the client's TLS --------------------------------------------------- */

/* ech_required, the alert (121) of encrypted ClientHello, which OpenSSL
 * 3.0 has no name for. */
#define INTERCEPT_ALERT_ECH_REQUIRED 121

/* Did the client end the handshake because it does not trust us (or
 * wanted the encrypted name we cannot answer for)? */
static const char *
intercept_trust_alert(void)
{
	unsigned long err = ERR_peek_error();

	if (ERR_GET_LIB(err) != ERR_LIB_SSL)
		return NULL;
	if (ERR_GET_REASON(err) == SSL_AD_REASON_OFFSET +
	    INTERCEPT_ALERT_ECH_REQUIRED)
		return "ech_required";
	switch (ERR_GET_REASON(err)) {
	case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
		return "unknown_ca";
	case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
		return "bad_certificate";
	case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
		return "certificate_unknown";
	default:
		return NULL;
	}
}

static void
intercept_client_refused(struct session *s, const char *alert)
{
	struct intercept *in = s->intercept;
	unsigned seconds = s->srv->cfg->learn_bypass;
	char client[ADDR_STRLEN], name[256];
	unsigned long covered;
	bool learnt = seconds > 0 && bypass_learn(in->name, seconds);

	intercept_set_outcome(s, INTERCEPT_UNTRUSTED);
	if (log_ratelimit_pass(&client_refusal_log, ev_now(s->srv->loop), 1.0,
	    &covered)) {
		addr_format(&s->client_addr.sa, client, sizeof(client));
		log_safe_text(in->name, name, sizeof(name));
		if (learnt)
			log_info("intercept: client=%s refused the certificate "
			    "made for %s (%s); it passes through for %u s "
			    "([inspect] learn_bypass)", client, name, alert,
			    seconds);
		else
			log_info("intercept: client=%s refused the certificate "
			    "made for %s (%s)", client, name, alert);
	}
	ERR_clear_error();
	session_close(s, "intercept-untrusted");
}

static void
intercept_client_step(struct session *s)
{
	struct intercept *in = s->intercept;
	const char *alert;
	int error;

	switch (session_tls_handshake(s, in->client, &s->client_io, &error)) {
	case 1:
		intercept_set_outcome(s, INTERCEPT_YES);
		intercept_relay(s, in->client, in->origin, true);
		return;
	case 0:
		return;
	}
	if ((alert = intercept_trust_alert()) != NULL) {
		intercept_client_refused(s, alert);
		return;
	}
	ERR_clear_error();
	session_close(s, "intercept-client-tls");
}

static void
intercept_client_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	intercept_client_step(intercept_session_of_client(w));
}

/* The origin checked out: a leaf for the name (the same one while the
 * origin's certificate stays the same), and TLS with the client from the
 * ClientHello already read. */
static void
intercept_client_start(struct session *s)
{
	struct intercept *in = s->intercept;
	struct handshake *hs = s->hs;
	X509 *origin = SSL_get0_peer_certificate(in->origin);
	unsigned char fp[EVP_MAX_MD_SIZE];
	unsigned int fplen = 0;
	uint64_t before, after, hits;
	X509 *leaf;

	memset(fp, 0, sizeof(fp));
	if (origin != NULL)
		(void)X509_digest(origin, EVP_sha256(), fp, &fplen);
	intercept_ctx_stats(in->ctx, &before, &hits);
	leaf = mint_leaf(in->ctx->mint, in->name, fp);
	intercept_ctx_stats(in->ctx, &after, &hits);
	if (leaf == NULL || (in->client = SSL_new(in->ctx->front)) == NULL ||
	    SSL_use_certificate(in->client, leaf) != 1 ||
	    SSL_use_PrivateKey(in->client, mint_leaf_key(in->ctx->mint)) != 1 ||
	    (s->ssl != NULL ? tls_io_set_ssl_with_prefix(in->client, s->ssl,
	    hs->buf, hs->len) : tls_io_set_fd_with_prefix(in->client,
	    s->client_fd, hs->buf, hs->len)) == -1) {
		X509_free(leaf);
		log_warnx("intercept: cannot set up TLS toward the client: %s",
		    ERR_reason_error_string(ERR_peek_error()));
		ERR_clear_error();
		session_close(s, "nomem");
		return;
	}
	metrics_count_leaf(after > before);
	X509_free(leaf);
	SSL_set_accept_state(in->client);
	hs->len = 0;
	ev_io_stop(s->srv->loop, &s->target_io);
	ev_io_stop(s->srv->loop, &s->client_io);
	ev_set_cb(&s->client_io, intercept_client_cb);
	intercept_client_step(s);
}

/* -- the origin's TLS --------------------------------------------------- */

/* A fatal handshake_failure alert, as a server sends before any key is
 * agreed: the client learns no certificate at all. */
static const uint8_t intercept_alert[] = { 0x15, 0x03, 0x03, 0x00, 0x02,
    0x02, 0x28 };

static void
intercept_origin_failed(struct session *s)
{
	struct intercept *in = s->intercept;
	long verify = SSL_get_verify_result(in->origin);
	unsigned long err = ERR_peek_error(), covered;
	char client[ADDR_STRLEN], name[256], why[256];
	bool bad_cert = verify != X509_V_OK;

	if (bad_cert)
		snprintf(why, sizeof(why), "certificate: %s",
		    X509_verify_cert_error_string(verify));
	else if (err != 0)
		ERR_error_string_n(err, why, sizeof(why));
	else
		snprintf(why, sizeof(why), "connection closed");
	ERR_clear_error();
	/* Before the upstream's TLS it may run inside goes. */
	SSL_free(in->origin);
	in->origin = NULL;
	intercept_set_outcome(s, INTERCEPT_REFUSED);
	if (log_ratelimit_pass(&origin_fail_log, ev_now(s->srv->loop), 1.0,
	    &covered)) {
		addr_format(&s->client_addr.sa, client, sizeof(client));
		log_safe_text(in->name, name, sizeof(name));
		log_info("intercept: client=%s origin %s refused: %s (%lu in "
		    "the last second)", client, name, why, covered);
	}
	session_send_final(s, intercept_alert, sizeof(intercept_alert),
	    bad_cert ? "origin-cert" : "origin-tls");
}

static void
intercept_origin_step(struct session *s)
{
	int error;

	switch (session_tls_handshake(s, s->intercept->origin, &s->target_io,
	    &error)) {
	case 1:
		intercept_client_start(s);
		return;
	case 0:
		return;
	}
	intercept_origin_failed(s);
}

static void
intercept_origin_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	intercept_origin_step(intercept_session_of_target(w));
}

/* The origin with the client's name and ALPN http/1.1 alone: a client
 * that offered h2 gets HTTP/1.1, which the watch can read. */
static void
intercept_origin_start(struct session *s)
{
	struct intercept *in = s->intercept;

	in->origin = tls_client_new_ssl(in->ctx->upstream, s->target_fd,
	    in->name, "http/1.1");
	if (in->origin == NULL || (s->target_ssl != NULL &&
	    tls_io_set_ssl_with_prefix(in->origin, s->target_ssl, NULL, 0) ==
	    -1)) {
		session_close(s, "nomem");
		return;
	}
	/* The client waits for our ServerHello: nothing to read from it
	 * until then. */
	ev_io_stop(s->srv->loop, &s->client_io);
	ev_io_stop(s->srv->loop, &s->target_io);
	ev_set_cb(&s->target_io, intercept_origin_cb);
	intercept_origin_step(s);
}

/* -- the ClientHello ---------------------------------------------------- */

/* Pass the session through untouched (after the bytes read so far). */
static void
intercept_pass(struct session *s, enum intercept_outcome outcome)
{
	struct handshake *hs = s->hs;
	bool http = hs->len > 0 && hs->buf[0] >= 'A' && hs->buf[0] <= 'Z';

	intercept_set_outcome(s, outcome);
	/* Plain HTTP in the tunnel is readable as it is: logged the same. */
	intercept_relay(s, s->ssl, s->target_ssl,
	    outcome == INTERCEPT_PLAIN && http);
}

/* Which name to answer for: the ClientHello's, else the address. */
static void
intercept_name(struct session *s, const struct sniff_info *info)
{
	struct intercept *in = s->intercept;

	if (info->name[0] != '\0')
		snprintf(in->name, sizeof(in->name), "%s", info->name);
	else
		addr_format_ip(&s->target_addr.sa, in->name, sizeof(in->name));
}

static void
intercept_hello_read(struct session *s)
{
	struct handshake *hs = s->hs;
	const struct config *cfg = s->srv->cfg;
	struct sniff_info info;
	enum sniff_result result;
	const char *reason = "rejected";

	/* After the client's FIN no more of a ClientHello comes: what was
	 * sent, if anything, goes to the origin as it is, then the FIN. */
	if (hs->len == 0) {
		if (hs->client_eof)
			intercept_pass(s, INTERCEPT_NONE);
		return;
	}
	if (hs->buf[0] != 0x16) {
		intercept_pass(s, INTERCEPT_PLAIN);
		return;
	}
	result = sniff_tls_client_hello(hs->buf, hs->len, &info);
	if (result == SNIFF_NEED_MORE && hs->len < hs->cap && !hs->client_eof)
		return;
	if (result != SNIFF_FOUND) {
		intercept_pass(s, INTERCEPT_NONE);
		return;
	}
	hs->early_data = NULL;
	if (inspect_record(s, &info, &reason) == -1) {
		session_close(s, reason);
		return;
	}
	intercept_name(s, &info);
	/* An ECH extension (ech=1 in the log) is most often GREASE, which
	 * looks the same on the wire: intercepted under the outer name. A
	 * client that really used ECH ends the handshake with ech_required,
	 * and the name is learnt as a trust alert's would be. */
	if (bypass_listed(cfg->inspect_bypass, info.name[0] != '\0' ?
	    info.name : NULL, &s->target_addr.sa))
		intercept_pass(s, INTERCEPT_BYPASS);
	else if (cfg->learn_bypass > 0 && bypass_learned(s->intercept->name))
		intercept_pass(s, INTERCEPT_LEARNT);
	else
		intercept_origin_start(s);
}

void
intercept_begin(struct session *s)
{
	struct handshake *hs = s->hs;
	struct intercept *in = calloc(1, sizeof(*in));

	if (in == NULL || session_grow_handshake(s, INTERCEPT_HELLO_MAX) ==
	    -1) {
		free(in);
		session_close(s, "nomem");
		return;
	}
	in->ctx = intercept_ctx_ref(s->srv->cfg->intercept);
	s->intercept = in;
	/* What the relay shows is decrypted: not the client's first bytes
	 * for sniffing to read. */
	s->inspect_done = true;
	hs->replied = true;
	hs->early_data = intercept_hello_read;
	session_set_state(s, SESSION_WAITING);
	session_set_timeout(s, s->srv->cfg->timeout_handshake);
	/* Bytes sent behind the request are here already. */
	intercept_hello_read(s);
}

bool
intercept_timeout(struct session *s)
{
	if (s->intercept == NULL || s->state != SESSION_WAITING)
		return false;
	session_close(s, "intercept-timeout");
	return true;
}

/* -- the end ------------------------------------------------------------ */

void
intercept_close(struct session *s)
{
	struct intercept *in = s->intercept;

	if (in == NULL)
		return;
	if (in->http != NULL)
		http_observe_finish(in->http, ev_now(s->srv->loop));
	/* Freed now: they may run inside the listener's TLS and an
	 * upstream's, which go next. */
	if (in->client != NULL) {
		tls_io_close_notify(in->client);
		SSL_free(in->client);
		in->client = NULL;
	}
	if (in->origin != NULL) {
		tls_io_close_notify(in->origin);
		SSL_free(in->origin);
		in->origin = NULL;
	}
}

void
intercept_free(struct session *s)
{
	struct intercept *in = s->intercept;

	if (in == NULL)
		return;
	free(in->http);
	SSL_free(in->client);
	SSL_free(in->origin);
	intercept_ctx_unref(in->ctx);
	free(in);
	s->intercept = NULL;
}

void
intercept_log_fields(const struct session *s, char *extra, size_t len)
{
	size_t used = strlen(extra);

	if (s->intercept == NULL || used >= len)
		return;
	snprintf(extra + used, len - used, " intercept=%s",
	    intercept_words[s->intercept->outcome]);
}
