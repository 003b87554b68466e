"""The masking pre-pass's decisions, in packet order: their format, written and read back.

For every packet the pre-pass writes a 16-byte verdict (``VERDICT``), then
the records masking that packet needs: for a TCP segment with payload its
keep ranges (u16 count, then u32 start and end pairs, relative to the
payload), for the first fragment of a datagram the datagram's transport
length (one pair, or none when unknown). After the last packet comes a
trailer (the counters) or, if the pre-pass failed, its error. Everything is
little-endian. The stream goes through a pipe when the pre-pass runs in
another process, else through a scratch file from the TempFileManager,
written whole and then read back.
"""

from __future__ import annotations

import os
import struct
from contextlib import ExitStack
from pathlib import Path
from typing import BinaryIO, Final

from pktmask.capture.packet import Packet
from pktmask.core.pipeline.stage import FileContext
from pktmask.errors import PktmaskError, decode_error, encode_error, from_oserror

SPILL_CHUNK: Final = 1 << 20
PIPE_CHUNK: Final = 1 << 12  # through a pipe, hand decisions over soon
# Record markers beyond any range count: the pre-pass's last word, or its failure.
_TRAILER: Final = 0xFFFF  # then two u32: TLS records masked, HTTP messages masked
_FAILURE: Final = 0xFFFE  # then u32 length, the error (errors.encode_error: class, message, file)
_U32: Final = struct.Struct("<I")
_U16: Final = struct.Struct("<H")
# The per-packet verdict: kind, index of the stage that dropped it, then the fast
# layout (ip offset, protocol, v6, payload offset, end) and, for a fully captured
# frame, the base sums of its checksums (see ``MaskingStage``). The masking pass
# replays it instead of running the dropping stages, the layout classification and
# those sums again. ``read_verdict`` reads the fields at these offsets byte by byte.
VERDICT: Final = struct.Struct("<BBBB?xHIHH")
_VSIZE: Final = 16  # a literal, so compiled code inlines it
assert VERDICT.size == _VSIZE
V_GENERAL: Final = 0  # not the common shape: the masking pass dissects it
V_FULL: Final = 1  # the common shape, fully captured: layout and sums follow
V_PARTIAL: Final = 2  # the common shape, cut short: layout follows
V_DROPPED: Final = 3  # dropped by the pre-pass stage at ``index``
VPACK: Final = VERDICT.pack  # bound once: a method call on the Struct costs a lookup each time
VERDICT_GENERAL: Final = VPACK(V_GENERAL, 0, 0, 0, False, 0, 0, 0, 0)
_PAIRS: dict[int, struct.Struct] = {}
_PAIR: Final = struct.Struct("<II").pack


def _pairs(n: int) -> struct.Struct:
    s = _PAIRS.get(n)
    if s is None:
        s = _PAIRS[n] = struct.Struct(f"<{2 * n}I")
    return s


class DecisionStream:
    """One input's decisions: the pre-pass writes them, the masking pass reads them back.

    ``attach`` gives pipe ends (the pre-pass in another process); without
    them the stream spills to scratch, which ``finish_writing`` reopens for
    reading. After ``read_verdict`` of a fully captured common frame,
    ``sums`` is True and ``tsum``/``isum`` hold its checksums' base sums.
    Raises the pre-pass's error where the reader meets it, PktmaskError when
    the pre-pass process vanished, and RuntimeError when the stream is out of
    step with the capture (a bug).
    """

    def __init__(self, ctx: FileContext | None = None):
        self._ctx = ctx
        self._spill_path: Path | None = None
        self._scratch = ExitStack()  # holds the spill's ``manager.temp_file`` scope until ``close``
        self._spill: BinaryIO | None = None
        self._rfd = self._wfd = -1
        self._out = bytearray()
        self._in = b""
        self._pos = 0
        # Set by read_verdict for a fully captured frame: the pre-pass took its sums.
        # Every packet's verdict is read before it is masked, so this never goes stale.
        self.sums = False
        self.tsum = 0
        self.isum = 0

    def attach(self, read_fd: int = -1, write_fd: int = -1) -> None:
        """Use a pipe instead of scratch; the stream owns and closes the descriptor it is given."""
        self._rfd, self._wfd = read_fd, write_fd

    def _name(self) -> str:
        return self._ctx.name if self._ctx is not None else ""

    # ---- writing (pre-pass) ------------------------------------------------------
    def write(self, blob: bytes) -> None:
        """Append a verdict (or any record already encoded)."""
        out = self._out
        out += blob
        if len(out) >= (PIPE_CHUNK if self._wfd >= 0 else SPILL_CHUNK):
            self.flush()

    def ranges(self, ranges) -> None:
        """Append a record of keep ranges; a ``bytes`` blob (a verdict held back behind
        undecided segments, see ``StreamTracker.hold``) is appended as is."""
        out = self._out
        if not ranges:
            out += b"\0\0"
        elif isinstance(ranges, bytes):
            out += ranges
            return
        else:
            out += _U16.pack(len(ranges))
            for a, b in ranges:  # usually one: cheaper than flattening for one pack call
                out += _PAIR(a, b)
        if len(out) >= (PIPE_CHUNK if self._wfd >= 0 else SPILL_CHUNK):
            self.flush()

    def flush(self) -> None:
        """Hand what is buffered to the pipe or the scratch file."""
        out, self._out = self._out, bytearray()
        if self._wfd >= 0:
            view = memoryview(out)
            while view:
                sent = os.write(self._wfd, view)
                view = view[sent:]  # not view[os.write(...):]: mypyc evaluates a slice bound twice
            return
        try:
            if self._spill is None:
                assert self._ctx is not None, "a scratch stream needs the file's context"
                self._spill_path = self._scratch.enter_context(
                    self._ctx.manager.temp_file(prefix="mask-", suffix=".ranges"))
                self._spill = open(self._spill_path, "wb")
            self._spill.write(out)
        except OSError as exc:
            raise from_oserror(exc, str(self._spill_path)) from exc

    def write_failure(self, exc: BaseException) -> None:
        """From the pre-pass process: tell the masking pass why no more decisions come."""
        form = encode_error(exc, self._name())
        self._out += _U16.pack(_FAILURE) + _U32.pack(len(form)) + form
        self.flush()

    def finish_writing(self, tls_records: int, http_messages: int) -> None:
        """Append the trailer with the counters; close the pipe, or reopen the scratch for reading."""
        self._out += _U16.pack(_TRAILER) + _U32.pack(tls_records) + _U32.pack(http_messages)
        self.flush()
        if self._wfd >= 0:
            os.close(self._wfd)
            self._wfd = -1
            return
        assert self._spill is not None and self._spill_path is not None  # flush made them
        try:
            self._spill.close()
            self._spill = open(self._spill_path, "rb")
        except OSError as exc:
            raise from_oserror(exc, str(self._spill_path)) from exc

    # ---- reading (masking pass) --------------------------------------------------
    def read_verdict(self, pkt: Packet) -> int:
        """Take this packet's verdict; returns -1 to keep it, or the index of the pre-pass
        stage that dropped it. A kept frame of the common shape gets its ``layout``."""
        buf, pos = self._in, self._pos
        if len(buf) - pos < _VSIZE:
            buf, pos = self._refill(2)
            self._raise_marker(buf, pos)  # a failure message may be shorter than a verdict
            buf, pos = self._refill(_VSIZE)
        # Field by field (see VERDICT): compiled, cheaper than unpacking a tuple.
        kind = buf[pos]
        self._pos = pos + _VSIZE
        self.sums = kind == V_FULL
        if kind == V_FULL or kind == V_PARTIAL:
            l3 = buf[pos + 2]
            v6 = buf[pos + 4] != 0
            end = buf[pos + 11] << 24 | buf[pos + 10] << 16 | buf[pos + 9] << 8 | buf[pos + 8]
            pkt.layout = (l3, l3 + 40 if v6 else l3 + 20, buf[pos + 3], end, v6, kind == V_FULL,
                          buf[pos + 7] << 8 | buf[pos + 6])
            self.tsum = buf[pos + 13] << 8 | buf[pos + 12]
            self.isum = buf[pos + 15] << 8 | buf[pos + 14]
        elif kind == V_DROPPED:
            return buf[pos + 1]
        elif kind != V_GENERAL:
            self._raise_marker(buf, pos)
            raise RuntimeError("masking decisions out of step with the capture")
        return -1

    def skip_empty(self) -> bool:
        """Consume the next record if it is already buffered and keeps nothing (the usual one)."""
        buf, pos = self._in, self._pos
        if len(buf) - pos >= 2 and not buf[pos] and not buf[pos + 1]:
            self._pos = pos + 2
            return True
        return False

    def record(self) -> list[tuple[int, int]]:
        """The next record: keep ranges, or a datagram's length."""
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

    def read_trailer(self) -> tuple[int, int]:
        """The counters at the end: (TLS records masked, HTTP messages masked)."""
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
        self._pos = pos + 8
        return _U32.unpack_from(buf, pos)[0], _U32.unpack_from(buf, pos + 4)[0]

    def _raise_marker(self, buf, pos: int) -> None:
        """Raise the pre-pass's failure (or report a bug) if a marker starts at ``pos``."""
        (n,) = _U16.unpack_from(buf, pos)
        if n >= _FAILURE:
            self._pos = pos + 2
            self._marker(n)

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
        if len(buf) - pos < 4:
            buf, pos = self._refill(4)
        length = _U32.unpack_from(buf, pos)[0]
        self._pos = pos + 4
        if len(buf) - self._pos < length:
            buf, pos = self._refill(length)
            self._pos = pos
        raise decode_error(bytes(self._in[self._pos : self._pos + length]))

    def close(self) -> None:
        """Close the pipe ends and remove the scratch file (ours: now, not at the end of the run)."""
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
        self._scratch.close()
        self._spill_path = None
