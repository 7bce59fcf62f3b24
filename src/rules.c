/*
 * The access rules: building "[rule NAME]" sections key by key, compiling
 * their lists into sorted arrays (CIDR sets from cidr.c, ports as merged
 * intervals, names for bsearch), and the first-match decisions sessions
 * ask for.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "socks5d/cidr.h"
#include "socks5d/request.h"
#include "socks5d/rules.h"
#include "socks5d/rules_private.h"
#include "socks5d/socks5.h"
#include "socks5d/span.h"
#include "socks5d/upstream.h"
#include "socks5d/text.h"
#include "socks5d/why.h"

#define RULES_NAME_MAX  64
#define RULES_HOST_MAX  253     /* a DNS name without the trailing dot */

SPAN_FUNCS(rules_span_port, struct rules_span_port, uint16_t)

/* ---- building ---- */

static int
rules_names_add(struct rules_names *names, const char *s, size_t len)
{
	char **v, *copy;

	v = span_reserve(names->v, &names->cap, names->n + 1, sizeof(*v));
	if (v == NULL)
		return -1;
	names->v = v;
	if ((copy = strndup(s, len)) == NULL)
		return -1;
	v[names->n++] = copy;
	return 0;
}

/*
 * A DNS name as written in a pattern: letters, digits, '-' and '_' in
 * non-empty labels of at most 63. A last label of digits only is a
 * mistyped address ("10.0.0.300"), not a name.
 */
static bool
rules_hostname_ok(const char *s, size_t len)
{
	size_t label = 0, last = 0;
	bool digits = true;

	if (len == 0 || len > RULES_HOST_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (label == 0)
				return false;
			label = 0;
			last = i + 1;
			continue;
		}
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' &&
		    s[i] != '_')
			return false;
		if (++label > 63)
			return false;
	}
	for (size_t i = last; i < len; i++)
		digits = digits && isdigit((unsigned char)s[i]);
	return label > 0 && !digits;
}

/* Lower-cased, trailing dot dropped; false when it is no name. */
static bool
rules_name_fold(const char *s, char *out, size_t outlen)
{
	size_t len = strlen(s);

	if (len > 0 && s[len - 1] == '.')
		len--;
	if (len == 0 || len >= outlen)
		return false;
	for (size_t i = 0; i < len; i++)
		out[i] = (char)tolower((unsigned char)s[i]);
	out[len] = '\0';
	return true;
}

/* Returns 0, -1 for a bad item (why set), -2 when out of memory. */
static int
rules_add_dest(struct rule *r, const char *item, char *why, size_t whylen)
{
	char name[RULES_HOST_MAX + 2];
	bool suffix = item[0] == '.';
	struct in_addr a4;
	int rc;

	/* A name never holds '/' or ':', nor is it a dotted quad. */
	if (strchr(item, '/') != NULL || strchr(item, ':') != NULL ||
	    inet_pton(AF_INET, item, &a4) == 1) {
		rc = cidr_set_add(&r->dest, item);
		if (rc == -1)
			return why_set(why, whylen, "bad pattern \"%s\"",
			    item);
		return rc;
	}
	if (!rules_name_fold(item + suffix, name, sizeof(name)) ||
	    !rules_hostname_ok(name, strlen(name)))
		return why_set(why, whylen, "bad pattern \"%s\"", item);
	if (rules_names_add(suffix ? &r->suffixes : &r->exact, name,
	    strlen(name)) == -1)
		return -2;
	return 0;
}

static int
rules_add_port(struct rule *r, const char *item, char *why, size_t whylen)
{
	const char *dash = strchr(item, '-');
	size_t len = strlen(item);
	unsigned lo, hi;

	if (dash == NULL) {
		if (span_number(item, len, 65535, &lo) == -1)
			goto bad;
		hi = lo;
	} else if (span_number(item, (size_t)(dash - item), 65535,
	    &lo) == -1 || span_number(dash + 1, strlen(dash + 1), 65535,
	    &hi) == -1 || lo > hi) {
		goto bad;
	}
	if (rules_span_port_push(&r->ports, &r->nports, &r->capports,
	    (uint16_t)lo, (uint16_t)hi) == -1)
		return -2;
	return 0;
bad:
	return why_set(why, whylen, "bad port \"%s\" (0-65535 or LOW-HIGH)",
	    item);
}

/* The commands a rule may name, each a bit of struct rule's cmds. */
static const struct {
	const char *name;
	uint8_t cmd;
} rules_commands[] = {
	{ "connect", REQUEST_CMD_CONNECT },
	{ "bind", REQUEST_CMD_BIND },
	{ "udp", REQUEST_CMD_UDP },
	{ "resolve", REQUEST_CMD_RESOLVE },
	{ "resolve_ptr", REQUEST_CMD_RESOLVE_PTR },
};
#define RULES_NCOMMANDS (sizeof(rules_commands) / sizeof(rules_commands[0]))

/* The bit of cmds for a command; 0 for one no rule can name. */
static unsigned
rules_command_bit(uint8_t cmd)
{
	for (size_t i = 0; i < RULES_NCOMMANDS; i++)
		if (rules_commands[i].cmd == cmd)
			return 1u << i;
	return 0;
}

static int
rules_add_command(struct rule *r, const char *item, char *why, size_t whylen)
{
	for (size_t i = 0; i < RULES_NCOMMANDS; i++) {
		if (strcasecmp(item, rules_commands[i].name) == 0) {
			r->cmds |= 1u << i;
			return 0;
		}
	}
	return why_set(why, whylen, "bad command \"%s\" (connect, bind, "
	    "udp, resolve or resolve_ptr)", item);
}

static int
rules_add_protocol(struct rule *r, const char *item, char *why, size_t whylen)
{
	for (unsigned p = 0; p < REQUEST_PROTO_COUNT; p++) {
		if (strcasecmp(item, request_proto_name(p)) == 0) {
			r->protos |= 1u << p;
			return 0;
		}
	}
	return why_set(why, whylen, "bad protocol \"%s\" (socks5, socks4 "
	    "or http)", item);
}

static int
rules_add_client(struct rule *r, const char *item, char *why, size_t whylen)
{
	int rc = cidr_set_add(&r->client, item);

	if (rc == -1)
		return why_set(why, whylen, "bad CIDR \"%s\"", item);
	return rc;
}

static int
rules_add_user(struct rule *r, const char *item, char *why, size_t whylen)
{
	(void)why;
	(void)whylen;
	return rules_names_add(&r->users, item, strlen(item)) == -1 ? -2 : 0;
}

static int
rules_set_action(struct rule *r, const char *value, char *why, size_t whylen)
{
	if (strcasecmp(value, "allow") == 0)
		r->action = RULES_ACTION_ALLOW;
	else if (strcasecmp(value, "deny") == 0)
		r->action = RULES_ACTION_DENY;
	else
		return why_set(why, whylen, "\"%s\" is not allow or deny",
		    value);
	return 0;
}

typedef int rules_item_fn(struct rule *, const char *, char *, size_t);

static const struct {
	const char *key;
	rules_item_fn *add;
} rules_list_keys[] = {
	{ "client", rules_add_client },
	{ "user", rules_add_user },
	{ "command", rules_add_command },
	{ "protocol", rules_add_protocol },
	{ "dest", rules_add_dest },
	{ "port", rules_add_port },
};

/* Feed each comma-separated item of value to add. */
static int
rules_set_list(struct rule *r, rules_item_fn *add, const char *value,
    char *why, size_t whylen)
{
	char *copy, *cursor, *item;
	int rc = 0;

	if ((copy = strdup(value)) == NULL)
		return why_set(why, whylen, "out of memory");
	cursor = copy;
	if (*text_trim(copy) == '\0')
		rc = why_set(why, whylen, "empty list (leave the key out to "
		    "match anything)");
	while (rc == 0 && cursor != NULL) {
		item = cursor;
		if ((cursor = strchr(cursor, ',')) != NULL)
			*cursor++ = '\0';
		item = text_trim(item);
		if (*item == '\0')
			rc = why_set(why, whylen, "empty item in the list");
		else if ((rc = add(r, item, why, whylen)) == -2)
			rc = why_set(why, whylen, "out of memory");
	}
	free(copy);
	return rc;
}

/* "direct" or an [upstream NAME]'s NAME, found at the end of the load. */
static int
rules_set_via(struct rule *r, const char *value, char *why, size_t whylen)
{
	char *copy, *v;
	int rc = 0;

	if ((copy = strdup(value)) == NULL)
		return why_set(why, whylen, "out of memory");
	v = text_trim(copy);
	free(r->via_name);
	r->via_name = NULL;
	r->via_set = true;
	if (strcasecmp(v, "direct") == 0)
		free(copy);
	else if (!upstream_name_valid(v)) {
		rc = why_set(why, whylen, "\"%.64s\" is neither direct nor "
		    "an upstream's name", v);
		free(copy);
	} else {
		memmove(copy, v, strlen(v) + 1);
		r->via_name = copy;
	}
	return rc;
}

void
rules_warn_egress(const struct rules *rules)
{
	char where[RULES_NAME_MAX + 32];

	for (size_t i = 0; rules != NULL && i < rules->n; i++) {
		snprintf(where, sizeof(where), "[rule %s] egress",
		    rules->v[i]->name);
		egress_warn_not_local(&rules->v[i]->egress, where);
	}
}

bool
rules_resolve_via(struct rules *rules, const struct upstreams *u,
    const char **rule, const char **name)
{
	for (size_t i = 0; rules != NULL && i < rules->n; i++) {
		struct rule *r = rules->v[i];

		if (r->via_name == NULL)
			continue;
		if ((r->via = upstreams_find(u, r->via_name)) == NULL) {
			*rule = r->name;
			*name = r->via_name;
			return false;
		}
	}
	return true;
}

static int
rules_set_intercept(struct rule *r, const char *value, char *why,
    size_t whylen)
{
	char *copy = strdup(value), *v;
	int rc = 0;

	if (copy == NULL)
		return why_set(why, whylen, "out of memory");
	v = text_trim(copy);
	if (strcasecmp(v, "yes") == 0)
		r->intercept = true;
	else if (strcasecmp(v, "no") == 0)
		r->intercept = false;
	else
		rc = why_set(why, whylen, "must be yes or no, got \"%.32s\"",
		    v);
	free(copy);
	return rc;
}

const char *
rules_intercepting(const struct rules *rules, bool deny_only)
{
	for (size_t i = 0; rules != NULL && i < rules->n; i++)
		if (rules->v[i]->intercept && (!deny_only ||
		    rules->v[i]->action == RULES_ACTION_DENY))
			return rules->v[i]->name;
	return NULL;
}

int
rules_set(struct rule *rule, const char *key, const char *value, char *why,
    size_t whylen)
{
	char *copy, *v;
	int rc;

	if (strcmp(key, "action") == 0) {
		if ((copy = strdup(value)) == NULL)
			return why_set(why, whylen, "out of memory");
		v = text_trim(copy);
		rc = rules_set_action(rule, v, why, whylen);
		free(copy);
		return rc;
	}
	if (strcmp(key, "egress") == 0)
		return egress_add(&rule->egress, value, why, whylen);
	if (strcmp(key, "via") == 0)
		return rules_set_via(rule, value, why, whylen);
	if (strncmp(key, "rate_", 5) == 0)
		return rate_spec_set(&rule->rate, key, value, why, whylen);
	if (strcmp(key, "intercept") == 0)
		return rules_set_intercept(rule, value, why, whylen);
	if (strcmp(key, "egress_select") == 0) {
		if ((copy = strdup(value)) == NULL)
			return why_set(why, whylen, "out of memory");
		v = text_trim(copy);
		rule->egress_select = egress_select_parse(v);
		rc = rule->egress_select == EGRESS_UNSET ? why_set(why,
		    whylen, "\"%.32s\" is not user, session, random or "
		    "round-robin", v) : 0;
		free(copy);
		return rc;
	}
	for (size_t i = 0; i < sizeof(rules_list_keys) /
	    sizeof(rules_list_keys[0]); i++)
		if (strcmp(key, rules_list_keys[i].key) == 0)
			return rules_set_list(rule, rules_list_keys[i].add,
			    value, why, whylen);
	return why_set(why, whylen, "unknown key");
}

bool
rules_has_action(const struct rule *rule)
{
	return rule->action != RULES_ACTION_UNSET;
}

bool
rules_name_valid(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > RULES_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)name[i]) && name[i] != '_' &&
		    name[i] != '.' && name[i] != '-')
			return false;
	return true;
}

struct rules *
rules_new(void)
{
	return calloc(1, sizeof(struct rules));
}

struct rule *
rules_add(struct rules *rules, const char *name)
{
	struct rule **v, *r;

	v = span_reserve(rules->v, &rules->cap, rules->n + 1, sizeof(*v));
	if (v == NULL)
		return NULL;
	rules->v = v;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	if ((r->name = strdup(name)) == NULL) {
		free(r);
		return NULL;
	}
	r->egress_select = EGRESS_UNSET;
	v[rules->n++] = r;
	return r;
}

struct rule *
rules_find(const struct rules *rules, const char *name)
{
	if (rules == NULL)
		return NULL;
	for (size_t i = 0; i < rules->n; i++)
		if (strcmp(rules->v[i]->name, name) == 0)
			return rules->v[i];
	return NULL;
}

static int
rules_strcmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
rules_names_finish(struct rules_names *names)
{
	size_t out = 0;

	if (names->n == 0)
		return;
	qsort(names->v, names->n, sizeof(*names->v), rules_strcmp);
	for (size_t i = 0; i < names->n; i++) {
		if (out > 0 && strcmp(names->v[out - 1], names->v[i]) == 0)
			free(names->v[i]);
		else
			names->v[out++] = names->v[i];
	}
	names->n = out;
}

void
rules_finish(struct rules *rules)
{
	for (size_t i = 0; rules != NULL && i < rules->n; i++) {
		struct rule *r = rules->v[i];

		cidr_set_finish(&r->client);
		cidr_set_finish(&r->dest);
		rules_names_finish(&r->users);
		rules_names_finish(&r->exact);
		rules_names_finish(&r->suffixes);
		r->nports = rules_span_port_merge(r->ports, r->nports);
		egress_finish(&r->egress);
	}
	if (rules != NULL)
		rules_index_build(rules);
}

static void
rules_names_free(struct rules_names *names)
{
	for (size_t i = 0; i < names->n; i++)
		free(names->v[i]);
	free(names->v);
}

static void
rules_rule_free(struct rule *r)
{
	free(r->name);
	cidr_set_release(&r->client);
	cidr_set_release(&r->dest);
	rules_names_free(&r->users);
	rules_names_free(&r->exact);
	rules_names_free(&r->suffixes);
	free(r->ports);
	egress_release(&r->egress);
	free(r->via_name);
	free(r);
}

void
rules_free(struct rules *rules)
{
	if (rules == NULL)
		return;
	for (size_t i = 0; i < rules->n; i++)
		rules_rule_free(rules->v[i]);
	rules_index_free(rules);
	free(rules->v);
	free(rules);
}

size_t
rules_count(const struct rules *rules)
{
	return rules != NULL ? rules->n : 0;
}

static int
rules_ref_user_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct rules_user_ref *)elem)->user);
}

bool
rules_have_names(const struct rules *rules)
{
	for (size_t i = 0; i < rules_count(rules); i++)
		if (rules->v[i]->exact.n > 0 || rules->v[i]->suffixes.n > 0)
			return true;
	return false;
}

bool
rules_name_user(const struct rules *rules, const char *user)
{
	if (rules == NULL)
		return false;
	/* The index has every named user sorted: once per login, cheap. */
	if (rules->indexed)
		return bsearch(user, rules->refs, rules->nrefs,
		    sizeof(*rules->refs), rules_ref_user_cmp) != NULL;
	for (size_t i = 0; i < rules->n; i++)
		for (size_t u = 0; u < rules->v[i]->users.n; u++)
			if (strcmp(rules->v[i]->users.v[u], user) == 0)
				return true;
	return false;
}

void
rules_each_user(const struct rules *rules,
    bool (*fn)(const char *user, void *arg), void *arg)
{
	if (rules == NULL)
		return;
	for (size_t i = 0; i < rules->n; i++)
		for (size_t u = 0; u < rules->v[i]->users.n; u++) {
			const char *user = rules->v[i]->users.v[u];
			bool seen = false;

			/* Named by an earlier rule, or earlier in this one. */
			for (size_t j = 0; j <= i && !seen; j++)
				for (size_t k = 0; k < rules->v[j]->users.n &&
				    (j < i || k < u) && !seen; k++)
					seen = strcmp(rules->v[j]->users.v[k],
					    user) == 0;
			if (!seen && !fn(user, arg))
				return;
		}
}

const char *
rules_name(const struct rules *rules, size_t i)
{
	return i < rules_count(rules) ? rules->v[i]->name : NULL;
}

/* ---- deciding ---- */

static bool
rules_names_has(const struct rules_names *names, const char *name)
{
	return names->n > 0 && bsearch(&name, names->v, names->n,
	    sizeof(*names->v), rules_strcmp) != NULL;
}

/* Exact names, then every suffix of name that starts at a label. */
static bool
rules_dest_name_match(const struct rule *r, const char *dest_name)
{
	char name[RULES_HOST_MAX + 2];
	const char *p;

	if (r->exact.n == 0 && r->suffixes.n == 0)
		return false;
	if (!rules_name_fold(dest_name, name, sizeof(name)))
		return false;
	if (rules_names_has(&r->exact, name))
		return true;
	for (p = name; r->suffixes.n > 0 && p != NULL; p = strchr(p, '.')) {
		if (*p == '.')
			p++;
		if (rules_names_has(&r->suffixes, p))
			return true;
	}
	return false;
}

static bool
rules_has_dest(const struct rule *r)
{
	return !cidr_set_empty(&r->dest) || r->exact.n > 0 ||
	    r->suffixes.n > 0;
}

static bool
rules_match_who(const struct rule *r, const struct rules_query *q)
{
	if (r->cmds != 0 && (r->cmds & rules_command_bit(q->cmd)) == 0)
		return false;
	if (r->protos != 0 && (q->proto >= 32 ||
	    (r->protos & 1u << q->proto) == 0))
		return false;
	if (!cidr_set_empty(&r->client) &&
	    (q->client == NULL || !cidr_set_has(&r->client, q->client)))
		return false;
	if (r->users.n > 0 && (q->user == NULL ||
	    !rules_names_has(&r->users, q->user)))
		return false;
	return true;
}

static bool
rules_match_where(const struct rule *r, const struct rules_query *q)
{
	if (r->nports > 0 && !rules_span_port_has(r->ports, r->nports,
	    q->port))
		return false;
	if (!rules_has_dest(r))
		return true;
	if (q->dest_addr != NULL && cidr_set_has(&r->dest, q->dest_addr))
		return true;
	return q->dest_name != NULL && rules_dest_name_match(r, q->dest_name);
}

static struct rules_verdict
rules_verdict_of(const struct rule *r)
{
	struct rules_verdict v = {
		.allow = r->action == RULES_ACTION_ALLOW,
		.rule = r->name,
		.by_client_and_protocol = r->protos != 0 &&
		    !cidr_set_empty(&r->client),
		.egress = egress_empty(&r->egress) ? NULL : &r->egress,
		.egress_select = r->egress_select,
		.via_set = r->via_set,
		.via = r->via,
		.rate = rate_spec_given(&r->rate) ? &r->rate : NULL,
		.intercept = r->intercept,
	};

	return v;
}

/* Nothing matched: open only when no rules were written at all. */
static struct rules_verdict
rules_verdict_default(const struct rules *rules)
{
	struct rules_verdict v = {
		.allow = rules_count(rules) == 0,
		.egress_select = EGRESS_UNSET,
	};

	return v;
}

struct rules_verdict
rules_evaluate(const struct rules *rules, const struct rules_query *q)
{
	struct rules_cursor c;
	const struct rule *r;

	rules_cursor_start(&c, rules, q->user);
	while ((r = rules_cursor_next(&c)) != NULL) {
		if (rules_match_who(r, q) && rules_match_where(r, q))
			return rules_verdict_of(r);
	}
	return rules_verdict_default(rules);
}

struct rules_verdict
rules_evaluate_any_dest(const struct rules *rules, const struct rules_query *q)
{
	struct rules_cursor c;
	const struct rule *r;

	rules_cursor_start(&c, rules, q->user);
	while ((r = rules_cursor_next(&c)) != NULL) {
		if (!rules_match_who(r, q))
			continue;
		if (r->action == RULES_ACTION_ALLOW)
			return rules_verdict_of(r);
		/* A narrower deny leaves other destinations open. */
		if (!rules_has_dest(r) && r->nports == 0)
			return rules_verdict_of(r);
	}
	return rules_verdict_default(rules);
}

bool
rules_restrict_clients(const struct rules *rules)
{
	if (rules_count(rules) == 0)
		return false;
	for (size_t i = 0; i < rules->n; i++) {
		const struct rule *r = rules->v[i];

		if (r->action != RULES_ACTION_ALLOW)
			continue;
		if (cidr_set_empty(&r->client) ||
		    cidr_set_covers_a_family(&r->client))
			return false;
	}
	return true;
}
