"""[inspect] sniff, black-box: the name in a TLS ClientHello (also split
over segments) and the Host of an HTTP request reach the access log
(sni=, host=, alpn=); a client that asked for an address is judged by the
rules with the sniffed name before a byte goes on; a name other than the
one asked for is logged (sni_mismatch=1) or refused ([inspect] mismatch);
nothing of it happens when sniff is off."""
import ssl
import time
from pathlib import Path

from harness.http_proxy import ProxyClient
from harness.net import recv_exact, send_fin_and_drain, wait_until
from harness.socks5 import open_tunnel
from harness.targets import behave_echo, source


def client_hello(name, alpn=("h2", "http/1.1")):
    """The first flight of a real TLS client for name."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(list(alpn))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=name)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def sniff_daemon(start_daemon, **extra):
    return start_daemon(inspect={"sniff": "tls, http", **extra.pop("inspect", {})},
                        **extra)


def echo_back(tunnel, data):
    tunnel.sock.sendall(data)
    assert recv_exact(tunnel.sock, len(data)) == data


def test_sni_and_host_reach_the_access_log(start_daemon, make_target):
    d = sniff_daemon(start_daemon)
    echo = make_target(behave_echo)
    hello = client_hello("Www.Example.ORG.")
    with open_tunnel(d.address, *echo.address) as t:
        # Split over two segments, the second after a pause.
        t.sock.sendall(hello[:40])
        time.sleep(0.2)
        t.sock.sendall(hello[40:])
        assert recv_exact(t.sock, len(hello)) == hello
    fields = d.wait_session(cmd="connect", sni="www.example.org")
    assert fields["alpn"] == "h2"
    assert "sni_mismatch" not in fields and "host" not in fields
    with open_tunnel(d.address, *echo.address) as t:
        echo_back(t, b"GET / HTTP/1.1\r\nHost: Api.Example.NET:8080\r\n\r\n")
    fields = d.wait_session(host="api.example.net")
    assert "sni" not in fields
    # Neither: nothing to say, and the bytes still go through.
    with open_tunnel(d.address, *echo.address) as t:
        echo_back(t, b"\x00\x01binary protocol")
    wait_until(lambda: d.log().count("close=eof") >= 3, 5, what="three sessions")
    assert sum("sni=" in l or "host=" in l for l in d.log().splitlines()
               if "session client=" in l) == 2


def test_a_rule_on_names_judges_an_address_by_its_sni(start_daemon, make_target):
    """Rules with name patterns and a client that gives an address: the
    decision waits for its first bytes (success first, BND all zeros),
    and a denied name is never connected to at all."""
    d = sniff_daemon(start_daemon, **{
        "rule no-blocked": {"action": "deny", "dest": ".blocked.test"},
        "rule rest": {"action": "allow"}})
    echo = make_target(behave_echo)
    t = open_tunnel(d.address, *echo.address)
    try:
        assert t.reply.bound == ("0.0.0.0", 0)
        t.sock.sendall(client_hello("ads.blocked.test"))
        assert t.sock.recv(65536) == b""
    finally:
        t.close()
    fields = d.wait_session(close="rejected", cmd="connect")
    assert fields["rule"] == "no-blocked" and fields["sni"] == "ads.blocked.test"
    assert fields["addr"] == "-"
    # Another name to the same address: connected, bytes both ways.
    with open_tunnel(d.address, *echo.address) as t:
        echo_back(t, client_hello("fine.example"))
    d.wait_session(sni="fine.example", close="eof")
    assert len(echo.records) == 1, "the denied name was connected to"
    # HTTP: the Host decides alike.
    with open_tunnel(d.address, *echo.address) as t:
        t.sock.sendall(b"GET / HTTP/1.1\r\nHost: www.blocked.test\r\n\r\n")
        assert t.sock.recv(65536) == b""
    assert d.wait_session(host="www.blocked.test")["close"] == "rejected"


def test_an_http_connect_tunnel_is_judged_by_its_sni_alike(start_daemon,
                                                          make_target):
    """The decision waits the same way behind HTTP CONNECT: 200 first,
    then the first bytes' name decides (the front-end knows nothing of
    it)."""
    d = sniff_daemon(start_daemon, **{
        "rule no-blocked": {"action": "deny", "dest": ".blocked.test"},
        "rule rest": {"action": "allow"}})
    echo = make_target(behave_echo)
    head = "CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (echo.address * 2)
    for name, allowed in (("ads.blocked.test", False), ("fine.example", True)):
        with ProxyClient(d.address) as c:
            answer = c.request(head.encode())
            assert answer.status == 200 and answer.rest == b""
            hello = client_hello(name)
            c.send(hello)
            if allowed:
                assert recv_exact(c.sock, len(hello)) == hello
            else:
                assert c.sock.recv(65536) == b""
        fields = d.wait_session(proto="http", sni=name)
        assert fields["close"] == ("eof" if allowed else "rejected"), fields
    assert len(echo.records) == 1, "the denied name was connected to"


def test_a_server_that_speaks_first_is_connected_after_sniff_timeout(
        start_daemon, make_target):
    d = sniff_daemon(start_daemon, inspect={"sniff_timeout": 300}, **{
        "rule no-blocked": {"action": "deny", "dest": ".blocked.test"},
        "rule rest": {"action": "allow"}})
    banner = make_target(source(1000))
    started = time.monotonic()
    with open_tunnel(d.address, *banner.address) as t:
        assert len(recv_exact(t.sock, 1000)) == 1000
    waited = time.monotonic() - started
    assert 0.25 <= waited < 3, waited
    fields = d.wait_session(cmd="connect", down="1000")
    assert "sni" not in fields and fields["addr"] == "%s:%d" % banner.address


def test_a_client_that_half_closes_early_is_decided_at_once(start_daemon,
                                                           make_target):
    """A client's FIN before its first bytes could be read whole (or
    before any) ends the wait: the address decides, what was sent goes
    on as it is, then the FIN; never the sniff_timeout's wait."""
    d = sniff_daemon(start_daemon, inspect={"sniff_timeout": 10000}, **{
        "rule no-blocked": {"action": "deny", "dest": ".blocked.test"},
        "rule rest": {"action": "allow"}})
    echo = make_target(behave_echo)
    for sent in (client_hello("cut.example")[:60], b""):
        started = time.monotonic()
        with open_tunnel(d.address, *echo.address) as t:
            assert t.reply.bound == ("0.0.0.0", 0)
            assert send_fin_and_drain(t.sock, sent, timeout=10) == sent
        assert time.monotonic() - started < 5
        fields = d.wait_session(cmd="connect", up=str(len(sent)))
        assert fields["addr"] == "%s:%d" % echo.address and "sni" not in fields


def test_a_name_other_than_the_one_asked_for(start_daemon, make_target):
    echo = make_target(behave_echo)
    hello = client_hello("elsewhere.example")
    logged = sniff_daemon(start_daemon)
    with open_tunnel(logged.address, "localhost", echo.port) as t:
        echo_back(t, hello)
    fields = logged.wait_session(sni="elsewhere.example")
    assert fields["sni_mismatch"] == "1" and fields["close"] == "eof"
    # The same name as asked (any case, trailing dot) is no mismatch.
    with open_tunnel(logged.address, "localhost", echo.port) as t:
        echo_back(t, client_hello("LOCALHOST."))
    assert "sni_mismatch" not in logged.wait_session(sni="localhost")

    denied = sniff_daemon(start_daemon, inspect={"mismatch": "deny"})
    with open_tunnel(denied.address, "localhost", echo.port) as t:
        t.sock.sendall(hello)
        assert t.sock.recv(65536) == b""
    fields = denied.wait_session(close="sni-mismatch")
    assert fields["sni_mismatch"] == "1"

    # allow: the bytes go on and the line says nothing of it.
    allowed = sniff_daemon(start_daemon, inspect={"mismatch": "allow"})
    with open_tunnel(allowed.address, "localhost", echo.port) as t:
        echo_back(t, hello)
    fields = allowed.wait_session(sni="elsewhere.example")
    assert "sni_mismatch" not in fields and fields["close"] == "eof"


def test_off_by_default(start_daemon, make_target):
    d = start_daemon()
    echo = make_target(behave_echo)
    with open_tunnel(d.address, *echo.address) as t:
        echo_back(t, client_hello("www.example.org"))
    fields = d.wait_session(cmd="connect", close="eof")
    assert "sni" not in fields and "alpn" not in fields


# The protected client Initial of RFC 9001 Appendix A.2, as the parser's
# fuzz corpus keeps it (behind the fuzz target's flags byte).
QUIC_INITIAL = Path(__file__).resolve().parents[1] / "fuzz/corpus/sniff_quic/rfc9001_v1"


def test_quic_initial_over_udp_names_the_association(start_daemon):
    """A QUIC v1 Initial (RFC 9001 A.2: SNI example.com) sent through a UDP
    association: the association's line says sni=; a rule on the name
    drops the datagrams to that address, while others pass."""
    from harness.udp import Association, UdpServer
    initial = QUIC_INITIAL.read_bytes()[1:]
    assert len(initial) == 1200 and initial[0] == 0xc0
    server = UdpServer()
    try:
        d = start_daemon(inspect={"sniff": "quic"})
        with Association(d.address) as a:
            a.request()
            a.send(*server.address, initial)
            assert a.recv()[2] == initial
        fields = d.wait_session(cmd="udp")
        assert fields["sni"] == "example.com", fields

        denied = start_daemon(inspect={"sniff": "quic"}, **{
            "rule no-example": {"action": "deny", "dest": "example.com"},
            "rule rest": {"action": "allow"}})
        before = server.count()
        with Association(denied.address) as a:
            a.request()
            a.send(*server.address, initial)
            a.assert_nothing(0.5)
            a.send(*server.address, initial)
            a.assert_nothing(0.3)
        assert server.count() == before
        fields = denied.wait_session(cmd="udp")
        assert int(fields["drop_denied"]) == 2 and fields["sni"] == "example.com"
    finally:
        server.close()


def test_a_sniffed_name_chooses_the_route(start_daemon, make_target):
    """A rule with a via and a name pattern: a client that gives only the
    address goes through the upstream when its ClientHello names a
    matching host, and directly otherwise."""
    echo = make_target(behave_echo)
    up = start_daemon()
    front = sniff_daemon(start_daemon, **{
        "upstream up": {"url": f"socks5://{up.address[0]}:{up.address[1]}"},
        "rule chained": {"action": "allow", "dest": ".via-upstream.test",
                         "via": "up"},
        "rule rest": {"action": "allow", "via": "direct"}})
    with open_tunnel(front.address, *echo.address) as t:
        echo_back(t, client_hello("www.via-upstream.test"))
    assert front.wait_session(sni="www.via-upstream.test")["via"] == "up"
    with open_tunnel(front.address, *echo.address) as t:
        echo_back(t, client_hello("elsewhere.test"))
    assert "via" not in front.wait_session(sni="elsewhere.test")
    # The upstream saw the one routed through it, by address.
    dests = [fields["dest"] for fields in up.session_lines()]
    assert dests == ["%s:%d" % echo.address], dests
