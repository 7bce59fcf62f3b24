/*
 * libFuzzer target: socks5_parse_udp_header on a whole datagram, which must
 * sit in a buffer of exactly its size so ASan sees any over-read.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "socks5d/socks5.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct socks5_udp_header h;
	enum socks5_status st;
	size_t used = 0, min;
	char text[SOCKS5_ADDR_STRLEN];

	st = socks5_parse_udp_header(data, size, &h, &used);
	switch (st) {
	case SOCKS5_OK:
		if (used > size)
			abort();
		if (h.frag != 0)
			abort();
		switch (h.dst.atyp) {
		case SOCKS5_ATYP_IPV4:
			min = 10;
			break;
		case SOCKS5_ATYP_IPV6:
			min = 22;
			break;
		case SOCKS5_ATYP_NAME:
			if (strlen(h.dst.u.name) != data[4] || data[4] == 0)
				abort();
			min = 7u + data[4];
			break;
		default:
			abort();
		}
		if (used != min)
			abort();
		/* The payload starts at data + used; the header alone must
		 * parse the same way. */
		{
			struct socks5_udp_header h2;
			size_t used2 = 0;

			if (socks5_parse_udp_header(data, used, &h2,
			    &used2) != SOCKS5_OK || used2 != used ||
			    h2.dst.port != h.dst.port)
				abort();
		}
		socks5_addr_format(&h.dst, text, sizeof(text));
		if (strnlen(text, sizeof(text)) >= sizeof(text))
			abort();
		break;
	case SOCKS5_INCOMPLETE:
		/* A datagram this short is dropped by the daemon. */
		if (size >= 3 + 1 + 1 + 255 + 2)
			abort();
		break;
	case SOCKS5_BAD_RESERVED:
	case SOCKS5_FRAGMENTED:
	case SOCKS5_BAD_ATYP:
	case SOCKS5_BAD_NAME:
		break;
	default:
		abort();          /* not a status a UDP header can give */
	}
	return 0;
}
