/*
 * The TLS ClientHello sniffer: handshake records put back together into
 * the ClientHello message, its server_name, ALPN and ECH read; and the
 * host name check every sniffer stores its name through.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "socks5d/sniff.h"

#define TLS_CONTENT_HANDSHAKE   22
#define TLS_HS_CLIENT_HELLO     1
#define TLS_RECORD_HEADER       5
#define TLS_RECORD_MAX          16384   /* RFC 8446 5.1: 2^14 */
#define TLS_HS_HEADER           4
#define TLS_RANDOM_LEN          32
#define TLS_SESSION_ID_MAX      32

#define TLS_EXT_SERVER_NAME     0x0000
#define TLS_EXT_ALPN            0x0010
#define TLS_EXT_ECH             0xfe0d
#define TLS_SNI_HOST_NAME       0

#define SNIFF_NAME_MAX          253     /* RFC 1035, without a final dot */
#define SNIFF_LABEL_MAX         63

/*
 * A length-delimited stretch of a message being read. Every read checks
 * what is left first, so a length that overruns is a false, never a read
 * past the end.
 */
struct sniff_cur {
	const uint8_t *p;
	size_t len;
	size_t pos;
};

static bool
sniff_take_u8(struct sniff_cur *c, unsigned *v)
{
	if (c->len - c->pos < 1)
		return false;
	*v = c->p[c->pos++];
	return true;
}

static bool
sniff_take_u16(struct sniff_cur *c, unsigned *v)
{
	if (c->len - c->pos < 2)
		return false;
	*v = (unsigned)c->p[c->pos] << 8 | c->p[c->pos + 1];
	c->pos += 2;
	return true;
}

static bool
sniff_skip(struct sniff_cur *c, size_t n)
{
	if (c->len - c->pos < n)
		return false;
	c->pos += n;
	return true;
}

/* A vector with a 1- or 2-byte length in front: *sub covers its body. */
static bool
sniff_take_vec(struct sniff_cur *c, int width, struct sniff_cur *sub)
{
	unsigned n;

	if (!(width == 1 ? sniff_take_u8(c, &n) : sniff_take_u16(c, &n)) ||
	    c->len - c->pos < n)
		return false;
	sub->p = c->p + c->pos;
	sub->len = n;
	sub->pos = 0;
	c->pos += n;
	return true;
}

/* RFC 8701: GREASE code points are 0x?a?a, both bytes the same. */
static bool
sniff_is_grease(uint8_t hi, uint8_t lo)
{
	return hi == lo && (hi & 0x0f) == 0x0a;
}

static bool
sniff_is_name_char(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
}

/* IPv6 text, bare or in brackets. */
static bool
sniff_is_ip6(const uint8_t *host, size_t len)
{
	char text[INET6_ADDRSTRLEN];
	struct in6_addr a6;

	if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
		host++;
		len -= 2;
	}
	if (len == 0 || len >= sizeof(text) || memchr(host, '\0', len))
		return false;
	memcpy(text, host, len);
	text[len] = '\0';
	return inet_pton(AF_INET6, text, &a6) == 1;
}

bool
sniff_name_set(struct sniff_info *out, const uint8_t *host, size_t len)
{
	char name[SNIFF_NAME_MAX + 1];
	struct in_addr a4;
	size_t i, label = 0, last = 0;
	bool digits = true;

	out->name[0] = '\0';
	out->name_is_ip = false;
	/* A colon or a bracket is never in a DNS name: IPv6 or nothing. */
	if (memchr(host, ':', len) != NULL || (len > 0 && host[0] == '[')) {
		out->name_is_ip = sniff_is_ip6(host, len);
		return out->name_is_ip;
	}
	if (len > 1 && host[len - 1] == '.')
		len--;
	if (len == 0 || len > SNIFF_NAME_MAX)
		return false;
	for (i = 0; i < len; i++) {
		if (!sniff_is_name_char(host[i]))
			return false;
		name[i] = (char)(host[i] >= 'A' && host[i] <= 'Z' ?
		    host[i] - 'A' + 'a' : host[i]);
		if (host[i] != '.' && ++label > SNIFF_LABEL_MAX)
			return false;
		if (host[i] != '.')
			continue;
		if (label == 0)
			return false;
		label = 0;
		last = i + 1;
	}
	if (label == 0)
		return false;
	name[len] = '\0';
	/*
	 * inet_aton, not inet_pton: "127.1" and "0x7f.0.0.1" are addresses
	 * to a resolver that goes through it, so they are IPs here too.
	 */
	if (inet_aton(name, &a4) != 0) {
		out->name_is_ip = true;
		return true;
	}
	/* No top-level domain is all digits: an address gone wrong. */
	for (i = last; i < len; i++)
		digits = digits && host[i] >= '0' && host[i] <= '9';
	if (digits)
		return false;
	memcpy(out->name, name, len + 1);
	return true;
}

/*
 * server_name (RFC 6066 3): the first host_name entry is the name. One
 * that is not a plausible name leaves none, the list must still be well
 * formed.
 */
static bool
sniff_read_sni(struct sniff_cur *ext, struct sniff_info *info)
{
	struct sniff_cur list, name;
	unsigned type;
	bool got = false;

	if (!sniff_take_vec(ext, 2, &list) || ext->pos != ext->len ||
	    list.len == 0)
		return false;
	while (list.pos < list.len) {
		if (!sniff_take_u8(&list, &type) ||
		    !sniff_take_vec(&list, 2, &name))
			return false;
		if (type == TLS_SNI_HOST_NAME && !got) {
			got = true;
			sniff_name_set(info, name.p, name.len);
		}
	}
	return true;
}

/* ALPN (RFC 7301): the first protocol that is not GREASE and fits as
 * printable text. */
static bool
sniff_read_alpn(struct sniff_cur *ext, struct sniff_info *info)
{
	struct sniff_cur list, proto;
	size_t i;
	bool text;

	if (!sniff_take_vec(ext, 2, &list) || ext->pos != ext->len ||
	    list.len == 0)
		return false;
	while (list.pos < list.len) {
		if (!sniff_take_vec(&list, 1, &proto) || proto.len == 0)
			return false;
		if (info->alpn[0] != '\0' || proto.len >= sizeof(info->alpn) ||
		    (proto.len == 2 && sniff_is_grease(proto.p[0], proto.p[1])))
			continue;
		text = true;
		for (i = 0; i < proto.len; i++)
			text = text && proto.p[i] > ' ' && proto.p[i] < 0x7f;
		if (!text)
			continue;
		memcpy(info->alpn, proto.p, proto.len);
		info->alpn[proto.len] = '\0';
	}
	return true;
}

/*
 * The extensions block, exactly. A second server_name, ALPN or ECH is
 * malformed (RFC 8446 4.2) and, for the name, a way to show the sniffer
 * one name and the server another: no answer rather than a guess.
 */
static bool
sniff_read_extensions(struct sniff_cur *c, struct sniff_info *info)
{
	struct sniff_cur ext;
	unsigned type;
	bool sni = false, alpn = false;

	while (c->pos < c->len) {
		if (!sniff_take_u16(c, &type) || !sniff_take_vec(c, 2, &ext))
			return false;
		switch (type) {
		case TLS_EXT_SERVER_NAME:
			if (sni || !sniff_read_sni(&ext, info))
				return false;
			sni = true;
			break;
		case TLS_EXT_ALPN:
			if (alpn || !sniff_read_alpn(&ext, info))
				return false;
			alpn = true;
			break;
		case TLS_EXT_ECH:
			if (info->ech)
				return false;
			info->ech = true;
			break;
		default:
			/* GREASE (0x?a?a) and everything else: skipped. */
			break;
		}
	}
	return true;
}

enum sniff_result
sniff_tls_hello_body(const uint8_t *body, size_t len, struct sniff_info *out)
{
	struct sniff_cur c = { body, len, 0 }, v, exts;
	struct sniff_info info;
	unsigned version;

	memset(out, 0, sizeof(*out));
	memset(&info, 0, sizeof(info));
	if (!sniff_take_u16(&c, &version) || (version >> 8) != 3 ||
	    !sniff_skip(&c, TLS_RANDOM_LEN) ||
	    !sniff_take_vec(&c, 1, &v) || v.len > TLS_SESSION_ID_MAX ||
	    !sniff_take_vec(&c, 2, &v) || v.len < 2 || v.len % 2 != 0 ||
	    !sniff_take_vec(&c, 1, &v) || v.len < 1)
		return SNIFF_NONE;
	/* No extensions at all is a hello from before they existed. */
	if (c.pos == c.len)
		return SNIFF_FOUND;
	if (!sniff_take_vec(&c, 2, &exts) || c.pos != c.len ||
	    !sniff_read_extensions(&exts, &info))
		return SNIFF_NONE;
	*out = info;
	return SNIFF_FOUND;
}

/* The handshake bytes gathered so far: a ClientHello yet, or whole? */
static enum sniff_result
sniff_tls_message(const uint8_t *hs, size_t have, struct sniff_info *out)
{
	size_t mlen;

	if (have >= 1 && hs[0] != TLS_HS_CLIENT_HELLO)
		return SNIFF_NONE;
	if (have < TLS_HS_HEADER)
		return SNIFF_NEED_MORE;
	mlen = (size_t)hs[1] << 16 | (size_t)hs[2] << 8 | hs[3];
	if (mlen > SNIFF_TLS_HELLO_MAX - TLS_HS_HEADER)
		return SNIFF_NONE;
	if (have - TLS_HS_HEADER < mlen)
		return SNIFF_NEED_MORE;
	return sniff_tls_hello_body(hs + TLS_HS_HEADER, mlen, out);
}

/*
 * Records are walked from the start on every call, each fragment copied
 * behind the last, so the message is one stream whatever the record and
 * segment boundaries were; it is parsed once its last byte is in.
 */
enum sniff_result
sniff_tls_client_hello(const uint8_t *buf, size_t len, struct sniff_info *out)
{
	uint8_t hs[SNIFF_TLS_HELLO_MAX];
	size_t pos = 0, have = 0, rec, take, copy;
	enum sniff_result st;

	memset(out, 0, sizeof(*out));
	while (pos < len) {
		/* Each header byte is judged as soon as it is in. */
		if (buf[pos] != TLS_CONTENT_HANDSHAKE ||
		    (len - pos > 1 && buf[pos + 1] != 3) ||
		    (len - pos > 2 && (buf[pos + 2] < 1 || buf[pos + 2] > 4)))
			return SNIFF_NONE;
		if (len - pos < TLS_RECORD_HEADER)
			return SNIFF_NEED_MORE;
		rec = (size_t)buf[pos + 3] << 8 | buf[pos + 4];
		/* RFC 8446 5.1: no empty handshake fragment, none over 2^14. */
		if (rec == 0 || rec > TLS_RECORD_MAX)
			return SNIFF_NONE;
		pos += TLS_RECORD_HEADER;
		take = len - pos < rec ? len - pos : rec;
		/* Past the buffer is past any message that can fit in it. */
		copy = take < sizeof(hs) - have ? take : sizeof(hs) - have;
		memcpy(hs + have, buf + pos, copy);
		have += copy;
		pos += take;
		if ((st = sniff_tls_message(hs, have, out)) != SNIFF_NEED_MORE)
			return st;
	}
	return SNIFF_NEED_MORE;
}
