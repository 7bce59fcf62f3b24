"""Per-session behaviour seen from outside: the access-log line, max_clients,
the idle timeout, log format and levels, and shutdown on signals."""
import re
import signal
import socket
import struct
import time

import pytest

from conftest import USERS
from harness.net import (LOOPBACK4, LOOPBACK6, closed_port, format_hostport,
                         is_listening, non_pipe_fds, recv_until_eof, settled_fds,
                         wait_until)
from harness.socks5 import (METHOD_NONE, METHOD_PASSWORD, REP_SUCCESS, Socks5Client,
                            assert_echo, greeting, open_tunnel)
from harness.targets import behave_hold, sink_then_source

LOG_LINE_RE = re.compile(r"^socks5d: (error|warn|info|debug): \S")
SESSION_LINE_RE = re.compile(
    r"^socks5d: info: session client=\S+ user=\S+ proto=(socks5|socks4|http|-) cmd=\S+ dest=\S+ addr=\S+ "
    r"reply=\S+ up=\d+ down=\d+ ms=\d+ close=\S.*$")


def exchange(daemon, target, up_bytes, dest_host=None, user=None, password=None,
             proxy=None):
    """One tunnel that sends up_bytes, half-closes and reads the target's
    answer to EOF; returns (client local address, bytes received)."""
    host = dest_host or target.host
    with open_tunnel(proxy or daemon.address, host, target.port, user, password) as client:
        local = client.sock.getsockname()[:2]
        client.send(b"u" * up_bytes)
        client.shutdown_write()
        down = recv_until_eof(client.sock)
    return local, len(down)


# -- access log --------------------------------------------------------------

def test_access_log_line_for_ipv4_connect(daemon, make_target):
    target = make_target(sink_then_source(2345))
    local, down = exchange(daemon, target, 1000)
    assert down == 2345
    dest = format_hostport(LOOPBACK4, target.port)
    fields = daemon.wait_session(dest=dest)
    assert fields["client"] == format_hostport(*local)
    assert fields["user"] == "-"
    assert fields["proto"] == "socks5"
    assert fields["cmd"] == "connect"
    assert fields["addr"] == dest
    assert fields["reply"] == "0"
    assert fields["up"] == "1000"
    assert fields["down"] == "2345"
    assert int(fields["ms"]) >= 0
    assert fields["close"]
    lines = [line for line in daemon.log().splitlines() if f"dest={dest} " in line]
    assert len(lines) == 1, f"expected one access-log line, got {lines}"
    assert SESSION_LINE_RE.match(lines[0]), f"malformed access-log line: {lines[0]}"


def test_access_log_line_for_name_and_ipv6(start_daemon, make_target):
    d = start_daemon(listen_hosts=(LOOPBACK6,))
    target = make_target(sink_then_source(7), hosts=(LOOPBACK6,))
    local, down = exchange(d, target, 3, dest_host="v6.test")
    fields = d.wait_session(dest=f"v6.test:{target.port}")
    assert fields["client"] == format_hostport(*local)
    assert fields["addr"] == format_hostport(LOOPBACK6, target.port)
    assert (fields["reply"], fields["up"], fields["down"]) == ("0", "3", "7")


def test_access_log_line_names_user(password_daemon, make_target):
    target = make_target(sink_then_source(1))
    exchange(password_daemon, target, 5, user="bob", password=USERS["bob"])
    fields = password_daemon.wait_session(dest=format_hostport(*target.address))
    assert fields["user"] == "bob"
    assert (fields["up"], fields["down"]) == ("5", "1")


def test_access_log_line_for_failed_resolution(daemon):
    with Socks5Client(daemon.address) as client:
        assert client.greet() == METHOD_NONE
        assert client.request("nx.test", 8080).rep == 4
    fields = daemon.wait_session(dest="nx.test:8080")
    assert fields["reply"] == "4"
    assert fields["addr"] == "-"
    assert (fields["up"], fields["down"]) == ("0", "0")


@pytest.mark.parametrize("relay", ["splice", "copy"])
def test_access_log_counts_large_transfer_exactly(start_daemon, make_target, relay):
    d = start_daemon(server={"relay": relay})
    target = make_target(sink_then_source(3 * 1024 * 1024 + 1))
    exchange(d, target, 5 * 1024 * 1024 + 3)
    fields = d.wait_session(dest=format_hostport(*target.address))
    assert fields["up"] == str(5 * 1024 * 1024 + 3)
    assert fields["down"] == str(3 * 1024 * 1024 + 1)


def test_log_level_error_hides_access_log(start_daemon, make_target):
    d = start_daemon(server={"log_level": "error"})
    target = make_target(sink_then_source(1))
    exchange(d, target, 1)
    time.sleep(0.5)
    assert d.session_lines() == []
    assert "info:" not in d.log()


def test_log_lines_are_prefixed(start_daemon, make_target):
    d = start_daemon(server={"log_level": "debug"})
    target = make_target(sink_then_source(1))
    exchange(d, target, 1)
    d.wait_session(dest=format_hostport(*target.address))
    assert d.stop() == 0
    lines = [line for line in d.log().splitlines() if line.strip()]
    bad = [line for line in lines if not LOG_LINE_RE.match(line)]
    assert lines and not bad, f"log lines without the 'socks5d: LEVEL: ' prefix: {bad[:5]}"


def test_client_text_cannot_forge_log_lines(password_daemon, echo_target):
    """Names and user names come from the client; a newline in them must not
    start a new, forged log line (nor may other control bytes pass raw)."""
    forged = "socks5d: info: session client=6.6.6.6:1 user=root"
    with Socks5Client(password_daemon.address) as client:
        assert client.greet((METHOD_PASSWORD,)) == METHOD_PASSWORD
        client.authenticate("x\n" + forged, "pw\x1b[2J")
        client.closed_by_peer()
    with open_tunnel(password_daemon.address, *echo_target.address,
                     user="alice", password=USERS["alice"]) as client:
        client.send(b"")
    with Socks5Client(password_daemon.address) as client:
        assert client.greet((METHOD_PASSWORD,)) == METHOD_PASSWORD
        assert client.authenticate("alice", USERS["alice"]) == (1, 0)
        client.request(("evil.test\n" + forged + " dest=").encode(), 80)
        client.closed_by_peer()
    password_daemon.wait_session(user="alice", dest=format_hostport(*echo_target.address))
    time.sleep(0.3)
    log = password_daemon.log()
    lines = [line for line in log.splitlines() if line.strip()]
    assert not [line for line in lines if line.startswith(forged)], "forged log line"
    assert all(LOG_LINE_RE.match(line) for line in lines), lines
    assert "\x1b" not in log


@pytest.mark.parametrize("relay", ["splice", "copy"])
def test_no_socket_leak_after_mixed_sessions(start_daemon, echo_target, relay):
    """Every way a session can end must close both of its sockets: after a
    mix of successes, errors, aborts and garbage the daemon holds no more
    sockets than after a single warm-up session."""
    d = start_daemon(server={"relay": relay})
    with open_tunnel(d.address, "v4.test", echo_target.port) as warmup:
        assert_echo(warmup)
    time.sleep(0.3)
    baseline = settled_fds(d)
    refused, refused_port = closed_port()
    with refused:
        for i in range(6):
            with open_tunnel(d.address, "v4.test", echo_target.port) as client:
                assert_echo(client)
            with Socks5Client(d.address) as client:           # refused
                assert client.greet() == METHOD_NONE
                assert client.request(LOOPBACK4, refused_port).rep != REP_SUCCESS
            with Socks5Client(d.address) as client:           # NXDOMAIN
                assert client.greet() == METHOD_NONE
                assert client.request("nx.test", 1).rep != REP_SUCCESS
            with Socks5Client(d.address) as client:           # garbage
                client.send(b"\x47ET / HTTP/1.0\r\n\r\n")
            client = open_tunnel(d.address, *echo_target.address)
            client.send(b"q" * 100_000)                        # reset mid-relay
            client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                   struct.pack("ii", 1, 0))
            client.close()
    wait_until(lambda: non_pipe_fds(d.proc.pid) <= baseline, 5,
               what=f"daemon sockets back to {baseline}")


# -- max_clients ---------------------------------------------------------

def refused_after_accept(daemon):
    """Connect, greet, and check the daemon closed without answering."""
    with Socks5Client(daemon.address, timeout=3) as client:
        try:
            client.send(greeting())
            data = client.sock.recv(16)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        except socket.timeout:
            return False
        assert data == b"", f"over-limit client got an answer: {data.hex()}"
        return True


def test_max_clients(start_daemon, echo_target):
    d = start_daemon(server={"max_clients": 2})
    first = open_tunnel(d.address, *echo_target.address)
    second = open_tunnel(d.address, *echo_target.address)
    try:
        assert refused_after_accept(d), "third client was neither served nor closed"
        assert_echo(first)
        assert_echo(second)
    finally:
        first.close()
    # The freed slot becomes usable once the daemon has noticed the close.
    deadline = time.monotonic() + 5
    while True:
        try:
            with open_tunnel(d.address, *echo_target.address, timeout=2) as third:
                assert_echo(third)
            break
        except (EOFError, ConnectionResetError, AssertionError, socket.timeout):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    second.close()


def test_max_clients_counts_handshaking_clients(start_daemon, echo_target):
    d = start_daemon(server={"max_clients": 1})
    with Socks5Client(d.address) as idle:
        idle.send(b"\x05")               # half a greeting holds the only slot
        time.sleep(0.2)
        assert refused_after_accept(d)


# -- idle timeout --------------------------------------------------------

def test_idle_tunnel_closed(start_daemon, make_target):
    d = start_daemon(timeouts={"idle": 1})
    target = make_target(behave_hold)
    with open_tunnel(d.address, *target.address) as client:
        started = time.monotonic()
        assert client.closed_by_peer(timeout=5), "idle tunnel not closed"
        assert time.monotonic() - started >= 0.5
    assert target.wait_connection().wait(5).received_len == 0


def test_busy_tunnel_not_idle(start_daemon, echo_target):
    d = start_daemon(timeouts={"idle": 1})
    with open_tunnel(d.address, *echo_target.address) as client:
        for _ in range(8):
            time.sleep(0.3)
            assert_echo(client, b"keepalive")


# -- signals and shutdown ----------------------------------------------------

@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_exits_zero(daemon, echo_target, signum):
    with open_tunnel(daemon.address, *echo_target.address) as client:
        assert_echo(client)
    assert daemon.stop(signum) == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_with_open_sessions_exits_zero(daemon, echo_target, signum):
    tunnels = [open_tunnel(daemon.address, *echo_target.address) for _ in range(3)]
    half = Socks5Client(daemon.address)
    half.send(b"\x05\x01")
    try:
        started = time.monotonic()
        assert daemon.stop(signum) == 0
        assert time.monotonic() - started < 5
        assert not is_listening(*daemon.address)
    finally:
        half.close()
        for tunnel in tunnels:
            tunnel.close()


def test_listens_on_every_configured_address(start_daemon, echo_target):
    d = start_daemon(listen_hosts=(LOOPBACK4, LOOPBACK6))
    for proxy in d.listen:
        with Socks5Client(proxy) as client:
            assert client.greet() == METHOD_NONE
            assert client.request(*echo_target.address).rep == REP_SUCCESS
            assert_echo(client)
