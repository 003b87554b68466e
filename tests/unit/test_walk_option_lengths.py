"""Options are kept only at their valid length (docs/policy.md): a kept kind with another length
is data we do not understand, and its bytes are zeroed.

A router alert is 4 bytes in IPv4 (RFC 2113) and in an IPv6 hop-by-hop header
(RFC 2711), a jumbo payload option 6 bytes; MSS, window scale, SACK-permitted
and timestamps have one length each. A long "router alert" or "MSS" can carry
anything: found by planting an allowlist that ignored the length (issue 17).
"""

from __future__ import annotations

import struct

import pytest

from captures import tcp_header
from pktmask.proto.walk import walk

SECRET = b"SECRET"


def zeroed(frame: bytes) -> set[int]:
    out: set[int] = set()
    for a, b in walk(frame, 1).zero:
        out.update(range(a, min(b, len(frame))))
    return out


def eth(etype: int) -> bytes:
    return bytes.fromhex("020000000009020000000007") + struct.pack("!H", etype)


def ip4(options: bytes, payload: bytes, proto: int = 6) -> bytes:
    ihl = 5 + len(options) // 4
    head = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, ihl * 4 + len(payload), 1, 0, 64, proto, 0,
                       bytes([192, 0, 2, 7]), bytes([198, 51, 100, 9]))
    return head + options + payload


def ip6(next_header: int, payload: bytes) -> bytes:
    return (struct.pack("!IHBB", 0x60000000, len(payload), next_header, 64)
            + bytes.fromhex("20010db8000000000000000000000007") + bytes.fromhex("20010db8000900000000000000000009")
            + payload)


def secret_zeroed(frame: bytes) -> bool:
    at = frame.index(SECRET)
    return set(range(at, at + len(SECRET))) <= zeroed(frame)


@pytest.mark.parametrize("length", [8, 12])
def test_long_ipv4_router_alert_data_is_zeroed(length):
    option = bytes([0x94, length]) + SECRET + bytes(length - 2 - len(SECRET))
    frame = eth(0x0800) + ip4(option, tcp_header(b"", "A"))
    assert secret_zeroed(frame)
    # The valid 4-byte router alert is kept.
    plain = eth(0x0800) + ip4(bytes([0x94, 4, 0, 0]), tcp_header(b"", "A"))
    assert not set(range(34, 38)) & zeroed(plain)


@pytest.mark.parametrize("kind,length", [(5, 8), (194, 10)])  # router alert, jumbo payload
def test_long_ipv6_hop_by_hop_option_data_is_zeroed(kind, length):
    option = bytes([kind, length - 2]) + SECRET + bytes(length - 2 - len(SECRET))
    rem = -(2 + len(option)) % 8
    pad = b"" if rem == 0 else b"\0" if rem == 1 else bytes([1, rem - 2]) + bytes(rem - 2)  # Pad1 / PadN
    hbh = bytes([6, (2 + len(option) + rem) // 8 - 1]) + option + pad
    assert len(hbh) % 8 == 0
    frame = eth(0x86DD) + ip6(0, hbh + tcp_header(b"", "A"))
    assert secret_zeroed(frame)


@pytest.mark.parametrize("kind,length", [(2, 8), (3, 8), (4, 8), (8, 12)])  # MSS, wscale, SACK-permitted, TS
def test_tcp_option_of_a_kept_kind_with_another_length_is_zeroed(kind, length):
    option = bytes([kind, length]) + SECRET + bytes(length - 2 - len(SECRET))
    option += bytes(-len(option) % 4)
    frame = eth(0x0800) + ip4(b"", tcp_header(option, "A"))
    assert secret_zeroed(frame)
