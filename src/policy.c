/*
 * Sessions meet the access rules and the limits here: the pure decisions
 * come from rules.c and limits.c, and this file supplies the session's
 * side, keeps the enter/leave pairs balanced, and keeps refusals from
 * flooding the log.
 */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "socks5d/addr.h"
#include "socks5d/auth.h"
#include "socks5d/frontend.h"
#include "socks5d/inspect.h"
#include "socks5d/limits.h"
#include "socks5d/log.h"
#include "socks5d/metrics.h"
#include "socks5d/metrics_users.h"
#include "socks5d/policy.h"
#include "socks5d/ratelimit.h"
#include "socks5d/rules.h"
#include "socks5d/session.h"
#include "socks5d/upstream.h"

/* At most one refusal message per reason per this many seconds. */
#define POLICY_LOG_INTERVAL 1.0

static struct log_ratelimit banned_log, client_full_log, user_full_log,
    bind_peer_log;

static void
policy_log_refusal(struct log_ratelimit *rl, double now,
    const struct sockaddr *client, const char *what)
{
	char text[ADDR_STRLEN];
	unsigned long covered;

	if (!log_ratelimit_pass(rl, now, POLICY_LOG_INTERVAL, &covered))
		return;
	addr_format_ip(client, text, sizeof(text));
	log_warnx("%s: client=%s (%lu refusal(s) in the last second)", what,
	    text, covered);
}

bool
policy_admit_client(struct server *srv, const struct sockaddr *peer)
{
	double now = ev_now(srv->loop);

	switch (limits_client_enter(srv->limits, peer, now)) {
	case LIMITS_OK:
		return true;
	case LIMITS_BANNED:
		metrics_count_refused(METRICS_REFUSED_BANNED);
		policy_log_refusal(&banned_log, now, peer,
		    "banned after failed logins");
		return false;
	default:
		metrics_count_refused(METRICS_REFUSED_CLIENT_IP);
		policy_log_refusal(&client_full_log, now, peer,
		    "[limits] max_per_client_ip reached");
		return false;
	}
}

bool
policy_readmit_client(struct session *s, const struct sockaddr *real)
{
	struct limits *l = s->srv->limits;

	if (s->client_counted)
		limits_client_leave(l, &s->client_addr.sa);
	s->client_counted = false;
	memcpy(&s->client_addr, real, addr_len(real));
	if (!policy_admit_client(s->srv, real))
		return false;
	s->client_counted = true;
	return true;
}

void
policy_release(struct session *s)
{
	struct limits *l = s->srv->limits;

	if (s->client_counted)
		limits_client_leave(l, &s->client_addr.sa);
	if (s->user_counted)
		limits_user_leave(l, s->user);
	s->client_counted = s->user_counted = false;
	rate_bucket_release(s->rate_up);
	rate_bucket_release(s->rate_down);
	s->rate_up = s->rate_down = NULL;
	free(s->rate_rule);
	s->rate_rule = NULL;
	policy_quota_release(s);
}

/* The verdict v allowed the session: remember whether it intercepts,
 * and its bandwidth limit, the rule's keys over [limits]'. The rule's
 * name is copied, as a reload may free it before the relay starts. */
static void
policy_note_verdict(struct session *s, const struct rules_verdict *v)
{
	s->intercept_rule = v->intercept;
	s->rate = rate_spec_merge(&s->srv->cfg->rate, v->rate);
	free(s->rate_rule);
	s->rate_rule = NULL;
	if (s->rate.per == RATE_PER_RULE && (s->rate.up | s->rate.down) != 0)
		s->rate_rule = strdup(v->rule != NULL ? v->rule : "(limits)");
}

/* The bucket table's key of the budget s shares, or NULL for its own. */
static const char *
policy_rate_key(const struct session *s, char *buf, size_t len)
{
	char ip[ADDR_STRLEN];

	switch (s->rate.per) {
	case RATE_PER_SESSION:
		return NULL;
	case RATE_PER_RULE:
		if (s->rate_rule == NULL)
			return NULL;
		snprintf(buf, len, "r:%s", s->rate_rule);
		return buf;
	case RATE_PER_USER:
		if (s->user != NULL) {
			snprintf(buf, len, "u:%s", s->user);
			return buf;
		}
		/* Without a login: the client's address. */
		/* FALLTHROUGH */
	case RATE_PER_CLIENT:
	default:
		addr_format_ip(&s->client_addr.sa, ip, sizeof(ip));
		snprintf(buf, len, "c:%s", ip);
		return buf;
	}
}

void
policy_rate_start(struct session *s)
{
	/* "u:" and a user name of at most 255 bytes, or a rule's. */
	char key[300], keyed[310];
	const char *k;
	struct ev_loop *loop = s->srv->loop;

	if ((s->rate.up | s->rate.down) == 0 || s->rate_up != NULL ||
	    s->rate_down != NULL)
		return;
	k = policy_rate_key(s, key, sizeof(key));
	/* Up and down are separate budgets of the same owner. */
	if (s->rate.up != 0) {
		if (k != NULL)
			snprintf(keyed, sizeof(keyed), "up %s", k);
		s->rate_up = rate_bucket_acquire(loop, k != NULL ? keyed :
		    NULL, s->rate.up);
	}
	if (s->rate.down != 0) {
		if (k != NULL)
			snprintf(keyed, sizeof(keyed), "down %s", k);
		s->rate_down = rate_bucket_acquire(loop, k != NULL ? keyed :
		    NULL, s->rate.down);
	}
}

void
policy_login_ok(struct session *s)
{
	if (limits_user_enter(s->srv->limits, s->user) == LIMITS_OK)
		s->user_counted = true;
	else
		s->user_over_limit = true;
}

void
policy_login_failed(struct session *s)
{
	struct server *srv = s->srv;
	char text[ADDR_STRLEN];

	if (limits_auth_failed(srv->limits, &s->client_addr.sa,
	    ev_now(srv->loop))) {
		addr_format_ip(&s->client_addr.sa, text, sizeof(text));
		log_warnx("client %s banned for %us after %u failed logins",
		    text, srv->cfg->limits.auth_ban,
		    srv->cfg->limits.auth_failures);
	}
}

/* Remember which rule refused, for the access log; the config (and so
 * the rule's name) may be replaced by a reload before the session ends. */
static void
policy_record(struct session *s, const char *rule)
{
	metrics_count_refused(METRICS_REFUSED_RULE);
	free(s->rule);
	s->rule = strdup(rule != NULL ? rule : "(default)");
}

/* Who asks: the session's side of every rules query. */
static struct rules_query
policy_query(const struct session *s)
{
	struct rules_query q = {
		.client = &s->client_addr.sa,
		.user = s->user,
		.cmd = s->cmd,
		.proto = s->frontend->proto,
	};

	return q;
}

/*
 * The rules' verdict, with the one thing they cannot see: a session that
 * has no login although [auth] method = password (a SOCKS4 client, which
 * has no way to send one) is let in only by a rule that names its
 * protocol and its clients' addresses, never by a catch-all.
 */
static struct rules_verdict
policy_judge(const struct session *s, struct rules_verdict v)
{
	if (v.allow && s->user == NULL &&
	    s->srv->cfg->auth_method == AUTH_PASSWORD &&
	    !v.by_client_and_protocol) {
		v.allow = false;
		v.rule = "(login-required)";
	}
	return v;
}

bool
policy_allow_request(struct session *s)
{
	struct rules_query q = policy_query(s);
	struct rules_verdict v;

	/* A user the config names gets /metrics series of their own. */
	if (s->user != NULL && s->user_stats == NULL &&
	    metrics_users_named(s->srv->cfg->rules, s->srv->cfg->quotas,
	    s->user))
		s->user_stats = metrics_user_get(s->user);
	if (!policy_quota_admit(s))
		return false;
	if (s->user_over_limit) {
		metrics_count_refused(METRICS_REFUSED_USER);
		policy_log_refusal(&user_full_log, ev_now(s->srv->loop),
		    &s->client_addr.sa, "[limits] max_per_user reached");
		free(s->rule);
		s->rule = strdup("(max_per_user)");
		return false;
	}
	/* A command that names its destination is judged by it later, but
	 * a session without the login [auth] asks for needs some rule to
	 * admit it first; a UDP association is judged by whether anything
	 * could pass at all. */
	if (s->cmd != REQUEST_CMD_UDP && (s->user != NULL ||
	    s->srv->cfg->auth_method != AUTH_PASSWORD))
		return true;
	v = policy_judge(s, rules_evaluate_any_dest(s->srv->cfg->rules, &q));
	if (!v.allow)
		policy_record(s, v.rule);
	else
		policy_note_verdict(s, &v);
	return v.allow;
}

/* The egress pool address for a socket of family toward verdict v's
 * destination. */
static void
policy_pick_source(const struct session *s, const struct rules_verdict *v,
    const struct sockaddr *addr, struct policy_route *route)
{
	const struct config *cfg = s->srv->cfg;
	const struct egress *pool = v->egress != NULL ? v->egress : &cfg->egress;
	int family = addr->sa_family;
	enum egress_select select = v->egress_select != EGRESS_UNSET ?
	    v->egress_select : (enum egress_select)cfg->egress_select;

	route->has_source = false;
	/* An IPv4-mapped destination is reached over IPv6 sockets from an
	 * IPv4 source the kernel picks. */
	if (family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(
	    &((const struct sockaddr_in6 *)(const void *)addr)->sin6_addr))
		return;
	route->has_source = egress_pick(pool, select, family, s->user,
	    &s->client_addr.sa, &route->source);
}

static bool
policy_dest(struct session *s, const char *name, const struct sockaddr *addr,
    uint16_t port, struct policy_route *route)
{
	struct rules_query q = policy_query(s);
	struct rules_verdict v;

	q.dest_name = name;
	q.dest_addr = addr;
	q.port = port;
	v = policy_judge(s, rules_evaluate(s->srv->cfg->rules, &q));
	if (!v.allow) {
		policy_record(s, v.rule);
		return false;
	}
	/* A UDP association's limit is the one that admitted it; each
	 * datagram's verdict says only whether it may pass. */
	if (s->cmd != REQUEST_CMD_UDP)
		policy_note_verdict(s, &v);
	if (route != NULL)
		policy_pick_source(s, &v, addr, route);
	return true;
}

bool
policy_allow_dest(struct session *s, const char *name,
    const struct sockaddr *addr, uint16_t port)
{
	return policy_dest(s, name, addr, port, NULL);
}

bool
policy_route_dest(struct session *s, const char *name,
    const struct sockaddr *addr, uint16_t port, struct policy_route *route)
{
	return policy_dest(s, name, addr, port, route);
}

/* The request as asked: its name, or its literal address. */
static struct rules_verdict
policy_request_verdict(struct session *s, union sockaddr_any *literal)
{
	struct rules_query q = policy_query(s);
	const struct socks5_addr *dst = &s->hs->req.dst;

	/* An address, with the name [inspect] sniff learnt for it. */
	if (addr_from_socks5(dst, literal)) {
		q.dest_addr = &literal->sa;
		q.dest_name = inspect_name(s);
	} else
		q.dest_name = dst->u.name;
	q.port = dst->port;
	return policy_judge(s, rules_evaluate(s->srv->cfg->rules, &q));
}

bool
policy_route_request(struct session *s, const struct upstream **via)
{
	union sockaddr_any literal;
	struct rules_verdict v;

	/* Without upstreams every route is direct, and a direct request is
	 * judged address by address later: no need to ask the rules twice. */
	if (upstreams_count(s->srv->cfg->upstreams) == 0) {
		*via = NULL;
		return true;
	}
	v = policy_request_verdict(s, &literal);

	*via = v.via_set ? v.via : s->srv->cfg->via;
	if (*via != NULL && !v.allow)
		policy_record(s, v.rule);
	else if (v.allow)
		policy_note_verdict(s, &v);
	return v.allow;
}

void
policy_route_udp(struct session *s, const struct upstream **via)
{
	struct rules_query q = policy_query(s);
	struct rules_verdict v;

	if (upstreams_count(s->srv->cfg->upstreams) == 0) {
		*via = NULL;
		return;
	}
	v = rules_evaluate_any_dest(s->srv->cfg->rules, &q);
	*via = v.via_set ? v.via : s->srv->cfg->via;
}

void
policy_route_hop(struct session *s, int family, struct policy_route *route)
{
	union sockaddr_any literal, any;
	struct rules_verdict v = policy_request_verdict(s, &literal);

	memset(&any, 0, sizeof(any));
	any.sa.sa_family = (sa_family_t)family;
	policy_pick_source(s, &v, &any.sa, route);
}

void
policy_route_association(struct session *s, int family,
    struct policy_route *route)
{
	struct rules_query q = policy_query(s);
	struct rules_verdict v = rules_evaluate_any_dest(s->srv->cfg->rules, &q);
	union sockaddr_any any;

	memset(&any, 0, sizeof(any));
	any.sa.sa_family = (sa_family_t)family;
	if (!v.allow) {
		/* Admitted under another verdict (a reload since): [outbound]. */
		v.egress = NULL;
		v.egress_select = EGRESS_UNSET;
	}
	policy_pick_source(s, &v, &any.sa, route);
}

/* Split s->dest ("host:port", "[v6]:port") for a query: a literal goes
 * to *literal and q->dest_addr, a name to name and q->dest_name. */
static bool
policy_dest_of(const struct session *s, struct rules_query *q, char *name,
    size_t len, union sockaddr_any *literal)
{
	struct sockaddr_storage ss;
	const char *colon;
	unsigned long port;

	if (s->dest == NULL || (colon = strrchr(s->dest, ':')) == NULL)
		return false;
	port = strtoul(colon + 1, NULL, 10);
	q->port = (uint16_t)port;
	if (addr_parse_hostport(s->dest, &ss, NULL, true) == 0) {
		memcpy(literal, &ss, addr_len((struct sockaddr *)&ss));
		q->dest_addr = &literal->sa;
		return true;
	}
	snprintf(name, len, "%.*s", (int)(colon - s->dest), s->dest);
	q->dest_name = name;
	/* Connected directly: the address the name led to, as judged. */
	if (s->via == NULL && s->target_addr.sa.sa_family != 0 &&
	    s->cmd == REQUEST_CMD_CONNECT)
		q->dest_addr = &s->target_addr.sa;
	return true;
}

bool
policy_recheck(struct session *s)
{
	const struct config *cfg = s->srv->cfg;
	struct rules_query q;
	struct rules_verdict v;
	union sockaddr_any literal;
	char name[SOCKS5_NAME_MAX + 1];

	if (s->user != NULL && !s->cert_login &&
	    cfg->auth_method == AUTH_PASSWORD &&
	    !auth_knows_user(s->srv->auth, s->user)) {
		free(s->rule);
		s->rule = strdup("(user-removed)");
		return false;
	}
	if (s->frontend == NULL || s->cmd == REQUEST_CMD_NONE ||
	    (s->state != SESSION_RELAY && s->cmd != REQUEST_CMD_UDP))
		return true;
	q = policy_query(s);
	if (s->cmd == REQUEST_CMD_UDP)
		v = rules_evaluate_any_dest(cfg->rules, &q);
	else if (policy_dest_of(s, &q, name, sizeof(name), &literal))
		v = rules_evaluate(cfg->rules, &q);
	else
		return true;
	v = policy_judge(s, v);
	if (v.allow)
		return true;
	free(s->rule);
	s->rule = strdup(v.rule != NULL ? v.rule : "(default)");
	return false;
}

bool
policy_recheck_name(struct session *s, const char *name)
{
	struct rules_query q = policy_query(s);
	struct rules_verdict v;
	union sockaddr_any literal;
	char asked[SOCKS5_NAME_MAX + 1];

	if (!policy_dest_of(s, &q, asked, sizeof(asked), &literal))
		return true;
	q.dest_name = name;
	v = policy_judge(s, rules_evaluate(s->srv->cfg->rules, &q));
	if (v.allow)
		return true;
	policy_record(s, v.rule);
	return false;
}

bool
policy_allow_bind_peer(struct session *s, const char *name,
    const struct sockaddr *peer, uint16_t port)
{
	struct rules_query q = policy_query(s);
	struct rules_verdict v;
	char who[ADDR_STRLEN], client[ADDR_STRLEN];
	unsigned long covered;

	q.cmd = REQUEST_CMD_BIND;
	q.dest_name = name;
	q.dest_addr = peer;
	q.port = port;
	v = policy_judge(s, rules_evaluate(s->srv->cfg->rules, &q));
	if (v.allow) {
		policy_note_verdict(s, &v);
		return true;
	}
	metrics_count_refused(METRICS_REFUSED_BIND_PEER);
	/* Anyone can dial a listener: one line a second, however many. */
	if (log_ratelimit_pass(&bind_peer_log, ev_now(s->srv->loop),
	    POLICY_LOG_INTERVAL, &covered)) {
		addr_format(peer, who, sizeof(who));
		addr_format_ip(&s->client_addr.sa, client, sizeof(client));
		log_warnx("bind: peer %s refused by rule=%s: client=%s "
		    "(%lu refusal(s) in the last second)", who,
		    v.rule != NULL ? v.rule : "(default)", client, covered);
	}
	return false;
}
