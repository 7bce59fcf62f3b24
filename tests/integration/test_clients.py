"""Real SOCKS5 clients through the daemon: curl, ncat, proxychains4 and
PySocks, against loopback HTTP and echo servers. Each test also checks the
access log, so a client that silently bypassed the proxy cannot pass."""
import hashlib
import os
import subprocess

import pytest
import socks

from conftest import USERS
from harness.httpd import HttpServer, blob
from harness.net import LOOPBACK4, LOOPBACK6, format_hostport

CLIENT_TIMEOUT = 20


def client_env():
    """The environment without proxy variables, which could redirect or
    bypass (no_proxy) what a test asks for."""
    return {k: v for k, v in os.environ.items()
            if "proxy" not in k.lower() and not k.startswith("LD_")}


def run_client(args, input_bytes=None, timeout=CLIENT_TIMEOUT):
    return subprocess.run(args, input=input_bytes, capture_output=True,
                          timeout=timeout, env=client_env())


def curl(*args):
    return run_client(["curl", "-sS", "--fail", "--max-time", str(CLIENT_TIMEOUT - 5),
                       "-o", "-", *args])


@pytest.fixture
def http_server():
    server = HttpServer(LOOPBACK4)
    yield server
    server.close()


@pytest.fixture
def http_server6():
    server = HttpServer(LOOPBACK6)
    yield server
    server.close()


def proxy_arg(daemon):
    return format_hostport(*daemon.address)


# -- curl ------------------------------------------------------------------

def test_curl_socks5_local_resolution(daemon, http_server):
    result = curl("--socks5", proxy_arg(daemon), http_server.url("/"))
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == http_server.greeting
    daemon.wait_session(dest=format_hostport(LOOPBACK4, http_server.port), reply=0)


def test_curl_socks5_hostname_resolved_by_daemon(daemon, http_server, dns_server):
    result = curl("--socks5-hostname", proxy_arg(daemon),
                  http_server.url("/", host="v4.test"))
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == http_server.greeting
    daemon.wait_session(dest=f"v4.test:{http_server.port}", reply=0)
    assert "v4.test" in dns_server.queried_names()


def test_curl_socks5h_with_password(password_daemon, http_server):
    proxy = f"socks5h://alice:{USERS['alice']}@{proxy_arg(password_daemon)}"
    result = curl("-x", proxy, http_server.url("/", host="v4.test"))
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == http_server.greeting
    password_daemon.wait_session(dest=f"v4.test:{http_server.port}", user="alice")


def test_curl_with_password_containing_specials(password_daemon, http_server):
    """bob's password has '@', ':' and spaces: passed with --proxy-user."""
    result = curl("--socks5-hostname", proxy_arg(password_daemon),
                  "--proxy-user", f"bob:{USERS['bob']}", http_server.url("/"))
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == http_server.greeting


def test_curl_wrong_password_fails(password_daemon, http_server):
    proxy = f"socks5h://alice:wrong@{proxy_arg(password_daemon)}"
    result = curl("-x", proxy, http_server.url("/"))
    assert result.returncode != 0
    assert http_server.requests == []


def test_curl_ipv6_target(daemon, http_server6):
    result = curl("--socks5", proxy_arg(daemon), http_server6.url("/"))
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == http_server6.greeting
    daemon.wait_session(dest=format_hostport(LOOPBACK6, http_server6.port), reply=0)


def test_curl_through_ipv6_listener(start_daemon, http_server):
    d = start_daemon(listen_hosts=(LOOPBACK6,))
    result = curl("-x", f"socks5h://{proxy_arg(d)}", http_server.url("/", host="v4.test"))
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == http_server.greeting


@pytest.mark.parametrize("relay", ["splice", "copy"])
def test_curl_large_download_and_upload(start_daemon, http_server, tmp_path, relay):
    d = start_daemon(server={"relay": relay})
    size = 6 * 1024 * 1024 + 3
    down = curl("--socks5-hostname", proxy_arg(d), http_server.url(f"/blob/{size}"))
    assert down.returncode == 0, down.stderr.decode()
    assert hashlib.sha256(down.stdout).digest() == hashlib.sha256(blob(size)).digest()
    body = tmp_path / "upload"
    body.write_bytes(os.urandom(3 * 1024 * 1024))
    up = curl("--socks5-hostname", proxy_arg(d), "--data-binary", f"@{body}",
              http_server.url("/sha256"))
    assert up.returncode == 0, up.stderr.decode()
    assert up.stdout.decode() == hashlib.sha256(body.read_bytes()).hexdigest()


def test_curl_nxdomain_fails(daemon, http_server):
    result = curl("--socks5-hostname", proxy_arg(daemon),
                  http_server.url("/", host="nx.test"))
    assert result.returncode != 0
    daemon.wait_session(dest=f"nx.test:{http_server.port}", reply=4)


# -- ncat ----------------------------------------------------------------------

def ncat(daemon, host, port, data, *extra):
    return run_client(["ncat", "--proxy", proxy_arg(daemon), "--proxy-type", "socks5",
                       *extra, host, str(port)], input_bytes=data)


def test_ncat_echo(daemon, echo_target):
    data = os.urandom(200_000)
    result = ncat(daemon, LOOPBACK4, echo_target.port, data)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == data
    daemon.wait_session(dest=format_hostport(*echo_target.address),
                        up=len(data), down=len(data))


def test_ncat_remote_dns(daemon, echo_target):
    data = b"hello over ncat with remote dns\n"
    result = ncat(daemon, "v4.test", echo_target.port, data, "--proxy-dns", "remote")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == data
    daemon.wait_session(dest=f"v4.test:{echo_target.port}")


def test_ncat_with_password(password_daemon, echo_target):
    data = b"authenticated ncat\n"
    result = ncat(password_daemon, LOOPBACK4, echo_target.port, data,
                  "--proxy-auth", f"alice:{USERS['alice']}")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == data
    password_daemon.wait_session(dest=format_hostport(*echo_target.address), user="alice")


# -- proxychains4 ----------------------------------------------------------

def proxychains_config(tmp_path, daemon, credentials="", proxy_dns=False):
    path = tmp_path / "proxychains.conf"
    path.write_text(
        "strict_chain\nquiet_mode\n"
        + ("proxy_dns\nremote_dns_subnet 224\n" if proxy_dns else "")
        + "tcp_read_time_out 10000\ntcp_connect_time_out 5000\n"
        + f"[ProxyList]\nsocks5 {daemon.host} {daemon.port} {credentials}\n")
    return path


def test_proxychains_curl(daemon, http_server, tmp_path):
    conf = proxychains_config(tmp_path, daemon)
    result = run_client(["proxychains4", "-q", "-f", str(conf), "curl", "-sS", "--fail",
                         "--max-time", "10", http_server.url("/")])
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == http_server.greeting
    daemon.wait_session(dest=format_hostport(LOOPBACK4, http_server.port), reply=0)


def test_proxychains_with_password_and_proxy_dns(password_daemon, http_server, tmp_path):
    """proxy_dns hands the name to the proxy (ATYP 3) without any local
    lookup, so v4.test must be resolved by the daemon."""
    # proxychains' config is whitespace-separated, so use alice (no spaces).
    conf = proxychains_config(tmp_path, password_daemon, f"alice {USERS['alice']}",
                              proxy_dns=True)
    result = run_client(["proxychains4", "-q", "-f", str(conf), "curl", "-sS", "--fail",
                         "--max-time", "10", http_server.url("/", host="v4.test")])
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == http_server.greeting
    password_daemon.wait_session(dest=f"v4.test:{http_server.port}", user="alice")


def test_proxychains_ncat(daemon, echo_target, tmp_path):
    conf = proxychains_config(tmp_path, daemon)
    data = b"plain ncat under proxychains\n" * 100
    result = run_client(["proxychains4", "-q", "-f", str(conf), "ncat",
                         LOOPBACK4, str(echo_target.port)], input_bytes=data)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == data
    daemon.wait_session(dest=format_hostport(*echo_target.address))


# -- PySocks -------------------------------------------------------------------

def pysocks_socket(daemon, rdns, user=None, password=None):
    sock = socks.socksocket()
    sock.settimeout(10)
    sock.set_proxy(socks.SOCKS5, daemon.host, daemon.port, rdns=rdns,
                   username=user, password=password)
    return sock


@pytest.mark.parametrize("host,rdns", [(LOOPBACK4, False), ("v4.test", True),
                                       (LOOPBACK4, True)])
def test_pysocks_echo(daemon, echo_target, host, rdns):
    with pysocks_socket(daemon, rdns) as sock:
        sock.connect((host, echo_target.port))
        sock.sendall(b"pysocks says hi")
        assert sock.recv(100) == b"pysocks says hi"
    daemon.wait_session(dest=format_hostport(host, echo_target.port))


def test_pysocks_ipv6(daemon, echo_target6):
    with pysocks_socket(daemon, rdns=False) as sock:
        sock.connect((LOOPBACK6, echo_target6.port))
        sock.sendall(b"v6")
        assert sock.recv(10) == b"v6"


def test_pysocks_password(password_daemon, echo_target):
    with pysocks_socket(password_daemon, True, "bob", USERS["bob"]) as sock:
        sock.connect(("v4.test", echo_target.port))
        sock.sendall(b"bob was here")
        assert sock.recv(100) == b"bob was here"
    password_daemon.wait_session(user="bob", dest=f"v4.test:{echo_target.port}")


def proxy_error_cause(exc):
    """PySocks wraps negotiation errors in GeneralProxyError(msg, cause)."""
    return getattr(exc, "socket_err", None) or exc


def test_pysocks_wrong_password(password_daemon, echo_target):
    with pysocks_socket(password_daemon, True, "bob", "nope") as sock:
        with pytest.raises(socks.ProxyError) as info:
            sock.connect(("v4.test", echo_target.port))
    assert isinstance(proxy_error_cause(info.value), socks.SOCKS5AuthError)
    assert echo_target.records == []


def test_pysocks_nxdomain(daemon):
    with pysocks_socket(daemon, rdns=True) as sock:
        with pytest.raises(socks.ProxyError) as info:
            sock.connect(("nx.test", 80))
    cause = proxy_error_cause(info.value)
    assert isinstance(cause, socks.SOCKS5Error)
    assert "0x04" in str(cause)
