/*
 * Giving up root. The order matters: supplementary groups and the group
 * must change while we still may, and only then the user; afterwards we
 * check that the switch really happened and cannot be undone.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "socks5d/log.h"
#include "socks5d/privdrop.h"

static int
privdrop_lookup(const char *user, const char *group, uid_t *uid, gid_t *gid)
{
	struct passwd *pw;
	struct group *gr;

	errno = 0;
	if ((pw = getpwnam(user)) == NULL) {
		log_error("[server] user %s: no such user", user);
		return -1;
	}
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	if (group != NULL) {
		if ((gr = getgrnam(group)) == NULL) {
			log_error("[server] group %s: no such group", group);
			return -1;
		}
		*gid = gr->gr_gid;
	}
	return 0;
}

int
privdrop_apply(const char *user, const char *group)
{
	uid_t uid;
	gid_t gid;

	if (geteuid() != 0) {
		if (user != NULL)
			log_info("not running as root: [server] user %s "
			    "ignored", user);
		return 0;
	}
	if (user == NULL) {
		log_warnx("running as root: set [server] user to drop "
		    "privileges after binding");
		return 0;
	}
	if (privdrop_lookup(user, group, &uid, &gid) == -1)
		return -1;
	if (setgroups(1, &gid) == -1 || setgid(gid) == -1 ||
	    setuid(uid) == -1) {
		log_warn("dropping privileges to %s", user);
		return -1;
	}
	if (getuid() != uid || geteuid() != uid || getgid() != gid ||
	    getegid() != gid || (uid != 0 && setuid(0) != -1)) {
		log_error("dropping privileges to %s: still privileged", user);
		return -1;
	}
	log_info("running as user %s (uid %u, gid %u)", user, (unsigned)uid,
	    (unsigned)gid);
	return 0;
}
