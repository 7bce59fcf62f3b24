/*
 * A passive observer of the plaintext HTTP/1.x inside an intercepted
 * session: both directions read as they pass, one record per request and
 * response exchange. Pure: no I/O, no libev, no allocation; all of its
 * state is one fixed-size, caller-owned struct.
 */
#ifndef SOCKS5D_HTTP_OBSERVE_H
#define SOCKS5D_HTTP_OBSERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest head, trailer section or chunk-size line, its line ends
 * included: the client's fail the session past it, the server's stop the
 * watching. Also what is held after a request that may upgrade. */
#define HTTP_OBSERVE_HEAD_MAX   (16 * 1024)
/* Requests waiting for their responses (pipelining); past this they are
 * still read, and counted in dropped, but never reported. */
#define HTTP_OBSERVE_QUEUE_MAX  16
/* Dropped requests waiting for their responses; past this, gave up. */
#define HTTP_OBSERVE_DROP_MAX   64
/* Bytes kept of a response line: the status line's first ones, and the
 * framing fields', are all that is needed of them. */
#define HTTP_OBSERVE_DOWN_KEEP  1024

/* One exchange, as reported. Strings are NUL-terminated, bounded, and
 * raw: the caller escapes them for its log. */
struct http_exchange {
	char method[16];                /* truncated past 15 bytes */
	/* The Host header's value, or an absolute-form target's authority
	 * (a CONNECT's target), as given, port included; "" when there was
	 * none, or more than one Host header. At most 255 bytes. */
	char host[256];
	/* The target's path ("/" for an absolute-form one without), query
	 * dropped from its '?' unless keep_query; "*" for OPTIONS *, "" for
	 * CONNECT. Longer than 511 bytes: cut there, path_truncated set. */
	char path[512];
	bool path_truncated;
	/* 101 Switching Protocols (or a 2xx to CONNECT): the connection
	 * stopped being HTTP after this exchange. */
	bool upgraded;
	/* The final status; an interim one's when no final came; 0 when
	 * the server never answered. */
	int status;
	uint64_t bytes_up;              /* request head and body, on the wire */
	uint64_t bytes_down;            /* every response head and the body */
	double started;                 /* now at the request line's first byte */
	/* now at the response's last byte; at the report for a request
	 * never answered. */
	double ended;
};

typedef void http_observe_cb(void *arg, const struct http_exchange *x);

enum http_observe_state {
	HTTP_OBSERVE_WATCHING = 0,
	HTTP_OBSERVE_UPGRADED,          /* 101 or CONNECT: raw bytes now */
	HTTP_OBSERVE_LOST,              /* a response to no request */
	HTTP_OBSERVE_GAVE_UP,           /* a response not understood, or
	                                 * too many dropped requests */
	HTTP_OBSERVE_FAILED,            /* the client's bytes: see error */
	HTTP_OBSERVE_FINISHED,          /* http_observe_finish was called */
};

/* Private to http_observe.c: an exchange not yet reported. */
struct http_observe_slot {
	struct http_exchange x;
	unsigned hosts;                 /* Host header lines */
	bool host_from_target;
	bool head;                      /* HEAD: the response has no body */
	bool connect;                   /* CONNECT: a 2xx is a tunnel */
	bool upgrade;                   /* CONNECT, or an Upgrade field */
	bool final;                     /* its final status line came */
	bool request_done;
	bool response_done;
	bool answered;                  /* a response byte came for it */
};

/* Private to http_observe.c: one direction's parse state. */
struct http_observe_dir {
	size_t line_len;        /* the current line so far, its LF not counted */
	size_t kept;            /* its first bytes that are in the line buffer */
	size_t head_len;        /* of the head or trailers before this line */
	uint64_t remain;        /* of the Content-Length body or the chunk */
	uint64_t pend;          /* bytes not yet counted in an exchange */
	int64_t length;         /* Content-Length, -1 when none */
	double line_started;
	int target;             /* the slot, or none, or a dropped request */
	int status;             /* down: the status line's code */
	uint8_t phase;
	uint8_t last;           /* the current line's last byte so far */
	uint8_t drop_flags;     /* down, target dropped: what it asked */
	bool te;                /* a Transfer-Encoding field */
	bool chunked;           /* it listed chunked */
	bool te_bad;            /* something came after chunked */
	bool framing_field;     /* down: the last field was a framing one */
	/* Up, after a request that may upgrade: what came next, held in
	 * the line buffer unread until the answer says what it is. */
	size_t held;
	double held_at;
	int hold_slot;
	bool eof_held;
};

/*
 * The observer for one session: caller-owned, set up by
 * http_observe_init, no cleanup needed, about 31 KiB.
 */
struct http_observe {
	/* For the caller to read. */
	enum http_observe_state state;
	/* On -1, static: "http-head-too-large", "http-malformed", or
	 * "http-early-data" (over HTTP_OBSERVE_HEAD_MAX bytes sent after a
	 * request that may upgrade, before its answer). */
	const char *error;
	uint64_t dropped;               /* requests read but never reported */

	/* Private. */
	http_observe_cb *cb;
	void *arg;
	bool keep_query;
	struct http_observe_slot slot[HTTP_OBSERVE_QUEUE_MAX];
	unsigned first, count;
	uint8_t drop[HTTP_OBSERVE_DROP_MAX];
	unsigned drop_first, drop_count;
	struct http_observe_dir up, down;
	uint8_t up_line[HTTP_OBSERVE_HEAD_MAX];
	uint8_t down_line[HTTP_OBSERVE_DOWN_KEEP];
};

/* cb (may be NULL) gets each exchange, synchronously, from inside the
 * calls below; it must not call back into o. */
void http_observe_init(struct http_observe *o, http_observe_cb *cb,
    void *arg, bool keep_query);

/*
 * Bytes client->server (up) and server->client (down), as they pass, in
 * any fragments, never modified. Returns 0 to go on; 1 once stopped for
 * good (upgraded, lost, gave up, finished: every later call returns 1
 * too, and nothing more is reported); -1, up only, when the client's
 * bytes are not HTTP that servers read alike, o->error saying why, and
 * every later up call returns -1 again. Whatever stops the watching
 * first reports every exchange still open (an upgrade only its own).
 * The client's bytes after a request that may upgrade (an Upgrade field,
 * CONNECT) are read only once its final status has come, as HTTP unless
 * that is 101 (or a 2xx to CONNECT): a failure in them may then come
 * out of http_observe_down, which returns 1, the next up call -1.
 */
int http_observe_up(struct http_observe *o, const uint8_t *buf, size_t len,
    double now);
int http_observe_down(struct http_observe *o, const uint8_t *buf,
    size_t len, double now);

/*
 * That direction ended (up: the client's request being read, if any, is
 * as complete as it gets; down: a response read until EOF is complete,
 * ending at its last byte, not now). Later bytes that way are ignored.
 */
void http_observe_eof(struct http_observe *o, bool up, double now);

/* The session is over: report every exchange still open. */
void http_observe_finish(struct http_observe *o, double now);

#endif
