"""UDP ASSOCIATE helpers: the SOCKS UDP header (RFC 1928 §7), a raw
association (control connection plus datagram socket), and loopback UDP
servers the daemon relays to.

Everything is bounded by timeouts and stays on loopback."""
import socket
import struct
import threading

from .net import IO_TIMEOUT, assert_loopback, family_of
from .socks5 import (ATYP_IPV4, ATYP_IPV6, ATYP_NAME, CMD_UDP, METHOD_NONE,
                     Socks5Client, encode_address)

# The largest UDP payload over IPv4 and over IPv6 (no jumbograms).
MAX_UDP_IPV4 = 65507
MAX_UDP_IPV6 = 65527


def udp_header(host, port, frag=0, rsv=0, atyp=None):
    """RSV(2) FRAG(1) ATYP DST.ADDR DST.PORT for host:port (see
    encode_address for host forms)."""
    return (struct.pack("!HB", rsv, frag) + encode_address(host, atyp)
            + struct.pack("!H", port))


def parse_udp_datagram(data):
    """(rsv, frag, atyp, host, port, payload) of a datagram from the relay."""
    rsv, frag, atyp = struct.unpack("!HBB", data[:4])
    if atyp == ATYP_IPV4:
        host, rest = socket.inet_ntop(socket.AF_INET, data[4:8]), data[8:]
    elif atyp == ATYP_IPV6:
        host, rest = socket.inet_ntop(socket.AF_INET6, data[4:20]), data[20:]
    elif atyp == ATYP_NAME:
        length = data[4]
        host, rest = data[5:5 + length].decode("latin-1"), data[5 + length:]
    else:
        raise AssertionError(f"datagram with ATYP {atyp:#x}: {data[:24].hex()}")
    port = struct.unpack("!H", rest[:2])[0]
    return rsv, frag, atyp, host, port, rest[2:]


class Association:
    """One UDP ASSOCIATE: the control connection (client.sock) and a UDP
    socket on loopback of the relay's family. Use request() first; its
    reply is kept in .reply and .relay is the (host, port) to send to."""

    def __init__(self, proxy, udp_host=None, timeout=IO_TIMEOUT):
        self.proxy = proxy
        self.client = Socks5Client(proxy, timeout=timeout)
        host = udp_host or proxy[0]
        assert_loopback(host)
        self.udp = socket.socket(family_of(host), socket.SOCK_DGRAM)
        self.udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.udp.bind((host, 0))
        self.udp.settimeout(timeout)
        self.reply = None
        self.relay = None

    @property
    def local(self):
        return self.udp.getsockname()[:2]

    def request(self, host="0.0.0.0", port=0, atyp=None):
        """Greet and send UDP ASSOCIATE for DST host:port; returns the reply."""
        method = self.client.greet((METHOD_NONE,))
        assert method == METHOD_NONE, f"server chose method {method:#x}"
        self.reply = self.client.request(host, port, CMD_UDP, atyp)
        self.reply.assert_ip_form()
        self.relay = self.reply.bound
        return self.reply

    def send_raw(self, data, sock=None):
        (sock or self.udp).sendto(data, self.relay)

    def send(self, host, port, payload, atyp=None, sock=None):
        self.send_raw(udp_header(host, port, atyp=atyp) + payload, sock)

    def recv(self, timeout=None):
        """The next datagram from the relay, parsed; asserts it came from
        the relay's exact address and has a clean header. Returns
        (host, port, payload)."""
        if timeout is not None:
            self.udp.settimeout(timeout)
        data, sender = self.udp.recvfrom(MAX_UDP_IPV6 + 1024)
        assert sender[:2] == self.relay, f"datagram from {sender}, relay {self.relay}"
        rsv, frag, atyp, host, port, payload = parse_udp_datagram(data)
        assert (rsv, frag) == (0, 0), data[:4].hex()
        assert atyp in (ATYP_IPV4, ATYP_IPV6), f"reply header ATYP {atyp}"
        return host, port, payload

    def assert_nothing(self, wait=0.3):
        """No datagram arrives within wait seconds."""
        self.udp.settimeout(wait)
        try:
            data = self.udp.recv(MAX_UDP_IPV6 + 1024)
        except socket.timeout:
            return
        finally:
            self.udp.settimeout(IO_TIMEOUT)
        raise AssertionError(f"unexpected datagram {data[:32].hex()}")

    def close(self):
        self.udp.close()
        self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class UdpServer:
    """A UDP server on one loopback host in a thread. By default it echoes;
    answer(payload) -> bytes or None may be given instead. Every datagram it
    receives is recorded as (peer, payload)."""

    def __init__(self, host="127.0.0.1", answer=None):
        assert_loopback(host)
        self.answer = answer or (lambda payload: payload)
        self.received = []
        self._lock = threading.Lock()
        self.sock = socket.socket(family_of(host), socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.1)
        self.host, self.port = self.sock.getsockname()[:2]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def address(self):
        return (self.host, self.port)

    def count(self):
        with self._lock:
            return len(self.received)

    def peers(self):
        with self._lock:
            return [peer for peer, _ in self.received]

    def _serve(self):
        while not self._stop.is_set():
            try:
                payload, peer = self.sock.recvfrom(MAX_UDP_IPV6 + 1024)
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self.received.append((peer[:2], payload))
            reply = self.answer(payload)
            if reply is None:
                continue
            try:
                self.sock.sendto(reply, peer)
            except OSError:
                pass

    def close(self):
        self._stop.set()
        self._thread.join(timeout=2.0)
        self.sock.close()


def dns_query(name, qid=0x5eed, qtype=1):
    """A standard recursive query for name (A by default)."""
    labels = b"".join(bytes([len(part)]) + part.encode()
                      for part in name.split(".")) + b"\x00"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + struct.pack("!HH", qtype, 1)


def dns_answers_a(response):
    """(id, rcode, [IPv4 strings]) of the A records in a DNS response."""
    qid, flags, qdcount, ancount = struct.unpack("!HHHH", response[:8])
    pos = 12
    for _ in range(qdcount):
        pos = _skip_name(response, pos) + 4
    addresses = []
    for _ in range(ancount):
        pos = _skip_name(response, pos)
        rtype, _, _, rdlength = struct.unpack("!HHIH", response[pos:pos + 10])
        pos += 10
        if rtype == 1 and rdlength == 4:
            addresses.append(socket.inet_ntop(socket.AF_INET, response[pos:pos + 4]))
        pos += rdlength
    return qid, flags & 0xF, addresses


def _skip_name(data, pos):
    while True:
        length = data[pos]
        if length & 0xC0 == 0xC0:
            return pos + 2
        pos += 1 + length
        if length == 0:
            return pos
