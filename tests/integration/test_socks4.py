"""SOCKS4 and SOCKS4a, black-box: curl's --socks4 and --socks4a against a
loopback HTTP server, raw CONNECT and BIND, the [server] protocols switch,
SOCKS4 under password auth (only a rule naming the protocol and the client
admits it), and malformed requests, each answered with reply 91 and the
daemon's descriptors back at baseline."""
import os
import socket
import struct
import subprocess

import pytest

from harness.httpd import HttpServer
from harness.net import (LOOPBACK4, closed_port, format_hostport, peer_closed, recv_exact,
                         recv_until_eof, settled_fds, wait_until, non_pipe_fds)
from harness.socks4 import CMD_BIND, GRANTED, REJECTED, Socks4Client, request
from harness.socks5 import Socks5Client, open_tunnel, assert_echo

SOCKS4_ON = {"server": {"protocols": "socks5, socks4"}}


def assert_fds_back(daemon, baseline):
    wait_until(lambda: non_pipe_fds(daemon.proc.pid) == baseline, 5,
               what=f"daemon back to {baseline} descriptors")


def curl(*args):
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    return subprocess.run(["curl", "-sS", "--fail", "--max-time", "15", "-o", "-", *args],
                          capture_output=True, timeout=20, env=env)


@pytest.fixture
def http_server():
    server = HttpServer(LOOPBACK4)
    yield server
    server.close()


def test_curl_socks4_and_socks4a(start_daemon, http_server, dns_server):
    d = start_daemon(**SOCKS4_ON)
    proxy = format_hostport(*d.address)
    result = curl("--socks4", proxy, http_server.url("/"))
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == http_server.greeting
    d.wait_session(proto="socks4", cmd="connect", reply=0,
                   dest=format_hostport(LOOPBACK4, http_server.port))
    # 4a: the daemon resolves the name.
    result = curl("--socks4a", proxy, http_server.url("/blob/70000", host="v4.test"))
    assert result.returncode == 0, result.stderr.decode()
    assert len(result.stdout) == 70000
    fields = d.wait_session(proto="socks4", dest=f"v4.test:{http_server.port}")
    assert int(fields["down"]) > 70000
    assert "v4.test" in dns_server.queried_names()
    # SOCKS5 still works on the same port.
    result = curl("--socks5", proxy, http_server.url("/"))
    assert result.returncode == 0, result.stderr.decode()
    d.wait_session(proto="socks5", reply=0)


def test_raw_connect_keeps_early_bytes_and_reports_failures(start_daemon, echo_target):
    d = start_daemon(**SOCKS4_ON)
    baseline = settled_fds(d)
    with Socks4Client(d.address) as c:
        # The request and the first payload in one segment, as clients do.
        c.send(request(*echo_target.address, userid=b"someone") + b"early\n")
        reply = c.read_reply()
        assert reply.cd == GRANTED, reply
        assert recv_exact(c.sock, 6) == b"early\n"
        payload = os.urandom(100000)
        c.send(payload)
        assert recv_exact(c.sock, len(payload)) == payload
    fields = d.wait_session(proto="socks4", cmd="connect", close="eof")
    # USERID is not a login.
    assert fields["user"] == "-"
    holder, port = closed_port()
    with holder, Socks4Client(d.address) as c:
        reply = c.request(LOOPBACK4, port)
        assert reply.cd == REJECTED, reply
        assert peer_closed(c.sock)
    d.wait_session(proto="socks4", reply=5, close="rejected")
    assert_fds_back(d, baseline)


def test_bind_through_socks4(start_daemon):
    d = start_daemon(**SOCKS4_ON, **{"rule no-peer": {"action": "deny", "dest": "127.0.0.2"},
                                    "rule rest": {"action": "allow"}})
    baseline = settled_fds(d)
    with Socks4Client(d.address) as c:
        # DSTIP 0.0.0.0: the client does not know its peer; the rules
        # judge whoever connects.
        first = c.request("0.0.0.0", 0, CMD_BIND)
        assert first.cd == GRANTED and first.port != 0, first
        assert first.host == LOOPBACK4, first
        with socket.create_connection(first.bound, source_address=("127.0.0.2", 0)) as denied:
            assert peer_closed(denied)
        d.wait_log(r"bind: peer 127\.0\.0\.2:\d+ refused by rule=no-peer")
        with socket.create_connection(first.bound, source_address=("127.0.0.3", 0)) as peer:
            second = c.read_reply()
            assert second.cd == GRANTED, second
            assert second.bound == peer.getsockname(), second
            peer.sendall(b"from the peer")
            assert recv_exact(c.sock, 13) == b"from the peer"
            c.send(b"to the peer")
            assert recv_exact(peer, 11) == b"to the peer"
    fields = d.wait_session(proto="socks4", cmd="bind")
    assert fields["addr"].startswith("127.0.0.3:")
    assert_fds_back(d, baseline)


def test_socks4_off_by_default_gets_reply_91(start_daemon, echo_target):
    from test_metrics import scrape, start_with_metrics
    d, metrics_port = start_with_metrics(start_daemon)
    with Socks4Client(d.address) as c:
        reply = c.request(*echo_target.address)
        assert reply.cd == REJECTED, reply
        assert recv_until_eof(c.sock) == b""
    d.wait_session(proto="socks4", close="protocol-off", reply="-")
    assert echo_target.records == []
    with open_tunnel(d.address, *echo_target.address) as client:
        assert_echo(client)
    d.wait_session(proto="socks5", close="eof")
    metrics = scrape(metrics_port)
    assert metrics("socks5d_sessions_by_protocol_total", proto="socks4") == 1
    assert metrics("socks5d_sessions_by_protocol_total", proto="socks5") == 1
    assert metrics("socks5d_handshake_failures_total", reason="protocol-off") == 1


def test_socks5_can_be_switched_off(start_daemon):
    d = start_daemon(server={"protocols": "socks4"})
    with Socks5Client(d.address) as c:
        c.send(b"\x05\x01\x00")
        assert recv_until_eof(c.sock) == b"\x05\xff"
    d.wait_session(proto="socks5", close="protocol-off")


MALFORMED = [
    (struct.pack("!BBH", 4, 3, 80) + socket.inet_aton(LOOPBACK4) + b"\0", "rejected"),
    (struct.pack("!BBH", 4, 1, 80) + socket.inet_aton(LOOPBACK4) + b"u" * 300, "rejected"),
    (struct.pack("!BBH", 4, 1, 80) + bytes([0, 0, 0, 9]) + b"\0\0", "rejected"),
    (struct.pack("!BBH", 4, 1, 80) + bytes([0, 0, 0, 9]) + b"\0" + b"n" * 300, "rejected"),
]


@pytest.mark.parametrize("raw, close", MALFORMED)
def test_malformed_requests_get_reply_91(start_daemon, raw, close):
    d = start_daemon(**SOCKS4_ON)
    baseline = settled_fds(d)
    with Socks4Client(d.address) as c:
        c.send(raw)
        reply = c.read_reply()
        assert reply.cd == REJECTED, reply
        assert peer_closed(c.sock)
    d.wait_session(proto="socks4", close=close)
    assert_fds_back(d, baseline)


def test_truncated_request_then_close(start_daemon):
    d = start_daemon(**SOCKS4_ON)
    baseline = settled_fds(d)
    with Socks4Client(d.address) as c:
        c.send(request(LOOPBACK4, 80)[:6])
        c.sock.shutdown(socket.SHUT_WR)
        assert recv_until_eof(c.sock) == b""
    d.wait_session(proto="socks4", close="client-eof")
    assert_fds_back(d, baseline)


def test_password_auth_admits_socks4_only_by_client_rule(start_daemon, users_file,
                                                         echo_target):
    d = start_daemon(auth={"method": "password", "users_file": str(users_file)},
                     **SOCKS4_ON,
                     **{"rule socks4-lan": {"action": "allow", "protocol": "socks4",
                                            "client": "127.0.0.2"},
                        "rule anyone": {"action": "allow"}})
    # A catch-all rule is not enough for a protocol without logins.
    with Socks4Client(d.address) as c:
        assert c.request(*echo_target.address).cd == REJECTED
    d.wait_session(proto="socks4", reply=2, rule="(login-required)")
    with Socks4Client(d.address, source="127.0.0.2") as c:
        assert c.request(*echo_target.address).cd == GRANTED
        c.send(b"hello")
        assert recv_exact(c.sock, 5) == b"hello"
    fields = d.wait_session(proto="socks4", reply=0)
    assert fields["client"].startswith("127.0.0.2:"), fields
    # The refused client never reached the target.
    assert len(echo_target.records) == 1
