/*
 * The hosts file as a table sorted by name, so a lookup is a binary search
 * with no allocation. Entries keep their file order within a name, which
 * is the order their addresses are tried in.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "socks5d/file.h"
#include "socks5d/hosts.h"

/* RFC 1035's limit on a name's text form. */
#define HOSTS_NAME_MAX 253

struct hosts_entry {
	char *name;                    /* lowercase, no trailing dot */
	union sockaddr_any addr;       /* port 0 */
	size_t line;                   /* file order, for a stable sort */
};

struct hosts {
	struct hosts_entry *entries;
	size_t count;
	size_t cap;
	unsigned refs;
};

static int
hosts_entry_cmp(const void *a, const void *b)
{
	const struct hosts_entry *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c != 0)
		return c;
	return x->line < y->line ? -1 : x->line > y->line;
}

/* Fold name into out (lowercase, one trailing dot dropped). -1 when it
 * cannot be a host name. */
static int
hosts_fold(const char *name, size_t len, char *out)
{
	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > HOSTS_NAME_MAX)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (!isalnum(c) && c != '-' && c != '.' && c != '_')
			return -1;
		out[i] = (char)tolower(c);
	}
	out[len] = '\0';
	return 0;
}

static int
hosts_add(struct hosts *h, const union sockaddr_any *addr,
    const char *name, size_t len, size_t line)
{
	char folded[HOSTS_NAME_MAX + 1];
	struct hosts_entry *e;

	if (hosts_fold(name, len, folded) == -1)
		return 0;
	if (h->count == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 16;
		void *grown = realloc(h->entries, cap * sizeof(*h->entries));

		if (grown == NULL)
			return -1;
		h->entries = grown;
		h->cap = cap;
	}
	e = &h->entries[h->count];
	if ((e->name = strdup(folded)) == NULL)
		return -1;
	e->addr = *addr;
	e->line = line;
	h->count++;
	return 0;
}

/* Numeric IPv4 or IPv6 (no scope: a link-local name is of no use to a
 * proxy's clients). */
static int
hosts_parse_addr(const char *text, size_t len, union sockaddr_any *out)
{
	char buf[INET6_ADDRSTRLEN];

	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, text, len);
	buf[len] = '\0';
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, buf, &out->in.sin_addr) == 1) {
		out->in.sin_family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, buf, &out->in6.sin6_addr) == 1) {
		out->in6.sin6_family = AF_INET6;
		return 0;
	}
	return -1;
}

static int
hosts_parse_line(struct hosts *h, const char *p, const char *end,
    size_t line)
{
	union sockaddr_any addr;
	const char *word;
	bool first = true;

	for (;;) {
		while (p < end && (*p == ' ' || *p == '\t' || *p == '\r'))
			p++;
		if (p == end || *p == '#')
			return 0;
		word = p;
		while (p < end && *p != ' ' && *p != '\t' && *p != '\r' &&
		    *p != '#')
			p++;
		if (first) {
			if (hosts_parse_addr(word, (size_t)(p - word),
			    &addr) == -1)
				return 0;
			first = false;
		} else if (hosts_add(h, &addr, word, (size_t)(p - word),
		    line) == -1) {
			return -1;
		}
	}
}

struct hosts *
hosts_parse(const char *text, size_t len)
{
	const char *p = text, *end = text + len, *eol;
	struct hosts *h;
	size_t line = 0;

	if ((h = calloc(1, sizeof(*h))) == NULL)
		return NULL;
	h->refs = 1;
	while (p < end) {
		eol = memchr(p, '\n', (size_t)(end - p));
		if (eol == NULL)
			eol = end;
		if (hosts_parse_line(h, p, eol, line++) == -1) {
			hosts_unref(h);
			return NULL;
		}
		p = eol + 1;
	}
	if (h->count > 1)
		qsort(h->entries, h->count, sizeof(*h->entries),
		    hosts_entry_cmp);
	return h;
}

struct hosts *
hosts_load(const char *path, char *why, size_t whylen)
{
	struct hosts *h = NULL;
	char *text = NULL;
	size_t len = 0, cap = 0, n;
	FILE *fp;

	if ((fp = file_open_regular(path, why, whylen)) == NULL)
		return NULL;
	for (;;) {
		if (len == cap) {
			char *grown;

			cap = cap ? cap * 2 : 4096;
			if ((grown = realloc(text, cap)) == NULL)
				goto oom;
			text = grown;
		}
		n = fread(text + len, 1, cap - len, fp);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(fp)) {
		snprintf(why, whylen, "cannot read: %s", strerror(errno));
		goto out;
	}
	if ((h = hosts_parse(text, len)) == NULL)
		goto oom;
	goto out;
oom:
	snprintf(why, whylen, "out of memory");
out:
	fclose(fp);
	free(text);
	return h;
}

struct hosts *
hosts_ref(struct hosts *h)
{
	if (h != NULL)
		h->refs++;
	return h;
}

void
hosts_unref(struct hosts *h)
{
	if (h == NULL || --h->refs > 0)
		return;
	for (size_t i = 0; i < h->count; i++)
		free(h->entries[i].name);
	free(h->entries);
	free(h);
}

size_t
hosts_count(const struct hosts *h)
{
	return h != NULL ? h->count : 0;
}

size_t
hosts_find(const struct hosts *h, const char *name, uint16_t port,
    union sockaddr_any *out, size_t max)
{
	char folded[HOSTS_NAME_MAX + 1];
	size_t lo = 0, hi, n = 0;

	if (h == NULL || hosts_fold(name, strlen(name), folded) == -1)
		return 0;
	/* The first entry for the name: a lower bound. */
	hi = h->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(h->entries[mid].name, folded) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < h->count && n < max &&
	    strcmp(h->entries[i].name, folded) == 0; i++) {
		const union sockaddr_any *a = &h->entries[i].addr;
		bool seen = false;

		for (size_t j = 0; j < n && !seen; j++)
			seen = addr_same_ip(&out[j], a);
		if (seen)
			continue;
		out[n] = *a;
		addr_set_port(&out[n], port);
		n++;
	}
	return n;
}
