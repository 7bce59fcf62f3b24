"""Other proxies on loopback, for socks5d to chain through: microsocks
(SOCKS5, optional login), Dante (SOCKS5, no login: its password method
checks system users) and tinyproxy (HTTP CONNECT, optional Basic login).
Each is a context manager that starts the server on a free port, waits
until it listens, and stops it; .address is its (host, port)."""
import shutil
import signal
import subprocess
import time

from .net import LOOPBACK4, free_port, is_listening

MICROSOCKS = shutil.which("microsocks") or "/usr/bin/microsocks"
DANTED = shutil.which("danted") or "/usr/sbin/danted"
TINYPROXY = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"


class Upstream:
    def __init__(self, workdir, name):
        self.workdir = workdir
        self.name = name
        self.port = free_port((LOOPBACK4,))
        self.proc = None

    @property
    def address(self):
        return (LOOPBACK4, self.port)

    def argv(self):
        raise NotImplementedError

    def start(self):
        log = open(self.workdir / f"{self.name}.log", "w")
        self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 10
        while not is_listening(LOOPBACK4, self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start: "
                                   + (self.workdir / f"{self.name}.log").read_text())
            time.sleep(0.02)
        return self

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        import os
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class Microsocks(Upstream):
    def __init__(self, workdir, user=None, password=None):
        super().__init__(workdir, "microsocks")
        self.user, self.password = user, password

    def argv(self):
        argv = [MICROSOCKS, "-i", LOOPBACK4, "-p", str(self.port)]
        if self.user:
            argv += ["-u", self.user, "-P", self.password]
        return argv


class Dante(Upstream):
    def __init__(self, workdir):
        super().__init__(workdir, "danted")

    def argv(self):
        conf = self.workdir / "danted.conf"
        conf.write_text(f"""logoutput: stderr
internal: {LOOPBACK4} port = {self.port}
external: {LOOPBACK4}
clientmethod: none
socksmethod: none
user.privileged: root
user.unprivileged: nobody
client pass {{
\tfrom: 127.0.0.0/8 to: 0.0.0.0/0
\tlog: error
}}
socks pass {{
\tfrom: 0.0.0.0/0 to: 0.0.0.0/0
\tcommand: connect bind bindreply udpassociate udpreply
\tlog: error
}}
""")
        return [DANTED, "-f", str(conf), "-p", str(self.workdir / "danted.pid")]


class Tinyproxy(Upstream):
    """No ConnectPort line: CONNECT to any port (the packaged config
    allows 443 and 563 only)."""

    def __init__(self, workdir, user=None, password=None):
        super().__init__(workdir, "tinyproxy")
        self.user, self.password = user, password

    def argv(self):
        conf = self.workdir / "tinyproxy.conf"
        lines = [f"Port {self.port}", f"Listen {LOOPBACK4}", "Timeout 60",
                 "MaxClients 100", "LogLevel Info", "DisableViaHeader Yes",
                 "User nobody", "Group nogroup"]
        if self.user:
            lines.append(f"BasicAuth {self.user} {self.password}")
        conf.write_text("\n".join(lines) + "\n")
        return [TINYPROXY, "-d", "-c", str(conf)]
