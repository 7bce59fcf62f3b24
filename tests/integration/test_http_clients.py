"""Real HTTP-proxy clients through the daemon's HTTP front-end: curl (plain
forwarding, Basic proxy login, CONNECT), headless Chromium, apt-get and git,
each against servers of its own on loopback.

Every test also checks the access log (proto=http, the destination,
reply=0), so a client that silently bypassed the proxy cannot pass, and
the origin servers here record the head of every request they get, so the
tests can tell a forwarded request (rewritten by the daemon: origin-form,
"Via: 1.1 socks5d", "Connection: close", no Proxy-Authorization) from a
tunnelled one (the client's own head, untouched)."""
import email.utils
import functools
import hashlib
import os
import signal
import subprocess
import threading
import time
import urllib.parse
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import USERS
from harness.httpd import HttpServer, blob
from harness.net import LOOPBACK4, assert_loopback, format_hostport, wait_until

CLIENT_TIMEOUT = 30
BROWSER_TIMEOUT = 60
VIA = "1.1 socks5d"


def client_env(home=None, **extra):
    """The environment without proxy variables (which could redirect, or
    with no_proxy bypass, what a test asks for), optionally with a HOME of
    the test's own so no client reads or writes the real one."""
    env = {k: v for k, v in os.environ.items()
           if "proxy" not in k.lower() and not k.startswith("LD_")}
    if home is not None:
        Path(home).mkdir(parents=True, exist_ok=True)
        env["HOME"] = str(home)
        env["XDG_CONFIG_HOME"] = str(Path(home) / ".config")
        env["XDG_CACHE_HOME"] = str(Path(home) / ".cache")
    env.update(extra)
    return env


def run_client(args, timeout=CLIENT_TIMEOUT, env=None, cwd=None, input_bytes=None):
    return subprocess.run([str(a) for a in args], input=input_bytes,
                          capture_output=True, timeout=timeout,
                          env=env if env is not None else client_env(), cwd=cwd)


def curl(*args):
    """curl without --fail, so a 407 is an answer to look at, not an error:
    the body goes to stdout, -w output follows it."""
    return run_client(["curl", "-sS", "--max-time", str(CLIENT_TIMEOUT - 5),
                       "-o", "-", *args])


def proxy_url(daemon, credentials=""):
    return f"http://{credentials}{format_hostport(*daemon.address)}"


def http_sessions(daemon, dest, **fields):
    """The access-log lines of HTTP sessions to dest with the given fields."""
    return [s for s in daemon.session_lines()
            if s.get("proto") == "http" and s.get("dest") == dest
            and all(s.get(k) == str(v) for k, v in fields.items())]


def wait_http_sessions(daemon, dest, count, timeout=10.0, **fields):
    """Wait for at least count successful HTTP sessions to dest."""
    try:
        return wait_until(lambda: (lambda found: found if len(found) >= count else None)(
            http_sessions(daemon, dest, reply=0, **fields)), timeout,
            what=f"{count} proto=http sessions to {dest} with reply=0 {fields}")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; log so far:\n{daemon.log()}") from None


def output(result):
    return (f"status {result.returncode}\nstdout: {result.stdout[-3000:]!r}\n"
            f"stderr: {result.stderr[-3000:].decode(errors='replace')}")


# -- an origin server that records what it is asked ---------------------------

class Request:
    """The head of one request an origin server received."""

    def __init__(self, handler):
        self.method = handler.command
        self.path = handler.path
        self.requestline = handler.requestline
        self.headers = handler.headers

    def __repr__(self):
        return f"<{self.requestline!r} {dict(self.headers.items())}>"

    def assert_forwarded(self):
        """Arrived rewritten by the daemon's forwarder: origin-form, with the
        daemon's Via, Connection: close and no proxy credentials."""
        assert self.path.startswith("/"), f"not origin-form: {self!r}"
        assert self.headers.get("Via") == VIA, f"no Via from socks5d: {self!r}"
        assert self.headers.get("Connection", "").lower() == "close", self
        assert self.headers.get("Proxy-Authorization") is None, \
            f"proxy credentials reached the origin: {self!r}"
        assert self.headers.get("Proxy-Connection") is None, self


class _RecordingHandler(SimpleHTTPRequestHandler):
    """Static files from the server's directory; paths under /smart/ go to
    `git http-backend` (CGI) when the server has a git root. Every request's
    head is recorded before it is answered."""
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def _record(self):
        self.server.records.append(Request(self))

    def do_GET(self):
        self._record()
        if self.server.git_root and self.path.startswith("/smart/"):
            return self._git_backend()
        return super().do_GET()

    def do_HEAD(self):
        self._record()
        return super().do_HEAD()

    def do_POST(self):
        self._record()
        if self.server.git_root and self.path.startswith("/smart/"):
            return self._git_backend()
        self.send_error(405)

    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass            # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def _git_backend(self):
        """A minimal CGI gateway for git's smart HTTP protocol."""
        path, _, query = self.path[len("/smart"):].partition("?")
        body = self._read_body() if self.command == "POST" else b""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.server.git_root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": urllib.parse.unquote(path),
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": self.client_address[0],
            "HTTP_GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
        }
        result = subprocess.run(["git", "http-backend"], input=body, env=env,
                                capture_output=True, timeout=CLIENT_TIMEOUT)
        head, _, payload = result.stdout.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = result.stdout.partition(b"\n\n")
        status, headers = 200, []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in ("content-length", "connection"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class RecordingServer:
    """A loopback HTTP server in a thread serving directory root (and, with
    git_root, git's smart protocol under /smart/), keeping the head of every
    request in records."""

    def __init__(self, root, host=LOOPBACK4, git_root=None):
        assert_loopback(host)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

        handler = functools.partial(_RecordingHandler, directory=str(root))
        self.server = Server((host, 0), handler)
        self.server.records = []
        self.server.git_root = git_root
        self.host = host
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def records(self):
        return list(self.server.records)

    @property
    def dest(self):
        return format_hostport(self.host, self.port)

    def url(self, path="/"):
        return f"http://{self.dest}{path}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(2.0)


@pytest.fixture
def http_server():
    server = HttpServer(LOOPBACK4)
    yield server
    server.close()


@pytest.fixture
def make_origin():
    """Factory: make_origin(root, git_root=None) -> RecordingServer."""
    servers = []

    def make(root, git_root=None):
        server = RecordingServer(root, git_root=git_root)
        servers.append(server)
        return server
    yield make
    for server in servers:
        server.close()


# -- curl ----------------------------------------------------------------------

def test_curl_forward_get_and_post(start_daemon, http_server, make_origin, tmp_path):
    """Absolute-form requests are forwarded: a GET, a ~1 MB POST body (the
    origin hashes what it got) and a GET whose head the origin records."""
    d = start_daemon(http={"via": "yes"})
    dest = format_hostport(LOOPBACK4, http_server.port)

    get = curl("-x", proxy_url(d), "-w", "\n%{http_code}", http_server.url("/"))
    assert get.returncode == 0, output(get)
    assert get.stdout == http_server.greeting + b"\n200", output(get)
    # The origin saw origin-form, not the absolute form curl sent.
    assert http_server.requests == ["GET / HTTP/1.1"]
    wait_http_sessions(d, dest, 1, cmd="connect", user="-")

    body = tmp_path / "upload"
    body.write_bytes(os.urandom(1024 * 1024 + 17))
    post = curl("-x", proxy_url(d), "--fail", "--data-binary", f"@{body}",
                "-H", "Content-Type: application/octet-stream",
                http_server.url("/sha256"))
    assert post.returncode == 0, output(post)
    assert post.stdout.decode() == hashlib.sha256(body.read_bytes()).hexdigest()
    assert http_server.requests[-1] == "POST /sha256 HTTP/1.1"
    sessions = wait_http_sessions(d, dest, 2)
    assert max(int(s["up"]) for s in sessions) > 1024 * 1024, sessions

    size = 3 * 1024 * 1024 + 5
    down = curl("-x", proxy_url(d), "--fail", http_server.url(f"/blob/{size}"))
    assert down.returncode == 0, output(down)
    assert hashlib.sha256(down.stdout).digest() == hashlib.sha256(blob(size)).digest()
    sessions = wait_http_sessions(d, dest, 3)
    assert max(int(s["down"]) for s in sessions) > size, sessions

    # The head the origin got: rewritten by the forwarder.
    root = tmp_path / "www"
    root.mkdir()
    (root / "hello.txt").write_bytes(b"forwarded hello\n")
    origin = make_origin(root)
    got = curl("-x", proxy_url(d), "--fail", "-H", "X-Probe: kept",
               origin.url("/hello.txt?q=1"))
    assert got.returncode == 0, output(got)
    assert got.stdout == b"forwarded hello\n"
    [request] = origin.records
    assert request.requestline == "GET /hello.txt?q=1 HTTP/1.1"
    assert request.headers.get("Host") == origin.dest
    assert request.headers.get("X-Probe") == "kept"
    request.assert_forwarded()
    wait_http_sessions(d, origin.dest, 1)


def test_curl_forward_passes_100_continue_on(start_daemon, http_server, tmp_path):
    """RFC 9110 15.2: a proxy forwards 1xx responses. curl holds back the
    body of an "Expect: 100-continue" POST until the origin's 100 Continue
    arrives or --expect100-timeout runs out; the origin (Python's
    http.server) answers 100 Continue as soon as it has the head, so
    through a proxy that passes it on curl never has to give up waiting."""
    d = start_daemon()
    body = tmp_path / "upload"
    body.write_bytes(os.urandom(64 * 1024))
    started = time.monotonic()
    result = curl("-x", proxy_url(d), "--fail", "-v", "-H", "Expect: 100-continue",
                  "--expect100-timeout", "10", "--data-binary", f"@{body}",
                  http_server.url("/sha256"))
    elapsed = time.monotonic() - started
    assert result.returncode == 0, output(result)
    assert result.stdout.decode() == hashlib.sha256(body.read_bytes()).hexdigest()
    assert b"> Expect: 100-continue" in result.stderr, output(result)
    assert b"< HTTP/1.1 100 Continue" in result.stderr, output(result)
    assert b"Done waiting for 100-continue" not in result.stderr, \
        f"the 100 Continue was held back ({elapsed:.1f}s): {output(result)}"
    wait_http_sessions(d, format_hostport(LOOPBACK4, http_server.port), 1)


def test_curl_forward_with_proxy_login(password_daemon, make_origin, tmp_path):
    """[auth] method = password: no credentials and wrong ones get 407 with
    a Basic challenge and reach no origin; the right ones (also bob's, with
    ':', '@' and spaces) get the page, and the credentials are not
    forwarded."""
    d = password_daemon
    root = tmp_path / "www"
    root.mkdir()
    (root / "secret.txt").write_bytes(b"behind the login\n")
    origin = make_origin(root)
    url = origin.url("/secret.txt")

    for label, args in (("none", []),
                        ("wrong password", ["-x", proxy_url(d, "alice:wrong@")]),
                        ("unknown user", ["-x", proxy_url(d, "mallory:wonderland@")]),
                        ("bob's password for alice",
                         ["--proxy-user", f"alice:{USERS['bob']}"])):
        if not args or args[0] != "-x":
            args = ["-x", proxy_url(d), *args]
        refused = curl(*args, "-D", "-", "-w", "\n%{http_code}", url)
        assert refused.returncode == 0, f"{label}: {output(refused)}"
        text = refused.stdout.decode(errors="replace")
        assert text.endswith("\n407"), f"{label}: {output(refused)}"
        assert text.startswith("HTTP/1.1 407"), f"{label}: {output(refused)}"
        assert 'Proxy-Authenticate: Basic realm="socks5d"' in text, \
            f"{label}: {output(refused)}"
    assert origin.records == [], "a request without a good login reached the origin"
    refusals = wait_until(lambda: (lambda found: found if len(found) >= 4 else None)(
        [s for s in d.session_lines() if s.get("proto") == "http"]), 10,
        what="4 proto=http session lines")
    assert sorted(s["close"] for s in refusals) == [
        "auth-failed"] * 3 + ["auth-required"], refusals
    assert all(s["reply"] == "-" and s["dest"] == "-" for s in refusals), refusals

    good = curl("-x", proxy_url(d, f"alice:{USERS['alice']}@"), "-w", "\n%{http_code}",
                url)
    assert good.returncode == 0, output(good)
    assert good.stdout == b"behind the login\n\n200", output(good)
    [session] = wait_http_sessions(d, origin.dest, 1, user="alice")
    assert session["cmd"] == "connect"

    bob = curl("-x", proxy_url(d), "--proxy-user", f"bob:{USERS['bob']}",
               "--fail", url)
    assert bob.returncode == 0, output(bob)
    assert bob.stdout == b"behind the login\n"
    wait_http_sessions(d, origin.dest, 1, user="bob")

    assert [r.path for r in origin.records] == ["/secret.txt"] * 2
    for request in origin.records:
        request.assert_forwarded()


def test_curl_connect_tunnel(start_daemon, http_server, make_origin, tmp_path):
    """curl -p: CONNECT, the daemon's 200, then curl's own request (not
    rewritten: no Via) through the tunnel."""
    d = start_daemon()
    dest = format_hostport(LOOPBACK4, http_server.port)

    result = curl("-p", "-x", proxy_url(d), "-v", "-w", "\n%{http_connect}",
                  http_server.url("/"))
    assert result.returncode == 0, output(result)
    assert result.stdout == http_server.greeting + b"\n200", output(result)
    assert b"HTTP/1.1 200 Connection established" in result.stderr, output(result)
    [session] = wait_http_sessions(d, dest, 1, cmd="connect")
    assert int(session["down"]) >= len(http_server.greeting), session
    assert session["addr"] == dest, session

    size = 2 * 1024 * 1024 + 1
    down = curl("-p", "-x", proxy_url(d), "--fail", http_server.url(f"/blob/{size}"))
    assert down.returncode == 0, output(down)
    assert hashlib.sha256(down.stdout).digest() == hashlib.sha256(blob(size)).digest()
    sessions = wait_http_sessions(d, dest, 2)
    assert max(int(s["down"]) for s in sessions) > size, sessions

    root = tmp_path / "www"
    root.mkdir()
    (root / "t.txt").write_bytes(b"tunnelled\n")
    origin = make_origin(root)
    got = curl("-p", "-x", proxy_url(d), "--fail", origin.url("/t.txt"))
    assert got.returncode == 0, output(got)
    assert got.stdout == b"tunnelled\n"
    [request] = origin.records
    assert request.requestline == "GET /t.txt HTTP/1.1"
    assert request.headers.get("Via") is None, f"a tunnel rewrote the request: {request!r}"
    assert request.headers.get("User-Agent", "").startswith("curl/"), request
    wait_http_sessions(d, origin.dest, 1)


# -- Chromium --------------------------------------------------------------------

CHROMIUM_QUIET = (
    "--disable-background-networking", "--disable-component-update",
    "--disable-default-apps", "--disable-sync", "--disable-extensions",
    "--no-first-run", "--no-default-browser-check", "--metrics-recording-only",
    "--disable-domain-reliability", "--disable-breakpad",
    "--disable-features=OptimizationHints,MediaRouter,Translate,AutofillServerCommunication",
    "--password-store=basic",
)


def run_browser(args, env, timeout=BROWSER_TIMEOUT):
    """Run Chromium in a process group of its own; kill the whole group
    (renderers, zygotes, crashpad) when it ends or overruns."""
    proc = subprocess.Popen([str(a) for a in args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"chromium overran {timeout}s; stderr:\n"
                             f"{err[-4000:].decode(errors='replace')}") from None
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.deadline(100)
def test_chromium_headless_through_forwarder(start_daemon, make_origin, tmp_path):
    """Chromium with --proxy-server loads a page and its script from a
    loopback server (with <-loopback> so loopback is not bypassed); the DOM
    it dumps has the page's token and the one the script wrote."""
    d = start_daemon(http={"via": "yes"})
    token = os.urandom(8).hex()
    root = tmp_path / "www"
    root.mkdir()
    (root / "page.html").write_text(
        "<!DOCTYPE html><html><head><title>socks5d</title>"
        '<script src="/app.js"></script></head>'
        f'<body><p id="token">page-{token}</p></body></html>\n')
    (root / "app.js").write_text(
        "document.addEventListener('DOMContentLoaded', function () {\n"
        "  var p = document.createElement('p'); p.id = 'script';\n"
        f"  p.textContent = 'script-' + '{token}'.split('').reverse().join('');\n"
        "  document.body.appendChild(p);\n});\n")
    origin = make_origin(root)

    result = run_browser([
        "chromium", "--headless=new", "--no-sandbox", "--disable-gpu",
        "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium'}",
        *CHROMIUM_QUIET,
        f"--proxy-server={proxy_url(d)}", "--proxy-bypass-list=<-loopback>",
        "--dump-dom", origin.url("/page.html")],
        env=client_env(home=tmp_path / "home"))
    dom = result.stdout.decode(errors="replace")
    assert result.returncode == 0, output(result)
    assert f'<p id="token">page-{token}</p>' in dom, output(result)
    assert f'<p id="script">script-{token[::-1]}</p>' in dom, output(result)

    paths = [r.path for r in origin.records]
    assert "/page.html" in paths and "/app.js" in paths, origin.records
    for request in origin.records:
        request.assert_forwarded()
        assert "Chrome/" in request.headers.get("User-Agent", ""), request
    wait_http_sessions(d, origin.dest, len(origin.records), cmd="connect")


# -- apt-get -----------------------------------------------------------------------

APT_PACKAGE = "socks5d-http-probe"
APT_VERSION = "1.0-1"


def build_flat_repository(root, token):
    """A flat APT repository in root: one arch-all .deb, a Packages file and
    a Release file listing it (unsigned; the source is [trusted=yes])."""
    pkg = root.parent / "pkgroot"
    (pkg / "DEBIAN").mkdir(parents=True)
    doc = pkg / "usr" / "share" / "doc" / APT_PACKAGE
    doc.mkdir(parents=True)
    (doc / "token").write_text(token + "\n")
    control = (f"Package: {APT_PACKAGE}\nVersion: {APT_VERSION}\nArchitecture: all\n"
               "Maintainer: socks5d tests <root@localhost>\nSection: misc\n"
               "Priority: optional\n"
               "Description: probe for the socks5d HTTP proxy tests\n"
               " Only ever downloaded, never installed.\n")
    (pkg / "DEBIAN" / "control").write_text(control)
    deb_name = f"{APT_PACKAGE}_{APT_VERSION}_all.deb"
    deb = root / deb_name
    built = run_client(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build",
                        pkg, deb])
    assert built.returncode == 0, output(built)
    data = deb.read_bytes()
    packages = (control + f"Filename: ./{deb_name}\nSize: {len(data)}\n"
                f"MD5sum: {hashlib.md5(data).hexdigest()}\n"
                f"SHA256: {hashlib.sha256(data).hexdigest()}\n\n").encode()
    (root / "Packages").write_bytes(packages)
    release = ("Origin: socks5d-test\nLabel: socks5d-test\nSuite: socks5d-test\n"
               "Codename: socks5d-test\n"
               f"Date: {email.utils.formatdate(usegmt=True)}\n"
               "Description: flat repository for the socks5d tests\n"
               f"MD5Sum:\n {hashlib.md5(packages).hexdigest()} {len(packages)} Packages\n"
               f"SHA256:\n {hashlib.sha256(packages).hexdigest()} {len(packages)} Packages\n")
    (root / "Release").write_text(release)
    return deb


def apt_get(tmp_path, daemon, *args, tool="apt-get"):
    """apt-get with every path it writes (lists, caches, locks) under
    tmp_path and the system's apt.conf.d left unread, so the system's apt
    state is never touched and no configured proxy interferes."""
    state = tmp_path / "apt"
    conf = state / "apt.conf"
    if not conf.exists():
        for sub in ("lists/partial", "cache/archives/partial", "state", "apt.conf.d"):
            (state / sub).mkdir(parents=True, exist_ok=True)
        conf.write_text(f'Dir::Etc::Parts "{state / "apt.conf.d"}";\n'
                        f'Dir::Etc::Main "{state / "no-such-apt.conf"}";\n')
    return run_client([
        tool, "-q",
        "-o", f"Acquire::http::Proxy={proxy_url(daemon)}",
        "-o", f"Dir::Etc::SourceList={state / 'sources.list'}",
        "-o", "Dir::Etc::SourceParts=/dev/null",
        "-o", f"Dir::State::Lists={state / 'lists'}",
        "-o", f"Dir::State::extended_states={state / 'state' / 'extended_states'}",
        "-o", f"Dir::Cache={state / 'cache'}",
        "-o", "APT::Get::List-Cleanup=0",
        "-o", "Acquire::AllowInsecureRepositories=true",
        "-o", "Acquire::Languages=none",
        "-o", "Acquire::Retries=0",
        "-o", "APT::Sandbox::User=root",
        *args], cwd=tmp_path / "download",
        env=client_env(home=tmp_path / "home", APT_CONFIG=str(conf),
                       DEBIAN_FRONTEND="noninteractive", LC_ALL="C"))


@pytest.mark.deadline(90)
def test_apt_get_update_and_download(start_daemon, make_origin, tmp_path):
    """apt-get update and apt-get download from a flat repository on
    loopback, through Acquire::http::Proxy; nothing is installed."""
    d = start_daemon(http={"via": "yes"})
    token = os.urandom(8).hex()
    root = tmp_path / "repo"
    root.mkdir()
    deb = build_flat_repository(root, token)
    origin = make_origin(root)
    (tmp_path / "download").mkdir()
    (tmp_path / "apt").mkdir()
    (tmp_path / "apt" / "sources.list").write_text(
        f"deb [trusted=yes] {origin.url('/')} ./\n")

    update = apt_get(tmp_path, d, "update")
    assert update.returncode == 0, output(update)
    assert b"E:" not in update.stderr, output(update)
    assert b"W:" not in update.stderr, output(update)
    lists = [p.name for p in (tmp_path / "apt" / "lists").iterdir()]
    assert any(name.endswith("_Packages") for name in lists), (lists, output(update))
    paths = [r.path for r in origin.records]
    assert "/./Release" in paths or "/Release" in paths, paths
    assert "/./Packages" in paths or "/Packages" in paths, paths

    policy = apt_get(tmp_path, d, "policy", APT_PACKAGE, tool="apt-cache")
    assert f"Candidate: {APT_VERSION}".encode() in policy.stdout, output(policy)

    fetched_before = len(origin.records)
    download = apt_get(tmp_path, d, "-y", "download", APT_PACKAGE)
    assert download.returncode == 0, output(download)
    got = tmp_path / "download" / deb.name
    assert got.is_file(), (list((tmp_path / "download").iterdir()), output(download))
    assert got.read_bytes() == deb.read_bytes()
    extracted = run_client(["dpkg-deb", "--fsys-tarfile", got])
    assert extracted.returncode == 0, output(extracted)
    assert token.encode() in extracted.stdout
    fields = run_client(["dpkg-deb", "-f", got, "Package", "Version"])
    assert fields.stdout.decode().split() == [
        "Package:", APT_PACKAGE, "Version:", APT_VERSION], output(fields)

    deb_requests = [r for r in origin.records[fetched_before:]
                    if r.path.endswith(deb.name)]
    assert len(deb_requests) == 1, origin.records
    for request in origin.records:
        request.assert_forwarded()
        assert request.headers.get("User-Agent", "").startswith("Debian APT"), request
    sessions = wait_http_sessions(d, origin.dest, len(origin.records), cmd="connect")
    assert max(int(s["down"]) for s in sessions) >= deb.stat().st_size, sessions


# -- git ------------------------------------------------------------------------

def git(*args, cwd=None, env=None, timeout=CLIENT_TIMEOUT):
    return run_client(["git", *args], cwd=cwd, env=env, timeout=timeout)


@pytest.mark.deadline(90)
def test_git_clone_and_push_over_http_proxy(start_daemon, make_origin, tmp_path):
    """git -c http.proxy=...: a clone over the dumb HTTP protocol (static
    files), then a clone and a push over the smart protocol (git
    http-backend, with POSTed pack data) from a loopback server."""
    d = start_daemon(http={"via": "yes"})
    env = client_env(home=tmp_path / "home", GIT_CONFIG_NOSYSTEM="1",
                     GIT_CONFIG_GLOBAL="/dev/null", GIT_TERMINAL_PROMPT="0",
                     GIT_AUTHOR_NAME="socks5d test", GIT_AUTHOR_EMAIL="root@localhost",
                     GIT_COMMITTER_NAME="socks5d test",
                     GIT_COMMITTER_EMAIL="root@localhost", LC_ALL="C")
    token = os.urandom(8).hex()

    work = tmp_path / "work"
    assert git("init", "-q", "-b", "main", work, env=env).returncode == 0
    (work / "token.txt").write_text(token + "\n")
    (work / "bulk.bin").write_bytes(os.urandom(300_000))     # a pack of some size
    for step in (["add", "."], ["commit", "-q", "-m", f"commit {token}"]):
        result = git(*step, cwd=work, env=env)
        assert result.returncode == 0, output(result)
    commit = git("rev-parse", "HEAD", cwd=work, env=env).stdout.decode().strip()
    assert len(commit) == 40

    served = tmp_path / "served"
    served.mkdir()
    bare = served / "repo.git"
    for step in (["clone", "-q", "--bare", work, bare],
                 ["-C", bare, "update-server-info"],
                 ["-C", bare, "config", "http.receivepack", "true"]):
        result = git(*step, env=env)
        assert result.returncode == 0, output(result)
    origin = make_origin(served, git_root=served)
    proxy = ["-c", f"http.proxy={proxy_url(d)}"]

    def assert_clone(directory, expected_commit):
        head = git("rev-parse", "HEAD", cwd=directory, env=env)
        assert head.stdout.decode().strip() == expected_commit, output(head)
        assert (directory / "token.txt").read_text() == token + "\n"
        fsck = git("fsck", "--full", "--strict", cwd=directory, env=env)
        assert fsck.returncode == 0, output(fsck)

    # Dumb protocol: info/refs, HEAD and loose objects as plain files.
    dumb = tmp_path / "dumb"
    result = git(*proxy, "clone", origin.url("/repo.git"), dumb, env=env)
    assert result.returncode == 0, output(result)
    assert_clone(dumb, commit)
    dumb_paths = [r.path for r in origin.records]
    assert any(p.startswith("/repo.git/info/refs") for p in dumb_paths), dumb_paths
    assert any(p.startswith("/repo.git/objects/") for p in dumb_paths), dumb_paths

    # Smart protocol: GET info/refs, POST git-upload-pack.
    smart = tmp_path / "smart"
    before = len(origin.records)
    result = git(*proxy, "clone", origin.url("/smart/repo.git"), smart, env=env)
    assert result.returncode == 0, output(result)
    assert_clone(smart, commit)
    smart_requests = origin.records[before:]
    assert any(r.method == "POST" and r.path == "/smart/repo.git/git-upload-pack"
               for r in smart_requests), smart_requests

    # And a push back over the smart protocol: the pack is a request body.
    (smart / "pushed.txt").write_text(f"pushed {token}\n")
    (smart / "more.bin").write_bytes(os.urandom(200_000))
    for step in (["add", "."], ["commit", "-q", "-m", "pushed through socks5d"]):
        result = git(*step, cwd=smart, env=env)
        assert result.returncode == 0, output(result)
    pushed = git("rev-parse", "HEAD", cwd=smart, env=env).stdout.decode().strip()
    before = len(origin.records)
    result = git(*proxy, "push", "origin", "main", cwd=smart, env=env)
    assert result.returncode == 0, output(result)
    server_head = git("-C", bare, "rev-parse", "main", env=env)
    assert server_head.stdout.decode().strip() == pushed, output(server_head)
    fsck = git("-C", bare, "fsck", "--full", "--strict", env=env)
    assert fsck.returncode == 0, output(fsck)
    assert any(r.method == "POST" and r.path == "/smart/repo.git/git-receive-pack"
               for r in origin.records[before:]), origin.records[before:]

    for request in origin.records:
        request.assert_forwarded()
        assert request.headers.get("User-Agent", "").startswith("git/"), request
    sessions = wait_http_sessions(d, origin.dest, len(origin.records), cmd="connect")
    assert max(int(s["up"]) for s in sessions) > 200_000, sessions
