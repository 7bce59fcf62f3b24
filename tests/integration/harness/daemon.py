"""The daemon under test: locating the binary, writing configs, starting and
stopping processes, reading their log.

The binary comes from $SOCKS5D_BIN (default build/socks5d under the repo
root); a relative $SOCKS5D_BIN is taken relative to the repo root too, so the
suite behaves the same from any working directory.

With SOCKS5D_VALGRIND=1 every daemon (and every run_binary) runs under
valgrind memcheck, each process logging to its own file beside the daemon's
log; valgrind_reports() reads those files for errors and leaks, and
TIME_SCALE (10 there, else 1) stretches the harness's waits."""
import glob
import os
import re
import signal
import subprocess
from pathlib import Path

from .net import TIME_SCALE, VALGRIND, format_hostport, is_listening, wait_until

REPO_ROOT = Path(__file__).resolve().parents[3]

# Sanitizer output that must never appear in the daemon's stderr.
SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "runtime error:",
    "LeakSanitizer",
    "SUMMARY: ",
)

# Daemon methods take these (and their callers' timeouts) unscaled and
# apply TIME_SCALE (net.py: 10 under valgrind, else 1) themselves, as
# wait_until does.
START_TIMEOUT = 10.0    # generous: an ASan build under load starts slowly
STOP_TIMEOUT = 5.0

# Definite and indirect leaks count as errors (exit status 99); memory
# still reachable at exit is not a leak.
VALGRIND_ARGS = (
    "valgrind", "--tool=memcheck", "--leak-check=full",
    "--show-leak-kinds=definite,indirect",
    "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=99",
    "--track-fds=no", "--num-callers=30",
)

# Every process started by the suite, so a session-end hook can kill any
# that a failed or interrupted test left behind.
_ALL_PROCESSES = []


def binary_path():
    path = Path(os.environ.get("SOCKS5D_BIN", "build/socks5d"))
    if not path.is_absolute():
        path = REPO_ROOT / path
    return path


def daemon_env():
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0"
    env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    return env


def valgrind_prefix(log_stem):
    """The argv to put in front of the daemon's under SOCKS5D_VALGRIND (else
    []); each process (a forked worker too) logs to log_stem.PID.valgrind."""
    if not VALGRIND:
        return []
    return [*VALGRIND_ARGS, f"--log-file={log_stem}.%p.valgrind"]


def valgrind_problems(text):
    """An excerpt of each memcheck finding in one valgrind log: an error
    summary above zero, or definitely/indirectly lost bytes."""
    problems = []
    match = re.search(r"ERROR SUMMARY: ([\d,]+) errors", text)
    if match and int(match.group(1).replace(",", "")) > 0:
        problems.append(f"ERROR SUMMARY: {match.group(1)} errors")
    for kind in ("definitely", "indirectly"):
        match = re.search(kind + r" lost: ([\d,]+) bytes", text)
        if match and int(match.group(1).replace(",", "")) > 0:
            problems.append(f"{kind} lost: {match.group(1)} bytes")
    return problems


def valgrind_report_text(paths):
    """(problems, excerpt) over the valgrind logs at paths."""
    problems, excerpts = [], []
    for path in paths:
        try:
            text = Path(path).read_text(errors="replace")
        except FileNotFoundError:
            continue
        found = valgrind_problems(text)
        if found:
            problems.extend(f"{Path(path).name}: {p}" for p in found)
            lines = [line for line in text.splitlines() if line.startswith("==")]
            excerpts.append(f"--- {path}\n" + "\n".join(lines[:120]))
    return problems, "\n".join(excerpts)


_RUN_COUNTER = [0]


def run_binary(args, input_text=None, timeout=20.0):
    """Run the binary to completion (for -t, -V, -h, passwd); returns
    CompletedProcess with text stdout/stderr. A sanitizer report (say, a leak
    on a config-error path) or, under valgrind, a memcheck finding fails the
    calling test whatever the exit status."""
    prefix = []
    if VALGRIND:
        _RUN_COUNTER[0] += 1
        stem = REPO_ROOT / "build" / "valgrind" / f"run-{os.getpid()}-{_RUN_COUNTER[0]}"
        stem.parent.mkdir(parents=True, exist_ok=True)
        prefix = valgrind_prefix(stem)
    result = subprocess.run([*prefix, str(binary_path()), *args], input=input_text,
                            capture_output=True, text=True,
                            timeout=timeout * TIME_SCALE,
                            env=daemon_env(), cwd=str(REPO_ROOT))
    reports = sanitizer_reports(result.stderr)
    assert not reports, f"socks5d {' '.join(args)}: sanitizer report:\n{result.stderr}"
    if VALGRIND:
        logs = glob.glob(f"{glob.escape(str(stem))}.*.valgrind")
        problems, excerpt = valgrind_report_text(logs)
        assert not problems, (f"socks5d {' '.join(args)}: valgrind: "
                              f"{'; '.join(problems)}\n{excerpt}")
        for log in logs:
            os.unlink(log)
    return result


def sanitizer_reports(text):
    return [marker for marker in SANITIZER_MARKERS if marker in text]


def render_config(sections):
    """INI text from {section: {key: value}}; None values are left out."""
    lines = []
    for section, keys in sections.items():
        lines.append(f"[{section}]")
        for key, value in keys.items():
            if value is None:
                continue
            if isinstance(value, bool):
                value = "yes" if value else "no"
            lines.append(f"{key} = {value}")
        lines.append("")
    return "\n".join(lines)


def merge_config(base, overrides):
    """Copy of base with overrides ({section: {key: value}}) applied."""
    merged = {section: dict(keys) for section, keys in base.items()}
    for section, keys in overrides.items():
        merged.setdefault(section, {}).update(keys)
    return merged


class Daemon:
    """One running socks5d process with its config, log file and address."""

    def __init__(self, workdir, config_text, listen, name="socks5d", env=None,
                 command=None):
        """env: extra environment variables; command: a wrapper argv put in
        front of the daemon's own (e.g. systemd-socket-activate ...)."""
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.workdir / f"{name}.conf"
        self.config_path.write_text(config_text)
        self.log_path = self.workdir / f"{name}.log"
        self.listen = list(listen)          # [(host, port), ...]
        self.proc = None
        self.returncode = None
        self.extra_env = dict(env or {})
        self.command = list(command or [])
        self.valgrind_stem = self.workdir / name

    @property
    def address(self):
        """Where clients connect: the first listen address."""
        return self.listen[0]

    @property
    def host(self):
        return self.listen[0][0]

    @property
    def port(self):
        return self.listen[0][1]

    def start(self, wait=True):
        self._log_file = open(self.log_path, "wb")
        env = daemon_env()
        env.update(self.extra_env)
        self.proc = subprocess.Popen(
            [*self.command, *valgrind_prefix(self.valgrind_stem), str(binary_path()),
             "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL, stdout=self._log_file,
            stderr=subprocess.STDOUT, env=env, cwd=str(self.workdir))
        _ALL_PROCESSES.append(self.proc)
        if wait:
            self.wait_listening()
        return self

    def wait_listening(self, timeout=START_TIMEOUT):
        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"socks5d exited with {self.proc.returncode} during start-up;"
                    f" log:\n{self.log()}")
            return all(is_listening(host, port) for host, port in self.listen)
        try:
            wait_until(ready, timeout, what="socks5d to listen on "
                       + ", ".join(format_hostport(h, p) for h, p in self.listen))
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; log:\n{self.log()}") from None

    def wait_exit(self, timeout):
        try:
            self.returncode = self.proc.wait(timeout * TIME_SCALE)
        except subprocess.TimeoutExpired:
            return None
        finally:
            if self.proc.returncode is not None:
                self._log_file.close()
        return self.returncode

    def is_running(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, signum):
        self.proc.send_signal(signum)

    def stop(self, signum=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Send signum and wait; kill on timeout. Returns the exit status, or
        None if the daemon had to be killed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        code = self.wait_exit(timeout)
        if code is None:
            self.proc.kill()
            self.wait_exit(timeout)
        return code

    def valgrind_logs(self):
        """The memcheck log of each process this daemon ran as."""
        return sorted(glob.glob(f"{glob.escape(str(self.valgrind_stem))}.*.valgrind"))

    def valgrind_reports(self):
        """(problems, excerpt): memcheck findings in this daemon's logs
        (empty when not under valgrind or all is clean)."""
        return valgrind_report_text(self.valgrind_logs())

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, pattern, timeout=5.0, count=1):
        """Wait until regex pattern has matched count lines of the log; returns
        the matches (a list when count > 1, else the single match)."""
        regex = re.compile(pattern)

        def matches():
            found = [m for m in map(regex.search, self.log().splitlines()) if m]
            return found if len(found) >= count else None
        try:
            found = wait_until(matches, timeout, what=f"log line /{pattern}/")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}; log so far:\n{self.log()}") from None
        return found if count > 1 else found[0]

    def session_lines(self):
        return [parse_session_line(line) for line in self.log().splitlines()
                if SESSION_RE.search(line)]

    def wait_session(self, timeout=5.0, **expected):
        """Wait for an access-log line whose fields include expected (string
        compare) and return its fields as a dict."""
        def find():
            for fields in self.session_lines():
                if all(fields.get(k) == str(v) for k, v in expected.items()):
                    return fields
            return None
        try:
            return wait_until(find, timeout, what=f"session line with {expected}")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}; log so far:\n{self.log()}") from None


SESSION_RE = re.compile(r"socks5d: info: session ")
FIELD_RE = re.compile(r"(\w+)=(\S*)")


def parse_session_line(line):
    """{"client": ..., "user": ..., ...} from an access-log line."""
    body = line[SESSION_RE.search(line).end():]
    return dict(FIELD_RE.findall(body))


def kill_leftovers():
    for proc in _ALL_PROCESSES:
        if proc.poll() is None:
            proc.kill()
            try:
                proc.wait(2.0)
            except subprocess.TimeoutExpired:
                pass
