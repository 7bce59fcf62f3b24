"""Self-test of harness/tls.py, independent of the daemon's own TLS: the
certificate factory (checked with `openssl verify`), the Python TLS client
and servers, SOCKS5 and HTTP over TLS through stunnel in server mode in
front of microsocks and tinyproxy, stunnel in client mode in front of a
Python TLS echo server, and headless Chromium trusting the test CA through
an NSS database (and through SPKI pins), directly and as an HTTPS proxy
(stunnel in front of a plain socks5d)."""
import os
import socket
import ssl
import time

import pytest

from harness.net import LOOPBACK4, closed_port, format_hostport, peer_closed, recv_exact
from harness.socks5 import METHOD_NONE, METHOD_PASSWORD, assert_echo
from harness.targets import TargetServer
from harness.tls import (CAS, KEY_MODE, LEAVES, HttpsServer, Socks5Error,
                         StunnelClient, StunnelServer, TlsPki, cert_san, cert_subject,
                         cert_text, chromium_dump_dom, http_proxy_over_tls, nss_home,
                         open_tls, peer_common_name, run_chromium, socks5_over_tls,
                         socks5_tls_client, spki_sha256, tls_behaviour,
                         tls_client_context, tls_rejection, tls_server_context)
from harness.upstreams import Microsocks, Tinyproxy


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return TlsPki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def make_tls_target():
    """Factory: make_tls_target(cert, client_ca=None, client_cert="none")
    -> TargetServer that speaks TLS and echoes."""
    servers = []

    def make(cert, client_ca=None, client_cert="none", alpn=None):
        server = TargetServer(tls_behaviour(
            tls_server_context(cert, client_ca, client_cert, alpn)))
        servers.append(server)
        return server
    yield make
    for server in servers:
        server.close()


def wait_record(server, count=1, timeout=5.0):
    deadline = time.monotonic() + timeout
    while len(server.records) < count:
        assert time.monotonic() < deadline, "the TLS target saw no connection"
        time.sleep(0.01)
    return server.records[count - 1].wait()


# -- the certificate factory -------------------------------------------------

def test_pki_is_made_quickly_once_and_reused(tmp_path):
    started = time.monotonic()
    pki = TlsPki(tmp_path / "pki")
    made = pki.all()
    elapsed = time.monotonic() - started
    assert elapsed < 5, f"making the PKI took {elapsed:.1f}s"
    assert set(made) == set(CAS) | set(LEAVES)
    for item in made.values():
        assert item.cert.read_text().startswith("-----BEGIN CERTIFICATE-----")
        assert "PRIVATE KEY-----" in item.key.read_text()
        assert item.key.stat().st_mode & 0o777 == KEY_MODE, item
        assert "ASN1 OID: prime256v1" in cert_text(item.cert), item
    assert TlsPki(tmp_path / "pki") is pki
    # A fresh object (as in another process) reuses the files.
    stamps = {n: i.cert.stat().st_mtime_ns for n, i in made.items()}
    TlsPki._instances.clear()
    again = TlsPki(tmp_path / "pki")
    assert again is not pki
    assert {n: i.cert.stat().st_mtime_ns for n, i in again.all().items()} == stamps

    loose = again.copy_key("server", tmp_path, 0o644)
    assert loose.stat().st_mode & 0o777 == 0o644
    assert loose.read_bytes() == again.server.key.read_bytes()


def test_certificates_verify_against_their_own_ca_only(pki):
    good = {"server": "sslserver", "wrong_host_server": "sslserver",
            "alice": "sslclient", "bob": "sslclient", "carol": "sslclient"}
    for name, purpose in good.items():
        cert = getattr(pki, name).cert
        ok, text = pki.verify(cert, purpose=purpose)
        assert ok, f"{name}: {text}"
        ok, text = pki.verify(cert, ca=pki.wrong_ca_cert)
        assert not ok and "unable to get local issuer certificate" in text, \
            f"{name} verified against the wrong CA: {text}"
    # Servers are not clients and clients are not servers.
    assert not pki.verify(pki.server.cert, purpose="sslclient")[0]
    assert not pki.verify(pki.alice.cert, purpose="sslserver")[0]

    for name in ("expired_server", "expired_client"):
        ok, text = pki.verify(getattr(pki, name).cert)
        assert not ok and "certificate has expired" in text, f"{name}: {text}"

    ok, text = pki.verify(pki.wrong_ca_client.cert)
    assert not ok and "unable to get local issuer certificate" in text, text
    ok, text = pki.verify(pki.wrong_ca_client.cert, ca=pki.wrong_ca_cert,
                          purpose="sslclient")
    assert ok, text


def test_certificates_carry_the_right_names(pki):
    assert cert_subject(pki.server.cert) == "CN=localhost"
    assert cert_san(pki.server.cert) == [
        "DNS:localhost", "IP Address:127.0.0.1", "IP Address:0:0:0:0:0:0:0:1"]
    assert cert_san(pki.expired_server.cert) == cert_san(pki.server.cert)
    assert cert_san(pki.wrong_host_server.cert) == ["DNS:wrong.example.test"]
    assert cert_subject(pki.alice.cert) == "CN=alice"
    assert cert_san(pki.alice.cert) == []
    assert cert_subject(pki.bob.cert) == "CN=bob-device"
    assert cert_san(pki.bob.cert) == ["email:bob@example.test"]
    assert cert_subject(pki.carol.cert) == "CN=carol-device"
    assert cert_san(pki.carol.cert) == ["DNS:carol.example.test"]
    for name in ("expired_client", "wrong_ca_client"):
        assert cert_subject(getattr(pki, name).cert) == "CN=alice", name
    assert "Issuer: CN = socks5d wrong CA" in cert_text(pki.wrong_ca_client.cert)
    assert spki_sha256(pki.server.cert) != spki_sha256(pki.expired_server.cert)
    assert len(spki_sha256(pki.server.cert)) == 44


# -- Python TLS ----------------------------------------------------------------

def test_python_client_verifies_server_and_presents_client_cert(pki, make_tls_target):
    target = make_tls_target(pki.server, pki.ca_cert, "optional",
                             alpn=["socks5", "http/1.1"])
    for host in ("localhost", LOOPBACK4):
        with open_tls(target.address, tls_client_context(pki, client_cert=pki.alice,
                                                         alpn=["http/1.1"]),
                      server_hostname=host) as tls:
            assert tls.selected_alpn_protocol() == "http/1.1"
            tls.sendall(b"over tls")
            assert recv_exact(tls, 8) == b"over tls"
    record = wait_record(target)
    assert peer_common_name(record.peer_cert) == "alice"
    assert record.alpn == "http/1.1"
    assert record.tls_version == "TLSv1.3"

    for label, ctx, host, cert, reason in (
            ("wrong CA", tls_client_context(pki, cafile=pki.wrong_ca_cert),
             "localhost", pki.server, "unable to get local issuer certificate"),
            ("wrong host", tls_client_context(pki), "localhost",
             pki.wrong_host_server, "Hostname mismatch"),
            ("expired", tls_client_context(pki), "localhost", pki.expired_server,
             "certificate has expired")):
        bad = make_tls_target(cert)
        with pytest.raises(ssl.SSLCertVerificationError, match=reason):
            open_tls(bad.address, ctx, server_hostname=host).close()


def test_tls_rejection_sees_refused_client_certificates(pki, make_tls_target):
    target = make_tls_target(pki.server, pki.ca_cert, "require")
    assert tls_rejection(target.address, tls_client_context(pki, pki.alice)) is None
    for label, cert in (("none", None), ("expired", pki.expired_client),
                        ("wrong CA", pki.wrong_ca_client)):
        refused = tls_rejection(target.address, tls_client_context(pki, cert))
        assert refused is not None, f"{label}: the server kept the connection"
    errors = [r.wait().error or "" for r in target.records]
    assert errors[0] == ""
    assert "PEER_DID_NOT_RETURN_A_CERTIFICATE" in errors[1], errors
    assert "CERTIFICATE_VERIFY_FAILED" in errors[2], errors
    assert "CERTIFICATE_VERIFY_FAILED" in errors[3], errors


# -- SOCKS5 and HTTP over TLS (stunnel as the TLS server) ----------------------

def test_socks5_over_tls(pki, echo_target, tmp_path):
    with Microsocks(tmp_path, user="alice", password="wonderland") as socks, \
            StunnelServer(pki, socks.address, workdir=tmp_path) as port:
        proxy = (LOOPBACK4, port)
        ctx = tls_client_context(pki)
        with socks5_over_tls(proxy, LOOPBACK4, echo_target.port, ctx,
                             user="alice", password="wonderland") as tls:
            assert tls.socks5_reply.rep == 0
            payload = os.urandom(100_000)
            tls.sendall(payload)
            assert recv_exact(tls, len(payload)) == payload

        with pytest.raises(Socks5Error) as failed:
            socks5_over_tls(proxy, LOOPBACK4, echo_target.port, ctx,
                            user="alice", password="wrong")
        assert failed.value.stage == "auth" and failed.value.code != 0, failed.value
        with pytest.raises(Socks5Error) as failed:
            socks5_over_tls(proxy, LOOPBACK4, echo_target.port, ctx)
        assert (failed.value.stage, failed.value.code) == ("method", 0xFF)
        holder, closed = closed_port()
        with holder, pytest.raises(Socks5Error) as failed:
            socks5_over_tls(proxy, LOOPBACK4, closed, ctx, user="alice",
                            password="wonderland")
        assert (failed.value.stage, failed.value.code) == ("connect", 0x05)
        assert "connection refused" in str(failed.value)
        with pytest.raises(ssl.SSLCertVerificationError):
            socks5_over_tls(proxy, LOOPBACK4, echo_target.port,
                            tls_client_context(pki, cafile=pki.wrong_ca_cert))

        # The raw client's steps over TLS (microsocks wants each message
        # in one read, so no send_bytewise here).
        with socks5_tls_client(proxy, ctx) as client:
            assert client.greet((METHOD_NONE, METHOD_PASSWORD)) == METHOD_PASSWORD
            assert client.authenticate("alice", "wonderland") == (1, 0)
            reply = client.request(LOOPBACK4, echo_target.port)
            assert reply.rep == 0, reply
            assert_echo(client)


def test_http_connect_over_tls(pki, echo_target, tmp_path):
    with Tinyproxy(tmp_path) as proxy, \
            StunnelServer(pki, proxy.address, workdir=tmp_path) as port:
        dest = format_hostport(LOOPBACK4, echo_target.port)
        with http_proxy_over_tls((LOOPBACK4, port), tls_client_context(pki)) as client:
            response = client.request(f"CONNECT {dest} HTTP/1.1\r\nHost: {dest}\r\n\r\n"
                                      .encode())
            assert response.status == 200, response
            client.send(b"tunnelled over tls")
            assert recv_exact(client.sock, 18) == b"tunnelled over tls"


# -- stunnel as the TLS client --------------------------------------------------

def test_stunnel_client_relays_to_a_tls_server(pki, make_tls_target, tmp_path):
    target = make_tls_target(pki.server, pki.ca_cert, "require")
    with StunnelClient(pki, connect=target.address, client_cert=pki.bob,
                       workdir=tmp_path) as port:
        with socket.create_connection((LOOPBACK4, port), timeout=10) as plain:
            payload = os.urandom(200_000)
            plain.sendall(payload)
            assert recv_exact(plain, len(payload)) == payload
            plain.shutdown(socket.SHUT_WR)
            assert peer_closed(plain), "stunnel did not pass the EOF back"
    record = wait_record(target)
    assert record.error is None, record.error
    assert record.received_len == len(payload)
    assert record.peer_cert["subjectAltName"] == (("email", "bob@example.test"),)

    # The same with checkIP instead of checkHost.
    with StunnelClient(pki, connect=target.address, client_cert=pki.alice,
                       check_host=None, check_ip=LOOPBACK4, workdir=tmp_path) as port:
        with socket.create_connection((LOOPBACK4, port), timeout=10) as plain:
            plain.sendall(b"by ip")
            assert recv_exact(plain, 5) == b"by ip"
    assert peer_common_name(wait_record(target, 2).peer_cert) == "alice"


@pytest.mark.parametrize("case", ["wrong CA", "wrong host", "expired"])
def test_stunnel_client_refuses_bad_servers(pki, make_tls_target, tmp_path, case):
    cert, cafile, logged = {
        "wrong CA": (pki.server, pki.wrong_ca_cert, "unable to get local issuer"),
        "wrong host": (pki.wrong_host_server, None, "Subject checks failed"),
        "expired": (pki.expired_server, None, "certificate has expired"),
    }[case]
    target = make_tls_target(cert)
    stunnel = StunnelClient(pki, connect=target.address, cafile=cafile, workdir=tmp_path)
    with stunnel as port:
        with socket.create_connection((LOOPBACK4, port), timeout=10) as plain:
            try:
                plain.sendall(b"must not arrive")
                got = plain.recv(100)
            except ConnectionResetError:
                got = b""
            assert got == b""
        record = wait_record(target)
        assert record.received_len == 0
        assert "certificate verify failed" in stunnel.log(), stunnel.log()
        assert logged in stunnel.log(), stunnel.log()


# -- Chromium ----------------------------------------------------------------------

@pytest.mark.deadline(90)
def test_chromium_trusts_the_test_ca(pki, start_daemon, tmp_path):
    """Directly and through an HTTPS proxy (stunnel in front of a plain
    socks5d, which resolves with the test DNS server, so Chromium's
    background requests go nowhere): with the test CA in the NSS database
    of its HOME, or the server's SPKI pinned, Chromium loads the page;
    with neither it gets a certificate error and no page."""
    with HttpsServer(pki.server) as origin:
        trusted = nss_home(pki, tmp_path / "nss")
        dom = chromium_dump_dom(origin.url("/"), None, trusted)
        assert f'<p id="greeting">{origin.greeting.decode()}</p>' in dom, dom

        untrusted = run_chromium(origin.url("/"), None, tmp_path / "plain")
        assert origin.greeting not in untrusted.stdout, untrusted.stdout
        assert b"ERR_CERT_AUTHORITY_INVALID" in untrusted.stderr, untrusted.stderr[-2000:]

        pinned = chromium_dump_dom(origin.url("/"), None, tmp_path / "spki",
                                   spki_pins=[spki_sha256(pki.server.cert)])
        assert origin.greeting.decode() in pinned, pinned

        d = start_daemon()
        with StunnelServer(pki, d.address, workdir=tmp_path) as port:
            proxy = (LOOPBACK4, port)
            before = len(origin.requests)
            dom = chromium_dump_dom(origin.url("/"), proxy, trusted)
            assert origin.greeting.decode() in dom, dom
            assert len(origin.requests) > before
            d.wait_session(proto="http", dest=format_hostport(*origin.address),
                           reply=0)

            refused = run_chromium(origin.url("/"), proxy, tmp_path / "plain")
            assert origin.greeting not in refused.stdout, refused.stdout
            assert b"ERR_PROXY_CERTIFICATE_INVALID" in refused.stderr, \
                refused.stderr[-2000:]
