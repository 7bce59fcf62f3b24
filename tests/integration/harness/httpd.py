"""A loopback HTTP server in a thread, the far end for real clients (curl,
ncat, proxychains, PySocks). GET /blob/N returns N deterministic bytes;
POST /sha256 answers with the SHA-256 of the request body; any other GET
answers with a fixed greeting that names the server's port."""
import hashlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .net import assert_loopback, family_of


def blob(size):
    """Deterministic content, so the test can recompute the expected hash."""
    pattern = bytes(range(251))          # prime length: no alignment luck
    return (pattern * (size // len(pattern) + 1))[:size]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        self.server.requests.append(self.requestline)

    def _send(self, body, status=200):
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path.startswith("/blob/"):
            self._send(blob(int(self.path[len("/blob/"):])))
        else:
            self._send(self.server.greeting)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        self._send(hashlib.sha256(body).hexdigest().encode())


class HttpServer:
    def __init__(self, host="127.0.0.1"):
        assert_loopback(host)

        class Server(ThreadingHTTPServer):
            address_family = family_of(host)
            daemon_threads = True

            def server_bind(self):
                if self.address_family == socket.AF_INET6:
                    self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                super().server_bind()

        self.server = Server((host, 0), _Handler)
        self.host = host
        self.port = self.server.server_address[1]
        self.server.requests = []
        self.server.greeting = f"hello from test server {self.port}\n".encode()
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def greeting(self):
        return self.server.greeting

    @property
    def requests(self):
        return self.server.requests

    def url(self, path="/", host=None):
        host = host or self.host
        netloc = f"[{host}]" if ":" in host else host
        return f"http://{netloc}:{self.port}{path}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(2.0)
