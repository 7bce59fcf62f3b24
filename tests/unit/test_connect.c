/*
 * Unit tests for CONNECT's reply codes: every errno of the common mapping
 * gets its SOCKS5 reply, and every other errno the general failure. The
 * black-box suite reaches a few of them through routes in a network
 * namespace; ENETDOWN, EHOSTDOWN or ECONNRESET on connect are only
 * practical here.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "socks5d/connect.h"

/* The wire values spelled out, not socks5.h's names for them. */
static const struct {
	int err;
	uint8_t reply;
} test_mapping[] = {
	{ ENETUNREACH, 0x03 },
	{ ENETDOWN, 0x03 },
	{ EHOSTUNREACH, 0x04 },
	{ EHOSTDOWN, 0x04 },
	{ ECONNREFUSED, 0x05 },
	{ ECONNRESET, 0x05 },
	{ ETIMEDOUT, 0x06 },
	{ EACCES, 0x02 },
	{ EPERM, 0x02 },
};

static void
test_mapped_errnos(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(test_mapping) / sizeof(test_mapping[0]);
	    i++) {
		uint8_t got = connect_reply_for(test_mapping[i].err);

		if (got != test_mapping[i].reply)
			fail_msg("errno %d: reply %#x, expected %#x",
			    test_mapping[i].err, got, test_mapping[i].reply);
	}
}

/* Errors a connect can really end in that have no code of their own,
 * and values that are no error at all: never success, never a guess. */
static void
test_other_errnos_are_general_failure(void **state)
{
	static const int others[] = { 0, -1, EINVAL, EADDRNOTAVAIL,
	    EADDRINUSE, EAFNOSUPPORT, ENOBUFS, ENOMEM, EMFILE, ENFILE, EIO,
	    ECONNABORTED, EPROTO, ENOTSOCK, 4095 };

	(void)state;
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		uint8_t got = connect_reply_for(others[i]);

		if (got != 0x01)
			fail_msg("errno %d: reply %#x, expected 0x01",
			    others[i], got);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mapped_errnos),
		cmocka_unit_test(test_other_errnos_are_general_failure),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
