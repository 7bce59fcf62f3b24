/*
 * The control socket file itself (control.h): made so that only the
 * service user can connect, a dead daemon's leftover replaced but a live
 * one's never, and each peer's credentials checked on accept.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "socks5d/control.h"
#include "socks5d/log.h"

/* A socket file at path nobody answers on is a crashed daemon's. */
static bool
control_socket_stale(const struct sockaddr_un *sun)
{
	struct stat st;
	int fd;
	bool stale;

	if (lstat(sun->sun_path, &st) == -1 || !S_ISSOCK(st.st_mode))
		return false;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return false;
	stale = connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == -1 &&
	    errno == ECONNREFUSED;
	close(fd);
	return stale;
}

/* Root starts the daemon and it becomes [server] user: the socket must
 * be that user's, or its own user could not use it later. */
static int
control_socket_own(const struct config *cfg, const char *path)
{
	struct passwd *pw;
	struct group *gr;
	gid_t gid;

	if (geteuid() != 0 || cfg->run_user == NULL)
		return 0;
	if ((pw = getpwnam(cfg->run_user)) == NULL)
		return 0;       /* privdrop_apply reports it */
	gid = pw->pw_gid;
	if (cfg->run_group != NULL && (gr = getgrnam(cfg->run_group)) != NULL)
		gid = gr->gr_gid;
	return chown(path, pw->pw_uid, gid);
}

int
control_socket_open(const struct config *cfg)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	const char *path = cfg->control_socket;
	mode_t old;
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		log_error("[control] socket %s: longer than %zu bytes", path,
		    sizeof(sun.sun_path) - 1);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path));
	if (control_socket_stale(&sun))
		(void)unlink(path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1) {
		log_warn("[control] socket %s", path);
		return -1;
	}
	/* 0600 from the start: no moment when others could connect. */
	old = umask(0177);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		umask(old);
		if (errno == EADDRINUSE)
			log_error("[control] socket %s: in use (another socks5d "
			    "running?)", path);
		else
			log_warn("[control] socket %s", path);
		close(fd);
		return -1;
	}
	umask(old);
	if (control_socket_own(cfg, path) == -1 || listen(fd, 16) == -1) {
		log_warn("[control] socket %s", path);
		control_socket_close(fd, path);
		return -1;
	}
	log_info("control socket %s", path);
	return fd;
}

void
control_socket_close(int fd, const char *path)
{
	if (fd == -1)
		return;
	close(fd);
	if (path != NULL)
		(void)unlink(path);
}

bool
control_peer_allowed(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1)
		return false;
	return cred.uid == 0 || cred.uid == geteuid();
}
