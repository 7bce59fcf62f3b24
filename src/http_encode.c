/*
 * What the HTTP/1.x proxy builds on a request head parsed by http.c: field
 * lookups, Basic credentials, the head rewritten for the origin, and the
 * proxy's own responses to the client. Pure functions only.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "socks5d/http.h"
#include "socks5d/http_lex.h"
#include "socks5d/http_out.h"

static bool
http_list_has_n(const char *value, size_t value_len, const char *token,
    size_t token_len)
{
	const uint8_t *elem;
	size_t pos = 0, elen;

	while (http_list_next((const uint8_t *)value, value_len, &pos, &elem,
	    &elen)) {
		if (elen == token_len &&
		    strncasecmp((const char *)elem, token, elen) == 0)
			return true;
	}
	return false;
}

const struct http_field *
http_find_field(const struct http_request *req, const char *name)
{
	for (size_t k = 0; k < req->nfields; k++)
		if (http_name_is(req->fields[k].name,
		    req->fields[k].name_len, name))
			return &req->fields[k];
	return NULL;
}

bool
http_list_has(const char *value, size_t value_len, const char *token)
{
	return http_list_has_n(value, value_len, token, strlen(token));
}

/* Does any field named name list token? */
static bool
http_fields_list(const struct http_request *req, const char *name,
    const char *token, size_t token_len)
{
	const struct http_field *f;

	for (size_t k = 0; k < req->nfields; k++) {
		f = &req->fields[k];
		if (http_name_is(f->name, f->name_len, name) &&
		    http_list_has_n(f->value, f->value_len, token, token_len))
			return true;
	}
	return false;
}

bool
http_basic_credentials(const struct http_request *req, char user[256],
    char password[256])
{
	/* user ":" password, each at most HTTP_CREDENTIAL_MAX bytes. */
	unsigned char plain[2 * HTTP_CREDENTIAL_MAX + 1];
	const struct http_field *f = NULL;
	const unsigned char *colon;
	const uint8_t *b64;
	size_t k, b64_len, plain_len = 0, ulen, plen;
	bool ok = false;

	user[0] = '\0';
	password[0] = '\0';
	/* Two would leave it to chance which one is checked. */
	for (k = 0; k < req->nfields; k++) {
		if (!http_name_is(req->fields[k].name, req->fields[k].name_len,
		    "Proxy-Authorization"))
			continue;
		if (f != NULL)
			return false;
		f = &req->fields[k];
	}
	if (f == NULL || f->value_len < 6 ||
	    strncasecmp(f->value, "Basic", 5) != 0 || f->value[5] != ' ')
		return false;
	b64 = (const uint8_t *)f->value + 6;
	b64_len = f->value_len - 6;
	while (b64_len > 0 && b64[0] == ' ') {
		b64++;
		b64_len--;
	}
	/* Without b64_end, anything but one whole padded string fails. */
	if (sodium_base642bin(plain, sizeof(plain), (const char *)b64,
	    b64_len, NULL, &plain_len, NULL,
	    sodium_base64_VARIANT_ORIGINAL) != 0)
		goto done;
	if (memchr(plain, '\0', plain_len) != NULL ||
	    (colon = memchr(plain, ':', plain_len)) == NULL)
		goto done;
	ulen = (size_t)(colon - plain);
	plen = plain_len - ulen - 1;
	if (ulen > HTTP_CREDENTIAL_MAX || plen > HTTP_CREDENTIAL_MAX)
		goto done;
	memcpy(user, plain, ulen);
	user[ulen] = '\0';
	memcpy(password, colon + 1, plen);
	password[plen] = '\0';
	ok = true;
done:
	sodium_memzero(plain, sizeof(plain));
	return ok;
}

/* RFC 9110 7.8: Upgrade is ignored in an HTTP/1.0 request. */
bool
http_is_websocket(const struct http_request *req)
{
	return req->version_minor == 1 &&
	    http_fields_list(req, "Upgrade", "websocket", 9) &&
	    http_fields_list(req, "Connection", "upgrade", 7);
}

/* "Host: name[:port]", the port only when not 80. */
static void
http_out_host(struct http_out *o, const struct socks5_addr *dst)
{
	char ip[INET6_ADDRSTRLEN], port[8];

	http_out_str(o, "Host: ");
	switch (dst->atyp) {
	case SOCKS5_ATYP_IPV4:
		if (inet_ntop(AF_INET, dst->u.ipv4, ip, sizeof(ip)) == NULL)
			o->full = true;
		else
			http_out_str(o, ip);
		break;
	case SOCKS5_ATYP_IPV6:
		if (inet_ntop(AF_INET6, dst->u.ipv6, ip, sizeof(ip)) == NULL) {
			o->full = true;
		} else {
			http_out_str(o, "[");
			http_out_str(o, ip);
			http_out_str(o, "]");
		}
		break;
	default:
		http_out_put(o, dst->u.name,
		    strnlen(dst->u.name, SOCKS5_NAME_MAX));
		break;
	}
	if (dst->port != 80) {
		snprintf(port, sizeof(port), ":%u", (unsigned)dst->port);
		http_out_str(o, port);
	}
	http_out_str(o, "\r\n");
}

/*
 * Fields that belong to the client's connection to us, not to the
 * message (RFC 9110 7.6.1), plus Host, which is written from the URI.
 */
static bool
http_field_is_hop(const struct http_request *req, const struct http_field *f,
    bool websocket)
{
	static const char *const hop[] = {
		"Host", "Proxy-Authorization", "Proxy-Connection",
		"Connection", "Keep-Alive", "TE", "Trailer", "Upgrade",
	};

	if (websocket && http_name_is(f->name, f->name_len, "Upgrade"))
		return false;
	for (size_t k = 0; k < sizeof(hop) / sizeof(hop[0]); k++)
		if (http_name_is(f->name, f->name_len, hop[k]))
			return true;
	/* Dropping the framing because Connection names it would have the
	 * origin read the body differently from us. */
	if (http_name_is(f->name, f->name_len, "Content-Length") ||
	    http_name_is(f->name, f->name_len, "Transfer-Encoding"))
		return false;
	return http_fields_list(req, "Connection", f->name, f->name_len);
}

/* A via pseudonym goes into a field value as is: printable ASCII only. */
static bool
http_via_ok(const char *via)
{
	size_t n = strnlen(via, HTTP_VIA_MAX + 1);

	if (n == 0 || n > HTTP_VIA_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((uint8_t)via[i] < ' ' || (uint8_t)via[i] >= 0x7f)
			return false;
	return true;
}

size_t
http_encode_origin_request(const struct http_request *req, const char *via,
    uint8_t *out, size_t outlen)
{
	struct http_out o = { out, 0, outlen, false };
	const struct http_field *f;
	bool websocket;

	if (req->form != HTTP_FORM_ABSOLUTE || req->path == NULL ||
	    (via != NULL && !http_via_ok(via)))
		return 0;
	websocket = http_is_websocket(req);

	http_out_put(&o, req->method, req->method_len);
	http_out_str(&o, " ");
	if (req->path[0] == '?')
		http_out_str(&o, "/");
	http_out_put(&o, req->path, req->path_len);
	http_out_str(&o, " HTTP/1.1\r\n");
	http_out_host(&o, &req->dst);
	for (size_t k = 0; k < req->nfields; k++) {
		f = &req->fields[k];
		if (http_field_is_hop(req, f, websocket))
			continue;
		http_out_put(&o, f->name, f->name_len);
		http_out_str(&o, ": ");
		http_out_put(&o, f->value, f->value_len);
		http_out_str(&o, "\r\n");
	}
	if (websocket)
		http_out_str(&o, "Connection: Upgrade\r\n");
	if (via != NULL) {
		/* received-protocol is the version we received (RFC 9110
		 * 7.6.3). */
		http_out_str(&o, req->version_minor == 0 ? "Via: 1.0 " :
		    "Via: 1.1 ");
		http_out_str(&o, via);
		http_out_str(&o, "\r\n");
	}
	if (!websocket)
		http_out_str(&o, "Connection: close\r\n");
	http_out_str(&o, "\r\n");
	return o.full ? 0 : o.len;
}

const char *
http_reason(int status)
{
	switch (status) {
	case 200:
		return "Connection established";
	case 400:
		return "Bad Request";
	case 403:
		return "Forbidden";
	case 405:
		return "Method Not Allowed";
	case 407:
		return "Proxy Authentication Required";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return NULL;
	}
}

size_t
http_encode_response(uint8_t *out, size_t outlen, int status,
    const char *extra)
{
	struct http_out o = { out, 0, outlen, false };
	const char *reason = http_reason(status);
	char line[64];

	if (reason == NULL)
		return 0;
	snprintf(line, sizeof(line), "HTTP/1.1 %d ", status);
	http_out_str(&o, line);
	http_out_str(&o, reason);
	http_out_str(&o, "\r\n");
	if (extra != NULL)
		http_out_str(&o, extra);
	if (status >= 400) {
		/* The body is the reason phrase and a newline. */
		snprintf(line, sizeof(line), "Content-Length: %zu\r\n",
		    strlen(reason) + 1);
		http_out_str(&o, "Content-Type: text/plain\r\n");
		http_out_str(&o, line);
		http_out_str(&o, "Connection: close\r\n\r\n");
		http_out_str(&o, reason);
		http_out_str(&o, "\n");
	} else {
		http_out_str(&o, "\r\n");
	}
	return o.full ? 0 : o.len;
}
