"""Dissect a frame for masking: what is header (kept), what is payload (zeroed), where checksums live.

``dissect(buf, linktype)`` walks the frame like the address rewriter does —
VLAN/QinQ, MPLS, PPPoE, GRE, IP-in-IP and VXLAN down to the innermost packet
— and returns a Dissection:

* ``zero``: byte ranges to zero because nothing understands them as header:
  UDP/ICMP-echo/unknown-protocol payloads, fragments after the first,
  unknown EtherTypes, bytes after the IP total length (padding can carry
  stale memory). Fail closed: anything not recognised as header is listed.
* ``tcp``: for the innermost unfragmented TCP segment, the stream key and the
  payload span; what of it is kept is decided by the stream tracker.
* ``jobs``: checksummed regions, outer to inner, to fix after zeroing.
"""

from __future__ import annotations

from typing import Final

from pktmask.proto import link
from pktmask.proto.checksum import word_sum

MAX_DEPTH: Final = 16  # as the address rewriter: anything nested deeper is zeroed
_from: Final = int.from_bytes

# Checksum job kinds.
IP4_HEADER: Final = 0
L4_PSEUDO: Final = 1  # TCP/UDP/ICMPv6/DCCP: pseudo header + region
L4_PLAIN: Final = 2  # ICMP, IGMP, GRE: region only
L4_QUOTED: Final = 3  # a transport header quoted in an ICMP error: updated incrementally

# IPv4 options kept: EOL, NOP, router alert, and the ones whose addresses the rewriter
# maps (record route, timestamps, loose/strict source route); others' data is zeroed.
_SAFE_IP_OPTIONS: Final = frozenset({0, 1, 7, 68, 131, 137, 148})
# IPv6 hop-by-hop/destination options kept: Pad1, PadN, router alert, home address (mapped).
_SAFE_IP6_OPTIONS: Final = frozenset({0, 1, 5, 201})


class TcpSegment:
    """The innermost TCP segment of a frame: direction key, sequence, flags, payload span."""

    __slots__ = ("key", "seq", "flags", "start", "end")

    def __init__(self, key: bytes, seq: int, flags: int, start: int, end: int):
        self.key = key  # src addr + dst addr + src port + dst port (per direction)
        self.seq = seq
        self.flags = flags
        self.start = start
        self.end = end


class Dissection:
    """Result of ``dissect``: zero ranges, the TCP segment (or None), checksum jobs."""

    __slots__ = ("zero", "tcp", "jobs", "last_fragment")

    def __init__(self):
        self.zero: list[tuple[int, int]] = []
        self.tcp: TcpSegment | None = None
        # For the last fragment of a datagram: (datagram key, transport length of the whole datagram).
        self.last_fragment: tuple[bytes, int] | None = None
        # (kind, start, end, checksum offset, pseudo-header sum without the length, zero_ok,
        # fragment key). ``end`` is where the IP header says the region ends; past len(buf)
        # it was cut short. With a fragment key (first fragment of a datagram) the region
        # is this fragment only: later fragments are all zeroed, so their sum is zero.
        self.jobs: list[tuple] = []


def dissect(buf, linktype: int, want_jobs: bool = True) -> Dissection:
    """Dissect one frame; see the module docstring. Never raises on malformed input."""
    d = Dissection()
    _Walker(buf, d, want_jobs).frame(linktype)
    return d


class _Walker:
    __slots__ = ("buf", "d", "jobs")

    def __init__(self, buf, d: Dissection, want_jobs: bool):
        self.buf = buf
        self.d = d
        self.jobs = want_jobs

    def zero(self, a: int, b: int) -> None:
        if a < b:
            self.d.zero.append((a, b))

    def frame(self, lt: int) -> None:
        buf = self.buf
        n = len(buf)
        if lt == link.LT_ETHERNET:
            self.ether(0, n, 0)
        elif lt in (link.LT_RAW, link.LT_RAW_BSD, link.LT_RAW_OBSD):
            self.l3(0, n, link.ip_version_ethertype(buf, 0), 0)
        elif lt == link.LT_IPV4:
            self.l3(0, n, link.ET_IPV4, 0)
        elif lt == link.LT_IPV6:
            self.l3(0, n, link.ET_IPV6, 0)
        elif lt == link.LT_SLL:
            if n >= 16:
                self.l3(16, n, _from(buf[14:16], "big"), 0)
        elif lt == link.LT_SLL2:
            if n >= 20:
                self.l3(20, n, _from(buf[0:2], "big"), 0)
        elif lt in (link.LT_NULL, link.LT_LOOP):
            self.l3(4, n, link.null_ethertype(buf, lt), 0)
        elif lt == link.LT_NETLINK:
            self.netlink(n)
        else:
            self.zero(0, n)

    def netlink(self, n: int) -> None:
        """Linux netlink: keep the 16-byte cooked header and each message header, zero attributes."""
        buf = self.buf
        o = 16
        while o + 16 <= n:
            # nlmsg_len is in the capturing host's byte order: take the reading that fits.
            le, be = _from(buf[o : o + 4], "little"), _from(buf[o : o + 4], "big")
            size = le if 16 <= le <= n - o else be if 16 <= be <= n - o else 0
            if not size:
                break
            self.zero(o + 16, o + size)
            o += (size + 3) & ~3
        self.zero(o, n)

    def ether(self, off: int, end: int, depth: int) -> None:
        if off + 14 > end:
            self.zero(off, end)
            return
        self.l3(off + 14, end, _from(self.buf[off + 12 : off + 14], "big"), depth)

    def l3(self, off: int, end: int, etype: int, depth: int) -> None:
        buf = self.buf
        if depth > MAX_DEPTH:
            self.zero(off, end)
            return
        while etype in link.VLAN_TYPES and off + 4 <= end:
            etype = _from(buf[off + 2 : off + 4], "big")
            off += 4
        if etype == link.ET_IPV4:
            self.ip4(off, end, depth)
        elif etype == link.ET_IPV6:
            self.ip6(off, end, depth)
        elif etype == link.ET_ARP:
            if off + 8 <= end:
                used = 8 + 2 * (buf[off + 4] + buf[off + 5])
                self.zero(off + used, end)
            else:
                self.zero(off, end)
        elif etype in (link.ET_MPLS, link.ET_MPLS_MC):
            while off + 4 <= end:
                bottom = buf[off + 2] & 1
                off += 4
                if bottom:
                    break
            if off < end and buf[off] >> 4 == 0:
                self.ether(off + 4, end, depth + 1)
            else:
                self.l3(off, end, link.ip_version_ethertype(buf, off), depth + 1)
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
        buf = self.buf
        self.zero(end, frame_end)
        if off + 2 <= end and buf[off] == 0xFF and buf[off + 1] == 0x03:
            off += 2
        if off < end and buf[off] & 1:
            proto, off = buf[off], off + 1
        elif off + 2 <= end:
            proto, off = _from(buf[off : off + 2], "big"), off + 2
        else:
            self.zero(off, end)
            return
        if proto == link.PPP_IPV4:
            self.ip4(off, end, depth + 1)
        elif proto == link.PPP_IPV6:
            self.ip6(off, end, depth + 1)
        else:
            self.zero(off, end)  # LCP/IPCP/CHAP...: may carry addresses and names

    # ---- IP ------------------------------------------------------------------
    def ip4(self, off: int, end: int, depth: int, quoted: bool = False) -> None:
        buf = self.buf
        if depth > MAX_DEPTH:
            self.zero(off, end)
            return
        if off + 20 > end or buf[off] >> 4 != 4:
            self.zero(off, end)
            return
        ihl = (buf[off] & 0x0F) * 4
        if ihl < 20 or off + ihl > end:
            self.zero(off + 20, end)
            return
        total = _from(buf[off + 2 : off + 4], "big")
        if total >= ihl:
            if off + total < end:
                self.zero(off + total, end)  # link-layer padding / trailer
            end = off + total  # may lie beyond the capture: the packet was cut short
        addrs = bytes(buf[off + 12 : off + 20])
        paddrs = addrs
        if ihl > 20:
            final = self._ip_options(off + 20, off + ihl)
            if final is not None:  # transport checksums use a source route's last hop
                paddrs = addrs[:4] + final
        if self.jobs and not quoted:
            self.d.jobs.append((IP4_HEADER, off, off + ihl, off + 10, 0, False, None))
        fl = _from(buf[off + 6 : off + 8], "big")
        p = off + ihl
        frag = None
        if fl & 0x3FFF:
            frag = addrs + bytes(buf[off + 9 : off + 10]) + bytes(buf[off + 4 : off + 6])
            if fl & 0x1FFF:  # not the first fragment: no header inside, all payload
                if not fl & 0x2000 and not quoted:
                    self.d.last_fragment = (frag, (fl & 0x1FFF) * 8 + end - p)
                self.zero(p, end)
                return
        self.l4(buf[off + 9], p, end, addrs, frag, depth, quoted, False, paddrs)

    def _ip_options(self, o: int, end: int) -> bytes | None:
        """Zero the data of options not kept; returns an unfinished source route's last hop."""
        buf = self.buf
        final = None
        while o < end:
            t = buf[o]
            if t == 0:
                self.zero(o + 1, end)
                return final
            if t == 1:
                o += 1
                continue
            size = buf[o + 1] if o + 1 < end else 0
            if size < 2 or o + size > end:
                self.zero(o, end)
                return final
            if t not in _SAFE_IP_OPTIONS:
                self.zero(o + 2, o + size)
            elif t in (131, 137) and size >= 7 and buf[o + 2] <= size:
                last = o + 3 + ((size - 3) // 4 - 1) * 4
                final = bytes(buf[last : last + 4])
            o += size
        return final

    def ip6(self, off: int, end: int, depth: int, quoted: bool = False) -> None:
        buf = self.buf
        if depth > MAX_DEPTH:
            self.zero(off, end)
            return
        if off + 40 > end or buf[off] >> 4 != 6:
            self.zero(off + 24 if off + 24 <= end else off, end)
            return
        plen = _from(buf[off + 4 : off + 6], "big")
        if plen:
            if off + 40 + plen < end:
                self.zero(off + 40 + plen, end)
            end = off + 40 + plen
        nh = buf[off + 6]
        p = off + 40
        frag = None
        cend = min(end, len(buf))
        psrc, pdst = bytes(buf[off + 8 : off + 24]), bytes(buf[off + 24 : off + 40])
        while True:
            if nh in (0, 60, 43, 135, 139, 140):
                if p + 8 > cend:
                    self.zero(p, cend)
                    return
                hend = p + 8 + buf[p + 1] * 8
                if nh in (0, 60):
                    home = self._ip6_options(p + 2, hend)
                    if home is not None and nh == 60:
                        psrc = home  # transport checksums use the home address
                elif nh == 43 and buf[p + 2] in (0, 2, 4) and buf[p + 3] and p + 24 <= min(hend, cend):
                    # In flight: transport checksums use the final destination.
                    last = p + 8 if buf[p + 2] == 4 else p + 8 + ((hend - p - 8) // 16 - 1) * 16
                    if last + 16 <= cend:
                        pdst = bytes(buf[last : last + 16])
                nh, p = buf[p], hend
            elif nh == 51:
                if p + 8 > cend:
                    self.zero(p, cend)
                    return
                nh, p = buf[p], p + (buf[p + 1] + 2) * 4
            elif nh == 44:
                if p + 8 > cend:
                    self.zero(p, cend)
                    return
                fo = _from(buf[p + 2 : p + 4], "big")
                key = bytes(buf[off + 8 : off + 40]) + bytes(buf[p + 4 : p + 8])
                if fo & 0xFFF8:
                    if not fo & 1 and not quoted:
                        self.d.last_fragment = (key, (fo & 0xFFF8) + end - p - 8)
                    self.zero(p + 8, cend)
                    return
                if fo & 1:
                    frag = key
                nh, p = buf[p], p + 8
            else:
                break
        if p > cend:
            return
        self.l4(nh, p, end, bytes(buf[off + 8 : off + 40]), frag, depth, quoted, True, psrc + pdst)

    def _ip6_options(self, o: int, end: int) -> bytes | None:
        """Hop-by-hop/destination options: zero the data of those not kept; returns a home address."""
        buf = self.buf
        end = min(end, len(buf))
        home = None
        while o < end:
            t = buf[o]
            if t == 0:
                o += 1
                continue
            if o + 2 > end or o + 2 + buf[o + 1] > end:
                self.zero(o, end)
                return home
            size = 2 + buf[o + 1]
            if t not in _SAFE_IP6_OPTIONS:
                self.zero(o + 2, o + size)
            elif t == 201 and size == 18:
                home = bytes(buf[o + 2 : o + 18])
            o += size
        return home

    # ---- transport ---------------------------------------------------------------
    def l4(self, proto: int, p: int, end: int, addrs: bytes, frag: bytes | None, depth: int,
           quoted: bool, v6: bool, paddrs: bytes) -> None:
        buf = self.buf
        jobs = self.jobs and not quoted
        cap = len(buf)
        if end > cap:
            cap_end = cap
        else:
            cap_end = end
        fragmented = frag is not None
        if fragmented:
            end = cap_end  # the region summed is this first fragment only
        pseudo = word_sum(paddrs) + proto if jobs else 0
        if proto == 6:
            if p + 20 > cap_end:
                return
            doff = (buf[p + 12] >> 4) * 4
            hend = p + max(doff, 20)
            if hend > cap_end:
                return
            if quoted:
                self.d.jobs.append((L4_QUOTED, p, end, p + 16, 0, False, None))
            if quoted or fragmented:
                self.zero(hend, cap_end)
            else:
                self.d.tcp = TcpSegment(addrs + bytes(buf[p : p + 4]), _from(buf[p + 4 : p + 8], "big"),
                                        buf[p + 13], hend, cap_end)
            if jobs:
                self.d.jobs.append((L4_PSEUDO, p, end, p + 16, pseudo, False, frag))
        elif proto == 17 or proto == 136:
            if p + 8 > cap_end:
                self.zero(p, cap_end)
                return
            vx = (p + 16 <= cap_end and proto == 17 and not quoted and not fragmented
                  and link.UDP_VXLAN in (_from(buf[p : p + 2], "big"), _from(buf[p + 2 : p + 4], "big"))
                  and buf[p + 8] & 0x08)
            zero_ok = not v6 and proto == 17  # a zero UDP checksum over IPv4 means "none"
            if jobs:
                self.d.jobs.append((L4_PSEUDO, p, end, p + 6, pseudo, zero_ok, frag))
            elif quoted:
                self.d.jobs.append((L4_QUOTED, p, end, p + 6, 0, zero_ok, None))
            if vx:
                self.ether(p + 16, cap_end, depth + 1)
            else:
                self.zero(p + 8, cap_end)
        elif proto == 1 or proto == 58:
            if quoted and p + 4 <= cap_end:
                self.d.jobs.append((L4_QUOTED, p, end, p + 2, 0, False, None))
            if proto == 1:
                self.icmp4(p, end, cap_end, depth, jobs, frag)
            else:
                self.icmp6(p, end, cap_end, depth, jobs, pseudo, frag)
        elif proto == 4 and not quoted:
            self.ip4(p, cap_end, depth + 1)
        elif proto == 41 and not quoted:
            self.ip6(p, cap_end, depth + 1)
        elif proto == 47 and not quoted:
            self.gre(p, end, cap_end, depth, jobs)
        elif proto == 2:
            if jobs and p + 8 <= cap_end:
                self.d.jobs.append((L4_PLAIN, p, end, p + 2, 0, False, frag))
        else:
            # SCTP, ESP, OSPF, unknown: nothing here is understood as header.
            self.zero(p, cap_end)

    def icmp4(self, p: int, end: int, cap_end: int, depth: int, jobs: bool, frag) -> None:
        if p + 8 > cap_end:
            self.zero(p, cap_end)
            return
        t = self.buf[p]
        if jobs:
            self.d.jobs.append((L4_PLAIN, p, end, p + 2, 0, False, frag))
        end = cap_end
        if t in (3, 4, 5, 11, 12):
            self.ip4(p + 8, end, depth + 1, quoted=True)
        elif t in (13, 14):
            self.zero(p + 20, end)  # timestamps are header; anything after is not
        else:
            self.zero(p + 8, end)  # echo data, router adverts, unknown

    def icmp6(self, p: int, end: int, cap_end: int, depth: int, jobs: bool, pseudo: int, frag) -> None:
        buf = self.buf
        if p + 8 > cap_end:
            self.zero(p, cap_end)
            return
        t = buf[p]
        if jobs:
            self.d.jobs.append((L4_PSEUDO, p, end, p + 2, pseudo, False, frag))
        end = cap_end
        if 1 <= t <= 4:
            self.ip6(p + 8, end, depth + 1, quoted=True)
        elif t in (133, 134, 135, 136, 137):
            first = {133: 8, 134: 16, 135: 24, 136: 24, 137: 40}[t]
            self._nd_options(p + first, end, depth)
        elif t in (130, 131, 132, 143):
            pass  # MLD: multicast groups and anonymized sources
        else:
            self.zero(p + 8, end)  # echo data, node information (names), unknown

    def _nd_options(self, o: int, end: int, depth: int) -> None:
        buf = self.buf
        while o + 8 <= end:
            kind, size = buf[o], buf[o + 1] * 8
            if size == 0 or o + size > end:
                break
            if kind == 4:  # redirected header: a quoted packet
                self.ip6(o + 8, o + size, depth + 1, quoted=True)
            elif kind not in (1, 2, 3, 5):  # link-layer addresses, prefixes, MTU are header
                self.zero(o + 2, o + size)
            o += size
        self.zero(o, end)

    def gre(self, p: int, end: int, cap_end: int, depth: int, jobs: bool) -> None:
        buf = self.buf
        if jobs and p + 8 <= cap_end and buf[p] & 0x80 and buf[p + 1] & 7 == 0:
            self.d.jobs.append((L4_PLAIN, p, end, p + 4, 0, False, None))
        end = cap_end
        if p + 4 > end:
            self.zero(p, end)
            return
        flags = _from(buf[p : p + 2], "big")
        version = flags & 7
        o = p + 4
        if version == 0:
            o += 4 * ((flags >> 15 & 1) + (flags >> 13 & 1) + (flags >> 12 & 1))
        elif version == 1:
            o += 4 + 4 * ((flags >> 12 & 1) + (flags >> 7 & 1))
        else:
            self.zero(p + 4, end)
            return
        if o > end:
            return
        if o < end:
            self.l3(o, end, _from(buf[p + 2 : p + 4], "big"), depth + 1)
