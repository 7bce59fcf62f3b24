"""Access rules, black-box: first match in file order, names checked by name
and again by every address they resolve to, client/user/command/port
conditions, BIND and UDP destinations, reloads, and the open-proxy guard."""
import signal
import time

import pytest

from harness.net import LOOPBACK4, LOOPBACK6, closed_port, free_port
from harness.socks5 import (CMD_BIND, CMD_UDP, METHOD_NONE, REP_NOT_ALLOWED,
                            REP_REFUSED, REP_SUCCESS, Socks5Client, assert_echo, open_tunnel)
from harness.udp import Association, UdpServer

from conftest import USERS
from test_service import rewrite_config


def request_reply(daemon, host, port, cmd=None, source=None, user=None, password=None):
    """The reply to one request (any REP); closes the client."""
    with Socks5Client(daemon.address, source=source) as client:
        if cmd is None:
            return client.connect(host, port, user, password)
        assert client.greet() == METHOD_NONE
        return client.request(host, port, cmd)


def assert_denied(daemon, host, port, rule, **kwargs):
    reply = request_reply(daemon, host, port, **kwargs)
    reply.assert_ip_form()
    assert reply.rep == REP_NOT_ALLOWED, f"REP {reply.rep:#x}, expected 0x02"
    fields = daemon.wait_session(reply=REP_NOT_ALLOWED, rule=rule)
    assert fields["close"] == "rejected"


def test_first_match_wins_in_file_order(start_daemon, echo_target):
    d = start_daemon(**{"rule echo": {"action": "allow", "dest": "127.0.0.1",
                                      "port": echo_target.port},
                        "rule no-loopback": {"action": "deny", "dest": "127.0.0.0/8"}})
    with open_tunnel(d.address, *echo_target.address) as client:
        assert_echo(client)
    _sock, other = closed_port()
    assert_denied(d, LOOPBACK4, other, "no-loopback")


def test_deny_before_allow_wins(start_daemon, echo_target):
    d = start_daemon(**{"rule no-loopback": {"action": "deny", "dest": "127.0.0.0/8"},
                        "rule echo": {"action": "allow", "dest": "127.0.0.1"}})
    assert_denied(d, *echo_target.address, "no-loopback")
    assert echo_target.records == []


def test_unmatched_request_is_denied_by_default(start_daemon, echo_target):
    d = start_daemon(**{"rule only-v6": {"action": "allow", "dest": "::1/128"}})
    assert_denied(d, *echo_target.address, "(default)")


@pytest.mark.parametrize("name", ["localhost", "v4.test"])
def test_name_is_checked_by_every_address(start_daemon, echo_target, name):
    """A name pointing at loopback is caught by a CIDR deny, whether it comes
    from /etc/hosts or DNS."""
    d = start_daemon(**{"rule no-loopback": {"action": "deny",
                                             "dest": "127.0.0.0/8, ::1/128"},
                        "rule rest": {"action": "allow"}})
    assert_denied(d, name, echo_target.port, "no-loopback")
    assert echo_target.records == []


def test_name_patterns_match_names_not_literals(start_daemon, echo_target):
    d = start_daemon(**{"rule tests": {"action": "allow", "dest": ".test"},
                        "rule exact": {"action": "allow", "dest": "localhost"}})
    with open_tunnel(d.address, "v4.test", echo_target.port) as client:
        assert_echo(client)
    with open_tunnel(d.address, "localhost", echo_target.port) as client:
        assert_echo(client)
    # The same address asked for as a literal, or as a name that is an IP
    # literal, meets the CIDR patterns only: none here.
    assert_denied(d, LOOPBACK4, echo_target.port, "(default)")
    assert_denied(d, "127.0.0.1", echo_target.port, "(default)")


def test_client_condition(start_daemon, echo_target):
    d = start_daemon(**{"rule second-loopback": {"action": "allow",
                                                 "client": "127.0.0.2/32"}})
    reply = request_reply(d, *echo_target.address, source="127.0.0.2")
    assert reply.rep == REP_SUCCESS
    assert_denied(d, *echo_target.address, "(default)", source=LOOPBACK4)


def test_port_condition_with_ranges(start_daemon, echo_target):
    port = echo_target.port
    d = start_daemon(**{"rule ports": {"action": "allow",
                                       "port": f"1-2, {port - 1}-{port}"}})
    with open_tunnel(d.address, *echo_target.address) as client:
        assert_echo(client)
    _sock, other = closed_port()
    if other not in (1, 2) and not port - 1 <= other <= port:
        assert_denied(d, LOOPBACK4, other, "(default)")


def test_user_condition(start_daemon, users_file, echo_target):
    (alice, alice_pw), (bob, bob_pw) = list(USERS.items())[:2]
    d = start_daemon(auth={"method": "password", "users_file": str(users_file)},
                     **{"rule alice": {"action": "allow", "user": alice}})
    with open_tunnel(d.address, *echo_target.address, user=alice,
                     password=alice_pw) as client:
        assert_echo(client)
    assert_denied(d, *echo_target.address, "(default)", user=bob, password=bob_pw)


def test_command_condition(start_daemon, echo_target):
    d = start_daemon(**{"rule connect-only": {"action": "allow", "command": "connect"}})
    with open_tunnel(d.address, *echo_target.address) as client:
        assert_echo(client)
    assert_denied(d, LOOPBACK4, 0, "(default)", cmd=CMD_BIND)
    assert_denied(d, "0.0.0.0", 0, "(default)", cmd=CMD_UDP)


def test_bind_is_judged_by_the_expected_peer(start_daemon):
    d = start_daemon(**{"rule bind-v6": {"action": "allow", "command": "bind",
                                         "dest": "::1"},
                        "rule no-bind": {"action": "deny", "command": "bind"}})
    assert_denied(d, LOOPBACK4, 0, "no-bind", cmd=CMD_BIND)
    reply = request_reply(d, LOOPBACK6, 0, cmd=CMD_BIND)
    assert reply.rep == REP_SUCCESS


def test_udp_datagrams_are_checked_per_destination(start_daemon):
    allowed, denied = UdpServer(LOOPBACK4), UdpServer(LOOPBACK4)
    try:
        d = start_daemon(**{"rule udp-allowed": {"action": "allow", "command": "udp",
                                                 "port": allowed.port},
                            "rule udp-rest": {"action": "deny", "command": "udp",
                                              "dest": "127.0.0.0/8"}})
        a = Association(d.address)
        try:
            assert a.request("0.0.0.0", 0).rep == REP_SUCCESS
            for i in range(3):
                a.send(LOOPBACK4, denied.port, b"nope %d" % i)
                a.send(LOOPBACK4, allowed.port, b"yes %d" % i)
                assert a.recv() == (LOOPBACK4, allowed.port, b"yes %d" % i)
            a.assert_nothing()
        finally:
            a.close()
        fields = d.wait_session(cmd="udp")
        assert fields["drop_denied"] == "3"
        assert denied.count() == 0
    finally:
        allowed.close()
        denied.close()


def test_reload_applies_a_new_rule_to_new_requests(start_daemon, dns_server, echo_target):
    """With reload_recheck = no, a new rule judges new requests only."""
    d = start_daemon()
    with open_tunnel(d.address, *echo_target.address) as live:
        rewrite_config(d, dns_server, server={"reload_recheck": "no"},
                       **{"rule no-loopback": {"action": "deny", "dest": "127.0.0.0/8"}})
        d.send_signal(signal.SIGHUP)
        d.wait_log(r"reloaded: ")
        assert_denied(d, *echo_target.address, "no-loopback")
        assert_echo(live, b"the established relay keeps running\n")


def test_reload_recheck_ends_sessions_the_new_rules_deny(start_daemon, dns_server,
                                                         echo_target, make_target):
    """By default a reload judges the established sessions again: those
    the new rules deny end (close=reload, rule= the denying rule), the
    others go on."""
    other = make_target(hosts=("127.0.0.2",))
    d = start_daemon()
    denied = open_tunnel(d.address, *echo_target.address)
    kept = open_tunnel(d.address, *other.address)
    try:
        rewrite_config(d, dns_server, **{
            "rule no-127-0-0-1": {"action": "deny", "dest": "127.0.0.1/32"},
            "rule rest": {"action": "allow"}})
        d.send_signal(signal.SIGHUP)
        d.wait_log(r"reload: 1 session\(s\) ended: no longer allowed")
        fields = d.wait_session(close="reload")
        assert fields["rule"] == "no-127-0-0-1"
        assert fields["dest"] == "%s:%d" % echo_target.address
        assert denied.sock.recv(16) == b""
        assert_echo(kept, b"a session the new rules allow keeps running\n")
    finally:
        denied.close()
        kept.close()


def test_open_proxy_guard_accepts_a_client_rule(check_config):
    port = free_port()
    restricted = (f"[server]\nlisten = 0.0.0.0:{port}\n\n"
                  "[rule office]\naction = allow\nclient = 10.0.0.0/8\n")
    result, _path = check_config(restricted)
    assert result.returncode == 0, result.stdout + result.stderr
    open_rule = (f"[server]\nlisten = 0.0.0.0:{port}\n\n"
                 "[rule everyone]\naction = allow\nclient = 0.0.0.0/0\n")
    result, _path = check_config(open_rule)
    assert result.returncode == 2
    assert "allow_open" in result.stdout + result.stderr


def test_ten_thousand_cidrs_load_and_match(start_daemon, tmp_path, echo_target):
    """10,000 deny CIDRs, given over many lines of one key (each repeat adds
    to the list), load quickly and leave the rest allowed. The one that
    denies the echo target, 127.0.0.0/24, is on the first line, so the test
    fails if a later line replaced the list instead of adding to it. No
    request ever goes to the 10.x networks: they are only listed."""
    lines = []
    cidrs = ["127.0.0.0/24"] + [f"10.{i // 256}.{i % 256}.0/24" for i in range(9999)]
    for start in range(0, len(cidrs), 8):
        lines.append("dest = " + ", ".join(cidrs[start:start + 8]))
    started = time.monotonic()
    d = start_daemon(**{"rule many": {"action": "deny", "dest": None},
                        "rule rest": {"action": "allow"}})
    text = d.config_path.read_text().replace("[rule many]\naction = deny\n",
                                             "[rule many]\naction = deny\n"
                                             + "\n".join(lines) + "\n")
    d.config_path.write_text(text)
    d.send_signal(signal.SIGHUP)
    d.wait_log(r"reloaded: ", timeout=10)
    assert time.monotonic() - started < 10
    assert_denied(d, *echo_target.address, "many")
    # 127.0.1.1 is outside every listed /24: allowed by "rest", so the
    # daemon really tries, and the closed port refuses.
    sock, port = closed_port("127.0.1.1")
    with sock, Socks5Client(d.address) as client:
        assert client.greet() == METHOD_NONE
        assert client.request("127.0.1.1", port).rep == REP_REFUSED
