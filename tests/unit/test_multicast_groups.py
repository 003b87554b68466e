"""Multicast groups that embed unicast bits, outside a Neighbor Solicitation (docs/policy.md).

A solicited-node group (ff02::1:ffXX:XXXX) and its MAC (33:33:ff:XX:XX:XX) carry the low 24 bits
of a unicast address; a unicast-prefix-based group (RFC 3306) carries a network prefix. In a
Neighbor Solicitation the walk rebuilds the low bits from the mapped target, which hid a
rewriter that kept them everywhere else: an MLD report, or any packet sent to such a group, must
not carry them (issue 17). An IGMP group field holding a unicast address is mapped like any other.
"""

from __future__ import annotations

import struct

from scapy.all import Ether, ICMPv6MLReport, IPv6

from pktmask.anon.cryptopan import AddressMapper
from pktmask.anon.macs import MacMapper
from pktmask.anon.rewriter import Rewriter
from pktmask.proto.walk import F_IP4, walk

KEY = bytes(range(0x40, 0x60))
SNODE = "ff02::1:ff12:3456"
SNODE_MAC = "33:33:ff:12:34:56"


def rewrite(frame: bytes) -> bytes:
    buf = bytearray(frame)
    Rewriter(AddressMapper(KEY), MacMapper(KEY)).frame(buf, 1)
    return bytes(buf)


def test_mld_report_to_a_solicited_node_group_loses_the_low_bits():
    frame = bytes(Ether(src="02:00:00:00:00:07", dst=SNODE_MAC)
                  / IPv6(src="fe80::1234:5678:9a12:3456", dst=SNODE, hlim=1) / ICMPv6MLReport(mladdr=SNODE))
    out = rewrite(frame)
    assert out[0:6] == bytes.fromhex("3333ff000000")  # the MAC
    assert out[14 + 24 : 14 + 40] == bytes.fromhex("ff0200000000000000000001ff000000")  # IPv6 destination
    assert out[14 + 40 + 8 : 14 + 40 + 24] == bytes.fromhex("ff0200000000000000000001ff000000")  # the group
    assert b"\x12\x34\x56" not in out[:14 + 8] + out[14 + 24:]


def test_unicast_prefix_based_group_takes_the_mapped_prefix():
    group = "ff3e:40:2001:db8:1:2::1234"  # flags P and T, plen 64, network 2001:db8:1:2::/64
    frame = bytes(Ether(src="02:00:00:00:00:07", dst="33:33:00:00:12:34")
                  / IPv6(src="2001:db8:1:2::7", dst=group, hlim=1) / ICMPv6MLReport(mladdr=group))
    out = rewrite(frame)
    mapped = AddressMapper(KEY).map_v6(bytes.fromhex("20010db8000100020000000000000000"))
    for at in (14 + 24, 14 + 40 + 8):
        assert out[at : at + 4] == bytes.fromhex("ff3e0040")
        assert out[at + 4 : at + 12] == mapped[:8] != bytes.fromhex("20010db800010002")
        assert out[at + 12 : at + 16] == bytes.fromhex("00001234")


def test_igmp_group_field_is_an_address_field():
    igmp = struct.pack("!BBH4s", 0x16, 0, 0, bytes([192, 0, 2, 55]))  # v2 report naming a unicast "group"
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 1, 0, 1, 2, 0, bytes([192, 0, 2, 7]), bytes([224, 0, 0, 22]))
    frame = bytes.fromhex("01005e000016020000000007") + b"\x08\x00" + ip + igmp
    assert (14 + 20 + 4, F_IP4, 4) in walk(frame, 1).fields
    out = rewrite(frame)
    assert out[14 + 24 : 14 + 28] == AddressMapper(KEY).map_v4(bytes([192, 0, 2, 55])) != bytes([192, 0, 2, 55])


def test_unicast_prefix_based_group_with_a_prefix_over_64_bits_is_zeroed():
    group = "ff3e:50:2001:db8:1:2::1234"  # plen 80: not allowed by RFC 3306, the field is zeroed
    frame = bytes(Ether(src="02:00:00:00:00:07", dst="33:33:00:00:12:34")
                  / IPv6(src="2001:db8:1:2::7", dst=group, hlim=1) / ICMPv6MLReport(mladdr=group))
    out = rewrite(frame)
    for at in (14 + 24, 14 + 40 + 8):
        assert out[at : at + 16] == bytes.fromhex("ff3e0050000000000000000000001234")
