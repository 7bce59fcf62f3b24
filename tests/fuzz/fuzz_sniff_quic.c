/*
 * libFuzzer target: the QUIC Initial sniffer. The input after its first
 * (flags) byte is cut at each "--\n" into up to four pieces. Raw, each
 * piece is a datagram; sealed, each is the frames of a client Initial
 * sealed here (so the frame walk and the CRYPTO reassembly get fuzzed past
 * the AEAD), v1 or v2, to the first DCID or a later one, one datagram
 * each or coalesced. Every answer must be a well-formed sniff_info, and
 * once decided the state must give the same answer again.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "socks5d/sniff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PIECES_MAX      4
#define SEP             "--\n"
#define DGRAM_MAX       (4 * 2048)

#define FLAG_SEALED     0x01
#define FLAG_V2         0x02
#define FLAG_NEW_DCID   0x04    /* pieces after the first to another DCID */
#define FLAG_COALESCE   0x08    /* all sealed pieces in one datagram */

static const uint8_t dcid_a[8] = { 0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51,
    0x57, 0x08 };
static const uint8_t dcid_b[5] = { 1, 2, 3, 4, 5 };

static void
check_info(const struct sniff_info *i, enum sniff_result r)
{
	size_t n, k;

	if (r != SNIFF_NEED_MORE && r != SNIFF_FOUND && r != SNIFF_NONE)
		abort();
	if (memchr(i->name, '\0', sizeof(i->name)) == NULL ||
	    memchr(i->alpn, '\0', sizeof(i->alpn)) == NULL || i->several_hosts)
		abort();
	n = strlen(i->name);
	if (n > 253 || (n > 0 && (i->name_is_ip || i->name[0] == '.' ||
	    i->name[n - 1] == '.' || strstr(i->name, "..") != NULL)))
		abort();
	for (k = 0; k < n; k++)
		if (strchr("abcdefghijklmnopqrstuvwxyz0123456789-_.",
		    i->name[k]) == NULL)
			abort();
	for (k = 0; i->alpn[k] != '\0'; k++)
		if (i->alpn[k] <= ' ' || i->alpn[k] >= 0x7f)
			abort();
	if (r != SNIFF_FOUND && (n > 0 || i->alpn[0] != '\0' ||
	    i->name_is_ip || i->ech))
		abort();
}

/* One datagram, in a buffer of exactly its size. */
static enum sniff_result
feed(struct sniff_quic *st, const uint8_t *d, size_t len,
    struct sniff_info *info)
{
	uint8_t *copy = malloc(len ? len : 1);
	enum sniff_result r;

	if (copy == NULL)
		abort();
	memcpy(copy, d, len);
	r = sniff_quic_initial(st, copy, len, info);
	free(copy);
	check_info(info, r);
	return r;
}

/* Seal piece i as a client Initial onto the end of dg. */
static void
seal(uint8_t flags, size_t i, const uint8_t *piece, size_t len,
    uint8_t *dg, size_t *dlen)
{
	struct sniff_quic_packet p = {
		.version = flags & FLAG_V2 ? SNIFF_QUIC_V2 : SNIFF_QUIC_V1,
		.dcid = dcid_a, .dcid_len = sizeof(dcid_a),
		.pn = i, .payload = piece, .payload_len = len,
	};
	size_t n;

	if (i > 0 && (flags & FLAG_NEW_DCID)) {
		p.dcid = dcid_b;
		p.dcid_len = sizeof(dcid_b);
		p.key_dcid = dcid_a;
		p.key_dcid_len = sizeof(dcid_a);
	}
	n = sniff_quic_seal(&p, dg + *dlen, DGRAM_MAX - *dlen);
	*dlen += n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct sniff_quic st;
	static struct sniff_info info, again;
	static uint8_t dg[DGRAM_MAX];
	const uint8_t *piece[PIECES_MAX], *end, *sep;
	size_t len[PIECES_MAX], n = 0, i, dlen = 0;
	enum sniff_result r = SNIFF_NEED_MORE;
	uint8_t flags;

	if (size < 1 || size > DGRAM_MAX)
		return 0;
	flags = data[0];
	end = data + size;
	for (piece[0] = data + 1; n < PIECES_MAX; n++) {
		sep = n + 1 < PIECES_MAX ? memmem(piece[n], (size_t)(end -
		    piece[n]), SEP, strlen(SEP)) : NULL;
		len[n] = (size_t)((sep ? sep : end) - piece[n]);
		if (sep == NULL) {
			n++;
			break;
		}
		piece[n + 1] = sep + strlen(SEP);
	}
	memset(&st, 0, sizeof(st));
	for (i = 0; i < n; i++) {
		if (!(flags & FLAG_SEALED)) {
			r = feed(&st, piece[i], len[i], &info);
			continue;
		}
		seal(flags, i, piece[i], len[i], dg, &dlen);
		if ((flags & FLAG_COALESCE) && i + 1 < n)
			continue;
		r = feed(&st, dg, dlen, &info);
		dlen = 0;
	}
	/* Decided stays decided, with the same answer. */
	if (r != SNIFF_NEED_MORE && (feed(&st, data, size, &again) != r ||
	    memcmp(&info, &again, sizeof(info)) != 0))
		abort();
	return 0;
}
