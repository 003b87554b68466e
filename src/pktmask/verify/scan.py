"""The needles of the leak audit: gathered from ORIGINAL, searched for in SANITIZED.

``gather(ORIGINAL)`` is the audit's first pass. With the audit's own dissector (``fields``)
it collects what must not survive sanitizing: the addresses of every pseudonym field and of
DNS answers, DNS names, HTTP values and long printable strings of the bytes the policy
zeroes (each set bounded so memory does not grow with the file). The same pass feeds every
TCP segment to the stream model, notes which fragmented datagrams are complete and reassembles
fragmented DNS datagrams (``fragments``: their names and addresses are needles too).

``Searcher.frame`` looks for the needles in the areas of a SANITIZED frame that are not
header fields: a find inside TLS structure the stream model keeps, as the original bytes in
place, is kept by policy; anywhere else (kept HTTP bytes, TLS host names: SNI and certificate
names are pseudonymized, docs/policy.md) it is a leak. Names that are only a public suffix or special-use,
or too short to tell from their pseudonym, are not needles (``names``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pktmask.capture.formats import Reader, open_reader
from pktmask.errors import InputError
from pktmask.verify.addresses import IP, MAC, AddressBook, show
from pktmask.verify.dns import read_message, to_wire
from pktmask.verify.fields import Walker
from pktmask.verify.findings import Findings
from pktmask.verify.fragments import Reassembler
from pktmask.verify.labels import ADDR4, ADDR6, OTHER, SIZES, STREAM, special_v4, special_v6
from pktmask.verify.labels import MAC as MAC_FIELD
from pktmask.verify.names import name_worth_searching
from pktmask.verify.needles import NeedleIndex, window_keys
from pktmask.verify.payload import http_values, is_blank, printable_pieces, tcp_dns, udp_dns
from pktmask.verify.streams import StreamModel

MAX_VALUES = {"dns": 20_000, "http": 20_000, "strings": 20_000}
MIN_NAME = 4  # shorter DNS names ("lan", "com") are too common to mean anything
# Name bytes a real name uses (mDNS instance names have spaces and UTF-8); control bytes mean
# the "message" was something else on a DNS port, and a needle of them would match zeroed bytes.
_NAME = re.compile(rb"[\x20-\x7e\x80-\xff]+")
_HOST = re.compile(rb"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?")
TEXT = "payload (text)"
DNS_WIRE = "payload (DNS wire format)"
DNS_MESSAGE = "DNS message"
ADDRESS_KINDS = {ADDR4: IP, ADDR6: IP, MAC_FIELD: MAC}
POLICY_CATEGORIES = ("dns", "http")


def special_literal(text: bytes) -> bool:
    """Is ``text`` (an HTTP host, brackets allowed) an IP literal of an address the policy keeps?"""
    try:
        addr = ipaddress.ip_address(text.strip(b"[]").decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        return False
    return special_v4(addr.packed) if addr.version == 4 else special_v6(addr.packed)


def host_kept(value: bytes) -> bool:
    """Is an HTTP value a hostname (with an optional port) that is only a public suffix or a
    special-use name (``localhost:8080``), or too short to tell from its pseudonym?"""
    host = value.rsplit(b":", 1)[0] if value.count(b":") == 1 else value
    if special_literal(host):
        return True  # 127.0.0.1, ::1: addresses the policy keeps, also as a Host value
    if not _HOST.fullmatch(host):
        return False
    return not name_worth_searching(host.rstrip(b"."))


def display(value: bytes) -> str:
    """A found value as report text (non-ASCII bytes escaped, never decoded wrongly)."""
    return value.decode("ascii", "backslashreplace")


@contextmanager
def open_capture(path: str | Path) -> Iterator[Reader]:
    """Open a capture for streaming; InputError if it cannot be opened or is not a capture."""
    name = str(path)
    try:
        f = open(path, "rb", buffering=0)
    except OSError as exc:
        raise InputError(f"cannot open: {exc.strerror or exc}", name) from exc
    with f:
        yield open_reader(f, name)


def areas(items: list[tuple[int, int, int, str]], n: int) -> list[tuple[int, int, bool]]:
    """The spans of a frame that are not header fields, merged: ``(start, end, holds TCP payload)``.

    Bytes no span covers count too (the dissector did not understand them).
    """
    out: list[tuple[int, int, bool]] = []
    pos = 0
    for a, b, kind, _ in items:
        if pos < a:
            _merge(out, pos, a, False)
        if kind == OTHER or kind == STREAM:
            _merge(out, a, b, kind == STREAM)
        if b > pos:
            pos = b
    if pos < n:
        _merge(out, pos, n, False)
    return out


def _merge(out: list, a: int, b: int, stream: bool) -> None:
    if out and out[-1][1] == a:
        out[-1] = (out[-1][0], b, out[-1][2] or stream)
    else:
        out.append((a, b, stream))


class Needles:
    """What ORIGINAL holds: addresses and the text needles of the dns/http/strings categories."""

    def __init__(self):
        self.addresses = AddressBook()
        self.text = NeedleIndex()
        self.policy_text = NeedleIndex()  # dns and http only: what is worth telling about kept bytes
        self.values: dict[str, dict[bytes, str]] = {c: {} for c in MAX_VALUES}  # lower-cased -> shown

    @property
    def dns_names(self) -> dict[bytes, str]:
        return self.values["dns"]

    def add(self, category: str, value: bytes) -> None:
        """Gather a value (bounded per category: the first ones seen are kept)."""
        value = bytes(value)
        low = value.lower()
        known = self.values[category]
        if low in known or len(known) >= MAX_VALUES[category]:
            return
        shown = display(value)
        known[low] = shown
        indexes = (self.text, self.policy_text) if category in POLICY_CATEGORIES else (self.text,)
        for index in indexes:
            index.add(low, (category, shown, TEXT))
            if category == "dns":
                wire = to_wire(low)
                if wire is not None:
                    index.add(wire, (category, shown, DNS_WIRE))

    def add_dns(self, msg: bytes) -> None:
        content = read_message(msg)
        for name in content.names:
            if len(name) >= MIN_NAME and _NAME.fullmatch(name) and name_worth_searching(name):
                self.add("dns", name)
        for raw in content.addresses:
            self.addresses.add(IP, raw)

    def count(self, category: str) -> int:
        """Distinct values gathered in a report category."""
        if category in self.values:
            return len(self.values[category])
        return self.addresses.count(category)

    def frame(self, data: bytes, walker: Walker) -> None:
        """Gather from one walked ORIGINAL frame."""
        book = self.addresses
        for a, b, kind, _ in walker.s.items:
            category = ADDRESS_KINDS.get(kind)
            if category is not None and b - a == SIZES[kind]:  # a partial one (cut short) is no needle
                book.add(category, data[a:b])
        tcp = walker.tcp
        for a, b, stream in areas(walker.s.items, len(data)):
            chunk = data[a:b]
            if is_blank(chunk):
                continue
            if stream:
                for value in http_values(chunk):
                    if not host_kept(value):
                        self.add("http", value)
                if tcp is not None:
                    for _off, msg in tcp_dns(data, tcp[3], tcp[4], tcp[0][-4:]):
                        self.add_dns(msg)
            for piece in printable_pieces(chunk):
                self.add("strings", piece)
        for start, end, sport, dport in walker.udp:
            for _off, msg in udp_dns(data, start, end, sport, dport):
                self.add_dns(msg)


class Pass1:
    """The first pass over ORIGINAL: needles, the stream model, complete datagrams, fragmented
    DNS datagrams reassembled, packet count."""

    def __init__(self):
        self.needles = Needles()
        self.model = StreamModel()
        self.complete: set[bytes] = set()
        self.fragments = Reassembler(self.needles.add_dns)
        self.packets = 0

    def run(self, path: str | Path) -> Pass1:
        walker = Walker()
        needles, model, complete, fragments = self.needles, self.model, self.complete, self.fragments
        with open_capture(path) as reader:
            for pkt in reader:
                self.packets += 1
                data = bytes(pkt.data)
                walker.frame(data, pkt.linktype)
                needles.frame(data, walker)
                tcp = walker.tcp
                if tcp is not None:
                    model.segment(tcp[0], tcp[1], tcp[2], data[tcp[3]:tcp[4]])
                if walker.last_fragment is not None and len(complete) < 1 << 20:
                    complete.add(walker.last_fragment)
                for fragment in walker.fragments:
                    fragments.add(self.packets, data, *fragment)
        model.finish()
        fragments.finish()
        for name in model.tls_names:  # SNI and certificate names: no original may survive
            base = name[2:] if name.startswith(b"*.") else name
            if len(base) >= MIN_NAME and _NAME.fullmatch(base) and name_worth_searching(base):
                needles.add("dns", base)
        return self


def gather(path: str | Path) -> Needles:
    """The needles of ORIGINAL (the first pass without keeping its stream model)."""
    return Pass1().run(path).needles


def _inside(start: int, end: int, keep: list[tuple[int, int]]) -> bool:
    return any(a <= start and end <= b for a, b in keep)


class Searcher:
    """Looks for the needles in a SANITIZED frame (see the module docstring)."""

    def __init__(self, needles: Needles, findings: Findings):
        self.needles = needles
        self.findings = findings

    def frame(self, data: bytes, packet: int, items, keep: list[tuple[int, int]], tcp, udp,
              original: bytes | None = None, tls: bool = False) -> None:
        """Search the non-header areas of ``data`` (spans ``items`` of its walk); ``keep`` lists
        the TCP payload runs the policy keeps; ``tcp`` and ``udp`` are the walk's payloads.

        With ``original`` (the lined-up ORIGINAL frame), a kept run that still holds its
        original bytes can hide no leak: it is searched only for the addresses (raw), DNS names
        and HTTP values worth reporting as kept by policy (long strings would hit every HTTP
        head they were gathered from, at great cost and for no news). A kept run the sanitizer
        changed is searched in full, and a find there is kept by policy only where it is the
        original bytes in their original place.

        Names and HTTP values are kept by policy only in kept TLS structure (``tls``: the
        segment's direction is TLS records; ``keep`` holds no TLS host name, those are
        pseudonyms). In kept HTTP bytes (a path, a User-Agent), in a TLS name and anywhere
        else, an original hostname or HTTP value is a leak.
        """
        for a, b, stream in areas(items, len(data)):
            if data.count(0, a, b) == b - a:
                continue
            if original is None or not stream:
                self.area(data, a, b, keep if stream and tls else [], packet)
                continue
            q = a
            for x, y in keep:
                if q < x:
                    self.area(data, q, x, [], packet)
                if x < y:
                    if data[x:y] == original[x:y]:
                        self.area(data, x, y, [(x, y)] if tls else [], packet, self.needles.policy_text, False)
                    elif tls:
                        self.area(data, x, y, [], packet, original=original)
                    else:
                        self.changed_run(data, original, x, y, packet)
                q = max(q, y)
            if q < b:
                self.area(data, q, b, [], packet)
        names = self.needles.dns_names
        if not names:
            return
        # Names parsed from a message also catch a compressed spelling no needle matches.
        msgs = [m for u in udp for m in udp_dns(data, *u)]
        if tcp is not None:
            msgs += list(tcp_dns(data, tcp[3], tcp[4], tcp[0][-4:]))
        for off, msg in msgs:
            self.dns_message(msg, packet, tls and _inside(off, off + len(msg), keep))

    def dns_message(self, msg: bytes, packet: int, kept: bool = False) -> None:
        """The names of a DNS message of SANITIZED that are names of ORIGINAL (compressed
        spellings too, which no needle matches)."""
        names = self.needles.dns_names
        if not names or is_blank(msg):
            return
        for name in read_message(msg).names:
            shown = names.get(name)
            if shown is not None:
                self.findings.record("dns", shown, packet, DNS_MESSAGE, kept)

    def changed_run(self, data: bytes, original: bytes, x: int, y: int, packet: int) -> None:
        """A kept HTTP run the sanitizer changed in part (a kept field it zeroed, a pseudonym next
        to it): its stretches still equal to ORIGINAL are searched like an unchanged kept run
        (names, HTTP values, raw addresses), the changed ones in full."""
        k = x
        while k < y:
            same = data[k] == original[k]
            e = k + 1
            while e < y and (data[e] == original[e]) == same:
                e += 1
            if same:
                self.area(data, k, e, [], packet, self.needles.policy_text, False)
            else:
                self.area(data, k, e, [], packet)
            k = e

    def area(self, data: bytes, a: int, b: int, keep: list[tuple[int, int]], packet: int,
             text: NeedleIndex | None = None, spelled: bool = True, original: bytes | None = None) -> None:
        """Search ``data[a:b]``: a find inside ``keep`` (or, given ``original``, one that is the
        original bytes in place) is kept by policy. ``text``: the needle index (default: all);
        ``spelled``: look for addresses spelled as text too, not only raw."""
        if data.count(0, a, b) == b - a:
            return
        record = self.findings.record
        chunk = data[a:b]
        lowered = chunk.lower()

        def kept(s: int, e: int) -> bool:
            if original is not None:
                return original[a + s:a + e] == chunk[s:e]
            return _inside(a + s, a + e, keep)

        book = self.needles.addresses
        if len(book):
            windows = window_keys(chunk) if book.raw_keys else set()
            for category, raw, s, e, where in book.find(chunk, lowered, windows, spelled):
                record(category, show(raw), packet, where, kept(s, e))
        if text is None:
            text = self.needles.text
        if len(text):
            windows = window_keys(lowered)
            for p, needle, tags in text.find(lowered, windows):
                found = kept(p, p + len(needle))
                for category, shown, where in tags:
                    record(category, shown, packet, where, found)

    def header_addresses(self, data: bytes, items, packet: int) -> None:
        """Needles-only mode: an address field of SANITIZED holding an address of ORIGINAL."""
        book = self.needles.addresses
        for a, b, kind, _ in items:
            category = ADDRESS_KINDS.get(kind)
            if category is not None and b - a == SIZES[kind]:
                raw = data[a:b]
                if book.holds(category, raw):
                    self.findings.record(category, show(raw), packet, "header", False)

