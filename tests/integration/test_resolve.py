"""Tor's SOCKS5 extensions RESOLVE (0xF0) and RESOLVE_PTR (0xF1), as
torsocks sends them: the reply carries the answer (an address for a name, a
name for an address) and the session ends. The rules judge the name asked
and the addresses it resolves to; failures get the usual reply codes."""
from harness.net import recv_until_eof
from harness.socks5 import (ATYP_IPV4, ATYP_IPV6, ATYP_NAME, REP_ATYP_UNSUPPORTED,
                            REP_HOST_UNREACH, REP_NOT_ALLOWED, REP_SUCCESS, Socks5Client)

CMD_RESOLVE = 0xF0
CMD_RESOLVE_PTR = 0xF1


def ask(daemon, host, cmd=CMD_RESOLVE):
    with Socks5Client(daemon.address) as c:
        assert c.greet() == 0
        reply = c.request(host, 0, cmd)
        # The answer is the whole session.
        assert recv_until_eof(c.sock) == b""
        return reply


def test_resolve_names_and_literals(daemon, dns_server):
    reply = ask(daemon, "v4.test")
    assert (reply.rep, reply.atyp, reply.host, reply.port) == (REP_SUCCESS, ATYP_IPV4,
                                                              "127.0.0.1", 0)
    assert "v4.test" in dns_server.queried_names()
    reply = ask(daemon, "v6.test")
    assert (reply.rep, reply.atyp, reply.host) == (REP_SUCCESS, ATYP_IPV6, "::1")
    # A literal is its own answer, with no lookup.
    before = len(dns_server.queried_names())
    reply = ask(daemon, "127.0.0.9")
    assert (reply.rep, reply.host) == (REP_SUCCESS, "127.0.0.9")
    assert len(dns_server.queried_names()) == before
    reply = ask(daemon, "nxdomain.test")
    assert reply.rep == REP_HOST_UNREACH
    fields = daemon.wait_session(cmd="resolve", dest="v4.test:0", close="resolved")
    assert fields["reply"] == "0"
    daemon.wait_session(cmd="resolve", dest="nxdomain.test:0", reply=REP_HOST_UNREACH)


def test_resolve_ptr(daemon, dns_server):
    reply = ask(daemon, "127.0.0.7", CMD_RESOLVE_PTR)
    assert (reply.rep, reply.atyp, reply.host) == (REP_SUCCESS, ATYP_NAME, "seven.test")
    assert "7.0.0.127.in-addr.arpa" in dns_server.queried_names()
    assert ask(daemon, "127.0.0.8", CMD_RESOLVE_PTR).rep == REP_HOST_UNREACH
    # A name has no PTR record to ask for.
    assert ask(daemon, "v4.test", CMD_RESOLVE_PTR).rep == REP_ATYP_UNSUPPORTED
    daemon.wait_session(cmd="resolve_ptr", dest="127.0.0.7:0", reply=0, close="resolved")


def test_rules_judge_the_name_asked(start_daemon, dns_server):
    d = start_daemon(**{"rule no-v4": {"action": "deny", "dest": "v4.test"},
                        "rule no-nine": {"action": "deny", "dest": "127.0.0.9/32"},
                        "rule rest": {"action": "allow"}})
    assert ask(d, "v4.test").rep == REP_NOT_ALLOWED
    d.wait_session(cmd="resolve", rule="no-v4", reply=REP_NOT_ALLOWED)
    assert ask(d, "127.0.0.9").rep == REP_NOT_ALLOWED
    assert ask(d, "v6.test").rep == REP_SUCCESS
    # The name a PTR lookup finds is judged too.
    d2 = start_daemon(**{"rule no-seven": {"action": "deny", "dest": "seven.test"},
                         "rule rest": {"action": "allow"}})
    assert ask(d2, "127.0.0.7", CMD_RESOLVE_PTR).rep == REP_NOT_ALLOWED
    d2.wait_session(cmd="resolve_ptr", rule="no-seven")


def test_torsocks_resolves_through_the_daemon(daemon, dns_server, tmp_path):
    """torsocks turns an application's getaddrinfo() and gethostbyaddr()
    into RESOLVE and RESOLVE_PTR to its SOCKS server."""
    import os
    import subprocess
    conf = tmp_path / "torsocks.conf"
    conf.write_text(f"TorAddress 127.0.0.1\nTorPort {daemon.port}\n"
                    "OnionAddrRange 127.42.42.0/24\nAllowOutboundLocalhost 1\n")
    script = ("import socket\n"
              "print(socket.getaddrinfo('v4.test', 80, socket.AF_INET,"
              " socket.SOCK_STREAM)[0][4][0])\n"
              "print(socket.gethostbyaddr('127.0.0.7')[0])\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LD_")}
    env["TORSOCKS_CONF_FILE"] = str(conf)
    result = subprocess.run(["torsocks", "/usr/bin/python3", "-c", script],
                            capture_output=True, text=True, timeout=30, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["127.0.0.1", "seven.test"], result
    daemon.wait_session(cmd="resolve", reply=0, close="resolved")
    daemon.wait_session(cmd="resolve_ptr", reply=0, close="resolved")
    assert "v4.test" in dns_server.queried_names()
