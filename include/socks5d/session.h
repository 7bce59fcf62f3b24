/*
 * One client connection from accept to close: its sockets, state and one
 * timer, the answers its front-end encodes, the hand-off to the relay,
 * and the single function that ends it all (session_close).
 */
#ifndef SOCKS5D_SESSION_H
#define SOCKS5D_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <ev.h>
#include <openssl/ssl.h>

#include "socks5d/relay.h"
#include "socks5d/request.h"
#include "socks5d/resolver.h"
#include "socks5d/server.h"

enum session_state {
	SESSION_TLS,           /* a TLS listener's handshake */
	SESSION_HANDSHAKE,     /* the front-end reads its messages */
	SESSION_AUTH_WAIT,     /* password being verified off the loop */
	SESSION_RESOLVING,     /* the request's name being looked up */
	SESSION_WAITING,       /* the command waits (connect, BIND peer, UDP) */
	SESSION_RELAY,
	SESSION_LINGER,        /* error reply sent; draining before close */
};

/* Client bytes buffered during the handshake: the largest SOCKS greeting,
 * auth and request together, plus room for payload sent ahead of the
 * reply. A front-end with larger messages (an 8 KiB HTTP head) asks for a
 * larger buffer once the first byte has named it, so a connection that
 * never gets that far (a slowloris) costs no more than this. */
#define SESSION_HANDSHAKE_BUFSIZE 4096

/*
 * Everything needed only until the relay starts; freed then, so an
 * established session carries just its sockets and counters.
 */
struct handshake {
	uint8_t *buf;                  /* small, or a larger one of cap */
	size_t cap;
	size_t len;
	bool client_eof;               /* client half-closed after its request */
	uint8_t phase;                 /* the front-end's own parse state */
	bool proxy_header_due;         /* a trusted balancer: PROXY first */
	bool tls_due;                  /* a TLS listener: TLS next */
	void (*tls_done)(struct session *);  /* handshake done: reads on */
	int64_t upload_left;           /* the front-end's: client bytes that
	                                * may follow buf to the target, -1
	                                * for no limit */
	struct request req;
	struct resolver_query *query;
	struct auth_request *auth;
	union sockaddr_any addrs[RESOLVER_MAX_ADDRS];
	size_t naddrs;
	struct happy *happy;           /* CONNECT's attempts in flight */
	struct upstream_dial *dial;    /* a command through an upstream */
	const char *dst_name;          /* the name asked for; NULL: a literal */
	struct session *session;       /* owner, for full_probe's callback */
	bool replied;                  /* success sent before connecting
	                                * ([inspect] sniff waits): a later
	                                * failure can only close */
	void (*early_data)(struct session *);  /* told of client bytes
	                                * read while the command waits */
	void (*sniffed)(struct session *);     /* inspect_wait's then */
	ev_timer full_probe;           /* client gone? asked while buf is full */
	uint8_t small[SESSION_HANDSHAKE_BUFSIZE];
};

struct session {
	struct server *srv;
	struct session *prev, *next;
	enum session_state state;
	int client_fd;
	int target_fd;
	SSL *ssl;                          /* a TLS client, or NULL */
	SSL *target_ssl;                   /* TLS to an upstream, or NULL */
	ev_io client_io;
	ev_io target_io;
	ev_timer timer;
	struct handshake *hs;
	struct relay relay;
	const struct frontend *frontend;   /* NULL until the first byte */
	const struct command *command;     /* NULL until a request */
	void *command_state;               /* the command's own (UDP) */
	union sockaddr_any client_addr;
	union sockaddr_any target_addr;    /* connected to, or the BIND peer */
	char *user;                        /* NULL: no login */
	char *dest;                        /* "host:port" as requested */
	const char *linger_reason;         /* why, once an error was sent */
	char *rule;                        /* the rule (or limit) that refused */
	char *via;                         /* the [upstream NAME] dialled */
	struct rate_spec rate;             /* the bandwidth limit of what
	                                    * allowed it (rule or [limits]) */
	char *rate_rule;                   /* rate_per = rule: whose */
	struct rate_bucket *rate_up;       /* held while it relays; NULL: */
	struct rate_bucket *rate_down;     /* unlimited */
	struct session_quota *quotas;      /* the user's [quota]s, counted
	                                    * into (nquotas); NULL: none */
	struct metrics_user *user_stats;   /* a named user's /metrics */
	struct inspect *inspect;           /* first bytes being sniffed */
	struct inspect_found *inspected;   /* what they said, or NULL */
	struct inspect_quic *inspect_quic; /* a UDP association's QUIC */
	struct intercept *intercept;       /* TLS interception under way */
	bool client_counted;               /* held in [limits] per-IP counts */
	bool user_counted;                 /* held in [limits] per-user counts */
	bool user_over_limit;              /* logged in beyond max_per_user */
	bool cert_login;                   /* user named by a client
	                                    * certificate: no password */
	bool inspect_done;                 /* sniffed already (waiting) */
	bool intercept_rule;               /* allowed by a rule that says
	                                    * intercept = yes */
	uint8_t nquotas;
	uint8_t cmd;                       /* 0 until a request was read */
	uint8_t active_cmd;                /* cmd as /metrics counts it open */
	int reply;                         /* -1 until a reply is sent */
	ev_tstamp started;
	uint64_t id;                       /* PID.id names it to socks5d ctl */
};

/* Take over an accepted, non-blocking client socket: NULL (the socket
 * closed, the refusal counted) when a limit refuses it or memory is out.
 * The caller starts the front-end on it. */
struct session *session_accept(struct server *srv, int fd,
    const struct sockaddr *peer);

/*
 * End the session: stop every watcher, cancel DNS and auth work, close
 * sockets, log the access line and free. Callers return right after.
 */
void session_close(struct session *s, const char *reason);

/* Send a last message (05 FF, a failed login status), then close once the
 * client had a chance to read it. reason goes to the access log. */
void session_send_final(struct session *s, const uint8_t *msg, size_t len,
    const char *reason);

/* The request's DST as an address: when it is a literal (or a name that
 * is an IP literal), fill out and return true; otherwise start
 * a lookup whose answer goes to cb (which must first clear s->hs->query)
 * and return false, and the caller returns. Either
 * way hs->dst_name says what the access rules should see as the name. */
bool session_find_dst(struct session *s, union sockaddr_any *out,
    resolver_cb *cb);

/* Send a reply that does not end the session (BIND's first reply, UDP
 * ASSOCIATE's), in the front-end's wire format. Returns 0, or -1 when the
 * client is gone (the caller then closes). */
int session_send_reply(struct session *s, uint8_t rep,
    const struct sockaddr *bnd);

/* Answer with this failure (an enum request_reply), then close after the
 * client had a chance to read it. Callers return right after. */
void session_fail(struct session *s, uint8_t rep);

/* A last answer that is the request's whole outcome (a RESOLVE's address,
 * with bnd; or a failure), then close as session_fail does with reason
 * for the access log. session_answer_name answers success with a name
 * (RESOLVE_PTR), where the front-end can say one. */
void session_answer(struct session *s, uint8_t rep,
    const struct sockaddr *bnd, const char *reason);
void session_answer_name(struct session *s, const char *name,
    const char *reason);

/* The request succeeded and target_fd is connected (CONNECT) or accepted
 * (BIND): send the success reply with bnd and start relaying. Callers
 * return right after. */
void session_start_relay(struct session *s, const struct sockaddr *bnd);

/* Start relaying with these TLS connections on the two sockets (NULL:
 * plain), the handshake buffer's bytes going to the target first, and
 * watch (NULL: none) shown every byte: what session_start_relay does
 * after its reply, and TLS interception once its handshakes are done.
 * Callers return right after. */
void session_relay(struct session *s, SSL *client_ssl, SSL *target_ssl,
    relay_watch_fn *watch);

/* Give the handshake a buffer of at least size bytes, keeping what it
 * holds. -1 when out of memory. */
int session_grow_handshake(struct session *s, size_t size);

/* Wipe (it may have held a password) and free the handshake state, for a
 * command that goes on without it (UDP ASSOCIATE). */
void session_free_handshake(struct session *s);

/* Read from and write to the client, through TLS when it has it, with
 * read(2) and write(2) conventions (tls_io.h). *wants: the event a read
 * that returned -1/EAGAIN waits for. */
ssize_t session_client_read(struct session *s, void *buf, size_t len,
    int *wants);
ssize_t session_client_write(struct session *s, const void *buf, size_t len);

/* One step of ssl's handshake on the socket w watches: 1 done; 0 it
 * waits, w watched for what it needs; -1 failed, with SSL_get_error's
 * answer in *error and OpenSSL's queue saying why. */
int session_tls_handshake(struct session *s, SSL *ssl, ev_io *w, int *error);

/* The session just got its TLS connection (s->ssl): it weighs more in
 * the count of what a burst leaves behind. */
void session_tls_attached(struct session *s);

/* Watch one of the session's sockets (w: &s->client_io or &s->target_io,
 * already set on its fd) for events, changing the watcher only when they
 * change: set again on the same fd, libev would add it to epoll again. */
void session_watch(struct session *s, ev_io *w, int events);

/* Switch the session's state, logging the transition at debug level. */
void session_set_state(struct session *s, enum session_state state);

/* Arm the session's single timer for this many seconds. */
void session_set_timeout(struct session *s, ev_tstamp seconds);

/* For the control socket: bytes moved each way so far (UDP: payload),
 * the command's name ("-" before a request), and the rate both ways. */
void session_bytes(const struct session *s, uint64_t *up, uint64_t *down);
const char *session_command_name(const struct session *s);
double session_rate(const struct session *s);

/* Close every session (shutdown). */
void session_close_all(struct server *srv, const char *reason);

/* The address the client connected to (asked of the kernel when a BIND or
 * UDP ASSOCIATE needs it, so CONNECT sessions never pay for it). Returns
 * false if the socket cannot say. */
bool session_local_addr(const struct session *s, union sockaddr_any *out);

#endif
