"""Fault injection and hostile clients, each checked against the daemon's
footprint: targets that never accept, never read, or close during the
reply; a DNS server that is silent or answers garbage; clients that stay
silent, trickle, flood greetings; and the hostile scenarios of other files
(garbage, abandoned handshakes, resets, max_clients, descriptor
exhaustion) run again here under the same check.

Every daemon here is started through the `guarded` fixture: it is warmed up
(harness.footprint.warm_up) and its descriptors and PSS recorded; after the
scenario it must still serve a normal CONNECT and return to that baseline
(harness.footprint.assert_back_to: descriptors exactly, pipes within the
relay's pool, PSS within a tolerance)."""
import os
import select
import socket
import threading
import time

import pytest

import test_aborts
import test_descriptors
import test_handshake
import test_http
import test_proxy_protocol
import test_sessions
import test_socks4
from harness import socks5
from harness.dns import GARBAGE_MODES
from harness.footprint import (ASAN_ENV, PssSampler, assert_back_to, baseline,
                               fd_split, pss_kib, pss_limit, snapshot, warm_up)
from harness.net import LOOPBACK4, peer_closed, wait_until
from harness.socks5 import (METHOD_NONE, REP_ATYP_UNSUPPORTED, REP_HOST_UNREACH,
                            REP_SUCCESS, REP_TTL_EXPIRED, Socks5Client,
                            assert_echo, open_tunnel)
from harness.targets import (FullBacklog, behave_close_at_once, behave_echo,
                             behave_reset_at_once, never_read, send_and_close)


class Guard:
    """The daemons a test started through `guarded`, with their baselines."""

    def __init__(self, start_daemon, target):
        self._start_daemon = start_daemon
        self.target = target            # an echo target for warm-up and checks
        self.checked = []

    def start(self, env=None, **overrides):
        """start_daemon(), then warm-up and baseline. Same signature, so the
        scenarios of other files can be handed this instead."""
        full_env = dict(ASAN_ENV)
        full_env.update(env or {})
        d = self._start_daemon(env=full_env, **overrides)
        warm_up(d, self.target)
        d.footprint_baseline = baseline(d.proc.pid)
        self.checked.append(d)
        return d

    def check_all(self, what="scenario"):
        """check() every daemon still running, once."""
        daemons, self.checked = self.checked, []
        for d in daemons:
            if d.is_running() and d.returncode is None:
                self.check(d, what)

    def check(self, d, what="scenario"):
        """The footprint is back to the baseline (every session of the
        scenario gone), then a normal CONNECT works and leaves nothing."""
        assert_back_to(d.proc.pid, d.footprint_baseline, what=what)
        with open_tunnel(d.address, *self.target.address) as client:
            assert_echo(client)
        assert_back_to(d.proc.pid, d.footprint_baseline, what=f"{what} and a CONNECT")


@pytest.fixture
def guard(start_daemon, make_target):
    g = Guard(start_daemon, make_target(behave_echo))
    yield g
    g.check_all()


@pytest.fixture
def guarded(guard):
    """Factory like start_daemon: each daemon is warmed up, its footprint
    recorded, and after the test it must serve a CONNECT and be back at it."""
    return guard.start


def request_reply(d, host, port, atyp=None):
    client = Socks5Client(d.address)
    assert client.greet() == METHOD_NONE
    return client, client.request(host, port, atyp=atyp)


# -- targets -----------------------------------------------------------------

def test_target_never_accepts(guarded):
    """A full SYN backlog: every CONNECT (eight at once) ends with 0x06 once
    [timeouts] connect expires, not a hang."""
    d = guarded(timeouts={"connect": 1})
    with FullBacklog() as hole:
        started = time.monotonic()
        clients = []
        try:
            for _ in range(8):
                client = Socks5Client(d.address)
                client.send(socks5.greeting() + socks5.request(*hole.address))
                clients.append(client)
            for client in clients:
                assert client.read_method_choice() == METHOD_NONE
                reply = client.read_reply()
                reply.assert_ip_form()
                assert reply.rep == REP_TTL_EXPIRED, f"REP {reply.rep:#x}"
                assert client.closed_by_peer()
        finally:
            for client in clients:
                client.close()
        elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 6, f"connect timeout took {elapsed:.2f}s"


PUSH_LIMIT = 200 * 1024 * 1024
STALL_SECONDS = 1.5


@pytest.mark.parametrize("relay", ["splice", "copy"])
def test_target_never_reads(guarded, make_target, relay):
    """The client tries to push 200 MB to a target that never reads: it must
    be blocked after what socket buffers and one pipe (or copy buffer) hold,
    while the daemon's PSS stays flat; when the target gives up, the session
    ends at once."""
    release = threading.Event()
    target = make_target(never_read(release))
    d = guarded(server={"relay": relay})
    pid = d.proc.pid
    base = snapshot(pid)
    sampler = PssSampler(pid)
    client = open_tunnel(d.address, *target.address)
    try:
        sock = client.sock
        sock.setblocking(False)
        block = os.urandom(256 * 1024)
        sent = 0
        last_progress = time.monotonic()
        while sent < PUSH_LIMIT and time.monotonic() - last_progress < STALL_SECONDS:
            try:
                sent += sock.send(block)
                last_progress = time.monotonic()
            except BlockingIOError:
                select.select([], [sock], [], 0.1)
            sampler.sample()
        for _ in range(5):
            sampler.sample()
            time.sleep(0.05)
        assert sent < 64 * 1024 * 1024, \
            f"client pushed {sent} bytes into a target that never reads"
        assert sent > 0
        assert sampler.peak.pss <= pss_limit(base), \
            f"PSS peaked at {sampler.peak.pss} KiB, baseline {base.pss} KiB"
        assert sampler.peak.fds <= base.fds + 2, (base, sampler.peak)
        record = target.wait_connection()
        assert record.received_len == 0
    finally:
        client.close()
        release.set()
    fields = d.wait_session(timeout=10, cmd="connect", dest=f"{LOOPBACK4}:{target.port}")
    assert fields["close"] in ("reset", "error", "eof"), fields


@pytest.mark.parametrize("behaviour", ["fin", "rst", "data-then-fin"])
def test_target_closes_during_reply(guarded, make_target, behaviour):
    """The target is gone by the time the reply is written: the client gets a
    complete reply, whatever the target sent, and then the end."""
    data = b"banner from a target in a hurry\n"
    behave = {"fin": behave_close_at_once, "rst": behave_reset_at_once,
              "data-then-fin": send_and_close(data)}[behaviour]
    target = make_target(behave)
    d = guarded()
    for _ in range(10):
        with Socks5Client(d.address) as client:
            client.send(socks5.greeting() + socks5.request(*target.address) + b"early")
            assert client.read_method_choice() == METHOD_NONE
            reply = client.read_reply()
            reply.assert_ip_form()
            if reply.rep == REP_SUCCESS and behaviour == "data-then-fin":
                assert client.recv_exact(len(data)) == data
            assert client.closed_by_peer(timeout=5), "session outlived its target"
    wait_until(lambda: len([f for f in d.session_lines()
                            if f.get("dest") == f"{LOOPBACK4}:{target.port}"]) == 10,
               10, what="ten session lines")


# -- DNS -----------------------------------------------------------------------

def test_dns_silent_replies_04_within_timeout(guarded, dns_server):
    """Lookups that never get an answer end with 0x04 (the resolver's
    timeout is mapped like a name that does not resolve), for twenty
    clients at once, within [dns] timeout plus slack."""
    dns_server.mode = "drop"
    d = guarded(dns={"timeout": 1})
    started = time.monotonic()
    clients = []
    try:
        for i in range(20):
            client = Socks5Client(d.address)
            client.send(socks5.greeting() + socks5.request(f"silent{i}.test", 80))
            clients.append(client)
        for client in clients:
            assert client.read_method_choice() == METHOD_NONE
            reply = client.read_reply()
            reply.assert_ip_form()
            assert reply.rep == REP_HOST_UNREACH, f"REP {reply.rep:#x}"
    finally:
        for client in clients:
            client.close()
    elapsed = time.monotonic() - started
    assert elapsed < 5, f"DNS timeout of 1s took {elapsed:.2f}s to answer"
    dns_server.mode = "answer"


def test_dns_garbage_answers(guarded, dns_server, echo_target):
    """Every kind of malformed answer ends in a clean error reply within the
    DNS timeout, and a good answer works right after each."""
    d = guarded(dns={"timeout": 1})
    wrong = []
    for mode in GARBAGE_MODES:
        dns_server.mode = mode
        started = time.monotonic()
        client, reply = request_reply(d, "v4.test", echo_target.port)
        with client:
            reply.assert_ip_form()
            if reply.rep == REP_SUCCESS:
                wrong.append(f"{mode}: success")
            elif not client.closed_by_peer():
                wrong.append(f"{mode}: left open")
        elapsed = time.monotonic() - started
        if elapsed > 5:
            wrong.append(f"{mode}: {elapsed:.1f}s")
        dns_server.mode = "answer"
        with open_tunnel(d.address, "v4.test", echo_target.port) as client:
            assert_echo(client)
    assert not wrong, wrong
    assert d.is_running()


# -- hostile clients -----------------------------------------------------------

def test_slowloris_freed_by_handshake_timeout(guarded, echo_target):
    """Two hundred connections that send nothing hold no slot past the
    handshake timeout, and do not delay a real client meanwhile."""
    d = guarded(timeouts={"handshake": 2})
    silent = [socket.create_connection(d.address, timeout=10) for _ in range(200)]
    try:
        started = time.monotonic()
        with open_tunnel(d.address, *echo_target.address) as client:
            assert_echo(client)
        assert time.monotonic() - started < 2, "real client waited behind silent ones"
        for sock in silent:
            assert peer_closed(sock, timeout=max(0.1, started + 8 - time.monotonic())), \
                "silent connection outlived the handshake timeout"
        assert time.monotonic() - started < 8
    finally:
        for sock in silent:
            sock.close()
    wait_until(lambda: d.log().count("close=handshake-timeout") >= 200, 5,
               what="200 handshake-timeout session lines")


def test_one_byte_per_second(guarded, echo_target):
    """Ten clients sending a valid handshake one byte per second are closed
    at the handshake deadline, never served."""
    d = guarded(timeouts={"handshake": 2})
    message = socks5.greeting() + socks5.request(*echo_target.address)
    clients = [Socks5Client(d.address) for _ in range(10)]
    open_clients = set(range(10))
    started = time.monotonic()
    received = {i: b"" for i in open_clients}
    try:
        for position in range(len(message)):
            for i in list(open_clients):
                try:
                    clients[i].send(message[position:position + 1])
                except (BrokenPipeError, ConnectionResetError):
                    open_clients.discard(i)
            deadline = time.monotonic() + 1.0
            while open_clients and time.monotonic() < deadline:
                readable, _, _ = select.select([clients[i].sock for i in open_clients],
                                               [], [], max(0, deadline - time.monotonic()))
                for i in list(open_clients):
                    if clients[i].sock in readable:
                        try:
                            data = clients[i].sock.recv(64)
                        except ConnectionResetError:
                            data = b""
                        if data:
                            received[i] += data
                        else:
                            open_clients.discard(i)
            if not open_clients:
                break
        elapsed = time.monotonic() - started
        assert not open_clients, f"{len(open_clients)} trickling clients still open"
        assert 1.5 <= elapsed < 6, f"closed after {elapsed:.1f}s, handshake timeout 2s"
        for i, data in received.items():
            # At most the method choice: never a CONNECT reply.
            assert data in (b"", b"\x05\x00"), data.hex()
    finally:
        for client in clients:
            client.close()


def test_greeting_flood(guarded, echo_target):
    """A hundred sockets each send two thousand greetings back to back: the
    first is answered, the second read as a request with ATYP 5 (0x08), and
    then the rest are ignored; then five hundred connect-greet-close in a
    row. The daemon serves throughout."""
    d = guarded()
    flood = socks5.greeting() * 2000
    clients = []
    try:
        for _ in range(100):
            client = Socks5Client(d.address)
            try:
                client.send(flood)
            except (BrokenPipeError, ConnectionResetError):
                pass
            clients.append(client)
        with open_tunnel(d.address, *echo_target.address) as tunnel:
            assert_echo(tunnel)
        for client in clients:
            assert client.read_method_choice() == METHOD_NONE
            reply = client.read_reply()
            reply.assert_ip_form()
            assert reply.rep == REP_ATYP_UNSUPPORTED, f"REP {reply.rep:#x}"
            assert client.closed_by_peer(timeout=5)
    finally:
        for client in clients:
            client.close()
    for _ in range(500):
        with Socks5Client(d.address) as client:
            client.send(socks5.greeting())
            assert client.read_method_choice() == METHOD_NONE
    wait_until(lambda: d.log().count("session client=") >= 600 + 3, 10,
               what="every flood session logged")


# -- scenarios of other files, under the footprint check -----------------------

def _backlog_port(run):
    with FullBacklog() as hole:
        run(hole.port)


EXISTING = {
    "1mb-garbage": lambda g, f: test_handshake.test_one_megabyte_of_garbage(
        g(), f.echo),
    "abandon-handshakes-halfway": lambda g, f: test_handshake.test_reset_in_the_middle_of_handshake(
        g(), f.echo),
    "many-half-handshakes": lambda g, f: test_handshake.test_many_clients_in_handshake_at_once(
        g(), f.echo),
    "random-garbage": lambda g, f: [test_handshake.test_random_garbage_then_still_serves(
        d, f.echo, seed) for d in [g()] for seed in range(4)],
    "target-resets-mid-stream": lambda g, f: test_aborts.test_target_resets_mid_stream(
        g(), f.make_target, f.echo),
    "tunnels-reset-at-once": lambda g, f: test_aborts.test_many_tunnels_reset_at_once(
        g(), f.echo),
    "client-gone-during-dns": lambda g, f: test_aborts.test_client_gone_during_dns_lookup(
        g, f.dns, f.echo, True),
    "client-gone-during-connect": lambda g, f: _backlog_port(
        lambda port: test_aborts.test_client_gone_during_connect(g, port, f.echo, True)),
    "max-clients": lambda g, f: test_sessions.test_max_clients(g, f.echo),
    "descriptor-exhaustion": lambda g, f: test_descriptors.test_exhaustion_pauses_without_spinning_and_recovers(
        g, f.echo),
    # The other front-ends' bad input, one daemon for each front-end.
    "http-bad-heads": lambda g, f: [test_http.test_bad_heads_get_an_http_answer(
        d, raw, status) for d in [g()] for raw, status in test_http.BAD_HEADS],
    "socks4-bad-requests": lambda g, f: [test_socks4.test_malformed_requests_get_reply_91(
        lambda **kw: d, raw, close) for d in [g(**test_socks4.SOCKS4_ON)]
        for raw, close in test_socks4.MALFORMED],
    "proxy-headers-refused": lambda g, f: test_proxy_protocol.test_missing_and_untrusted_headers_are_refused(
        g, f.echo),
}


class Fixtures:
    def __init__(self, echo, make_target, dns):
        self.echo = echo
        self.make_target = make_target
        self.dns = dns


@pytest.mark.parametrize("scenario", sorted(EXISTING))
def test_existing_scenario_leaves_no_trace(guard, echo_target, make_target, dns_server,
                                           scenario):
    EXISTING[scenario](guard.start, Fixtures(echo_target, make_target, dns_server))
    assert guard.checked, "scenario started no guarded daemon"
    guard.check_all(what=scenario)

# -- memory after bursts of hostile clients ------------------------------------
#
# A daemon that served a few thousand silent, half-done, over-the-limit and
# garbage-flooding connections at once returns to within 2 MiB of its PSS
# before the burst within 5 s of the last one closing, every time, not only
# after the first (the heap pages those sessions used must be given back,
# not kept).

BURST_CLIENTS = 3000
BURST_HANDSHAKE = 2             # seconds: silent sessions end by this
BACK_WITHIN = 5.0               # seconds after the last one closed
BACK_TO_KIB = 2048              # of the PSS before the burst
# AddressSanitizer's allocator is not the one the release build ships: after
# its purge it still keeps part of the handshake buffers' size class (6 KiB
# chunks) that a burst first filled, 1.3 to 2.5 MiB after the first 3,000
# silent clients and a few hundred KiB after later bursts; glibc's, after
# malloc_trim, ends below the PSS before the burst. The ASan build is held
# to twice the release build's margin, still far below the 23 MiB it keeps
# after the first burst when nothing is given back.
BACK_TO_KIB_ASAN = 2 * BACK_TO_KIB


def back_to_kib(pid):
    """How far above its PSS before a burst the daemon pid may stay."""
    with open(f"/proc/{pid}/maps") as fh:
        sanitized = "libasan" in fh.read()
    return BACK_TO_KIB_ASAN if sanitized else BACK_TO_KIB


def _open_many(address, count, first=b""):
    """count connections (those the daemon refuses at once included), each
    sending first; the sockets, to be closed by the caller."""
    held = []
    for _ in range(count):
        sock = socket.create_connection(address, timeout=10)
        held.append(sock)
        if first:
            try:
                sock.send(first)
            except OSError:         # refused over max_clients
                pass
    return held


def _close_all(held):
    for sock in held:
        sock.close()


def burst_silent(d):
    """BURST_CLIENTS connections that never send a byte, held until the
    handshake timeout ends them."""
    held = _open_many(d.address, BURST_CLIENTS)
    time.sleep(BURST_HANDSHAKE + 0.5)
    _close_all(held)


def burst_half_handshakes(d):
    """Greetings answered, then a request cut off after its first bytes;
    the clients go away before the timeout."""
    request = socks5.request("203.0.113.9", 80)
    held = _open_many(d.address, BURST_CLIENTS, socks5.greeting() + request[:5])
    time.sleep(0.5)
    _close_all(held)


def burst_over_the_limit(d):
    """Past max_clients at once: the extra ones are refused at accept."""
    held = _open_many(d.address, BURST_CLIENTS + 500, socks5.greeting())
    time.sleep(0.5)
    _close_all(held)


def burst_garbage_flood(d):
    """Four threads, each with BURST_CLIENTS / 4 connections sending
    kilobytes of random bytes (HTTP-looking and not) until answered or
    closed."""
    def flood(seed):
        junk = [b"GET /" + os.urandom(900), os.urandom(4000),
                b"\x05\x01\x00\x05\x01\x00\x03" + os.urandom(3000)]
        held = []
        try:
            for i in range(BURST_CLIENTS // 4):
                sock = socket.create_connection(d.address, timeout=10)
                held.append(sock)
                try:
                    sock.send(junk[(seed + i) % len(junk)])
                except OSError:
                    pass
            time.sleep(0.5)
        finally:
            _close_all(held)
    threads = [threading.Thread(target=flood, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_memory_returns_after_hostile_bursts(start_daemon, echo_target):
    """Five bursts of 3,000 (silent, half handshakes, past max_clients,
    garbage from four threads, silent again), each measured from the PSS
    before it; then the daemon still relays. Without the heap given back
    the first burst left about 15 MiB behind. Not under the guard: its
    baseline is taken once, and its PSS tolerance is a fraction."""
    d = start_daemon(env=ASAN_ENV, server={"max_clients": BURST_CLIENTS},
                     timeouts={"handshake": BURST_HANDSHAKE})
    pid = d.proc.pid
    allowed = back_to_kib(pid)
    warm_up(d, echo_target)
    idle_fds = fd_split(pid)[0]
    for burst in (burst_silent, burst_half_handshakes, burst_over_the_limit,
                  burst_garbage_flood, burst_silent):
        before = baseline(pid).pss
        burst(d)
        wait_until(lambda: fd_split(pid)[0] == idle_fds, 10,
                   what=f"the {burst.__name__} sessions to close")
        closed = time.monotonic()
        readings = []
        while True:
            now = pss_kib(pid)
            readings.append(now)
            if now <= before + allowed:
                break
            assert time.monotonic() - closed < BACK_WITHIN, (
                f"after {burst.__name__}: PSS {now} KiB, {before} KiB before "
                f"the burst, still more than {allowed} KiB above it "
                f"{BACK_WITHIN}s after the last session closed "
                f"(readings {readings[:3]} ... {readings[-3:]})")
            time.sleep(0.1)
    with open_tunnel(d.address, *echo_target.address) as client:
        assert_echo(client)
