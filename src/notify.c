/*
 * sd_notify without libsystemd: one datagram per message to the socket in
 * $NOTIFY_SOCKET (a path, or an abstract name when it starts with '@').
 * The watchdog is kept at half of $WATCHDOG_USEC, and STATUS= follows the
 * session count so `systemctl status` shows what the daemon is doing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "socks5d/log.h"
#include "socks5d/notify.h"
#include "socks5d/server.h"

/* How often STATUS= is refreshed while the count changes. */
#define NOTIFY_STATUS_INTERVAL 5.0

static int notify_fd = -1;
static struct sockaddr_un notify_addr;
static socklen_t notify_addrlen;
static struct server *notify_srv;
static ev_timer watchdog_timer;
static ev_timer status_timer;
static unsigned last_status_sessions = ~0u;

bool
notify_enabled(void)
{
	return notify_fd != -1;
}

static void
notify_send(const char *msg)
{
	if (notify_fd == -1)
		return;
	/* Non-blocking: a stalled service manager must not stall us. */
	if (sendto(notify_fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT,
	    (struct sockaddr *)&notify_addr, notify_addrlen) == -1)
		log_debug("notify: sendto: %s", strerror(errno));
}

void
notify_status(const char *state, bool stopping, unsigned sessions)
{
	char msg[256], stamp[48] = "";
	struct timespec now;

	/* Type=notify-reload units need to know when the reload began. */
	if (strcmp(state, "RELOADING=1") == 0 &&
	    clock_gettime(CLOCK_MONOTONIC, &now) == 0)
		snprintf(stamp, sizeof(stamp), "\nMONOTONIC_USEC=%llu",
		    (unsigned long long)now.tv_sec * 1000000ULL +
		    (unsigned long long)now.tv_nsec / 1000ULL);
	snprintf(msg, sizeof(msg), "%s%s%sSTATUS=%s, %u session(s)", state,
	    stamp, *state != '\0' ? "\n" : "",
	    stopping ? "stopping" : "serving", sessions);
	last_status_sessions = sessions;
	notify_send(msg);
}

void
notify_state(const char *state)
{
	notify_status(state, notify_srv != NULL && notify_srv->stopping,
	    notify_srv != NULL ? notify_srv->nsessions : 0);
}

void
notify_watchdog(void)
{
	notify_send("WATCHDOG=1");
}

static void
notify_watchdog_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	notify_watchdog();
}

static void
notify_status_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	if (notify_srv->nsessions != last_status_sessions)
		notify_state("");
}

double
notify_watchdog_seconds(void)
{
	const char *usec = getenv("WATCHDOG_USEC");
	const char *pid = getenv("WATCHDOG_PID");
	unsigned long long value;
	char *end;

	if (usec == NULL)
		return 0;
	if (pid != NULL && strtol(pid, NULL, 10) != (long)getpid())
		return 0;
	value = strtoull(usec, &end, 10);
	if (*end != '\0' || value == 0)
		return 0;
	return (double)value / 1e6;
}

int
notify_open(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	size_t len;

	if (path == NULL || *path == '\0')
		return 0;
	len = strlen(path);
	if ((path[0] != '/' && path[0] != '@') ||
	    len >= sizeof(notify_addr.sun_path)) {
		log_warnx("NOTIFY_SOCKET %s: not a usable socket address", path);
		return -1;
	}
	memset(&notify_addr, 0, sizeof(notify_addr));
	notify_addr.sun_family = AF_UNIX;
	memcpy(notify_addr.sun_path, path, len);
	if (path[0] == '@')
		notify_addr.sun_path[0] = '\0';
	notify_addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
	    len);
	notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0);
	if (notify_fd == -1) {
		log_warn("notify: socket");
		return -1;
	}
	return 0;
}

int
notify_init(struct ev_loop *loop, struct server *srv)
{
	double watchdog;

	notify_srv = srv;
	ev_init(&watchdog_timer, notify_watchdog_cb);
	ev_init(&status_timer, notify_status_cb);
	if (notify_open() == -1)
		return -1;
	if (notify_fd == -1)
		return 0;
	watchdog = notify_watchdog_seconds();
	if (watchdog > 0) {
		ev_timer_set(&watchdog_timer, 0., watchdog / 2);
		ev_timer_again(loop, &watchdog_timer);
	}
	ev_timer_set(&status_timer, NOTIFY_STATUS_INTERVAL,
	    NOTIFY_STATUS_INTERVAL);
	ev_timer_start(loop, &status_timer);
	return 0;
}

void
notify_close(struct ev_loop *loop)
{
	if (loop != NULL) {
		ev_timer_stop(loop, &watchdog_timer);
		ev_timer_stop(loop, &status_timer);
	}
	if (notify_fd != -1)
		close(notify_fd);
	notify_fd = -1;
}
