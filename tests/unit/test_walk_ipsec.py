"""IPsec: AH keeps its header (next header, length, SPI, sequence) and zeroes its integrity
check value; ESP keeps SPI and sequence number and zeroes the rest (docs/policy.md).

Found by planting a walker that kept the AH ICV (issue 17): nothing checked it.
"""

from __future__ import annotations

import struct

from captures import tcp_header
from pktmask.proto.walk import walk

ICV = b"SECRET-ICV!!"  # 12 bytes: HMAC-SHA1-96


def ip6(next_header: int, payload: bytes) -> bytes:
    return (bytes.fromhex("020000000009020000000007") + b"\x86\xdd"
            + struct.pack("!IHBB", 0x60000000, len(payload), next_header, 64)
            + bytes.fromhex("20010db8000000000000000000000007") + bytes.fromhex("20010db8000900000000000000000009")
            + payload)


def zeroed(buf: bytes) -> set[int]:
    out: set[int] = set()
    for a, b in walk(buf, 1).zero:
        out.update(range(a, min(b, len(buf))))
    return out


def test_ah_icv_zeroed_header_kept_then_tcp_walked():
    ah = struct.pack("!BBHII", 6, (12 + len(ICV)) // 4 - 2, 0, 0x1234, 7) + ICV
    buf = ip6(51, ah + tcp_header(b"", "A") + b"payload")
    w = walk(buf, 1)
    at = buf.index(ICV)
    z = zeroed(buf)
    assert set(range(at, at + len(ICV))) <= z
    assert not set(range(at - 12, at)) & z  # next header, length, SPI, sequence kept
    assert w.tcp is not None and w.tcp.start == at + len(ICV) + 20


def test_esp_keeps_spi_and_sequence_only():
    esp = struct.pack("!II", 0x1234, 7) + b"SECRET-CIPHERTEXT"
    buf = ip6(50, esp)
    p = 54
    z = zeroed(buf)
    assert not set(range(p, p + 8)) & z
    assert set(range(p + 8, len(buf))) <= z
