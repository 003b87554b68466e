"""Capture format detection by magic bytes, and the writer matching a reader."""

from __future__ import annotations

from typing import BinaryIO

from pktmask.capture.packet import Writer
from pktmask.capture.pcap import MAGIC_MODIFIED, MAGIC_NSEC, MAGIC_USEC, PcapReader, PcapWriter
from pktmask.capture.pcapng import PcapngReader, PcapngWriter
from pktmask.errors import InputError

_PCAP_MAGICS = {
    m.to_bytes(4, order) for m in (MAGIC_USEC, MAGIC_NSEC, MAGIC_MODIFIED) for order in ("little", "big")
}
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"

Reader = PcapReader | PcapngReader
__all__ = ["Reader", "Writer", "make_writer", "open_reader", "sniff_format"]


def sniff_format(head: bytes) -> str | None:
    """Name the capture format of a file starting with ``head``.

    Returns "pcap", "pcapng" or None when the magic is not a capture's.
    """
    if head[:4] in _PCAP_MAGICS:
        return "pcap"
    if head[:4] == _PCAPNG_MAGIC:
        return "pcapng"
    return None


def open_reader(f: BinaryIO, name: str) -> Reader:
    """Return a streaming reader for ``f``, chosen by its magic bytes.

    Raises InputError naming ``name`` for an empty file, a compressed file or
    anything that is not pcap/pcapng.
    """
    try:
        head = f.read(4)
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", name) from exc
    if not head:
        raise InputError("empty file (not a capture)", name)
    fmt = sniff_format(head)
    if fmt == "pcap":
        return PcapReader(f, name, head)
    if fmt == "pcapng":
        return PcapngReader(f, name, head)
    if head[:2] == b"\x1f\x8b":
        raise InputError("compressed (gzip) capture: decompress it first", name)
    if len(head) < 4:
        raise InputError(f"too short to be a capture ({len(head)} bytes)", name)
    raise InputError(f"not a pcap or pcapng capture (unknown magic {head.hex()})", name)


def make_writer(f: BinaryIO, reader: Reader) -> Writer:
    """Return a writer producing the same format, byte order and precision as ``reader``."""
    if isinstance(reader, PcapngReader):
        return PcapngWriter(f, reader)
    return PcapWriter(f, reader)
