"""Egress pools: which source address each connection and datagram leaves
from ([outbound] egress and egress_select, a rule's egress), seen from the
target's side.

The daemon runs in a network namespace of the test's own where two pools
are routed to the host as an operator would route them, without putting a
single address on an interface: `ip route add local 10.77.0.0/24 dev lo`
and `ip -6 route add local fd00:e9::/64 dev lo`. A target on loopback then
sees the pool address a connection was bound to."""
import contextlib
import ipaddress
import signal

import pytest

from harness import netns
from harness.net import LOOPBACK4, LOOPBACK6
from harness.socks5 import CMD_UDP, METHOD_PASSWORD, Socks5Client, assert_echo
from harness.targets import TargetServer, behave_echo
from harness.udp import Association, UdpServer

from conftest import USERS

POOL4 = ipaddress.ip_network("10.77.0.0/24")
POOL6 = ipaddress.ip_network("fd00:e9::/64")

ROUTED_POOLS = [
    f"ip route add local {POOL4} dev lo",
    f"ip -6 route add local {POOL6} dev lo",
]


@pytest.fixture
def pooled(start_daemon):
    """start(**sections) -> daemon in a namespace with the pools routed;
    the test stays in the namespace until it ends."""
    with contextlib.ExitStack() as stack:
        def start(**sections):
            return netns.start_daemon_in(start_daemon, stack, setup=ROUTED_POOLS,
                                         **sections)
        yield start


@pytest.fixture
def targets():
    """Echo targets on 127.0.0.1 and ::1 inside the namespace (made once
    the test has joined it)."""
    made = []

    def make():
        t4 = TargetServer(behave_echo, (LOOPBACK4,))
        t6 = TargetServer(behave_echo, (LOOPBACK6,))
        made.extend((t4, t6))
        return t4, t6
    yield make
    for t in made:
        t.close()


def source_of(d, target, user=None, client_source=None):
    """One CONNECT through d to target, one echo; the source address the
    target saw, checked against the reply's BND.ADDR."""
    host = target.hosts[0]
    before = len(target.records)
    client = Socks5Client(d.address, source=client_source)
    with client:
        reply = client.connect(host, target.port, user, USERS.get(user))
        assert reply.rep == 0, reply.rep
        assert_echo(client)
    record = target.wait_connection(index=before)
    assert record.peer[0] == reply.bound[0], (record.peer, reply.bound)
    return ipaddress.ip_address(record.peer[0])


def test_user_mode_sticks_per_user_over_reloads_and_restarts(pooled, targets,
                                                             users_file):
    """egress_select = user (the default): every connection of one user
    leaves from one address of each family, the same after a reload and
    in a new daemon; other users get their own."""
    sections = dict(auth={"method": "password", "users_file": str(users_file)},
                    outbound={"egress": f"{POOL4}, {POOL6}"})
    d = pooled(**sections)
    t4, t6 = targets()
    seen = {}
    for user in USERS:
        v4 = {source_of(d, t4, user) for _ in range(4)}
        v6 = {source_of(d, t6, user) for _ in range(3)}
        assert len(v4) == 1 and len(v6) == 1, (user, v4, v6)
        (a4,), (a6,) = v4, v6
        assert a4 in POOL4 and a6 in POOL6, (a4, a6)
        seen[user] = (a4, a6)
    assert len({v for v, _ in seen.values()}) == len(USERS), seen
    d.send_signal(signal.SIGHUP)
    d.wait_log(r"reloaded: ")
    for user, (a4, a6) in seen.items():
        assert source_of(d, t4, user) == a4
        assert source_of(d, t6, user) == a6
    assert d.stop() == 0
    again = pooled(**sections)
    t4, t6 = targets()
    for user, (a4, a6) in seen.items():
        assert source_of(again, t4, user) == a4
        assert source_of(again, t6, user) == a6


def test_user_mode_without_logins_spreads_clients(pooled, targets):
    """Without a login the client's address is the key: twelve clients on
    twelve loopback addresses each keep one source, and they are spread."""
    d = pooled(outbound={"egress": str(POOL4), "egress_select": "user"})
    t4, _ = targets()
    chosen = {}
    for i in range(12):
        client_ip = f"127.0.0.{10 + i}"
        picks = {source_of(d, t4, client_source=client_ip) for _ in range(3)}
        assert len(picks) == 1, (client_ip, picks)
        chosen[client_ip] = picks.pop()
        assert chosen[client_ip] in POOL4
    # Twelve users in 254 addresses: all alike would be a broken hash.
    assert len(set(chosen.values())) >= 9, chosen


def test_session_mode_gives_a_fresh_address_each_time(pooled, targets):
    d = pooled(outbound={"egress": f"{POOL4}, {POOL6}", "egress_select": "session"})
    t4, t6 = targets()
    v4 = [source_of(d, t4) for _ in range(20)]
    v6 = [source_of(d, t6) for _ in range(20)]
    assert len(set(v4)) == 20 and all(a in POOL4 for a in v4), v4
    assert len(set(v6)) == 20 and all(a in POOL6 for a in v6), v6
    # Neither the network nor the broadcast address.
    assert not {POOL4.network_address, POOL4.broadcast_address} & set(v4)


def test_round_robin_and_random(pooled, targets):
    pool = ["10.77.0.5", "10.77.0.6", "10.77.0.7"]
    d = pooled(outbound={"egress": ", ".join(pool), "egress_select": "round-robin"})
    t4, _ = targets()
    order = [str(source_of(d, t4)) for _ in range(6)]
    start = pool.index(order[0])
    assert order == [pool[(start + i) % 3] for i in range(6)], order
    assert d.stop() == 0
    d = pooled(outbound={"egress": ", ".join(pool), "egress_select": "random"})
    t4, _ = targets()
    picks = [str(source_of(d, t4)) for _ in range(30)]
    assert set(picks) <= set(pool), picks
    # Thirty draws of three all alike: 3 * 3**-30.
    assert len(set(picks)) > 1, picks


def test_rule_egress_overrides_outbound(pooled, targets, users_file):
    """A rule's egress (and egress_select) wins for the sessions it
    admits; the others keep [outbound]'s pool."""
    d = pooled(auth={"method": "password", "users_file": str(users_file)},
               outbound={"egress": str(POOL4)},
               **{"rule bob": {"action": "allow", "user": "bob",
                               "egress": "10.77.0.200, 10.77.0.201",
                               "egress_select": "round-robin"},
                  "rule others": {"action": "allow"}})
    t4, _ = targets()
    bob = [str(source_of(d, t4, "bob")) for _ in range(4)]
    assert sorted(set(bob)) == ["10.77.0.200", "10.77.0.201"], bob
    alice = {source_of(d, t4, "alice") for _ in range(3)}
    assert len(alice) == 1 and alice.pop() in POOL4


def test_pool_without_the_family_leaves_it_to_the_kernel(pooled, targets):
    """An IPv6-only pool: IPv4 connections leave from the kernel's
    choice, as without a pool."""
    d = pooled(outbound={"egress": str(POOL6)})
    t4, t6 = targets()
    assert str(source_of(d, t4)) == LOOPBACK4
    assert source_of(d, t6) in POOL6


def test_udp_datagrams_leave_from_the_users_address(pooled, users_file):
    """A UDP association's datagrams leave from the same pool address as
    the user's TCP connections (user mode), every datagram alike."""
    d = pooled(auth={"method": "password", "users_file": str(users_file)},
               outbound={"egress": f"{POOL4}, {POOL6}"})
    tcp_target = TargetServer(behave_echo, (LOOPBACK4,))
    echo4, echo6 = UdpServer(LOOPBACK4), UdpServer(LOOPBACK6)
    try:
        tcp_source = source_of(d, tcp_target, "alice")
        assoc = Association(d.address)
        with assoc:
            assert assoc.client.greet((METHOD_PASSWORD,)) == METHOD_PASSWORD
            assert assoc.client.authenticate("alice", USERS["alice"])[1] == 0
            assoc.reply = assoc.client.request("0.0.0.0", 0, CMD_UDP)
            assert assoc.reply.rep == 0, assoc.reply.rep
            assoc.relay = assoc.reply.bound
            for i in range(5):
                assoc.send(LOOPBACK4, echo4.port, b"v4 %d" % i)
                assoc.recv()
                assoc.send(LOOPBACK6, echo6.port, b"v6 %d" % i)
                assoc.recv()
        peers4 = {ipaddress.ip_address(host) for host, _ in echo4.peers()}
        peers6 = {ipaddress.ip_address(host) for host, _ in echo6.peers()}
        assert peers4 == {tcp_source}, (peers4, tcp_source)
        assert len(peers6) == 1 and peers6.pop() in POOL6
    finally:
        tcp_target.close()
        echo4.close()
        echo6.close()


@pytest.mark.parametrize("section, key, value, why", [
    ("outbound", "egress", "10.77.0.300", '"10.77.0.300" is not an address or CIDR'),
    ("outbound", "egress", "10.77.0.1,,10.77.0.2", "empty item in the list"),
    ("outbound", "egress", "fd00::/129", '"fd00::/129" is not an address or CIDR'),
    ("outbound", "egress", "10.77.0.0/24, 224.0.0.0/24",
     '"224.0.0.0/24" holds addresses no connection can leave from'),
    ("rule r", "egress", "::/0", '"::/0" holds addresses no connection can leave from'),
    ("outbound", "egress_select", "sticky", ""),
    ("rule r", "egress", "pool.example", '"pool.example" is not an address or CIDR'),
    ("rule r", "egress_select", "sticky",
     '"sticky" is not user, session, random or round-robin'),
])
def test_bad_egress_values_are_config_errors(check_config, section, key, value, why):
    action = "action = allow\n" if section.startswith("rule") else ""
    result, path = check_config(f"[{section}]\n{action}{key} = {value}\n")
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    line = 3 if action else 2
    assert f"{path}:{line}: [{section}] {key}: " in output, output
    assert why in output, output


def test_pool_addresses_the_host_lacks_are_warned_of(pooled, targets):
    """A pool network this host has no address or local route for would
    send connections that get no answer: each such network is named in a
    warning when the file is applied, the routed ones are not."""
    d = pooled(outbound={"egress": f"10.99.0.0/24, {POOL4}, fd00:99::/64, {POOL6}"})
    # The routes came after the start: what the reload sees counts.
    d.send_signal(signal.SIGHUP)
    d.wait_log(r"reloaded: ")
    reload_part = d.log()[d.log().rindex("reloading "):]
    assert "[outbound] egress: 10.99.0.1 is not an address of this host" in reload_part
    assert "[outbound] egress: fd00:99::1 is not an address of this host" in reload_part
    assert "10.77.0.1 is not" not in reload_part, reload_part
    assert "fd00:e9::1 is not" not in reload_part, reload_part
