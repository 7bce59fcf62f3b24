/*
 * socks5d: command line and start-up order. Everything else lives in the
 * modules; main only chooses what to run.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "socks5d/bypass.h"
#include "socks5d/config.h"
#include "socks5d/ctl.h"
#include "socks5d/listener.h"
#include "socks5d/log.h"
#include "socks5d/metrics_users.h"
#include "socks5d/mint.h"
#include "socks5d/passwd.h"
#include "socks5d/quota_service.h"
#include "socks5d/server.h"
#include "socks5d/tls_ctx.h"
#include "socks5d/version.h"
#include "socks5d/workers.h"

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: socks5d [-c FILE] [-u USER] [-t] [-V] [-h]\n"
	    "       socks5d passwd NAME\n"
	    "       socks5d ctl [-s SOCKET] [-c FILE] [--json] COMMAND\n"
	    "       socks5d ca create CERT KEY\n"
	    "\n"
	    "  -c FILE  configuration file (default " CONFIG_DEFAULT_PATH ")\n"
	    "  -u USER  run as USER after binding, whatever [server] user says\n"
	    "  -t       check the configuration, print \"config ok\" and exit\n"
	    "  -V       print the version and exit\n"
	    "  -h       print this help and exit\n"
	    "  passwd NAME  read a password, print a users-file line for NAME\n"
	    "  ctl COMMAND  ask the running daemon: sessions, kill ID|--user "
	    "NAME|--client CIDR,\n"
	    "               users, quota reset USER [QUOTA], ping "
	    "(socks5d ctl -h)\n"
	    "  ca create CERT KEY  make a CA for [inspect] TLS interception "
	    "(socks5d ca -h)\n");
}

/*
 * config_load with its errors on stderr as written for a person (-t at a
 * terminal), but under systemd each line carries the error priority, or a
 * failed start would reach the journal at the default one.
 */
static struct config *
main_load_config(const char *path)
{
	struct config *cfg;
	char *errors = NULL;
	size_t len = 0;
	FILE *stream;

	if ((stream = open_memstream(&errors, &len)) == NULL)
		return config_load(path, stderr);
	cfg = config_load(path, stream);
	if (fclose(stream) == 0 && errors != NULL)
		log_stderr_report(LOG_LEVEL_ERROR, errors);
	else if (cfg == NULL)
		fprintf(stderr, "%s: cannot report the errors: out of memory\n",
		    path);
	free(errors);
	return cfg;
}

/*
 * Descriptors 0-2 must be open before anything else is opened: started
 * with one of them closed, the daemon would give that number to a socket,
 * and a log line meant for stderr would go to a client. /dev/null fills
 * the gaps (open returns the lowest free number); it is opened only then,
 * as a chroot or a private /dev may not have it.
 */
static int
main_fill_stdio(void)
{
	for (int fd = STDIN_FILENO; fd <= STDERR_FILENO; fd++) {
		if (fcntl(fd, F_GETFD) != -1)
			continue;
		if (open("/dev/null", O_RDWR) != fd)
			return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	const char *path = CONFIG_DEFAULT_PATH;
	bool test_only = false;
	struct config *cfg;
	int ch;

	/* Nothing to report on: stderr may be the descriptor missing. */
	if (main_fill_stdio() == -1)
		return 1;
	if (argc >= 2 && strcmp(argv[1], "passwd") == 0)
		return passwd_main(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "ctl") == 0)
		return ctl_main(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "ca") == 0)
		return mint_ca_main(argc - 1, argv + 1);

	while ((ch = getopt(argc, argv, "c:u:tVh")) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'u':
			config_set_user_override(optarg);
			break;
		case 't':
			test_only = true;
			break;
		case 'V':
			printf("socks5d %s\n", SOCKS5D_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}

	/* Until the config names a target: stderr, with "<N>" priorities
	 * when that is the journal (warnings while loading, too). */
	log_set_target(false);
	/* Before any config builds a TLS context and before the workers
	 * fork: every process derives its ticket keys from this secret. */
	if (tls_tickets_init() == -1) {
		fprintf(stderr, "socks5d: cannot make a TLS ticket secret\n");
		return 1;
	}
	if ((cfg = main_load_config(path)) == NULL)
		return 2;
	if (test_only) {
		printf("config ok\n");
		config_free(cfg);
		return 0;
	}
	/* The open-proxy guard saw only [server] listen; sockets handed over
	 * by systemd are served instead, so they must pass it too. */
	if (listener_check_activation(cfg, "") == -1) {
		config_free(cfg);
		return 2;
	}
	/* A peer that vanishes mid-write must cost an EPIPE, not the
	 * process. */
	signal(SIGPIPE, SIG_IGN);
	/* Before the workers fork: they all count into one table. */
	if (quota_service_start(cfg) == -1 ||
	    (workers_count(cfg) > 1 && (metrics_users_share() == -1 ||
	    bypass_learned_share() == -1))) {
		config_free(cfg);
		return 1;
	}
	if (workers_count(cfg) > 1)
		return workers_run(cfg);
	return server_run(cfg);
}
