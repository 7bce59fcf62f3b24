"""[limits], black-box: concurrent sessions per client IP and per user are
refused beyond the limit and released exactly when sessions end; failed
logins ban an IP for auth_ban seconds; refusals are counted each and logged
at most once per second per reason."""
import os
import re
import signal
import time

from harness.net import LOOPBACK4, format_hostport, wait_until
from harness.socks5 import (METHOD_PASSWORD, REP_NOT_ALLOWED, REP_SUCCESS,
                            Socks5Client, assert_echo, open_tunnel)

from conftest import USERS


def closed_at_once(daemon, source=None, timeout=3.0):
    """Connect and greet: True when the daemon closes without answering."""
    with Socks5Client(daemon.address, timeout=timeout, source=source) as client:
        try:
            client.send(b"\x05\x01\x00")
            return client.sock.recv(16) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True


def test_max_per_client_ip_refuses_and_releases(start_daemon, echo_target):
    d = start_daemon(limits={"max_per_client_ip": 2})
    first = open_tunnel(d.address, *echo_target.address)
    second = open_tunnel(d.address, *echo_target.address)
    try:
        assert closed_at_once(d)
        d.wait_log(r"max_per_client_ip reached: client=127\.0\.0\.1")
        # Another client IP has its own count.
        with Socks5Client(d.address, source="127.0.0.2") as other:
            assert other.connect(*echo_target.address).rep == REP_SUCCESS
        assert_echo(first)
    finally:
        first.close()
    # Released exactly when the session ended.
    wait_until(lambda: d.log().count("close=eof") >= 2, 5, what="first session closed")
    with open_tunnel(d.address, *echo_target.address) as third:
        assert_echo(third)
    second.close()


def test_max_per_user_answers_0x02_after_login(start_daemon, users_file, echo_target):
    user, password = next(iter(USERS.items()))
    d = start_daemon(auth={"method": "password", "users_file": str(users_file)},
                     limits={"max_per_user": 1})
    first = open_tunnel(d.address, *echo_target.address, user=user, password=password)
    try:
        with Socks5Client(d.address) as client:
            reply = client.connect(*echo_target.address, user=user, password=password)
            assert reply.rep == REP_NOT_ALLOWED
        fields = d.wait_session(reply=REP_NOT_ALLOWED)
        assert fields["rule"] == "(max_per_user)" and fields["user"] == user
    finally:
        first.close()
    wait_until(lambda: "close=eof" in d.log(), 5, what="first session closed")
    with open_tunnel(d.address, *echo_target.address, user=user,
                     password=password) as again:
        assert_echo(again)


def fail_login(daemon, user, source=None):
    with Socks5Client(daemon.address, source=source) as client:
        assert client.greet((METHOD_PASSWORD,)) == METHOD_PASSWORD
        _ver, status = client.authenticate(user, "wrong password")
        assert status != 0


def test_failed_logins_ban_the_ip_until_it_expires(start_daemon, users_file, echo_target):
    user, password = next(iter(USERS.items()))
    d = start_daemon(auth={"method": "password", "users_file": str(users_file)},
                     limits={"auth_failures": 3, "auth_window": 60, "auth_ban": 2})
    fail_login(d, user)
    fail_login(d, user)
    # Two failures: not banned yet.
    with open_tunnel(d.address, *echo_target.address, user=user, password=password) as ok:
        assert_echo(ok)
    fail_login(d, user)
    banned_at = time.monotonic()
    d.wait_log(r"client 127\.0\.0\.1 banned for 2s after 3 failed logins")
    # Even the right password gets nowhere now, but another IP does.
    assert closed_at_once(d)
    d.wait_log(r"banned after failed logins: client=127\.0\.0\.1")
    with Socks5Client(d.address, source="127.0.0.2") as other:
        assert other.connect(*echo_target.address, user=user,
                             password=password).rep == REP_SUCCESS
    # The ban expires.
    time.sleep(max(0, 2.2 - (time.monotonic() - banned_at)))
    with open_tunnel(d.address, *echo_target.address, user=user, password=password) as ok:
        assert_echo(ok)


def test_limits_hold_per_ipv6_address(start_daemon, echo_target):
    d = start_daemon(listen_hosts=("::1", LOOPBACK4), limits={"max_per_client_ip": 1})
    v6 = Socks5Client(("::1", d.port))
    try:
        assert v6.connect(*echo_target.address).rep == REP_SUCCESS
        with Socks5Client(("::1", d.port), timeout=3) as second:
            second.send(b"\x05\x01\x00")
            try:
                assert second.sock.recv(16) == b""
            except ConnectionResetError:
                pass
        # IPv4 loopback is another client.
        with open_tunnel((LOOPBACK4, d.port), *echo_target.address) as v4:
            assert_echo(v4)
    finally:
        v6.close()


def test_refusals_are_counted_in_metrics(start_daemon, echo_target):
    from test_metrics import scrape, start_with_metrics
    d, port = start_with_metrics(
        start_daemon, limits={"max_per_client_ip": 1},
        **{"rule no-echo": {"action": "deny", "dest": "127.0.0.1",
                            "port": echo_target.port},
           "rule rest": {"action": "allow"}})
    with Socks5Client(d.address) as held:
        assert held.greet() == 0
        assert closed_at_once(d)
        assert closed_at_once(d)
        assert held.request(*echo_target.address).rep == REP_NOT_ALLOWED
    metrics = scrape(port)
    assert metrics("socks5d_refused_total", reason="max_per_client_ip") == 2
    assert metrics("socks5d_refused_total", reason="rule") == 1
    assert metrics("socks5d_refused_total", reason="banned") == 0
    assert metrics("socks5d_replies_total", code="2") == 1


REFUSAL_LINE = re.compile(r"socks5d: \w+: (\[limits\] max_per_client_ip reached|"
                          r"banned after failed logins): client=(\S+) "
                          r"\((\d+) refusal\(s\) in the last second\)$")


def refusal_lines(daemon):
    """[(reason text, client, refusals covered)] for each rate-limited
    refusal line in the log, in order."""
    return [(m[1], m[2], int(m[3])) for m in
            map(REFUSAL_LINE.search, daemon.log().splitlines()) if m]


def process_state(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def test_refusals_are_logged_once_per_second_per_reason(start_daemon, users_file,
                                                        echo_target):
    """A burst of refusals for two reasons inside one rate-limit interval
    gives one log line per reason, while the counter sees every refusal; the
    next refusal a second later reports how many the interval covered."""
    from test_metrics import scrape, start_with_metrics
    burst = 20
    full, banned = "[limits] max_per_client_ip reached", "banned after failed logins"
    user, password = next(iter(USERS.items()))
    d, port = start_with_metrics(
        start_daemon, auth={"method": "password", "users_file": str(users_file)},
        limits={"max_per_client_ip": 1, "auth_failures": 1, "auth_window": 60,
                "auth_ban": 60})
    # 127.0.0.2 is banned by one failed login; 127.0.0.1 holds its one session.
    fail_login(d, user, source="127.0.0.2")
    d.wait_log(r"client 127\.0\.0\.2 banned for 60s after 1 failed logins")
    held = Socks5Client(d.address)
    held_client = format_hostport(*held.sock.getsockname()[:2])
    try:
        assert held.greet((METHOD_PASSWORD,)) == METHOD_PASSWORD
        before = scrape(port)
        assert refusal_lines(d) == []

        # The burst: the daemon is stopped while every connection is made and
        # greets, so on SIGCONT it accepts them all at one loop time, however
        # loaded the machine: well inside one rate-limit interval.
        clients = []
        pid = d.proc.pid
        try:
            os.kill(pid, signal.SIGSTOP)
            wait_until(lambda: process_state(pid) in ("T", "t"), 5, what="daemon stopped")
            for source in ["127.0.0.1"] * burst + ["127.0.0.2"] * burst:
                clients.append(Socks5Client(d.address, timeout=5, source=source))
                clients[-1].send(b"\x05\x01\x02")
        finally:
            os.kill(pid, signal.SIGCONT)
        first_closed = None
        try:
            for index, client in enumerate(clients):
                try:
                    got = client.sock.recv(16)
                except ConnectionResetError:
                    got = b""
                if first_closed is None:
                    first_closed = time.monotonic()
                assert got == b"", f"refused connection {index} got a reply {got.hex()}"
        finally:
            for client in clients:
                client.close()
        # The scrape is served after the accepts by the same loop, so every
        # refusal is counted and logged by now.
        after = scrape(port)
        for reason in ("max_per_client_ip", "banned"):
            assert (after("socks5d_refused_total", reason=reason)
                    - before("socks5d_refused_total", reason=reason)) == burst, reason
        # One line per reason, each covering only itself: the other 19 of
        # each burst were suppressed.
        assert sorted(refusal_lines(d)) == [(full, "127.0.0.1", 1),
                                            (banned, "127.0.0.2", 1)]

        # Over a second after the burst was logged (its loop time is before
        # the first close was seen), one more refusal per reason is logged
        # and reports the burst's suppressed refusals with itself. The
        # daemon logs before it closes, so the lines are there at EOF.
        time.sleep(max(0.0, first_closed + 1.05 - time.monotonic()))
        assert closed_at_once(d)
        assert closed_at_once(d, source="127.0.0.2")
        assert sorted(refusal_lines(d)[2:]) == [(full, "127.0.0.1", burst),
                                                (banned, "127.0.0.2", burst)]
        final = scrape(port)
        for reason in ("max_per_client_ip", "banned"):
            assert (final("socks5d_refused_total", reason=reason)
                    - before("socks5d_refused_total", reason=reason)) == burst + 1
    finally:
        held.close()
    # The limit is released when the held session ends.
    d.wait_session(client=held_client, close="client-eof")
    with open_tunnel(d.address, *echo_target.address, user=user,
                     password=password) as again:
        assert_echo(again)
    assert len(refusal_lines(d)) == 4
