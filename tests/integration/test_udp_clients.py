"""UDP ASSOCIATE with clients nobody on the project wrote: PySocks, the npm
"socks" package, and a DNS query through the relay to dnsmasq. Each test
also checks the access log, so a client that bypassed the proxy cannot
pass."""
import ipaddress
import json
import os
import socket
import subprocess

import pytest
import socks

from harness.daemon import REPO_ROOT
from harness.net import LOOPBACK4, LOOPBACK6, free_port, wait_until
from harness.udp import Association, UdpServer, dns_answers_a, dns_query

CLIENTS_DIR = REPO_ROOT / "tests" / "clients"
CLIENT_TIMEOUT = 20
DNSMASQ = "/usr/sbin/dnsmasq"


@pytest.fixture
def echo4():
    server = UdpServer(LOOPBACK4)
    yield server
    server.close()


@pytest.fixture
def echo6():
    server = UdpServer(LOOPBACK6)
    yield server
    server.close()


def ip(text):
    """An address in one canonical form, whatever the client printed."""
    return ipaddress.ip_address(text)


def clean_env():
    """The environment without proxy or preload variables."""
    return {k: v for k, v in os.environ.items()
            if "proxy" not in k.lower() and not k.startswith(("LD_", "SOCKS"))}


# -- PySocks -------------------------------------------------------------------

def test_pysocks_datagrams(daemon, echo4):
    s = socks.socksocket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.set_proxy(socks.SOCKS5, daemon.host, daemon.port)
        s.settimeout(5)
        s.sendto(b"pysocks datagram", echo4.address)
        data, sender = s.recvfrom(4096)
        assert (data, sender) == (b"pysocks datagram", echo4.address)
        # A name goes to the proxy to resolve (rdns).
        s.set_proxy(socks.SOCKS5, daemon.host, daemon.port, rdns=True)
        s.sendto(b"by name", ("v4.test", echo4.port))
        data, sender = s.recvfrom(4096)
        assert (data, sender) == (b"by name", echo4.address)
    finally:
        s.close()
    fields = daemon.wait_session(cmd="udp", close="eof")
    assert (fields["dgrams_up"], fields["dgrams_down"]) == ("2", "2")
    # PySocks names its client as "0" with the port: the request as sent.
    assert fields["dest"].startswith("0:")


# -- npm socks -------------------------------------------------------------------

@pytest.mark.parametrize("listen,target", [(LOOPBACK4, "echo4"), (LOOPBACK6, "echo6")])
def test_npm_socks_associate(start_daemon, request, listen, target):
    d = start_daemon(listen_hosts=(listen,))
    echo = request.getfixturevalue(target)
    count = 5
    proc = subprocess.run(["node", str(CLIENTS_DIR / "udp_associate.js"), d.host,
                           str(d.port), echo.host, str(echo.port), str(count)],
                          cwd=str(CLIENTS_DIR), capture_output=True,
                          timeout=CLIENT_TIMEOUT, env=clean_env())
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["event"] == "done", result
    relay = (ip(result["relay"]["host"]), result["relay"]["port"])
    assert relay[0] == ip(listen) and relay[1] != 0
    replies = sorted(result["replies"], key=lambda r: r["data"])
    # Every answer came from the relay's exact address, naming the echo
    # server as its sender.
    assert [((ip(r["from"]["host"]), r["from"]["port"]), ip(r["host"]), r["port"], r["data"])
            for r in replies] == \
        [(relay, ip(echo.host), echo.port, f"datagram {i}") for i in range(count)]
    fields = d.wait_session(cmd="udp", close="eof")
    assert fields["dgrams_up"] == fields["dgrams_down"] == str(count)


# -- a DNS query to dnsmasq ----------------------------------------------------------

DNSMASQ_ATTEMPTS = 5


def start_dnsmasq(tmp_path, hosts):
    """Start dnsmasq on a port free for UDP and TCP (it binds both) and wait
    until it answers; returns (proc, port). The port is picked before dnsmasq
    binds it, so another process can take it in between: dnsmasq then exits
    with "Address already in use" and we try another port."""
    for attempt in range(DNSMASQ_ATTEMPTS):
        port = free_port((LOOPBACK4,), (socket.SOCK_DGRAM, socket.SOCK_STREAM))
        log_path = tmp_path / f"dnsmasq-{attempt}.log"
        args = [DNSMASQ, "--no-daemon", "--conf-file=/dev/null", f"--port={port}",
                "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv",
                "--no-hosts", f"--addn-hosts={hosts}", "--pid-file=",
                "--log-facility=-"]
        if os.geteuid() == 0:
            args.append("--user=root")      # nothing to drop to in a test
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT)

        def answers():
            if proc.poll() is not None:
                return "exited"
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(0.2)
                s.sendto(dns_query("relay-check.test", qid=1), (LOOPBACK4, port))
                try:
                    return s.recv(512)
                except socket.timeout:
                    return None
        if wait_until(answers, 5, what="dnsmasq to answer") != "exited":
            return proc, port
        text = log_path.read_text()
        assert "Address already in use" in text, text
    raise AssertionError(f"dnsmasq lost the port race {DNSMASQ_ATTEMPTS} times")


@pytest.fixture
def dnsmasq(tmp_path):
    """dnsmasq on 127.0.0.1, answering relay-check.test from a hosts file
    and nothing else (no upstream servers, no /etc/hosts)."""
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.42 relay-check.test\n")
    proc, port = start_dnsmasq(tmp_path, hosts)
    try:
        yield (LOOPBACK4, port)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_dns_query_through_relay(daemon, dnsmasq):
    with Association(daemon.address) as a:
        reply = a.request()
        assert reply.rep == 0
        a.send(*dnsmasq, dns_query("relay-check.test", qid=0x4242))
        host, port, response = a.recv()
        assert (host, port) == dnsmasq
        assert dns_answers_a(response) == (0x4242, 0, ["127.0.0.42"])
    fields = daemon.wait_session(cmd="udp", close="eof")
    assert (fields["dgrams_up"], fields["dgrams_down"]) == ("1", "1")
