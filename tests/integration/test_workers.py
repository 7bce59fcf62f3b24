"""[server] workers = N: a supervisor and N worker processes sharing the
listen addresses (SO_REUSEPORT), restarted when they die, reloaded and
stopped through the supervisor, counted together in /metrics and announced
to the service manager once (and READY=1 after a reload only once every
worker has finished it)."""
import array
import os
import re
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path

import pytest

from conftest import base_config
from harness.daemon import Daemon, merge_config, render_config, run_binary, sanitizer_reports
from harness.net import LOOPBACK4, format_hostport, free_port, is_listening, wait_until
from harness.socks5 import Socks5Client, assert_echo, open_tunnel
from test_metrics import scrape
from test_relay import stop_trace, trace_syscalls
from test_service import socket_activated

TAGGED_SESSION_RE = re.compile(r"^\[worker (\d+)\] socks5d: info: session ")


def children(pid):
    """Pids of the live (not zombie) processes whose parent is pid."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may hold spaces: the fields after it are fixed.
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry))
    return sorted(found)


def wait_children(pid, count, timeout=15.0, exclude=()):
    """Wait until pid has count children, none of them in exclude."""
    def check():
        kids = children(pid)
        return kids if len(kids) == count and not set(kids) & set(exclude) else None
    return wait_until(check, timeout, what=f"{count} worker process(es)")


def pid_gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def start_workers(start_daemon, workers=2, metrics=False, **overrides):
    """A daemon with [server] workers; returns (daemon, metrics port or None)
    once every worker listens (the supervisor logs it)."""
    server = {"workers": workers}
    server.update(overrides.pop("server", {}))
    port = None
    if metrics:
        port = free_port()
        overrides["metrics"] = {"listen": format_hostport(LOOPBACK4, port)}
    d = start_daemon(server=server, **overrides)
    # Each worker opens its metrics listener before it reports ready.
    d.wait_log(rf"supervisor: {workers} workers ready", timeout=20)
    return d, port


def tagged_sessions(d):
    """{worker number: count} of access-log lines."""
    counts = {}
    for line in d.log().splitlines():
        m = TAGGED_SESSION_RE.match(line)
        if m:
            counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return counts


def echo_many(d, target, count):
    for i in range(count):
        with open_tunnel(d.address, *target.address) as client:
            assert_echo(client, f"request {i}\n".encode())


def rewrite_config(d, dns_server, **overrides):
    listen = ", ".join(format_hostport(h, p) for h, p in d.listen)
    sections = merge_config(base_config(listen, dns_server.address), overrides)
    d.config_path.write_text(render_config(sections))


# -- processes and load spreading ------------------------------------------

@pytest.mark.deadline(90)
def test_two_workers_share_the_load_and_metrics_add_up(start_daemon, echo_target):
    d, port = start_workers(start_daemon, metrics=True)
    kids = wait_children(d.proc.pid, 2)
    assert len(re.findall(r"worker \d started \(pid \d+\)", d.log())) == 2
    m = scrape(port)
    assert m("socks5d_workers") == 2

    requests = 60
    echo_many(d, echo_target, requests)
    wait_until(lambda: sum(tagged_sessions(d).values()) == requests, 10,
               what="every session logged")
    per_worker = tagged_sessions(d)
    # The kernel hashes each connection to one worker's queue: with 60 of
    # them, one worker serving all would be a 2**-59 chance.
    assert set(per_worker) == {"1", "2"}, per_worker
    # Tagged lines still parse with the harness's access-log parser.
    assert len([s for s in d.session_lines() if s.get("reply") == "0"]) == requests

    # Whichever worker answers the scrape, it reports the sum of both.
    for _ in range(6):
        m = scrape(port)
        assert m("socks5d_sessions_total", cmd="connect") == requests
        assert m("socks5d_replies_total", code="0") == requests
        assert m("socks5d_workers") == 2
    assert children(d.proc.pid) == kids


@pytest.mark.deadline(60)
def test_active_sessions_are_counted_across_workers(start_daemon, echo_target):
    d, port = start_workers(start_daemon, metrics=True)
    tunnels = [open_tunnel(d.address, *echo_target.address) for _ in range(12)]
    try:
        for t in tunnels:
            assert_echo(t, b"0123456789")
        wait_until(lambda: scrape(port).total("socks5d_sessions_active") == 12, 10,
                   what="12 active sessions")
        # Both workers' slots add up, by command and for bytes still moving.
        m = scrape(port)
        assert m("socks5d_sessions_active", cmd="connect") == 12
        assert m("socks5d_relayed_bytes_total", direction="up") == 120
        assert m("socks5d_relayed_bytes_total", direction="down") == 120
        assert set(tagged_sessions(d)) == set()     # none ended yet
        # Open descriptors too: the sum over the workers (each holds its
        # share of the 24 tunnel sockets), as the supervisor counts them
        # every second; a scrape may add its own connection.
        kids = wait_children(d.proc.pid, 2)
        per_worker = [len(os.listdir(f"/proc/{kid}/fd")) for kid in kids]
        wait_until(lambda: sum(per_worker) <= scrape(port)("socks5d_open_fds")
                   <= sum(per_worker) + 2, 10,
                   what=f"socks5d_open_fds to reach {sum(per_worker)}")
        assert scrape(port)("socks5d_open_fds") > max(per_worker) + 2
        # The worker answering a scrape leaves the count to the supervisor
        # instead of scanning its own descriptors on its loop.
        tracers = [trace_syscalls(kid, ["openat"]) for kid in kids]
        for _ in range(4):
            scrape(port)
        opened = [c for t in tracers for c in stop_trace(*t)]
        assert not [c for c in opened if "/proc/self/fd" in c], opened
    finally:
        for t in tunnels:
            t.close()
    wait_until(lambda: scrape(port).total("socks5d_sessions_active") == 0, 10,
               what="no active sessions")


@pytest.mark.deadline(90)
def test_killed_worker_is_replaced_and_counters_go_on(start_daemon, echo_target):
    d, port = start_workers(start_daemon, metrics=True)
    kids = wait_children(d.proc.pid, 2)
    echo_many(d, echo_target, 20)
    wait_until(lambda: scrape(port)("socks5d_sessions_total", cmd="connect") == 20,
               10, what="20 sessions counted")

    os.kill(kids[0], signal.SIGKILL)
    d.wait_log(r"worker \d \(pid %d\) killed by signal 9" % kids[0], timeout=15)
    new = wait_children(d.proc.pid, 2, exclude=[kids[0]])
    assert kids[1] in new
    d.wait_log(r"worker \d started", count=3, timeout=15)
    wait_until(lambda: d.log().count("socks5d ready:") == 3, 20,
               what="the new worker ready")

    # No failed request after the restart.
    echo_many(d, echo_target, 40)
    wait_until(lambda: scrape(port)("socks5d_sessions_total", cmd="connect") == 60,
               10, what="the dead worker's sessions still counted")
    assert scrape(port)("socks5d_workers") == 2
    assert d.is_running()


def newest_worker(d):
    """(slot, pid) of the worker the supervisor started last."""
    slot, pid = re.findall(r"worker (\d+) started \(pid (\d+)\)", d.log())[-1]
    return int(slot), int(pid)


@pytest.mark.deadline(60)
def test_crash_loop_is_rate_limited(start_daemon):
    d, _ = start_workers(start_daemon)
    slot, pid = newest_worker(d)
    for kill in range(3):
        os.kill(pid, signal.SIGKILL)
        d.wait_log(r"worker \d started", count=3 + kill, timeout=15)
        started = newest_worker(d)
        assert started[0] == slot and started[1] != pid
        pid = started[1]
    # The slot died within a second of starting: its restart waited.
    d.wait_log(rf"worker {slot}: restarting in \d\.\ds")
    d.wait_log(r"worker \d started", count=5, timeout=15)
    assert len(wait_children(d.proc.pid, 2)) == 2


# -- signals ------------------------------------------------------------------

@pytest.mark.deadline(90)
def test_reload_reaches_every_worker(start_daemon, dns_server, echo_target):
    d, _ = start_workers(start_daemon)
    echo_many(d, echo_target, 4)
    wait_until(lambda: sum(tagged_sessions(d).values()) == 4, 10,
               what="the sessions before the reload logged")
    rewrite_config(d, dns_server, server={"workers": 2},
                   **{"rule no-loopback": {"action": "deny", "command": "connect",
                                           "dest": "127.0.0.0/8"},
                      "rule rest": {"action": "allow"}})
    d.send_signal(signal.SIGHUP)
    d.wait_log(r"^\[worker 1\] .*reloaded: 1 listener", timeout=10)
    d.wait_log(r"^\[worker 2\] .*reloaded: 1 listener", timeout=10)
    before = tagged_sessions(d)
    requests = 40
    for _ in range(requests):
        with Socks5Client(d.address) as client:
            assert client.connect(*echo_target.address).rep == 0x02
    wait_until(lambda: sum(tagged_sessions(d).values()) == sum(before.values()) + requests,
               10, what="the denied sessions logged")
    denied = [line for line in d.log().splitlines()
              if TAGGED_SESSION_RE.match(line) and "reply=2" in line]
    assert len(denied) == requests
    assert {TAGGED_SESSION_RE.match(line).group(1) for line in denied} == {"1", "2"}


@pytest.mark.deadline(90)
def test_reload_adds_a_listener_in_every_worker(start_daemon, dns_server, echo_target):
    d, _ = start_workers(start_daemon)
    port = free_port()
    old = format_hostport(*d.address)
    sections = merge_config(base_config(f"{old}, {format_hostport(LOOPBACK4, port)}",
                                        dns_server.address),
                            {"server": {"workers": 2}})
    d.config_path.write_text(render_config(sections))
    d.send_signal(signal.SIGHUP)
    d.wait_log(r"^\[worker 1\] .*reloaded: 2 listener", timeout=10)
    d.wait_log(r"^\[worker 2\] .*reloaded: 2 listener", timeout=10)
    d.listen = [(LOOPBACK4, port)]
    before = sum(tagged_sessions(d).values())
    echo_many(d, echo_target, 40)
    wait_until(lambda: sum(tagged_sessions(d).values()) == before + 40, 10,
               what="the sessions on the new address logged")
    served = {TAGGED_SESSION_RE.match(line).group(1)
              for line in d.log().splitlines()
              if TAGGED_SESSION_RE.match(line)}
    assert served == {"1", "2"}


def proc_uids(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                return [int(u) for u in line.split()[1:]]
    raise AssertionError(f"no Uid line for {pid}")


def privileged_free_port():
    for port in range(900, 1024):
        with socket.socket() as probe:
            try:
                probe.bind((LOOPBACK4, port))
            except OSError:
                continue
        return port
    raise AssertionError("no free port below 1024 on 127.0.0.1")


@pytest.mark.deadline(90)
def test_workers_drop_privileges_and_a_restart_shares_reloaded_listeners(
        start_daemon, dns_server, echo_target):
    import pwd
    nobody = pwd.getpwnam("nobody")
    if os.geteuid() != 0:
        d, _ = start_workers(start_daemon, server={"user": "nobody"})
        d.wait_log(r"not running as root: \[server\] user nobody ignored", count=2)
        return
    # The workers read the config again as nobody: keep it where they can.
    workdir = Path(tempfile.mkdtemp(prefix="socks5d-workers-"))
    workdir.chmod(0o755)
    port = privileged_free_port()
    extra = free_port()
    metrics_port = free_port()

    def config(listen):
        return render_config(merge_config(
            base_config(listen, dns_server.address),
            {"server": {"user": "nobody", "workers": 2},
             "metrics": {"listen": format_hostport(LOOPBACK4, metrics_port)}}))

    d = Daemon(workdir, config(f"{LOOPBACK4}:{port}"), [(LOOPBACK4, port)])
    d.config_path.chmod(0o644)
    try:
        d.start(wait=False)
        d.wait_log(r"supervisor: 2 workers ready", timeout=20)
        kids = wait_children(d.proc.pid, 2)
        # The supervisor keeps root to start workers on port < 1024 again.
        assert proc_uids(d.proc.pid)[0] == 0
        for pid in kids:
            assert proc_uids(pid) == [nobody.pw_uid] * 4
        # Workers that dropped privileges cannot read each other's
        # descriptors: the supervisor (root) counts them for /metrics.
        fds = sum(len(os.listdir(f"/proc/{pid}/fd")) for pid in kids)
        wait_until(lambda: fds <= scrape(metrics_port)("socks5d_open_fds") <= fds + 2,
                   10, what=f"socks5d_open_fds to reach {fds}")
        # A reload adds an address; the (unprivileged) workers open it.
        d.config_path.write_text(config(f"{LOOPBACK4}:{port}, {LOOPBACK4}:{extra}"))
        d.send_signal(signal.SIGHUP)
        d.wait_log(r"^\[worker 1\] .*reloaded: 2 listener", timeout=10)
        d.wait_log(r"^\[worker 2\] .*reloaded: 2 listener", timeout=10)
        # A worker started again binds both as root, next to the others'
        # sockets: they must all have one owner for SO_REUSEPORT.
        os.kill(kids[0], signal.SIGKILL)
        wait_until(lambda: d.log().count("socks5d ready:") == 3, 20,
                   what="the new worker ready")
        assert "exited with status" not in d.log()
        new = wait_children(d.proc.pid, 2, exclude=[kids[0]])
        for pid in new:
            wait_until(lambda: proc_uids(pid) == [nobody.pw_uid] * 4, 10,
                       what="the new worker to drop privileges")
        for address in ((LOOPBACK4, port), (LOOPBACK4, extra)):
            d.listen = [address]
            echo_many(d, echo_target, 10)
        assert d.stop(timeout=20) == 0, d.log()
        assert not sanitizer_reports(d.log()), d.log()
    finally:
        if d.is_running():
            d.proc.kill()
            d.wait_exit(5)
        shutil.rmtree(workdir, ignore_errors=True)




@pytest.mark.deadline(60)
def test_sigterm_stops_every_worker(start_daemon, echo_target):
    d, _ = start_workers(start_daemon)
    kids = wait_children(d.proc.pid, 2)
    tunnel = open_tunnel(d.address, *echo_target.address)
    assert_echo(tunnel)
    d.send_signal(signal.SIGTERM)
    # The worker holding the session lets it finish; the other stops.
    d.wait_log(r"stopped accepting", count=2, timeout=15)
    assert_echo(tunnel, b"still relayed while stopping\n")
    tunnel.close()
    assert d.wait_exit(20) == 0, d.log()
    for pid in kids:
        assert pid_gone(pid), f"worker {pid} outlived the supervisor"
    assert not is_listening(*d.address)


@pytest.mark.deadline(60)
def test_second_signal_stops_workers_at_once(start_daemon, echo_target):
    d, _ = start_workers(start_daemon, timeouts={"shutdown": 60})
    tunnel = open_tunnel(d.address, *echo_target.address)
    assert_echo(tunnel)
    d.send_signal(signal.SIGTERM)
    d.wait_log(r"stopped accepting", count=2, timeout=15)
    d.send_signal(signal.SIGINT)
    assert d.wait_exit(15) == 0, d.log()
    tunnel.close()


def process_ended(pid):
    """Gone, or a zombie waiting for whoever adopted it."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"


@pytest.mark.deadline(60)
def test_workers_die_with_the_supervisor(start_daemon):
    d, _ = start_workers(start_daemon)
    kids = wait_children(d.proc.pid, 2)
    d.proc.kill()
    d.wait_exit(10)
    # Their parent-death signal is SIGTERM: a graceful stop, not a hang.
    wait_until(lambda: all(process_ended(pid) for pid in kids), 20,
               what="workers to exit")
    assert not is_listening(*d.address)


# -- configuration ------------------------------------------------------------

def automatic_workers():
    """workers = 0: a worker per CPU but one, left to the kernel."""
    return max(1, min(os.cpu_count() - 1, 64))


@pytest.mark.deadline(60)
def test_workers_zero_leaves_a_cpu_to_the_kernel(start_daemon):
    expected = automatic_workers()
    if expected == 1:
        d = start_daemon(server={"workers": 0})
        assert children(d.proc.pid) == []
        assert "supervisor" not in d.log()
        return
    d, _ = start_workers(start_daemon, workers=expected, server={"workers": 0})
    assert len(wait_children(d.proc.pid, expected)) == expected


def test_one_worker_is_a_single_process(start_daemon, echo_target):
    d = start_daemon(server={"workers": 1})
    with open_tunnel(d.address, *echo_target.address) as client:
        assert_echo(client)
    assert children(d.proc.pid) == []
    assert "supervisor" not in d.log()
    assert "[worker" not in d.log()


@pytest.mark.parametrize("value", ["-1", "65", "1000", "two", "1.5", ""])
def test_bad_workers_values_are_config_errors(tmp_path, value):
    path = tmp_path / "bad.conf"
    path.write_text(f"[server]\nworkers = {value}\nlisten = 127.0.0.1:1080\n")
    result = run_binary(["-t", "-c", str(path)])
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert f"{path}:2: [server] workers: " in output, output


def test_good_workers_values_pass_the_check(tmp_path):
    for value in ("0", "1", "2", "64"):
        path = tmp_path / f"w{value}.conf"
        path.write_text(f"[server]\nworkers = {value}\nlisten = 127.0.0.1:1080\n")
        result = run_binary(["-t", "-c", str(path)])
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.deadline(60)
def test_port_in_use_fails_start_up(start_daemon, tmp_path):
    d, _ = start_workers(start_daemon)
    path = tmp_path / "second.conf"
    path.write_text(render_config({"server": {"listen": format_hostport(*d.address),
                                              "workers": 2}}))
    result = run_binary(["-c", str(path)], timeout=30)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Address already in use" in output
    assert "worker 1 started" not in output


# -- service manager ------------------------------------------------------------

class CredNotifyListener:
    """A $NOTIFY_SOCKET that also learns each datagram's sender pid."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.setblocking(False)
        self.env_value = str(path)
        self.messages = []          # (pid, text)

    def poll(self):
        space = socket.CMSG_SPACE(array.array("i", [0, 0, 0]).itemsize * 3)
        while True:
            try:
                data, ancdata, _, _ = self.sock.recvmsg(4096, space)
            except BlockingIOError:
                return self.messages
            pid = None
            for level, kind, cdata in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = array.array("i", cdata[:12])[0]
            self.messages.append((pid, data.decode()))

    def lines(self, field):
        return [(pid, m) for pid, m in self.poll() if field in m.split("\n")]

    def wait_for(self, field, count=1, timeout=15.0):
        wait_until(lambda: len(self.lines(field)) >= count, timeout,
                   what=f"sd_notify {field} x{count}")

    def close(self):
        self.sock.close()


@pytest.mark.deadline(90)
def test_supervisor_alone_speaks_to_the_service_manager(start_daemon, tmp_path,
                                                        echo_target):
    notify = CredNotifyListener(tmp_path / "notify.sock")
    try:
        d, _ = start_workers(start_daemon, env={"NOTIFY_SOCKET": notify.env_value,
                                                "WATCHDOG_USEC": "400000"})
        notify.wait_for("READY=1")
        notify.wait_for("WATCHDOG=1", count=2)
        kids = wait_children(d.proc.pid, 2)
        # A worker restarted later does not announce itself again.
        os.kill(kids[0], signal.SIGKILL)
        wait_children(d.proc.pid, 2, exclude=[kids[0]])
        wait_until(lambda: d.log().count("socks5d ready:") == 3, 20,
                   what="the new worker ready")
        with open_tunnel(d.address, *echo_target.address) as client:
            assert_echo(client)
        d.send_signal(signal.SIGHUP)
        notify.wait_for("RELOADING=1")
        notify.wait_for("READY=1", count=2)
        d.wait_log(r"^\[worker 2\] .*reloaded", timeout=10)
        d.send_signal(signal.SIGTERM)
        assert d.wait_exit(20) == 0, d.log()
        notify.wait_for("STOPPING=1")
        messages = notify.poll()
        assert len(notify.lines("READY=1")) == 2, messages
        assert len(notify.lines("STOPPING=1")) == 1, messages
        first_ready = notify.lines("READY=1")[0][1]
        assert "STATUS=serving, 0 session(s)" in first_ready
        senders = {pid for pid, _ in messages}
        assert senders == {d.proc.pid}, f"sd_notify from {senders}, not only the supervisor"
    finally:
        notify.close()


@pytest.mark.deadline(60)
def test_socket_activation_with_workers(start_daemon, echo_target):
    d = socket_activated(start_daemon, LOOPBACK4, server={"workers": 2})
    configured_port = d.configured_port
    # The first connection makes systemd-socket-activate exec the daemon.
    for i in range(20):
        with open_tunnel(d.address, *echo_target.address) as client:
            assert_echo(client, f"activated {i}\n".encode())
    d.wait_log(r"supervisor: 2 workers ready", timeout=20)
    d.wait_log(r"listening on 127\.0\.0\.1:\d+ \(socket activation\)", count=2)
    assert len(wait_children(d.proc.pid, 2)) == 2
    assert not is_listening(LOOPBACK4, configured_port)
    wait_until(lambda: sum(tagged_sessions(d).values()) == 20, 10,
               what="every session logged")


# -- reload: READY=1 only once every worker has finished ----------------------

@pytest.fixture
def cred_notify(tmp_path):
    listener = CredNotifyListener(tmp_path / "notify.sock")
    yield listener
    listener.close()


def notify_env(listener):
    return {"env": {"NOTIFY_SOCKET": listener.env_value}}


def worker_slots(d):
    """{pid: slot} of every worker started so far."""
    return {int(pid): int(slot) for slot, pid in
            re.findall(r"worker (\d+) started \(pid (\d+)\)", d.log())}


def write_listen(d, dns_server, addresses):
    listen = ", ".join(format_hostport(h, p) for h, p in addresses)
    sections = merge_config(base_config(listen, dns_server.address),
                            {"server": {"workers": 2}})
    d.config_path.write_text(render_config(sections))


def log_index(log, pattern):
    """Index of the first log line matching pattern (-1: none)."""
    for i, line in enumerate(log.splitlines()):
        if re.search(pattern, line):
            return i
    return -1


def ready_count(notify):
    return len(notify.lines("READY=1"))


class Stopped:
    """SIGSTOP a worker for the with block: a worker that is slow to
    reload; SIGCONT always, or it could not stop at teardown."""

    def __init__(self, pid):
        self.pid = pid

    def __enter__(self):
        os.kill(self.pid, signal.SIGSTOP)
        return self

    def __exit__(self, *exc):
        try:
            os.kill(self.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


def reload_workers(start_daemon, notify):
    """A notified daemon with 2 workers; returns (d, [(slot, pid)] sorted
    by slot)."""
    d, _ = start_workers(start_daemon, **notify_env(notify))
    notify.wait_for("READY=1")
    pids = wait_children(d.proc.pid, 2)
    slots = worker_slots(d)
    return d, sorted((slots[pid], pid) for pid in pids)


@pytest.mark.deadline(60)
def test_reload_ready_waits_for_every_worker(start_daemon, cred_notify, dns_server,
                                            echo_target):
    d, ((fast, _), (slow, slow_pid)) = reload_workers(start_daemon, cred_notify)
    port = free_port()
    write_listen(d, dns_server, [d.address, (LOOPBACK4, port)])
    with Stopped(slow_pid):
        d.send_signal(signal.SIGHUP)
        cred_notify.wait_for("RELOADING=1")
        d.wait_log(rf"^\[worker {fast}\] .*reloaded: 2 listener", timeout=10)
        time.sleep(1.0)
        # Worker `slow` has not even seen its SIGHUP: no READY=1 yet.
        assert ready_count(cred_notify) == 1, cred_notify.poll()
    cred_notify.wait_for("READY=1", count=2)
    log = d.log()
    done = log_index(log, r"^socks5d: info: supervisor: reload finished in every worker")
    assert done >= 0, log
    for slot in (fast, slow):
        assert 0 <= log_index(log, rf"^\[worker {slot}\] .*reloaded: 2 listener") < done, log
    assert "has not finished reloading" not in log
    # Whichever worker the kernel picks, the new address is served.
    d.listen = [(LOOPBACK4, port)]
    echo_many(d, echo_target, 10)
    messages = [m for _, m in cred_notify.poll()]
    assert [m.split("\n")[0] for m in messages if "RELOADING=1" in m or "READY=1" in m] \
        == ["READY=1", "RELOADING=1", "READY=1"], messages


@pytest.mark.deadline(60)
def test_second_reload_while_waiting_is_answered_once_for_the_newest(
        start_daemon, cred_notify, dns_server):
    d, ((fast, _), (slow, slow_pid)) = reload_workers(start_daemon, cred_notify)
    extra = [(LOOPBACK4, free_port()), (LOOPBACK4, free_port())]
    with Stopped(slow_pid):
        write_listen(d, dns_server, [d.address, extra[0]])
        d.send_signal(signal.SIGHUP)
        d.wait_log(rf"^\[worker {fast}\] .*reloaded: 2 listener", timeout=10)
        write_listen(d, dns_server, [d.address, *extra])
        d.send_signal(signal.SIGHUP)
        d.wait_log(rf"^\[worker {fast}\] .*reloaded: 3 listener", timeout=10)
        cred_notify.wait_for("RELOADING=1", count=2)
        time.sleep(0.5)
        # The fast worker answered both, but `slow` neither.
        assert ready_count(cred_notify) == 1, cred_notify.poll()
    # The two SIGHUPs `slow` got while stopped make one reload, of the
    # newest file; that one answer ends the wait.
    cred_notify.wait_for("READY=1", count=2)
    assert re.search(rf"^\[worker {slow}\] .*reloaded: 3 listener", d.log(), re.M), d.log()
    time.sleep(1.0)
    assert ready_count(cred_notify) == 2, cred_notify.poll()
    for address in extra:
        assert is_listening(*address)


@pytest.mark.deadline(60)
def test_reload_rejected_by_the_workers_still_ends_with_ready(
        start_daemon, cred_notify, dns_server, echo_target):
    d, _ = reload_workers(start_daemon, cred_notify)
    # Held without SO_REUSEPORT: the supervisor accepts the file (it does
    # not bind on a reload), every worker fails to open the address.
    with socket.socket() as taken:
        taken.bind((LOOPBACK4, 0))
        taken.listen()
        write_listen(d, dns_server, [d.address, taken.getsockname()])
        d.send_signal(signal.SIGHUP)
        cred_notify.wait_for("READY=1", count=2)
    log = d.log()
    done = log_index(log, r"supervisor: reload finished in every worker")
    assert done >= 0, log
    for slot in (1, 2):
        assert 0 <= log_index(log, rf"^\[worker {slot}\] .*reload rejected: cannot open "
                              r"the new listeners") < done, log
    echo_many(d, echo_target, 4)


@pytest.mark.deadline(60)
def test_bad_reload_is_not_passed_on(start_daemon, cred_notify, echo_target):
    d, _ = reload_workers(start_daemon, cred_notify)
    text, n = re.subn(r"^workers = .*$", "workers = two", d.config_path.read_text(),
                      flags=re.M)
    assert n == 1, text
    d.config_path.write_text(text)
    d.send_signal(signal.SIGHUP)
    d.wait_log(r"^socks5d: error: reload rejected: .*:\d+: \[server\] workers: "
               r"(?!set twice)")
    d.wait_log(r"^socks5d: error: reload rejected: the old configuration stays")
    # Nothing to wait for: READY=1 at once.
    cred_notify.wait_for("RELOADING=1")
    cred_notify.wait_for("READY=1", count=2, timeout=5)
    time.sleep(0.5)
    assert not re.search(r"^\[worker \d\] .*reloading", d.log(), re.M)
    echo_many(d, echo_target, 4)


@pytest.mark.deadline(60)
def test_worker_killed_during_a_reload_does_not_hold_ready(
        start_daemon, cred_notify, dns_server, echo_target):
    d, ((fast, _), (slow, slow_pid)) = reload_workers(start_daemon, cred_notify)
    port = free_port()
    write_listen(d, dns_server, [d.address, (LOOPBACK4, port)])
    with Stopped(slow_pid):
        d.send_signal(signal.SIGHUP)
        d.wait_log(rf"^\[worker {fast}\] .*reloaded: 2 listener", timeout=10)
        time.sleep(0.5)
        assert ready_count(cred_notify) == 1, cred_notify.poll()
        os.kill(slow_pid, signal.SIGKILL)
        killed = time.monotonic()
        # Well before the 10 s deadline for a worker that does not answer.
        cred_notify.wait_for("READY=1", count=2, timeout=5)
    assert time.monotonic() - killed < 5
    assert "has not finished reloading" not in d.log()
    # Its replacement starts with the new file.
    d.wait_log(rf"^\[worker {slow}\] .*socks5d ready: 2 listener", timeout=15)
    d.listen = [(LOOPBACK4, port)]
    echo_many(d, echo_target, 10)
    assert ready_count(cred_notify) == 2, cred_notify.poll()


@pytest.mark.deadline(60)
def test_worker_stuck_in_a_reload_is_given_up_on(start_daemon, cred_notify, dns_server):
    d, ((fast, _), (slow, slow_pid)) = reload_workers(start_daemon, cred_notify)
    write_listen(d, dns_server, [d.address, (LOOPBACK4, free_port())])
    with Stopped(slow_pid):
        sent = time.monotonic()
        d.send_signal(signal.SIGHUP)
        cred_notify.wait_for("READY=1", count=2, timeout=20)
        waited = time.monotonic() - sent
        assert 9.0 < waited < 15, waited
        d.wait_log(rf"^socks5d: warn: reload: worker {slow} \(pid {slow_pid}\) has not "
                   r"finished reloading after 10s; READY=1 without it")
        assert "supervisor: reload finished in every worker" not in d.log()
    # Its late answer is not a second READY=1.
    d.wait_log(rf"^\[worker {slow}\] .*reloaded: 2 listener", timeout=10)
    time.sleep(0.5)
    assert ready_count(cred_notify) == 2, cred_notify.poll()
