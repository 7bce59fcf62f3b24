/*
 * Unit tests for the relay's copy buffers: a buffer given back is the one
 * handed out next, so a copy-mode session that goes idle after every
 * message costs no malloc, and at most RELAY_COPY_KEEP are kept.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "socks5d/relay.h"

static void
test_buffer_given_back_is_reused(void **state)
{
	uint8_t *first, *again;

	(void)state;
	first = relay_copy_buf_get();
	assert_non_null(first);
	/* The whole size is usable. */
	memset(first, 0xa5, RELAY_COPY_BUFSIZE);
	relay_copy_buf_put(first);
	again = relay_copy_buf_get();
	assert_ptr_equal(again, first);
	relay_copy_buf_put(again);
	relay_copy_buf_put(NULL);       /* nothing held: nothing to give */
	assert_ptr_equal(relay_copy_buf_get(), first);
	relay_copy_buf_put(first);
}

static void
test_only_a_few_are_kept(void **state)
{
	uint8_t *held[RELAY_COPY_KEEP + 4];
	const size_t n = sizeof(held) / sizeof(held[0]);

	(void)state;
	for (size_t i = 0; i < n; i++) {
		held[i] = relay_copy_buf_get();
		assert_non_null(held[i]);
	}
	for (size_t i = 0; i < n; i++)
		relay_copy_buf_put(held[i]);
	/* The first RELAY_COPY_KEEP given back were kept, last in first
	 * out; the rest were freed. */
	for (size_t i = RELAY_COPY_KEEP; i-- > 0;) {
		uint8_t *buf = relay_copy_buf_get();

		assert_ptr_equal(buf, held[i]);
		held[i] = buf;
	}
	for (size_t i = 0; i < RELAY_COPY_KEEP; i++)
		relay_copy_buf_put(held[i]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buffer_given_back_is_reused),
		cmocka_unit_test(test_only_a_few_are_kept),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
