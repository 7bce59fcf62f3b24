/*
 * Tor's RESOLVE and RESOLVE_PTR (the SOCKS5 extensions torsocks uses for
 * an application's own lookups): the answer is the reply itself, an
 * address for a name or a name for an address, and then the session ends.
 * The rules judge the name asked (and each address it resolves to, as for
 * CONNECT); the first address they allow is the answer.
 */
#include <string.h>

#include "socks5d/command.h"
#include "socks5d/policy.h"
#include "socks5d/session.h"

/* Answer with the first of addrs the rules allow, then close. */
static void
resolve_answer(struct session *s, const union sockaddr_any *addrs, size_t n)
{
	struct handshake *hs = s->hs;

	for (size_t i = 0; i < n; i++) {
		union sockaddr_any answer = addrs[i];

		if (!policy_allow_dest(s, hs->dst_name, &answer.sa,
		    hs->req.dst.port))
			continue;
		/* An address answer, not a port: the port is 0. */
		addr_set_port(&answer, 0);
		session_answer(s, REPLY_SUCCESS, &answer.sa, "resolved");
		return;
	}
	session_fail(s, REPLY_NOT_ALLOWED);
}

static void
resolve_resolved(void *arg, enum resolver_status status,
    const union sockaddr_any *addrs, size_t n)
{
	struct session *s = arg;

	s->hs->query = NULL;
	if (status != RESOLVER_OK) {
		session_fail(s, status == RESOLVER_NOT_FOUND ?
		    REPLY_HOST_UNREACH : REPLY_FAILURE);
		return;
	}
	resolve_answer(s, addrs, n);
}

static void
resolve_start(struct session *s)
{
	union sockaddr_any addr;

	if (session_find_dst(s, &addr, resolve_resolved))
		resolve_answer(s, &addr, 1);
}

static void
resolve_ptr_named(void *arg, enum resolver_status status, const char *name)
{
	struct session *s = arg;
	union sockaddr_any addr;

	s->hs->query = NULL;
	if (status != RESOLVER_OK) {
		session_fail(s, status == RESOLVER_NOT_FOUND ?
		    REPLY_HOST_UNREACH : REPLY_FAILURE);
		return;
	}
	(void)addr_from_socks5(&s->hs->req.dst, &addr);
	/* The name found is judged with the address it names. */
	if (!policy_allow_dest(s, name, &addr.sa, 0)) {
		session_fail(s, REPLY_NOT_ALLOWED);
		return;
	}
	session_answer_name(s, name, "resolved");
}

static void
resolve_ptr_start(struct session *s)
{
	struct handshake *hs = s->hs;
	union sockaddr_any addr;

	/* Only an address has a PTR record to ask for. */
	if (hs->req.dst.atyp == SOCKS5_ATYP_NAME ||
	    !addr_from_socks5(&hs->req.dst, &addr)) {
		session_fail(s, REPLY_ATYP_UNSUPPORTED);
		return;
	}
	addr_normalize(&addr.sa, &addr);
	if (!policy_allow_dest(s, NULL, &addr.sa, 0)) {
		session_fail(s, REPLY_NOT_ALLOWED);
		return;
	}
	session_set_state(s, SESSION_RESOLVING);
	session_set_timeout(s, s->srv->cfg->dns_timeout + 1);
	hs->query = resolver_reverse(s->srv->resolver, &addr,
	    resolve_ptr_named, s);
	if (hs->query == NULL)
		session_fail(s, REPLY_FAILURE);
}

/* Never waits in SESSION_WAITING: the session's own resolving timer
 * covers the lookup. */
static void
resolve_timeout(struct session *s)
{
	session_fail(s, REPLY_TTL_EXPIRED);
}

const struct command command_resolve = {
	.name = "resolve",
	.cmd = REQUEST_CMD_RESOLVE,
	.start = resolve_start,
	.timeout = resolve_timeout,
};

const struct command command_resolve_ptr = {
	.name = "resolve_ptr",
	.cmd = REQUEST_CMD_RESOLVE_PTR,
	.start = resolve_ptr_start,
	.timeout = resolve_timeout,
};
