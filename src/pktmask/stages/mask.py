"""MaskingStage: zero payloads except TLS/HTTP structure, then make every checksum valid.

Two passes. The pre-pass (``observe``) classifies every frame and runs the
stream tracker over every TCP segment and every UDP fragment (DNS datagrams
reassembled: mask/datagrams.py); it writes, in capture order, a verdict
per packet, the keep ranges (and replacements) of each segment with payload
and of each UDP fragment, and the transport length of each fragmented datagram to the decision stream
(records: mask/codec.py; moved by mask/decisions.py through a pipe to the
masking pass, or scratch from the TempFileManager). The masking
pass (``replay``, ``process``) reads them back, zeroes everything the
walk and the decisions do not keep, and recomputes the checksums of
every fully captured IPv4 header and TCP/UDP/ICMP/ICMPv6/IGMP/GRE message (a
cut short one is updated incrementally instead). Zeroed bytes add nothing to
a checksum, so only kept bytes are summed.
"""

from __future__ import annotations

import struct
from typing import Final

from pktmask.capture.packet import Packet, Patch, zeros
from pktmask.core.pipeline.stage import FileContext, TwoPassStage
from pktmask.mask.codec import (
    V_FULL,
    V_PARTIAL,
    has_fragment_record,
    has_length_record,
    has_segment_record,
    verdict_dropped,
    verdict_general,
    verdict_layout,
)
from pktmask.mask.decisions import DecisionStream
from pktmask.mask.tracker import StreamTracker
from pktmask.proto.checksum import adjust, field, ones_sum, word, write_fcs
from pktmask.proto.layout import fast_layout
from pktmask.proto.link import check_linktype
from pktmask.proto.walk import IP4_HEADER, L4_QUOTED, Walk, walk

_H: Final = struct.Struct("!H").pack_into
_from: Final = int.from_bytes
_UDP: Final = frozenset({17, 136})  # UDP and UDP-Lite: a computed 0x0000 is sent as 0xFFFF


def _sums(raw: bytes, l3: int, l4: int, proto: int, end: int, v6: bool, ps: int) -> tuple[int, int]:
    """Return the base sums of a fully captured frame's checksums, modulo 0xFFFF.

    The transport sum covers the pseudo header's addresses, length and
    protocol and the transport header without its checksum (a masked
    payload adds nothing); the IPv4 sum is the header checksum minus the
    header's sum (0 for IPv6). The final pass adds the anonymizer's
    word-sum change and any kept payload bytes.
    """
    at = l4 + 16 if proto == 6 else l4 + 6
    old = (raw[at] << 8) | raw[at + 1]
    tsum = (_words(raw, l3 + 8 if v6 else l3 + 12, ps) + proto + end - l4 - old) % 0xFFFF
    if v6:
        return tsum, 0
    return tsum, ((raw[l3 + 10] << 8 | raw[l3 + 11]) - _words(raw, l3, l3 + 20)) % 0xFFFF


def _words(raw: bytes, a: int, b: int) -> int:
    """The sum of the big-endian 16-bit words of ``raw[a:b]`` (``b - a`` even; a header).

    Compiled, a loop on machine integers over a header's few words costs a fraction of
    ``int.from_bytes`` (a call through its argument parser and a long integer); the
    result is not reduced (at most 30 words of 0xFFFF here)."""
    s = 0
    i = a
    while i < b:
        s += raw[i] << 8 | raw[i + 1]
        i += 2
    return s


def _headers(raw: bytes, l3: int, v6: bool, proto: int, at: int, ps: int, old: int, s: int,
             isum: int, delta: int, patch: Patch | None) -> bytes:
    """Return the headers ``raw[:ps]`` with the anonymizer's ``patch`` and fresh checksums.

    ``s`` and ``isum`` are the transport and IPv4 checksums' sums, ``delta``
    the patch's word-sum change (see ``MaskingStage.process``). The result is
    spliced from slices: one slice assignment into a bytearray costs about as
    much as copying the whole frame.
    """
    tck = word(field(s, proto == 17))
    if v6:
        if patch is None:
            return b"".join((raw[:at], tck, raw[at + 2 : ps]))
        return b"".join((patch[0], raw[12 : l3 + 8], patch[2], raw[l3 + 40 : at], tck, raw[at + 2 : ps]))
    # Recompute: the old checksum minus the sum of the header that carried it.
    ipck = word((isum - delta) % 0xFFFF)
    if proto == 17 and not old:
        tck = b"\0\0"  # a zero UDP checksum over IPv4 means "none": it stays
    if patch is None:
        return b"".join((raw[: l3 + 10], ipck, raw[l3 + 12 : at], tck, raw[at + 2 : ps]))
    return b"".join((patch[0], raw[12 : l3 + 10], ipck, patch[2], raw[l3 + 20 : at], tck, raw[at + 2 : ps]))


def _replace(buf: bytearray, base: int, ranges: list[tuple[int, int]], repl: list[tuple[int, bytes]],
             l4: int) -> int:
    """Write the replacements ``repl`` (offsets relative to ``base``, the payload start) over the
    bytes of ``buf`` that ``ranges`` keep; none reaches a byte outside them, which stays zero.
    Returns the change of the word sum from ``l4`` on (modulo 0xFFFF)."""
    delta = 0
    size = len(buf) - base
    for at, value in repl:
        e = at + len(value)
        for a, b in ranges:
            x = at if at > a else a
            y = e if e < b else b
            if y > size:
                y = size
            if x < y:
                new = value[x - at : y - at]
                old = _from(buf[base + x : base + y], "big")
                v = _from(new, "big")
                if (base + y - l4) & 1:  # ends mid-word: the (next) byte pads it
                    old <<= 8
                    v <<= 8
                delta += v - old
                buf[base + x : base + y] = new
    return delta % 0xFFFF


class MaskingStage(TwoPassStage):
    """Protocol-aware payload masking (docs/policy.md "Payloads"), fail closed."""

    name = "mask"
    takes_hand_off = True  # applies the anonymizer's ``Packet.patch`` and reuses its ``Packet.walk``

    def __init__(self, names=None, addrs=None):
        """``names``, ``addrs``: the run's name and address maps (the anonymizer's), which give
        the stream parsers the pseudonyms of kept names and addresses inside TCP streams (DNS
        over TCP, HTTP hosts, TLS SNI and certificates); None without anonymization (kept as they are). The pre-pass
        runs in a forked child: the maps (and the key) reach it in memory only."""
        self._ctx: FileContext | None = None
        self._names = names
        self._addrs = addrs
        self._reset()

    def _reset(self) -> None:
        self._stream = DecisionStream(self._ctx)
        self._tracker = StreamTracker(self._stream,
                                      names=self._names, addrs=self._addrs)
        self._packets = 0  # pre-pass: packets seen (their verdicts carry it, modulo 256)
        self._linktypes: set[int] = set()
        self._lt = -1  # the link type checked last: the per-packet test is one comparison
        self.bytes_zeroed = 0
        self.tls_records_masked = 0
        self.http_messages_masked = 0
        self.names_mapped = 0
        self.dns_messages = 0

    def start(self, ctx: FileContext) -> None:
        self._stream.close()
        self._ctx = ctx
        self._reset()

    def produce_to(self, write_fd: int) -> None:
        """The pre-pass (in another process) writes the decisions to this pipe, not to scratch."""
        self._stream.attach(write_fd=write_fd)

    def consume_from(self, read_fd: int) -> None:
        """The masking pass reads the decisions from this pipe (the pre-pass runs elsewhere)."""
        self._stream.attach(read_fd=read_fd)

    def flush_decisions(self) -> None:
        """From the pre-pass process reading a live stream: push the decisions made so far
        to the masking pass now (the input stalled), so output flows before EOF."""
        self._stream.flush()

    def send_failure(self, exc: BaseException) -> None:
        """From the pre-pass process: tell the masking pass why no more decisions come."""
        self._stream.write_failure(exc)

    def _name(self) -> str:
        """The current input's name, for messages."""
        return self._ctx.name if self._ctx is not None else ""

    def _check(self, linktype: int) -> None:
        if linktype not in self._linktypes:
            check_linktype(linktype, self._name())
            self._linktypes.add(linktype)
        self._lt = linktype

    # ---- pre-pass ----------------------------------------------------------------
    def _verdict(self, blob: bytes) -> None:
        self._packets += 1
        tracker = self._tracker
        if tracker.queue:
            tracker.hold(blob, self._packets)  # stays behind the keep ranges of earlier packets
            return
        self._stream.write(blob)

    def observe_drop(self, index: int) -> None:
        """Pre-pass: the stage ``index`` of the pre-pass chain dropped this packet."""
        self._verdict(verdict_dropped(self._packets, index))

    def observe(self, pkt: Packet) -> None:
        lt = pkt.linktype
        if lt != self._lt:
            self._check(lt)
        raw = pkt.data
        data = raw if isinstance(raw, bytes) else bytes(raw)  # bytes: native ops when compiled
        layout = fast_layout(data, lt)
        if layout is not None:
            l3, l4, proto, end, v6, full, ps = layout
            if full:
                tsum, isum = _sums(data, l3, l4, proto, end, v6, ps)
                self._verdict(verdict_layout(self._packets, V_FULL, l3, l4, proto, v6, ps, end, tsum, isum))
            else:
                self._verdict(verdict_layout(self._packets, V_PARTIAL, l3, l4, proto, v6, ps, end, 0, 0))
            if proto == 6:
                # Byte by byte: compiled, cheaper than a struct call and its tuple.
                seq = data[l4 + 4] << 24 | data[l4 + 5] << 16 | data[l4 + 6] << 8 | data[l4 + 7]
                # Addresses and ports are adjacent here: the flow key is one slice.
                key = data[l3 + 8 if v6 else l3 + 12 : l4 + 4]
                self._tracker.segment_in(key, seq, data[l4 + 13], data, ps, end)
            return
        self._verdict(verdict_general(self._packets))
        d = walk(data, lt, False)
        tracker = self._tracker
        for job in d.jobs:
            if has_length_record(job):
                assert job.frag is not None
                tracker.datagram(job.frag)
        if d.last_fragment is not None:
            tracker.last_fragment(*d.last_fragment)
        fr = d.fragment
        if has_fragment_record(fr):
            assert fr is not None
            key, start, end, offset, more = fr
            tracker.fragment(key, offset, data[start:end] if end <= len(data) else None, more, self._packets)
        seg = d.tcp
        if seg is not None:
            tracker.segment_in(seg.key, seg.seq, seg.flags, data, seg.start, seg.end)

    def end_prepass(self) -> None:
        tracker = self._tracker
        tracker.finish()
        self.tls_records_masked = tracker.tls_records_masked
        self.http_messages_masked = tracker.http_messages_masked
        self.names_mapped = tracker.names_mapped
        self._tracker = StreamTracker(self._stream,
                                      names=self._names, addrs=self._addrs)  # let the flows go
        self._stream.finish_writing(self.tls_records_masked, self.http_messages_masked, self.names_mapped,
                                    tracker.dns_messages)

    # ---- masking pass ------------------------------------------------------------
    def replay(self, pkt: Packet) -> int:
        """Final pass: take this packet's pre-pass verdict; returns -1 to keep it, or the
        index of the pre-pass stage that dropped it. A kept packet gets its ``layout``."""
        return self._stream.read_verdict(pkt)

    def process(self, pkt: Packet) -> Packet:
        lt = pkt.linktype
        if lt != self._lt:
            self._check(lt)
        data = pkt.data
        layout = pkt.layout  # not ``pkt.layout or ...``: compiled, that re-boxes the tuple
        if layout is None:
            layout = fast_layout(data, lt)
        if layout is None or not layout[5]:
            pkt.data = self._general(data, lt, pkt.walk)
            pkt.tail = 0
            return pkt
        # A fully captured frame of the common shape (the hot path): same bytes as
        # ``_general``. ``pkt.patch`` is the anonymizer's address rewrite, applied
        # here. Every sum is taken from the original bytes (the headers differ from
        # the output only by the patch, whose word-sum change it carries):
        # ``int.from_bytes`` of a ``bytes`` slice is the cheapest sum there is.
        l3, l4, proto, end, v6, _full, ps = layout
        raw = data if isinstance(data, bytes) else bytes(data)  # bytes: native ops when compiled
        n = len(raw)
        at = l4 + 16 if proto == 6 else l4 + 6
        old = (raw[at] << 8) | raw[at + 1]
        stream = self._stream
        if stream.sums:  # replayed: the pre-pass took the sums
            stream.sums = False
            s = stream.tsum
            isum = stream.isum
        else:
            s, isum = _sums(raw, l3, l4, proto, end, v6, ps)
        patch = pkt.patch
        if patch is not None:
            macs, ao, addrs, delta = patch
            s += delta
        else:
            delta = 0
        ranges = None
        if proto == 6 and has_segment_record(ps, end) and not stream.skip_empty():  # usually: nothing kept
            ranges = stream.read_segment()
        if ranges:
            buf = bytearray(raw)
            pos = ps
            kept = 0
            for a, b in ranges:
                a += ps
                b += ps
                if a > pos:
                    buf[pos:a] = zeros(a - pos)
                v = _from(raw[a:b], "big")
                if (b - l4) & 1:  # the range ends mid-word: pad with the (zero) next byte
                    v <<= 8
                s += v
                kept += b - a
                pos = b
            if pos < n:
                buf[pos:n] = zeros(n - pos)
            if stream.replaced is not None:
                s += _replace(buf, ps, ranges, stream.replaced, l4)
            self.bytes_zeroed += n - ps - kept
            pkt.tail = 0
        else:
            # Only the headers survive: the writer appends the zeros (``tail``).
            self.bytes_zeroed += n - ps
            pkt.tail = n - ps
            pkt.data = _headers(raw, l3, v6, proto, at, ps, old, s, isum, delta, patch)
            return pkt
        if patch is not None:
            buf[:12] = macs
            buf[ao : ao + len(addrs)] = addrs
        if not v6:
            # Recompute: the old checksum minus the sum of the header that carried it.
            _H(buf, l3 + 10, (isum - delta) % 0xFFFF)
            if proto == 17 and not old:
                pkt.data = buf
                return pkt  # a zero UDP checksum over IPv4 means "none": it stays
        _H(buf, at, field(s, proto == 17))
        pkt.data = buf
        return pkt

    def _general(self, data, lt: int, w: Walk | None = None):
        """Mask any frame the walker understands (and zero what it does not).

        ``w`` is the anonymizer's walk of this frame when it ran just before in this pass
        (the walk of the original frame finds the structure of the rewritten one: see
        ``proto/walk.py``); else the frame is walked here."""
        d = w if w is not None else walk(data, lt)
        buf = bytearray(data)
        size = len(buf)
        zero = d.zero
        jobs = [j for j in d.jobs if j.mask]
        lengths = [self._stream.read_length() for job in d.jobs if has_length_record(job)]
        fr = d.fragment
        kept: list[tuple[int, int]] = []
        frepl: list[tuple[int, bytes]] | None = None
        fstart = -1
        extra = 0  # the sum of a kept datagram's other fragments (the first fragment's checksum)
        if has_fragment_record(fr):
            # A fragment of a UDP datagram: zeroed but for what its DNS message keeps (the
            # first fragment's UDP header is kept by the walk).
            assert fr is not None
            fstart = fr[1]
            kept, extra = self._stream.read_fragment()
            frepl = self._stream.replaced
            pos = fstart + 8 if fr[3] == 0 else fstart
            for a, b in kept:
                zero.append((pos, fstart + a))
                pos = fstart + b
            zero.append((pos, fr[2]))
        seg = d.tcp
        ranges: list[tuple[int, int]] = []
        if seg is not None and has_segment_record(seg.start, seg.end):
            pos = seg.start
            ranges = self._stream.read_segment()
            for a, b in ranges:
                zero.append((pos, seg.start + a))
                pos = seg.start + b
            zero.append((pos, seg.end))
        before = [ones_sum(buf[j.start : j.end]) if j.kind == L4_QUOTED and j.end <= size else 0 for j in jobs]
        pseudo = [j.pseudo_sum(buf) if j.pseudo else 0 for j in jobs]
        zeroed = 0
        for a, b in zero:
            if b > size:
                b = size
            if a < b:
                buf[a:b] = zeros(b - a)
                zeroed += b - a
        self.bytes_zeroed += zeroed
        if ranges and self._stream.replaced is not None:
            assert seg is not None
            _replace(buf, seg.start, ranges, self._stream.replaced, seg.start)  # checksums come after
        if kept and frepl is not None:
            _replace(buf, fstart, kept, frepl, fstart)
        for at, keep in d.trim:  # bits past an ECS prefix
            if at < size:
                buf[at] &= keep
        self.dns_messages += d.dns
        for i in range(len(jobs) - 1, -1, -1):
            j = jobs[i]
            kind, start, end, at, frag = j.kind, j.start, j.end, j.at, j.frag
            if frag is not None:
                length = lengths.pop()
            if at + 2 > size:
                continue
            if kind == IP4_HEADER:
                buf[at : at + 2] = b"\0\0"
                buf[at : at + 2] = ((-ones_sum(buf[start:end])) % 0xFFFF).to_bytes(2, "big")
                continue
            old = (buf[at] << 8) | buf[at + 1]
            if j.zero_ok and old == 0:
                continue
            if end > size:
                # Cut short (a quoted packet, a segment past the snap length): the checksum
                # cannot be recomputed over the sanitized bytes, and an update would tell of
                # the zeroed and the missing ones. Zeroed (docs/policy.md).
                new = 0
            elif kind == L4_QUOTED:
                # A quoted header, all of it quoted: consistent with what was zeroed after it.
                new = adjust(old, ones_sum(buf[start:end]) - before[i], j.proto in _UDP)
            elif frag is not None:
                # Later fragments are all zeros, or (a kept DNS datagram) summed in ``extra``.
                if length < 0:  # last fragment never seen: the datagram may hold more than the
                    buf[at : at + 2] = b"\0\0"  # capture, and the old checksum would tell of it
                    continue  # (docs/policy.md, "Checksums")
                if pseudo[i]:
                    if at == start + 6:  # UDP states the datagram's length itself
                        total = (buf[start + 4] << 8) | buf[start + 5]
                    else:
                        total = length
                else:
                    total = 0
                if start == fstart:  # a kept DNS datagram: the other fragments' sanitized bytes
                    total += extra
                buf[at : at + 2] = b"\0\0"
                new = field(ones_sum(buf[start:end]) + pseudo[i] + total, j.proto in _UDP)
            else:
                buf[at : at + 2] = b"\0\0"
                s = ones_sum(buf[start:end])
                if pseudo[i]:
                    s += pseudo[i] + (end - start)
                new = field(s, j.proto in _UDP)
            buf[at : at + 2] = new.to_bytes(2, "big")
        write_fcs(buf, d.fcs)  # an 802.11 FCS covers everything above: last
        return buf

    def finish(self) -> dict[str, int]:
        self.tls_records_masked, self.http_messages_masked, self.names_mapped, dns = self._stream.read_trailer()
        self.dns_messages += dns  # DNS over TCP, counted by the pre-pass's stream parsers
        self._stream.close()
        counts = {
            "payload_bytes_zeroed": self.bytes_zeroed,
            "tls_records_masked": self.tls_records_masked,
            "http_messages_masked": self.http_messages_masked,
            "dns_messages_kept": self.dns_messages,
            "names_pseudonymized": self.names_mapped,  # inside TCP streams (the anonymizer counts DNS over UDP)
        }
        self._reset()
        return counts
