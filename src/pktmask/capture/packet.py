"""The packet record that flows between reader, stages and writer, and shared capture helpers."""

from __future__ import annotations

from typing import Any, BinaryIO, Final

from pktmask.errors import InputError
from pktmask.proto.walk_base import Walk

# Bytes read from the input per refill: large reads keep the per-packet cost low.
CHUNK: Final = 1 << 20

# The common frame shape's offsets (see ``layout.fast_layout``) and the anonymizer's
# rewrite of such a frame (see ``AddressRewriter.patch``), as packets carry them.
Layout = tuple[int, int, int, int, bool, bool, int]
Patch = tuple[bytes, int, bytes, int]  # new MAC pair, address offset, new addresses, word-sum delta

# Zero runs up to this length are made once and shared: the payloads of most frames.
# (A view of one big zero buffer costs more to slice than a list lookup.)
_ZMAX: Final = 2048
_ZRUNS: list[bytes | None] = [None] * (_ZMAX + 1)


def zeros(n: int) -> bytes:
    """``n`` zero bytes, shared (at most 2 MiB in all) for lengths up to 2048."""
    if n > _ZMAX:
        return bytes(n)
    z = _ZRUNS[n]
    if z is None:
        z = _ZRUNS[n] = bytes(n)
    return z


class Packet:
    """One captured frame with what the writer needs to reproduce its record.

    ``data`` is the captured bytes (``bytes`` or ``bytearray``; stages may
    replace it but never change its length, except that the last stage may
    leave ``tail`` zero bytes of it to the writer). Readers reuse one Packet object:
    it is valid until the next packet is read. ``ts_hi``/``ts_lo`` are the raw
    timestamp words of a pcapng record (the high and low 32 bits), copied
    through untouched so precision survives. Classic pcap keeps its whole
    16-byte record header in ``head`` instead (``ts_hi``/``ts_lo`` None,
    ``orig_len`` 0): its writer copies it, a frame's length never changing.
    """

    __slots__ = ("data", "linktype", "ts_hi", "ts_lo", "orig_len", "iface", "opts", "layout", "patch", "walk",
                 "tail", "head")

    def __init__(self, data: Any, linktype: int, ts_hi: int | None, ts_lo: int | None, orig_len: int,
                 iface: Any = None, opts: bytes = b""):
        self.data = data
        self.linktype = linktype
        self.ts_hi = ts_hi
        self.ts_lo = ts_lo
        self.orig_len = orig_len
        self.iface = iface  # pcapng Interface, None for classic pcap
        self.opts = opts  # pcapng EPB options kept by the allowlist (raw, section byte order)
        # Offsets of the common Ethernet/IP/TCP-UDP layout, found by the first stage that
        # parsed the frame and reused by the next (stages never move headers).
        self.layout: Layout | None = None
        # An address rewrite the anonymizer leaves for the masking stage to apply while
        # it rebuilds the frame (see AnonymizationStage): (macs, offset, addresses, delta).
        self.patch: Patch | None = None
        # The anonymizer's walk of a frame off the common shape, when the masking stage
        # follows in the same pass: one walk serves both (docs/dev/ARCHITECTURE.md).
        self.walk: Walk | None = None
        # Zero bytes that follow ``data`` in the output: the masking stage (always last)
        # leaves a zeroed payload to the writer instead of building it. Writers honour it.
        self.tail = 0
        self.head = b""  # classic pcap: the record header as read


class Writer:
    """What a capture writer offers the per-packet loop (``PcapWriter``, ``PcapngWriter``).

    A base class rather than a callable: compiled, the loop calls ``write`` directly."""

    def write(self, pkt: Packet) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        """Write what is batched now (a live stream's input is waiting)."""
        raise NotImplementedError

    def close(self) -> None:
        """Write what is batched (the caller flushes and syncs the file)."""
        raise NotImplementedError


class ChunkBuffer:
    """A forward-only window over a binary stream, refilled in large reads.

    ``buf[off:]`` holds unread bytes. ``fill(n)`` makes at least n unread
    bytes available and returns False when the stream ends first. A chunk
    read becomes ``buf`` as it is when the previous one is used up; only a
    record that straddles two chunks is copied, into a ``buf`` of its own
    (leftover + the start of the next chunk, kept in ``nxt`` from ``nxt_off``):
    joining every chunk to its leftover would copy the whole input once more.
    """

    __slots__ = ("f", "buf", "off", "eof", "consumed", "name", "nxt", "nxt_off")

    def __init__(self, f: BinaryIO, name: str, initial: bytes = b""):
        self.f = f
        self.name = name
        self.buf = initial
        self.off = 0
        self.eof = False
        self.consumed = 0  # bytes of the stream before buf[0]
        self.nxt = b""  # the rest of the last chunk read: the stream right after ``buf``
        self.nxt_off = 0

    def fill(self, n: int) -> bool:
        """Make n unread bytes available; returns False if EOF comes first."""
        avail = len(self.buf) - self.off
        if avail >= n:
            return True
        if avail == 0:  # the usual refill: the next chunk becomes the window, uncopied
            if len(self.nxt) == self.nxt_off and not self._read(n):
                return False
            self.consumed += len(self.buf) - self.nxt_off
            self.buf = self.nxt
            self.off = self.nxt_off
            self.nxt = b""
            self.nxt_off = 0
            avail = len(self.buf) - self.off
            if avail >= n:
                return True
        # A record straddles chunks: its bytes are joined into a window of their own.
        parts = [self.buf[self.off :]]
        self.consumed += self.off
        while avail < n:
            rest = len(self.nxt) - self.nxt_off
            if rest == 0:
                if not self._read(n - avail):
                    break
                rest = len(self.nxt)
            take = min(rest, n - avail)
            start = self.nxt_off
            parts.append(self.nxt[start : start + take])
            self.nxt_off = start + take
            avail += take
        self.buf = b"".join(parts)
        self.off = 0
        return avail >= n

    def _read(self, need: int) -> bool:
        """Read the next chunk into ``nxt`` (at least ``need`` bytes asked); False at EOF."""
        if self.eof:
            return False
        try:
            chunk = self.f.read(max(CHUNK, need))
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror or exc}", self.name) from exc
        if not chunk:
            self.eof = True
            return False
        self.nxt = chunk
        self.nxt_off = 0
        return True

    def remaining(self) -> int:
        """Unread bytes currently buffered."""
        return len(self.buf) - self.off

    def position(self) -> int:
        """Offset of the next unread byte in the stream."""
        return self.consumed + self.off
