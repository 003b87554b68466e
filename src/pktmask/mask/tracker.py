"""TCP stream tracking for the masking pre-pass: which payload bytes of each segment are kept.

Each direction of each flow is followed in sequence space (unwrapped from 32
bits), reassembled in order with bounded out-of-order buffering, and fed to a
TLS or HTTP parser chosen by sniffing its first bytes. For every segment with
payload, in capture order, ``emit`` receives the keep ranges relative to the
payload start; everything else of that payload is zeroed by the mask pass.

Properties: retransmitted and overlapping bytes get the decision their first
copy got (within RETX_WINDOW of the stream); a gap (lost segment, or buffers
full) is zeroed and the parser resynchronises at a later segment start; a
capture starting mid-stream is sniffed segment by segment; flow state is
bounded (MAX_FLOWS, least recently used first out) and emission waits at most
MAX_PENDING segments for an undecided one, which is then zeroed where still
undecided. Fail closed throughout: bytes nobody decided to keep are zeroed.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import OrderedDict, deque

from pktmask.proto.http import HttpParser
from pktmask.proto.sniff import HTTP_REQUEST, HTTP_RESPONSE, TLS, sniff
from pktmask.proto.tls import TlsParser

FIN, SYN, RST = 0x01, 0x02, 0x04
MAX_FLOWS = 65536
MAX_PENDING = 100_000
OOO_LIMIT = 1 << 20  # out-of-order bytes buffered per direction before declaring a gap
OOO_TOTAL = 64 << 20  # ... and over all flows
RETX_WINDOW = 4 << 20  # keep decisions this far back for retransmissions
HISTORY_COMPACT = 512

OTHER = "other"  # a direction whose protocol is neither TLS nor HTTP: all zero
EVICTED = "evicted"  # state dropped: nothing more is kept

# Handshake message types a first TLS record may plausibly start with.
_HS_TYPES = frozenset({0, 1, 2, 4, 8, 11, 12, 13, 14, 15, 16, 20, 21, 22, 24})


def tls_upgrade_plausible(chunk) -> bool:
    """Extra evidence before trusting a TLS record found where the protocol was unknown.

    Bodies of handshake, alert and change_cipher_spec records are kept, so a
    false match inside another protocol would keep its bytes: require the
    body to look like what such a record holds. Application data is zeroed
    anyway and needs no more evidence.
    """
    if len(chunk) < 6:
        return False
    ctype, length = chunk[0], (chunk[3] << 8) | chunk[4]
    if ctype == 22:
        if length < 4 or len(chunk) < 9 or chunk[5] not in _HS_TYPES:
            return False
        return ((chunk[6] << 16) | (chunk[7] << 8) | chunk[8]) <= (1 << 18)
    if ctype == 20:
        return length == 1 and chunk[5] == 1
    if ctype == 21:
        return length == 2 and chunk[5] in (1, 2)
    return ctype == 23


class Direction:
    """One direction of a TCP flow, in absolute stream offsets."""

    __slots__ = ("flow", "isn", "next", "syn", "kind", "parser", "ooo", "ooo_bytes",
                 "hs", "he", "waiting")

    def __init__(self, flow: Flow):
        self.flow = flow
        self.isn: int | None = None  # 32-bit sequence number of offset 0
        self.next = 0  # next in-order offset
        self.syn = False  # the stream's start was seen
        self.kind: str | None = None
        self.parser = None
        self.ooo: dict[int, bytes] = {}  # out-of-order payload by start offset
        self.ooo_bytes = 0
        self.hs: list[int] = []  # keep history: starts
        self.he: list[int] = []  # ... and ends
        self.waiting: list[Pending] = []  # unresolved segments of this direction

    @property
    def decided(self) -> int:
        """Every offset below this has its final keep/zero decision."""
        return self.parser.decided if self.parser is not None else self.next

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

    __slots__ = ("dirs", "methods")

    def __init__(self):
        self.dirs = (Direction(self), Direction(self))
        self.methods: deque[bytes] = deque()


class Pending:
    """A segment with payload whose keep ranges may not be known yet."""

    __slots__ = ("dir", "a", "b", "ranges")

    def __init__(self, direction: Direction | None, a: int, b: int):
        self.dir = direction
        self.a = a
        self.b = b
        self.ranges: list[tuple[int, int]] | None = None


class StreamTracker:
    """Decides the kept bytes of every TCP segment; ``emit(ranges)`` is called in segment order."""

    def __init__(self, emit):
        self.emit = emit
        self.flows: OrderedDict[bytes, Flow] = OrderedDict()
        self.queue: deque[Pending] = deque()
        self.ooo_total = 0
        self.tls_records_masked = 0
        self.http_messages_masked = 0

    # ---- entry point -----------------------------------------------------------
    def segment(self, key: bytes, seq: int, flags: int, payload) -> None:
        """Account one TCP segment (``payload`` may be empty) seen in capture order."""
        half = (len(key) - 4) // 2
        rkey = key[half : 2 * half] + key[:half] + key[-2:] + key[-4:-2]
        if key <= rkey:
            fkey, side = key, 0
        else:
            fkey, side = rkey, 1
        flow = self.flows.get(fkey)
        if flow is None:
            flow = self.flows[fkey] = Flow()
            if len(self.flows) > MAX_FLOWS:
                self._evict(self.flows.popitem(last=False)[1])
        else:
            self.flows.move_to_end(fkey)
        d = flow.dirs[side]
        if flags & SYN:
            if d.isn is not None and ((seq + 1) & 0xFFFFFFFF) != d.isn and d.next:
                # The 4-tuple is reused by a new connection: start afresh.
                self._evict(flow)
                flow = self.flows[fkey] = Flow()
                d = flow.dirs[side]
            if d.isn is None:
                d.isn = (seq + 1) & 0xFFFFFFFF
                d.syn = True
            seq = (seq + 1) & 0xFFFFFFFF
        n = len(payload)
        if d.isn is None:
            d.isn = seq
        if n:
            a = d.offset(seq)
            p = Pending(d, a, a + n)
            self.queue.append(p)
            self._data(d, p, payload)
        if flags & (FIN | RST):
            self._flush(d)
            if flags & RST:
                self._flush(flow.dirs[1 - side])
        self._drain()

    def finish(self) -> None:
        """End of capture: decide everything still open and emit it."""
        for flow in self.flows.values():
            self._evict(flow)
        self.flows.clear()
        self._drain(force=True)

    # ---- reassembly ------------------------------------------------------------
    def _data(self, d: Direction, p: Pending, payload) -> None:
        a, b = p.a, p.b
        if b <= d.decided:
            p.ranges = d.ranges(a, b)
            return
        if a <= d.next:
            if b > d.next:
                self._feed(d, payload[d.next - a :] if a < d.next else payload)
                self._drain_ooo(d)
        else:
            if a not in d.ooo or len(d.ooo[a]) < b - a:
                old = len(d.ooo.get(a, b""))
                d.ooo[a] = bytes(payload)
                d.ooo_bytes += b - a - old
                self.ooo_total += b - a - old
            if d.ooo_bytes > OOO_LIMIT or self.ooo_total > OOO_TOTAL:
                self._flush(d)
        if p.ranges is None:
            if b <= d.decided:
                p.ranges = d.ranges(a, b)
            else:
                d.waiting.append(p)
        self._resolve(d)

    def _feed(self, d: Direction, chunk) -> None:
        """Feed the next in-order bytes (starting at d.next) to the direction's parser."""
        if d.parser is None and d.kind is not EVICTED:
            found = sniff(chunk)
            if found == TLS and tls_upgrade_plausible(chunk):
                d.kind, d.parser = TLS, TlsParser(d.next, synced=False)
            elif found == HTTP_REQUEST and d.kind is None:
                d.kind, d.parser = found, HttpParser(d.next, False, True, d.flow.methods)
            elif found == HTTP_RESPONSE and d.kind is None:
                d.kind, d.parser = found, HttpParser(d.next, False, False, d.flow.methods)
            elif d.syn:
                # The stream's first bytes are neither TLS nor HTTP: zeroed, and from
                # now on only a TLS upgrade (STARTTLS) can make bytes worth keeping.
                d.kind = OTHER
        d.next += len(chunk)
        parser = d.parser
        if parser is None:
            return
        parser.feed(chunk)
        ranges = parser.take_ranges()
        if ranges:
            hs, he = d.hs, d.he
            for s, e in ranges:
                if he and he[-1] == s:
                    he[-1] = e
                else:
                    hs.append(s)
                    he.append(e)
            if len(hs) > HISTORY_COMPACT:
                self._prune(d)

    def _drain_ooo(self, d: Direction) -> None:
        """Feed buffered segments that have become contiguous."""
        while d.ooo:
            start = min(d.ooo)
            if start > d.next:
                return
            data = d.ooo.pop(start)
            d.ooo_bytes -= len(data)
            self.ooo_total -= len(data)
            end = start + len(data)
            if end > d.next:
                self._feed(d, data[d.next - start :])

    def _flush(self, d: Direction) -> None:
        """No more data will fill the holes: skip them (zeroed) and feed what is buffered."""
        while d.ooo:
            start = min(d.ooo)
            if start > d.next:
                if d.parser is not None:
                    d.parser.gap(start)
                d.next = start
            self._drain_ooo(d)
        self._resolve(d, final=True)

    def _prune(self, d: Direction) -> None:
        horizon = d.decided - RETX_WINDOW
        k = bisect_right(d.he, horizon)
        if k:
            del d.hs[:k]
            del d.he[:k]

    def _resolve(self, d: Direction, final: bool = False) -> None:
        """Fix the ranges of this direction's segments that are now decided (or must be)."""
        if not d.waiting:
            return
        decided = d.decided
        keep = []
        for p in d.waiting:
            if p.b <= decided or final:
                # With ``final``, bytes not yet decided are zeroed: ranges stop at ``decided``.
                p.ranges = d.ranges(p.a, min(p.b, decided))
            else:
                keep.append(p)
        d.waiting = keep

    def _evict(self, flow: Flow) -> None:
        for d in flow.dirs:
            self._flush(d)
            if isinstance(d.parser, TlsParser):
                self.tls_records_masked += d.parser.records_masked
            elif d.parser is not None:
                self.http_messages_masked += d.parser.messages_masked
            d.parser = None
            d.kind = EVICTED

    def _drain(self, force: bool = False) -> None:
        """Emit the decided segments at the head of the queue, in order."""
        q = self.queue
        emit = self.emit
        while q:
            p = q[0]
            if p.ranges is None:
                if not force and len(q) <= MAX_PENDING:
                    return
                d = p.dir
                self._flush(d)
                if p.ranges is None:  # pragma: no cover - flush resolves every waiting segment
                    p.ranges = []
            q.popleft()
            emit(p.ranges)
