/*
 * Private to the access rules (rules.c, rules_index.c): a rule as compiled,
 * the rule list, and the index by user name that lets a decision skip the
 * rules written for other users.
 */
#ifndef SOCKS5D_RULES_PRIVATE_H
#define SOCKS5D_RULES_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "socks5d/cidr.h"
#include "socks5d/egress.h"
#include "socks5d/ratelimit.h"

/* Port lists as inclusive ranges, merged and searched like CIDR sets. */
struct rules_span_port {
	uint16_t lo, hi;
};

struct rules_names {
	char **v;
	size_t n, cap;
};

enum rules_action { RULES_ACTION_UNSET, RULES_ACTION_ALLOW, RULES_ACTION_DENY };

struct rule {
	char *name;
	enum rules_action action;
	struct cidr_set client;
	struct rules_names users;       /* sorted with strcmp */
	unsigned cmds;                  /* rules_command_bit()s; 0: any */
	unsigned protos;                /* bit 1 << REQUEST_PROTO_*; 0: any */
	struct cidr_set dest;
	struct rules_names exact;       /* lower case, no trailing dot */
	struct rules_names suffixes;    /* ".example.org" as "example.org" */
	struct rules_span_port *ports;
	size_t nports, capports;
	struct egress egress;           /* empty: [outbound] egress */
	enum egress_select egress_select;   /* EGRESS_UNSET: [outbound]'s */
	bool via_set;                   /* false: [outbound] via */
	char *via_name;                 /* NULL (with via_set): direct */
	const struct upstream *via;     /* via_name's, set at load */
	struct rate_spec rate;          /* rate_up, rate_down, rate_per */
	bool intercept;                 /* intercept = yes */
};

/* One user name a rule names, pointing at that rule. */
struct rules_user_ref {
	const char *user;               /* the rule's own copy */
	size_t rule;
};

struct rules {
	struct rule **v;                /* pointers, so a struct rule * stays
	                                 * valid while more are added */
	size_t n, cap;
	/* The index (rules_index_build), or indexed false and a linear walk:
	 * the rules that name no user, and each name a rule names, both in
	 * rule order. */
	bool indexed;
	size_t *open;
	size_t nopen;
	struct rules_user_ref *refs;    /* by user, then by rule */
	size_t nrefs;
};

/* The rules a query with this user (NULL: none) may match, in rule order:
 * the rules naming no user, merged with the rules naming this one. */
struct rules_cursor {
	const struct rules *rules;
	size_t open;                    /* next in rules->open */
	size_t ref, refs_end;           /* the user's run of rules->refs */
	size_t next;                    /* unindexed: the next rule */
};

/* Build the index once every rule is finished; on failure (memory) the
 * rules are walked in full, with the same decisions. */
void rules_index_build(struct rules *rules);
void rules_index_free(struct rules *rules);

void rules_cursor_start(struct rules_cursor *c, const struct rules *rules,
    const char *user);
/* The next rule that may match, or NULL. */
const struct rule *rules_cursor_next(struct rules_cursor *c);

#endif
