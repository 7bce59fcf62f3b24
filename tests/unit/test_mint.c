/*
 * Unit tests for the interception CA: the leaves mint_leaf makes (they
 * verify for the name, carry the right extensions, stay inside the CA's
 * validity), its LRU cache, the CAs mint_new refuses and its words, and
 * "socks5d ca create".
 */
#include <fcntl.h>
#include <ftw.h>
#include <sys/socket.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "socks5d/mint.h"

#include "tls_certs.h"

static char test_dir[] = "/tmp/socks5d-test-mint-XXXXXX";

/* Made once: a CA valid for five years, its key, another key. */
static EVP_PKEY *ca_key, *other_key;
static X509 *ca_cert;
static char ca_path[256], key_path[256];

static const unsigned char fp_a[MINT_FP_LEN] = { 0xaa };
static const unsigned char fp_b[MINT_FP_LEN] = { 0xbb };

static const char *
test_path(char *out, const char *name)
{
	snprintf(out, 256, "%s/%s", test_dir, name);
	return out;
}

static struct mint *
test_new(const char *cert, const char *key, size_t cache, char *why,
    size_t whylen)
{
	struct mint *m = mint_new(cert, key, cache, why, whylen);

	/* Whatever happened, nothing is left for later SSL calls. */
	assert_int_equal(ERR_peek_error(), 0);
	return m;
}

static struct mint *
test_accepted(const char *cert, const char *key, size_t cache)
{
	char why[512] = "";
	struct mint *m = test_new(cert, key, cache, why, sizeof(why));

	if (m == NULL)
		fail_msg("refused: %s", why);
	return m;
}

static void
test_refused(const char *cert, const char *key, const char *want)
{
	char why[1024] = "";
	struct mint *m = test_new(cert, key, 16, why, sizeof(why));

	if (m != NULL) {
		mint_free(m);
		fail_msg("accepted; expected \"%s\"", want);
	}
	if (strstr(why, want) == NULL)
		fail_msg("expected \"%s\" in \"%s\"", want, why);
}

/* A CA of spec written out; its path in out. */
static void
test_write_ca(char *out, const char *name, struct tc_spec *spec)
{
	X509 *x = tc_cert(spec);

	tc_write_certs(test_path(out, name), x, NULL);
	X509_free(x);
}

/* leaf chains to ca for a TLS server, as a client would check it. */
static int
test_verify(X509 *ca, X509 *leaf)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int rc;

	assert_non_null(store);
	assert_non_null(ctx);
	assert_int_equal(X509_STORE_add_cert(store, ca), 1);
	assert_int_equal(X509_STORE_CTX_init(ctx, store, leaf, NULL), 1);
	assert_int_equal(X509_STORE_CTX_set_purpose(ctx,
	    X509_PURPOSE_SSL_SERVER), 1);
	rc = X509_verify_cert(ctx);
	if (rc != 1)
		print_error("verify: %s\n", X509_verify_cert_error_string(
		    X509_STORE_CTX_get_error(ctx)));
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	ERR_clear_error();
	return rc;
}

/* The one subjectAltName of x; its criticality in *crit. */
static const GENERAL_NAME *
test_san(X509 *x, GENERAL_NAMES **gens, int *crit)
{
	*gens = X509_get_ext_d2i(x, NID_subject_alt_name, crit, NULL);
	assert_non_null(*gens);
	assert_int_equal(sk_GENERAL_NAME_num(*gens), 1);
	return sk_GENERAL_NAME_value(*gens, 0);
}

static bool
test_ext_critical(X509 *x, int nid)
{
	int i = X509_get_ext_by_NID(x, nid, -1);

	assert_true(i >= 0);
	return X509_EXTENSION_get_critical(X509_get_ext(x, i)) == 1;
}

static long
test_seconds(const ASN1_TIME *from, const ASN1_TIME *to)
{
	int days, secs;

	assert_int_equal(ASN1_TIME_diff(&days, &secs, from, to), 1);
	return (long)days * 86400 + secs;
}

static void
test_leaf_verifies(void **state)
{
	static const char *names[] = { "www.example.test", "127.0.0.1",
	    "::1", "2001:db8::7" };
	struct mint *m = test_accepted(ca_path, key_path, 16);

	(void)state;
	assert_int_equal(X509_cmp(mint_ca(m), ca_cert), 0);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		X509 *x = mint_leaf(m, names[i], fp_a);

		assert_non_null(x);
		assert_int_equal(test_verify(ca_cert, x), 1);
		if (i == 0) {
			assert_int_equal(X509_check_host(x, names[i], 0, 0,
			    NULL), 1);
			assert_int_equal(X509_check_host(x, "other.test", 0, 0,
			    NULL), 0);
		} else {
			assert_int_equal(X509_check_ip_asc(x, names[i], 0), 1);
			assert_int_equal(X509_check_ip_asc(x, "10.0.0.1", 0),
			    0);
		}
		/* Every leaf is for the one leaf key. */
		assert_int_equal(X509_check_private_key(x, mint_leaf_key(m)),
		    1);
		X509_free(x);
	}
	assert_int_equal(ERR_peek_error(), 0);
	mint_free(m);
}

static void
test_leaf_fields(void **state)
{
	struct mint *m = test_accepted(ca_path, key_path, 16);
	const ASN1_TIME *nb, *na;
	const GENERAL_NAME *gen;
	GENERAL_NAMES *gens;
	unsigned char cn[128];
	X509 *x, *y;
	int crit;

	(void)state;
	x = mint_leaf(m, "Mixed.Example.TEST", fp_a);
	assert_non_null(x);

	/* SAN DNS, in lower case; the same commonName. */
	gen = test_san(x, &gens, &crit);
	assert_int_equal(gen->type, GEN_DNS);
	assert_int_equal(crit, 0);
	assert_int_equal(ASN1_STRING_length(gen->d.dNSName), 18);
	assert_memory_equal(ASN1_STRING_get0_data(gen->d.dNSName),
	    "mixed.example.test", 18);
	GENERAL_NAMES_free(gens);
	assert_int_equal(X509_NAME_get_text_by_NID(X509_get_subject_name(x),
	    NID_commonName, (char *)cn, sizeof(cn)), 18);
	assert_string_equal((char *)cn, "mixed.example.test");

	/* A leaf, for servers only, signing only. */
	assert_int_equal(X509_check_ca(x), 0);
	assert_true(test_ext_critical(x, NID_basic_constraints));
	assert_true(test_ext_critical(x, NID_key_usage));
	assert_int_equal(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE);
	assert_int_equal(X509_get_extended_key_usage(x), XKU_SSL_SERVER);
	assert_non_null(X509_get0_subject_key_id(x));

	/* The CA's key id, and nothing else, names the authority. */
	assert_non_null(X509_get0_authority_key_id(x));
	assert_int_equal(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(x),
	    X509_get0_subject_key_id(ca_cert)), 0);
	assert_null(X509_get0_authority_issuer(x));
	assert_null(X509_get0_authority_serial(x));
	assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(x),
	    X509_get_subject_name(ca_cert)), 0);
	assert_int_equal(X509_get_signature_nid(x), NID_ecdsa_with_SHA256);
	assert_int_equal(X509_get_version(x), X509_VERSION_3);

	/* From an hour ago, for at most 397 days. */
	nb = X509_get0_notBefore(x);
	na = X509_get0_notAfter(x);
	assert_true(X509_cmp_time(nb, &(time_t){ time(NULL) - 3500 }) < 0);
	assert_true(X509_cmp_time(nb, &(time_t){ time(NULL) - 3700 }) > 0);
	assert_true(test_seconds(nb, na) <= 397L * 86400);
	assert_true(test_seconds(nb, na) >= 396L * 86400);

	/* Serials: positive, 128 bits at most, never the same. */
	y = mint_leaf(m, "another.example.test", fp_a);
	assert_non_null(y);
	{
		const ASN1_INTEGER *s1 = X509_get0_serialNumber(x);
		const ASN1_INTEGER *s2 = X509_get0_serialNumber(y);
		BIGNUM *bn = ASN1_INTEGER_to_BN(s1, NULL);

		assert_non_null(bn);
		assert_false(BN_is_negative(bn));
		assert_false(BN_is_zero(bn));
		assert_true(BN_num_bits(bn) <= 127);
		BN_free(bn);
		assert_int_not_equal(ASN1_INTEGER_cmp(s1, s2), 0);
	}
	X509_free(y);
	X509_free(x);

	/* Addresses: IP SANs of 4 and 16 bytes. */
	x = mint_leaf(m, "127.0.0.1", NULL);
	assert_non_null(x);
	gen = test_san(x, &gens, &crit);
	assert_int_equal(gen->type, GEN_IPADD);
	assert_int_equal(ASN1_STRING_length(gen->d.iPAddress), 4);
	assert_memory_equal(ASN1_STRING_get0_data(gen->d.iPAddress),
	    "\x7f\0\0\x01", 4);
	GENERAL_NAMES_free(gens);
	X509_free(x);
	x = mint_leaf(m, "::1", NULL);
	assert_non_null(x);
	gen = test_san(x, &gens, &crit);
	assert_int_equal(gen->type, GEN_IPADD);
	assert_int_equal(ASN1_STRING_length(gen->d.iPAddress), 16);
	assert_memory_equal(ASN1_STRING_get0_data(gen->d.iPAddress),
	    "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01", 16);
	GENERAL_NAMES_free(gens);
	X509_free(x);

	/* Too long for a commonName: none, and the SAN is critical. */
	{
		char name[100];

		memset(name, 'a', 70);
		strcpy(name + 70, ".example.test");
		x = mint_leaf(m, name, NULL);
		assert_non_null(x);
		assert_int_equal(X509_NAME_entry_count(
		    X509_get_subject_name(x)), 0);
		gen = test_san(x, &gens, &crit);
		assert_int_equal(crit, 1);
		GENERAL_NAMES_free(gens);
		assert_int_equal(X509_check_host(x, name, 0, 0, NULL), 1);
		assert_int_equal(test_verify(ca_cert, x), 1);
		X509_free(x);
	}
	mint_free(m);
}

/* No certificate for what is no name. */
static void
test_bad_names(void **state)
{
	static const char *bad[] = { "", "a b", "*.example.test",
	    "fe80::1%eth0", "[::1]", "host:443", "caf\xc3\xa9.test",
	    "a/b", ".", ".example.test", "www..example.test", "a.test.." };
	struct mint *m = test_accepted(ca_path, key_path, 16);
	char name[300];
	X509 *x;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if ((x = mint_leaf(m, bad[i], NULL)) != NULL) {
			X509_free(x);
			fail_msg("minted for \"%s\"", bad[i]);
		}
	memset(name, 'a', 253);
	name[253] = '\0';
	x = mint_leaf(m, name, NULL);
	assert_non_null(x);
	X509_free(x);
	name[253] = 'a';
	name[254] = '\0';
	assert_null(mint_leaf(m, name, NULL));
	assert_int_equal(ERR_peek_error(), 0);
	mint_free(m);
}

/* A CA that ends in 30 days (and began a minute ago) bounds its leaves. */
static void
test_clamped(void **state)
{
	struct tc_spec spec = { .cn = "short CA", .ca = true, .key = ca_key,
	    .not_before = -60, .not_after = 30L * 86400 };
	char path[256];
	struct mint *m;
	X509 *ca, *x;

	(void)state;
	ca = tc_cert(&spec);
	tc_write_certs(test_path(path, "short-ca.pem"), ca, NULL);
	m = test_accepted(path, key_path, 16);
	x = mint_leaf(m, "www.example.test", fp_a);
	assert_non_null(x);
	assert_int_equal(ASN1_TIME_compare(X509_get0_notBefore(x),
	    X509_get0_notBefore(ca)), 0);
	assert_int_equal(ASN1_TIME_compare(X509_get0_notAfter(x),
	    X509_get0_notAfter(ca)), 0);
	assert_true(test_seconds(X509_get0_notBefore(x),
	    X509_get0_notAfter(x)) <= 397L * 86400);
	assert_int_equal(test_verify(ca, x), 1);
	X509_free(x);
	mint_free(m);
	X509_free(ca);
}

static void
test_cache(void **state)
{
	static const unsigned char zero[MINT_FP_LEN];
	struct mint *m = test_accepted(ca_path, key_path, 16);
	uint64_t minted, hits;
	size_t cached;
	X509 *a, *b, *c, *d, *e, *f, *g;

	(void)state;
	a = mint_leaf(m, "www.example.test", fp_a);
	b = mint_leaf(m, "www.example.test", fp_a);
	c = mint_leaf(m, "WWW.Example.Test", fp_a);
	g = mint_leaf(m, "www.example.test.", fp_a);
	d = mint_leaf(m, "www.example.test", fp_b);
	e = mint_leaf(m, "www.example.test", NULL);
	f = mint_leaf(m, "www.example.test", zero);
	assert_non_null(a);
	assert_ptr_equal(a, b);
	assert_ptr_equal(a, c);
	assert_ptr_equal(a, g);
	assert_non_null(d);
	assert_ptr_not_equal(a, d);
	assert_int_not_equal(X509_cmp(a, d), 0);
	assert_non_null(e);
	assert_ptr_not_equal(e, a);
	assert_ptr_not_equal(e, d);
	assert_ptr_equal(e, f);
	mint_stats(m, &minted, &hits, &cached);
	assert_int_equal(minted, 3);
	assert_int_equal(hits, 4);
	assert_int_equal(cached, 3);
	X509_free(a);
	X509_free(b);
	X509_free(c);
	X509_free(g);
	/* The cache's reference outlives the caller's. */
	a = mint_leaf(m, "www.example.test", fp_a);
	assert_ptr_equal(a, b);
	assert_int_equal(test_verify(ca_cert, a), 1);
	X509_free(a);
	/* A reference taken survives the cache. */
	mint_free(m);
	assert_int_equal(test_verify(ca_cert, d), 1);
	X509_free(d);
	X509_free(e);
	X509_free(f);

	/* No cache: every call mints. */
	m = test_accepted(ca_path, key_path, 0);
	a = mint_leaf(m, "www.example.test", fp_a);
	b = mint_leaf(m, "www.example.test", fp_a);
	assert_non_null(a);
	assert_non_null(b);
	assert_ptr_not_equal(a, b);
	mint_stats(m, &minted, &hits, &cached);
	assert_int_equal(minted, 2);
	assert_int_equal(hits, 0);
	assert_int_equal(cached, 0);
	X509_free(a);
	X509_free(b);
	mint_free(m);
}

static void
test_eviction(void **state)
{
	struct mint *m = test_accepted(ca_path, key_path, 3);
	uint64_t minted, hits;
	size_t cached;
	char name[64];
	X509 *a, *x;

	(void)state;
	for (int i = 0; i < 50; i++) {
		snprintf(name, sizeof(name), "host-%d.example.test", i);
		x = mint_leaf(m, name, fp_a);
		assert_non_null(x);
		X509_free(x);
		mint_stats(m, NULL, NULL, &cached);
		assert_true(cached <= 3);
	}
	mint_free(m);

	/* Least recently used goes first: a, b, c, then a used, then d
	 * evicts b. */
	m = test_accepted(ca_path, key_path, 3);
	a = mint_leaf(m, "a.test", fp_a);
	X509_free(mint_leaf(m, "b.test", fp_a));
	X509_free(mint_leaf(m, "c.test", fp_a));
	X509_free(mint_leaf(m, "a.test", fp_a));
	X509_free(mint_leaf(m, "d.test", fp_a));
	mint_stats(m, &minted, &hits, &cached);
	assert_int_equal(minted, 4);
	assert_int_equal(hits, 1);
	assert_int_equal(cached, 3);
	x = mint_leaf(m, "a.test", fp_a);
	assert_ptr_equal(x, a);
	X509_free(x);
	X509_free(mint_leaf(m, "c.test", fp_a));
	X509_free(mint_leaf(m, "d.test", fp_a));
	mint_stats(m, &minted, &hits, &cached);
	assert_int_equal(minted, 4);
	assert_int_equal(hits, 4);
	X509_free(mint_leaf(m, "b.test", fp_a));
	mint_stats(m, &minted, &hits, &cached);
	assert_int_equal(minted, 5);
	assert_int_equal(cached, 3);
	X509_free(a);
	mint_free(m);
}

/* Leaves of a CA that ends within the hour are never served from the
 * cache: each would be that near its own end. */
static void
test_renewal(void **state)
{
	struct tc_spec spec = { .cn = "ending CA", .ca = true, .key = ca_key,
	    .not_before = -86400, .not_after = 1800 };
	char path[256];
	struct mint *m;
	uint64_t minted, hits;
	X509 *a, *b;

	(void)state;
	test_write_ca(path, "ending-ca.pem", &spec);
	m = test_accepted(path, key_path, 16);
	a = mint_leaf(m, "www.example.test", fp_a);
	b = mint_leaf(m, "www.example.test", fp_a);
	assert_non_null(a);
	assert_non_null(b);
	assert_ptr_not_equal(a, b);
	assert_int_not_equal(ASN1_INTEGER_cmp(X509_get0_serialNumber(a),
	    X509_get0_serialNumber(b)), 0);
	mint_stats(m, &minted, &hits, NULL);
	assert_int_equal(minted, 2);
	assert_int_equal(hits, 0);
	X509_free(a);
	X509_free(b);
	mint_free(m);
}

static void
test_refusals(void **state)
{
	struct tc_spec spec = { .cn = "CA", .ca = true, .key = ca_key };
	char path[256], key[256], want[1024];
	FILE *f;

	(void)state;
	/* The key open to others. */
	tc_write_key(test_path(key, "mode-key.pem"), ca_key, 0644);
	snprintf(want, sizeof(want), "ca_key %s: readable by others (mode "
	    "0644); chmod o-rwx %s", key, key);
	test_refused(ca_path, key, want);
	assert_int_equal(chmod(key, 0602), 0);
	test_refused(ca_path, key, "writable by others (mode 0602)");
	assert_int_equal(chmod(key, 0640), 0);
	mint_free(test_accepted(ca_path, key, 4));

	/* Not a CA. */
	spec.ca = false;
	test_write_ca(path, "not-ca.pem", &spec);
	snprintf(want, sizeof(want), "ca_certificate %s: not a CA certificate "
	    "(no basicConstraints CA:TRUE)", path);
	test_refused(path, key_path, want);
	spec.ca = true;

	/* The key of another certificate. */
	tc_write_key(test_path(key, "other-key.pem"), other_key, 0600);
	snprintf(want, sizeof(want), "ca_key %s: does not match the "
	    "certificate %s: key values mismatch", key, ca_path);
	test_refused(ca_path, key, want);

	/* Expired, and not valid yet. */
	spec.not_before = -2 * 86400;
	spec.not_after = -86400;
	test_write_ca(path, "expired-ca.pem", &spec);
	snprintf(want, sizeof(want), "ca_certificate %s: expired (notAfter ",
	    path);
	test_refused(path, key_path, want);
	spec.not_before = 86400;
	spec.not_after = 2 * 86400;
	test_write_ca(path, "future-ca.pem", &spec);
	snprintf(want, sizeof(want), "ca_certificate %s: not valid yet "
	    "(notBefore ", path);
	test_refused(path, key_path, want);

	/* A passphrase: refused, not asked for. */
	f = fopen(test_path(key, "enc-key.pem"), "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_PrivateKey(f, ca_key, EVP_aes_256_cbc(),
	    (unsigned char *)"pass", 4, NULL, NULL), 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(key, 0600), 0);
	snprintf(want, sizeof(want), "ca_key %s: encrypted with a passphrase",
	    key);
	test_refused(ca_path, key, want);

	/* Files that are not there or hold nothing. */
	test_path(path, "missing.pem");
	snprintf(want, sizeof(want), "ca_certificate %s: cannot open: No such "
	    "file or directory", path);
	test_refused(path, key_path, want);
	snprintf(want, sizeof(want), "ca_key %s: cannot open: No such "
	    "file or directory", path);
	test_refused(ca_path, path, want);
	tc_write_text(test_path(path, "garbage.pem"), "not a PEM file\n");
	assert_int_equal(chmod(path, 0600), 0);
	snprintf(want, sizeof(want), "ca_certificate %s: cannot load: no "
	    "start line", path);
	test_refused(path, key_path, want);
	snprintf(want, sizeof(want), "ca_key %s: cannot load: no PEM private "
	    "key in it", path);
	test_refused(ca_path, path, want);
	test_refused(NULL, key_path, "needs a ca_certificate and a ca_key");
	test_refused(ca_path, "", "needs a ca_certificate and a ca_key");
}

/* RSA CAs sign too (SHA-256); keys too weak for clients do not. */
static void
test_rsa(void **state)
{
	EVP_PKEY *rsa = EVP_RSA_gen(2048), *weak = EVP_RSA_gen(1024);
	struct tc_spec spec = { .cn = "RSA CA", .ca = true, .key = rsa };
	char cert[256], key[256], want[512];
	struct mint *m;
	X509 *ca, *x;

	(void)state;
	assert_non_null(rsa);
	assert_non_null(weak);
	ca = tc_cert(&spec);
	tc_write_certs(test_path(cert, "rsa-ca.pem"), ca, NULL);
	tc_write_key(test_path(key, "rsa-key.pem"), rsa, 0600);
	m = test_accepted(cert, key, 4);
	x = mint_leaf(m, "www.example.test", NULL);
	assert_non_null(x);
	assert_int_equal(X509_get_signature_nid(x),
	    NID_sha256WithRSAEncryption);
	assert_int_equal(test_verify(ca, x), 1);
	/* The leaf key is P-256 whatever the CA's. */
	assert_true(EVP_PKEY_is_a(X509_get0_pubkey(x), "EC"));
	X509_free(x);
	mint_free(m);
	X509_free(ca);

	spec.key = weak;
	ca = tc_cert(&spec);
	tc_write_certs(test_path(cert, "weak-ca.pem"), ca, NULL);
	tc_write_key(test_path(key, "weak-key.pem"), weak, 0600);
	snprintf(want, sizeof(want), "ca_key %s: too weak", key);
	test_refused(cert, key, want);
	X509_free(ca);
	EVP_PKEY_free(weak);
	EVP_PKEY_free(rsa);
}

/* One handshake step of a non-blocking end; *done once it is over. */
static void
test_step(SSL *ssl, bool *done, bool *ok)
{
	int rc = SSL_do_handshake(ssl), e;

	if (rc == 1) {
		*done = *ok = true;
		return;
	}
	e = SSL_get_error(ssl, rc);
	if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
		*done = true;
	ERR_clear_error();
}

/* A client that trusts only the CA and checks the name handshakes with a
 * server holding a leaf and the leaf key, as interception serves them. */
static void
test_handshake_version(struct mint *m, const char *name, int version)
{
	SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	bool sdone = false, cdone = false, sok = false, cok = false;
	X509 *leaf = mint_leaf(m, name, fp_a);
	SSL *server, *client;
	int fds[2];

	assert_non_null(sctx);
	assert_non_null(cctx);
	assert_non_null(leaf);
	assert_int_equal(SSL_CTX_set_min_proto_version(cctx, version), 1);
	assert_int_equal(SSL_CTX_set_max_proto_version(cctx, version), 1);
	assert_int_equal(X509_STORE_add_cert(SSL_CTX_get_cert_store(cctx),
	    mint_ca(m)), 1);
	SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(fcntl(fds[i], F_SETFL, O_NONBLOCK), 0);
	server = SSL_new(sctx);
	client = SSL_new(cctx);
	assert_non_null(server);
	assert_non_null(client);
	assert_int_equal(SSL_use_certificate(server, leaf), 1);
	assert_int_equal(SSL_use_PrivateKey(server, mint_leaf_key(m)), 1);
	assert_int_equal(SSL_check_private_key(server), 1);
	assert_int_equal(SSL_set_fd(server, fds[0]), 1);
	assert_int_equal(SSL_set_fd(client, fds[1]), 1);
	SSL_set_accept_state(server);
	SSL_set_connect_state(client);
	if (strchr(name, ':') == NULL && strspn(name, "0123456789.") !=
	    strlen(name)) {
		assert_int_equal(SSL_set_tlsext_host_name(client, name), 1);
		assert_int_equal(SSL_set1_host(client, name), 1);
	} else {
		assert_int_equal(X509_VERIFY_PARAM_set1_ip_asc(
		    SSL_get0_param(client), name), 1);
	}
	for (int i = 0; i < 100 && (!sdone || !cdone); i++) {
		if (!sdone)
			test_step(server, &sdone, &sok);
		if (!cdone)
			test_step(client, &cdone, &cok);
	}
	if (!cok)
		fail_msg("%s: %s", name, X509_verify_cert_error_string(
		    SSL_get_verify_result(client)));
	assert_true(sok);
	assert_int_equal(SSL_version(client), version);
	assert_int_equal(SSL_get_verify_result(client), X509_V_OK);
	SSL_free(server);
	SSL_free(client);
	close(fds[0]);
	close(fds[1]);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	X509_free(leaf);
}

static void
test_handshake(void **state)
{
	struct mint *m = test_accepted(ca_path, key_path, 16);

	(void)state;
	test_handshake_version(m, "www.example.test", TLS1_3_VERSION);
	test_handshake_version(m, "www.example.test", TLS1_2_VERSION);
	test_handshake_version(m, "127.0.0.1", TLS1_3_VERSION);
	test_handshake_version(m, "::1", TLS1_2_VERSION);
	mint_free(m);
}

/* stdout and stderr of mint_ca_main to /dev/null, and back. */
static int test_saved[2] = { -1, -1 };

static void
test_quiet(bool on)
{
	fflush(stdout);
	fflush(stderr);
	if (on) {
		int null = open("/dev/null", O_WRONLY);

		assert_true(null >= 0);
		test_saved[0] = dup(STDOUT_FILENO);
		test_saved[1] = dup(STDERR_FILENO);
		assert_true(test_saved[0] >= 0 && test_saved[1] >= 0);
		assert_int_equal(dup2(null, STDOUT_FILENO), STDOUT_FILENO);
		assert_int_equal(dup2(null, STDERR_FILENO), STDERR_FILENO);
		close(null);
	} else {
		assert_int_equal(dup2(test_saved[0], STDOUT_FILENO),
		    STDOUT_FILENO);
		assert_int_equal(dup2(test_saved[1], STDERR_FILENO),
		    STDERR_FILENO);
		close(test_saved[0]);
		close(test_saved[1]);
	}
}

static int
test_ca_main(int argc, ...)
{
	char *argv[8];
	va_list ap;
	int rc;

	assert_true(argc < 8);
	va_start(ap, argc);
	for (int i = 0; i < argc; i++)
		argv[i] = va_arg(ap, char *);
	va_end(ap);
	argv[argc] = NULL;
	test_quiet(true);
	rc = mint_ca_main(argc, argv);
	test_quiet(false);
	return rc;
}

static mode_t
test_mode(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_mode & 07777;
}

static void
test_ca_create(void **state)
{
	char cert[256], key[256], other[256];
	struct stat before, after;
	struct mint *m;
	mode_t mask;
	X509 *x;

	(void)state;
	test_path(cert, "made-ca.pem");
	test_path(key, "made-ca.key");
	/* A strict umask still leaves the certificate readable. */
	mask = umask(077);
	assert_int_equal(test_ca_main(4, "ca", "create", cert, key), 0);
	umask(mask);
	assert_int_equal(test_mode(key), 0600);
	assert_int_equal(test_mode(cert), 0644);

	m = test_accepted(cert, key, 8);
	{
		X509 *ca = mint_ca(m);
		X509_NAME *subject = X509_get_subject_name(ca);
		char cn[128], o[64];

		assert_true(X509_NAME_get_text_by_NID(subject, NID_commonName,
		    cn, sizeof(cn)) > 0);
		assert_true(strncmp(cn, "socks5d interception CA ", 24) == 0);
		assert_true(strlen(cn) <= 64);
		assert_true(X509_NAME_get_text_by_NID(subject,
		    NID_organizationName, o, sizeof(o)) > 0);
		assert_string_equal(o, "socks5d");
		assert_int_equal(X509_NAME_cmp(subject,
		    X509_get_issuer_name(ca)), 0);
		assert_int_equal(X509_check_ca(ca), 1);
		assert_int_equal(X509_get_pathlen(ca), 0);
		assert_true(test_ext_critical(ca, NID_basic_constraints));
		assert_true(test_ext_critical(ca, NID_key_usage));
		assert_int_equal(X509_get_key_usage(ca), KU_KEY_CERT_SIGN |
		    KU_CRL_SIGN);
		assert_non_null(X509_get0_subject_key_id(ca));
		assert_int_equal(X509_get_signature_nid(ca),
		    NID_ecdsa_with_SHA256);
		assert_true(test_seconds(X509_get0_notBefore(ca),
		    X509_get0_notAfter(ca)) >= 3650L * 86400);
		x = mint_leaf(m, "www.example.test", NULL);
		assert_non_null(x);
		assert_int_equal(test_verify(ca, x), 1);
		X509_free(x);
	}
	mint_free(m);

	/* Nothing is overwritten, whichever file is there. */
	assert_int_equal(stat(key, &before), 0);
	assert_int_equal(test_ca_main(4, "ca", "create", cert, key), 1);
	assert_int_equal(stat(key, &after), 0);
	assert_int_equal(before.st_ino, after.st_ino);
	assert_int_equal(before.st_size, after.st_size);
	/* The certificate there, the key not: no key is left behind. */
	test_path(other, "new.key");
	assert_int_equal(test_ca_main(4, "ca", "create", cert, other), 1);
	assert_int_equal(access(other, F_OK), -1);
	/* Nor a certificate when the key is there. */
	assert_int_equal(test_ca_main(4, "ca", "create", other, key), 1);
	assert_int_equal(access(other, F_OK), -1);
	/* A directory that does not exist. */
	test_path(other, "no/such/dir.key");
	assert_int_equal(test_ca_main(4, "ca", "create", cert, other), 1);

	/* Usage. */
	assert_int_equal(test_ca_main(1, "ca"), 2);
	assert_int_equal(test_ca_main(3, "ca", "create", cert), 2);
	assert_int_equal(test_ca_main(5, "ca", "create", cert, key, "x"), 2);
	assert_int_equal(test_ca_main(4, "ca", "make", cert, key), 2);
	assert_int_equal(test_ca_main(2, "ca", "-h"), 0);
	assert_int_equal(test_ca_main(4, "ca", "create", cert, cert), 2);
}

static int
test_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
test_setup(void **state)
{
	struct tc_spec spec = { .cn = "socks5d test CA", .ca = true,
	    .not_before = -86400, .not_after = 5L * 365 * 86400 };

	(void)state;
	if (mkdtemp(test_dir) == NULL)
		return -1;
	ca_key = tc_key();
	other_key = tc_key();
	spec.key = ca_key;
	ca_cert = tc_cert(&spec);
	tc_write_certs(test_path(ca_path, "ca.pem"), ca_cert, NULL);
	tc_write_key(test_path(key_path, "ca-key.pem"), ca_key, 0600);
	return 0;
}

static int
test_teardown(void **state)
{
	(void)state;
	X509_free(ca_cert);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(other_key);
	return nftw(test_dir, test_rm, 8, FTW_DEPTH | FTW_PHYS);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_leaf_verifies),
		cmocka_unit_test(test_leaf_fields),
		cmocka_unit_test(test_bad_names),
		cmocka_unit_test(test_clamped),
		cmocka_unit_test(test_cache),
		cmocka_unit_test(test_eviction),
		cmocka_unit_test(test_renewal),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_rsa),
		cmocka_unit_test(test_handshake),
		cmocka_unit_test(test_ca_create),
	};

	return cmocka_run_group_tests(tests, test_setup, test_teardown);
}
