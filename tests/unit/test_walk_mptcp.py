"""MPTCP options keep their subtype; keys, tokens, nonces and HMACs are zeroed (docs/policy.md).

An MP_CAPABLE option carries the sender's 64-bit key, from which the
connection token derives: kept, it links subflows and connections across
captures. Found by planting a walker that kept every MPTCP option (issue 17).
"""

from __future__ import annotations

import struct

import pytest

from captures import tcp_header
from pktmask.proto.walk import F_IP4, walk

KEY = b"SECRETK!"


def frame(option: bytes) -> bytes:
    option += bytes(-len(option) % 4)
    tcp = tcp_header(option, "S")
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0,
                     bytes([192, 0, 2, 7]), bytes([198, 51, 100, 9]))
    return bytes.fromhex("020000000009020000000007") + b"\x08\x00" + ip + tcp


def zeroed(buf: bytes) -> set[int]:
    out: set[int] = set()
    for a, b in walk(buf, 1).zero:
        out.update(range(a, b))
    return out


@pytest.mark.parametrize("option", [
    bytes([30, 12, 0x01, 0x81]) + KEY,  # MP_CAPABLE (SYN): the sender's key
    bytes([30, 12, 0x10, 0x00]) + KEY,  # MP_JOIN (SYN) with a token and a nonce
    bytes([30, 16, 0x21, 0x00]) + KEY + bytes(4),  # DSS: data sequence mapping
], ids=["mp-capable", "mp-join", "dss"])
def test_mptcp_keys_tokens_and_mappings_are_zeroed(option):
    buf = frame(option)
    at = buf.index(KEY)
    assert set(range(at, at + len(KEY))) <= zeroed(buf)
    assert at - 2 not in zeroed(buf)  # the subtype byte is kept


def test_mptcp_add_addr_maps_the_address_and_zeroes_the_hmac():
    option = bytes([30, 16, 0x30, 7]) + bytes([203, 0, 113, 5]) + KEY  # ADD_ADDR, IPv4, HMAC
    buf = frame(option)
    at = buf.index(KEY)
    assert set(range(at, at + len(KEY))) <= zeroed(buf)
    assert (at - 4, F_IP4, 4) in walk(buf, 1).fields
