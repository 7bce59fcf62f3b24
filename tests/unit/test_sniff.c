/*
 * Unit tests for the inspection sniffers (src/sniff_tls.c, sniff_http.c,
 * sniff_quic.c): ClientHellos built here with chosen extensions and cut
 * into records and segments every way, every length field broken, a
 * ClientHello from OpenSSL itself; HTTP request heads; the RFC 9001 and
 * RFC 9369 sample Initials, and Initials sealed here, split, reordered
 * and coalesced. Every parse reads a heap copy of exactly its input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/ssl.h>

#include "socks5d/sniff.h"

#define HELLO_MAX       20000
#define MARKS_MAX       64
#define DGRAM_MAX       1500

/* ---- ClientHello builder ---- */

/*
 * A ClientHello handshake message (type, 3-byte length, body) being
 * written, with where every length field went, so a test can break each.
 */
struct hello {
	uint8_t b[HELLO_MAX];
	size_t n;
	size_t open[8];
	int open_width[8];
	int depth;
	size_t mark_at[MARKS_MAX];
	int mark_width[MARKS_MAX];
	int marks;
};

struct hello_opts {
	const char *sni;                /* NULL: no server_name */
	size_t sni_len;                 /* 0: strlen(sni) */
	const char *alpn;               /* "h2,http/1.1", or NULL */
	size_t key_share;               /* key_share bytes; 0: 32 */
	size_t padding;                 /* a padding extension this long */
	bool ech;
	bool grease;                    /* GREASE extensions around */
	bool no_extensions;
};

static void
put(struct hello *h, const void *p, size_t n)
{
	assert_true(h->n + n <= sizeof(h->b));
	memcpy(h->b + h->n, p, n);
	h->n += n;
}

static void
put8(struct hello *h, unsigned v)
{
	uint8_t b = (uint8_t)v;

	put(h, &b, 1);
}

static void
put16(struct hello *h, unsigned v)
{
	put8(h, v >> 8);
	put8(h, v);
}

static void
put_fill(struct hello *h, size_t n, uint8_t byte)
{
	assert_true(h->n + n <= sizeof(h->b));
	memset(h->b + h->n, byte, n);
	h->n += n;
}

/* A length field of width bytes, filled in by len_close. */
static void
len_open(struct hello *h, int width)
{
	assert_true(h->depth < 8 && h->marks < MARKS_MAX);
	h->mark_at[h->marks] = h->n;
	h->mark_width[h->marks++] = width;
	h->open[h->depth] = h->n;
	h->open_width[h->depth++] = width;
	put_fill(h, (size_t)width, 0);
}

static void
len_close(struct hello *h)
{
	size_t at = h->open[--h->depth], v;
	int w = h->open_width[h->depth], i;

	v = h->n - at - (size_t)w;
	for (i = 0; i < w; i++)
		h->b[at + (size_t)i] = (uint8_t)(v >> (8 * (w - 1 - i)));
}

static void
ext_fill(struct hello *h, unsigned type, size_t n, uint8_t byte)
{
	put16(h, type);
	len_open(h, 2);
	put_fill(h, n, byte);
	len_close(h);
}

static void
ext_sni(struct hello *h, const char *name, size_t len)
{
	put16(h, 0x0000);
	len_open(h, 2);
	len_open(h, 2);
	put8(h, 0);                     /* host_name */
	len_open(h, 2);
	put(h, name, len);
	len_close(h);
	len_close(h);
	len_close(h);
}

/* Protocols separated by commas. */
static void
ext_alpn(struct hello *h, const char *list)
{
	const char *p = list, *comma;

	put16(h, 0x0010);
	len_open(h, 2);
	len_open(h, 2);
	for (;;) {
		comma = strchr(p, ',');
		len_open(h, 1);
		put(h, p, comma ? (size_t)(comma - p) : strlen(p));
		len_close(h);
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	len_close(h);
	len_close(h);
}

static void
hello_build(struct hello *h, const struct hello_opts *o)
{
	static const uint8_t suites[] = {
		0x0a, 0x0a, 0x13, 0x01, 0x13, 0x02, 0x13, 0x03, 0xc0, 0x2f
	};

	memset(h, 0, sizeof(*h));
	put8(h, 1);
	len_open(h, 3);
	put16(h, 0x0303);
	put_fill(h, 32, 0x11);
	len_open(h, 1);
	put_fill(h, 32, 0xee);
	len_close(h);
	len_open(h, 2);
	put(h, suites, sizeof(suites));
	len_close(h);
	len_open(h, 1);
	put8(h, 0);
	len_close(h);
	if (!o->no_extensions) {
		len_open(h, 2);
		if (o->grease)
			ext_fill(h, 0x0a0a, 0, 0);
		if (o->sni != NULL)
			ext_sni(h, o->sni, o->sni_len ? o->sni_len :
			    strlen(o->sni));
		ext_fill(h, 0x000a, 8, 0x1d);           /* supported_groups */
		if (o->alpn != NULL)
			ext_alpn(h, o->alpn);
		ext_fill(h, 0x0033, o->key_share ? o->key_share : 32, 0x42);
		if (o->grease)
			ext_fill(h, 0x7a7a, 1, 0);
		ext_fill(h, 0x002b, 5, 0x03);           /* supported_versions */
		if (o->ech)
			ext_fill(h, 0xfe0d, 90, 0x5e);
		if (o->padding > 0)
			ext_fill(h, 0x0015, o->padding, 0);
		len_close(h);
	}
	len_close(h);
	assert_int_equal(h->depth, 0);
}

/* The message cut into handshake records of at most frag bytes each;
 * malloc'd, *len set. */
static uint8_t *
records(const uint8_t *hs, size_t n, size_t frag, size_t *len)
{
	size_t nrec = (n + frag - 1) / frag, off, i = 0, k;
	uint8_t *out = malloc(n + 5 * nrec);

	assert_non_null(out);
	for (off = 0; off < n; off += k) {
		k = n - off < frag ? n - off : frag;
		out[i++] = 22;
		out[i++] = 3;
		out[i++] = 1;
		out[i++] = (uint8_t)(k >> 8);
		out[i++] = (uint8_t)k;
		memcpy(out + i, hs + off, k);
		i += k;
	}
	*len = i;
	return out;
}

/* ---- parsing exact heap copies ---- */

typedef enum sniff_result sniff_fn(const uint8_t *, size_t,
    struct sniff_info *);

static enum sniff_result
parse_exact(sniff_fn *fn, const void *msg, size_t len, struct sniff_info *i)
{
	uint8_t *copy = malloc(len > 0 ? len : 1);
	enum sniff_result r;

	assert_non_null(copy);
	memcpy(copy, msg, len);
	memset(i, 0x5a, sizeof(*i));
	r = fn(copy, len, i);
	free(copy);
	/* Whatever the verdict, the strings are strings. */
	assert_non_null(memchr(i->name, '\0', sizeof(i->name)));
	assert_non_null(memchr(i->alpn, '\0', sizeof(i->alpn)));
	if (r != SNIFF_FOUND)
		assert_true(i->name[0] == '\0' && i->alpn[0] == '\0' &&
		    !i->name_is_ip && !i->ech && !i->several_hosts);
	return r;
}

/* Every proper prefix needs more; the whole gives want. */
static void
prefixes_need_more(sniff_fn *fn, const void *msg, size_t len,
    enum sniff_result want, struct sniff_info *info)
{
	size_t i;

	for (i = 0; i < len; i++)
		assert_int_equal(parse_exact(fn, msg, i, info),
		    SNIFF_NEED_MORE);
	assert_int_equal(parse_exact(fn, msg, len, info), want);
}

static enum sniff_result
tls_hello(const struct hello_opts *o, size_t frag, struct sniff_info *info)
{
	struct hello h;
	enum sniff_result r;
	uint8_t *rec;
	size_t len;

	hello_build(&h, o);
	rec = records(h.b, h.n, frag, &len);
	r = parse_exact(sniff_tls_client_hello, rec, len, info);
	free(rec);
	return r;
}

/* The name a hello with this server_name gives, "" for none, "IP". */
static const char *
tls_name(const char *sni, size_t sni_len)
{
	static struct sniff_info info;
	struct hello_opts o = { .sni = sni, .sni_len = sni_len };

	assert_int_equal(tls_hello(&o, 16384, &info), SNIFF_FOUND);
	assert_false(info.name_is_ip && info.name[0] != '\0');
	return info.name_is_ip ? "IP" : info.name;
}

/* ---- TLS ---- */

static void
test_tls_sni(void **state)
{
	struct hello_opts o = { .sni = "www.example.com",
	    .alpn = "h2,http/1.1" };
	struct sniff_info info;

	(void)state;
	assert_int_equal(tls_hello(&o, 16384, &info), SNIFF_FOUND);
	assert_string_equal(info.name, "www.example.com");
	assert_string_equal(info.alpn, "h2");
	assert_false(info.name_is_ip || info.ech || info.several_hosts);
	o.alpn = "http/1.1,h2";
	assert_int_equal(tls_hello(&o, 16384, &info), SNIFF_FOUND);
	assert_string_equal(info.alpn, "http/1.1");
}

/* A post-quantum sized hello (an ML-KEM-768 share and X25519) over two
 * records, and over records so small the header itself is split. */
static void
test_tls_records(void **state)
{
	static const size_t frags[] = { 1, 2, 3, 4, 5, 7, 100, 1000, 1500 };
	struct hello_opts o = { .sni = "pq.example.net", .alpn = "h2",
	    .key_share = 1216 + 36, .padding = 600, .grease = true };
	struct sniff_info info;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(frags) / sizeof(frags[0]); i++) {
		assert_int_equal(tls_hello(&o, frags[i], &info), SNIFF_FOUND);
		assert_string_equal(info.name, "pq.example.net");
		assert_string_equal(info.alpn, "h2");
	}
}

static void
test_tls_byte_by_byte(void **state)
{
	struct hello_opts o = { .sni = "split.example", .key_share = 1252,
	    .padding = 700 };
	struct sniff_info info;
	struct hello h;
	uint8_t *rec;
	size_t len;

	(void)state;
	hello_build(&h, &o);
	assert_true(h.n > 2000);
	rec = records(h.b, h.n, 1200, &len);
	prefixes_need_more(sniff_tls_client_hello, rec, len, SNIFF_FOUND,
	    &info);
	assert_string_equal(info.name, "split.example");
	free(rec);
	/* What follows the hello (a second record, say) changes nothing. */
	hello_build(&h, &o);
	rec = records(h.b, h.n, 16384, &len);
	assert_int_equal(parse_exact(sniff_tls_client_hello, rec, len - 1,
	    &info), SNIFF_NEED_MORE);
	free(rec);
}

static void
test_tls_grease(void **state)
{
	struct hello_opts o = { .sni = "grease.example", .grease = true,
	    .alpn = "\x0a\x0a,\x3a\x3a,zz,h2,http/1.1" };
	struct sniff_info info;

	(void)state;
	assert_int_equal(tls_hello(&o, 16384, &info), SNIFF_FOUND);
	assert_string_equal(info.name, "grease.example");
	assert_string_equal(info.alpn, "h2");
	/* Unprintable or too long for alpn[]: the next one is taken. */
	o.alpn = "\x01\x02,"
	    "0123456789012345678901234567890123456789012345678901234567890123"
	    ",spdy/3";
	assert_int_equal(tls_hello(&o, 16384, &info), SNIFF_FOUND);
	assert_string_equal(info.alpn, "spdy/3");
	o.alpn = "\x2a\x2a";
	assert_int_equal(tls_hello(&o, 16384, &info), SNIFF_FOUND);
	assert_string_equal(info.alpn, "");
}

static void
test_tls_no_sni(void **state)
{
	struct hello_opts o = { .alpn = "http/1.1" };
	struct sniff_info info;

	(void)state;
	assert_int_equal(tls_hello(&o, 16384, &info), SNIFF_FOUND);
	assert_string_equal(info.name, "");
	assert_false(info.name_is_ip);
	assert_string_equal(info.alpn, "http/1.1");
	o.no_extensions = true;
	assert_int_equal(tls_hello(&o, 16384, &info), SNIFF_FOUND);
	assert_string_equal(info.name, "");
	assert_string_equal(info.alpn, "");
}

static void
test_tls_names(void **state)
{
	char label[80], name[300];
	size_t i;

	(void)state;
	assert_string_equal(tls_name("WWW.Example.COM.", 0),
	    "www.example.com");
	assert_string_equal(tls_name("_srv-x.a-b.example", 0),
	    "_srv-x.a-b.example");
	assert_string_equal(tls_name("localhost", 0), "localhost");
	/* IP literals, in every form a resolver might take them. */
	assert_string_equal(tls_name("192.168.1.10", 0), "IP");
	assert_string_equal(tls_name("192.168.1.10.", 0), "IP");
	assert_string_equal(tls_name("127.1", 0), "IP");
	assert_string_equal(tls_name("0x7f.0.0.1", 0), "IP");
	assert_string_equal(tls_name("2130706433", 0), "IP");
	assert_string_equal(tls_name("::1", 0), "IP");
	assert_string_equal(tls_name("[2001:db8::1]", 0), "IP");
	assert_string_equal(tls_name("2001:DB8::1", 0), "IP");
	/* Not plausible: no name, and not an IP either. */
	assert_string_equal(tls_name("exa mple.com", 0), "");
	assert_string_equal(tls_name("a\x01" "b.com", 0), "");
	assert_string_equal(tls_name("a\0b.com", 7), "");
	assert_string_equal(tls_name("", 0), "");
	assert_string_equal(tls_name(".", 0), "");
	assert_string_equal(tls_name("a..b", 0), "");
	assert_string_equal(tls_name(".a.b", 0), "");
	assert_string_equal(tls_name("a.b..", 0), "");
	assert_string_equal(tls_name("1.2.3.4.5", 0), "");
	assert_string_equal(tls_name("host.123", 0), "");
	assert_string_equal(tls_name("caf\xc3\xa9.example", 0), "");
	assert_string_equal(tls_name("a:b", 0), "");
	assert_string_equal(tls_name("[a.b]", 0), "");
	memset(label, 'a', 63);
	label[63] = '\0';
	snprintf(name, sizeof(name), "%s.com", label);
	assert_string_equal(tls_name(name, 0), name);
	snprintf(name, sizeof(name), "%sa.com", label);
	assert_string_equal(tls_name(name, 0), "");
	/* 253 bytes is the longest name, with or without its final dot. */
	for (i = 0; i < 253; i++)
		name[i] = i % 2 ? '.' : 'x';
	name[253] = '\0';
	assert_string_equal(tls_name(name, 0), name);
	name[253] = '.';
	name[254] = '\0';
	assert_int_equal(strlen(tls_name(name, 0)), 253);
	name[253] = 'y';
	assert_string_equal(tls_name(name, 0), "");
}

static void
test_tls_ech(void **state)
{
	struct hello_opts o = { .sni = "public.example", .ech = true,
	    .alpn = "h2" };
	struct sniff_info info;

	(void)state;
	assert_int_equal(tls_hello(&o, 16384, &info), SNIFF_FOUND);
	assert_true(info.ech);
	assert_string_equal(info.name, "public.example");
	o.ech = false;
	assert_int_equal(tls_hello(&o, 16384, &info), SNIFF_FOUND);
	assert_false(info.ech);
}

/* The first host_name entry is the one; other name types are skipped. */
static void
test_tls_sni_list(void **state)
{
	static const uint8_t ext[] = {
		0x00, 0x00, 0x00, 0x19, 0x00, 0x17,
		0x07, 0x00, 0x03, 'x', 'y', 'z',
		0x00, 0x00, 0x05, 'f', 'i', 'r', 's', 't',
		0x00, 0x00, 0x06, 's', 'e', 'c', 'o', 'n', 'd',
	};
	struct hello_opts o = { 0 };
	struct sniff_info info;
	struct hello h;
	uint8_t *rec;
	size_t len, ext_at;

	(void)state;
	hello_build(&h, &o);
	/* The extensions length is the fifth length field written. */
	ext_at = h.mark_at[4];
	memmove(h.b + ext_at + 2 + sizeof(ext), h.b + ext_at + 2,
	    h.n - ext_at - 2);
	memcpy(h.b + ext_at + 2, ext, sizeof(ext));
	h.n += sizeof(ext);
	len = (size_t)h.b[ext_at] << 8 | h.b[ext_at + 1];
	len += sizeof(ext);
	h.b[ext_at] = (uint8_t)(len >> 8);
	h.b[ext_at + 1] = (uint8_t)len;
	h.b[1] = 0;
	h.b[2] = (uint8_t)((h.n - 4) >> 8);
	h.b[3] = (uint8_t)(h.n - 4);
	rec = records(h.b, h.n, 16384, &len);
	assert_int_equal(parse_exact(sniff_tls_client_hello, rec, len, &info),
	    SNIFF_FOUND);
	assert_string_equal(info.name, "first");
	free(rec);
}

/* Two server_name or ALPN extensions: two answers, so none. */
static void
test_tls_duplicates(void **state)
{
	struct hello_opts o = { .sni = "one.example", .alpn = "h2" };
	struct sniff_info info;
	struct hello h;
	uint8_t *rec;
	size_t len;
	int dup;

	(void)state;
	for (dup = 0; dup < 3; dup++) {
		hello_build(&h, &o);
		/* Reopen the extensions and the message: one more. */
		h.depth = 0;
		h.open[h.depth] = 1;
		h.open_width[h.depth++] = 3;
		h.open[h.depth] = h.mark_at[4];
		h.open_width[h.depth++] = 2;
		if (dup == 0)
			ext_sni(&h, "two.example", 11);
		else if (dup == 1)
			ext_alpn(&h, "http/1.1");
		else {
			ext_fill(&h, 0xfe0d, 4, 1);
			ext_fill(&h, 0xfe0d, 4, 1);
		}
		len_close(&h);
		len_close(&h);
		rec = records(h.b, h.n, 16384, &len);
		assert_int_equal(parse_exact(sniff_tls_client_hello, rec, len,
		    &info), SNIFF_NONE);
		free(rec);
	}
}

/*
 * Every length field cut by one, grown by one and set to its largest.
 * Inside the message that is malformed at once; the message's own length
 * grown can only mean more is coming. Only a heap copy of the exact
 * bytes is read, so an overrun is ASan's to see.
 */
static void
test_tls_lengths(void **state)
{
	struct hello_opts o = { .sni = "len.example", .alpn = "h2,http/1.1",
	    .ech = true, .grease = true };
	struct sniff_info info;
	struct hello h, bad;
	enum sniff_result r;
	uint8_t *rec;
	size_t len, v, max, at;
	int m, d, w, i;

	(void)state;
	hello_build(&h, &o);
	assert_true(h.marks > 15);
	for (m = 0; m < h.marks; m++) {
		at = h.mark_at[m];
		w = h.mark_width[m];
		for (v = 0, i = 0; i < w; i++)
			v = v << 8 | h.b[at + (size_t)i];
		max = ((size_t)1 << (8 * w)) - 1;
		for (d = 0; d < 3; d++) {
			bad = h;
			len = d == 0 ? v - 1 : d == 1 ? v + 1 : max;
			if (len > max || len == v)
				continue;
			for (i = 0; i < w; i++)
				bad.b[at + (size_t)i] = (uint8_t)(len >>
				    (8 * (w - 1 - i)));
			rec = records(bad.b, bad.n, 16384, &len);
			r = parse_exact(sniff_tls_client_hello, rec, len,
			    &info);
			if (m == 0 && d == 1)
				assert_int_equal(r, SNIFF_NEED_MORE);
			else
				assert_int_equal(r, SNIFF_NONE);
			free(rec);
		}
	}
	/* The record's own length: grown, the message still ends first and
	 * nothing after it is waited for; cut, its last byte is missing. */
	hello_build(&h, &o);
	rec = records(h.b, h.n, 16384, &len);
	rec[4]++;
	assert_int_equal(parse_exact(sniff_tls_client_hello, rec, len, &info),
	    SNIFF_FOUND);
	rec[4] -= 2;
	assert_int_not_equal(parse_exact(sniff_tls_client_hello, rec, len,
	    &info), SNIFF_FOUND);
	rec[3] = 0x40;                  /* over 2^14 */
	assert_int_equal(parse_exact(sniff_tls_client_hello, rec, len, &info),
	    SNIFF_NONE);
	rec[3] = rec[4] = 0;            /* empty */
	assert_int_equal(parse_exact(sniff_tls_client_hello, rec, len, &info),
	    SNIFF_NONE);
	free(rec);
}

static void
test_tls_not_tls(void **state)
{
	static const uint8_t sslv2[] = { 0x80, 0x2e, 0x01, 0x00, 0x02 };
	static const uint8_t alert[] = { 21, 3, 1, 0, 2, 2, 40 };
	static const uint8_t v305[] = { 22, 3, 5, 0, 4 };
	static const uint8_t v2xx[] = { 22, 2 };
	static const uint8_t server_hello[] = { 22, 3, 3, 0, 4, 2, 0, 0, 0 };
	static const uint8_t huge[] = { 22, 3, 3, 0, 4, 1, 0, 0x40, 0x00 };
	static const uint8_t http[] = "GET / HTTP/1.1\r\n";
	static const uint8_t prefix[] = { 22, 3, 1 };
	struct sniff_info info;

	(void)state;
	assert_int_equal(parse_exact(sniff_tls_client_hello, sslv2,
	    sizeof(sslv2), &info), SNIFF_NONE);
	assert_int_equal(parse_exact(sniff_tls_client_hello, alert,
	    sizeof(alert), &info), SNIFF_NONE);
	assert_int_equal(parse_exact(sniff_tls_client_hello, v305,
	    sizeof(v305), &info), SNIFF_NONE);
	assert_int_equal(parse_exact(sniff_tls_client_hello, v2xx,
	    sizeof(v2xx), &info), SNIFF_NONE);
	assert_int_equal(parse_exact(sniff_tls_client_hello, server_hello,
	    sizeof(server_hello), &info), SNIFF_NONE);
	assert_int_equal(parse_exact(sniff_tls_client_hello, huge,
	    sizeof(huge), &info), SNIFF_NONE);
	assert_int_equal(parse_exact(sniff_tls_client_hello, http,
	    sizeof(http) - 1, &info), SNIFF_NONE);
	assert_int_equal(parse_exact(sniff_tls_client_hello, prefix,
	    sizeof(prefix), &info), SNIFF_NEED_MORE);
	assert_int_equal(parse_exact(sniff_tls_client_hello, prefix, 0,
	    &info), SNIFF_NEED_MORE);
}

/* What OpenSSL itself sends, read back out of a memory BIO. */
static void
test_tls_openssl(void **state)
{
	static const uint8_t alpn[] = { 2, 'h', '2', 8, 'h', 't', 't', 'p',
	    '/', '1', '.', '1' };
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	struct sniff_info info;
	BIO *rbio, *wbio;
	char *data;
	long len;
	SSL *ssl;

	(void)state;
	assert_non_null(ctx);
	assert_non_null(ssl = SSL_new(ctx));
	rbio = BIO_new(BIO_s_mem());
	wbio = BIO_new(BIO_s_mem());
	assert_true(rbio != NULL && wbio != NULL);
	SSL_set_bio(ssl, rbio, wbio);
	assert_int_equal(SSL_set_tlsext_host_name(ssl, "Real.Example.ORG"), 1);
	assert_int_equal(SSL_set_alpn_protos(ssl, alpn, sizeof(alpn)), 0);
	SSL_set_connect_state(ssl);
	assert_true(SSL_connect(ssl) <= 0);
	len = BIO_get_mem_data(wbio, &data);
	assert_true(len > 100);
	prefixes_need_more(sniff_tls_client_hello, data, (size_t)len,
	    SNIFF_FOUND, &info);
	assert_string_equal(info.name, "real.example.org");
	assert_string_equal(info.alpn, "h2");
	assert_false(info.ech || info.name_is_ip);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
}

/* ---- HTTP ---- */

static enum sniff_result
http(const char *head, struct sniff_info *info)
{
	return parse_exact(sniff_http_host, head, strlen(head), info);
}

static const char *
http_name(const char *head)
{
	static struct sniff_info info;

	assert_int_equal(http(head, &info), SNIFF_FOUND);
	assert_false(info.several_hosts);
	return info.name_is_ip ? "IP" : info.name;
}

static void
test_http_names(void **state)
{
	(void)state;
	assert_string_equal(http_name("GET / HTTP/1.1\r\n"
	    "Host: www.example.org\r\n\r\n"), "www.example.org");
	assert_string_equal(http_name("GET http://Abs.Example.COM:8080/x?y "
	    "HTTP/1.1\r\nHost: other.example\r\n\r\n"), "abs.example.com");
	assert_string_equal(http_name("GET HTTP://abs.example HTTP/1.0\r\n"
	    "\r\n"), "abs.example");
	assert_string_equal(http_name("GET https://user:pw@good.example@"
	    "evil.example/ HTTP/1.1\r\n\r\n"), "evil.example");
	assert_string_equal(http_name("POST /form HTTP/1.1\r\n"
	    "Content-Length: 0\r\nHost: Example.ORG.:8080\r\n\r\n"),
	    "example.org");
	assert_string_equal(http_name("GET / HTTP/1.1\r\nhOsT:\t  spaced."
	    "example \t\r\nAccept: */*\r\n\r\n"), "spaced.example");
	assert_string_equal(http_name("GET / HTTP/1.1\nHost: lf.example\n\n"),
	    "lf.example");
	assert_string_equal(http_name("GET / HTTP/1.1\r\nHost: [::1]:8080"
	    "\r\n\r\n"), "IP");
	assert_string_equal(http_name("GET / HTTP/1.1\r\nHost: [::1]\r\n"
	    "\r\n"), "IP");
	assert_string_equal(http_name("GET http://[2001:db8::7]:81/ HTTP/1.1"
	    "\r\n\r\n"), "IP");
	assert_string_equal(http_name("GET / HTTP/1.1\r\nHost: 10.0.0.1:80"
	    "\r\n\r\n"), "IP");
	assert_string_equal(http_name("GET / HTTP/1.1\r\nHost: h.example:"
	    "\r\n\r\n"), "h.example");
	/* An absolute form wins over Host, even a bad one. */
	assert_string_equal(http_name("GET http:///x HTTP/1.1\r\n"
	    "Host: h.example\r\n\r\n"), "");
	/* No usable name: a port that is not one, bare IPv6, junk. */
	assert_string_equal(http_name("GET / HTTP/1.1\r\nHost: h.example:8x"
	    "\r\n\r\n"), "");
	assert_string_equal(http_name("GET / HTTP/1.1\r\nHost: h.example:"
	    "123456\r\n\r\n"), "");
	assert_string_equal(http_name("GET / HTTP/1.1\r\nHost: ::1\r\n\r\n"),
	    "");
	assert_string_equal(http_name("GET / HTTP/1.1\r\nHost: [::1]x\r\n"
	    "\r\n"), "");
	assert_string_equal(http_name("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"),
	    "");
	assert_string_equal(http_name("GET / HTTP/1.1\r\nHost: a,b\r\n\r\n"),
	    "");
	assert_string_equal(http_name("GET / HTTP/1.1\r\nHost:\r\n\r\n"), "");
	/* A Host folded onto a second line is not one name. */
	assert_string_equal(http_name("GET / HTTP/1.1\r\nHost: a.example\r\n"
	    " b.example\r\n\r\n"), "");
	assert_string_equal(http_name("GET / HTTP/1.1\r\nHost: a.example\r\n"
	    "X: 1\r\n b\r\n\r\n"), "a.example");
	/* No Host and no absolute form: found, no name. */
	assert_string_equal(http_name("GET / HTTP/1.0\r\n\r\n"), "");
	assert_string_equal(http_name("OPTIONS * HTTP/1.1\r\nX-Host: x\r\n"
	    "\r\n"), "");
	assert_string_equal(http_name("VERSION-CONTROL /r HTTP/1.1\r\n"
	    "Host: dav.example\r\n\r\n"), "dav.example");
}

static void
test_http_several_hosts(void **state)
{
	struct sniff_info info;

	(void)state;
	assert_int_equal(http("GET / HTTP/1.1\r\nHost: a.example\r\n"
	    "host: b.example\r\n\r\n", &info), SNIFF_FOUND);
	assert_true(info.several_hosts);
	assert_string_equal(info.name, "");
	assert_int_equal(http("GET http://a.example/ HTTP/1.1\r\n"
	    "Host: a.example\r\nHOST: a.example\r\n\r\n", &info), SNIFF_FOUND);
	assert_true(info.several_hosts);
	assert_string_equal(info.name, "");
}

static void
test_http_partial(void **state)
{
	static const char head[] = "GET /index.html HTTP/1.1\r\n"
	    "Host: partial.example\r\nUser-Agent: t\r\n\r\n";
	struct sniff_info info;

	(void)state;
	prefixes_need_more(sniff_http_host, head, sizeof(head) - 1,
	    SNIFF_FOUND, &info);
	assert_string_equal(info.name, "partial.example");
	/* The body that follows is not read. */
	assert_int_equal(http("POST / HTTP/1.1\r\nHost: b.example\r\n\r\n"
	    "\x16\x03\x01\x00", &info), SNIFF_FOUND);
	assert_string_equal(info.name, "b.example");
}

static void
test_http_not_http(void **state)
{
	static const uint8_t junk[] = { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01 };
	static const uint8_t nul[] = { 'G', 'E', 'T', ' ', '/', 0, ' ' };
	static const char *const bad[] = {
		"get / HTTP/1.1\r\n",
		"GET  / HTTP/1.1\r\n",
		" GET / HTTP/1.1\r\n",
		"-GET / HTTP/1.1\r\n",
		"GET / HTTP/2.0\r\n",
		"GET / HTTP/1.2\r\n",
		"GET / http/1.1\r\n",
		"GET /\r\n",
		"GET / HTTP/1.1\rX",
		"GET / HTTP/1.1 \r\n",
		"GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
		"GET / HTTP/1.1\r\nBad name: x\r\n\r\n",
		"GET / HTTP/1.1\r\n: empty\r\n\r\n",
		"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",
		"GET / HTTP/1.1\r\nX: \x01\r\n\r\n",
		"SSH-2.0-OpenSSH_9.2\r\n",
		"ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJ / HTTP/1.1\r\n",
	};
	struct sniff_info info;
	char *line;
	size_t i;

	(void)state;
	assert_int_equal(parse_exact(sniff_http_host, junk, sizeof(junk),
	    &info), SNIFF_NONE);
	assert_int_equal(parse_exact(sniff_http_host, nul, sizeof(nul),
	    &info), SNIFF_NONE);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(http(bad[i], &info), SNIFF_NONE);
	assert_int_equal(http("", &info), SNIFF_NEED_MORE);
	assert_int_equal(http("GE", &info), SNIFF_NEED_MORE);
	/* A request line with no end in sight is given up on at 8 KiB. */
	line = malloc(SNIFF_HTTP_LINE_MAX + 16);
	assert_non_null(line);
	memcpy(line, "GET /", 5);
	memset(line + 5, 'a', SNIFF_HTTP_LINE_MAX + 10);
	line[SNIFF_HTTP_LINE_MAX + 15] = '\0';
	assert_int_equal(http(line, &info), SNIFF_NONE);
	line[SNIFF_HTTP_LINE_MAX - 10] = '\0';
	assert_int_equal(http(line, &info), SNIFF_NEED_MORE);
	free(line);
}

/* ---- QUIC ---- */

/* RFC 9001 A.2 and RFC 9369 A.2: the same CRYPTO frame (a ClientHello
 * for example.com) in a 1162-byte payload, sealed for DCID 8394c8f0
 * 3e515708 with packet number 2. */
static const char rfc_frame_hex[] =
    "060040f1010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e868"
    "04fe3a47f06a2b69484c00000413011302010000c000000010000e00000b6578"
    "616d706c652e636f6dff01000100000a00080006001d00170018001000070005"
    "04616c706e000500050100000000003300260024001d00209370b2c9caa47fba"
    "baf4559fedba753de171fa71f50f1ce15d43e994ec74d748002b000302030400"
    "0d0010000e0403050306030203080408050806002d00020101001c0002400100"
    "3900320408ffffffffffffffff05048000ffff07048000ffff08011001048000"
    "75300901100f088394c8f03e51570806048000ffff";
#define RFC_PAYLOAD_LEN 1162

static const char rfc9001_packet_hex[] =
    "c000000001088394c8f03e5157080000449e7b9aec34d1b1c98dd7689fb8ec11"
    "d242b123dc9bd8bab936b47d92ec356c0bab7df5976d27cd449f63300099f399"
    "1c260ec4c60d17b31f8429157bb35a1282a643a8d2262cad67500cadb8e7378c"
    "8eb7539ec4d4905fed1bee1fc8aafba17c750e2c7ace01e6005f80fcb7df6212"
    "30c83711b39343fa028cea7f7fb5ff89eac2308249a02252155e2347b63d58c5"
    "457afd84d05dfffdb20392844ae812154682e9cf012f9021a6f0be17ddd0c208"
    "4dce25ff9b06cde535d0f920a2db1bf362c23e596d11a4f5a6cf3948838a3aec"
    "4e15daf8500a6ef69ec4e3feb6b1d98e610ac8b7ec3faf6ad760b7bad1db4ba3"
    "485e8a94dc250ae3fdb41ed15fb6a8e5eba0fc3dd60bc8e30c5c4287e53805db"
    "059ae0648db2f64264ed5e39be2e20d82df566da8dd5998ccabdae053060ae6c"
    "7b4378e846d29f37ed7b4ea9ec5d82e7961b7f25a9323851f681d582363aa5f8"
    "9937f5a67258bf63ad6f1a0b1d96dbd4faddfcefc5266ba6611722395c906556"
    "be52afe3f565636ad1b17d508b73d8743eeb524be22b3dcbc2c7468d54119c74"
    "68449a13d8e3b95811a198f3491de3e7fe942b330407abf82a4ed7c1b311663a"
    "c69890f4157015853d91e923037c227a33cdd5ec281ca3f79c44546b9d90ca00"
    "f064c99e3dd97911d39fe9c5d0b23a229a234cb36186c4819e8b9c5927726632"
    "291d6a418211cc2962e20fe47feb3edf330f2c603a9d48c0fcb5699dbfe58964"
    "25c5bac4aee82e57a85aaf4e2513e4f05796b07ba2ee47d80506f8d2c25e50fd"
    "14de71e6c418559302f939b0e1abd576f279c4b2e0feb85c1f28ff18f58891ff"
    "ef132eef2fa09346aee33c28eb130ff28f5b766953334113211996d20011a198"
    "e3fc433f9f2541010ae17c1bf202580f6047472fb36857fe843b19f5984009dd"
    "c324044e847a4f4a0ab34f719595de37252d6235365e9b84392b061085349d73"
    "203a4a13e96f5432ec0fd4a1ee65accdd5e3904df54c1da510b0ff20dcc0c77f"
    "cb2c0e0eb605cb0504db87632cf3d8b4dae6e705769d1de354270123cb11450e"
    "fc60ac47683d7b8d0f811365565fd98c4c8eb936bcab8d069fc33bd801b03ade"
    "a2e1fbc5aa463d08ca19896d2bf59a071b851e6c239052172f296bfb5e724047"
    "90a2181014f3b94a4e97d117b438130368cc39dbb2d198065ae3986547926cd2"
    "162f40a29f0c3c8745c0f50fba3852e566d44575c29d39a03f0cda721984b6f4"
    "40591f355e12d439ff150aab7613499dbd49adabc8676eef023b15b65bfc5ca0"
    "6948109f23f350db82123535eb8a7433bdabcb909271a6ecbcb58b936a88cd4e"
    "8f2e6ff5800175f113253d8fa9ca8885c2f552e657dc603f252e1a8e308f76f0"
    "be79e2fb8f5d5fbbe2e30ecadd220723c8c0aea8078cdfcb3868263ff8f09400"
    "54da48781893a7e49ad5aff4af300cd804a6b6279ab3ff3afb64491c85194aab"
    "760d58a606654f9f4400e8b38591356fbf6425aca26dc85244259ff2b19c41b9"
    "f96f3ca9ec1dde434da7d2d392b905ddf3d1f9af93d1af5950bd493f5aa731b4"
    "056df31bd267b6b90a079831aaf579be0a39013137aac6d404f518cfd4684064"
    "7e78bfe706ca4cf5e9c5453e9f7cfd2b8b4c8d169a44e55c88d4a9a7f9474241"
    "e221af44860018ab0856972e194cd934";

static const char rfc9369_packet_hex[] =
    "d76b3343cf088394c8f03e5157080000449ea0c95e82ffe67b6abcdb4298b485"
    "dd04de806071bf03dceebfa162e75d6c96058bdbfb127cdfcbf903388e99ad04"
    "9f9a3dd4425ae4d0992cfff18ecf0fdb5a842d09747052f17ac2053d21f57c5d"
    "250f2c4f0e0202b70785b7946e992e58a59ac52dea6774d4f03b55545243cf1a"
    "12834e3f249a78d395e0d18f4d766004f1a2674802a747eaa901c3f10cda5500"
    "cb9122faa9f1df66c392079a1b40f0de1c6054196a11cbea40afb6ef5253cd68"
    "18f6625efce3b6def6ba7e4b37a40f7732e093daa7d52190935b8da58976ff33"
    "12ae50b187c1433c0f028edcc4c2838b6a9bfc226ca4b4530e7a4ccee1bfa2a3"
    "d396ae5a3fb512384b2fdd851f784a65e03f2c4fbe11a53c7777c023462239dd"
    "6f7521a3f6c7d5dd3ec9b3f233773d4b46d23cc375eb198c63301c21801f6520"
    "bcfb7966fc49b393f0061d974a2706df8c4a9449f11d7f3d2dcbb90c6b877045"
    "636e7c0c0fe4eb0f697545460c806910d2c355f1d253bc9d2452aaa549e27a1f"
    "ac7cf4ed77f322e8fa894b6a83810a34b361901751a6f5eb65a0326e07de7c12"
    "16ccce2d0193f958bb3850a833f7ae432b65bc5a53975c155aa4bcb4f7b2c4e5"
    "4df16efaf6ddea94e2c50b4cd1dfe06017e0e9d02900cffe1935e0491d77ffb4"
    "fdf85290fdd893d577b1131a610ef6a5c32b2ee0293617a37cbb08b847741c3b"
    "8017c25ca9052ca1079d8b78aebd47876d330a30f6a8c6d61dd1ab5589329de7"
    "14d19d61370f8149748c72f132f0fc99f34d766c6938597040d8f9e2bb522ff9"
    "9c63a344d6a2ae8aa8e51b7b90a4a806105fcbca31506c446151adfeceb51b91"
    "abfe43960977c87471cf9ad4074d30e10d6a7f03c63bd5d4317f68ff325ba3bd"
    "80bf4dc8b52a0ba031758022eb025cdd770b44d6d6cf0670f4e990b22347a7db"
    "848265e3e5eb72dfe8299ad7481a408322cac55786e52f633b2fb6b614eaed18"
    "d703dd84045a274ae8bfa73379661388d6991fe39b0d93debb41700b41f90a15"
    "c4d526250235ddcd6776fc77bc97e7a417ebcb31600d01e57f32162a8560cacc"
    "7e27a096d37a1a86952ec71bd89a3e9a30a2a26162984d7740f81193e8238e61"
    "f6b5b984d4d3dfa033c1bb7e4f0037febf406d91c0dccf32acf423cfa1e70710"
    "10d3f270121b493ce85054ef58bada42310138fe081adb04e2bd901f2f13458b"
    "3d6758158197107c14ebb193230cd1157380aa79cae1374a7c1e5bbcb80ee23e"
    "06ebfde206bfb0fcbc0edc4ebec309661bdd908d532eb0c6adc38b7ca7331dce"
    "8dfce39ab71e7c32d318d136b6100671a1ae6a6600e3899f31f0eed19e3417d1"
    "34b90c9058f8632c798d4490da4987307cba922d61c39805d072b589bd52fdf1"
    "e86215c2d54e6670e07383a27bbffb5addf47d66aa85a0c6f9f32e59d85a44dd"
    "5d3b22dc2be80919b490437ae4f36a0ae55edf1d0b5cb4e9a3ecabee93dfc6e3"
    "8d209d0fa6536d27a5d6fbb17641cde27525d61093f1b28072d111b2b4ae5f89"
    "d5974ee12e5cf7d5da4d6a31123041f33e61407e76cffcdcfd7e19ba58cf4b53"
    "6f4c4938ae79324dc402894b44faf8afbab35282ab659d13c93f70412e85cb19"
    "9a37ddec600545473cfb5a05e08d0b209973b2172b4d21fb69745a262ccde96b"
    "a18b2faa745b6fe189cf772a9f84cbfc";

static const uint8_t rfc_dcid[] = {
	0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08
};

static size_t
unhex(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = strlen(hex) / 2, i;
	unsigned v;

	assert_true(n <= cap);
	for (i = 0; i < n; i++) {
		assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
	return n;
}

/* The datagram fed in a heap buffer of exactly its size. */
static enum sniff_result
quic_feed(struct sniff_quic *st, const uint8_t *pkt, size_t len,
    struct sniff_info *info)
{
	uint8_t *copy = malloc(len > 0 ? len : 1);
	enum sniff_result r;

	assert_non_null(copy);
	memcpy(copy, pkt, len);
	memset(info, 0x5a, sizeof(*info));
	r = sniff_quic_initial(st, copy, len, info);
	free(copy);
	assert_non_null(memchr(info->name, '\0', sizeof(info->name)));
	if (r != SNIFF_FOUND)
		assert_true(info->name[0] == '\0' && info->alpn[0] == '\0');
	return r;
}

static struct sniff_quic *
quic_state(void)
{
	struct sniff_quic *st = calloc(1, sizeof(*st));

	assert_non_null(st);
	return st;
}

static void
test_quic_rfc_samples(void **state)
{
	static const char *const hex[] = { rfc9001_packet_hex,
	    rfc9369_packet_hex };
	uint8_t pkt[DGRAM_MAX];
	struct sniff_info info;
	struct sniff_quic *st;
	size_t n, v;

	(void)state;
	for (v = 0; v < 2; v++) {
		n = unhex(hex[v], pkt, sizeof(pkt));
		assert_int_equal(n, 1200);
		st = quic_state();
		assert_int_equal(quic_feed(st, pkt, n, &info), SNIFF_FOUND);
		assert_string_equal(info.name, "example.com");
		assert_string_equal(info.alpn, "alpn");
		assert_false(info.ech || info.name_is_ip);
		/* Decided: the same answer again, whatever comes. */
		assert_int_equal(quic_feed(st, pkt, 10, &info), SNIFF_FOUND);
		assert_string_equal(info.name, "example.com");
		free(st);
	}
}

/* Sealing the RFC's plaintext gives the RFC's packets, byte for byte. */
static void
test_quic_seal_rfc(void **state)
{
	uint8_t payload[RFC_PAYLOAD_LEN] = { 0 }, want[DGRAM_MAX];
	uint8_t got[DGRAM_MAX];
	struct sniff_quic_packet p = { .dcid = rfc_dcid,
	    .dcid_len = sizeof(rfc_dcid), .pn = 2, .payload = payload,
	    .payload_len = sizeof(payload) };

	(void)state;
	unhex(rfc_frame_hex, payload, sizeof(payload));
	p.version = SNIFF_QUIC_V1;
	assert_int_equal(unhex(rfc9001_packet_hex, want, sizeof(want)), 1200);
	assert_int_equal(sniff_quic_seal(&p, got, sizeof(got)), 1200);
	assert_memory_equal(got, want, 1200);
	p.version = SNIFF_QUIC_V2;
	assert_int_equal(unhex(rfc9369_packet_hex, want, sizeof(want)), 1200);
	assert_int_equal(sniff_quic_seal(&p, got, sizeof(got)), 1200);
	assert_memory_equal(got, want, 1200);
	assert_int_equal(sniff_quic_seal(&p, got, 1199), 0);
	p.version = 0xff00001d;
	assert_int_equal(sniff_quic_seal(&p, got, sizeof(got)), 0);
}

/* Frames for a test payload. */
struct frames {
	uint8_t b[DGRAM_MAX];
	size_t n;
};

static void
frame_varint(struct frames *f, uint64_t v)
{
	assert_true(f->n + 4 <= sizeof(f->b) && v < 0x40000000);
	if (v < 0x40) {
		f->b[f->n++] = (uint8_t)v;
	} else if (v < 0x4000) {
		f->b[f->n++] = (uint8_t)(0x40 | v >> 8);
		f->b[f->n++] = (uint8_t)v;
	} else {
		f->b[f->n++] = (uint8_t)(0x80 | v >> 24);
		f->b[f->n++] = (uint8_t)(v >> 16);
		f->b[f->n++] = (uint8_t)(v >> 8);
		f->b[f->n++] = (uint8_t)v;
	}
}

static void
frame_crypto(struct frames *f, uint64_t off, const uint8_t *data, size_t n)
{
	frame_varint(f, 0x06);
	frame_varint(f, off);
	frame_varint(f, n);
	assert_true(f->n + n <= sizeof(f->b));
	memcpy(f->b + f->n, data, n);
	f->n += n;
}

/* An ACK of packet 0, a PING and a CONNECTION_CLOSE's shape: frames a
 * client's Initial may carry, to be stepped over. */
static void
frame_others(struct frames *f)
{
	static const uint8_t acks[] = {
		0x02, 0x00, 0x00, 0x00, 0x00,
		0x03, 0x05, 0x40, 0x10, 0x01, 0x01, 0x01, 0x01, 0x00,
		0x00, 0x00,
		0x01, 0x00, 0x00,
		0x1c, 0x0a, 0x06, 0x02, 'o', 'k',
	};

	memcpy(f->b + f->n, acks, sizeof(acks));
	f->n += sizeof(acks);
}

/* One client Initial of version v, padded to pad bytes; appended to
 * the datagram at out (*len so far). */
static void
seal_into(uint8_t *out, size_t *len, uint32_t v, const uint8_t *dcid,
    const uint8_t *key_dcid, uint64_t pn, const struct frames *f,
    size_t pad)
{
	uint8_t payload[DGRAM_MAX] = { 0 };
	struct sniff_quic_packet p = { .version = v, .dcid = dcid,
	    .dcid_len = 8, .key_dcid = key_dcid, .key_dcid_len = 8,
	    .pn = pn, .payload = payload };
	size_t n;

	memcpy(payload, f->b, f->n);
	p.payload_len = f->n > pad ? f->n : pad;
	n = sniff_quic_seal(&p, out + *len, DGRAM_MAX - *len);
	assert_true(n > 0);
	*len += n;
}

static const uint8_t dcid_a[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
static const uint8_t dcid_b[8] = { 9, 9, 9, 9, 9, 9, 9, 9 };

/* A 2 KB hello in two CRYPTO frames, the second half first, two
 * datagrams; the second to a DCID the server chose (first keys). */
static void
test_quic_split_reordered(void **state)
{
	struct hello_opts o = { .sni = "quic.example", .alpn = "h3",
	    .key_share = 1252 };
	static const uint8_t short_hdr[40] = { 0x40, 1, 2, 3 };
	uint8_t dg[DGRAM_MAX];
	struct sniff_info info;
	struct sniff_quic *st;
	struct frames f;
	struct hello h;
	size_t len, cut;
	uint32_t v;

	(void)state;
	hello_build(&h, &o);
	assert_true(h.n > 1300);
	cut = 1100;
	for (v = 0; v < 2; v++) {
		uint32_t version = v ? SNIFF_QUIC_V2 : SNIFF_QUIC_V1;

		st = quic_state();
		f.n = 0;
		frame_crypto(&f, cut, h.b + cut, h.n - cut);
		len = 0;
		seal_into(dg, &len, version, dcid_a, NULL, 1, &f, 1200);
		assert_int_equal(quic_feed(st, dg, len, &info),
		    SNIFF_NEED_MORE);
		/* A 1-RTT packet in between is nothing to the sniffer. */
		assert_int_equal(quic_feed(st, short_hdr, sizeof(short_hdr),
		    &info), SNIFF_NEED_MORE);
		f.n = 0;
		frame_others(&f);
		frame_crypto(&f, 0, h.b, cut);
		len = 0;
		seal_into(dg, &len, version, dcid_b, dcid_a, 0, &f, 1200);
		assert_int_equal(quic_feed(st, dg, len, &info), SNIFF_FOUND);
		assert_string_equal(info.name, "quic.example");
		assert_string_equal(info.alpn, "h3");
		free(st);
	}
}

/* Two Initials coalesced in one datagram, a Handshake packet and junk
 * behind them; and keys from a later DCID of its own (after a Retry). */
static void
test_quic_coalesced(void **state)
{
	struct hello_opts o = { .sni = "co.example" };
	static const uint8_t handshake[] = { 0xe0, 0, 0, 0, 1, 0, 0, 0x05,
	    1, 2, 3, 4, 5 };
	uint8_t dg[DGRAM_MAX];
	struct sniff_info info;
	struct sniff_quic *st;
	struct frames f;
	struct hello h;
	size_t len = 0;

	(void)state;
	hello_build(&h, &o);
	st = quic_state();
	f.n = 0;
	frame_crypto(&f, 0, h.b, 50);
	seal_into(dg, &len, SNIFF_QUIC_V1, dcid_a, NULL, 0, &f, 0);
	f.n = 0;
	frame_crypto(&f, 50, h.b + 50, h.n - 50);
	seal_into(dg, &len, SNIFF_QUIC_V1, dcid_a, NULL, 1, &f, 0);
	memcpy(dg + len, handshake, sizeof(handshake));
	len += sizeof(handshake);
	memset(dg + len, 0, 100);
	len += 100;
	assert_int_equal(quic_feed(st, dg, len, &info), SNIFF_FOUND);
	assert_string_equal(info.name, "co.example");
	free(st);
	/* After a Retry: the rest under keys from the new DCID. */
	st = quic_state();
	len = 0;
	f.n = 0;
	frame_crypto(&f, 0, h.b, 50);
	seal_into(dg, &len, SNIFF_QUIC_V1, dcid_a, NULL, 0, &f, 1200);
	assert_int_equal(quic_feed(st, dg, len, &info), SNIFF_NEED_MORE);
	len = 0;
	f.n = 0;
	frame_crypto(&f, 0, h.b, h.n);
	seal_into(dg, &len, SNIFF_QUIC_V1, dcid_b, NULL, 1, &f, 1200);
	assert_int_equal(quic_feed(st, dg, len, &info), SNIFF_FOUND);
	assert_string_equal(info.name, "co.example");
	free(st);
}

static void
test_quic_not_quic(void **state)
{
	static const uint8_t short_hdr[1200] = { 0x40, 1, 2, 3 };
	static const uint8_t dns[] = { 0x12, 0x34, 0x01, 0x00, 0x00, 0x01 };
	uint8_t pkt[DGRAM_MAX], good[DGRAM_MAX];
	struct sniff_info info;
	struct sniff_quic *st;
	size_t n, i;

	(void)state;
	n = unhex(rfc9001_packet_hex, good, sizeof(good));
	st = quic_state();
	assert_int_equal(quic_feed(st, short_hdr, sizeof(short_hdr), &info),
	    SNIFF_NONE);
	/* Decided: a good Initial after that changes nothing. */
	assert_int_equal(quic_feed(st, good, n, &info), SNIFF_NONE);
	free(st);
	st = quic_state();
	assert_int_equal(quic_feed(st, dns, sizeof(dns), &info), SNIFF_NONE);
	free(st);
	st = quic_state();
	assert_int_equal(quic_feed(st, good, 0, &info), SNIFF_NONE);
	free(st);
	/* An unknown version, a Handshake packet first, a broken tag, a
	 * flipped header bit: none opens. */
	for (i = 0; i < 4; i++) {
		memcpy(pkt, good, n);
		if (i == 0)
			pkt[4] = 2;
		else if (i == 1)
			pkt[0] ^= 0x20;
		else if (i == 2)
			pkt[n - 1] ^= 1;
		else
			pkt[9] ^= 1;
		st = quic_state();
		assert_int_equal(quic_feed(st, pkt, n, &info), SNIFF_NONE);
		free(st);
	}
	/* Every truncation of the datagram: framed wrong, never read past. */
	for (i = 0; i < n; i++) {
		st = quic_state();
		assert_int_equal(quic_feed(st, good, i, &info), SNIFF_NONE);
		free(st);
	}
}

/* The CRYPTO stream must start with a ClientHello that fits. */
static void
test_quic_bad_stream(void **state)
{
	static const uint8_t server_hello[] = { 2, 0, 0, 4, 3, 3, 0, 0 };
	static const uint8_t huge[] = { 1, 0, 0x20, 0x00, 3, 3 };
	static const uint8_t stream[] = { 0x08, 0x00, 0x01, 'x' };
	struct hello_opts o = { .sni = "x.example" };
	uint8_t dg[DGRAM_MAX];
	struct sniff_info info;
	struct sniff_quic *st;
	struct frames f;
	struct hello h;
	size_t len;
	int i;

	(void)state;
	for (i = 0; i < 2; i++) {
		st = quic_state();
		f.n = 0;
		frame_crypto(&f, 0, i ? huge : server_hello,
		    i ? sizeof(huge) : sizeof(server_hello));
		len = 0;
		seal_into(dg, &len, SNIFF_QUIC_V1, dcid_a, NULL, 0, &f, 1200);
		assert_int_equal(quic_feed(st, dg, len, &info), SNIFF_NONE);
		free(st);
	}
	/* A frame no client Initial carries ends the walk: the CRYPTO
	 * frame behind it is not read, a later copy of it is. */
	hello_build(&h, &o);
	st = quic_state();
	f.n = 0;
	memcpy(f.b, stream, sizeof(stream));
	f.n = sizeof(stream);
	frame_crypto(&f, 0, h.b, h.n);
	len = 0;
	seal_into(dg, &len, SNIFF_QUIC_V1, dcid_a, NULL, 0, &f, 1200);
	assert_int_equal(quic_feed(st, dg, len, &info), SNIFF_NEED_MORE);
	f.n = 0;
	frame_crypto(&f, 0, h.b, h.n);
	len = 0;
	seal_into(dg, &len, SNIFF_QUIC_V1, dcid_a, NULL, 1, &f, 1200);
	assert_int_equal(quic_feed(st, dg, len, &info), SNIFF_FOUND);
	assert_string_equal(info.name, "x.example");
	free(st);
}

/* CRYPTO data arriving a few bytes at a time, every frame overlapping
 * the last, across many datagrams. */
static void
test_quic_many_pieces(void **state)
{
	struct hello_opts o = { .sni = "pieces.example", .alpn = "h3" };
	uint8_t dg[DGRAM_MAX];
	struct sniff_info info;
	struct sniff_quic *st;
	struct frames f;
	struct hello h;
	size_t len, off, pn = 0;

	(void)state;
	hello_build(&h, &o);
	st = quic_state();
	for (off = h.n - 1; ; off -= 20, pn++) {
		f.n = 0;
		frame_crypto(&f, off, h.b + off,
		    h.n - off < 30 ? h.n - off : 30);
		len = 0;
		seal_into(dg, &len, SNIFF_QUIC_V2, dcid_a, NULL, pn, &f, 1200);
		assert_int_equal(quic_feed(st, dg, len, &info),
		    off == 0 ? SNIFF_FOUND : SNIFF_NEED_MORE);
		if (off == 0)
			break;
		if (off < 20)
			off = 20;
	}
	assert_string_equal(info.name, "pieces.example");
	assert_string_equal(info.alpn, "h3");
	free(st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tls_sni),
		cmocka_unit_test(test_tls_records),
		cmocka_unit_test(test_tls_byte_by_byte),
		cmocka_unit_test(test_tls_grease),
		cmocka_unit_test(test_tls_no_sni),
		cmocka_unit_test(test_tls_names),
		cmocka_unit_test(test_tls_ech),
		cmocka_unit_test(test_tls_sni_list),
		cmocka_unit_test(test_tls_duplicates),
		cmocka_unit_test(test_tls_lengths),
		cmocka_unit_test(test_tls_not_tls),
		cmocka_unit_test(test_tls_openssl),
		cmocka_unit_test(test_http_names),
		cmocka_unit_test(test_http_several_hosts),
		cmocka_unit_test(test_http_partial),
		cmocka_unit_test(test_http_not_http),
		cmocka_unit_test(test_quic_rfc_samples),
		cmocka_unit_test(test_quic_seal_rfc),
		cmocka_unit_test(test_quic_split_reordered),
		cmocka_unit_test(test_quic_coalesced),
		cmocka_unit_test(test_quic_not_quic),
		cmocka_unit_test(test_quic_bad_stream),
		cmocka_unit_test(test_quic_many_pieces),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
