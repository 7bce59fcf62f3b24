/*
 * Access rules: first-match "[rule NAME]" sections deciding who (client
 * address, user) may do what (command) where (destination name or
 * address, port). Pure decisions: no I/O, and no allocation when
 * evaluating; CIDR lists are searched in logarithmic time.
 */
#ifndef SOCKS5D_RULES_H
#define SOCKS5D_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "socks5d/egress.h"
#include "socks5d/ratelimit.h"

struct rules;   /* the compiled rule set of one config (NULL: no rules) */

/*
 * What a decision looks at. Any field may be "not known yet": dest_name
 * NULL (a literal request), dest_addr NULL (name not resolved yet),
 * user NULL (no login). A rule's dest list matches when one of its name
 * patterns matches dest_name or one of its CIDRs matches dest_addr.
 */
struct rules_query {
	const struct sockaddr *client;
	const char *user;
	uint8_t cmd;                   /* REQUEST_CMD_* */
	uint8_t proto;                 /* REQUEST_PROTO_* */
	const char *dest_name;
	const struct sockaddr *dest_addr;
	uint16_t port;                 /* host order */
};

struct rules_verdict {
	bool allow;
	const char *rule;              /* the matching rule's NAME, or NULL
	                                * when no rule matched (or none exist) */
	bool by_client_and_protocol;   /* the rule has client and protocol
	                                * conditions: it may admit a protocol
	                                * without logins by address */
	const struct egress *egress;   /* the rule's pool, NULL: none */
	enum egress_select egress_select;  /* the rule's, or EGRESS_UNSET */
	bool via_set;                  /* false: the rule has no via */
	const struct upstream *via;    /* with via_set: NULL is direct */
	const struct rate_spec *rate;  /* the rule's rate keys, NULL when
	                                * it sets none ([limits]' apply) */
	bool intercept;                /* the rule says intercept = yes */
};

/*
 * First match in file order. No rules at all: allow (rule NULL). At least
 * one rule and none matches: deny (rule NULL).
 */
struct rules_verdict rules_evaluate(const struct rules *rules,
    const struct rules_query *q);

/*
 * Could this client/user/command/protocol (q's dest fields are ignored)
 * be allowed anywhere? Used where the
 * destination is not known at request time (UDP ASSOCIATE). Walks the
 * rules in order, skipping those whose client, user or command do not
 * match: an allow rule allows (that rule); a deny rule without dest and
 * port denies (that rule); a deny rule with dest or port is passed over,
 * since it may not cover what the client will send. At the end: allow
 * when there are no rules at all, else deny (rule NULL). Each datagram is
 * still checked with rules_evaluate.
 */
struct rules_verdict rules_evaluate_any_dest(const struct rules *rules,
    const struct rules_query *q);

/*
 * Does every allow rule restrict clients (so an unauthenticated public
 * listener is not an open proxy)? true when there is at least one rule and
 * every allow rule has a client list that does not cover a whole family
 * (no 0.0.0.0/0, no ::/0, nor lists that merge into one). false when there
 * are no rules.
 */
bool rules_restrict_clients(const struct rules *rules);

size_t rules_count(const struct rules *rules);

/* Point each rule's via at its [upstream NAME] in u. false, with *rule and
 * *name the first rule naming an upstream u lacks, when one does. */
struct upstreams;
/* Warn of each rule's egress pool addresses this host does not have
 * (egress_warn_not_local). */
void rules_warn_egress(const struct rules *rules);
bool rules_resolve_via(struct rules *rules, const struct upstreams *u,
    const char **rule, const char **name);

/* Does some rule have name patterns in its dest list (so a name may be
 * judged otherwise than an address alone)? */
bool rules_have_names(const struct rules *rules);

/* The first rule that says intercept = yes (deny_only: of the deny
 * rules, where it would mean nothing), or NULL. */
const char *rules_intercepting(const struct rules *rules, bool deny_only);

/* Does some rule name user in its user list? */
bool rules_name_user(const struct rules *rules, const char *user);
/* The user names rules name, each once, in no set order: calls fn for
 * each until it returns false. */
void rules_each_user(const struct rules *rules,
    bool (*fn)(const char *user, void *arg), void *arg);

/* The NAME of rule i (file order), or NULL past the end. */
const char *rules_name(const struct rules *rules, size_t i);

/*
 * Building a rule set, for the config parser and tests: rules_new, then
 * per rule rules_add and rules_set for each key, then rules_finish once
 * (it sorts and merges the lists) before any rules_evaluate*. Patterns:
 *
 *   action   allow | deny (required; the last one set wins)
 *   client   CIDRs: a.b.c.d/n, x::/n, or a bare address (/32, /128);
 *            host bits are ignored; ::ffff:a.b.c.d/n (n >= 96) is IPv4
 *   user     user names, exact and case-sensitive; such a rule never
 *            matches a session without login
 *   command  connect, bind, udp, resolve, resolve_ptr
 *   protocol socks5, socks4, http (the front-end the request came in)
 *   dest     CIDRs as for client (match the address), exact names
 *            ("example.com": case-insensitive, a trailing dot ignored), or
 *            suffixes (".example.org" matches example.org itself and any
 *            name ending in ".example.org", not "badexample.org")
 *   port     N or LOW-HIGH, 0-65535 (0 is what BIND/UDP send for "any")
 *   rate_up, rate_down, rate_per   a bandwidth limit (ratelimit.h) for
 *            the sessions the rule allows, in place of [limits]'s
 *   intercept yes | no: TLS interception ([inspect]) for the CONNECT
 *            sessions the rule allows
 *
 * Lists are comma-separated. Setting a list key again appends to it, so
 * long lists can span lines. A key never set matches anything.
 */
struct rule;    /* one [rule NAME] section */

struct rules *rules_new(void);
void rules_free(struct rules *rules);

/* Is name usable as a rule NAME ([A-Za-z0-9_.-]+, at most 64)? */
bool rules_name_valid(const char *name);

/* Append a rule named name (not checked); NULL when out of memory. */
struct rule *rules_add(struct rules *rules, const char *name);
struct rule *rules_find(const struct rules *rules, const char *name);

/*
 * Set key (see above) from its INI value. Returns 0, or -1 with why filled
 * in, e.g. "bad pattern \"10.0.0.0/33\""; the rule may then hold part of
 * the list and the set should be discarded.
 */
int rules_set(struct rule *rule, const char *key, const char *value,
    char *why, size_t whylen);
bool rules_has_action(const struct rule *rule);

/* Sort, merge and deduplicate every list; call once, after the last set. */
void rules_finish(struct rules *rules);

#endif
