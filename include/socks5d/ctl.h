/*
 * The "socks5d ctl" command: one request to the daemon's control socket,
 * its records printed as aligned tables or as one JSON document.
 */
#ifndef SOCKS5D_CTL_H
#define SOCKS5D_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "socks5d/control_proto.h"

#define CTL_TIMEOUT_SEC		5	/* each connect, send and receive */

/* One response record, as control_parse_record left it. */
struct ctl_record {
	const char		*type;
	struct control_field	*fields;
	size_t			 nfields;
};

/*
 * argv[0] is "ctl". Returns the process exit status: 0 for "end ok", 1
 * for "end error" (the reason on stderr), 2 for a usage error, a socket
 * that cannot be reached or a response that is cut short or malformed.
 */
int ctl_main(int argc, char **argv);

/*
 * {"ok":true,"records":[{"type":"session","id":"1.2",...},...]}, and
 * "ok":false with "error":REASON after "end error". A value is a JSON
 * number when it is one as written (-?digits, maybe .digits, no leading
 * zero) unless its key names something (id, user, client, dest, peer,
 * name), so that a user "42" or a session "12.10" stays a string. Strings
 * are the decoded bytes: '"' and '\' escaped, bytes below 0x20 and 0x7f
 * as \u00XX, and so are bytes from 0x80 up (\u0080..\u00ff): decoding a
 * string as Latin-1 gives the bytes back, whatever their encoding (UTF-8
 * names come out as one \u00XX per byte). Returns 0, or -1 when out has
 * an error.
 */
int ctl_print_json(FILE *out, const struct ctl_record *recs, size_t n,
    bool ok, const char *reason);

/*
 * For people: "session" and "user" records as aligned tables (values as
 * sent, "-" for none), any other record as a "TYPE key=value" line.
 * main_type ("session", "user" or NULL) gets its table's header even when
 * no record came. Control bytes (C0, DEL, C1 as UTF-8) print as '?'; other
 * bytes pass, for UTF-8 names. Returns 0, or -1 when out has an error.
 */
int ctl_print_table(FILE *out, const struct ctl_record *recs, size_t n,
    const char *main_type);

#endif
