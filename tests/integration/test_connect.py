"""CONNECT: address types, name resolution, reply codes and the BND fields of
the success reply."""
import os
import signal
import socket
import subprocess
import time

import pytest

from harness import netns, socks5
from harness.net import LOOPBACK4, LOOPBACK6, closed_port, format_hostport, free_port
from harness.socks5 import (ATYP_IPV4, ATYP_IPV6, ATYP_NAME, CMD_BIND,
                            CMD_CONNECT, CMD_UDP, METHOD_NONE,
                            REP_ATYP_UNSUPPORTED, REP_CMD_UNSUPPORTED,
                            REP_HOST_UNREACH, REP_NET_UNREACH, REP_NOT_ALLOWED,
                            REP_REFUSED, REP_SUCCESS,
                            REP_TTL_EXPIRED, Socks5Client, assert_echo,
                            open_tunnel)
from harness.targets import TargetServer, behave_echo, behave_hold


def request_reply(daemon, host, port, cmd=CMD_CONNECT, atyp=None):
    """Greet, send one request, return (client, reply); the caller closes."""
    client = Socks5Client(daemon.address)
    assert client.greet() == METHOD_NONE
    return client, client.request(host, port, cmd, atyp)


def assert_error_reply(daemon, host, port, expected, cmd=CMD_CONNECT, atyp=None):
    """The request gets a full IP-form reply with REP expected, then the
    connection is closed."""
    client, reply = request_reply(daemon, host, port, cmd, atyp)
    with client:
        reply.assert_ip_form()
        assert reply.rep == expected, f"REP {reply.rep:#x}, expected {expected:#x}"
        assert client.closed_by_peer(), "connection left open after an error reply"
    return reply


# -- address types -----------------------------------------------------------

def test_connect_ipv4(daemon, echo_target):
    with open_tunnel(daemon.address, LOOPBACK4, echo_target.port) as client:
        assert_echo(client)


def test_connect_ipv6(daemon, echo_target6):
    with open_tunnel(daemon.address, LOOPBACK6, echo_target6.port) as client:
        assert_echo(client)


@pytest.mark.parametrize("name,host", [
    ("v4.test", LOOPBACK4),
    ("v6.test", LOOPBACK6),
    ("V4.Test", LOOPBACK4),           # DNS names are case-insensitive
])
def test_connect_name_via_dns(daemon, make_target, dns_server, name, host):
    target = make_target(hosts=(host,))
    with open_tunnel(daemon.address, name, target.port) as client:
        assert_echo(client)
    assert target.wait_connection().peer[0] == host
    assert name.lower() in [q.lower() for q in dns_server.queried_names()]


@pytest.mark.parametrize("family,expected", [("ipv4", LOOPBACK4), ("ipv6", LOOPBACK6)])
def test_dns_family_preference(start_daemon, make_target, family, expected):
    """both.test has A and AAAA; [dns] family picks which one is used."""
    target = make_target(hosts=(LOOPBACK4, LOOPBACK6))
    d = start_daemon(dns={"family": family})
    with open_tunnel(d.address, "both.test", target.port) as client:
        assert_echo(client)
    assert target.wait_connection().peer[0] == expected


def test_dns_family_auto_dual_stack_name(daemon, make_target):
    target = make_target(hosts=(LOOPBACK4, LOOPBACK6))
    with open_tunnel(daemon.address, "both.test", target.port) as client:
        assert_echo(client)
    assert target.wait_connection().peer[0] in (LOOPBACK4, LOOPBACK6)


def test_localhost_from_etc_hosts(daemon, echo_target, dns_server):
    """localhost is not in the test DNS server (it would answer NXDOMAIN), so
    success means /etc/hosts was honoured."""
    assert "localhost" not in dns_server.records
    with open_tunnel(daemon.address, "localhost", echo_target.port) as client:
        assert_echo(client)


def test_hosts_file_answers_without_dns(start_daemon, make_target, dns_server, tmp_path):
    """A name in [dns] hosts_file connects to its listed address (case and a
    trailing dot do not matter) and DNS is never asked, even for a name the
    DNS server also knows with another address."""
    target = make_target(hosts=(LOOPBACK4,))
    hosts = tmp_path / "hosts"
    hosts.write_text("# test\n127.0.0.1 listed.test v6.test\n")
    d = start_daemon(dns={"hosts_file": str(hosts)})
    for index, name in enumerate(("listed.test", "LISTED.test.", "v6.test")):
        with open_tunnel(d.address, name, target.port) as client:
            assert_echo(client)
        assert target.wait_connection(index).peer[0] == LOOPBACK4
    assert dns_server.queried_names() == []


def test_hosts_file_order_and_family(start_daemon, make_target, dns_server, tmp_path):
    """Listed IPv6 first: auto keeps file order, ipv4 puts 127.0.0.1 first."""
    target = make_target(hosts=(LOOPBACK4, LOOPBACK6))
    hosts = tmp_path / "hosts"
    hosts.write_text("::1 dual.test\n127.0.0.1 dual.test\n")
    for index, (family, expected) in enumerate((("auto", LOOPBACK6),
                                                ("ipv4", LOOPBACK4))):
        d = start_daemon(dns={"hosts_file": str(hosts), "family": family})
        with open_tunnel(d.address, "dual.test", target.port) as client:
            assert_echo(client)
        assert target.wait_connection(index).peer[0] == expected
        d.stop()
    assert dns_server.queried_names() == []


def test_hosts_file_reread_on_reload(start_daemon, make_target, dns_server, tmp_path):
    target = make_target(hosts=(LOOPBACK4,))
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 early.test\n")
    d = start_daemon(dns={"hosts_file": str(hosts)})
    with open_tunnel(d.address, "early.test", target.port) as client:
        assert_echo(client)
    hosts.write_text("127.0.0.1 later.test\n")
    d.send_signal(signal.SIGHUP)
    d.wait_log(r"reloaded")
    with open_tunnel(d.address, "later.test", target.port) as client:
        assert_echo(client)
    assert dns_server.queried_names() == []
    # No longer listed: now DNS is asked, and answers NXDOMAIN.
    client, reply = request_reply(d, "early.test", target.port)
    client.close()
    assert reply.rep == REP_HOST_UNREACH
    assert "early.test" in dns_server.queried_names()


def test_empty_hosts_file_is_not_read(start_daemon, echo_target, dns_server):
    """With hosts_file empty, /etc/hosts is not consulted: localhost (which
    it lists, and which the echo target listens on) is not found, where the
    default config connects (test_localhost_from_etc_hosts)."""
    d = start_daemon(dns={"hosts_file": ""})
    client, reply = request_reply(d, "localhost", echo_target.port)
    client.close()
    assert reply.rep == REP_HOST_UNREACH
    assert echo_target.records == []


def test_unreadable_hosts_file_is_a_config_error(check_config, tmp_path):
    missing = tmp_path / "nope"
    result, path = check_config(f"[dns]\nhosts_file = {missing}\n")
    assert result.returncode == 2
    assert f"{path}:2: [dns] hosts_file: {missing}: cannot open" in result.stderr, result.stderr


@pytest.mark.parametrize("literal,host", [(LOOPBACK4, LOOPBACK4), (LOOPBACK6, LOOPBACK6)])
def test_name_that_is_an_ip_literal(start_daemon, dns_server, make_target, literal, host):
    """An IP literal sent as ATYP 3 connects without any DNS query: the DNS
    server is made silent, so a query would turn into a failure."""
    dns_server.mode = "drop"
    target = make_target(hosts=(host,))
    d = start_daemon(dns={"timeout": 1})
    client = Socks5Client(d.address)
    with client:
        assert client.greet() == METHOD_NONE
        reply = client.request(literal, target.port, atyp=ATYP_NAME)
        reply.assert_ip_form()
        assert reply.rep == REP_SUCCESS
        assert_echo(client)
    assert dns_server.queried_names() == []


def test_ipv6_listener_serves_ipv4_and_ipv6_targets(start_daemon, echo_target, echo_target6):
    d = start_daemon(listen_hosts=(LOOPBACK4, LOOPBACK6))
    for proxy in d.listen:
        for target in (echo_target, echo_target6):
            with open_tunnel(proxy, *target.address) as client:
                assert_echo(client)


# -- reply codes -----------------------------------------------------------

def test_refused_port_replies_05(daemon):
    holder, port = closed_port()
    with holder:
        assert_error_reply(daemon, LOOPBACK4, port, REP_REFUSED)


def test_refused_port_ipv6_replies_05(daemon):
    holder, port = closed_port(LOOPBACK6)
    with holder:
        assert_error_reply(daemon, LOOPBACK6, port, REP_REFUSED)


def test_refused_port_by_name_replies_05(daemon):
    holder, port = closed_port()
    with holder:
        assert_error_reply(daemon, "v4.test", port, REP_REFUSED)


def refusing(host, port):
    """A socket bound to host:port but not listening: connecting there is
    refused for as long as it stays open."""
    sock = socket.socket(socket.AF_INET6 if host == LOOPBACK6 else socket.AF_INET)
    sock.bind((host, port))
    return sock


def test_refused_first_address_falls_back_to_the_next(start_daemon, dns_server, tmp_path):
    """multi.test lists ::1 first, which [dns] family = auto tries first
    (test_hosts_file_order_and_family); ::1 refuses, so the session must go
    on to 127.0.0.1, where the target listens on the same port. The access
    log names the address really connected to."""
    port = free_port((LOOPBACK4, LOOPBACK6))
    hosts = tmp_path / "hosts"
    hosts.write_text("::1 multi.test\n127.0.0.1 multi.test\n")
    with refusing(LOOPBACK6, port):
        target = TargetServer(behave_echo, (LOOPBACK4,), port=port)
        try:
            d = start_daemon(dns={"hosts_file": str(hosts), "family": "auto"})
            with open_tunnel(d.address, "multi.test", port) as client:
                assert_echo(client)
            assert target.wait_connection().peer[0] == LOOPBACK4
            fields = d.wait_session(dest=f"multi.test:{port}")
            assert fields["reply"] == "0", fields
            assert fields["addr"] == format_hostport(LOOPBACK4, port), fields
        finally:
            target.close()
    assert dns_server.queried_names() == []


def test_every_address_refused_replies_05(start_daemon, tmp_path):
    """Both addresses refuse: 0x05 (from the last attempt), and the access
    log claims no address connected to."""
    port = free_port((LOOPBACK4, LOOPBACK6))
    hosts = tmp_path / "hosts"
    hosts.write_text("::1 multi.test\n127.0.0.1 multi.test\n")
    d = start_daemon(dns={"hosts_file": str(hosts)})
    with refusing(LOOPBACK6, port), refusing(LOOPBACK4, port):
        assert_error_reply(d, "multi.test", port, REP_REFUSED)
    fields = d.wait_session(dest=f"multi.test:{port}")
    assert fields["reply"] == str(REP_REFUSED), fields
    assert fields["addr"] == "-", fields


# Routes for a namespace of the test's own: in the local table a /32 wins
# over lo's 127.0.0.0/8, and connect(2) fails at once with the errno noted.
ROUTE_REPLIES = [
    ("unreachable", "127.0.0.5", REP_HOST_UNREACH),     # EHOSTUNREACH
    ("throw", "127.0.0.6", REP_NET_UNREACH),            # no route at all: ENETUNREACH
    ("prohibit", "127.0.0.7", REP_NOT_ALLOWED),         # EACCES
]


def test_unroutable_targets_get_their_reply_codes(start_daemon):
    """What loopback alone cannot produce: a network or host unreachable,
    or administratively prohibited, each answered with its own code."""
    why = netns.unavailable()
    if why:
        pytest.skip(why)
    d = start_daemon(wait=False, command=netns.start_command())
    with netns.joined(d.proc.pid):
        for kind, host, _ in ROUTE_REPLIES:
            subprocess.run(["ip", "route", "add", kind, f"{host}/32", "table", "local"],
                           check=True, capture_output=True)
        d.wait_listening()
        for _, host, reply in ROUTE_REPLIES:
            assert_error_reply(d, host, 80, reply)


@pytest.mark.parametrize("name", ["nx.test", "no-such-host.example.test", "a" * 63 + ".test"])
def test_nxdomain_replies_04(daemon, name):
    assert_error_reply(daemon, name, 80, REP_HOST_UNREACH)


@pytest.mark.parametrize("name", ["x" * 64 + ".test",          # label too long
                                  ("abcdefg." * 32)[:255]])     # 255 bytes
def test_overlong_dns_name_is_an_error(daemon, echo_target, name):
    """Names DNS cannot carry fail with an error reply; the daemon goes on."""
    client, reply = request_reply(daemon, name, echo_target.port)
    with client:
        reply.assert_ip_form()
        assert reply.rep != REP_SUCCESS
        assert client.closed_by_peer()
    with open_tunnel(daemon.address, *echo_target.address) as client:
        assert_echo(client)


def test_dns_server_silent_gives_error_reply(start_daemon, dns_server):
    """A resolver timeout must end in an error reply (host unreachable or
    TTL expired), within the DNS timeout plus slack, not a hang."""
    dns_server.mode = "drop"
    d = start_daemon(dns={"timeout": 1})
    started = time.monotonic()
    client, reply = request_reply(d, "v4.test", 80)
    with client:
        reply.assert_ip_form()
        assert reply.rep in (REP_HOST_UNREACH, REP_TTL_EXPIRED)
        assert client.closed_by_peer()
    assert time.monotonic() - started < 9


def test_dns_servfail_gives_04(start_daemon, dns_server):
    dns_server.mode = "servfail"
    d = start_daemon()
    assert_error_reply(d, "v4.test", 80, REP_HOST_UNREACH)


def test_connect_timeout_replies_06(start_daemon):
    """A target whose accept queue is full drops SYNs, so the daemon's connect
    hangs until [timeouts] connect expires."""
    blackhole = socket.socket()
    blackhole.bind((LOOPBACK4, 0))
    blackhole.listen(0)
    port = blackhole.getsockname()[1]
    fillers = []
    with blackhole:
        # Fill the accept queue (backlog 0 still takes one or two).
        for _ in range(3):
            s = socket.socket()
            s.settimeout(0.3)
            try:
                s.connect((LOOPBACK4, port))
            except OSError:
                pass
            fillers.append(s)
        d = start_daemon(timeouts={"connect": 1})
        started = time.monotonic()
        client, reply = request_reply(d, LOOPBACK4, port)
        elapsed = time.monotonic() - started
        with client:
            reply.assert_ip_form()
            assert reply.rep == REP_TTL_EXPIRED, f"REP {reply.rep:#x}"
            assert client.closed_by_peer()
        for s in fillers:
            s.close()
    assert 0.5 <= elapsed < 5, f"connect timeout took {elapsed:.2f}s"


@pytest.mark.parametrize("cmd", [0x00, 0x04, 0xFF])
def test_unknown_command_replies_07(daemon, echo_target, cmd):
    assert_error_reply(daemon, *echo_target.address, REP_CMD_UNSUPPORTED, cmd=cmd)
    time.sleep(0.1)
    assert echo_target.records == [], "an unknown command reached the target"


@pytest.mark.parametrize("cmd, section", [(CMD_BIND, "bind"), (CMD_UDP, "udp")])
def test_disabled_command_replies_07(start_daemon, echo_target, cmd, section):
    daemon = start_daemon(**{section: {"enabled": "no"}})
    assert_error_reply(daemon, *echo_target.address, REP_CMD_UNSUPPORTED, cmd=cmd)
    time.sleep(0.1)
    assert echo_target.records == [], "an unsupported command reached the target"


@pytest.mark.parametrize("atyp", [0x00, 0x02, 0x05, 0xFF])
def test_unknown_atyp_replies_08(daemon, atyp):
    with Socks5Client(daemon.address) as client:
        assert client.greet() == METHOD_NONE
        # An IPv4-sized body after the bad ATYP; the daemon cannot know its
        # length, so it must answer without waiting for more.
        client.send(bytes([5, CMD_CONNECT, 0, atyp, 127, 0, 0, 1, 0, 80]))
        reply = client.read_reply()
        reply.assert_ip_form()
        assert reply.rep == REP_ATYP_UNSUPPORTED
        assert client.closed_by_peer()


def test_unknown_atyp_alone_replies_08(daemon):
    """Only the four header bytes: the reply must not wait for an address."""
    with Socks5Client(daemon.address, timeout=3) as client:
        assert client.greet() == METHOD_NONE
        client.send(bytes([5, CMD_CONNECT, 0, 0x09]))
        reply = client.read_reply()
        reply.assert_ip_form()
        assert reply.rep == REP_ATYP_UNSUPPORTED


@pytest.mark.parametrize("name", [b"", b"v4\x00.test", b"\x00", b"v4.test\x00"])
def test_bad_name_replies_04(daemon, echo_target, dns_server, name):
    assert_error_reply(daemon, name, echo_target.port, REP_HOST_UNREACH)
    assert echo_target.records == []


def test_request_with_nonzero_rsv_is_handled(daemon, echo_target):
    """RSV must be 0; a daemon may accept or refuse a non-zero one, but must
    answer with a well-formed reply and keep serving."""
    with Socks5Client(daemon.address) as client:
        assert client.greet() == METHOD_NONE
        req = bytearray(socks5.request(*echo_target.address))
        req[2] = 0x01
        client.send(bytes(req))
        try:
            reply = client.read_reply()
            reply.assert_ip_form()
        except (EOFError, ConnectionResetError):
            pass
    with open_tunnel(daemon.address, *echo_target.address) as client:
        assert_echo(client)


def test_port_zero_is_an_error(daemon):
    client, reply = request_reply(daemon, LOOPBACK4, 0)
    with client:
        reply.assert_ip_form()
        assert reply.rep != REP_SUCCESS


# -- BND fields --------------------------------------------------------------

@pytest.mark.parametrize("host,atyp", [(LOOPBACK4, ATYP_IPV4), (LOOPBACK6, ATYP_IPV6)])
def test_success_reply_bnd_is_outbound_local_address(daemon, make_target, host, atyp):
    target = make_target(behave_hold, hosts=(host,))
    with open_tunnel(daemon.address, host, target.port) as client:
        reply = client.reply
        assert reply.atyp == atyp
        peer = target.wait_connection().peer
        assert reply.bound == peer, f"BND {reply.bound} but the target saw {peer}"


def test_ipv4_mapped_destination_gets_ipv4_bnd(daemon, make_target):
    """A CONNECT to ::ffff:127.0.0.1 (ATYP 4) reaches the IPv4 target, and the
    reply reports the outbound address as IPv4 (ATYP 1), never as mapped."""
    target = make_target(behave_hold, hosts=(LOOPBACK4,))
    with open_tunnel(daemon.address, "::ffff:127.0.0.1", target.port) as client:
        reply = client.reply
        assert reply.atyp == ATYP_IPV4, f"BND ATYP {reply.atyp}: {reply.raw.hex()}"
        assert reply.bound == target.wait_connection().peer


def test_bnd_by_name_matches_target_peer(daemon, make_target):
    target = make_target(behave_hold, hosts=(LOOPBACK6,))
    client, reply = request_reply(daemon, "v6.test", target.port)
    with client:
        assert reply.rep == REP_SUCCESS
        assert reply.atyp == ATYP_IPV6
        assert reply.bound == target.wait_connection().peer


def test_outbound_bind_address(start_daemon, make_target):
    """[outbound] bind_ipv4 / bind_ipv6 set the source address the target
    sees (and so the BND address), each for its own family."""
    target = make_target(behave_hold, hosts=(LOOPBACK4, LOOPBACK6))
    d = start_daemon(outbound={"bind_ipv4": "127.0.0.2", "bind_ipv6": "::1"})
    for index, (host, source) in enumerate([(LOOPBACK4, "127.0.0.2"), (LOOPBACK6, "::1")]):
        client, reply = request_reply(d, host, target.port)
        with client:
            assert reply.rep == REP_SUCCESS
            peer = target.wait_connection(index).peer
            assert peer[0] == source
            assert reply.bound == peer


def test_target_closing_at_once_gives_success_then_eof(daemon, make_target):
    def close_at_once(conn, record):
        pass
    target = make_target(close_at_once)
    with open_tunnel(daemon.address, *target.address) as client:
        assert client.closed_by_peer(), "target's close not passed on"


def _daemon_sockets(pid):
    """Copies (pidfd_getfd) of every TCP socket the daemon holds, with the
    local and peer address of each: the daemon's own options, read from
    outside."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    SYS_pidfd_getfd = 438
    pidfd = os.pidfd_open(pid)
    found = []
    try:
        for name in os.listdir(f"/proc/{pid}/fd"):
            if not os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:"):
                continue
            fd = libc.syscall(SYS_pidfd_getfd, pidfd, int(name), 0)
            if fd < 0:
                continue
            sock = socket.socket(fileno=fd)
            try:
                if sock.type == socket.SOCK_STREAM:
                    found.append((sock.getsockname(), sock.getpeername(),
                                  sock.getsockopt(socket.IPPROTO_TCP,
                                                  socket.TCP_NODELAY)))
            except OSError:         # a listener has no peer
                pass
            finally:
                sock.close()
    finally:
        os.close(pidfd)
    return found


def test_relayed_sockets_do_not_delay_small_writes(start_daemon, echo_target):
    """Both sockets of a tunnel have TCP_NODELAY (the client's inherited from
    the listener), so a small reply or relayed message is never held back
    by Nagle's algorithm waiting for an acknowledgement."""
    d = start_daemon()
    with open_tunnel(d.address, *echo_target.address) as client:
        assert_echo(client)
        sockets = _daemon_sockets(d.proc.pid)
        client_side = [s for s in sockets if s[1] == client.sock.getsockname()]
        target_side = [s for s in sockets if s[1] == tuple(echo_target.address)]
        assert len(client_side) == 1 and len(target_side) == 1, sockets
        assert client_side[0][2] != 0 and target_side[0][2] != 0, sockets
