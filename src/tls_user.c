/*
 * The login a verified client certificate names: its subject's one
 * commonName, or its first email or DNS subjectAltName, as printable
 * ASCII a users file or rule could hold.
 */
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "socks5d/tls_ctx.h"

/* A login longer than this fits no users file line or rule. */
#define TLS_USER_MAX 255

char *
tls_client_user_of(SSL *ssl, enum tls_client_user how)
{
	X509 *cert;

	if (how == TLS_CLIENT_USER_NONE ||
	    SSL_get_verify_result(ssl) != X509_V_OK ||
	    (cert = SSL_get0_peer_certificate(ssl)) == NULL)
		return NULL;
	return tls_cert_user(cert, how);
}

/* Printable ASCII without spaces, as users file names are: anything else
 * could only ever fail to match, or smuggle text into the logs. */
static char *
tls_user_copy(const unsigned char *s, int len)
{
	if (s == NULL || len < 1 || len > TLS_USER_MAX)
		return NULL;
	for (int i = 0; i < len; i++)
		if (s[i] < 0x21 || s[i] > 0x7e)
			return NULL;
	return strndup((const char *)s, (size_t)len);
}

/* The subject's one commonName; two are ambiguous, so none. */
static char *
tls_cert_cn(X509 *cert)
{
	const X509_NAME *name = X509_get_subject_name(cert);
	unsigned char *utf8 = NULL;
	char *user;
	int i, len;

	if (name == NULL ||
	    (i = X509_NAME_get_index_by_NID(name, NID_commonName, -1)) < 0 ||
	    X509_NAME_get_index_by_NID(name, NID_commonName, i) >= 0)
		return NULL;
	len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(
	    X509_NAME_get_entry(name, i)));
	if (len < 0) {
		ERR_clear_error();
		return NULL;
	}
	user = tls_user_copy(utf8, len);
	OPENSSL_free(utf8);
	return user;
}

/* The first subjectAltName of this type (GEN_EMAIL, GEN_DNS: both
 * IA5Strings), taken as it is or not at all. */
static char *
tls_cert_san(X509 *cert, int type)
{
	GENERAL_NAMES *names;
	char *user = NULL;

	/* NULL also when the extension is there twice. */
	names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	if (names == NULL) {
		ERR_clear_error();
		return NULL;
	}
	for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *gen = sk_GENERAL_NAME_value(names, i);

		if (gen->type != type)
			continue;
		user = tls_user_copy(ASN1_STRING_get0_data(gen->d.ia5),
		    ASN1_STRING_length(gen->d.ia5));
		break;
	}
	GENERAL_NAMES_free(names);
	return user;
}

char *
tls_cert_user(X509 *cert, enum tls_client_user how)
{
	switch (how) {
	case TLS_CLIENT_USER_CN:
		return tls_cert_cn(cert);
	case TLS_CLIENT_USER_SAN_EMAIL:
		return tls_cert_san(cert, GEN_EMAIL);
	case TLS_CLIENT_USER_SAN_DNS:
		return tls_cert_san(cert, GEN_DNS);
	case TLS_CLIENT_USER_NONE:
		break;
	}
	return NULL;
}
