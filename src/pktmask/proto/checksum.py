"""Internet checksum (RFC 1071) and its incremental update (RFC 1624), on Python ints.

A one's complement sum is congruent to the big-endian integer value of the
data modulo 0xFFFF (since 2**16 ≡ 1), so whole regions are summed by one C
level ``int.from_bytes`` and a modulo instead of a loop over 16-bit words.
"""

from __future__ import annotations

import struct
import zlib
from typing import Final

_from: Final = int.from_bytes
# Every 16-bit value as 2 big-endian bytes, in one 128 KiB string that stays in cache
# (a table of 65536 small bytes objects costs a cache miss per lookup).
_WORDS: Final = struct.pack("!65536H", *range(0x10000))


def word(x: int) -> bytes:
    """Return ``x`` (0..0xFFFF) as 2 big-endian bytes: a checksum field, without a call into struct."""
    return _WORDS[2 * x : 2 * x + 2]


def ones_sum(data) -> int:
    """Return the one's complement sum of ``data`` (odd length padded with a zero byte), mod 0xFFFF."""
    n = _from(data, "big")
    if len(data) & 1:
        n <<= 8
    return n % 0xFFFF


def checksum(data) -> int:
    """Return the Internet checksum of ``data``: the complement of its one's complement sum."""
    return (-ones_sum(data)) % 0xFFFF


def word_sum(data) -> int:
    """Sum of the 16-bit big-endian words of an even-length ``data`` as a plain int (for deltas)."""
    return _from(data, "big") % 0xFFFF


def field(s: int, udp: bool) -> int:
    """Return the checksum field for data whose one's complement sum is ``s`` (modulo 0xFFFF).

    Data that is not all zeros sums to 0xFFFF, never to 0x0000, so ``s % 0xFFFF == 0``
    means a sum of 0xFFFF and a checksum of 0x0000 (RFC 1624). UDP and UDP-Lite send a
    computed 0x0000 as 0xFFFF instead (RFC 768, RFC 3828): their 0x0000 means "none".
    """
    x = s % 0xFFFF
    if x:
        return 0xFFFF - x
    return 0xFFFF if udp else 0


def adjust(csum: int, delta: int, udp: bool = False) -> int:
    """Return checksum ``csum`` updated for data whose word sum changed by ``delta``.

    RFC 1624 eqn. 3: HC' = ~(~HC + m' - m), with its +0 rule as ``field``.
    """
    return field((~csum & 0xFFFF) + delta, udp)


def write_fcs(buf: bytearray, fcs: tuple[int, int, int, int] | None) -> None:
    """Write the 802.11 FCS (CRC-32, little-endian) at ``at`` for ``fcs = (start, gap, resume,
    at)`` from a walk (``Walk.fcs``): over ``buf[start:gap]`` and ``buf[resume:at]`` (the gap is
    radiotap's data padding, which is not sent). Nothing if None or cut short."""
    if fcs is not None:
        start, gap, resume, at = fcs
        if at + 4 <= len(buf):
            crc = zlib.crc32(buf[resume:at], zlib.crc32(buf[start:gap]))
            buf[at : at + 4] = crc.to_bytes(4, "little")
