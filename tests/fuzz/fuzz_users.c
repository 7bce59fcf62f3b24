/* libFuzzer target: users_load on the input as a users file. */
#include "fuzz_common.h"
#include "socks5d/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct users *users;
	const char *path;

	path = fuzz_write_temp("users", data, size);
	users = users_load(path, fuzz_errors());
	if (users != NULL) {
		size_t n = users_count(users), idx = (size_t)-1;

		/* Look up a name taken from the input: either absent, or
		 * found with an index inside the table. */
		char name[32];
		size_t nlen = size < sizeof(name) - 1 ? size : sizeof(name) - 1;
		char *colon;

		memcpy(name, data, nlen);
		name[nlen] = '\0';
		if ((colon = strchr(name, ':')) != NULL)
			*colon = '\0';
		if (users_find(users, name, &idx) != NULL && idx >= n)
			abort();
		users_free(users);
	}
	unlink(path);
	return 0;
}
