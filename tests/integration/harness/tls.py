"""TLS for the black-box suite: a throwaway PKI made with the openssl CLI
(TlsPki), Python client contexts, SOCKS5 and HTTP-proxy clients over TLS,
loopback TLS servers (an echo behaviour for TargetServer, HttpsServer),
stunnel in client mode (a real TLS client in front of plain ones) and in
server mode (a stand-in TLS listener), and headless Chromium that trusts
the test CA through an NSS database in its HOME.

Nothing here touches the network beyond loopback or reads the machine's
trust store: contexts trust only the CA they are given, and the children
(openssl, stunnel, certutil) get an environment without the SSL_CERT_* and
proxy variables a CI machine may set.

TLS 1.3 pitfall for tests of client certificates: the client finishes its
handshake before the server has checked the client's certificate, so a
rejection (unknown CA, expired, missing) shows up as an alert on the
client's first read, not in do_handshake(). tls_rejection() waits for it."""
import base64
import datetime
import hashlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path

from . import daemon as daemon_mod
from .http_proxy import ProxyClient
from .httpd import _Handler
from .net import (IO_TIMEOUT, LOOPBACK4, TIME_SCALE, assert_loopback, closed_port,
                  family_of, format_hostport, free_port, is_listening)
from .socks5 import METHOD_NONE, METHOD_PASSWORD, REP_SUCCESS, Socks5Client

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
STUNNEL = shutil.which("stunnel") or shutil.which("stunnel4") or "/usr/bin/stunnel"
CERTUTIL = shutil.which("certutil") or "/usr/bin/certutil"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

# The daemon refuses a key readable by others; group-readable is allowed,
# so the factory's keys are 0640 to exercise that.
KEY_MODE = 0o640

# Dates for the expired certificates (openssl 3.0's x509 has no
# -not_before, so every leaf is issued with `openssl ca -startdate
# -enddate`).
EXPIRED_START = "20200101000000Z"
EXPIRED_END = "20200102000000Z"
VALID_DAYS = 3650
TOOL_TIMEOUT = 30


def tool_env(**extra):
    """os.environ without what could make a TLS tool trust or reach more
    than the test asks for: SSL_CERT_FILE/DIR and friends, OPENSSL_CONF,
    proxy variables, LD_* preloads."""
    drop = ("SSL_", "OPENSSL_", "LD_", "CURL_CA", "REQUESTS_CA", "NSS_")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(drop) and "proxy" not in k.lower()}
    env.update(extra)
    return env


def openssl(*args, input_bytes=None, cwd=None):
    """Run the openssl CLI; stdout as bytes; a failure raises with its stderr."""
    argv = [OPENSSL, *(str(a) for a in args)]
    result = subprocess.run(argv, input=input_bytes, capture_output=True,
                            timeout=TOOL_TIMEOUT, env=tool_env(), cwd=cwd)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed with {result.returncode}:\n"
                           f"{result.stderr.decode(errors='replace')}")
    return result.stdout


def _utc(offset_days=0.0):
    """A GeneralizedTime for `openssl ca -startdate/-enddate`."""
    moment = (datetime.datetime.now(datetime.timezone.utc)
              + datetime.timedelta(days=offset_days))
    return moment.strftime("%Y%m%d%H%M%SZ")


@dataclass(frozen=True)
class CertKey:
    """A certificate (PEM) and its private key (PEM, mode KEY_MODE)."""
    name: str
    cert: Path
    key: Path

    def __iter__(self):             # cert, key = pki.alice
        return iter((self.cert, self.key))


CA_EXT = """basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
"""

LEAF_EXT = """basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""

SERVER_SAN = "DNS:localhost,IP:127.0.0.1,IP:::1"

# name -> (issuer, subject, subjectAltName or None, extendedKeyUsage, expired)
LEAVES = {
    "server": ("ca", "/CN=localhost", SERVER_SAN, "serverAuth", False),
    "expired_server": ("ca", "/CN=localhost", SERVER_SAN, "serverAuth", True),
    "wrong_host_server": ("ca", "/CN=wrong.example.test", "DNS:wrong.example.test",
                          "serverAuth", False),
    "alice": ("ca", "/CN=alice", None, "clientAuth", False),
    "bob": ("ca", "/CN=bob-device", "email:bob@example.test", "clientAuth", False),
    "carol": ("ca", "/CN=carol-device", "DNS:carol.example.test", "clientAuth", False),
    "expired_client": ("ca", "/CN=alice", None, "clientAuth", True),
    "wrong_ca_client": ("wrong_ca", "/CN=alice", None, "clientAuth", False),
}
CAS = {
    "ca": "/CN=socks5d test CA",
    "wrong_ca": "/CN=socks5d wrong CA",
}

_CA_CONFIG = """[ca]
default_ca = test_ca
[test_ca]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/issued
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
email_in_dn = no
rand_serial = yes
preserve = yes
[policy_any]
commonName = optional
[req]
distinguished_name = req_dn
prompt = no
[req_dn]
CN = unused
"""


class TlsPki:
    """Test CAs and certificates under one directory, made on first use and
    then reused (by this object, by any TlsPki for the same directory, and
    by a later process that finds the files there).

    Attributes, each a CertKey (cert, key):
      ca                 the test CA (CN "socks5d test CA"); ca_cert is its PEM
      wrong_ca           an independent CA nobody trusts; wrong_ca_cert
      server             CN localhost, SAN DNS:localhost IP:127.0.0.1 IP:::1
      expired_server     the same names, valid 2020-01-01..02 only
      wrong_host_server  CN and SAN DNS:wrong.example.test only
      alice              client, CN=alice, no SAN
      bob                client, CN=bob-device, SAN email:bob@example.test
      carol              client, CN=carol-device, SAN DNS:carol.example.test
      expired_client     client, CN=alice, expired (2020)
      wrong_ca_client    client, CN=alice, signed by wrong_ca
    The expired and wrong-CA client certificates say CN=alice on purpose:
    when one is refused, it is for its dates or its issuer, not its name.
    Every key is EC P-256, mode KEY_MODE; every CA file holds one
    certificate, so a CA file also serves as a `client_ca` bundle."""

    _instances = {}
    _lock = threading.Lock()

    def __new__(cls, directory):
        directory = Path(directory).resolve()
        with cls._lock:
            instance = cls._instances.get(directory)
            if instance is None:
                instance = super().__new__(cls)
                instance.directory = directory
                instance._made = {}
                instance._make_lock = threading.RLock()
                cls._instances[directory] = instance
            return instance

    def __init__(self, directory):
        pass                        # all state is set once, in __new__

    def __getattr__(self, name):
        if name in CAS or name in LEAVES:
            return self.get(name)
        raise AttributeError(name)

    @property
    def ca_cert(self):
        return self.get("ca").cert

    @property
    def wrong_ca_cert(self):
        return self.get("wrong_ca").cert

    def all(self):
        """Make everything now; {name: CertKey}."""
        return {name: self.get(name) for name in (*CAS, *LEAVES)}

    def get(self, name):
        with self._make_lock:
            made = self._made.get(name)
            if made is None:
                self.directory.mkdir(parents=True, exist_ok=True)
                made = CertKey(name, self.directory / f"{name}.pem",
                               self.directory / f"{name}.key")
                if not (made.cert.exists() and made.key.exists()):
                    if name in CAS:
                        self._make_ca(name, made)
                    else:
                        self._make_leaf(name, made)
                self._made[name] = made
            return made

    # -- making ---------------------------------------------------------
    def _state(self, ca_name):
        """The `openssl ca` database and config of one CA."""
        state = self.directory / ".ca" / ca_name
        config = state / "openssl.cnf"
        if not config.exists():
            (state / "issued").mkdir(parents=True, exist_ok=True)
            (state / "index.txt").touch()
            config.write_text(_CA_CONFIG.format(dir=state))
        return state, config

    def _new_key(self, path):
        tmp = path.with_suffix(".key.tmp")
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-out", tmp)
        tmp.chmod(KEY_MODE)
        os.replace(tmp, path)

    def _issue(self, ca_name, made, subject, extensions, start, end, selfsign=False):
        state, config = self._state(ca_name)
        self._new_key(made.key)
        csr = state / f"{made.name}.csr"
        ext = state / f"{made.name}.ext"
        ext.write_text("[ext]\n" + extensions)
        openssl("req", "-new", "-config", config, "-key", made.key, "-subj", subject,
                "-out", csr)
        tmp = made.cert.with_suffix(".pem.tmp")
        if selfsign:
            signer = ["-selfsign", "-keyfile", made.key]
        else:
            issuer = self.get(ca_name)
            signer = ["-cert", issuer.cert, "-keyfile", issuer.key]
        openssl("ca", "-batch", "-notext", "-config", config, *signer, "-in", csr,
                "-startdate", start, "-enddate", end, "-extfile", ext,
                "-extensions", "ext", "-out", tmp)
        os.replace(tmp, made.cert)

    def _make_ca(self, name, made):
        # Back-dated a day, like the leaves, so a clock a little behind
        # (another container, a VM) still sees them as valid.
        self._issue(name, made, CAS[name], CA_EXT, _utc(-1), _utc(VALID_DAYS + 30),
                    selfsign=True)

    def _make_leaf(self, name, made):
        issuer, subject, san, eku, expired = LEAVES[name]
        extensions = LEAF_EXT + f"extendedKeyUsage = {eku}\n"
        if san:
            extensions += f"subjectAltName = {san}\n"
        start, end = ((EXPIRED_START, EXPIRED_END) if expired
                      else (_utc(-1), _utc(VALID_DAYS)))
        self._issue(issuer, made, subject, extensions, start, end)

    # -- reading --------------------------------------------------------
    def verify(self, cert, ca=None, purpose=None):
        """`openssl verify` of cert against ca (default the test CA) alone:
        (ok, output text)."""
        ca = ca or self.ca_cert
        argv = [OPENSSL, "verify", "-no-CApath", "-no-CAstore", "-CAfile", str(ca)]
        if purpose:
            argv += ["-purpose", purpose]
        result = subprocess.run([*argv, str(cert)], capture_output=True, text=True,
                                timeout=TOOL_TIMEOUT, env=tool_env())
        return result.returncode == 0, result.stdout + result.stderr

    def copy_key(self, name, directory, mode):
        """A copy of name's key in directory with the given mode (for the
        daemon's checks of key permissions); returns its path."""
        source = self.get(name).key
        target = Path(directory) / f"{name}-{mode:o}.key"
        shutil.copyfile(source, target)
        target.chmod(mode)
        return target


def cert_text(cert):
    """`openssl x509 -noout -text` of a PEM file."""
    return openssl("x509", "-in", cert, "-noout", "-text").decode()


def cert_subject(cert):
    """The subject in RFC 2253 form, e.g. "CN=alice"."""
    out = openssl("x509", "-in", cert, "-noout", "-subject", "-nameopt", "RFC2253")
    return out.decode().strip().removeprefix("subject=")


def cert_san(cert):
    """The subjectAltName entries, e.g. ["email:bob@example.test"] (IP
    entries come as "IP Address:127.0.0.1")."""
    out = openssl("x509", "-in", cert, "-noout", "-ext", "subjectAltName").decode()
    lines = out.splitlines()[1:]
    return [item.strip() for line in lines for item in line.split(",") if item.strip()]


def spki_sha256(cert):
    """base64(SHA-256(SubjectPublicKeyInfo DER)) of a PEM certificate: the
    pin form Chromium's --ignore-certificate-errors-spki-list takes."""
    pem = openssl("x509", "-in", cert, "-noout", "-pubkey").decode()
    body = "".join(line for line in pem.splitlines() if not line.startswith("-----"))
    return base64.b64encode(hashlib.sha256(base64.b64decode(body)).digest()).decode()


# -- Python TLS clients ----------------------------------------------------------

def tls_client_context(pki, client_cert=None, alpn=None, cafile=None,
                       check_hostname=True, minimum_version=None,
                       maximum_version=None):
    """An SSLContext that trusts only the test CA (or cafile), verifies the
    server's name unless check_hostname is False, and presents client_cert
    (a CertKey, or a (cert, key) pair) if given; alpn: list of protocols."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(cafile or pki.ca_cert))
    ctx.check_hostname = check_hostname
    ctx.verify_mode = ssl.CERT_REQUIRED
    if client_cert is not None:
        cert, key = client_cert
        ctx.load_cert_chain(str(cert), str(key))
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    if minimum_version is not None:
        ctx.minimum_version = minimum_version
    if maximum_version is not None:
        ctx.maximum_version = maximum_version
    return ctx


def tls_server_context(cert, client_ca=None, client_cert="none", alpn=None):
    """An SSLContext for a loopback TLS server presenting cert (CertKey);
    client_cert "none" | "optional" | "require" checks clients against
    client_ca."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert.cert), str(cert.key))
    if client_ca is not None:
        ctx.load_verify_locations(cafile=str(client_ca))
    ctx.verify_mode = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL,
                       "require": ssl.CERT_REQUIRED}[client_cert]
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def wrap(sock, ctx, server_hostname="localhost", timeout=IO_TIMEOUT):
    """TLS over a connected socket: a blocking handshake bounded by timeout.
    Returns the SSLSocket (timeout kept for later I/O); on failure the
    socket is closed and the ssl.SSLError / OSError propagates."""
    sock.settimeout(timeout)
    tls = ctx.wrap_socket(sock, server_hostname=server_hostname,
                          do_handshake_on_connect=False)
    try:
        tls.do_handshake()
    except BaseException:
        tls.close()
        raise
    return tls


def open_tls(address, ctx, server_hostname="localhost", timeout=IO_TIMEOUT,
             source=None):
    """Connect to a loopback (host, port) and complete a TLS handshake."""
    assert_loopback(address[0])
    sock = socket.socket(family_of(address[0]), socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        if source is not None:
            sock.bind((source, 0))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.connect(tuple(address))
    except BaseException:
        sock.close()
        raise
    return wrap(sock, ctx, server_hostname, timeout)


def tls_rejection(address, ctx, server_hostname="localhost", settle=0.5,
                  send=b""):
    """Whether a TLS server refuses this client: the exception (SSLError,
    reset, EOF as ConnectionError) from the handshake or, since under TLS
    1.3 a refused client certificate only shows as an alert after the
    handshake, from a read within settle seconds (after sending `send`,
    e.g. a SOCKS5 greeting, for a server that waits for the client);
    None when the connection is still up then."""
    try:
        tls = open_tls(address, ctx, server_hostname)
    except (ssl.SSLError, ssl.CertificateError, ConnectionError) as exc:
        return exc
    try:
        tls.settimeout(settle * TIME_SCALE)
        try:
            if send:
                tls.sendall(send)
            data = tls.recv(1)
        except socket.timeout:
            return None
        except (ssl.SSLError, ConnectionError) as exc:
            return exc
        if not data:
            return ConnectionError("server closed the connection (EOF) after the "
                                   "handshake")
        return None
    finally:
        tls.close()


# -- SOCKS5 and HTTP proxy clients over TLS ------------------------------------

REPLY_NAMES = {
    0x00: "succeeded", 0x01: "general failure", 0x02: "not allowed by ruleset",
    0x03: "network unreachable", 0x04: "host unreachable",
    0x05: "connection refused", 0x06: "TTL expired",
    0x07: "command not supported", 0x08: "address type not supported",
}


class Socks5Error(Exception):
    """A SOCKS5 handshake over TLS that did not succeed: stage is "method"
    (code = the method the server chose, 0xFF for none acceptable), "auth"
    (code = the RFC 1929 status) or "connect" (code = REP; reply = Reply)."""

    def __init__(self, stage, code, reply=None, detail=""):
        self.stage, self.code, self.reply = stage, code, reply
        name = REPLY_NAMES.get(code, "") if stage == "connect" else ""
        super().__init__(f"SOCKS5 {stage} failed with {code:#04x}"
                         + (f" ({name})" if name else "")
                         + (f": {detail}" if detail else ""))


class TlsSocks5Client(Socks5Client):
    """harness.socks5.Socks5Client's protocol steps (greet, authenticate,
    request, read_reply, send_bytewise, closed_by_peer, ...) over an
    already-connected socket, here an SSLSocket."""

    def __init__(self, sock):       # no super(): it would open a TCP socket
        self.sock = sock
        self.reply = None

    def shutdown_write(self):
        """Not over TLS: SSLSocket.shutdown() drops the TLS layer and sends
        a bare FIN (a truncation, not close_notify), and unwrap() blocks
        until the peer's close_notify, so Python's ssl has no half-close."""
        raise NotImplementedError("no TLS half-close with Python's ssl; close() "
                                  "the socket, or use stunnel, whose client "
                                  "sends close_notify")


def socks5_tls_client(proxy, ctx, server_hostname="localhost", timeout=IO_TIMEOUT,
                      source=None):
    """A TlsSocks5Client on a fresh TLS connection to proxy (handshake done,
    nothing SOCKS sent yet), for protocol tests over TLS."""
    return TlsSocks5Client(open_tls(proxy, ctx, server_hostname, timeout, source))


def socks5_handshake(sock, dest_host, dest_port, user=None, password=None):
    """Greeting (no auth, or RFC 1929 username/password when user is given)
    and CONNECT on an established (TLS) socket. Returns the success Reply;
    raises Socks5Error otherwise (the socket is left open)."""
    client = TlsSocks5Client(sock)
    wanted = METHOD_NONE if user is None else METHOD_PASSWORD
    method = client.greet((wanted,))
    if method != wanted:
        raise Socks5Error("method", method, detail=f"asked for {wanted:#04x}")
    if user is not None:
        ver, status = client.authenticate(user, password)
        if status != 0:
            raise Socks5Error("auth", status, detail=f"user {user!r}")
    reply = client.request(dest_host, dest_port)
    if reply.rep != REP_SUCCESS:
        raise Socks5Error("connect", reply.rep, reply,
                          f"CONNECT {dest_host}:{dest_port}, raw {reply.raw.hex()}")
    reply.assert_ip_form()
    return reply


def socks5_over_tls(proxy, dest_host, dest_port, ctx, user=None, password=None,
                    server_hostname="localhost", timeout=IO_TIMEOUT, source=None):
    """TCP to proxy, TLS, SOCKS5 greeting (and login), CONNECT to
    dest_host:dest_port. Returns the SSLSocket, ready for data, with the
    server's Reply as .socks5_reply; raises ssl.SSLError for a failed
    handshake and Socks5Error (closing the socket) for a refusal."""
    tls = open_tls(proxy, ctx, server_hostname, timeout, source)
    try:
        tls.socks5_reply = socks5_handshake(tls, dest_host, dest_port, user, password)
    except BaseException:
        tls.close()
        raise
    return tls


class TlsProxyClient(ProxyClient):
    """harness.http_proxy.ProxyClient (send, request -> Response) over an
    established TLS socket."""

    def __init__(self, sock):       # no super(): it would open a TCP socket
        self.sock = sock


def http_proxy_over_tls(proxy, ctx, server_hostname="localhost", timeout=IO_TIMEOUT,
                        source=None):
    """A TlsProxyClient on a fresh TLS connection to proxy, for HTTP CONNECT
    and forwarded requests sent to the TLS port."""
    return TlsProxyClient(open_tls(proxy, ctx, server_hostname, timeout, source))


# -- loopback TLS servers ------------------------------------------------------

def tls_behaviour(ctx, inner=None):
    """A behaviour for harness.targets.TargetServer that first completes a
    server-side TLS handshake with ctx, records on the ConnRecord
    .tls_version, .peer_cert (getpeercert() dict or None) and .alpn, then
    runs inner(tls_conn, record) (default: echo until the client's EOF, then
    close_notify)."""
    def behave(conn, record):
        record.tls_version = record.peer_cert = record.alpn = None
        # wrap_socket() detaches the socket it wraps: wrap a duplicate, so
        # that TargetServer.close() can still shut the connection down
        # (which wakes this thread) through the original.
        tls = ctx.wrap_socket(conn.dup(), server_side=True,
                              do_handshake_on_connect=False)
        try:
            tls.do_handshake()
            record.tls_version = tls.version()
            record.peer_cert = tls.getpeercert() or None
            record.alpn = tls.selected_alpn_protocol()
            (inner or behave_tls_echo)(tls, record)
        finally:
            tls.close()
    return behave


def behave_tls_echo(tls, record):
    """Echo everything; at the client's EOF (close_notify or FIN) answer with
    close_notify if the peer still listens (tls_behaviour closes)."""
    while True:
        try:
            data = tls.recv(262144)
        except (ssl.SSLEOFError, ConnectionResetError):
            data = b""
        if not data:
            break
        record.received_len += len(data)
        record.received.update(data)
        tls.sendall(data)
        record.sent_len += len(data)
        record.sent.update(data)
    try:
        tls.unwrap()
    except (ssl.SSLError, OSError):
        pass


def peer_common_name(peer_cert):
    """The CN from an SSLSocket.getpeercert() dict, or None."""
    for rdn in (peer_cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return None


PAGE = ("<!DOCTYPE html><html><head><title>socks5d tls test</title></head>"
        '<body><p id="greeting">{greeting}</p></body></html>\n')


class HttpsServer:
    """A loopback HTTPS server in a thread presenting cert (a CertKey): GET
    of a path in .pages (default "/": PAGE with .greeting, "hello from https
    test server PORT") answers text/html, so a browser renders it (an
    octet-stream answer is a download, which Chromium's --dump-dom aborts);
    GET /blob/N and POST /sha256 as harness.httpd. .url() gives https URLs,
    .requests the request lines, .tls_errors the connections that failed
    (e.g. a client that did not trust the certificate)."""

    def __init__(self, cert, host=LOOPBACK4, ctx=None, pages=None):
        assert_loopback(host)
        context = ctx or tls_server_context(cert)
        errors = []

        class Handler(_Handler):
            def setup(self):
                self.request.settimeout(IO_TIMEOUT)
                self.request.do_handshake()
                super().setup()

            def log_message(self, fmt, *args):
                line = getattr(self, "requestline", "")
                if line and "code %d" not in fmt:
                    self.server.requests.append(line)

            def do_GET(self):
                page = self.server.pages.get(self.path)
                if page is None and not self.path.startswith("/blob/"):
                    self.send_error(404)
                    return
                if page is None:
                    return super().do_GET()
                body = page.encode() if isinstance(page, str) else page
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        class Server(ThreadingHTTPServer):
            address_family = family_of(host)
            daemon_threads = True

            def get_request(self):
                conn, peer = super().get_request()
                return context.wrap_socket(conn, server_side=True,
                                           do_handshake_on_connect=False), peer

            def handle_error(self, request, client_address):
                errors.append(f"{client_address}: {sys.exc_info()[1]!r}")

        self.server = Server((host, 0), Handler)
        self.host = host
        self.port = self.server.server_address[1]
        self.server.requests = []
        self.server.greeting = f"hello from https test server {self.port}".encode()
        self.server.pages = {"/": PAGE.format(greeting=self.greeting.decode())}
        self.server.pages.update(pages or {})
        self.tls_errors = errors
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def address(self):
        return (self.host, self.port)

    @property
    def greeting(self):
        return self.server.greeting

    @property
    def pages(self):
        return self.server.pages

    @property
    def requests(self):
        return self.server.requests

    def url(self, path="/", host=None):
        host = host or self.host
        netloc = f"[{host}]" if ":" in host else host
        return f"https://{netloc}:{self.port}{path}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(2.0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# -- stunnel ------------------------------------------------------------------

class Stunnel:
    """One stunnel process with one service: accept on 127.0.0.1:.port
    (a free port), connect to `connect`. Subclasses say which side speaks
    TLS. As a context manager it yields the local port; .log() is stunnel's
    output (its verification errors land there), readable until stop()
    removes a work directory the object made itself. Starting raises with
    the log when stunnel is missing, rejects its config, exits or does not
    listen."""

    def __init__(self, pki, connect, workdir=None, name="stunnel", extra=()):
        assert_loopback(connect[0])
        self.pki = pki
        self.connect = tuple(connect)
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="stunnel-"))
        self.name = name
        self.extra = list(extra)
        self.port = None
        self.proc = None
        self.config_path = self.workdir / f"{name}.conf"
        self.log_path = self.workdir / f"{name}.log"

    @property
    def address(self):
        return (LOOPBACK4, self.port)

    def service_lines(self):
        raise NotImplementedError

    def config_text(self):
        lines = [
            "foreground = yes",     # no fork: the Popen is stunnel itself
            "pid =",                # no pid file
            "syslog = no",
            "debug = info",
            f"[{self.name}]",
            f"accept = {LOOPBACK4}:{self.port}",
            f"connect = {format_hostport(*self.connect)}",
            "sslVersionMin = TLSv1.2",
            "libwrap = no",         # else /etc/hosts.allow decides
            "delay = no",
            *self.service_lines(),
            *self.extra,
        ]
        return "\n".join(lines) + "\n"

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self, timeout=10.0):
        if not os.access(STUNNEL, os.X_OK):
            raise RuntimeError(f"stunnel not found at {STUNNEL} (Debian package "
                               "stunnel4)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        # free_port() is racy: on EADDRINUSE take another port, as
        # conftest's start_daemon does.
        for attempt in range(3):
            try:
                return self._start_once(timeout)
            except RuntimeError:
                if attempt == 2 or "Address already in use" not in self.log():
                    raise

    def _start_once(self, timeout):
        self.port = free_port((LOOPBACK4,))
        self.config_path.write_text(self.config_text())
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([STUNNEL, str(self.config_path)],
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=tool_env(),
                                         cwd=str(self.workdir), start_new_session=True)
        daemon_mod._ALL_PROCESSES.append(self.proc)
        deadline = time.monotonic() + timeout * TIME_SCALE
        while not is_listening(LOOPBACK4, self.port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"stunnel exited with {self.proc.returncode} "
                                   f"during start-up; config:\n{self.config_text()}"
                                   f"log:\n{self.log()}")
            if time.monotonic() > deadline:
                log_text = self.log()
                self.stop()
                raise RuntimeError(f"stunnel did not listen on {LOOPBACK4}:{self.port}"
                                   f" within {timeout}s; log:\n{log_text}")
            time.sleep(0.02)
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
            except ProcessLookupError:
                pass
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        self.start()
        return self.port

    def __exit__(self, *exc):
        self.stop()


class StunnelClient(Stunnel):
    """stunnel as a TLS client: plain TCP accepted on 127.0.0.1:.port goes
    over TLS to `connect`, whose chain is verified against the test CA (or
    cafile) and whose name against check_host (or check_ip); client_cert
    (a CertKey) is presented if given.

        with StunnelClient(pki, connect=d.address, workdir=tmp_path) as port:
            ... plain SOCKS5 / HTTP to (LOOPBACK4, port) ...

    A connection whose TLS handshake fails is reset on the plain side."""

    def __init__(self, pki, connect, workdir=None, client_cert=None,
                 check_host="localhost", check_ip=None, cafile=None, sni=None,
                 name="stunnel-client", extra=()):
        super().__init__(pki, connect, workdir, name, extra)
        self.client_cert = client_cert
        self.check_host = check_host
        self.check_ip = check_ip
        self.cafile = cafile
        self.sni = sni

    def service_lines(self):
        lines = ["client = yes",
                 f"CAfile = {self.cafile or self.pki.ca_cert}",
                 "verifyChain = yes"]
        if self.check_host:
            lines.append(f"checkHost = {self.check_host}")
        if self.check_ip:
            lines.append(f"checkIP = {self.check_ip}")
        if self.sni:
            lines.append(f"sni = {self.sni}")
        if self.client_cert is not None:
            cert, key = self.client_cert
            lines += [f"cert = {cert}", f"key = {key}"]
        return lines


class StunnelServer(Stunnel):
    """stunnel as a TLS server presenting cert (default pki.server) on
    127.0.0.1:.port, relaying plain TCP to `connect`: a stand-in TLS
    listener in front of any plain loopback server (microsocks, tinyproxy,
    a plain socks5d), to prove TLS clients before the daemon has TLS.
    With client_ca, client certificates are verified against it (and
    required when require_client_cert)."""

    def __init__(self, pki, connect, workdir=None, cert=None, client_ca=None,
                 require_client_cert=True, name="stunnel-server", extra=()):
        super().__init__(pki, connect, workdir, name, extra)
        self.cert = cert
        self.client_ca = client_ca
        self.require_client_cert = require_client_cert

    def service_lines(self):
        cert, key = self.cert or self.pki.server
        lines = [f"cert = {cert}", f"key = {key}"]
        if self.client_ca is not None:
            lines += [f"CAfile = {self.client_ca}", "verifyChain = yes",
                      f"requireCert = {'yes' if self.require_client_cert else 'no'}"]
        return lines


# -- Chromium ------------------------------------------------------------------

BROWSER_TIMEOUT = 60
NSS_NICKNAME = "socks5d-test-ca"

# The quieting flags of test_http_clients.py (duplicated: harness modules
# do not import test files), plus NetworkTimeServiceQuerying (its
# clients2.google.com/time requests). They cut down background traffic but
# do not end it: see run_chromium.
CHROMIUM_QUIET = (
    "--disable-background-networking", "--disable-component-update",
    "--disable-default-apps", "--disable-sync", "--disable-extensions",
    "--no-first-run", "--no-default-browser-check", "--metrics-recording-only",
    "--disable-domain-reliability", "--disable-breakpad",
    "--disable-features=OptimizationHints,MediaRouter,Translate,"
    "AutofillServerCommunication,NetworkTimeServiceQuerying",
    "--password-store=basic",
)


def client_env(home, **extra):
    """The environment without proxy variables and LD_* (as
    test_http_clients.client_env), with HOME and the XDG dirs under home."""
    env = {k: v for k, v in os.environ.items()
           if "proxy" not in k.lower() and not k.startswith("LD_")}
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    env["HOME"] = str(home)
    env["XDG_CONFIG_HOME"] = str(home / ".config")
    env["XDG_CACHE_HOME"] = str(home / ".cache")
    env.update(extra)
    return env


def nss_home(pki, home):
    """Make home a HOME whose NSS database ($HOME/.pki/nssdb, where
    Chromium on Linux looks) trusts the test CA for TLS servers; returns
    home. Idempotent."""
    home = Path(home)
    db = home / ".pki" / "nssdb"
    if (db / "cert9.db").exists():
        listed = _certutil(home, "-L", "-d", f"sql:{db}")
        if NSS_NICKNAME in listed:
            return home
    db.mkdir(parents=True, exist_ok=True)
    db.chmod(0o700)
    if not (db / "cert9.db").exists():
        _certutil(home, "-N", "-d", f"sql:{db}", "--empty-password")
    _certutil(home, "-A", "-d", f"sql:{db}", "-n", NSS_NICKNAME, "-t", "C,,",
              "-i", pki.ca_cert)
    return home


def _certutil(home, *args):
    if not os.access(CERTUTIL, os.X_OK):
        raise RuntimeError(f"certutil not found at {CERTUTIL} (Debian package "
                           "libnss3-tools)")
    result = subprocess.run([CERTUTIL, *(str(a) for a in args)], capture_output=True,
                            text=True, timeout=TOOL_TIMEOUT,
                            env=tool_env(HOME=str(home)))
    if result.returncode != 0:
        raise RuntimeError(f"certutil {' '.join(map(str, args))} failed with "
                           f"{result.returncode}:\n{result.stdout}{result.stderr}")
    return result.stdout


def run_browser(args, env, timeout=BROWSER_TIMEOUT):
    """Run Chromium in a process group of its own; kill the whole group
    (renderers, zygotes, crashpad) when it ends or overruns."""
    proc = subprocess.Popen([str(a) for a in args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, start_new_session=True,
                            stdin=subprocess.DEVNULL)
    daemon_mod._ALL_PROCESSES.append(proc)
    try:
        out, err = proc.communicate(timeout=timeout * TIME_SCALE)
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


def proxy_server_value(proxy):
    """--proxy-server's value: a string as given, or (host, port) of a TLS
    listener as https://host:port."""
    if isinstance(proxy, str):
        return proxy
    return f"https://{format_hostport(*proxy)}"


def run_chromium(url, proxy, home, user_data_dir=None, spki_pins=(),
                 bypass_loopback=False, extra_args=(), timeout=BROWSER_TIMEOUT):
    """chromium --headless=new --dump-dom url with HOME=home (make it with
    nss_home() to trust the test CA) and its profile in user_data_dir
    (default home/chromium). proxy: a --proxy-server value, or a TLS
    listener's (host, port) (https://), with loopback sent through it too
    unless bypass_loopback; None loads directly. spki_pins (spki_sha256()
    values) go to --ignore-certificate-errors-spki-list, which covers the
    proxy's certificate as well as origins'. Returns the CompletedProcess.

    Chromium keeps talking to Google (component updater, accounts) whatever
    the flags say. Through a proxy those requests go to the proxy, which
    must not resolve them for real (the daemon asks the test DNS server);
    a direct load gets a proxy on a closed loopback port instead (loopback
    itself bypasses it), so nothing leaves the machine: with a proxy set,
    Chromium resolves no name itself but those it bypasses the proxy for."""
    home = Path(home)
    args = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
            "--disable-dev-shm-usage",
            f"--user-data-dir={user_data_dir or home / 'chromium'}",
            *CHROMIUM_QUIET]
    blocker = None
    if proxy is None:
        blocker, closed = closed_port()
        args.append(f"--proxy-server=http://{format_hostport(LOOPBACK4, closed)}")
    else:
        args.append(f"--proxy-server={proxy_server_value(proxy)}")
        if not bypass_loopback:
            args.append("--proxy-bypass-list=<-loopback>")
    if spki_pins:
        args.append("--ignore-certificate-errors-spki-list=" + ",".join(spki_pins))
    args += [*extra_args, "--dump-dom", url]
    try:
        return run_browser(args, client_env(home), timeout)
    finally:
        if blocker is not None:
            blocker.close()


def chromium_dump_dom(url, proxy, home, **kwargs):
    """The DOM Chromium dumps for url (see run_chromium for the arguments);
    a certificate it does not trust gives an error page or nothing, never
    the page. Raises with stderr when Chromium itself fails."""
    result = run_chromium(url, proxy, home, **kwargs)
    if result.returncode != 0:
        raise AssertionError(f"chromium exited with {result.returncode}; stderr:\n"
                             f"{result.stderr[-4000:].decode(errors='replace')}")
    return result.stdout.decode(errors="replace")
