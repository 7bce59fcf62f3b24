"""[tls] listeners: an HTTPS proxy and SOCKS5 over TLS on one port, with
real clients (curl, Python's ssl, openssl s_client), client certificates as
logins, and the bad inputs a TLS port meets (plain text, a ClientHello on a
plain port, truncated and slow handshakes, old versions, renegotiation)."""
import hashlib
import os
import re
import signal
import socket
import ssl
import subprocess
import time

import pytest

from harness import footprint
from harness.httpd import HttpServer
from harness.net import (IO_TIMEOUT, LOOPBACK4, TIME_SCALE, free_port, is_listening,
                         peer_closed, recv_exact, wait_until)
from harness.socks5 import Socks5Client
from harness.tls import (HttpsServer, Socks5Error, open_tls, socks5_over_tls,
                         tls_client_context, tls_rejection, tool_env)

from conftest import USERS

CURL_TIMEOUT = 20


@pytest.fixture(scope="module")
def tls_pki(tmp_path_factory):
    from harness.tls import TlsPki
    return TlsPki(tmp_path_factory.mktemp("pki"))


def tls_section(pki, port, cert=None, **extra):
    cert = cert or pki.server
    section = {"listen": f"{LOOPBACK4}:{port}", "certificate": str(cert.cert),
               "key": str(cert.key)}
    section.update(extra)
    return section


def start_tls(start_daemon, pki, cert=None, tls=None, **overrides):
    """A daemon with its plain port and a TLS port; returns (daemon, (host,
    tls_port))."""
    port = free_port()
    section = tls_section(pki, port, cert, **(tls or {}))
    d = start_daemon(tls=section, **overrides)
    wait_until(lambda: is_listening(LOOPBACK4, port), 5, what="the TLS port")
    return d, (LOOPBACK4, port)


def curl(*args, timeout=CURL_TIMEOUT):
    return subprocess.run(["curl", "-sS", "--max-time", str(timeout), *args],
                          capture_output=True, timeout=timeout + 5,
                          env=tool_env())


def openssl_s_client(address, *args, stdin=b"", timeout=15):
    host, port = address
    return subprocess.run(["openssl", "s_client", "-connect", f"{host}:{port}",
                           "-servername", "localhost", *args],
                          input=stdin, capture_output=True, timeout=timeout,
                          env=tool_env())


def s_client_session(address, *args, send=b"", expect=None, wait=10):
    """Run openssl s_client, write send once the handshake is done and
    read its output until expect shows (or it exits, or wait seconds
    pass); returns stdout + stderr. Its stdin stays open, so s_client
    takes command lines from it ("R" asks for a renegotiation)."""
    host, port = address
    proc = subprocess.Popen(["openssl", "s_client", "-connect",
                             f"{host}:{port}", "-servername", "localhost",
                             *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=tool_env())
    os.set_blocking(proc.stdout.fileno(), False)
    out = b""
    sent = False
    deadline = time.monotonic() + wait * TIME_SCALE
    try:
        while time.monotonic() < deadline:
            chunk = proc.stdout.read()
            out += chunk or b""
            if not sent and b"Verify return code" in out:
                # s_client takes a command ("R", "K") only at the start
                # of one read of its stdin: each chunk goes alone.
                for chunk in ([send] if isinstance(send, bytes) else send):
                    try:
                        proc.stdin.write(chunk)
                        proc.stdin.flush()
                    except BrokenPipeError:
                        break   # it gave up already: its output says why
                    time.sleep(0.3)
                    out += proc.stdout.read() or b""
                sent = True
            if sent and (expect is None or expect in out):
                time.sleep(0.3)
                out += proc.stdout.read() or b""
                break
            if proc.poll() is not None:
                out += proc.stdout.read() or b""
                break
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    return out


def echo_over(sock, size=256 * 1024):
    """Send size random bytes through an echoing tunnel; they must all come
    back, in order."""
    blob = os.urandom(size)
    sock.sendall(blob)
    got = recv_exact(sock, size)
    assert hashlib.sha256(got).digest() == hashlib.sha256(blob).digest()


# -- clients that work ---------------------------------------------------------

def test_curl_https_proxy_reaches_http_and_https_origins(start_daemon, tls_pki,
                                                        users_file):
    d, tls_addr = start_tls(start_daemon, tls_pki, auth={
        "method": "password", "users_file": str(users_file)})
    proxy = f"https://alice:{USERS['alice']}@{tls_addr[0]}:{tls_addr[1]}"
    http_origin = HttpServer()
    https_origin = HttpsServer(tls_pki.server)
    try:
        plain = curl("--proxy-cacert", str(tls_pki.ca_cert), "-x", proxy,
                     http_origin.url("/blob/300000"))
        assert plain.returncode == 0, plain.stderr
        assert plain.stdout == bytes(http_origin_blob(300000))
        secure = curl("--proxy-cacert", str(tls_pki.ca_cert), "--cacert",
                      str(tls_pki.ca_cert), "-x", proxy, https_origin.url("/"))
        assert secure.returncode == 0, secure.stderr
        assert b"hello from https test server" in secure.stdout
        # Without the password the HTTPS proxy asks for it, as the plain
        # one does.
        refused = curl("--proxy-cacert", str(tls_pki.ca_cert), "-o",
                       "/dev/null", "-w", "%{http_code}", "-x",
                       f"https://{tls_addr[0]}:{tls_addr[1]}",
                       http_origin.url("/"))
        assert refused.stdout == b"407"
        # A client that does not trust the proxy's certificate stops.
        untrusting = curl("-x", proxy, http_origin.url("/"))
        assert untrusting.returncode != 0
    finally:
        http_origin.close()
        https_origin.close()
    lines = d.session_lines()
    assert any(l.get("user") == "alice" and l.get("proto") == "http" and
               l.get("close") == "eof" for l in lines), lines
    assert any(l.get("close") == "auth-required" for l in lines), lines


def http_origin_blob(size):
    from harness.httpd import blob
    return blob(size)


def test_socks5_over_tls_and_the_plain_port_side_by_side(start_daemon, tls_pki,
                                                        echo_target):
    d, tls_addr = start_tls(start_daemon, tls_pki)
    ctx = tls_client_context(tls_pki)
    with socks5_over_tls(tls_addr, *echo_target.address, ctx) as tunnel:
        assert tunnel.version() == "TLSv1.3"
        echo_over(tunnel, 4 * 1024 * 1024)
    # The plain port is not TLS and still serves SOCKS5.
    plain = Socks5Client(d.address)
    plain.greet()
    assert plain.request(*echo_target.address).rep == 0
    plain.close()
    line = d.wait_session(proto="socks5", close="eof", tls="1.3")
    assert int(line["up"]) == 4 * 1024 * 1024
    assert line["tls_sni"] == "localhost"
    assert "resumed" not in line
    # The plain session's line says nothing of TLS.
    assert "tls" not in d.wait_session(proto="socks5", close="eof", up="0")


def test_tls_1_2_works_and_older_versions_are_refused(start_daemon, tls_pki,
                                                     echo_target):
    d, tls_addr = start_tls(start_daemon, tls_pki)
    ctx12 = tls_client_context(tls_pki, maximum_version=ssl.TLSVersion.TLSv1_2)
    with socks5_over_tls(tls_addr, *echo_target.address, ctx12) as tunnel:
        assert tunnel.version() == "TLSv1.2"
        echo_over(tunnel)
    old = openssl_s_client(tls_addr, "-tls1_1")
    assert old.returncode != 0
    d.wait_session(close="tls-version")
    # Still serving.
    with socks5_over_tls(tls_addr, *echo_target.address,
                         tls_client_context(tls_pki)) as tunnel:
        echo_over(tunnel, 1000)


def test_alpn_http11_is_chosen_and_other_protocols_do_not_fail(start_daemon,
                                                              tls_pki):
    d, tls_addr = start_tls(start_daemon, tls_pki)
    with open_tls(tls_addr, tls_client_context(
            tls_pki, alpn=["h2", "http/1.1"])) as tls:
        assert tls.selected_alpn_protocol() == "http/1.1"
    with open_tls(tls_addr, tls_client_context(tls_pki, alpn=["h2"])) as tls:
        assert tls.selected_alpn_protocol() is None


def test_sessions_resume_from_tickets(start_daemon, tls_pki, echo_target):
    d, tls_addr = start_tls(start_daemon, tls_pki)
    ctx = tls_client_context(tls_pki, maximum_version=ssl.TLSVersion.TLSv1_2)
    with open_tls(tls_addr, ctx) as first:
        session = first.session
        assert not first.session_reused
    raw = socket.create_connection(tls_addr, timeout=IO_TIMEOUT)
    with ctx.wrap_socket(raw, server_hostname="localhost",
                         session=session) as second:
        assert second.session_reused
    d.wait_session(tls="1.2", resumed="yes")


# -- bad input -----------------------------------------------------------------

def client_hello_bytes(pki):
    """A real ClientHello, as Python's ssl writes it (no socket needed)."""
    ctx = tls_client_context(pki)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def half_handshakes(address, hello, count=100):
    """count clients at once that send the start of a ClientHello (OpenSSL
    has begun its work on each) and then go away."""
    held = []
    for _ in range(count):
        c = socket.create_connection(address, timeout=IO_TIMEOUT)
        c.sendall(hello[:60])
        held.append(c)
    time.sleep(0.2)
    for c in held:
        c.close()


def test_bad_input_is_refused_and_the_daemon_returns_to_baseline(
        start_daemon, tls_pki, echo_target):
    d, tls_addr = start_tls(start_daemon, tls_pki, env=footprint.ASAN_ENV,
                            timeouts={"handshake": 1})
    ctx = tls_client_context(tls_pki)
    hello = client_hello_bytes(tls_pki)
    assert hello[0] == 0x16
    # The allocator's steady state goes into the baseline: a tunnel and
    # a burst of handshakes as large as the one below.
    with socks5_over_tls(tls_addr, *echo_target.address, ctx) as tunnel:
        echo_over(tunnel, 100000)
    half_handshakes(tls_addr, hello)
    base = footprint.baseline(d.proc.pid)

    # A SOCKS5 greeting in clear text to the TLS port: closed, no answer.
    s = socket.create_connection(tls_addr, timeout=IO_TIMEOUT)
    s.sendall(b"\x05\x01\x00")
    assert s.recv(16) == b""
    s.close()
    d.wait_session(close="not-tls")
    # An HTTP request in clear text: the same.
    s = socket.create_connection(tls_addr, timeout=IO_TIMEOUT)
    s.sendall(b"CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n")
    assert s.recv(16) == b""
    s.close()
    # A ClientHello to the plain port.
    s = socket.create_connection(d.address, timeout=IO_TIMEOUT)
    s.sendall(hello)
    assert s.recv(16) == b""
    s.close()
    d.wait_session(close="unexpected-tls")
    # Half a ClientHello, then the client goes away.
    s = socket.create_connection(tls_addr, timeout=IO_TIMEOUT)
    s.sendall(hello[:len(hello) // 2])
    time.sleep(0.1)
    s.close()
    d.wait_session(close="tls-eof")
    # Half a ClientHello and silence: the handshake timeout ends it.
    s = socket.create_connection(tls_addr, timeout=IO_TIMEOUT)
    s.sendall(hello[:40])
    assert peer_closed(s, timeout=5 * TIME_SCALE)
    s.close()
    d.wait_session(close="tls-timeout")
    # Only a TCP connection, nothing sent.
    s = socket.create_connection(tls_addr, timeout=IO_TIMEOUT)
    assert peer_closed(s, timeout=5 * TIME_SCALE)
    s.close()
    # A record of garbage after the right first byte.
    s = socket.create_connection(tls_addr, timeout=IO_TIMEOUT)
    s.sendall(b"\x16\x03\x01\x00\x05garba")
    s.settimeout(IO_TIMEOUT)
    try:
        rest = s.recv(64)
    except ConnectionResetError:
        rest = b""
    # At most an alert record, then the close.
    assert rest == b"" or rest[0] == 0x15
    s.close()
    d.wait_session(close="tls-error")
    # A client that does not trust the certificate (wrong host).
    wrong = tls_client_context(tls_pki)
    with pytest.raises(ssl.SSLCertVerificationError):
        open_tls(tls_addr, wrong, server_hostname="wrong.example.test")
    d.wait_session(close="tls-alert")
    half_handshakes(tls_addr, hello)
    footprint.assert_back_to(d.proc.pid, base, what="bad TLS input")
    with socks5_over_tls(tls_addr, *echo_target.address, ctx) as tunnel:
        echo_over(tunnel, 1000)


def test_renegotiation_is_refused_and_the_session_survives_or_ends_cleanly(
        start_daemon, tls_pki, echo_target):
    d, tls_addr = start_tls(start_daemon, tls_pki)
    # s_client's "R" line asks for a renegotiation (TLS 1.2 only).
    out = s_client_session(tls_addr, "-tls1_2", "-CAfile",
                           str(tls_pki.ca_cert), send=b"R\n",
                           expect=b"alert").decode(errors="replace")
    assert "RENEGOTIATING" in out, out
    assert re.search(r"no renegotiation", out, re.I), out
    # Still serving.
    with socks5_over_tls(tls_addr, *echo_target.address,
                         tls_client_context(tls_pki)) as tunnel:
        echo_over(tunnel, 1000)


def test_proxy_header_before_tls(start_daemon, tls_pki, echo_target):
    d, tls_addr = start_tls(start_daemon, tls_pki, server={
        "proxy_protocol_from": "127.0.0.0/8", "allow_open": "yes"})
    raw = socket.create_connection(tls_addr, timeout=IO_TIMEOUT)
    raw.sendall(b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 1080\r\n")
    tls = tls_client_context(tls_pki).wrap_socket(raw,
                                                  server_hostname="localhost")
    client = socks5_tls_client_on(tls)
    client.greet()
    assert client.request(*echo_target.address).rep == 0
    echo_over(tls, 10000)
    tls.close()
    line = d.wait_session(close="eof")
    assert line["client"].startswith("192.0.2.7:")


def socks5_tls_client_on(tls):
    from harness.tls import TlsSocks5Client
    return TlsSocks5Client(tls)


# -- client certificates -------------------------------------------------------

def mtls(pki, mode="require", user="cn"):
    return {"client_ca": str(pki.ca_cert), "client_certificate": mode,
            "client_user": user}


def test_client_certificate_required(start_daemon, tls_pki, echo_target):
    d, tls_addr = start_tls(start_daemon, tls_pki, tls=mtls(tls_pki),
                            **{"rule alice": {"action": "allow", "user": "alice"}})
    greeting = b"\x05\x01\x00"
    # No certificate, a certificate from another CA, an expired one.
    for cert in (None, tls_pki.wrong_ca_client, tls_pki.expired_client):
        ctx = tls_client_context(tls_pki, client_cert=cert)
        assert tls_rejection(tls_addr, ctx, send=greeting) is not None, cert
    wait_until(lambda: sum(1 for l in d.session_lines()
                           if l.get("close") == "tls-client-cert") >= 3, 5,
               what="three client certificate refusals")
    # alice's certificate is alice's login: no password, and the rule
    # that names her lets her through.
    ctx = tls_client_context(tls_pki, client_cert=tls_pki.alice)
    with socks5_over_tls(tls_addr, *echo_target.address, ctx) as tunnel:
        echo_over(tunnel, 10000)
    line = d.wait_session(close="eof")
    assert line["user"] == "alice"
    # openssl s_client: the same with and without a certificate.
    cert, key = tls_pki.alice
    ok = s_client_session(tls_addr, "-CAfile", str(tls_pki.ca_cert), "-cert",
                          str(cert), "-key", str(key), "-verify_return_error",
                          send=b"\x05\x01\x00", expect=b"\x05\x00")
    assert b"Verify return code: 0 (ok)" in ok
    assert b"\x05\x00" in ok
    missing = s_client_session(tls_addr, "-CAfile", str(tls_pki.ca_cert),
                               send=b"\x05\x01\x00", expect=b"alert")
    assert b"\x05\x00" not in missing
    assert re.search(rb"alert certificate required", missing), missing


def test_client_certificate_names_the_user_by_san(start_daemon, tls_pki,
                                                  echo_target, users_file):
    d, tls_addr = start_tls(start_daemon, tls_pki,
                            tls=mtls(tls_pki, "optional", "san-email"),
                            auth={"method": "password",
                                  "users_file": str(users_file)})
    # bob's certificate carries bob@example.test: no password asked.
    ctx = tls_client_context(tls_pki, client_cert=tls_pki.bob)
    with socks5_over_tls(tls_addr, *echo_target.address, ctx) as tunnel:
        echo_over(tunnel, 1000)
    assert d.wait_session(close="eof")["user"] == "bob@example.test"
    # Optional: without a certificate the password is the login.
    ctx = tls_client_context(tls_pki)
    with socks5_over_tls(tls_addr, *echo_target.address, ctx, user="alice",
                         password=USERS["alice"]) as tunnel:
        echo_over(tunnel, 1000)
    with pytest.raises(Socks5Error) as refused:
        socks5_over_tls(tls_addr, *echo_target.address, ctx)
    assert refused.value.stage == "method"
    # alice's certificate has no email SAN: no login from it.
    ctx = tls_client_context(tls_pki, client_cert=tls_pki.alice)
    with pytest.raises(Socks5Error):
        socks5_over_tls(tls_addr, *echo_target.address, ctx)


def test_client_certificate_by_san_dns_over_an_https_proxy(start_daemon,
                                                          tls_pki):
    d, tls_addr = start_tls(start_daemon, tls_pki,
                            tls=mtls(tls_pki, "require", "san-dns"),
                            **{"rule carol": {"action": "allow",
                                              "user": "carol.example.test"}})
    origin = HttpServer()
    cert, key = tls_pki.carol
    try:
        result = curl("--proxy-cacert", str(tls_pki.ca_cert), "--proxy-cert",
                      str(cert), "--proxy-key", str(key), "-x",
                      f"https://{tls_addr[0]}:{tls_addr[1]}",
                      origin.url("/"))
        assert result.returncode == 0, result.stderr
        assert result.stdout == origin.greeting
        # alice is no carol: her certificate verifies, but the rule
        # that names carol does not match her (CN is not a SAN).
        cert, key = tls_pki.alice
        result = curl("--proxy-cacert", str(tls_pki.ca_cert), "--proxy-cert",
                      str(cert), "--proxy-key", str(key), "-o", "/dev/null",
                      "-w", "%{http_code}", "-x",
                      f"https://{tls_addr[0]}:{tls_addr[1]}",
                      origin.url("/"))
        assert result.stdout in (b"403", b"407"), result
    finally:
        origin.close()
    assert d.wait_session(close="eof")["user"] == "carol.example.test"


# -- reload and metrics --------------------------------------------------------

def test_reload_swaps_the_certificate_and_keeps_sessions(start_daemon, tls_pki,
                                                         echo_target,
                                                         tmp_path):
    live = tmp_path / "live"
    live.mkdir()
    cert_path, key_path = live / "cert.pem", live / "key.pem"
    cert_path.write_bytes(tls_pki.server.cert.read_bytes())
    key_path.write_bytes(tls_pki.server.key.read_bytes())
    key_path.chmod(0o600)
    port = free_port()
    d = start_daemon(tls={"listen": f"{LOOPBACK4}:{port}",
                          "certificate": str(cert_path),
                          "key": str(key_path)})
    tls_addr = (LOOPBACK4, port)
    wait_until(lambda: is_listening(*tls_addr), 5, what="the TLS port")
    ctx = tls_client_context(tls_pki)
    tunnel = socks5_over_tls(tls_addr, *echo_target.address, ctx)
    echo_over(tunnel, 1000)
    # certbot renews: a new certificate (another host name) and key.
    cert_path.write_bytes(tls_pki.wrong_host_server.cert.read_bytes())
    key_path.write_bytes(tls_pki.wrong_host_server.key.read_bytes())
    d.send_signal(signal.SIGHUP)
    d.wait_log(r"reload", timeout=5)
    wait_until(lambda: tls_rejection(tls_addr, ctx) is not None, 5,
               what="the new certificate in use")
    names = tls_client_context(tls_pki)
    with open_tls(tls_addr, names, server_hostname="wrong.example.test"):
        pass
    # The session from before the reload goes on.
    echo_over(tunnel, 1000)
    # A broken key on reload: the old certificate stays, and the log says
    # why.
    key_path.write_text("not a key\n")
    d.send_signal(signal.SIGHUP)
    d.wait_log(r"reload rejected.*\[tls\] key", timeout=5)
    with open_tls(tls_addr, names, server_hostname="wrong.example.test"):
        pass
    echo_over(tunnel, 1000)
    tunnel.close()


def test_metrics_count_tls_sessions_and_failures(start_daemon, tls_pki,
                                                echo_target):
    metrics_port = free_port()
    d, tls_addr = start_tls(start_daemon, tls_pki, metrics={
        "listen": f"{LOOPBACK4}:{metrics_port}"})
    ctx = tls_client_context(tls_pki)
    with socks5_over_tls(tls_addr, *echo_target.address, ctx) as tunnel:
        echo_over(tunnel, 1000)
    s = socket.create_connection(tls_addr, timeout=IO_TIMEOUT)
    s.sendall(b"\x05\x01\x00")
    s.recv(16)
    s.close()
    d.wait_session(close="not-tls")
    text = curl(f"http://{LOOPBACK4}:{metrics_port}/metrics").stdout.decode()
    assert 'socks5d_tls_sessions_total{version="1.3"} 1' in text, text
    assert ('socks5d_tls_handshake_failures_total{reason="not-tls"} 1'
            in text), text


# -- config --------------------------------------------------------------------

def test_config_errors_name_file_line_and_key(check_config, tls_pki, tmp_path):
    cert, key = tls_pki.server
    open_key = tmp_path / "open.pem"
    open_key.write_bytes(key.read_bytes())
    open_key.chmod(0o644)

    def conf(**tls):
        lines = "\n".join(f"{k} = {v}" for k, v in tls.items())
        return f"[tls]\nlisten = 127.0.0.1:{free_port()}\n{lines}\n"

    result, path = check_config(conf(certificate=cert, key=open_key))
    assert result.returncode == 2
    assert re.search(rf"{path}:4: \[tls\] key: .*others", result.stderr), \
        result.stderr
    result, path = check_config(conf(certificate=cert,
                                     key=tls_pki.alice.key))
    assert result.returncode == 2
    assert re.search(rf"{path}:\d+: \[tls\] key: .*does not match",
                     result.stderr), result.stderr
    result, path = check_config(conf(certificate=cert))
    assert result.returncode == 2 and "key" in result.stderr
    result, path = check_config(conf(certificate=tls_pki.expired_server.cert,
                                     key=tls_pki.expired_server.key))
    assert result.returncode == 2 and "expired" in result.stderr.lower()
    result, path = check_config(conf(certificate=cert, key=key,
                                     client_certificate="require"))
    assert result.returncode == 2 and "client_ca" in result.stderr
    result, path = check_config(conf(certificate=cert, key=key))
    assert result.returncode == 0, result.stderr
    # A TLS member that is our own [tls] port would loop.
    port = free_port()
    result, path = check_config(
        f"[tls]\nlisten = 127.0.0.1:{port}\ncertificate = {cert}\n"
        f"key = {key}\n[upstream u]\nurl = https://127.0.0.1:{port}\n")
    assert result.returncode == 2
    assert "own listener (a loop)" in result.stderr, result.stderr


# -- more real clients ---------------------------------------------------------

@pytest.mark.deadline(120)
def test_chromium_through_the_https_proxy(start_daemon, tls_pki, tmp_path):
    from harness.tls import HttpsServer, chromium_dump_dom, nss_home, run_chromium
    d, tls_addr = start_tls(start_daemon, tls_pki)
    home = nss_home(tls_pki, tmp_path / "home")
    https_origin = HttpsServer(tls_pki.server)
    try:
        dom = chromium_dump_dom(https_origin.url("/"), tls_addr, home)
        assert "hello from https test server" in dom
        # A browser that does not trust the proxy's certificate gets
        # nothing through it.
        refused = run_chromium(https_origin.url("/"), tls_addr,
                               tmp_path / "untrusting")
        assert b"ERR_PROXY_CERTIFICATE_INVALID" in refused.stderr
        assert "hello from https test server" not in refused.stdout.decode(
            errors="replace")
    finally:
        https_origin.close()
    lines = d.session_lines()
    assert any(l.get("proto") == "http" and l.get("cmd") == "connect" and
               l.get("dest", "").endswith(f":{https_origin.port}")
               for l in lines), lines
    assert any(l.get("close") == "tls-alert" for l in lines), lines


def test_stunnel_client_carries_curl_socks5(start_daemon, tls_pki, tmp_path,
                                           users_file):
    from harness.tls import StunnelClient
    d, tls_addr = start_tls(start_daemon, tls_pki, auth={
        "method": "password", "users_file": str(users_file)})
    origin = HttpServer()
    try:
        with StunnelClient(tls_pki, connect=tls_addr,
                           workdir=tmp_path) as port:
            result = curl("--socks5-hostname", f"127.0.0.1:{port}",
                          "--proxy-user", f"bob:{USERS['bob']}",
                          origin.url("/blob/200000"))
            assert result.returncode == 0, result.stderr
            assert result.stdout == http_origin_blob(200000)
    finally:
        origin.close()
    line = d.wait_session(close="eof", user="bob")
    assert line["proto"] == "socks5"
    assert int(line["down"]) > 200000


def test_tickets_resume_at_any_worker(start_daemon, tls_pki):
    d, tls_addr = start_tls(start_daemon, tls_pki, server={"workers": 2})
    ctx = tls_client_context(tls_pki, maximum_version=ssl.TLSVersion.TLSv1_2)
    with open_tls(tls_addr, ctx) as first:
        session = first.session
    # SO_REUSEPORT spreads connections over both workers: every one of
    # them must resume the first one's session.
    reused = []
    for _ in range(12):
        raw = socket.create_connection(tls_addr, timeout=IO_TIMEOUT)
        with ctx.wrap_socket(raw, server_hostname="localhost",
                             session=session) as again:
            reused.append(again.session_reused)
    assert all(reused), reused


# -- BIND and UDP ASSOCIATE inside TLS -------------------------------------------

def test_bind_and_udp_associate_over_tls(start_daemon, tls_pki):
    from harness.socks5 import CMD_BIND
    from harness.tls import TlsSocks5Client
    from harness.udp import Association, UdpServer
    d, tls_addr = start_tls(start_daemon, tls_pki)
    ctx = tls_client_context(tls_pki)
    # BIND: both replies come through TLS, then the peer's bytes.
    client = TlsSocks5Client(open_tls(tls_addr, ctx))
    client.greet()
    first = client.request(LOOPBACK4, 0, CMD_BIND)
    assert first.rep == 0
    peer = socket.create_connection(first.bound, timeout=IO_TIMEOUT)
    second = client.read_reply()
    assert second.rep == 0
    assert second.bound[1] == peer.getsockname()[1]
    peer.sendall(b"from the peer")
    assert client.recv_exact(13) == b"from the peer"
    client.send(b"to the peer")
    assert recv_exact(peer, 11) == b"to the peer"
    peer.close()
    client.close()
    d.wait_session(cmd="bind", tls="1.3")
    # UDP ASSOCIATE: the control connection is TLS, datagrams are not.
    echo = UdpServer(LOOPBACK4)
    try:
        a = Association(tls_addr)
        a.client.close()
        a.client = TlsSocks5Client(open_tls(tls_addr, ctx))
        a.request()
        a.send(LOOPBACK4, echo.port, b"datagram")
        assert a.recv() == (LOOPBACK4, echo.port, b"datagram")
        a.close()
    finally:
        echo.close()
    line = d.wait_session(cmd="udp", close="eof")
    assert line["dgrams_up"] == line["dgrams_down"] == "1"


# -- upstreams over TLS ----------------------------------------------------------

def via(start_daemon, url, **upstream):
    """A daemon whose every request goes through [upstream u] = url."""
    return start_daemon(outbound={"via": "u"},
                        **{"upstream u": {"url": url, "fail_after": 100,
                                          **upstream}})


def test_upstreams_over_tls_verify_the_member(start_daemon, tls_pki):
    hop, hop_addr = start_tls(start_daemon, tls_pki)
    port = hop_addr[1]
    origin = HttpServer()
    ca = str(tls_pki.ca_cert)
    try:
        # SOCKS5 inside TLS to a name, and an HTTPS proxy by address
        # (checked against the certificate's IP SAN).
        for url in (f"socks5h+tls://localhost:{port}",
                    f"socks5+tls://localhost:{port}",
                    f"https://127.0.0.1:{port}"):
            d = via(start_daemon, url, tls_ca=ca)
            result = curl("--socks5-hostname", f"{d.host}:{d.port}",
                          origin.url("/blob/100000"))
            assert result.returncode == 0, (url, result.stderr, d.log())
            assert result.stdout == http_origin_blob(100000)
            line = d.wait_session(close="eof", via="u")
            assert line["addr"] == f"127.0.0.1:{port}"
        hop_lines = [l for l in hop.session_lines() if l.get("tls") == "1.3"]
        assert {l["proto"] for l in hop_lines} == {"socks5", "http"}, hop_lines
        # Verification is on by default: the system's CAs do not know
        # the test CA, so the member fails and the client hears 0x01.
        d = via(start_daemon, f"socks5h+tls://localhost:{port}")
        client = Socks5Client(d.address)
        client.greet()
        assert client.request(LOOPBACK4, origin.port).rep == 1
        client.close()
        d.wait_log(r"upstream u: socks5h\+tls://localhost:\d+: TLS: "
                   r"certificate: unable to get local issuer certificate")
        # ... unless the operator turns it off.
        d = via(start_daemon, f"socks5h+tls://localhost:{port}",
                tls_verify="no")
        result = curl("--socks5-hostname", f"{d.host}:{d.port}",
                      origin.url("/"))
        assert result.stdout == origin.greeting
        # A certificate for another name is refused even from a trusted CA.
        other, other_addr = start_tls(start_daemon, tls_pki,
                                      cert=tls_pki.wrong_host_server)
        d = via(start_daemon, f"https://localhost:{other_addr[1]}",
                tls_ca=ca)
        result = curl("-o", "/dev/null", "-w", "%{http_code}", "-x",
                      f"http://{d.host}:{d.port}", origin.url("/"))
        assert result.stdout == b"502", result
        d.wait_log(r"certificate: hostname mismatch")
    finally:
        origin.close()


def test_bind_and_udp_through_a_tls_upstream(start_daemon, tls_pki):
    from harness.socks5 import CMD_BIND
    from harness.udp import Association, UdpServer
    hop, hop_addr = start_tls(start_daemon, tls_pki)
    d = via(start_daemon, f"socks5+tls://127.0.0.1:{hop_addr[1]}",
            tls_ca=str(tls_pki.ca_cert))
    client = Socks5Client(d.address)
    client.greet()
    first = client.request(LOOPBACK4, 0, CMD_BIND)
    assert first.rep == 0
    peer = socket.create_connection(first.bound, timeout=IO_TIMEOUT)
    assert client.read_reply().rep == 0
    peer.sendall(b"hello binder")
    assert client.recv_exact(12) == b"hello binder"
    peer.close()
    client.close()
    hop.wait_session(cmd="bind", tls="1.3")
    echo = UdpServer(LOOPBACK4)
    try:
        with Association(d.address) as a:
            a.request()
            a.send(LOOPBACK4, echo.port, b"through two relays")
            assert a.recv() == (LOOPBACK4, echo.port, b"through two relays")
    finally:
        echo.close()
    hop.wait_session(cmd="udp", tls="1.3")


def test_key_update_mid_tunnel_keeps_the_bytes_flowing(start_daemon, tls_pki,
                                                     echo_target):
    d, tls_addr = start_tls(start_daemon, tls_pki)
    host, port = echo_target.address
    # s_client's "K" line sends a TLS 1.3 KeyUpdate that asks for ours in
    # return; the tunnel must carry on with the new keys both ways.
    out = s_client_session(
        tls_addr, "-tls1_3", "-crlf", "-CAfile", str(tls_pki.ca_cert),
        send=[f"CONNECT {host}:{port} HTTP/1.1\n\nbefore\n".encode(), b"K\n",
              b"after the update\n"],
        expect=b"after the update\r\n")
    assert b"200" in out, out
    assert b"KEYUPDATE" in out, out
    assert out.count(b"before\r\n") == 1 and b"after the update\r\n" in out, out
    assert b"K\r\n" not in out        # a command, not data
    d.wait_session(proto="http", tls="1.3")


def test_records_read_ahead_are_not_forgotten(start_daemon, tls_pki, echo_target):
    """Greeting, request and payload as three TLS records in one segment,
    right behind the client's Finished: the daemon reads them all at
    once, and must serve each though no socket event follows."""
    d, tls_addr = start_tls(start_daemon, tls_pki)
    ctx = tls_client_context(tls_pki)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    raw = socket.create_connection(tls_addr, timeout=IO_TIMEOUT)

    def pump_until(done):
        while not done():
            if outgoing.pending:
                raw.sendall(outgoing.read())
            data = raw.recv(65536)
            assert data, "closed by the daemon"
            incoming.write(data)

    def handshake_done():
        try:
            tls.do_handshake()
            return True
        except ssl.SSLWantReadError:
            return False

    pump_until(handshake_done)
    host, port = echo_target.address
    tls.write(b"\x05\x01\x00")
    tls.write(b"\x05\x01\x00\x01" + socket.inet_aton(host) + port.to_bytes(2, "big"))
    tls.write(b"payload behind the request")
    raw.sendall(outgoing.read())       # one segment, three records
    got = b""

    def answered():
        # One read gives one record: take every record already received
        # before waiting on the socket for more.
        nonlocal got
        try:
            while True:
                got += tls.read(65536)
        except ssl.SSLWantReadError:
            pass
        return len(got) >= 2 + 10 + 26
    pump_until(answered)
    assert got[:2] == b"\x05\x00"          # no login
    assert got[2:4] == b"\x05\x00"         # connected
    assert got[12:] == b"payload behind the request"
    raw.close()


def test_failed_client_certificates_count_toward_the_ban(start_daemon, tls_pki,
                                                        echo_target):
    d, tls_addr = start_tls(start_daemon, tls_pki, tls=mtls(tls_pki),
                            limits={"auth_failures": 2, "auth_window": 60,
                                    "auth_ban": 60})
    greeting = b"\x05\x01\x00"
    bad = tls_client_context(tls_pki, client_cert=tls_pki.wrong_ca_client)
    for _ in range(2):
        assert tls_rejection(tls_addr, bad, send=greeting) is not None
    d.wait_log(r"client 127\.0\.0\.1 banned for 60s after 2 failed logins")
    # Now even the right certificate gets nowhere from that address.
    good = tls_client_context(tls_pki, client_cert=tls_pki.alice)
    assert tls_rejection(tls_addr, good, send=greeting) is not None
    assert not any(l.get("user") == "alice" for l in d.session_lines())


def test_rate_limits_hold_through_tls_and_the_http_proxy(start_daemon, tls_pki,
                                                         make_target):
    """rate_down holds, within 10% over 5 s, for a tunnel inside TLS
    (copied through OpenSSL) and for a forwarded HTTP request (copied with
    the response-head filter), each session its own budget."""
    from harness.httpd import HttpServer
    from harness.rate import MIB, Reader, assert_near, window_rates
    from harness.targets import source

    d, tls_addr = start_tls(start_daemon, tls_pki,
                            limits={"rate_down": "1M", "rate_per": "session"})
    big = make_target(source(1 << 40))
    origin = HttpServer()
    tunnel = socks5_over_tls(tls_addr, *big.address, tls_client_context(tls_pki))
    http = socket.create_connection(d.address, timeout=IO_TIMEOUT)
    readers = [Reader(tunnel), Reader(http)]
    try:
        http.sendall(f"GET http://127.0.0.1:{origin.port}/blob/{32 * MIB} HTTP/1.1\r\n"
                     f"Host: 127.0.0.1:{origin.port}\r\n\r\n".encode())
        for r in readers:
            r.start()
        rates = window_rates(readers)
    finally:
        for r in readers:
            r.stop.set()
        tunnel.close()
        http.close()
        origin.close()
    assert_near(rates[0], 1 * MIB, "a SOCKS5 tunnel inside TLS")
    assert_near(rates[1], 1 * MIB, "a forwarded HTTP response")
