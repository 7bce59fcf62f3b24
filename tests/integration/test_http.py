"""The HTTP proxy front-end, black-box with raw requests: CONNECT tunnels,
absolute-form requests forwarded in origin-form (hop-by-hop fields out, Via
in, the origin's keep-alive turned into Connection: close, WebSocket
upgrades relayed), Proxy-Authorization: Basic, and every failure as an HTTP
answer: 400, 403, 407, 431, 502, 504, 505. Each bad input leaves the daemon
serving with its descriptors back at baseline."""
import base64
import os
import socket
import time

import pytest

from conftest import USERS
from harness.http_proxy import Origin, ProxyClient, read_response
from harness.net import (LOOPBACK4, closed_port, non_pipe_fds, peer_closed, recv_exact,
                         recv_until_eof, settled_fds, wait_until)
from harness.targets import FullBacklog


def assert_fds_back(daemon, baseline):
    wait_until(lambda: non_pipe_fds(daemon.proc.pid) == baseline, 5,
               what=f"daemon back to {baseline} descriptors")


def connect_head(host, port, extra=b""):
    return (f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n".encode()
            + extra + b"\r\n")


def basic(user, password):
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return f"Proxy-Authorization: Basic {token}\r\n".encode()


KEEP_ALIVE_ANSWER = (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive, X-Hop\r\n"
                     b"Keep-Alive: timeout=5\r\nX-Hop: secret\r\nX-Kept: yes\r\n\r\nhello")


def test_connect_tunnel_relays_both_ways(daemon, echo_target):
    baseline = settled_fds(daemon)
    with ProxyClient(daemon.address) as c:
        # Bytes sent right behind the head wait for the tunnel.
        c.send(connect_head(*echo_target.address) + b"early\n")
        response = read_response(c.sock)
        assert response.status_line == "HTTP/1.1 200 Connection established", response
        data = response.rest + recv_exact(c.sock, 6 - len(response.rest))
        assert data == b"early\n"
        payload = os.urandom(300000)
        c.send(payload)
        assert recv_exact(c.sock, len(payload)) == payload
    fields = daemon.wait_session(proto="http", cmd="connect", reply=0, close="eof")
    assert fields["dest"] == f"{LOOPBACK4}:{echo_target.port}"
    assert_fds_back(daemon, baseline)


def test_connect_to_a_name_and_failures(start_daemon, echo_target, dns_server):
    d = start_daemon(timeouts={"connect": 1})
    baseline = settled_fds(d)
    with ProxyClient(d.address) as c:
        assert c.request(connect_head("v4.test", echo_target.port)).status == 200
        c.send(b"name")
        assert recv_exact(c.sock, 4) == b"name"
    assert "v4.test" in dns_server.queried_names()
    d.wait_session(proto="http", dest=f"v4.test:{echo_target.port}", reply=0)
    holder, port = closed_port()
    with holder:
        for host, code, reply in ((LOOPBACK4, 502, 5), ("nxdomain.test", 502, 4)):
            with ProxyClient(d.address) as c:
                response = c.request(connect_head(host, port))
                assert response.status == code, response
                assert response.field("connection") == "close"
                body = response.rest + recv_until_eof(c.sock)
                assert int(response.field("content-length")) == len(body)
            d.wait_session(proto="http", dest=f"{host}:{port}", reply=reply,
                           close="rejected")
    with FullBacklog() as hole, ProxyClient(d.address) as c:
        started = time.monotonic()
        assert c.request(connect_head(*hole.address)).status == 504
        assert time.monotonic() - started < 5
    assert_fds_back(d, baseline)


def test_rule_denial_is_403_naming_the_rule(start_daemon, echo_target):
    d = start_daemon(**{"rule no-echo": {"action": "deny", "dest": LOOPBACK4,
                                         "port": echo_target.port},
                        "rule http-only-web": {"action": "allow", "protocol": "http"}})
    with ProxyClient(d.address) as c:
        response = c.request(connect_head(*echo_target.address))
        assert response.status == 403, response
    d.wait_session(proto="http", reply=2, rule="no-echo")
    assert echo_target.records == []


def test_password_logins(start_daemon, users_file, echo_target):
    from test_metrics import scrape, start_with_metrics
    d, metrics_port = start_with_metrics(
        start_daemon, auth={"method": "password", "users_file": str(users_file)})
    baseline = settled_fds(d)
    with ProxyClient(d.address) as c:
        response = c.request(connect_head(*echo_target.address))
        assert response.status == 407, response
        assert response.field("proxy-authenticate") == 'Basic realm="socks5d"'
        assert peer_closed(c.sock)
    d.wait_session(proto="http", close="auth-required")
    with ProxyClient(d.address) as c:
        response = c.request(connect_head(*echo_target.address,
                                          basic("alice", "wrong password")))
        assert response.status == 407
    d.wait_session(proto="http", user="alice", close="auth-failed")
    d.wait_log(r"login failed: client=127\.0\.0\.1:\d+ proto=http user=alice")
    with ProxyClient(d.address) as c:
        response = c.request(connect_head(*echo_target.address,
                                          basic("alice", USERS["alice"])))
        assert response.status == 200, response
        c.send(b"logged in")
        assert recv_exact(c.sock, 9) == b"logged in"
    d.wait_session(proto="http", user="alice", reply=0)
    # Not Basic, or not base64: asked again.
    for bad in (b"Proxy-Authorization: Bearer abc\r\n",
                b"Proxy-Authorization: Basic !!!\r\n"):
        with ProxyClient(d.address) as c:
            assert c.request(connect_head(*echo_target.address, bad)).status == 407
    metrics = scrape(metrics_port)
    assert metrics("socks5d_auth_failures_total") == 1
    assert metrics("socks5d_auth_successes_total") == 1
    assert metrics("socks5d_sessions_by_protocol_total", proto="http") == 5
    assert_fds_back(d, baseline)


def test_forwarded_request_is_rewritten_both_ways(start_daemon, users_file):
    d = start_daemon(auth={"method": "password", "users_file": str(users_file)})
    with Origin(KEEP_ALIVE_ANSWER) as origin, ProxyClient(d.address) as c:
        c.send(f"GET http://127.0.0.1:{origin.port}/path?q=1 HTTP/1.1\r\n"
               f"Host: elsewhere.test\r\nProxy-Connection: keep-alive\r\n"
               f"Connection: X-Private\r\nX-Private: 1\r\nTE: trailers\r\n"
               f"Accept: */*\r\n".encode() + basic("alice", USERS["alice"]) + b"\r\n")
        response = read_response(c.sock)
        assert response.status == 200, response
        # The client learns the connection ends with this response.
        assert response.all("connection") == ["close"], response
        assert response.field("keep-alive") is None and response.field("x-hop") is None
        assert response.field("x-kept") == "yes"
        assert response.field("via") == "1.1 socks5d"
        assert response.rest + recv_until_eof(c.sock) == b"hello"
        head = origin.heads[0].decode()
    lines = head.split("\r\n")
    assert lines[0] == "GET /path?q=1 HTTP/1.1", head
    names = [line.split(":")[0].lower() for line in lines[1:] if line]
    assert f"Host: 127.0.0.1:{origin.port}" in lines
    assert "Accept: */*" in lines and "Via: 1.1 socks5d" in lines
    assert "Connection: close" in lines
    for hop in ("proxy-authorization", "proxy-connection", "x-private", "te"):
        assert hop not in names, head
    fields = d.wait_session(proto="http", user="alice", reply=0)
    assert fields["dest"] == f"127.0.0.1:{origin.port}"


def test_forwarded_post_body_and_no_via(start_daemon):
    d = start_daemon(http={"via": False})
    body = os.urandom(200000)
    answer = b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
    with Origin(answer) as origin, ProxyClient(d.address) as c:
        c.send(f"POST http://127.0.0.1:{origin.port}/upload HTTP/1.1\r\n"
               f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        response = read_response(c.sock)
        assert response.status == 201
        assert response.field("via") is None
        assert response.rest + recv_until_eof(c.sock) == b"ok"
        head = origin.heads[0].decode()
        assert origin.bodies == [body]
    assert "Via:" not in head and head.startswith("POST /upload HTTP/1.1\r\n")


def test_interim_continue_reaches_the_client_before_the_body(daemon):
    """A client that sends Expect: 100-continue waits for the 100 before it
    sends its body; the proxy must pass the interim head on at once."""
    import threading
    listener = socket.create_server((LOOPBACK4, 0))
    seen = {}

    def origin():
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(10)
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(4096)
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = data.split(b"\r\n\r\n", 1)[1]
            while len(body) < 5:
                body += conn.recv(4096)
            seen["body"] = body
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
                         b"Connection: keep-alive\r\n\r\nend")
    thread = threading.Thread(target=origin, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    with listener, ProxyClient(daemon.address) as c:
        c.send(f"PUT http://127.0.0.1:{port}/x HTTP/1.1\r\nContent-Length: 5\r\n"
               f"Expect: 100-continue\r\n\r\n".encode())
        c.sock.settimeout(3)
        assert recv_exact(c.sock, 25) == b"HTTP/1.1 100 Continue\r\n\r\n"
        c.send(b"hello")
        final = recv_until_eof(c.sock)
        thread.join(5)
    assert seen["body"] == b"hello"
    assert final.startswith(b"HTTP/1.1 200 OK\r\n"), final
    assert b"keep-alive" not in final and b"Connection: close\r\n" in final
    assert final.endswith(b"\r\n\r\nend")


def test_websocket_upgrade_is_relayed(daemon):
    answer = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\n\r\n")
    with Origin(answer, echo=True) as origin, ProxyClient(daemon.address) as c:
        response = c.request(f"GET http://127.0.0.1:{origin.port}/ws HTTP/1.1\r\n"
                             f"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                             f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                             f"Sec-WebSocket-Version: 13\r\n\r\n".encode())
        assert response.status == 101, response
        assert response.field("connection") == "Upgrade"
        frames = os.urandom(50000)
        c.send(frames)
        assert recv_exact(c.sock, len(frames)) == frames
        head = origin.heads[0].decode()
    assert "Upgrade: websocket" in head and "Connection: Upgrade" in head


BAD_HEADS = [
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 400),                   # origin-form
    (b"GET http://127.0.0.1/ HTTP/2.0\r\n\r\n", 505),
    (b"GET http://127.0.0.1/ HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", 400),
    (b"POST http://127.0.0.1/ HTTP/1.1\r\nContent-Length: 3\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n", 400),
    (b"GET http://127.0.0.1/ HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n", 400),
    (b"GET http://127.0.0.1/ HTTP/1.1\r\nX-A : 1\r\n\r\n", 400),
    (b"GET http://127.0.0.1/ HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n", 431),
    (b"CONNECT 127.0.0.1 HTTP/1.1\r\n\r\n", 400),                 # no port
    (b"GET http://user@127.0.0.1/ HTTP/1.1\r\n\r\n", 400),
    (b"GET https://127.0.0.1/ HTTP/1.1\r\n\r\n", 400),
    (b"G\x00T http://127.0.0.1/ HTTP/1.1\r\n\r\n", 400),
]


@pytest.mark.parametrize("raw,status", BAD_HEADS, ids=range(len(BAD_HEADS)))
def test_bad_heads_get_an_http_answer(daemon, raw, status):
    baseline = settled_fds(daemon)
    with ProxyClient(daemon.address) as c:
        c.send(raw)
        response = read_response(c.sock)
        assert response.status == status, response
        assert response.field("connection") == "close"
        assert peer_closed(c.sock)
    daemon.wait_session(proto="http", close="bad-request")
    assert_fds_back(daemon, baseline)


def test_truncated_head_then_close_and_slow_head_timeout(start_daemon):
    d = start_daemon(timeouts={"handshake": 1})
    baseline = settled_fds(d)
    with ProxyClient(d.address) as c:
        c.send(b"CONNECT 127.0.0.1:80 HTTP/1.1\r\nHost: a")
        c.sock.shutdown(socket.SHUT_WR)
        assert recv_until_eof(c.sock) == b""
    d.wait_session(proto="http", close="client-eof")
    with ProxyClient(d.address) as c:
        c.send(b"CONNECT 127.0.0.1:80 HTTP/1.1\r\n")
        assert recv_until_eof(c.sock) == b""
    d.wait_session(proto="http", close="handshake-timeout")
    assert_fds_back(d, baseline)


def test_http_switched_off_gets_403(start_daemon, echo_target):
    d = start_daemon(server={"protocols": "socks5"})
    with ProxyClient(d.address) as c:
        response = c.request(connect_head(*echo_target.address))
        assert response.status == 403
    d.wait_session(proto="http", close="protocol-off")
    assert echo_target.records == []


def test_reload_changes_protocols_without_dropping_sessions(start_daemon, dns_server,
                                                            echo_target):
    import signal
    from test_service import rewrite_config
    d = start_daemon()
    with ProxyClient(d.address) as tunnel:
        assert tunnel.request(connect_head(*echo_target.address)).status == 200
        rewrite_config(d, dns_server, server={"protocols": "socks5, socks4"})
        d.send_signal(signal.SIGHUP)
        d.wait_log(r"reloaded: ")
        # The open tunnel goes on; a new HTTP client is refused.
        tunnel.send(b"still here")
        assert recv_exact(tunnel.sock, 10) == b"still here"
        with ProxyClient(d.address) as late:
            assert late.request(connect_head(*echo_target.address)).status == 403
        d.wait_session(proto="http", close="protocol-off")
    d.wait_session(proto="http", close="eof", reply=0)


def test_failed_http_logins_ban_the_client(start_daemon, users_file, echo_target):
    d = start_daemon(auth={"method": "password", "users_file": str(users_file)},
                     limits={"auth_failures": 2, "auth_window": 60, "auth_ban": 60})
    for _ in range(2):
        with ProxyClient(d.address) as c:
            assert c.request(connect_head(*echo_target.address,
                                          basic("alice", "nope"))).status == 407
    d.wait_log(r"client 127\.0\.0\.1 banned")
    with ProxyClient(d.address) as c:
        c.send(connect_head(*echo_target.address, basic("alice", USERS["alice"])))
        try:
            assert c.sock.recv(64) == b""
        except ConnectionResetError:
            pass
    # Another address is not banned.
    with ProxyClient(d.address, source="127.0.0.2") as c:
        assert c.request(connect_head(*echo_target.address,
                                      basic("alice", USERS["alice"]))).status == 200


def test_a_large_head_and_body_bytes_behind_it(daemon, echo_target):
    """A head near the 8 KiB bound (past the 4 KiB every connection starts
    with) and a forwarded request whose body arrived with it."""
    big = b"X-Filler: " + b"f" * 7600 + b"\r\n"
    with ProxyClient(daemon.address) as c:
        assert c.request(connect_head(*echo_target.address, big)).status == 200
        c.send(b"after a big head")
        assert recv_exact(c.sock, 16) == b"after a big head"
    body = os.urandom(3000)
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    with Origin(answer) as origin, ProxyClient(daemon.address) as c:
        c.send(f"POST http://127.0.0.1:{origin.port}/ HTTP/1.1\r\nContent-Length: "
               f"{len(body)}\r\n".encode() + big + b"\r\n" + body)
        assert read_response(c.sock).status == 200
        recv_until_eof(c.sock)
        assert origin.bodies == [body]
        assert b"f" * 7600 in origin.heads[0]


def test_forwarded_body_read_while_the_login_is_checked(start_daemon, users_file):
    """The first login of a user is checked off the loop; body bytes that
    arrive meanwhile must still leave room for the head's rewrite."""
    d = start_daemon(auth={"method": "password", "users_file": str(users_file)})
    body = os.urandom(20000)
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    with Origin(answer) as origin, ProxyClient(d.address) as c:
        c.send(f"POST http://127.0.0.1:{origin.port}/ HTTP/1.1\r\nContent-Length: "
               f"{len(body)}\r\n".encode() + basic("bob", USERS["bob"]) + b"\r\n" + body)
        response = read_response(c.sock)
        assert response.status == 200, response
        recv_until_eof(c.sock)
        assert origin.bodies == [body]


def test_response_head_rewritten_and_interim_flood_survived(daemon):
    """An origin that sends its head and a large body in one write still has
    its head rewritten (the first read may fill the relay's buffer), and one
    that sends 35 KB of interim heads, pauses, then the final one neither
    crashes nor stalls the relay (interim heads once made the direction
    look like bulk data and splice under the filter)."""
    import threading
    big = os.urandom(200000)
    answer = (b"HTTP/1.1 200 OK\r\nContent-Length: " + str(len(big)).encode()
              + b"\r\nKeep-Alive: timeout=9\r\nConnection: keep-alive\r\n\r\n" + big)
    with Origin(answer) as origin, ProxyClient(daemon.address) as c:
        c.send(f"GET http://127.0.0.1:{origin.port}/big HTTP/1.1\r\n\r\n".encode())
        response = read_response(c.sock)
        assert response.all("connection") == ["close"], response
        assert response.field("keep-alive") is None
        assert response.rest + recv_until_eof(c.sock) == big
    listener = socket.create_server((LOOPBACK4, 0))

    def flood_origin():
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n" * 1400)
            time.sleep(0.3)
            conn.sendall(b"H")
            time.sleep(0.1)
            conn.sendall(b"TTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    thread = threading.Thread(target=flood_origin, daemon=True)
    thread.start()
    with listener, ProxyClient(daemon.address) as c:
        c.send(f"GET http://127.0.0.1:{listener.getsockname()[1]}/ HTTP/1.1\r\n\r\n".encode())
        data = recv_until_eof(c.sock)
        thread.join(5)
    interim = b"HTTP/1.1 100 Continue\r\n\r\n" * 1400
    assert data.startswith(interim), data[:100]
    assert data[len(interim):].startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Connection: close\r\n" in data[len(interim):] and data.endswith(b"\r\n\r\nok")
    # The daemon is still there for the next client.
    with ProxyClient(daemon.address) as c:
        assert c.request(b"GET / HTTP/1.1\r\n\r\n").status == 400


def test_pipelined_requests_never_reach_the_first_origin(daemon):
    """One request per connection: what a client pipelines behind a
    request (a request for another origin, with its Proxy-Authorization)
    is dropped, whether it came with the first request or after it."""
    second = (b"GET http://127.0.0.9/other HTTP/1.1\r\n"
              b"Proxy-Authorization: Basic c2VjcmV0OnNlY3JldA==\r\n\r\n")
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    with Origin(lambda head: (time.sleep(0.3), answer)[1]) as origin:
        with ProxyClient(daemon.address) as c:
            c.send(f"GET http://127.0.0.1:{origin.port}/1 HTTP/1.1\r\n\r\n".encode()
                   + second)
            time.sleep(0.1)
            c.send(second)              # after the head, while it waits
            assert read_response(c.sock).status == 200
            recv_until_eof(c.sock)
        body = os.urandom(5000)
        with ProxyClient(daemon.address) as c:
            c.send(f"POST http://127.0.0.1:{origin.port}/2 HTTP/1.1\r\nContent-Length: "
                   f"{len(body)}\r\n\r\n".encode() + body[:3000])
            time.sleep(0.1)
            c.send(body[3000:] + second)
            assert read_response(c.sock).status == 200
            recv_until_eof(c.sock)
        time.sleep(0.2)
        heads = b"".join(origin.heads)
        assert len(origin.heads) == 2, origin.heads
        assert origin.bodies == [b"", body]
        assert origin.extra == b"", origin.extra[:200]
    assert b"/other" not in heads and b"Proxy-Authorization" not in heads
