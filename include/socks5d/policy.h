/*
 * Where sessions ask the access rules and the limits. The decisions live
 * in rules.c and limits.c (pure); this glue fills in the session's side
 * (client, user, command), remembers what a session holds so it is
 * released exactly once, and logs refusals at most once a second per
 * reason.
 */
#ifndef SOCKS5D_POLICY_H
#define SOCKS5D_POLICY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "socks5d/addr.h"

struct upstream;

struct server;
struct session;

/* A new connection from peer: false (logged, counted) when a limit or a
 * ban refuses it; the caller closes it. true: the caller must pair it with
 * policy_release through the session. */
bool policy_admit_client(struct server *srv, const struct sockaddr *peer);

/* A trusted balancer's PROXY header named the real client: the session
 * is counted (limits, bans) under it instead. false when a limit or a ban
 * refuses the real client (logged, counted); the caller closes. */
bool policy_readmit_client(struct session *s, const struct sockaddr *real);

/* The session relays (or its UDP association starts): take the buckets
 * of the bandwidth limit that allowed it into s->rate_up and rate_down
 * (left NULL where unlimited). policy_release gives them back. */
void policy_rate_start(struct session *s);

/* The user's quotas (policy_quota.c). admit: find those that apply to
 * s->user, once, and false (rule=quota:NAME recorded, counted, logged)
 * while one is used up. count: bytes the session moved; "quota" (the
 * rule recorded) when that used one up, else NULL. exhausted: is one used
 * up now (recorded)? release: at the end (policy_release calls it). */
bool policy_quota_admit(struct session *s);
const char *policy_quota_count(struct session *s, uint64_t bytes);
bool policy_quota_exhausted(struct session *s);
void policy_quota_release(struct session *s);

/* After a reload ([server] reload_recheck): may the session go on under
 * the new users file and rules? Its login must still exist (a
 * certificate's need not be in the file), and a relaying session's
 * destination (a UDP association: the association) must still be
 * allowed. false: why recorded as its rule= (the denying rule, or
 * "(user-removed)"). Sessions still in their handshake are judged as
 * they go on. */
bool policy_recheck(struct session *s);

/* [inspect] sniff learnt the name a session that asked for an address
 * is really going to: may it go there? false: the rule recorded. */
bool policy_recheck_name(struct session *s, const char *name);

/* The session ends: release its client and user counts, its rate
 * buckets and its quotas. */
void policy_release(struct session *s);

/* A login succeeded or failed (failures count towards the ban). */
void policy_login_ok(struct session *s);
void policy_login_failed(struct session *s);

/* May the parsed request go ahead at all (user limit; for UDP ASSOCIATE,
 * could any destination be allowed)? false: the caller answers 0x02. */
bool policy_allow_request(struct session *s);

/* May the session's command reach this destination? name is the name the
 * client asked for (NULL for a literal request), addr the address about
 * to be used (NULL when not known). false: the rule is recorded for the
 * access log. */
bool policy_allow_dest(struct session *s, const char *name,
    const struct sockaddr *addr, uint16_t port);

/* Where an allowed outbound socket leaves from. */
struct policy_route {
	bool has_source;               /* false: the kernel's choice, or
	                                * [outbound] bind_ipv4/6 */
	union sockaddr_any source;     /* an egress pool's address, port 0 */
};

/* policy_allow_dest, and when allowed the route to addr (not NULL): the
 * source from the matching rule's egress pool, else [outbound]'s, picked
 * by the rule's egress_select, else [outbound]'s. */
bool policy_route_dest(struct session *s, const char *name,
    const struct sockaddr *addr, uint16_t port, struct policy_route *route);

/* The route of a UDP association's outbound socket of family: chosen once
 * per association and family, by the rule that admits the association
 * (rules_evaluate_any_dest), as policy_route_dest chooses. */
void policy_route_association(struct session *s, int family,
    struct policy_route *route);

/*
 * Which upstream the request goes through: the rule that matches it as
 * asked (the name, or the literal address) says, else [outbound] via.
 * *via NULL: direct, and the destination's addresses are judged as they
 * are tried. Otherwise the return says whether that rule allows it (a
 * refusal recorded), since an upstream may resolve the name itself.
 */
bool policy_route_request(struct session *s, const struct upstream **via);

/* The same for a UDP association, by the rule that admits it
 * (rules_evaluate_any_dest); each datagram is still judged. */
void policy_route_udp(struct session *s, const struct upstream **via);

/* The source address of a hop to an upstream of family: the egress of the
 * rule that matches the request as asked, else [outbound]'s. */
void policy_route_hop(struct session *s, int family,
    struct policy_route *route);

/* A peer connected to a BIND listener, whatever the client expected: the
 * rules judge its address as the destination of the bind command (with
 * the request's name when the peer is the one that name resolved to, and
 * the request's port). false: counted and logged with the rule's name;
 * the caller closes the peer and keeps waiting. */
bool policy_allow_bind_peer(struct session *s, const char *name,
    const struct sockaddr *peer, uint16_t port);

#endif
