#!/usr/bin/python3
"""A bounded soak of socks5d: several worker processes drive CONNECT bulk
transfers, request/response exchanges, connection churn, BIND and UDP
ASSOCIATE through one daemon, checking every byte, while the driver sends
SIGHUP every few seconds (alternating two valid configs, so each reload
really applies) and samples the daemon's descriptors and PSS.

Usage: tests/soak/soak.py [--seconds N] [--binary PATH] [--report FILE]

Checks, each printed as "soak: PASS|FAIL name: detail" and written to the
JSON report:
  integrity   every worker kind ran, every relayed byte and datagram matched
              what was sent (SHA-256 for bulk, exact compare otherwise), no
              operation failed; UDP datagrams lost on the way: at most 1%
  reloads     every SIGHUP but possibly the last was applied ("reloaded"
              line), none rejected
  alive       the daemon never exited during the run
  fds-flat    median non-pipe descriptor count of the last window is within
              5% (at least 2 descriptors, one session's worth) of the first
              window's; pipe descriptors never exceed the relay's pool
              (2 x 64) plus two per worker
  pss-flat    median PSS of the last window is within 5% (at least 128 KiB:
              the daemon's own memory is a few hundred KiB, where 5% is a
              handful of pages) of the first window's. PSS means the
              process's own memory, without file-backed pages
              (harness/footprint.py), summed over worker processes
  quiescent   after the workers stop, non-pipe descriptors return exactly to
              the count before the first client, pipes to the pool bound
  exit        SIGTERM ends the daemon with status 0, no sanitizer report
Windows: window = D/6 clamped to 5..60 s, the first starting after a
warm-up of D/15 clamped to 2..30 s, the last ending when the workers stop
(for D = 30: 2-7 s and 25-30 s; for D = 600: 40-100 s and 540-600 s).
Samples are taken every 0.2 s. An ASan build (--binary build/asan/socks5d)
runs with a 1 MiB quarantine (harness.footprint.ASAN_ENV), else its PSS
would grow with every session until the default 256 MiB quarantine fills.
Exit status 0 when every check passed."""
import argparse
import hashlib
import json
import multiprocessing as mp
import os
import random
import signal
import socket
import socketserver
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from harness.daemon import daemon_env, sanitizer_reports  # noqa: E402
from harness.footprint import ASAN_ENV, POOL_PIPES, fd_split, pss_kib  # noqa: E402
from harness.net import LOOPBACK4, free_port, is_listening, recv_exact, wait_until  # noqa: E402
from harness.socks5 import (CMD_BIND, REP_SUCCESS, Socks5Client,  # noqa: E402
                            open_tunnel, request)
from harness.udp import Association  # noqa: E402

HUP_INTERVAL = 3.0
SAMPLE_INTERVAL = 0.2
WORKERS = ["bulk", "bulk", "reqresp", "churn", "bind", "udp"]
FLAT_FRACTION = 0.05
PSS_FLOOR_KIB = 128         # the 5% never asks for less than 32 pages
UDP_LOSS_FRACTION = 0.01
IO_TIMEOUT = 20.0


# -- targets ---------------------------------------------------------------------

class EchoHandler(socketserver.BaseRequestHandler):
    def handle(self):
        sock = self.request
        sock.settimeout(IO_TIMEOUT * 2)
        try:
            while True:
                data = sock.recv(262144)
                if not data:
                    break
                sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass


class EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def run_targets(tcp_port, udp_port, ready, stop):
    """The echo targets (TCP and UDP), in their own process."""
    tcp = EchoServer((LOOPBACK4, tcp_port), EchoHandler)
    threading.Thread(target=tcp.serve_forever, kwargs={"poll_interval": 0.2},
                     daemon=True).start()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    udp.bind((LOOPBACK4, udp_port))
    udp.settimeout(0.2)
    ready.set()
    while not stop.is_set():
        try:
            data, peer = udp.recvfrom(65535)
        except socket.timeout:
            continue
        udp.sendto(data, peer)
    tcp.shutdown()
    tcp.server_close()
    udp.close()


# -- workers ---------------------------------------------------------------------

class Stats:
    def __init__(self, kind):
        self.kind = kind
        self.ops = 0
        self.bytes = 0
        self.errors = 0
        self.lost = 0           # UDP datagrams that never came back
        self.datagrams = 0
        self.messages = []

    def fail(self, text):
        self.errors += 1
        if len(self.messages) < 5:
            self.messages.append(text)


def op_bulk(proxy, targets, rng, stats):
    """Up to 4 MB up and the same back, both directions at once, SHA-256."""
    size = rng.randrange(256 * 1024, 4 * 1024 * 1024)
    sent = hashlib.sha256()
    with open_tunnel(proxy, *targets["tcp"], timeout=IO_TIMEOUT) as client:
        def send():
            remaining = size
            block_rng = random.Random(rng.random())
            while remaining:
                block = block_rng.randbytes(min(remaining, 131072))
                sent.update(block)
                client.sock.sendall(block)
                remaining -= len(block)
            client.shutdown_write()
        sender = threading.Thread(target=send)
        sender.start()
        received = hashlib.sha256()
        count = 0
        while True:
            data = client.sock.recv(262144)
            if not data:
                break
            received.update(data)
            count += len(data)
        sender.join(IO_TIMEOUT)
    if count != size or received.digest() != sent.digest():
        stats.fail(f"bulk: {count} of {size} bytes back, checksum "
                   f"{'ok' if received.digest() == sent.digest() else 'differs'}")
    stats.bytes += 2 * size


def op_reqresp(proxy, targets, rng, stats):
    """Fifty small request/response rounds on one tunnel."""
    with open_tunnel(proxy, *targets["tcp"], timeout=IO_TIMEOUT) as client:
        for _ in range(50):
            message = rng.randbytes(rng.randrange(1, 2000))
            client.send(message)
            answer = client.recv_exact(len(message))
            if answer != message:
                stats.fail("reqresp: answer differs")
                return
            stats.bytes += 2 * len(message)


def op_churn(proxy, targets, rng, stats):
    """A short-lived tunnel: one small exchange, then close."""
    message = rng.randbytes(32)
    with open_tunnel(proxy, *targets["tcp"], timeout=IO_TIMEOUT) as client:
        client.send(message)
        if client.recv_exact(len(message)) != message:
            stats.fail("churn: answer differs")
    stats.bytes += 2 * len(message)


def op_bind(proxy, targets, rng, stats):
    """BIND, a peer connecting back through the listener, data both ways."""
    with Socks5Client(proxy, timeout=IO_TIMEOUT) as client:
        if client.greet() != 0:
            stats.fail("bind: method")
            return
        client.send(request(LOOPBACK4, 0, CMD_BIND))
        first = client.read_reply()
        if first.rep != REP_SUCCESS:
            stats.fail(f"bind: first reply {first.rep:#x}")
            return
        with socket.create_connection(first.bound, timeout=IO_TIMEOUT) as peer:
            second = client.read_reply()
            if second.rep != REP_SUCCESS or second.bound != peer.getsockname()[:2]:
                stats.fail(f"bind: second reply {second.rep:#x} {second.bound}")
                return
            up = rng.randbytes(rng.randrange(1, 65536))
            down = rng.randbytes(rng.randrange(1, 65536))
            client.send(up)
            if recv_exact(peer, len(up)) != up:
                stats.fail("bind: client to peer differs")
            peer.sendall(down)
            if client.recv_exact(len(down)) != down:
                stats.fail("bind: peer to client differs")
            stats.bytes += len(up) + len(down)


def op_udp(proxy, targets, rng, stats):
    """UDP ASSOCIATE, then thirty datagrams echoed one at a time."""
    with Association(proxy, timeout=IO_TIMEOUT) as assoc:
        if assoc.request().rep != REP_SUCCESS:
            stats.fail(f"udp: reply {assoc.reply.rep:#x}")
            return
        host, port = targets["udp"]
        for seq in range(30):
            payload = seq.to_bytes(4, "big") + rng.randbytes(rng.randrange(1, 1400))
            assoc.send(host, port, payload)
            stats.datagrams += 1
            deadline = time.monotonic() + 2.0
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    stats.lost += 1
                    break
                try:
                    src_host, src_port, echoed = assoc.recv(timeout=left)
                except socket.timeout:
                    stats.lost += 1
                    break
                if echoed[:4] != payload[:4]:
                    continue        # a late echo of an earlier datagram
                if (src_host, src_port) != (host, port) or echoed != payload:
                    stats.fail("udp: datagram differs")
                stats.bytes += 2 * len(payload)
                break


OPERATIONS = {"bulk": op_bulk, "reqresp": op_reqresp, "churn": op_churn,
              "bind": op_bind, "udp": op_udp}


def run_worker(kind, index, proxy, targets, end, results):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stats = Stats(kind)
    rng = random.Random(f"{kind}-{index}-{os.getpid()}")
    operation = OPERATIONS[kind]
    while time.time() < end:
        try:
            operation(proxy, targets, rng, stats)
        except Exception as exc:      # every failure is counted and shown
            stats.fail(f"{kind}: {type(exc).__name__}: {exc}")
            time.sleep(0.05)
        stats.ops += 1
    results.put(vars(stats))


# -- driver ----------------------------------------------------------------------

def render_config(port, dns_port, extra_rules):
    text = f"""[server]
listen = {LOOPBACK4}:{port}
log_level = info
max_clients = 2000
workers = 1
; one process: the checks sample its own PSS and descriptors

[auth]
method = none

[timeouts]
handshake = 10
connect = 5
idle = 60
bind = 10
udp_idle = 30
shutdown = 5

[dns]
servers = {LOOPBACK4}:{dns_port}
timeout = 2

[bind]
enabled = yes

[udp]
enabled = yes
"""
    if extra_rules:
        # Unrelated to the traffic, but a reload that swaps it really
        # rebuilds the rule set.
        text += """
[rule soak-unused]
action = deny
dest = 192.0.2.0/24

[rule soak-everything-else]
action = allow
"""
    return text


def clamp(value, low, high):
    return max(low, min(high, value))


def window_medians(samples, start, end, field):
    values = [s[field] for s in samples if start <= s["t"] <= end]
    return statistics.median(values) if values else None, len(values)


class Checks:
    def __init__(self):
        self.items = []

    def add(self, name, passed, detail):
        self.items.append({"name": name, "passed": bool(passed), "detail": detail})
        print(f"soak: {'PASS' if passed else 'FAIL'} {name}: {detail}", flush=True)

    @property
    def ok(self):
        return all(item["passed"] for item in self.items)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float,
                        default=float(os.environ.get("SOAK_SECONDS", 600)))
    parser.add_argument("--binary", default=os.environ.get("SOCKS5D_BIN", "build/socks5d"))
    parser.add_argument("--report", default=None, help="write the checks as JSON here")
    args = parser.parse_args()
    duration = args.seconds
    binary = Path(args.binary)
    if not binary.is_absolute():
        binary = ROOT / binary
    if not binary.is_file():
        print(f"soak: {binary} not found (run make)")
        return 2

    window = clamp(duration / 6, 5, 60)
    warm = clamp(duration / 15, 2, 30)
    workdir = Path(tempfile.mkdtemp(prefix="socks5d-soak-"))
    config_path = workdir / "soak.conf"
    log_path = workdir / "soak.log"
    port = free_port()
    dns_port = free_port((LOOPBACK4,), (socket.SOCK_DGRAM,))
    config_path.write_text(render_config(port, dns_port, False))
    proxy = (LOOPBACK4, port)

    ctx = mp.get_context("fork")
    stop_targets = ctx.Event()
    ready = ctx.Event()
    tcp_port = free_port()
    udp_port = free_port((LOOPBACK4,), (socket.SOCK_DGRAM,))
    targets = {"tcp": (LOOPBACK4, tcp_port), "udp": (LOOPBACK4, udp_port)}
    target_proc = ctx.Process(target=run_targets,
                              args=(tcp_port, udp_port, ready, stop_targets))
    target_proc.start()
    workers = []
    samples = []
    daemon = None
    log_file = open(log_path, "wb")
    checks = Checks()
    print(f"soak: {duration:.0f}s against {binary.relative_to(ROOT) if binary.is_relative_to(ROOT) else binary}"
          f", workers {', '.join(WORKERS)}, SIGHUP every {HUP_INTERVAL:.0f}s,"
          f" windows {window:.0f}s after {warm:.0f}s warm-up; log {log_path}", flush=True)
    try:
        if not ready.wait(10):
            raise RuntimeError("echo targets did not start")
        daemon = subprocess.Popen([str(binary), "-c", str(config_path)],
                                  stdin=subprocess.DEVNULL, stdout=log_file,
                                  stderr=subprocess.STDOUT, env=dict(daemon_env(), **ASAN_ENV),
                                  cwd=str(workdir))
        wait_until(lambda: daemon.poll() is not None or is_listening(*proxy), 15,
                   what="socks5d to listen")
        if daemon.poll() is not None:
            raise RuntimeError(f"socks5d exited at start: {log_path.read_text()}")
        time.sleep(0.3)
        idle_fds, idle_pipes = fd_split(daemon.pid)

        results = ctx.Queue()
        started = time.time()
        end = started + duration
        for index, kind in enumerate(WORKERS):
            proc = ctx.Process(target=run_worker,
                               args=(kind, index, proxy, targets, end, results))
            proc.start()
            workers.append(proc)

        hups = 0
        died_at = None
        next_hup = time.monotonic() + HUP_INTERVAL
        while time.time() < end:
            if daemon.poll() is not None:
                died_at = time.time() - started
                break
            try:
                fds, pipes = fd_split(daemon.pid)
                samples.append({"t": time.time() - started, "fds": fds,
                                "pipes": pipes, "pss": pss_kib(daemon.pid)})
            except FileNotFoundError:
                pass
            if time.monotonic() >= next_hup:
                hups += 1
                config_path.write_text(render_config(port, dns_port, hups % 2 == 1))
                daemon.send_signal(signal.SIGHUP)
                next_hup += HUP_INTERVAL
            time.sleep(SAMPLE_INTERVAL)

        stats = []
        for _ in workers:
            try:
                stats.append(results.get(timeout=IO_TIMEOUT * 3))
            except Exception:
                break
        for proc in workers:
            proc.join(5)

        # integrity
        kinds = {kind: {"ops": 0, "errors": 0, "bytes": 0} for kind in OPERATIONS}
        messages, lost, datagrams = [], 0, 0
        for s in stats:
            for key in ("ops", "errors", "bytes"):
                kinds[s["kind"]][key] += s[key]
            messages += s["messages"]
            lost += s["lost"]
            datagrams += s["datagrams"]
        summary = ", ".join(f"{k} {v['ops']} ops/{v['bytes'] >> 20} MiB/{v['errors']} errors"
                            for k, v in kinds.items())
        errors = sum(v["errors"] for v in kinds.values())
        idle_kinds = [k for k, v in kinds.items() if v["ops"] == 0]
        loss_ok = lost <= max(2, UDP_LOSS_FRACTION * datagrams)
        checks.add("integrity",
                   len(stats) == len(WORKERS) and errors == 0 and not idle_kinds and loss_ok,
                   f"{summary}; udp lost {lost} of {datagrams}; "
                   f"{len(stats)} of {len(WORKERS)} workers reported"
                   + (f"; kinds that never ran: {idle_kinds}" if idle_kinds else "")
                   + (f"; first errors: {messages}" if messages else ""))

        # alive
        checks.add("alive", died_at is None,
                   "running throughout" if died_at is None
                   else f"exited with {daemon.returncode} after {died_at:.1f}s")

        # reloads: the last SIGHUP may still be in progress, so wait a moment.
        def reloads():
            return log_path.read_text(errors="replace").count("info: reloaded:")
        if died_at is None:
            try:
                wait_until(lambda: reloads() >= hups, 5, what="last reload")
            except TimeoutError:
                pass
        log_text = log_path.read_text(errors="replace")
        applied = reloads()
        rejected = log_text.count("reload rejected")
        checks.add("reloads", hups >= 1 and applied >= hups - 1 and rejected == 0,
                   f"{hups} SIGHUPs, {applied} applied, {rejected} rejected")

        # flatness
        run_end = samples[-1]["t"] if samples else 0
        first = (warm, warm + window)
        last = (run_end - window, run_end)
        fd_first, n_first = window_medians(samples, *first, "fds")
        fd_last, n_last = window_medians(samples, *last, "fds")
        pss_first, _ = window_medians(samples, *first, "pss")
        pss_last, _ = window_medians(samples, *last, "pss")
        max_pipes = max((s["pipes"] for s in samples), default=0)
        pipe_limit = max(idle_pipes, 2 * POOL_PIPES) + 2 * len(WORKERS)
        if fd_first is None or fd_last is None or run_end < warm + 2 * window:
            checks.add("fds-flat", False, f"too few samples ({len(samples)}) for the windows")
            checks.add("pss-flat", False, "too few samples")
        else:
            fd_allowed = fd_first + max(2, FLAT_FRACTION * fd_first)
            checks.add("fds-flat", fd_last <= fd_allowed and max_pipes <= pipe_limit,
                       f"median non-pipe fds {fd_first:g} in {first[0]:.0f}-{first[1]:.0f}s,"
                       f" {fd_last:g} in {last[0]:.0f}-{last[1]:.0f}s (at most"
                       f" {fd_allowed:g}); pipe fds at most {max_pipes} (limit {pipe_limit});"
                       f" {n_first}/{n_last} samples")
            pss_allowed = pss_first + max(PSS_FLOOR_KIB, FLAT_FRACTION * pss_first)
            checks.add("pss-flat", pss_last <= pss_allowed,
                       f"median PSS {pss_first:g} KiB first window, {pss_last:g} KiB last"
                       f" (at most {pss_allowed:.0f})")

        # quiescent
        if died_at is None:
            def settled():
                fds, pipes = fd_split(daemon.pid)
                return fds == idle_fds and pipes <= max(idle_pipes, 2 * POOL_PIPES)
            try:
                wait_until(settled, 15, interval=0.1, what="descriptors to settle")
                back = True
            except TimeoutError:
                back = False
            fds, pipes = fd_split(daemon.pid)
            checks.add("quiescent", back,
                       f"idle {idle_fds} fds + {idle_pipes} pipe fds before,"
                       f" {fds} + {pipes} after the workers stopped")

            daemon.send_signal(signal.SIGTERM)
            try:
                code = daemon.wait(15)
            except subprocess.TimeoutExpired:
                code = None
            log_text = log_path.read_text(errors="replace")
            reports = sanitizer_reports(log_text)
            checks.add("exit", code == 0 and not reports,
                       f"SIGTERM exit status {code}"
                       + (f", sanitizer report {reports}" if reports else ", no sanitizer report"))
        else:
            checks.add("quiescent", False, "daemon died")
            checks.add("exit", False, "daemon died")
    except Exception as exc:
        checks.add("driver", False, f"{type(exc).__name__}: {exc}")
    finally:
        for proc in workers:
            if proc.is_alive():
                proc.terminate()
            proc.join(5)
        stop_targets.set()
        target_proc.join(5)
        if target_proc.is_alive():
            target_proc.terminate()
            target_proc.join(5)
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
            daemon.wait(5)
        log_file.close()

    if args.report:
        Path(args.report).write_text(json.dumps({"seconds": duration,
                                                 "checks": checks.items,
                                                 "samples": samples}, indent=1))
    passed = sum(item["passed"] for item in checks.items)
    print(f"soak: {passed} of {len(checks.items)} checks passed"
          + ("" if checks.ok else f"; log kept in {log_path}"), flush=True)
    if checks.ok:
        for path in workdir.iterdir():
            path.unlink()
        workdir.rmdir()
    return 0 if checks.ok else 1


if __name__ == "__main__":
    sys.exit(main())
