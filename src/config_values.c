/*
 * Per-type value parsers for the config table: each turns one trimmed INI
 * value into its field, or explains in one phrase why it cannot.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "socks5d/addr.h"
#include "socks5d/cidr.h"
#include "socks5d/config_values.h"
#include "socks5d/quota.h"
#include "socks5d/ratelimit.h"
#include "socks5d/rules.h"
#include "socks5d/text.h"
#include "socks5d/why.h"

/* Enum fields are stored through an int. */
_Static_assert(sizeof(enum relay_mode) == sizeof(int), "enum size");
_Static_assert(sizeof(enum auth_method) == sizeof(int), "enum size");
_Static_assert(sizeof(enum dns_family) == sizeof(int), "enum size");
_Static_assert(sizeof(enum log_target) == sizeof(int), "enum size");
_Static_assert(sizeof(enum rate_per) == sizeof(int), "enum size");

static const char *const config_true_words[] = { "yes", "true", "on", "1" };
static const char *const config_false_words[] = { "no", "false", "off", "0" };

static void *
config_field(const struct config_row *row, void *base)
{
	return (char *)base + row->offset;
}

static bool
config_word_in(const char *word, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(word, list[i]) == 0)
			return true;
	return false;
}

static int
config_parse_bool(const struct config_row *row, void *base, char *value,
    char *why, size_t whylen)
{
	bool *field = config_field(row, base);
	size_t n = sizeof(config_true_words) / sizeof(config_true_words[0]);

	if (config_word_in(value, config_true_words, n))
		*field = true;
	else if (config_word_in(value, config_false_words, n))
		*field = false;
	else
		return why_set(why, whylen, "must be yes or no (or "
		    "true/false, on/off, 1/0), got \"%s\"", value);
	return 0;
}

static int
config_parse_uint(const struct config_row *row, void *base, char *value,
    char *why, size_t whylen)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(value, &end, 10);
	/* strtoul would take a sign or leading blanks; a count must not. */
	if (!isdigit((unsigned char)value[0]) || *end != '\0' || errno != 0 ||
	    v < row->min || v > row->max)
		return why_set(why, whylen, "must be a number from %u to "
		    "%u, got \"%s\"", row->min, row->max, value);
	*(unsigned *)config_field(row, base) = (unsigned)v;
	return 0;
}

/* "must be one of a, b; got "x"": returns -1. */
static int
config_enum_why(const struct config_enum_name *names, const char *value,
    char *why, size_t whylen)
{
	const struct config_enum_name *e;
	size_t off;

	off = (size_t)snprintf(why, whylen, "must be one of");
	for (e = names; e->name != NULL && off < whylen; e++)
		off += (size_t)snprintf(why + off, whylen - off, "%s %s",
		    e == names ? "" : ",", e->name);
	if (off < whylen)
		snprintf(why + off, whylen - off, "; got \"%s\"", value);
	return -1;
}

static int
config_parse_enum(const struct config_row *row, void *base, char *value,
    char *why, size_t whylen)
{
	const struct config_enum_name *e;

	for (e = row->names; e->name != NULL; e++) {
		if (strcasecmp(value, e->name) == 0) {
			*(int *)config_field(row, base) = e->value;
			return 0;
		}
	}
	return config_enum_why(row->names, value, why, whylen);
}

static int
config_store_string(const struct config_row *row, void *base, char *s,
    char *why, size_t whylen)
{
	char **field = config_field(row, base);

	if (s == NULL)
		return why_set(why, whylen, "out of memory");
	free(*field);
	*field = s;
	return 0;
}

static int
config_parse_string(const struct config_row *row, void *base, char *value,
    char *why, size_t whylen)
{
	char **field = config_field(row, base);

	if (*value == '\0') {
		free(*field);
		*field = NULL;
		return 0;
	}
	return config_store_string(row, base, strdup(value), why, whylen);
}

static int
config_parse_path(const struct config_row *row, void *base, char *value,
    const char *dir, char *why, size_t whylen)
{
	char *path;

	/* Relative to the config file, not to wherever the daemon was
	 * started, so a config and its users file can move together. */
	if (*value == '\0' || *value == '/' || dir == NULL)
		return config_parse_string(row, base, value, why, whylen);
	if (asprintf(&path, "%s/%s", dir, value) == -1)
		path = NULL;
	return config_store_string(row, base, path, why, whylen);
}

static bool
config_addr_same(const struct config_addr *a, const struct config_addr *b)
{
	/* Parsed addresses are zero-filled, so the bytes compare. */
	return a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

/* Split value at commas in place; each item trimmed. NULL at the end. */
static char *
config_next_item(char **cursor)
{
	char *item = *cursor, *comma;

	if (item == NULL)
		return NULL;
	comma = strchr(item, ',');
	if (comma != NULL)
		*comma++ = '\0';
	*cursor = comma;
	return text_trim(item);
}

/* A comma-separated list of the row's names, each at most once; at least
 * one, since a set that serves nothing is a mistake, not a choice. */
static int
config_parse_enum_set(const struct config_row *row, void *base, char *value,
    char *why, size_t whylen)
{
	const struct config_enum_name *e;
	unsigned set = 0;
	char *cursor = *value == '\0' ? NULL : value, *item;

	while ((item = config_next_item(&cursor)) != NULL) {
		for (e = row->names; e->name != NULL; e++)
			if (strcasecmp(item, e->name) == 0)
				break;
		if (e->name == NULL)
			return config_enum_why(row->names, item, why, whylen);
		if (set & (1u << e->value))
			return why_set(why, whylen, "\"%s\" listed twice",
			    e->name);
		set |= 1u << e->value;
	}
	if (set == 0 && row->min > 0)
		return why_set(why, whylen, "must list at least one");
	*(unsigned *)config_field(row, base) = set;
	return 0;
}

static int
config_listen_add(const struct config_row *row, struct config_addr *list,
    size_t n, const char *item, char *why, size_t whylen)
{
	if (*item == '\0')
		return why_set(why, whylen, n == 0 ? "must list at least "
		    "one address:port" : "empty item in the list");
	if (n == row->max)
		return why_set(why, whylen, "more than %u addresses",
		    row->max);
	if (addr_parse_hostport(item, &list[n].ss, &list[n].len, false) == -1)
		return why_set(why, whylen, "\"%s\" is not an IP:port (IP "
		    "literal, IPv6 in brackets, port 1-65535)", item);
	for (size_t i = 0; i < n; i++)
		if (config_addr_same(&list[i], &list[n]))
			return why_set(why, whylen, "\"%s\" is listed twice",
			    item);
	return 0;
}

static int
config_parse_listen(const struct config_row *row, void *base, char *value,
    char *why, size_t whylen)
{
	struct config_addr *list;
	char *cursor = value, *item;
	size_t n = 0;

	list = calloc(row->max, sizeof(*list));
	if (list == NULL)
		return why_set(why, whylen, "out of memory");
	/* A row with min 0 takes an empty list: no such listeners. */
	if (*value == '\0' && row->min == 0)
		cursor = NULL;
	while ((item = config_next_item(&cursor)) != NULL) {
		if (config_listen_add(row, list, n, item, why, whylen) == -1) {
			free(list);
			return -1;
		}
		n++;
	}
	memcpy(config_field(row, base), list, row->max * sizeof(*list));
	*(size_t *)((char *)base + row->count_offset) = n;
	free(list);
	return 0;
}

/* One IP:port, like a listen item, or empty for "off". */
static int
config_parse_hostport(const struct config_row *row, void *base, char *value,
    char *why, size_t whylen)
{
	struct config_addr *field = config_field(row, base);
	struct config_addr a;

	memset(&a, 0, sizeof(a));
	if (*value != '\0' &&
	    addr_parse_hostport(value, &a.ss, &a.len, false) == -1)
		return why_set(why, whylen, "\"%s\" is not an IP:port (IP "
		    "literal, IPv6 in brackets, port 1-65535), or empty for "
		    "none", value);
	*field = a;
	return 0;
}

static int
config_parse_ip(const struct config_row *row, void *base, char *value,
    char *why, size_t whylen)
{
	struct config_addr *field = config_field(row, base);
	struct config_addr a;

	if (*value == '\0') {
		memset(field, 0, sizeof(*field));
		return 0;
	}
	if (addr_parse_ip(value, &a.ss, &a.len) == -1 ||
	    a.ss.ss_family != row->family) {
		if (row->family == AF_INET)
			return why_set(why, whylen, "must be an IPv4 "
			    "address literal, got \"%s\"", value);
		return why_set(why, whylen, "must be an IPv6 address "
		    "literal without brackets, got \"%s\"", value);
	}
	*field = a;
	return 0;
}

/* "192.0.2.1", "2001:db8::1" or both, comma-separated: one per family. */
static int
config_parse_ip_pair(const struct config_row *row, void *base, char *value,
    char *why, size_t whylen)
{
	struct config_addr_pair pair, *field = config_field(row, base);
	char *cursor = value, *item;

	memset(&pair, 0, sizeof(pair));
	if (*value == '\0')
		cursor = NULL;
	while ((item = config_next_item(&cursor)) != NULL) {
		struct config_addr a, *slot;
		size_t n = strlen(item);

		if (n > 2 && item[0] == '[' && item[n - 1] == ']') {
			item[n - 1] = '\0';
			item++;
		}
		if (addr_parse_ip(item, &a.ss, &a.len) == -1)
			return why_set(why, whylen, "must be IP address "
			    "literals, at most one IPv4 and one IPv6, got "
			    "\"%s\"", item);
		slot = a.ss.ss_family == AF_INET ? &pair.ipv4 : &pair.ipv6;
		if (slot->len != 0)
			return why_set(why, whylen, "at most one address "
			    "per family, got a second: \"%s\"", item);
		*slot = a;
	}
	*field = pair;
	return 0;
}

/* A comma-separated list of networks; empty for none. Built aside, so a
 * bad item leaves the field as it was. */
static int
config_parse_cidrs(const struct config_row *row, void *base, char *value,
    char *why, size_t whylen)
{
	struct cidr_set set = { 0 }, *field = config_field(row, base);
	char *cursor = *value == '\0' ? NULL : value, *item;

	while ((item = config_next_item(&cursor)) != NULL) {
		int rc = cidr_set_add(&set, item);

		if (rc == 0)
			continue;
		cidr_set_release(&set);
		if (rc == -2)
			return why_set(why, whylen, "out of memory");
		return why_set(why, whylen, "bad CIDR \"%s\" (a.b.c.d/n, "
		    "x::/n or an address)", item);
	}
	cidr_set_finish(&set);
	cidr_set_release(field);
	*field = set;
	return 0;
}

/* Addresses and networks to leave from; empty for none. */
static int
config_parse_egress(const struct config_row *row, void *base, char *value,
    char *why, size_t whylen)
{
	struct egress pool = { 0 }, *field = config_field(row, base);

	if (*value != '\0' && egress_add(&pool, value, why, whylen) == -1) {
		egress_release(&pool);
		return -1;
	}
	egress_finish(&pool);
	egress_release(field);
	*field = pool;
	return 0;
}

/* "direct", or an [upstream NAME]'s NAME (that it exists is checked once
 * the whole file is read). */
static int
config_parse_via(const struct config_row *row, void *base, char *value,
    char *why, size_t whylen)
{
	char **field = config_field(row, base), *name = NULL;

	if (strcasecmp(value, "direct") != 0) {
		if (!upstream_name_valid(value))
			return why_set(why, whylen, "\"%s\" is neither direct "
			    "nor an upstream's name", value);
		if ((name = strdup(value)) == NULL)
			return why_set(why, whylen, "out of memory");
	}
	free(*field);
	*field = name;
	return 0;
}

/* "LOW-HIGH" within 1..65535, or empty for "the kernel chooses". */
static int
config_parse_port_range(const struct config_row *row, void *base,
    char *value, char *why, size_t whylen)
{
	struct config_port_range *field = config_field(row, base);
	unsigned long low, high;
	char *end;

	if (*value == '\0') {
		field->low = field->high = 0;
		return 0;
	}
	errno = 0;
	low = strtoul(value, &end, 10);
	if (end == value || *end != '-' || !isdigit((unsigned char)end[1]))
		goto bad;
	high = strtoul(end + 1, &end, 10);
	if (errno != 0 || *end != '\0' || low < 1 || high > 65535 ||
	    low > high)
		goto bad;
	field->low = (unsigned)low;
	field->high = (unsigned)high;
	return 0;
bad:
	return why_set(why, whylen, "must be LOW-HIGH with 1 <= LOW <= "
	    "HIGH <= 65535, got \"%s\"", value);
}

/*
 * One DNS server as the config gives it: "1.2.3.4", "1.2.3.4:53", "[::1]"
 * or "[::1]:53" (IPv6 always in brackets, as in listen). Written out in the
 * form c-ares 1.18 accepts, which rejects "[::1]" without a port: "::1".
 */
static int
config_dns_item(const char *item, char *out, size_t outlen)
{
	char ip[INET6_ADDRSTRLEN];
	struct sockaddr_storage ss;
	size_t n = strlen(item);
	unsigned port = 0;
	int rc;

	if (item[0] == '[' && item[n - 1] == ']') {
		if (n - 2 >= sizeof(ip))
			return -1;
		memcpy(ip, item + 1, n - 2);
		ip[n - 2] = '\0';
		rc = addr_parse_ip(ip, &ss, NULL);
		if (rc == 0 && ss.ss_family != AF_INET6)
			rc = -1;
	} else if (strchr(item, ':') != NULL) {
		rc = addr_parse_hostport(item, &ss, NULL, false);
		port = rc == 0 ? addr_port((struct sockaddr *)&ss) : 0;
	} else {
		rc = addr_parse_ip(item, &ss, NULL);
	}
	if (rc == -1)
		return -1;
	if (ss.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip,
		    sizeof(ip));
	else
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr,
		    ip, sizeof(ip));
	if (port == 0)
		snprintf(out, outlen, "%s", ip);
	else if (ss.ss_family == AF_INET)
		snprintf(out, outlen, "%s:%u", ip, port);
	else
		snprintf(out, outlen, "[%s]:%u", ip, port);
	return 0;
}

static int
config_parse_dns(const struct config_row *row, void *base, char *value,
    char *why, size_t whylen)
{
	char one[ADDR_STRLEN], *csv, *cursor = value, *item;
	size_t cap, len = 0;

	if (*value == '\0')
		return config_parse_string(row, base, value, why, whylen);
	/* There are at most strlen + 1 items, each at most "one" long. */
	cap = (strlen(value) + 1) * (sizeof(one) + 1);
	csv = malloc(cap);
	if (csv == NULL)
		return why_set(why, whylen, "out of memory");
	while ((item = config_next_item(&cursor)) != NULL) {
		if (*item == '\0' ||
		    config_dns_item(item, one, sizeof(one)) == -1) {
			why_set(why, whylen, *item == '\0' ? "empty item in "
			    "the list" : "\"%s\" is not an IP or IP:port (IPv6 "
			    "as [addr] or [addr]:port)", item);
			free(csv);
			return -1;
		}
		len += (size_t)snprintf(csv + len, cap - len, "%s%s",
		    len > 0 ? "," : "", one);
	}
	return config_store_string(row, base, csv, why, whylen);
}

/*
 * Names and CIDRs in the syntax of a rule's dest list, kept as the dest
 * of one allow rule: matching them is the rules' own matching. Repeating
 * the key adds to the list.
 */
static int
config_parse_bypass(const struct config_row *row, void *base, char *value,
    char *why, size_t whylen)
{
	struct rules **field = config_field(row, base);
	struct rule *r;

	if (value[0] == '\0')
		return 0;
	if (*field == NULL) {
		if ((*field = rules_new()) == NULL ||
		    (r = rules_add(*field, "bypass")) == NULL ||
		    rules_set(r, "action", "allow", why, whylen) == -1)
			return why_set(why, whylen, "out of memory");
	}
	r = rules_find(*field, "bypass");
	return rules_set(r, "dest", value, why, whylen);
}

int
config_value_parse(const struct config_row *row, void *base,
    const char *value, const char *dir, char *why, size_t whylen)
{
	char *copy, *v;
	int rc = -1;

	copy = strdup(value);
	if (copy == NULL)
		return why_set(why, whylen, "out of memory");
	v = text_trim(copy);
	switch (row->type) {
	case CONFIG_BOOL:
		rc = config_parse_bool(row, base, v, why, whylen);
		break;
	case CONFIG_UINT:
		rc = config_parse_uint(row, base, v, why, whylen);
		break;
	case CONFIG_ENUM:
		rc = config_parse_enum(row, base, v, why, whylen);
		break;
	case CONFIG_ENUM_SET:
		rc = config_parse_enum_set(row, base, v, why, whylen);
		break;
	case CONFIG_CIDRS:
		rc = config_parse_cidrs(row, base, v, why, whylen);
		break;
	case CONFIG_STRING:
		rc = config_parse_string(row, base, v, why, whylen);
		break;
	case CONFIG_PATH:
		rc = config_parse_path(row, base, v, dir, why, whylen);
		break;
	case CONFIG_LISTEN:
		rc = config_parse_listen(row, base, v, why, whylen);
		break;
	case CONFIG_IP:
		rc = config_parse_ip(row, base, v, why, whylen);
		break;
	case CONFIG_DNS_SERVERS:
		rc = config_parse_dns(row, base, v, why, whylen);
		break;
	case CONFIG_IP_PAIR:
		rc = config_parse_ip_pair(row, base, v, why, whylen);
		break;
	case CONFIG_PORT_RANGE:
		rc = config_parse_port_range(row, base, v, why, whylen);
		break;
	case CONFIG_HOSTPORT:
		rc = config_parse_hostport(row, base, v, why, whylen);
		break;
	case CONFIG_RULE:
		rc = rules_set(base, row->key, v, why, whylen);
		break;
	case CONFIG_QUOTA:
		rc = quota_set(base, row->key, v, why, whylen);
		break;
	case CONFIG_RATE:
		rc = rate_parse(v, config_field(row, base), why, whylen);
		break;
	case CONFIG_EGRESS:
		rc = config_parse_egress(row, base, v, why, whylen);
		break;
	case CONFIG_VIA:
		rc = config_parse_via(row, base, v, why, whylen);
		break;
	case CONFIG_BYPASS:
		rc = config_parse_bypass(row, base, v, why, whylen);
		break;
	case CONFIG_UPSTREAM_URLS:
		/* The row's field is the instance's member list. */
		rc = upstream_set_urls(base, v, why, whylen);
		break;
	}
	free(copy);
	return rc;
}

void
config_value_free(const struct config_row *row, void *base)
{
	struct rules **rules;
	char **field;

	switch (row->type) {
	case CONFIG_STRING:
	case CONFIG_PATH:
	case CONFIG_DNS_SERVERS:
	case CONFIG_VIA:
		field = config_field(row, base);
		free(*field);
		*field = NULL;
		break;
	case CONFIG_CIDRS:
		cidr_set_release(config_field(row, base));
		break;
	case CONFIG_EGRESS:
		egress_release(config_field(row, base));
		break;
	case CONFIG_BYPASS:
		rules = config_field(row, base);
		rules_free(*rules);
		*rules = NULL;
		break;
	default:
		break;
	}
}
