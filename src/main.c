/*
 * socks5d: command line and start-up order. Everything else lives in the
 * modules; main only chooses what to run.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "socks5d/config.h"
#include "socks5d/log.h"
#include "socks5d/passwd.h"
#include "socks5d/server.h"
#include "socks5d/version.h"
#include "socks5d/workers.h"

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: socks5d [-c FILE] [-t] [-V] [-h]\n"
	    "       socks5d passwd NAME\n"
	    "\n"
	    "  -c FILE  configuration file (default " CONFIG_DEFAULT_PATH ")\n"
	    "  -t       check the configuration, print \"config ok\" and exit\n"
	    "  -V       print the version and exit\n"
	    "  -h       print this help and exit\n"
	    "  passwd NAME  read a password, print a users-file line for NAME\n");
}

int
main(int argc, char **argv)
{
	const char *path = CONFIG_DEFAULT_PATH;
	bool test_only = false;
	struct config *cfg;
	int ch;

	if (argc >= 2 && strcmp(argv[1], "passwd") == 0)
		return passwd_main(argc - 1, argv + 1);

	while ((ch = getopt(argc, argv, "c:tVh")) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
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

	if ((cfg = config_load(path, stderr)) == NULL)
		return 2;
	if (test_only) {
		printf("config ok\n");
		config_free(cfg);
		return 0;
	}
	/* A peer that vanishes mid-write must cost an EPIPE, not the
	 * process. */
	signal(SIGPIPE, SIG_IGN);
	if (workers_count(cfg) > 1)
		return workers_run(cfg);
	return server_run(cfg);
}
