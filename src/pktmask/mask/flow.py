"""Per-connection state of the stream tracker: a flow, its two directions, pending segments.

A ``Direction`` follows one side of a TCP connection in absolute stream
offsets and remembers which of its bytes are kept; a ``Flow`` pairs the two
directions (HTTP responses need the requests' methods); a ``Pending`` is a
segment with payload whose keep ranges are not known yet. The
``StreamTracker`` (tracker.py) owns and drives them.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque

from pktmask.proto.http import HttpParser
from pktmask.proto.tls import TlsParser


class Direction:
    """One direction of a TCP flow, in absolute stream offsets."""

    __slots__ = ("flow", "isn", "next", "syn", "kind", "parser", "ooo", "ooo_bytes",
                 "hs", "he", "waiting", "head", "fin")

    def __init__(self, flow: Flow):
        self.flow = flow
        self.isn = -1  # 32-bit sequence number of offset 0 (-1: not known yet)
        self.next = 0  # next in-order offset
        self.syn = False  # the stream's start was seen
        self.kind: str | None = None
        self.parser: TlsParser | HttpParser | None = None
        self.ooo: dict[int, bytes] = {}  # out-of-order payload by start offset
        self.ooo_bytes = 0
        self.hs: list[int] = []  # keep history: starts
        self.he: list[int] = []  # ... and ends
        self.waiting: list[Pending] = []  # unresolved segments of this direction
        self.head = b""  # a stream's first bytes, held until there are enough to sniff
        self.fin = False  # FIN (or RST) seen

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
        """Keep ranges inside [a, b), relative to a."""
        hs, he = self.hs, self.he
        i = bisect_right(hs, a) - 1
        if i < 0:
            i = 0
        out = []
        n = len(hs)
        while i < n and hs[i] < b:
            s, e = hs[i], he[i]
            if e > a:
                out.append((max(s, a) - a, min(e, b) - a))
            i += 1
        return out


class Flow:
    """Both directions of a TCP connection, and the HTTP methods awaiting responses."""

    __slots__ = ("dirs", "methods", "keys", "last")

    def __init__(self, key: bytes, rkey: bytes, tick: int):
        self.dirs = (Direction(self), Direction(self))
        self.methods: deque[bytes] = deque()
        self.keys = (key, rkey)  # direction keys, as registered in the tracker
        self.last = tick  # when a segment of this flow was last seen (for eviction)


class Pending:
    """A segment with payload whose keep ranges may not be known yet."""

    __slots__ = ("dir", "a", "b", "ranges")

    def __init__(self, direction: Direction | None, a: int, b: int):
        self.dir = direction
        self.a = a
        self.b = b
        self.ranges: list[tuple[int, int]] | bytes | None = None
