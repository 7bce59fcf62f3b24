/*
 * Resource limits: concurrent sessions per client IP (per /128 for IPv6)
 * and per user, and the failed-login ban. Counters are released exactly
 * when sessions end. No I/O; the caller passes the current time.
 */
#ifndef SOCKS5D_LIMITS_H
#define SOCKS5D_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct limits;

struct limits_config {
	unsigned max_per_client_ip;    /* 0: unlimited */
	unsigned max_per_user;         /* 0: unlimited */
	unsigned auth_failures;        /* 0: no ban */
	unsigned auth_window;          /* seconds */
	unsigned auth_ban;             /* seconds */
};

struct limits *limits_create(void);
void limits_destroy(struct limits *l);
/* New values apply to new sessions; current counts are kept (reload). */
void limits_configure(struct limits *l, const struct limits_config *cfg);

enum limits_result {
	LIMITS_OK,
	LIMITS_CLIENT_FULL,            /* max_per_client_ip reached */
	LIMITS_USER_FULL,              /* max_per_user reached */
	LIMITS_BANNED,                 /* too many failed logins */
};

/* A connection was accepted from client: count it, or say why not (then
 * nothing is counted). The key is the IP alone (IPv6 per /128, IPv4-mapped
 * IPv6 as IPv4); other families are not counted. Out of memory refuses with
 * LIMITS_CLIENT_FULL (LIMITS_USER_FULL for users). */
enum limits_result limits_client_enter(struct limits *l,
    const struct sockaddr *client, double now);
void limits_client_leave(struct limits *l, const struct sockaddr *client);

/* A user logged in: count the session for user, or LIMITS_USER_FULL. */
enum limits_result limits_user_enter(struct limits *l, const char *user);
void limits_user_leave(struct limits *l, const char *user);

/* A login from client failed; returns true when this failure started a
 * ban. */
bool limits_auth_failed(struct limits *l, const struct sockaddr *client,
    double now);

/*
 * Forget every ban and failure window that has run out by now: O(table
 * size), for a periodic timer. Optional: each enter and auth_failed call
 * already expires a few entries, so memory stays bounded without it.
 */
void limits_expire(struct limits *l, double now);

/* Entries currently held (for tests and /metrics). */
size_t limits_tracked(const struct limits *l);

#endif
