/*
 * Upstream proxies: "[upstream NAME]" sections, each an ordered list of
 * members (socks5://, socks5h:// or http:// URLs, and the same inside
 * TLS: socks5+tls://, socks5h+tls://, https://; with optional
 * credentials) tried in turn, and each member's health. A member that
 * failed fail_after times in a row is skipped for retry_after seconds.
 *
 * Health belongs to the process, not to a config: it is kept by upstream
 * name and member (without credentials) in a table that reloads keep, so
 * a reload neither forgets a dead member nor revives it.
 */
#ifndef SOCKS5D_UPSTREAM_H
#define SOCKS5D_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "socks5d/socks5.h"

#define UPSTREAM_MAX_MEMBERS 8
/* "socks5h+tls://[" name "]:65535" and the NUL: a member's label. */
#define UPSTREAM_LABEL_MAX   (15 + SOCKS5_NAME_MAX + 9)

enum upstream_scheme {
	UPSTREAM_SOCKS5,        /* names are resolved here, addresses sent */
	UPSTREAM_SOCKS5H,       /* names are sent for the upstream to resolve */
	UPSTREAM_HTTP,          /* HTTP CONNECT; names are sent */
};

/* A member's record in this process, across reloads. */
struct upstream_health {
	unsigned fails;         /* in a row */
	double down_until;      /* skipped until then (ev_now), 0: up */
	uint64_t ok, failed;    /* hops made and failed */
};

struct upstream_member {
	enum upstream_scheme scheme;
	bool tls;                          /* socks5+tls, socks5h+tls, https */
	char host[SOCKS5_NAME_MAX + 1];    /* a name or an IP literal */
	uint16_t port;
	char *user, *password;             /* NULL: none; wiped when freed */
	char label[UPSTREAM_LABEL_MAX];    /* scheme://host:port, no login */
	struct upstream_health *health;
};

struct upstream {
	char *name;
	struct upstream_member members[UPSTREAM_MAX_MEMBERS];
	size_t n;
	unsigned fail_after;
	unsigned retry_after;
	char *tls_ca;           /* CAs for TLS members; NULL: the system's */
	bool tls_verify;        /* check TLS members' certificates */
	SSL_CTX *tls;           /* built at load when a member is TLS; a
	                         * copy holds a reference of its own */
};

/* The [upstream NAME] sections of one config, in file order. */
struct upstreams;

struct upstreams *upstreams_new(void);
void upstreams_free(struct upstreams *u);
/* The one named name, or NULL. */
struct upstream *upstreams_find(const struct upstreams *u, const char *name);
/* A new, empty one (its name copied), or NULL when out of memory. */
struct upstream *upstreams_add(struct upstreams *u, const char *name);
size_t upstreams_count(const struct upstreams *u);
const struct upstream *upstreams_at(const struct upstreams *u, size_t i);

/* A deep copy of src into dst (credentials and name duplicated; health
 * shared, being the process's). -1 when out of memory, dst then empty. */
int upstream_copy(struct upstream *dst, const struct upstream *src);
/* Wipe and free what upstream_copy made. */
void upstream_copy_release(struct upstream *u);

/* NAME's syntax: letters, digits, '.', '_', '-'; not "direct". */
bool upstream_name_valid(const char *name);

/*
 * Set u's members from a comma-separated list of URLs. 0, or -1 with why,
 * which names the member by its position and never quotes it: a URL may
 * hold a password.
 */
int upstream_set_urls(struct upstream *u, const char *list, char *why,
    size_t whylen);

/* Give every member its health record (found or made by name and label).
 * -1 when out of memory. */
int upstreams_attach_health(struct upstreams *u);

/* May member m of u be tried now? */
bool upstream_usable(const struct upstream *u, const struct upstream_member *m,
    double now);

/* Count a hop through m: made, or failed because of the member (it did not
 * answer, or refused us). A member that reaches fail_after failures in a
 * row is marked down for retry_after seconds, and logged; tried again
 * after that, one failure puts it down again, one success brings it
 * back. */
void upstream_report(const struct upstream *u, const struct upstream_member *m,
    bool ok, double now);

/* Forget every health record (for tests). */
void upstream_health_reset(void);

#endif
