/*
 * The index of the access rules by user name. A server with many users
 * writes rules per user (where each may go, from which address), and
 * first-match order makes every decision walk them all: with 1,000 such
 * rules a CONNECT paid for 1,000 rule checks, a tenth of its cost. A rule
 * that names users can match only a session logged in as one of them, so
 * a decision walks the rules naming no user merged, in rule order, with
 * those naming its own user: two sorted lists, found by one binary search.
 */
#include <stdlib.h>
#include <string.h>

#include "socks5d/rules_private.h"

static int
rules_ref_cmp(const void *a, const void *b)
{
	const struct rules_user_ref *x = a, *y = b;
	int c = strcmp(x->user, y->user);

	if (c != 0)
		return c;
	return (x->rule > y->rule) - (x->rule < y->rule);
}

void
rules_index_build(struct rules *rules)
{
	size_t nrefs = 0;

	rules_index_free(rules);
	for (size_t i = 0; i < rules->n; i++)
		nrefs += rules->v[i]->users.n;
	rules->open = malloc((rules->n + 1) * sizeof(*rules->open));
	rules->refs = malloc((nrefs + 1) * sizeof(*rules->refs));
	if (rules->open == NULL || rules->refs == NULL) {
		rules_index_free(rules);
		return;
	}
	for (size_t i = 0; i < rules->n; i++) {
		const struct rule *r = rules->v[i];

		if (r->users.n == 0)
			rules->open[rules->nopen++] = i;
		for (size_t u = 0; u < r->users.n; u++) {
			rules->refs[rules->nrefs].user = r->users.v[u];
			rules->refs[rules->nrefs++].rule = i;
		}
	}
	qsort(rules->refs, rules->nrefs, sizeof(*rules->refs), rules_ref_cmp);
	rules->indexed = true;
}

void
rules_index_free(struct rules *rules)
{
	free(rules->open);
	free(rules->refs);
	rules->open = NULL;
	rules->refs = NULL;
	rules->nopen = rules->nrefs = 0;
	rules->indexed = false;
}

/* The first of user's refs, or nrefs. */
static size_t
rules_refs_lower(const struct rules *rules, const char *user)
{
	size_t lo = 0, hi = rules->nrefs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(rules->refs[mid].user, user) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void
rules_cursor_start(struct rules_cursor *c, const struct rules *rules,
    const char *user)
{
	memset(c, 0, sizeof(*c));
	c->rules = rules;
	if (rules == NULL || !rules->indexed || user == NULL)
		return;
	c->ref = c->refs_end = rules_refs_lower(rules, user);
	while (c->refs_end < rules->nrefs &&
	    strcmp(rules->refs[c->refs_end].user, user) == 0)
		c->refs_end++;
}

const struct rule *
rules_cursor_next(struct rules_cursor *c)
{
	const struct rules *rules = c->rules;
	size_t open, mine;

	if (rules == NULL)
		return NULL;
	if (!rules->indexed)
		return c->next < rules->n ? rules->v[c->next++] : NULL;
	open = c->open < rules->nopen ? rules->open[c->open] : rules->n;
	mine = c->ref < c->refs_end ? rules->refs[c->ref].rule : rules->n;
	if (open == rules->n && mine == rules->n)
		return NULL;
	if (open < mine) {
		c->open++;
		return rules->v[open];
	}
	c->ref++;
	return rules->v[mine];
}
