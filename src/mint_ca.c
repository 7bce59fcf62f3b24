/*
 * "socks5d ca create CERT KEY": a CA for [inspect] interception made
 * without an openssl recipe, written without overwriting anything, and
 * the steps that make clients trust it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "socks5d/mint.h"

#define MINT_CA_EXIT_FAIL	1
#define MINT_CA_EXIT_USAGE	2
#define MINT_CA_DAYS		3652		/* ten years */
#define MINT_CA_BACKDATE	3600
#define MINT_CA_SERIAL_LEN	16
#define MINT_CA_CN_MAX		64		/* ub-common-name */
#define MINT_CA_CN_PREFIX	"socks5d interception CA "

static void
mint_ca_usage(FILE *out)
{
	fprintf(out,
	    "usage: socks5d ca create CERT KEY\n"
	    "\n"
	    "  create CERT KEY  make a CA for [inspect] TLS interception: a "
	    "new P-256 key\n"
	    "                   in KEY (mode 0600) and its self-signed "
	    "certificate in CERT\n"
	    "                   (0644), valid for ten years; neither file may "
	    "exist yet\n");
}

static int
mint_ca_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
mint_ca_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("socks5d ca: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	ERR_clear_error();
	return MINT_CA_EXIT_FAIL;
}

static const char *
mint_ca_reason(void)
{
	const char *r = ERR_reason_error_string(ERR_peek_error());

	return r != NULL ? r : "unknown error";
}

static int
mint_ca_ext(X509 *x, int nid, const char *value)
{
	X509_EXTENSION *ext;
	X509V3_CTX v3;
	int ok;

	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	if ((ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value)) == NULL)
		return -1;
	ok = X509_add_ext(x, ext, -1) == 1;
	X509_EXTENSION_free(ext);
	return ok ? 0 : -1;
}

/*
 * "socks5d interception CA HOST 2025-01-31": the host and day tell one
 * CA from another in a trust store. The host is cut to fit commonName's
 * 64 bytes, and anything unprintable in it becomes '?'.
 */
static void
mint_ca_cn(char *cn, size_t cnlen, time_t now)
{
	char host[256] = "", day[16];
	int max = MINT_CA_CN_MAX - (int)(sizeof(MINT_CA_CN_PREFIX) - 1) - 11;
	struct tm tm;

	if (gethostname(host, sizeof(host)) == -1 || host[0] == '\0')
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	for (char *p = host; *p != '\0'; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
			*p = '?';
	if (gmtime_r(&now, &tm) == NULL ||
	    strftime(day, sizeof(day), "%Y-%m-%d", &tm) != 10)
		snprintf(day, sizeof(day), "0000-00-00");
	/* The precision keeps it to commonName's 64 bytes. */
	if (snprintf(cn, cnlen, MINT_CA_CN_PREFIX "%.*s %.10s", max, host,
	    day) < 0)
		snprintf(cn, cnlen, "socks5d interception CA");
}

static X509 *
mint_ca_cert(EVP_PKEY *key)
{
	unsigned char r[MINT_CA_SERIAL_LEN];
	char cn[MINT_CA_CN_MAX + 1];
	time_t now = time(NULL);
	X509_NAME *name;
	BIGNUM *bn = NULL;
	X509 *x;

	if ((x = X509_new()) == NULL)
		return NULL;
	mint_ca_cn(cn, sizeof(cn), now);
	name = X509_get_subject_name(x);
	if (RAND_bytes(r, sizeof(r)) != 1)
		goto bad;
	r[0] &= 0x7f;			/* positive */
	r[sizeof(r) - 1] |= 1;		/* and never zero */
	/* O first: printed the RFC 4514 way, it reads "CN=..., O=socks5d". */
	if ((bn = BN_bin2bn(r, sizeof(r), NULL)) == NULL ||
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL ||
	    X509_set_version(x, X509_VERSION_3) != 1 ||
	    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
	    (const unsigned char *)"socks5d", -1, -1, 0) != 1 ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0) != 1 ||
	    X509_set_issuer_name(x, name) != 1 ||
	    ASN1_TIME_adj(X509_getm_notBefore(x), now, 0,
	    -MINT_CA_BACKDATE) == NULL ||
	    ASN1_TIME_adj(X509_getm_notAfter(x), now, MINT_CA_DAYS,
	    -MINT_CA_BACKDATE) == NULL ||
	    X509_set_pubkey(x, key) != 1 ||
	    mint_ca_ext(x, NID_basic_constraints,
	    "critical,CA:TRUE,pathlen:0") == -1 ||
	    mint_ca_ext(x, NID_key_usage, "critical,keyCertSign,cRLSign") ==
	    -1 ||
	    mint_ca_ext(x, NID_subject_key_identifier, "hash") == -1 ||
	    X509_sign(x, key, EVP_sha256()) <= 0)
		goto bad;
	BN_free(bn);
	return x;
bad:
	BN_free(bn);
	X509_free(x);
	return NULL;
}

/* O_EXCL: an existing file (or a symlink, even a dangling one) is never
 * written through. */
static int
mint_ca_create(const char *path)
{
	int fd;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
	    O_NOCTTY, 0600)) == -1) {
		if (errno == EEXIST)
			mint_ca_fail("%s: already exists; not overwritten",
			    path);
		else
			mint_ca_fail("%s: cannot create: %s", path,
			    strerror(errno));
	}
	return fd;
}

/*
 * The PEM text into fd, which this closes; the mode is set exactly, the
 * umask notwithstanding (the certificate is for everyone to read). The
 * key goes through our own stdio buffer, wiped afterwards.
 */
static int
mint_ca_write(int fd, const char *path, mode_t mode, EVP_PKEY *key,
    X509 *x)
{
	char buf[BUFSIZ];
	bool ok;
	FILE *fp;

	if (fchmod(fd, mode) == -1 || (fp = fdopen(fd, "w")) == NULL) {
		mint_ca_fail("%s: cannot write: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	setvbuf(fp, buf, _IOFBF, sizeof(buf));
	errno = 0;
	ok = (key != NULL ? PEM_write_PrivateKey(fp, key, NULL, NULL, 0,
	    NULL, NULL) : PEM_write_X509(fp, x)) == 1;
	ok = ok && fflush(fp) == 0 && fsync(fileno(fp)) == 0;
	if (fclose(fp) != 0)
		ok = false;
	OPENSSL_cleanse(buf, sizeof(buf));
	if (!ok) {
		mint_ca_fail("%s: cannot write: %s", path, errno != 0 ?
		    strerror(errno) : mint_ca_reason());
		return -1;
	}
	return 0;
}

/* A path for a shell line: as it is when nothing in it needs quoting. */
static void
mint_ca_print_path(const char *path)
{
	if (path[0] != '\0' && strspn(path, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789/._-+,:@%=") ==
	    strlen(path)) {
		fputs(path, stdout);
		return;
	}
	putchar('\'');
	for (const char *p = path; *p != '\0'; p++)
		if (*p == '\'')
			fputs("'\\''", stdout);
		else
			putchar(*p);
	putchar('\'');
}

static void
mint_ca_print_help(const char *cert, const char *key)
{
	char certabs[PATH_MAX], keyabs[PATH_MAX];

	/* The daemon and the trust stores need no working directory. */
	if (realpath(cert, certabs) != NULL)
		cert = certabs;
	if (realpath(key, keyabs) != NULL)
		key = keyabs;
	printf("Made a CA for TLS interception:\n"
	    "  certificate %s (share it with the clients)\n"
	    "  key         %s (mode 0600; keep it secret)\n\n"
	    "Make clients trust the certificate:\n"
	    "  Debian and Ubuntu, system-wide (as root):\n    cp ", cert, key);
	mint_ca_print_path(cert);
	printf(" /usr/local/share/ca-certificates/socks5d-ca.crt && "
	    "update-ca-certificates\n"
	    "  curl:\n    curl --cacert ");
	mint_ca_print_path(cert);
	printf(" ...\n"
	    "  Chromium and Firefox (NSS; package libnss3-tools), per user:\n"
	    "    certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n socks5d-ca -i ");
	mint_ca_print_path(cert);
	printf("\n"
	    "    (Firefox keeps its own database in its profile: the same "
	    "with\n"
	    "    -d sql:$HOME/.mozilla/firefox/PROFILE)\n\n"
	    "Then in socks5d.conf:\n"
	    "  [inspect]\n"
	    "  ca_certificate = %s\n"
	    "  ca_key = %s\n"
	    "A daemon that runs as its own user reads the key through its "
	    "group:\n"
	    "  chgrp socks5d ", cert, key);
	mint_ca_print_path(key);
	printf(" && chmod 0640 ");
	mint_ca_print_path(key);
	printf("\n\n"
	    "Interception reads other people's traffic: use it only with "
	    "their consent.\n");
}

int
mint_ca_main(int argc, char **argv)
{
	const char *cert, *key;
	EVP_PKEY *pkey = NULL;
	X509 *x = NULL;
	int kfd, cfd, status = MINT_CA_EXIT_FAIL;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 ||
		    strcmp(argv[i], "--help") == 0) {
			mint_ca_usage(stdout);
			return 0;
		}
	}
	if (argc != 4 || strcmp(argv[1], "create") != 0) {
		mint_ca_usage(stderr);
		return MINT_CA_EXIT_USAGE;
	}
	cert = argv[2];
	key = argv[3];
	if (strcmp(cert, key) == 0) {
		mint_ca_fail("the certificate and the key go in two files");
		return MINT_CA_EXIT_USAGE;
	}
	ERR_clear_error();
	if ((pkey = EVP_EC_gen("P-256")) == NULL ||
	    (x = mint_ca_cert(pkey)) == NULL) {
		mint_ca_fail("cannot make the CA: %s", mint_ca_reason());
		goto done;
	}
	/* Both files exist, empty, before either is written; whatever
	 * fails after that takes both away again. */
	if ((kfd = mint_ca_create(key)) == -1)
		goto done;
	if ((cfd = mint_ca_create(cert)) == -1) {
		close(kfd);
		unlink(key);
		goto done;
	}
	if (mint_ca_write(kfd, key, 0600, pkey, NULL) == -1) {
		close(cfd);
		unlink(key);
		unlink(cert);
		goto done;
	}
	if (mint_ca_write(cfd, cert, 0644, NULL, x) == -1) {
		unlink(key);
		unlink(cert);
		goto done;
	}
	mint_ca_print_help(cert, key);
	status = fflush(stdout) == 0 ? 0 : MINT_CA_EXIT_FAIL;
done:
	X509_free(x);
	EVP_PKEY_free(pkey);
	return status;
}
