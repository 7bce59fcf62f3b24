"""A network namespace of a test's own, for what the host's loopback cannot
give: a second IPv6 address. There lo also carries OTHER6 (::2), so IPv6
tests can have a stranger, a source address or an advertised address that
is not ::1, and nothing outside the namespace is touched.

The daemon is started inside it (start_command() goes in front of its
argv) and the test process joins it with joined(pid): every socket the
test makes from then on lives there, as do /proc/net reads (is_listening)."""
import ctypes
import functools
import os
import subprocess
import time
from contextlib import contextmanager

import pytest

OTHER6 = "::2"

CLONE_NEWNET = 0x40000000

# Run by sh inside the new namespace, then exec the daemon's argv ("$@").
# nodad: the address is usable at once, not after duplicate detection.
_SETUP = f'ip link set lo up && ip -6 addr add {OTHER6}/128 dev lo nodad && exec "$@"'

_libc = ctypes.CDLL(None, use_errno=True)


def start_command():
    """The wrapper argv: unshare execs sh, which execs the daemon, so the
    daemon keeps the pid the harness started (and counts descriptors of)."""
    return ["unshare", "--net", "sh", "-c", _SETUP, "sh"]


@functools.lru_cache(maxsize=None)
def unavailable():
    """Why no namespace can be made here (not root, no ip, ...), or ""."""
    try:
        result = subprocess.run(["unshare", "--net", "sh", "-c", _SETUP, "sh", "true"],
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare: {exc}"
    if result.returncode != 0:
        return f"unshare --net: {result.stderr.strip() or result.returncode}"
    return ""


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def _netns_inode(pid):
    return os.stat(f"/proc/{pid}/ns/net").st_ino


@contextmanager
def joined(pid, timeout=5.0):
    """Move the calling thread into the network namespace of process pid
    (once it has left ours) until the block ends. Sockets keep the
    namespace they were made in, so those made inside stay usable after."""
    deadline = time.monotonic() + timeout
    home_inode = _netns_inode("thread-self")
    # The child is still in our namespace until unshare(1) has run.
    while _netns_inode(pid) == home_inode:
        if time.monotonic() > deadline:
            raise TimeoutError(f"process {pid} never left our network namespace")
        time.sleep(0.005)
    with open("/proc/thread-self/ns/net") as home, open(f"/proc/{pid}/ns/net") as there:
        _setns(there.fileno())
        try:
            yield
        finally:
            _setns(home.fileno())


def _wait_set_up(timeout=10.0):
    """Until _SETUP has run in the joined namespace (its last step adds
    OTHER6): commands run before it would meet lo still down."""
    deadline = time.monotonic() + timeout
    while OTHER6 not in subprocess.run(["ip", "-6", "addr", "show", "dev", "lo"],
                                       capture_output=True, text=True).stdout:
        if time.monotonic() > deadline:
            raise TimeoutError("the namespace's loopback was never set up")
        time.sleep(0.01)


def start_daemon_in(start_daemon, stack, setup=(), **kwargs):
    """start_daemon (the conftest factory) for a daemon in a namespace of
    its own, joined until stack (an ExitStack) closes; setup is a list of
    commands (`ip ...`) run in the namespace first. Skips the test where
    no namespace can be made."""
    why = unavailable()
    if why:
        pytest.skip(f"no network namespace: {why}")
    d = start_daemon(wait=False, command=start_command(), **kwargs)
    stack.enter_context(joined(d.proc.pid))
    if setup:
        _wait_set_up()
    for command in setup:
        subprocess.run(command.split(), check=True, capture_output=True)
    d.wait_listening()
    return d
