/*
 * Stateless session tickets: their keys are derived per hour from one
 * secret made before the workers fork, so a ticket any worker issued
 * resumes at every other, and across reloads, until the daemon restarts.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sodium.h>

#include "socks5d/tls_ctx.h"
#include "socks5d/tls_tickets.h"

#define TLS_TICKET_KDF_CONTEXT "sk5dtick"

struct tls_ticket_keys {
	unsigned char name[TLS_TICKET_NAME_LEN];
	unsigned char aes[32];         /* AES-256-CBC */
	unsigned char hmac[32];        /* HMAC-SHA256 */
};

static unsigned char tls_ticket_secret[crypto_kdf_KEYBYTES];
static bool tls_ticket_ready;

/* The keys of one period: name, cipher and MAC key, all from the secret,
 * so every worker derives the same ones without talking to the others. */
static void
tls_ticket_keys(uint64_t period, struct tls_ticket_keys *k)
{
	crypto_kdf_derive_from_key(k->name, sizeof(k->name), period * 3,
	    TLS_TICKET_KDF_CONTEXT, tls_ticket_secret);
	crypto_kdf_derive_from_key(k->aes, sizeof(k->aes), period * 3 + 1,
	    TLS_TICKET_KDF_CONTEXT, tls_ticket_secret);
	crypto_kdf_derive_from_key(k->hmac, sizeof(k->hmac), period * 3 + 2,
	    TLS_TICKET_KDF_CONTEXT, tls_ticket_secret);
}

/*
 * SSL_CTX_set_tlsext_ticket_key_evp_cb: enc 1 seals a new ticket with this
 * period's keys (1: done); enc 0 opens one by its key name, 1 for this
 * period, 2 for the previous one (resume, and issue a fresh ticket), 0 for
 * any other (a full handshake). Negative is an error that fails the
 * handshake.
 */
int
tls_ticket_cb(SSL *ssl, unsigned char name[TLS_TICKET_NAME_LEN],
    unsigned char iv[EVP_MAX_IV_LENGTH], EVP_CIPHER_CTX *cctx,
    EVP_MAC_CTX *hctx, int enc)
{
	uint64_t period = (uint64_t)time(NULL) / TLS_TICKET_PERIOD;
	char digest[] = "SHA256";
	struct tls_ticket_keys k;
	OSSL_PARAM params[3];
	int rc = 1;

	(void)ssl;
	tls_ticket_keys(period, &k);
	if (enc) {
		memcpy(name, k.name, sizeof(k.name));
		if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(
		    EVP_aes_256_cbc())) != 1)
			rc = -1;
	} else if (sodium_memcmp(name, k.name, sizeof(k.name)) != 0) {
		tls_ticket_keys(period - 1, &k);
		rc = sodium_memcmp(name, k.name, sizeof(k.name)) == 0 ? 2 : 0;
	}
	if (rc > 0) {
		params[0] = OSSL_PARAM_construct_octet_string(
		    OSSL_MAC_PARAM_KEY, k.hmac, sizeof(k.hmac));
		params[1] = OSSL_PARAM_construct_utf8_string(
		    OSSL_MAC_PARAM_DIGEST, digest, 0);
		params[2] = OSSL_PARAM_construct_end();
		if (EVP_CipherInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv,
		    enc) != 1 || EVP_MAC_CTX_set_params(hctx, params) != 1)
			rc = -1;
	}
	sodium_memzero(&k, sizeof(k));
	return rc;
}

int
tls_tickets_init(void)
{
	if (sodium_init() < 0)
		return -1;
	crypto_kdf_keygen(tls_ticket_secret);
	tls_ticket_ready = true;
	return 0;
}

bool
tls_tickets_ready(void)
{
	return tls_ticket_ready;
}
