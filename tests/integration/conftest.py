"""Fixtures for the socks5d black-box suite.

Every test gets a hard deadline (SIGALRM; pytest-timeout may be absent), and
every daemon a test starts is stopped with SIGTERM at teardown, which must
exit 0 with no sanitizer report in its stderr (and, under SOCKS5D_VALGRIND=1,
no memcheck error or leak in its valgrind log). In that mode deadlines are
stretched by daemon.TIME_SCALE and tests marked no_valgrind are deselected."""
import signal

import pytest

from harness import daemon as daemon_mod
from harness.daemon import Daemon, binary_path, merge_config, render_config, run_binary
from harness.dns import DnsServer
from harness.net import (LOOPBACK4, LOOPBACK6, VALGRIND, format_hostport,
                         free_port)
from harness.targets import TargetServer, behave_echo

DEFAULT_DEADLINE = 45

# Users for password tests: names and passwords chosen to include characters
# (':', spaces, '@') that a careless users-file or RFC 1929 parser mishandles.
USERS = {
    "alice": "wonderland",
    "bob": "p@ss:w0rd with spaces",
}


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "deadline(seconds): hard per-test time limit (default "
        f"{DEFAULT_DEADLINE}s)")


# Tests that cannot work under valgrind, by node id prefix, with the reason;
# they get the no_valgrind marker here (so their files need not change) and
# are deselected in that mode only.
NO_VALGRIND = {
    "test_descriptors.py::test_exhaustion_pauses_without_spinning_and_recovers":
        "valgrind keeps descriptors of its own and emulates RLIMIT_NOFILE, so "
        "prlimit from outside cannot put the daemon at its limit; the CPU "
        "bound is timing too",
    "test_metrics.py::test_descriptor_exhaustion":
        "the same: prlimit from outside cannot put a daemon under valgrind at "
        "its descriptor limit",
    "test_service.py::test_closed_stdio_is_filled_before_any_socket":
        "valgrind opens its own log file before the daemon runs, so with "
        "descriptors 0-2 closed it takes one of them itself",
    "test_service.py::test_soft_descriptor_limit_is_raised_to_the_hard_one":
        "valgrind emulates RLIMIT_NOFILE and shows the daemon a soft limit "
        "equal to the hard one, so there is nothing for it to raise",
    "test_service.py::test_short_hard_descriptor_limit_is_warned_of":
        "the same: under valgrind the daemon never sees the limits prlimit "
        "set",
    "test_relay.py::test_io_uring_is_the_default":
        "memcheck cannot see the kernel fill a buffer through io_uring (see "
        "base_config)",
    "test_relay.py::test_io_uring_denied_falls_back":
        "strace and valgrind cannot both trace the daemon",
    "test_faults.py::":
        "each scenario compares the daemon's PSS and descriptors with a "
        "baseline, which measures valgrind's own memory, not the daemon's",
}


def pytest_collection_modifyitems(config, items):
    """Under valgrind, leave out the few tests that cannot work there (each
    marker says why)."""
    for item in items:
        nodeid = item.nodeid.split("/")[-1]
        for prefix, reason in NO_VALGRIND.items():
            if nodeid.startswith(prefix):
                item.add_marker(pytest.mark.no_valgrind(reason))
    if not daemon_mod.VALGRIND:
        return
    kept, dropped = [], []
    for item in items:
        (dropped if item.get_closest_marker("no_valgrind") else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_sessionfinish(session, exitstatus):
    daemon_mod.kill_leftovers()


class DeadlineExceeded(Exception):
    pass


@pytest.fixture(autouse=True)
def _deadline(request):
    """Fail (never hang) a test that runs past its deadline. Autouse fixtures
    are set up first and torn down last, so the deadline also covers the
    other fixtures' teardown."""
    marker = request.node.get_closest_marker("deadline")
    seconds = (marker.args[0] if marker else DEFAULT_DEADLINE) * daemon_mod.TIME_SCALE

    def expire(signum, frame):
        raise DeadlineExceeded(f"test exceeded its {seconds}s deadline")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the log of every daemon the test started to a failure report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for index, d in enumerate(getattr(item, "_socks5d_daemons", [])):
            tail = "\n".join(d.log().splitlines()[-60:])
            report.sections.append((f"socks5d #{index} log ({d.log_path})", tail))


@pytest.fixture(scope="session")
def socks5d_binary():
    path = binary_path()
    assert path.is_file(), f"daemon binary {path} not found (run make, or set SOCKS5D_BIN)"
    return path


@pytest.fixture
def dns_server():
    server = DnsServer()
    yield server
    server.close()


@pytest.fixture
def make_target():
    """Factory: make_target(behaviour, hosts=("127.0.0.1",)) -> TargetServer."""
    servers = []

    def make(behaviour=behave_echo, hosts=(LOOPBACK4,)):
        server = TargetServer(behaviour, hosts)
        servers.append(server)
        return server
    yield make
    for server in servers:
        server.close()


@pytest.fixture
def echo_target(make_target):
    return make_target(behave_echo, (LOOPBACK4,))


@pytest.fixture
def echo_target6(make_target):
    return make_target(behave_echo, (LOOPBACK6,))


PORT_RACE_ATTEMPTS = 3


def base_config(listen_value, dns_address):
    # Under valgrind a full-cost argon2id check takes seconds, and a dozen
    # queued ones would outlast a 5 s handshake; tests of the timeouts
    # themselves set their own.
    slow = int(daemon_mod.TIME_SCALE)
    # One process (on more than two CPUs the default is several): most
    # tests read the daemon's own /proc entries and log; test_workers and the make-run test in
    # test_service cover the default.
    server = {"listen": listen_value, "log_level": "info", "workers": 1}
    # memcheck cannot see the kernel fill a buffer through io_uring (the
    # bytes a batched read brought look uninitialised): under valgrind the
    # relay makes its calls one by one; AddressSanitizer covers the batch.
    if VALGRIND:
        server["io_uring"] = "no"
    return {
        "server": server,
        "auth": {"method": "none"},
        "timeouts": {"handshake": 5 * slow, "connect": 5 * slow, "idle": 60,
                     "shutdown": 2},
        "dns": {"servers": dns_address, "timeout": 2},
    }


@pytest.fixture
def start_daemon(request, tmp_path, dns_server, socks5d_binary):
    """Factory: start_daemon(listen_hosts=("127.0.0.1",), wait=True,
    **{section: {key: value}}) -> Daemon.

    The config is the base config (loopback listen, method none, the test DNS
    server) with the given sections merged over it; a value of None removes a
    key. On teardown each daemon still running gets SIGTERM and must exit 0;
    none may have died on its own or printed a sanitizer report."""
    daemons = []
    request.node._socks5d_daemons = daemons

    def start(listen_hosts=(LOOPBACK4,), wait=True, env=None, command=None,
              **overrides):
        # free_port() only promises the port was free a moment ago; when
        # another process takes it first the daemon exits with EADDRINUSE,
        # and a fresh port is the right answer, not a failed test.
        for attempt in range(PORT_RACE_ATTEMPTS):
            port = free_port(tuple(listen_hosts))
            listen = [(host, port) for host in listen_hosts]
            listen_value = ", ".join(format_hostport(h, p) for h, p in listen)
            sections = merge_config(base_config(listen_value, dns_server.address),
                                    overrides)
            name = f"socks5d-{len(daemons)}"
            d = Daemon(tmp_path, render_config(sections), listen, name=name,
                       env=env, command=command)
            daemons.append(d)
            try:
                d.start(wait=wait)
                return d
            except RuntimeError:
                if (attempt + 1 == PORT_RACE_ATTEMPTS
                        or "Address already in use" not in d.log()):
                    raise
                d.wait_exit(1.0)
                daemons.remove(d)

    yield start

    problems, excerpts = [], []
    for d in daemons:
        if d.proc is None:
            continue
        if d.returncode is not None or not d.is_running():
            # The test stopped it (and checked the status) or it died.
            if d.returncode is None:
                d.wait_exit(1.0)
                problems.append(f"{d.config_path.name}: died during the test "
                                f"with status {d.proc.returncode}")
        else:
            code = d.stop(signal.SIGTERM)
            if code != 0:
                problems.append(f"{d.config_path.name}: SIGTERM gave exit status "
                                f"{code if code is not None else 'none (killed)'}")
        reports = daemon_mod.sanitizer_reports(d.log())
        if reports:
            problems.append(f"{d.config_path.name}: sanitizer report {reports}")
        found, excerpt = d.valgrind_reports()
        if found:
            problems.append(f"{d.config_path.name}: valgrind {found}")
            excerpts.append(excerpt)
    if problems:
        pytest.fail("; ".join(problems) + "\n--- last log ---\n"
                    + "\n".join(daemons[-1].log().splitlines()[-60:])
                    + "".join("\n--- valgrind ---\n" + e for e in excerpts),
                    pytrace=False)


@pytest.fixture
def daemon(start_daemon):
    """A daemon with the base config: method none, listening on 127.0.0.1."""
    return start_daemon()


@pytest.fixture(scope="session")
def users_file(tmp_path_factory, socks5d_binary):
    """A users file for USERS, made with `socks5d passwd NAME` (so it also
    proves the passwd subcommand's output is what the daemon reads)."""
    path = tmp_path_factory.mktemp("users") / "users"
    lines = ["# test users, generated by socks5d passwd"]
    for name, password in USERS.items():
        result = run_binary(["passwd", name], input_text=password + "\n", timeout=60)
        assert result.returncode == 0, f"passwd {name}: {result.stderr}"
        lines.append(result.stdout.strip())
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)           # the daemon rightly warns about readable secrets
    return path


@pytest.fixture
def password_daemon(start_daemon, users_file):
    return start_daemon(auth={"method": "password", "users_file": str(users_file)})


@pytest.fixture
def write_config(tmp_path):
    """Factory: write_config(text, name="test.conf") -> Path."""
    def write(text, name="test.conf"):
        path = tmp_path / name
        path.write_text(text)
        return path
    return write


@pytest.fixture
def check_config(write_config, socks5d_binary):
    """Factory: check_config(text) -> (CompletedProcess, path): runs `-t`."""
    def check(text, name="test.conf"):
        path = write_config(text, name)
        return run_binary(["-t", "-c", str(path)]), path
    return check


