"""Fragmented UDP datagrams on a DNS port, reassembled by the masking pre-pass (docs/policy.md "DNS").

A DNS message larger than the path MTU (an mDNS announcement, an EDNS answer) leaves in IPv4 or
IPv6 fragments, and only the first one carries the UDP header with the ports. The walker lists
every fragment of a UDP datagram (``Walk.fragment``: proto/walk_ip.py); ``Reassembly`` collects
their bytes by datagram key, and once a datagram is complete, walks its message with
``proto/dns.py`` as if it had come in one piece: the kept ranges (``dns_stream.message_keep``),
the label pseudonyms and mapped A/AAAA/ECS addresses as replacements
(``dns_stream.replacements``). Each fragment then gets the part of that decision that falls in
its bytes as its FRAGMENT record (mask/codec.py), and the first fragment also the ones'-complement
sum of the sanitized bytes of all the others (fragment offsets are multiples of 8, so the sums
align): the masking pass recomputes the UDP checksum over the whole sanitized datagram.

Complete means: every byte from 0 to the end of the one last fragment, no two fragments
overlapping (a copy of a fragment is accepted only with the same bytes), a first fragment holding
the UDP header, and a UDP length that fits the reassembled datagram (the message ends where it
says, as in a datagram that was not fragmented: the bytes after it are zeroed; real captures
have datagrams a few bytes longer than their UDP length). Everything else fails closed,
every fragment of the datagram zeroed as before (an EMPTY record): a fragment missing at the end of
the capture or ``window`` packets after the datagram's first one (the tracker holds the records of
later packets back meanwhile), a fragment cut short by the snap length, an overlap or a copy with
other bytes, no DNS port, a UDP length that does not fit, no DNS message (``dns.parse`` refuses
it), or a bound: ``MAX_DATAGRAM``
bytes per datagram, ``max_open`` datagrams and ``max_bytes`` fragment bytes held at once (the
oldest datagram fails first). A datagram known not to be kept (another port, a fault) stays as a
tombstone, so that its later fragments are decided at once without being held.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Final

from pktmask.mask.codec import EMPTY, fragment_record
from pktmask.mask.flow import Pending
from pktmask.proto import dns
from pktmask.proto.checksum import ones_sum
from pktmask.proto.dns_stream import AddressMap, NameMap, message_keep, replacements

UDP_HEADER: Final = 8
MAX_DATAGRAM: Final = 0xFFFF  # the largest UDP length
# The bounds below that tests shrink are the defaults of Reassembly's parameters.
WINDOW: Final = 10_000  # packets a datagram may wait for its missing fragments
MAX_OPEN: Final = 1024  # datagrams reassembled (or remembered as not kept) at once
MAX_BYTES: Final = 4 << 20  # fragment bytes held over all of them


def _dns_ports(head: bytes) -> bool:
    """Whether the UDP header ``head`` has a DNS port (source or destination)."""
    return (head[0] << 8 | head[1]) in dns.PORTS or (head[2] << 8 | head[3]) in dns.PORTS


class Datagram:
    """One datagram's fragments so far: their bytes by offset (sorted, disjoint) and pending records."""

    __slots__ = ("starts", "pieces", "waiting", "total", "covered", "born", "dead", "records")

    def __init__(self, born: int) -> None:
        self.starts: list[int] = []  # offsets of the pieces held, sorted
        self.pieces: list[bytes] = []  # ... and their bytes
        self.waiting: list[tuple[Pending, int, int]] = []  # each fragment's record, offset and length
        self.total = -1  # the datagram's length, once its last fragment came
        self.covered = 0  # bytes held (the pieces never overlap)
        self.born = born  # the packet number of its first fragment in the capture
        self.dead = False  # not kept: its fragments are zeroed (a tombstone, holding nothing)
        self.records: list[bytes] | None = None  # once kept: each piece's FRAGMENT record

    def put(self, offset: int, data: bytes, more: bool) -> int:
        """Add a fragment's bytes; returns how many it adds (0 for a copy), or -1 if the datagram
        cannot be kept any more (see the module docstring)."""
        n = len(data)
        end = offset + n
        if not n or end > MAX_DATAGRAM or (more and n & 7):
            return -1
        if offset == 0 and (n < UDP_HEADER or not _dns_ports(data)):
            return -1
        starts = self.starts
        i = bisect_left(starts, offset)
        if i < len(starts) and starts[i] == offset:
            # A copy: accepted only if it repeats the first one exactly, last fragment or not.
            same = self.pieces[i] == data and (not more) == (end == self.total)
            return 0 if same else -1
        if i > 0 and starts[i - 1] + len(self.pieces[i - 1]) > offset:
            return -1  # overlaps the piece before
        if i < len(starts) and starts[i] < end:
            return -1  # ... or the one after
        if more:
            if self.total >= 0 and end >= self.total:
                return -1
        else:
            if self.total >= 0 or (starts and starts[-1] >= end):
                return -1  # a second last fragment, or bytes past this one
            self.total = end
        starts.insert(i, offset)
        self.pieces.insert(i, data)
        self.covered += n
        return n

    def complete(self) -> bool:
        return self.total >= 0 and self.covered == self.total

    def copy_record(self, offset: int, data: bytes, more: bool) -> bytes | None:
        """A kept datagram's record for an exact copy of one of its fragments; None for anything else."""
        records = self.records
        if records is None:
            return None
        i = bisect_left(self.starts, offset)
        if i < len(self.starts) and self.starts[i] == offset and self.pieces[i] == data \
                and (not more) == (offset + len(data) == self.total):
            return records[i]
        return None


def _within(keep: list[tuple[int, int]], a: int, b: int) -> list[tuple[int, int]]:
    """The parts of ``keep`` (sorted) inside [a, b), relative to ``a``."""
    out: list[tuple[int, int]] = []
    for x, y in keep:
        if y <= a:
            continue
        if x >= b:
            break
        out.append(((x if x > a else a) - a, (y if y < b else b) - a))
    return out


def _clip(repl: list[tuple[int, bytes]], ranges: list[tuple[int, int]], a: int) -> list[tuple[int, bytes]]:
    """The replacements ``repl`` (datagram offsets) cut to ``ranges`` (relative to ``a``), relative to ``a``."""
    out: list[tuple[int, bytes]] = []
    if not ranges:
        return out
    lo_all = ranges[0][0]
    hi_all = ranges[-1][1]
    for at, v in repl:
        s = at - a
        e = s + len(v)
        if e <= lo_all or s >= hi_all:
            continue
        for lo, hi in ranges:
            x = s if s > lo else lo
            y = e if e < hi else hi
            if x < y:
                out.append((x, v[x - s : y - s]))
    return out


class Reassembly:
    """The fragmented UDP datagrams of a capture, by key (see the module docstring).

    ``add`` takes each fragment with the tracker's ``Pending`` for its record; the record is
    set (encoded bytes) when the datagram is decided, kept or not. ``tick`` tells the number of
    the packet being read and fails the datagrams that waited too long; ``finish`` fails the
    rest. A datagram kept or not kept is remembered (bounded like the others, and for ``window``
    packets): an exact copy of a kept one's fragment gets the same record, any other fragment
    of a kept one starts a new datagram (its key reused), any fragment of a datagram not kept
    is zeroed.
    ``messages`` counts the DNS messages kept. ``names`` and ``addrs``: the run's maps (None
    without anonymization: names and addresses kept as they are).
    """

    def __init__(self, names: NameMap | None = None, addrs: AddressMap | None = None, *, window: int = WINDOW,
                 max_open: int = MAX_OPEN, max_bytes: int = MAX_BYTES) -> None:
        self.names = names
        self.addrs = addrs
        self.window = window
        self.max_open = max_open
        self.max_bytes = max_bytes
        self.open: dict[bytes, Datagram] = {}  # oldest first
        self.clock = 0
        self.held = 0  # fragment bytes held over all datagrams
        self.messages = 0

    def add(self, p: Pending, key: bytes, offset: int, data: bytes | None, more: bool, packet: int) -> None:
        """A fragment of the datagram ``key`` in packet number ``packet``: its bytes at ``offset``
        of the datagram (None: cut short), ``more`` fragments follow. Sets ``p.ranges`` now or
        when the datagram is decided."""
        self.clock = packet
        dg = self.open.get(key)
        if dg is not None and dg.born < packet - self.window:
            self._fail(key, True)  # too old: the key belongs to a new datagram
            dg = None
        if dg is not None and dg.records is not None:
            record = dg.copy_record(offset, data, more) if data is not None else None
            if record is not None:
                p.ranges = record
                return
            self._fail(key, True)  # not a copy: a new datagram under the same key
            dg = None
        if dg is None:
            if len(self.open) >= self.max_open:
                self._fail(next(iter(self.open)), True)
            dg = self.open[key] = Datagram(packet)
        if dg.dead:
            p.ranges = EMPTY
            return
        dg.waiting.append((p, offset, len(data) if data is not None else 0))
        added = dg.put(offset, data, more) if data is not None else -1
        if added < 0:
            self._fail(key, False)
            return
        self.held += added
        while self.held > self.max_bytes:
            oldest = next(iter(self.open))
            self._fail(oldest, True)
            if oldest == key:
                return
        if dg.complete():
            self._decide(key, dg)

    def tick(self, packet: int) -> bool:
        """Packet number ``packet`` is read: fail the datagrams that have waited ``window``
        packets, forget those decided as long ago. Returns whether a record was decided."""
        self.clock = packet
        decided = False
        limit = packet - self.window
        while self.open:
            key = next(iter(self.open))
            dg = self.open[key]
            if dg.born >= limit:
                break
            if dg.waiting:
                decided = True
            self._fail(key, True)
        return decided

    def fail_pending(self, p: Pending) -> None:
        """The tracker cannot wait for ``p`` any longer: its datagram is not kept."""
        for key, dg in self.open.items():
            for q, _off, _n in dg.waiting:
                if q is p:
                    self._fail(key, False)
                    return
        p.ranges = EMPTY

    def finish(self) -> None:
        """End of capture: the datagrams still incomplete are not kept."""
        for dg in self.open.values():
            for p, _off, _n in dg.waiting:
                p.ranges = EMPTY
        self.open.clear()
        self.held = 0

    def _fail(self, key: bytes, forget: bool) -> None:
        """The datagram ``key`` is not kept: its fragments so far zeroed; it is forgotten, or
        remembered as a tombstone (its later fragments zeroed at once)."""
        dg = self.open[key]
        for p, _off, _n in dg.waiting:
            p.ranges = EMPTY
        dg.waiting = []
        self.held -= dg.covered
        if forget:
            del self.open[key]
            return
        dg.dead = True
        dg.starts = []
        dg.pieces = []
        dg.covered = 0

    def _decide(self, key: bytes, dg: Datagram) -> None:
        """A complete datagram: walk its DNS message and give each fragment its record."""
        total = dg.total
        data = b"".join(dg.pieces)
        # The message ends where the UDP length says, which must fit the datagram; the bytes
        # after it are zeroed (as in a datagram that was not fragmented).
        ulen = data[4] << 8 | data[5]
        m = dns.parse(data, UDP_HEADER, ulen, ulen - UDP_HEADER) if UDP_HEADER <= ulen <= total else None
        if m is None:
            self._fail(key, False)
            return
        keep = message_keep(m, UDP_HEADER, ulen)
        repl = replacements(data, m, 0, self.names, self.addrs)
        # The sanitized datagram after the first fragment: its ones'-complement sum goes into the
        # first fragment's checksum (that fragment's own bytes the masking pass sums itself).
        first = len(dg.pieces[0])
        clean = bytearray(total)
        for a, b in keep:
            clean[a:b] = data[a:b]
        for at, value in repl:
            clean[at : at + len(value)] = value
        extra = ones_sum(clean[first:])
        self.messages += 1
        records: list[bytes] = []
        for i in range(len(dg.starts)):
            offset = dg.starts[i]
            ranges = _within(keep, offset, offset + len(dg.pieces[i]))
            records.append(fragment_record(ranges, _clip(repl, ranges, offset), extra if offset == 0 else -1))
        dg.records = records
        for p, offset, _n in dg.waiting:  # copies too: the record of the piece at their offset
            p.ranges = records[bisect_left(dg.starts, offset)]
        dg.waiting = []
