"""pcapng: streaming reader and writer with metadata kept by allowlist (docs/policy.md "pcapng metadata").

Kept: section headers (without options), interface descriptions with only the
options needed to read timestamps and frames (if_tsresol, if_tsoffset,
if_fcslen), enhanced/simple packet blocks (EPB options epb_flags,
epb_dropcount, epb_queue). Everything else — comments, SHB hardware/os/
application, interface names, descriptions, filters, addresses and os, name
resolution, decryption secrets, statistics, custom and unknown blocks — is
dropped and counted in ``metadata_dropped``. Each section is written in its
own byte order so an unchanged capture without such metadata round-trips
byte for byte.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO, Final

from pktmask.capture.packet import ChunkBuffer, Packet, Writer, zeros
from pktmask.errors import InputError

SHB = 0x0A0D0D0A
IDB = 0x00000001
PB = 0x00000002  # obsolete Packet Block, rewritten as an EPB
SPB = 0x00000003
EPB = 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D

MAX_BLOCK = 16 << 20  # larger "blocks" are corrupt headers, as in Wireshark

# Per byte order: block head (type, length), a u32, an EPB's fixed fields.
_STRUCTS = {e: (struct.Struct(e + "II"), struct.Struct(e + "I"), struct.Struct(e + "IIIII")) for e in "<>"}
# The writer's per-packet block headers and trailers, by section byte order.
_EPB_HEAD: Final = {e: struct.Struct(e + "IIIIIII").pack for e in "<>"}
_SPB_HEAD: Final = {e: struct.Struct(e + "III").pack for e in "<>"}
_U32_PACK: Final = {e: struct.Struct(e + "I").pack for e in "<>"}

IDB_KEEP = frozenset({9, 13, 14})  # if_tsresol, if_fcslen, if_tsoffset
EPB_KEEP = frozenset({2, 4, 6})  # epb_flags, epb_dropcount, epb_queue


class Section:
    """One Section Header Block and the interfaces declared in it."""

    __slots__ = ("endian", "major", "minor", "interfaces")

    def __init__(self, endian: str, major: int, minor: int):
        self.endian = endian
        self.major = major
        self.minor = minor
        self.interfaces: list[Interface] = []


class Interface:
    """One Interface Description Block: link type, snaplen and kept options."""

    __slots__ = ("section", "index", "linktype", "snaplen", "opts")

    def __init__(self, section: Section, index: int, linktype: int, snaplen: int, opts: bytes):
        self.section = section
        self.index = index
        self.linktype = linktype
        self.snaplen = snaplen
        self.opts = opts


def filter_options(raw: bytes, endian: str, keep: frozenset) -> tuple[bytes, int, bool]:
    """Keep only allowlisted options of an options area.

    Returns (kept option bytes without the end marker, number dropped,
    well_formed). A malformed area keeps what came before the fault.
    """
    hdr = struct.Struct(endian + "HH")
    kept: list[bytes] = []
    dropped = 0
    off = 0
    n = len(raw)
    while off + 4 <= n:
        code, length = hdr.unpack_from(raw, off)
        if code == 0:
            return b"".join(kept), dropped, True
        end = off + 4 + ((length + 3) & ~3)
        if end > n:
            return b"".join(kept), dropped + 1, False
        if code in keep:
            kept.append(raw[off:end])
        else:
            dropped += 1
        off = end
    # Options may end without opt_endofopt when the area is exhausted.
    return b"".join(kept), dropped, off == n


class PcapngReader:
    """Iterate the packets of a pcapng stream, tracking sections and interfaces.

    Raises InputError for corrupt blocks (impossible lengths, mismatched
    trailers, packets on undeclared interfaces). A last block cut short ends
    iteration and sets ``truncated``.
    """

    format = "pcapng"

    def __init__(self, f: BinaryIO, name: str, head: bytes = b""):
        self.name = name
        self.cb = ChunkBuffer(f, name, head)
        self.truncated = False
        self.metadata_dropped = 0
        self.packets = 0
        self.sections: list[Section] = []
        self.section: Section | None = None
        if not self.cb.fill(12):
            raise InputError("truncated pcapng section header", name)

    def _corrupt(self, what: str) -> InputError:
        return InputError(f"corrupt pcapng block at offset {self.cb.position()}: {what}", self.name)

    def _read_shb(self) -> None:
        cb = self.cb
        first = self.section is None
        if not cb.fill(12):
            if first:  # no capture at all: not a truncated last record (README "Exit codes")
                raise InputError("truncated pcapng section header (the file ends inside its first block)",
                                 self.name)
            self.truncated = True
            return
        magic = cb.buf[cb.off + 8 : cb.off + 12]
        if magic == b"\x1a\x2b\x3c\x4d":
            endian = ">"
        elif magic == b"\x4d\x3c\x2b\x1a":
            endian = "<"
        else:
            raise self._corrupt("bad byte-order magic in section header")
        (length,) = struct.unpack_from(endian + "I", cb.buf, cb.off + 4)
        if length < 28 or length % 4 or length > MAX_BLOCK:
            raise self._corrupt(f"section header length {length}")
        if not cb.fill(length):
            if first:
                raise InputError("truncated pcapng section header (the file ends inside its first block)",
                                 self.name)
            self.truncated = True
            return
        body = cb.buf[cb.off : cb.off + length]
        major, minor = struct.unpack_from(endian + "HH", body, 12)
        (trailer,) = struct.unpack_from(endian + "I", body, length - 4)
        if trailer != length:
            raise self._corrupt("block length trailer mismatch")
        if major != 1:
            raise self._corrupt(f"unsupported pcapng version {major}.{minor}")
        _kept, dropped, ok = filter_options(body[24 : length - 4], endian, frozenset())
        if not ok:
            raise self._corrupt("malformed options")
        self.metadata_dropped += dropped
        cb.off += length
        self.section = Section(endian, major, minor)
        self.sections.append(self.section)

    def __iter__(self) -> Iterator[Packet]:
        cb = self.cb
        count = 0
        try:
            self._read_shb()
            if self.section is None:
                return
            sec = self.section
            endian = sec.endian
            head, u32, epb = _STRUCTS[endian]
            while True:
                if len(cb.buf) - cb.off < 8 and not cb.fill(8):
                    if cb.remaining():
                        self.truncated = True
                    return
                buf, off = cb.buf, cb.off
                if buf[off : off + 4] == b"\x0a\x0d\x0d\x0a":
                    self._read_shb()
                    if self.section is sec:  # truncated SHB
                        return
                    sec = self.section
                    endian = sec.endian
                    head, u32, epb = _STRUCTS[endian]
                    continue
                btype, length = head.unpack_from(buf, off)
                if length < 12 or length % 4 or length > MAX_BLOCK:
                    raise self._corrupt(f"block type {btype:#x} claims length {length}")
                if off + length > len(buf):
                    if not cb.fill(length):
                        self.truncated = True
                        return
                    buf, off = cb.buf, cb.off
                end = off + length
                if u32.unpack_from(buf, end - 4)[0] != length:
                    raise self._corrupt("block length trailer mismatch")
                cb.off = end
                if btype == EPB:
                    if length < 32:
                        raise self._corrupt("enhanced packet block too short")
                    ifid, ts_hi, ts_lo, caplen, orig = epb.unpack_from(buf, off + 8)
                    dend = off + 28 + caplen
                    if dend > end - 4:
                        raise self._corrupt(f"packet claims {caplen} bytes beyond its block")
                    iface = self._iface(sec, ifid)
                    opts = b""
                    oend = end - 4
                    ostart = off + 28 + ((caplen + 3) & ~3)
                    if ostart < oend:
                        opts, dropped, ok = filter_options(buf[ostart:oend], endian, EPB_KEEP)
                        if not ok:
                            raise self._corrupt("malformed packet options")
                        self.metadata_dropped += dropped
                    count += 1
                    yield Packet(buf[off + 28 : dend], iface.linktype, ts_hi, ts_lo, orig, iface, opts)
                elif btype == SPB:
                    iface = self._iface(sec, 0)
                    (orig,) = u32.unpack_from(buf, off + 8)
                    caplen = min(orig, length - 16)
                    if iface.snaplen:
                        caplen = min(caplen, iface.snaplen)
                    count += 1
                    yield Packet(buf[off + 12 : off + 12 + caplen], iface.linktype, None, None, orig, iface)
                elif btype == IDB:
                    if length < 20:
                        raise self._corrupt("interface description block too short")
                    linktype, _res, snaplen = struct.unpack_from(endian + "HHI", buf, off + 8)
                    opts, dropped, ok = filter_options(buf[off + 16 : end - 4], endian, IDB_KEEP)
                    if not ok:
                        raise self._corrupt("malformed interface options")
                    self.metadata_dropped += dropped
                    sec.interfaces.append(Interface(sec, len(sec.interfaces), linktype, snaplen, opts))
                elif btype == PB:
                    if length < 32:
                        raise self._corrupt("packet block too short")
                    ifid, _drops, ts_hi, ts_lo, caplen, orig = struct.unpack_from(
                        endian + "HHIIII", buf, off + 8
                    )
                    if off + 28 + caplen > end - 4:
                        raise self._corrupt(f"packet claims {caplen} bytes beyond its block")
                    iface = self._iface(sec, ifid)
                    # Its options (comments, hashes) are not carried over.
                    self.metadata_dropped += 1 if off + 28 + ((caplen + 3) & ~3) < end - 4 else 0
                    count += 1
                    yield Packet(buf[off + 28 : off + 28 + caplen], iface.linktype, ts_hi, ts_lo, orig, iface)
                else:
                    # NRB, ISB, DSB, custom, journal and unknown blocks: dropped.
                    self.metadata_dropped += 1
        finally:
            self.packets = count

    def _iface(self, sec: Section, ifid: int) -> Interface:
        if ifid >= len(sec.interfaces):
            raise self._corrupt(f"packet on undeclared interface {ifid}")
        return sec.interfaces[ifid]


class PcapngWriter(Writer):
    """Write packets as pcapng, reproducing sections and interfaces as read.

    Interfaces are emitted in input order before the first packet that follows
    them, so interface ids are preserved.
    """

    def __init__(self, f: BinaryIO, reader: PcapngReader):
        self.f = f
        self.reader = reader
        self.section: Section | None = None
        self.ifaces_written = 0
        self.sections_written = 0
        self._parts: list = []  # written in batches: one call per block costs more than the copy
        self._epb = _EPB_HEAD["<"]
        self._spb = _SPB_HEAD["<"]
        self._u32 = _U32_PACK["<"]

    def _start_section(self, sec: Section) -> None:
        self._flush_interfaces()
        e = sec.endian
        self._parts.append(struct.pack(e + "IIIHHqI", SHB, 28, BYTE_ORDER_MAGIC, sec.major, sec.minor, -1, 28))
        self.section = sec
        self.ifaces_written = 0
        self.sections_written += 1
        self._epb = _EPB_HEAD[e]
        self._spb = _SPB_HEAD[e]
        self._u32 = _U32_PACK[e]

    def _flush_interfaces(self) -> None:
        sec = self.section
        if sec is None:
            return
        e = sec.endian
        for iface in sec.interfaces[self.ifaces_written :]:
            opts = iface.opts + b"\0\0\0\0" if iface.opts else b""
            length = 20 + len(opts)
            self._parts.append(
                struct.pack(e + "IIHHI", IDB, length, iface.linktype, 0, iface.snaplen)
                + opts
                + struct.pack(e + "I", length)
            )
        self.ifaces_written = len(sec.interfaces)

    def write(self, pkt: Packet) -> None:
        """Append one packet, preceded by any section/interface blocks it needs."""
        iface = pkt.iface
        sec = iface.section
        if sec is not self.section:
            self._start_section(sec)
        if self.ifaces_written < len(sec.interfaces):
            self._flush_interfaces()
        data = pkt.data
        tail = pkt.tail
        n = len(data) + tail
        pad = -n & 3
        parts = self._parts
        if pkt.ts_hi is None:  # Simple Packet Block
            length = 16 + n + pad
            parts.append(self._spb(SPB, length, pkt.orig_len))
            opts = b""
        else:
            opts = pkt.opts + b"\0\0\0\0" if pkt.opts else b""
            length = 32 + n + pad + len(opts)
            parts.append(self._epb(EPB, length, iface.index, pkt.ts_hi, pkt.ts_lo, n, pkt.orig_len))
        parts.append(data)
        if tail + pad:
            parts.append(zeros(tail + pad))  # the masked tail, then the padding
        if opts:
            parts.append(opts)
        parts.append(self._u32(length))
        if len(parts) >= 1024:
            self.f.write(b"".join(parts))
            parts.clear()

    def flush(self) -> None:
        """Write the blocks batched so far (a live stream's input is waiting)."""
        if self._parts:
            self.f.write(b"".join(self._parts))
            self._parts.clear()

    def close(self) -> None:
        """Emit sections and interfaces that no packet referenced (e.g. an empty capture)."""
        for sec in self.reader.sections:
            if sec is self.section:
                self._flush_interfaces()
                continue
            # Sections after the last one written carry no packets but keep the structure.
            if self.section is None or self.reader.sections.index(sec) > self.reader.sections.index(
                self.section
            ):
                self._start_section(sec)
        self._flush_interfaces()
        if self._parts:
            self.f.write(b"".join(self._parts))
            self._parts.clear()
