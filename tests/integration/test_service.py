"""Running as a service: sd_notify, socket activation (and the open-proxy
guard on its sockets), SIGHUP reload (config, users file, waiting BINDs),
graceful stop, privilege drop and journal priority prefixes."""
import os
import pwd
import re
import signal
import socket
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from harness.daemon import (REPO_ROOT, Daemon, binary_path, daemon_env, merge_config,
                            render_config, sanitizer_reports)
from harness.net import LOOPBACK4, format_hostport, free_port, is_listening, wait_until
from harness.socks5 import (CMD_BIND, METHOD_NONE, METHOD_PASSWORD, METHOD_REJECT,
                            REP_SUCCESS, Socks5Client, assert_echo, open_tunnel)
from harness.socks5 import request as socks5_request

from harness.udp import Association, UdpServer
from conftest import PORT_RACE_ATTEMPTS, USERS, base_config
from test_metrics import scrape


class NotifyListener:
    """A test-owned $NOTIFY_SOCKET: collects the daemon's sd_notify datagrams."""

    def __init__(self, path=None, abstract=None):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract is not None:
            self.sock.bind("\0" + abstract)
            self.env_value = "@" + abstract
        else:
            self.sock.bind(str(path))
            self.env_value = str(path)
        self.sock.settimeout(0.1)
        self.messages = []

    def poll(self):
        try:
            while True:
                self.messages.append(self.sock.recv(4096).decode())
        except (socket.timeout, BlockingIOError):
            pass
        return self.messages

    def wait_for(self, field, timeout=5.0, after=0):
        """Wait for a message (index >= after) containing the line field;
        returns its index."""
        def find():
            for i, msg in enumerate(self.poll()):
                if i >= after and field in msg.split("\n"):
                    return i + 1      # never 0, which wait_until takes as false
            return None
        return wait_until(find, timeout, what=f"sd_notify {field}") - 1

    def close(self):
        self.sock.close()


@pytest.fixture
def notify(tmp_path):
    listener = NotifyListener(path=tmp_path / "notify.sock")
    yield listener
    listener.close()


def rewrite_config(d, dns_server, **overrides):
    """Replace the running daemon's config file (for a reload)."""
    listen = ", ".join(f"{h}:{p}" if ":" not in h else f"[{h}]:{p}" for h, p in d.listen)
    sections = merge_config(base_config(listen, dns_server.address), overrides)
    d.config_path.write_text(render_config(sections))


def test_notify_ready_reloading_stopping_and_status(start_daemon, notify, echo_target):
    d = start_daemon(env={"NOTIFY_SOCKET": notify.env_value})
    ready = notify.wait_for("READY=1")
    assert "STATUS=serving, 0 session(s)" in notify.messages[ready]
    with open_tunnel(d.address, *echo_target.address) as client:
        assert_echo(client)
        before_us = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        d.send_signal(signal.SIGHUP)
        reloading = notify.wait_for("RELOADING=1", after=ready + 1)
        after_us = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        # Type=notify-reload wants the reload's start on the same clock.
        stamp = re.search(r"^MONOTONIC_USEC=(\d+)$", notify.messages[reloading], re.M)
        assert stamp and before_us <= int(stamp.group(1)) <= after_us, \
            notify.messages[reloading]
        ready_again = notify.wait_for("READY=1", after=reloading + 1)
        assert "STATUS=serving, 1 session(s)" in notify.messages[ready_again]
    d.send_signal(signal.SIGTERM)
    notify.wait_for("STOPPING=1", after=ready_again + 1)
    assert d.wait_exit(5) == 0


def test_notify_abstract_socket_and_watchdog(start_daemon):
    name = f"socks5d-test-{os.getpid()}-{time.monotonic_ns()}"
    listener = NotifyListener(abstract=name)
    try:
        # 0.4 s watchdog: the daemon must ping every 0.2 s.
        start_daemon(env={"NOTIFY_SOCKET": listener.env_value,
                          "WATCHDOG_USEC": "400000"})
        first = listener.wait_for("WATCHDOG=1")
        second = listener.wait_for("WATCHDOG=1", after=first + 1, timeout=1.0)
        listener.wait_for("WATCHDOG=1", after=second + 1, timeout=1.0)
        assert any("READY=1" in m.split("\n") for m in listener.messages)
    finally:
        listener.close()


def test_watchdog_for_another_pid_is_ignored(start_daemon, notify):
    start_daemon(env={"NOTIFY_SOCKET": notify.env_value,
                      "WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"})
    notify.wait_for("READY=1")
    time.sleep(0.6)
    assert not [m for m in notify.poll() if "WATCHDOG=1" in m]


def test_socket_activation(start_daemon, echo_target):
    d = socket_activated(start_daemon, LOOPBACK4)
    configured_port = d.configured_port
    # The first connection makes systemd-socket-activate exec the daemon
    # with the listening socket as descriptor 3.
    with open_tunnel(d.address, *echo_target.address) as client:
        assert_echo(client)
    d.wait_log(r"listening on 127\.0\.0\.1:\d+ \(socket activation\)")
    assert not is_listening(LOOPBACK4, configured_port), \
        "the configured listen address was opened despite socket activation"
    d.send_signal(signal.SIGHUP)
    d.wait_log(r"reloaded: 1 listener")
    with open_tunnel(d.address, *echo_target.address) as client:
        assert_echo(client)


def socket_activated(start_daemon, host, **overrides):
    """A daemon started by systemd-socket-activate listening on host:PORT;
    the first connection, which the caller makes to 127.0.0.1:PORT
    (d.address), execs it with that socket as descriptor 3. The port of its
    own config is d.configured_port.

    The port is picked free on host, and a fresh one is tried when something
    took it before systemd-socket-activate could bind it (it exits with
    "Address already in use"), as the start_daemon fixture does for the
    daemon's own listeners."""
    for _ in range(PORT_RACE_ATTEMPTS):
        port = free_port((host,))
        d = start_daemon(wait=False, command=["systemd-socket-activate", "-l",
                                              f"{host}:{port}"], **overrides)
        d.configured_port = d.port
        d.listen = [(LOOPBACK4, port)]
        # Its own message, rather than /proc/net/tcp, which can miss an
        # entry while a busy machine opens and closes sockets.
        log = wait_until(lambda: re.search(r"Listening on|Address already in use",
                                           d.log()), 10, what="activation socket")
        if "Listening on" in log.group(0):
            return d
        # Its exit status read here is one teardown does not report.
        d.wait_exit(1.0)
    raise AssertionError(f"no free port for socket activation in "
                         f"{PORT_RACE_ATTEMPTS} attempts")


def activate_on_wildcard(start_daemon, **overrides):
    """socket_activated() on 0.0.0.0 (the one non-loopback address the suite
    binds; only loopback traffic ever reaches it)."""
    return socket_activated(start_daemon, "0.0.0.0", **overrides)


def test_socket_activation_on_a_public_address_meets_the_guard(start_daemon):
    """The open-proxy guard also judges sockets handed over by socket
    activation, by the address they are bound to: 0.0.0.0 with method none
    and no client rules refuses to start (exit 2, like the config guard)
    and serves nobody."""
    d = activate_on_wildcard(start_daemon)
    with socket.create_connection(d.address, timeout=5) as trigger:
        trigger.sendall(bytes([5, 1, METHOD_NONE]))
        assert d.wait_exit(10) == 2, d.log()
        try:
            assert trigger.recv(16) == b"", "the daemon answered a client"
        except ConnectionResetError:
            pass
    log = d.log()
    assert f"socket activation: descriptor 3 is bound to 0.0.0.0:{d.port}" in log, log
    assert "allow_open" in log and "password" in log, log
    assert "socks5d ready" not in log, log


@pytest.mark.parametrize("workers", [1, 2])
def test_reload_cannot_make_an_activated_socket_open(start_daemon, dns_server,
                                                     echo_target, workers):
    """Activated sockets stay across a reload whatever [server] listen says,
    so a reload that drops the client rule which made 0.0.0.0 acceptable is
    rejected (by the supervisor, with workers), and all of the old config
    stays in force."""
    d = activate_on_wildcard(start_daemon, server={"workers": workers},
                             **{"rule local": {"action": "allow",
                                               "client": "127.0.0.0/8"}})
    with open_tunnel(d.address, *echo_target.address) as client:
        assert_echo(client)
        d.wait_log(rf"listening on 0\.0\.0\.0:{d.port} \(socket activation\)")
        if workers > 1:
            d.wait_log(rf"supervisor: {workers} workers ready", timeout=20)
        # No rules, and BIND off: the latter shows whether it took effect.
        rewrite_config(d, dns_server, server={"workers": workers},
                       bind={"enabled": False})
        d.send_signal(signal.SIGHUP)
        # Untagged: the supervisor's own line, when there are workers.
        d.wait_log(r"^socks5d: error: reload rejected: socket activation: "
                   rf"descriptor 3 is bound to 0\.0\.0\.0:{d.port}, not a loopback")
        d.wait_log(r"reload rejected: the old configuration stays in force")
        assert_echo(client, b"still relaying\n")
    with Socks5Client(d.address) as binder:
        assert binder.greet() == METHOD_NONE
        assert binder.request(LOOPBACK4, 0, CMD_BIND).rep == REP_SUCCESS
    assert "reloaded: " not in d.log()


def test_reload_of_the_users_file_alone(start_daemon, users_file, tmp_path,
                                        echo_target):
    """SIGHUP with only the users file changed: a new user can log in, a
    removed user and a changed password are refused (even one that logged
    in before, which the credential cache must not remember); the removed
    user's established session ends (close=reload), while one of a user
    still in the file, password changed or not, keeps relaying."""
    hashes = dict(line.split(":", 1) for line in users_file.read_text().splitlines()
                  if line and not line.startswith("#"))
    users = tmp_path / "users"
    users.write_text(f"alice:{hashes['alice']}\nbob:{hashes['bob']}\n")
    users.chmod(0o600)
    d = start_daemon(auth={"method": "password", "users_file": str(users)})
    alice_old, bob_password = USERS["alice"], USERS["bob"]
    with open_tunnel(d.address, *echo_target.address, user="alice",
                     password=alice_old) as client:
        assert_echo(client)
    d.wait_session(user="alice", close="eof")
    bob = open_tunnel(d.address, *echo_target.address, user="bob",
                      password=bob_password)
    alice = open_tunnel(d.address, *echo_target.address, user="alice",
                        password=alice_old)
    try:
        config_before = d.config_path.read_text()
        # alice takes bob's password; carol gets alice's old one; bob goes.
        users.write_text(f"alice:{hashes['bob']}\ncarol:{hashes['alice']}\n")
        d.send_signal(signal.SIGHUP)
        d.wait_log(r"reloaded: 1 listener\(s\), 2 session\(s\) kept")
        fields = d.wait_session(user="bob", close="reload")
        assert fields["rule"] == "(user-removed)"
        assert bob.sock.recv(16) == b""
        assert d.config_path.read_text() == config_before

        def login(user, password):
            with Socks5Client(d.address) as client:
                assert client.greet((METHOD_PASSWORD,)) == METHOD_PASSWORD
                return client.authenticate(user, password)[1]
        assert login("alice", alice_old) != 0
        assert login("bob", bob_password) != 0
        assert login("alice", bob_password) == 0
        with open_tunnel(d.address, *echo_target.address, user="carol",
                         password=alice_old) as client:
            assert_echo(client)
        assert_echo(alice, b"alice is still in the file\n")
    finally:
        bob.close()
        alice.close()
    d.wait_log(r"user=alice .* close=eof", count=2)


def test_reload_keeps_a_bind_waiting_for_its_peer(start_daemon, dns_server):
    """A BIND that waits for its peer across a SIGHUP still gets the peer:
    the second reply names it, and bytes flow both ways."""
    d = start_daemon()
    with Socks5Client(d.address) as client:
        assert client.greet() == METHOD_NONE
        first = client.request(LOOPBACK4, 0, CMD_BIND)
        assert first.rep == REP_SUCCESS
        rewrite_config(d, dns_server, timeouts={"bind": 30})
        d.send_signal(signal.SIGHUP)
        d.wait_log(r"reloaded: 1 listener\(s\), 1 session\(s\) kept")
        with socket.create_connection(first.bound, timeout=5) as peer:
            second = client.read_reply()
            assert second.rep == REP_SUCCESS
            assert second.bound == peer.getsockname()[:2]
            peer.sendall(b"from the peer")
            assert client.recv_exact(13) == b"from the peer"
            client.send(b"from the client")
            assert peer.recv(64) == b"from the client"
    fields = d.wait_session(cmd="bind", close="eof")
    assert fields["reply"] == "0"
    assert fields["addr"] == format_hostport(*second.bound)


def test_reload_moves_listener_and_keeps_relay(start_daemon, dns_server, echo_target):
    d = start_daemon()
    old_port = d.port
    with open_tunnel(d.address, *echo_target.address) as client:
        assert_echo(client)
        new_port = free_port()
        d.listen = [(LOOPBACK4, new_port)]
        rewrite_config(d, dns_server)
        d.send_signal(signal.SIGHUP)
        d.wait_log(r"reloaded: 1 listener\(s\), 1 session\(s\) kept")
        assert is_listening(LOOPBACK4, new_port)
        assert not is_listening(LOOPBACK4, old_port)
        assert_echo(client, b"relay survived the reload\n")
    with open_tunnel(d.address, *echo_target.address) as client:
        assert_echo(client)


def test_reload_recheck_ends_the_relay_a_rule_denies_and_keeps_udp(
        start_daemon, dns_server, echo_target):
    """A rule that denies CONNECT to loopback, added by a reload, ends the
    established relay (close=reload) while the UDP association, which the
    new rules still admit, goes on."""
    d = start_daemon()
    echo = UdpServer(LOOPBACK4)
    a = Association(d.address)
    tunnel = open_tunnel(d.address, *echo_target.address)
    try:
        assert a.request("0.0.0.0", 0).rep == 0
        a.send(LOOPBACK4, echo.port, b"before")
        assert a.recv() == (LOOPBACK4, echo.port, b"before")
        rewrite_config(d, dns_server, timeouts={"udp_idle": 30},
                       **{"rule no-tcp-to-loopback": {
                           "action": "deny", "command": "connect",
                           "dest": "127.0.0.0/8"},
                          "rule rest": {"action": "allow"}})
        d.send_signal(signal.SIGHUP)
        d.wait_log(r"reloaded: 1 listener\(s\), 2 session\(s\) kept")
        # The new rule refuses a new CONNECT and ends the old one...
        with Socks5Client(d.address) as client:
            assert client.connect(*echo_target.address).rep == 0x02
        fields = d.wait_session(cmd="connect", close="reload")
        assert fields["rule"] == "no-tcp-to-loopback"
        assert tunnel.sock.recv(16) == b""
        # ...while the association keeps working.
        a.send(LOOPBACK4, echo.port, b"after the reload")
        assert a.recv() == (LOOPBACK4, echo.port, b"after the reload")
        tunnel.close()
    finally:
        a.close()
        echo.close()
    d.wait_log(r"cmd=udp .* close=eof")


def test_reload_applies_auth_to_new_requests_only(start_daemon, dns_server,
                                                  echo_target, users_file):
    d = start_daemon()
    with open_tunnel(d.address, *echo_target.address) as old:
        # Without the recheck: a reload that asks for logins would end
        # this session, which has none.
        rewrite_config(d, dns_server, server={"reload_recheck": "no"},
                       auth={"method": "password",
                             "users_file": str(users_file)})
        d.send_signal(signal.SIGHUP)
        d.wait_log(r"reloaded: ")
        with Socks5Client(d.address) as client:
            assert client.greet() == METHOD_REJECT
        user, password = next(iter(USERS.items()))
        with open_tunnel(d.address, *echo_target.address, user=user,
                         password=password) as new:
            assert_echo(new)
        assert_echo(old, b"the old session needs no login\n")


def test_bad_reload_keeps_old_config(start_daemon, echo_target):
    d = start_daemon()
    text = d.config_path.read_text()
    d.config_path.write_text(text + "\n[server]\nno_such_key = 1\n")
    bad_line = len((text + "\n[server]\n").splitlines()) + 1
    d.send_signal(signal.SIGHUP)
    d.wait_log(rf"error: reload rejected: .*{d.config_path.name}:{bad_line}: "
               r"\[server\] no_such_key: unknown key")
    d.wait_log(r"reload rejected: the old configuration stays in force")
    with open_tunnel(d.address, *echo_target.address) as client:
        assert_echo(client)


def test_reload_to_unavailable_listener_is_rejected(start_daemon, dns_server,
                                                    echo_target):
    d = start_daemon()
    old_listen = list(d.listen)
    with socket.socket() as squatter:
        squatter.bind((LOOPBACK4, 0))
        squatter.listen(1)
        d.listen = [(LOOPBACK4, squatter.getsockname()[1])]
        rewrite_config(d, dns_server)
        d.send_signal(signal.SIGHUP)
        d.wait_log(r"reload rejected: cannot open the new listeners")
    d.listen = old_listen
    assert is_listening(*d.address)
    with open_tunnel(d.address, *echo_target.address) as client:
        assert_echo(client)


def test_graceful_stop_lets_sessions_finish(start_daemon, echo_target):
    d = start_daemon(timeouts={"shutdown": 20})
    client = open_tunnel(d.address, *echo_target.address)
    d.send_signal(signal.SIGTERM)
    wait_until(lambda: not is_listening(*d.address), 3, what="listener closed")
    time.sleep(0.3)
    assert d.is_running(), "exited while a session was still open"
    assert_echo(client, b"finishing during shutdown\n")
    started = time.monotonic()
    client.close()
    assert d.wait_exit(3) == 0
    assert time.monotonic() - started < 2


def test_graceful_stop_gives_up_after_shutdown_timeout(start_daemon, echo_target):
    d = start_daemon(timeouts={"shutdown": 1})
    with open_tunnel(d.address, *echo_target.address) as client:
        started = time.monotonic()
        d.send_signal(signal.SIGTERM)
        assert d.wait_exit(4) == 0
        elapsed = time.monotonic() - started
        assert 0.8 <= elapsed < 3, f"stopped after {elapsed:.2f}s"
        assert client.closed_by_peer()
    d.wait_log(r"close=shutdown")


def test_second_signal_stops_at_once(start_daemon, echo_target):
    d = start_daemon(timeouts={"shutdown": 60})
    with open_tunnel(d.address, *echo_target.address):
        d.send_signal(signal.SIGTERM)
        wait_until(lambda: not is_listening(*d.address), 3, what="listener closed")
        started = time.monotonic()
        d.send_signal(signal.SIGINT)
        assert d.wait_exit(3) == 0
        assert time.monotonic() - started < 1.5


def privileged_free_port():
    for port in range(900, 1024):
        if not is_listening(LOOPBACK4, port):
            with socket.socket() as probe:
                try:
                    probe.bind((LOOPBACK4, port))
                except OSError:
                    continue
            return port
    raise AssertionError("no free port below 1024 on 127.0.0.1")


def proc_ids(pid):
    """Real/effective/saved/fs uids and gids, and supplementary groups."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    return fields["Uid"], fields["Gid"], fields["Groups"]


def test_privilege_drop_to_nobody(start_daemon, echo_target):
    nobody = pwd.getpwnam("nobody")
    if os.geteuid() != 0:
        d = start_daemon(server={"user": "nobody"})
        d.wait_log(r"not running as root: \[server\] user nobody ignored")
        return
    port = privileged_free_port()
    d = start_daemon(wait=False, server={"listen": f"{LOOPBACK4}:{port}",
                                         "user": "nobody"})
    d.listen = [(LOOPBACK4, port)]
    d.wait_listening()
    d.wait_log(rf"running as user nobody \(uid {nobody.pw_uid}")
    uids, gids, groups = proc_ids(d.proc.pid)
    assert uids == [str(nobody.pw_uid)] * 4
    assert gids == [str(nobody.pw_gid)] * 4
    assert groups == [str(nobody.pw_gid)]
    with open_tunnel(d.address, *echo_target.address) as client:
        assert_echo(client)


def live_children(pid):
    """Pids of the processes whose parent is pid (the workers)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except (OSError, ValueError):
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[1] == str(pid) and fields[0] != "Z":
            found.append(int(entry))
    return found


def test_make_run_serves_without_a_warning(echo_target):
    """What `make run` starts on a stock machine: the shipped config (its
    port aside) under the descriptor limit this machine has, with -u nobody
    when root, as the Makefile passes. It serves with the automatic number
    of workers (one per CPU but one), relays, reloads, and logs not one warning: neither a max_clients that
    outgrows the descriptor limit nor running as root."""
    shipped = (REPO_ROOT / "conf/socks5d.conf").read_text()
    port = free_port((LOOPBACK4, "::1"))
    text = shipped.replace("listen = 127.0.0.1:1080, [::1]:1080",
                           f"listen = 127.0.0.1:{port}, [::1]:{port}")
    assert text != shipped
    # Readable by nobody, who reads it again at the reload.
    workdir = Path(tempfile.mkdtemp(prefix="socks5d-make-run-"))
    os.chmod(workdir, 0o755)
    command = (["sh", "-c", 'exec "$@" -u nobody', "sh"] if os.geteuid() == 0
               else [])
    d = Daemon(workdir, text, [(LOOPBACK4, port), ("::1", port)],
               command=command)
    try:
        os.chmod(d.config_path, 0o644)
        d.start()
        workers = max(1, min(os.cpu_count() - 1, 64))
        if workers > 1:
            d.wait_log(rf"supervisor: {workers} workers ready")
            assert len(live_children(d.proc.pid)) == workers
        else:
            assert live_children(d.proc.pid) == []
        with open_tunnel(d.address, *echo_target.address) as client:
            assert_echo(client)
        d.send_signal(signal.SIGHUP)
        d.wait_log(r"reloaded: ")
        with open_tunnel(("::1", port), *echo_target.address) as client:
            assert_echo(client)
        if os.geteuid() == 0:
            assert "running as user nobody" in d.log()
        warnings = [line for line in d.log().splitlines() if ": warn: " in line]
        assert warnings == []
        assert d.stop() == 0
    finally:
        if d.is_running():
            d.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def test_user_option_overrides_the_file(start_daemon, echo_target):
    """-u USER wins over [server] user: with the file naming a user that
    does not exist, -u nobody (as root) runs as nobody; and an unknown
    user given with -u stops the start with its name. Not as root, the
    override is ignored like the key, and said so."""
    d = start_daemon(command=["sh", "-c", 'exec "$@" -u nobody', "sh"],
                     server={"user": "no-such-user-in-file"})
    if os.geteuid() != 0:
        d.wait_log(r"not running as root: \[server\] user nobody ignored")
        return
    d.wait_log(r"running as user nobody \(uid ")
    with open_tunnel(d.address, *echo_target.address) as client:
        assert_echo(client)
    bad = start_daemon(wait=False, command=["sh", "-c", 'exec "$@" -u no-such-user-5d',
                                             "sh"])
    assert bad.wait_exit(10) not in (0, None)
    assert "[server] user no-such-user-5d: no such user" in bad.log()


def test_root_without_user_warns(start_daemon):
    d = start_daemon()
    if os.geteuid() == 0:
        d.wait_log(r"warn: running as root: set \[server\] user")
    else:
        time.sleep(0.2)
        assert "running as root" not in d.log()


def test_journal_stream_gets_priority_prefixes(start_daemon, tmp_path, echo_target):
    # The harness writes the first daemon's stderr to socks5d-0.log; make it
    # now so its device and inode can go into JOURNAL_STREAM.
    log_path = tmp_path / "socks5d-0.log"
    log_path.touch()
    st = os.stat(log_path)
    d = start_daemon(env={"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
    assert d.log_path == log_path
    with Socks5Client(d.address) as client:
        assert client.greet(methods=(METHOD_PASSWORD,)) == METHOD_REJECT
    d.wait_log(r"^<6>socks5d: info: session ")
    lines = d.log().splitlines()
    assert lines and all(line.startswith(("<3>", "<4>", "<6>", "<7>")) for line in lines), lines
    assert any(line.startswith("<6>socks5d: info: listening on") for line in lines)


def run_with_stderr_file(args, tmp_path, journal):
    """Run the binary with stderr a fresh file, JOURNAL_STREAM naming that
    file when journal is set (else another file); returns (status, the
    lines it wrote to stderr)."""
    err_path, other = tmp_path / "stderr", tmp_path / "not-the-journal"
    other.touch()
    with open(err_path, "wb") as err:
        st = os.fstat(err.fileno()) if journal else os.stat(other)
        env = dict(daemon_env(), JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
        proc = subprocess.run([str(binary_path()), *args], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=err, env=env,
                              timeout=20)
    text = err_path.read_text()
    assert not sanitizer_reports(text), text
    return proc.returncode, text.splitlines()


def test_start_up_config_errors_keep_the_error_priority(tmp_path):
    """A config that fails at start-up under systemd reaches the journal at
    the error priority, every line; -t outside the journal (a terminal)
    prints the same lines without a prefix."""
    path = tmp_path / "bad.conf"
    path.write_text(f"[server]\nlisten = 127.0.0.1:{free_port()}\nno_such_key = 1\n"
                    "[auth]\nmethod = sometimes\n")
    status, lines = run_with_stderr_file(["-c", str(path)], tmp_path, journal=True)
    assert status == 2
    assert any(f"{path}:3: [server] no_such_key" in line for line in lines), lines
    assert any(f"{path}:5: [auth] method" in line for line in lines), lines
    assert lines and all(line.startswith(f"<3>{path}:") for line in lines), lines
    status, lines = run_with_stderr_file(["-t", "-c", str(path)], tmp_path,
                                         journal=False)
    assert status == 2
    assert len(lines) >= 2 and all(line.startswith(f"{path}:") for line in lines), lines


def test_journal_stream_of_another_file_is_ignored(start_daemon, tmp_path):
    other = tmp_path / "elsewhere"
    other.touch()
    st = os.stat(other)
    d = start_daemon(env={"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
    d.wait_log(r"^socks5d: info: listening on")
    assert not any(line.startswith("<") for line in d.log().splitlines())


def test_syslog_target(start_daemon, tmp_path, echo_target):
    """[server] log = syslog: lines go to /dev/log with facility daemon and
    the level's priority. The daemon runs in a private mount namespace whose
    /dev/log is the test's own socket."""
    sock_path = tmp_path / "devlog.sock"
    syslog = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    syslog.bind(str(sock_path))
    syslog.settimeout(0.2)
    try:
        wrapper = ["unshare", "--mount", "sh", "-c",
                   f"mount -t tmpfs tmpfs /dev && ln -s {sock_path} /dev/log"
                   ' && exec "$0" "$@"']
        d = start_daemon(command=wrapper, server={"log": "syslog"})
        with open_tunnel(d.address, *echo_target.address) as client:
            assert_echo(client)
        received = []

        def session_logged():
            try:
                while True:
                    received.append(syslog.recv(4096).decode())
            except socket.timeout:
                pass
            return any("session client=" in m for m in received)
        wait_until(session_logged, 5, what="session line over syslog")
        pid = d.proc.pid
        daemon_info = 3 * 8 + 6         # LOG_DAEMON | LOG_INFO
        assert any(m.startswith(f"<{daemon_info}>") and f"socks5d[{pid}]: listening on" in m
                   for m in received), received
        assert any(m.startswith(f"<{daemon_info}>") and "session client=" in m
                   for m in received), received
        assert "socks5d: info:" not in d.log(), "logged to stderr despite log = syslog"
    finally:
        syslog.close()


def test_signals_during_start_up_are_not_fatal(start_daemon, users_file, echo_target):
    """A reload requested the moment the listener appears (a service manager
    or an operator may well do that) is handled, not the default action of
    SIGHUP, which would kill the daemon."""
    d = start_daemon(wait=False, auth={"method": "password",
                                       "users_file": str(users_file)})
    wait_until(lambda: is_listening(*d.address), 10, interval=0.0005,
               what="the listener")
    d.send_signal(signal.SIGHUP)
    d.wait_log(r"reloaded: 1 listener")
    assert d.is_running()
    user, password = next(iter(USERS.items()))
    with open_tunnel(d.address, *echo_target.address, user=user,
                     password=password) as client:
        assert_echo(client)


def test_reload_switches_dns_servers_and_finishes_lookups_in_flight(
        start_daemon, dns_server, echo_target):
    """[dns] servers change on reload: new lookups go to the new server,
    while a lookup already asked of the old one still gets its answer."""
    from harness.dns import DnsServer
    new_server = DnsServer(records={"moved.test": ["127.0.0.1"]})
    try:
        d = start_daemon()
        dns_server.delay = 1.0
        slow = Socks5Client(d.address)
        try:
            assert slow.greet() == 0
            slow.send(socks5_request("v4.test", echo_target.port))
            wait_until(lambda: "v4.test" in dns_server.queried_names(), 3,
                       what="the lookup to reach the old server")
            text = d.config_path.read_text().replace(dns_server.address,
                                                     new_server.address)
            d.config_path.write_text(text)
            d.send_signal(signal.SIGHUP)
            d.wait_log(r"reload: new \[dns\] settings in use")
            # The old server's (delayed) answer still completes the request.
            reply = slow.read_reply()
            assert reply.rep == 0
            assert_echo(slow, b"answered by the retired resolver\n")
        finally:
            slow.close()
        with open_tunnel(d.address, "moved.test", echo_target.port) as client:
            assert_echo(client)
        assert "moved.test" in new_server.queried_names()
        assert "moved.test" not in dns_server.queried_names()
    finally:
        new_server.close()


def test_closed_stdio_is_filled_before_any_socket(start_daemon, echo_target):
    """Started with stdin, stdout and stderr closed, socks5d puts /dev/null
    on them before it opens anything, so no socket takes descriptor 0-2
    (where a log line meant for stderr would reach a client); it serves as
    usual."""
    d = start_daemon(command=["sh", "-c", 'exec "$@" <&- >&- 2>&-', "sh"])
    with open_tunnel(d.address, *echo_target.address) as client:
        assert_echo(client)
        for fd in (0, 1, 2):
            assert os.readlink(f"/proc/{d.proc.pid}/fd/{fd}") == "/dev/null"


def nofile_limits(pid):
    """(soft, hard) RLIMIT_NOFILE of a process, from /proc/PID/limits."""
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise AssertionError("no 'Max open files' in /proc/PID/limits")


def test_soft_descriptor_limit_is_raised_to_the_hard_one(start_daemon, dns_server,
                                                         echo_target):
    """Started with a soft limit of 1024 under a hard one of 4096, socks5d
    takes the 4096 (says so at info) and, as max_clients = 1000 needs 2 x
    1000 + 256, warns of nothing; a reload to max_clients = 5000 (10,256
    needed) gets a warning naming both numbers."""
    d = start_daemon(command=["prlimit", "--nofile=1024:4096", "--"],
                     server={"max_clients": 1000})
    d.wait_log(r"descriptor limit raised from 1024 to 4096")
    assert nofile_limits(d.proc.pid) == (4096, 4096)
    with open_tunnel(d.address, *echo_target.address) as client:
        assert_echo(client)
    assert "needs at least" not in d.log()
    rewrite_config(d, dns_server, server={"max_clients": 5000})
    d.send_signal(signal.SIGHUP)
    d.wait_log(r"max_clients = 5000 needs at least 10256 descriptors, but the "
               r"limit is 4096: raise it \(LimitNOFILE=")
    assert nofile_limits(d.proc.pid) == (4096, 4096)


def test_short_hard_descriptor_limit_is_warned_of(start_daemon, echo_target):
    """With soft and hard limits both 1024 there is nothing to raise: a
    max_clients of 10,000 chosen in the file gets a warning at start, and
    socks5d serves all the same."""
    d = start_daemon(command=["prlimit", "--nofile=1024:1024", "--"],
                     server={"max_clients": 10000})
    d.wait_log(r"max_clients = 10000 needs at least 20256 descriptors, but "
               r"the limit is 1024")
    assert "descriptor limit raised" not in d.log()
    assert nofile_limits(d.proc.pid) == (1024, 1024)
    with open_tunnel(d.address, *echo_target.address) as client:
        assert_echo(client)


def test_default_max_clients_fits_the_descriptor_limit(start_daemon, echo_target):
    """The default max_clients (0) under a hard limit of 1024 that cannot be
    raised serves (1024 - 256) / 2 = 384 clients: said at info, shown by
    /metrics, enforced (the 385th is refused), and no shortfall warned of."""
    metrics_port = free_port()
    d = start_daemon(command=["prlimit", "--nofile=1024:1024", "--"],
                     metrics={"listen": f"{LOOPBACK4}:{metrics_port}"})
    d.wait_log(r"info: max_clients = 384: what the descriptor limit of 1024 allows")
    assert scrape(metrics_port)("socks5d_max_clients") == 384
    held = [socket.create_connection(d.address) for _ in range(384)]
    try:
        with open_tunnel(d.address, *echo_target.address, timeout=2):
            pytest.fail("the 385th client was served")
    except (OSError, EOFError):
        pass
    finally:
        for s in held:
            s.close()
    d.wait_log(r"warn: max_clients \(384\) reached")
    assert "needs at least" not in d.log()
