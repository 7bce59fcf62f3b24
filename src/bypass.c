/*
 * The [inspect] bypass list and the learnt pass-through names (bypass.h).
 * Learnt names are kept as keyed hashes (SipHash, a key made before the
 * workers fork) in a fixed table of slots, claimed and refreshed with
 * atomic stores: no lock, and nothing grows with what clients send. A lost
 * race costs one more intercepted handshake, never a wrong pass-through
 * for long, since entries expire.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <sodium.h>

#include "socks5d/bypass.h"
#include "socks5d/log.h"
#include "socks5d/rules.h"
#include "socks5d/request.h"

/* Slots in the table, and how many neighbours a name may land in. */
#define BYPASS_SLOTS 4096
#define BYPASS_PROBE 8

struct bypass_slot {
	_Atomic uint64_t hash;         /* 0: free */
	_Atomic int64_t until;         /* CLOCK_MONOTONIC seconds */
};

struct bypass_table {
	unsigned char key[crypto_shorthash_KEYBYTES];
	bool keyed;
	struct bypass_slot slots[BYPASS_SLOTS];
};

static struct bypass_table local_table;
static struct bypass_table *table = &local_table;

bool
bypass_listed(const struct rules *list, const char *name,
    const struct sockaddr *addr)
{
	struct rules_query q = {
		.client = addr,
		.cmd = REQUEST_CMD_CONNECT,
		.dest_name = name,
		.dest_addr = addr,
	};

	if (list == NULL || (name == NULL && addr == NULL))
		return false;
	/* The list is one allow rule: it matched when it names itself. */
	return rules_evaluate(list, &q).rule != NULL;
}

static void
bypass_key(struct bypass_table *t)
{
	if (t->keyed)
		return;
	crypto_shorthash_keygen(t->key);
	t->keyed = true;
}

int
bypass_learned_share(void)
{
	void *p = mmap(NULL, sizeof(*table), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		log_warn("inspect: mmap of the learnt bypass table");
		return -1;
	}
	table = p;
	bypass_key(table);
	return 0;
}

static int64_t
bypass_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec;
}

/* The name's hash, never 0 (a free slot). Names come from clients: the
 * key keeps them from aiming at another name's slot. */
static uint64_t
bypass_hash(const char *name)
{
	unsigned char out[crypto_shorthash_BYTES];
	uint64_t h;

	bypass_key(table);
	crypto_shorthash(out, (const unsigned char *)name, strlen(name),
	    table->key);
	memcpy(&h, out, sizeof(h));
	return h != 0 ? h : 1;
}

bool
bypass_learn(const char *name, unsigned seconds)
{
	uint64_t h = bypass_hash(name);
	int64_t now = bypass_now(), until = now + seconds, oldest = INT64_MAX;
	size_t start = (size_t)(h % BYPASS_SLOTS), pick = start;

	for (size_t i = 0; i < BYPASS_PROBE; i++) {
		struct bypass_slot *slot =
		    &table->slots[(start + i) % BYPASS_SLOTS];
		int64_t t = atomic_load(&slot->until);

		if (atomic_load(&slot->hash) == h) {
			atomic_store(&slot->until, until);
			return t <= now;
		}
		/* A free or expired slot is the oldest there is. */
		if (t < oldest) {
			oldest = t;
			pick = (start + i) % BYPASS_SLOTS;
		}
	}
	/* Freed, timed, then named: a reader in between sees no name, never
	 * the old name with the new time. */
	atomic_store(&table->slots[pick].hash, 0);
	atomic_store(&table->slots[pick].until, until);
	atomic_store(&table->slots[pick].hash, h);
	return true;
}

bool
bypass_learned(const char *name)
{
	uint64_t h = bypass_hash(name);
	int64_t now = bypass_now();
	size_t start = (size_t)(h % BYPASS_SLOTS);

	for (size_t i = 0; i < BYPASS_PROBE; i++) {
		struct bypass_slot *slot =
		    &table->slots[(start + i) % BYPASS_SLOTS];

		if (atomic_load(&slot->hash) == h)
			return atomic_load(&slot->until) > now;
	}
	return false;
}

uint64_t
bypass_learned_count(void)
{
	int64_t now = bypass_now();
	uint64_t n = 0;

	for (size_t i = 0; i < BYPASS_SLOTS; i++)
		if (atomic_load(&table->slots[i].hash) != 0 &&
		    atomic_load(&table->slots[i].until) > now)
			n++;
	return n;
}
