"""Test harness for the socks5d black-box suite: the daemon under test, loopback
target servers, a tiny DNS server and a raw SOCKS5 client. Standard library
only, so it runs under Debian's /usr/bin/python3 with python3-pytest."""
