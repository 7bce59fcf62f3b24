"""A daemon's footprint, read from /proc: open descriptors and proportional
set size (PSS), summed over the process and its children (workers), with a
baseline snapshot and a check that polls until the process is back to it
after a scenario.

Descriptors other than pipes must come back exactly. Pipes are compared
against the splice relay's pool: when no bytes are in flight every pipe is
an idle pooled one, and the pool holds at most POOL_PIPES (src/server.c
PIPE_POOL_SIZE), so more than that means a pipe escaped the pool. PSS gets
a tolerance, because a heap that served many sessions at once keeps some of
its high-water pages: the check is meant to catch memory that grows with
what was done (a leak, an unbounded buffer), not an allocator keeping a few
pages. Warm the daemon up before taking the baseline so the allocator's
steady state is in it.

"PSS" here is the process's own memory: PSS without file-backed pages
(Pss - Pss_File from smaps_rollup), since the shared-library part changes
with unrelated processes.

Under AddressSanitizer freed blocks sit in a quarantine (256 MiB by
default), so PSS would grow with every session ever made; ASAN_ENV caps the
quarantine for daemons whose PSS is measured, which keeps the measure
meaningful in both builds while use-after-free within the cap is still
caught."""
import os
import time
from dataclasses import dataclass

from .daemon import daemon_env

# Extra environment for daemons whose PSS is compared: a small ASan
# quarantine (ignored by the normal build).
ASAN_ENV = {"ASAN_OPTIONS": daemon_env()["ASAN_OPTIONS"]
            + ":quarantine_size_mb=1:thread_local_quarantine_size_kb=64"}

# PSS may exceed the baseline by this fraction or this many KiB, whichever
# is larger.
PSS_TOLERANCE = 0.10
PSS_SLACK_KIB = 1024

# src/server.c PIPE_POOL_SIZE: idle pipes the relay keeps.
POOL_PIPES = 64

SETTLE_TIMEOUT = 15.0


def process_tree(pid):
    """pid and its descendants (worker processes count with their parent)."""
    pids = [pid]
    for current in pids:
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{current}/task/{task}/children") as fh:
                    pids.extend(int(child) for child in fh.read().split())
            except (FileNotFoundError, ProcessLookupError):
                pass
    return pids


def fd_split(pid):
    """(descriptors that are not pipes, pipe descriptors) over the process
    tree."""
    pipes = others = 0
    for member in process_tree(pid):
        try:
            fds = os.listdir(f"/proc/{member}/fd")
        except FileNotFoundError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{member}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("pipe:"):
                pipes += 1
            else:
                others += 1
    return others, pipes


def fd_kinds(pid):
    """Sorted 'kind' names of the open descriptors (socket, pipe, anon_inode
    ..., or the path), for messages that show what was left open."""
    kinds = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        kinds.append(target.split(":", 1)[0] if ":" in target else target)
    return sorted(kinds)


def pss_kib(pid):
    """Proportional set size in KiB of the process tree."""
    total = 0
    for member in process_tree(pid):
        try:
            total += _pss_one(member)
        except FileNotFoundError:
            pass
    return total


def _pss_one(pid):
    """One process's PSS without its file-backed part (Pss - Pss_File, i.e.
    anonymous and shared-memory pages): the file part is library code whose
    share moves whenever an unrelated process maps the same libraries."""
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as fh:
        for line in fh:
            name, _, rest = line.partition(":")
            if name in ("Pss", "Pss_File"):
                fields[name] = int(rest.split()[0])
    return fields.get("Pss", 0) - fields.get("Pss_File", 0)


@dataclass
class Snapshot:
    fds: int            # descriptors that are not pipes
    pipes: int          # pipe descriptors (two per pipe)
    pss: int            # KiB

    def __str__(self):
        return f"{self.fds} fds + {self.pipes} pipe fds, {self.pss} KiB PSS"


def snapshot(pid):
    others, pipes = fd_split(pid)
    return Snapshot(others, pipes, pss_kib(pid))


def pss_limit(base):
    return base.pss + max(int(base.pss * PSS_TOLERANCE), PSS_SLACK_KIB)


def baseline(pid, settle=0.3):
    """The footprint once it has stopped moving: two readings settle seconds
    apart with the same descriptor count, the lower PSS kept."""
    first = snapshot(pid)
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        time.sleep(settle)
        second = snapshot(pid)
        if second.fds == first.fds or time.monotonic() > deadline:
            return Snapshot(second.fds, second.pipes, min(first.pss, second.pss))
        first = second


def assert_back_to(pid, base, timeout=SETTLE_TIMEOUT, what="scenario"):
    """Poll until descriptors equal the baseline and PSS is within the
    tolerance; fail with both readings if that does not happen in time."""
    deadline = time.monotonic() + timeout
    limit = pss_limit(base)
    pipe_limit = max(base.pipes, 2 * POOL_PIPES)
    while True:
        now = snapshot(pid)
        if now.fds == base.fds and now.pipes <= pipe_limit and now.pss <= limit:
            return now
        if time.monotonic() > deadline:
            raise AssertionError(
                f"after {what}: footprint {now} did not return to baseline "
                f"{base} (PSS limit {limit} KiB, pipe fds at most {pipe_limit}) within {timeout}s; "
                f"descriptors now: {fd_kinds(pid)}")
        time.sleep(0.1)


class PssSampler:
    """Samples PSS and descriptor count of a process, for peak checks while
    a scenario runs (call sample() from the test's own loop)."""

    def __init__(self, pid):
        self.pid = pid
        self.peak = snapshot(pid)

    def sample(self):
        now = snapshot(self.pid)
        self.peak = Snapshot(max(self.peak.fds, now.fds), max(self.peak.pipes, now.pipes),
                             max(self.peak.pss, now.pss))
        return now


# Half-done handshakes opened at once by warm_up(): at least as many as any
# scenario measured against the baseline holds open at a time.
WARM_BURST = 250


def warm_up(daemon, target, burst=WARM_BURST):
    """Bring the allocator to its steady state before a baseline: a few bulk
    tunnels through the relay (which also fill the pipe pool) and a burst of
    concurrent half-done handshakes, all closed again."""
    import socket
    from .net import wait_until
    from .socks5 import assert_echo, open_tunnel
    pid = daemon.proc.pid
    before = fd_split(pid)[0]
    for size in (4096, 300_000):
        with open_tunnel(daemon.address, *target.address) as client:
            assert_echo(client, os.urandom(size))
    held = []
    try:
        for _ in range(burst):
            sock = socket.create_connection(daemon.address, timeout=10)
            held.append(sock)
            try:
                sock.send(b"\x05\x01")
            except OSError:         # a daemon with a low max_clients closes it
                pass
    finally:
        for sock in held:
            sock.close()
    wait_until(lambda: fd_split(pid)[0] == before, SETTLE_TIMEOUT,
               what="warm-up connections to close")
