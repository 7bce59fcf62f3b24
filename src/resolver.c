/*
 * c-ares on the libev loop. c-ares tells us which sockets it wants watched
 * (sock_state_cb) and when it next needs a tick (ares_timeout); we map those
 * onto ev_io watchers and one ev_timer. Names in the hosts file (read with
 * the config) are answered from memory before DNS is asked. Answers that
 * exist before resolver_lookup returns (the hosts file, c-ares's own for bad
 * names) are delivered from the loop on the next iteration, so callers never
 * see a callback before resolver_lookup has returned.
 */
#include <ares.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

#include "socks5d/hosts.h"
#include "socks5d/log.h"
#include "socks5d/metrics.h"
#include "socks5d/resolver.h"

struct resolver_io {
	ev_io io;
	struct resolver *r;
	struct resolver_io *next;
};

struct resolver_query {
	struct resolver *r;
	resolver_cb *cb;               /* NULL once cancelled */
	resolver_name_cb *name_cb;     /* a reverse query's, instead of cb */
	char *name;                    /* a reverse query's answer */
	void *arg;
	uint16_t port;
	enum dns_family family;
	int status;                    /* a held answer, for deferred delivery */
	struct ares_addrinfo *result;
	struct resolver_query *next_deferred;
	ev_tstamp started;             /* for the latency histogram */
	size_t nhosts;                 /* answered from the hosts file */
	union sockaddr_any hosts_addrs[RESOLVER_MAX_ADDRS];
};

struct resolver {
	struct ev_loop *loop;
	ares_channel channel;
	struct hosts *hosts;           /* [dns] hosts_file, asked first */
	struct resolver_io *ios;
	ev_timer timer;
	ev_timer deliver_timer;
	struct resolver_query *deferred;
	int in_lookup;
	bool destroying;
	/* Replaced by a reload: destroyed once its last answer is in. */
	unsigned pending;
	bool retiring;
	struct resolver *next_retired;
	ev_timer retire_timer;
};

static void
resolver_update_timer(struct resolver *r)
{
	struct timeval tv, *next;

	ev_timer_stop(r->loop, &r->timer);
	next = ares_timeout(r->channel, NULL, &tv);
	if (next == NULL)
		return;
	ev_timer_set(&r->timer, (ev_tstamp)next->tv_sec + next->tv_usec / 1e6,
	    0.);
	ev_timer_start(r->loop, &r->timer);
}

static void
resolver_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct resolver_io *rio = (struct resolver_io *)w;
	struct resolver *r = rio->r;
	ares_socket_t fd = w->fd;

	(void)loop;
	ares_process_fd(r->channel,
	    (revents & EV_READ) ? fd : ARES_SOCKET_BAD,
	    (revents & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	resolver_update_timer(r);
}

static void
resolver_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct resolver *r = (struct resolver *)
	    ((char *)w - offsetof(struct resolver, timer));

	(void)loop;
	(void)revents;
	ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	resolver_update_timer(r);
}

/* c-ares opened, changed or closed one of its sockets. */
static void
resolver_sock_state_cb(void *data, ares_socket_t fd, int readable,
    int writable)
{
	struct resolver *r = data;
	struct resolver_io **link, *rio;
	int events = (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0);

	for (link = &r->ios; *link != NULL; link = &(*link)->next)
		if ((*link)->io.fd == fd)
			break;
	rio = *link;
	if (rio != NULL) {
		ev_io_stop(r->loop, &rio->io);
		if (events == 0) {
			*link = rio->next;
			free(rio);
			return;
		}
	} else {
		if (events == 0)
			return;
		if ((rio = calloc(1, sizeof(*rio))) == NULL) {
			/* The query will time out; nothing better to do. */
			log_warn("%s: calloc", __func__);
			return;
		}
		rio->r = r;
		rio->next = r->ios;
		r->ios = rio;
		ev_init(&rio->io, resolver_io_cb);
	}
	ev_io_set(&rio->io, fd, events);
	ev_io_start(r->loop, &rio->io);
}

static enum resolver_status
resolver_map_status(int status, const struct ares_addrinfo *result)
{
	if (status == ARES_SUCCESS)
		return result != NULL && result->nodes != NULL ?
		    RESOLVER_OK : RESOLVER_NOT_FOUND;
	switch (status) {
	case ARES_ENOMEM:
	case ARES_EDESTRUCTION:
	case ARES_ECANCELLED:
	case ARES_ENOTINITIALIZED:
		return RESOLVER_FAILED;
	default:
		return RESOLVER_NOT_FOUND;
	}
}

/* Copy the answer into addresses with the port set, preferred family
 * first (stable, so c-ares's own order holds within a family). */
static size_t
resolver_collect(const struct resolver_query *q, union sockaddr_any *addrs)
{
	const struct ares_addrinfo_node *node;
	int order[2] = { AF_INET, AF_INET6 };
	size_t n = 0;

	if (q->family == DNS_FAMILY_IPV6) {
		order[0] = AF_INET6;
		order[1] = AF_INET;
	}
	for (int pass = 0; pass < 2; pass++) {
		for (node = q->result->nodes; node != NULL; node = node->ai_next) {
			if (n == RESOLVER_MAX_ADDRS)
				return n;
			if (q->family != DNS_FAMILY_AUTO &&
			    node->ai_family != order[pass])
				continue;
			if (q->family == DNS_FAMILY_AUTO && pass == 1)
				break;
			if (node->ai_family == AF_INET &&
			    node->ai_addrlen >= sizeof(struct sockaddr_in)) {
				memcpy(&addrs[n].in, node->ai_addr,
				    sizeof(struct sockaddr_in));
				addrs[n++].in.sin_port = htons(q->port);
			} else if (node->ai_family == AF_INET6 &&
			    node->ai_addrlen >= sizeof(struct sockaddr_in6)) {
				memcpy(&addrs[n].in6, node->ai_addr,
				    sizeof(struct sockaddr_in6));
				addrs[n++].in6.sin6_port = htons(q->port);
			}
		}
	}
	return n;
}

/* The hosts file's addresses in [dns] family order: the preferred family
 * first, file order within a family; auto keeps the file's order. */
static size_t
resolver_collect_hosts(const struct resolver_query *q,
    union sockaddr_any *addrs)
{
	int first = q->family == DNS_FAMILY_IPV6 ? AF_INET6 : AF_INET;
	size_t n = 0;

	if (q->family == DNS_FAMILY_AUTO) {
		memcpy(addrs, q->hosts_addrs, q->nhosts * sizeof(*addrs));
		return q->nhosts;
	}
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < q->nhosts; i++)
			if ((q->hosts_addrs[i].sa.sa_family == first) ==
			    (pass == 0))
				addrs[n++] = q->hosts_addrs[i];
	return n;
}

/* Resolvers replaced by a reload that still have queries out. */
static struct resolver *retired;

static void
resolver_deliver(struct resolver_query *q)
{
	union sockaddr_any addrs[RESOLVER_MAX_ADDRS];
	struct resolver *r = q->r;
	enum resolver_status status;
	size_t n = 0;

	if (q->name_cb != NULL) {
		q->name_cb(q->arg, q->name != NULL ? RESOLVER_OK :
		    q->status == ARES_ENOMEM ? RESOLVER_FAILED :
		    RESOLVER_NOT_FOUND, q->name);
	} else if (q->cb != NULL && q->nhosts > 0) {
		n = resolver_collect_hosts(q, addrs);
		q->cb(q->arg, RESOLVER_OK, addrs, n);
	} else if (q->cb != NULL) {
		status = resolver_map_status(q->status, q->result);
		if (status == RESOLVER_OK &&
		    (n = resolver_collect(q, addrs)) == 0)
			status = RESOLVER_NOT_FOUND;
		q->cb(q->arg, status, addrs, n);
	}
	if (q->result != NULL)
		ares_freeaddrinfo(q->result);
	free(q->name);
	free(q);
	r->pending--;
	/* Not from here: we may be inside one of its c-ares callbacks. */
	if (r->retiring && r->pending == 0 && !r->destroying)
		ev_timer_start(r->loop, &r->retire_timer);
}

static void
resolver_unlink_retired(struct resolver *r)
{
	struct resolver **link;

	for (link = &retired; *link != NULL; link = &(*link)->next_retired)
		if (*link == r) {
			*link = r->next_retired;
			return;
		}
}

static void
resolver_retire_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct resolver *r = (struct resolver *)
	    ((char *)w - offsetof(struct resolver, retire_timer));

	(void)loop;
	(void)revents;
	resolver_destroy(r);
}

void
resolver_retire(struct resolver *r)
{
	if (r->pending == 0) {
		resolver_destroy(r);
		return;
	}
	r->retiring = true;
	r->next_retired = retired;
	retired = r;
}

static void
resolver_deliver_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct resolver *r = (struct resolver *)
	    ((char *)w - offsetof(struct resolver, deliver_timer));
	struct resolver_query *q;

	(void)loop;
	(void)revents;
	while ((q = r->deferred) != NULL) {
		r->deferred = q->next_deferred;
		resolver_deliver(q);
	}
}

/* Deliver now, or from the loop when c-ares answered inside our call. */
static void
resolver_answered(struct resolver_query *q)
{
	struct resolver *r = q->r;

	if (r->destroying)
		resolver_cancel(q);
	if (r->in_lookup > 0 && (q->cb != NULL || q->name_cb != NULL)) {
		q->next_deferred = r->deferred;
		r->deferred = q;
		ev_timer_start(r->loop, &r->deliver_timer);
		return;
	}
	resolver_deliver(q);
}

static void
resolver_answer_cb(void *arg, int status, int timeouts,
    struct ares_addrinfo *result)
{
	struct resolver_query *q = arg;

	(void)timeouts;
	q->status = status;
	q->result = result;
	metrics_observe_dns(ev_time() - q->started,
	    resolver_map_status(status, result) == RESOLVER_OK);
	resolver_answered(q);
}

static void
resolver_reverse_cb(void *arg, int status, int timeouts,
    struct hostent *host)
{
	struct resolver_query *q = arg;

	(void)timeouts;
	q->status = status;
	if (status == ARES_SUCCESS && host != NULL && host->h_name != NULL &&
	    (q->name = strdup(host->h_name)) == NULL)
		q->status = ARES_ENOMEM;
	metrics_observe_dns(ev_time() - q->started, q->name != NULL);
	resolver_answered(q);
}

struct resolver *
resolver_create(struct ev_loop *loop, const struct config *cfg)
{
	struct ares_options opts;
	struct resolver *r;
	int rc, optmask;

	if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
		log_error("c-ares: %s", ares_strerror(rc));
		return NULL;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		log_warn("%s: calloc", __func__);
		return NULL;
	}
	r->loop = loop;
	ev_init(&r->timer, resolver_timer_cb);
	ev_timer_init(&r->retire_timer, resolver_retire_cb, 0., 0.);
	ev_timer_init(&r->deliver_timer, resolver_deliver_cb, 0., 0.);

	memset(&opts, 0, sizeof(opts));
	opts.sock_state_cb = resolver_sock_state_cb;
	opts.sock_state_cb_data = r;
	/* Two tries per server; c-ares doubles the wait for the second, so
	 * a third of the budget for the first keeps the total in bounds. */
	opts.timeout = (int)(cfg->dns_timeout * 1000 / 3);
	if (opts.timeout < 100)
		opts.timeout = 100;
	opts.tries = 2;
	/* DNS only: the hosts file is ours, read at load, so c-ares never
	 * opens /etc/hosts on the loop for each lookup. */
	opts.lookups = (char *)"b";
	optmask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
	    ARES_OPT_LOOKUPS;
	if ((rc = ares_init_options(&r->channel, &opts, optmask)) !=
	    ARES_SUCCESS) {
		log_error("c-ares: %s", ares_strerror(rc));
		free(r);
		return NULL;
	}
	if (cfg->dns_servers != NULL &&
	    (rc = ares_set_servers_ports_csv(r->channel, cfg->dns_servers)) !=
	    ARES_SUCCESS) {
		log_error("c-ares: servers %s: %s", cfg->dns_servers,
		    ares_strerror(rc));
		resolver_destroy(r);
		return NULL;
	}
	r->hosts = hosts_ref(cfg->hosts);
	return r;
}

void
resolver_destroy(struct resolver *r)
{
	struct resolver_io *rio;
	struct resolver_query *q;

	if (r == NULL)
		return;
	resolver_unlink_retired(r);
	/* At shutdown the active resolver takes the retired ones along. */
	while (!r->retiring && retired != NULL)
		resolver_destroy(retired);
	r->destroying = true;
	/* Runs every pending answer callback with ARES_EDESTRUCTION. */
	ares_destroy(r->channel);
	while ((q = r->deferred) != NULL) {
		r->deferred = q->next_deferred;
		resolver_cancel(q);
		resolver_deliver(q);
	}
	while ((rio = r->ios) != NULL) {
		r->ios = rio->next;
		ev_io_stop(r->loop, &rio->io);
		free(rio);
	}
	ev_timer_stop(r->loop, &r->timer);
	ev_timer_stop(r->loop, &r->deliver_timer);
	ev_timer_stop(r->loop, &r->retire_timer);
	hosts_unref(r->hosts);
	free(r);
	ares_library_cleanup();
}

/* A query counted as a lookup, its clock started; NULL (logged) when out
 * of memory. */
static struct resolver_query *
resolver_query_new(struct resolver *r, void *arg)
{
	struct resolver_query *q;

	if ((q = calloc(1, sizeof(*q))) == NULL) {
		log_warn("%s: calloc", __func__);
		return NULL;
	}
	q->r = r;
	q->arg = arg;
	q->started = ev_time();
	metrics_count_dns_lookup();
	return q;
}

struct resolver_query *
resolver_lookup(struct resolver *r, const char *name, uint16_t port,
    enum dns_family family, resolver_cb *cb, void *arg)
{
	struct ares_addrinfo_hints hints;
	struct resolver_query *q;

	if ((q = resolver_query_new(r, arg)) == NULL)
		return NULL;
	q->cb = cb;
	q->port = port;
	q->family = family;

	q->nhosts = hosts_find(r->hosts, name, port, q->hosts_addrs,
	    RESOLVER_MAX_ADDRS);
	if (q->nhosts > 0) {
		/* Answered now, delivered from the loop like any answer. */
		metrics_observe_dns(0., true);
		r->pending++;
		q->next_deferred = r->deferred;
		r->deferred = q;
		ev_timer_start(r->loop, &r->deliver_timer);
		return q;
	}

	memset(&hints, 0, sizeof(hints));
	/* Always ask for A and AAAA together; [dns] family only orders. */
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	r->pending++;
	r->in_lookup++;
	ares_getaddrinfo(r->channel, name, NULL, &hints, resolver_answer_cb, q);
	r->in_lookup--;
	resolver_update_timer(r);
	return q;
}

struct resolver_query *
resolver_reverse(struct resolver *r, const union sockaddr_any *addr,
    resolver_name_cb *cb, void *arg)
{
	struct resolver_query *q;
	const void *ip;
	int len;

	if ((q = resolver_query_new(r, arg)) == NULL)
		return NULL;
	q->name_cb = cb;
	if (addr->sa.sa_family == AF_INET) {
		ip = &addr->in.sin_addr;
		len = sizeof(addr->in.sin_addr);
	} else {
		ip = &addr->in6.sin6_addr;
		len = sizeof(addr->in6.sin6_addr);
	}
	r->pending++;
	r->in_lookup++;
	ares_gethostbyaddr(r->channel, ip, len, addr->sa.sa_family,
	    resolver_reverse_cb, q);
	r->in_lookup--;
	resolver_update_timer(r);
	return q;
}

void
resolver_set_hosts(struct resolver *r, struct hosts *hosts)
{
	struct hosts *old = r->hosts;

	r->hosts = hosts_ref(hosts);
	hosts_unref(old);
}

void
resolver_cancel(struct resolver_query *q)
{
	/* c-ares has no per-query cancel: detach, and free on the answer. */
	if (q != NULL) {
		q->cb = NULL;
		q->name_cb = NULL;
	}
}
