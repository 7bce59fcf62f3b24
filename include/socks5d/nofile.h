/*
 * The descriptor limit (RLIMIT_NOFILE), fitted to [server] max_clients.
 */
#ifndef SOCKS5D_NOFILE_H
#define SOCKS5D_NOFILE_H

#include <stdint.h>

/* Descriptors max_clients connections need at least: two each, plus what
 * the process keeps (listeners, event loop, resolver, pooled pipes). */
uint64_t nofile_needed(unsigned max_clients);

/* Raise the soft limit to the hard one (logged at info), and warn when
 * even that is below nofile_needed(max_clients). */
void nofile_fit(unsigned max_clients);

#endif
