/*
 * What TLS interception leaves alone: the [inspect] bypass list (names and
 * CIDRs, matched as a rule's dest list is), and the names it learnt to
 * pass through after a client refused the certificate made for them (a
 * client that pins its certificates), for [inspect] learn_bypass seconds.
 */
#ifndef SOCKS5D_BYPASS_H
#define SOCKS5D_BYPASS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct rules;

/* Is name (may be NULL) or addr (may be NULL) on the list (NULL: empty)? */
bool bypass_listed(const struct rules *list, const char *name,
    const struct sockaddr *addr);

/*
 * The learnt names live in one table all processes share: call before
 * the workers fork (without it, each process keeps its own). Returns 0, or
 * -1 (logged) when the mapping or its key cannot be made.
 */
int bypass_learned_share(void);

/* Pass name through for seconds from now; true when it was not already
 * passing through (a new entry, for the log and /metrics). */
bool bypass_learn(const char *name, unsigned seconds);
bool bypass_learned(const char *name);

/* Names passing through now, for /metrics. */
uint64_t bypass_learned_count(void);

#endif
