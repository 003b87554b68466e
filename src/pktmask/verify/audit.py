"""The public entry point of the leak audit: an independent check of SANITIZED against ORIGINAL.

The audit shares no code with the sanitizer (tests/unit/test_verify_independence.py enforces
it): its own dissector (``fields``, ``transport``) says what each byte of an ORIGINAL frame
may be after sanitizing (docs/policy.md), its own stream model (``streams``, ``payloads``)
says which TCP payload bytes are kept, and the needles (``scan``) catch identifiers that
moved. Passes:

1. ORIGINAL: needles, stream model, complete fragmented datagrams, fragmented DNS datagrams
   reassembled (``fragments``).
2. ORIGINAL and SANITIZED side by side, frame by frame (same lengths and order; an ORIGINAL
   frame identical to a recent one (MAX_SEEN frames) whose SANITIZED copy is not next was
   dropped by dedup):
   every unchanged non-zero byte where the policy zeroes, every pseudonym field holding its
   original value, every non-zero must-be-zero checksum is a finding; the needles are
   searched in every non-header area. The fragments of a reassembled DNS datagram take the
   labels of their place in it; what only the whole datagram shows is audited once all of its
   fragments are lined up.
3. Only if the frames cannot be lined up: the needles alone, over SANITIZED walked and
   stream-modelled on its own (the report says ``"aligned": false`` and why).

The report (schema_version 1) is a JSON-able dict::

    {"schema_version": 1, "original": str, "sanitized": str, "clean": bool,
     "aligned": bool, "alignment": {"packets": int, "skipped_duplicates": int, ["failed": str]},
     "notes": [str, ...],
     "categories": {"ip" | "mac" | "dns" | "http" | "strings" | "fields":
         {"gathered": int, "leaks": int, "kept_by_policy": int,
          "examples": [{"value": str, "packet": int, "where": str}, ...],
          "policy_examples": [...]}},
     "findings": [{"packet": int, "original_packet": int, "offset": int, "length": int,
                   "field": str, "kind": "unchanged" | "not mapped" | "not zero"}, ...],
     "findings_total": int}

``clean`` is true when no category has a leak. Packet numbers are 1-based, in SANITIZED
(``original_packet`` in ORIGINAL). Findings list at most 1000 entries (``findings_total``
counts them all).
"""

from __future__ import annotations

import zlib
from collections import deque
from pathlib import Path

from pktmask.core.temp_file_manager import TempFileManager
from pktmask.verify.addresses import IP, MAC, show
from pktmask.verify.dnsfields import ecs_findings
from pktmask.verify.fields import Walker
from pktmask.verify.findings import CATEGORIES, NOT_MAPPED, NOT_ZERO, UNCHANGED, Findings
from pktmask.verify.fragments import FragmentAudit, Sink
from pktmask.verify.labels import (
    ECS4,
    ECS6,
    IP_TEXT,
    KEEP,
    NAME,
    OTHER,
    SIZES,
    STREAM,
    ZERO,
    ip_text_equal,
    is_zero,
    leaks_unchanged,
    partial_ok,
)
from pktmask.verify.labels import MAC as MAC_FIELD
from pktmask.verify.names import MAX_COLLISION, collision, label_leaks, pseudonymized
from pktmask.verify.scan import Pass1, Searcher, display, open_capture
from pktmask.verify.streams import StreamModel

_NAME_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:[]")
MAX_SEEN = 1 << 18  # recent frames remembered to recognise duplicates dedup may have dropped


class Misaligned(Exception):
    """ORIGINAL and SANITIZED cannot be lined up frame by frame."""


def verify(original: str | Path, sanitized: str | Path, manager: TempFileManager) -> dict:
    """Audit SANITIZED against ORIGINAL; returns the report described above.

    Needs no scratch (``manager`` is accepted for the CLI's sake). Raises InputError when
    either file cannot be read as a capture.
    """
    first = Pass1().run(original)
    findings = Findings()
    for category in CATEGORIES:
        findings.tallies[category].gathered = first.needles.count(category)
    findings.tallies["fields"].gathered = first.packets
    if first.model.gave_up:
        findings.notes.append("the stream model reached its memory bound: later kept TCP payload "
                              "bytes count as must-be-zero")
    if first.fragments.gave_up:
        findings.notes.append("fragmented DNS datagrams reached the reassembly's memory bound: the "
                              "data of some of their fragments counts as must-be-zero")
    audit = Aligned(first, findings)
    try:
        audit.run(original, sanitized)
    except Misaligned as exc:
        findings.reset_search()
        findings.aligned = False
        findings.alignment = {"packets": 0, "skipped_duplicates": 0, "failed": str(exc)}
        findings.notes.append("ORIGINAL and SANITIZED could not be lined up frame by frame: only the "
                              "needles were searched")
        needles_only(first, findings, sanitized)
    return findings.report(str(original), str(sanitized))


class Aligned:
    """Pass 2 (see the module docstring)."""

    def __init__(self, first: Pass1, findings: Findings):
        self.walker = Walker(first.complete)
        self.model = first.model
        self.findings = findings
        self.searcher = Searcher(first.needles, findings)
        self.fragments = FragmentAudit(first.fragments, findings, self.datagram, self.searcher.dns_message)
        self.packet = 0
        self.original = 0

    def run(self, original: str | Path, sanitized: str | Path) -> None:
        walker, model = self.walker, self.model
        seen: dict[int, int] = {}
        order: deque[int] = deque()
        model.restart()
        skipped = 0
        with open_capture(original) as ro, open_capture(sanitized) as rs:
            later = iter(rs)
            spkt = next(later, None)
            for number, opkt in enumerate(ro, 1):
                o, lt = bytes(opkt.data), opkt.linktype
                spans = walker.frame(o, lt)
                hits = self.fragments.relabel(number, walker.fragments, spans)
                items = spans.items
                tcp = walker.tcp
                keep, zeros, tls, names = [], [], False, []
                pseudos: list[tuple[int, int, int, str]] = []
                if tcp is not None:
                    a = tcp[3]
                    keep = [(a + x, a + y) for x, y in model.kept(tcp[0], tcp[1], tcp[2], o[a:tcp[4]])]
                    zeros = [(a + x, a + y, name) for x, y, name in model.last_zeros]
                    pseudos = [(a + x, a + y, kind, name) for x, y, kind, name in model.last_pseudos]
                    tls = model.last_tls
                    names = [(a + x, a + y, whole, off) for x, y, whole, off in model.last_names]
                h = hash((lt, o))
                prior = seen.get(h)
                s = bytes(spkt.data) if spkt is not None else None
                if prior is not None and (s is None or len(s) != len(o) or spkt.linktype != lt or hash(s) != prior):  # type: ignore[union-attr]
                    skipped += 1  # a duplicate dedup dropped
                    continue
                if s is None:
                    raise Misaligned(f"SANITIZED ends before packet {number} of ORIGINAL")
                assert spkt is not None  # s is its data
                if len(s) != len(o) or spkt.linktype != lt:
                    raise Misaligned(f"packet {number} of ORIGINAL ({len(o)} bytes) does not line up with "
                                     f"packet {self.packet + 1} of SANITIZED ({len(s)} bytes)")
                self.packet += 1
                self.original = number
                if h not in seen:
                    seen[h] = hash(s)
                    order.append(h)
                    if len(order) > MAX_SEEN:
                        del seen[order.popleft()]
                if hits:
                    self.fragments.lined_up(hits, s, self.packet, number)
                # TLS host names are pseudonym fields: not zero, but changed label by label.
                free = sorted(keep + [(x, y) for x, y, _w, _o in names]) if names else keep
                self.fields(o, s, items, free, zeros, spans.names, pseudos)
                for run in names:
                    self.tls_name(o, s, *run)
                if spans.fcs is not None:
                    self.fcs(s, spans.fcs)
                self.searcher.frame(s, self.packet, items, keep, tcp, walker.udp, o, tls)
                if pseudos and tcp is not None:
                    self.search_hosts(s, pseudos, tcp[3], tcp[4])
                spkt = next(later, None)
            if spkt is not None:
                raise Misaligned(f"SANITIZED has packets after the last of ORIGINAL ({self.packet} lined up)")
        self.findings.alignment = {"packets": self.packet, "skipped_duplicates": skipped}

    # ---- the field audit -----------------------------------------------------------------
    def fields(self, o: bytes, s: bytes, items, keep: list[tuple[int, int]],
               zeros: list[tuple[int, int, str]] | None = None,
               names: list[list[tuple[int, int]]] | None = None,
               pseudos: list[tuple[int, int, int, str]] | None = None) -> None:
        pos = 0
        for a, b, kind, name in items:
            if pos < a:
                self.other(o, s, pos, a, "unlabelled")
            elif a < pos:  # overlapping spans: the first one decides
                if b <= pos:
                    continue
                a = pos
            if kind == KEEP:
                pass
            elif kind == OTHER:
                self.other(o, s, a, b, name)
            elif kind == STREAM:
                q = a
                covered = keep
                if pseudos:
                    covered = sorted(keep + [(x, y) for x, y, _, _ in pseudos])
                    for x, y, k, field in pseudos:
                        self.stream_pseudonym(o, s, x, y, k, field, a)
                for x, y in covered:
                    if q < x:
                        self.named(o, s, q, x, name, zeros)
                    q = max(q, y)
                if q < b:
                    self.named(o, s, q, b, name, zeros)
            elif kind == ZERO:
                if s.count(0, a, b) != b - a:
                    self.finding(a, b - a, name, NOT_ZERO)
            elif kind == ECS4 or kind == ECS6:
                verdict = ecs_findings(o, s, a, b)
                if verdict is not None:
                    self.findings.field(self.packet, self.original, a, b - a, name, verdict, IP,
                                        f"{show(o[a:b] + bytes((4 if kind == ECS4 else 16) - (b - a)))}"
                                        f"/{o[a - 2]}")
            else:
                value = o[a:b]
                if s[a:b] == value and leaks_unchanged(kind, value) and not partial_ok(kind, b - a):
                    if kind == NAME:
                        self.findings.field(self.packet, self.original, a, b - a, name, NOT_MAPPED,
                                            "dns", display(value))
                    else:
                        self.findings.field(self.packet, self.original, a, b - a, name, NOT_MAPPED,
                                            MAC if kind == MAC_FIELD else IP, show(value))
            if b > pos:
                pos = b
        if pos < len(o):
            self.other(o, s, pos, len(o), "unlabelled")
        for group in names or ():
            self.name_group(o, s, group)

    def datagram(self, o: bytes, s: bytes, items, groups: list[list[tuple[int, int]]], sink: Sink) -> None:
        """Audit the fields of a reassembled datagram (``fragments``) that no one fragment holds
        whole; ``sink`` names the fragments' packets and offsets."""
        findings = self.findings
        self.findings = sink  # type: ignore[assignment]
        try:
            self.fields(o, s, items, [], None, groups)
        finally:
            self.findings = findings

    def fcs(self, s: bytes, where: tuple[int, int, int, int]) -> None:
        """An 802.11 FCS must be zero or recomputed over the sanitized frame: the original
        one is a CRC of bytes the policy maps or zeroes (docs/policy.md, "802.11")."""
        start, gap, resume, at = where
        value = s[at:at + 4]
        if len(value) == 4 and value.count(0) != 4:
            crc = zlib.crc32(s[resume:at], zlib.crc32(s[start:gap]))
            if value != crc.to_bytes(4, "little"):
                self.finding(at, 4, "wlan.fcs (neither zero nor recomputed)", NOT_ZERO)

    def search_hosts(self, s: bytes, pseudos: list[tuple[int, int, int, str]], start: int, stop: int) -> None:
        """Search each name around pseudonym runs (the runs and the kept name bytes next to them:
        a suffix, dots) for the names and HTTP values of ORIGINAL: the searcher sees kept runs and
        pseudonym runs apart, and a name is both."""
        areas: list[list[int]] = []
        for x, y, _, _ in pseudos:
            while x > start and s[x - 1] in _NAME_BYTES:
                x -= 1
            while y < stop and s[y] in _NAME_BYTES:
                y += 1
            if areas and x <= areas[-1][1]:
                areas[-1][1] = max(areas[-1][1], y)
            else:
                areas.append([x, y])
        needles = self.searcher.needles
        for x, y in areas:
            self.searcher.area(s, x, y, [], self.packet, needles.policy_text, False)

    def stream_pseudonym(self, o: bytes, s: bytes, a: int, b: int, kind: int, name: str, start: int) -> None:
        """A pseudonym run of a TCP payload (``start``: where the payload begins), maybe only
        the part of it in this segment: a DNS label, an address, an ECS prefix, an IP literal's
        text. Unchanged where the policy maps it: a finding (``not mapped``)."""
        value = o[a:b]
        if kind == IP_TEXT:
            if ip_text_equal(value, s[a:b]):
                self.findings.field(self.packet, self.original, a, b - a, name, NOT_MAPPED, IP,
                                    display(value))
            return
        if kind == ECS4 or kind == ECS6:
            if a - 4 >= start:
                verdict = ecs_findings(o, s, a, b)
                if verdict is not None:
                    self.findings.field(self.packet, self.original, a, b - a, name, verdict, IP, show(value))
            return
        if s[a:b] != value:
            return
        size = SIZES.get(kind, 0)
        if size and b - a < size:
            leaks = b - a >= 2 and not is_zero(value)  # part of an address (split by a segment end)
        else:
            leaks = leaks_unchanged(kind, value)
        if leaks:
            category = "dns" if kind == NAME else MAC if kind == MAC_FIELD else IP
            shown = display(value) if kind == NAME or size and b - a < size else show(value)
            self.findings.field(self.packet, self.original, a, b - a, name, NOT_MAPPED, category, shown)

    def tls_name(self, o: bytes, s: bytes, x: int, y: int, whole: bytes, off: int) -> None:
        """A TLS host name (or the part of it in this frame, ``whole[off:]`` at ``x``): a label
        the policy pseudonymizes that survived unchanged is a finding when it is long enough to
        tell (``label_leaks``), or when all of them survived and together they are."""
        labels = whole.lower().split(b".")
        idx = pseudonymized(tuple(labels))
        if labels[0] == b"*":  # a wildcard label stays
            idx = [i for i in idx if i]
        starts, pos = [], 0
        for label in labels:
            starts.append(pos)
            pos += len(label) + 1
        p, alone = 1.0, False
        for i in idx:
            ls, le = starts[i], starts[i] + len(labels[i])
            if ls < off or le > off + (y - x):
                return  # not all in this frame: the needles search catches the whole name
            a, b = x + ls - off, x + le - off
            if s[a:b] != o[a:b]:
                return
            alone = alone or label_leaks(labels[i])
            p *= collision(labels[i])
        if idx and (alone or p <= MAX_COLLISION):
            self.findings.field(self.packet, self.original, x, y - x, "tls.name", NOT_MAPPED, "dns",
                                display(whole))

    def name_group(self, o: bytes, s: bytes, group: list[tuple[int, int]]) -> None:
        """A DNS name whose pseudonymized labels all survived, though none is long enough to be
        a finding alone (a reverse name's octets): together they are one (``names``)."""
        p = 1.0
        for a, b in group:
            value = o[a:b]
            if s[a:b] != value or label_leaks(value):
                return  # changed, or already a finding on its own
            p *= collision(value)
        if p <= MAX_COLLISION:
            a, b = group[0][0], group[-1][1]
            self.findings.field(self.packet, self.original, a, b - a, "dns.name", NOT_MAPPED, "dns",
                                display(b".".join(o[x:y] for x, y in group)))

    def named(self, o: bytes, s: bytes, a: int, b: int, name: str,
              zeros: list[tuple[int, int, str]] | None) -> None:
        """``other`` over TCP payload bytes, named by the stream model's must-be-zero runs."""
        if not zeros or s.count(0, a, b) == b - a:
            self.other(o, s, a, b, name)
            return
        q = a
        for x, y, field in zeros:
            x, y = max(x, a), min(y, b)
            if x >= y:
                continue
            if q < x:
                self.other(o, s, q, x, name)
            self.other(o, s, x, y, field)
            q = y
        if q < b:
            self.other(o, s, q, b, name)

    def other(self, o: bytes, s: bytes, a: int, b: int, name: str) -> None:
        """Report every unchanged stretch holding a non-zero byte in ``[a, b)``."""
        if s.count(0, a, b) == b - a:
            return
        if o[a:b] == s[a:b]:
            self.stretch(s, a, b, name)
            return
        run = -1
        for i in range(a, b):
            if o[i] == s[i]:
                if run < 0:
                    run = i
            elif run >= 0:
                self.stretch(s, run, i, name)
                run = -1
        if run >= 0:
            self.stretch(s, run, b, name)

    def stretch(self, s: bytes, a: int, b: int, name: str) -> None:
        part = s[a:b]
        body = part.strip(b"\0")
        if body:
            start = a + len(part) - len(part.lstrip(b"\0"))
            self.finding(start, len(body), name, UNCHANGED)

    def finding(self, offset: int, length: int, name: str, kind: str) -> None:
        self.findings.field(self.packet, self.original, offset, length, name, kind)


def needles_only(first: Pass1, findings: Findings, sanitized: str | Path) -> None:
    """Pass 3: SANITIZED alone, walked and stream-modelled on its own, searched for the needles."""
    walker, model = Walker(), StreamModel()
    with open_capture(sanitized) as reader:
        for pkt in reader:
            data = bytes(pkt.data)
            walker.frame(data, pkt.linktype)
            tcp = walker.tcp
            if tcp is not None:
                model.segment(tcp[0], tcp[1], tcp[2], data[tcp[3]:tcp[4]])
    model.finish()
    model.restart()
    searcher = Searcher(first.needles, findings)
    with open_capture(sanitized) as reader:
        for number, pkt in enumerate(reader, 1):
            data = bytes(pkt.data)
            items = walker.frame(data, pkt.linktype).items
            tcp = walker.tcp
            keep, tls = [], False
            if tcp is not None:
                a = tcp[3]
                keep = [(a + x, a + y) for x, y in model.kept(tcp[0], tcp[1], tcp[2], data[a:tcp[4]])]
                tls = model.last_tls
            searcher.header_addresses(data, items, number)
            searcher.frame(data, number, items, keep, tcp, walker.udp, tls=tls)
