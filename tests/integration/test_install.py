"""make install / uninstall into a DESTDIR, and the systemd units it installs:
systemd-analyze verify passes with no warning, and the hardening the service
promises is really in the unit."""
import os
import stat
import subprocess

from harness.daemon import REPO_ROOT, run_binary

PREFIX = "/usr/local"
INSTALLED = {
    "usr/local/sbin/socks5d": 0o755,
    "usr/local/share/man/man8/socks5d.8": 0o644,
    "usr/local/share/man/man5/socks5d.conf.5": 0o644,
    "usr/local/etc/socks5d/socks5d.conf": 0o644,
    "usr/local/lib/systemd/system/socks5d.service": 0o644,
    "usr/local/lib/systemd/system/socks5d.socket": 0o644,
    "usr/local/lib/sysusers.d/socks5d.conf": 0o644,
}


def make(target, destdir):
    result = subprocess.run(["make", "--no-print-directory", "-C", str(REPO_ROOT), target,
                             f"DESTDIR={destdir}", f"PREFIX={PREFIX}"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def installed_files(destdir):
    found = {}
    for root, _dirs, files in os.walk(destdir):
        for name in files:
            path = os.path.join(root, name)
            found[os.path.relpath(path, destdir)] = stat.S_IMODE(os.stat(path).st_mode)
    return found


def test_install_uninstall_round_trip(tmp_path):
    dest = tmp_path / "root"
    make("install", dest)
    assert installed_files(dest) == INSTALLED
    conf = dest / "usr/local/etc/socks5d/socks5d.conf"
    assert "users_file = /usr/local/etc/socks5d/users" in conf.read_text()
    unit = (dest / "usr/local/lib/systemd/system/socks5d.service").read_text()
    assert "ExecStart=/usr/local/sbin/socks5d -c /usr/local/etc/socks5d/socks5d.conf" in unit
    assert "@SBINDIR@" not in unit and "@SYSCONFDIR@" not in unit
    result = run_binary(["-t", "-c", str(conf)])
    assert result.returncode == 0 and result.stdout == "config ok\n", result.stderr
    make("uninstall", dest)
    assert installed_files(dest) == {}


def test_install_never_overwrites_an_edited_config(tmp_path):
    dest = tmp_path / "root"
    make("install", dest)
    conf = dest / "usr/local/etc/socks5d/socks5d.conf"
    edited = conf.read_text() + "\n; edited by the operator\n"
    conf.write_text(edited)
    out = make("install", dest)
    assert "keeping existing" in out
    assert conf.read_text() == edited
    out = make("uninstall", dest)
    assert "keeping modified" in out
    assert installed_files(dest) == {"usr/local/etc/socks5d/socks5d.conf": 0o644}


def unit_lines(text):
    return {line.strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")}


def test_units_verify_and_are_hardened(tmp_path):
    dest = tmp_path / "root"
    make("install", dest)
    unitdir = dest / "usr/local/lib/systemd/system"
    service = unitdir / "socks5d.service"
    # Point ExecStart at the binary inside DESTDIR, so verify can check it is
    # executable; everything else is checked exactly as installed.
    text = service.read_text().replace("/usr/local/sbin/", f"{dest}/usr/local/sbin/")
    service.write_text(text)
    env = dict(os.environ, MANPATH=str(dest / "usr/local/share/man"))
    result = subprocess.run(["systemd-analyze", "verify", str(service),
                             str(unitdir / "socks5d.socket")],
                            capture_output=True, text=True, timeout=60, env=env,
                            cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", \
        f"systemd-analyze verify complained:\n{result.stdout}{result.stderr}"

    lines = unit_lines(text)
    for required in ("Type=notify", "ExecReload=/bin/kill -HUP $MAINPID",
                     "Restart=on-failure", "LimitNOFILE=65536", "User=socks5d",
                     "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes",
                     "PrivateTmp=yes", "PrivateDevices=yes",
                     "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
                     "CapabilityBoundingSet=", "WatchdogSec=30s"):
        assert required in lines, f"{required} missing from socks5d.service"
    # io_uring is on by default and @system-service leaves it out: the unit
    # must let the relay's ring through, or every service falls back.
    assert "SystemCallFilter=@system-service" in lines
    assert "SystemCallFilter=io_uring_setup io_uring_enter io_uring_register" in lines
    socket_lines = unit_lines((unitdir / "socks5d.socket").read_text())
    assert "ListenStream=127.0.0.1:1080" in socket_lines
    assert "ListenStream=[::1]:1080" in socket_lines
    sysusers = (dest / "usr/local/lib/sysusers.d/socks5d.conf").read_text()
    assert any(line.startswith("u socks5d ") for line in sysusers.splitlines())
