"""[quota NAME], black-box: a user over quota is refused (SOCKS5 0x02,
HTTP 403, rule=quota:NAME) and their open sessions end (close=quota);
usage survives SIGTERM, SIGKILL (after the write interval) and a reload;
a rolling period rolls over; a corrupt state file is set aside with a
clear log line and counting starts from zero; workers share one count."""
import base64
import os
import signal

from harness.http_proxy import ProxyClient
from harness.net import recv_until_eof, wait_until
from harness.socks5 import REP_NOT_ALLOWED, Socks5Client, open_tunnel
from harness.targets import behave_echo, source

from conftest import USERS

KIB = 1024
# What may pass beyond a quota before the relay sees it: one pump's
# budget (256 KiB) and a pipe's worth.
SLACK = 1200 * KIB
SAVE_INTERVAL = 5


def quota_daemon(start_daemon, users_file, state_dir, quota, **extra):
    return start_daemon(
        server={"state_dir": str(state_dir), **extra.pop("server", {})},
        auth={"method": "password", "users_file": str(users_file)},
        **{"quota q": quota}, **extra)


def tunnel(d, target, user="alice"):
    return open_tunnel(d.address, *target.address, user=user,
                       password=USERS[user])


def download(d, target, user="alice"):
    """Read a tunnel to target until it ends; the bytes received."""
    with tunnel(d, target, user) as t:
        return len(recv_until_eof(t.sock))


def move(d, echo, count, user="alice"):
    """count bytes to an echo target and back."""
    with tunnel(d, echo, user) as t:
        block = os.urandom(count)
        t.sock.sendall(block)
        got = 0
        while got < count:
            data = t.sock.recv(65536)
            assert data, "tunnel closed early"
            got += len(data)


def refused(d, target, user="alice"):
    with Socks5Client(d.address) as c:
        return c.connect(*target.address, user, USERS[user]).rep


def restart(d):
    d.returncode = None
    d.start()


def state_used(state_dir, user="alice"):
    """The bytes the state file holds for user (0 when no line)."""
    path = state_dir / "quota.state"
    if not path.exists():
        return 0
    lines = path.read_text().splitlines()
    assert lines[0] == "socks5d-quota 1", lines[:1]
    for line in lines[1:]:
        fields = line.split()
        if fields[0] == "q" and fields[1] == user:
            return int(fields[4])
    return 0


def test_over_quota_refused_everywhere_and_open_sessions_end(
        start_daemon, users_file, tmp_path, make_target):
    d = quota_daemon(start_daemon, users_file, tmp_path / "state",
                     {"user": "alice", "bytes": "1M", "period": "day"})
    echo = make_target(behave_echo)
    big = make_target(source(8 * 1024 * KIB))
    # An idle session opened before the quota runs out ends with it.
    idle = tunnel(d, echo)
    got = download(d, big)
    assert 1024 * KIB <= got <= 1024 * KIB + SLACK, got
    fields = d.wait_session(close="quota")
    assert fields["user"] == "alice" and fields["rule"] == "quota:q", fields
    wait_until(lambda: d.log().count("close=quota") >= 2, 5,
               what="the idle session to end")
    idle.close()
    # New requests: 0x02 over SOCKS5, 403 over HTTP, named in the log.
    assert refused(d, echo) == REP_NOT_ALLOWED
    fields = d.wait_session(reply=REP_NOT_ALLOWED)
    assert fields["rule"] == "quota:q", fields
    token = base64.b64encode(f"alice:{USERS['alice']}".encode()).decode()
    host, port = echo.address
    with ProxyClient(d.address) as http:
        response = http.request(
            f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Proxy-Authorization: Basic {token}\r\n\r\n".encode())
        assert response.status == 403, response.status
    d.wait_log(r"quota q used up: user alice refused")
    # bob is not in the quota's user list.
    move(d, echo, 512 * KIB, user="bob")


def test_usage_survives_reload_sigterm_and_sigkill(
        start_daemon, users_file, tmp_path, make_target):
    state = tmp_path / "state"
    d = quota_daemon(start_daemon, users_file, state,
                     {"user": "alice", "bytes": "4M", "period": "month"})
    echo = make_target(behave_echo)
    move(d, echo, 600 * KIB)                      # 1.2 MiB both ways
    d.send_signal(signal.SIGHUP)
    d.wait_log(r"reloaded")
    move(d, echo, 300 * KIB)                      # 1.8 MiB in all
    assert d.stop(signal.SIGTERM) == 0
    used = state_used(state)
    assert 1800 * KIB <= used <= 1800 * KIB + 64 * KIB, used
    restart(d)
    d.wait_log(r"quota: usage of 1 user\(s\) read from .*quota\.state")
    move(d, echo, 500 * KIB)                      # 2.8 MiB
    # SIGKILL after the write interval: the count was saved meanwhile.
    wait_until(lambda: state_used(state) >= 2800 * KIB, SAVE_INTERVAL + 3,
               what="the periodic save")
    d.stop(signal.SIGKILL)
    restart(d)
    # 1.2 MiB are left: a download is cut there.
    big = make_target(source(8 * 1024 * KIB))
    got = download(d, big)
    assert 1200 * KIB <= got <= 1200 * KIB + SLACK, got
    d.wait_session(close="quota")


def test_rolling_period_rolls_over(start_daemon, users_file, tmp_path,
                                   make_target):
    d = quota_daemon(start_daemon, users_file, tmp_path / "state",
                     {"user": "alice", "bytes": "200K", "period": "rolling:4s"})
    echo = make_target(behave_echo)
    big = make_target(source(4 * 1024 * KIB))
    download(d, big)
    assert refused(d, echo) == REP_NOT_ALLOWED
    # The window moves on: what was counted leaves it within 4 s.
    wait_until(lambda: refused(d, echo) != REP_NOT_ALLOWED, 8, interval=0.5,
               what="the rolling window to forget")
    move(d, echo, 16 * KIB)


def test_corrupt_or_missing_state_file(start_daemon, users_file, tmp_path,
                                       make_target):
    state = tmp_path / "state"
    d = quota_daemon(start_daemon, users_file, state,
                     {"user": "alice", "bytes": "1M", "period": "week"})
    d.wait_log(r"quota: .*quota\.state: no state file yet, counting from zero")
    echo = make_target(behave_echo)
    move(d, echo, 100 * KIB)
    assert d.stop(signal.SIGTERM) == 0
    path = state / "quota.state"
    text = path.read_text().splitlines()
    path.write_text(text[0] + "\n" + text[1].replace(" ", " x", 3) + "\n")
    restart(d)
    d.wait_log(r"quota: .*quota\.state: line 2: .*; usage starts from zero")
    d.wait_log(r"the unreadable file is kept as .*quota\.state\.bad")
    assert (state / "quota.state.bad").exists()
    # Counting from zero: the whole megabyte is there again.
    big = make_target(source(8 * 1024 * KIB))
    got = download(d, big)
    assert 1024 * KIB <= got <= 1024 * KIB + SLACK, got


def test_workers_count_into_one_table(start_daemon, users_file, tmp_path,
                                      make_target):
    state = tmp_path / "state"
    d = quota_daemon(start_daemon, users_file, state,
                     {"user": "alice", "bytes": "64M", "period": "day"},
                     server={"workers": 2})
    echo = make_target(behave_echo)
    # Enough connections that both workers take some.
    for _ in range(8):
        move(d, echo, 64 * KIB)
    assert d.stop(signal.SIGTERM) == 0
    assert state_used(state) == 8 * 2 * 64 * KIB


def test_bad_quota_sections_are_config_errors(check_config):
    result, path = check_config("[quota monthly]\nbytes = 12Q\nperiod = fortnight\n"
                                "[quota nobytes]\nuser = alice\n")
    assert result.returncode == 2
    assert f"{path}:2: [quota monthly] bytes: bad size" in result.stderr
    assert f"{path}:3: [quota monthly] period: bad period" in result.stderr
    assert "[quota nobytes] bytes: missing" in result.stderr
    assert "[quota nobytes] period: missing" in result.stderr
