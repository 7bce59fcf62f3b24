"""BIND (RFC 1928 §4, §6): the first reply carries a concrete address the
peer can reach, exactly one peer from DST.ADDR is accepted (anyone when DST
is all zeros), the second reply carries the peer's address, and the two are
relayed like CONNECT. Every ending returns the daemon's descriptors (pipes
aside) to where they were. IPv6 cases that need a second address run in a
network namespace of their own (harness/netns.py). Real clients: the npm
"socks" package, and Dante's socksify around an active-mode FTP transfer
(curl)."""
import contextlib
import functools
import hashlib
import json
import os
import selectors
import socket
import struct
import subprocess
import time

import pytest

from harness import netns
from harness.daemon import REPO_ROOT
from harness.net import (IO_TIMEOUT, LOOPBACK4, LOOPBACK6, family_of, format_hostport,
                         free_port, is_listening, non_pipe_fds, peer_closed, recv_exact,
                         recv_until_eof, settled_fds, wait_until)
from harness.netns import OTHER6
from harness.socks5 import (ATYP_IPV4, ATYP_IPV6, ATYP_NAME, CMD_BIND, REP_CMD_UNSUPPORTED,
                            REP_FAILURE, REP_HOST_UNREACH, REP_SUCCESS, REP_TTL_EXPIRED,
                            Socks5Client, request)

CLIENTS_DIR = REPO_ROOT / "tests" / "clients"
CLIENT_TIMEOUT = 20


# -- helpers ---------------------------------------------------------------------

@pytest.fixture
def start_netns_daemon(start_daemon):
    """Factory like start_daemon, for a daemon in a network namespace of its
    own whose lo also has ::2 (harness/netns.py). The test joins that
    namespace until teardown: sockets it makes after the call live there."""
    with contextlib.ExitStack() as stack:
        yield functools.partial(netns.start_daemon_in, start_daemon, stack)


def assert_fds_back(daemon, baseline):
    """Every descriptor a session opened (client, listener, peer, anything
    else but the pooled pipes) is closed."""
    pid = daemon.proc.pid
    try:
        wait_until(lambda: non_pipe_fds(pid) == baseline, 5,
                   what=f"daemon back to {baseline} descriptors")
    except TimeoutError:
        raise AssertionError(f"daemon holds {non_pipe_fds(pid)} descriptors "
                             f"(pipes aside), baseline {baseline}") from None


def start_bind(daemon, host, port=0, atyp=None, early=b""):
    """A client that sent BIND for host:port (plus early payload in the same
    segment); returns (client, first reply)."""
    client = Socks5Client(daemon.address)
    try:
        assert client.greet() == 0
        client.send(request(host, port, CMD_BIND, atyp) + early)
        reply = client.read_reply()
        reply.assert_ip_form()
    except BaseException:
        client.close()
        raise
    return client, reply


def connect_peer(address, source=None, timeout=5.0):
    """The peer connecting to the advertised address, from source if given."""
    sock = socket.socket(family_of(address[0]), socket.SOCK_STREAM)
    sock.settimeout(timeout)
    if source is not None:
        sock.bind((source, 0))
    sock.connect(address)
    return sock


def assert_refused(address):
    """Nothing listens at address any more."""
    wait_until(lambda: not is_listening(*address), 3,
               what=f"listener {address} closed")
    with pytest.raises(ConnectionRefusedError):
        connect_peer(address).close()


def assert_no_reply_yet(client, wait=0.3):
    client.sock.settimeout(wait)
    try:
        with pytest.raises(socket.timeout):
            client.sock.recv(1)
    finally:
        client.sock.settimeout(IO_TIMEOUT)


def accept_peer(client, reply, peer_source):
    """Connect the peer to the advertised address; assert the second reply
    names it exactly. Returns the peer socket."""
    peer = connect_peer(reply.bound, peer_source)
    second = client.read_reply()
    second.assert_ip_form()
    assert second.rep == REP_SUCCESS, second
    assert second.bound == peer.getsockname()[:2], (second, peer.getsockname())
    return peer


def exchange(client, peer, size=128 * 1024):
    """Random bytes both ways, checked exactly."""
    up, down = os.urandom(size), os.urandom(size // 2 + 7)
    client.send(up)
    assert recv_exact(peer, len(up)) == up
    peer.sendall(down)
    assert client.recv_exact(len(down)) == down
    return len(up), len(down)


# -- raw flows -------------------------------------------------------------------

def check_flow_client_half_closes_first(d, host):
    """BIND to host, both replies, data both ways, then the client's
    half-close and the peer's close, each reaching the other side."""
    baseline = settled_fds(d)
    early = b"sent before any reply\n"
    # DST.PORT is arbitrary: clients cannot know the peer's port.
    client, first = start_bind(d, host, 4242, early=early)
    with client:
        assert first.rep == REP_SUCCESS
        assert first.atyp == (ATYP_IPV4 if host == LOOPBACK4 else ATYP_IPV6)
        assert first.host == host and first.port != 0, first
        assert non_pipe_fds(d.proc.pid) == baseline + 2      # client + listener
        assert_no_reply_yet(client)

        peer = accept_peer(client, first, host)
        peer_addr = format_hostport(*peer.getsockname()[:2])
        with peer:
            # Exactly one peer: the listener is gone once it is accepted.
            assert_refused(first.bound)
            assert recv_exact(peer, len(early)) == early
            up, down = exchange(client, peer)
            # The client's half-close reaches the peer; the peer may still
            # send, then its close reaches the client.
            client.shutdown_write()
            assert recv_until_eof(peer) == b""
            peer.sendall(b"last words")
            peer.shutdown(socket.SHUT_WR)
            assert recv_until_eof(client.sock) == b"last words"
    fields = d.wait_session(cmd="bind", close="eof")
    assert fields["dest"] == format_hostport(host, 4242)
    assert fields["addr"] == peer_addr
    assert fields["reply"] == "0"
    assert int(fields["up"]) == len(early) + up
    assert int(fields["down"]) == down + len(b"last words")
    assert_fds_back(d, baseline)


@pytest.mark.parametrize("relay", ["splice", "copy"])
def test_bind_ipv4_flow(start_daemon, relay):
    check_flow_client_half_closes_first(start_daemon(server={"relay": relay}), LOOPBACK4)


def test_bind_ipv6_flow_client_half_closes_first(start_daemon):
    check_flow_client_half_closes_first(start_daemon(), LOOPBACK6)


def test_bind_ipv6_flow_peer_closes_first(start_daemon):
    d = start_daemon()
    baseline = settled_fds(d)
    client, first = start_bind(d, LOOPBACK6, 1)
    with client:
        assert first.rep == REP_SUCCESS
        assert first.atyp == ATYP_IPV6
        assert first.host == LOOPBACK6 and first.port != 0, first
        peer = accept_peer(client, first, LOOPBACK6)
        peer_addr = format_hostport(*peer.getsockname()[:2])
        with peer:
            exchange(client, peer, 64 * 1024)
            peer.sendall(b"bye")
            peer.shutdown(socket.SHUT_WR)
            assert recv_until_eof(client.sock) == b"bye"
            # Half-closed, not closed: the client can still answer.
            client.send(b"ack")
            assert recv_exact(peer, 3) == b"ack"
            peer.close()
            assert client.closed_by_peer()
    fields = d.wait_session(cmd="bind", reply=0)
    assert fields["addr"] == peer_addr
    assert fields["dest"] == f"[{LOOPBACK6}]:1"
    assert_fds_back(d, baseline)


def test_bind_ipv4_mapped_dst_is_ipv4(start_daemon):
    """::ffff:127.0.0.1 and 127.0.0.1 are the same peer; the reply says ATYP 1."""
    d = start_daemon()
    baseline = settled_fds(d)
    client, first = start_bind(d, "::ffff:127.0.0.1", 0)
    with client:
        assert first.rep == REP_SUCCESS and first.atyp == ATYP_IPV4, first
        assert first.host == LOOPBACK4
        with accept_peer(client, first, LOOPBACK4) as peer:
            exchange(client, peer, 1024)
    assert_fds_back(d, baseline)


def test_bind_ip_literal_sent_as_name_is_not_looked_up(start_daemon, dns_server):
    d = start_daemon()
    client, first = start_bind(d, LOOPBACK4, 0, atyp=ATYP_NAME)
    with client:
        assert first.rep == REP_SUCCESS and first.host == LOOPBACK4, first
        with accept_peer(client, first, LOOPBACK4) as peer:
            exchange(client, peer, 1024)
    assert dns_server.queried_names() == []


# IPv6 has one loopback address: its stranger comes from ::2 in a network
# namespace of the test's own.
@pytest.mark.parametrize("host,stranger_source", [(LOOPBACK4, "127.0.0.2"),
                                                  (LOOPBACK6, OTHER6)])
def test_bind_stranger_is_closed_and_peer_still_gets_through(
        start_daemon, start_netns_daemon, host, stranger_source):
    d = start_daemon() if host == LOOPBACK4 else start_netns_daemon()
    baseline = settled_fds(d)
    client, first = start_bind(d, host, 80)
    with client:
        assert first.rep == REP_SUCCESS and first.host == host, first
        # A port scanner: more connections than the backlog holds, from an
        # address that is not DST.ADDR. Each is closed, none answered.
        for _ in range(8):
            with connect_peer(first.bound, stranger_source) as stranger:
                assert peer_closed(stranger, timeout=3.0)
        assert_no_reply_yet(client)
        assert non_pipe_fds(d.proc.pid) == baseline + 2
        with accept_peer(client, first, host) as peer:
            peer_addr = format_hostport(*peer.getsockname()[:2])
            assert non_pipe_fds(d.proc.pid) == baseline + 2  # listener closed
            exchange(client, peer, 4096)
    d.wait_session(cmd="bind", reply=0, addr=peer_addr)
    assert_fds_back(d, baseline)


@pytest.mark.parametrize("dst,listen,peer_source,advertised", [
    # The client's own connection tells where it reached us.
    ("0.0.0.0", "127.0.0.5", "127.0.0.3", "127.0.0.5"),
    ("::", LOOPBACK6, LOOPBACK6, LOOPBACK6),
])
def test_bind_all_zeros_dst_accepts_any_peer(start_daemon, dst, listen, peer_source,
                                             advertised):
    d = start_daemon(listen_hosts=(listen,))
    baseline = settled_fds(d)
    client, first = start_bind(d, dst, 0)
    with client:
        assert first.rep == REP_SUCCESS
        assert first.host == advertised, first
        with accept_peer(client, first, peer_source) as peer:
            exchange(client, peer, 4096)
    assert_fds_back(d, baseline)


@pytest.mark.parametrize("name,address,stranger", [
    ("v4.test", LOOPBACK4, "127.0.0.2"),
    ("v6.test", LOOPBACK6, None),
])
def test_bind_name_dst_is_resolved(start_daemon, dns_server, name, address, stranger):
    d = start_daemon()
    baseline = settled_fds(d)
    client, first = start_bind(d, name, 21)
    with client:
        assert first.rep == REP_SUCCESS
        assert first.host == address, first
        if stranger is not None:
            # Only the address the name resolved to counts.
            with connect_peer(first.bound, stranger) as other:
                assert peer_closed(other, timeout=3.0)
        with accept_peer(client, first, address) as peer:
            peer_addr = format_hostport(*peer.getsockname()[:2])
            exchange(client, peer, 1024)
    d.wait_session(cmd="bind", dest=f"{name}:21", close="eof", addr=peer_addr)
    assert name in dns_server.queried_names()
    assert_fds_back(d, baseline)


def test_bind_unknown_name_is_host_unreachable(start_daemon):
    d = start_daemon()
    baseline = settled_fds(d)
    client, first = start_bind(d, "nxdomain.test", 21)
    with client:
        assert first.rep == REP_HOST_UNREACH
        assert client.closed_by_peer()
    d.wait_session(cmd="bind", reply=REP_HOST_UNREACH)
    assert_fds_back(d, baseline)


def test_bind_client_half_closed_while_resolving(start_daemon, dns_server):
    """A client gone before DST resolved gets no listener and no reply."""
    d = start_daemon()
    baseline = settled_fds(d)
    dns_server.delay = 0.3
    with Socks5Client(d.address) as client:
        assert client.greet() == 0
        client.send(request("v4.test", 21, CMD_BIND))
        client.shutdown_write()
        assert recv_until_eof(client.sock) == b""
    fields = d.wait_session(cmd="bind", close="client-eof")
    assert fields["reply"] == "-"
    assert "v4.test" in dns_server.queried_names()
    assert_fds_back(d, baseline)


# -- the rules judge the peer that connects ------------------------------------------

PEER_RULES = {"rule no-peer": {"action": "deny", "dest": "127.0.0.2/32"},
              "rule rest": {"action": "allow"}}


def assert_peer_refused(d, listener, source, metrics_port, refused_before):
    """A peer from source dials the listener: closed unanswered, counted,
    and logged with the rule's name; the client hears nothing."""
    from test_metrics import scrape
    with connect_peer(listener, source) as denied:
        denied.sendall(b"must never reach the client")
        assert peer_closed(denied, timeout=3.0)
    d.wait_log(r"bind: peer " + source.replace(".", r"\.") +
               r":\d+ refused by rule=no-peer: client=")
    count = scrape(metrics_port)("socks5d_refused_total", reason="bind_peer")
    assert count == refused_before + 1, count


@pytest.mark.parametrize("dst,listen_hosts,bind_address", [
    ("0.0.0.0", (LOOPBACK4,), None),
    # A dual-stack IPv6 listener sees an IPv4 peer as ::ffff:127.0.0.2; the
    # rule written for IPv4 must still catch it.
    ("::", (LOOPBACK6,), "0.0.0.0, ::"),
])
def test_bind_wildcard_denied_peer_is_closed_then_allowed_peer_served(
        start_daemon, dst, listen_hosts, bind_address):
    from test_metrics import start_with_metrics
    extra = {"bind": {"address": bind_address}} if bind_address else {}
    d, metrics_port = start_with_metrics(start_daemon, listen_hosts=listen_hosts,
                                         **PEER_RULES, **extra)
    baseline = settled_fds(d)
    early = b"early bytes for the real peer\n"
    client, first = start_bind(d, dst, 0, early=early)
    with client:
        assert first.rep == REP_SUCCESS, first
        # The peer dials the IPv4 side of the listener whatever its family.
        listener = (LOOPBACK4, first.port)
        assert_peer_refused(d, listener, "127.0.0.2", metrics_port, 0)
        assert_no_reply_yet(client)
        assert non_pipe_fds(d.proc.pid) == baseline + 2      # client + listener
        # The listener still waits, and an allowed peer gets through.
        peer = connect_peer(listener, "127.0.0.3")
        with peer:
            second = client.read_reply()
            assert second.rep == REP_SUCCESS, second
            assert second.host == "127.0.0.3", second
            assert recv_exact(peer, len(early)) == early
            exchange(client, peer, 4096)
    fields = d.wait_session(cmd="bind", close="eof")
    assert fields["addr"].startswith("127.0.0.3:"), fields
    assert "rule" not in fields, fields
    assert_fds_back(d, baseline)


def test_bind_denied_peer_until_timeout_is_ttl_expired(start_daemon):
    """Only denied peers before [timeouts] bind: the second reply is the
    timeout's, and not one of their bytes reached the client."""
    from test_metrics import start_with_metrics
    d, metrics_port = start_with_metrics(start_daemon, timeouts={"bind": 1}, **PEER_RULES)
    client, first = start_bind(d, "0.0.0.0", 0)
    with client:
        assert first.rep == REP_SUCCESS
        assert_peer_refused(d, (LOOPBACK4, first.port), "127.0.0.2", metrics_port, 0)
        second = client.read_reply()
        assert second.rep == REP_TTL_EXPIRED, second
        assert recv_until_eof(client.sock) == b""
    fields = d.wait_session(cmd="bind", reply=REP_TTL_EXPIRED)
    assert fields["addr"] == "-" and fields["down"] == "0", fields


def test_bind_specific_expected_peer_still_served_under_peer_rules(start_daemon):
    d = start_daemon(**PEER_RULES)
    client, first = start_bind(d, LOOPBACK4, 21)
    with client:
        assert first.rep == REP_SUCCESS
        with accept_peer(client, first, LOOPBACK4) as peer:
            exchange(client, peer, 1024)
    d.wait_session(cmd="bind", close="eof", reply=0)


def test_bind_peer_rule_with_names_judges_the_expected_peer_by_name(
        start_daemon, dns_server):
    """A rule allowing BIND by name still lets the peer that name resolved
    to in: the peer is judged with the request's name."""
    d = start_daemon(**{"rule by-name": {"action": "allow", "command": "bind",
                                         "dest": "v4.test"},
                        "rule no-bind": {"action": "deny", "command": "bind"}})
    client, first = start_bind(d, "v4.test", 21)
    with client:
        assert first.rep == REP_SUCCESS
        with accept_peer(client, first, LOOPBACK4) as peer:
            exchange(client, peer, 1024)
    d.wait_session(cmd="bind", close="eof", dest="v4.test:21")


# -- endings without a peer ---------------------------------------------------------

@pytest.mark.parametrize("host", [LOOPBACK4, LOOPBACK6])
def test_bind_timeout_sends_ttl_expired(start_daemon, host):
    d = start_daemon(timeouts={"bind": 1})
    baseline = settled_fds(d)
    client, first = start_bind(d, host, 0)
    with client:
        assert first.rep == REP_SUCCESS and first.host == host, first
        started = time.monotonic()
        second = client.read_reply()
        waited = time.monotonic() - started
        second.assert_ip_form()
        assert second.rep == REP_TTL_EXPIRED
        assert 0.5 < waited < 4, waited
        assert client.closed_by_peer()
        assert_refused(first.bound)
    fields = d.wait_session(cmd="bind", reply=REP_TTL_EXPIRED)
    assert fields["addr"] == "-"
    assert_fds_back(d, baseline)


@pytest.mark.parametrize("host", [LOOPBACK4, LOOPBACK6])
def test_bind_client_giving_up_closes_listener(start_daemon, host):
    d = start_daemon()
    baseline = settled_fds(d)
    client, first = start_bind(d, host, 0)
    assert first.rep == REP_SUCCESS and first.host == host, first
    assert is_listening(*first.bound)
    client.close()
    assert_refused(first.bound)
    d.wait_session(cmd="bind", close="client-eof", reply=0)
    assert_fds_back(d, baseline)


@pytest.mark.parametrize("how", ["close", "reset"])
def test_bind_client_gone_behind_a_full_buffer(start_daemon, how):
    """Early payload beyond the 4 KiB handshake buffer stops the daemon
    reading, so the FIN or RST sits behind unread bytes: the wait must still
    end soon after, not at [timeouts] bind."""
    d = start_daemon(timeouts={"bind": 120})
    baseline = settled_fds(d)
    client, first = start_bind(d, LOOPBACK4, 0)
    client.send(os.urandom(64 * 1024))
    assert is_listening(*first.bound)
    started = time.monotonic()
    if how == "reset":
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                               struct.pack("ii", 1, 0))
    client.close()
    assert_refused(first.bound)
    fields = d.wait_session(cmd="bind", close="client-eof" if how == "close"
                            else "reset", reply=0)
    assert time.monotonic() - started < 10
    assert fields["addr"] == "-"
    assert_fds_back(d, baseline)


@pytest.mark.parametrize("host", [LOOPBACK4, LOOPBACK6])
def test_bind_disabled_is_command_not_supported(start_daemon, host):
    d = start_daemon(bind={"enabled": False})
    baseline = settled_fds(d)
    client, first = start_bind(d, host, 0)
    with client:
        assert first.rep == REP_CMD_UNSUPPORTED
        assert client.closed_by_peer()
    d.wait_session(cmd="bind", reply=REP_CMD_UNSUPPORTED)
    assert_fds_back(d, baseline)


# -- configuration ----------------------------------------------------------------

def free_port_block(count, host=LOOPBACK4):
    """count consecutive ports free on host right now (racy, like free_port)."""
    for _ in range(50):
        base = int.from_bytes(os.urandom(2), "big") % 20000 + 30000
        holders = []
        try:
            for port in range(base, base + count):
                sock = socket.socket(family_of(host), socket.SOCK_STREAM)
                holders.append(sock)
                sock.bind((host, port))
            return base
        except OSError:
            continue
        finally:
            for sock in holders:
                sock.close()
    raise RuntimeError("no free block of ports")


@pytest.mark.parametrize("host", [LOOPBACK4, LOOPBACK6])
def test_bind_port_range(start_daemon, host):
    low = free_port_block(4, host)
    high = low + 3
    d = start_daemon(bind={"port_range": f"{low}-{high}"})
    baseline = settled_fds(d)

    # Four waiting BINDs take the four ports; a fifth finds none.
    clients = []
    try:
        ports = set()
        for _ in range(4):
            client, first = start_bind(d, host, 0)
            clients.append(client)
            assert first.rep == REP_SUCCESS
            assert low <= first.port <= high, (first, low, high)
            ports.add(first.port)
        assert len(ports) == 4, ports
        with Socks5Client(d.address) as extra:
            assert extra.greet() == 0
            reply = extra.request(host, 0, CMD_BIND)
            assert reply.rep == REP_FAILURE
            assert extra.closed_by_peer()
    finally:
        for client in clients:
            client.close()
    d.wait_log(r"no free port in port_range")
    assert_fds_back(d, baseline)

    # Ports held by someone else are skipped, and an advertised port works.
    holders = []
    try:
        for port in range(low, high):
            sock = socket.socket(family_of(host), socket.SOCK_STREAM)
            holders.append(sock)
            sock.bind((host, port))
            sock.listen(1)
        client, first = start_bind(d, host, 0)
        with client:
            assert first.rep == REP_SUCCESS
            assert first.port == high, first
            with accept_peer(client, first, host) as peer:
                exchange(client, peer, 1024)
        # With every port of the range taken: reply 0x01.
        sock = socket.socket(family_of(host), socket.SOCK_STREAM)
        holders.append(sock)
        wait_until(lambda: not is_listening(host, high), 3, what="port freed")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, high))
        sock.listen(1)
        client, first = start_bind(d, host, 0)
        with client:
            assert first.rep == REP_FAILURE
            assert client.closed_by_peer()
    finally:
        for sock in holders:
            sock.close()
    assert_fds_back(d, baseline)


# IPv6 has one loopback address: ::2, to tell the configured address from
# the one the daemon would pick, is in a network namespace of the test's own.
@pytest.mark.parametrize("dst,configured", [(LOOPBACK4, "127.0.0.3"),
                                            (LOOPBACK6, OTHER6)])
def test_bind_configured_address_is_advertised(start_daemon, start_netns_daemon, dst,
                                               configured):
    if dst == LOOPBACK4:
        d = start_daemon(bind={"address": "127.0.0.3, ::1"})
    else:
        d = start_netns_daemon(bind={"address": OTHER6})
    baseline = settled_fds(d)
    client, first = start_bind(d, dst, 0)
    with client:
        assert first.rep == REP_SUCCESS
        assert first.host == configured, first
        with accept_peer(client, first, dst) as peer:
            exchange(client, peer, 1024)
    d.wait_session(cmd="bind", close="eof")
    assert_fds_back(d, baseline)


@pytest.mark.parametrize("dst,listen,advertised", [
    # The source address toward DST, as without [bind] address...
    (LOOPBACK4, "127.0.0.5", LOOPBACK4),
    (LOOPBACK6, LOOPBACK6, LOOPBACK6),
    # ...or, for an all-zeros DST, where the client reached us.
    ("0.0.0.0", "127.0.0.5", "127.0.0.5"),
])
def test_bind_wildcard_address_advertises_a_concrete_one(start_daemon, dst, listen,
                                                         advertised):
    """A wildcard [bind] address listens on every address, but the reply
    must name one the peer can connect to."""
    d = start_daemon(listen_hosts=(listen,), bind={"address": "0.0.0.0, ::"})
    baseline = settled_fds(d)
    client, first = start_bind(d, dst, 0)
    with client:
        assert first.rep == REP_SUCCESS
        assert first.host == advertised and first.port != 0, first
        # The listener is the configured wildcard, not the advertised address.
        wildcard = "::" if ":" in advertised else "0.0.0.0"
        assert is_listening(wildcard, first.port)
        assert not is_listening(advertised, first.port)
        with accept_peer(client, first, LOOPBACK6 if ":" in dst else LOOPBACK4) as peer:
            exchange(client, peer, 1024)
    d.wait_session(cmd="bind", close="eof")
    assert_fds_back(d, baseline)


# -- real clients ---------------------------------------------------------------

def clean_env(**extra):
    """The environment without proxy or preload variables, plus extra."""
    env = {k: v for k, v in os.environ.items()
           if "proxy" not in k.lower() and not k.startswith(("LD_", "SOCKS"))}
    env.update(extra)
    return env


class LineReader:
    """Bounded reads of a child's stdout, line by line."""

    def __init__(self, proc):
        self.proc = proc
        self.buf = b""
        self.sel = selectors.DefaultSelector()
        self.sel.register(proc.stdout, selectors.EVENT_READ)

    def json_line(self, timeout=CLIENT_TIMEOUT):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not self.sel.select(left):
                raise AssertionError(f"no line from client; got {self.buf!r}")
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                raise AssertionError(f"client exited; got {self.buf!r}, stderr "
                                     f"{self.proc.stderr.read().decode(errors='replace')}")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)


def test_npm_socks_client_bind(daemon):
    baseline = settled_fds(daemon)
    proc = subprocess.Popen(["node", str(CLIENTS_DIR / "bind.js"), daemon.host,
                             str(daemon.port), LOOPBACK4, "0"],
                            cwd=str(CLIENTS_DIR), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=clean_env())
    try:
        lines = LineReader(proc)
        bound = lines.json_line()
        assert bound["event"] == "bound", bound
        assert bound["host"] == LOOPBACK4 and bound["port"] != 0, bound
        with connect_peer((bound["host"], bound["port"]), LOOPBACK4) as peer:
            established = lines.json_line()
            assert established["event"] == "established", established
            assert (established["host"], established["port"]) == peer.getsockname()[:2]
            payload = os.urandom(100 * 1024)
            peer.sendall(payload)
            assert recv_exact(peer, len(payload)) == payload
            peer.shutdown(socket.SHUT_WR)
            assert recv_until_eof(peer) == b""
        assert proc.wait(CLIENT_TIMEOUT) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    fields = daemon.wait_session(cmd="bind", close="eof")
    assert fields["up"] == fields["down"] == str(len(payload))
    assert_fds_back(daemon, baseline)


@pytest.fixture
def ftp_server(tmp_path):
    """pyftpdlib on 127.0.0.1, anonymous, writable, serving tmp_path/ftp."""
    root = tmp_path / "ftp"
    root.mkdir()
    port = free_port()
    proc = subprocess.Popen(["/usr/bin/python3", "-m", "pyftpdlib", "-i", LOOPBACK4,
                             "-p", str(port), "-d", str(root), "-w"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=clean_env())
    try:
        wait_until(lambda: is_listening(LOOPBACK4, port) or proc.poll() is not None, 10,
                   what="FTP server listening")
        assert proc.poll() is None, "pyftpdlib exited at start"
        yield root, port
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_socksify_active_ftp(daemon, ftp_server, tmp_path):
    """Dante's client library turns the FTP client's bind/listen/accept of
    its data socket into a SOCKS BIND (DST = the control connection's
    server), and the FTP server connects to what the proxy advertised.

    The FTP client is curl in active mode (-P -): Python's ftplib cannot be
    used, as socket.accept() calls accept4(2), which libdsocksd does not wrap
    (it fails with EINVAL on the socket Dante connected to the proxy)."""
    root, port = ftp_server
    blob = os.urandom(300 * 1024 + 5)
    (root / "down.bin").write_bytes(blob)
    upload = tmp_path / "up.bin"
    upload.write_bytes(os.urandom(200 * 1024 + 3))
    conf = tmp_path / "socks.conf"
    conf.write_text(
        "route {\n"
        f"\tfrom: 0.0.0.0/0 to: 0.0.0.0/0 via: {daemon.host} port = {daemon.port}\n"
        "\tproxyprotocol: socks_v5\n"
        "\tmethod: none\n"
        "}\n")
    # Without SOCKS_AUTOADD_LANROUTES=no Dante adds direct routes for local
    # networks, loopback included, and nothing would go through the proxy.
    env = clean_env(SOCKS_CONF=str(conf), SOCKS_AUTOADD_LANROUTES="no")
    url = f"ftp://{LOOPBACK4}:{port}/"
    common = ["socksify", "curl", "-sS", "--max-time", str(CLIENT_TIMEOUT - 5), "-P", "-"]

    down = subprocess.run(common + ["-o", "-", url + "down.bin"], env=env,
                          capture_output=True, timeout=CLIENT_TIMEOUT)
    assert down.returncode == 0, down.stderr.decode(errors="replace")
    assert hashlib.sha256(down.stdout).digest() == hashlib.sha256(blob).digest()

    up = subprocess.run(common + ["-T", str(upload), url + "up.bin"], env=env,
                        capture_output=True, timeout=CLIENT_TIMEOUT)
    assert up.returncode == 0, up.stderr.decode(errors="replace")
    assert (root / "up.bin").read_bytes() == upload.read_bytes()

    # Each transfer went through one BIND whose DST is the FTP server (so
    # the peer filter was on) and whose peer is the FTP server; the control
    # connections went through CONNECT.
    wait_until(lambda: len([f for f in daemon.session_lines()
                            if f.get("cmd") == "bind"]) >= 2, 5, what="two BIND sessions")
    binds = [f for f in daemon.session_lines() if f.get("cmd") == "bind"]
    assert len(binds) == 2, binds
    for fields in binds:
        assert fields["reply"] == "0", binds
        assert fields["dest"].startswith(f"{LOOPBACK4}:"), binds
        assert fields["addr"].startswith(f"{LOOPBACK4}:"), binds
    assert (int(binds[0]["up"]), int(binds[0]["down"])) == (0, len(blob)), binds
    assert int(binds[1]["up"]) == upload.stat().st_size, binds
    daemon.wait_session(cmd="connect", dest=f"{LOOPBACK4}:{port}")
