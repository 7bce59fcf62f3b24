/*
 * libFuzzer target: config_load on the input as a config file. A config
 * may name a users file, which is then loaded too. Inputs that name device
 * or kernel files (users_file = /dev/zero would read forever, /dev/stdin
 * would block) are skipped: that is the operator's choice, not input the
 * daemon has to survive.
 */
#include "fuzz_common.h"
#include "socks5d/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const skip[] = { "/dev", "dev/", "/proc", "proc/",
	    "/sys", "sys/", "fd/" };
	struct config *cfg;
	const char *path;
	size_t i;

	for (i = 0; i < sizeof(skip) / sizeof(skip[0]); i++)
		if (fuzz_contains(data, size, skip[i]))
			return 0;
	path = fuzz_write_temp("config", data, size);
	cfg = config_load(path, fuzz_errors());
	config_free(cfg);
	unlink(path);
	return 0;
}
