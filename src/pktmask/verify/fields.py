"""The audit's own dissector, link and network layers: which bytes of a frame the policy keeps.

``Walker.frame(buf, linktype)`` labels an ORIGINAL frame with ``labels.Spans`` following the
header policy of docs/policy.md (what ``pktmask mask`` keeps, maps or zeroes), written
independently of the sanitizer's walkers so the audit does not share their blind spots. The
transport layers are in ``transport``. Besides the spans a walk leaves:

* ``tcp``: the innermost unfragmented, unquoted TCP segment with payload, as
  ``(stream key, seq, flags, payload start, payload end)``, for the stream model;
* ``udp``: ``(payload start, end, sport, dport)`` of UDP payloads (DNS needles);
* ``last_fragment``: the key of a datagram whose last fragment this frame is.

Headers are read by offsets with named constants; every read is bounds-checked, and a field
that does not fit in the captured bytes is labelled OTHER (``Spans.add``).
"""

from __future__ import annotations

from typing import Final

from pktmask.verify.labels import ADDR4, ADDR6, KEEP, MAC, OTHER, Spans, group_kind
from pktmask.verify.transport import Transport

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

# IPv6 extension headers.
HOP_BY_HOP, ROUTING, FRAGMENT, ESP, AH, NO_NEXT, DEST_OPTS = 0, 43, 44, 50, 51, 59, 60
OPAQUE_EXT: Final = frozenset({135, 139, 140, 253, 254})  # mobility, HIP, Shim6, experimental
PAD1, PADN, ROUTER_ALERT6, JUMBO, HOME_ADDRESS = 0, 1, 5, 0xC2, 201
# IPv4 options.
EOL, NOP, RECORD_ROUTE, LSRR, SSRR, TIMESTAMP, ROUTER_ALERT4 = 0, 1, 7, 131, 137, 68, 148
MAX_DEPTH: Final = 8  # nested encapsulations walked


class Walker(Transport):
    """Labels frames (see the module docstring); ``complete`` holds the keys of datagrams whose
    last fragment is in the capture (their first fragment's transport checksum is recomputable)."""

    def __init__(self, complete: set[bytes] | None = None):
        self.complete = complete if complete is not None else set()
        self.buf = b""
        self.n = 0
        self.s = Spans(0)
        self.tcp: tuple | None = None
        self.udp: list[tuple[int, int, int, int]] = []
        self.last_fragment: bytes | None = None
        self.depth = 0

    def frame(self, buf: bytes, linktype: int) -> Spans:
        self.buf = buf
        self.n = n = len(buf)
        self.s = s = Spans(n)
        self.tcp = None
        self.udp = []
        self.last_fragment = None
        self.depth = 0
        if linktype == LT_ETHERNET:
            self.ether(0, n)
        elif linktype == LT_SLL:
            if n >= 16:
                self.cooked(buf[2] << 8 | buf[3], buf[4] << 8 | buf[5], 6, buf[14] << 8 | buf[15], 16)
            else:
                self.other(0, n, "sll (cut short)")
        elif linktype == LT_SLL2:
            if n >= 20:
                self.cooked(buf[8] << 8 | buf[9], buf[11], 12, buf[0] << 8 | buf[1], 20)
            else:
                self.other(0, n, "sll2 (cut short)")
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

    # ---- IPv4 --------------------------------------------------------------------------
    def ipv4(self, o: int, limit: int, quoted: bool = False) -> None:
        buf, n, add = self.buf, self.n, self.s.add
        if o >= n:
            return
        v = buf[o]
        if v >> 4 != 4 or v & 15 < 5 or o + 20 > n:
            add(o, o + 1, KEEP, "")
            self.other(o + 1, limit, "ipv4 (not understood)")
            return
        hl = (v & 15) * 4
        total = buf[o + 2] << 8 | buf[o + 3]
        add(o, o + 12, KEEP, "")
        add(o + 12, o + 16, ADDR4, "ipv4.src")
        add(o + 16, o + 20, ADDR4, "ipv4.dst")
        self.ipv4_options(o + 20, o + hl)
        end = limit if quoted else o + max(total, hl)
        if end > limit and limit < n:
            end = limit  # an inner datagram longer than its tunnel
        fl = buf[o + 6] << 8 | buf[o + 7]
        proto = buf[o + 9]
        key = bytes(buf[o + 12:o + 20]) + bytes([proto]) + bytes(buf[o + 4:o + 6])
        if fl & 0x1FFF:
            self.other(o + hl, end, "ipv4 fragment data")
            if not fl & 0x2000 and not quoted:
                self.last_fragment = key
        else:
            self.l4(proto, o + hl, end, buf[o + 12:o + 20], key if fl & 0x2000 else None, quoted)
        if end < limit:
            self.other(end, limit, "trailer after the ip datagram")

    def ipv4_options(self, a: int, b: int) -> None:
        buf, n, add = self.buf, self.n, self.s.add
        i = a
        while i < b and i < n:
            t = buf[i]
            if t == EOL:
                add(i, i + 1, KEEP, "")
                self.other(i + 1, b, "ipv4.options after end-of-list")
                return
            if t == NOP:
                add(i, i + 1, KEEP, "")
                i += 1
                continue
            if i + 1 >= min(b, n):
                break
            size = buf[i + 1]
            if size < 2 or i + size > b:
                break
            e = i + size
            if t in (RECORD_ROUTE, LSRR, SSRR):
                add(i, min(i + 3, e), KEEP, "")
                j = i + 3
                while j + 4 <= e:
                    add(j, j + 4, ADDR4, f"ipv4.option[{t}].address")
                    j += 4
                self.other(j, e, f"ipv4.option[{t}] stub")
            elif t == TIMESTAMP and size >= 4 and i + 4 <= n:
                add(i, i + 4, KEEP, "")
                flag = buf[i + 3] & 15
                if flag == 0:
                    add(i + 4, e, KEEP, "")
                elif flag in (1, 3):
                    j = i + 4
                    while j + 8 <= e:
                        add(j, j + 4, ADDR4, "ipv4.option[68].address")
                        add(j + 4, j + 8, KEEP, "")
                        j += 8
                    self.other(j, e, "ipv4.option[68] stub")
                else:
                    self.other(i + 4, e, f"ipv4.option[68] flag {flag} data")
            elif t == ROUTER_ALERT4:
                add(i, e, KEEP, "")
            else:
                add(i, i + 2, KEEP, "")
                self.other(i + 2, e, f"ipv4.option[{t}].data")
            i = e
        self.other(i, b, "ipv4.options (bad length)")

    # ---- IPv6 --------------------------------------------------------------------------
    def ipv6(self, o: int, limit: int, quoted: bool = False) -> None:
        buf, n, add = self.buf, self.n, self.s.add
        if o >= n:
            return
        if buf[o] >> 4 != 6 or o + 40 > n:
            add(o, o + 1, KEEP, "")
            self.other(o + 1, limit, "ipv6 (not understood)")
            return
        add(o, o + 8, KEEP, "")
        add(o + 8, o + 24, group_kind(buf[o + 8:o + 24]), "ipv6.src")
        add(o + 24, o + 40, group_kind(buf[o + 24:o + 40]), "ipv6.dst")
        plen = buf[o + 4] << 8 | buf[o + 5]
        end = limit if quoted or not plen else o + 40 + plen
        if end > limit and limit < n:
            end = limit
        self.ipv6_chain(o, end, quoted)
        if end < limit:
            self.other(end, limit, "trailer after the ip datagram")

    def ipv6_chain(self, o: int, end: int, quoted: bool) -> None:
        """The extension headers and upper layer of the IPv6 packet at ``o``."""
        buf, n, add = self.buf, self.n, self.s.add
        addrs = buf[o + 8:o + 40]
        nh, p, frag = buf[o + 6], o + 40, None
        while True:
            if nh in (HOP_BY_HOP, DEST_OPTS, ROUTING, AH) or nh in OPAQUE_EXT:
                if p + 2 > min(end, n):
                    self.other(p, end, "ipv6 extension header (cut short)")
                    return
                size = (buf[p + 1] + 2) * 4 if nh == AH else (buf[p + 1] + 1) * 8
                add(p, p + 2, KEEP, "")
                if p + size > end:
                    self.other(p + 2, end, f"ipv6 extension header {nh} (bad length)")
                    return
                if nh == ROUTING:
                    self.routing(p, p + size)
                elif nh == AH:
                    add(p + 2, p + 12, KEEP, "")
                    self.other(p + 12, p + size, "ah.icv")
                elif nh in OPAQUE_EXT:
                    self.other(p + 2, p + size, f"ipv6 extension header {nh} data")
                else:
                    self.ipv6_options(p + 2, p + size, nh == DEST_OPTS)
                nh = buf[p]
                p += size
            elif nh == FRAGMENT:
                if p + 8 > n:
                    self.other(p, end, "ipv6.fragment (cut short)")
                    return
                add(p, p + 8, KEEP, "")
                fo = buf[p + 2] << 8 | buf[p + 3]
                key = bytes(addrs) + bytes(buf[p + 4:p + 8])
                if fo & 0xFFF8:
                    self.other(p + 8, end, "ipv6 fragment data")
                    if not fo & 1 and not quoted:
                        self.last_fragment = key
                    return
                frag = key if fo & 1 else None
                nh = buf[p]
                p += 8
            elif nh == ESP:
                add(p, p + 8, KEEP, "")
                self.other(p + 8, end, "esp data")
                return
            elif nh == NO_NEXT:
                self.other(p, end, "after no-next-header")
                return
            else:
                self.l4(nh, p, end, addrs, frag, quoted)
                return

    def routing(self, p: int, e: int) -> None:
        buf, add = self.buf, self.s.add
        rtype = buf[p + 2] if p + 3 <= self.n else -1
        add(p + 2, p + 4, KEEP, "")
        if rtype in (0, 2):
            self.other(p + 4, p + 8, "ipv6.routing reserved")
            first = p + 8
        elif rtype == 4:
            add(p + 4, p + 8, KEEP, "")
            first = p + 8
            e_seg = first + ((buf[p + 4] + 1) * 16 if p + 5 <= self.n else 0)
            j = first
            while j + 16 <= min(e, e_seg):
                add(j, j + 16, ADDR6, "ipv6.routing[4].segment")
                j += 16
            self.other(j, e, "ipv6.routing[4] tlvs")
            return
        else:
            self.other(p + 4, e, f"ipv6.routing[{rtype}] data")
            return
        j = first
        while j + 16 <= e:
            add(j, j + 16, ADDR6, f"ipv6.routing[{rtype}].address")
            j += 16
        self.other(j, e, f"ipv6.routing[{rtype}] stub")

    def ipv6_options(self, a: int, b: int, destination: bool) -> None:
        buf, n, add = self.buf, self.n, self.s.add
        i = a
        while i < b and i < n:
            t = buf[i]
            if t == PAD1:
                add(i, i + 1, KEEP, "")
                i += 1
                continue
            if i + 2 > min(b, n) or i + 2 + buf[i + 1] > b:
                break
            size = buf[i + 1]
            e = i + 2 + size
            add(i, i + 2, KEEP, "")
            if t in (ROUTER_ALERT6, JUMBO):
                add(i + 2, e, KEEP, "")
            elif t == HOME_ADDRESS and destination and size == 16:
                add(i + 2, e, ADDR6, "ipv6.home address")
            else:
                self.other(i + 2, e, "ipv6.padn data" if t == PADN else f"ipv6.option[{t}].data")
            i = e
        self.other(i, b, "ipv6.options (bad length)")
