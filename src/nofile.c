/*
 * The descriptor limit. A connection costs two descriptors, and two or
 * four more while it moves bulk data through pipes, but the soft limit a
 * shell or a service starts with is often 1024: about 500 clients against
 * a max_clients of 10,000. Any process may raise its soft limit up to the
 * hard one, and nothing here uses select(), so socks5d takes all of it
 * (as the Go runtime does for every program). Started as root it may also
 * raise the hard limit, up to what max_clients needs (HAProxy does the
 * same for its maxconn). What is still short is either fitted (max_clients
 * = 0, the default: as many clients as the limit allows, at most
 * NOFILE_AUTO_CLIENTS) or warned of (a number the operator chose). Running
 * out is survivable (accepting pauses until descriptors are free again),
 * but an operator should hear of it first.
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

unsigned
nofile_clients_for(uint64_t limit)
{
	uint64_t fit;

	if (limit <= nofile_needed(1))
		return 1;
	fit = (limit - NOFILE_RESERVE) / 2;
	return fit < NOFILE_AUTO_CLIENTS ? (unsigned)fit : NOFILE_AUTO_CLIENTS;
}

/* Root (CAP_SYS_RESOURCE) may raise the hard limit too, up to the
 * kernel's fs.nr_open; anyone else gets EPERM, which is not worth a word:
 * the shortfall is reported by the caller either way. */
static void
nofile_raise_hard(struct rlimit *rl, uint64_t want)
{
	struct rlimit more = { .rlim_cur = want, .rlim_max = want };
	rlim_t before = rl->rlim_max;

	if (rl->rlim_max == RLIM_INFINITY || rl->rlim_max >= want)
		return;
	if (setrlimit(RLIMIT_NOFILE, &more) == -1)
		return;
	*rl = more;
	log_info("descriptor limit raised from a hard limit of %llu to %llu",
	    (unsigned long long)before, (unsigned long long)want);
}

unsigned
nofile_fit(unsigned max_clients)
{
	struct rlimit rl;
	rlim_t before;
	unsigned wanted = max_clients != 0 ? max_clients : NOFILE_AUTO_CLIENTS;
	unsigned fitted;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
		log_warn("getrlimit(RLIMIT_NOFILE)");
		return wanted;
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
	if (rl.rlim_cur == rl.rlim_max)
		nofile_raise_hard(&rl, nofile_needed(wanted));
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= nofile_needed(wanted))
		return wanted;
	if (max_clients == 0) {
		fitted = nofile_clients_for(rl.rlim_cur);
		log_info("max_clients = %u: what the descriptor limit of %llu "
		    "allows", fitted, (unsigned long long)rl.rlim_cur);
		return fitted;
	}
	log_warnx("max_clients = %u needs at least %llu descriptors, but the "
	    "limit is %llu: raise it (LimitNOFILE= in the unit, ulimit -n) or "
	    "lower max_clients", max_clients,
	    (unsigned long long)nofile_needed(max_clients),
	    (unsigned long long)rl.rlim_cur);
	return max_clients;
}
