"""The walker's IP layer: IPv4 (options), IPv6 (extension headers, options, routing).

Part of the one encapsulation walker (walk.py, docs/policy.md for what is kept).
"""

from __future__ import annotations

from typing import Final

from pktmask.proto import numbers as n
from pktmask.proto.walk_base import F_IP4, F_IP6, IP4_HEADER, L4_PLAIN, MAX_DEPTH, _from
from pktmask.proto.walk_transport import TransportWalker

_OPTION_HEADERS: Final = frozenset({n.IP_HOPOPTS, n.IP_DSTOPTS, n.IP_MOBILITY, n.IP_HIP, n.IP_SHIM6})


class IpWalker(TransportWalker):
    """IPv4 and IPv6 packets, outer, inner or quoted."""

    __slots__ = ()

    # ---- IP ----------------------------------------------------------------------------
    def ip_start(self, off: int, end: int, depth: int, version: int) -> bool:
        """Whether an IP header of ``version`` may be walked at ``off``: nested too deep, it
        is zeroed; with another version nibble, whatever the layer below says, nothing of it
        is understood and it is hidden."""
        if depth > MAX_DEPTH:
            self.too_deep(off, end)
            return False
        if off >= end:
            return False
        if self.buf[off] >> 4 != version:
            self.hide(off, end)
            return False
        return True

    def ip4(self, off: int, end: int, depth: int, quoted: bool) -> None:
        """An IPv4 packet (outer, inner or quoted): addresses, options, header checksum, then L4."""
        buf = self.buf
        if not self.ip_start(off, end, depth, 4):
            return
        ihl = (buf[off] & 0x0F) * 4
        if ihl < 20:  # malformed: the addresses are not where a header would have them
            self.hide(off + 1, end)
            return
        if off + 20 > end:
            # Header cut short by the snap length (docs/policy.md, "Headers cut short"): the
            # captured fields kept, the addresses mapped as far as captured, the header checksum
            # zeroed (it covers bytes the capture does not hold; without masking it is updated).
            self.zero(off + 10, min(off + 12, end))
            if off + 12 < end:
                self.field(off + 12, F_IP4, end)
                self.field(off + 16, F_IP4, end)
                self.job(L4_PLAIN, off, end, off + 10, [], 0, False, None, False, True)
            return
        self.field(off + 12, F_IP4, end)
        self.field(off + 16, F_IP4, end)
        if off + ihl > end:  # options cut short: their checksum would tell of the zeroed rest
            self.zero(off + 10, off + 12)
            self.zero(off + 20, end)
            self.job(L4_PLAIN, off, end, off + 10, [], 0, False, None, False, True)
            return
        total = _from(buf[off + 2 : off + 4], "big")
        if total >= ihl:
            if off + total < end:
                self.zero(off + total, end)  # link-layer padding / trailer
            end = off + total  # may lie beyond the capture: the packet was cut short
        dst = off + 16
        if ihl > 20:
            final = self.ip4_options(off + 20, off + ihl)
            if final >= 0:  # transport checksums use a source route's last hop
                dst = final
        # Recomputed even when quoted: zeroed options must not leave a checksum that tells of them.
        self.job(IP4_HEADER, off, off + ihl, off + 10, [], 0, False, None, True, True)
        fl = _from(buf[off + 6 : off + 8], "big")
        p = off + ihl
        frag = None
        if fl & 0x3FFF:
            frag = bytes(buf[off + 12 : off + 20]) + bytes(buf[off + 9 : off + 10]) + bytes(buf[off + 4 : off + 6])
            udp = buf[off + 9] == n.IP_UDP and not quoted  # its payload may be DNS (mask/datagrams.py)
            if fl & 0x1FFF:  # not the first fragment: no header inside, all payload
                if not fl & 0x2000 and not quoted and not self.hidden:
                    self.w.last_fragment = (frag, (fl & 0x1FFF) * 8 + end - p)
                if not (udp and self.piece(frag, p, end, (fl & 0x1FFF) * 8, fl & 0x2000 != 0)):
                    self.zero(p, end)
                return
            if udp:
                self.piece(frag, p, end, 0, True)  # l4 leaves the UDP payload to the masker
        key = bytes(buf[off + 12 : off + 20])
        self.l4(buf[off + 9], p, end, key, frag, depth, quoted, False, [(off + 12, 4), (dst, 4)])

    def ip4_options(self, o: int, end: int) -> int:
        """Map addresses in route and timestamp options, zero the data of options not kept.

        Returns the offset of an unfinished source route's last hop (what
        transport checksums are computed over), else -1.
        """
        buf = self.buf
        final = -1
        while o < end:
            t = buf[o]
            if t == n.IPOPT_EOL:
                self.zero(o + 1, end)
                return final
            if t == n.IPOPT_NOP:
                o += 1
                continue
            size = buf[o + 1] if o + 1 < end else 0
            if size < 2 or o + size > end:
                self.hide(o, end)  # a bad length: nothing after it is accounted for
                return final
            stop = o + size
            if t == n.IPOPT_RR or t == n.IPOPT_LSRR or t == n.IPOPT_SSRR:
                if size < 3:
                    o = stop
                    continue
                a = o + 3
                last = -1
                while a + 4 <= stop:
                    self.field(a, F_IP4, end)
                    last = a
                    a += 4
                self.hide(a, stop)  # a stub shorter than an address
                if t != n.IPOPT_RR and last >= 0 and buf[o + 2] <= size:
                    final = last
            elif t == n.IPOPT_TS and size >= 4:
                flag = buf[o + 3] & 0x0F
                a = o + 4
                if flag == n.IPOPT_TS_TSONLY:
                    a += (size - 4) // 4 * 4  # timestamps are kept
                    self.zero(a, stop)
                elif flag == n.IPOPT_TS_TSANDADDR or flag == n.IPOPT_TS_PRESPEC:
                    while a + 8 <= stop:
                        self.field(a, F_IP4, end)
                        a += 8
                    self.hide(a, stop)
                else:  # an undefined flag: its data may be anything
                    self.hide(a, stop)
            elif t == n.IPOPT_RA and size == 4:
                pass
            else:
                self.zero(o + 2, stop)
            o = stop
        return final

    def ip6(self, off: int, end: int, depth: int, quoted: bool) -> None:
        """An IPv6 packet: addresses (also in routing headers and options), extension headers, then L4."""
        buf = self.buf
        if not self.ip_start(off, end, depth, 6):
            return
        if off + 40 > end:  # cut short: fixed fields kept, addresses mapped as far as captured
            self.field(off + 8, F_IP6, end)
            self.field(off + 24, F_IP6, end)
            return
        plen = _from(buf[off + 4 : off + 6], "big")
        if plen:
            if off + 40 + plen < end:
                self.zero(off + 40 + plen, end)
            end = off + 40 + plen
        cend = min(end, len(buf))
        self.field(off + 8, F_IP6, cend)
        self.field(off + 24, F_IP6, cend)
        nh = buf[off + 6]
        p = off + 40
        frag = None
        src, dst = off + 8, off + 24
        while True:
            if nh in _OPTION_HEADERS or nh == n.IP_ROUTING:
                if p + 8 > cend:
                    self.hide(p, cend)
                    return
                hend = p + 8 + buf[p + 1] * 8
                if nh == n.IP_HOPOPTS or nh == n.IP_DSTOPTS:
                    home = self.ip6_options(p + 2, hend, nh == n.IP_DSTOPTS)
                    if home >= 0:
                        src = home  # transport checksums use the home address
                elif nh == n.IP_ROUTING:
                    final = self.routing(p, hend, cend)
                    if final >= 0:
                        dst = final
                else:  # mobility, HIP, shim6: addresses and names we do not walk
                    self.hide(p + 2, min(hend, cend))
                nh, p = buf[p], hend
            elif nh == n.IP_AH:
                if p + 12 > cend:
                    self.zero(p, cend)
                    return
                hend = p + (buf[p + 1] + 2) * 4
                self.zero(p + 12, min(hend, cend))  # the integrity check value
                nh, p = buf[p], hend
            elif nh == n.IP_FRAGMENT:
                if p + 8 > cend:
                    self.zero(p, cend)
                    return
                fo = _from(buf[p + 2 : p + 4], "big")
                key = bytes(buf[off + 8 : off + 40]) + bytes(buf[p + 4 : p + 8])
                # A UDP datagram's fragment (UDP right after this header in the first one) may be
                # DNS (mask/datagrams.py): its payload is left to the masker.
                udp = buf[p] == n.IP_UDP and not quoted
                if fo & 0xFFF8:
                    if not fo & 1 and not quoted and not self.hidden:
                        self.w.last_fragment = (key, (fo & 0xFFF8) + end - p - 8)
                    if not (udp and self.piece(key, p + 8, end, fo & 0xFFF8, fo & 1 != 0)):
                        self.zero(p + 8, cend)
                    return
                if fo & 1:
                    frag = key
                    if udp:
                        self.piece(key, p + 8, end, 0, True)
                nh, p = buf[p], p + 8
            else:
                break
        if p > cend:
            return
        self.l4(nh, p, end, bytes(buf[off + 8 : off + 40]), frag, depth, quoted, True, [(src, 16), (dst, 16)])

    def ip6_options(self, o: int, end: int, dest: bool) -> int:
        """Hop-by-hop/destination options: keep what is understood, map a home address.

        Returns the offset of the (last) home address of a destination options
        header, else -1. A home address anywhere else, or of another length,
        is hidden.
        """
        buf = self.buf
        end = min(end, len(buf))
        home = -1
        while o < end:
            t = buf[o]
            if t == n.IP6OPT_PAD1:
                o += 1
                continue
            if o + 2 > end or o + 2 + buf[o + 1] > end:
                self.hide(o, end)
                return home
            size = 2 + buf[o + 1]
            if t == n.IP6OPT_HOME:
                if dest and size == 18:
                    self.field(o + 2, F_IP6, end)
                    home = o + 2
                else:
                    self.hide(o + 2, o + size)
            elif not ((t == n.IP6OPT_RA and size == 4) or (t == n.IP6OPT_JUMBO and size == 6)):
                self.zero(o + 2, o + size)  # PadN contents and unknown options' data
            o += size
        return home

    def routing(self, p: int, hend: int, cend: int) -> int:
        """A routing header: map the addresses of types 0, 2 and 4 (SRH); hide the data of others.

        Returns the offset of the final destination while in flight (segments
        left), what transport checksums are computed over, else -1.
        """
        buf = self.buf
        rtype, left = buf[p + 2], buf[p + 3]
        stop = min(hend, cend)
        if rtype == n.RT_SRH:
            count = buf[p + 4] + 1  # last entry + 1 segments, then TLVs
        elif rtype == n.RT_TYPE0 or rtype == n.RT_MIP6:
            self.zero(p + 4, min(p + 8, stop))  # reserved
            count = (hend - p - 8) // 16
        else:  # RPL (3) and others: compressed or unknown addresses
            self.hide(p + 4, stop)
            return -1
        a = p + 8
        last = -1
        for _ in range(count):
            if a + 16 > hend or a >= stop:
                break
            self.field(a, F_IP6, stop)
            if a + 16 <= stop:
                last = a
            a += 16
        if rtype == n.RT_SRH:
            self.zero(a, stop)  # TLVs (HMAC, padding)
        else:
            self.hide(a, stop)
        if not left or last < 0:
            return -1
        if rtype == n.RT_SRH:
            return p + 8
        return last
