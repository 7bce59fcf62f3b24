/*
 * The TLS handshake of a [tls] listener's client, driven by the client
 * watcher with OpenSSL's WANT_READ/WANT_WRITE and bounded by the session
 * timer ([timeouts] handshake, then again for the front-end). Failures
 * end the session with a reason naming the kind ("tls-version",
 * "tls-client-cert", ...) for the access log and /metrics.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "socks5d/addr.h"
#include "socks5d/log.h"
#include "socks5d/metrics.h"
#include "socks5d/policy.h"
#include "socks5d/session.h"
#include "socks5d/tls_ctx.h"
#include "socks5d/tls_front.h"
#include "socks5d/tls_io.h"

/* At most one log line a second about failed handshakes. */
static struct log_ratelimit tls_front_fail_log;

static struct session *
tls_front_session(ev_io *w)
{
	return (struct session *)((char *)w - offsetof(struct session,
	    client_io));
}

/* The access log's word for why a handshake failed, from OpenSSL's
 * error queue (the first error is the cause). */
static const char *
tls_front_failure(int ssl_error)
{
	unsigned long err = ERR_peek_error();

	if (ssl_error == SSL_ERROR_SYSCALL || ssl_error == SSL_ERROR_ZERO_RETURN)
		return err == 0 ? "tls-eof" : "tls-error";
	if (ERR_GET_LIB(err) != ERR_LIB_SSL)
		return "tls-error";
	switch (ERR_GET_REASON(err)) {
	case SSL_R_UNSUPPORTED_PROTOCOL:
	case SSL_R_NO_PROTOCOLS_AVAILABLE:
	case SSL_R_WRONG_VERSION_NUMBER:
	case SSL_R_VERSION_TOO_LOW:
	case SSL_R_UNKNOWN_PROTOCOL:
		return "tls-version";
	case SSL_R_NO_SHARED_CIPHER:
	case SSL_R_NO_SHARED_GROUPS:
		return "tls-cipher";
	case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
	case SSL_R_CERTIFICATE_VERIFY_FAILED:
		return "tls-client-cert";
	default:
		/* An alert from the client: it refused our certificate,
		 * most often. */
		if (ERR_GET_REASON(err) >= SSL_AD_REASON_OFFSET)
			return "tls-alert";
		return "tls-error";
	}
}

static void
tls_front_log_failure(const struct session *s, const char *reason)
{
	char client[ADDR_STRLEN], why[256];
	unsigned long covered, err = ERR_peek_error();
	long verify = SSL_get_verify_result(s->ssl);

	if (!log_ratelimit_pass(&tls_front_fail_log, ev_now(s->srv->loop),
	    1.0, &covered))
		return;
	addr_format(&s->client_addr.sa, client, sizeof(client));
	if (verify != X509_V_OK)
		snprintf(why, sizeof(why), "client certificate: %s",
		    X509_verify_cert_error_string(verify));
	else if (err != 0)
		ERR_error_string_n(err, why, sizeof(why));
	else
		snprintf(why, sizeof(why), "connection closed");
	log_info("TLS handshake failed: client=%s close=%s: %s (%lu in the "
	    "last second)", client, reason, why, covered);
}

/* The handshake is done: a client certificate may name the user, then
 * the front-end reads on, with a fresh handshake timeout of its own. */
static void
tls_front_established(struct session *s)
{
	const struct config *cfg = s->srv->cfg;
	enum tls_client_user how = tls_ssl_client_user(s->ssl);
	char *user;

	metrics_count_tls_session(SSL_version(s->ssl),
	    SSL_session_reused(s->ssl) == 1);
	if (how != TLS_CLIENT_USER_NONE &&
	    (user = tls_client_user_of(s->ssl, how)) != NULL) {
		free(s->user);
		s->user = user;
		s->cert_login = true;
		metrics_count_auth(true);
		policy_login_ok(s);
	}
	s->hs->tls_due = false;
	session_set_state(s, SESSION_HANDSHAKE);
	session_set_timeout(s, cfg->timeout_handshake);
	s->hs->tls_done(s);
}

static void
tls_front_handshake(struct session *s)
{
	const char *reason;
	int error;

	switch (session_tls_handshake(s, s->ssl, &s->client_io, &error)) {
	case 1:
		tls_front_established(s);
		return;
	case 0:
		return;
	}
	reason = tls_front_failure(error);
	metrics_count_tls_failure(reason);
	tls_front_log_failure(s, reason);
	ERR_clear_error();
	/* A certificate that does not verify is a failed login, and counts
	 * toward [limits] auth_failures like a password. */
	if (strcmp(reason, "tls-client-cert") == 0) {
		metrics_count_auth(false);
		policy_login_failed(s);
	}
	session_close(s, reason);
}

static void
tls_front_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	tls_front_handshake(tls_front_session(w));
}

enum frontend_step
tls_front_begin(struct session *s, tls_front_done_cb *done)
{
	struct handshake *hs = s->hs;
	struct tls_ctx *ctx = s->srv->cfg->tls;

	if (hs->buf[0] != TLS_CONTENT_HANDSHAKE) {
		/* Plain text to a TLS port: a client set up for the plain
		 * one. Nothing it would understand can be said. */
		metrics_count_tls_failure("not-tls");
		session_send_final(s, NULL, 0, "not-tls");
		return FRONTEND_STOP;
	}
	/* A reload dropped [tls] between accept and now. */
	if (ctx == NULL) {
		session_close(s, "tls-off");
		return FRONTEND_STOP;
	}
	if ((s->ssl = tls_ctx_new_ssl(ctx, s->client_fd)) == NULL)
		goto nomem;
	session_tls_attached(s);
	if (tls_io_set_fd_with_prefix(s->ssl, s->client_fd, hs->buf,
	    hs->len) == -1)
		goto nomem;
	frontend_consume(s, hs->len);
	hs->tls_done = done;
	ev_set_cb(&s->client_io, tls_front_io_cb);
	tls_front_handshake(s);
	return FRONTEND_STOP;
nomem:
	ERR_clear_error();
	log_warnx("%s: out of memory", __func__);
	session_close(s, "nomem");
	return FRONTEND_STOP;
}
