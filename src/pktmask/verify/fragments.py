"""Fragmented DNS datagrams: reassembled from ORIGINAL and labelled as if they were whole.

docs/policy.md (DNS): a UDP datagram on a DNS port (53, 5353, 5355, source or destination) split
into IPv4 or IPv6 fragments is kept structurally like an unfragmented message when all its
fragments are in the capture, consistent (none overlaps another, exactly one is the last, no gap)
and the UDP length field fits the reassembled datagram. The audit's labels then follow the
datagram: ``dnsfields.label_dns`` over the message (up to the UDP length; bytes after it must be
zero, as in a datagram that was not fragmented), and each fragment's bytes take the labels of
their place in the datagram. Any other fragment keeps today's labels (its data must be zero; a
first fragment's DNS labelled as far as it goes, ``transport.udp_``).

Zero is allowed wherever a field is kept or a pseudonym, so the audit may reassemble more than
the sanitizer does and never less: it waits longer for a missing fragment (``WINDOW`` packets),
forgets a rejected datagram sooner (``FORGET``: a fragment of its key after that starts a new
one), accepts a fragment of any length and an exact copy at any time after completion.

Pass 1 (``Reassembler``, fed by ``scan.Pass1`` with the walker's ``fragments``) collects the
fragments of UDP datagrams, in capture order per datagram key (addresses and identification:
``network``), and keeps each complete DNS datagram's reassembled bytes; an exact copy of a
fragment (same place, same bytes) is no overlap, and one seen after its datagram completed
belongs to it. A fragment that overlaps another otherwise, a second last fragment, a fragment
past the last or cut short by the snapshot length rejects its datagram: it is not collected
any more, until ``FORGET`` packets after its first fragment. Memory is bounded (``MAX_DATAGRAM`` per datagram, ``MAX_OPEN``/``MAX_OPEN_BYTES`` for
datagrams still incomplete, the oldest evicted first, ``MAX_KEPT_BYTES``/``MAX_FRAGMENTS`` for
complete ones); past a bound the datagram keeps today's labels and ``gave_up`` says so.

Pass 2 (``FragmentAudit``, used by ``audit.Aligned``) relabels each fragment frame of a complete
datagram before the frame is audited. A pseudonym field (a label, an A/AAAA address, an ECS
prefix with its option header) split by a fragment boundary, and a name whose labels lie in more
than one fragment, cannot be judged in one frame: the frame counts their bytes as kept, and once
every fragment has been lined up with SANITIZED the datagram is audited whole for them (the
findings name the packet and offset of each piece); the names of the sanitized message are
then compared with the names of ORIGINAL (``scan.Searcher.dns_message``). A later copy of a
fragment already audited is judged on its own: a split field's piece by its kind.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections.abc import Callable
from typing import Final

from pktmask.verify.dnsfields import DNS_PORTS, label_dns
from pktmask.verify.labels import ECS4, ECS6, KEEP, OTHER, PSEUDONYMS, Spans

UDP: Final = 17
UDP_HEADER: Final = 8
ECS_OPTION: Final = 4  # an ECS prefix is judged with the family and prefix lengths before it
MAX_DATAGRAM: Final = 65535  # the UDP length field's largest value
WINDOW: Final = 1 << 15  # packets an incomplete datagram waits after its first fragment
FORGET: Final = 1000  # packets a rejected datagram's key stays rejected after its first fragment
MAX_OPEN: Final = 1 << 14  # datagrams being collected (or rejected, remembered by key)
MAX_OPEN_BYTES: Final = 8 << 20  # their bytes held
MAX_KEPT_BYTES: Final = 16 << 20  # bytes of complete DNS datagrams kept for the audit
MAX_FRAGMENTS: Final = 1 << 18  # fragment frames of complete DNS datagrams

Span = tuple[int, int, int, str]
Hit = tuple["Datagram", int, int, int]  # datagram, offset in it, data start and end in the frame


class Datagram:
    """One fragmented UDP datagram: collected in pass 1, audited in pass 2."""

    __slots__ = ("key", "born", "starts", "pieces", "last", "total", "size", "packets", "rejected",
                 "data", "length", "ends", "labels", "label_starts", "split", "groups", "sanitized", "where",
                 "audited")

    def __init__(self, key: bytes, born: int):
        self.key = key
        self.born = born  # the packet number of its first fragment in the capture
        self.starts: list[int] = []  # offsets of the fragments held, sorted
        self.pieces: dict[int, bytes] = {}
        self.last = -1  # offset of the last fragment
        self.total = -1  # the datagram's length, once its last fragment is seen
        self.size = 0  # bytes held
        self.packets: list[tuple[int, int]] = []  # (packet number, offset) of every fragment frame
        self.rejected = False
        self.data = b""  # complete: the reassembled datagram (UDP header first)
        self.length = 0  # complete: its UDP length (where the DNS message ends)
        self.ends: dict[int, int] = {}  # complete: each fragment's offset -> end
        # Pass 2: the labels by datagram offset, what only the whole datagram can judge, the
        # sanitized bytes lined up so far and where each fragment was (offsets, packets, start).
        self.labels: Spans | None = None
        self.label_starts: list[int] = []
        self.split: list[Span] = []
        self.groups: list[list[tuple[int, int]]] = []
        self.sanitized: bytearray | None = None
        self.where: dict[int, tuple[int, int, int, int, int]] = {}
        self.audited = False

    def copy_of(self, offset: int, chunk: bytes, more: bool) -> bool:
        """Is this fragment an exact copy of one of the complete datagram?"""
        end = self.ends.get(offset)
        return end == offset + len(chunk) and more == (end != self.total) and \
            self.data[offset:end] == chunk

    def label(self) -> Spans:
        """The labels of the complete datagram (computed in pass 2, dropped once it is audited)."""
        if self.labels is None:
            spans = Spans(self.total)
            label_dns(self.data, UDP_HEADER, self.length, spans)
            spans.add(self.length, self.total, OTHER, "udp.payload (after the udp length)")
            spans.items = flatten(spans.items)
            self.labels = spans
            self.label_starts = [x for x, _, _, _ in spans.items]
            starts = sorted(self.ends)
            self.split = [it for it in spans.items if it[2] in PSEUDONYMS and not self.within(starts, *field_of(it))]
            self.groups = [g for g in spans.names if not self.within(starts, g[0][0], g[-1][1])]
        return self.labels

    def within(self, starts: list[int], a: int, b: int) -> bool:
        """Do the datagram bytes ``[a, b)`` lie in one fragment?"""
        i = bisect_right(starts, a) - 1
        return i >= 0 and b <= self.ends[starts[i]]


def field_of(item: Span) -> tuple[int, int]:
    """The datagram bytes a pseudonym field is judged with (an ECS prefix: its option header too)."""
    a, b, kind, _ = item
    return (a - ECS_OPTION, b) if kind == ECS4 or kind == ECS6 else (a, b)


def flatten(items: list[Span]) -> list[Span]:
    """Sorted spans without overlaps: where two overlap, the first one decides (as the audit does)."""
    out: list[Span] = []
    pos = 0
    for a, b, kind, name in sorted(items):
        a = max(a, pos)
        if a < b:
            out.append((a, b, kind, name))
            pos = b
    return out


class Reassembler:
    """Pass 1: complete fragmented DNS datagrams of ORIGINAL (see the module docstring).

    ``on_message`` receives each complete datagram's DNS message (the needles of its names and
    addresses); ``by_packet`` maps a packet number to the complete datagrams it holds fragments of.
    """

    def __init__(self, on_message: Callable[[bytes], None] | None = None):
        self.on_message = on_message
        self.open: dict[bytes, Datagram] = {}
        self.closed: dict[bytes, Datagram] = {}  # the last complete datagram of each key
        self.by_packet: dict[int, list[tuple[Datagram, int]]] = {}
        self.open_bytes = 0
        self.kept_bytes = 0
        self.fragments = 0
        self.gave_up = False

    def add(self, number: int, frame: bytes, key: bytes, offset: int, a: int, b: int, more: bool,
            proto: int) -> None:
        """Collect the fragment ``frame[a:b]`` of packet ``number`` (a walker's ``fragments`` entry)."""
        if proto != UDP:
            return
        chunk = frame[a:b]
        dg = self.open.get(key)
        if dg is not None and dg.born < number - (FORGET if dg.rejected else WINDOW):
            self.reject(dg)
            del self.open[key]
            dg = None
        if dg is None:
            done = self.closed.get(key)
            if done is not None and done.copy_of(offset, chunk, more):
                self.register(number, done, offset)
                return
            dg = self.open[key] = Datagram(key, number)
            if len(self.open) > MAX_OPEN:
                self.reject(self.open.pop(next(iter(self.open))))
        if dg.rejected:
            return
        end = offset + len(chunk)
        if b > len(frame) or not chunk or end > MAX_DATAGRAM:
            self.reject(dg)  # cut short, empty, or longer than a UDP datagram can be
            return
        held = dg.pieces.get(offset)
        if held is not None:
            if held == chunk and more == (offset != dg.last):
                dg.packets.append((number, offset))  # an exact copy
            else:
                self.reject(dg)
            return
        if not self.fits(dg, offset, end, more, chunk) or not self.room(dg, len(chunk)):
            self.reject(dg)
            return
        insort(dg.starts, offset)
        dg.pieces[offset] = chunk
        dg.size += len(chunk)
        self.open_bytes += len(chunk)
        dg.packets.append((number, offset))
        if not more:
            dg.last, dg.total = offset, end
        if dg.total == dg.size and 0 in dg.pieces:
            self.complete(dg)

    @staticmethod
    def fits(dg: Datagram, offset: int, end: int, more: bool, chunk: bytes) -> bool:
        """Does a new fragment keep the datagram consistent: no overlap, one last fragment, none
        past it, a first fragment on a DNS port?"""
        starts = dg.starts
        i = bisect_right(starts, offset)
        if i and starts[i - 1] + len(dg.pieces[starts[i - 1]]) > offset:
            return False
        if i < len(starts) and end > starts[i]:
            return False
        if more:
            if dg.total >= 0 and end > dg.last:
                return False
        elif dg.total >= 0 or (starts and starts[-1] >= end):
            return False
        if offset == 0:
            if len(chunk) < UDP_HEADER:
                return False
            sport, dport = chunk[0] << 8 | chunk[1], chunk[2] << 8 | chunk[3]
            if sport not in DNS_PORTS and dport not in DNS_PORTS:
                return False
        return True

    def room(self, dg: Datagram, size: int) -> bool:
        """Make room for ``size`` more bytes held, evicting the oldest other incomplete datagrams."""
        while self.open_bytes + size > MAX_OPEN_BYTES:
            victim = next((d for d in self.open.values() if d is not dg and d.size), None)
            if victim is None:
                self.gave_up = True
                return False
            del self.open[victim.key]
            self.reject(victim)
            self.gave_up = True
        return True

    def reject(self, dg: Datagram) -> None:
        """Today's labels for the datagram; its key stays known (while open) so its other
        fragments are not collected as a new one."""
        dg.rejected = True
        self.open_bytes -= dg.size
        dg.starts, dg.pieces, dg.packets, dg.size = [], {}, [], 0

    def complete(self, dg: Datagram) -> None:
        length = dg.pieces[0][4] << 8 | dg.pieces[0][5]
        if not UDP_HEADER <= length <= dg.total:
            self.reject(dg)
            return
        if self.kept_bytes + dg.total > MAX_KEPT_BYTES or self.fragments + len(dg.packets) > MAX_FRAGMENTS:
            self.gave_up = True
            self.reject(dg)
            return
        dg.data = b"".join(dg.pieces[s] for s in dg.starts)
        dg.length = length
        dg.ends = {s: s + len(dg.pieces[s]) for s in dg.starts}
        self.open_bytes -= dg.size
        self.kept_bytes += dg.total
        packets = dg.packets
        dg.starts, dg.pieces, dg.packets, dg.size = [], {}, [], 0
        del self.open[dg.key]
        self.closed[dg.key] = dg
        for number, offset in packets:
            self.register(number, dg, offset)
        if self.on_message is not None:
            self.on_message(dg.data[UDP_HEADER:length])

    def register(self, number: int, dg: Datagram, offset: int) -> None:
        if self.fragments >= MAX_FRAGMENTS:
            self.gave_up = True  # a copy past the bound: today's labels
            return
        self.fragments += 1
        self.by_packet.setdefault(number, []).append((dg, offset))

    def finish(self) -> None:
        """Drop what never completed."""
        for dg in self.open.values():
            self.reject(dg)
        self.open.clear()
        self.closed.clear()


class Sink:
    """Translates the findings of a whole-datagram audit (datagram offsets) to the packets and
    frame offsets of the fragments that hold them, one finding per fragment touched."""

    def __init__(self, findings, where: list[tuple[int, int, int, int, int]]):
        self.findings = findings
        self.where = sorted(where)

    def field(self, packet: int, original: int, offset: int, length: int, name: str, kind: str,
              category: str = "fields", value: str | None = None) -> None:
        end = offset + length
        for lo, hi, number, orig, start in self.where:
            a, b = max(lo, offset), min(hi, end)
            if a < b:
                self.findings.field(number, orig, start + a - lo, b - a, name, kind, category, value)


class FragmentAudit:
    """Pass 2: the labels of complete DNS datagrams given to their fragments (module docstring).

    ``check(o, s, items, groups, sink)`` audits whole-datagram fields into ``sink`` (``audit.Aligned``),
    which hands them on to ``findings``; ``message(msg, packet)`` compares a sanitized message's
    names with ORIGINAL's.
    """

    def __init__(self, reassembler: Reassembler, findings, check: Callable, message: Callable[[bytes, int], None]):
        self.by_packet = reassembler.by_packet
        self.findings = findings
        self.check = check
        self.message = message
        self.copied: Datagram | None = None  # the audited datagram whose labels a copy brought back

    def relabel(self, number: int, fragments: list[tuple[bytes, int, int, int, bool, int]], spans: Spans) -> list[Hit]:
        """Give the fragments of ORIGINAL packet ``number`` (its walk's ``spans``) their labels."""
        known = self.by_packet.get(number)
        if not known:
            return []
        hits: list[Hit] = []
        for key, offset, a, b, _more, _proto in fragments:
            for dg, off in known:
                if dg.key == key and off == offset and dg.ends.get(off) == offset + b - a:
                    if dg.audited and dg is not self.copied:
                        if self.copied is not None:  # labels again for copies of one datagram at a time
                            self.copied.labels = None
                        self.copied = dg
                    self.place(dg, off, a, b, spans)
                    hits.append((dg, off, a, b))
                    break
        return hits

    @staticmethod
    def place(dg: Datagram, off: int, a: int, b: int, spans: Spans) -> None:
        labels = dg.label()
        shift = a - off
        lo = a + UDP_HEADER if off == 0 else a  # the UDP header keeps the walker's labels
        dlo, dhi = lo - shift, b - shift
        alone = dg.audited or off in dg.where
        items = labels.items
        new: list[Span] = []
        for i in range(max(bisect_right(dg.label_starts, dlo) - 1, 0), len(items)):
            x, y, kind, name = items[i]
            if x >= dhi:
                break
            if y <= dlo:
                continue
            if kind in PSEUDONYMS:
                fa, fb = field_of(items[i])
                if not (dlo <= fa and fb <= dhi):
                    # split: judged with the whole datagram, or (a later copy) piece by piece
                    kind = kind if alone and kind != ECS4 and kind != ECS6 else KEEP
            new.append((max(x, dlo) + shift, min(y, dhi) + shift, kind, name))
        groups = [[(x + shift, y + shift) for x, y in g] for g in labels.names
                  if dlo <= g[0][0] and g[-1][1] <= dhi]
        kept: list[Span] = []
        for item in spans.items:
            x, y = item[0], item[1]
            if y <= lo or x >= b:
                kept.append(item)
                continue
            if x < lo:
                kept.append((x, lo, item[2], item[3]))
            if y > b:
                kept.append((b, y, item[2], item[3]))
        spans.items = sorted(kept + new)
        spans.names = [g for g in spans.names if not lo <= g[0][0] < b] + groups

    def lined_up(self, hits: list[Hit], s: bytes, packet: int, original: int) -> None:
        """The SANITIZED frame ``s`` (packet ``packet``) lines up with the ORIGINAL one: note its
        fragments' bytes; a datagram whose fragments are all noted is audited whole."""
        for dg, off, a, b in hits:
            if dg.audited or off in dg.where:
                continue
            if dg.sanitized is None:
                dg.sanitized = bytearray(dg.total)
            dg.sanitized[off:off + b - a] = s[a:b]
            dg.where[off] = (off, off + b - a, packet, original, a)
            if len(dg.where) == len(dg.ends):
                self.audit(dg, packet)

    def audit(self, dg: Datagram, packet: int) -> None:
        dg.label()
        assert dg.sanitized is not None
        sanitized = bytes(dg.sanitized)
        if dg.split or dg.groups:
            items: list[Span] = []
            pos = 0
            for x, y, kind, name in dg.split:
                if pos < x:
                    items.append((pos, x, KEEP, ""))
                items.append((x, y, kind, name))
                pos = y
            items.append((pos, dg.total, KEEP, ""))
            self.check(dg.data, sanitized, items, dg.groups, Sink(self.findings, list(dg.where.values())))
        self.message(sanitized[UDP_HEADER:dg.length], packet)
        dg.audited = True
        dg.labels, dg.label_starts, dg.split, dg.groups = None, [], [], []
        dg.sanitized, dg.where = None, {}
