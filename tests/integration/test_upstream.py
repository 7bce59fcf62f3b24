"""Upstream proxies: CONNECT chained through [upstream NAME] members of
every kind (socks5d itself over socks5://, socks5h:// and http://,
microsocks, Dante, tinyproxy), logins right and wrong, failover in order
when a member dies, and members that misbehave."""
import os
import socket
import threading
import time

import pytest

from harness.http_proxy import ProxyClient
from harness.net import (LOOPBACK4, TIME_SCALE, closed_port, non_pipe_fds, recv_exact,
                         recv_until_eof, settled_fds, wait_until)
from harness.socks5 import (CMD_BIND, REP_CMD_UNSUPPORTED, REP_FAILURE, REP_HOST_UNREACH,
                            REP_NOT_ALLOWED, METHOD_NONE, Socks5Client, assert_echo,
                            open_tunnel)
from harness.targets import behave_echo, send_and_close
from harness.udp import Association, UdpServer
from harness.upstreams import Dante, Microsocks, Tinyproxy

from conftest import USERS

ALICE = ("alice", USERS["alice"])
DEAD_DNS = "127.0.0.1:9"      # lookups through it fail: nothing answers


def chained(start_daemon, url, **sections):
    """A socks5d whose every CONNECT goes through [upstream up] url."""
    upstream = dict(sections.pop("upstream", {}), url=url)
    outbound = dict(sections.pop("outbound", {}), via="up")
    return start_daemon(outbound=outbound, **{"upstream up": upstream}, **sections)


def login_url(scheme, address, user=ALICE[0], password=ALICE[1]):
    """scheme://user:password@host:port, with the password's ':', '@' and
    spaces percent-encoded."""
    quoted = "".join(c if c.isalnum() else f"%{ord(c):02X}" for c in password)
    return f"{scheme}://{user}:{quoted}@{address[0]}:{address[1]}"


def plain_url(scheme, address):
    return f"{scheme}://{address[0]}:{address[1]}"


def http_connect_status(d, host, port):
    """The status of an HTTP CONNECT through d."""
    with ProxyClient(d.address) as http:
        return http.request(f"CONNECT {host}:{port} HTTP/1.1\r\n"
                            f"Host: {host}:{port}\r\n\r\n".encode()).status


def request(d, host, port):
    client = Socks5Client(d.address)
    assert client.greet() == METHOD_NONE
    return client, client.request(host, port)


def assert_refused(d, host, port, rep):
    client, reply = request(d, host, port)
    with client:
        assert reply.rep == rep, f"REP {reply.rep:#x}, expected {rep:#x}"
        assert client.closed_by_peer()


# -- socks5d chained to itself -------------------------------------------------

@pytest.mark.parametrize("scheme", ["socks5", "socks5h", "http"])
def test_chained_through_socks5d_with_a_login(start_daemon, users_file, echo_target,
                                              scheme):
    """The upstream socks5d wants a login; the chain gives it, over SOCKS5
    or HTTP CONNECT with Basic, and the tunnel carries bytes both ways."""
    up = start_daemon(auth={"method": "password", "users_file": str(users_file)})
    front = chained(start_daemon, login_url(scheme, up.address))
    with open_tunnel(front.address, *echo_target.address) as client:
        assert_echo(client)
        assert_echo(client, b"x" * 100000)
    fields = up.wait_session(user="alice", dest=f"127.0.0.1:{echo_target.port}")
    assert fields["reply"] == "0", fields
    assert fields["proto"] == ("http" if scheme == "http" else "socks5"), fields
    # The front's access line names the upstream and the member used.
    mine = front.wait_session(dest=f"127.0.0.1:{echo_target.port}")
    assert mine["addr"] == f"127.0.0.1:{up.port}", mine
    assert mine["via"] == "up", mine
    # The upstream's own line, a direct session, has no via.
    assert "via" not in fields, fields


def test_socks5h_leaves_the_name_to_the_upstream(start_daemon, echo_target):
    """The front cannot resolve anything ([dns] servers dead): socks5h://
    and http:// send the name, so the upstream resolves v4.test; socks5://
    resolves here and fails with 0x04."""
    up = start_daemon()
    for scheme in ("socks5h", "http"):
        front = chained(start_daemon, plain_url(scheme, up.address),
                        dns={"servers": DEAD_DNS, "timeout": 1})
        with open_tunnel(front.address, "v4.test", echo_target.port) as client:
            assert_echo(client)
        up.wait_session(dest=f"v4.test:{echo_target.port}")
    front = chained(start_daemon, plain_url("socks5", up.address),
                    dns={"servers": DEAD_DNS, "timeout": 1})
    client, reply = request(front, "v4.test", echo_target.port)
    with client:
        assert reply.rep in (REP_HOST_UNREACH, REP_FAILURE), reply.rep


def test_socks5_resolves_here_and_sends_the_address(start_daemon, echo_target):
    up = start_daemon(dns={"servers": DEAD_DNS, "timeout": 1})
    front = chained(start_daemon, plain_url("socks5", up.address))
    with open_tunnel(front.address, "v4.test", echo_target.port) as client:
        assert_echo(client)
    up.wait_session(dest=f"127.0.0.1:{echo_target.port}")


def test_wrong_login_at_the_upstream_is_a_clear_refusal(start_daemon, users_file,
                                                       echo_target):
    """The upstream refuses our login: 0x02 for a SOCKS5 client, 403 over
    HTTP, a warning naming the member (never the password), and nothing
    leaks."""
    up = start_daemon(auth={"method": "password", "users_file": str(users_file)})
    for scheme in ("socks5", "http"):
        front = chained(start_daemon, login_url(scheme, up.address,
                                                password="not-the-password"))
        assert_refused(front, *echo_target.address, REP_NOT_ALLOWED)
        front.wait_log(rf"upstream up: {scheme}://127\.0\.0\.1:{up.port} refused our login")
        assert "not-the-password" not in front.log()
        assert http_connect_status(front, *echo_target.address) == 403


def test_server_speaks_first_and_early_client_data(start_daemon, echo_target, make_target):
    """A target that speaks first: its bytes may arrive with the upstream's
    reply and must not be lost. Client bytes sent before our reply reach
    the target first."""
    banner = b"220 hello from the target\r\n"
    talker = make_target(send_and_close(banner))
    up = start_daemon()
    for scheme in ("socks5", "http"):
        front = chained(start_daemon, plain_url(scheme, up.address))
        with open_tunnel(front.address, *talker.address) as client:
            assert recv_exact(client.sock, len(banner)) == banner
        client = Socks5Client(front.address)
        with client:
            client.sock.sendall(b"\x05\x01\x00" + socks5_request(echo_target.address)
                                + b"early bytes")
            assert client.read_method_choice() == METHOD_NONE
            assert client.read_reply().rep == 0
            assert recv_exact(client.sock, 11) == b"early bytes"


def socks5_request(address):
    host, port = address
    return b"\x05\x01\x00\x01" + socket.inet_aton(host) + port.to_bytes(2, "big")


# -- other servers ---------------------------------------------------------------

def test_chained_through_microsocks_with_a_login(start_daemon, echo_target, tmp_path):
    with Microsocks(tmp_path, *ALICE) as ms:
        front = chained(start_daemon, login_url("socks5", ms.address))
        with open_tunnel(front.address, *echo_target.address) as client:
            assert_echo(client, b"y" * 50000)
        front = chained(start_daemon, login_url("socks5", ms.address, password="wrong"))
        assert_refused(front, *echo_target.address, REP_NOT_ALLOWED)


def test_chained_through_dante(start_daemon, echo_target, tmp_path):
    with Dante(tmp_path) as dante:
        front = chained(start_daemon, plain_url("socks5h", dante.address))
        with open_tunnel(front.address, *echo_target.address) as client:
            assert_echo(client, b"z" * 50000)


def test_chained_through_tinyproxy(start_daemon, echo_target, make_target, tmp_path):
    banner = b"SSH-2.0-target\r\n"
    talker = make_target(send_and_close(banner))
    with Tinyproxy(tmp_path, *ALICE) as tiny:
        front = chained(start_daemon, login_url("http", tiny.address))
        with open_tunnel(front.address, *echo_target.address) as client:
            assert_echo(client, b"w" * 50000)
        with open_tunnel(front.address, *talker.address) as client:
            assert recv_exact(client.sock, len(banner)) == banner
        front = chained(start_daemon, login_url("http", tiny.address, password="wrong"))
        assert_refused(front, *echo_target.address, REP_NOT_ALLOWED)


# -- failover ----------------------------------------------------------------------

def test_failover_to_the_next_member_when_the_first_dies(start_daemon, echo_target):
    """Two upstreams in order: the first serves until it is killed, then
    the second serves at once; after fail_after failures the first is
    skipped (logged) until retry_after has passed."""
    first, second = start_daemon(), start_daemon()
    front = chained(start_daemon, f"{plain_url('socks5', first.address)}, "
                    f"{plain_url('socks5', second.address)}",
                    upstream={"fail_after": 2, "retry_after": 2})
    with open_tunnel(front.address, *echo_target.address) as client:
        assert_echo(client)
    first.wait_session(dest=f"127.0.0.1:{echo_target.port}")
    assert first.stop() == 0
    for _ in range(3):
        with open_tunnel(front.address, *echo_target.address) as client:
            assert_echo(client)
    second.wait_log(r"session .*cmd=connect .*reply=0", count=3)
    front.wait_log(rf"upstream up: socks5://127\.0\.0\.1:{first.port} down after 2 "
                   r"failure\(s\) in a row; skipped for 2 s")


def test_every_member_down_is_0x01_and_502(start_daemon, echo_target):
    holders = [closed_port() for _ in range(2)]
    url = ", ".join(plain_url("socks5", (LOOPBACK4, port)) for _, port in holders)
    front = chained(start_daemon, url)
    assert_refused(front, *echo_target.address, REP_FAILURE)
    assert http_connect_status(front, *echo_target.address) == 502
    for sock, _ in holders:
        sock.close()


# -- members that misbehave ---------------------------------------------------------

def misbehaving(behaviour):
    """A TCP server on loopback running behaviour(conn) per connection."""
    server = socket.socket()
    server.bind((LOOPBACK4, 0))
    server.listen(16)

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=behaviour, args=(conn,), daemon=True).start()
    threading.Thread(target=serve, daemon=True).start()
    return server


def speak_garbage(conn):
    with conn:
        conn.recv(64)
        conn.sendall(b"HTTP/1.0 200 this is not SOCKS\r\n\r\n")
        time.sleep(1)


def hang(conn):
    with conn:
        conn.recv(64)
        time.sleep(5)


def close_mid_handshake(conn):
    with conn:
        conn.recv(64)
        conn.sendall(b"\x05")


@pytest.mark.parametrize("behaviour", [speak_garbage, hang, close_mid_handshake])
def test_a_misbehaving_member_fails_cleanly(start_daemon, echo_target, behaviour):
    server = misbehaving(behaviour)
    try:
        front = chained(start_daemon, plain_url("socks5", server.getsockname()),
                        timeouts={"connect": 1})
        baseline = settled_fds(front)
        started = time.monotonic()
        assert_refused(front, *echo_target.address, REP_FAILURE)
        assert time.monotonic() - started < 3 * TIME_SCALE
        # Again: the daemon serves on, and answers the same way.
        assert_refused(front, *echo_target.address, REP_FAILURE)
        assert front.is_running()
        # Nothing of the two dials is left open.
        wait_until(lambda: non_pipe_fds(front.proc.pid) == baseline, 5 * TIME_SCALE,
                   what="descriptors back to the baseline")
    finally:
        server.close()


# -- configuration -----------------------------------------------------------------

@pytest.mark.parametrize("text, why", [
    ("[upstream u]\nurl = ftp://h:1\n", "[upstream u] url: member 1: the scheme must be"),
    ("[upstream u]\nurl = socks5://h\n", "[upstream u] url: member 1: a port is needed"),
    ("[upstream u]\nurl = socks5://h:1, socks5://user:secret-pw@h\n",
     "[upstream u] url: member 2: a port is needed"),
    ("[upstream u]\nurl = socks5://h:99999\n", "member 1: the port must be 1 to 65535"),
    ("[upstream u]\nurl = socks5://::1:1080\n", "member 1: an IPv6 address needs brackets"),
    ("[upstream u]\nurl = socks5://h:1,\n", "member 2: empty"),
    ("[upstream u]\nfail_after = 2\n", "[upstream u] url: missing"),
    ("[outbound]\nvia = nowhere\n", "[outbound] via: no [upstream nowhere] section"),
    ("[rule r]\naction = allow\nvia = nowhere\n", ":5: [rule r] via: no [upstream nowhere]"),
    ("[upstream direct]\nurl = socks5://h:1\n", "direct"),
    ("[upstream self]\nurl = socks5://127.0.0.1:1080\n",
     ":4: [upstream self] url: member 1 is this daemon's own listener (a loop)"),
])
def test_bad_upstream_config_is_an_error(check_config, text, why):
    result, path = check_config("[server]\nlisten = 127.0.0.1:1080\n" + text)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert why in output, output
    assert "secret-pw" not in output


def test_a_rule_routes_direct_or_via(start_daemon, echo_target, make_target):
    """via on a rule: one destination through the upstream, the rest direct."""
    other = make_target(behave_echo)
    up = start_daemon()
    front = start_daemon(**{"upstream up": {"url": plain_url("socks5", up.address)},
                            "rule chained": {"action": "allow",
                                             "port": str(echo_target.port), "via": "up"},
                            "rule rest": {"action": "allow", "via": "direct"}})
    with open_tunnel(front.address, *echo_target.address) as client:
        assert_echo(client)
    with open_tunnel(front.address, *other.address) as client:
        assert_echo(client)
    dests = [fields["dest"] for fields in up.session_lines()]
    assert dests == [f"127.0.0.1:{echo_target.port}"], dests


# -- BIND through an upstream --------------------------------------------------------

def bind_through(front, expect_host="127.0.0.1"):
    """BIND through front: the first reply's address takes a peer, the
    second reply names it, and bytes flow both ways."""
    client = Socks5Client(front.address)
    with client:
        assert client.greet() == METHOD_NONE
        first = client.request(expect_host, 0, CMD_BIND)
        assert first.rep == 0, first.rep
        peer = socket.create_connection(first.bound, timeout=5)
        with peer:
            second = client.read_reply()
            assert second.rep == 0, second.rep
            assert second.bound == peer.getsockname(), (second.bound, peer.getsockname())
            peer.sendall(b"from the peer")
            assert recv_exact(client.sock, 13) == b"from the peer"
            client.sock.sendall(b"from the client")
            assert recv_exact(peer, 15) == b"from the client"
        return first


def test_bind_through_socks5d_and_dante(start_daemon, tmp_path):
    """The upstream listens: its address is our first reply, its peer our
    second. Through socks5d (socks5h://) and Dante (socks5://)."""
    up = start_daemon()
    front = chained(start_daemon, plain_url("socks5h", up.address))
    bind_through(front)
    fields = up.wait_session(cmd="bind")
    assert fields["reply"] == "0", fields
    with Dante(tmp_path) as dante:
        front = chained(start_daemon, plain_url("socks5", dante.address))
        bind_through(front)


def test_bind_needs_a_socks5_member(start_daemon, echo_target, tmp_path):
    """An HTTP proxy cannot BIND: with only http:// members BIND is 0x07,
    and a socks5 member after an http one serves it."""
    up = start_daemon()
    front = chained(start_daemon, plain_url("http", up.address))
    client = Socks5Client(front.address)
    with client:
        assert client.greet() == METHOD_NONE
        assert client.request("127.0.0.1", 0, CMD_BIND).rep == REP_CMD_UNSUPPORTED
    front = chained(start_daemon, f"{plain_url('http', up.address)}, "
                    f"{plain_url('socks5', up.address)}")
    bind_through(front)


def test_bind_peer_denied_by_our_rules(start_daemon):
    """Our rules judge the peer the upstream reports, as for our own BIND."""
    up = start_daemon()
    front = start_daemon(**{"upstream up": {"url": plain_url("socks5", up.address)},
                            "rule no-peers": {"action": "deny", "command": "bind",
                                              "dest": "127.0.0.0/8"},
                            "rule rest": {"action": "allow", "via": "up"}})
    client = Socks5Client(front.address)
    with client:
        assert client.greet() == METHOD_NONE
        first = client.request("0.0.0.0", 0, CMD_BIND)
        assert first.rep == 0, first.rep
        with socket.create_connection(first.bound, timeout=5):
            assert client.read_reply().rep == REP_NOT_ALLOWED
            assert client.closed_by_peer()


# -- UDP ASSOCIATE through an upstream -----------------------------------------------

def udp_echo_through(front, echo, host=None, rounds=3):
    """Datagrams through front to echo and back, with the headers right."""
    with Association(front.address) as assoc:
        assert assoc.request().rep == 0
        for i in range(rounds):
            payload = b"datagram %d" % i
            assoc.send(host or echo.host, echo.port, payload)
            host_back, port_back, data = assoc.recv()
            assert data == payload, (host_back, port_back, data)
            assert (host_back, port_back) == echo.address
        return assoc


def test_udp_through_socks5d(start_daemon):
    """Datagrams are re-wrapped both ways: the front relays them to the
    upstream's relay and back. A name goes to the upstream unresolved:
    the front cannot resolve anything here."""
    echo = UdpServer(LOOPBACK4)
    try:
        up = start_daemon()
        front = chained(start_daemon, plain_url("socks5h", up.address),
                        dns={"servers": DEAD_DNS, "timeout": 1})
        udp_echo_through(front, echo)
        udp_echo_through(front, echo, host="v4.test")
        fields = up.wait_session(cmd="udp")
        assert fields["reply"] == "0", fields
        assert echo.count() == 6
    finally:
        echo.close()


def test_udp_through_dante(start_daemon, tmp_path):
    echo = UdpServer(LOOPBACK4)
    try:
        with Dante(tmp_path) as dante:
            front = chained(start_daemon, plain_url("socks5", dante.address))
            udp_echo_through(front, echo)
    finally:
        echo.close()


def test_udp_ends_with_the_upstreams_control_connection(start_daemon):
    echo = UdpServer(LOOPBACK4)
    try:
        up = start_daemon()
        front = chained(start_daemon, plain_url("socks5", up.address))
        with Association(front.address) as assoc:
            assert assoc.request().rep == 0
            assoc.send(echo.host, echo.port, b"one")
            assoc.recv()
            assert up.stop() == 0
            assert assoc.client.closed_by_peer(timeout=5)
        fields = front.wait_session(cmd="udp")
        assert fields["close"] == "upstream-eof", fields
    finally:
        echo.close()


def test_udp_denied_destination_is_dropped_before_the_upstream(start_daemon):
    echo = UdpServer(LOOPBACK4)
    try:
        up = start_daemon()
        front = start_daemon(**{"upstream up": {"url": plain_url("socks5", up.address)},
                                "rule no-port": {"action": "deny", "command": "udp",
                                                 "port": str(echo.port)},
                                "rule rest": {"action": "allow", "via": "up"}})
        with Association(front.address) as assoc:
            assert assoc.request().rep == 0
            assoc.send(echo.host, echo.port, b"denied")
            assoc.assert_nothing()
        assert echo.count() == 0
    finally:
        echo.close()



# -- metrics -------------------------------------------------------------------------

def upstream_metrics_front(start_daemon, users_file, holder_port, workers=None):
    """A front with /metrics whose [upstream up] is the closed port
    holder_port, then a live socks5d that wants alice's login. Returns
    (front, metrics port, the two members' labels)."""
    from test_metrics import start_with_metrics
    from test_workers import start_workers

    up = start_daemon(auth={"method": "password", "users_file": str(users_file)})
    upstream = {"url": f"{plain_url('socks5', (LOOPBACK4, holder_port))}, "
                       f"{login_url('socks5', up.address)}",
                "fail_after": 2, "retry_after": 600}
    sections = {"outbound": {"via": "up"}, "upstream up": upstream}
    if workers is None:
        front, port = start_with_metrics(start_daemon, **sections)
    else:
        front, port = start_workers(start_daemon, workers=workers, metrics=True,
                                    **sections)
    return front, port, (f"socks5://127.0.0.1:{holder_port}",
                         f"socks5://127.0.0.1:{up.port}")


def hops(m, member):
    return {result: m("socks5d_upstream_hops_total", upstream="up", member=member,
                      result=result) for result in ("ok", "failed")}


def test_metrics_count_hops_by_member(start_daemon, users_file, echo_target):
    """socks5d_upstream_hops_total counts each member's hops made and
    failed, socks5d_upstream_up goes to 0 once the first member reaches
    fail_after, and the exposition never shows the members' logins."""
    from test_metrics import curl, parse_exposition, Metrics, scrape

    holder, closed = closed_port()
    with holder:
        front, port, (dead, live) = upstream_metrics_front(start_daemon, users_file,
                                                           closed)
        m = scrape(port)
        for member in (dead, live):
            assert hops(m, member) == {"ok": 0, "failed": 0}
            assert m("socks5d_upstream_up", upstream="up", member=member) == 1
        for i in range(4):
            with open_tunnel(front.address, *echo_target.address) as client:
                assert_echo(client)
            if i == 0:
                # One failure of fail_after 2: still up.
                m = scrape(port)
                assert hops(m, dead) == {"ok": 0, "failed": 1}
                assert m("socks5d_upstream_up", upstream="up", member=dead) == 1
        front.wait_log(rf"upstream up: socks5://127\.0\.0\.1:{closed} down after 2 "
                       r"failure\(s\) in a row")
        status, _, body = curl(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    text = body.decode()
    m = Metrics(parse_exposition(text))
    # Down after two failures, then skipped: two, not four.
    assert hops(m, dead) == {"ok": 0, "failed": 2}
    assert hops(m, live) == {"ok": 4, "failed": 0}
    assert m("socks5d_upstream_up", upstream="up", member=dead) == 0
    assert m("socks5d_upstream_up", upstream="up", member=live) == 1
    assert m("socks5d_upstream_hops_untracked_total") == 0
    assert m.labels("socks5d_upstream_up", "member") == {dead, live}
    # The second member's URL has alice's login: no trace of it.
    assert ALICE[1] not in text and f"{ALICE[0]}:" not in text and "@" not in text


@pytest.mark.deadline(60)
def test_metrics_sum_hops_over_workers(start_daemon, users_file, echo_target):
    """With two workers each keeps its own health: the scrape sums both
    workers' hops, and the first member is down while either has it down."""
    from harness.net import wait_until
    from test_metrics import scrape
    from test_workers import tagged_sessions

    connects = 8
    holder, closed = closed_port()
    with holder:
        front, port, (dead, live) = upstream_metrics_front(start_daemon, users_file,
                                                           closed, workers=2)
        for _ in range(connects):
            with open_tunnel(front.address, *echo_target.address) as client:
                assert_echo(client)
        wait_until(lambda: sum(tagged_sessions(front).values()) == connects, 10,
                   what="every session logged")
        # Each worker fails the dead member until its own fail_after (2),
        # then skips it.
        failed = sum(min(n, 2) for n in tagged_sessions(front).values())
        for _ in range(4):          # whichever worker answers, the same sums
            m = scrape(port)
            assert hops(m, dead) == {"ok": 0, "failed": failed}
            assert hops(m, live) == {"ok": connects, "failed": 0}
            # 8 sessions on 2 workers: one of them had at least 2.
            assert m("socks5d_upstream_up", upstream="up", member=dead) == 0
            assert m("socks5d_upstream_up", upstream="up", member=live) == 1


def test_forwarded_http_request_through_an_upstream(start_daemon):
    """An HTTP proxy client's plain GET http://... goes through the
    upstream like a CONNECT, and comes back rewritten as usual."""
    from harness.http_proxy import Origin, read_response
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    up = start_daemon()
    front = chained(start_daemon, plain_url("socks5h", up.address))
    with Origin(answer) as origin, ProxyClient(front.address) as c:
        c.send(f"GET http://127.0.0.1:{origin.port}/through HTTP/1.1\r\n"
               f"Host: 127.0.0.1:{origin.port}\r\n\r\n".encode())
        response = read_response(c.sock)
        assert response.status == 200, response
        assert response.rest + recv_until_eof(c.sock) == b"hello"
        assert origin.heads[0].startswith(b"GET /through HTTP/1.1\r\n")
    fields = up.wait_session(dest=f"127.0.0.1:{origin.port}")
    assert fields["proto"] == "socks5" and fields["reply"] == "0", fields


# -- what a client or a slow member must not be able to do -------------------------

def cpu_seconds(pid):
    """User and system CPU time of process pid so far, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def partial_http_head(conn):
    with conn:
        conn.recv(1024)
        conn.sendall(b"HTTP/1.1 200 Connection established\r\nX-Slow: ")
        time.sleep(4)


def partial_socks5_reply(conn):
    with conn:
        conn.recv(64)
        conn.sendall(b"\x05\x00")
        conn.recv(512)
        conn.sendall(b"\x05\x00\x00\x01\x7f")
        time.sleep(4)


@pytest.mark.parametrize("scheme, behaviour", [("http", partial_http_head),
                                               ("socks5", partial_socks5_reply)])
def test_a_half_sent_reply_does_not_busy_the_loop(start_daemon, echo_target, scheme,
                                                  behaviour):
    """A member that sends part of its reply and stops: the daemon waits
    for the rest (up to the connect timeout) without spinning on it."""
    server = misbehaving(behaviour)
    try:
        front = chained(start_daemon, plain_url(scheme, server.getsockname()),
                        timeouts={"connect": 3})
        client = Socks5Client(front.address)
        with client:
            assert client.greet() == METHOD_NONE
            client.send(socks5_request(echo_target.address))
            time.sleep(0.3)
            before = cpu_seconds(front.proc.pid)
            time.sleep(1.5)
            used = cpu_seconds(front.proc.pid) - before
            assert used < 0.3 * TIME_SCALE, f"{used:.2f} s of CPU while waiting"
            assert client.read_reply().rep == REP_FAILURE
    finally:
        server.close()


def refuse_everything(conn):
    """A SOCKS5 server that answers every request 0x01."""
    with conn:
        conn.recv(64)
        conn.sendall(b"\x05\x00")
        conn.recv(512)
        conn.sendall(b"\x05\x01\x00\x01\x00\x00\x00\x00\x00\x00")


def test_clients_cannot_take_a_member_down(start_daemon, echo_target):
    """Answers about destinations (0x01 for a name the member cannot
    resolve) and names an HTTP proxy cannot be asked for are the client's
    business: no number of them marks the member down."""
    server = misbehaving(refuse_everything)
    try:
        front = chained(start_daemon, plain_url("socks5h", server.getsockname()),
                        upstream={"fail_after": 2})
        for _ in range(4):
            assert_refused(front, "no-such-name.test", 80, REP_FAILURE)
        assert "down after" not in front.log()
    finally:
        server.close()
    up = start_daemon()
    front = chained(start_daemon, plain_url("http", up.address),
                    upstream={"fail_after": 2})
    for _ in range(3):
        assert_refused(front, "bad name/with spaces", 80, REP_HOST_UNREACH)
    with open_tunnel(front.address, *echo_target.address) as client:
        assert_echo(client)
    assert "down after" not in front.log()


def udp_relay_named(conn):
    """A SOCKS5 server whose UDP ASSOCIATE reply names its relay by a host
    name (RFC 1928 allows it), then holds the control connection."""
    with conn:
        conn.recv(64)
        conn.sendall(b"\x05\x00")
        conn.recv(512)
        name = b"localhost"
        conn.sendall(b"\x05\x00\x00\x03" + bytes([len(name)]) + name + b"\x04\x00")
        conn.settimeout(5)
        try:
            conn.recv(64)
        except OSError:
            pass


def test_udp_relay_given_by_name_leaks_nothing(start_daemon):
    server = misbehaving(udp_relay_named)
    try:
        front = chained(start_daemon, plain_url("socks5", server.getsockname()))
        baseline = settled_fds(front)
        for _ in range(3):
            with Association(front.address) as assoc:
                assert assoc.request().rep == 0
        wait_until(lambda: non_pipe_fds(front.proc.pid) == baseline, 5 * TIME_SCALE,
                   what="descriptors back to the baseline")
    finally:
        server.close()


def test_the_hop_leaves_from_bind_ipv4(start_daemon, echo_target):
    """[outbound] bind_ipv4 applies to the connection to an upstream as to
    a direct one: the upstream sees the front coming from it."""
    up = start_daemon()
    front = chained(start_daemon, plain_url("socks5", up.address),
                    outbound={"bind_ipv4": "127.0.0.2"})
    with open_tunnel(front.address, *echo_target.address) as client:
        assert_echo(client)
    fields = up.wait_session(dest=f"127.0.0.1:{echo_target.port}")
    assert fields["client"].startswith("127.0.0.2:"), fields
