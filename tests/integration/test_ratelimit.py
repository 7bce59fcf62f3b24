"""Bandwidth limits, black-box: rate_up and rate_down held within 10% over
5 s (measured at the receiver, after the first burst has passed) for the
splice and copy relays and for UDP datagrams; four sessions of one user
share one budget; an unlimited user beside a limited one is not slowed;
bad values are config errors naming file, line and key."""
import threading
import time

from harness.net import wait_until
from harness.rate import (MIB, WARM_UP, WINDOW, Reader, Writer, assert_near,
                          window_rate, window_rates)
from harness.socks5 import REP_SUCCESS, Socks5Client, open_tunnel
from harness.targets import behave_sink, source
from harness.udp import Association, UdpServer

from conftest import USERS

def rate_daemon(start_daemon, users_file, relay="splice"):
    """alice is held to 2 MiB/s down and 1 MiB/s up, shared by all her
    sessions; bob is not limited."""
    return start_daemon(
        server={"relay": relay},
        auth={"method": "password", "users_file": str(users_file)},
        limits={"rate_per": "user"},
        **{"rule alice": {"user": "alice", "action": "allow",
                          "rate_down": "2M", "rate_up": "1M"},
           "rule bob": {"user": "bob", "action": "allow"}})


def tunnel_as(d, target, user):
    return open_tunnel(d.address, *target.address, user=user,
                       password=USERS[user])


def test_one_session_download_holds_rate_and_unlimited_user_is_not_slowed(
        start_daemon, users_file, make_target):
    d = rate_daemon(start_daemon, users_file)
    big = make_target(source(1 << 40))
    alice = tunnel_as(d, big, "alice")
    bob = tunnel_as(d, big, "bob")
    readers = [Reader(alice), Reader(bob)]
    for r in readers:
        r.start()
    try:
        time.sleep(WARM_UP)
        a0, b0, t0 = readers[0].total, readers[1].total, time.monotonic()
        time.sleep(WINDOW)
        elapsed = time.monotonic() - t0
        alice_rate = (readers[0].total - a0) / elapsed
        bob_rate = (readers[1].total - b0) / elapsed
    finally:
        for r in readers:
            r.stop.set()
        alice.close()
        bob.close()
    assert_near(alice_rate, 2 * MIB, "alice's one splice session")
    # bob shares nothing with alice: he moves many times her limit.
    assert bob_rate > 10 * 2 * MIB, f"bob only {bob_rate / MIB:.1f} MiB/s"


def test_four_sessions_share_one_users_budget_both_ways(
        start_daemon, users_file, make_target):
    d = rate_daemon(start_daemon, users_file)
    big = make_target(source(1 << 40))
    sink = make_target(behave_sink)
    downs = [tunnel_as(d, big, "alice") for _ in range(4)]
    up = tunnel_as(d, sink, "alice")
    readers = [Reader(c) for c in downs]
    writer = Writer(up)
    for t in readers + [writer]:
        t.start()
    wait_until(lambda: len(sink.records) == 1, 5, what="upload reached the sink")
    try:
        time.sleep(WARM_UP)
        down0 = sum(r.total for r in readers)
        up0, t0 = sink.records[0].received_len, time.monotonic()
        time.sleep(WINDOW)
        elapsed = time.monotonic() - t0
        down_rate = (sum(r.total for r in readers) - down0) / elapsed
        up_rate = (sink.records[0].received_len - up0) / elapsed
        shares = [r.total for r in readers]
    finally:
        for t in readers + [writer]:
            t.stop.set()
        for c in downs + [up]:
            c.close()
    assert_near(down_rate, 2 * MIB, "four sessions' downloads together")
    assert_near(up_rate, 1 * MIB, "an upload beside them")
    # Turns in order: each of the four gets about a fair share.
    assert min(shares) > 0.15 * sum(shares), shares


def test_copy_relay_and_udp_hold_their_rates(start_daemon, make_target):
    d = start_daemon(server={"relay": "copy"},
                     limits={"rate_down": "1M", "rate_up": "256K",
                             "rate_per": "session"})
    big = make_target(source(1 << 40))
    tunnel = open_tunnel(d.address, *big.address)
    reader = Reader(tunnel)
    reader.start()
    try:
        copy_rate = window_rate(lambda: reader.total)
    finally:
        reader.stop.set()
        tunnel.close()
    assert_near(copy_rate, 1 * MIB, "a copy-mode download")

    # UDP: the client sends 1000-byte datagrams at twice rate_up; what
    # reaches the server is held to it, and the rest is dropped and counted.
    server = UdpServer(answer=lambda payload: None)
    payload = b"d" * 1000
    stop = threading.Event()
    try:
        with Association(d.address) as assoc:
            assoc.request()

            def send():
                interval = 1000 / (512 * 1024)
                next_at = time.monotonic()
                while not stop.is_set():
                    assoc.send(*server.address, payload)
                    next_at += interval
                    delay = next_at - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
            sender = threading.Thread(target=send, daemon=True)
            sender.start()
            udp_rate = window_rate(lambda: server.count() * len(payload))
            stop.set()
            sender.join(2)
    finally:
        stop.set()
        server.close()
    assert_near(udp_rate, 256 * 1024, "UDP datagrams up")
    # About half were over the rate: the access log counts them.
    fields = d.wait_session(cmd="udp")
    assert int(fields.get("drop_rate", "0")) > 1000, fields


def test_rate_per_client_and_per_rule_share_as_configured(
        start_daemon, users_file, make_target):
    """rate_per = client: the sessions of one client address share a
    budget, another address has its own. A rule's rate_per = rule: the
    sessions of every user it allowed share one. Both measured at once."""
    per_client = start_daemon(limits={"rate_down": "1M", "rate_per": "client"})
    per_rule = start_daemon(
        auth={"method": "password", "users_file": str(users_file)},
        **{"rule team": {"user": "alice, bob", "action": "allow",
                         "rate_down": "1M", "rate_per": "rule"}})
    big = make_target(source(1 << 40))
    tunnels = []

    def tunnel_from(source_address):
        client = Socks5Client(per_client.address, source=source_address)
        tunnels.append(client)
        assert client.connect(*big.address).rep == REP_SUCCESS
        return Reader(client)
    first = [tunnel_from("127.0.0.1"), tunnel_from("127.0.0.1")]
    second = [tunnel_from("127.0.0.2")]
    tunnels += [tunnel_as(per_rule, big, user) for user in ("alice", "bob")]
    team = [Reader(c) for c in tunnels[-2:]]
    readers = first + second + team
    for r in readers:
        r.start()
    try:
        rates = window_rates(readers)
    finally:
        for r in readers:
            r.stop.set()
        for c in tunnels:
            c.close()
    assert_near(rates[0] + rates[1], 1 * MIB, "two sessions of one client")
    assert_near(rates[2], 1 * MIB, "a session of another client")
    assert_near(rates[3] + rates[4], 1 * MIB, "alice and bob under one rule")
    # Each user under the shared rule got a fair part of it.
    assert min(rates[3:]) > 0.3 * sum(rates[3:]), rates


def test_bad_rate_values_are_config_errors(check_config):
    for section, key, value in [("limits", "rate_up", "10X"),
                                ("limits", "rate_down", "-1"),
                                ("limits", "rate_per", "everyone"),
                                ("rule r", "rate_down", "1.5M"),
                                ("rule r", "rate_per", "host")]:
        body = f"[{section}]\n{key} = {value}\n"
        if section.startswith("rule"):
            body = f"[{section}]\naction = allow\n{key} = {value}\n"
        result, _path = check_config(body)
        assert result.returncode == 2, (body, result.stderr)
        line = body.splitlines().index(f"{key} = {value}") + 1
        assert f":{line}: [{section}] {key}:" in result.stderr, result.stderr
