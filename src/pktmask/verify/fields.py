"""The audit's own dissector, link and network layers: which bytes of a frame the policy keeps.

``Walker.frame(buf, linktype)`` labels an ORIGINAL frame with ``labels.Spans`` following the
header policy of docs/policy.md (what ``pktmask mask`` keeps, maps or zeroes), written
independently of the sanitizer's walkers so the audit does not share their blind spots. The
transport layers are in ``transport``, serial and other framings in ``links``, tunnels in
``tunnels``. Besides the spans a walk leaves:

* ``tcp``: the innermost unfragmented, unquoted TCP segment with payload, as
  ``(stream key, seq, flags, payload start, payload end)``, for the stream model;
* ``udp``: ``(payload start, end, sport, dport)`` of UDP payloads (DNS needles);
* ``last_fragment``: the key of a datagram whose last fragment this frame is;
* ``fragments``: every fragment of the frame outside ICMP quotes, as ``(datagram key, offset
  in the datagram, data start, data end, more fragments, protocol)`` (``fragments.Reassembler``).

Headers are read by offsets with named constants; every read is bounds-checked, and a field
that does not fit in the captured bytes is labelled OTHER (``Spans.add``).
"""

from __future__ import annotations

from typing import Final

from pktmask.verify.labels import ADDR4, KEEP, MAC, OTHER, Spans
from pktmask.verify.links import LINK_TYPES, Links
from pktmask.verify.network import Network
from pktmask.verify.transport import Transport
from pktmask.verify.tunnels import Tunnels
from pktmask.verify.wifi import LT_WIFI, Wifi

# Link types (tcpdump.org/linktypes.html).
LT_NULL: Final = 0
LT_ETHERNET: Final = 1
LT_RAW: Final = frozenset({12, 14, 101})
LT_LOOP: Final = 108
LT_SLL: Final = 113
LT_IPV4: Final = 228
LT_IPV6: Final = 229
LT_SLL2: Final = 276
LT_NETLINK: Final = 253

ET_IPV4: Final = 0x0800
ET_ARP: Final = 0x0806
ET_IPV6: Final = 0x86DD
ET_MPLS: Final = frozenset({0x8847, 0x8848})
ET_PPPOE: Final = 0x8864
ET_TEB: Final = 0x6558
ET_PPP: Final = 0x880B
ET_VLAN: Final = frozenset({0x8100, 0x88A8, 0x9100})
ARPHRD_ETHER: Final = 1
PPP_IPV4: Final = 0x0021
PPP_IPV6: Final = 0x0057
AF_INET: Final = 2
CISCO_HDLC: Final = frozenset({0x0F, 0x8F})
AF_INET6: Final = frozenset({10, 24, 28, 30})

MAX_DEPTH: Final = 8  # nested encapsulations walked


class Walker(Network, Transport, Links, Tunnels, Wifi):
    """Labels frames (see the module docstring); ``complete`` holds the keys of datagrams whose
    last fragment is in the capture (their first fragment's transport checksum is recomputable)."""

    def __init__(self, complete: set[bytes] | None = None):
        self.complete = complete if complete is not None else set()
        self.buf = b""
        self.n = 0
        self.s = Spans(0)
        self.tcp: tuple[bytes, int, int, int, int] | None = None
        self.udp: list[tuple[int, int, int, int]] = []
        self.last_fragment: bytes | None = None
        self.fragments: list[tuple[bytes, int, int, int, bool, int]] = []
        self.depth = 0

    def frame(self, buf: bytes, linktype: int) -> Spans:
        self.buf = buf
        self.n = n = len(buf)
        self.s = s = Spans(n)
        self.tcp = None
        self.udp = []
        self.last_fragment = None
        self.fragments = []
        self.depth = 0
        if linktype == LT_ETHERNET:
            self.ether(0, n)
        elif linktype == LT_SLL:
            if n >= 16:
                self.cooked(buf[2] << 8 | buf[3], buf[4] << 8 | buf[5], 6, buf[14] << 8 | buf[15], 16)
            else:  # cut short: the fields before the address as captured, the rest hidden
                self.s.add(0, 6, KEEP, "")
                self.other(6, n, "sll (cut short)")
        elif linktype == LT_SLL2:
            if n >= 20:
                self.cooked(buf[8] << 8 | buf[9], buf[11], 12, buf[0] << 8 | buf[1], 20)
            else:
                self.s.add(0, 12, KEEP, "")
                self.other(12, n, "sll2 (cut short)")
        elif linktype in (LT_NULL, LT_LOOP):
            if n >= 4 and buf[0] in CISCO_HDLC and not buf[1]:
                s.add(0, 4, KEEP, "")  # Cisco HDLC framing seen in NULL captures: address, control, EtherType
                self.ethertype(buf[2] << 8 | buf[3], 4, n)
            elif n >= 4:
                s.add(0, 4, KEEP, "")
                fams = {int.from_bytes(buf[:4], "little"), int.from_bytes(buf[:4], "big")}
                if AF_INET in fams:
                    self.ipv4(4, n)
                elif fams & AF_INET6:
                    self.ipv6(4, n)
        elif linktype in LT_RAW:
            if n:
                (self.ipv4 if buf[0] >> 4 == 4 else self.ipv6)(0, n)
        elif linktype == LT_IPV4:
            self.ipv4(0, n)
        elif linktype == LT_IPV6:
            self.ipv6(0, n)
        elif linktype == LT_NETLINK:
            self.netlink()
        elif linktype in LT_WIFI:
            self.wifi(linktype)
        elif linktype in LINK_TYPES:  # serial and other framings: links.py
            self.link(linktype)
        s.items.sort()
        return s

    def other(self, a: int, b: int, name: str) -> None:
        self.s.add(a, b, OTHER, name)

    # ---- link layers -------------------------------------------------------------------
    def ether(self, o: int, end: int) -> None:
        if o + 14 > self.n:
            self.other(o, end, "ethernet (cut short)")
            return
        add, buf = self.s.add, self.buf
        add(o, o + 6, MAC, "eth.dst")
        add(o + 6, o + 12, MAC, "eth.src")
        add(o + 12, o + 14, KEEP, "")
        t = buf[o + 12] << 8 | buf[o + 13]
        o += 14
        while t in ET_VLAN and o + 4 <= self.n:
            add(o, o + 4, KEEP, "")
            t = buf[o + 2] << 8 | buf[o + 3]
            o += 4
        self.ethertype(t, o, end)

    def ethertype(self, t: int, o: int, end: int) -> None:
        """Walk the payload of EtherType / protocol type ``t`` at ``o`` (up to ``end``)."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.other(o, end, "nested too deep")
        elif t == ET_IPV4:
            self.ipv4(o, end)
        elif t == ET_IPV6:
            self.ipv6(o, end)
        elif t == ET_ARP:
            self.arp(o, end)
        elif t in ET_MPLS:
            self.mpls(o, end)
        elif t == ET_PPPOE:
            self.pppoe(o, end)
        elif t == ET_TEB:
            self.ether(o, end)
        elif t == ET_PPP:
            self.ppp(o, end)
        else:
            self.other(o, end, f"ethertype 0x{t:04x} payload")

    def cooked(self, arphrd: int, hlen: int, addr_at: int, proto: int, size: int) -> None:
        """Linux SLL (16 bytes) / SLL2 (20): the 8-byte address is a MAC only for ARPHRD Ethernet, length 6."""
        add = self.s.add
        add(0, addr_at, KEEP, "")
        if arphrd == ARPHRD_ETHER and hlen == 6:
            add(addr_at, addr_at + 6, MAC, "sll.address")
            self.other(addr_at + 6, addr_at + 8, "sll.address padding")
        else:
            self.other(addr_at, addr_at + 8, f"sll.address (arphrd {arphrd}, length {hlen})")
        add(addr_at + 8, size, KEEP, "")
        self.ethertype(proto, size, self.n)

    def netlink(self) -> None:
        """Linux netlink: the cooked header (as SLL), each message header kept, attributes not."""
        n, buf = self.n, self.buf
        if n < 16:
            self.other(0, n, "netlink (cut short)")
            return
        self.s.add(0, 6, KEEP, "")
        self.other(6, 14, "netlink.cooked address")
        self.s.add(14, 16, KEEP, "")
        o = 16
        while o + 16 <= n:
            le, be = int.from_bytes(buf[o:o + 4], "little"), int.from_bytes(buf[o:o + 4], "big")
            size = le if 16 <= le <= n - o else be if 16 <= be <= n - o else 0
            if not size:
                break
            self.s.add(o, o + 16, KEEP, "")
            self.other(o + 16, o + size, "netlink attributes")
            pad = o + ((size + 3) & ~3)
            self.other(o + size, min(pad, n), "netlink padding")
            o = pad
        self.other(o, n, "netlink trailing")

    def arp(self, o: int, end: int) -> None:
        buf, add = self.buf, self.s.add
        if o + 8 > self.n:
            self.other(o, end, "arp (cut short)")
            return
        add(o, o + 8, KEEP, "")
        ptype, hlen, plen = buf[o + 2] << 8 | buf[o + 3], buf[o + 4], buf[o + 5]
        hk = MAC if hlen == 6 else OTHER
        pk = ADDR4 if ptype == ET_IPV4 and plen == 4 else OTHER
        q = o + 8
        for who in ("sender", "target"):
            add(q, q + hlen, hk, f"arp.{who} hardware address")
            add(q + hlen, q + hlen + plen, pk, f"arp.{who} protocol address")
            q += hlen + plen
        self.other(q, end, "arp trailing")

    def mpls(self, o: int, end: int) -> None:
        n, buf = self.n, self.buf
        while o + 4 <= n:
            self.s.add(o, o + 4, KEEP, "")
            o += 4
            if buf[o - 2] & 1:
                break
        else:
            self.other(o, end, "mpls (cut short)")
            return
        if o >= n:
            return
        nibble = buf[o] >> 4
        if nibble == 4:
            self.ipv4(o, end)
        elif nibble == 6:
            self.ipv6(o, end)
        elif nibble == 0:
            self.other(o, o + 4, "mpls control word")
            self.ether(o + 4, end)
        else:
            self.other(o, end, "mpls payload")

    def pppoe(self, o: int, end: int) -> None:
        if o + 8 > self.n:
            self.other(o, end, "pppoe (cut short)")
            return
        length = self.buf[o + 4] << 8 | self.buf[o + 5]
        self.s.add(o, o + 6, KEEP, "")
        stop = min(end, o + 6 + length)
        self.ppp(o + 6, stop)
        self.other(stop, end, "pppoe trailing")

    def ppp(self, o: int, end: int) -> None:
        """A PPP frame (PPPoE session, PPTP GRE): address/control if present, protocol, IP walked."""
        buf, n = self.buf, self.n
        if o + 2 <= n and buf[o] == 0xFF and buf[o + 1] == 0x03:
            self.s.add(o, o + 2, KEEP, "")
            o += 2
        if o >= n:
            return
        if buf[o] & 1:  # protocol field compression: one byte
            proto, size = buf[o], 1
        elif o + 2 <= n:
            proto, size = buf[o] << 8 | buf[o + 1], 2
        else:
            self.other(o, end, "ppp (cut short)")
            return
        self.s.add(o, o + size, KEEP, "")
        if proto == PPP_IPV4:
            self.ipv4(o + size, end)
        elif proto == PPP_IPV6:
            self.ipv6(o + size, end)
        else:
            self.other(o + size, end, f"ppp protocol 0x{proto:04x} data")
