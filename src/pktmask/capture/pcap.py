"""Classic libpcap format: streaming reader and writer (µs/ns, either byte order).

The writer copies the input's global header and record timestamps verbatim, so
a capture that no stage changes comes out byte-identical.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO, Final

from pktmask.capture.packet import ChunkBuffer, Packet, Writer, zeros
from pktmask.errors import InputError

MAGIC_USEC: Final = 0xA1B2C3D4
MAGIC_NSEC: Final = 0xA1B23C4D
MAGIC_MODIFIED: Final = 0xA1B2CD34  # Kuznetzov's patched format: 24-byte record headers

# A record larger than this that also exceeds the snaplen is a header that lies.
MAX_RECORD: Final = 262144


class PcapReader:
    """Iterate the packets of a classic pcap stream.

    Raises InputError for a bad or short global header and for a record header
    that claims an impossible length. A last record cut short ends iteration
    and sets ``truncated``.
    """

    format = "pcap"

    def __init__(self, f: BinaryIO, name: str, head: bytes = b""):
        self.name = name
        self.cb = cb = ChunkBuffer(f, name, head)
        self.truncated = False
        self.metadata_dropped = 0
        self.packets = 0
        if not cb.fill(24):
            raise InputError("truncated pcap file header (less than 24 bytes)", name)
        hdr = cb.buf[cb.off : cb.off + 24]
        magic_le = struct.unpack_from("<I", hdr)[0]
        if magic_le in (MAGIC_USEC, MAGIC_NSEC):
            self.endian = "<"
        elif struct.unpack_from(">I", hdr)[0] in (MAGIC_USEC, MAGIC_NSEC):
            self.endian = ">"
        elif MAGIC_MODIFIED in (magic_le, struct.unpack_from(">I", hdr)[0]):
            raise InputError("unsupported pcap variant (modified/Kuznetzov format)", name)
        else:
            raise InputError("not a pcap file (bad magic)", name)
        magic, major, _minor, _zone, _sigfigs, snaplen, network = struct.unpack_from(
            self.endian + "IHHiIII", hdr
        )
        if major != 2:
            raise InputError(f"unsupported pcap version {major}", name)
        self.nanosecond = magic == MAGIC_NSEC
        self.snaplen = snaplen
        # The upper bits may carry FCS information; the link type is the low 16 bits.
        self.linktype = network & 0xFFFF
        self.header = bytes(hdr)
        cb.off += 24

    def __iter__(self) -> Iterator[Packet]:
        """Yield the packets; one Packet object is reused, valid until the next one."""
        cb = self.cb
        limit = max(MAX_RECORD, self.snaplen)
        pkt = Packet(b"", self.linktype, None, None, 0)
        count = 0
        little = self.endian == "<"
        # Typed locals: compiled (mypyc), the offset arithmetic is on machine integers.
        incl: int
        buf, off = cb.buf, cb.off
        size = len(buf)
        try:
            while True:
                if size - off < 16:
                    cb.off = off
                    if not cb.fill(16):
                        if cb.remaining():
                            self.truncated = True
                        return
                    buf, off = cb.buf, cb.off
                    size = len(buf)
                # Only the captured length is needed: byte by byte, compiled, costs less
                # than a struct call; the writer copies the whole header (``head``).
                if little:
                    incl = buf[off + 11] << 24 | buf[off + 10] << 16 | buf[off + 9] << 8 | buf[off + 8]
                else:
                    incl = buf[off + 8] << 24 | buf[off + 9] << 16 | buf[off + 10] << 8 | buf[off + 11]
                if incl > limit:
                    cb.off = off
                    raise InputError(
                        f"corrupt record {count + 1} at offset {cb.position()}: "
                        f"claims {incl} captured bytes (limit {limit})",
                        self.name,
                    )
                end = off + 16 + incl
                if end > size:
                    cb.off = off
                    if not cb.fill(16 + incl):
                        if self.snaplen and incl > self.snaplen:
                            # Not a last record cut short: a header that lies (README "Exit codes").
                            raise InputError(
                                f"corrupt record {count + 1} at offset {cb.position()}: claims {incl} "
                                f"captured bytes, more than the snap length {self.snaplen} and the file holds",
                                self.name,
                            )
                        self.truncated = True
                        return
                    buf, off = cb.buf, cb.off
                    size = len(buf)
                    end = off + 16 + incl
                pkt.head = buf[off : off + 16]
                pkt.data = buf[off + 16 : end]
                pkt.layout = pkt.patch = None
                pkt.walk = None
                cb.off = off = end
                count += 1
                yield pkt
        finally:
            self.packets = count


class PcapWriter(Writer):
    """Write packets in the same classic pcap flavour as ``reader``."""

    def __init__(self, f: BinaryIO, reader: PcapReader):
        self.f = f
        self._rec = struct.Struct(reader.endian + "IIII")
        self._little = reader.endian == "<"
        self._parts: list = []  # written in batches: one call per record costs more than the copy
        f.write(reader.header)

    def write(self, pkt: Packet) -> None:
        """Append one record: the record header read (``pkt.head``), ``pkt.data`` and ``pkt.tail`` zero bytes."""
        data = pkt.data
        parts = self._parts
        tail = pkt.tail
        head = pkt.head
        n = len(data) + tail
        if self._little:
            incl = head[11] << 24 | head[10] << 16 | head[9] << 8 | head[8]
        else:
            incl = head[8] << 24 | head[9] << 16 | head[10] << 8 | head[11]
        if incl != n:  # no stage changes a frame's length; should one, the header follows
            ts_hi, ts_lo, _incl, orig = self._rec.unpack(head)
            head = self._rec.pack(ts_hi, ts_lo, n, orig)
        parts.append(head)
        parts.append(data)
        if tail:
            parts.append(zeros(tail))
        if len(parts) >= 1024:
            # One joined write: ``writelines`` would call ``write`` once per part.
            self.f.write(b"".join(parts))
            parts.clear()

    def flush(self) -> None:
        """Write what is batched now (a live stream's input is waiting)."""
        if self._parts:
            self.f.write(b"".join(self._parts))
            self._parts.clear()

    def close(self) -> None:
        """Write what is batched (the caller flushes and syncs the file)."""
        self.flush()
