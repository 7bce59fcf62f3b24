"""Loopback target servers the daemon connects to, each running in threads.

A TargetServer listens on one or more loopback hosts (sharing one port, so a
name that resolves to both 127.0.0.1 and ::1 reaches the same server) and runs
a behaviour for every accepted connection. Each connection leaves a
ConnRecord: the peer address the target saw, and the length and SHA-256 of
what it received and sent, so tests can compare both directions exactly."""
import hashlib
import os
import select
import socket
import struct
import threading
import time

from .net import IO_TIMEOUT, assert_loopback, family_of, free_port

# Ceiling on what a target accepts from one connection, so a runaway relay
# cannot fill memory or run forever.
MAX_RECEIVE = 64 * 1024 * 1024
CHUNK = 262144


class ConnRecord:
    """What one target-side connection saw."""

    def __init__(self, peer, local):
        self.peer = peer            # (host, port) the target saw as the client
        self.local = local
        self.received_len = 0
        self.received = hashlib.sha256()
        self.sent_len = 0
        self.sent = hashlib.sha256()
        self.error = None           # exception text if the behaviour failed
        self.done = threading.Event()

    @property
    def received_sha256(self):
        return self.received.hexdigest()

    @property
    def sent_sha256(self):
        return self.sent.hexdigest()

    def wait(self, timeout=IO_TIMEOUT):
        if not self.done.wait(timeout):
            raise TimeoutError(f"target connection from {self.peer} still running")
        return self


def _read_some(conn, record):
    data = conn.recv(CHUNK)
    if data:
        record.received_len += len(data)
        record.received.update(data)
        if record.received_len > MAX_RECEIVE:
            raise RuntimeError("target received more than MAX_RECEIVE")
    return data


def _send_random(conn, record, count):
    """Send count random bytes, hashing them as they go out."""
    remaining = count
    while remaining:
        block = os.urandom(min(remaining, CHUNK))
        conn.sendall(block)
        record.sent.update(block)
        record.sent_len += len(block)
        remaining -= len(block)


def behave_echo(conn, record):
    """Echo everything; after the client's EOF, shut our write side too."""
    while True:
        data = _read_some(conn, record)
        if not data:
            break
        conn.sendall(data)
        record.sent.update(data)
        record.sent_len += len(data)
    conn.shutdown(socket.SHUT_WR)


def behave_sink(conn, record):
    """Read to EOF, counting and hashing, then close."""
    while _read_some(conn, record):
        pass


def sink_then_source(count):
    """Read to EOF, then send count random bytes and close: proves that the
    path back to the client still works after the client half-closed."""
    def behave(conn, record):
        while _read_some(conn, record):
            pass
        _send_random(conn, record, count)
        conn.shutdown(socket.SHUT_WR)
    return behave


def source_then_sink(count):
    """Send count bytes, half-close, then read to EOF: the mirror image of
    sink_then_source, proving the client can still send after the target's
    EOF reached it."""
    def behave(conn, record):
        _send_random(conn, record, count)
        conn.shutdown(socket.SHUT_WR)
        while _read_some(conn, record):
            pass
    return behave


def source(count):
    """Send count bytes and close without reading."""
    def behave(conn, record):
        _send_random(conn, record, count)
        conn.shutdown(socket.SHUT_WR)
        # Give the bytes a moment to leave before close() could turn unread
        # input into a reset.
        conn.settimeout(2.0)
        try:
            while conn.recv(CHUNK):
                pass
        except OSError:
            pass
    return behave


def stall_then_sink(seconds):
    """Read nothing for a while (so every buffer on the way fills and the
    relay must apply backpressure), then read to EOF."""
    def behave(conn, record):
        time.sleep(seconds)
        while _read_some(conn, record):
            pass
    return behave


def behave_hold(conn, record):
    """Keep the connection open, reading, until the peer closes."""
    while _read_some(conn, record):
        pass


def never_read(release=None, hold=120.0):
    """Accept and never read, so the relay toward us must stall on full
    buffers. Returns (and the connection is closed, with a reset since
    input is left unread) when release (a threading.Event) is set, the peer
    goes away, the server is closed, or after hold seconds."""
    def behave(conn, record):
        poller = select.poll()
        poller.register(conn, select.POLLRDHUP | select.POLLHUP | select.POLLERR)
        deadline = time.monotonic() + hold
        while time.monotonic() < deadline:
            if release is not None and release.is_set():
                return
            if poller.poll(100):
                return
    return behave


def behave_close_at_once(conn, record):
    """Accept and close at once (FIN): the client may see its success reply
    and an EOF right behind it."""


def behave_reset_at_once(conn, record):
    """Accept and reset (RST) at once."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def send_and_close(data):
    """Send data the moment the connection is accepted and close: the bytes
    and the EOF may reach the daemon before its reply reaches the client."""
    def behave(conn, record):
        conn.sendall(data)
        record.sent.update(data)
        record.sent_len += len(data)
    return behave


class FullBacklog:
    """A loopback port whose listener never accepts and whose accept queue is
    full, so the kernel drops further SYNs and connects to it hang (the
    target that "never accepts"). Use as a context manager."""

    def __init__(self, host="127.0.0.1"):
        assert_loopback(host)
        self.listener = socket.socket(family_of(host), socket.SOCK_STREAM)
        self.listener.bind((host, 0))
        self.listener.listen(0)
        self.address = self.listener.getsockname()[:2]
        self.port = self.address[1]
        self._fillers = []
        # Backlog 0 still queues one or two; fill until a connect hangs.
        for _ in range(4):
            sock = socket.socket(family_of(host), socket.SOCK_STREAM)
            sock.settimeout(0.3)
            self._fillers.append(sock)
            try:
                sock.connect(self.address)
            except OSError:
                break

    def close(self):
        for sock in self._fillers:
            sock.close()
        self.listener.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class TargetServer:
    """A threaded TCP server on loopback host(s) running behaviour per connection."""

    def __init__(self, behaviour, hosts=("127.0.0.1",), port=None, backlog=64):
        for host in hosts:
            assert_loopback(host)
        self.hosts = tuple(hosts)
        self.behaviour = behaviour
        self.port = port or free_port(self.hosts)
        self.records = []
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._listeners = []
        self._threads = []
        self._conns = []
        for host in self.hosts:
            sock = socket.socket(family_of(host), socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family_of(host) == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((host, self.port))
            sock.listen(backlog)
            sock.settimeout(0.1)
            self._listeners.append(sock)
        for sock in self._listeners:
            self._spawn(self._accept_loop, sock)

    @property
    def host(self):
        return self.hosts[0]

    @property
    def address(self):
        return (self.host, self.port)

    def _spawn(self, fn, *args):
        thread = threading.Thread(target=fn, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self, listener):
        while not self._stop.is_set():
            try:
                conn, peer = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(IO_TIMEOUT)
            record = ConnRecord(peer[:2], conn.getsockname()[:2])
            with self._lock:
                self.records.append(record)
                self._conns.append(conn)
                self._lock.notify_all()
            self._spawn(self._serve, conn, record)

    def _serve(self, conn, record):
        try:
            self.behaviour(conn, record)
        except Exception as exc:  # recorded for the test to assert on
            record.error = f"{type(exc).__name__}: {exc}"
        finally:
            try:
                conn.close()
            except OSError:
                pass
            record.done.set()

    def wait_connection(self, index=0, timeout=IO_TIMEOUT):
        """The index-th accepted connection's record (it may still be running)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.records) <= index:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"target {self.port}: no connection #{index}")
                self._lock.wait(left)
            return self.records[index]

    def close(self):
        self._stop.set()
        for sock in self._listeners:
            try:
                sock.shutdown(socket.SHUT_RDWR)     # wakes a blocked accept()
            except OSError:
                pass
            sock.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in self._threads:
            thread.join(timeout=2.0)
