/*
 * Reading the PEM certificates and keys an operator names ([tls], the
 * interception CA) and putting OpenSSL's failures into words, the same
 * for every caller (pem.c).
 */
#ifndef SOCKS5D_PEM_H
#define SOCKS5D_PEM_H

#include <stddef.h>
#include <stdio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

/* Format the reason into why, clear OpenSSL's error queue and return -1. */
int pem_fail(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* OpenSSL's words for the first error it queued, or "unknown error". */
const char *pem_reason(void);

/* A pem_password_cb for PEM_read_*: refuses, and sets *(bool *)arg when
 * arg is not NULL, so a caller can tell an encrypted key from a broken
 * one. */
int pem_no_passphrase(char *buf, int size, int rwflag, void *arg);

/* Open the certificate file path (file_open_regular). NULL with
 * "WHAT PATH: REASON" in why on failure. */
FILE *pem_open(const char *what, const char *path, char *why,
    size_t whylen);

/* The private key in the PEM file path, which must not be open to others
 * (file_open_secret). NULL with "WHAT PATH: ..." in why on failure,
 * naming an encrypted key as such. */
EVP_PKEY *pem_read_key(const char *what, const char *path, char *why,
    size_t whylen);

/* 0 when x is valid now; else -1 with "WHAT PATH: expired (notAfter
 * ...)" or "WHAT PATH: not valid yet (notBefore ...)" in why. */
int pem_check_validity(const X509 *x, const char *what, const char *path,
    char *why, size_t whylen);

#endif
