"""The documentation tells the truth about the config: every key the parser
accepts is documented in socks5d.conf(5) and the shipped config, and every
key documented there is accepted. Both man pages render."""
import re
import subprocess

from harness.daemon import REPO_ROOT, run_binary

# A config table row: ROW_<TYPE>("section", "key", ...), or ROW_RULE("key",
# ...) for the keys of [rule NAME] sections.
ROW_RE = re.compile(r'ROW_(?!RULE)\w+\(\s*"(\w+)",\s*"(\w+)"')
RULE_ROW_RE = re.compile(r'ROW_RULE\(\s*"(\w+)"')


def parser_keys():
    source = (REPO_ROOT / "src/config.c").read_text()
    keys = set(ROW_RE.findall(source))
    keys |= {("rule", key) for key in RULE_ROW_RE.findall(source)}
    assert len(keys) >= 20 and ("rule", "action") in keys, f"config table not found: {keys}"
    return keys


def manual_keys():
    """(section, key) for each key documented under a .SH [section] heading:
    a .TP paragraph whose tag line is .B key."""
    keys, section = set(), None
    lines = (REPO_ROOT / "man/socks5d.conf.5").read_text().splitlines()
    for i, line in enumerate(lines):
        heading = re.match(r'^\.SH "?\[(\w+)(?: NAME)?\]"?$', line)
        if heading:
            section = heading.group(1)
        elif line.startswith(".SH"):
            section = None
        elif section and line == ".TP" and i + 1 < len(lines):
            tag = re.match(r"^\.B (\w+)$", lines[i + 1])
            if tag:
                keys.add((section, tag.group(1)))
    return keys


def test_every_parser_key_is_in_the_manual_and_back():
    parsed, documented = parser_keys(), manual_keys()
    assert parsed - documented == set(), "keys missing from socks5d.conf(5)"
    assert documented - parsed == set(), "socks5d.conf(5) documents unknown keys"


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


def test_man_pages_render_without_warnings():
    for page in ("man/socks5d.8", "man/socks5d.conf.5"):
        result = subprocess.run(["man", "--warnings", "-l", "-P", "cat", page],
                                cwd=str(REPO_ROOT), capture_output=True, text=True,
                                timeout=60, env={"MANWIDTH": "80", "PATH": "/usr/bin:/bin"})
        assert result.returncode == 0, result.stderr
        assert result.stderr.strip() == "", f"{page}: {result.stderr}"
        assert "SYNOPSIS" in result.stdout or "DESCRIPTION" in result.stdout
