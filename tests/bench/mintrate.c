/*
 * How fast the interception CA mints leaves (mint.c), which a TLS
 * handshake waits for on the event loop: N distinct names with an empty
 * cache, then the same N again, all cache hits. Usage: mintrate [N].
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/x509.h>

#include "socks5d/mint.h"

#define MINTRATE_DEFAULT	2000

static double
mintrate_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One pass over the N names; seconds taken, or -1 if a leaf failed. */
static double
mintrate_pass(struct mint *m, long n)
{
	static const unsigned char fp[MINT_FP_LEN] = { 0x5d };
	char name[64];
	double t0 = mintrate_now();
	X509 *x;

	for (long i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "host-%ld.bench.test", i);
		if ((x = mint_leaf(m, name, fp)) == NULL) {
			fprintf(stderr, "mintrate: no leaf for %s\n", name);
			return -1;
		}
		X509_free(x);
	}
	return mintrate_now() - t0;
}

/* The CA through "socks5d ca create", its advice kept off stdout. */
static int
mintrate_make_ca(const char *cert, const char *key)
{
	char *argv[] = { "ca", "create", (char *)cert, (char *)key, NULL };
	int saved, null, rc;

	fflush(stdout);
	if ((saved = dup(STDOUT_FILENO)) == -1 ||
	    (null = open("/dev/null", O_WRONLY)) == -1) {
		fprintf(stderr, "mintrate: %s\n", strerror(errno));
		return -1;
	}
	dup2(null, STDOUT_FILENO);
	close(null);
	rc = mint_ca_main(4, argv);
	fflush(stdout);
	dup2(saved, STDOUT_FILENO);
	close(saved);
	return rc == 0 ? 0 : -1;
}

int
main(int argc, char **argv)
{
	char dir[] = "/tmp/socks5d-mintrate-XXXXXX", cert[64], key[64];
	char why[512];
	struct mint *m = NULL;
	double first = 0, second = 0;
	uint64_t minted, hits;
	long n = MINTRATE_DEFAULT;
	int status = 1;

	if (argc > 2 || (argc == 2 && (n = strtol(argv[1], NULL, 10)) <= 0)) {
		fprintf(stderr, "usage: mintrate [N]\n");
		return 2;
	}
	if (mkdtemp(dir) == NULL) {
		fprintf(stderr, "mintrate: %s: %s\n", dir, strerror(errno));
		return 1;
	}
	snprintf(cert, sizeof(cert), "%s/ca.pem", dir);
	snprintf(key, sizeof(key), "%s/ca.key", dir);
	if (mintrate_make_ca(cert, key) == -1)
		goto done;
	if ((m = mint_new(cert, key, (size_t)n, why, sizeof(why))) == NULL) {
		fprintf(stderr, "mintrate: %s\n", why);
		goto done;
	}
	if ((first = mintrate_pass(m, n)) < 0 ||
	    (second = mintrate_pass(m, n)) < 0)
		goto done;
	mint_stats(m, &minted, &hits, NULL);
	if (minted != (uint64_t)n || hits != (uint64_t)n) {
		fprintf(stderr, "mintrate: %llu minted, %llu hits; expected "
		    "%ld of each\n", (unsigned long long)minted,
		    (unsigned long long)hits, n);
		goto done;
	}
	printf("leaves_per_second=%.0f us_per_leaf=%.1f hits_per_second=%.0f\n",
	    (double)n / first, first * 1e6 / (double)n, (double)n / second);
	status = 0;
done:
	mint_free(m);
	unlink(cert);
	unlink(key);
	rmdir(dir);
	return status;
}
