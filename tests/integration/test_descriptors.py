"""Descriptor exhaustion: with its descriptor limit lowered, the daemon keeps
serving established sessions, pauses accepting without spinning the CPU,
warns once per episode, and serves new clients once descriptors free up."""
import os
import socket
import subprocess
import time

import pytest

from harness.net import wait_until
from harness.socks5 import assert_echo, open_tunnel


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_seconds(pid):
    """User plus system CPU time of the process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])   # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def set_nofile(pid, limit):
    """Lower or restore the soft limit only: raising a hard limit again may
    not be permitted here."""
    subprocess.run(["prlimit", f"--pid={pid}", f"--nofile={limit}:"], check=True)


def test_exhaustion_pauses_without_spinning_and_recovers(start_daemon, echo_target):
    d = start_daemon()
    pid = d.proc.pid
    established = open_tunnel(d.address, *echo_target.address)
    assert_echo(established)

    # Room for exactly two more descriptors: one more idle client fits,
    # then accept hits EMFILE.
    set_nofile(pid, open_fds(pid) + 2)
    idle = []
    for _ in range(6):
        s = socket.create_connection(d.address, timeout=3)
        idle.append(s)
    d.wait_log(r"out of file descriptors", timeout=5)

    # Paused, not spinning: the daemon burns well under a fifth of a core
    # while clients wait in the backlog.
    before = cpu_seconds(pid)
    time.sleep(1.5)
    assert cpu_seconds(pid) - before < 0.3

    # The established session still relays.
    assert_echo(established, b"still here\n")
    warnings = [l for l in d.log().splitlines() if "out of file descriptors" in l]
    assert len(warnings) == 1, warnings

    # Free descriptors: backlog clients are accepted, and a new CONNECT works.
    for s in idle:
        s.close()
    established.close()
    set_nofile(pid, 1024)
    d.wait_log(r"file descriptors available again", timeout=5)
    fresh = open_tunnel(d.address, *echo_target.address)
    assert_echo(fresh)
    fresh.close()
    wait_until(lambda: d.log().count("session client=") >= 8, 5,
               what="every session closed and logged")


def fds_by_kind(pid):
    """Counts of the daemon's descriptors by kind: socket, pipe, other."""
    kinds = {"socket": 0, "pipe": 0, "other": 0}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        kind = target.split(":", 1)[0]
        kinds[kind if kind in kinds else "other"] += 1
    return kinds


@pytest.mark.parametrize("relay", ["splice", "copy"])
def test_idle_session_holds_only_its_two_sockets(start_daemon, echo_target, relay):
    """After traffic, an idle relayed session keeps its client and target
    sockets and nothing else: splice pipes go back to the shared pool when a
    direction drains, so the pool does not grow with the session count."""
    d = start_daemon(server={"relay": relay})
    pid = d.proc.pid
    listeners = fds_by_kind(pid)["socket"]
    with open_tunnel(d.address, *echo_target.address) as warmup:
        assert_echo(warmup)
    wait_until(lambda: d.log().count("session client=") == 1, 5,
               what="warm-up session closed")
    # The access-log line is written just before the sockets close.
    wait_until(lambda: fds_by_kind(pid)["socket"] == listeners, 5,
               what="warm-up session's sockets closed")
    before = fds_by_kind(pid)
    sessions = 24
    tunnels = []
    try:
        for _ in range(sessions):
            tunnel = open_tunnel(d.address, *echo_target.address)
            tunnels.append(tunnel)
            assert_echo(tunnel, b"x" * 4096)
        after = fds_by_kind(pid)
        assert after["socket"] - before["socket"] == 2 * sessions, (before, after)
        assert after["other"] == before["other"], (before, after)
        # One or two pipes may be added to the pool by overlapping traffic;
        # a pipe held per session would add 2 * sessions descriptors.
        assert after["pipe"] - before["pipe"] <= 4, (before, after)
    finally:
        for tunnel in tunnels:
            tunnel.close()
