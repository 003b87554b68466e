"""Tests for first-payload protocol sniffing (pktmask.proto.sniff)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pktmask.proto.sniff import sniff


def rec(ctype: int, body: bytes, version: int = 0x0303) -> bytes:
    return struct.pack("!BHH", ctype, version, len(body)) + body


@pytest.mark.parametrize(
    "data, kind",
    [
        (rec(22, b"\x01" + b"h" * 200, 0x0301), "tls"),
        (rec(22, b"h" * 90) + rec(20, b"\x01") + rec(22, b"f" * 40), "tls"),
        (rec(22, b"h" * 90)[:40], "tls"),  # first segment of a longer record
        (rec(23, b"x" * 10) + b"\x16\x03", "tls"),  # next header partial, valid prefix
        (rec(22, b"h" * 10) + b"GET / HTTP/1.1\r\n", None),  # chaining fails
        (b"\x16\x03\x01\x00", None),  # too short to tell
        (b"\x16\x03\x03\x00\x00", None),  # empty handshake record
        (b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n", "http-request"),
        (b"OPTIONS * HTTP/1.1\r\n\r\n", "http-request"),
        (b"POST /", "http-request"),  # line incomplete: prefix suffices
        (b"GET /a HTTP/2.0\r\n", None),
        (b"BREW /pot HTTP/1.1\r\n", None),  # unknown method
        (b"get / HTTP/1.1\r\n", None),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "http-response"),
        (b"HTTP/1.0 404\r\n", "http-response"),
        (b"HTTP/1.", "http-response"),
        (b"HTTP/1.1 OK\r\n", None),
        (b"SSH-2.0-OpenSSH_9.6\r\n", None),
        (b"", None),
    ],
)
def test_sniff(data, kind):
    assert sniff(data) == kind
    assert sniff(memoryview(data)) == kind


@given(st.binary(max_size=64))
def test_sniff_never_raises(data):
    assert sniff(data) in (None, "tls", "http-request", "http-response")
