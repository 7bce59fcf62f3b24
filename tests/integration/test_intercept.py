"""TLS interception ([inspect] ca_certificate, ca_key, rule intercept =
yes), black-box with real clients: curl through SOCKS5 and HTTP CONNECT
gets the origin's page under a certificate of the CA `socks5d ca create`
made, and each HTTP exchange gets an http log line; a client that does not
trust that CA stops, and its name then passes through untouched for
learn_bypass; an origin that fails verification is refused with an alert;
bypass names and plain HTTP are not intercepted (plain HTTP is still
logged); an oversized request head inside the TLS is refused and the
daemon serves on; Chromium loads a page with the CA in its NSS database."""
import hashlib
import os
import re
import socket
import ssl
import stat
import subprocess
import time
import types

import pytest

from harness import footprint
from harness.daemon import run_binary
from harness.httpd import HttpServer, blob
from harness.net import (LOOPBACK4, free_port, is_listening, send_fin_and_drain,
                         wait_until)
from harness.socks5 import open_tunnel
from harness.targets import behave_echo
from harness.tls import HttpsServer, tool_env

CURL_TIMEOUT = 20


@pytest.fixture(scope="module")
def tls_pki(tmp_path_factory):
    from harness.tls import TlsPki
    return TlsPki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def intercept_ca(tmp_path_factory, socks5d_binary):
    """(certificate, key) of a CA made by `socks5d ca create`."""
    directory = tmp_path_factory.mktemp("ca")
    cert, key = directory / "ca.pem", directory / "ca.key"
    result = run_binary(["ca", "create", str(cert), str(key)])
    assert result.returncode == 0, result.stderr
    assert "update-ca-certificates" in result.stdout
    assert "certutil" in result.stdout and "consent" in result.stdout
    return cert, key


def curl(*args, timeout=CURL_TIMEOUT, input_bytes=None):
    return subprocess.run(["curl", "-sS", "--max-time", str(timeout), *args],
                          capture_output=True, timeout=timeout + 5,
                          env=tool_env(), input=input_bytes)


def intercepting_daemon(start_daemon, ca, origin_ca, inspect=None, **extra):
    section = {"ca_certificate": str(ca[0]), "ca_key": str(ca[1]),
               "upstream_ca": str(origin_ca)}
    section.update(inspect or {})
    rules = {"rule intercept-all": {"action": "allow", "intercept": "yes"}}
    rules.update(extra)
    return start_daemon(inspect=section, **rules)


def http_lines(d):
    return [l for l in d.log().splitlines() if " http client=" in l]


def fields_of(line):
    return dict(re.findall(r"(\w+)=(\S+)", line[line.index("http client="):]))


def issuer_of(curl_result):
    """The issuer curl -v printed for the origin's certificate (the last
    one: an HTTPS proxy's comes first)."""
    found = re.findall(r"issuer: (.*)", curl_result.stderr.decode(errors="replace"))
    return found[-1] if found else ""


def test_ca_create_makes_a_private_key_and_refuses_to_overwrite(intercept_ca):
    cert, key = intercept_ca
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    text = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout",
                           "-text"], capture_output=True, text=True,
                          env=tool_env()).stdout
    assert "CA:TRUE" in text and "prime256v1" in text, text
    again = run_binary(["ca", "create", str(cert), str(key)])
    assert again.returncode == 1 and "exists" in again.stderr.lower(), \
        again.stderr
    assert run_binary(["ca", "create", str(cert)]).returncode == 2


def test_curl_through_socks5_and_http_connect_is_intercepted(
        start_daemon, tls_pki, intercept_ca):
    d = intercepting_daemon(start_daemon, intercept_ca, tls_pki.ca_cert)
    origin = HttpsServer(tls_pki.server)
    try:
        via_socks = curl("-v", "--socks5-hostname", "%s:%d" % d.address,
                         "--cacert", str(intercept_ca[0]), origin.url("/"))
        assert via_socks.returncode == 0, via_socks.stderr
        assert origin.greeting in via_socks.stdout
        assert "socks5d interception CA" in issuer_of(via_socks)
        # The client offered h2 too; interception speaks HTTP/1.1 only.
        assert b"ALPN: server accepted http/1.1" in via_socks.stderr
        via_http = curl("-v", "-p", "-x", "http://%s:%d" % d.address,
                        "--cacert", str(intercept_ca[0]),
                        origin.url("/blob/100000"))
        assert via_http.returncode == 0, via_http.stderr
        assert len(via_http.stdout) == 100000
        assert "socks5d interception CA" in issuer_of(via_http)
        missing = curl("--socks5-hostname", "%s:%d" % d.address, "--cacert",
                       str(intercept_ca[0]), origin.url("/nothing?secret=1"))
        assert missing.returncode == 0, missing.stderr
        # By name: the leaf names it, and the log has the server name.
        named = curl("-v", "--socks5-hostname", "%s:%d" % d.address,
                     "--cacert", str(intercept_ca[0]),
                     origin.url("/", host="localhost"))
        assert named.returncode == 0, named.stderr
        assert b"subjectAltName: host \"localhost\" matched" in named.stderr
    finally:
        origin.close()
    wait_until(lambda: len(http_lines(d)) >= 3, 5, what="three http lines")
    first, second, third = (fields_of(l) for l in http_lines(d)[:3])
    assert first["method"] == "GET" and first["path"] == "/"
    assert first["status"] == "200" and first["host"] == "%s:%d" % origin.address
    assert second["path"] == "/blob/100000"
    assert int(second["down"]) > 100000 and int(second["up"]) > 20
    # The query is left out unless [inspect] log_query says otherwise.
    assert third["path"] == "/nothing" and third["status"] == "404"
    socks = d.wait_session(proto="socks5", cmd="connect")
    assert socks["intercept"] == "yes" and socks["close"] == "eof"
    assert d.wait_session(proto="http", cmd="connect")["intercept"] == "yes"
    assert d.wait_session(sni="localhost")["intercept"] == "yes"


def test_an_https_proxy_client_is_intercepted_inside_its_tls(
        start_daemon, tls_pki, intercept_ca):
    """TLS in TLS: curl -x https:// (the [tls] listener's TLS) with an
    HTTPS origin inside, whose TLS is ours; bulk both ways survives the
    two layers."""
    port = free_port()
    d = intercepting_daemon(start_daemon, intercept_ca, tls_pki.ca_cert, tls={
        "listen": f"{LOOPBACK4}:{port}", "certificate": str(tls_pki.server.cert),
        "key": str(tls_pki.server.key)})
    wait_until(lambda: is_listening(LOOPBACK4, port), 5, what="the TLS port")
    origin = HttpsServer(tls_pki.server)
    plain_origin = HttpServer()
    proxy = ["--proxy-cacert", str(tls_pki.ca_cert), "-x",
             f"https://{LOOPBACK4}:{port}", "--cacert", str(intercept_ca[0])]
    try:
        got = curl("-v", *proxy, origin.url("/blob/3000000"))
        assert got.returncode == 0, got.stderr
        assert got.stdout == blob(3000000)
        assert "socks5d interception CA" in issuer_of(got)
        sent = os.urandom(2000000)
        posted = curl(*proxy, "--data-binary", "@-", origin.url("/sha256"),
                      input_bytes=sent)
        assert posted.returncode == 0, posted.stderr
        assert posted.stdout.decode() == hashlib.sha256(sent).hexdigest()
        # Not TLS inside the tunnel: passed through the listener's TLS.
        plain = curl("-p", *proxy, plain_origin.url("/blob/300000"))
        assert plain.returncode == 0, plain.stderr
        assert plain.stdout == blob(300000)
    finally:
        origin.close()
        plain_origin.close()
    wait_until(lambda: len(http_lines(d)) >= 3, 5, what="three http lines")
    lines = [l for l in d.session_lines() if l.get("tls") == "1.3"]
    assert [l["intercept"] for l in lines] == ["yes", "yes", "plain"]
    assert fields_of(http_lines(d)[1])["method"] == "POST"


def test_through_an_upstream_reached_over_tls(start_daemon, tls_pki,
                                              intercept_ca):
    """The origin's TLS runs inside a socks5+tls:// upstream's; and a
    bypassed name passes through that upstream's TLS untouched."""
    port = free_port()
    hop = start_daemon(tls={"listen": f"{LOOPBACK4}:{port}",
                            "certificate": str(tls_pki.server.cert),
                            "key": str(tls_pki.server.key)})
    wait_until(lambda: is_listening(LOOPBACK4, port), 5, what="the TLS port")
    d = intercepting_daemon(
        start_daemon, intercept_ca, tls_pki.ca_cert,
        inspect={"bypass": "localhost"}, outbound={"via": "up"},
        **{"upstream up": {"url": f"socks5+tls://{LOOPBACK4}:{port}",
                           "tls_ca": str(tls_pki.ca_cert)}})
    origin = HttpsServer(tls_pki.server)
    proxy = ["--socks5-hostname", "%s:%d" % d.address]
    try:
        got = curl("-v", *proxy, "--cacert", str(intercept_ca[0]),
                   origin.url("/blob/2000000"))
        assert got.returncode == 0, got.stderr
        assert got.stdout == blob(2000000)
        assert "socks5d interception CA" in issuer_of(got)
        passed = curl("-v", *proxy, "--cacert", str(tls_pki.ca_cert),
                      origin.url("/", host="localhost"))
        assert passed.returncode == 0, passed.stderr
        assert "socks5d test CA" in issuer_of(passed)
    finally:
        origin.close()
    assert d.wait_session(intercept="yes")["via"] == "up"
    assert d.wait_session(intercept="bypass")["via"] == "up"
    assert len(hop.session_lines()) == 2


def read_response(tls):
    """One HTTP/1.1 response with a Content-Length: (head, body)."""
    head = b""
    while b"\r\n\r\n" not in head:
        byte = tls.recv(1)
        assert byte, "the connection closed inside a response head"
        head += byte
    length = int(re.search(rb"Content-Length: (\d+)", head, re.I).group(1))
    body = b""
    while len(body) < length:
        more = tls.recv(length - len(body))
        assert more, "the connection closed inside a response body"
        body += more
    return head, body


def test_keep_alive_gives_one_line_per_exchange_and_log_query(
        start_daemon, tls_pki, intercept_ca):
    d = intercepting_daemon(start_daemon, intercept_ca, tls_pki.ca_cert,
                            inspect={"log_query": "yes"})
    pages = {f"/page?n={n}": "x" * (1000 * n) for n in (1, 2, 3)}
    origin = HttpsServer(tls_pki.server, pages=pages)
    ctx = ssl.create_default_context(cafile=str(intercept_ca[0]))
    try:
        with open_tunnel(d.address, *origin.address) as t:
            tls = ctx.wrap_socket(t.sock, server_hostname=LOOPBACK4)
            for n in (1, 2, 3):
                tls.sendall(b"GET /page?n=%d HTTP/1.1\r\nHost: origin.test"
                            b"\r\n\r\n" % n)
                head, body = read_response(tls)
                assert head.startswith(b"HTTP/1.1 200") and len(body) == 1000 * n
            tls.close()
    finally:
        origin.close()
    wait_until(lambda: len(http_lines(d)) >= 3, 5, what="three http lines")
    paths = [fields_of(l)["path"] for l in http_lines(d)]
    assert paths == ["/page?n=1", "/page?n=2", "/page?n=3"]
    assert all(fields_of(l)["host"] == "origin.test" for l in http_lines(d))
    assert [int(fields_of(l)["down"]) > 1000 * n
            for n, l in zip((1, 2, 3), http_lines(d))] == [True] * 3


def metrics_of(port):
    text = curl(f"http://{LOOPBACK4}:{port}/metrics").stdout.decode()
    return dict(re.findall(r"^(socks5d_\S+) (\d+)$", text, re.M))


def test_an_untrusting_client_teaches_a_bypass_to_every_worker(
        start_daemon, tls_pki, intercept_ca):
    metrics_port = free_port()
    d = intercepting_daemon(start_daemon, intercept_ca, tls_pki.ca_cert,
                            inspect={"learn_bypass": 60},
                            server={"workers": 2},
                            metrics={"listen": f"{LOOPBACK4}:{metrics_port}"})
    origin = HttpsServer(tls_pki.server)
    try:
        proxy = ["--socks5-hostname", "%s:%d" % d.address]
        # Trusting only the origin's CA: our certificate is refused...
        refused = curl(*proxy, "--cacert", str(tls_pki.ca_cert),
                       origin.url("/"))
        assert refused.returncode != 0
        assert d.wait_session(close="intercept-untrusted")["intercept"] == \
            "untrusted"
        d.wait_log(r"refused the certificate made for 127\.0\.0\.1 "
                   r"\(unknown_ca\); it passes through for 60 s")
        # ... and the next sessions to that name go through untouched,
        # whichever worker takes them.
        for _ in range(4):
            direct = curl("-v", *proxy, "--cacert", str(tls_pki.ca_cert),
                          origin.url("/"))
            assert direct.returncode == 0, direct.stderr
            assert "socks5d test CA" in issuer_of(direct)
    finally:
        origin.close()
    wait_until(lambda: sum(l.get("intercept") == "learnt"
                           for l in d.session_lines()) == 4, 5,
               what="four learnt sessions")
    assert http_lines(d) == []
    counts = metrics_of(metrics_port)
    assert counts['socks5d_intercepted_total{result="untrusted"}'] == "1"
    assert counts['socks5d_intercepted_total{result="learnt"}'] == "4"
    assert counts["socks5d_intercept_learnt_bypass"] == "1"
    assert counts['socks5d_intercept_leaves_total{source="minted"}'] == "1"


def test_an_origin_that_fails_verification_is_refused(start_daemon, tls_pki,
                                                     intercept_ca):
    d = intercepting_daemon(start_daemon, intercept_ca, tls_pki.ca_cert)
    wrong_host = HttpsServer(tls_pki.wrong_host_server)
    untrusted = HttpsServer(tls_pki.get("wrong_ca_client"))
    try:
        for origin in (wrong_host, untrusted):
            result = curl("-v", "--socks5-hostname", "%s:%d" % d.address,
                          "--cacert", str(intercept_ca[0]), origin.url("/"))
            assert result.returncode != 0
            assert b"alert handshake failure" in result.stderr, result.stderr
            assert origin.greeting not in result.stdout
    finally:
        wrong_host.close()
        untrusted.close()
    lines = [l for l in d.session_lines() if l.get("close") == "origin-cert"]
    assert len(lines) == 2 and all(l["intercept"] == "refused" for l in lines)
    d.wait_log(r"origin 127\.0\.0\.1 refused: certificate: "
               r"IP address mismatch")
    # Verification off takes any origin, and says so loudly at start.
    lax = intercepting_daemon(start_daemon, intercept_ca, tls_pki.ca_cert,
                              inspect={"upstream_verify": "no"})
    assert "upstream_verify = no" in lax.log()
    wrong_host = HttpsServer(tls_pki.wrong_host_server)
    try:
        result = curl("--socks5-hostname", "%s:%d" % lax.address, "--cacert",
                      str(intercept_ca[0]), wrong_host.url("/"))
        assert result.returncode == 0, result.stderr
    finally:
        wrong_host.close()


def test_bypass_and_plain_http_are_not_intercepted(start_daemon, tls_pki,
                                                  intercept_ca):
    d = intercepting_daemon(start_daemon, intercept_ca, tls_pki.ca_cert,
                            inspect={"bypass": "10.0.0.0/8, 127.0.0.1"})
    origin = HttpsServer(tls_pki.server)
    plain = HttpServer()
    try:
        result = curl("-v", "--socks5-hostname", "%s:%d" % d.address,
                      "--cacert", str(tls_pki.ca_cert), origin.url("/"))
        assert result.returncode == 0, result.stderr
        assert "socks5d test CA" in issuer_of(result)
        # Plain HTTP in a CONNECT tunnel: relayed as is, and logged.
        result = curl("-p", "-x", "http://%s:%d" % d.address,
                      plain.url("/blob/5000"))
        assert result.returncode == 0, result.stderr
        assert len(result.stdout) == 5000
    finally:
        origin.close()
        plain.close()
    assert d.wait_session(proto="socks5")["intercept"] == "bypass"
    assert d.wait_session(proto="http")["intercept"] == "plain"
    line = fields_of(http_lines(d)[0])
    assert line["path"] == "/blob/5000" and line["status"] == "200"


def intercepted_get(d, origin, ca, path="/"):
    """One GET through an intercepted SOCKS5 tunnel, by Python's ssl."""
    ctx = ssl.create_default_context(cafile=str(ca))
    with open_tunnel(d.address, *origin.address) as t:
        tls = ctx.wrap_socket(t.sock, server_hostname=LOOPBACK4)
        tls.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
        head, body = read_response(tls)
        tls.close()
    return head, body


def test_bad_input_is_refused_and_the_daemon_returns_to_baseline(
        start_daemon, make_target, tls_pki, intercept_ca):
    d = intercepting_daemon(start_daemon, intercept_ca, tls_pki.ca_cert,
                            env=footprint.ASAN_ENV, timeouts={"handshake": 1})
    origin = HttpsServer(tls_pki.server)
    echo = make_target(behave_echo)
    ctx = ssl.create_default_context(cafile=str(intercept_ca[0]))
    try:
        # The allocator's steady state (and the leaf cache) goes into
        # the baseline.
        for _ in range(3):
            assert intercepted_get(d, origin, intercept_ca[0])[0].startswith(
                b"HTTP/1.1 200")
        base = footprint.baseline(d.proc.pid)
        # A request head over 16 KiB inside the TLS: the session ends.
        with open_tunnel(d.address, *origin.address) as t:
            tls = ctx.wrap_socket(t.sock, server_hostname=LOOPBACK4)
            tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " +
                        b"a" * 20000 + b"\r\n\r\n")
            tls.settimeout(5)
            try:
                assert tls.recv(4096) == b""
            except (ConnectionResetError, ssl.SSLError):
                pass
        assert d.wait_session(close="http-head-too-large")["intercept"] == \
            "yes"
        # A record header that lies about its length, then garbage: not
        # a ClientHello that can be read, so it passes through as is.
        with open_tunnel(d.address, *origin.address) as t:
            t.sock.sendall(b"\x16\x03\x01\xff\xffnot a hello")
            t.sock.shutdown(socket.SHUT_WR)
            t.sock.settimeout(5)
            t.sock.recv(4096)
        # A handshake record larger than 16 KiB: more than is read before
        # deciding, so it passes through as it is, every byte.
        huge = b"\x16\x03\x01\x48\x00\x01\x00\x47\xfc" + b"\x00" * 0x47fc
        with open_tunnel(d.address, *echo.address) as t:
            assert send_fin_and_drain(t.sock, huge) == huge
        d.wait_session(intercept="none", up=str(len(huge)))
        # A ClientHello cut short, then the client's FIN: no more of it
        # can come, so what came goes on as it is, and the FIN after it.
        cut = client_hello_bytes()[:100]
        with open_tunnel(d.address, *echo.address) as t:
            assert send_fin_and_drain(t.sock, cut) == cut
        d.wait_session(intercept="none", up=str(len(cut)))
        # The FIN before any byte: the origin gets the FIN alone.
        with open_tunnel(d.address, *echo.address) as t:
            assert send_fin_and_drain(t.sock, b"") == b""
        d.wait_session(intercept="none", up="0")
        # A ClientHello cut short, then silence: closed at the timeout.
        with open_tunnel(d.address, *origin.address) as t:
            t.sock.sendall(client_hello_bytes()[:100])
            t.sock.settimeout(5)
            started = time.monotonic()
            assert t.sock.recv(4096) == b""
            assert time.monotonic() - started < 4
        assert d.wait_session(close="intercept-timeout")["intercept"] == \
            "waiting"
        # The daemon serves on, and is back where it was.
        assert intercepted_get(d, origin, intercept_ca[0])[0].startswith(
            b"HTTP/1.1 200")
        footprint.assert_back_to(d.proc.pid, base, what="bad input")
    finally:
        origin.close()
    assert any(l.get("intercept") == "none" for l in d.session_lines())


def client_hello_bytes():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="slow.example")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def test_config_errors_name_file_line_and_key(check_config, intercept_ca,
                                              tmp_path):
    cert, key = intercept_ca
    open_key = tmp_path / "open.key"
    open_key.write_bytes(key.read_bytes())
    open_key.chmod(0o644)
    result, path = check_config("[rule all]\naction = allow\n"
                                "intercept = yes\n")
    assert result.returncode == 2
    assert re.search(rf"{path}:3: \[rule all\] intercept: needs \[inspect\] "
                     r"ca_certificate and ca_key", result.stderr), result.stderr
    result, path = check_config(f"[inspect]\nca_certificate = {cert}\n"
                                f"ca_key = {open_key}\n")
    assert result.returncode == 2
    assert re.search(rf"{path}:3: \[inspect\] ca_key {open_key}: .*others",
                     result.stderr), result.stderr
    result, path = check_config(f"[inspect]\nca_certificate = {cert}\n")
    assert result.returncode == 2 and "needs [inspect] ca_key" in result.stderr
    result, path = check_config(f"[inspect]\nca_certificate = {cert}\n"
                                f"ca_key = {key}\n[rule no]\naction = deny\n"
                                "intercept = yes\n")
    assert result.returncode == 2
    assert "only an allow rule can intercept" in result.stderr
    result, path = check_config(f"[inspect]\nca_certificate = {cert}\n"
                                f"ca_key = {key}\nbypass = 10.0.0.0/33\n")
    assert result.returncode == 2 and "bypass" in result.stderr
    result, path = check_config(f"[inspect]\nca_certificate = {cert}\n"
                                f"ca_key = {key}\nbypass = .example.org, "
                                "192.0.2.0/24\n[rule all]\naction = allow\n"
                                "intercept = yes\n")
    assert result.returncode == 0, result.stderr


@pytest.mark.deadline(120)
def test_chromium_loads_a_page_through_interception(start_daemon, tls_pki,
                                                   intercept_ca, tmp_path):
    from harness.tls import chromium_dump_dom, nss_home
    d = intercepting_daemon(start_daemon, intercept_ca, tls_pki.ca_cert)
    home = nss_home(types.SimpleNamespace(ca_cert=intercept_ca[0]),
                    tmp_path / "home")
    origin = HttpsServer(tls_pki.server)
    try:
        dom = chromium_dump_dom(origin.url("/"), "http://%s:%d" % d.address,
                                home)
        assert origin.greeting.decode() in dom
    finally:
        origin.close()
    assert any(fields_of(l).get("path") == "/" and
               fields_of(l).get("status") == "200" for l in http_lines(d))
    assert any(l.get("intercept") == "yes" for l in d.session_lines())
