"""Rewrite every address in a frame, in place, keeping all checksums consistent.

The walker follows the frame from the link layer through VLAN/QinQ, MPLS,
PPPoE, GRE, IP-in-IP and VXLAN down to the innermost packet, and into ARP,
ICMP/ICMPv6 errors (the quoted packet), redirects, NDP, MLDv2 and IGMPv3.

Checksums are kept consistent by RFC 1624 incremental updates: every walker
function returns the change ("delta") of the 16-bit word sum of the bytes it
modified inside its region, so each enclosing checksum (TCP/UDP/ICMP/GRE) is
adjusted by its pseudo-header delta plus what changed inside it. IPv4 header
checksums are recomputed. A deliberately bad L4 checksum stays bad by the
same amount. Deltas assume structures start at even offsets within their
checksummed region, which holds for every header walked here.
"""

from __future__ import annotations

from typing import Final

from pktmask.anon.addresses import AddressRewriter, span_sum, swap
from pktmask.proto import link
from pktmask.proto.checksum import adjust, checksum, word_sum

MAX_DEPTH: Final = 16  # encapsulation levels followed; anything nested deeper is zeroed

_from: Final = int.from_bytes


class Rewriter(AddressRewriter):
    """Maps addresses in frames with one key; counts what it changed.

    ``frame(buf, linktype)`` rewrites a bytearray in place and returns True if
    any byte changed; the fast path and the address replacement come from
    ``AddressRewriter``.
    """

    # ---- link layer --------------------------------------------------------
    def frame(self, buf: bytearray, linktype: int) -> bool:
        """Rewrite the addresses of one frame in place; returns True if it changed."""
        self.changed = False
        end = len(buf)
        if linktype == link.LT_ETHERNET:
            self.ether(buf, 0, end, 0)
        elif linktype in (link.LT_RAW, link.LT_RAW_BSD, link.LT_RAW_OBSD):
            self.l3(buf, 0, end, link.ip_version_ethertype(buf, 0), 0)
        elif linktype == link.LT_IPV4:
            self.ip4(buf, 0, end, 0)
        elif linktype == link.LT_IPV6:
            self.ip6(buf, 0, end, 0)
        elif linktype == link.LT_SLL:
            if end >= 16:
                if _from(buf[2:4], "big") == 1 and _from(buf[4:6], "big") == 6:
                    self._mac(buf, 6)
                self.l3(buf, 16, end, _from(buf[14:16], "big"), 0)
        elif linktype == link.LT_SLL2:
            if end >= 20:
                if _from(buf[8:10], "big") == 1 and buf[11] == 6:
                    self._mac(buf, 12)
                self.l3(buf, 20, end, _from(buf[0:2], "big"), 0)
        elif linktype in (link.LT_NULL, link.LT_LOOP):
            self.l3(buf, 4, end, link.null_ethertype(buf, linktype), 0)
        return self.changed

    def ether(self, buf, off: int, end: int, depth: int) -> int:
        """An Ethernet frame at ``off``: MACs, then its payload. Returns the delta."""
        if off + 14 > end:
            return 0
        delta = self._mac(buf, off) + self._mac(buf, off + 6)
        return delta + self.l3(buf, off + 14, end, _from(buf[off + 12 : off + 14], "big"), depth)

    def l3(self, buf, off: int, end: int, etype: int, depth: int) -> int:
        """Dispatch on an EtherType at ``off`` (VLAN, MPLS and PPPoE are walked through)."""
        if depth > MAX_DEPTH:
            return self._too_deep(buf, off, end)
        while etype in link.VLAN_TYPES and off + 4 <= end:
            etype = _from(buf[off + 2 : off + 4], "big")
            off += 4
        if etype == link.ET_IPV4:
            return self.ip4(buf, off, end, depth)
        if etype == link.ET_IPV6:
            return self.ip6(buf, off, end, depth)
        if etype == link.ET_ARP:
            return self.arp(buf, off, end)
        if etype in (link.ET_MPLS, link.ET_MPLS_MC):
            while off + 4 <= end:
                bottom = buf[off + 2] & 1
                off += 4
                if bottom:
                    break
            if off >= end:
                return 0
            nib = buf[off] >> 4
            if nib == 0:  # pseudowire control word, then an Ethernet frame
                return self.ether(buf, off + 4, end, depth + 1)
            return self.l3(buf, off, end, link.ip_version_ethertype(buf, off), depth + 1)
        if etype == link.ET_PPPOE_SESSION and off + 8 <= end:
            return self.ppp(buf, off + 6, end, depth)
        if etype == link.ET_TEB:
            return self.ether(buf, off, end, depth + 1)
        if etype == link.ET_PPP:
            return self.ppp(buf, off, end, depth)
        return 0

    def ppp(self, buf, off: int, end: int, depth: int) -> int:
        """A PPP frame (optional FF 03 address/control, 1- or 2-byte protocol)."""
        if off + 2 <= end and buf[off] == 0xFF and buf[off + 1] == 0x03:
            off += 2
        if off >= end:
            return 0
        if buf[off] & 1:  # compressed 1-byte protocol field
            proto, off = buf[off], off + 1
        elif off + 2 <= end:
            proto, off = _from(buf[off : off + 2], "big"), off + 2
        else:
            return 0
        if proto == link.PPP_IPV4:
            delta = self.ip4(buf, off, end, depth + 1)
        elif proto == link.PPP_IPV6:
            delta = self.ip6(buf, off, end, depth + 1)
        else:
            return 0
        # A 1-byte protocol field leaves the packet at an odd offset: its word-aligned
        # delta is byte-swapped as seen by an enclosing checksum.
        return swap(delta) if off & 1 else delta

    def _too_deep(self, buf, off: int, end: int) -> int:
        """Nesting beyond MAX_DEPTH cannot be walked: zero it rather than leave addresses."""
        if off >= end:
            return 0
        delta = -span_sum(buf, off, end)
        buf[off:end] = bytes(end - off)
        self.changed = True
        return delta

    def arp(self, buf, off: int, end: int) -> int:
        """ARP/RARP: hardware (MAC) and protocol (IPv4) addresses of sender and target."""
        if off + 8 > end:
            return 0
        hlen, plen = buf[off + 4], buf[off + 5]
        ptype = _from(buf[off + 2 : off + 4], "big")
        if off + 8 + 2 * (hlen + plen) > end:
            return 0
        delta = 0
        s = off + 8
        t = s + hlen + plen
        if hlen == 6:
            delta += self._mac(buf, s) + self._mac(buf, t)
        if plen == 4 and ptype == link.ET_IPV4:
            delta += self._a4(buf, s + hlen) + self._a4(buf, t + hlen)
        return delta

    # ---- network layer -----------------------------------------------------
    def ip4(self, buf, off: int, end: int, depth: int) -> int:
        """An IPv4 packet (outer, inner or quoted): addresses, options, header checksum, then L4."""
        if depth > MAX_DEPTH:
            return self._too_deep(buf, off, end)
        if off + 12 >= end or buf[off] >> 4 != 4:
            return 0
        ihl = (buf[off] & 0x0F) * 4
        if ihl < 20:
            return 0
        if off + ihl > end:
            # Header cut short by the snap length: its addresses, even in part, are there to hide.
            pseudo = self._prefix(buf, off + 12, min(4, end - off - 12), 4)
            if off + 16 < end:
                pseudo += self._prefix(buf, off + 16, min(4, end - off - 16), 4)
            return pseudo + (self._fix(buf, off + 10, pseudo, 0) if off + 12 <= end else 0)
        total = _from(buf[off + 2 : off + 4], "big")
        if total >= ihl:
            end = min(end, off + total)
        old_header = bytes(buf[off : off + ihl])
        d_src = self._a4(buf, off + 12)
        d_dst = self._a4(buf, off + 16)
        if ihl > 20:
            final = self._ip4_options(buf, off + 20, off + ihl)
            if final is not None:  # a source route: the transport checksum uses its last hop
                d_dst = final
        pseudo = d_src + d_dst
        frag = _from(buf[off + 6 : off + 8], "big") & 0x1FFF
        delta = 0
        if frag == 0:
            delta = self.l4(buf, buf[off + 9], off + ihl, end, pseudo, False, depth)
        if buf[off : off + ihl] != old_header:
            buf[off + 10 : off + 12] = b"\0\0"
            buf[off + 10 : off + 12] = checksum(buf[off : off + ihl]).to_bytes(2, "big")
        return delta + word_sum(buf[off : off + ihl]) - word_sum(old_header)

    def _ip4_options(self, buf, o: int, end: int) -> int | None:
        """Addresses in record/source route and timestamp options.

        Returns the delta of the final destination of an unfinished source
        route (what TCP/UDP checksums are computed over), else None.
        """
        final = None
        while o < end:
            t = buf[o]
            if t == 0:
                break
            if t == 1:
                o += 1
                continue
            size = buf[o + 1] if o + 1 < end else 0
            if size < 2 or o + size > end:
                break
            if t in (7, 131, 137) and size >= 3:  # record route, loose/strict source route
                a = o + 3
                last = None
                while a + 4 <= o + size:
                    last = self._a4(buf, a)
                    a += 4
                if t != 7 and last is not None and buf[o + 2] <= size:
                    final = last
            elif t == 68 and size >= 4 and buf[o + 3] & 0x0F in (1, 3):  # timestamps with addresses
                a = o + 4
                while a + 8 <= o + size:
                    self._a4(buf, a)
                    a += 8
            o += size
        return final

    def ip6(self, buf, off: int, end: int, depth: int) -> int:
        """An IPv6 packet: addresses (also in routing headers and options), extension headers, then L4."""
        if depth > MAX_DEPTH:
            return self._too_deep(buf, off, end)
        if off + 8 >= end or buf[off] >> 4 != 6:
            return 0
        if off + 40 > end:  # header cut short: hide what is there, even in part
            delta = self._prefix(buf, off + 8, min(16, end - off - 8), 16)
            if off + 24 < end:
                delta += self._prefix(buf, off + 24, min(16, end - off - 24), 16)
            return delta
        plen = _from(buf[off + 4 : off + 6], "big")
        if plen:
            end = min(end, off + 40 + plen)
        d_src = self._a6(buf, off + 8)
        d_dst = self._a6(buf, off + 24)
        delta = d_src + d_dst
        nh = buf[off + 6]
        p = off + 40
        while p + 8 <= end:
            if nh in (0, 60, 135, 139, 140):  # hop-by-hop, dest opts, mobility, HIP, shim6
                hlen = 8 + buf[p + 1] * 8
                if nh == 60:
                    home = self._home_address(buf, p + 2, min(p + hlen, end))
                    if home is not None:  # the transport checksum uses the home address
                        delta += home
                        d_src = home
                nxt, p = buf[p], p + hlen
            elif nh == 43:  # routing: types 0 and 2 list addresses, 4 (SRH) segments
                hlen = 8 + buf[p + 1] * 8
                rtype, left = buf[p + 2], buf[p + 3]
                if rtype in (0, 2, 4):
                    a = p + 8
                    mapped = []
                    while a + 16 <= min(p + hlen, end):
                        mapped.append(self._a6(buf, a))
                        a += 16
                    delta += sum(mapped)
                    if left and mapped:
                        # In flight: the transport checksum uses the final destination,
                        # the last address of a type 0/2 header, the first segment of an SRH.
                        d_dst = mapped[0] if rtype == 4 else mapped[-1]
                nxt, p = buf[p], p + hlen
            elif nh == 51:  # AH
                nxt, p = buf[p], p + (buf[p + 1] + 2) * 4
            elif nh == 44:  # fragment: only the first fragment carries the L4 header
                if _from(buf[p + 2 : p + 4], "big") & 0xFFF8:
                    return delta
                nxt, p = buf[p], p + 8
            else:
                break
            nh = nxt
        return delta + self.l4(buf, nh, p, end, d_src + d_dst, True, depth)

    def _home_address(self, buf, o: int, end: int) -> int | None:
        """Mobile IPv6 Home Address destination option: map it; returns its delta (or None)."""
        found = None
        while o < end:
            t = buf[o]
            if t == 0:
                o += 1
                continue
            if o + 2 > end or o + 2 + buf[o + 1] > end:
                break
            if t == 201 and buf[o + 1] == 16:
                found = self._a6(buf, o + 2)
            o += 2 + buf[o + 1]
        return found

    def l4(self, buf, proto: int, p: int, end: int, pseudo: int, v6: bool, depth: int) -> int:
        """Transport/encapsulation at ``p``; fixes its checksum; returns the delta inside [p, end)."""
        if proto == 6:  # TCP
            if p + 18 <= end and pseudo:
                return self._fix(buf, p + 16, pseudo, 0)
            return 0
        if proto == 17 or proto == 136:  # UDP, UDP-Lite
            if p + 8 > end:
                return 0
            inner = 0
            if (p + 16 <= end and proto == 17
                    and link.UDP_VXLAN in (_from(buf[p : p + 2], "big"), _from(buf[p + 2 : p + 4], "big"))
                    and buf[p + 8] & 0x08):
                inner = self.ether(buf, p + 16, end, depth + 1)
            if not (pseudo or inner):
                return 0
            if not v6 and proto == 17 and buf[p + 6] == 0 and buf[p + 7] == 0:
                return inner  # no checksum over IPv4: stays 0
            return inner + self._fix(buf, p + 6, pseudo, inner)
        if proto == 1:
            return self.icmp4(buf, p, end, depth)
        if proto == 58:
            return self.icmp6(buf, p, end, pseudo, depth)
        if proto == 4:
            return self.ip4(buf, p, end, depth + 1)
        if proto == 41:
            return self.ip6(buf, p, end, depth + 1)
        if proto == 47:
            return self.gre(buf, p, end, depth)
        if proto == 2:
            return self.igmp(buf, p, end)
        if proto == 33 and p + 8 <= end and pseudo:  # DCCP
            return self._fix(buf, p + 6, pseudo, 0)
        return 0

    def _fix(self, buf, at: int, pseudo: int, inner: int) -> int:
        """Adjust the checksum at ``at`` by pseudo + inner; returns the change of the field."""
        if at + 2 > len(buf):
            return 0
        old = _from(buf[at : at + 2], "big")
        new = adjust(old, pseudo + inner)
        if new == old:
            return 0
        buf[at : at + 2] = new.to_bytes(2, "big")
        return new - old

    # ---- control messages --------------------------------------------------
    def icmp4(self, buf, p: int, end: int, depth: int) -> int:
        """ICMP: the packet quoted by errors, and a redirect's gateway address."""
        if p + 8 > end:
            return 0
        t = buf[p]
        inner = 0
        if t in (3, 4, 5, 11, 12):
            if t == 5:
                inner += self._a4(buf, p + 4)
            inner += self.ip4(buf, p + 8, end, depth + 1)
        if not inner:
            return 0
        return inner + self._fix(buf, p + 2, 0, inner)

    def icmp6(self, buf, p: int, end: int, pseudo: int, depth: int) -> int:
        """ICMPv6: quoted packets, NDP targets and link-layer options, RA prefixes, MLDv2 sources."""
        if p + 8 > end:
            return 0
        t = buf[p]
        inner = 0
        if 1 <= t <= 4:
            inner = self.ip6(buf, p + 8, end, depth + 1)
        elif t in (135, 136) and p + 24 <= end:
            inner = self._a6(buf, p + 8) + self._nd_options(buf, p + 24, end, depth)
        elif t == 137 and p + 40 <= end:
            inner = self._a6(buf, p + 8) + self._a6(buf, p + 24) + self._nd_options(buf, p + 40, end, depth)
        elif t == 133:
            inner = self._nd_options(buf, p + 8, end, depth)
        elif t == 134:
            inner = self._nd_options(buf, p + 16, end, depth)
        elif t == 143:
            inner = self._mldv2(buf, p, end)
        elif t == 130 and p + 28 <= end:  # MLDv2 query: its source list
            inner = self._sources(buf, p + 28, _from(buf[p + 26 : p + 28], "big"), 16, end)
        if not (pseudo or inner):
            return 0
        return inner + self._fix(buf, p + 2, pseudo, inner)

    def _nd_options(self, buf, o: int, end: int, depth: int) -> int:
        delta = 0
        while o + 8 <= end:
            kind, size = buf[o], buf[o + 1] * 8
            if size == 0 or o + size > end:
                break
            if kind in (1, 2) and size == 8:  # source/target link-layer address
                delta += self._mac(buf, o + 2)
            elif kind == 3 and size == 32:  # prefix information
                delta += self._a6(buf, o + 16)
            elif kind == 25:  # recursive DNS servers
                delta += self._sources(buf, o + 8, (size - 8) // 16, 16, o + size)
            elif kind == 4:  # redirected header: the quoted packet
                delta += self.ip6(buf, o + 8, o + size, depth + 1)
            o += size
        return delta

    def _mldv2(self, buf, p: int, end: int) -> int:
        delta = 0
        nrec = _from(buf[p + 6 : p + 8], "big")
        o = p + 8
        for _ in range(nrec):
            if o + 20 > end:
                break
            aux, nsrc = buf[o + 1] * 4, _from(buf[o + 2 : o + 4], "big")
            s = o + 20
            for _ in range(nsrc):
                if s + 16 > end:
                    return delta
                delta += self._a6(buf, s)
                s += 16
            o = s + aux
        return delta

    def _sources(self, buf, o: int, count: int, size: int, end: int) -> int:
        """Map ``count`` addresses of ``size`` bytes listed from ``o``."""
        delta = 0
        for _ in range(count):
            if o + size > end:
                break
            delta += self._a4(buf, o) if size == 4 else self._a6(buf, o)
            o += size
        return delta

    def igmp(self, buf, p: int, end: int) -> int:
        """IGMPv3: the source lists of queries and of each group record of reports."""
        if p + 8 > end:
            return 0
        if buf[p] == 0x11 and p + 12 <= end:  # v3 query (a v1/v2 query is 8 bytes)
            inner = self._sources(buf, p + 12, _from(buf[p + 10 : p + 12], "big"), 4, end)
            return inner + self._fix(buf, p + 2, 0, inner) if inner else 0
        if buf[p] != 0x22:
            return 0
        inner = 0
        nrec = _from(buf[p + 6 : p + 8], "big")
        o = p + 8
        for _ in range(nrec):
            if o + 8 > end:
                break
            aux, nsrc = buf[o + 1] * 4, _from(buf[o + 2 : o + 4], "big")
            s = o + 8
            for _ in range(nsrc):
                if s + 4 > end:
                    break
                inner += self._a4(buf, s)
                s += 4
            o = s + aux
        if not inner:
            return 0
        return inner + self._fix(buf, p + 2, 0, inner)

    def gre(self, buf, p: int, end: int, depth: int) -> int:
        """GRE (RFC 2784/2890, and PPTP's enhanced GRE): the encapsulated packet, and the checksum."""
        if p + 4 > end:
            return 0
        flags = _from(buf[p : p + 2], "big")
        version = flags & 7
        ptype = _from(buf[p + 2 : p + 4], "big")
        o = p + 4
        if version == 0:
            o += 4 * ((flags >> 15 & 1) + (flags >> 13 & 1) + (flags >> 12 & 1))
        elif version == 1:
            o += 4 + 4 * ((flags >> 12 & 1) + (flags >> 7 & 1))
        else:
            return 0
        if o > end:
            return 0
        inner = self.l3(buf, o, end, ptype, depth + 1)
        if inner and version == 0 and flags & 0x8000:
            return inner + self._fix(buf, p + 4, 0, inner)
        return inner
