/*
 * Socket address helpers shared by the config parser, the listeners and the
 * sessions: parsing "host:port" literals and formatting addresses for logs.
 */
#ifndef SOCKS5D_ADDR_H
#define SOCKS5D_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* Enough for "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535". */
#define ADDR_STRLEN 64

/*
 * Parse "1.2.3.4:80" or "[2001:db8::1]:80" (IP literals only; port 1-65535
 * unless allow_port_zero). Returns 0 or -1.
 */
int addr_parse_hostport(const char *text, struct sockaddr_storage *ss,
    socklen_t *len, bool allow_port_zero);

/* Parse a bare IPv4 or IPv6 literal with port 0. Returns 0 or -1. */
int addr_parse_ip(const char *text, struct sockaddr_storage *ss,
    socklen_t *len);

/* "1.2.3.4:80" or "[::1]:80"; IPv4-mapped IPv6 is shown as IPv4. */
void addr_format(const struct sockaddr *sa, char *out, size_t outlen);

/* The port of an AF_INET or AF_INET6 address, host order. */
unsigned addr_port(const struct sockaddr *sa);

/* Length of the sockaddr for its family. */
socklen_t addr_len(const struct sockaddr *sa);

#endif
