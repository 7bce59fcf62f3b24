/*
 * The sd_notify protocol, spoken directly: datagrams to $NOTIFY_SOCKET
 * (READY=1, RELOADING=1, STOPPING=1, STATUS=..., WATCHDOG=1). Everything
 * here is a no-op when the daemon is not run by a service manager.
 */
#ifndef SOCKS5D_NOTIFY_H
#define SOCKS5D_NOTIFY_H

#include <stdbool.h>
#include <ev.h>

struct server;

/* Read NOTIFY_SOCKET and WATCHDOG_USEC; start the watchdog and status
 * timers on loop. Returns 0, or -1 when NOTIFY_SOCKET is unusable (logged;
 * the daemon still runs). */
int notify_init(struct ev_loop *loop, struct server *srv);
/* Send one state message, e.g. "READY=1"; the current session counts are
 * appended as STATUS=. */
void notify_state(const char *state);
/* NULL loop: only notify_open was called (the workers' supervisor). */
void notify_close(struct ev_loop *loop);

/*
 * For a process without sessions or a loop (the workers' supervisor):
 * notify_open only opens $NOTIFY_SOCKET (0, or -1 logged); the caller
 * sends the watchdog every notify_watchdog_seconds() / 2 (0: none wanted)
 * and states with its own counts.
 */
int notify_open(void);
double notify_watchdog_seconds(void);
void notify_watchdog(void);
void notify_status(const char *state, bool stopping, unsigned sessions);
/* Is a service manager listening (NOTIFY_SOCKET set and usable)? */
bool notify_enabled(void);

#endif
