/*
 * Private to the config parser: the shape of a config table row, the table
 * and its lookups (config.c), and the per-type value parsers
 * (config_values.c) that the loader (config_load.c) drives.
 */
#ifndef SOCKS5D_CONFIG_VALUES_H
#define SOCKS5D_CONFIG_VALUES_H

#include <stdbool.h>
#include <stddef.h>

#include "socks5d/config.h"

enum config_type {
	CONFIG_BOOL,
	CONFIG_UINT,            /* unsigned, min..max */
	CONFIG_ENUM,            /* int-sized enum, names */
	CONFIG_ENUM_SET,        /* unsigned, bit 1 << value per listed name */
	CONFIG_CIDRS,           /* struct cidr_set, empty when empty */
	CONFIG_STRING,          /* char *, NULL when empty */
	CONFIG_PATH,            /* char *, relative to the config file's dir */
	CONFIG_LISTEN,          /* struct config_addr[max], count elsewhere */
	CONFIG_IP,              /* struct config_addr of .family, len 0 unset */
	CONFIG_DNS_SERVERS,     /* char *, c-ares CSV, NULL when empty */
	CONFIG_IP_PAIR,         /* struct config_addr_pair */
	CONFIG_PORT_RANGE,      /* struct config_port_range */
	CONFIG_HOSTPORT,        /* one struct config_addr, len 0 when empty */
	CONFIG_EGRESS,          /* struct egress, empty when empty */
	CONFIG_VIA,             /* char *: an upstream's NAME, NULL: direct */
	CONFIG_UPSTREAM_URLS,   /* [upstream NAME] url: the instance's members */
	CONFIG_RULE,            /* [rule NAME] key: rules_set, struct rule */
	CONFIG_RATE,            /* uint64_t bytes per second, 0: unlimited */
	CONFIG_QUOTA,           /* [quota NAME] key: quota_set, struct quota */
	CONFIG_BYPASS,          /* struct rules *: names and CIDRs as one
	                         * rule's dest list, NULL when empty */
};

struct config_enum_name {
	const char *name;
	int value;
};

struct config_row {
	/*
	 * The section text, or when named its prefix: a row with section
	 * "rule " and named set matches "[rule office]", and its offset is
	 * into the struct that instance() finds or creates for "office".
	 */
	const char *section;
	bool named;
	/* Find or create the instance; *created makes the loader apply the
	 * section's defaults to it. NULL when it cannot be added. */
	void *(*instance)(struct config *cfg, const char *name,
	    bool *created);
	bool (*name_valid)(const char *name);   /* named: NAME's syntax */

	const char *key;
	enum config_type type;
	size_t offset;
	const char *def;                        /* NULL: none, left unset */
	bool required;                          /* named: must be set */

	unsigned min, max;                      /* UINT; LISTEN: counts;
	                                         * ENUM_SET: min 1, not empty */
	const struct config_enum_name *names;   /* ENUM, ENUM_SET: NULL-ended */
	int family;                             /* IP */
	size_t count_offset;                    /* LISTEN */
};

/*
 * Every key the file may hold (config.c). The loader sizes its per-row
 * arrays by CONFIG_NROWS, so it is spelled out here; config.c asserts that
 * it counts config_rows[].
 */
#define CONFIG_NROWS 88
extern const struct config_row config_rows[];

/* The row for key in section text; *name gets a named section's name. */
const struct config_row *config_row_find(const char *section, const char *key,
    const char **name);

/* Any row of a named section ("rule office"); *name gets its name. */
const struct config_row *config_named_row(const char *section,
    const char **name);

/* Does some row name this section? */
bool config_section_known(const char *section);

/* Write the known sections for an error message. */
void config_section_list(char *out, size_t outlen);

/* The index into config_rows[]; only for keys that are in the table. */
size_t config_row_index(const char *section, const char *key);

/* Does giving the key again add to its value (a rule's list keys)? */
bool config_row_appends(const struct config_row *row);

/*
 * Parse value for row into the struct at base. dir is the config file's
 * directory for relative paths. On failure leaves the field untouched,
 * writes the reason to why and returns -1.
 */
int config_value_parse(const struct config_row *row, void *base,
    const char *value, const char *dir, char *why, size_t whylen);

/* Release what config_value_parse allocated for row in base. */
void config_value_free(const struct config_row *row, void *base);

#endif
