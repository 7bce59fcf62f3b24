/*
 * The descriptor limit (RLIMIT_NOFILE), fitted to [server] max_clients.
 */
#ifndef SOCKS5D_NOFILE_H
#define SOCKS5D_NOFILE_H

#include <stdint.h>

/* max_clients = 0 serves as many clients as the descriptor limit allows,
 * up to this many. */
#define NOFILE_AUTO_CLIENTS 10000

/* Descriptors max_clients connections need at least: two each, plus what
 * the process keeps (listeners, event loop, resolver, pooled pipes). */
uint64_t nofile_needed(unsigned max_clients);

/* The clients a limit of this many descriptors serves: 1 to
 * NOFILE_AUTO_CLIENTS. */
unsigned nofile_clients_for(uint64_t limit);

/* Raise the soft limit to the hard one (logged at info); as root, raise the
 * hard limit as far as max_clients needs. Returns the max_clients to serve
 * with: the configured one (with a warning when even the raised limit is
 * short of nofile_needed), or for 0 (automatic) NOFILE_AUTO_CLIENTS or
 * what the limit allows, if that is fewer (logged at info). */
unsigned nofile_fit(unsigned max_clients);

#endif
