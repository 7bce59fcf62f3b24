"""Clients and targets that vanish at awkward moments: while a name is being
resolved, a password verified, or a connect is in flight; and signals that
arrive while such work is pending. These paths are where a session can be
freed under a pending callback, so they matter most in the ASan run (whose
fixture teardown fails on any sanitizer report)."""
import socket
import struct
import time

import pytest

from conftest import USERS
from harness import socks5
from harness.net import LOOPBACK4
from harness.socks5 import (METHOD_NONE, METHOD_PASSWORD, REP_SUCCESS,
                            Socks5Client, assert_echo, open_tunnel)
from harness.targets import behave_hold


def abort(client, reset):
    """Close a client, abortively (RST) when reset is true."""
    if reset:
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()


def still_serves(daemon, target, user=None, password=None):
    with open_tunnel(daemon.address, *target.address, user=user, password=password) as client:
        assert_echo(client)


@pytest.fixture
def blackhole():
    """A loopback port whose accept queue is full, so connects to it hang."""
    listener = socket.socket()
    listener.bind((LOOPBACK4, 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        sock = socket.socket()
        sock.settimeout(0.3)
        try:
            sock.connect((LOOPBACK4, port))
        except OSError:
            pass
        fillers.append(sock)
    yield port
    for sock in fillers:
        sock.close()
    listener.close()


@pytest.mark.parametrize("reset", [False, True])
def test_client_gone_during_dns_lookup(start_daemon, dns_server, echo_target, reset):
    dns_server.delay = 0.2
    d = start_daemon()
    for _ in range(2):
        client = Socks5Client(d.address)
        client.send(socks5.greeting() + socks5.request("v4.test", echo_target.port))
        assert client.read_method_choice() == METHOD_NONE
        abort(client, reset)
    time.sleep(1.2)                 # let every delayed answer arrive
    # Whatever the daemon did with the late answers, nothing was relayed.
    assert all(r.wait().received_len == 0 for r in echo_target.records)
    dns_server.delay = 0
    still_serves(d, echo_target)


def test_client_gone_during_dns_timeout(start_daemon, dns_server, echo_target):
    dns_server.mode = "drop"
    d = start_daemon(dns={"timeout": 1})
    client = Socks5Client(d.address)
    client.send(socks5.greeting() + socks5.request("v4.test", echo_target.port))
    client.close()
    time.sleep(1.8)                 # the lookup fails after the session is gone
    dns_server.mode = "answer"
    still_serves(d, echo_target)


@pytest.mark.parametrize("password", [USERS["alice"], "wrong"])
def test_client_gone_during_password_check(start_daemon, users_file, echo_target, password):
    """The hash runs on a helper thread; its verdict must find no session."""
    d = start_daemon(auth={"method": "password", "users_file": str(users_file)})
    for reset in (False, True, False):
        client = Socks5Client(d.address)
        client.send(socks5.greeting((METHOD_PASSWORD,))
                    + socks5.credentials("alice", password)
                    + socks5.request(*echo_target.address))
        assert client.read_method_choice() == METHOD_PASSWORD
        abort(client, reset)
    time.sleep(1.5)
    still_serves(d, echo_target, "alice", USERS["alice"])


@pytest.mark.parametrize("reset", [False, True])
def test_client_gone_during_connect(start_daemon, blackhole, echo_target, reset):
    d = start_daemon(timeouts={"connect": 1})
    client = Socks5Client(d.address)
    client.send(socks5.greeting() + socks5.request(LOOPBACK4, blackhole))
    assert client.read_method_choice() == METHOD_NONE
    time.sleep(0.2)
    abort(client, reset)
    time.sleep(1.5)                 # past the connect timeout
    still_serves(d, echo_target)


def test_client_half_closes_right_after_request(daemon, echo_target):
    """`printf REQUEST | nc`-style clients: greeting, request and payload, then
    SHUT_WR before any reply. The request is complete, so the daemon must
    still connect, relay the payload and pass the EOF on."""
    payload = b"one-shot payload\n" * 100
    with Socks5Client(daemon.address) as client:
        client.send(socks5.greeting() + socks5.request(*echo_target.address) + payload)
        client.shutdown_write()
        assert client.read_method_choice() == METHOD_NONE
        assert client.read_reply().rep == REP_SUCCESS
        assert client.recv_exact(len(payload)) == payload
        assert client.closed_by_peer(), "EOF not passed through"


def test_target_resets_mid_stream(daemon, make_target, echo_target):
    def reset_after_some(conn, record):
        conn.sendall(b"partial answer")
        conn.recv(100)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    target = make_target(reset_after_some)
    with open_tunnel(daemon.address, *target.address) as client:
        assert client.recv_exact(len(b"partial answer")) == b"partial answer"
        client.send(b"go")
        assert client.closed_by_peer(), "target reset not passed on"
    still_serves(daemon, echo_target)


def test_many_tunnels_reset_at_once(daemon, echo_target):
    tunnels = [open_tunnel(daemon.address, *echo_target.address) for _ in range(25)]
    for tunnel in tunnels:
        tunnel.send(b"x" * 50_000)
    for tunnel in tunnels:
        abort(tunnel, reset=True)
    time.sleep(0.5)
    still_serves(daemon, echo_target)


# -- signals while work is pending ------------------------------------------

def test_sigterm_with_pending_dns(start_daemon, dns_server):
    dns_server.mode = "drop"
    d = start_daemon(dns={"timeout": 5})
    with Socks5Client(d.address) as client:
        client.send(socks5.greeting() + socks5.request("v4.test", 80))
        assert client.read_method_choice() == METHOD_NONE
        time.sleep(0.3)
        assert d.stop() == 0


def test_sigterm_with_pending_password_check(password_daemon):
    with Socks5Client(password_daemon.address) as client:
        client.send(socks5.greeting((METHOD_PASSWORD,))
                    + socks5.credentials("bob", USERS["bob"]))
        assert client.read_method_choice() == METHOD_PASSWORD
        assert password_daemon.stop() == 0


def test_sigterm_with_pending_connect(start_daemon, blackhole):
    d = start_daemon(timeouts={"connect": 5})
    with Socks5Client(d.address) as client:
        client.send(socks5.greeting() + socks5.request(LOOPBACK4, blackhole))
        assert client.read_method_choice() == METHOD_NONE
        time.sleep(0.3)
        assert d.stop() == 0


def test_sigterm_mid_transfer(daemon, make_target):
    target = make_target(behave_hold)
    with open_tunnel(daemon.address, *target.address) as client:
        client.send(b"z" * 2_000_000)
        assert daemon.stop() == 0
