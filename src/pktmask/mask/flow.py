"""Per-connection state of the stream tracker: a flow, its two directions, pending segments.

A ``Direction`` follows one side of a TCP connection in absolute stream
offsets and remembers which of its bytes are kept, and which of the kept
ones its parser replaces (``rs``/``rv``); a ``Flow`` pairs the two
directions (HTTP responses need the requests' methods); a ``Pending`` is a
segment with payload whose keep ranges are not known yet. The
``StreamTracker`` (tracker.py) owns and drives them.

The keep history holds, for every kept run, the CRC-32 of the bytes it was
decided on (the first copy), one run per chunk fed to the parser, so that a
later copy of the same stream offsets keeps only what it repeats exactly
(``check``); the bytes fed but not yet decided are held (``tail``, at most a
split head line or record header) for the same purpose.
"""

from __future__ import annotations

import zlib
from bisect import bisect_right
from collections import deque
from typing import Final

from pktmask.proto.dns_stream import DnsStreamParser
from pktmask.proto.http import HttpParser
from pktmask.proto.tls import TlsParser

CRC32: Final = zlib.crc32  # bound once (compiled: a static, not a global lookup per kept run)
HELD: Final = -1  # ``Pending.a`` of a caller's record queued in order (``StreamTracker.hold``)
FRAG: Final = -2  # ``Pending.a`` of a UDP fragment's record (``StreamTracker.fragment``)


class Direction:
    """One direction of a TCP flow, in absolute stream offsets."""

    __slots__ = ("flow", "isn", "next", "syn", "kind", "parser", "ooo", "ooo_bytes",
                 "hs", "he", "hd", "tail", "waiting", "head", "fin", "rs", "rv")

    def __init__(self, flow: Flow):
        self.flow = flow
        self.isn = -1  # 32-bit sequence number of offset 0 (-1: not known yet)
        self.next = 0  # next in-order offset
        self.syn = False  # the stream's start was seen
        self.kind: str | None = None
        self.parser: TlsParser | HttpParser | DnsStreamParser | None = None
        self.ooo: dict[int, bytes] = {}  # out-of-order payload by start offset
        self.ooo_bytes = 0
        self.hs: list[int] = []  # keep history: starts
        self.he: list[int] = []  # ... ends
        self.hd: list[int] = []  # ... and CRC-32 of the kept bytes (-1: unknown, matches nothing)
        self.tail = b""  # the bytes from ``decided`` to ``next`` while a parser holds them undecided
        self.waiting: list[Pending] = []  # unresolved segments of this direction
        self.head = b""  # a stream's first bytes, held until there are enough to sniff
        self.fin = False  # FIN (or RST) seen
        # Replacements of kept bytes (starts, sorted, and the bytes), pruned with the keep
        # history: every copy of those bytes gets them. None until the parser has one.
        self.rs: list[int] | None = None
        self.rv: list[bytes] | None = None

    @property
    def decided(self) -> int:
        """Every offset below this has its final keep/zero decision."""
        return self.parser.decided if self.parser is not None else self.next - len(self.head)

    def offset(self, seq: int) -> int:
        """Unwrap a 32-bit sequence number to the absolute offset nearest the expected one."""
        d = (seq - self.isn - self.next) & 0xFFFFFFFF
        if d >= 0x80000000:
            d -= 1 << 32
        return self.next + d

    def ranges(self, a: int, b: int) -> list[tuple[int, int]]:
        """Keep ranges inside [a, b), relative to a (adjacent history runs merged)."""
        hs, he = self.hs, self.he
        i = bisect_right(hs, a) - 1
        if i < 0:
            i = 0
        out: list[tuple[int, int]] = []
        n = len(hs)
        while i < n and hs[i] < b:
            s, e = hs[i], he[i]
            if e > a:
                lo = s - a if s > a else 0
                hi = e - a if e < b else b - a
                if out and out[-1][1] == lo:
                    out[-1] = (out[-1][0], hi)
                else:
                    out.append((lo, hi))
            i += 1
        return out

    def remember(self, start: int, chunk, ranges: list[tuple[int, int]], decided: int) -> None:
        """Add the runs kept by feeding ``chunk`` (the stream bytes from ``start``) to the history.

        ``ranges`` are what the parser decided to keep in that feed (absolute,
        sorted, at or after the previous ``decided``), ``decided`` is where its
        decisions now stop. A run split by the chunk's start becomes two runs,
        one per chunk: a copy of either segment can then be checked on its own.
        """
        tail = self.tail
        base = start - len(tail)  # tail holds [base, start)
        n = len(chunk)
        end = start + n
        hs, he, hd = self.hs, self.he, self.hd
        for s, e in ranges:
            if s < start:
                # Bytes fed with an earlier chunk (a head line or record header split
                # across segments), decided only now: their digest comes from the tail.
                m = e if e < start else start
                hs.append(s)
                he.append(m)
                hd.append(CRC32(tail[s - base : m - base]) if s >= base else -1)
                if e <= start:
                    continue
                s = start
            hs.append(s)
            he.append(e)
            hd.append(CRC32(chunk if e - s == n else chunk[s - start : e - start]))
        if decided < end:
            if decided >= start:
                self.tail = bytes(chunk[decided - start :])
            else:
                self.tail = tail[decided - base :] + bytes(chunk)
        elif tail:
            self.tail = b""

    def remember_replacements(self, repl: list[tuple[int, bytes]]) -> None:
        """Add the parser's replacements (absolute start, bytes; inside runs it keeps)."""
        rs, rv = self.rs, self.rv
        if rs is None or rv is None:
            rs = self.rs = []
            rv = self.rv = []
        for s, v in repl:
            if rs and s < rs[-1]:
                i = bisect_right(rs, s)
                rs.insert(i, s)
                rv.insert(i, v)
            else:
                rs.append(s)
                rv.append(v)

    def forget_replacements(self, horizon: int) -> None:
        """Drop the replacements that end at or before ``horizon`` (their history is gone)."""
        rs, rv = self.rs, self.rv
        if rs is None or rv is None:
            return
        k = 0
        while k < len(rs) and rs[k] + len(rv[k]) <= horizon:
            k += 1
        if k:
            del rs[:k]
            del rv[:k]

    def replacements(self, a: int, b: int, ranges: list[tuple[int, int]]) -> list[tuple[int, bytes]]:
        """The replacements of the bytes of [a, b) that ``ranges`` (relative to a) keep, relative
        to a: one split at a bound or outside a range keeps only its part inside."""
        out: list[tuple[int, bytes]] = []
        rs, rv = self.rs, self.rv
        if rs is None or rv is None or not ranges:
            return out
        i = bisect_right(rs, a) - 1
        if i < 0:
            i = 0
        n = len(rs)
        while i < n and rs[i] < b:
            s = rs[i] - a
            v = rv[i]
            e = s + len(v)
            for lo, hi in ranges:
                x = s if s > lo else lo
                y = e if e < hi else hi
                if x < y:
                    out.append((x, v[x - s : y - s]))
            i += 1
        return out

    def settle(self, p: Pending, end: int) -> None:
        """Fix the keep ranges of segment ``p`` up to ``end``: the history's, minus where the copy
        differs; and its replacements."""
        ranges = self.ranges(p.a, end)
        bad = p.bad
        if bad is not None and ranges:
            ranges = _cut(ranges, bad)
        p.ranges = ranges
        if self.rs is not None and ranges:
            repl = self.replacements(p.a, end, ranges)
            if repl:
                p.repl = repl

    def check(self, a: int, r: int, data) -> list[tuple[int, int]]:
        """Where a copy of stream bytes already fed, [a, r) (``data[0]`` at ``a``), must not be kept.

        Returns ranges relative to ``a``, sorted: the kept runs whose digest
        the copy does not match and those it covers only in part (they cannot
        be checked: fail closed), then the undecided bytes (held in ``head`` or
        ``tail``) if the copy does not repeat them exactly. Runs already
        dropped from the history need no entry: nothing keeps them any more.
        """
        bad: list[tuple[int, int]] = []
        dec = self.decided
        top = r if r < dec else dec
        if a < top:
            hs, he, hd = self.hs, self.he, self.hd
            i = bisect_right(hs, a) - 1
            if i < 0:
                i = 0
            n = len(hs)
            while i < n:
                s = hs[i]
                if s >= top:
                    break
                e = he[i]
                if e > a:
                    if s < a or e > r or CRC32(data[s - a : e - a]) != hd[i]:
                        bad.append(((s if s > a else a) - a, (e if e < r else r) - a))
                i += 1
        lo = a if a > dec else dec
        if lo < r:
            held = self.head if self.head else self.tail  # the bytes from ``dec`` on
            if data[lo - a : r - a] != held[lo - dec : r - dec]:
                bad.append((lo - a, r - a))
        return bad


class Flow:
    """Both directions of a TCP connection, and the HTTP methods awaiting responses."""

    __slots__ = ("dirs", "methods", "keys", "last")

    def __init__(self, key: bytes, rkey: bytes, tick: int):
        self.dirs = (Direction(self), Direction(self))
        self.methods: deque[bytes] = deque()
        self.keys = (key, rkey)  # direction keys, as registered in the tracker
        self.last = tick  # when a segment of this flow was last seen (for eviction)


class Pending:
    """A segment with payload whose keep ranges may not be known yet, or a record queued behind
    such segments (``dir`` None: a datagram's LENGTH, a caller's record, ``a`` HELD, or a UDP
    fragment's record, ``a`` FRAG)."""

    __slots__ = ("dir", "a", "b", "ranges", "bad", "repl")

    def __init__(self, direction: Direction | None, a: int, b: int):
        self.dir = direction
        self.a = a
        self.b = b
        self.ranges: list[tuple[int, int]] | bytes | None = None
        # Where this copy differs from the stream's first copy (or cannot be checked
        # against it): never kept. Relative to ``a``, sorted; None for a first copy.
        self.bad: list[tuple[int, int]] | None = None
        self.repl: list[tuple[int, bytes]] | None = None  # replacements of kept bytes, relative to ``a``


def _cut(ranges: list[tuple[int, int]], bad: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``ranges`` minus ``bad`` (both sorted, disjoint)."""
    out: list[tuple[int, int]] = []
    j = 0
    n = len(bad)
    for s, e in ranges:
        while s < e:
            while j < n and bad[j][1] <= s:
                j += 1
            if j == n or bad[j][0] >= e:
                out.append((s, e))
                break
            if bad[j][0] > s:
                out.append((s, bad[j][0]))
            s = bad[j][1]
    return out
