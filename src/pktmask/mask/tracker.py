"""TCP stream tracking for the masking pre-pass: which payload bytes of each segment are kept.

Each direction of each flow is followed in sequence space (unwrapped from 32
bits), reassembled in order with bounded out-of-order buffering, and fed to a
TLS or HTTP parser chosen by sniffing its first bytes, or to the DNS parser
when a port is a DNS port. For every segment with
payload, in capture order, ``emit`` receives the keep ranges relative to the
payload start; everything else of that payload is zeroed by the mask pass.

Properties: the parser sees each stream offset once, from its first copy in
capture order (out-of-order buffers keep first copies too); a retransmitted or
overlapping copy keeps only bytes its first copy kept, and only where it
repeats them: every kept run of the history carries a CRC-32 of the first
copy's bytes, a copy covering a run in full must match it, a run covered in
part or beyond RETX_WINDOW of the stream (history dropped) is zeroed, and
copies of bytes still undecided or buffered are compared byte for byte. A gap
(lost segment, or buffers full) is zeroed and the parser resynchronises at a
later segment start; a capture starting mid-stream is sniffed segment by
segment; flow state is bounded (MAX_FLOWS, least recently used first out) and
emission waits at most MAX_PENDING segments, or MAX_HELD records of later packets
(``hold``), for an undecided one, which is then zeroed where still undecided (a
first fragment still waiting for its datagram's length gets NO_LENGTH): memory
stays bounded whatever follows it. Fail closed throughout: bytes nobody decided to
keep are zeroed.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from collections.abc import Callable
from typing import Final

from pktmask.mask.codec import NO_LENGTH, DecisionCodec, has_segment_record, length_record
from pktmask.mask.datagrams import Reassembly
from pktmask.mask.flow import FRAG, HELD, Direction, Flow, Pending
from pktmask.proto.dns import PORTS as DNS_PORTS
from pktmask.proto.dns_stream import DnsStreamParser
from pktmask.proto.http import HttpParser
from pktmask.proto.http_hosts import HostRewriter
from pktmask.proto.sniff import HTTP_REQUEST, HTTP_RESPONSE, TLS, sniff
from pktmask.proto.tls import TlsParser, tls_upgrade_plausible

FIN: Final = 0x01
SYN: Final = 0x02
RST: Final = 0x04
# The bounds below that tests shrink are the defaults of StreamTracker's parameters (compiled,
# a module constant is inlined where it is used: a test could not patch it).
MAX_FLOWS: Final = 65536
CLOSED_LINGER: Final = 20_000  # segments a closed flow is kept for late retransmissions
IDLE_SEGMENTS: Final = 1_000_000  # segments after which a silent flow is forgotten
SNIFF_BYTES: Final = 16  # a stream's first bytes held back (undecided) until this many arrived
MAX_DATAGRAMS: Final = 1 << 16  # fragmented datagrams waiting for their last fragment
MAX_PENDING: Final = 100_000
MAX_HELD: Final = 100_000  # records of later packets (verdicts, lengths) queued behind an undecided one
OOO_LIMIT: Final = 1 << 20  # out-of-order bytes buffered per direction before declaring a gap
OOO_TOTAL: Final = 64 << 20  # ... and over all flows
RETX_WINDOW: Final = 4 << 20  # keep decisions (and their digests) this far back for retransmissions
HISTORY_COMPACT: Final = 512

DNS: Final = "dns"  # a direction on a DNS port: DnsStreamParser
OTHER: Final = "other"  # a direction whose protocol is neither TLS nor HTTP: all zero
EVICTED: Final = "evicted"  # state dropped: nothing more is kept

def _dns_port(key: bytes) -> bool:
    """Whether the flow key (addresses, then source and destination port) has a DNS port."""
    n = len(key)
    return (key[n - 4] << 8 | key[n - 3]) in DNS_PORTS or (key[n - 2] << 8 | key[n - 1]) in DNS_PORTS


class StreamTracker:
    """Decides the kept bytes of every TCP segment, in capture order.

    ``emit(ranges)`` is called once per segment with payload (keep ranges
    relative to the payload start; ``codec.has_segment_record``), once per
    ``datagram`` call (its LENGTH or NO_LENGTH record, encoded) and once per
    ``hold`` (the blob), in the order of the calls. ``replace(replacements)``
    is called just before the ``emit`` of a segment some of whose kept bytes
    the parser replaces (offset relative to the payload start, bytes), split
    at the segment's bounds and inside its keep ranges. The bounds are
    parameters (tests shrink them); the defaults are the module's constants.

    ``names`` and ``addrs`` (the run's name and address maps; None without
    anonymization) give the stream parsers the pseudonyms of the names and
    addresses they keep (DNS over TCP, HTTP hosts), and the DNS messages of
    fragmented UDP datagrams theirs (``fragment``: ``datagrams``, a
    mask/datagrams.py ``Reassembly``; tests shrink its bounds by giving
    another).
    """

    def __init__(self, emit, replace=None, *, max_flows: int = MAX_FLOWS, max_pending: int = MAX_PENDING,
                 ooo_limit: int = OOO_LIMIT, retx_window: int = RETX_WINDOW, names=None, addrs=None,
                 max_held: int = MAX_HELD):
        # The decision stream itself (the masking stage's) is called directly: compiled, a
        # native method call instead of a call through a bound method; tests give callables.
        self.sink: DecisionCodec | None = emit if isinstance(emit, DecisionCodec) else None
        if self.sink is not None:
            self.emit = self.sink.ranges
            self.replace = self.sink.replacements
        else:
            self.emit = emit
            self.replace = replace if replace is not None else _unwritable
        self.max_flows = max_flows
        self.max_pending = max_pending
        self.max_held = max_held
        self.ooo_limit = ooo_limit
        self.retx_window = retx_window
        self.names = names
        self.addrs = addrs
        self.dns_messages = 0
        self._map_name: Callable[[bytes], bytes] | None = names.map_name if names is not None else None
        self.dirs: dict[bytes, Direction] = {}
        self.flows = 0
        self.queue: deque[Pending] = deque()
        self.held = 0  # entries of ``queue`` that are opaque blobs (see ``hold``)
        self.ooo_total = 0
        self.tick = 0
        self.tls_records_masked = 0
        self.names_mapped = 0  # host names the TLS parsers replaced by pseudonyms
        self.http_messages_masked = 0
        self._frag_wait: dict[bytes, list[Pending]] = {}
        self._closed: deque[tuple[int, Flow]] = deque()
        self._frag_len: dict[bytes, int] = {}
        self.datagrams = Reassembly(names, addrs)

    # ---- entry points ----------------------------------------------------------
    def segment(self, key: bytes, seq: int, flags: int, payload) -> None:
        """Account one TCP segment (``payload`` may be empty) seen in capture order.

        ``key`` is source address + destination address + source port +
        destination port, as raw bytes.
        """
        self.segment_in(key, seq, flags, payload, 0, len(payload))

    def segment_in(self, key: bytes, seq: int, flags: int, frame, start: int, end: int) -> None:
        """``segment`` for the payload ``frame[start:end]``, viewed only if a parser reads it."""
        tick = self.tick = self.tick + 1
        d = self.dirs.get(key)
        if d is None:
            d = self._new_direction(key)
        flow = d.flow
        flow.last = tick
        if flags & SYN:
            if d.isn >= 0 and ((seq + 1) & 0xFFFFFFFF) != d.isn and d.next:
                # The 4-tuple is reused by a new connection: start afresh.
                self._drop(flow)
                d = self._new_direction(key)
                flow = d.flow
            if d.isn < 0:
                d.isn = (seq + 1) & 0xFFFFFFFF
                d.syn = True
            seq = (seq + 1) & 0xFFFFFFFF
        n = end - start
        isn = d.isn
        if isn < 0:
            isn = d.isn = seq
        if has_segment_record(start, end):
            off = d.next
            delta = (seq - isn - off) & 0xFFFFFFFF
            if not delta and not self.queue and not d.ooo:
                # In order, nothing waiting: the common case needs no bookkeeping.
                parser = d.parser
                if parser is not None and parser.skip(n):
                    d.next = off + n  # inside a zeroed body (TLS application data): nothing kept
                    sink = self.sink
                    if sink is not None:
                        sink.empty()
                    else:
                        self.emit([])
                    if flags & (FIN | RST):
                        self._closing(flow, d, flags)
                    if not tick & 0xFFF:
                        self._expire()
                    return
                self._feed(d, memoryview(frame)[start:end])
                b = off + n
                if b <= d.decided:
                    if d.waiting:
                        self._resolve(d)
                    if not d.hs:
                        self._emit([])
                    elif d.rs is None:
                        self._emit(d.ranges(off, b))
                    else:
                        ranges = d.ranges(off, b)
                        repl = d.replacements(off, b, ranges)
                        if repl:
                            self.replace(repl)
                        self._emit(ranges)
                else:
                    p = Pending(d, off, b)
                    self.queue.append(p)
                    d.waiting.append(p)
            else:
                if delta >= 0x80000000:
                    delta -= 1 << 32
                a = off + delta
                p = Pending(d, a, a + n)
                self.queue.append(p)
                self._data(d, p, memoryview(frame)[start:end])
        if flags & (FIN | RST):
            self._closing(flow, d, flags)
        if self.queue:
            self._drain()
        if not tick & 0xFFF:
            self._expire()

    def _closing(self, flow: Flow, d: Direction, flags: int) -> None:
        """FIN or RST: nothing more fills this direction's holes; a closed flow is forgotten later."""
        self._flush(d)
        d.fin = True
        if flags & RST:
            other = flow.dirs[1 - flow.dirs.index(d)]
            self._flush(other)
            other.fin = True
        if flow.dirs[0].fin and flow.dirs[1].fin:
            self._closed.append((self.tick, flow))

    def _expire(self) -> None:
        """Forget closed flows after a while, and flows idle for long (memory stays bounded)."""
        closed = self._closed
        while closed and closed[0][0] + CLOSED_LINGER < self.tick:
            _when, flow = closed.popleft()
            if flow.last + CLOSED_LINGER < self.tick and self.dirs.get(flow.keys[0]) is flow.dirs[0]:
                self._drop(flow)
            elif self.dirs.get(flow.keys[0]) is flow.dirs[0]:
                closed.append((flow.last, flow))  # seen again (retransmissions): wait more
        if not self.tick & 0xFFFF:
            idle = self.tick - IDLE_SEGMENTS
            stale = {id(d.flow): d.flow for d in self.dirs.values() if d.flow.last < idle}
            for flow in stale.values():
                self._drop(flow)

    def hold(self, blob: bytes, packet: int = -1) -> None:
        """Emit ``blob`` as is, in capture order: after every segment still undecided.

        The caller uses this for its own per-packet records, which must stay in
        step with the segments' keep ranges. Call only while ``queue`` is not
        empty (otherwise nothing is waiting: emit the blob directly). ``packet``
        is the number of the packet (the clock of fragmented datagrams).
        """
        p = Pending(None, HELD, 0)
        p.ranges = blob
        self.queue.append(p)
        self.held += 1
        # Records wait: fragmented datagrams wait a bounded number of packets, and no
        # undecided entry holds back more than ``max_held`` records.
        if self.held > self.max_held or (self.datagrams.open and packet >= 0 and self.datagrams.tick(packet)):
            self._drain()

    def fragment(self, key: bytes, offset: int, data: bytes | None, more: bool, packet: int) -> None:
        """A fragment of a UDP datagram (``codec.has_fragment_record``) in packet number
        ``packet``: its bytes at ``offset`` of datagram ``key`` (None: cut short), ``more``
        fragments follow. Its FRAGMENT record is emitted once the datagram is decided
        (mask/datagrams.py)."""
        p = Pending(None, FRAG, 0)
        self.queue.append(p)
        self.datagrams.add(p, key, offset, data, more, packet)
        self._drain()

    def datagram(self, key: bytes) -> None:
        """A first fragment: its datagram's transport length is emitted when known."""
        p = Pending(None, 0, 0)
        length = self._frag_len.pop(key, None)
        if length is not None:
            p.ranges = length_record(length)
        else:
            if len(self._frag_wait) >= MAX_DATAGRAMS:
                for waiting in self._frag_wait.pop(next(iter(self._frag_wait))):
                    waiting.ranges = NO_LENGTH
            self._frag_wait.setdefault(key, []).append(p)
        self.queue.append(p)
        self._drain()

    def last_fragment(self, key: bytes, length: int) -> None:
        """The last fragment of a datagram tells the datagram's transport length."""
        waiting = self._frag_wait.pop(key, None)
        if waiting is None:
            if len(self._frag_len) >= MAX_DATAGRAMS:
                self._frag_len.clear()
            self._frag_len[key] = length  # the first fragment comes later
            return
        record = length_record(length)
        for p in waiting:
            p.ranges = record
        self._drain()

    def finish(self) -> None:
        """End of capture: decide everything still open and emit it."""
        seen = set()
        for d in list(self.dirs.values()):
            if id(d.flow) not in seen:
                seen.add(id(d.flow))
                self._evict(d.flow)
        self.dirs.clear()
        for waiting in self._frag_wait.values():
            for p in waiting:
                p.ranges = NO_LENGTH
        self._frag_wait.clear()
        self.datagrams.finish()
        self.dns_messages += self.datagrams.messages
        self.datagrams.messages = 0
        self._drain(force=True)

    def _new_direction(self, key: bytes) -> Direction:
        half = (len(key) - 4) // 2
        rkey = key[half : 2 * half] + key[:half] + key[-2:] + key[-4:-2]
        other = self.dirs.get(rkey)
        if other is not None:
            flow = other.flow
            d = flow.dirs[1] if flow.keys[0] == rkey else flow.dirs[0]
            self.dirs[key] = d
            return d
        if self.flows >= self.max_flows:
            self._evict_oldest()
        flow = Flow(key, rkey, self.tick)
        self.flows += 1
        self.dirs[key] = flow.dirs[0]
        return flow.dirs[0]

    def _evict_oldest(self) -> None:
        """Drop the least recently seen eighth of the flows (amortised LRU)."""
        flows = {id(d.flow): d.flow for d in self.dirs.values()}
        for flow in sorted(flows.values(), key=lambda f: f.last)[: max(1, len(flows) // 8)]:
            self._drop(flow)

    def _drop(self, flow: Flow) -> None:
        """Decide what is open in a flow and forget it."""
        self._evict(flow)
        for k in flow.keys:
            if self.dirs.get(k) is not None and self.dirs[k].flow is flow:
                del self.dirs[k]
        self.flows -= 1

    # ---- reassembly ------------------------------------------------------------
    def _data(self, d: Direction, p: Pending, payload) -> None:
        """A segment off the in-order fast path: a copy of fed bytes, in order, or ahead of a hole."""
        a, b = p.a, p.b
        nxt = d.next
        if a < nxt:
            # A retransmission or overlap: it may keep only what it repeats of the first copy.
            bad = d.check(a, b if b < nxt else nxt, payload)
            if bad:
                p.bad = bad
        if b <= d.decided:
            d.settle(p, b)
            return
        if b > nxt:
            if d.ooo:
                self._insert(d, p, a if a > nxt else nxt, payload)
            elif a <= nxt:
                self._feed(d, payload[nxt - a :] if a < nxt else payload)
            else:
                self._store(d, a, payload)
            if d.ooo:
                self._drain_ooo(d)
                if d.ooo_bytes > self.ooo_limit or self.ooo_total > OOO_TOTAL:
                    self._flush(d)
        if p.ranges is None:
            if b <= d.decided:
                d.settle(p, b)
            else:
                d.waiting.append(p)
        self._resolve(d)

    def _insert(self, d: Direction, p: Pending, lo: int, payload) -> None:
        """Buffer the bytes of segment ``p`` from ``lo`` (not before ``d.next``) with the first copies.

        Parts that no buffered segment holds are stored; where one does, its
        bytes stay (they will be fed) and this copy must repeat them or is not
        kept there. Buffered pieces never overlap.
        """
        a, b = p.a, p.b
        ooo = d.ooo
        bad = p.bad
        pos = lo
        for s in sorted([k for k in ooo if k < b and k + len(ooo[k]) > lo]):
            data = ooo[s]
            e = s + len(data)
            if s > pos:
                self._store(d, pos, payload[pos - a : s - a])
                pos = s
            y = e if e < b else b
            if payload[pos - a : y - a] != data[pos - s : y - s]:
                if bad is None:
                    bad = p.bad = []
                bad.append((pos - a, y - a))
            pos = y
        if pos < b:
            self._store(d, pos, payload[pos - a :])

    def _store(self, d: Direction, start: int, view) -> None:
        data = bytes(view)
        d.ooo[start] = data
        d.ooo_bytes += len(data)
        self.ooo_total += len(data)

    def _feed(self, d: Direction, chunk) -> None:
        """Feed the next in-order bytes (starting at d.next) to the direction's parser."""
        if d.parser is None and d.kind is None and _dns_port(d.flow.keys[0]):
            # DNS over TCP is known by its port (docs/policy.md, "DNS"): framed from the
            # stream's start, or resynchronised at a segment that starts a whole message.
            d.kind = DNS
            d.parser = DnsStreamParser(d.next, d.syn and d.next == 0, self.names, self.addrs)
        if d.parser is None and d.kind is not EVICTED:
            if d.head or (d.syn and d.kind is None and len(chunk) < SNIFF_BYTES):
                # A stream's first segment may be tiny (a split record header, "GE"):
                # hold the first bytes, undecided, until there are enough to sniff.
                d.next += len(chunk)
                d.head += bytes(chunk)
                if len(d.head) < SNIFF_BYTES:
                    return
                chunk, d.head = d.head, b""
                d.next -= len(chunk)
            found = sniff(chunk)
            if found == TLS and tls_upgrade_plausible(chunk, d.kind is OTHER):
                d.kind, d.parser = TLS, TlsParser(d.next, synced=False, names=self._map_name)
            elif found == HTTP_REQUEST and d.kind is None:
                d.kind, d.parser = found, HttpParser(d.next, False, True, d.flow.methods, self._hosts())
            elif found == HTTP_RESPONSE and d.kind is None:
                d.kind, d.parser = found, HttpParser(d.next, False, False, d.flow.methods, self._hosts())
            elif d.syn:
                # The stream's first bytes are neither TLS nor HTTP: zeroed, and from
                # now on only a TLS upgrade (STARTTLS) can make bytes worth keeping.
                d.kind = OTHER
        start = d.next
        d.next = start + len(chunk)
        parser = d.parser
        if parser is None:
            return
        parser.feed(chunk)
        ranges = parser.take_ranges()
        dec = parser.decided
        if ranges or dec < d.next or d.tail:
            d.remember(start, chunk, ranges, dec)
            if ranges:  # replacements come with the keep ranges that keep their bytes
                repl = parser.take_replacements()
                if repl:
                    d.remember_replacements(repl)
            if len(d.hs) > HISTORY_COMPACT:
                self._prune(d)

    def _hosts(self) -> HostRewriter | None:
        """The host rewriter of a new HTTP direction: None without the maps (hosts zeroed)."""
        if self.names is None or self.addrs is None:
            return None
        return HostRewriter(self.names, self.addrs)

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
        if d.head:
            # The stream ended (or lost bytes) before it could be recognised: zeroed.
            d.head = b""
            if d.parser is None:
                d.kind = OTHER
        while d.ooo:
            start = min(d.ooo)
            if start > d.next:
                if d.parser is not None:
                    d.parser.gap(start)
                d.tail = b""  # everything up to the gap is decided now
                d.next = start
            self._drain_ooo(d)
        self._resolve(d, final=True)

    def _prune(self, d: Direction) -> None:
        horizon = d.decided - self.retx_window
        k = bisect_right(d.he, horizon)
        if k:
            del d.hs[:k]
            del d.he[:k]
            del d.hd[:k]
            if d.rs is not None:
                d.forget_replacements(horizon)

    def _resolve(self, d: Direction, final: bool = False) -> None:
        """Fix the ranges of this direction's segments that are now decided (or must be)."""
        if not d.waiting:
            return
        decided = d.decided
        keep = []
        for p in d.waiting:
            if p.b <= decided or final:
                # With ``final``, bytes not yet decided are zeroed: ranges stop at ``decided``.
                d.settle(p, min(p.b, decided))
            else:
                keep.append(p)
        d.waiting = keep

    def _evict(self, flow: Flow) -> None:
        for d in flow.dirs:
            self._flush(d)
            if isinstance(d.parser, TlsParser):
                self.tls_records_masked += d.parser.records_masked
                self.names_mapped += d.parser.names_mapped
            elif isinstance(d.parser, DnsStreamParser):
                self.dns_messages += d.parser.messages
            elif d.parser is not None:
                self.http_messages_masked += d.parser.messages_masked
            d.parser = None
            d.kind = EVICTED
            d.tail = b""

    def _drain(self, force: bool = False) -> None:
        """Emit the decided segments at the head of the queue, in order."""
        q = self.queue
        while q:
            p = q[0]
            if p.ranges is None:
                if not force and len(q) - self.held <= self.max_pending and self.held <= self.max_held:
                    return
                if p.dir is not None:
                    self._flush(p.dir)  # decides p.ranges (mypy does not know: read it below)
                elif p.a == FRAG:
                    self.datagrams.fail_pending(p)  # its whole datagram zeroed, for consistency
            q.popleft()
            ranges = p.ranges
            if ranges is None:  # a datagram whose last fragment never came: unknown
                ranges = NO_LENGTH if p.dir is None else []
            elif p.dir is None and p.a == HELD:
                self.held -= 1
            if p.repl is not None:
                self.replace(p.repl)
            self._emit(ranges)

    def _emit(self, ranges: list[tuple[int, int]] | bytes) -> None:
        sink = self.sink
        if sink is not None:
            sink.ranges(ranges)
        else:
            self.emit(ranges)



def _unwritable(repl: list[tuple[int, bytes]]) -> None:
    """The ``replace`` of a tracker built without one: replacements would be lost, the names they
    replace kept. Fail instead."""
    raise RuntimeError("the stream tracker has replacements and nowhere to write them")
