"""The command line and the configuration: -t, -V, -h, error reports naming
file, line and key, the open-proxy guard, and the passwd subcommand."""
import glob
import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import termios
import time

import pytest

from harness.daemon import (binary_path, daemon_env, run_binary, sanitizer_reports,
                            valgrind_prefix, valgrind_report_text)
from harness.net import TIME_SCALE, free_port
from harness.socks5 import METHOD_PASSWORD, Socks5Client, assert_echo

GOOD_CONFIG = """\
# every key, explicitly
[server]
listen = 127.0.0.1:{port}, [::1]:{port}
max_clients = 100
relay = copy              ; splice | copy
log_level = debug
allow_open = no

[auth]
method = none

[timeouts]
handshake = 10
connect = 10
idle = 300

[dns]
servers = 127.0.0.1:5353
timeout = 5
family = ipv4

[outbound]
bind_ipv4 = 127.0.0.1
bind_ipv6 = ::1
"""

MINIMAL_CONFIG = "[server]\nlisten = 127.0.0.1:{port}\n"


def config_error_lines(result):
    return (result.stdout + result.stderr).splitlines()


def assert_config_error(result, path, line, section, key):
    """Exit 2 and an error line FILE:LINE: [section] key: why."""
    output = result.stdout + result.stderr
    assert result.returncode == 2, f"exit {result.returncode}, output:\n{output}"
    pattern = re.compile(re.escape(f"{path}:{line}:") + r".*"
                         + re.escape(f"[{section}] {key}:") + r"\s*\S")
    assert pattern.search(output), f"no '{path}:{line}: [{section}] {key}: why' in:\n{output}"
    assert "config ok" not in output


# -- -t on good configs ------------------------------------------------------

def test_check_good_config(check_config):
    result, _ = check_config(GOOD_CONFIG.format(port=free_port()))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "config ok" in result.stdout + result.stderr


def test_check_minimal_config(check_config):
    result, _ = check_config(MINIMAL_CONFIG.format(port=free_port()))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "config ok" in result.stdout + result.stderr


def test_check_does_not_listen(check_config):
    """-t validates only: it must exit at once without binding."""
    port = free_port()
    result, _ = check_config(MINIMAL_CONFIG.format(port=port))
    assert result.returncode == 0
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))       # still free


def test_check_password_config(check_config, users_file):
    text = MINIMAL_CONFIG.format(port=free_port()) + \
        f"[auth]\nmethod = password\nusers_file = {users_file}\n"
    result, _ = check_config(text)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "config ok" in result.stdout + result.stderr


# -- bad configs -------------------------------------------------------------

BAD_VALUES = [
    ("server", "listen", "localhost:1080"),          # names are not allowed
    ("server", "listen", "127.0.0.1"),               # no port
    ("server", "listen", "127.0.0.1:70000"),
    ("server", "listen", "[::1:1080"),
    ("server", "max_clients", "many"),
    ("server", "max_clients", "-1"),
    ("server", "max_clients", "10x"),
    ("server", "relay", "sendfile"),
    ("server", "log_level", "verbose"),
    ("server", "allow_open", "maybe"),
    ("auth", "method", "gssapi"),
    ("timeouts", "handshake", "ten"),
    ("timeouts", "connect", "-5"),
    ("timeouts", "idle", "1.5.2"),
    ("dns", "timeout", "soon"),
    ("dns", "family", "ipv5"),
    ("dns", "servers", "not-an-address"),
    ("outbound", "bind_ipv4", "::1"),                # wrong family
    ("outbound", "bind_ipv6", "127.0.0.1"),
    ("outbound", "bind_ipv4", "300.1.1.1"),
]


@pytest.mark.parametrize("section,key,value", BAD_VALUES,
                         ids=[f"{s}.{k}={v}" for s, k, v in BAD_VALUES])
def test_bad_value_names_file_line_and_key(check_config, section, key, value):
    header = MINIMAL_CONFIG.format(port=free_port()) if section != "server" else "[server]\n"
    lines = header.splitlines()
    if section != "server":
        lines.append(f"[{section}]")
    lines.append(f"{key} = {value}")
    bad_line = len(lines)
    if section == "server" and key != "listen":
        lines.append(f"listen = 127.0.0.1:{free_port()}")
    result, path = check_config("\n".join(lines) + "\n")
    assert_config_error(result, path, bad_line, section, key)


def test_unknown_key(check_config):
    text = "[server]\nlisten = 127.0.0.1:{}\nlisten_backlog = 5\n".format(free_port())
    result, path = check_config(text)
    assert_config_error(result, path, 3, "server", "listen_backlog")


def test_key_in_wrong_section(check_config):
    text = "[server]\nlisten = 127.0.0.1:{}\n[dns]\nidle = 5\n".format(free_port())
    result, path = check_config(text)
    assert_config_error(result, path, 4, "dns", "idle")


def test_unknown_section(check_config):
    text = "[server]\nlisten = 127.0.0.1:{}\n\n[stats]\nlisten = 127.0.0.1:9\n".format(free_port())
    result, path = check_config(text)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert re.search(re.escape(f"{path}:") + r"4: \[stats\]: unknown section", output), output


def test_every_error_is_reported(check_config):
    """Loading goes on after the first error, so one run lists them all."""
    text = ("[server]\nlisten = 127.0.0.1:{}\nrelay = fast\nlog_level = loud\n"
            "[timeouts]\nidle = never\n").format(free_port())
    result, path = check_config(text)
    assert_config_error(result, path, 3, "server", "relay")
    assert_config_error(result, path, 4, "server", "log_level")
    assert_config_error(result, path, 6, "timeouts", "idle")


def test_key_set_twice_is_an_error(check_config):
    """A repeated key is refused, naming the first line, not silently
    replaced; so is a repeated [rule NAME]. A rule's list keys are the
    exception: given again they add to the list."""
    port = free_port()
    text = (f"[server]\nlisten = 127.0.0.1:{port}\nlog_level = info\n"
            "log_level = debug\n"
            "[rule office]\naction = allow\nport = 80\nport = 443\n"
            "[rule office]\naction = deny\n")
    result, path = check_config(text)
    assert_config_error(result, path, 4, "server", "log_level")
    output = result.stdout + result.stderr
    assert f"{path}:4: [server] log_level: set twice (first on line 3)" in output, output
    assert f"{path}:9: [rule office]: duplicate section (the first is at line 5)" \
        in output, output
    assert len(config_error_lines(result)) == 2, output


def test_missing_config_file(tmp_path, socks5d_binary):
    missing = tmp_path / "nope.conf"
    result = run_binary(["-t", "-c", str(missing)])
    assert result.returncode == 2
    assert str(missing) in result.stdout + result.stderr


def test_bad_config_without_t_exits_2_without_listening(write_config, socks5d_binary):
    port = free_port()
    path = write_config(f"[server]\nlisten = 127.0.0.1:{port}\nrelay = teleport\n")
    result = run_binary(["-c", str(path)], timeout=10)
    assert result.returncode == 2
    assert f"{path}:3:" in result.stdout + result.stderr


# -- the open-proxy guard -----------------------------------------------------

def open_listen_config(port, extra=""):
    return f"[server]\nlisten = 0.0.0.0:{port}\n{extra}"


def assert_guard_message(output):
    assert "allow_open" in output, f"guard message does not name allow_open:\n{output}"
    assert "password" in output, f"guard message does not suggest password:\n{output}"


def test_open_proxy_guard_in_check_mode(check_config):
    result, _ = check_config(open_listen_config(free_port()))
    assert result.returncode == 2, result.stdout + result.stderr
    assert_guard_message(result.stdout + result.stderr)


def test_open_proxy_guard_refuses_to_start(write_config, socks5d_binary):
    """Without -t the daemon must exit 2 before listening. The test holds
    0.0.0.0:PORT bound (not listening), so even a daemon that ignored the guard
    could not open a non-loopback listener: it would fail differently."""
    holder = socket.socket()
    holder.bind(("0.0.0.0", 0))
    port = holder.getsockname()[1]
    with holder:
        path = write_config(open_listen_config(port))
        try:
            result = run_binary(["-c", str(path)], timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail("daemon with an open listen address kept running")
    assert result.returncode == 2, result.stdout + result.stderr
    assert_guard_message(result.stdout + result.stderr)


def test_open_proxy_guard_ipv6_any(check_config):
    result, _ = check_config(f"[server]\nlisten = [::]:{free_port()}\n")
    assert result.returncode == 2
    assert_guard_message(result.stdout + result.stderr)


def test_open_proxy_guard_mixed_listen(check_config):
    """One loopback and one wildcard address is still an open proxy."""
    port = free_port()
    result, _ = check_config(f"[server]\nlisten = 127.0.0.1:{port}, 0.0.0.0:{port}\n")
    assert result.returncode == 2
    assert_guard_message(result.stdout + result.stderr)


def test_allow_open_overrides_guard(check_config):
    result, _ = check_config(open_listen_config(free_port(), "allow_open = yes\n"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "config ok" in result.stdout + result.stderr


def test_open_listen_with_password_is_fine(check_config, users_file):
    text = open_listen_config(free_port()) + \
        f"[auth]\nmethod = password\nusers_file = {users_file}\n"
    result, _ = check_config(text)
    assert result.returncode == 0, result.stdout + result.stderr


def test_other_loopback_addresses_are_not_open(check_config):
    result, _ = check_config(f"[server]\nlisten = 127.0.0.2:{free_port()}\n")
    assert result.returncode == 0, result.stdout + result.stderr


# -- users file ----------------------------------------------------------------

def test_password_method_without_users_file(check_config):
    result, _ = check_config(MINIMAL_CONFIG.format(port=free_port())
                             + "[auth]\nmethod = password\n")
    assert result.returncode == 2, result.stdout + result.stderr


def test_password_method_with_missing_users_file(check_config, tmp_path, write_config):
    missing = tmp_path / "no-users"
    text = MINIMAL_CONFIG.format(port=free_port()) + \
        f"[auth]\nmethod = password\nusers_file = {missing}\n"
    result, _ = check_config(text)
    assert result.returncode == 2, result.stdout + result.stderr
    assert str(missing) in result.stdout + result.stderr
    # Without -t too: exit 2, nothing served.
    path = write_config(text, "run.conf")
    run = run_binary(["-c", str(path)], timeout=10)
    assert run.returncode == 2, run.stdout + run.stderr


def test_malformed_users_file_names_its_line(check_config, tmp_path, users_file):
    users = tmp_path / "users"
    users.write_text(users_file.read_text() + "carol:plaintext-password\n")
    bad_line = len(users.read_text().splitlines())
    text = MINIMAL_CONFIG.format(port=free_port()) + \
        f"[auth]\nmethod = password\nusers_file = {users}\n"
    result, _ = check_config(text)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{users}:{bad_line}" in result.stdout + result.stderr


# -- passwd, -V, -h ------------------------------------------------------------

def test_passwd_output_format(socks5d_binary):
    result = run_binary(["passwd", "carol"], input_text="correct horse\n", timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    assert re.fullmatch(r"carol:\$argon2id\$v=\d+\$m=\d+,t=\d+,p=\d+\$\S+\$\S+", lines[0]), lines[0]
    assert "correct horse" not in result.stdout + result.stderr


def test_passwd_salts_differ(socks5d_binary):
    first = run_binary(["passwd", "dave"], input_text="same\n", timeout=60)
    second = run_binary(["passwd", "dave"], input_text="same\n", timeout=60)
    assert first.returncode == second.returncode == 0
    assert first.stdout != second.stdout


def assert_users_line_logs_in(start_daemon, tmp_path, echo_target, user, line,
                               password):
    """A daemon whose users file is line lets user in with password and
    relays; returns the daemon."""
    users = tmp_path / f"{user}.users"
    users.write_text(line if line.endswith("\n") else line + "\n")
    users.chmod(0o600)
    d = start_daemon(auth={"method": "password", "users_file": str(users)})
    with Socks5Client(d.address) as client:
        assert client.greet((METHOD_PASSWORD,)) == METHOD_PASSWORD
        assert client.authenticate(user, password) == (1, 0)
        assert client.request(*echo_target.address).rep == 0
        assert_echo(client)
    return d


def test_passwd_result_logs_in(start_daemon, tmp_path, echo_target):
    password = "x" * 200 + ":;# trailing"
    result = run_binary(["passwd", "erin"], input_text=password + "\nignored second line\n",
                        timeout=60)
    assert result.returncode == 0, result.stderr
    d = assert_users_line_logs_in(start_daemon, tmp_path, echo_target, "erin",
                                  result.stdout, password)
    with Socks5Client(d.address) as client:
        assert client.greet((METHOD_PASSWORD,)) == METHOD_PASSWORD
        assert client.authenticate("erin", "ignored second line")[1] != 0


class PasswdTerminal:
    """`socks5d passwd NAME` on a new pseudo-terminal that is its controlling
    terminal (so /dev/tty is the same), read and typed at as a person would;
    output is everything the terminal showed."""

    def __init__(self, name, stem):
        self.stem = stem
        argv = [*valgrind_prefix(stem), str(binary_path()), "passwd", name]
        path, env = shutil.which(argv[0]), daemon_env()
        self.output = b""
        self.eof = False
        self.status = None
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            try:
                os.execve(path, argv, env)
            finally:
                os._exit(127)

    def echo_off(self):
        # A pty master reports its slave's modes.
        return not termios.tcgetattr(self.fd)[3] & termios.ECHO

    def read_until(self, done, timeout=20.0):
        """Read until done() (polled, as echo is no event), the end of
        output (self.eof) or the timeout; returns done()."""
        deadline = time.monotonic() + timeout * TIME_SCALE
        while not done() and not self.eof and time.monotonic() < deadline:
            if select.select([self.fd], [], [], 0.02)[0]:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:         # EIO: no process holds the slave
                    chunk = b""
                self.output += chunk
                self.eof = not chunk
        return done()

    def answer(self, prompt, text):
        """Type text once prompt shows and echo is off (typed before that,
        the program's TCSAFLUSH would throw it away)."""
        assert self.read_until(lambda: self.output.endswith(prompt) and self.echo_off()), \
            f"no {prompt!r} with echo off; the terminal showed {self.output!r}"
        os.write(self.fd, text.encode() + b"\n")

    def finish(self):
        """(exit status, text shown with CRs removed); checks sanitizers."""
        assert self.read_until(lambda: self.eof), \
            f"passwd did not finish; the terminal showed {self.output!r}"
        self.status = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        text = self.output.decode(errors="replace").replace("\r", "")
        assert not sanitizer_reports(text), text
        problems, excerpt = valgrind_report_text(glob.glob(f"{self.stem}.*.valgrind"))
        assert not problems, excerpt
        return self.status, text

    def close(self):
        if self.status is None:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.fd)


def test_passwd_on_a_terminal(start_daemon, tmp_path, echo_target):
    """Two prompts with echo off, then NAME:$argon2id$... that logs in."""
    password = "typed on a tty"
    term = PasswdTerminal("frank", tmp_path / "passwd")
    try:
        term.answer(b"Password: ", password)
        term.answer(b"Again: ", password)
        status, text = term.finish()
    finally:
        term.close()
    assert status == 0, text
    assert text.count("Password: ") == 1 and text.count("Again: ") == 1, text
    assert password not in text, f"the password was echoed: {text!r}"
    hashes = re.findall(r"^frank:\$argon2id\$\S+$", text, re.M)
    assert len(hashes) == 1, text
    assert_users_line_logs_in(start_daemon, tmp_path, echo_target, "frank", hashes[0],
                              password)


def test_passwd_on_a_terminal_mismatch(tmp_path):
    term = PasswdTerminal("frank", tmp_path / "passwd")
    try:
        term.answer(b"Password: ", "first try")
        term.answer(b"Again: ", "second try")
        status, text = term.finish()
    finally:
        term.close()
    assert status != 0, text
    assert "passwords do not match" in text, text
    assert "$argon2id$" not in text and "frank:" not in text, text
    assert "first try" not in text and "second try" not in text, text


def test_version(socks5d_binary):
    result = run_binary(["-V"])
    assert result.returncode == 0
    assert re.search(r"\d+\.\d+", result.stdout + result.stderr), result.stdout + result.stderr


def test_help(socks5d_binary):
    result = run_binary(["-h"])
    output = result.stdout + result.stderr
    assert result.returncode == 0
    assert "usage" in output.lower()
    for option in ("-c", "-t", "-V", "-h"):
        assert option in output, f"usage does not mention {option}"


def test_unknown_option_fails(socks5d_binary):
    result = run_binary(["-Z"])
    assert result.returncode != 0
    assert "usage" in (result.stdout + result.stderr).lower()
