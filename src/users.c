/*
 * The users file: "name:argon2-hash" lines parsed into a table sorted by
 * name, so a lookup is a binary search however large the file is.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sodium.h>

#include "socks5d/auth.h"
#include "socks5d/file.h"
#include "socks5d/log.h"

#define USERS_NAME_MAX	255	/* RFC 1929: one length octet */
#define USERS_HASH_MAX	(crypto_pwhash_STRBYTES - 1)

struct users_entry {
	char *name;		/* name and hash share this allocation */
	const char *hash;
	unsigned long line;
};

struct users {
	struct users_entry *entries;
	size_t count;
	size_t cap;
};

struct users_parse {
	struct users *users;
	const char *path;
	FILE *errors;
	unsigned long line;
	bool failed;
};

static void users_error(struct users_parse *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

static void
users_error(struct users_parse *p, const char *fmt, ...)
{
	va_list ap;

	fprintf(p->errors, "%s:%lu: ", p->path, p->line);
	va_start(ap, fmt);
	vfprintf(p->errors, fmt, ap);
	va_end(ap);
	fputc('\n', p->errors);
	p->failed = true;
}

/* Anyone who can write the file can add a user; anyone who can read it can
 * run an offline guessing attack. Worth a warning, not a refusal. */
static void
users_warn_mode(FILE *fp, const char *path)
{
	struct stat st;

	if (fstat(fileno(fp), &st) == -1)
		return;
	if (st.st_mode & (S_IRWXG | S_IRWXO))
		log_warnx("%s: accessible by group or others (mode %03o); "
		    "chmod 600 is recommended", path,
		    (unsigned)(st.st_mode & 0777));
}

static void
users_trim(char *line, size_t len)
{
	while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t' ||
	    line[len - 1] == '\r' || line[len - 1] == '\n'))
		line[--len] = '\0';
}

static bool
users_is_skipped(const char *line)
{
	line += strspn(line, " \t");
	return *line == '\0' || *line == '#';
}

/* Same rule as "socks5d passwd": a name that cannot be typed back
 * unambiguously would only ever fail to match. */
static bool
users_name_is_clean(const char *name, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c <= ' ' || c == 0x7f)
			return false;
	}
	return true;
}

static bool
users_hash_is_argon2(const char *hash)
{
	return strncmp(hash, "$argon2id$", 10) == 0 ||
	    strncmp(hash, "$argon2i$", 9) == 0;
}

static int
users_add(struct users *users, const char *name, size_t namelen,
    const char *hash, unsigned long line)
{
	struct users_entry *e;
	size_t hashlen = strlen(hash);
	char *buf;

	if (users->count == users->cap) {
		size_t cap = users->cap ? users->cap * 2 : 16;

		e = reallocarray(users->entries, cap, sizeof(*e));
		if (e == NULL)
			return -1;
		users->entries = e;
		users->cap = cap;
	}
	if ((buf = malloc(namelen + 1 + hashlen + 1)) == NULL)
		return -1;
	memcpy(buf, name, namelen);
	buf[namelen] = '\0';
	memcpy(buf + namelen + 1, hash, hashlen + 1);
	e = &users->entries[users->count++];
	e->name = buf;
	e->hash = buf + namelen + 1;
	e->line = line;
	return 0;
}

static void
users_parse_line(struct users_parse *p, char *line, size_t len)
{
	const char *hash;
	char *colon;
	size_t namelen;

	if (memchr(line, '\0', len) != NULL) {
		users_error(p, "NUL byte in line");
		return;
	}
	users_trim(line, len);
	if (users_is_skipped(line))
		return;
	if ((colon = strchr(line, ':')) == NULL) {
		users_error(p, "missing ':' between user name and hash");
		return;
	}
	namelen = (size_t)(colon - line);
	hash = colon + 1;
	if (namelen == 0)
		users_error(p, "empty user name");
	else if (namelen > USERS_NAME_MAX)
		users_error(p, "user name longer than %d bytes",
		    USERS_NAME_MAX);
	else if (!users_name_is_clean(line, namelen))
		users_error(p, "user name contains whitespace or control "
		    "characters");
	else if (!users_hash_is_argon2(hash))
		users_error(p, "hash does not start with $argon2id$ or "
		    "$argon2i$ (make one with 'socks5d passwd')");
	else if (strlen(hash) > USERS_HASH_MAX)
		users_error(p, "hash longer than %d bytes", USERS_HASH_MAX);
	else if (crypto_pwhash_str_needs_rehash(hash,
	    crypto_pwhash_OPSLIMIT_INTERACTIVE,
	    crypto_pwhash_MEMLIMIT_INTERACTIVE) == -1)
		users_error(p, "malformed argon2 hash");
	else if (users_add(p->users, line, namelen, hash, p->line) == -1)
		users_error(p, "out of memory");
}

static int
users_cmp_entry(const void *a, const void *b)
{
	const struct users_entry *ea = a, *eb = b;
	int c = strcmp(ea->name, eb->name);

	if (c != 0)
		return c;
	return (ea->line > eb->line) - (ea->line < eb->line);
}

static int
users_cmp_key(const void *key, const void *elem)
{
	const struct users_entry *e = elem;

	return strcmp(key, e->name);
}

/* Names are not echoed: they may hold bytes that upset a terminal. */
static void
users_check_duplicates(struct users_parse *p)
{
	struct users *users = p->users;

	if (users->count > 0)
		qsort(users->entries, users->count, sizeof(users->entries[0]),
		    users_cmp_entry);
	for (size_t i = 1; i < users->count; i++) {
		struct users_entry *prev = &users->entries[i - 1];
		struct users_entry *e = &users->entries[i];

		if (strcmp(prev->name, e->name) != 0)
			continue;
		p->line = e->line;
		users_error(p, "duplicate user (already on line %lu)",
		    prev->line);
	}
}

static void
users_read(struct users_parse *p, FILE *fp)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;

	while ((len = getline(&line, &cap, fp)) != -1) {
		p->line++;
		users_parse_line(p, line, (size_t)len);
	}
	if (ferror(fp)) {
		fprintf(p->errors, "%s: read error: %s\n", p->path,
		    strerror(errno));
		p->failed = true;
	}
	free(line);
}

struct users *
users_load(const char *path, FILE *errors)
{
	struct users_parse p = { .path = path, .errors = errors };
	char why[128];
	FILE *fp;

	if ((fp = file_open_regular(path, why, sizeof(why))) == NULL) {
		fprintf(errors, "%s: %s\n", path, why);
		return NULL;
	}
	users_warn_mode(fp, path);
	if ((p.users = calloc(1, sizeof(*p.users))) == NULL) {
		fprintf(errors, "%s: out of memory\n", path);
		fclose(fp);
		return NULL;
	}
	users_read(&p, fp);
	fclose(fp);
	users_check_duplicates(&p);
	if (p.failed) {
		users_free(p.users);
		return NULL;
	}
	return p.users;
}

void
users_free(struct users *users)
{
	if (users == NULL)
		return;
	for (size_t i = 0; i < users->count; i++)
		free(users->entries[i].name);
	free(users->entries);
	free(users);
}

size_t
users_count(const struct users *users)
{
	return users == NULL ? 0 : users->count;
}

const char *
users_find(const struct users *users, const char *name, size_t *index)
{
	const struct users_entry *e;

	if (users == NULL || users->count == 0)
		return NULL;
	e = bsearch(name, users->entries, users->count,
	    sizeof(users->entries[0]), users_cmp_key);
	if (e == NULL)
		return NULL;
	*index = (size_t)(e - users->entries);
	return e->hash;
}
