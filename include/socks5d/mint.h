/*
 * The certificate authority of TLS interception (mint.c): the operator's
 * CA, one leaf key, and leaf certificates minted per name on demand and
 * kept in a bounded LRU cache. Also "socks5d ca create" (mint_ca.c).
 */
#ifndef SOCKS5D_MINT_H
#define SOCKS5D_MINT_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#define MINT_FP_LEN		32	/* SHA-256 of the origin's cert */
#define MINT_NAME_MAX		253	/* a DNS name, without the final dot */

struct mint;

/*
 * The CA in these PEM files, or NULL with the reason in why. The reason
 * starts with the key and path at fault, as tls_ctx_new's do
 * ("ca_certificate PATH: expired (notAfter ...)", "ca_key PATH: readable
 * by others (mode 0644); chmod o-rwx PATH"). The certificate must be a CA
 * (basicConstraints CA:TRUE; keyCertSign when keyUsage is there) valid
 * now; the key an unencrypted RSA or EC key, closed to others (its group
 * may read it), that matches it and signs. cache_entries bounds the leaf
 * cache; 0 keeps none.
 */
struct mint *mint_new(const char *ca_certificate, const char *ca_key,
    size_t cache_entries, char *why, size_t whylen);
void mint_free(struct mint *m);

/* Borrowed: the CA's certificate, and the one P-256 key of every leaf. */
X509 *mint_ca(const struct mint *m);
EVP_PKEY *mint_leaf_key(const struct mint *m);

/*
 * A new reference (X509_free it) to a leaf for name, a DNS name (in any
 * case; a final dot is dropped) or an IP literal (v4, or v6 without
 * brackets), issued by the CA: the cached one for (name, upstream_fp)
 * unless it is within an hour of its end, else a fresh one. upstream_fp
 * may be NULL (32 zero bytes). Valid from an hour ago for 397 days, cut
 * to the CA's own validity. NULL when out of memory, when the CA's key
 * will not sign or has expired, or for a name that no certificate should
 * carry (empty, an empty label, longer than MINT_NAME_MAX, or with bytes
 * other than letters, digits, '-', '_' and '.'). Cheap enough for the
 * event loop: one signature with the CA's key.
 */
X509 *mint_leaf(struct mint *m, const char *name,
    const unsigned char upstream_fp[MINT_FP_LEN]);

/* For the metrics: leaves minted and cache hits since mint_new, leaves
 * cached now. Any pointer may be NULL. */
void mint_stats(const struct mint *m, uint64_t *minted, uint64_t *hits,
    size_t *cached);

/*
 * "socks5d ca create CERT KEY": a new P-256 CA key (mode 0600) and its
 * self-signed certificate (0644, ten years), then how to trust it on
 * stdout. argv[0] is "ca". Existing files are never overwritten. Returns
 * the exit status: 0, 1 (failed, nothing left behind), 2 (usage).
 */
int mint_ca_main(int argc, char **argv);

#endif
