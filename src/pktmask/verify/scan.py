"""The three streaming passes of the leak audit.

``gather(ORIGINAL)`` collects, in one pass, what must not survive
sanitizing: addresses (from the address fields the anonymizer rewrites, and
A/AAAA answers), DNS names, HTTP values and long printable strings, each set
bounded so memory does not grow with the file.

``SanitizedScan.run(SANITIZED)`` then reads SANITIZED twice. Pass A runs the
masking policy's stream tracker over every TCP segment, as the masking
pre-pass does, and spills the keep ranges of each segment with payload to a
scratch file. Pass B walks the address fields again (an original address
there is a leak) and searches every payload area; a find that lies inside a
keep range of its TCP segment is kept by policy (SNI and certificate names in
TLS handshakes, Host headers in HTTP heads), anywhere else it is a leak.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pktmask.capture.formats import Reader, open_reader
from pktmask.core.temp_file_manager import TempFileManager
from pktmask.errors import InputError, from_oserror
from pktmask.mask.tracker import StreamTracker
from pktmask.proto.walk import walk
from pktmask.verify.addresses import IP, AddressBook, AddressWalker, show
from pktmask.verify.dns import read_message, to_wire
from pktmask.verify.findings import Findings
from pktmask.verify.needles import NeedleIndex, window_keys
from pktmask.verify.payload import (
    Area,
    dns_messages,
    http_values,
    is_blank,
    payload_areas,
    printable_pieces,
    tracker_view,
)

MAX_VALUES = {"dns": 20_000, "http": 20_000, "strings": 20_000}
MIN_NAME = 4  # shorter DNS names ("lan", "com") are too common to mean anything
# Name bytes a real name uses (mDNS instance names have spaces and UTF-8); control bytes mean
# the "message" was something else on a DNS port, and a needle of them would match zeroed bytes.
_NAME = re.compile(rb"[\x20-\x7e\x80-\xff]+")
TEXT = "payload (text)"
DNS_WIRE = "payload (DNS wire format)"
DNS_MESSAGE = "DNS message"
HEADER = "header"

_COUNT = struct.Struct("<H")  # the masking stage's spill record: count, then (start, end) pairs
SPILL_BUFFER = 1 << 20


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


class Needles:
    """What ORIGINAL holds: addresses and the text needles of the dns/http/strings categories."""

    def __init__(self):
        self.addresses = AddressBook()
        self.text = NeedleIndex()
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
        self.text.add(low, (category, shown, TEXT))
        if category == "dns":
            wire = to_wire(low)
            if wire is not None:
                self.text.add(wire, (category, shown, DNS_WIRE))

    def add_dns(self, msg: bytes) -> None:
        content = read_message(msg)
        for name in content.names:
            if len(name) >= MIN_NAME and _NAME.fullmatch(name):
                self.add("dns", name)
        for raw in content.addresses:
            self.addresses.add(IP, raw)

    def count(self, category: str) -> int:
        """Distinct values gathered in a report category."""
        if category in self.values:
            return len(self.values[category])
        return self.addresses.count(category)


def gather(path: str | Path) -> Needles:
    """One pass over ORIGINAL: every needle the audit will look for."""
    needles = Needles()
    walker = AddressWalker(needles.addresses.add)
    with open_capture(path) as reader:
        for pkt in reader:
            data = bytes(pkt.data)
            walker.frame(data, pkt.linktype)
            d = walk(data, pkt.linktype)
            ports = d.tcp.key[-4:] if d.tcp is not None else None
            for area in payload_areas(data, d):
                chunk = data[area.start : area.end]
                if is_blank(chunk):
                    continue
                for _off, msg in dns_messages(data, area, ports):
                    needles.add_dns(msg)
                if area.tcp:
                    for value in http_values(chunk):
                        needles.add("http", value)
                for piece in printable_pieces(chunk):
                    needles.add("strings", piece)
    return needles


def _inside(start: int, end: int, keep: list[tuple[int, int]]) -> bool:
    return any(a <= start and end <= b for a, b in keep)


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


class SanitizedScan:
    """Passes A and B over SANITIZED (see the module docstring); results go to ``findings``."""

    def __init__(self, needles: Needles, findings: Findings, manager: TempFileManager):
        self.needles = needles
        self.findings = findings
        self.manager = manager
        self.packet = 0  # 1-based number of the SANITIZED packet being searched

    def run(self, path: str | Path) -> None:
        """Audit SANITIZED; the scratch spill file is removed (and forgotten) whatever happens."""
        spill = self.manager.create_temp_file(prefix="verify-", suffix=".ranges")
        try:
            self._decide(path, spill)
            self._search(path, spill)
        finally:
            try:
                os.unlink(spill)
            except OSError:
                pass
            self.manager.unregister_temp_file(spill)

    # ---- pass A: the policy's keep decisions -------------------------------------
    def _decide(self, path: str | Path, spill: Path) -> None:
        try:
            out = open(spill, "wb", buffering=SPILL_BUFFER)
        except OSError as exc:
            raise from_oserror(exc, str(spill)) from exc

        def emit(ranges: list[tuple[int, int]]) -> None:
            n = len(ranges)
            rec = _COUNT.pack(n)
            if n:
                rec += struct.pack(f"<{2 * n}I", *[x for r in ranges for x in r])
            try:
                out.write(rec)
            except OSError as exc:
                raise from_oserror(exc, str(spill)) from exc

        with out:
            tracker = StreamTracker(emit)
            with open_capture(path) as reader:
                for pkt in reader:
                    data = pkt.data
                    seg = walk(data, pkt.linktype).tcp
                    if seg is not None:
                        payload = tracker_view(bytes(data[seg.start : seg.end]))
                        tracker.segment(seg.key, seg.seq, seg.flags, payload)
            tracker.finish()

    @staticmethod
    def _next_ranges(spill) -> list[tuple[int, int]]:
        head = spill.read(2)
        if len(head) != 2:
            raise RuntimeError("keep decisions out of step with the capture")
        (n,) = _COUNT.unpack(head)
        if not n:
            return []
        vals = struct.unpack(f"<{2 * n}I", spill.read(8 * n))
        return [(vals[i], vals[i + 1]) for i in range(0, 2 * n, 2)]

    # ---- pass B: search ------------------------------------------------------------
    def _header_address(self, category: str, raw: bytes) -> None:
        if self.needles.addresses.holds(category, raw):
            self.findings.record(category, show(raw), self.packet, HEADER, False)

    def _search(self, path: str | Path, spill: Path) -> None:
        walker = AddressWalker(self._header_address)
        try:
            rin = open(spill, "rb", buffering=SPILL_BUFFER)
        except OSError as exc:
            raise from_oserror(exc, str(spill), what="read") from exc
        with rin, open_capture(path) as reader:
            for number, pkt in enumerate(reader, 1):
                self.packet = number
                data = bytes(pkt.data)
                walker.frame(data, pkt.linktype)
                d = walk(data, pkt.linktype)
                seg = d.tcp
                keep: list[tuple[int, int]] = []
                ports = None
                if seg is not None:
                    ports = seg.key[-4:]
                    if seg.start < seg.end:
                        keep = _merge([(seg.start + a, seg.start + b) for a, b in self._next_ranges(rin)])
                for area in payload_areas(data, d):
                    chunk = data[area.start : area.end]
                    if not is_blank(chunk):
                        self._search_area(data, area, chunk, keep if area.tcp else [], ports)

    def _search_area(self, data: bytes, area: Area, chunk: bytes, keep: list[tuple[int, int]],
                     ports: bytes | None) -> None:
        record = self.findings.record
        packet = self.packet
        base = area.start
        lowered = chunk.lower()
        book = self.needles.addresses
        if len(book):
            windows = window_keys(chunk) if book.raw_keys else set()
            for category, raw, s, e, where in book.find(chunk, lowered, windows):
                record(category, show(raw), packet, where, _inside(base + s, base + e, keep))
        text = self.needles.text
        if len(text):
            windows = window_keys(lowered)
            for p, needle, tags in text.find(lowered, windows):
                kept = _inside(base + p, base + p + len(needle), keep)
                for category, shown, where in tags:
                    record(category, shown, packet, where, kept)
        names = self.needles.dns_names
        if names:
            # Names parsed from a message also catch a compressed spelling no needle matches.
            for off, msg in dns_messages(data, area, ports):
                kept = _inside(off, off + len(msg), keep)
                for name in read_message(msg).names:
                    shown = names.get(name)
                    if shown is not None:
                        record("dns", shown, packet, DNS_MESSAGE, kept)
