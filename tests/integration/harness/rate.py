"""Measuring a bandwidth limit at the receiver: readers and writers that
go as fast as Python can, and the rate over a window after warm-up."""
import socket
import threading
import time

# The bucket starts full (one second of burst) and the socket buffers on
# the way fill up: measure after this much.
WARM_UP = 2.0
WINDOW = 5.0
TOLERANCE = 0.10
MIB = 1024 * 1024


class Reader(threading.Thread):
    """Read a tunnel (anything with .sock, or a socket) as fast as Python
    can, counting bytes over time."""

    def __init__(self, client):
        super().__init__(daemon=True)
        self.sock = getattr(client, "sock", client)
        self.sock.settimeout(1.0)
        self.total = 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                data = self.sock.recv(262144)
            except socket.timeout:
                continue
            except OSError:
                return
            if not data:
                return
            self.total += len(data)


class Writer(threading.Thread):
    """Write into a tunnel as fast as it takes bytes."""

    def __init__(self, client):
        super().__init__(daemon=True)
        self.sock = client.sock
        self.sock.settimeout(1.0)
        self.stop = threading.Event()

    def run(self):
        block = b"u" * 65536
        while not self.stop.is_set():
            try:
                self.sock.send(block)
            except socket.timeout:
                continue
            except OSError:
                return


def window_rates(readers):
    """Bytes per second each reader took over WINDOW, after WARM_UP."""
    time.sleep(WARM_UP)
    start, t0 = [r.total for r in readers], time.monotonic()
    time.sleep(WINDOW)
    elapsed = time.monotonic() - t0
    return [(r.total - s) / elapsed for r, s in zip(readers, start)]


def window_rate(sample):
    """Bytes per second of sample() over WINDOW, after WARM_UP."""
    time.sleep(WARM_UP)
    start, t0 = sample(), time.monotonic()
    time.sleep(WINDOW)
    return (sample() - start) / (time.monotonic() - t0)


def assert_near(measured, configured, what):
    low, high = configured * (1 - TOLERANCE), configured * (1 + TOLERANCE)
    assert low <= measured <= high, (
        f"{what}: {measured / 1024:.0f} KiB/s, configured "
        f"{configured / 1024:.0f} KiB/s (allowed {low / 1024:.0f}-{high / 1024:.0f})")
