/*
 * libFuzzer target: tls_cert_user (src/tls_ctx.c) on every certificate
 * the input parses as (DER), in each way a certificate can name a login.
 * A login is only ever 1 to 255 bytes of printable ASCII without spaces.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "socks5d/tls_ctx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_user(const char *user)
{
	size_t n;

	if (user == NULL)
		return;
	n = strlen(user);
	if (n < 1 || n > 255)
		abort();
	for (size_t i = 0; i < n; i++)
		if (user[i] < 0x21 || user[i] > 0x7e)
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum tls_client_user ways[] = {
		TLS_CLIENT_USER_NONE, TLS_CLIENT_USER_CN,
		TLS_CLIENT_USER_SAN_EMAIL, TLS_CLIENT_USER_SAN_DNS,
	};
	const unsigned char *p = data;
	X509 *cert;

	if (size > 65536)
		return 0;
	cert = d2i_X509(NULL, &p, (long)size);
	if (cert != NULL) {
		for (size_t i = 0; i < sizeof(ways) / sizeof(ways[0]); i++) {
			char *user = tls_cert_user(cert, ways[i]);

			check_user(user);
			if (ways[i] == TLS_CLIENT_USER_NONE && user != NULL)
				abort();
			free(user);
		}
		X509_free(cert);
	}
	/* Nothing tls_cert_user does may leave errors behind; d2i's own
	 * are dropped here. */
	ERR_clear_error();
	return 0;
}
