"""MaskingStage: zero payloads except TLS/HTTP structure, then make every checksum valid.

Two passes. The pre-pass (``observe``) runs the stream tracker over every TCP
segment and spills, in capture order, the keep ranges of each segment with
payload (and the transport length of each fragmented datagram) to a scratch
file from the TempFileManager. The masking pass (``process``) dissects each
frame again, zeroes everything the dissector and the spilled decisions do not
keep, and recomputes the checksums of every fully captured IPv4 header and
TCP/UDP/ICMP/ICMPv6/IGMP/GRE message (a cut short one is updated
incrementally instead). Zeroed bytes add nothing to a checksum, so only kept
bytes are summed.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import BinaryIO, Final

from pktmask.capture.packet import Packet, Patch, zeros
from pktmask.core.pipeline.stage import FileContext, Stage
from pktmask.errors import PktmaskError, from_oserror
from pktmask.mask.tracker import StreamTracker
from pktmask.proto.checksum import adjust, ones_sum, word
from pktmask.proto.dissect import IP4_HEADER, L4_QUOTED, dissect
from pktmask.proto.layout import fast_layout
from pktmask.proto.link import check_linktype

SPILL_CHUNK: Final = 1 << 20
PIPE_CHUNK: Final = 1 << 12  # through a pipe, hand decisions over soon
# Record markers beyond any range count: the pre-pass's last word, or its failure.
_TRAILER: Final = 0xFFFF  # then two u32: TLS records masked, HTTP messages masked
_FAILURE: Final = 0xFFFE  # then u32 exit code, u32 length, UTF-8 message
_U32: Final = struct.Struct("<I")
_U16: Final = struct.Struct("<H")
_H: Final = struct.Struct("!H").pack_into
# The per-packet verdict the pre-pass records ahead of a packet's keep ranges:
# kind, index of the stage that dropped it, then the fast layout (ip offset,
# protocol, v6, payload offset, end) and, for a fully captured frame, the base
# sums of its checksums (see ``_sums``). The final pass replays it instead of
# running the dropping stages, the layout classification and those sums again.
# ``replay`` reads the fields at these offsets byte by byte (little-endian).
_VERDICT: Final = struct.Struct("<BBBB?xHIHH")
_VSIZE: Final = 16
_V_GENERAL: Final = 0
_V_FULL: Final = 1
_V_PARTIAL: Final = 2
_V_DROPPED: Final = 3
_VPACK: Final = _VERDICT.pack  # bound once: a method call on the Struct costs a lookup each time
_VERDICT_GENERAL: Final = _VPACK(_V_GENERAL, 0, 0, 0, False, 0, 0, 0, 0)
_PAIRS: dict[int, struct.Struct] = {}
_PAIR: Final = struct.Struct("<II").pack
_from: Final = int.from_bytes


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
    # Reduce each long integer first: the small terms then add on machine integers.
    tsum = (_from(raw[l3 + 8 if v6 else l3 + 12 : ps], "big") % 0xFFFF + proto + end - l4 - old) % 0xFFFF
    if v6:
        return tsum, 0
    return tsum, ((raw[l3 + 10] << 8 | raw[l3 + 11]) - _from(raw[l3 : l3 + 20], "big") % 0xFFFF) % 0xFFFF


def _headers(raw: bytes, l3: int, v6: bool, proto: int, at: int, ps: int, old: int, s: int,
             isum: int, delta: int, patch: Patch | None) -> bytes:
    """Return the headers ``raw[:ps]`` with the anonymizer's ``patch`` and fresh checksums.

    ``s`` and ``isum`` are the transport and IPv4 checksums' sums, ``delta``
    the patch's word-sum change (see ``MaskingStage.process``). The result is
    spliced from slices: one slice assignment into a bytearray costs about as
    much as copying the whole frame.
    """
    tck = word(0xFFFF - s % 0xFFFF)
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


def _pairs(n: int) -> struct.Struct:
    s = _PAIRS.get(n)
    if s is None:
        s = _PAIRS[n] = struct.Struct(f"<{2 * n}I")
    return s


class MaskingStage(Stage):
    """Protocol-aware payload masking (CONTRACT §4 "Payloads"), fail closed."""

    name = "mask"
    needs_prepass = True

    def __init__(self):
        self._ctx: FileContext | None = None
        self._spill_path: Path | None = None
        self._spill: BinaryIO | None = None
        self._rfd = self._wfd = -1  # pipe ends when the pre-pass runs in another process
        self._reset()

    def _reset(self) -> None:
        self._tracker = StreamTracker(self._emit)
        self._linktypes: set[int] = set()
        self._lt = -1  # the link type checked last: the per-packet test is one comparison
        self._out = bytearray()
        self._in = b""
        self._pos = 0
        # Set by replay for a fully captured frame: the pre-pass took its checksum sums.
        # Every packet is replayed before it is processed, so this never goes stale.
        self._replayed_sums = False
        self._tsum = 0
        self._isum = 0
        self.bytes_zeroed = 0
        self.tls_records_masked = 0
        self.http_messages_masked = 0

    def start(self, ctx: FileContext) -> None:
        self._close_spill()
        self._reset()
        self._ctx = ctx

    def attach_pipe(self, read_fd: int = -1, write_fd: int = -1) -> None:
        """Exchange the decisions through a pipe instead of scratch: the pre-pass
        (in another process) writes to ``write_fd``, the masking pass reads ``read_fd``.
        The stage owns and closes the descriptor it is given."""
        self._rfd, self._wfd = read_fd, write_fd

    def send_failure(self, exc: BaseException) -> None:
        """From the pre-pass process: tell the masking pass why no more decisions come."""
        msg = str(exc).encode("utf-8", "replace")[:4000]
        self._out += _U16.pack(_FAILURE) + _U32.pack(getattr(exc, "exit_code", 1)) + _U32.pack(len(msg)) + msg
        self._flush_out()

    def _name(self) -> str:
        """The current input's name, for messages."""
        return self._ctx.name if self._ctx is not None else ""

    def _check(self, linktype: int) -> None:
        if linktype not in self._linktypes:
            check_linktype(linktype, self._name())
            self._linktypes.add(linktype)
        self._lt = linktype

    # ---- pre-pass ----------------------------------------------------------------
    def _emit(self, ranges) -> None:
        out = self._out
        if not ranges:
            out += b"\0\0"
        elif isinstance(ranges, bytes):  # a verdict held back behind undecided segments
            out += ranges
            return
        else:
            out += _U16.pack(len(ranges))
            for a, b in ranges:  # usually one: cheaper than flattening for one pack call
                out += _PAIR(a, b)
        if len(out) >= (PIPE_CHUNK if self._wfd >= 0 else SPILL_CHUNK):
            self._flush_out()

    def _flush_out(self) -> None:
        out, self._out = self._out, bytearray()
        if self._wfd >= 0:
            view = memoryview(out)
            while view:
                sent = os.write(self._wfd, view)
                view = view[sent:]  # not view[os.write(...):]: mypyc evaluates a slice bound twice
            return
        try:
            if self._spill is None:
                assert self._ctx is not None, "start() comes first"
                self._spill_path = self._ctx.manager.create_temp_file(prefix="mask-", suffix=".ranges")
                self._spill = open(self._spill_path, "wb")
            self._spill.write(out)
        except OSError as exc:
            raise from_oserror(exc, str(self._spill_path)) from exc

    def _verdict(self, blob: bytes) -> None:
        tracker = self._tracker
        if tracker.queue:
            tracker.hold(blob)  # stays behind the keep ranges of earlier packets
            return
        out = self._out
        out += blob
        if len(out) >= (PIPE_CHUNK if self._wfd >= 0 else SPILL_CHUNK):
            self._flush_out()

    def observe_drop(self, index: int) -> None:
        """Pre-pass: the stage ``index`` of the pre-pass chain dropped this packet."""
        self._verdict(_VPACK(_V_DROPPED, index, 0, 0, False, 0, 0, 0, 0))

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
                self._verdict(_VPACK(_V_FULL, 0, l3, proto, v6, ps, end, tsum, isum))
            else:
                self._verdict(_VPACK(_V_PARTIAL, 0, l3, proto, v6, ps, end, 0, 0))
            if proto == 6:
                # Byte by byte: compiled, cheaper than a struct call and its tuple.
                seq = data[l4 + 4] << 24 | data[l4 + 5] << 16 | data[l4 + 6] << 8 | data[l4 + 7]
                # Addresses and ports are adjacent here: the flow key is one slice.
                key = data[l3 + 8 if v6 else l3 + 12 : l4 + 4]
                self._tracker.segment_in(key, seq, data[l4 + 13], data, ps, end)
            return
        self._verdict(_VERDICT_GENERAL)
        d = dissect(data, lt)
        tracker = self._tracker
        for job in d.jobs:
            if job[6] is not None:
                tracker.datagram(job[6])
        if d.last_fragment is not None:
            tracker.last_fragment(*d.last_fragment)
        seg = d.tcp
        if seg is not None:
            tracker.segment_in(seg.key, seg.seq, seg.flags, data, seg.start, seg.end)

    def end_prepass(self) -> None:
        tracker = self._tracker
        tracker.finish()
        self.tls_records_masked = tracker.tls_records_masked
        self.http_messages_masked = tracker.http_messages_masked
        self._tracker = StreamTracker(self._emit)  # let the flows go
        self._out += _U16.pack(_TRAILER) + _U32.pack(self.tls_records_masked) + _U32.pack(self.http_messages_masked)
        self._flush_out()
        if self._wfd >= 0:
            os.close(self._wfd)
            self._wfd = -1
            return
        assert self._spill is not None and self._spill_path is not None  # _flush_out made them
        try:
            self._spill.close()
            self._spill = open(self._spill_path, "rb")
        except OSError as exc:
            raise from_oserror(exc, str(self._spill_path)) from exc

    # ---- masking pass ------------------------------------------------------------
    def replay(self, pkt: Packet) -> int:
        """Final pass: take this packet's pre-pass verdict; returns -1 to keep it, or the
        index of the pre-pass stage that dropped it. A kept packet gets its ``layout``."""
        buf, pos = self._in, self._pos
        if len(buf) - pos < _VSIZE:
            buf, pos = self._refill(2)
            self._raise_marker(buf, pos)  # a failure message may be shorter than a verdict
            buf, pos = self._refill(_VSIZE)
        # Field by field (see _VERDICT): compiled, cheaper than unpacking a tuple.
        kind = buf[pos]
        self._pos = pos + _VSIZE
        self._replayed_sums = kind == _V_FULL
        if kind == _V_FULL or kind == _V_PARTIAL:
            l3 = buf[pos + 2]
            v6 = buf[pos + 4] != 0
            end = buf[pos + 11] << 24 | buf[pos + 10] << 16 | buf[pos + 9] << 8 | buf[pos + 8]
            pkt.layout = (l3, l3 + 40 if v6 else l3 + 20, buf[pos + 3], end, v6, kind == _V_FULL,
                          buf[pos + 7] << 8 | buf[pos + 6])
            self._tsum = buf[pos + 13] << 8 | buf[pos + 12]
            self._isum = buf[pos + 15] << 8 | buf[pos + 14]
        elif kind == _V_DROPPED:
            return buf[pos + 1]
        elif kind != _V_GENERAL:
            self._raise_marker(buf, pos)
            raise RuntimeError("masking decisions out of step with the capture")
        return -1

    def _raise_marker(self, buf, pos: int) -> None:
        """Raise the pre-pass's failure (or report a bug) if a marker starts at ``pos``."""
        (n,) = _U16.unpack_from(buf, pos)
        if n >= _FAILURE:
            self._pos = pos + 2
            self._marker(n)

    def _record(self) -> list[tuple[int, int]]:
        """The next spilled record (keep ranges, or a datagram length)."""
        buf, pos = self._in, self._pos
        if len(buf) - pos < 2:
            buf, pos = self._refill(2)
        (n,) = _U16.unpack_from(buf, pos)
        pos += 2
        if not n:
            self._pos = pos
            return []
        if n >= _FAILURE:
            self._pos = pos
            self._marker(n)
        size = 8 * n
        if len(buf) - pos < size:
            self._pos = pos
            buf, pos = self._refill(size)
        vals = _pairs(n).unpack_from(buf, pos)
        self._pos = pos + size
        return [(vals[i], vals[i + 1]) for i in range(0, 2 * n, 2)]

    def _refill(self, need: int) -> tuple[bytes, int]:
        buf = self._in[self._pos :]
        while len(buf) < need:
            try:
                if self._rfd >= 0:
                    chunk = os.read(self._rfd, max(SPILL_CHUNK, need))  # whatever has arrived
                else:
                    assert self._spill is not None
                    chunk = self._spill.read(max(SPILL_CHUNK, need))
            except OSError as exc:
                raise from_oserror(exc, str(self._spill_path or "<pipe>"), "read") from exc
            if not chunk:
                if self._rfd >= 0:
                    raise PktmaskError("the masking pre-pass process ended unexpectedly", self._name())
                raise RuntimeError("masking decisions out of step with the capture")
            buf += chunk
        self._in, self._pos = buf, 0
        return buf, 0

    def _marker(self, n: int) -> None:
        """A trailer where a record was expected is a bug; a failure is the pre-pass's error."""
        if n == _TRAILER:
            raise RuntimeError("masking decisions out of step with the capture")
        buf, pos = self._in, self._pos
        if len(buf) - pos < 8:
            buf, pos = self._refill(8)
        code, length = _U32.unpack_from(buf, pos)[0], _U32.unpack_from(buf, pos + 4)[0]
        self._pos = pos + 8
        if len(buf) - self._pos < length:
            buf, pos = self._refill(length)
            self._pos = pos
        msg = bytes(self._in[self._pos : self._pos + length]).decode("utf-8", "replace")
        err = PktmaskError(msg)
        err.exit_code = code
        raise err

    def _read_trailer(self) -> None:
        buf, pos = self._in, self._pos
        if len(buf) - pos < 2:
            buf, pos = self._refill(2)
        (n,) = _U16.unpack_from(buf, pos)
        self._pos = pos + 2
        if n != _TRAILER:
            if n == _FAILURE:
                self._marker(n)
            raise RuntimeError("masking decisions out of step with the capture")
        buf, pos = self._in, self._pos
        if len(buf) - pos < 8:
            buf, pos = self._refill(8)
        self.tls_records_masked = _U32.unpack_from(buf, pos)[0]
        self.http_messages_masked = _U32.unpack_from(buf, pos + 4)[0]
        self._pos = pos + 8

    def process(self, pkt: Packet) -> Packet:
        lt = pkt.linktype
        if lt != self._lt:
            self._check(lt)
        data = pkt.data
        layout = pkt.layout  # not ``pkt.layout or ...``: compiled, that re-boxes the tuple
        if layout is None:
            layout = fast_layout(data, lt)
        if layout is None or not layout[5]:
            pkt.data = self._general(data, lt)
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
        if self._replayed_sums:  # replayed: the pre-pass took the sums
            self._replayed_sums = False
            s = self._tsum
            isum = self._isum
        else:
            s, isum = _sums(raw, l3, l4, proto, end, v6, ps)
        patch = pkt.patch
        if patch is not None:
            macs, ao, addrs, delta = patch
            s += delta
        else:
            delta = 0
        ranges = None
        if proto == 6 and ps < end:
            rec = self._in
            pos = self._pos
            if len(rec) - pos >= 2 and not rec[pos] and not rec[pos + 1]:
                self._pos = pos + 2  # the usual record: nothing kept
            else:
                ranges = self._record()
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
        _H(buf, at, 0xFFFF - s % 0xFFFF)
        pkt.data = buf
        return pkt

    def _general(self, data, lt: int):
        """Mask any frame the dissector understands (and zero what it does not)."""
        d = dissect(data, lt)
        buf = bytearray(data)
        size = len(buf)
        zero = d.zero
        jobs = d.jobs
        lengths = [self._record() for job in jobs if job[6] is not None]
        seg = d.tcp
        if seg is not None and seg.start < seg.end:
            pos = seg.start
            for a, b in self._record():
                zero.append((pos, seg.start + a))
                pos = seg.start + b
            zero.append((pos, seg.end))
        before = [ones_sum(buf[j[1] : min(j[2], size)]) if j[2] > size or j[0] == L4_QUOTED else 0
                  for j in jobs]
        zeroed = 0
        for a, b in zero:
            if b > size:
                b = size
            if a < b:
                buf[a:b] = zeros(b - a)
                zeroed += b - a
        self.bytes_zeroed += zeroed
        for i in range(len(jobs) - 1, -1, -1):
            kind, start, end, at, pseudo, zero_ok, frag = jobs[i]
            if frag is not None:
                length = lengths.pop()
            if at + 2 > size:
                continue
            if kind == IP4_HEADER:
                buf[at : at + 2] = b"\0\0"
                buf[at : at + 2] = ((-ones_sum(buf[start:end])) % 0xFFFF).to_bytes(2, "big")
                continue
            old = (buf[at] << 8) | buf[at + 1]
            if zero_ok and old == 0:
                continue
            if kind == L4_QUOTED:
                # A quoted header: keep its checksum consistent with what was zeroed after it.
                new = adjust(old, ones_sum(buf[start : min(end, size)]) - before[i])
            elif frag is not None:
                # Later fragments are all zeros: the first one's bytes make the whole sum.
                if pseudo:
                    if at == start + 6:  # UDP states the datagram's length itself
                        total = (buf[start + 4] << 8) | buf[start + 5]
                    elif length:
                        total = length[0][0]
                    else:
                        continue  # last fragment never seen: length unknown, leave as is
                else:
                    total = 0
                buf[at : at + 2] = b"\0\0"
                new = 0xFFFF - (ones_sum(buf[start:end]) + pseudo + total) % 0xFFFF
            elif end <= size:
                buf[at : at + 2] = b"\0\0"
                s = ones_sum(buf[start:end])
                if pseudo:
                    s += pseudo + (end - start)
                new = 0xFFFF - s % 0xFFFF
            else:  # cut short: update for what changed in the captured part
                new = adjust(old, ones_sum(buf[start:size]) - before[i])
            buf[at : at + 2] = new.to_bytes(2, "big")
        return buf

    def finish(self) -> dict[str, int]:
        self._read_trailer()
        self._close_spill()
        counts = {
            "payload_bytes_zeroed": self.bytes_zeroed,
            "tls_records_masked": self.tls_records_masked,
            "http_messages_masked": self.http_messages_masked,
        }
        self._reset()
        return counts

    def _close_spill(self) -> None:
        for fd in (self._rfd, self._wfd):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._rfd = self._wfd = -1
        if self._spill is not None:
            try:
                self._spill.close()
            except OSError:
                pass
            self._spill = None
        if self._spill_path is not None:
            # Our own scratch: remove it now rather than at the end of the run.
            try:
                self._spill_path.unlink()
            except OSError:
                pass
            if self._ctx is not None:
                self._ctx.manager.unregister_temp_file(self._spill_path)
            self._spill_path = None
