"""IPv6 multicast addresses that embed unicast bits get them from the pseudonyms (docs/policy.md).

Multicast addresses are kept as they are, except where they carry bits of a
unicast address, which would unmask what the unicast pseudonyms hide (and,
the map being prefix-preserving, their neighbours):

* a solicited-node address (ff02::1:ffXX:XXXX, RFC 4291) and its Ethernet
  address (33:33:ff:XX:XX:XX, RFC 2464) carry the low 24 bits of a unicast
  address: they are zeroed (the MAC only when MACs are mapped), and the walk
  rebuilds them from the mapped target where a Neighbor Solicitation names it;
* a unicast-prefix-based group (RFC 3306, flag P) or an embedded-RP group
  (RFC 3956, flags R and P) carries a network prefix of ``plen`` bits: it is
  replaced by the same prefix of the pseudonym of that network, so the group
  stays consistent with the network's mapped addresses; bits past ``plen``
  (zero by the RFCs) are zeroed, a ``plen`` over 64 zeroes the whole field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

SOLICITED_NODE: Final = bytes.fromhex("ff0200000000000000000001ff")  # ff02::1:ff00:0/104
SOLICITED_NODE_MAC: Final = bytes.fromhex("3333ff")  # its Ethernet address: 33:33 + the low 32 bits
_FLAG_P: Final = 0x2  # in the flags nibble (0RPT)


def map_group(addr: bytes, map_v6: Callable[[bytes], bytes]) -> bytes:
    """Return multicast ``addr`` with its embedded unicast bits derived from their pseudonyms."""
    if addr[:13] == SOLICITED_NODE:
        return SOLICITED_NODE + b"\0\0\0"
    if not (addr[1] >> 4) & _FLAG_P:
        return addr
    plen = addr[3]
    if plen == 0:
        return addr
    if plen > 64:
        return addr[:4] + bytes(8) + addr[12:]
    mapped = map_v6(addr[4:12] + bytes(8))
    bits = int.from_bytes(mapped[:8], "big") >> (64 - plen) << (64 - plen)
    return addr[:4] + bits.to_bytes(8, "big") + addr[12:]
