/*
 * The QUIC Initial sniffer: client Initial packets (v1 and v2) opened with
 * the keys anyone can derive from them (RFC 9001 5), their CRYPTO frames
 * put back in order and the ClientHello handed to the TLS parser; and the
 * sealing direction, for the tests.
 */
#include <string.h>

#include <openssl/evp.h>

#include "socks5d/sniff.h"

#define QUIC_LONG_HEADER        0x80
#define QUIC_HP_LONG_BITS       0x0f    /* reserved bits, pn length */
#define QUIC_TAG_LEN            16
#define QUIC_SAMPLE_LEN         16
#define QUIC_SAMPLE_OFFSET      4       /* from the packet number */
#define QUIC_SEAL_PN_LEN        4
#define QUIC_VARINT2_MAX        0x3fff
#define QUIC_SECRET_LEN         32      /* SHA-256 */
#define QUIC_SALT_LEN           20

#define QUIC_FRAME_PADDING      0x00
#define QUIC_FRAME_PING         0x01
#define QUIC_FRAME_ACK          0x02
#define QUIC_FRAME_ACK_ECN      0x03
#define QUIC_FRAME_CRYPTO       0x06
#define QUIC_FRAME_CLOSE        0x1c

/* What tells one version's Initial packets from another's. */
struct quic_version {
	uint32_t number;
	unsigned initial_type;          /* long packet type bits */
	unsigned retry_type;
	uint8_t salt[QUIC_SALT_LEN];
	const char *key_label, *iv_label, *hp_label;
};

static const struct quic_version quic_versions[] = {
	{ SNIFF_QUIC_V1, 0, 3, {
	    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17,
	    0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a },
	    "quic key", "quic iv", "quic hp" },
	{ SNIFF_QUIC_V2, 1, 0, {
	    0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93,
	    0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb, 0xf9, 0xbd, 0x2e, 0xd9 },
	    "quicv2 key", "quicv2 iv", "quicv2 hp" },
};

/* A long-header packet, as far as it is framed before opening it. */
struct quic_packet {
	const struct quic_version *v;
	bool initial;
	const uint8_t *dcid;
	size_t dcid_len;
	size_t pn_off;                  /* where the packet number starts */
	size_t end;                     /* its length within the datagram */
};

static const struct quic_version *
quic_find_version(uint32_t number)
{
	size_t i;

	for (i = 0; i < sizeof(quic_versions) / sizeof(quic_versions[0]); i++)
		if (quic_versions[i].number == number)
			return &quic_versions[i];
	return NULL;
}

static bool
quic_take_varint(const uint8_t *p, size_t len, size_t *pos, uint64_t *v)
{
	size_t n, i;

	if (*pos >= len)
		return false;
	n = (size_t)1 << (p[*pos] >> 6);
	if (len - *pos < n)
		return false;
	*v = p[*pos] & 0x3f;
	for (i = 1; i < n; i++)
		*v = *v << 8 | p[*pos + i];
	*pos += n;
	return true;
}

static bool
quic_hmac(const uint8_t *key, size_t key_len, const uint8_t *data,
    size_t len, uint8_t out[QUIC_SECRET_LEN])
{
	size_t n = 0;

	return EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, key_len,
	    data, len, out, QUIC_SECRET_LEN, &n) != NULL &&
	    n == QUIC_SECRET_LEN;
}

/* HKDF-Expand-Label (RFC 8446 7.1), empty context, at most one hash long:
 * then HKDF-Expand is its first block, T(1), alone. */
static bool
quic_expand_label(const uint8_t secret[QUIC_SECRET_LEN], const char *label,
    uint8_t *out, size_t out_len)
{
	uint8_t info[4 + 6 + 16 + 1], t[QUIC_SECRET_LEN];
	size_t n = 0, label_len = strlen(label);

	info[n++] = 0;
	info[n++] = (uint8_t)out_len;
	info[n++] = (uint8_t)(6 + label_len);
	memcpy(info + n, "tls13 ", 6);
	memcpy(info + n + 6, label, label_len);
	n += 6 + label_len;
	info[n++] = 0;                  /* the context, empty */
	info[n++] = 1;                  /* the block counter */
	if (!quic_hmac(secret, QUIC_SECRET_LEN, info, n, t))
		return false;
	memcpy(out, t, out_len);
	return true;
}

/* RFC 9001 5.2 (RFC 9369 3.3.1 for v2's salt and labels). */
static bool
quic_derive_keys(const struct quic_version *v, const uint8_t *dcid,
    size_t dcid_len, struct sniff_quic_keys *k)
{
	uint8_t initial[QUIC_SECRET_LEN], client[QUIC_SECRET_LEN];

	return quic_hmac(v->salt, QUIC_SALT_LEN, dcid, dcid_len, initial) &&
	    quic_expand_label(initial, "client in", client, sizeof(client)) &&
	    quic_expand_label(client, v->key_label, k->key, sizeof(k->key)) &&
	    quic_expand_label(client, v->iv_label, k->iv, sizeof(k->iv)) &&
	    quic_expand_label(client, v->hp_label, k->hp, sizeof(k->hp));
}

/* Header protection's mask: AES-128 on the sample (RFC 9001 5.4.3). */
static bool
quic_hp_mask(const struct sniff_quic_keys *k, const uint8_t *sample,
    uint8_t mask[QUIC_SAMPLE_LEN])
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n = 0;
	bool ok;

	ok = ctx != NULL && EVP_EncryptInit_ex(ctx, EVP_aes_128_ecb(), NULL,
	    k->hp, NULL) == 1 && EVP_CIPHER_CTX_set_padding(ctx, 0) == 1 &&
	    EVP_EncryptUpdate(ctx, mask, &n, sample, QUIC_SAMPLE_LEN) == 1 &&
	    n == QUIC_SAMPLE_LEN;
	EVP_CIPHER_CTX_free(ctx);
	return ok;
}

/* AEAD_AES_128_GCM (RFC 9001 5.3): seal (enc) writing tag, or open
 * checking it. */
static bool
quic_gcm(const struct sniff_quic_keys *k, uint64_t pn, int enc,
    const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len,
    uint8_t *out, uint8_t tag[QUIC_TAG_LEN])
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	uint8_t nonce[sizeof(k->iv)];
	size_t i;
	int n;
	bool ok;

	memcpy(nonce, k->iv, sizeof(nonce));
	for (i = 0; i < 8; i++)
		nonce[sizeof(nonce) - 1 - i] ^= (uint8_t)(pn >> (8 * i));
	ok = ctx != NULL && EVP_CipherInit_ex(ctx, EVP_aes_128_gcm(), NULL,
	    k->key, nonce, enc) == 1 &&
	    EVP_CipherUpdate(ctx, NULL, &n, aad, (int)aad_len) == 1 &&
	    (len == 0 || EVP_CipherUpdate(ctx, out, &n, in, (int)len) == 1);
	if (ok && !enc)
		ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG,
		    QUIC_TAG_LEN, tag) == 1;
	ok = ok && EVP_CipherFinal_ex(ctx, out + len, &n) == 1;
	if (ok && enc)
		ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG,
		    QUIC_TAG_LEN, tag) == 1;
	EVP_CIPHER_CTX_free(ctx);
	return ok;
}

/* RFC 9000 A.3: the full packet number nearest the one expected. */
static uint64_t
quic_decode_pn(uint64_t expected, uint64_t truncated, size_t pn_len)
{
	uint64_t win = (uint64_t)1 << (8 * pn_len), hwin = win / 2;
	uint64_t cand = (expected & ~(win - 1)) | truncated;

	if (cand + hwin <= expected && cand < ((uint64_t)1 << 62) - win)
		return cand + win;
	if (cand > expected + hwin && cand >= win)
		return cand - win;
	return cand;
}

/*
 * Frame the long-header packet at p (len bytes left in the datagram) far
 * enough to find its end. false: not a v1/v2 long header that frames, and
 * nothing after it in the datagram can be found either.
 */
static bool
quic_parse_long(const uint8_t *p, size_t len, struct quic_packet *qp)
{
	size_t pos = 6;
	uint64_t n;
	unsigned type;

	if (len < 7 || !(p[0] & QUIC_LONG_HEADER) ||
	    (qp->v = quic_find_version((uint32_t)p[1] << 24 |
	    (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4])) == NULL)
		return false;
	type = (p[0] >> 4) & 3;
	qp->initial = type == qp->v->initial_type;
	qp->dcid_len = p[5];
	qp->dcid = p + pos;
	/* A Retry has no Length; a client never sends one anyway. */
	if (type == qp->v->retry_type || qp->dcid_len > SNIFF_QUIC_CID_MAX ||
	    len - pos <= qp->dcid_len)
		return false;
	pos += qp->dcid_len;
	if (p[pos] > SNIFF_QUIC_CID_MAX || len - pos - 1 < p[pos])
		return false;
	pos += 1 + p[pos];
	if (qp->initial && (!quic_take_varint(p, len, &pos, &n) ||
	    n > len - pos))
		return false;
	if (qp->initial)
		pos += (size_t)n;
	if (!quic_take_varint(p, len, &pos, &n) || n > len - pos)
		return false;
	qp->pn_off = pos;
	qp->end = pos + (size_t)n;
	return true;
}

/*
 * Remove header protection and decrypt with k into buf: the header, then
 * the plaintext from *off to the tag. false if the packet does not open
 * with them. The packet number is expanded from next_pn.
 */
static bool
quic_open(const uint8_t *p, const struct quic_packet *qp,
    const struct sniff_quic_keys *k, uint64_t next_pn,
    uint8_t buf[SNIFF_QUIC_PACKET_MAX], size_t *off, uint64_t *pn)
{
	uint8_t mask[QUIC_SAMPLE_LEN], tag[QUIC_TAG_LEN];
	size_t pn_len, i;
	uint64_t truncated = 0;

	if (qp->end > SNIFF_QUIC_PACKET_MAX ||
	    qp->end - qp->pn_off < QUIC_SAMPLE_OFFSET + QUIC_SAMPLE_LEN ||
	    !quic_hp_mask(k, p + qp->pn_off + QUIC_SAMPLE_OFFSET, mask))
		return false;
	memcpy(buf, p, qp->pn_off + QUIC_SAMPLE_OFFSET);
	buf[0] ^= mask[0] & QUIC_HP_LONG_BITS;
	pn_len = (size_t)(buf[0] & 3) + 1;
	for (i = 0; i < pn_len; i++) {
		buf[qp->pn_off + i] ^= mask[1 + i];
		truncated = truncated << 8 | buf[qp->pn_off + i];
	}
	*off = qp->pn_off + pn_len;
	*pn = quic_decode_pn(next_pn, truncated, pn_len);
	memcpy(tag, p + qp->end - QUIC_TAG_LEN, QUIC_TAG_LEN);
	return quic_gcm(k, *pn, 0, buf, *off, p + *off,
	    qp->end - *off - QUIC_TAG_LEN, buf + *off, tag);
}

/* First writer wins: a byte sent again (or differently) is not stored. */
static void
quic_store_crypto(struct sniff_quic *st, uint64_t off, const uint8_t *data,
    uint64_t n)
{
	size_t at, i;

	if (off >= SNIFF_QUIC_CRYPTO_MAX)
		return;
	if (n > SNIFF_QUIC_CRYPTO_MAX - off)
		n = SNIFF_QUIC_CRYPTO_MAX - off;
	for (i = 0; i < n; i++) {
		at = (size_t)off + i;
		if (st->have[at / 8] & (1u << (at % 8)))
			continue;
		st->crypto[at] = data[i];
		st->have[at / 8] |= (uint8_t)(1u << (at % 8));
	}
}

/* Step over n varints; false if the packet ends first. */
static bool
quic_skip_varints(const uint8_t *p, size_t len, size_t *pos, uint64_t n)
{
	uint64_t v;

	while (n-- > 0)
		if (!quic_take_varint(p, len, pos, &v))
			return false;
	return true;
}

/*
 * The frames a client's Initial may carry (RFC 9000 12.4) that matter or
 * must be stepped over; anything else ends the walk of this packet.
 */
static void
quic_read_frames(struct sniff_quic *st, const uint8_t *p, size_t len)
{
	size_t pos = 0;
	uint64_t a = 0, b;
	uint8_t type;

	while (pos < len) {
		switch ((type = p[pos++])) {
		case QUIC_FRAME_PADDING:
		case QUIC_FRAME_PING:
			break;
		case QUIC_FRAME_ACK:
		case QUIC_FRAME_ACK_ECN:
			/* Largest, delay, range count, first range; a gap and
			 * a length per further range; three ECN counts. */
			if (!quic_skip_varints(p, len, &pos, 2) ||
			    !quic_take_varint(p, len, &pos, &a) || a > len ||
			    !quic_skip_varints(p, len, &pos, 1 + 2 * a +
			    (type == QUIC_FRAME_ACK_ECN ? 3 : 0)))
				return;
			break;
		case QUIC_FRAME_CRYPTO:
		case QUIC_FRAME_CLOSE:
			/* Offset, length, data; or error code, frame type,
			 * reason length, reason. */
			if ((type == QUIC_FRAME_CLOSE &&
			    !quic_skip_varints(p, len, &pos, 1)) ||
			    !quic_take_varint(p, len, &pos, &a) ||
			    !quic_take_varint(p, len, &pos, &b) ||
			    b > len - pos)
				return;
			if (type == QUIC_FRAME_CRYPTO)
				quic_store_crypto(st, a, p + pos, b);
			pos += (size_t)b;
			break;
		default:
			return;
		}
	}
}

/*
 * Open an Initial and keep its CRYPTO data. The keys that last worked come
 * first: packets to the DCID the server chose still use the first ones.
 * Then the packet's own DCID's, right for a client's first packets and
 * again after a Retry (RFC 9001 5.2).
 */
static bool
quic_take_initial(struct sniff_quic *st, const uint8_t *p,
    const struct quic_packet *qp)
{
	uint8_t buf[SNIFF_QUIC_PACKET_MAX];
	struct sniff_quic_keys k;
	size_t off = 0;
	uint64_t pn = 0;
	bool ok = false;

	if (st->started && st->version == qp->v->number)
		ok = quic_open(p, qp, &st->keys, st->next_pn, buf, &off, &pn);
	if (!ok && quic_derive_keys(qp->v, qp->dcid, qp->dcid_len, &k) &&
	    quic_open(p, qp, &k, st->next_pn, buf, &off, &pn)) {
		ok = true;
		st->keys = k;
		st->version = qp->v->number;
	}
	if (!ok)
		return false;
	st->started = true;
	if (pn >= st->next_pn)
		st->next_pn = pn + 1;
	quic_read_frames(st, buf + off, qp->end - off - QUIC_TAG_LEN);
	return true;
}

/* Does the stream's contiguous start hold a whole ClientHello yet? */
static enum sniff_result
quic_check_hello(const struct sniff_quic *st, struct sniff_info *out)
{
	size_t have = 0, mlen;

	while (have < SNIFF_QUIC_CRYPTO_MAX && st->have[have / 8] == 0xff)
		have += 8;
	while (have < SNIFF_QUIC_CRYPTO_MAX &&
	    (st->have[have / 8] >> (have % 8) & 1))
		have++;
	if (have >= 1 && st->crypto[0] != 1)
		return SNIFF_NONE;
	if (have < 4)
		return SNIFF_NEED_MORE;
	mlen = (size_t)st->crypto[1] << 16 | (size_t)st->crypto[2] << 8 |
	    st->crypto[3];
	if (mlen > SNIFF_QUIC_CRYPTO_MAX - 4)
		return SNIFF_NONE;
	if (have - 4 < mlen)
		return SNIFF_NEED_MORE;
	return sniff_tls_hello_body(st->crypto + 4, mlen, out);
}

enum sniff_result
sniff_quic_initial(struct sniff_quic *st, const uint8_t *pkt, size_t len,
    struct sniff_info *out)
{
	struct quic_packet qp;
	size_t pos = 0;

	memset(out, 0, sizeof(*out));
	if (st->verdict == SNIFF_NONE)
		return SNIFF_NONE;
	/* Decided: the stream is kept, so the answer is given again. */
	if (st->verdict == SNIFF_FOUND)
		return quic_check_hello(st, out);
	while (pos < len && quic_parse_long(pkt + pos, len - pos, &qp)) {
		/* The very first packet must be an Initial that opens. */
		if (!(qp.initial && quic_take_initial(st, pkt + pos, &qp)) &&
		    !st->started)
			break;
		pos += qp.end;
	}
	if (!st->started)
		st->verdict = SNIFF_NONE;
	else
		st->verdict = quic_check_hello(st, out);
	return st->verdict;
}

size_t
sniff_quic_seal(const struct sniff_quic_packet *p, uint8_t *out, size_t cap)
{
	const struct quic_version *v = quic_find_version(p->version);
	uint8_t mask[QUIC_SAMPLE_LEN];
	struct sniff_quic_keys k;
	size_t hdr, len, i;

	if (v == NULL || p->dcid_len > SNIFF_QUIC_CID_MAX ||
	    p->payload_len > QUIC_VARINT2_MAX - QUIC_SEAL_PN_LEN - QUIC_TAG_LEN)
		return 0;
	len = QUIC_SEAL_PN_LEN + p->payload_len + QUIC_TAG_LEN;
	/* first, version, DCID, SCID and token lengths, Length, pn */
	hdr = 1 + 4 + 1 + p->dcid_len + 1 + 1 + 2 + QUIC_SEAL_PN_LEN;
	if (cap < hdr - QUIC_SEAL_PN_LEN + len ||
	    !quic_derive_keys(v, p->key_dcid ? p->key_dcid : p->dcid,
	    p->key_dcid ? p->key_dcid_len : p->dcid_len, &k))
		return 0;
	out[0] = (uint8_t)(0xc0 | v->initial_type << 4 |
	    (QUIC_SEAL_PN_LEN - 1));
	for (i = 0; i < 4; i++)
		out[1 + i] = (uint8_t)(p->version >> (24 - 8 * i));
	out[5] = (uint8_t)p->dcid_len;
	if (p->dcid_len > 0)
		memcpy(out + 6, p->dcid, p->dcid_len);
	i = 6 + p->dcid_len;
	out[i++] = 0;                   /* SCID */
	out[i++] = 0;                   /* token */
	out[i++] = (uint8_t)(0x40 | len >> 8);
	out[i++] = (uint8_t)len;
	for (; i < hdr; i++)
		out[i] = (uint8_t)(p->pn >> (8 * (hdr - 1 - i)));
	if (!quic_gcm(&k, p->pn, 1, out, hdr, p->payload, p->payload_len,
	    out + hdr, out + hdr + p->payload_len) ||
	    !quic_hp_mask(&k, out + hdr, mask))
		return 0;
	out[0] ^= mask[0] & QUIC_HP_LONG_BITS;
	for (i = 0; i < QUIC_SEAL_PN_LEN; i++)
		out[hdr - QUIC_SEAL_PN_LEN + i] ^= mask[1 + i];
	return hdr + p->payload_len + QUIC_TAG_LEN;
}
