"""The encapsulation walker: one walk of a frame, several consumers.

``walk(buf, linktype)`` follows a frame from the link layer (Ethernet, cooked, raw IP,
and the serial framings of walk_link.py) through VLAN/QinQ, MPLS, PPPoE, GRE (ERSPAN),
IP-in-IP, VXLAN and the UDP tunnels of walk_tunnel.py down to the innermost packet, and into
ARP, IPv4 options, IPv6 extension headers, ICMP/ICMPv6 errors (the quoted
packet), Neighbor Discovery, MLD and IGMP. It changes nothing; it returns a
``Walk`` that says, for every byte it understood, what the policy does with it
(docs/policy.md):

* ``fields``: identifiers to replace by their pseudonyms (MACs, IPv4 and IPv6
  addresses, possibly cut short by the snap length): the anonymizer
  (``anon/rewriter.py``) maps them.
* ``zero``: byte ranges that are not header we understand and keep (payloads,
  unknown options' data, trailers, malformed rest): the masker zeroes them.
  Fail closed: whatever is not recognised is listed.
* ``jobs``: checksummed regions, outer to inner, with the byte ranges of
  their pseudo header: the anonymizer updates them incrementally, the masker
  recomputes them after zeroing.
* ``tcp``: the innermost unfragmented TCP segment (stream key and payload
  span), whose kept bytes the stream tracker decides.
* ``wipe``: ranges every consumer zeroes (nesting beyond MAX_DEPTH).
* ``labels``: the labels of the names in DNS messages (``proto/dns.py``), each
  with its parent (the original lowercased dotted name to its right): the
  anonymizer replaces each by its pseudonym (``anon/names.py``); the masker
  keeps them. A pseudonym has the label's length, and no structural decision
  reads a label's bytes, so the walk of the anonymized frame finds the same
  structure and zeroes the same ranges as the walk of the original.
* ``trim``: bytes of which only some bits are kept (an EDNS Client Subnet
  address past its prefix length): every consumer clears the other bits.
* ``fcs``: an 802.11 frame check sequence (``walk_wifi.py``): every consumer
  recomputes it last, over the bytes as it leaves them (``checksum.write_fcs``).
  SSIDs and mesh IDs are listed in ``labels`` under ``names.SSID_PARENT``.

Adding an encapsulation means adding it here, once: both consumers follow.
``verify`` keeps its own, independent dissector on purpose.
"""

from __future__ import annotations

from typing import Final

from pktmask.proto import link
from pktmask.proto import numbers as n
from pktmask.proto.checksum import ones_sum
from pktmask.proto.walk_base import (
    F_IP4,
    F_IP6,
    F_MAC,
    FIELD_SIZE,
    IP4_HEADER,
    L4_PLAIN,
    L4_PSEUDO,
    L4_QUOTED,
    MAX_DEPTH,
    Job,
    TcpSegment,
    Walk,
    _from,
)
from pktmask.proto.walk_link import LinkWalker
from pktmask.proto.walk_wifi import wifi

__all__ = ["F_IP4", "F_IP6", "F_MAC", "FIELD_SIZE", "IP4_HEADER", "L4_PLAIN", "L4_PSEUDO", "L4_QUOTED",
           "MAX_DEPTH", "Job", "TcpSegment", "Walk", "walk"]

_KNOWN_NEXT: Final = frozenset({n.IP_HOPOPTS, n.IP_TCP, n.IP_UDP, n.IP_ROUTING, n.IP_FRAGMENT, n.IP_GRE,
                                n.IP_ESP, n.IP_AH, n.IP_ICMPV6, n.IP_NONE, n.IP_DSTOPTS, n.IP_IPIP, n.IP_IPV6})


def walk(buf, linktype: int, payloads: bool = True) -> Walk:
    """Walk one frame; see the module docstring. Never raises on malformed input.

    ``payloads=False`` skips what only the consumers' bytes depend on (DNS messages),
    for the masking pre-pass: jobs, fragments and the TCP segment are the same.
    """
    w = Walk()
    _Walker(buf, w, payloads).frame(linktype)
    return w


class _Walker(LinkWalker):
    """The link layers, where the walk starts, and the checks of guessed encapsulations."""

    __slots__ = ()

    # ---- link layer ------------------------------------------------------------------
    def frame(self, lt: int) -> None:
        buf = self.buf
        size = len(buf)
        if lt == link.LT_ETHERNET:
            self.ether(0, size, 0)
        elif lt in (link.LT_RAW, link.LT_RAW_BSD, link.LT_RAW_OBSD):
            self.l3(0, size, link.ip_version_ethertype(buf, 0), 0)
        elif lt == link.LT_IPV4:
            self.l3(0, size, link.ET_IPV4, 0)
        elif lt == link.LT_IPV6:
            self.l3(0, size, link.ET_IPV6, 0)
        elif lt == link.LT_SLL:
            if size >= 16:
                self.link_address(6, _from(buf[2:4], "big"), _from(buf[4:6], "big"))
                self.l3(16, size, _from(buf[14:16], "big"), 0)
            else:
                self.cooked_cut(6, size)
        elif lt == link.LT_SLL2:
            if size >= 20:
                self.link_address(12, _from(buf[8:10], "big"), buf[11])
                self.l3(20, size, _from(buf[0:2], "big"), 0)
            else:
                self.cooked_cut(12, size)
        elif lt in (link.LT_NULL, link.LT_LOOP):
            self.l3(4, size, link.null_ethertype(buf, lt), 0)
        elif lt == link.LT_NETLINK:
            self.netlink(size)
        elif lt in link.WIFI_LINKTYPES:
            wifi(self, lt)
        elif lt in link.FRAMED:  # serial and other framings: walk_link.py
            self.framed(lt, size)
        else:
            self.zero(0, size)

    def link_address(self, off: int, arphrd: int, length: int) -> None:
        """A cooked header's 8-byte link-layer address field: an Ethernet MAC is mapped,
        anything else (tunnel endpoints, 802.11, FireWire, padding) is hidden."""
        if arphrd == link.ARPHRD_ETHER and length == 6:
            self.field(off, F_MAC, off + 6)
            self.hide(off + 6, off + 8)
        else:
            self.hide(off, off + 8)

    def cooked_cut(self, off: int, size: int) -> None:
        """A cooked header cut short (docs/policy.md, "Headers cut short"): the fields before
        the address kept as captured; the address hidden, even when whole (fail closed: its
        type and length may not be there), and so is what follows (a stub of the protocol)."""
        if off < size:
            self.hide(off, size)

    def netlink(self, size: int) -> None:
        """Linux netlink: keep the 16-byte cooked header and each message header, zero attributes."""
        buf = self.buf
        o = 16
        while o + 16 <= size:
            # nlmsg_len is in the capturing host's byte order: take the reading that fits.
            le, be = _from(buf[o : o + 4], "little"), _from(buf[o : o + 4], "big")
            msg = le if 16 <= le <= size - o else be if 16 <= be <= size - o else 0
            if not msg:
                break
            self.zero(o + 16, o + msg)
            o += (msg + 3) & ~3
        self.zero(o, size)

    def ether(self, off: int, end: int, depth: int) -> None:
        if off + 14 > end:
            self.zero(off, end)
            return
        self.field(off, F_MAC, end)
        self.field(off + 6, F_MAC, end)
        self.mac_dst = off
        self.l3(off + 14, end, _from(self.buf[off + 12 : off + 14], "big"), depth)

    def l3(self, off: int, end: int, etype: int, depth: int) -> None:
        """Dispatch on an EtherType at ``off`` (VLAN, MPLS and PPPoE are walked through)."""
        buf = self.buf
        if depth > MAX_DEPTH:
            self.too_deep(off, end)
            return
        while etype in link.VLAN_TYPES and off + 4 <= end:
            etype = _from(buf[off + 2 : off + 4], "big")
            off += 4
        if etype == link.ET_IPV4:
            self.ip4(off, end, depth, False)
        elif etype == link.ET_IPV6:
            self.ip6(off, end, depth, False)
        elif etype == link.ET_ARP:
            self.arp(off, end)
        elif etype == link.ET_MPLS or etype == link.ET_MPLS_MC:
            while off + 4 <= end:
                bottom = buf[off + 2] & 1
                off += 4
                if bottom:
                    break
            # What follows the label stack is not named: a guess, kept only if it parses.
            nib = buf[off] >> 4 if off < end else -1
            if nib == 0 and off + 4 <= end:  # pseudowire control word (hidden), then Ethernet
                self.hide(off, off + 4)
                if self.plausible_ether(off + 4, end):
                    self.ether(off + 4, end, depth + 1)
                else:
                    self.hide(off + 4, end)
            elif (nib == 4 and self.plausible_ip4(off, end)) or (nib == 6 and self.plausible_ip6(off, end)):
                self.l3(off, end, link.ip_version_ethertype(buf, off), depth + 1)
            else:
                self.hide(off, end)
        elif etype == link.ET_PPPOE_SESSION and off + 8 <= end:
            plen = _from(buf[off + 4 : off + 6], "big")
            self.ppp(off + 6, min(end, off + 6 + plen) if plen else end, end, depth)
        elif etype == link.ET_TEB:
            self.ether(off, end, depth + 1)
        elif etype == link.ET_PPP:
            self.ppp(off, end, end, depth)
        else:
            self.zero(off, end)

    def ppp(self, off: int, end: int, frame_end: int, depth: int) -> None:
        """A PPP frame (optional FF 03 address/control, 1- or 2-byte protocol)."""
        buf = self.buf
        self.zero(end, frame_end)
        if off + 2 <= end and buf[off] == 0xFF and buf[off + 1] == 0x03:
            off += 2
        if off < end and buf[off] & 1:  # compressed 1-byte protocol field
            proto, off = buf[off], off + 1
        elif off + 2 <= end:
            proto, off = _from(buf[off : off + 2], "big"), off + 2
        else:
            self.zero(off, end)
            return
        if proto == link.PPP_IPV4:
            self.ip4(off, end, depth + 1, False)
        elif proto == link.PPP_IPV6:
            self.ip6(off, end, depth + 1, False)
        else:
            self.zero(off, end)  # LCP/IPCP/CHAP...: may carry addresses and names

    def arp(self, off: int, end: int) -> None:
        """ARP/RARP: hardware (MAC) and protocol (IPv4) addresses of sender and target."""
        buf = self.buf
        if off + 8 > end:
            self.zero(off, end)
            return
        hlen, plen = buf[off + 4], buf[off + 5]
        used = off + 8 + 2 * (hlen + plen)
        if used > end:  # cut short: none of its addresses is complete
            self.hide(off + 8, end)
            return
        self.zero(used, end)
        s = off + 8
        t = s + hlen + plen
        for a in (s, t):
            if hlen == 6:
                self.field(a, F_MAC, end)
            else:  # EUI-64, InfiniBand...: not a MAC we map
                self.hide(a, a + hlen)
            if plen == 4 and _from(buf[off + 2 : off + 4], "big") == link.ET_IPV4:
                self.field(a + hlen, F_IP4, end)
            else:
                self.hide(a + hlen, a + hlen + plen)

    # ---- guesses -----------------------------------------------------------------------
    def plausible_ether(self, off: int, end: int) -> bool:
        """An Ethernet frame where only a guess says one is (VXLAN, MPLS): it must carry a
        known EtherType whose header parses."""
        buf = self.buf
        if off + 14 > end:
            return False
        o = off + 12
        etype = _from(buf[o : o + 2], "big")
        while etype in link.VLAN_TYPES and o + 6 <= end:
            o += 4
            etype = _from(buf[o : o + 2], "big")
        o += 2
        if etype == link.ET_IPV4:
            return self.plausible_ip4(o, end)
        if etype == link.ET_IPV6:
            return self.plausible_ip6(o, end)
        if etype == link.ET_ARP:
            return (o + 28 <= end and _from(buf[o : o + 2], "big") == 1
                    and _from(buf[o + 2 : o + 4], "big") == link.ET_IPV4
                    and buf[o + 4] == 6 and buf[o + 5] == 4 and 1 <= _from(buf[o + 6 : o + 8], "big") <= 4)
        return False

    def plausible_ip4(self, off: int, end: int) -> bool:
        """An IPv4 header with a valid checksum and a consistent length."""
        buf = self.buf
        if off + 20 > end or buf[off] >> 4 != 4:
            return False
        ihl = (buf[off] & 0x0F) * 4
        return (ihl >= 20 and off + ihl <= end and _from(buf[off + 2 : off + 4], "big") >= ihl
                and ones_sum(buf[off : off + ihl]) == 0)

    def plausible_ip6(self, off: int, end: int) -> bool:
        """An IPv6 header with a known next header and a payload length that fits the frame
        (or runs past a capture cut short), with at most link-layer padding after it."""
        buf = self.buf
        if off + 40 > end or buf[off] >> 4 != 6:
            return False
        stated = off + 40 + _from(buf[off + 4 : off + 6], "big")
        return (buf[off + 6] in _KNOWN_NEXT and buf[off + 7] > 0 and stated > off + 40
                and (stated <= end < stated + 64 or (stated > end and end == len(buf))))
