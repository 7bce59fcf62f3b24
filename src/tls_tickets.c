/*
 * Stateless session tickets. Their keys change every hour and come from a
 * secret that ratchets one way each hour (the next is a key derivation of
 * the current one, which is then wiped): every process, started from the
 * same secret made before the workers fork, walks the same chain by the
 * clock, so a ticket any worker issued resumes at every other and across
 * reloads; and what a process holds opens only the tickets of this hour
 * and the last, never older ones (forward secrecy for tickets, which in
 * TLS 1.2 carry the session's master secret).
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
#define TLS_TICKET_RATCHET_CONTEXT "sk5drtch"

struct tls_ticket_keys {
	unsigned char name[TLS_TICKET_NAME_LEN];
	unsigned char aes[32];         /* AES-256-CBC */
	unsigned char hmac[32];        /* HMAC-SHA256 */
};

static unsigned char tls_ticket_secret[crypto_kdf_KEYBYTES];   /* now */
static unsigned char tls_ticket_previous[crypto_kdf_KEYBYTES]; /* -1 h */
static uint64_t tls_ticket_period;     /* the one tls_ticket_secret is for */
static bool tls_ticket_has_previous;
static bool tls_ticket_ready;

/* The keys of the period whose secret this is: name, cipher and MAC key. */
static void
tls_ticket_keys(const unsigned char *secret, struct tls_ticket_keys *k)
{
	crypto_kdf_derive_from_key(k->name, sizeof(k->name), 0,
	    TLS_TICKET_KDF_CONTEXT, secret);
	crypto_kdf_derive_from_key(k->aes, sizeof(k->aes), 1,
	    TLS_TICKET_KDF_CONTEXT, secret);
	crypto_kdf_derive_from_key(k->hmac, sizeof(k->hmac), 2,
	    TLS_TICKET_KDF_CONTEXT, secret);
}

void
tls_tickets_advance(void)
{
	uint64_t now = (uint64_t)time(NULL) / TLS_TICKET_PERIOD;

	/* A clock set back keeps the newest secret: the old ones are gone. */
	while (tls_ticket_ready && tls_ticket_period < now) {
		memcpy(tls_ticket_previous, tls_ticket_secret,
		    sizeof(tls_ticket_previous));
		crypto_kdf_derive_from_key(tls_ticket_secret,
		    sizeof(tls_ticket_secret), 0, TLS_TICKET_RATCHET_CONTEXT,
		    tls_ticket_previous);
		tls_ticket_period++;
		/* Only the last step's secret is still good for anything. */
		tls_ticket_has_previous = tls_ticket_period == now;
	}
	if (!tls_ticket_has_previous)
		sodium_memzero(tls_ticket_previous,
		    sizeof(tls_ticket_previous));
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
	char digest[] = "SHA256";
	struct tls_ticket_keys k;
	OSSL_PARAM params[3];
	int rc = 1;

	(void)ssl;
	tls_tickets_advance();
	tls_ticket_keys(tls_ticket_secret, &k);
	if (enc) {
		memcpy(name, k.name, sizeof(k.name));
		if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(
		    EVP_aes_256_cbc())) != 1)
			rc = -1;
	} else if (sodium_memcmp(name, k.name, sizeof(k.name)) != 0) {
		rc = 0;
		if (tls_ticket_has_previous) {
			tls_ticket_keys(tls_ticket_previous, &k);
			if (sodium_memcmp(name, k.name, sizeof(k.name)) == 0)
				rc = 2;
		}
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
	sodium_memzero(tls_ticket_previous, sizeof(tls_ticket_previous));
	tls_ticket_period = (uint64_t)time(NULL) / TLS_TICKET_PERIOD;
	tls_ticket_has_previous = false;
	tls_ticket_ready = true;
	return 0;
}

bool
tls_tickets_ready(void)
{
	return tls_ticket_ready;
}
