"""The /metrics endpoint: off by default; when on, the Prometheus text format
with counters that move by exactly what the traffic did; 404/405/400/431 for
everything else; slow, malformed, oversized and too many clients are closed
without harming the daemon; SIGHUP moves it all or nothing."""
import hashlib
import os
import re
import select
import signal
import socket
import subprocess
import time

import pytest

from conftest import USERS, base_config
from harness.daemon import merge_config, render_config, run_binary
from harness.net import (LOOPBACK4, LOOPBACK6, closed_port, format_hostport,
                         free_port, is_listening, peer_closed, recv_exact,
                         recv_until_eof,
                         wait_until)
from harness.socks5 import (CMD_BIND, METHOD_NONE, METHOD_PASSWORD, METHOD_REJECT,
                            REP_HOST_UNREACH, REP_REFUSED, REP_SUCCESS, Socks5Client,
                            assert_echo, open_tunnel)
from harness.targets import source
from harness.udp import Association

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REQUEST_DEADLINE = 5.0          # the daemon's limit for a request head
SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"(,|$)')
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


# -- scraping and parsing -------------------------------------------------

def curl(url, *args):
    """(status, headers {lower name: value}, body) of one request by curl."""
    result = subprocess.run(["curl", "-s", "-S", "-i", "--max-time", "5", *args, url],
                            capture_output=True, timeout=10)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    head, _, body = result.stdout.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def parse_labels(text):
    labels = {}
    pos = 0
    while pos < len(text):
        m = LABEL_RE.match(text, pos)
        assert m, f"bad label set {{{text}}}"
        assert m.group(1) not in labels, f"label {m.group(1)} twice"
        labels[m.group(1)] = m.group(2)
        pos = m.end()
    return labels


def parse_exposition(text):
    """{(name, frozenset(labels)): value} after checking every line: HELP and
    TYPE comments, or `name{labels} value` with a float value; every sample
    belongs to a family whose TYPE came first; no series twice."""
    assert text.endswith("\n"), "the exposition must end with a newline"
    types, samples = {}, {}
    for line in text[:-1].split("\n"):
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert kind in TYPES, line
            assert name not in types, f"TYPE twice for {name}"
            types[name] = kind
            continue
        if line.startswith("# HELP "):
            assert len(line.split(" ", 3)) == 4, line
            continue
        assert not line.startswith("#"), f"unexpected comment {line!r}"
        m = SAMPLE_RE.match(line)
        assert m, f"malformed sample line {line!r}"
        name, labels, value = m.group(1), parse_labels(m.group(2) or ""), float(m.group(3))
        family = name
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and types.get(name[:-len(suffix)]) == "histogram":
                family = name[:-len(suffix)]
        assert family in types, f"sample {name} without a # TYPE before it"
        if types[family] == "counter":
            assert name.endswith("_total") and value >= 0, line
        key = (name, frozenset(labels.items()))
        assert key not in samples, f"series twice: {line}"
        samples[key] = value
    return samples


class Metrics:
    def __init__(self, samples):
        self.samples = samples

    def __call__(self, name, **labels):
        key = (name, frozenset(labels.items()))
        assert key in self.samples, f"no series {name}{labels}"
        return self.samples[key]

    def labels(self, name, label):
        return {dict(k).get(label) for n, k in self.samples if n == name}

    def total(self, name):
        """The sum over every series of name (all label values)."""
        found = [v for (n, _), v in self.samples.items() if n == name]
        assert found, f"no series {name}"
        return sum(found)

    def active(self):
        """{cmd: open sessions}."""
        return {cmd: self("socks5d_sessions_active", cmd=cmd)
                for cmd in self.labels("socks5d_sessions_active", "cmd")}


def scrape(port, host=LOOPBACK4):
    status, headers, body = curl(f"http://{format_hostport(host, port)}/metrics")
    assert status == 200, body
    assert headers["content-type"] == CONTENT_TYPE
    assert int(headers["content-length"]) == len(body)
    assert headers["connection"] == "close"
    return Metrics(parse_exposition(body.decode("utf-8")))


def raw_exchange(port, data, timeout=5.0):
    """Send data, then read until the daemon closes; returns what came back."""
    with socket.create_connection((LOOPBACK4, port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        else:
            raise AssertionError("the daemon did not close the connection")
        return b"".join(chunks)


def status_of(response):
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", response)
    assert m, f"not an HTTP response: {response[:80]!r}"
    return int(m.group(1))


def start_with_metrics(start_daemon, host=LOOPBACK4, **overrides):
    port = free_port((host,))
    d = start_daemon(metrics={"listen": format_hostport(host, port)}, **overrides)
    wait_until(lambda: is_listening(host, port), 5.0, what="the metrics listener")
    return d, port


def listening_sockets(pid):
    """How many TCP sockets in LISTEN state the process holds."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    count = 0
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(path) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:
                    count += 1
    return count


# -- tests ----------------------------------------------------------------

def test_metrics_off_by_default(start_daemon):
    plain = start_daemon()
    assert listening_sockets(plain.proc.pid) == 1
    assert "metrics" not in plain.log()
    on, port = start_with_metrics(start_daemon)
    assert listening_sockets(on.proc.pid) == 2
    on.wait_log(rf"metrics on http://127\.0\.0\.1:{port}/metrics")


@pytest.mark.deadline(40)
def test_counters_follow_traffic(start_daemon, users_file, make_target):
    echo = make_target()
    d, port = start_with_metrics(
        start_daemon, server={"max_clients": 77},
        auth={"method": "password", "users_file": str(users_file)})
    user, password = "alice", USERS["alice"]
    before = scrape(port)
    for name, value in before.samples.items():
        if name[0].endswith("_total") or name[0].endswith(("_count", "_bucket")):
            assert value == 0, f"{name} starts at {value}"

    # 1. CONNECT by address, 1000 bytes each way; a scrape meanwhile
    # sees the session open and its bytes already, the end adds none.
    with open_tunnel(d.address, *echo.address, user=user, password=password) as c:
        assert_echo(c, os.urandom(1000))
        during = scrape(port)
        assert during.active() == {"none": 0, "connect": 1, "bind": 0,
                                   "udp": 0, "resolve": 0, "resolve_ptr": 0,
                                   "unknown": 0}
        assert during("socks5d_relayed_bytes_total", direction="up") == 1000
        assert during("socks5d_relayed_bytes_total", direction="down") == 1000
    d.wait_session(reply=0, up=1000, down=1000)
    # 2. CONNECT refused.
    holder, closed = closed_port()
    with holder, Socks5Client(d.address) as c:
        assert c.connect(LOOPBACK4, closed, user, password).rep == REP_REFUSED
    d.wait_session(reply=REP_REFUSED, close="rejected")
    # 3. A failed login.
    with Socks5Client(d.address) as c:
        assert c.greet((METHOD_PASSWORD,)) == METHOD_PASSWORD
        assert c.authenticate(user, "not the password")[1] != 0
    d.wait_session(close="auth-failed")
    # 4. CONNECT by name (one lookup), 500 bytes each way.
    with open_tunnel(d.address, "v4.test", echo.address[1], user=user,
                     password=password) as c:
        assert_echo(c, os.urandom(500))
    d.wait_session(dest=f"v4.test:{echo.address[1]}", up=500, down=500)
    # 5. A name that does not resolve.
    with Socks5Client(d.address) as c:
        assert c.connect("nx.test", 80, user, password).rep == REP_HOST_UNREACH
    d.wait_session(reply=REP_HOST_UNREACH)
    # 6. No acceptable method.
    with Socks5Client(d.address) as c:
        assert c.greet((METHOD_NONE,)) == METHOD_REJECT
    d.wait_session(close="no-method")

    m = scrape(port)
    assert m.total("socks5d_sessions_active") == 0
    assert m("socks5d_sessions_total", cmd="connect") == 4
    assert m("socks5d_sessions_total", cmd="none") == 2
    assert m("socks5d_sessions_total", cmd="bind") == 0
    assert m("socks5d_sessions_total", cmd="udp") == 0
    failures = {r: m("socks5d_handshake_failures_total", reason=r)
                for r in m.labels("socks5d_handshake_failures_total", "reason")}
    assert {r: v for r, v in failures.items() if v} == \
        {"rejected": 2, "auth-failed": 1, "no-method": 1}
    for reason in ("handshake-timeout", "client-eof", "bad-version"):
        assert failures[reason] == 0
    assert m("socks5d_auth_successes_total") == 4
    assert m("socks5d_auth_failures_total") == 1
    replies = {int(code): m("socks5d_replies_total", code=code)
               for code in m.labels("socks5d_replies_total", "code")}
    assert replies == {0: 2, 1: 0, 2: 0, 3: 0, 4: 1, 5: 1, 6: 0, 7: 0, 8: 0}
    assert m("socks5d_relayed_bytes_total", direction="up") == 1500
    assert m("socks5d_relayed_bytes_total", direction="down") == 1500
    assert m("socks5d_dns_lookups_total") == 2
    assert m("socks5d_dns_failures_total") == 1
    hist = "socks5d_dns_lookup_duration_seconds"
    assert m(hist + "_count") == 2
    assert m(hist + "_bucket", le="+Inf") == 2
    bounds = sorted(float(le) for le in m.labels(hist + "_bucket", "le"))
    assert bounds[0] <= 0.001 and bounds[-2] >= 5 and bounds[-1] == float("inf")
    counts = [m(hist + "_bucket", le=le) for le in sorted(
        m.labels(hist + "_bucket", "le"), key=float)]
    assert counts == sorted(counts), "buckets must be cumulative"
    assert m(hist + "_bucket", le="5") == 2
    assert 0 < m(hist + "_sum") < 5
    assert m("socks5d_udp_datagrams_total", direction="up") == 0
    assert m.labels("socks5d_udp_dropped_total", "reason") >= {
        "stranger", "frag", "rsv", "trunc", "queue", "dns", "send", "oversize"}
    assert m("socks5d_max_clients") == 77
    assert 1 <= m("socks5d_pipe_pool_idle") <= 64
    assert m("socks5d_pipe_pool_in_use") == 0
    assert m("socks5d_pipe_pool_small_total") == 0
    fds = len(os.listdir(f"/proc/{d.proc.pid}/fd"))
    # The scrape's own connection is open while it is counted.
    assert fds <= m("socks5d_open_fds") <= fds + 2
    version = run_binary(["-V"]).stdout.split()[1]
    assert m("socks5d_build_info", version=version) == 1


NO_SESSIONS = {"none": 0, "connect": 0, "bind": 0, "udp": 0, "resolve": 0,
               "resolve_ptr": 0, "unknown": 0}


def wait_active(port, want, what):
    want = dict(NO_SESSIONS, **want)
    try:
        wait_until(lambda: scrape(port).active() == want, 5, what=what)
    except TimeoutError:
        raise AssertionError(f"{what}: want {want}, have {scrape(port).active()}") from None


def test_active_sessions_by_command(start_daemon, echo_target):
    """socks5d_sessions_active{cmd}: a connection that has not sent its
    request yet counts as "none", each command from its request on (BIND
    while it waits for its peer and while it relays), and each goes back
    to 0 when its session ends."""
    d, port = start_with_metrics(start_daemon)
    assert scrape(port).active() == NO_SESSIONS
    opened = []
    try:
        greeting = Socks5Client(d.address)
        opened.append(greeting)
        tunnel = open_tunnel(d.address, *echo_target.address)
        opened.append(tunnel)
        binder = Socks5Client(d.address)
        opened.append(binder)
        assert binder.greet() == METHOD_NONE
        first = binder.request(LOOPBACK4, 0, CMD_BIND)
        assert first.rep == REP_SUCCESS
        assoc = Association(d.address)
        opened.append(assoc)
        assert assoc.request().rep == REP_SUCCESS
        wait_active(port, {"none": 1, "connect": 1, "bind": 1, "udp": 1},
                    "one session of each kind")
        # The peer arrives: the BIND session relays, still a bind.
        with socket.create_connection(first.bound, timeout=5) as peer:
            assert binder.read_reply().rep == REP_SUCCESS
            peer.sendall(b"to the client")
            assert binder.recv_exact(13) == b"to the client"
            assert scrape(port).active()["bind"] == 1
        binder.close()
        wait_active(port, {"none": 1, "connect": 1, "udp": 1}, "the BIND gone")
        # The greeting goes on to a request: it moves to its command.
        assert greeting.connect(*echo_target.address).rep == REP_SUCCESS
        wait_active(port, {"connect": 2, "udp": 1}, "the greeting now a CONNECT")
    finally:
        for item in opened:
            item.close()
    wait_active(port, {}, "every session gone")
    assert scrape(port)("socks5d_sessions_total", cmd="bind") == 1


@pytest.mark.deadline(60)
def test_pipe_gauges_and_bytes_of_a_stalled_download(start_daemon, make_target):
    """A download the client does not read stalls in the splice relay: the
    scrape shows its pipe in use, grown to a large one, and the bytes
    delivered so far; once read, the pipe goes back (a large one is kept)
    and the byte counter ends at exactly the download's size."""
    size = 32 * 1024 * 1024
    target = make_target(source(size))
    d, port = start_with_metrics(start_daemon, server={"relay": "splice"})
    before = scrape(port)
    assert before("socks5d_pipe_pool_in_use") == 0
    assert before("socks5d_pipe_pool_large") == 0
    with open_tunnel(d.address, *target.address) as client:
        def stalled():
            m = scrape(port)
            return (m("socks5d_pipe_pool_in_use") == 1
                    and m("socks5d_pipe_pool_large") == 1 and m)
        m = wait_until(stalled, 10, what="a large pipe in use")
        down = m("socks5d_relayed_bytes_total", direction="down")
        assert 0 < down < size, down
        assert recv_until_eof(client.sock, hasher=hashlib.sha256()) == size
    d.wait_session(down=size)
    m = scrape(port)
    assert m("socks5d_relayed_bytes_total", direction="down") == size
    assert m("socks5d_relayed_bytes_total", direction="up") == 0
    assert m("socks5d_pipe_pool_in_use") == 0
    assert m("socks5d_pipe_pool_large") == 1
    assert m("socks5d_pipe_pool_idle") >= 1       # the large one at least
    assert m("socks5d_pipe_pool_small_total") == 0


def test_http_answers(start_daemon):
    d, port = start_with_metrics(start_daemon)
    base = f"http://127.0.0.1:{port}"
    for path in ("/", "/metricsx", "/metrics/", "/other"):
        status, headers, body = curl(base + path)
        assert status == 404, path
        assert int(headers["content-length"]) == len(body)
    status, headers, _ = curl(base + "/metrics", "-X", "POST", "-d", "x" * 3000)
    assert status == 405
    assert headers["allow"] == "GET, HEAD"
    status, headers, body = curl(base + "/metrics", "-I")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 1000
    status, _, body = curl(base + "/metrics?name[]=x")
    assert status == 200 and b"socks5d_build_info" in body
    # HTTP/1.0 without Host, bare LF line ends.
    response = raw_exchange(port, b"GET /metrics HTTP/1.0\n\n")
    assert status_of(response) == 200
    parse_exposition(response.partition(b"\r\n\r\n")[2].decode())


def test_bad_requests_are_answered_and_closed(start_daemon, echo_target):
    d, port = start_with_metrics(start_daemon)
    for junk in (b"BLAH\x00\r\n\r\n", b"GET /metrics HTTP/1.1\r\n\r\n",
                 b"GET /metrics HTTP/1.1\rHost: x\r\n\r\n",
                 b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + os.urandom(64),
                 b"GET /metrics HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n"):
        assert status_of(raw_exchange(port, junk)) == 400, junk
    huge = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 6000
    assert status_of(raw_exchange(port, huge)) == 431
    # Gone before a whole request: nothing to answer, nothing left behind.
    with socket.create_connection((LOOPBACK4, port), timeout=5) as s:
        s.sendall(b"GET /met")
    scrape(port)
    with open_tunnel(d.address, *echo_target.address) as c:
        assert_echo(c)


@pytest.mark.deadline(30)
def test_slow_request_is_closed(start_daemon):
    d, port = start_with_metrics(start_daemon)
    slow = socket.create_connection((LOOPBACK4, port), timeout=5)
    silent = socket.create_connection((LOOPBACK4, port), timeout=5)
    started = time.monotonic()
    slow.sendall(b"GET /metrics HT")
    # Meanwhile the endpoint serves others.
    scrape(port)
    slow.sendall(b"TP/1.1\r\nHost")
    assert peer_closed(slow, timeout=REQUEST_DEADLINE + 3)
    assert peer_closed(silent, timeout=1)
    elapsed = time.monotonic() - started
    assert REQUEST_DEADLINE - 1 <= elapsed <= REQUEST_DEADLINE + 3, elapsed
    slow.close()
    silent.close()
    assert scrape(port).total("socks5d_sessions_active") == 0


def test_many_connections_are_capped(start_daemon, echo_target):
    d, port = start_with_metrics(start_daemon)
    socks = [socket.create_connection((LOOPBACK4, port), timeout=5) for _ in range(40)]
    try:
        # Beyond the cap (16) a connection is closed at accept.
        closed = set()
        deadline = time.monotonic() + 5
        while len(closed) < 24 and time.monotonic() < deadline:
            ready, _, _ = select.select([s for s in socks if s not in closed], [], [], 0.2)
            for s in ready:
                try:
                    data = s.recv(1)
                except ConnectionResetError:
                    data = b""
                assert data == b"", "a connection got bytes without a request"
                closed.add(s)
        assert len(closed) == 24
        held = [s for s in socks if s not in closed]
        # The held ones are real connections: each gets its answer.
        for s in held:
            s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        for s in held:
            head = s.recv(64)
            assert status_of(head) == 200
    finally:
        for s in socks:
            s.close()
    # The held ones close as the daemon reads their EOF; until then a new
    # connection may still be over the cap.
    wait_until(lambda: raw_exchange(port, b"GET / HTTP/1.0\r\n\r\n").startswith(
        b"HTTP/1.1 404 "), 5.0, what="the endpoint to serve again")
    assert scrape(port).total("socks5d_sessions_active") == 0
    with open_tunnel(d.address, *echo_target.address) as c:
        assert_echo(c)


def set_nofile(pid, limit):
    subprocess.run(["prlimit", f"--pid={pid}", f"--nofile={limit}:"], check=True)


def test_descriptor_exhaustion(start_daemon):
    d, port = start_with_metrics(start_daemon)
    pid = d.proc.pid
    limit = len(os.listdir(f"/proc/{pid}/fd")) + 1
    set_nofile(pid, limit)
    # Room for the connection but not for reading /proc/self/fd: the
    # descriptor gauge is left out rather than made up.
    m = scrape(port)
    assert ("socks5d_open_fds", frozenset()) not in m.samples
    # No room at all: accepting pauses, the client waits in the backlog.
    set_nofile(pid, limit - 1)
    s = socket.create_connection((LOOPBACK4, port), timeout=5)
    s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
    time.sleep(0.7)
    set_nofile(pid, limit + 10)
    with s:
        assert status_of(s.recv(64)) == 200
    assert scrape(port)("socks5d_open_fds") > 3


def test_ipv6_listener(start_daemon):
    d, port = start_with_metrics(start_daemon, host=LOOPBACK6)
    assert scrape(port, host=LOOPBACK6)("socks5d_build_info",
                                         version=run_binary(["-V"]).stdout.split()[1]) == 1


def rewrite_config(d, dns_server, metrics_listen):
    listen = ", ".join(format_hostport(h, p) for h, p in d.listen)
    sections = merge_config(base_config(listen, dns_server.address),
                            {"metrics": {"listen": metrics_listen}})
    d.config_path.write_text(render_config(sections))


def test_reload_moves_and_closes_the_endpoint(start_daemon, dns_server):
    d, old = start_with_metrics(start_daemon)
    # Unchanged address: the same socket goes on.
    rewrite_config(d, dns_server, f"127.0.0.1:{old}")
    d.send_signal(signal.SIGHUP)
    d.wait_log(r"reloaded: ")
    scrape(old)
    # Moved.
    new = free_port()
    rewrite_config(d, dns_server, f"127.0.0.1:{new}")
    d.send_signal(signal.SIGHUP)
    d.wait_log(r"reloaded: ", count=2)
    assert not is_listening(LOOPBACK4, old)
    scrape(new)
    # To a taken port: rejected, the old endpoint stays.
    with socket.socket() as squatter:
        squatter.bind((LOOPBACK4, 0))
        squatter.listen(1)
        rewrite_config(d, dns_server, f"127.0.0.1:{squatter.getsockname()[1]}")
        d.send_signal(signal.SIGHUP)
        d.wait_log(r"reload rejected: cannot open the new listeners")
    scrape(new)
    # Off.
    rewrite_config(d, dns_server, "")
    d.send_signal(signal.SIGHUP)
    d.wait_log(r"reloaded: ", count=3)
    assert not is_listening(LOOPBACK4, new)
    assert listening_sockets(d.proc.pid) == 1


def test_config_values(check_config):
    port = free_port()
    for value in ("localhost:9180", "127.0.0.1", "127.0.0.1:0", "[::1]",
                  "::1:9180", "127.0.0.1:9180, 127.0.0.1:9181"):
        result, path = check_config(f"[server]\nlisten = 127.0.0.1:{port}\n"
                                    f"[metrics]\nlisten = {value}\n")
        output = result.stdout + result.stderr
        assert result.returncode == 2, value
        assert re.search(re.escape(f"{path}:4: [metrics] listen: "), output), output
    for value in ("", "127.0.0.1:9180", "[::1]:9180", "0.0.0.0:9180"):
        result, _ = check_config(f"[server]\nlisten = 127.0.0.1:{port}\n"
                                 f"[metrics]\nlisten = {value}\n")
        assert result.returncode == 0 and "config ok" in result.stdout, value


def test_per_user_series_for_named_users_only(start_daemon, users_file, tmp_path,
                                              echo_target):
    """Users a rule or a quota names get sessions and bytes of their own,
    summed over workers; a quota shows its limit and each named user's
    use; a user nothing names gets no series (label cardinality stays
    what the config says)."""
    d, port = start_with_metrics(
        start_daemon, server={"workers": 2, "state_dir": str(tmp_path / "state")},
        auth={"method": "password", "users_file": str(users_file)},
        **{"rule alice": {"action": "allow", "user": "alice"},
           "rule rest": {"action": "allow"},
           "quota monthly": {"user": "alice", "bytes": "1G", "period": "month"}})
    for _ in range(4):
        with open_tunnel(d.address, *echo_target.address, user="alice",
                         password=USERS["alice"]) as t:
            t.sock.sendall(b"m" * 1000)
            assert recv_exact(t.sock, 1000) == b"m" * 1000
    with open_tunnel(d.address, *echo_target.address, user="bob",
                     password=USERS["bob"]) as t:
        assert_echo(t)
    wait_until(lambda: scrape(port)("socks5d_user_sessions_total", user="alice") == 4,
               5, what="alice's four sessions counted")
    m = scrape(port)
    assert m("socks5d_user_bytes_total", user="alice", direction="up") == 4000
    assert m("socks5d_user_bytes_total", user="alice", direction="down") == 4000
    assert m.labels("socks5d_user_sessions_total", "user") == {"alice"}
    assert m("socks5d_quota_limit_bytes", quota="monthly") == 1 << 30
    assert m("socks5d_quota_used_bytes", quota="monthly", user="alice") == 8000
