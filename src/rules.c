/*
 * The access rules: building "[rule NAME]" sections key by key, compiling
 * their lists into sorted arrays (CIDRs as merged intervals, names for
 * bsearch), and the first-match decisions sessions ask for.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "socks5d/addr.h"
#include "socks5d/request.h"
#include "socks5d/rules.h"
#include "socks5d/socks5.h"

#define RULES_NAME_MAX  64
#define RULES_HOST_MAX  253     /* a DNS name without the trailing dot */

/* IPv6 addresses as numbers, so ranges compare with < and merge with +1. */
typedef unsigned __int128 rules_u128;

/* Inclusive ranges: CIDRs and port lists both become these. */
struct rules_span4 {
	uint32_t lo, hi;
};

struct rules_span6 {
	rules_u128 lo, hi;
};

struct rules_span_port {
	uint16_t lo, hi;
};

struct rules_cidrs {
	struct rules_span4 *v4;
	size_t n4, cap4;
	struct rules_span6 *v6;
	size_t n6, cap6;
};

struct rules_names {
	char **v;
	size_t n, cap;
};

enum rules_action { RULES_ACTION_UNSET, RULES_ACTION_ALLOW, RULES_ACTION_DENY };

struct rule {
	char *name;
	enum rules_action action;
	struct rules_cidrs client;
	struct rules_names users;       /* sorted with strcmp */
	unsigned cmds;                  /* bit 1 << REQUEST_CMD_*; 0: any */
	struct rules_cidrs dest;
	struct rules_names exact;       /* lower case, no trailing dot */
	struct rules_names suffixes;    /* ".example.org" as "example.org" */
	struct rules_span_port *ports;
	size_t nports, capports;
};

struct rules {
	struct rule **v;                /* pointers, so a struct rule * stays
	                                 * valid while more are added */
	size_t n, cap;
};

static int
rules_why(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
rules_why(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return -1;
}

/* Room for want elements; the old array survives a failure. */
static void *
rules_reserve(void *v, size_t *cap, size_t want, size_t size)
{
	size_t ncap = *cap > 0 ? *cap : 8;

	if (want <= *cap)
		return v;
	while (ncap < want)
		ncap *= 2;
	v = reallocarray(v, ncap, size);
	if (v != NULL)
		*cap = ncap;
	return v;
}

/*
 * Sorting, merging and searching, alike for the three span types: sorted
 * by lo, overlapping or adjacent spans merged, so the his are sorted too
 * and one binary search finds the only span that can hold a key.
 */
#define RULES_SPAN_FUNCS(prefix, type, key_type)                        \
static int                                                              \
prefix##_cmp(const void *a, const void *b)                              \
{                                                                       \
	const type *x = a, *y = b;                                      \
									\
	return x->lo < y->lo ? -1 : x->lo > y->lo;                      \
}                                                                       \
									\
static size_t                                                           \
prefix##_merge(type *v, size_t n)                                       \
{                                                                       \
	size_t out = 0;                                                 \
									\
	if (n == 0)                                                     \
		return 0;                                               \
	qsort(v, n, sizeof(*v), prefix##_cmp);                          \
	for (size_t i = 0; i < n; i++) {                                \
		if (out > 0 && (v[i].lo == 0 ||                         \
		    v[i].lo - 1 <= v[out - 1].hi)) {                    \
			if (v[i].hi > v[out - 1].hi)                    \
				v[out - 1].hi = v[i].hi;                \
		} else {                                                \
			v[out++] = v[i];                                \
		}                                                       \
	}                                                               \
	return out;                                                     \
}                                                                       \
									\
static bool                                                             \
prefix##_has(const type *v, size_t n, key_type key)                     \
{                                                                       \
	size_t lo = 0, hi = n;                                          \
									\
	while (lo < hi) {                                               \
		size_t mid = lo + (hi - lo) / 2;                        \
									\
		if (v[mid].hi < key)                                    \
			lo = mid + 1;                                   \
		else                                                    \
			hi = mid;                                       \
	}                                                               \
	return lo < n && v[lo].lo <= key;                               \
}

RULES_SPAN_FUNCS(rules_span4, struct rules_span4, uint32_t)
RULES_SPAN_FUNCS(rules_span6, struct rules_span6, rules_u128)
RULES_SPAN_FUNCS(rules_span_port, struct rules_span_port, uint16_t)

static rules_u128
rules_u128_of(const uint8_t bytes[16])
{
	rules_u128 x = 0;

	for (int i = 0; i < 16; i++)
		x = x << 8 | bytes[i];
	return x;
}

static uint32_t
rules_u32_of(const uint8_t bytes[4])
{
	return (uint32_t)bytes[0] << 24 | (uint32_t)bytes[1] << 16 |
	    (uint32_t)bytes[2] << 8 | bytes[3];
}

/* ---- building ---- */

static int
rules_cidrs_add4(struct rules_cidrs *c, uint32_t addr, unsigned prefix)
{
	uint32_t mask = prefix == 0 ? 0 : UINT32_MAX << (32 - prefix);
	struct rules_span4 *v;

	v = rules_reserve(c->v4, &c->cap4, c->n4 + 1, sizeof(*v));
	if (v == NULL)
		return -1;
	c->v4 = v;
	v[c->n4].lo = addr & mask;
	v[c->n4].hi = (addr & mask) | ~mask;
	c->n4++;
	return 0;
}

static int
rules_cidrs_add6(struct rules_cidrs *c, rules_u128 addr, unsigned prefix)
{
	rules_u128 mask = prefix == 0 ? 0 : ~(rules_u128)0 << (128 - prefix);
	struct rules_span6 *v;

	v = rules_reserve(c->v6, &c->cap6, c->n6 + 1, sizeof(*v));
	if (v == NULL)
		return -1;
	c->v6 = v;
	v[c->n6].lo = addr & mask;
	v[c->n6].hi = (addr & mask) | ~mask;
	c->n6++;
	return 0;
}

/* "0".."max", digits only. */
static int
rules_number(const char *s, size_t len, unsigned max, unsigned *out)
{
	unsigned v = 0;

	if (len == 0 || len > 5)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

/*
 * One CIDR or bare address. Returns 0, -1 when text is no CIDR, -2 when
 * out of memory. IPv4-mapped IPv6 becomes IPv4, as queries do.
 */
static int
rules_cidr_parse(struct rules_cidrs *c, const char *text)
{
	const char *slash = strchr(text, '/');
	size_t alen = slash != NULL ? (size_t)(slash - text) : strlen(text);
	const char *bits = slash != NULL ? slash + 1 : NULL;
	unsigned prefix;
	struct in_addr a4;
	struct in6_addr a6;
	char addr[INET6_ADDRSTRLEN];
	int rc;

	if (alen >= sizeof(addr))
		return -1;
	memcpy(addr, text, alen);
	addr[alen] = '\0';
	if (inet_pton(AF_INET, addr, &a4) == 1) {
		prefix = 32;
		if (bits != NULL &&
		    rules_number(bits, strlen(bits), 32, &prefix) == -1)
			return -1;
		rc = rules_cidrs_add4(c, ntohl(a4.s_addr), prefix);
	} else if (inet_pton(AF_INET6, addr, &a6) == 1) {
		prefix = 128;
		if (bits != NULL &&
		    rules_number(bits, strlen(bits), 128, &prefix) == -1)
			return -1;
		if (IN6_IS_ADDR_V4MAPPED(&a6) && prefix >= 96)
			rc = rules_cidrs_add4(c, rules_u32_of(a6.s6_addr + 12),
			    prefix - 96);
		else
			rc = rules_cidrs_add6(c, rules_u128_of(a6.s6_addr),
			    prefix);
	} else {
		return -1;
	}
	return rc == -1 ? -2 : 0;
}

static int
rules_names_add(struct rules_names *names, const char *s, size_t len)
{
	char **v, *copy;

	v = rules_reserve(names->v, &names->cap, names->n + 1, sizeof(*v));
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
		rc = rules_cidr_parse(&r->dest, item);
		if (rc == -1)
			return rules_why(why, whylen, "bad pattern \"%s\"",
			    item);
		return rc;
	}
	if (!rules_name_fold(item + suffix, name, sizeof(name)) ||
	    !rules_hostname_ok(name, strlen(name)))
		return rules_why(why, whylen, "bad pattern \"%s\"", item);
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
	struct rules_span_port *v;
	unsigned lo, hi;

	if (dash == NULL) {
		if (rules_number(item, len, 65535, &lo) == -1)
			goto bad;
		hi = lo;
	} else if (rules_number(item, (size_t)(dash - item), 65535,
	    &lo) == -1 || rules_number(dash + 1, strlen(dash + 1), 65535,
	    &hi) == -1 || lo > hi) {
		goto bad;
	}
	v = rules_reserve(r->ports, &r->capports, r->nports + 1, sizeof(*v));
	if (v == NULL)
		return -2;
	r->ports = v;
	v[r->nports].lo = (uint16_t)lo;
	v[r->nports].hi = (uint16_t)hi;
	r->nports++;
	return 0;
bad:
	return rules_why(why, whylen, "bad port \"%s\" (0-65535 or LOW-HIGH)",
	    item);
}

static int
rules_add_command(struct rule *r, const char *item, char *why, size_t whylen)
{
	if (strcasecmp(item, "connect") == 0)
		r->cmds |= 1u << REQUEST_CMD_CONNECT;
	else if (strcasecmp(item, "bind") == 0)
		r->cmds |= 1u << REQUEST_CMD_BIND;
	else if (strcasecmp(item, "udp") == 0)
		r->cmds |= 1u << REQUEST_CMD_UDP;
	else
		return rules_why(why, whylen, "bad command \"%s\" (connect, "
		    "bind or udp)", item);
	return 0;
}

static int
rules_add_client(struct rule *r, const char *item, char *why, size_t whylen)
{
	int rc = rules_cidr_parse(&r->client, item);

	if (rc == -1)
		return rules_why(why, whylen, "bad CIDR \"%s\"", item);
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
		return rules_why(why, whylen, "\"%s\" is not allow or deny",
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
	{ "dest", rules_add_dest },
	{ "port", rules_add_port },
};

static char *
rules_trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

/* Feed each comma-separated item of value to add. */
static int
rules_set_list(struct rule *r, rules_item_fn *add, const char *value,
    char *why, size_t whylen)
{
	char *copy, *cursor, *item;
	int rc = 0;

	if ((copy = strdup(value)) == NULL)
		return rules_why(why, whylen, "out of memory");
	cursor = copy;
	if (*rules_trim(copy) == '\0')
		rc = rules_why(why, whylen, "empty list (leave the key out to "
		    "match anything)");
	while (rc == 0 && cursor != NULL) {
		item = cursor;
		if ((cursor = strchr(cursor, ',')) != NULL)
			*cursor++ = '\0';
		item = rules_trim(item);
		if (*item == '\0')
			rc = rules_why(why, whylen, "empty item in the list");
		else if ((rc = add(r, item, why, whylen)) == -2)
			rc = rules_why(why, whylen, "out of memory");
	}
	free(copy);
	return rc;
}

int
rules_set(struct rule *rule, const char *key, const char *value, char *why,
    size_t whylen)
{
	char *copy, *v;
	int rc;

	if (strcmp(key, "action") == 0) {
		if ((copy = strdup(value)) == NULL)
			return rules_why(why, whylen, "out of memory");
		v = rules_trim(copy);
		rc = rules_set_action(rule, v, why, whylen);
		free(copy);
		return rc;
	}
	for (size_t i = 0; i < sizeof(rules_list_keys) /
	    sizeof(rules_list_keys[0]); i++)
		if (strcmp(key, rules_list_keys[i].key) == 0)
			return rules_set_list(rule, rules_list_keys[i].add,
			    value, why, whylen);
	return rules_why(why, whylen, "unknown key");
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

	v = rules_reserve(rules->v, &rules->cap, rules->n + 1, sizeof(*v));
	if (v == NULL)
		return NULL;
	rules->v = v;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	if ((r->name = strdup(name)) == NULL) {
		free(r);
		return NULL;
	}
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

static void
rules_cidrs_finish(struct rules_cidrs *c)
{
	c->n4 = rules_span4_merge(c->v4, c->n4);
	c->n6 = rules_span6_merge(c->v6, c->n6);
}

void
rules_finish(struct rules *rules)
{
	for (size_t i = 0; rules != NULL && i < rules->n; i++) {
		struct rule *r = rules->v[i];

		rules_cidrs_finish(&r->client);
		rules_cidrs_finish(&r->dest);
		rules_names_finish(&r->users);
		rules_names_finish(&r->exact);
		rules_names_finish(&r->suffixes);
		r->nports = rules_span_port_merge(r->ports, r->nports);
	}
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
	free(r->client.v4);
	free(r->client.v6);
	free(r->dest.v4);
	free(r->dest.v6);
	rules_names_free(&r->users);
	rules_names_free(&r->exact);
	rules_names_free(&r->suffixes);
	free(r->ports);
	free(r);
}

void
rules_free(struct rules *rules)
{
	if (rules == NULL)
		return;
	for (size_t i = 0; i < rules->n; i++)
		rules_rule_free(rules->v[i]);
	free(rules->v);
	free(rules);
}

size_t
rules_count(const struct rules *rules)
{
	return rules != NULL ? rules->n : 0;
}

const char *
rules_name(const struct rules *rules, size_t i)
{
	return i < rules_count(rules) ? rules->v[i]->name : NULL;
}

/* ---- deciding ---- */

static bool
rules_cidrs_empty(const struct rules_cidrs *c)
{
	return c->n4 == 0 && c->n6 == 0;
}

/* Does c hold sa? IPv4-mapped IPv6 is looked up as IPv4. */
static bool
rules_cidrs_has(const struct rules_cidrs *c, const struct sockaddr *sa)
{
	union sockaddr_any a;

	addr_normalize(sa, &a);
	if (a.sa.sa_family == AF_INET)
		return rules_span4_has(c->v4, c->n4,
		    ntohl(a.in.sin_addr.s_addr));
	if (a.sa.sa_family == AF_INET6)
		return rules_span6_has(c->v6, c->n6,
		    rules_u128_of(a.in6.sin6_addr.s6_addr));
	return false;
}

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
	return !rules_cidrs_empty(&r->dest) || r->exact.n > 0 ||
	    r->suffixes.n > 0;
}

static bool
rules_match_who(const struct rule *r, const struct rules_query *q)
{
	if (r->cmds != 0 && (q->cmd >= 32 || (r->cmds & 1u << q->cmd) == 0))
		return false;
	if (!rules_cidrs_empty(&r->client) &&
	    (q->client == NULL || !rules_cidrs_has(&r->client, q->client)))
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
	if (q->dest_addr != NULL && rules_cidrs_has(&r->dest, q->dest_addr))
		return true;
	return q->dest_name != NULL && rules_dest_name_match(r, q->dest_name);
}

static struct rules_verdict
rules_verdict_of(const struct rule *r)
{
	struct rules_verdict v = {
		.allow = r->action == RULES_ACTION_ALLOW,
		.rule = r->name,
	};

	return v;
}

/* Nothing matched: open only when no rules were written at all. */
static struct rules_verdict
rules_verdict_default(const struct rules *rules)
{
	struct rules_verdict v = { .allow = rules_count(rules) == 0 };

	return v;
}

struct rules_verdict
rules_evaluate(const struct rules *rules, const struct rules_query *q)
{
	for (size_t i = 0; i < rules_count(rules); i++) {
		const struct rule *r = rules->v[i];

		if (rules_match_who(r, q) && rules_match_where(r, q))
			return rules_verdict_of(r);
	}
	return rules_verdict_default(rules);
}

struct rules_verdict
rules_evaluate_any_dest(const struct rules *rules, const struct rules_query *q)
{
	for (size_t i = 0; i < rules_count(rules); i++) {
		const struct rule *r = rules->v[i];

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

/* Does the merged list hold every address of one family? */
static bool
rules_cidrs_cover_all(const struct rules_cidrs *c)
{
	return (c->n4 > 0 && c->v4[0].lo == 0 && c->v4[0].hi == UINT32_MAX) ||
	    (c->n6 > 0 && c->v6[0].lo == 0 && c->v6[0].hi == ~(rules_u128)0);
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
		if (rules_cidrs_empty(&r->client) ||
		    rules_cidrs_cover_all(&r->client))
			return false;
	}
	return true;
}
