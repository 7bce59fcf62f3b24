/*
 * What tls_ctx.c and mint.c both need of the PEM files an operator names:
 * opening them safely, reading a key, judging a certificate's validity
 * period, and OpenSSL's reason for a failure in a message.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "socks5d/file.h"
#include "socks5d/pem.h"

/* The queue is spent once put into words: left there, it would pass for
 * the reason of some later, unrelated failure. */
int
pem_fail(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	ERR_clear_error();
	return -1;
}

/*
 * The first error queued: the later ones mostly say where it was passed
 * on ("PEM lib"), the first what was wrong.
 */
const char *
pem_reason(void)
{
	unsigned long e = ERR_peek_error();
	const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

	return r != NULL ? r : "unknown error";
}

/*
 * OpenSSL 3's decoders say "unsupported" first for anything they could not
 * read as a key: a file with no key, or a key broken in a way a later
 * error names.
 */
static const char *
pem_key_reason(void)
{
	unsigned long e = ERR_peek_error();

	if (ERR_GET_LIB(e) == ERR_LIB_OSSL_DECODER &&
	    ERR_GET_REASON(e) == ERR_R_UNSUPPORTED) {
		(void)ERR_get_error();
		if (ERR_peek_error() == 0)
			return "no PEM private key in it";
	}
	return pem_reason();
}

/* A daemon has no terminal to ask a passphrase on: OpenSSL's default
 * callback would try /dev/tty. Record that one was wanted. */
int
pem_no_passphrase(char *buf, int size, int rwflag, void *arg)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	if (arg != NULL)
		*(bool *)arg = true;
	return -1;
}

/* Through file_open_regular, so a FIFO cannot stall a reload. */
FILE *
pem_open(const char *what, const char *path, char *why, size_t whylen)
{
	char reason[128];
	FILE *fp;

	if ((fp = file_open_regular(path, reason, sizeof(reason))) == NULL)
		pem_fail(why, whylen, "%s %s: %s", what, path, reason);
	return fp;
}

/* The key must not be open to others (file_open_secret); its group may
 * read it. Its permissions are judged on the very file then read. */
EVP_PKEY *
pem_read_key(const char *what, const char *path, char *why, size_t whylen)
{
	char reason[PATH_MAX + 128], buf[BUFSIZ];
	bool asked = false;
	EVP_PKEY *pkey;
	FILE *fp;

	if ((fp = file_open_secret(path, reason, sizeof(reason))) == NULL) {
		pem_fail(why, whylen, "%s %s: %s", what, path, reason);
		return NULL;
	}
	/* Our own stdio buffer, so the key's text is wiped, not left in
	 * freed memory. */
	setvbuf(fp, buf, _IOFBF, sizeof(buf));
	pkey = PEM_read_PrivateKey(fp, NULL, pem_no_passphrase, &asked);
	fclose(fp);
	OPENSSL_cleanse(buf, sizeof(buf));
	if (pkey == NULL && asked)
		pem_fail(why, whylen, "%s %s: encrypted with a passphrase, "
		    "which socks5d cannot ask for; store it unencrypted "
		    "(openssl pkey -in OLD -out NEW)", what, path);
	else if (pkey == NULL)
		pem_fail(why, whylen, "%s %s: cannot load: %s", what, path,
		    pem_key_reason());
	return pkey;
}

static void
pem_time_text(const ASN1_TIME *t, char *out, size_t outlen)
{
	struct tm tm;

	if (ASN1_TIME_to_tm(t, &tm) != 1 ||
	    strftime(out, outlen, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(out, outlen, "unreadable");
}

int
pem_check_validity(const X509 *x, const char *what, const char *path,
    char *why, size_t whylen)
{
	const ASN1_TIME *before = X509_get0_notBefore(x);
	const ASN1_TIME *after = X509_get0_notAfter(x);
	char text[64];

	if (X509_cmp_current_time(after) <= 0) {
		pem_time_text(after, text, sizeof(text));
		return pem_fail(why, whylen, "%s %s: expired (notAfter %s)",
		    what, path, text);
	}
	if (X509_cmp_current_time(before) >= 0) {
		pem_time_text(before, text, sizeof(text));
		return pem_fail(why, whylen, "%s %s: not valid yet "
		    "(notBefore %s)", what, path, text);
	}
	return 0;
}
