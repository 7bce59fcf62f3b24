/*
 * Upstream proxies: the [upstream NAME] sections, their URLs, and each
 * member's health in this process; see upstream.h.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "socks5d/log.h"
#include "socks5d/rules.h"
#include "socks5d/metrics.h"
#include "socks5d/span.h"
#include "socks5d/upstream.h"

struct upstreams {
	struct upstream **v;
	size_t n, cap;
};

/* Health by "NAME label", for the life of the process. */
struct upstream_health_entry {
	char *key;
	struct upstream_health health;
};

static struct upstream_health_entry **health_table;
static size_t health_n, health_cap;

struct upstreams *
upstreams_new(void)
{
	return calloc(1, sizeof(struct upstreams));
}

/* Wipe and free the members' credentials. */
static void
upstream_members_wipe(struct upstream_member *members, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct upstream_member *m = &members[i];

		if (m->user != NULL) {
			sodium_memzero(m->user, strlen(m->user));
			free(m->user);
			m->user = NULL;
		}
		if (m->password != NULL) {
			sodium_memzero(m->password, strlen(m->password));
			free(m->password);
			m->password = NULL;
		}
	}
}

static void
upstream_free(struct upstream *u)
{
	upstream_members_wipe(u->members, u->n);
	free(u->name);
	free(u->tls_ca);
	SSL_CTX_free(u->tls);
	free(u);
}

int
upstream_copy(struct upstream *dst, const struct upstream *src)
{
	bool ok;

	*dst = *src;
	dst->name = strdup(src->name);
	ok = dst->name != NULL;
	/* The context is shared, counted; the CA path served its purpose
	 * when the context was built. */
	dst->tls_ca = NULL;
	if (dst->tls != NULL)
		SSL_CTX_up_ref(dst->tls);
	for (size_t i = 0; i < src->n; i++) {
		const struct upstream_member *m = &src->members[i];
		struct upstream_member *c = &dst->members[i];

		c->user = m->user != NULL ? strdup(m->user) : NULL;
		c->password = m->password != NULL ? strdup(m->password) : NULL;
		if ((m->user != NULL && c->user == NULL) ||
		    (m->password != NULL && c->password == NULL))
			ok = false;
	}
	if (!ok) {
		upstream_copy_release(dst);
		return -1;
	}
	return 0;
}

void
upstream_copy_release(struct upstream *u)
{
	upstream_members_wipe(u->members, u->n);
	free(u->name);
	SSL_CTX_free(u->tls);
	memset(u, 0, sizeof(*u));
}

void
upstreams_free(struct upstreams *u)
{
	if (u == NULL)
		return;
	for (size_t i = 0; i < u->n; i++)
		upstream_free(u->v[i]);
	free(u->v);
	free(u);
}

struct upstream *
upstreams_find(const struct upstreams *u, const char *name)
{
	for (size_t i = 0; u != NULL && i < u->n; i++)
		if (strcmp(u->v[i]->name, name) == 0)
			return u->v[i];
	return NULL;
}

struct upstream *
upstreams_add(struct upstreams *u, const char *name)
{
	struct upstream **v, *up;

	if ((v = span_reserve(u->v, &u->cap, u->n + 1, sizeof(*v))) == NULL)
		return NULL;
	u->v = v;
	if ((up = calloc(1, sizeof(*up))) == NULL)
		return NULL;
	if ((up->name = strdup(name)) == NULL) {
		free(up);
		return NULL;
	}
	v[u->n++] = up;
	return up;
}

size_t
upstreams_count(const struct upstreams *u)
{
	return u != NULL ? u->n : 0;
}

const struct upstream *
upstreams_at(const struct upstreams *u, size_t i)
{
	return i < upstreams_count(u) ? u->v[i] : NULL;
}

bool
upstream_name_valid(const char *name)
{
	/* A rule's NAME syntax; "direct" is a via value of its own. */
	return rules_name_valid(name) && strcasecmp(name, "direct") != 0;
}

/* -- URLs ------------------------------------------------------------------ */

static int
upstream_why(char *why, size_t whylen, size_t member, const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(why, whylen, "member %zu: ", member);
	if (n < 0 || (size_t)n >= whylen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(why + n, whylen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

static int
upstream_hex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decode text[0..len) (so ':', '@' and ',' can be written) into a
 * new string of 1-255 bytes without NUL; NULL when it is not one. */
static char *
upstream_decode(const char *text, size_t len)
{
	char *out = malloc(len + 1);
	size_t n = 0;

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		int hi, lo;

		if (text[i] != '%') {
			out[n++] = text[i];
			continue;
		}
		if (i + 2 >= len)
			goto bad;
		if ((hi = upstream_hex((unsigned char)text[i + 1])) < 0 ||
		    (lo = upstream_hex((unsigned char)text[i + 2])) < 0 ||
		    (hi == 0 && lo == 0))
			goto bad;
		out[n++] = (char)(hi << 4 | lo);
		i += 2;
	}
	out[n] = '\0';
	if (n == 0 || n > SOCKS5_NAME_MAX)
		goto bad;
	return out;
bad:
	sodium_memzero(out, len + 1);
	free(out);
	return NULL;
}

/* host[:port] after the login: a name, an IPv4 literal or [IPv6]. */
static int
upstream_parse_hostport(struct upstream_member *m, const char *s, size_t len,
    size_t member, char *why, size_t whylen)
{
	const char *port, *host = s;
	size_t hostlen;
	unsigned long p;
	char *end, digits[8];

	if (len > 0 && s[len - 1] == '/')
		len--;
	if (len > 0 && s[0] == '[') {
		const char *close = memchr(s, ']', len);

		if (close == NULL)
			return upstream_why(why, whylen, member,
			    "an IPv6 address must end with ']'");
		host = s + 1;
		hostlen = (size_t)(close - host);
		port = close + 1 < s + len && close[1] == ':' ? close + 2 : NULL;
		if (port == NULL && close + 1 != s + len)
			return upstream_why(why, whylen, member,
			    "':port' must follow the address");
	} else {
		const char *colon = memchr(s, ':', len);

		if (colon != NULL && memchr(colon + 1, ':', (size_t)(s + len -
		    colon - 1)) != NULL)
			return upstream_why(why, whylen, member,
			    "an IPv6 address needs brackets");

		hostlen = colon != NULL ? (size_t)(colon - s) : len;
		port = colon != NULL ? colon + 1 : NULL;
	}
	if (hostlen == 0 || hostlen > SOCKS5_NAME_MAX)
		return upstream_why(why, whylen, member, "no host");
	for (size_t i = 0; i < hostlen; i++)
		if (!isalnum((unsigned char)host[i]) && host[i] != '.' &&
		    host[i] != '-' && host[i] != '_' && host[i] != ':')
			return upstream_why(why, whylen, member,
			    "the host has a character a host name cannot");
	memcpy(m->host, host, hostlen);
	m->host[hostlen] = '\0';
	if (s[0] == '[') {
		struct in6_addr a6;

		if (inet_pton(AF_INET6, m->host, &a6) != 1)
			return upstream_why(why, whylen, member,
			    "not an IPv6 address in brackets");
	} else if (strchr(m->host, ':') != NULL) {
		return upstream_why(why, whylen, member,
		    "an IPv6 address needs brackets");
	}
	if (port == NULL || (size_t)(s + len - port) == 0 ||
	    (size_t)(s + len - port) >= sizeof(digits))
		return upstream_why(why, whylen, member,
		    "a port is needed (host:port)");
	memcpy(digits, port, (size_t)(s + len - port));
	digits[s + len - port] = '\0';
	p = strtoul(digits, &end, 10);
	if (*end != '\0' || !isdigit((unsigned char)digits[0]) || p == 0 ||
	    p > 65535)
		return upstream_why(why, whylen, member,
		    "the port must be 1 to 65535");
	m->port = (uint16_t)p;
	return 0;
}

static const struct {
	const char *prefix;
	enum upstream_scheme scheme;
	bool tls;
} upstream_schemes[] = {
	{ "socks5://", UPSTREAM_SOCKS5, false },
	{ "socks5h://", UPSTREAM_SOCKS5H, false },
	{ "http://", UPSTREAM_HTTP, false },
	{ "socks5+tls://", UPSTREAM_SOCKS5, true },
	{ "socks5h+tls://", UPSTREAM_SOCKS5H, true },
	{ "https://", UPSTREAM_HTTP, true },
};

static int
upstream_parse_url(struct upstream_member *m, const char *url, size_t member,
    char *why, size_t whylen)
{
	const char *rest = NULL, *at;
	size_t i, len;

	for (i = 0; i < sizeof(upstream_schemes) / sizeof(upstream_schemes[0]);
	    i++) {
		size_t plen = strlen(upstream_schemes[i].prefix);

		if (strncasecmp(url, upstream_schemes[i].prefix, plen) == 0) {
			m->scheme = upstream_schemes[i].scheme;
			m->tls = upstream_schemes[i].tls;
			rest = url + plen;
			break;
		}
	}
	if (rest == NULL)
		return upstream_why(why, whylen, member,
		    "the scheme must be socks5://, socks5h://, http://, "
		    "socks5+tls://, socks5h+tls:// or https://");
	len = strlen(rest);
	if ((at = memchr(rest, '@', len)) != NULL) {
		const char *colon = memchr(rest, ':', (size_t)(at - rest));

		if (colon == NULL)
			return upstream_why(why, whylen, member,
			    "a login is user:password@");
		m->user = upstream_decode(rest, (size_t)(colon - rest));
		m->password = upstream_decode(colon + 1,
		    (size_t)(at - colon - 1));
		if (m->user == NULL || m->password == NULL)
			return upstream_why(why, whylen, member, "the user "
			    "and password must be 1 to 255 bytes (%%XX for "
			    "':', '@', ',')");
		if (m->scheme == UPSTREAM_HTTP && strchr(m->user, ':') != NULL)
			return upstream_why(why, whylen, member,
			    "an HTTP user name cannot hold ':'");
		len -= (size_t)(at + 1 - rest);
		rest = at + 1;
	}
	if (upstream_parse_hostport(m, rest, len, member, why, whylen) == -1)
		return -1;
	snprintf(m->label, sizeof(m->label), strchr(m->host, ':') != NULL ?
	    "%.*s[%s]:%u" : "%.*s%s:%u", (int)(strchr(url, ':') - url + 3),
	    url, m->host, m->port);
	for (char *c = m->label; *c != ':'; c++)
		*c = (char)tolower((unsigned char)*c);
	return 0;
}

int
upstream_set_urls(struct upstream *u, const char *list, char *why,
    size_t whylen)
{
	struct upstream next;
	char *copy = strdup(list), *cursor, *item;
	size_t member = 0;
	int rc = 0;

	memset(&next, 0, sizeof(next));
	if (copy == NULL) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	for (cursor = copy; rc == 0 && cursor != NULL;) {
		char *end;

		item = cursor;
		if ((cursor = strchr(cursor, ',')) != NULL)
			*cursor++ = '\0';
		while (isspace((unsigned char)*item))
			item++;
		end = item + strlen(item);
		while (end > item && isspace((unsigned char)end[-1]))
			*--end = '\0';
		member++;
		if (*item == '\0')
			rc = upstream_why(why, whylen, member, "empty");
		else if (next.n == UPSTREAM_MAX_MEMBERS)
			rc = upstream_why(why, whylen, member, "at most %d "
			    "members", UPSTREAM_MAX_MEMBERS);
		else
			rc = upstream_parse_url(&next.members[next.n++], item,
			    member, why, whylen);
	}
	sodium_memzero(copy, strlen(list));
	free(copy);
	if (rc == -1) {
		upstream_members_wipe(next.members, next.n);
		return -1;
	}
	upstream_members_wipe(u->members, u->n);
	memcpy(u->members, next.members, sizeof(u->members));
	u->n = next.n;
	return 0;
}

/* -- health ---------------------------------------------------------------- */

static struct upstream_health *
upstream_health_find(const char *name, const char *label)
{
	struct upstream_health_entry **v, *e;
	size_t len = strlen(name) + 1 + strlen(label) + 1;
	char *key = malloc(len);

	if (key == NULL)
		return NULL;
	snprintf(key, len, "%s %s", name, label);
	for (size_t i = 0; i < health_n; i++) {
		if (strcmp(health_table[i]->key, key) == 0) {
			free(key);
			return &health_table[i]->health;
		}
	}
	v = span_reserve(health_table, &health_cap, health_n + 1, sizeof(*v));
	if (v == NULL || (e = calloc(1, sizeof(*e))) == NULL) {
		if (v != NULL)
			health_table = v;
		free(key);
		return NULL;
	}
	health_table = v;
	e->key = key;
	health_table[health_n++] = e;
	return &e->health;
}

int
upstreams_attach_health(struct upstreams *u)
{
	for (size_t i = 0; i < upstreams_count(u); i++) {
		struct upstream *up = u->v[i];

		for (size_t j = 0; j < up->n; j++) {
			up->members[j].health = upstream_health_find(up->name,
			    up->members[j].label);
			if (up->members[j].health == NULL)
				return -1;
		}
	}
	return 0;
}

bool
upstream_usable(const struct upstream *u, const struct upstream_member *m,
    double now)
{
	(void)u;
	return m->health == NULL || m->health->down_until <= now;
}

void
upstream_report(const struct upstream *u, const struct upstream_member *m,
    bool ok, double now)
{
	struct upstream_health *h = m->health;

	if (h == NULL)
		return;
	if (ok) {
		h->ok++;
		if (h->down_until != 0)
			log_info("upstream %s: %s is back", u->name, m->label);
		h->fails = 0;
		h->down_until = 0;
		metrics_count_upstream(u->name, m->label, true, 0);
		return;
	}
	h->failed++;
	/* A member on trial after retry_after goes down again at its first
	 * failure; one that was up gets fail_after chances. */
	if (++h->fails < u->fail_after && h->down_until == 0) {
		metrics_count_upstream(u->name, m->label, false, 0);
		return;
	}
	h->down_until = now + u->retry_after;
	log_warnx("upstream %s: %s down after %u failure(s) in a row; "
	    "skipped for %u s", u->name, m->label, h->fails, u->retry_after);
	h->fails = 0;
	metrics_count_upstream(u->name, m->label, false, h->down_until);
}

void
upstream_health_reset(void)
{
	for (size_t i = 0; i < health_n; i++) {
		free(health_table[i]->key);
		free(health_table[i]);
	}
	free(health_table);
	health_table = NULL;
	health_n = health_cap = 0;
}
