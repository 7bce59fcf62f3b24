"""The documentation tells the truth about the code: every key the parser
accepts is documented in socks5d.conf(5) with its type, default and an
example that the parser accepts, and in the README's summary and the shipped
config; every key documented there is accepted; the access-log format in the
README and socks5d(8) is the one the daemon writes; the README's promise
about `make run`/`make test` as a non-root user holds. Both man pages
render."""
import csv
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field

from harness.daemon import REPO_ROOT, run_binary

CONFIG_C = REPO_ROOT / "src/config.c"
MANUAL = REPO_ROOT / "man/socks5d.conf.5"
README = REPO_ROOT / "README.md"


# -- the parser's table (src/config.c) ------------------------------------------

@dataclass
class Row:
    kind: str                   # the ROW_ macro's suffix: UINT, ENUM, RULE...
    default: str = None         # None for [rule NAME] keys
    lo: int = None
    hi: int = None
    names: list = field(default_factory=list)     # ENUM values
    family: str = None          # IP rows: AF_INET or AF_INET6
    required: bool = False      # RULE rows
    key: str = None             # RULE rows: the key's name


def header_constants():
    """#define NAME number from include/socks5d/*.h, for symbolic bounds."""
    values = {}
    for header in (REPO_ROOT / "include/socks5d").glob("*.h"):
        for name, value in re.findall(r"^#define\s+(\w+)\s+(\d+)\b",
                                      header.read_text(), re.M):
            values[name] = int(value)
    return values


def parser_rows():
    """(section, key) -> Row for every row of config_rows[]; [rule NAME]
    keys have section "rule"."""
    source = CONFIG_C.read_text()
    # A table may list its names through a header's macro of { "name", value }
    # pairs (EGRESS_SELECT_NAMES): expand those first.
    macros = {}
    for header in (REPO_ROOT / "include/socks5d").glob("*.h"):
        for name, body in re.findall(r"^#define\s+(\w+_NAMES)\s+((?:.*\\\n)*.*)$",
                                     header.read_text(), re.M):
            macros[name] = body
    enums = {name: re.findall(r'\{\s*"([\w-]+)"', re.sub(
        r"\b(\w+_NAMES)\b", lambda m: macros.get(m.group(1), m.group(1)), body))
        for name, body in re.findall(
            r"config_enum_name\s+(\w+)\[\]\s*=\s*\{(.*?)\n\};", source, re.S)}
    table = re.search(r"config_rows\[\]\s*=\s*\{(.*?)\n\};", source, re.S)
    assert table, "config_rows[] not found in src/config.c"
    constants = header_constants()

    def number(text):
        return int(text) if text.isdigit() else constants[text]

    rows = {}
    for kind, args in re.findall(r"ROW_(\w+)\(([^()]*)\)", " ".join(table.group(1).split())):
        a = next(csv.reader([args], skipinitialspace=True))
        if kind in ("RULE", "QUOTA"):
            rows[(kind.lower(), a[0])] = Row(kind, required=a[1] == "true", key=a[0])
            continue
        if kind == "UPSTREAM_URLS":
            rows[("upstream", a[0])] = Row("URLS", required=True)
            continue
        if kind == "UPSTREAM_UINT":
            rows[("upstream", a[0])] = Row("UINT", default=a[2], lo=number(a[3]),
                                           hi=number(a[4]))
            continue
        if kind in ("UPSTREAM_PATH", "UPSTREAM_BOOL"):
            rows[("upstream", a[0])] = Row(kind.split("_")[1], default=a[2])
            continue
        row = Row(kind, default=a[4] if kind == "LISTEN" else a[3])
        if kind == "UINT":
            row.lo, row.hi = number(a[4]), number(a[5])
        elif kind in ("ENUM", "ENUM_SET", "ENUM_SET_OPT"):
            row.names = enums[a[4]]
        elif kind == "IP":
            row.family = a[4]
        rows[(a[0], a[1])] = row
    assert len(rows) >= 20 and ("rule", "action") in rows, f"config table not parsed: {rows}"
    return rows


def parser_keys():
    return set(parser_rows())


# -- socks5d.conf(5) ------------------------------------------------------------

ALTERNATING = {".BR", ".RB", ".BI", ".IB", ".IR", ".RI"}


def roff_text(line):
    """The words a source line puts on the page, fonts dropped; None for a
    request that prints nothing (.br, .PP...)."""
    for escape, text in (("\\-", "-"), ("\\%", ""), ("\\(<=", "<="), ("\\&", "")):
        line = line.replace(escape, text)
    if not line.startswith("."):
        return line
    macro, _, rest = line.partition(" ")
    try:
        words = shlex.split(rest)
    except ValueError:          # an apostrophe is no quote to roff
        words = rest.split()
    if macro in (".B", ".I"):
        return " ".join(words)
    if macro in ALTERNATING:
        return "".join(words)
    return None


@dataclass
class Entry:
    text: str                   # the paragraph as plain text
    example: tuple = None       # (key, value) of its "Example:" line


def manual_entries():
    """(section, key) -> Entry for each key documented under a .SH [section]
    heading: a .TP paragraph whose tag line is .B key, up to the next
    paragraph or heading."""
    entries, section = {}, None
    lines = MANUAL.read_text().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        heading = re.match(r'^\.SH "?\[(\w+)(?: NAME)?\]"?$', line)
        if heading:
            section = heading.group(1)
        elif line.startswith(".SH"):
            section = None
        elif section and line == ".TP" and i + 1 < len(lines):
            tag = re.match(r"^\.B (\w+)$", lines[i + 1])
            if tag:
                body, i = [], i + 2
                while i < len(lines) and not re.match(r"^\.(TP|PP|SH|SS)\b", lines[i]):
                    body.append(lines[i])
                    i += 1
                entry = Entry(" ".join(t for t in map(roff_text, body) if t))
                for n, text in enumerate(body[:-1]):
                    example = re.match(r"^\.B (\w+) =(.*)$", body[n + 1])
                    if text == "Example:" and example:
                        entry.example = (example.group(1), example.group(2).strip())
                entries[(section, tag.group(1))] = entry
                continue
        i += 1
    return entries


def manual_keys():
    return set(manual_entries())


# The first sentence of a key's paragraph names its type, by table row kind.
TYPE_PHRASES = {
    "BOOL": r"Boolean\.",
    "STRING": r"(User|Group) name\.",
    "PATH": r"Path\b",
    "LISTEN": r"List of IP:port pairs\b",
    "HOSTPORT": r"One IP:port\b",
    "IP_PAIR": r"List of IP addresses\b",
    "PORTS": r"Port range\b",
    "DNS": r"List of name servers\b",
    "CIDRS": r"List of CIDRs\b",
    "RULE": r"(allow or deny\.|List of |user, session, random or round-robin,|direct, or the NAME|A rate, as|As \[limits\] rate_per|Boolean\.)",
    "EGRESS": r"List of IPv4 and IPv6 addresses and CIDRs\b",
    "VIA": r"direct, or the NAME of an \[upstream NAME\] section\.",
    "URLS": r"List of URLs\b",
    "RATE": r"A rate\b",
    "QUOTA": r"(List of user names|Size: |day, week, month)",
    "BYPASS": r"List of names and CIDRs\b",
}


def type_problem(row, text):
    """Why text does not start with the type row has, or None."""
    if row.kind == "UINT":
        m = re.match(r"(Number|Seconds), (\d+) to (\d+)\.", text)
        if not m:
            return "no 'Number, LO to HI.' or 'Seconds, LO to HI.' type"
        if (int(m.group(2)), int(m.group(3))) != (row.lo, row.hi):
            return f"range {m.group(2)} to {m.group(3)}, the parser's is {row.lo} to {row.hi}"
        return None
    if row.kind == "ENUM":
        m = re.match(r"([\w, -]+?)\.(\s|$)", text)
        names = set(re.split(r",\s*|\s+or\s+", m.group(1))) if m else set()
        if names != set(row.names):
            return f"type lists {sorted(names)}, the parser accepts {sorted(row.names)}"
        return None
    if row.kind in ("ENUM_SET", "ENUM_SET_OPT"):
        m = re.match(r"List of \w+: ([\w, ]+?)\.(\s|$)", text)
        names = set(re.split(r",\s*", m.group(1))) if m else set()
        if names != set(row.names):
            return f"type lists {sorted(names)}, the parser accepts {sorted(row.names)}"
        return None
    if row.kind == "IP":
        want = {"AF_INET": "IPv4", "AF_INET6": "IPv6"}[row.family]
        return None if text.startswith(f"{want} address") else f"no '{want} address' type"
    phrase = TYPE_PHRASES.get(row.kind)
    assert phrase, f"no type phrase for ROW_{row.kind}: add one to TYPE_PHRASES"
    return None if re.match(phrase, text) else f"no type matching /{phrase}/"


RULE_FALLBACKS = {"egress": "[outbound] egress",
                  "egress_select": "[outbound] egress_select",
                  "via": "[outbound] via",
                  "rate_up": "[limits] rate_up",
                  "rate_down": "[limits] rate_down",
                  "rate_per": "[limits] rate_per",
                  "intercept": "no"}


def default_problem(row, text):
    """Why the paragraph's 'Default: X.' is missing or not the parser's, or
    None."""
    m = re.search(r"Default: (.*?)\.(\s|$)", text)
    if not m:
        return "no 'Default:'"
    doc = m.group(1)
    if row.kind == "URLS":
        return None if doc == "none" and "Required" in text else \
            f"default '{doc}': a required key says 'Default: none' and 'Required'"
    if row.kind in ("RULE", "QUOTA"):
        # A rule's route keys fall back to [outbound]'s, not to "any".
        expected = RULE_FALLBACKS.get(row.key, "none" if row.required else
                                      "every user with a login" if row.kind == "QUOTA"
                                      else "any")
        if row.required and "Required" not in text:
            return "a required key not called Required"
        return None if doc == expected else f"default '{doc}', expected '{expected}'"
    if row.default == "":
        return None if doc.startswith("empty") else f"default '{doc}', the parser's is empty"
    return None if doc == row.default else f"default '{doc}', the parser's is '{row.default}'"


def test_every_parser_key_is_in_the_manual_and_back():
    parsed, documented = parser_keys(), manual_keys()
    assert parsed - documented == set(), "keys missing from socks5d.conf(5)"
    assert documented - parsed == set(), "socks5d.conf(5) documents unknown keys"


def test_every_key_has_type_default_and_example():
    """Every key has a type, a default and an example. Types, ranges,
    enum values and defaults must be the parser's own."""
    entries, problems = manual_entries(), []
    for (section, key), row in parser_rows().items():
        entry = entries.get((section, key))
        if entry is None:
            problems.append(f"[{section}] {key}: not documented")
            continue
        for problem in (type_problem(row, entry.text), default_problem(row, entry.text)):
            if problem:
                problems.append(f"[{section}] {key}: {problem}")
        if entry.example is None:
            problems.append(f"[{section}] {key}: no 'Example:' line followed by "
                            f"'.B {key} = ...'")
        elif entry.example[0] != key:
            problems.append(f"[{section}] {key}: the example sets {entry.example[0]}")
    assert problems == [], "socks5d.conf(5):\n" + "\n".join(problems)


def tls_files(directory):
    """A self-signed certificate, its key (mode 600) and the certificate
    again as a client CA, made with the openssl command."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                    "-subj", "/CN=doc-example", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True)
    key.chmod(0o600)
    return {("tls", "certificate"): str(cert), ("tls", "key"): str(key),
            ("tls", "client_ca"): str(cert)}


def intercept_files(directory):
    """An interception CA made by `socks5d ca create`, and a CA file for
    upstream_ca (the [tls] example certificate, which tls_files makes)."""
    cert, key = directory / "ca.pem", directory / "ca.key"
    result = run_binary(["ca", "create", str(cert), str(key)])
    assert result.returncode == 0, result.stderr
    return {("inspect", "ca_certificate"): str(cert), ("inspect", "ca_key"): str(key),
            ("inspect", "upstream_ca"): str(directory / "cert.pem")}


def test_manual_examples_make_a_valid_config(tmp_path, users_file):
    """All the examples together are a config `socks5d -t` accepts (the
    [rule NAME] ones in one rule). Files an example names need not exist
    here, so the keys that name files point at files that do."""
    files = {("auth", "users_file"): str(users_file), ("dns", "hosts_file"): "/etc/hosts",
             **tls_files(tmp_path), **intercept_files(tmp_path),
             # via names the [upstream NAME] the examples make.
             ("outbound", "via"): "doc-example", ("rule", "via"): "doc-example"}
    sections = {}
    for (section, key), entry in manual_entries().items():
        if entry.example:
            value = files.get((section, key), entry.example[1])
            name = (f"{section} doc-example" if section in ("rule", "upstream", "quota")
                    else section)
            sections.setdefault(name, []).append(f"{key} = {value}")
    text = "".join(f"[{name}]\n" + "\n".join(lines) + "\n\n" for name, lines in sections.items())
    path = tmp_path / "examples.conf"
    path.write_text(text)
    result = run_binary(["-t", "-c", str(path)])
    assert result.returncode == 0 and "config ok" in result.stdout, \
        f"{text}\n{result.stdout}{result.stderr}"


# -- the README and the shipped config ------------------------------------------

def test_readme_config_summary_lists_every_key():
    text = README.read_text()
    start = text.index("## Configuration summary")
    summary = text[start:text.index("\n## ", start + 1)]
    listed = set()
    for section, keys in re.findall(r"^\| (\w+)(?: NAME)? \| (.*) \|$", summary, re.M):
        listed |= {(section, key) for key in re.findall(r"`(\w+)`", keys)}
    assert parser_keys() - listed == set(), "keys missing from the README's summary"
    assert listed - parser_keys() == set(), "the README's summary lists unknown keys"


def test_shipped_config_mentions_every_key():
    text = (REPO_ROOT / "conf/socks5d.conf").read_text()
    present, section = set(), None
    for line in text.splitlines():
        line = line.strip().lstrip(";").strip()
        heading = re.match(r"^\[(\w+)(?: [\w.-]+)?\]$", line)
        if heading:
            section = heading.group(1)
            continue
        key = re.match(r"^(\w+)\s*=", line)
        if key and section:
            present.add((section, key.group(1)))
    missing = parser_keys() - present
    assert missing == set(), f"conf/socks5d.conf does not show {sorted(missing)}"
    assert run_binary(["-t", "-c", str(REPO_ROOT / "conf/socks5d.conf")]).returncode == 0


# -- the access-log line -------------------------------------------------------

def access_log_fields():
    """The access-log line's key=value fields in the order the daemon writes
    them: session.c's format, the UDP association's fields (udp.c, with the
    drop reasons of metrics.c), then session.c's rule, via and TLS fields."""
    session = (REPO_ROOT / "src/session.c").read_text()
    fmt = re.search(r'log_info\("session (.*?)\);', session, re.S)
    assert fmt, "the access-log format was not found in src/session.c"
    fields = re.findall(r"(\w+)=%", fmt.group(1))
    udp = (REPO_ROOT / "src/udp.c").read_text()
    fields += re.findall(r'udp_append_field\([^;]*?"",\s*"(\w+)"', udp)
    assert '"drop_",' in udp, "udp.c no longer writes drop_ fields"
    metrics = (REPO_ROOT / "src/metrics.c").read_text()
    fields += ["drop_" + name for name in re.findall(
        r'\[METRICS_UDP_DROP_\w+\]\s*=\s*"(\w+)"', metrics)]
    assert '" rule=%s"' in session, "session.c no longer writes rule="
    fields.append("rule")
    assert '" via=%s"' in session, "session.c no longer writes via="
    fields.append("via")
    for tls_field in ('" tls=%s"', '" tls_sni=%s"', '" resumed=yes"'):
        assert tls_field in session, f"session.c no longer writes {tls_field}"
        fields.append(re.search(r"(\w+)=", tls_field).group(1))
    inspect = (REPO_ROOT / "src/inspect.c").read_text()
    for sniff_field in ('" sni=%s"', '" host=%s"', '" alpn=%s"', '" ech=1"',
                        '" sni_mismatch=1"'):
        assert sniff_field in inspect, f"inspect.c no longer writes {sniff_field}"
        fields.append(re.search(r"(\w+)=", sniff_field).group(1))
    intercept = (REPO_ROOT / "src/intercept.c").read_text()
    assert '" intercept=%s"' in intercept, "intercept.c no longer writes intercept="
    fields.append("intercept")
    assert fields[:3] == ["client", "user", "proto"] and "drop_stranger" in fields, fields
    return fields


def documented_format(text, end):
    """The key=value names of the format block that starts at
    'session client=ADDR' and runs to end."""
    start = text.index("session client=ADDR")
    return re.findall(r"(\w+)=", text[start:text.index(end, start)])


def readme_log_entries():
    """Field names in the first column of the README's access-log table."""
    text = README.read_text()
    start = text.index("## Access log")
    section = text[start:text.index("\n## ", start + 1)]
    names = set()
    for cell in re.findall(r"^\| ([^|]+?) \|", section, re.M):
        names |= {name.strip(" `") for name in cell.split(",")}
    return names


def manual_log_entries():
    """Field names tagging the .TP paragraphs of socks5d(8)'s LOGGING."""
    lines = (REPO_ROOT / "man/socks5d.8").read_text().splitlines()
    start = lines.index(".SH LOGGING")
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith(".SH"))
    names = set()
    for i in range(start, end - 1):
        if lines[i] == ".TP":
            names |= {name.strip() for name in roff_text(lines[i + 1]).split(",")}
    return names


def test_access_log_format_is_documented_as_written():
    """Both the README and socks5d(8) show the daemon's fields, in its order,
    and explain each one."""
    fields = access_log_fields()
    assert documented_format(README.read_text(), "```") == fields, "README.md"
    assert documented_format((REPO_ROOT / "man/socks5d.8").read_text(), ".fi") == fields, \
        "socks5d(8)"
    assert [f for f in fields if f not in readme_log_entries()] == [], "README.md"
    assert [f for f in fields if f not in manual_log_entries()] == [], "socks5d(8)"


# -- the README's `make run`/`make test` as a non-root user ---------------------

def make_variable(*names):
    result = subprocess.run(
        ["make", "-s", "--no-print-directory", "-C", str(REPO_ROOT),
         "--eval", "print-vars: ; @echo " + " ".join(f"$({n})" for n in names), "print-vars"],
        capture_output=True, text=True, timeout=60, check=True,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    return result.stdout.split()


def run_deps_as_user(bin_dir, target, installed, with_node):
    """`make TARGET` as uid 1000 on a system with only `installed` Debian
    packages, and node/npm on PATH or not; bin_dir (new) gets the stand-ins
    for id, dpkg-query, node and npm, and is all of PATH. Returns (exit
    status, stdout)."""
    bin_dir.mkdir()
    (bin_dir / "grep").symlink_to(shutil.which("grep"))
    stubs = {"id": "echo 1000",
             # dpkg-query -W -f='${Status}' PACKAGE
             "dpkg-query": 'for p in $INSTALLED; do [ "$p" = "$3" ] && '
                           "{ printf 'install ok installed'; exit 0; }; done; exit 1"}
    if with_node:
        stubs.update(node="exit 0", npm="exit 0")
    for name, body in stubs.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    result = subprocess.run(
        [shutil.which("make"), "-s", "--no-print-directory", "-C", str(REPO_ROOT), target],
        capture_output=True, text=True, timeout=60,
        env={"PATH": str(bin_dir), "INSTALLED": " ".join(installed)})
    return result.returncode, result.stdout


def test_non_root_make_prints_one_complete_apt_get_line(tmp_path):
    """As any other user, `make run` and `make test` print the apt-get line to
    run and stop (README). That line names everything missing, nodejs and npm
    included, so one round as root is enough."""
    build, test = make_variable("BUILD_PKGS"), make_variable("TEST_PKGS")
    prefix = "missing packages; as root run: apt-get install -y "
    cases = [
        ("deps", [], False, build),
        ("deps-test", [], False, build + test + ["nodejs", "npm"]),
        ("deps-test", [], True, build + test),
        ("deps-test", build + test, False, ["nodejs", "npm"]),
    ]
    for n, (target, installed, with_node, missing) in enumerate(cases):
        status, out = run_deps_as_user(tmp_path / f"bin{n}", target, installed, with_node)
        assert status != 0 and out == prefix + " ".join(missing) + "\n", \
            (target, installed, with_node, out)


# -- rendering -------------------------------------------------------------------

def test_man_pages_render_without_warnings():
    for page in ("man/socks5d.8", "man/socks5d.conf.5"):
        result = subprocess.run(["man", "--warnings", "-l", "-P", "cat", page],
                                cwd=str(REPO_ROOT), capture_output=True, text=True,
                                timeout=60, env={"MANWIDTH": "80", "PATH": "/usr/bin:/bin"})
        assert result.returncode == 0, result.stderr
        assert result.stderr.strip() == "", f"{page}: {result.stderr}"
        assert "SYNOPSIS" in result.stdout or "DESCRIPTION" in result.stdout
