/*
 * The control socket's wire codec: request lines parsed into struct
 * control_request, response records formatted into a caller's buffer and
 * parsed back in place. Pure: no I/O, no allocation.
 *
 * Request:  "v1 COMMAND ARG...\n", words split by one space or one tab,
 *           at most CONTROL_LINE_MAX bytes with the "\n" ("\r\n" taken).
 * Response: records "TYPE key=value ...\n", every TYPE, key and value
 *           percent-encoded (%XX) where it holds '%', '=', a byte below
 *           0x21 or from 0x7f up; then "end ok\n" or "end error REASON\n".
 *
 * The records "socks5d ctl" shows in its tables (other keys and types
 * reach --json and are printed as "TYPE key=value" lines):
 *   session  id=PID.N client=IP:PORT user= proto= cmd= dest=HOST:PORT
 *            peer=IP:PORT up=BYTES down=BYTES rate=BYTES/S age=SECONDS
 *   user     user= sessions=N up= down= rate= quota= used=BYTES
 * and, for kill and quota reset, "killed id=..." and "reset user= quota=".
 */
#ifndef SOCKS5D_CONTROL_PROTO_H
#define SOCKS5D_CONTROL_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define CONTROL_LINE_MAX	1024	/* a request line, "\n" included */
#define CONTROL_ARG_MAX		255	/* one argument: a user name's limit */
#define CONTROL_WORDS_MAX	8	/* more words is a parse error */

enum control_cmd {
	CONTROL_CMD_NONE = 0,		/* only on a parse error */
	CONTROL_CMD_SESSIONS,		/* "sessions" */
	CONTROL_CMD_KILL,		/* "kill ID|user NAME|client CIDR" */
	CONTROL_CMD_USERS,		/* "users" */
	CONTROL_CMD_QUOTA_RESET,	/* "quota reset USER [QUOTA]" */
	CONTROL_CMD_PING,		/* "ping": answered "end ok" */
};

enum control_kill {
	CONTROL_KILL_NONE = 0,		/* not a kill */
	CONTROL_KILL_ID,		/* one session, by id */
	CONTROL_KILL_USER,		/* every session of one user */
	CONTROL_KILL_CLIENT,		/* every session from a network */
};

/*
 * A parsed request. The text fields are NUL-terminated copies of the
 * words as sent; the numeric fields hold the same, checked and decoded.
 */
struct control_request {
	enum control_cmd cmd;
	enum control_kill kill;		/* CONTROL_CMD_KILL: by what */
	/* kill: the ID, NAME or CIDR; quota reset: USER */
	char		 arg1[CONTROL_ARG_MAX + 1];
	/* quota reset: the [quota NAME] to reset (quotas_name_valid), ""
	 * for every quota of USER: quota_table_reset(t, arg2 or NULL, arg1) */
	char		 arg2[CONTROL_ARG_MAX + 1];

	/* CONTROL_KILL_ID: "PID.N", as the daemon names its sessions
	 * ("%d.%" PRIu64); compare these, not the text (leading zeros). */
	int32_t		 id_pid;	/* 1..INT32_MAX */
	uint64_t	 id_seq;

	/* CONTROL_KILL_CLIENT: family AF_INET (addr[0..3]) or AF_INET6,
	 * host bits cleared; ::ffff:a.b.c.d/n with n >= 96 is AF_INET.
	 * A bare address is /32 or /128. See control_client_match. */
	int		 family;
	uint8_t		 addr[16];	/* network byte order */
	unsigned	 prefix;
};

/*
 * Parse one request line: line[0..len), with or without its "\n". Returns
 * 0 and fills *out, or -1 with *why a short static reason to send back as
 * "end error REASON" (out then has cmd CONTROL_CMD_NONE). No allocation.
 */
int control_parse_request(const char *line, size_t len,
    struct control_request *out, const char **why);

/* Is sa (AF_INET, AF_INET6, IPv4-mapped as IPv4) in a kill-client
 * request's network? false for any other request. */
bool control_client_match(const struct control_request *req,
    const struct sockaddr *sa);

/*
 * A response record built in buf[0..cap): begin, any number of fields,
 * end. On overflow nothing more is written and end returns -1; the server
 * sends what it had before this record and starts it again in an empty
 * buffer (a record that overflows an empty buffer never fits: skip it).
 * Records may be built back to back: begin at buf + used, cap - used.
 */
struct control_record {
	char		*buf;
	size_t		 cap;
	size_t		 len;		/* bytes so far; after end, the line */
	bool		 overflow;
};

void control_record_begin(struct control_record *rec, char *buf, size_t cap,
    const char *type);
/* A value of any bytes (NULs too); value may be NULL when len is 0. */
void control_record_mem(struct control_record *rec, const char *key,
    const void *value, size_t len);
/* NULL is written as the empty value. */
void control_record_str(struct control_record *rec, const char *key,
    const char *value);
void control_record_u64(struct control_record *rec, const char *key,
    uint64_t v);
/* Rates and the like: fixed point, at most 3 decimals, no trailing zeros
 * ("12.5", "0"); NaN and infinities are written as 0. */
void control_record_double(struct control_record *rec, const char *key,
    double v);
/* Appends "\n" (and a NUL after it). Returns 0, rec->len being the line's
 * length, or -1 on overflow (rec->len is then 0). */
int control_record_end(struct control_record *rec);

/*
 * The final line, "end ok\n" or "end error REASON\n" (a NULL or empty
 * reason gives "end error\n"), NUL-terminated. Control bytes in reason
 * become '?' and a reason too long for cap is cut short. Returns the
 * length without the NUL, or 0 when cap cannot hold even that much.
 */
size_t control_format_end(char *buf, size_t cap, bool ok, const char *reason);

/* One field of a parsed record: pointers into the decoded line. */
struct control_field {
	const char	*key;		/* NUL-terminated, no NUL inside */
	const char	*value;		/* NUL-terminated, may hold NULs */
	size_t		 value_len;
};

/*
 * Parse a NUL-terminated record line (its "\n" optional), decoding it in
 * place: *type and every field point into line. Returns 0 with *n fields
 * filled, or -1 for a malformed line (a raw byte that needs encoding, a
 * bad %XX, an empty word or one without exactly one '=', an empty type or
 * key, a NUL in a type or key) or more fields than max.
 */
int control_parse_record(char *line, struct control_field *fields,
    size_t max, size_t *n, const char **type);

/*
 * Is the NUL-terminated line (its "\n" optional) the final one? Returns 0
 * with *ok, and *reason pointing into line ("" for none; the "\n" is cut
 * off), or -1 when it is no end line.
 */
int control_parse_end(char *line, bool *ok, const char **reason);

#endif
