"""UDP ASSOCIATE with raw sockets: the reply, relaying over IPv4 and IPv6 to
addresses and names, who may use an association, header checks, sizes,
the end of an association, and its access-log counters. IPv6 cases that
need a second address run in a network namespace of their own
(harness/netns.py)."""
import contextlib
import functools
import http.client
import os
import re
import select
import socket
import struct
import time

import pytest

from harness import netns
from harness.net import (LOOPBACK4, LOOPBACK6, family_of, free_port, is_listening,
                         non_pipe_fds, settled_fds, wait_until)
from harness.netns import OTHER6
from harness.socks5 import (ATYP_IPV4, ATYP_IPV6, ATYP_NAME, REP_CMD_UNSUPPORTED,
                            REP_FAILURE, REP_SUCCESS, Socks5Client)
from harness.udp import (MAX_UDP_IPV4, Association, UdpServer, parse_udp_datagram,
                         udp_header)


@pytest.fixture
def udp_servers():
    """Factory: udp_servers(host=LOOPBACK4, answer=None) -> UdpServer."""
    servers = []

    def make(host=LOOPBACK4, answer=None):
        server = UdpServer(host, answer)
        servers.append(server)
        return server
    yield make
    for server in servers:
        server.close()


@pytest.fixture
def echo4(udp_servers):
    return udp_servers(LOOPBACK4)


@pytest.fixture
def echo6(udp_servers):
    return udp_servers(LOOPBACK6)


@pytest.fixture
def start_netns_daemon(start_daemon):
    """Factory like start_daemon, for a daemon in a network namespace of its
    own whose lo also has ::2 (harness/netns.py). The test joins that
    namespace until teardown: sockets it makes after the call (UDP servers
    included) live there."""
    with contextlib.ExitStack() as stack:
        yield functools.partial(netns.start_daemon_in, start_daemon, stack)


def associate(daemon, host="0.0.0.0", port=0, atyp=None, udp_host=None):
    a = Association(daemon.address, udp_host=udp_host)
    try:
        reply = a.request(host, port, atyp)
        assert reply.rep == REP_SUCCESS, f"UDP ASSOCIATE got REP {reply.rep:#x}"
    except BaseException:
        a.close()
        raise
    return a


def udp_session(daemon, **fields):
    return daemon.wait_session(cmd="udp", **fields)


def udp_port_free(host, port):
    """Can a UDP socket bind host:port right now?"""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                       socket.SOCK_DGRAM) as s:
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


# -- relaying ------------------------------------------------------------------

@pytest.mark.parametrize("listen", [LOOPBACK4, LOOPBACK6])
@pytest.mark.parametrize("target", [LOOPBACK4, LOOPBACK6])
def test_echo_through_relay(start_daemon, udp_servers, listen, target):
    d = start_daemon(listen_hosts=(listen,))
    echo = udp_servers(target)
    with associate(d) as a:
        # The relay is on the address the client reached, never 0.0.0.0,
        # and its port is a real one.
        assert a.relay[0] == listen and a.relay[1] != 0
        assert a.reply.atyp == (ATYP_IPV4 if listen == LOOPBACK4 else ATYP_IPV6)
        for payload in (b"first", b"", b"third" * 100):
            a.send(target, echo.port, payload)
            assert a.recv() == (target, echo.port, payload)
        # The target saw the association's own socket, not the client.
        assert echo.peers()[0] != a.local
    fields = udp_session(d, close="eof")
    assert fields["dgrams_up"] == fields["dgrams_down"] == "3"
    assert fields["up"] == fields["down"] == str(5 + 0 + 500)
    assert fields["reply"] == "0"


def test_replies_from_many_remotes_and_ipv4_mapped_destination(daemon, udp_servers):
    servers = [udp_servers() for _ in range(3)]
    with associate(daemon) as a:
        for i, server in enumerate(servers):
            a.send(LOOPBACK4, server.port, b"to %d" % i)
        got = sorted(a.recv() for _ in servers)
        assert got == sorted((LOOPBACK4, s.port, b"to %d" % i) for i, s in enumerate(servers))
        # An IPv4-mapped IPv6 destination goes out over IPv4, and the answer
        # names its sender in IPv4 form.
        a.send("::ffff:127.0.0.1", servers[0].port, b"mapped")
        assert a.recv() == (LOOPBACK4, servers[0].port, b"mapped")


@pytest.mark.parametrize("listen", [LOOPBACK4, LOOPBACK6])
@pytest.mark.parametrize("name,target", [("v4.test", LOOPBACK4), ("v6.test", LOOPBACK6)])
def test_name_destination_held_while_resolving_then_cached(start_daemon, dns_server,
                                                           udp_servers, name, target,
                                                           listen):
    d = start_daemon(listen_hosts=(listen,))
    echo = udp_servers(target)
    dns_server.delay = 0.3        # datagrams arrive while the name resolves
    with associate(d) as a:
        for i in range(3):
            a.send(name, echo.port, b"held %d" % i)
        # The reply names the sender by address, in order of sending.
        assert [a.recv() for _ in range(3)] == \
            [(target, echo.port, b"held %d" % i) for i in range(3)]
        asked = len(dns_server.queries)
        a.send(name.upper(), echo.port, b"cached")
        assert a.recv() == (target, echo.port, b"cached")
        assert len(dns_server.queries) == asked, "a known name was looked up again"
        # An IP literal sent as a name is not looked up.
        a.send(target, echo.port, b"literal", atyp=ATYP_NAME)
        assert a.recv() == (target, echo.port, b"literal")
        assert len(dns_server.queries) == asked
        # A name that does not resolve is dropped and counted, and so is
        # one still resolving when the association ends.
        dns_server.delay = 0
        a.send("nx.test", echo.port, b"nowhere")
        a.assert_nothing(0.5)
        dns_server.delay = 1.0
        a.send("both.test", echo.port, b"too late")
        time.sleep(0.1)
    fields = udp_session(d, close="eof")
    assert (fields["dgrams_up"], fields["drop_dns"]) == ("5", "2")


def test_silent_dns_server_drops_and_association_goes_on(start_daemon, dns_server, echo4):
    d = start_daemon(dns={"timeout": 1})
    dns_server.mode = "drop"
    with associate(d) as a:
        a.send("v4.test", echo4.port, b"waits, then dropped")
        wait_until(lambda: len(dns_server.queries) >= 2, 3, what="the lookups")
        # Answered from the table of failed names: no second lookup.
        time.sleep(1.5)
        asked = len(dns_server.queries)
        a.send("v4.test", echo4.port, b"known bad")
        a.send(LOOPBACK4, echo4.port, b"by address")
        assert a.recv()[2] == b"by address"
        a.assert_nothing(0.3)
        assert len(dns_server.queries) == asked
    fields = udp_session(d, close="eof")
    assert (fields["drop_dns"], fields["dgrams_up"]) == ("2", "1")


def test_held_queue_overflow_is_dropped_and_counted(start_daemon, dns_server, echo4):
    d = start_daemon()
    dns_server.delay = 0.5
    with associate(d) as a:
        for i in range(20):
            a.send("v4.test", echo4.port, b"%d" % i)
        got = [a.recv()[2] for _ in range(16)]
        assert got == [b"%d" % i for i in range(16)]
        a.assert_nothing(0.3)
    fields = udp_session(d, close="eof")
    assert (fields["dgrams_up"], fields["drop_queue"]) == ("16", "4")


def test_batch_of_datagrams_all_relayed(daemon, echo4):
    count = 64
    with associate(daemon) as a:
        for i in range(count):
            a.send(LOOPBACK4, echo4.port, struct.pack("!I", i) * 25)
        got = sorted(struct.unpack("!I", a.recv()[2][:4])[0] for _ in range(count))
        assert got == list(range(count))
    fields = udp_session(daemon, close="eof")
    assert fields["dgrams_up"] == fields["dgrams_down"] == str(count)
    assert fields["up"] == str(count * 100)


# IPv6 has one loopback address: the source ::2 is in a network namespace of
# the test's own.
@pytest.mark.parametrize("target,source", [(LOOPBACK4, "127.0.0.9"), (LOOPBACK6, OTHER6)])
def test_outbound_source_address(start_daemon, start_netns_daemon, udp_servers, target,
                                 source):
    if target == LOOPBACK4:
        d = start_daemon(outbound={"bind_ipv4": source})
    else:
        d = start_netns_daemon(outbound={"bind_ipv6": source})
    echo = udp_servers(target)
    with associate(d) as a:
        a.send(target, echo.port, b"from where?")
        assert a.recv() == (target, echo.port, b"from where?")
        assert echo.peers()[0][0] == source
    udp_session(d, close="eof")


# -- who may use an association ------------------------------------------------------

# IPv6 has one loopback address: its stranger sends from ::2 in a network
# namespace of the test's own.
@pytest.mark.parametrize("listen,stranger_source", [(LOOPBACK4, "127.0.0.2"),
                                                    (LOOPBACK6, OTHER6)])
def test_stranger_is_ignored(start_daemon, start_netns_daemon, udp_servers, listen,
                             stranger_source):
    if listen == LOOPBACK4:
        d = start_daemon()
    else:
        d = start_netns_daemon(listen_hosts=(listen,))
    echo4 = udp_servers(LOOPBACK4)
    with associate(d) as a:
        with socket.socket(family_of(listen), socket.SOCK_DGRAM) as stranger:
            stranger.bind((stranger_source, 0))
            a.send(LOOPBACK4, echo4.port, b"from a stranger", sock=stranger)
            time.sleep(0.2)
            assert echo4.count() == 0
            # The client is still served, and the stranger did not take the
            # port-learning slot.
            a.send(LOOPBACK4, echo4.port, b"from the client")
            assert a.recv()[2] == b"from the client"
            a.send(LOOPBACK4, echo4.port, b"again", sock=stranger)
            a.assert_nothing()
    fields = udp_session(d, close="eof")
    assert (fields["drop_stranger"], fields["dgrams_up"]) == ("2", "1")


@pytest.mark.parametrize("listen,dst,atyp,port", [
    (LOOPBACK4, "0.0.0.0", None, 0),        # all-zero: nothing known
    (LOOPBACK4, "127.0.0.1", None, 0),      # the address, port 0
    (LOOPBACK4, "0", ATYP_NAME, 9),         # a name, as PySocks sends: its
                                            # port says nothing either
    (LOOPBACK4, "::", None, 0),
    # An all-zero address makes the port beside it meaningless too: here
    # it is another socket's, which must not become the client.
    (LOOPBACK4, "0.0.0.0", None, "other"),
    (LOOPBACK4, "::", None, "other"),
    (LOOPBACK6, "::", None, 0),
    (LOOPBACK6, "::1", None, 0),
    (LOOPBACK6, "::", None, "other"),
])
def test_client_port_is_learnt_from_first_datagram(start_daemon, echo4, listen, dst,
                                                   atyp, port):
    d = start_daemon(listen_hosts=(listen,))
    with socket.socket(family_of(listen), socket.SOCK_DGRAM) as other:
        other.bind((listen, 0))
        other.settimeout(0.3)
        if port == "other":
            port = other.getsockname()[1]
        with associate(d, dst, port, atyp) as a:
            a.send(LOOPBACK4, echo4.port, b"first")
            assert a.recv()[2] == b"first"
            # Same address, another port: not the client any more.
            a.send(LOOPBACK4, echo4.port, b"other port", sock=other)
            with pytest.raises(socket.timeout):
                other.recv(100)
            a.send(LOOPBACK4, echo4.port, b"still")
            assert a.recv()[2] == b"still"
    fields = udp_session(d, close="eof")
    assert (fields["drop_stranger"], fields["dgrams_up"]) == ("1", "2")


@pytest.mark.parametrize("listen", [LOOPBACK4, LOOPBACK6])
def test_given_dst_fixes_the_client_port(start_daemon, echo4, listen):
    d = start_daemon(listen_hosts=(listen,))
    with socket.socket(family_of(listen), socket.SOCK_DGRAM) as early:
        early.bind((listen, 0))
        early.settimeout(0.3)
        a = Association(d.address)
        with a:
            reply = a.request(listen, a.local[1])
            assert reply.rep == REP_SUCCESS
            # Another port on the right address, even first, is a stranger.
            a.send(LOOPBACK4, echo4.port, b"not me", sock=early)
            with pytest.raises(socket.timeout):
                early.recv(100)
            a.send(LOOPBACK4, echo4.port, b"me")
            assert a.recv()[2] == b"me"
    fields = udp_session(d, close="eof")
    assert (fields["drop_stranger"], fields["dgrams_up"]) == ("1", "1")


# IPv6 has one loopback address: the named one, ::2, is in a network
# namespace of the test's own.
@pytest.mark.parametrize("listen,named_host", [(LOOPBACK4, "127.0.0.3"),
                                               (LOOPBACK6, OTHER6)])
def test_given_dst_address_is_the_client(start_daemon, start_netns_daemon, udp_servers,
                                         listen, named_host):
    # The request names another address as the client's: datagrams from
    # the TCP client's own address are then strangers.
    if listen == LOOPBACK4:
        d = start_daemon()
    else:
        d = start_netns_daemon(listen_hosts=(listen,))
    echo4 = udp_servers(LOOPBACK4)
    with socket.socket(family_of(listen), socket.SOCK_DGRAM) as named:
        named.bind((named_host, 0))
        named.settimeout(5)
        with associate(d, named_host, named.getsockname()[1]) as a:
            a.send(LOOPBACK4, echo4.port, b"from the TCP address")
            a.assert_nothing()
            a.send(LOOPBACK4, echo4.port, b"from the named one", sock=named)
            data, sender = named.recvfrom(1000)
            assert sender[:2] == a.relay
            assert parse_udp_datagram(data)[5] == b"from the named one"
    fields = udp_session(d, close="eof")
    assert (fields["drop_stranger"], fields["dgrams_up"]) == ("1", "1")


# -- headers -------------------------------------------------------------------

@pytest.mark.parametrize("listen", [LOOPBACK4, LOOPBACK6])
def test_bad_headers_are_dropped_and_counted(start_daemon, echo4, listen):
    d = start_daemon(listen_hosts=(listen,))
    with associate(d) as a:
        a.send_raw(udp_header(LOOPBACK4, echo4.port, frag=1) + b"fragment")
        a.send_raw(udp_header(LOOPBACK4, echo4.port, frag=0x81) + b"last fragment")
        a.send_raw(udp_header(LOOPBACK4, echo4.port, rsv=0x0100) + b"reserved")
        a.send_raw(b"\x00\x00\x00\x05\x7f\x00\x00\x01\x00\x07bad atyp")
        a.send_raw(b"\x00\x00\x00\x01\x7f\x00")            # short
        a.send_raw(b"\x00\x00\x00\x03\x00\x00\x07")        # empty name
        a.send(LOOPBACK4, echo4.port, b"good")
        assert a.recv()[2] == b"good"
        a.assert_nothing()
        assert [p for _, p in echo4.received] == [b"good"]
    fields = udp_session(d, close="eof")
    assert (fields["drop_frag"], fields["drop_rsv"], fields["drop_bad"]) == ("2", "1", "3")
    assert fields["dgrams_up"] == "1"


# -- sizes ---------------------------------------------------------------------

def test_largest_payload_both_ways_ipv6_client_ipv4_target(start_daemon, echo4):
    # Over ::1 a datagram carries up to 65527 bytes: a 65507-byte payload
    # with a 10-byte (ATYP 1) header fits, both ways.
    d = start_daemon(listen_hosts=(LOOPBACK6,))
    payload = os.urandom(MAX_UDP_IPV4)
    with associate(d) as a:
        a.send(LOOPBACK4, echo4.port, payload)
        host, port, back = a.recv()
        assert (host, port) == (LOOPBACK4, echo4.port)
        assert back == payload
        # One byte more cannot go out over IPv4: dropped and counted.
        a.send(LOOPBACK4, echo4.port, payload + b"x")
        a.assert_nothing(0.5)
        assert echo4.count() == 1
    fields = udp_session(d, close="eof")
    assert fields["up"] == fields["down"] == str(MAX_UDP_IPV4)
    assert fields["drop_oversize"] == "1"


def test_reply_too_big_to_wrap_is_dropped(daemon, udp_servers):
    # The remote answers a 4-byte size with that many bytes. To an IPv4
    # client the relay can send 65507 bytes: 10 of header, 65497 of payload.
    server = udp_servers(answer=lambda p: b"r" * struct.unpack("!I", p)[0])
    with associate(daemon) as a:
        a.send(LOOPBACK4, server.port, struct.pack("!I", MAX_UDP_IPV4 - 10 + 1))
        a.assert_nothing(0.5)
        a.send(LOOPBACK4, server.port, struct.pack("!I", MAX_UDP_IPV4 - 10))
        assert a.recv()[2] == b"r" * (MAX_UDP_IPV4 - 10)
        assert server.count() == 2
    fields = udp_session(daemon, close="eof")
    assert (fields["drop_oversize"], fields["dgrams_down"]) == ("1", "1")
    assert fields["down"] == str(MAX_UDP_IPV4 - 10)


# -- the end of an association --------------------------------------------------------

@pytest.mark.parametrize("how", ["close", "reset"])
@pytest.mark.parametrize("listen", [LOOPBACK4, LOOPBACK6])
def test_association_ends_with_control_connection(start_daemon, echo4, echo6, listen, how):
    d = start_daemon(listen_hosts=(listen,))
    pid = d.proc.pid
    baseline = settled_fds(d)
    a = associate(d)
    a.send(LOOPBACK4, echo4.port, b"v4")
    a.recv()
    a.send(LOOPBACK6, echo6.port, b"v6")
    a.recv()
    # Control connection, relay socket, one outbound socket per family.
    assert non_pipe_fds(pid) == baseline + 4
    relay = a.relay
    if how == "reset":
        # SO_LINGER 0: close sends RST, and the daemon reads ECONNRESET.
        a.client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 struct.pack("ii", 1, 0))
    a.client.close()
    fields = udp_session(d, close="eof" if how == "close" else "reset")
    assert fields["dgrams_up"] == "2"
    wait_until(lambda: non_pipe_fds(pid) == baseline, 5, what="descriptors released")
    assert udp_port_free(*relay)
    # Nothing answers on the old relay port any more.
    a.send(LOOPBACK4, echo4.port, b"too late")
    time.sleep(0.2)
    assert echo4.count() == 1
    a.udp.close()


def test_control_connection_bytes_are_ignored_and_never_answered(daemon, echo4):
    with associate(daemon) as a:
        a.client.send(b"\x05\x01\x00" + b"junk" * 50000)
        a.send(LOOPBACK4, echo4.port, b"still relaying")
        assert a.recv()[2] == b"still relaying"
        a.client.sock.settimeout(0.3)
        with pytest.raises(socket.timeout):
            a.client.sock.recv(100)
    udp_session(daemon, close="eof")


@pytest.mark.deadline(30)
@pytest.mark.parametrize("listen", [LOOPBACK4, LOOPBACK6])
def test_idle_association_is_closed(start_daemon, echo4, listen):
    d = start_daemon(listen_hosts=(listen,), timeouts={"udp_idle": 1})
    pid = d.proc.pid
    baseline = settled_fds(d)
    with associate(d) as a:
        # Datagrams keep it alive past udp_idle...
        started = time.monotonic()
        while time.monotonic() - started < 1.5:
            a.send(LOOPBACK4, echo4.port, b"tick")
            assert a.recv()[2] == b"tick"
            last = time.monotonic()
            time.sleep(0.3)
        assert non_pipe_fds(pid) == baseline + 3
        # ...and silence ends it, closing the control connection.
        assert a.client.closed_by_peer(timeout=4.0)
        assert 0.8 <= time.monotonic() - last <= 3.0
    fields = udp_session(d, close="idle")
    assert int(fields["dgrams_up"]) >= 4
    wait_until(lambda: non_pipe_fds(pid) == baseline, 5, what="descriptors released")


@pytest.mark.deadline(30)
def test_strangers_do_not_keep_an_association_alive(start_daemon):
    d = start_daemon(timeouts={"udp_idle": 1})
    with associate(d) as a:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
            stranger.bind(("127.0.0.2", 0))
            started = time.monotonic()
            closed = False
            while not closed and time.monotonic() - started < 4:
                a.send(LOOPBACK4, 9, b"noise", sock=stranger)
                # A real 0.2 s between datagrams, even where the harness
                # stretches its waits (valgrind): the daemon's idle timer
                # is not stretched.
                readable, _, _ = select.select([a.client.sock], [], [], 0.2)
                closed = bool(readable) and a.client.closed_by_peer(timeout=1.0)
            assert closed and time.monotonic() - started < 3.0
    fields = udp_session(d, close="idle")
    assert int(fields["drop_stranger"]) >= 3


# -- configuration ------------------------------------------------------------------

def test_disabled_is_command_not_supported(start_daemon):
    d = start_daemon(udp={"enabled": False})
    with Socks5Client(d.address) as c:
        c.greet()
        reply = c.request("0.0.0.0", 0, cmd=0x03)
        reply.assert_ip_form()
        assert reply.rep == REP_CMD_UNSUPPORTED
        assert c.closed_by_peer()
    d.wait_session(cmd="udp", reply=REP_CMD_UNSUPPORTED, close="rejected")


def free_udp_block(count, host=LOOPBACK4):
    """count consecutive UDP ports free on host right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((host, 0))
        start = probe.getsockname()[1]
    for base in list(range(start, 60000 - count, 7)) + list(range(20000, start, 7)):
        if all(udp_port_free(host, p) for p in range(base, base + count)):
            return base
    raise RuntimeError("no block of free UDP ports")


def test_port_range(start_daemon, echo4):
    low = free_udp_block(3)
    d = start_daemon(udp={"port_range": f"{low}-{low + 2}"})
    held = [associate(d) for _ in range(3)]
    try:
        ports = sorted(a.relay[1] for a in held)
        assert ports == [low, low + 1, low + 2]
        # The range is used up: general failure.
        with Association(d.address) as extra:
            reply = extra.request()
            assert reply.rep == REP_FAILURE
            assert extra.client.closed_by_peer()
        # A finished association gives its port back.
        freed = held.pop(0)
        freed.close()
        wait_until(lambda: udp_port_free(LOOPBACK4, freed.relay[1]), 5, what="port freed")
        again = associate(d)
        held.append(again)
        assert again.relay[1] == freed.relay[1]
        again.send(LOOPBACK4, echo4.port, b"in range")
        assert again.recv()[2] == b"in range"
    finally:
        for a in held:
            a.close()
    d.wait_session(cmd="udp", reply=REP_FAILURE, close="rejected")


def scrape_udp_metrics(port):
    """{(name, label value): value} of the socks5d_udp_* and
    socks5d_relayed_bytes_total samples."""
    conn = http.client.HTTPConnection(LOOPBACK4, port, timeout=5)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        assert response.status == 200
        text = response.read().decode()
    finally:
        conn.close()
    return {(m.group(1), m.group(2)): float(m.group(3)) for m in re.finditer(
        r'^(socks5d_udp_\w+|socks5d_relayed_bytes_total)\{\w+="(\w+)"\} (\S+)$',
        text, re.M)}


def test_metrics_count_live_associations(start_daemon, echo4):
    port = free_port()
    d = start_daemon(metrics={"listen": f"{LOOPBACK4}:{port}"})
    wait_until(lambda: is_listening(LOOPBACK4, port), 5, what="metrics listener")
    with associate(d) as a:
        a.send(LOOPBACK4, echo4.port, b"one")
        a.recv()
        a.send_raw(udp_header(LOOPBACK4, echo4.port, frag=1) + b"fragment")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
            stranger.bind(("127.0.0.2", 0))
            a.send(LOOPBACK4, echo4.port, b"stranger", sock=stranger)
        a.assert_nothing()
        # Counted while the association is still open, not only at its end.
        m = scrape_udp_metrics(port)
        assert m[("socks5d_udp_datagrams_total", "up")] == 1
        assert m[("socks5d_udp_datagrams_total", "down")] == 1
        assert m[("socks5d_udp_dropped_total", "frag")] == 1
        assert m[("socks5d_udp_dropped_total", "stranger")] == 1
        assert m[("socks5d_udp_dropped_total", "dns")] == 0
        # Payload bytes too: "one" each way.
        assert m[("socks5d_relayed_bytes_total", "up")] == 3
        assert m[("socks5d_relayed_bytes_total", "down")] == 3
    udp_session(d, close="eof")
    # Nothing is counted twice when it ends.
    m = scrape_udp_metrics(port)
    assert m[("socks5d_udp_datagrams_total", "up")] == 1
    assert m[("socks5d_udp_dropped_total", "frag")] == 1
    assert m[("socks5d_relayed_bytes_total", "up")] == 3
    assert m[("socks5d_relayed_bytes_total", "down")] == 3


# Each family's client gets its own family's address. IPv6 has one loopback
# address: ::2, to tell the advertised address from the real one, is in a
# network namespace of the test's own.
@pytest.mark.parametrize("listen,advertised", [(LOOPBACK4, "127.0.0.5"),
                                               (LOOPBACK6, OTHER6)])
def test_advertised_address(start_daemon, start_netns_daemon, udp_servers, listen,
                            advertised):
    if listen == LOOPBACK4:
        d = start_daemon(udp={"advertise_ipv4": advertised, "advertise_ipv6": LOOPBACK6})
    else:
        d = start_netns_daemon(listen_hosts=(listen,), udp={"advertise_ipv4": "127.0.0.5",
                                                            "advertise_ipv6": advertised})
    echo4 = udp_servers(LOOPBACK4)
    with Association(d.address) as a:
        reply = a.request()
        assert reply.rep == REP_SUCCESS
        assert reply.host == advertised and reply.port != 0, reply
        # The socket itself stays on the address the client reached.
        a.relay = (listen, reply.port)
        a.send(LOOPBACK4, echo4.port, b"behind NAT")
        assert a.recv()[2] == b"behind NAT"
    udp_session(d, close="eof")
