"""MaskingStage: zero payloads except TLS/HTTP structure, then make every checksum valid.

Two passes. The pre-pass (``observe``) runs the stream tracker over every TCP
segment and spills, in capture order, the keep ranges of each segment with
payload to a scratch file from the TempFileManager. The masking pass
(``process``) dissects each frame again, zeroes everything the dissector and
the spilled decisions do not keep, and recomputes the checksums of every
fully captured IPv4 header and TCP/UDP/ICMP/ICMPv6/IGMP/GRE message (a cut
short one is updated incrementally instead).
"""

from __future__ import annotations

import struct

from pktmask.capture.packet import Packet
from pktmask.core.pipeline.stage import FileContext, Stage
from pktmask.errors import from_oserror
from pktmask.mask.tracker import StreamTracker
from pktmask.proto.checksum import adjust, ones_sum
from pktmask.proto.dissect import IP4_HEADER, dissect
from pktmask.proto.link import check_linktype

_COUNT = struct.Struct("<H")
SPILL_BUFFER = 1 << 20
MAX_DATAGRAMS = 1 << 16  # fragmented datagrams whose length is remembered


class MaskingStage(Stage):
    """Protocol-aware payload masking (CONTRACT §4 "Payloads"), fail closed."""

    name = "mask"
    needs_prepass = True

    def __init__(self):
        self._ctx: FileContext | None = None
        self._spill_path = None
        self._spill = None
        self._reset()

    def _reset(self) -> None:
        self._tracker: StreamTracker | None = None
        self._datagrams: dict[bytes, int] = {}  # fragmented datagram -> its transport length
        self._linktypes: set[int] = set()
        self.bytes_zeroed = 0
        self.tls_records_masked = 0
        self.http_messages_masked = 0

    def start(self, ctx: FileContext) -> None:
        self._close_spill()
        self._reset()
        self._ctx = ctx
        self._spill_path = ctx.manager.create_temp_file(prefix="mask-", suffix=".ranges")
        try:
            self._spill = open(self._spill_path, "wb", buffering=SPILL_BUFFER)
        except OSError as exc:
            raise from_oserror(exc, str(self._spill_path)) from exc
        self._tracker = StreamTracker(self._emit)

    def _check(self, linktype: int) -> None:
        if linktype not in self._linktypes:
            check_linktype(linktype, self._ctx.name)
            self._linktypes.add(linktype)

    # ---- pre-pass ----------------------------------------------------------------
    def _emit(self, ranges: list[tuple[int, int]]) -> None:
        n = len(ranges)
        rec = _COUNT.pack(n)
        if n:
            rec += struct.pack(f"<{2 * n}I", *[x for r in ranges for x in r])
        try:
            self._spill.write(rec)
        except OSError as exc:
            raise from_oserror(exc, str(self._spill_path)) from exc

    def observe(self, pkt: Packet) -> None:
        self._check(pkt.linktype)
        d = dissect(pkt.data, pkt.linktype, want_jobs=False)
        if d.last_fragment is not None:
            if len(self._datagrams) >= MAX_DATAGRAMS:
                self._datagrams.clear()
            key, length = d.last_fragment
            self._datagrams[key] = length
        seg = d.tcp
        if seg is not None:
            self._tracker.segment(seg.key, seg.seq, seg.flags, memoryview(pkt.data)[seg.start : seg.end])

    def end_prepass(self) -> None:
        tracker = self._tracker
        tracker.finish()
        self.tls_records_masked = tracker.tls_records_masked
        self.http_messages_masked = tracker.http_messages_masked
        self._tracker = None
        try:
            self._spill.close()
            self._spill = open(self._spill_path, "rb", buffering=SPILL_BUFFER)
        except OSError as exc:
            raise from_oserror(exc, str(self._spill_path)) from exc

    # ---- masking pass ------------------------------------------------------------
    def _next_ranges(self) -> list[tuple[int, int]]:
        head = self._spill.read(2)
        if len(head) != 2:
            raise RuntimeError("masking decisions out of step with the capture")
        (n,) = _COUNT.unpack(head)
        if not n:
            return []
        vals = struct.unpack(f"<{2 * n}I", self._spill.read(8 * n))
        return [(vals[i], vals[i + 1]) for i in range(0, 2 * n, 2)]

    def process(self, pkt: Packet) -> Packet:
        self._check(pkt.linktype)
        data = pkt.data
        d = dissect(data, pkt.linktype)
        buf = bytearray(data)
        size = len(buf)
        zero = d.zero
        seg = d.tcp
        if seg is not None and seg.start < seg.end:
            pos = seg.start
            for a, b in self._next_ranges():
                zero.append((pos, seg.start + a))
                pos = seg.start + b
            zero.append((pos, seg.end))
        jobs = d.jobs
        before = [ones_sum(buf[j[1] : size]) if j[2] > size else 0 for j in jobs]
        zeroed = 0
        for a, b in zero:
            if b > size:
                b = size
            if a < b:
                buf[a:b] = bytes(b - a)
                zeroed += b - a
        self.bytes_zeroed += zeroed
        for i in range(len(jobs) - 1, -1, -1):
            kind, start, end, at, pseudo, zero_ok, frag = jobs[i]
            if at + 2 > size:
                continue
            if kind == IP4_HEADER:
                buf[at : at + 2] = b"\0\0"
                buf[at : at + 2] = ((-ones_sum(buf[start:end])) % 0xFFFF).to_bytes(2, "big")
                continue
            old = (buf[at] << 8) | buf[at + 1]
            if zero_ok and old == 0:
                continue
            if frag is not None:
                new = self._fragment_checksum(buf, start, end, at, pseudo, frag)
                if new is None:
                    continue
            elif end <= size:
                buf[at : at + 2] = b"\0\0"
                s = ones_sum(buf[start:end])
                if pseudo:
                    s += pseudo + (end - start)
                new = 0xFFFF - s % 0xFFFF
            else:  # cut short: update for what changed in the captured part
                new = adjust(old, ones_sum(buf[start:size]) - before[i])
            buf[at : at + 2] = new.to_bytes(2, "big")
        if buf != data:
            pkt.data = buf
        return pkt

    def _fragment_checksum(self, buf, start, end, at, pseudo, frag) -> int | None:
        """Checksum of a fragmented datagram from its first fragment (the rest is all zeros).

        Returns None when the datagram's transport length is unknown (its last
        fragment was not captured): the checksum is then left as it was.
        """
        length = 0
        if pseudo:
            if at == start + 6:  # UDP: its header states the datagram's length
                length = (buf[start + 4] << 8) | buf[start + 5]
            else:
                length = self._datagrams.get(frag)
                if length is None:
                    return None
        buf[at : at + 2] = b"\0\0"
        s = ones_sum(buf[start:end]) + pseudo + length
        return 0xFFFF - s % 0xFFFF

    def finish(self) -> dict[str, int]:
        self._close_spill()
        counts = {
            "payload_bytes_zeroed": self.bytes_zeroed,
            "tls_records_masked": self.tls_records_masked,
            "http_messages_masked": self.http_messages_masked,
        }
        self._reset()
        return counts

    def _close_spill(self) -> None:
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
            self._ctx.manager.unregister_temp_file(self._spill_path)
            self._spill_path = None
