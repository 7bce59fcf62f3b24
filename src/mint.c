/*
 * The interception CA: the operator's certificate and key, checked once;
 * one P-256 key that every leaf shares; and leaves minted per (name,
 * upstream certificate) on the event loop, kept in a bounded LRU cache.
 */
/* For mint_leaf_key_new alone; see there. */
#define OPENSSL_SUPPRESS_DEPRECATED

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sodium.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "socks5d/mint.h"
#include "socks5d/pem.h"

#define MINT_BACKDATE		3600		/* for clocks that lag */
#define MINT_LIFETIME		(397L * 86400)	/* CA/B Forum's longest */
#define MINT_RENEW		3600		/* renewed this near the end */
#define MINT_CN_MAX		64		/* ub-common-name */
#define MINT_SERIAL_LEN		16
#define MINT_MIN_BUCKETS	16
#define MINT_PROBE_NAME		"socks5d.invalid"

/* The extensions every leaf carries the same, made once. */
enum mint_ext {
	MINT_EXT_BC,
	MINT_EXT_KU,
	MINT_EXT_EKU,
	MINT_EXT_SKID,
	MINT_EXT_AKID,
	MINT_EXT_COUNT
};

struct mint_entry {
	struct mint_entry	*me_chain;	/* next in its bucket */
	struct mint_entry	*me_prev;	/* LRU list, newest first */
	struct mint_entry	*me_next;
	X509			*me_cert;
	time_t			 me_renew;	/* re-minted from then on */
	uint64_t		 me_hash;
	unsigned char		 me_fp[MINT_FP_LEN];
	size_t			 me_namelen;
	char			 me_name[];	/* lower case, NUL-ended */
};

struct mint {
	X509			*m_ca;
	EVP_PKEY		*m_ca_key;
	EVP_PKEY		*m_leaf_key;
	time_t			 m_ca_not_before;
	time_t			 m_ca_not_after;
	X509_EXTENSION		*m_ext[MINT_EXT_COUNT];
	struct mint_entry	**m_buckets;
	size_t			 m_nbuckets;	/* a power of two */
	struct mint_entry	*m_head;	/* most recently used */
	struct mint_entry	*m_tail;	/* evicted first */
	size_t			 m_cached;
	size_t			 m_max;
	uint64_t		 m_minted;
	uint64_t		 m_hits;
	/* Names come from clients: a keyed hash, so no client can pick
	 * names that all land in one bucket. */
	unsigned char		 m_hashkey[crypto_shorthash_KEYBYTES];
};

static int
mint_time_t(const ASN1_TIME *t, time_t *out)
{
	struct tm tm;

	if (ASN1_TIME_to_tm(t, &tm) != 1)
		return -1;
	*out = timegm(&tm);
	return 0;
}

static X509 *
mint_load_ca(const char *path, char *why, size_t whylen)
{
	X509 *ca;
	FILE *fp;

	if ((fp = pem_open("ca_certificate", path, why, whylen)) == NULL)
		return NULL;
	ca = PEM_read_X509(fp, NULL, pem_no_passphrase, NULL);
	fclose(fp);
	if (ca == NULL)
		pem_fail(why, whylen, "ca_certificate %s: cannot load: %s",
		    path, pem_reason());
	return ca;
}

/*
 * What clients will ask of the issuer of a server certificate: a CA
 * (RFC 5280 4.2.1.9), allowed to sign certificates, and, if it limits its
 * purposes, to server authentication (OpenSSL's sslserver purpose).
 */
static int
mint_check_ca(struct mint *m, const char *path, char *why, size_t whylen)
{
	uint32_t flags = X509_get_extension_flags(m->m_ca);
	const ASN1_TIME *before = X509_get0_notBefore(m->m_ca);
	const ASN1_TIME *after = X509_get0_notAfter(m->m_ca);

	if (flags & EXFLAG_INVALID)
		return pem_fail(why, whylen, "ca_certificate %s: its "
		    "extensions are malformed", path);
	if (!(flags & EXFLAG_CA))
		return pem_fail(why, whylen, "ca_certificate %s: not a CA "
		    "certificate (no basicConstraints CA:TRUE)", path);
	if ((flags & EXFLAG_KUSAGE) &&
	    !(X509_get_key_usage(m->m_ca) & KU_KEY_CERT_SIGN))
		return pem_fail(why, whylen, "ca_certificate %s: its keyUsage "
		    "lacks keyCertSign, so it may not sign certificates", path);
	if ((flags & EXFLAG_XKUSAGE) &&
	    !(X509_get_extended_key_usage(m->m_ca) &
	    (XKU_SSL_SERVER | XKU_SGC)))
		return pem_fail(why, whylen, "ca_certificate %s: its "
		    "extendedKeyUsage lacks serverAuth, so clients would "
		    "refuse the certificates it signs", path);
	if (pem_check_validity(m->m_ca, "ca_certificate", path, why,
	    whylen) == -1)
		return -1;
	if (mint_time_t(before, &m->m_ca_not_before) == -1 ||
	    mint_time_t(after, &m->m_ca_not_after) == -1)
		return pem_fail(why, whylen, "ca_certificate %s: its validity "
		    "is unreadable", path);
	return 0;
}

static int
mint_load_key(struct mint *m, const char *path, const char *cert,
    char *why, size_t whylen)
{
	EVP_PKEY *key;
	int bits;

	if ((key = pem_read_key("ca_key", path, why, whylen)) == NULL)
		return -1;
	m->m_ca_key = key;
	/* Leaves are signed with SHA-256, which Ed25519 and the like do
	 * not take. */
	if (!EVP_PKEY_is_a(key, "RSA") && !EVP_PKEY_is_a(key, "EC"))
		return pem_fail(why, whylen, "ca_key %s: a %s key; the CA's "
		    "key must be RSA or EC", path,
		    EVP_PKEY_get0_type_name(key) != NULL ?
		    EVP_PKEY_get0_type_name(key) : "unknown");
	/* Clients at OpenSSL's default security level refuse a chain
	 * signed by less. */
	if ((bits = EVP_PKEY_get_security_bits(key)) < 112)
		return pem_fail(why, whylen, "ca_key %s: too weak (%d-bit "
		    "%s, %d security bits; at least RSA 2048 or EC P-256)",
		    path, EVP_PKEY_get_bits(key), EVP_PKEY_is_a(key, "RSA") ?
		    "RSA" : "EC", bits);
	if (X509_check_private_key(m->m_ca, key) != 1)
		return pem_fail(why, whylen, "ca_key %s: does not match the "
		    "certificate %s: %s", path, cert, pem_reason());
	return 0;
}

/* RFC 5280 4.2.1.2 (1): the SHA-1 of the subjectPublicKey bits, as
 * OpenSSL's "hash" makes it. */
static ASN1_OCTET_STRING *
mint_key_id(EVP_PKEY *key)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	ASN1_OCTET_STRING *id = NULL;
	X509_PUBKEY *xpk = NULL;
	const unsigned char *pk;
	unsigned int mdlen;
	int pklen;

	if (X509_PUBKEY_set(&xpk, key) != 1 ||
	    X509_PUBKEY_get0_param(NULL, &pk, &pklen, NULL, xpk) != 1 ||
	    EVP_Digest(pk, (size_t)pklen, md, &mdlen, EVP_sha1(),
	    NULL) != 1 ||
	    (id = ASN1_OCTET_STRING_new()) == NULL ||
	    ASN1_OCTET_STRING_set(id, md, (int)mdlen) != 1) {
		ASN1_OCTET_STRING_free(id);
		id = NULL;
	}
	X509_PUBKEY_free(xpk);
	return id;
}

/*
 * The leaf's fixed extensions: basicConstraints CA:FALSE and keyUsage
 * digitalSignature (critical), extendedKeyUsage serverAuth, its key's id
 * (the one leaf key), and the CA's key id as the authority's.
 */
static int
mint_make_exts(struct mint *m)
{
	const ASN1_OCTET_STRING *ca_id = X509_get0_subject_key_id(m->m_ca);
	BASIC_CONSTRAINTS *bc = BASIC_CONSTRAINTS_new();
	ASN1_BIT_STRING *ku = ASN1_BIT_STRING_new();
	EXTENDED_KEY_USAGE *eku = sk_ASN1_OBJECT_new_null();
	AUTHORITY_KEYID *akid = AUTHORITY_KEYID_new();
	ASN1_OCTET_STRING *skid = mint_key_id(m->m_leaf_key);
	int rc = -1;

	if (bc == NULL || ku == NULL || eku == NULL || akid == NULL ||
	    skid == NULL)
		goto done;
	bc->ca = 0;
	/* A CA without a subjectKeyIdentifier: its id as it would be. */
	if ((akid->keyid = ca_id != NULL ? ASN1_OCTET_STRING_dup(ca_id) :
	    mint_key_id(X509_get0_pubkey(m->m_ca))) == NULL ||
	    ASN1_BIT_STRING_set_bit(ku, 0, 1) != 1 ||	/* digitalSignature */
	    sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(NID_server_auth)) == 0)
		goto done;
	if ((m->m_ext[MINT_EXT_BC] = X509V3_EXT_i2d(NID_basic_constraints, 1,
	    bc)) == NULL ||
	    (m->m_ext[MINT_EXT_KU] = X509V3_EXT_i2d(NID_key_usage, 1,
	    ku)) == NULL ||
	    (m->m_ext[MINT_EXT_EKU] = X509V3_EXT_i2d(NID_ext_key_usage, 0,
	    eku)) == NULL ||
	    (m->m_ext[MINT_EXT_SKID] = X509V3_EXT_i2d(
	    NID_subject_key_identifier, 0, skid)) == NULL ||
	    (m->m_ext[MINT_EXT_AKID] = X509V3_EXT_i2d(
	    NID_authority_key_identifier, 0, akid)) == NULL)
		goto done;
	rc = 0;
done:
	BASIC_CONSTRAINTS_free(bc);
	ASN1_BIT_STRING_free(ku);
	sk_ASN1_OBJECT_free(eku);	/* OBJ_nid2obj's are static */
	AUTHORITY_KEYID_free(akid);
	ASN1_OCTET_STRING_free(skid);
	return rc;
}

/*
 * The one leaf key: P-256, made once, since minting must never wait for a
 * key. OpenSSL 3.0 puts a key held by a provider into a certificate by
 * encoding it and decoding the result (X509_PUBKEY_set), building a
 * decoder context each time: three quarters of a leaf's cost. A key held
 * the legacy way (an EC_KEY) is encoded directly, so the leaf key is kept
 * that way where the library still has it. TLS uses either alike.
 */
static EVP_PKEY *
mint_leaf_key_new(void)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
#ifndef OPENSSL_NO_DEPRECATED_3_0
	EVP_PKEY *legacy;
	EC_KEY *ec;

	if (key == NULL || (ec = EVP_PKEY_get1_EC_KEY(key)) == NULL)
		return key;
	if ((legacy = EVP_PKEY_new()) == NULL ||
	    EVP_PKEY_assign_EC_KEY(legacy, ec) != 1) {
		EC_KEY_free(ec);
		EVP_PKEY_free(legacy);
		ERR_clear_error();
		return key;
	}
	EVP_PKEY_free(key);
	key = legacy;
#endif
	return key;
}

/* 128 random bits, positive (RFC 5280 4.1.2.2: at most 20 octets). */
static int
mint_serial(X509 *x)
{
	unsigned char r[MINT_SERIAL_LEN];
	BIGNUM *bn;
	int rc = -1;

	if (RAND_bytes(r, sizeof(r)) != 1)
		return -1;
	r[0] &= 0x7f;
	r[sizeof(r) - 1] |= 1;		/* never zero */
	if ((bn = BN_bin2bn(r, sizeof(r), NULL)) != NULL &&
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL)
		rc = 0;
	BN_free(bn);
	return rc;
}

/* SAN DNS:name or IP:addr. Critical when it is all the subject says
 * (RFC 5280 4.2.1.6). */
static int
mint_add_san(X509 *x, const char *name, size_t len, bool critical)
{
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	GENERAL_NAME *gen = GENERAL_NAME_new();
	ASN1_OCTET_STRING *ip = NULL;
	ASN1_IA5STRING *dns = NULL;
	unsigned char addr[16];
	int rc = -1;

	if (gens == NULL || gen == NULL)
		goto done;
	if (inet_pton(AF_INET, name, addr) == 1 ||
	    inet_pton(AF_INET6, name, addr) == 1) {
		int alen = strchr(name, ':') != NULL ? 16 : 4;

		if ((ip = ASN1_OCTET_STRING_new()) == NULL ||
		    ASN1_OCTET_STRING_set(ip, addr, alen) != 1)
			goto done;
		GENERAL_NAME_set0_value(gen, GEN_IPADD, ip);
		ip = NULL;
	} else {
		if ((dns = ASN1_IA5STRING_new()) == NULL ||
		    ASN1_STRING_set(dns, name, (int)len) != 1)
			goto done;
		GENERAL_NAME_set0_value(gen, GEN_DNS, dns);
		dns = NULL;
	}
	if (sk_GENERAL_NAME_push(gens, gen) == 0)
		goto done;
	gen = NULL;
	if (X509_add1_ext_i2d(x, NID_subject_alt_name, gens, critical ? 1 : 0,
	    X509V3_ADD_DEFAULT) == 1)
		rc = 0;
done:
	ASN1_OCTET_STRING_free(ip);
	ASN1_IA5STRING_free(dns);
	GENERAL_NAME_free(gen);
	GENERAL_NAMES_free(gens);
	return rc;
}

/*
 * A leaf for name (checked, lower case) from an hour ago for 397 days,
 * both ends inside the CA's own validity: a client would refuse a leaf
 * that outlives its issuer. *not_after gets its end.
 */
static X509 *
mint_make(struct mint *m, const char *name, size_t len, time_t now,
    time_t *not_after)
{
	time_t nb = now - MINT_BACKDATE;
	time_t na = now + MINT_LIFETIME - MINT_BACKDATE;
	X509_NAME *subject;
	X509 *x;

	if (nb < m->m_ca_not_before)
		nb = m->m_ca_not_before;
	if (na > m->m_ca_not_after)
		na = m->m_ca_not_after;
	if (na <= now || na <= nb)
		return NULL;		/* the CA has expired */
	if ((x = X509_new()) == NULL)
		return NULL;
	subject = X509_get_subject_name(x);
	if (X509_set_version(x, X509_VERSION_3) != 1 ||
	    mint_serial(x) == -1 ||
	    X509_set_issuer_name(x, X509_get_subject_name(m->m_ca)) != 1 ||
	    (len <= MINT_CN_MAX && X509_NAME_add_entry_by_NID(subject,
	    NID_commonName, MBSTRING_ASC, (const unsigned char *)name,
	    (int)len, -1, 0) != 1) ||
	    ASN1_TIME_set(X509_getm_notBefore(x), nb) == NULL ||
	    ASN1_TIME_set(X509_getm_notAfter(x), na) == NULL ||
	    X509_set_pubkey(x, m->m_leaf_key) != 1)
		goto bad;
	for (size_t i = 0; i < MINT_EXT_COUNT; i++)
		if (X509_add_ext(x, m->m_ext[i], -1) != 1)
			goto bad;
	if (mint_add_san(x, name, len, len > MINT_CN_MAX) == -1 ||
	    X509_sign(x, m->m_ca_key, EVP_sha256()) <= 0)
		goto bad;
	*not_after = na;
	return x;
bad:
	X509_free(x);
	return NULL;
}

/*
 * name in lower case into out (MINT_NAME_MAX + 1 bytes), without the dot
 * that may end a fully qualified name; its length, or 0 when no
 * certificate should name it. Colons are for IPv6 literals only.
 */
static size_t
mint_fold_name(const char *name, char *out)
{
	unsigned char addr[16];
	size_t len;

	for (len = 0; name[len] != '\0'; len++) {
		unsigned char c = (unsigned char)name[len];

		if (len == MINT_NAME_MAX)
			return 0;
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		else if (!(c >= 'a' && c <= 'z') && !(c >= '0' && c <= '9') &&
		    c != '-' && c != '_' && c != '.' && c != ':')
			return 0;
		out[len] = (char)c;
	}
	if (len > 1 && out[len - 1] == '.')
		len--;
	if (len == 0)
		return 0;
	out[len] = '\0';
	if (out[0] == '.' || out[len - 1] == '.' || strstr(out, "..") != NULL)
		return 0;		/* an empty label */
	if (memchr(out, ':', len) != NULL &&
	    inet_pton(AF_INET6, out, addr) != 1)
		return 0;
	return len;
}

static uint64_t
mint_hash(const struct mint *m, const char *name, size_t len,
    const unsigned char *fp)
{
	unsigned char in[MINT_FP_LEN + MINT_NAME_MAX];
	unsigned char out[crypto_shorthash_BYTES];
	uint64_t h;

	memcpy(in, fp, MINT_FP_LEN);
	memcpy(in + MINT_FP_LEN, name, len);
	crypto_shorthash(out, in, MINT_FP_LEN + len, m->m_hashkey);
	memcpy(&h, out, sizeof(h));
	return h;
}

static struct mint_entry **
mint_bucket(const struct mint *m, uint64_t hash)
{
	return &m->m_buckets[hash & (m->m_nbuckets - 1)];
}

static struct mint_entry *
mint_lookup(const struct mint *m, uint64_t hash, const char *name,
    size_t len, const unsigned char *fp)
{
	struct mint_entry *e;

	for (e = *mint_bucket(m, hash); e != NULL; e = e->me_chain)
		if (e->me_hash == hash && e->me_namelen == len &&
		    memcmp(e->me_name, name, len) == 0 &&
		    memcmp(e->me_fp, fp, MINT_FP_LEN) == 0)
			return e;
	return NULL;
}

static void
mint_lru_unlink(struct mint *m, struct mint_entry *e)
{
	if (e->me_prev != NULL)
		e->me_prev->me_next = e->me_next;
	else
		m->m_head = e->me_next;
	if (e->me_next != NULL)
		e->me_next->me_prev = e->me_prev;
	else
		m->m_tail = e->me_prev;
	e->me_prev = e->me_next = NULL;
}

static void
mint_lru_push(struct mint *m, struct mint_entry *e)
{
	e->me_prev = NULL;
	e->me_next = m->m_head;
	if (m->m_head != NULL)
		m->m_head->me_prev = e;
	else
		m->m_tail = e;
	m->m_head = e;
}

static void
mint_drop(struct mint *m, struct mint_entry *e)
{
	struct mint_entry **pp = mint_bucket(m, e->me_hash);

	while (*pp != e)
		pp = &(*pp)->me_chain;
	*pp = e->me_chain;
	mint_lru_unlink(m, e);
	m->m_cached--;
	X509_free(e->me_cert);
	free(e);
}

/* Best effort: a leaf that finds no room in memory is still served. */
static void
mint_cache_put(struct mint *m, uint64_t hash, const char *name, size_t len,
    const unsigned char *fp, X509 *x, time_t not_after)
{
	struct mint_entry *e, **bucket;

	if (m->m_max == 0)
		return;
	if (m->m_cached >= m->m_max)
		mint_drop(m, m->m_tail);
	if ((e = malloc(sizeof(*e) + len + 1)) == NULL)
		return;
	X509_up_ref(x);
	e->me_cert = x;
	e->me_renew = not_after - MINT_RENEW;
	e->me_hash = hash;
	memcpy(e->me_fp, fp, MINT_FP_LEN);
	e->me_namelen = len;
	memcpy(e->me_name, name, len + 1);
	bucket = mint_bucket(m, hash);
	e->me_chain = *bucket;
	*bucket = e;
	mint_lru_push(m, e);
	m->m_cached++;
}

X509 *
mint_leaf(struct mint *m, const char *name,
    const unsigned char upstream_fp[MINT_FP_LEN])
{
	static const unsigned char no_fp[MINT_FP_LEN];
	const unsigned char *fp = upstream_fp != NULL ? upstream_fp : no_fp;
	char folded[MINT_NAME_MAX + 1];
	struct mint_entry *e = NULL;
	time_t now = time(NULL), not_after;
	uint64_t hash = 0;
	size_t len;
	X509 *x;

	if ((len = mint_fold_name(name, folded)) == 0)
		return NULL;
	if (m->m_max > 0) {
		hash = mint_hash(m, folded, len, fp);
		e = mint_lookup(m, hash, folded, len, fp);
	}
	if (e != NULL && now < e->me_renew) {
		mint_lru_unlink(m, e);
		mint_lru_push(m, e);
		m->m_hits++;
		X509_up_ref(e->me_cert);
		return e->me_cert;
	}
	if (e != NULL)
		mint_drop(m, e);
	if ((x = mint_make(m, folded, len, now, &not_after)) == NULL) {
		ERR_clear_error();
		return NULL;
	}
	m->m_minted++;
	mint_cache_put(m, hash, folded, len, fp, x, not_after);
	return x;
}

/* Everything that can fail at mint time, tried once now: a key kept
 * where it cannot sign (a provider, a token) shows here. */
static int
mint_probe(struct mint *m, const char *path, char *why, size_t whylen)
{
	time_t not_after;
	X509 *x;
	int ok;

	if ((x = mint_make(m, MINT_PROBE_NAME, strlen(MINT_PROBE_NAME),
	    time(NULL), &not_after)) == NULL)
		return pem_fail(why, whylen, "ca_key %s: cannot sign with it: "
		    "%s", path, pem_reason());
	ok = X509_verify(x, X509_get0_pubkey(m->m_ca)) == 1;
	X509_free(x);
	if (!ok)
		return pem_fail(why, whylen, "ca_key %s: its signatures do "
		    "not verify: %s", path, pem_reason());
	return 0;
}

struct mint *
mint_new(const char *ca_certificate, const char *ca_key,
    size_t cache_entries, char *why, size_t whylen)
{
	struct mint *m;
	size_t n = MINT_MIN_BUCKETS;

	/* Nothing left over from elsewhere may pass for our reason. */
	ERR_clear_error();
	if (ca_certificate == NULL || *ca_certificate == '\0' ||
	    ca_key == NULL || *ca_key == '\0') {
		pem_fail(why, whylen, "needs a ca_certificate and a ca_key");
		return NULL;
	}
	if (sodium_init() < 0) {
		pem_fail(why, whylen, "cannot initialise libsodium");
		return NULL;
	}
	if ((m = calloc(1, sizeof(*m))) == NULL) {
		pem_fail(why, whylen, "out of memory");
		return NULL;
	}
	if ((m->m_ca = mint_load_ca(ca_certificate, why, whylen)) == NULL ||
	    mint_check_ca(m, ca_certificate, why, whylen) == -1 ||
	    mint_load_key(m, ca_key, ca_certificate, why, whylen) == -1)
		goto bad;
	if ((m->m_leaf_key = mint_leaf_key_new()) == NULL) {
		pem_fail(why, whylen, "cannot make the leaf key: %s",
		    pem_reason());
		goto bad;
	}
	/* At most one entry per bucket on average. */
	while (n < cache_entries && n <= SIZE_MAX / 2)
		n *= 2;
	m->m_max = cache_entries;
	m->m_nbuckets = n;
	if (mint_make_exts(m) == -1 ||
	    (m->m_buckets = calloc(n, sizeof(*m->m_buckets))) == NULL) {
		pem_fail(why, whylen, "out of memory");
		goto bad;
	}
	randombytes_buf(m->m_hashkey, sizeof(m->m_hashkey));
	if (mint_probe(m, ca_key, why, whylen) == -1)
		goto bad;
	ERR_clear_error();
	return m;
bad:
	mint_free(m);
	ERR_clear_error();
	return NULL;
}

void
mint_free(struct mint *m)
{
	if (m == NULL)
		return;
	while (m->m_head != NULL)
		mint_drop(m, m->m_head);
	free(m->m_buckets);
	for (size_t i = 0; i < MINT_EXT_COUNT; i++)
		X509_EXTENSION_free(m->m_ext[i]);
	EVP_PKEY_free(m->m_leaf_key);
	EVP_PKEY_free(m->m_ca_key);
	X509_free(m->m_ca);
	sodium_memzero(m->m_hashkey, sizeof(m->m_hashkey));
	free(m);
}

X509 *
mint_ca(const struct mint *m)
{
	return m->m_ca;
}

EVP_PKEY *
mint_leaf_key(const struct mint *m)
{
	return m->m_leaf_key;
}

void
mint_stats(const struct mint *m, uint64_t *minted, uint64_t *hits,
    size_t *cached)
{
	if (minted != NULL)
		*minted = m->m_minted;
	if (hits != NULL)
		*hits = m->m_hits;
	if (cached != NULL)
		*cached = m->m_cached;
}
