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
# Serial and other non-Ethernet framings (walk_link.py, docs/policy.md "Link layer").
LT_SLIP: Final = 8
LT_PPP: Final = 9
LT_PPP_HDLC: Final = 50  # PPP in HDLC-like framing, or Cisco HDLC (first byte 0x0F/0x8F)
LT_PPP_ETHER: Final = 51  # PPPoE without its Ethernet header
LT_C_HDLC: Final = 104
LT_FRELAY: Final = 107
LT_PPP_PPPD: Final = 166  # PPP as pppd logs it: direction byte in place of the address byte
LT_PPP_WITH_DIR: Final = 204  # the same three with a direction byte in front
LT_C_HDLC_WITH_DIR: Final = 205
LT_FRELAY_WITH_DIR: Final = 206
LT_IPNET: Final = 226
LT_NFLOG: Final = 239

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
    LT_SLIP: "SLIP",
    LT_PPP: "PPP",
    LT_PPP_HDLC: "PPP in HDLC framing",
    LT_PPP_ETHER: "PPPoE",
    LT_C_HDLC: "Cisco HDLC",
    LT_FRELAY: "Frame Relay",
    LT_PPP_PPPD: "PPP (pppd)",
    LT_PPP_WITH_DIR: "PPP with direction",
    LT_C_HDLC_WITH_DIR: "Cisco HDLC with direction",
    LT_FRELAY_WITH_DIR: "Frame Relay with direction",
    LT_IPNET: "Solaris IPNET",
    LT_NFLOG: "Linux NFLOG",
}
# The link types walk_link.py walks (dispatched there from walk.py).
FRAMED: Final = frozenset({LT_SLIP, LT_PPP, LT_PPP_HDLC, LT_PPP_ETHER, LT_C_HDLC, LT_FRELAY, LT_PPP_PPPD,
                           LT_PPP_WITH_DIR, LT_C_HDLC_WITH_DIR, LT_FRELAY_WITH_DIR, LT_IPNET, LT_NFLOG})
# Names of link types pktmask refuses, for the error message (tcpdump.org/linktypes.html).
UNSUPPORTED_NAMES: Final = {
    6: "Token Ring", 10: "FDDI", 100: "ATM RFC 1483", 147: "user 0", 189: "Linux USB", 195: "IEEE 802.15.4",
    220: "Linux USB (mmapped)", 227: "SocketCAN", 230: "IEEE 802.15.4 (no FCS)", 251: "Bluetooth LE LL",
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
ET_ERSPAN: Final = 0x88BE  # ERSPAN type I (GRE without sequence number) and II, in GRE
ET_ERSPAN3: Final = 0x22EB  # ERSPAN type III, in GRE
ET_SLARP: Final = 0x8035  # Cisco SLARP (Cisco HDLC)
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
        known = UNSUPPORTED_NAMES.get(linktype)
        raise UnsupportedLinkTypeError(
            f"unsupported link type {linktype}{f' ({known})' if known else ''}: pktmask sanitizes only the "
            "link types listed in docs/policy.md, \"Link layer\" (nothing was written)",
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
