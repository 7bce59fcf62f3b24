/*
 * The descriptor limit. A connection costs two descriptors, and two or
 * four more while it moves bulk data through pipes, but the soft limit a
 * shell or a service starts with is often 1024: about 500 clients against
 * a max_clients of 10,000. Any process may raise its soft limit up to the
 * hard one, and nothing here uses select(), so socks5d takes all of it
 * (as the Go runtime does for every program) and warns when even the hard
 * limit falls short. Running out is survivable (accepting pauses until
 * descriptors are free again), but an operator should hear of it first.
 */
#include <sys/resource.h>

#include "socks5d/log.h"
#include "socks5d/nofile.h"

/* Listeners, epoll, the resolver's sockets, the pipe pool, metrics
 * connections, the users file being read. */
#define NOFILE_RESERVE 256

uint64_t
nofile_needed(unsigned max_clients)
{
	return (uint64_t)max_clients * 2 + NOFILE_RESERVE;
}

void
nofile_fit(unsigned max_clients)
{
	struct rlimit rl;
	rlim_t before;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
		log_warn("getrlimit(RLIMIT_NOFILE)");
		return;
	}
	before = rl.rlim_cur;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1) {
			log_warn("raising the descriptor limit to %llu",
			    (unsigned long long)rl.rlim_max);
			rl.rlim_cur = before;
		} else {
			log_info("descriptor limit raised from %llu to %llu",
			    (unsigned long long)before,
			    (unsigned long long)rl.rlim_cur);
		}
	}
	if (rl.rlim_cur < nofile_needed(max_clients))
		log_warnx("max_clients = %u needs at least %llu descriptors, "
		    "but the limit is %llu: raise it (LimitNOFILE= in the "
		    "unit, ulimit -n) or lower max_clients", max_clients,
		    (unsigned long long)nofile_needed(max_clients),
		    (unsigned long long)rl.rlim_cur);
}
