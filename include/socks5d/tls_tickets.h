/*
 * Private to the TLS context: the session ticket key callback and its
 * timing (tls_tickets.c). tls_tickets_init itself is in tls_ctx.h.
 */
#ifndef SOCKS5D_TLS_TICKETS_H
#define SOCKS5D_TLS_TICKETS_H

#include <stdbool.h>
#include <openssl/ssl.h>

/* Ticket keys change every period; a ticket is taken for two (so for 1
 * to 2 hours), and one of the previous period is renewed. */
#define TLS_TICKET_PERIOD 3600
#define TLS_TICKET_LIFETIME (2 * TLS_TICKET_PERIOD)
#define TLS_TICKET_NAME_LEN 16

/* SSL_CTX_set_tlsext_ticket_key_evp_cb's callback. */
int tls_ticket_cb(SSL *ssl, unsigned char name[TLS_TICKET_NAME_LEN],
    unsigned char iv[EVP_MAX_IV_LENGTH], EVP_CIPHER_CTX *cctx,
    EVP_MAC_CTX *hctx, int enc);

/* Has tls_tickets_init made the secret? */
bool tls_tickets_ready(void);

#endif
