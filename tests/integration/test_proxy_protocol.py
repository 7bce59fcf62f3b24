"""PROXY protocol v1 and v2 behind a real HAProxy (send-proxy and
send-proxy-v2, started here): the address in the header is the client for
rules, limits, the access log and the protocol's answers, for SOCKS5 and
HTTP alike; a trusted address that sends no header, and a header from an
address not trusted, are refused, counted, and leave nothing behind."""
import shutil
import signal
import socket
import subprocess

import pytest

from harness.http_proxy import ProxyClient
from harness.net import (LOOPBACK4, free_port, is_listening, non_pipe_fds,
                         recv_exact, recv_until_eof, settled_fds, wait_until)
from harness.socks5 import REP_NOT_ALLOWED, REP_SUCCESS, Socks5Client

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"

# The balancer reaches the daemon from 127.0.0.1; clients come from others.
BALANCER = "127.0.0.1"
CLIENT = "127.0.0.5"
DENIED_CLIENT = "127.0.0.6"
OTHER_CLIENT = "127.0.0.7"


class HAProxy:
    """HAProxy in TCP mode with one front for each PROXY version, both in
    front of the daemon."""

    def __init__(self, tmp_path, daemon_port):
        self.v1, self.v2 = free_port((LOOPBACK4,)), free_port((LOOPBACK4,))
        while self.v2 == self.v1:
            self.v2 = free_port((LOOPBACK4,))
        config = tmp_path / "haproxy.cfg"
        config.write_text(f"""
global
    maxconn 100
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend v1
    bind 127.0.0.1:{self.v1}
    default_backend v1
backend v1
    server daemon 127.0.0.1:{daemon_port} send-proxy
frontend v2
    bind 127.0.0.1:{self.v2}
    default_backend v2
backend v2
    server daemon 127.0.0.1:{daemon_port} send-proxy-v2
""")
        self.proc = subprocess.Popen([HAPROXY, "-db", "-f", str(config)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        wait_until(lambda: is_listening(LOOPBACK4, self.v1) and is_listening(LOOPBACK4, self.v2)
                   or self.proc.poll() is not None, 10, what="haproxy listening")
        assert self.proc.poll() is None, self.proc.stdout.read().decode()

    def front(self, version):
        return (LOOPBACK4, self.v1 if version == 1 else self.v2)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def balanced(start_daemon, tmp_path):
    """A daemon trusting the balancer's address, with HAProxy in front."""
    started = []

    def start(**overrides):
        server = overrides.setdefault("server", {})
        server["proxy_protocol_from"] = f"{BALANCER}/32, ::1"
        # The clients are the balancer's: the open-proxy guard wants a
        # decision (the tests' own rules or logins restrict nothing).
        server["allow_open"] = True
        d = start_daemon(**overrides)
        started.append(HAProxy(tmp_path, d.port))
        return d, started[-1]
    yield start
    for h in started:
        h.stop()


@pytest.mark.parametrize("version", [1, 2])
def test_rules_and_the_log_see_the_client_behind_haproxy(balanced, echo_target, version):
    d, lb = balanced(**{"rule no-six": {"action": "deny", "client": DENIED_CLIENT},
                        "rule rest": {"action": "allow"}})
    with Socks5Client(lb.front(version), source=CLIENT) as c:
        assert c.connect(*echo_target.address).rep == REP_SUCCESS
        c.send(b"behind the balancer")
        assert c.recv_exact(19) == b"behind the balancer"
        port = c.sock.getsockname()[1]
    fields = d.wait_session(proto="socks5", close="eof", client=f"{CLIENT}:{port}")
    assert fields["reply"] == "0"
    with Socks5Client(lb.front(version), source=DENIED_CLIENT) as c:
        assert c.connect(*echo_target.address).rep == REP_NOT_ALLOWED
    d.wait_session(rule="no-six", reply=REP_NOT_ALLOWED)
    # HTTP through the same balancer.
    with ProxyClient(lb.front(version), source=OTHER_CLIENT) as c:
        c.send(f"CONNECT {LOOPBACK4}:{echo_target.port} HTTP/1.1\r\n\r\n".encode())
        assert recv_exact(c.sock, 39) == b"HTTP/1.1 200 Connection established\r\n\r\n"
        c.send(b"http")
        assert recv_exact(c.sock, 4) == b"http"
        port = c.sock.getsockname()[1]
    d.wait_session(proto="http", client=f"{OTHER_CLIENT}:{port}", reply=0)


def test_limits_count_each_client_behind_haproxy(balanced, echo_target):
    d, lb = balanced(limits={"max_per_client_ip": 1})
    held = Socks5Client(lb.front(2), source=CLIENT)
    try:
        assert held.connect(*echo_target.address).rep == REP_SUCCESS
        # The same client again: over its limit, closed once the header
        # named it.
        with Socks5Client(lb.front(1), source=CLIENT, timeout=5) as again:
            again.send(b"\x05\x01\x00")
            try:
                assert again.sock.recv(16) == b""
            except ConnectionResetError:
                pass
        d.wait_log(r"\[limits\] max_per_client_ip reached: client=127\.0\.0\.5 ")
        d.wait_session(close="refused")
        # Another client through the same balancer is not affected.
        with Socks5Client(lb.front(1), source=OTHER_CLIENT) as other:
            assert other.connect(*echo_target.address).rep == REP_SUCCESS
    finally:
        held.close()


def test_bans_hit_the_client_not_the_balancer(balanced, users_file, echo_target):
    d, lb = balanced(auth={"method": "password", "users_file": str(users_file)},
                     limits={"auth_failures": 2, "auth_window": 60, "auth_ban": 60})
    for _ in range(2):
        with Socks5Client(lb.front(1), source=CLIENT) as c:
            assert c.greet((2,)) == 2
            assert c.authenticate("alice", "wrong") != 0
    d.wait_log(r"client 127\.0\.0\.5 banned")
    with Socks5Client(lb.front(2), source=CLIENT, timeout=5) as c:
        c.send(b"\x05\x01\x02")
        assert recv_until_eof(c.sock) == b""
    from conftest import USERS
    with Socks5Client(lb.front(2), source=OTHER_CLIENT) as c:
        assert c.connect(*echo_target.address, "alice", USERS["alice"]).rep == REP_SUCCESS


def test_missing_and_untrusted_headers_are_refused(start_daemon, echo_target):
    from test_metrics import scrape, start_with_metrics
    d, metrics_port = start_with_metrics(
        start_daemon, server={"proxy_protocol_from": "127.0.0.3", "allow_open": True})
    baseline = settled_fds(d)
    # Trusted, but no header: closed unanswered.
    with Socks5Client(d.address, source="127.0.0.3") as c:
        c.send(b"\x05\x01\x00")
        assert recv_until_eof(c.sock) == b""
    d.wait_log(r"no valid PROXY header from a proxy_protocol_from address: "
               r"client=127\.0\.0\.3")
    d.wait_session(close="bad-proxy-header")
    # Anyone else sending a header: never believed.
    for header in (b"PROXY TCP4 10.9.9.9 127.0.0.1 1234 80\r\n",
                   b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c" + bytes(12)):
        with Socks5Client(d.address) as c:
            c.send(header + b"\x05\x01\x00")
            assert recv_until_eof(c.sock) == b""
    d.wait_log(r"a PROXY header from an address not in proxy_protocol_from: "
               r"client=127\.0\.0\.1")
    assert "10.9.9.9" not in d.log()
    # Plain clients are served as before.
    with Socks5Client(d.address) as c:
        assert c.connect(*echo_target.address).rep == REP_SUCCESS
    # A trusted sender's header, split byte by byte, then SOCKS5.
    with Socks5Client(d.address, source="127.0.0.3") as c:
        c.send_bytewise(b"PROXY TCP4 192.0.2.7 127.0.0.1 4242 1080\r\n")
        assert c.connect(*echo_target.address).rep == REP_SUCCESS
    d.wait_session(client="192.0.2.7:4242", reply=0)
    metrics = scrape(metrics_port)
    assert metrics("socks5d_handshake_failures_total", reason="bad-proxy-header") == 1
    assert metrics("socks5d_handshake_failures_total", reason="untrusted-proxy-header") == 2
    wait_until(lambda: non_pipe_fds(d.proc.pid) == baseline, 5, what="descriptors back")


def test_a_busy_balancer_is_not_held_to_the_per_ip_limit(start_daemon, echo_target):
    """Connections from a balancer count under the clients their headers
    name, not under the balancer: two at once from it, for two clients,
    are both served with max_per_client_ip = 1."""
    d = start_daemon(server={"proxy_protocol_from": "127.0.0.3", "allow_open": True},
                     limits={"max_per_client_ip": 1})
    first = Socks5Client(d.address, source="127.0.0.3")
    second = Socks5Client(d.address, source="127.0.0.3")
    try:
        first.send(b"PROXY TCP4 192.0.2.1 127.0.0.1 1111 1080\r\n")
        second.send(b"PROXY TCP4 192.0.2.2 127.0.0.1 2222 1080\r\n")
        for c in (first, second):
            assert c.connect(*echo_target.address).rep == REP_SUCCESS
            c.send(b"ok")
            assert c.recv_exact(2) == b"ok"
    finally:
        first.close()
        second.close()
    d.wait_session(client="192.0.2.1:1111", reply=0)
    d.wait_session(client="192.0.2.2:2222", reply=0)


def test_udp_takes_datagrams_from_the_client_the_header_named(start_daemon):
    """The UDP client check uses the real client: datagrams from it are
    relayed, those from the balancer's address are strangers."""
    from harness.socks5 import CMD_UDP
    from harness.udp import UdpServer, udp_header, parse_udp_datagram
    echo = UdpServer(LOOPBACK4)
    d = start_daemon(server={"proxy_protocol_from": "127.0.0.3", "allow_open": True})
    control = Socks5Client(d.address, source="127.0.0.3")
    real = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    balancer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        real.bind(("127.0.0.5", 0))
        balancer.bind(("127.0.0.3", 0))
        real.settimeout(5)
        control.send(f"PROXY TCP4 127.0.0.5 127.0.0.1 5555 {d.port}\r\n".encode())
        assert control.greet() == 0
        reply = control.request("0.0.0.0", 0, CMD_UDP)
        assert reply.rep == REP_SUCCESS, reply
        balancer.sendto(udp_header(*echo.address) + b"from the balancer", reply.bound)
        real.sendto(udp_header(*echo.address) + b"from the client", reply.bound)
        data, _ = real.recvfrom(65536)
        assert parse_udp_datagram(data)[-1] == b"from the client"
    finally:
        real.close()
        balancer.close()
        control.close()
        echo.close()
    fields = d.wait_session(cmd="udp", client="127.0.0.5:5555")
    assert fields["dgrams_up"] == "1" and fields["drop_stranger"] == "1", fields


def test_open_proxy_guard_counts_the_balancers_clients(check_config):
    """A loopback listener behind a balancer serves the balancer's clients:
    with method none it is an open proxy unless something restricts it."""
    base = ("[server]\nlisten = 127.0.0.1:1080\nproxy_protocol_from = 127.0.0.1\n"
            "[auth]\nmethod = none\n")
    result, path = check_config(base)
    assert result.returncode == 2
    assert "[server] listen: 127.0.0.1:1080 is not a loopback address (or its " \
        "clients come through the balancers of proxy_protocol_from)" in result.stderr
    result, path = check_config(base.replace("[auth]", "allow_open = yes\n[auth]"))
    assert result.returncode == 0, result.stderr
    result, path = check_config(base + "[rule lan]\naction = allow\nclient = 10.0.0.0/8\n")
    assert result.returncode == 0, result.stderr
