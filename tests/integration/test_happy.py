"""Happy Eyeballs (RFC 8305) for CONNECT: a destination with IPv6 and IPv4
addresses is raced, the preferred family first and the other after
[outbound] connection_attempt_delay, and the first to connect is relayed.

The daemon runs in a network namespace of the test's own, where a veth
link carries a "broken" network: a permanent neighbour entry with a MAC
nobody has sends every packet for BROKEN6 (and BROKEN4) into the void, so
a connect() there hangs without an answer, as over an IPv6 path that
drops everything."""
import contextlib
import socket
import subprocess
import time

import pytest

from harness import netns
from harness.net import LOOPBACK4, LOOPBACK6, TIME_SCALE, format_hostport, free_port
from harness.socks5 import (REP_TTL_EXPIRED, Socks5Client, METHOD_NONE,
                            assert_echo, open_tunnel)
from harness.targets import TargetServer, behave_echo

BROKEN6 = "fd00:5d::2"
BROKEN4 = "10.213.0.2"
NOBODY_MAC = "02:00:00:00:5d:99"

BROKEN_NET = [
    "ip link add he0 type veth peer name he1",
    "ip link set he1 up",
    "ip link set he0 up",
    "ip -6 addr add fd00:5d::1/64 dev he0 nodad",
    f"ip -6 neigh replace {BROKEN6} lladdr {NOBODY_MAC} dev he0 nud permanent",
    "ip addr add 10.213.0.1/24 dev he0",
    f"ip neigh replace {BROKEN4} lladdr {NOBODY_MAC} dev he0 nud permanent",
]


@pytest.fixture
def namespaced(start_daemon, tmp_path):
    """start(hosts_text, **sections) -> daemon, in a namespace with the
    broken network, joined by the test until it ends; hosts_text becomes
    [dns] hosts_file."""
    with contextlib.ExitStack() as stack:
        def start(hosts_text, **sections):
            hosts = tmp_path / "hosts"
            hosts.write_text(hosts_text)
            dns = dict(sections.pop("dns", {}), hosts_file=str(hosts))
            return netns.start_daemon_in(start_daemon, stack, setup=BROKEN_NET,
                                         dns=dns, **sections)
        yield start


def syn_sent():
    """The namespace's TCP sockets still connecting, as ss lists them."""
    return subprocess.run(["ss", "-H", "-t", "state", "syn-sent"], capture_output=True,
                          text=True, check=True).stdout.strip()


def timed_echo(d, host, port):
    """CONNECT through d, one echo; the seconds until the reply."""
    started = time.monotonic()
    with open_tunnel(d.address, host, port) as client:
        elapsed = time.monotonic() - started
        assert_echo(client)
    return elapsed


def assert_silent(host, port=80):
    """The broken network really drops: a direct connect gets no answer."""
    probe = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    probe.settimeout(0.5)
    with probe, pytest.raises(TimeoutError):
        probe.connect((host, port))


def test_broken_ipv6_falls_back_to_ipv4_within_a_second(namespaced):
    """IPv6 first (the hosts file's order), its SYNs lost: IPv4 starts
    after the 250 ms delay and connects, long before the 10 s connect
    timeout. The access log names the IPv4 address."""
    d = namespaced(f"{BROKEN6} dual.test\n127.0.0.1 dual.test\n")
    assert_silent(BROKEN6)
    target = TargetServer(behave_echo, (LOOPBACK4,))
    try:
        elapsed = timed_echo(d, "dual.test", target.port)
        assert 0.2 <= elapsed < 1.0 * TIME_SCALE, elapsed
        fields = d.wait_session(dest=f"dual.test:{target.port}")
        assert fields["addr"] == format_hostport(LOOPBACK4, target.port), fields
        assert fields["reply"] == "0", fields
        # The lost attempt's socket was closed with the race: nothing is
        # left connecting.
        assert syn_sent() == ""
    finally:
        target.close()


def test_attempt_delay_is_the_key(namespaced):
    """connection_attempt_delay sets how long IPv6 gets alone."""
    d = namespaced(f"{BROKEN6} dual.test\n127.0.0.1 dual.test\n",
                   outbound={"connection_attempt_delay": 700})
    target = TargetServer(behave_echo, (LOOPBACK4,))
    try:
        elapsed = timed_echo(d, "dual.test", target.port)
        assert 0.65 <= elapsed < 1.5 * TIME_SCALE, elapsed
    finally:
        target.close()


def test_family_ipv4_starts_with_ipv4(namespaced):
    """[dns] family = ipv4 keeps its meaning: IPv4 is tried first, so the
    broken IPv6 address costs nothing."""
    d = namespaced(f"{BROKEN6} dual.test\n127.0.0.1 dual.test\n",
                   dns={"family": "ipv4"})
    target = TargetServer(behave_echo, (LOOPBACK4,))
    try:
        elapsed = timed_echo(d, "dual.test", target.port)
        assert elapsed < 0.2 * TIME_SCALE, elapsed
        fields = d.wait_session(dest=f"dual.test:{target.port}")
        assert fields["addr"] == format_hostport(LOOPBACK4, target.port), fields
    finally:
        target.close()


def test_working_ipv6_wins(namespaced):
    """Both families work: the preferred one (IPv6, listed first) connects
    at once and IPv4 is never tried."""
    d = namespaced("::1 both.test\n127.0.0.1 both.test\n")
    port = free_port((LOOPBACK4, LOOPBACK6))
    target = TargetServer(behave_echo, (LOOPBACK6, LOOPBACK4), port=port)
    try:
        elapsed = timed_echo(d, "both.test", port)
        assert elapsed < 0.2 * TIME_SCALE, elapsed
        fields = d.wait_session(dest=f"both.test:{port}")
        assert fields["addr"] == format_hostport(LOOPBACK6, port), fields
        time.sleep(0.4)
        assert [r.peer[0] for r in target.records] == [LOOPBACK6]
    finally:
        target.close()


def test_every_family_silent_times_out_with_06(namespaced):
    """Both addresses silent: each attempt has its own connect timeout
    (IPv4's starts a delay later), then 0x06, and the daemon serves on."""
    d = namespaced(f"{BROKEN6} dead.test\n{BROKEN4} dead.test\n",
                   timeouts={"connect": 1})
    started = time.monotonic()
    client = Socks5Client(d.address)
    with client:
        assert client.greet() == METHOD_NONE
        reply = client.request("dead.test", 80)
        elapsed = time.monotonic() - started
        assert reply.rep == REP_TTL_EXPIRED, reply.rep
        assert client.closed_by_peer()
    assert 1.2 <= elapsed < 3 * TIME_SCALE, elapsed
    assert syn_sent() == ""
    target = TargetServer(behave_echo, (LOOPBACK4,))
    try:
        timed_echo(d, LOOPBACK4, target.port)
    finally:
        target.close()
