"""pcapng options are kept by allowlist only (README, "What is sanitized"): packet flags,
drop count and queue; an interface's timestamp resolution, FCS length and offset. Every other
option, custom (vendor) options included, is dropped and counted.
"""

from __future__ import annotations

import io
import struct

import pytest

from captures import epb, idb, shb
from pktmask.capture.formats import open_reader
from pktmask.capture.pcapng import EPB_KEEP, IDB_KEEP

FRAME = bytes(60)
CUSTOM = [(2988, struct.pack("<I", 32473) + b"SECRET-CUSTOM-STR"), (2989, struct.pack("<I", 32473) + b"SECRET-BIN"),
          (19372, struct.pack("<I", 32473) + b"SECRET-NOCOPY"), (19373, struct.pack("<I", 32473) + b"SECRET-NC")]
EPB_OTHERS = [(1, b"SECRET-COMMENT"), (3, b"\x02SECRET-HASH-VALUE"), (5, struct.pack("<Q", 0x5EC)),
              (7, b"\x00SECRET-VERDICT")]
IDB_OTHERS = [(2, b"SECRET-eth0"), (3, b"SECRET-desc"), (4, bytes([10, 9, 8, 7, 255, 0, 0, 0])),
              (6, bytes.fromhex("02aabbccddee")), (7, bytes(8)), (8, struct.pack("<Q", 1000)),
              (11, b"\x00SECRET-filter"), (12, b"SECRET-os"), (15, b"SECRET-hardware")]


def options(raw: bytes) -> list[int]:
    codes, off = [], 0
    while off + 4 <= len(raw):
        code, length = struct.unpack_from("<HH", raw, off)
        if code == 0:
            break
        codes.append(code)
        off += 4 + ((length + 3) & ~3)
    return codes


@pytest.mark.parametrize("extra", [CUSTOM, EPB_OTHERS], ids=["custom", "others"])
def test_packet_options_other_than_the_allowlist_are_dropped(extra):
    kept = [(2, struct.pack("<I", 1)), (4, struct.pack("<Q", 3)), (6, struct.pack("<I", 0))]
    data = shb() + idb() + epb(FRAME, options=kept + extra)
    reader = open_reader(io.BytesIO(data), "x.pcapng")
    (pkt,) = list(reader)
    assert options(pkt.opts) == [2, 4, 6] and set(options(pkt.opts)) <= EPB_KEEP
    assert b"SECRET" not in pkt.opts
    assert reader.metadata_dropped == len(extra)


@pytest.mark.parametrize("extra", [CUSTOM, IDB_OTHERS], ids=["custom", "others"])
def test_interface_options_other_than_the_allowlist_are_dropped(extra):
    kept = [(9, b"\x06"), (13, b"\x04"), (14, struct.pack("<q", 0))]
    data = shb() + idb(options=kept + extra) + epb(FRAME)
    reader = open_reader(io.BytesIO(data), "x.pcapng")
    (pkt,) = list(reader)
    assert options(pkt.iface.opts) == [9, 13, 14] and set(options(pkt.iface.opts)) <= IDB_KEEP
    assert b"SECRET" not in pkt.iface.opts
    assert reader.metadata_dropped == len(extra)
