/*
 * Shared by the TLS unit tests: keys and certificates made at test time
 * with the OpenSSL API (no openssl command needed), and written out as
 * PEM files. Failures abort; include after cmocka.h.
 */
#ifndef SOCKS5D_TEST_TLS_CERTS_H
#define SOCKS5D_TEST_TLS_CERTS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

struct tc_spec {
	const char *cn;         /* NULL: no commonName */
	size_t cn_len;          /* 0: strlen(cn) */
	const char *cn2;        /* a second commonName, or NULL */
	const char *san;        /* "email:a@b, DNS:c" or NULL */
	long not_before;        /* seconds from now */
	long not_after;         /* 0: a day from now */
	bool ca;
	EVP_PKEY *key;          /* the subject's */
	X509 *issuer;           /* NULL: self-signed */
	EVP_PKEY *issuer_key;
};

static inline EVP_PKEY *
tc_key(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");

	assert_non_null(k);
	return k;
}

static inline void
tc_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, v3, nid, value);

	assert_non_null(ext);
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

static inline X509 *
tc_cert(const struct tc_spec *s)
{
	static long serial = 1;
	X509_NAME *name;
	X509V3_CTX v3;
	X509 *x = X509_new();

	assert_non_null(x);
	assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x),
	    s->not_before));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x),
	    s->not_after != 0 ? s->not_after : 86400));
	assert_int_equal(X509_set_pubkey(x, s->key), 1);
	name = X509_get_subject_name(x);
	assert_int_equal(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
	    (const unsigned char *)"socks5d test", -1, -1, 0), 1);
	/* As UTF8String bytes, past the usual checks, so tests can make
	 * names no CA would sign. */
	if (s->cn != NULL)
		assert_int_equal(X509_NAME_add_entry_by_NID(name,
		    NID_commonName, V_ASN1_UTF8STRING,
		    (const unsigned char *)s->cn,
		    s->cn_len != 0 ? (int)s->cn_len : -1, -1, 0), 1);
	if (s->cn2 != NULL)
		assert_int_equal(X509_NAME_add_entry_by_NID(name,
		    NID_commonName, V_ASN1_UTF8STRING,
		    (const unsigned char *)s->cn2, -1, -1, 0), 1);
	assert_int_equal(X509_set_issuer_name(x, s->issuer != NULL ?
	    X509_get_subject_name(s->issuer) : name), 1);
	X509V3_set_ctx(&v3, s->issuer != NULL ? s->issuer : x, x, NULL, NULL,
	    0);
	tc_ext(x, &v3, NID_basic_constraints, s->ca ? "critical,CA:TRUE" :
	    "critical,CA:FALSE");
	if (s->ca)
		tc_ext(x, &v3, NID_key_usage, "critical,keyCertSign,cRLSign");
	tc_ext(x, &v3, NID_subject_key_identifier, "hash");
	tc_ext(x, &v3, NID_authority_key_identifier, "keyid:always");
	if (s->san != NULL)
		tc_ext(x, &v3, NID_subject_alt_name, s->san);
	assert_true(X509_sign(x, s->issuer_key != NULL ? s->issuer_key :
	    s->key, EVP_sha256()) > 0);
	return x;
}

/* The certificates in order (leaf first), NULL-ended. */
static inline void
tc_write_certs(const char *path, X509 *first, ...)
{
	FILE *f = fopen(path, "w");
	va_list ap;

	assert_non_null(f);
	va_start(ap, first);
	for (X509 *x = first; x != NULL; x = va_arg(ap, X509 *))
		assert_int_equal(PEM_write_X509(f, x), 1);
	va_end(ap);
	assert_int_equal(fclose(f), 0);
}

static inline void
tc_write_key(const char *path, EVP_PKEY *k, mode_t mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL,
	    NULL), 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static inline void
tc_write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

#endif
