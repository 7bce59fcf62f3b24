/*
 * Dropping root after the listeners are bound: setgroups, setgid, setuid,
 * in that order, then a check that root cannot be regained.
 */
#ifndef SOCKS5D_PRIVDROP_H
#define SOCKS5D_PRIVDROP_H

/* user/group may be NULL. As root without user: a warning. Not root: a
 * no-op. Returns 0, or -1 (logged) when the switch failed. */
int privdrop_apply(const char *user, const char *group);

#endif
