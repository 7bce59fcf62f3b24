"""Raw HTTP-proxy clients and a scriptable origin for the black-box tests:
requests as bytes (so malformed ones are easy to build), response heads
parsed just enough to assert on."""
import socket
import threading

from .net import IO_TIMEOUT, assert_loopback, family_of


def read_head(sock, limit=65536):
    """Bytes up to and including the first empty line, and what followed."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise AssertionError(f"closed before the end of a head: {data!r}")
        data += chunk
        assert len(data) < limit, "head too long"
    head, _, rest = data.partition(b"\r\n\r\n")
    return head + b"\r\n\r\n", rest


class Response:
    def __init__(self, head, rest):
        self.raw = head
        lines = head.decode("latin-1").split("\r\n")
        self.status_line = lines[0]
        self.status = int(lines[0].split(" ")[1])
        self.fields = []
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                self.fields.append((name.lower(), value.strip()))
        self.rest = rest

    def field(self, name):
        values = [v for n, v in self.fields if n == name.lower()]
        return values[0] if values else None

    def all(self, name):
        return [v for n, v in self.fields if n == name.lower()]

    def __repr__(self):
        return f"<response {self.raw!r}>"


def read_response(sock):
    return Response(*read_head(sock))


class ProxyClient:
    def __init__(self, proxy, timeout=IO_TIMEOUT, source=None):
        self.sock = socket.create_connection(
            proxy, timeout=timeout, source_address=(source, 0) if source else None)

    def send(self, data):
        self.sock.sendall(data)

    def request(self, data):
        self.send(data)
        return read_response(self.sock)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Origin:
    """A loopback server that records each request head (and its
    Content-Length body) it reads and answers with `answer` (bytes, or a
    function of the head returning bytes); then it closes when the request
    said Connection: close, or echoes whatever else comes if `echo`, or
    waits for the peer to close."""

    def __init__(self, answer, host="127.0.0.1", echo=False):
        assert_loopback(host)
        self.answer = answer
        self.echo = echo
        self.heads = []
        self.bodies = []
        self.extra = b""            # bytes after a request that said close
        self.listener = socket.socket(family_of(host), socket.SOCK_STREAM)
        self.listener.bind((host, 0))
        self.listener.listen(16)
        self.address = self.listener.getsockname()[:2]
        self.port = self.address[1]
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn):
        with conn:
            conn.settimeout(IO_TIMEOUT)
            try:
                head, rest = read_head(conn)
                self.heads.append(head)
                lower = head.lower()
                length = 0
                for line in lower.split(b"\r\n"):
                    if line.startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                while len(rest) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    rest += chunk
                self.bodies.append(rest[:length])
                answer = self.answer(head) if callable(self.answer) else self.answer
                conn.sendall(answer)
                # Asked to close (as the proxy asks) and not upgraded: done,
                # like a server that honours Connection: close; whatever
                # still comes until the proxy closes is kept in extra.
                if not self.echo and b"connection: close" in lower:
                    conn.shutdown(socket.SHUT_WR)
                    self.extra += rest[length:]
                    while more := conn.recv(65536):
                        self.extra += more
                    return
                body = rest[length:]
                while True:
                    if self.echo and body:
                        conn.sendall(body)
                    body = conn.recv(65536)
                    if not body:
                        return
            except OSError:
                return

    def close(self):
        self._stop = True
        self.listener.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
