"""A raw SOCKS5 client (RFC 1928, RFC 1929) for protocol tests.

It builds messages byte by byte and reads replies exactly, so tests can send
malformed, split or coalesced input and check every reply field. All reads
are bounded by the socket timeout."""
import ipaddress
import socket
import struct
import time
from dataclasses import dataclass

from .net import IO_TIMEOUT, family_of, peer_closed, recv_exact

VER = 0x05
AUTH_VER = 0x01

METHOD_NONE = 0x00
METHOD_GSSAPI = 0x01
METHOD_PASSWORD = 0x02
METHOD_REJECT = 0xFF

CMD_CONNECT = 0x01
CMD_BIND = 0x02
CMD_UDP = 0x03

ATYP_IPV4 = 0x01
ATYP_NAME = 0x03
ATYP_IPV6 = 0x04

REP_SUCCESS = 0x00
REP_FAILURE = 0x01
REP_NOT_ALLOWED = 0x02
REP_NET_UNREACH = 0x03
REP_HOST_UNREACH = 0x04
REP_REFUSED = 0x05
REP_TTL_EXPIRED = 0x06
REP_CMD_UNSUPPORTED = 0x07
REP_ATYP_UNSUPPORTED = 0x08


def greeting(methods=(METHOD_NONE,)):
    return bytes([VER, len(methods), *methods])


def credentials(user, password):
    user_b = user.encode() if isinstance(user, str) else user
    pass_b = password.encode() if isinstance(password, str) else password
    return bytes([AUTH_VER, len(user_b)]) + user_b + bytes([len(pass_b)]) + pass_b


def encode_address(host, atyp=None):
    """ATYP + address bytes for host: an IPv4/IPv6 literal gets ATYP 1/4, any
    other str (or bytes) becomes a name (ATYP 3). Pass atyp=ATYP_NAME to send
    an IP literal as a name."""
    if isinstance(host, bytes):
        return bytes([ATYP_NAME, len(host)]) + host
    if atyp is None:
        try:
            ip = ipaddress.ip_address(host)
            atyp = ATYP_IPV4 if ip.version == 4 else ATYP_IPV6
        except ValueError:
            atyp = ATYP_NAME
    if atyp == ATYP_IPV4:
        return bytes([ATYP_IPV4]) + socket.inet_pton(socket.AF_INET, host)
    if atyp == ATYP_IPV6:
        return bytes([ATYP_IPV6]) + socket.inet_pton(socket.AF_INET6, host)
    name = host.encode()
    return bytes([ATYP_NAME, len(name)]) + name


def request(host, port, cmd=CMD_CONNECT, atyp=None):
    return bytes([VER, cmd, 0x00]) + encode_address(host, atyp) + struct.pack("!H", port)


@dataclass
class Reply:
    ver: int
    rep: int
    rsv: int
    atyp: int
    host: str
    port: int
    raw: bytes

    def assert_ip_form(self):
        """Every reply must be a complete IP-form reply: VER 5, RSV 0, ATYP 1
        with 4 address bytes or ATYP 4 with 16 (10 or 22 bytes in all)."""
        assert self.ver == VER, f"reply VER {self.ver:#x}, raw {self.raw.hex()}"
        assert self.rsv == 0, f"reply RSV {self.rsv:#x}, raw {self.raw.hex()}"
        assert self.atyp in (ATYP_IPV4, ATYP_IPV6), \
            f"reply ATYP {self.atyp:#x}, raw {self.raw.hex()}"
        assert len(self.raw) == (10 if self.atyp == ATYP_IPV4 else 22)

    @property
    def bound(self):
        return (self.host, self.port)


class Socks5Client:
    """One client connection to the daemon."""

    def __init__(self, proxy, timeout=IO_TIMEOUT, nodelay=True, source=None):
        """source: a loopback address to connect from (e.g. 127.0.0.2)."""
        self.sock = socket.socket(family_of(proxy[0]), socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        if source is not None:
            self.sock.bind((source, 0))
        if nodelay:
            # So that split sends really arrive as separate segments.
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.connect(proxy)
        self.reply = None

    # -- plumbing -------------------------------------------------------
    def send(self, data):
        self.sock.sendall(data)

    def send_bytewise(self, data, pause=0.002):
        """Send one byte per segment, to exercise the daemon's reassembly."""
        for i in range(len(data)):
            self.sock.sendall(data[i:i + 1])
            time.sleep(pause)

    def recv_exact(self, count):
        return recv_exact(self.sock, count)

    def closed_by_peer(self, timeout=3.0):
        return peer_closed(self.sock, timeout)

    def shutdown_write(self):
        self.sock.shutdown(socket.SHUT_WR)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- protocol steps -------------------------------------------------
    def read_method_choice(self):
        ver, method = self.recv_exact(2)
        assert ver == VER, f"method reply VER {ver:#x}"
        return method

    def greet(self, methods=(METHOD_NONE,)):
        """Send a greeting and return the method the server chose."""
        self.send(greeting(methods))
        return self.read_method_choice()

    def read_auth_status(self):
        """The RFC 1929 reply: returns (VER, STATUS)."""
        ver, status = self.recv_exact(2)
        return ver, status

    def authenticate(self, user, password):
        self.send(credentials(user, password))
        return self.read_auth_status()

    def read_reply(self):
        head = self.recv_exact(4)
        ver, rep, rsv, atyp = head
        if atyp == ATYP_IPV4:
            body = self.recv_exact(4 + 2)
            host = socket.inet_ntop(socket.AF_INET, body[:4])
        elif atyp == ATYP_IPV6:
            body = self.recv_exact(16 + 2)
            host = socket.inet_ntop(socket.AF_INET6, body[:16])
        elif atyp == ATYP_NAME:
            length = self.recv_exact(1)
            body = length + self.recv_exact(length[0] + 2)
            host = body[1:-2].decode("latin-1")
        else:
            raise AssertionError(f"reply with unknown ATYP {atyp:#x}: {head.hex()}")
        port = struct.unpack("!H", body[-2:])[0]
        return Reply(ver, rep, rsv, atyp, host, port, head + body)

    def request(self, host, port, cmd=CMD_CONNECT, atyp=None):
        self.send(request(host, port, cmd, atyp))
        return self.read_reply()

    def connect(self, host, port, user=None, password=None, atyp=None):
        """Full handshake for CONNECT; returns the reply (any REP)."""
        if user is None:
            method = self.greet((METHOD_NONE,))
            assert method == METHOD_NONE, f"server chose method {method:#x}"
        else:
            method = self.greet((METHOD_PASSWORD,))
            assert method == METHOD_PASSWORD, f"server chose method {method:#x}"
            ver, status = self.authenticate(user, password)
            assert status == 0, f"authentication failed, status {status:#x}"
        return self.request(host, port, CMD_CONNECT, atyp)


def open_tunnel(proxy, host, port, user=None, password=None, timeout=IO_TIMEOUT):
    """A client whose CONNECT to host:port succeeded (asserted); the reply is
    kept as client.reply."""
    client = Socks5Client(proxy, timeout=timeout)
    try:
        reply = client.reply = client.connect(host, port, user, password)
        reply.assert_ip_form()
        assert reply.rep == REP_SUCCESS, f"CONNECT {host}:{port} got REP {reply.rep:#x}"
    except BaseException:
        client.close()
        raise
    return client


def assert_echo(client, payload=b"ping through socks5d\n"):
    """Round-trip payload through a tunnel to an echo target."""
    client.send(payload)
    assert client.recv_exact(len(payload)) == payload
