"""A tiny authoritative DNS server over UDP on loopback, for the daemon's
[dns] servers setting.

It answers A and AAAA queries from a dict of test names, NXDOMAIN for any
other name, and NOERROR with no answers (NODATA) for a known name without
records of the asked type. Modes let tests make it misbehave: "drop" never
answers (to exercise resolver timeouts), "servfail" answers SERVFAIL, and
the GARBAGE_MODES answer malformed packets (see malformed_response).
Every query is recorded as (name, type) so tests can tell whether the
daemon asked at all."""
import random
import socket
import struct
import threading

TYPE_A = 1
TYPE_PTR = 12
TYPE_AAAA = 28
CLASS_IN = 1

RCODE_NOERROR = 0
RCODE_FORMERR = 1
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3
RCODE_NOTIMP = 4

TYPE_NAMES = {TYPE_A: "A", TYPE_AAAA: "AAAA", TYPE_PTR: "PTR"}

DEFAULT_RECORDS = {
    "v4.test": ["127.0.0.1"],
    "v6.test": ["::1"],
    "both.test": ["127.0.0.1", "::1"],
    # Reverse names answer PTR queries ("ptr:" values).
    "7.0.0.127.in-addr.arpa": ["ptr:seven.test"],
}


def encode_name(name):
    """A domain name in DNS wire form."""
    return b"".join(bytes([len(label)]) + label.encode()
                    for label in name.split(".") if label) + b"\x00"


# Malformed answers, each aimed at one part of a resolver's parser.
GARBAGE_MODES = (
    "random",               # random bytes of random length
    "short-header",         # the query's ID and 3 more bytes: no full header
    "wrong-id",             # a correct answer to another query ID
    "wrong-question",       # a correct answer for another name
    "bad-rdlength",         # an A record claiming 200 bytes of RDATA, 4 present
    "compression-loop",     # an owner name that is a pointer to itself
    "pointer-forward",      # a compression pointer past the end of the packet
    "ancount-too-high",     # ANCOUNT 5 with one answer present
    "label-overrun",        # a label length running past the end
)


class DnsFormatError(Exception):
    pass


def parse_question(packet):
    """Return (id, flags, qname_lower, qtype, qclass, question_end)."""
    if len(packet) < 12:
        raise DnsFormatError("short header")
    qid, flags, qdcount = struct.unpack("!HHH", packet[:6])
    if qdcount != 1:
        raise DnsFormatError("qdcount != 1")
    labels = []
    pos = 12
    while True:
        if pos >= len(packet):
            raise DnsFormatError("truncated name")
        length = packet[pos]
        pos += 1
        if length == 0:
            break
        if length & 0xC0:
            # Queries never need compression; refusing it keeps this simple.
            raise DnsFormatError("compressed question name")
        labels.append(packet[pos:pos + length])
        pos += length
    if pos + 4 > len(packet):
        raise DnsFormatError("truncated question")
    qtype, qclass = struct.unpack("!HH", packet[pos:pos + 4])
    name = b".".join(labels).decode("ascii", "replace").lower()
    return qid, flags, name, qtype, qclass, pos + 4


def build_response(query, qid, flags, rcode, question_end, answers):
    """A response echoing the question, with answers as (type, rdata) pairs.

    Answer owner names are a compression pointer to the question name at
    offset 12, as real servers do."""
    opcode = (flags >> 11) & 0xF
    rd = flags & 0x0100
    out_flags = 0x8000 | (opcode << 11) | 0x0400 | rd | 0x0080 | rcode
    question = query[12:question_end] if question_end else b""
    header = struct.pack("!HHHHHH", qid, out_flags, 1 if question else 0,
                         len(answers), 0, 0)
    body = bytearray(question)
    for rtype, rdata in answers:
        body += struct.pack("!HHHIH", 0xC00C, rtype, CLASS_IN, 30, len(rdata))
        body += rdata
    return header + bytes(body)


def malformed_response(mode, query, qid, flags, question_end, rng):
    """A broken response to query for one of GARBAGE_MODES."""
    a_record = socket.inet_pton(socket.AF_INET, "127.0.0.1")
    good = build_response(query, qid, flags, RCODE_NOERROR, question_end,
                          [(TYPE_A, a_record)])
    header = bytearray(good[:12])
    answer_at = question_end        # header and question are echoed first
    if mode == "random":
        return rng.randbytes(rng.randrange(1, 600))
    if mode == "short-header":
        return good[:2] + rng.randbytes(3)
    if mode == "wrong-id":
        return struct.pack("!H", qid ^ 0x5A5A) + good[2:]
    if mode == "wrong-question":
        other = bytes([5]) + b"other" + bytes([4]) + b"test" + b"\x00"
        return good[:12] + other + query[question_end - 4:question_end] + good[answer_at:]
    if mode == "bad-rdlength":
        return good[:answer_at + 10] + struct.pack("!H", 200) + a_record
    if mode == "compression-loop":
        owner = 0xC000 | answer_at
        return good[:answer_at] + struct.pack("!H", owner) + good[answer_at + 2:]
    if mode == "pointer-forward":
        return good[:answer_at] + struct.pack("!H", 0xC000 | 0x3FFF) + good[answer_at + 2:]
    if mode == "ancount-too-high":
        header[6:8] = struct.pack("!H", 5)
        return bytes(header) + good[12:]
    if mode == "label-overrun":
        return bytes(header) + bytes([63]) + b"abc"
    raise ValueError(f"unknown DNS garbage mode {mode}")


class DnsServer:
    def __init__(self, records=None, host="127.0.0.1"):
        self.records = {k.lower(): list(v) for k, v in (records or DEFAULT_RECORDS).items()}
        self.mode = "answer"        # "answer" | "drop" | "servfail" | GARBAGE_MODES
        self.rng = random.Random(1928)
        self.delay = 0.0            # seconds to wait before answering
        self.queries = []           # (name, "A"/"AAAA"/number)
        self._lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.1)
        self.host, self.port = self.sock.getsockname()[:2]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def address(self):
        """The [dns] servers value for this server."""
        return f"{self.host}:{self.port}"

    def queried_names(self):
        with self._lock:
            return [name for name, _ in self.queries]

    def _answer(self, name, qtype):
        answers = []
        for value in self.records.get(name, []):
            if qtype == TYPE_A and ":" not in value:
                answers.append((TYPE_A, socket.inet_pton(socket.AF_INET, value)))
            elif value.startswith("ptr:"):
                if qtype == TYPE_PTR:
                    answers.append((TYPE_PTR, encode_name(value[4:])))
            elif qtype == TYPE_AAAA and ":" in value:
                answers.append((TYPE_AAAA, socket.inet_pton(socket.AF_INET6, value)))
        return answers

    def handle(self, packet):
        """The response bytes for one query packet, or None to stay silent."""
        try:
            qid, flags, name, qtype, qclass, end = parse_question(packet)
        except DnsFormatError:
            if len(packet) < 12:
                return None
            qid, flags = struct.unpack("!HH", packet[:4])
            return build_response(packet, qid, flags, RCODE_FORMERR, 0, [])
        if flags & 0x8000:
            return None                      # a response, not a query
        with self._lock:
            self.queries.append((name, TYPE_NAMES.get(qtype, qtype)))
        if self.mode == "drop":
            return None
        if self.mode == "servfail":
            return build_response(packet, qid, flags, RCODE_SERVFAIL, end, [])
        if self.mode in GARBAGE_MODES:
            return malformed_response(self.mode, packet, qid, flags, end, self.rng)
        if (flags >> 11) & 0xF != 0 or qclass != CLASS_IN:
            return build_response(packet, qid, flags, RCODE_NOTIMP, end, [])
        if name not in self.records:
            return build_response(packet, qid, flags, RCODE_NXDOMAIN, end, [])
        return build_response(packet, qid, flags, RCODE_NOERROR, end,
                              self._answer(name, qtype))

    def _serve(self):
        while not self._stop.is_set():
            try:
                packet, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            response = self.handle(packet)
            if response is None:
                continue
            # Waiting on the stop event lets close() end a delay at once.
            if self.delay and self._stop.wait(self.delay):
                return
            try:
                self.sock.sendto(response, peer)
            except OSError:
                pass

    def close(self):
        self._stop.set()
        # An empty datagram wakes the blocked recvfrom() at once.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as waker:
            waker.sendto(b"", (self.host, self.port))
        self._thread.join(timeout=2.0)
        self.sock.close()
