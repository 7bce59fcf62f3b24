"""[control] socket and `socks5d ctl`, black-box: sessions listed with
their bytes, ended by id, user or client network through the normal close
path (close=killed); per-user totals with quota use and a quota reset;
the same with [server] workers, where the supervisor asks every worker;
malformed requests answered with an error, never a crash; and only root
or the daemon's own user may connect (mode 0600 and SO_PEERCRED)."""
import json
import os
import shutil
import socket
import stat
import subprocess
import tempfile

import pytest

from harness.daemon import binary_path, daemon_env, run_binary
from harness.net import free_port, recv_exact, wait_until
from harness.socks5 import REP_NOT_ALLOWED, REP_SUCCESS, Socks5Client, open_tunnel
from harness.targets import behave_echo

from conftest import USERS


@pytest.fixture
def public_dir():
    """A directory any user may enter (pytest's own tmp is root's alone),
    so permission tests meet the socket's own mode."""
    path = tempfile.mkdtemp(prefix="socks5d-ctl-", dir="/tmp")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def ctl(sock_path, *args, user=None):
    """Run socks5d ctl -s sock_path ARGS, as user when given."""
    if user is None:
        return run_binary(["ctl", "-s", sock_path, *args])
    return subprocess.run(
        ["setpriv", f"--reuid={user}", f"--regid={user}" if user != "nobody"
         else "--regid=nogroup", "--clear-groups", str(binary_path()), "ctl",
         "-s", sock_path, *args],
        capture_output=True, text=True, timeout=20, env=daemon_env())


def ctl_json(sock_path, *args):
    result = ctl(sock_path, "--json", *args)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["ok"] is True, doc
    return doc["records"]


def raw_request(sock_path, data):
    """Send data on the control socket; the whole answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(sock_path)
        s.sendall(data)
        answer = b""
        while not answer.endswith(b"\n") or b"end " not in answer:
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer.decode(errors="replace")


def control_daemon(start_daemon, users_file, tmp_path, workers=1, **extra):
    path = str(tmp_path / "control")
    d = start_daemon(server={"workers": workers, "state_dir": str(tmp_path / "state")},
                     auth={"method": "password", "users_file": str(users_file)},
                     control={"socket": path}, **extra)
    wait_until(lambda: os.path.exists(path), 5, what="the control socket")
    return d, path


def tunnel(d, target, user):
    return open_tunnel(d.address, *target.address, user=user, password=USERS[user])


def check_sessions_kill_and_users(d, path, echo):
    """The commands every configuration must answer the same way."""
    a1, a2, b = (tunnel(d, echo, "alice"), tunnel(d, echo, "alice"),
                 tunnel(d, echo, "bob"))
    try:
        a1.sock.sendall(b"x" * 1000)
        assert recv_exact(a1.sock, 1000) == b"x" * 1000
        records = ctl_json(path, "sessions")
        assert len(records) == 3, records
        mine = [r for r in records if r["user"] == "alice"]
        assert len(mine) == 2
        assert max(r["up"] for r in mine) == 1000
        assert max(r["down"] for r in mine) == 1000
        assert {r["cmd"] for r in records} == {"connect"}
        assert {r["dest"] for r in records} == {"%s:%d" % echo.address}
        target = next(r for r in mine if r["up"] == 1000)
        assert target["client"] == "%s:%d" % a1.sock.getsockname()

        users = {r["user"]: r for r in ctl_json(path, "users")}
        assert users["alice"]["sessions"] == 2 and users["bob"]["sessions"] == 1
        assert users["alice"]["up"] == 1000

        # By id: that one session ends through the close path.
        killed = ctl_json(path, "kill", target["id"])
        assert [r["id"] for r in killed] == [target["id"]]
        assert a1.sock.recv(16) == b""
        d.wait_log(r"user=alice .* close=killed")
        # By user: the other of alice's, not bob's.
        killed = ctl_json(path, "kill", "--user", "alice")
        assert [r["user"] for r in killed] == ["alice"]
        assert a2.sock.recv(16) == b""
        b.sock.sendall(b"still here")
        assert recv_exact(b.sock, 10) == b"still here"
        # By client network: bob's too.
        killed = ctl_json(path, "kill", "--client", "127.0.0.0/8")
        assert len(killed) == 1 and b.sock.recv(16) == b""
        assert ctl_json(path, "sessions") == []
        # An id nobody has: an error, exit status 1.
        result = ctl(path, "kill", "%d.99999" % os.getpid())
        assert result.returncode == 1 and "no such session" in result.stderr
    finally:
        for c in (a1, a2, b):
            c.close()


def test_sessions_kill_users_in_one_process(start_daemon, users_file, tmp_path,
                                             make_target):
    d, path = control_daemon(start_daemon, users_file, tmp_path)
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert mode == 0o600, oct(mode)
    check_sessions_kill_and_users(d, path, make_target(behave_echo))
    assert ctl(path, "ping").returncode == 0
    d.stop()
    assert not os.path.exists(path), "the socket file outlived the daemon"


def test_sessions_kill_users_with_workers(start_daemon, users_file, tmp_path,
                                          make_target):
    d, path = control_daemon(start_daemon, users_file, tmp_path, workers=2,
                             **{"quota big": {"user": "alice", "bytes": "1G",
                                              "period": "day"}})
    echo = make_target(behave_echo)
    # Enough sessions that both workers hold some: the supervisor must
    # list them all.
    clients = [tunnel(d, echo, "bob") for _ in range(8)]
    try:
        records = ctl_json(path, "sessions")
        assert len(records) == 8
        assert len({r["id"].split(".")[0] for r in records}) == 2, records
    finally:
        for c in clients:
            c.close()
    wait_until(lambda: ctl_json(path, "sessions") == [], 5, what="sessions to end")
    check_sessions_kill_and_users(d, path, echo)
    # The quota table is one for all workers: the supervisor reads and
    # resets it itself.
    alice = {r["user"]: r for r in ctl_json(path, "users")}["alice"]
    assert alice["quota"] == "big" and alice["used"] == 2000, alice
    assert ctl_json(path, "quota", "reset", "alice", "big")[0]["entries"] == 1
    assert {r["user"]: r for r in ctl_json(path, "users")}["alice"]["used"] == 0
    assert ctl(path, "ping").returncode == 0


def test_users_show_quota_use_and_reset_lets_in_again(start_daemon, users_file,
                                                       tmp_path, make_target):
    d, path = control_daemon(start_daemon, users_file, tmp_path,
                             **{"quota small": {"user": "alice", "bytes": "64K",
                                                "period": "day"}})
    echo = make_target(behave_echo)
    with tunnel(d, echo, "alice") as t:
        t.sock.sendall(b"q" * 30000)
        assert len(recv_exact(t.sock, 30000)) == 30000
        users = {r["user"]: r for r in ctl_json(path, "users")}
        assert users["alice"]["quota"] == "small"
        assert users["alice"]["used"] == 60000
        assert users["alice"]["sessions"] == 1
        # Over the quota: this session ends.
        t.sock.sendall(b"q" * 10000)
        d.wait_session(close="quota")
    with Socks5Client(d.address) as c:
        assert c.connect(*echo.address, "alice", USERS["alice"]).rep == REP_NOT_ALLOWED
    reset = ctl_json(path, "quota", "reset", "alice")
    assert reset[0]["type"] == "reset" and reset[0]["entries"] == 1
    assert {r["user"]: r for r in ctl_json(path, "users")}.get(
        "alice", {"used": 0})["used"] == 0
    with Socks5Client(d.address) as c:
        assert c.connect(*echo.address, "alice", USERS["alice"]).rep == REP_SUCCESS


@pytest.mark.parametrize("workers", [1, 2])
def test_malformed_requests_get_errors(start_daemon, users_file, tmp_path, workers):
    d, path = control_daemon(start_daemon, users_file, tmp_path, workers=workers)
    for bad, why in [(b"v2 ping\n", "version"), (b"v1 bogus\n", "command"),
                     (b"v1 kill\n", ""), (b"v1 kill 12\n", ""),
                     (b"v1 kill client 300.1.2.3/8\n", ""),
                     (b"v1 ping\x00x\n", ""), (b"v1  ping\n", ""),
                     (b"v1 " + b"a" * 2000 + b"\n", "")]:
        answer = raw_request(path, bad)
        assert answer.startswith("end error"), (bad[:40], answer)
        assert why in answer
    # Nothing at all, then the connection closed: no answer, no harm.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(path)
    assert raw_request(path, b"v1 ping\n") == "end ok\n"
    assert d.is_running()


def test_only_root_or_the_service_user_may_ask(start_daemon, users_file, tmp_path,
                                               public_dir):
    path = os.path.join(public_dir, "control")
    d = start_daemon(auth={"method": "password", "users_file": str(users_file)},
                     control={"socket": path})
    wait_until(lambda: os.path.exists(path), 5, what="the control socket")
    # Mode 0600: another user cannot even connect.
    result = ctl(path, "ping", user="nobody")
    assert result.returncode == 2 and "Permission denied" in result.stderr, result
    # Opened up by hand: the credentials check still refuses.
    os.chmod(path, 0o666)
    result = ctl(path, "ping", user="nobody")
    assert result.returncode == 2, result
    assert ctl(path, "ping").returncode == 0
    d.stop()

    # A daemon that becomes [server] user: its socket is that user's.
    d = start_daemon(server={"user": "nobody", "group": "nogroup"},
                     control={"socket": path})
    wait_until(lambda: os.path.exists(path), 5, what="the control socket")
    assert os.stat(path).st_uid == 65534
    assert ctl(path, "ping", user="nobody").returncode == 0
    assert ctl(path, "ping").returncode == 0


def test_bad_control_socket_is_a_start_error(write_config):
    port = free_port()
    sock = write_config("").parent / "no-such-dir" / "control"
    config = write_config(f"[server]\nlisten = 127.0.0.1:{port}\nworkers = 1\n"
                          f"[control]\nsocket = {sock}\n")
    result = run_binary(["-c", str(config)], timeout=10)
    assert result.returncode == 1
    assert f"[control] socket {sock}: No such file or directory" in result.stderr
