"""Link-layer and EtherType numbers, and where the network layer starts for each link type."""

from __future__ import annotations

from typing import Final

from pktmask.errors import UnsupportedLinkTypeError

# Link types (tcpdump.org/linktypes.html).
LT_NULL: Final = 0
LT_ETHERNET: Final = 1
LT_RAW_BSD: Final = 12  # DLT_RAW on most BSDs: raw IP
LT_RAW_OBSD: Final = 14  # DLT_RAW on OpenBSD
LT_RAW: Final = 101
LT_LOOP: Final = 108
LT_SLL: Final = 113
LT_IPV4: Final = 228
LT_IPV6: Final = 229
LT_SLL2: Final = 276
LT_NETLINK: Final = 253  # Linux netlink: carries no IP headers, only attributes (masking zeroes them)
# 802.11 and its radio headers (proto/walk_wifi.py, proto/radio.py).
LT_IEEE802_11: Final = 105
LT_PRISM: Final = 119  # or an AVS header, told by its first word
LT_RADIOTAP: Final = 127
LT_AVS: Final = 163
LT_PPI: Final = 192
WIFI_LINKTYPES: Final = frozenset({LT_IEEE802_11, LT_PRISM, LT_RADIOTAP, LT_AVS, LT_PPI})

SUPPORTED_LINKTYPES: Final = {
    LT_NULL: "BSD NULL",
    LT_ETHERNET: "Ethernet",
    LT_RAW_BSD: "raw IP",
    LT_RAW_OBSD: "raw IP",
    LT_RAW: "raw IP",
    LT_LOOP: "OpenBSD LOOP",
    LT_SLL: "Linux cooked (SLL)",
    LT_IPV4: "raw IPv4",
    LT_IPV6: "raw IPv6",
    LT_SLL2: "Linux cooked v2 (SLL2)",
    LT_IEEE802_11: "802.11",
    LT_PRISM: "802.11 with Prism header",
    LT_RADIOTAP: "802.11 with radiotap header",
    LT_AVS: "802.11 with AVS header",
    LT_PPI: "PPI (802.11)",
}

# EtherTypes.
ET_IPV4: Final = 0x0800
ET_ARP: Final = 0x0806
ET_VLAN: Final = 0x8100
ET_QINQ: Final = 0x88A8
ET_QINQ_OLD: Final = 0x9100
ET_IPV6: Final = 0x86DD
ET_MPLS: Final = 0x8847
ET_MPLS_MC: Final = 0x8848
ET_PPPOE_SESSION: Final = 0x8864
ET_TEB: Final = 0x6558  # transparent Ethernet bridging (GRE)
ET_PPP: Final = 0x880B  # PPP in GRE (PPTP)
VLAN_TYPES: Final = frozenset({ET_VLAN, ET_QINQ, ET_QINQ_OLD})

# ARPHRD types (Linux cooked captures' link-layer address type).
ARPHRD_ETHER: Final = 1

PPP_IPV4: Final = 0x0021
PPP_IPV6: Final = 0x0057

# BSD NULL/LOOP address families meaning IPv6 (they differ between BSDs).
AF_INET: Final = 2
AF_INET6: Final = frozenset({10, 24, 28, 30})

UDP_VXLAN: Final = 4789


def check_linktype(linktype: int, name: str, masking: bool = True) -> None:
    """Raise UnsupportedLinkTypeError unless pktmask can sanitize ``linktype``.

    Netlink frames are sanitized only by masking (their addresses live in
    attributes that are zeroed), so they are refused when masking is off.
    """
    if linktype == LT_NETLINK:
        if masking:
            return
        raise UnsupportedLinkTypeError(
            "Linux netlink captures (link type 253) can only be sanitized with payload masking on "
            "(their addresses live in attributes that masking zeroes); nothing was written",
            name,
        )
    if linktype not in SUPPORTED_LINKTYPES:
        raise UnsupportedLinkTypeError(
            f"unsupported link type {linktype}: only Ethernet, Linux SLL/SLL2, raw IP, BSD NULL/LOOP "
            "and 802.11 (plain, radiotap, PPI, Prism, AVS) captures can be sanitized (nothing was written)",
            name,
        )


def null_ethertype(buf, linktype: int) -> int:
    """Translate the 4-byte BSD NULL/LOOP header into an EtherType (0 if unknown)."""
    if len(buf) < 4:
        return 0
    if buf[0] in (0x0F, 0x8F) and buf[1] == 0:
        # Cisco HDLC framing seen on BSD NULL captures: address, control, EtherType.
        return int.from_bytes(buf[2:4], "big")
    if linktype == LT_LOOP:
        family = int.from_bytes(buf[0:4], "big")
    else:
        # NULL is in the capturing host's byte order: accept either.
        family = int.from_bytes(buf[0:4], "little")
        if family > 0xFFFF:
            family = int.from_bytes(buf[0:4], "big")
    if family == AF_INET:
        return ET_IPV4
    if family in AF_INET6:
        return ET_IPV6
    return 0


def ip_version_ethertype(buf, off: int) -> int:
    """EtherType for a raw IP packet at ``off``, from its version nibble (0 if neither)."""
    if off >= len(buf):
        return 0
    v = buf[off] >> 4
    return ET_IPV4 if v == 4 else ET_IPV6 if v == 6 else 0
