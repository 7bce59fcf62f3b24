"""A minimal SOCKS4/4a client for the black-box tests: requests as bytes,
8-byte replies parsed, so malformed variants are easy to build."""
import socket
import struct

from .net import IO_TIMEOUT, recv_exact

CMD_CONNECT = 1
CMD_BIND = 2
GRANTED = 90
REJECTED = 91


def request(host, port, cmd=CMD_CONNECT, userid=b"", name=None):
    """A SOCKS4 request for IPv4 host, or a 4a request for name (host is then
    ignored and DSTIP is 0.0.0.1)."""
    if name is not None:
        return (struct.pack("!BBH", 4, cmd, port) + bytes([0, 0, 0, 1])
                + userid + b"\0" + name.encode() + b"\0")
    return (struct.pack("!BBH", 4, cmd, port) + socket.inet_aton(host)
            + userid + b"\0")


class Reply:
    def __init__(self, raw):
        assert len(raw) == 8, raw
        self.raw = raw
        self.vn, self.cd, self.port = struct.unpack("!BBH", raw[:4])
        self.host = socket.inet_ntoa(raw[4:])
        assert self.vn == 0, f"reply VN {self.vn}, expected 0"

    @property
    def bound(self):
        return (self.host, self.port)

    def __repr__(self):
        return f"<socks4 reply cd={self.cd} {self.host}:{self.port}>"


class Socks4Client:
    def __init__(self, proxy, timeout=IO_TIMEOUT, source=None):
        self.sock = socket.create_connection(proxy, timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, data):
        self.sock.sendall(data)

    def read_reply(self):
        return Reply(recv_exact(self.sock, 8))

    def request(self, host, port, cmd=CMD_CONNECT, **kwargs):
        self.send(request(host, port, cmd, **kwargs))
        return self.read_reply()

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
