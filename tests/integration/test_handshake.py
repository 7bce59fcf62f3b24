"""The SOCKS5 handshake: method selection, RFC 1929 authentication, split and
coalesced input, the handshake timeout, and robustness against garbage."""
import hashlib
import random
import socket
import struct
import time

import pytest

from conftest import USERS
from harness import socks5
from harness.socks5 import (METHOD_GSSAPI, METHOD_NONE, METHOD_PASSWORD,
                            METHOD_REJECT, REP_SUCCESS, Socks5Client,
                            assert_echo, open_tunnel)
from harness.targets import behave_sink


def assert_still_serves(daemon, target, user=None, password=None):
    """After abuse, a fresh client must still get a working CONNECT."""
    with open_tunnel(daemon.address, *target.address, user=user, password=password) as client:
        assert_echo(client)


def assert_rejected(client):
    """05 FF, then the server closes the connection."""
    assert client.read_method_choice() == METHOD_REJECT
    assert client.closed_by_peer(), "connection left open after 05 FF"


# -- method selection ------------------------------------------------------

@pytest.mark.parametrize("methods", [
    (METHOD_NONE,),
    (METHOD_PASSWORD, METHOD_NONE),
    (METHOD_GSSAPI, 0x80, 0xFE, METHOD_NONE, METHOD_PASSWORD),
])
def test_method_none_chosen_when_offered(daemon, echo_target, methods):
    with Socks5Client(daemon.address) as client:
        assert client.greet(methods) == METHOD_NONE
        reply = client.request(*echo_target.address)
        reply.assert_ip_form()
        assert reply.rep == REP_SUCCESS
        assert_echo(client)


@pytest.mark.parametrize("methods", [
    (METHOD_PASSWORD,),
    (METHOD_GSSAPI, 0x80, 0xFF),
])
def test_method_none_server_rejects_other_methods(daemon, echo_target, methods):
    with Socks5Client(daemon.address) as client:
        client.send(socks5.greeting(methods))
        assert_rejected(client)
    assert_still_serves(daemon, echo_target)


@pytest.mark.parametrize("methods", [
    (METHOD_PASSWORD,),
    (METHOD_NONE, METHOD_PASSWORD),
    (METHOD_PASSWORD, METHOD_NONE),
    (0x80, METHOD_NONE, 0x81, METHOD_PASSWORD, 0x82),
])
def test_password_server_picks_password_even_if_none_offered(password_daemon, methods):
    with Socks5Client(password_daemon.address) as client:
        assert client.greet(methods) == METHOD_PASSWORD


def test_password_server_rejects_none_only(password_daemon, echo_target):
    with Socks5Client(password_daemon.address) as client:
        client.send(socks5.greeting((METHOD_NONE,)))
        assert_rejected(client)
    assert_still_serves(password_daemon, echo_target, "alice", USERS["alice"])


def test_zero_methods_rejected(daemon, echo_target):
    with Socks5Client(daemon.address) as client:
        client.send(bytes([5, 0]))
        assert_rejected(client)
    assert_still_serves(daemon, echo_target)


def test_all_255_methods_offered(daemon, echo_target):
    """The largest possible greeting, with NONE as the very last method."""
    methods = [m for m in range(256) if m != METHOD_NONE][:254] + [METHOD_NONE]
    with Socks5Client(daemon.address) as client:
        assert client.greet(methods) == METHOD_NONE
        assert client.request(*echo_target.address).rep == REP_SUCCESS
        assert_echo(client)


@pytest.mark.parametrize("first", [0x04, 0x00, 0x47])   # SOCKS4, zero, 'G' of GET
def test_wrong_version_closed(daemon, echo_target, first):
    with Socks5Client(daemon.address) as client:
        client.send(bytes([first, 1, 0]))
        assert client.closed_by_peer(), "connection with a bad VER left open"
    assert_still_serves(daemon, echo_target)


# -- RFC 1929 ----------------------------------------------------------------

@pytest.mark.parametrize("user", sorted(USERS))
def test_password_login_ok(password_daemon, echo_target, user):
    with Socks5Client(password_daemon.address) as client:
        assert client.greet((METHOD_PASSWORD,)) == METHOD_PASSWORD
        ver, status = client.authenticate(user, USERS[user])
        assert (ver, status) == (1, 0)
        reply = client.request(*echo_target.address)
        reply.assert_ip_form()
        assert reply.rep == REP_SUCCESS
        assert_echo(client)


def test_password_login_twice_uses_cache_consistently(password_daemon):
    """The second login of a user may come from the credential cache; a wrong
    password must still fail after a right one was cached."""
    for password, expected in ((USERS["alice"], 0), (USERS["alice"], 0),
                               ("not-" + USERS["alice"], 1), (USERS["alice"], 0)):
        with Socks5Client(password_daemon.address) as client:
            assert client.greet((METHOD_PASSWORD,)) == METHOD_PASSWORD
            assert client.authenticate("alice", password)[1] == expected


BAD_LOGINS = [
    ("alice", "wrong"),
    ("alice", USERS["bob"]),                 # another user's password
    ("mallory", "wonderland"),               # unknown user
    ("alice", USERS["alice"] + "x"),         # right password as a prefix
    ("alice", USERS["alice"][:-1]),          # truncated password
    ("ALICE", USERS["alice"]),               # names are case-sensitive
    ("", USERS["alice"]),                    # ULEN 0
    ("alice", ""),                           # PLEN 0
    ("", ""),                                # both empty
    ("a" * 255, "b" * 255),                  # longest possible, unknown
    ("alice", "w" * 255),                    # longest password, wrong
]


def test_concurrent_first_logins(password_daemon, echo_target):
    """Twelve logins at once, right and wrong, before anything is cached:
    every verdict must belong to its own request."""
    attempts = [(user, USERS[user] if i % 3 else "wrong-" + user, bool(i % 3))
                for i, user in enumerate(["alice", "bob"] * 6)]
    clients = []
    try:
        for user, password, _ in attempts:
            client = Socks5Client(password_daemon.address)
            client.send(socks5.greeting((METHOD_PASSWORD,)) + socks5.credentials(user, password))
            clients.append(client)
        for client, (user, _, good) in zip(clients, attempts):
            assert client.read_method_choice() == METHOD_PASSWORD
            ver, status = client.read_auth_status()
            assert (status == 0) == good, f"{user}: status {status} for a {'good' if good else 'bad'} password"
    finally:
        for client in clients:
            client.close()
    assert_still_serves(password_daemon, echo_target, "bob", USERS["bob"])


@pytest.mark.parametrize("user,password", BAD_LOGINS,
                         ids=[f"{u[:12]}-{p[:12]}-{len(u)}-{len(p)}" for u, p in BAD_LOGINS])
def test_password_login_fails_cleanly(password_daemon, echo_target, user, password):
    with Socks5Client(password_daemon.address) as client:
        assert client.greet((METHOD_PASSWORD,)) == METHOD_PASSWORD
        ver, status = client.authenticate(user, password)
        assert ver == 1, f"RFC 1929 reply VER {ver:#x}"
        assert status != 0, "bad credentials accepted"
        assert client.closed_by_peer(), "connection left open after failed login"
    assert_still_serves(password_daemon, echo_target, "alice", USERS["alice"])


def test_password_wrong_subnegotiation_version(password_daemon, echo_target):
    with Socks5Client(password_daemon.address) as client:
        assert client.greet((METHOD_PASSWORD,)) == METHOD_PASSWORD
        client.send(b"\x05" + socks5.credentials("alice", USERS["alice"])[1:])
        data = b""
        try:
            data = client.sock.recv(16)
        except (ConnectionResetError, socket.timeout):
            pass
        assert data in (b"", b"\x01\x01"), f"unexpected answer {data.hex()}"
        assert client.closed_by_peer()
    assert_still_serves(password_daemon, echo_target, "alice", USERS["alice"])


def test_password_failure_logged_without_password(password_daemon):
    secret = "hunter2-not-the-password"
    with Socks5Client(password_daemon.address) as client:
        assert client.greet((METHOD_PASSWORD,)) == METHOD_PASSWORD
        assert client.authenticate("alice", secret)[1] != 0
        assert client.closed_by_peer()
    time.sleep(0.3)
    assert secret not in password_daemon.log()


# -- split and coalesced input ---------------------------------------------

def test_handshake_byte_by_byte(daemon, echo_target):
    with Socks5Client(daemon.address) as client:
        client.send_bytewise(socks5.greeting((0x80, METHOD_NONE)))
        assert client.read_method_choice() == METHOD_NONE
        client.send_bytewise(socks5.request(*echo_target.address))
        reply = client.read_reply()
        reply.assert_ip_form()
        assert reply.rep == REP_SUCCESS
        assert_echo(client)


def test_password_handshake_byte_by_byte(password_daemon, echo_target):
    with Socks5Client(password_daemon.address) as client:
        client.send_bytewise(socks5.greeting((METHOD_PASSWORD,)))
        assert client.read_method_choice() == METHOD_PASSWORD
        client.send_bytewise(socks5.credentials("bob", USERS["bob"]))
        assert client.read_auth_status() == (1, 0)
        client.send_bytewise(socks5.request("v4.test", echo_target.port))
        assert client.read_reply().rep == REP_SUCCESS
        assert_echo(client)


def test_name_request_byte_by_byte(daemon, echo_target):
    with Socks5Client(daemon.address) as client:
        assert client.greet() == METHOD_NONE
        client.send_bytewise(socks5.request("v4.test", echo_target.port))
        assert client.read_reply().rep == REP_SUCCESS
        assert_echo(client)


def test_greeting_and_request_coalesced(daemon, echo_target):
    with Socks5Client(daemon.address) as client:
        client.send(socks5.greeting() + socks5.request(*echo_target.address))
        assert client.read_method_choice() == METHOD_NONE
        reply = client.read_reply()
        reply.assert_ip_form()
        assert reply.rep == REP_SUCCESS
        assert_echo(client)


@pytest.mark.parametrize("host", ["127.0.0.1", "v4.test"])
def test_greeting_request_and_payload_coalesced(daemon, echo_target, host):
    payload = b"GET / HTTP/1.0\r\n\r\n" * 50
    with Socks5Client(daemon.address) as client:
        client.send(socks5.greeting() + socks5.request(host, echo_target.port) + payload)
        assert client.read_method_choice() == METHOD_NONE
        assert client.read_reply().rep == REP_SUCCESS
        assert client.recv_exact(len(payload)) == payload


def test_password_everything_coalesced(password_daemon, echo_target):
    payload = bytes(range(256)) * 16
    with Socks5Client(password_daemon.address) as client:
        client.send(socks5.greeting((METHOD_PASSWORD,))
                    + socks5.credentials("alice", USERS["alice"])
                    + socks5.request(*echo_target.address) + payload)
        assert client.read_method_choice() == METHOD_PASSWORD
        assert client.read_auth_status() == (1, 0)
        assert client.read_reply().rep == REP_SUCCESS
        assert client.recv_exact(len(payload)) == payload


@pytest.mark.parametrize("dns_delay", [0, 0.3])
def test_early_payload_before_reply_arrives_intact(daemon, make_target, dns_server,
                                                   dns_delay):
    """Data sent right after the request (before the reply) must reach the
    target whole and in order, even when it is larger than one read and
    arrives while the name is still being resolved."""
    dns_server.delay = dns_delay
    sink = make_target(behave_sink)
    payload = random.Random(7).randbytes(300_000)
    with Socks5Client(daemon.address) as client:
        assert client.greet() == METHOD_NONE
        client.send(socks5.request("v4.test", sink.port))
        client.send(payload)
        assert client.read_reply().rep == REP_SUCCESS
        client.shutdown_write()
        record = sink.wait_connection().wait()
    assert record.received_len == len(payload)
    assert record.received_sha256 == hashlib.sha256(payload).hexdigest()


# -- handshake timeout -----------------------------------------------------

@pytest.mark.parametrize("stage", ["silent", "half-greeting", "after-method", "half-request"])
def test_handshake_timeout_closes(start_daemon, echo_target, stage):
    d = start_daemon(timeouts={"handshake": 1})
    with Socks5Client(d.address) as client:
        started = time.monotonic()
        if stage == "half-greeting":
            client.send(b"\x05\x02\x00")
        elif stage == "after-method":
            assert client.greet() == METHOD_NONE
        elif stage == "half-request":
            assert client.greet() == METHOD_NONE
            client.send(socks5.request(*echo_target.address)[:5])
        assert client.closed_by_peer(timeout=4.0), "handshake timeout did not close"
        elapsed = time.monotonic() - started
    assert elapsed >= 0.5, f"closed after {elapsed:.2f}s, before the 1s timeout"
    assert_still_serves(d, echo_target)


def test_handshake_timeout_is_not_reset_by_trickling(start_daemon, echo_target):
    """A client dribbling one byte at a time must not stretch the handshake
    past its deadline (the slowloris defence)."""
    d = start_daemon(timeouts={"handshake": 1})
    with Socks5Client(d.address) as client:
        started = time.monotonic()
        client.send(b"\x05\xff")                    # promises 255 methods
        closed = False
        while time.monotonic() - started < 4.0:
            try:
                client.send(b"\x80")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if client.closed_by_peer(timeout=0.4):
                closed = True
                break
        assert closed, "trickling client kept the handshake open for 4s"
        assert time.monotonic() - started < 3.5


def test_relay_not_cut_by_handshake_timeout(start_daemon, echo_target):
    """The handshake timer must stop once the relay starts."""
    d = start_daemon(timeouts={"handshake": 1})
    with open_tunnel(d.address, *echo_target.address) as client:
        time.sleep(1.8)
        assert_echo(client)


# -- garbage and truncated input -------------------------------------------

@pytest.mark.parametrize("seed", range(4))
def test_random_garbage_then_still_serves(daemon, echo_target, seed):
    rng = random.Random(seed)
    garbage = rng.randbytes(rng.randrange(1, 600))
    garbage = bytes([0x80 | garbage[0]]) + garbage[1:]     # never a valid VER
    with Socks5Client(daemon.address) as client:
        try:
            client.send(garbage)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert client.closed_by_peer(), "garbage greeting left the connection open"
    assert_still_serves(daemon, echo_target)


def test_one_megabyte_of_garbage(daemon, echo_target):
    garbage = b"\x05\x01\x00" + random.Random(1).randbytes(1 << 20)
    with Socks5Client(daemon.address) as client:
        try:
            client.send(garbage)
        except (BrokenPipeError, ConnectionResetError):
            pass          # the daemon closing early is the point
        assert client.closed_by_peer(timeout=5.0), "1 MB of garbage did not get the client closed"
    assert_still_serves(daemon, echo_target)


def test_garbage_after_valid_greeting(daemon, echo_target):
    with Socks5Client(daemon.address) as client:
        assert client.greet() == METHOD_NONE
        try:
            client.send(b"\x07" * 4096)             # VER 7 request
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert client.closed_by_peer(), "bad request VER left the connection open"
    assert_still_serves(daemon, echo_target)


@pytest.mark.parametrize("cut", ["half-greeting", "half-request", "half-name-request",
                                 "half-credentials"])
def test_truncated_then_close(password_daemon, echo_target, cut):
    with Socks5Client(password_daemon.address) as client:
        if cut == "half-greeting":
            client.send(b"\x05\x03\x02")
        else:
            assert client.greet((METHOD_PASSWORD,)) == METHOD_PASSWORD
            creds = socks5.credentials("alice", USERS["alice"])
            if cut == "half-credentials":
                client.send(creds[:6])
            else:
                assert client.authenticate("alice", USERS["alice"]) == (1, 0)
                host = "v4.test" if cut == "half-name-request" else echo_target.host
                req = socks5.request(host, echo_target.port)
                client.send(req[:len(req) // 2])
        client.sock.shutdown(socket.SHUT_WR)
        assert client.closed_by_peer(), "daemon kept a half-closed handshake open"
    assert_still_serves(password_daemon, echo_target, "alice", USERS["alice"])


def test_reset_in_the_middle_of_handshake(daemon, echo_target):
    """An abortive close (RST) during the handshake, many times over."""
    for i in range(20):
        client = Socks5Client(daemon.address)
        client.send(socks5.greeting() + socks5.request(*echo_target.address)[: i % 8])
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
    assert_still_serves(daemon, echo_target)


def test_many_clients_in_handshake_at_once(daemon, echo_target):
    """Fifty half-done handshakes do not stop a fifty-first client."""
    idle = []
    try:
        for i in range(50):
            client = Socks5Client(daemon.address)
            client.send(b"\x05\x01" if i % 2 else socks5.greeting())
            idle.append(client)
        assert_still_serves(daemon, echo_target)
    finally:
        for client in idle:
            client.close()
