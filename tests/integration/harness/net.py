"""Loopback networking helpers: free ports, listening checks, bounded reads.

Everything here stays on 127.0.0.0/8 and ::1; no test may touch another
address, so helpers only ever accept those."""
import errno
import ipaddress
import os
import socket
import time

LOOPBACK4 = "127.0.0.1"
LOOPBACK6 = "::1"

# Under valgrind (SOCKS5D_VALGRIND=1) the daemon runs 10-50 times slower:
# IO_TIMEOUT, wait_until and peer_closed stretch their bounds by this.
VALGRIND = os.environ.get("SOCKS5D_VALGRIND", "") not in ("", "0")
TIME_SCALE = float(os.environ.get("SOCKS5D_TIME_SCALE", "10" if VALGRIND else "1"))

# Default bound for any single blocking socket call in the suite.
IO_TIMEOUT = 10.0 * TIME_SCALE


def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def assert_loopback(host):
    """Refuse to build a test that would leave the machine."""
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"test address {host} is not loopback")


def format_hostport(host, port):
    """"127.0.0.1:80" or "[::1]:80", the form the daemon uses in config and logs."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def free_port(hosts=(LOOPBACK4,), kinds=(socket.SOCK_STREAM,)):
    """A port that is free on every host in hosts, for every socket type in
    kinds (SOCK_STREAM, SOCK_DGRAM), right now.

    Bind port 0 on the first host and kind, then check the same port binds
    for the others; release everything before returning. Racy by nature:
    callers that start a server on the port should retry on EADDRINUSE."""
    for _ in range(50):
        holders = []
        try:
            first = socket.socket(family_of(hosts[0]), kinds[0])
            holders.append(first)
            first.bind((hosts[0], 0))
            port = first.getsockname()[1]
            for host in hosts:
                for kind in kinds:
                    if host == hosts[0] and kind == kinds[0]:
                        continue
                    other = socket.socket(family_of(host), kind)
                    holders.append(other)
                    other.bind((host, port))
            return port
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
        finally:
            for sock in holders:
                sock.close()
    raise RuntimeError(f"no common free port on {hosts}")


# Valgrind keeps descriptors of its own (its log, the client's executable,
# any file it opens later) just below the soft RLIMIT_NOFILE: it reserves 12
# there in valgrind 3.x, more room is left here. They are not the daemon's,
# which never gets that high in a test run under valgrind.
VALGRIND_FD_RESERVE = 64


def _valgrind_fd_floor(pid):
    """The lowest descriptor number valgrind may use in pid, or None."""
    if not VALGRIND:
        return None
    with open(f"/proc/{pid}/limits") as fh:
        for line in fh:
            if line.startswith("Max open files"):
                return int(line.split()[3]) - VALGRIND_FD_RESERVE
    return None


def non_pipe_fds(pid):
    """How many descriptors process pid holds that are not pipes, from
    /proc/PID/fd: sockets, anonymous inodes (eventfd, epoll, timerfd) and
    files, so a leak of any of them shows. Pipes are left out because the
    relay pools its splice pipes and keeps them open between sessions;
    under valgrind, so are valgrind's own descriptors, which come and go."""
    floor = _valgrind_fd_floor(pid)
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        if floor is not None and int(fd) >= floor:
            continue
        try:
            if not os.readlink(f"/proc/{pid}/fd/{fd}").startswith("pipe:"):
                count += 1
        except OSError:
            pass            # closed while we looked
    return count


def settled_fds(daemon):
    """non_pipe_fds of a daemon that has finished starting, for a baseline.
    It listens (all Daemon.start waits for) before it sets up the resolver,
    which reads /etc/resolv.conf: a count taken in between may include that
    file, and under valgrind the window is wide. "socks5d ready" comes
    after every descriptor the daemon keeps is open."""
    daemon.wait_log(r"socks5d ready")
    return non_pipe_fds(daemon.proc.pid)


def closed_port(host=LOOPBACK4):
    """A socket bound to a port but not listening: connecting to it is refused
    (RST) for as long as the caller keeps the socket open, so nobody else can
    grab the port in between. Returns (socket, port)."""
    sock = socket.socket(family_of(host), socket.SOCK_STREAM)
    sock.bind((host, 0))
    return sock, sock.getsockname()[1]


def _proc_listening_ports():
    """Ports in LISTEN state from /proc/net/tcp{,6}, or None if unreadable."""
    ports = set()
    found_any = False
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as fh:
                lines = fh.readlines()[1:]
        except OSError:
            continue
        found_any = True
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == "0A":
                local = fields[1]
                addr_hex, port_hex = local.rsplit(":", 1)
                ports.add((addr_hex, int(port_hex, 16)))
    return ports if found_any else None


def _proc_addr_hex(host):
    """The way /proc/net/tcp{,6} spells a loopback address (little-endian words)."""
    packed = socket.inet_pton(family_of(host), host)
    words = [packed[i:i + 4] for i in range(0, len(packed), 4)]
    return "".join(word[::-1].hex().upper() for word in words)


def is_listening(host, port):
    """True when something listens on host:port.

    Reads /proc rather than connecting, so that waiting for the daemon does not
    create sessions (and access-log lines) of its own."""
    ports = _proc_listening_ports()
    if ports is not None:
        return (_proc_addr_hex(host), port) in ports
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(predicate, timeout, interval=0.02, what="condition"):
    """Poll predicate until it returns a truthy value; raise on timeout."""
    timeout *= TIME_SCALE
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def recv_exact(sock, count):
    """Read exactly count bytes or raise EOFError (the socket's timeout applies)."""
    chunks = []
    remaining = count
    while remaining:
        chunk = sock.recv(min(remaining, 65536))
        if not chunk:
            got = count - remaining
            raise EOFError(f"peer closed after {got} of {count} bytes")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def send_fin_and_drain(sock, data, timeout=5):
    """Send data, half-close, and read what comes back until the peer's
    FIN (within timeout per read)."""
    sock.sendall(data)
    sock.shutdown(socket.SHUT_WR)
    sock.settimeout(timeout)
    return recv_until_eof(sock)


def recv_until_eof(sock, limit=64 * 1024 * 1024, hasher=None):
    """Read until EOF; return the bytes (or, with hasher, only the count).

    limit bounds memory and time if the peer never stops sending."""
    chunks = []
    total = 0
    while True:
        chunk = sock.recv(262144)
        if not chunk:
            break
        total += len(chunk)
        if total > limit:
            raise AssertionError(f"peer sent more than {limit} bytes")
        if hasher is not None:
            hasher.update(chunk)
        else:
            chunks.append(chunk)
    return total if hasher is not None else b"".join(chunks)


def peer_closed(sock, timeout=3.0):
    """Wait for the peer to close: True on EOF or reset, False if it stays open.

    Any data that arrives first is drained and ignored; callers that care
    about what arrived read it before calling this."""
    deadline = time.monotonic() + timeout * TIME_SCALE
    old_timeout = sock.gettimeout()
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            sock.settimeout(left)
            try:
                if not sock.recv(65536):
                    return True
            except socket.timeout:
                return False
            except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
                return True
    finally:
        sock.settimeout(old_timeout)
