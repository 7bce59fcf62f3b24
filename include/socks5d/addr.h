/*
 * Socket address helpers shared by the config parser, the listeners and the
 * sessions: parsing "host:port" literals and formatting addresses for logs.
 */
#ifndef SOCKS5D_ADDR_H
#define SOCKS5D_ADDR_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct socks5_addr;

/* Any address socks5d handles, sized for either family. */
union sockaddr_any {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
};

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

/* Just the IP ("1.2.3.4", "::1"), IPv4-mapped shown as IPv4: for what is
 * about the host, not the connection (bans, per-IP limits). */
void addr_format_ip(const struct sockaddr *sa, char *out, size_t outlen);

/* The port of an AF_INET or AF_INET6 address, host order. */
unsigned addr_port(const struct sockaddr *sa);

/* Length of the sockaddr for its family. */
socklen_t addr_len(const struct sockaddr *sa);

/* Set the port (host order) of an AF_INET or AF_INET6 address. */
void addr_set_port(union sockaddr_any *a, uint16_t port);

/* Same family and IP; ports are ignored. Compare normalized addresses
 * (addr_normalize), or an IPv4-mapped one never equals its IPv4 twin. */
bool addr_same_ip(const union sockaddr_any *a, const union sockaddr_any *b);

/*
 * Copy sa into out, with an IPv4-mapped IPv6 address turned into plain
 * IPv4: dual-stack sockets report IPv4 peers that way, and comparisons,
 * source-address choice and replies want one spelling. sa may be out.
 */
void addr_normalize(const struct sockaddr *sa, union sockaddr_any *out);

/*
 * A SOCKS5 destination that needs no lookup: ATYP 1 or 4, or a name that is
 * really an IP literal (as some browsers send). Fills out (normalized, with
 * the port) and returns true; false for a real name.
 */
bool addr_from_socks5(const struct socks5_addr *dst, union sockaddr_any *out);

/* The other way: an IPv4 or IPv6 address and its port as ATYP 1 or 4. */
void addr_to_socks5(const union sockaddr_any *a, struct socks5_addr *out);

#endif
