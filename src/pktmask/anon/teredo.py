"""Teredo addresses (RFC 4380, 2001:0::/32) mapped consistently with the IPv4 pseudonyms.

A Teredo address embeds its server's IPv4 address (bits 32-63) and, obfuscated (every bit
inverted), its client's public IPv4 address (bits 96-127) and port (bits 80-95). The keyed
IPv6 map would scramble those bits, but not as the IPv4 map does: the same client would
carry two unrelated pseudonyms. So the prefix and the flags are kept, the server address
takes its IPv4 pseudonym, the client address the inverted pseudonym of its inverted value,
and the obfuscated port is kept as ports are (docs/policy.md, "Pseudonyms"). The result is
a Teredo address again, prefix-preserving within 2001:0::/32 (each IPv4 part is).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

PREFIX: Final = b"\x20\x01\x00\x00"


def _invert(v: bytes) -> bytes:
    return (int.from_bytes(v, "big") ^ 0xFFFFFFFF).to_bytes(4, "big")


def map_teredo(addr: bytes, map_v4: Callable[[bytes], bytes]) -> bytes:
    """The pseudonym of the Teredo address ``addr`` (16 bytes) under ``map_v4``."""
    return PREFIX + map_v4(addr[4:8]) + addr[8:12] + _invert(map_v4(_invert(addr[12:16])))
