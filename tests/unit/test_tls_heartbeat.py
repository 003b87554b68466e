"""A TLS heartbeat record keeps its header only (docs/policy.md): its body is what a
Heartbleed-vulnerable peer returned from its memory. Found by planting a parser that kept
heartbeat bodies (issue 17): the record-type tests covered types 20 to 23 only.
"""

from __future__ import annotations

import struct

from pktmask.proto.tls import TlsParser


def rec(ctype: int, body: bytes) -> bytes:
    return struct.pack("!BHH", ctype, 0x0303, len(body)) + body


def test_heartbeat_body_zeroed_header_kept():
    hello = rec(22, bytes([1, 0, 0, 4]) + b"\x03\x03\x00\x00")
    beat = rec(24, b"\x01\x40\x00" + b"SECRET-SERVER-MEMORY" * 3)
    p = TlsParser()
    p.feed(hello + beat)
    ranges = p.take_ranges()
    # The ClientHello is cut short after its version: the rest of it is zeroed.
    assert ranges == [(0, 11), (len(hello), len(hello) + 5)]
    assert p.records == 2 and p.records_masked == 1
