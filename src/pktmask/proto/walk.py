"""The encapsulation walker: one walk of a frame, several consumers.

``walk(buf, linktype)`` follows a frame from the link layer through VLAN/QinQ,
MPLS, PPPoE, GRE, IP-in-IP and VXLAN down to the innermost packet, and into
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

Adding an encapsulation means adding it here, once: both consumers follow.
``verify`` keeps its own, independent dissector on purpose.
"""

from __future__ import annotations

from typing import Final

from pktmask.proto import dns, link
from pktmask.proto import numbers as n
from pktmask.proto.checksum import ones_sum, word_sum

MAX_DEPTH: Final = 16  # encapsulation levels followed; anything nested deeper is zeroed
_from: Final = int.from_bytes

# Field kinds (what pseudonym replaces the bytes).
F_MAC: Final = 0
F_IP4: Final = 1
F_IP6: Final = 2
FIELD_SIZE: Final = (6, 4, 16)

# Checksum job kinds.
IP4_HEADER: Final = 0  # recomputed from the header's bytes
L4_PSEUDO: Final = 1  # TCP/UDP/ICMPv6/DCCP: pseudo header + region
L4_PLAIN: Final = 2  # ICMP, IGMP, GRE, an IPv4 header cut short: region only
L4_QUOTED: Final = 3  # a transport header quoted in an ICMP error: updated incrementally

# IPv4 options kept: EOL, NOP, router alert, and the ones whose addresses are
# mapped (record route, timestamps, loose/strict source route); others' data is zeroed.
_SAFE_IP_OPTIONS: Final = frozenset({n.IPOPT_EOL, n.IPOPT_NOP, n.IPOPT_RR, n.IPOPT_TS, n.IPOPT_LSRR,
                                     n.IPOPT_SSRR, n.IPOPT_RA})
# IPv6 hop-by-hop/destination options kept: Pad1, PadN, router alert, home address (mapped).
_SAFE_IP6_OPTIONS: Final = frozenset({n.IP6OPT_PAD1, n.IP6OPT_PADN, n.IP6OPT_RA, n.IP6OPT_HOME})
# TCP options kept as they are, by kind: their only valid length.
_TCP_OPTION_SIZE: Final = {n.TCPOPT_MSS: 4, n.TCPOPT_WSCALE: 3, n.TCPOPT_SACK_PERMITTED: 2, n.TCPOPT_TIMESTAMP: 10}
_ADD_ADDR_IP4: Final = frozenset({8, 10, 16, 18})  # MPTCP ADD_ADDR lengths: with/without port, HMAC
_ADD_ADDR_IP6: Final = frozenset({20, 22, 28, 30})
_SOLICITED_NODE: Final = bytes.fromhex("ff0200000000000000000001ff")  # ff02::1:ff00:0/104
_KNOWN_NEXT: Final = frozenset({n.IP_HOPOPTS, n.IP_TCP, n.IP_UDP, n.IP_ROUTING, n.IP_FRAGMENT, n.IP_GRE,
                                n.IP_ESP, n.IP_AH, n.IP_ICMPV6, n.IP_NONE, n.IP_DSTOPTS, n.IP_IPIP, n.IP_IPV6})
_OPTION_HEADERS: Final = frozenset({n.IP_HOPOPTS, n.IP_DSTOPTS, n.IP_MOBILITY, n.IP_HIP, n.IP_SHIM6})


class TcpSegment:
    """The innermost TCP segment of a frame: direction key, sequence, flags, payload span."""

    __slots__ = ("key", "seq", "flags", "start", "end")

    def __init__(self, key: bytes, seq: int, flags: int, start: int, end: int):
        self.key = key  # src addr + dst addr + src port + dst port (per direction)
        self.seq = seq
        self.flags = flags
        self.start = start
        self.end = end


class Job:
    """A checksummed region: its kind, bounds, checksum field and pseudo header.

    ``end`` is where the IP header says the region ends; past len(buf) it was
    cut short. ``pseudo`` lists the (offset, size) of the pseudo header's
    addresses and ``proto`` its protocol number. ``frag`` (first fragment of
    a datagram) is the datagram's key: the region is this fragment only.
    ``mask``/``anon`` tell which consumer handles the job: the masker skips a
    region it zeroes whole, the anonymizer a region it never changes.
    """

    __slots__ = ("kind", "start", "end", "at", "pseudo", "proto", "zero_ok", "frag", "mask", "anon")

    def __init__(self, kind: int, start: int, end: int, at: int, pseudo: list[tuple[int, int]], proto: int,
                 zero_ok: bool, frag: bytes | None, mask: bool, anon: bool):
        self.kind = kind
        self.start = start
        self.end = end
        self.at = at
        self.pseudo = pseudo
        self.proto = proto
        self.zero_ok = zero_ok
        self.frag = frag
        self.mask = mask
        self.anon = anon

    def pseudo_sum(self, buf) -> int:
        """Word sum of the pseudo header's addresses and protocol as the frame holds them now."""
        s = self.proto
        for a, size in self.pseudo:
            s += word_sum(buf[a : a + size])
        return s


class Walk:
    """Result of ``walk``: fields to map, ranges to zero, checksum jobs, the TCP segment."""

    __slots__ = ("fields", "zero", "wipe", "derived", "jobs", "tcp", "last_fragment", "labels", "trim", "dns")

    def __init__(self) -> None:
        self.fields: list[tuple[int, int, int]] = []  # (offset, kind, captured bytes)
        self.zero: list[tuple[int, int]] = []
        self.wipe: list[tuple[int, int]] = []
        # (where, the unicast address it derives from, F_IP6 or F_MAC): after mapping, a
        # solicited-node address or its MAC takes the low 24 bits of the mapped unicast one.
        self.derived: list[tuple[int, int, int]] = []
        self.jobs: list[Job] = []
        self.tcp: TcpSegment | None = None
        # For the last fragment of a datagram: (datagram key, transport length of the whole datagram).
        self.last_fragment: tuple[bytes, int] | None = None
        self.labels: list[tuple[int, int, bytes]] = []  # DNS name labels: (offset, length, parent)
        self.trim: list[tuple[int, int]] = []  # (offset, mask of the bits kept)
        self.dns = 0  # DNS messages walked (their header kept)


def walk(buf, linktype: int) -> Walk:
    """Walk one frame; see the module docstring. Never raises on malformed input."""
    w = Walk()
    _Walker(buf, w).frame(linktype)
    return w


class _Walker:
    __slots__ = ("buf", "w", "hidden", "mac_dst")

    def __init__(self, buf, w: Walk):
        self.buf = buf
        self.w = w
        # > 0 inside a region the masker zeroes whole (a quoted tunnel): only the
        # anonymizer's fields and jobs are recorded there.
        self.hidden = 0
        self.mac_dst = -1  # the innermost Ethernet destination seen so far

    # ---- recording -----------------------------------------------------------------
    def zero(self, a: int, b: int) -> None:
        if a < b and not self.hidden:
            self.w.zero.append((a, b))

    def field(self, off: int, kind: int, end: int) -> None:
        """An identifier of ``kind`` at ``off``; ``end`` bounds what of it was captured."""
        size = FIELD_SIZE[kind]
        avail = end - off
        if avail > size:
            avail = size
        if avail > 0:
            self.w.fields.append((off, kind, avail))

    def job(self, kind: int, start: int, end: int, at: int, pseudo: list[tuple[int, int]], proto: int,
            zero_ok: bool, frag: bytes | None, mask: bool, anon: bool) -> None:
        mask = mask and not self.hidden
        if mask or anon:
            self.w.jobs.append(Job(kind, start, end, at, pseudo, proto, zero_ok, frag, mask, anon))

    def hide(self, a: int, b: int) -> None:
        """Bytes that may hold an identifier we cannot map: zeroed by every consumer."""
        if a < b:
            self.w.wipe.append((a, b))
            self.zero(a, b)

    def too_deep(self, off: int, end: int) -> None:
        """Nesting beyond MAX_DEPTH cannot be walked: zeroed by every consumer."""
        if off < end:
            self.w.wipe.append((off, end))
            self.zero(off, end)

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
        elif lt == link.LT_SLL2:
            if size >= 20:
                self.link_address(12, _from(buf[8:10], "big"), buf[11])
                self.l3(20, size, _from(buf[0:2], "big"), 0)
        elif lt in (link.LT_NULL, link.LT_LOOP):
            self.l3(4, size, link.null_ethertype(buf, lt), 0)
        elif lt == link.LT_NETLINK:
            self.netlink(size)
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

    # ---- IP ----------------------------------------------------------------------------
    def ip4(self, off: int, end: int, depth: int, quoted: bool) -> None:
        """An IPv4 packet (outer, inner or quoted): addresses, options, header checksum, then L4."""
        buf = self.buf
        if depth > MAX_DEPTH:
            self.too_deep(off, end)
            return
        if off >= end:
            return
        if buf[off] >> 4 != 4:  # not IPv4 whatever the layer below says: nothing is understood
            self.hide(off, end)
            return
        ihl = (buf[off] & 0x0F) * 4
        if ihl < 20:  # malformed: the addresses are not where a header would have them
            self.hide(off + 1, end)
            return
        if off + 20 > end:
            self.zero(off, end)
            if off + 12 < end:
                # Header cut short by the snap length: its addresses, even in part, are there to hide.
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
            if fl & 0x1FFF:  # not the first fragment: no header inside, all payload
                if not fl & 0x2000 and not quoted and not self.hidden:
                    self.w.last_fragment = (frag, (fl & 0x1FFF) * 8 + end - p)
                self.zero(p, end)
                return
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
        if depth > MAX_DEPTH:
            self.too_deep(off, end)
            return
        if off >= end:
            return
        if buf[off] >> 4 != 6:  # not IPv6 whatever the layer below says: nothing is understood
            self.hide(off, end)
            return
        if off + 40 > end:  # header cut short: hide what is there, even in part
            self.zero(off + 24 if off + 24 <= end else off, end)
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
                if fo & 0xFFF8:
                    if not fo & 1 and not quoted and not self.hidden:
                        self.w.last_fragment = (key, (fo & 0xFFF8) + end - p - 8)
                    self.zero(p + 8, cend)
                    return
                if fo & 1:
                    frag = key
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

    # ---- transport -------------------------------------------------------------------
    def l4(self, proto: int, p: int, end: int, key: bytes, frag: bytes | None, depth: int,
           quoted: bool, v6: bool, pseudo: list[tuple[int, int]]) -> None:
        """Transport/encapsulation at ``p``; ``end`` is where the IP header says it ends."""
        buf = self.buf
        cap = len(buf)
        cap_end = end if end <= cap else cap
        fragmented = frag is not None
        if fragmented:
            end = cap_end  # the region summed is this first fragment only
        top = not quoted  # the masker recomputes checksums of packets that are not quoted
        if proto == n.IP_TCP:
            if p + 20 > cap_end:
                if p + 18 <= cap_end:
                    self.job(L4_PSEUDO, p, end, p + 16, pseudo, proto, False, None, False, True)
                return
            doff = (buf[p + 12] >> 4) * 4
            hend = p + max(doff, 20)
            if hend > cap_end:
                self.zero(p + 20, cap_end)  # options cut short
                self.job(L4_PSEUDO, p, end, p + 16, pseudo, proto, False, None, False, True)
                return
            if hend > p + 20:
                self.tcp_options(p + 20, hend)
            if quoted:
                self.job(L4_QUOTED, p, end, p + 16, pseudo, proto, False, None, True, True)
                self.zero(hend, cap_end)
            else:
                if fragmented:
                    self.zero(hend, cap_end)
                elif not self.hidden:
                    self.w.tcp = TcpSegment(key + bytes(buf[p : p + 4]), _from(buf[p + 4 : p + 8], "big"),
                                            buf[p + 13], hend, cap_end)
                self.job(L4_PSEUDO, p, end, p + 16, pseudo, proto, False, frag, True, True)
        elif proto == n.IP_UDP or proto == n.IP_UDPLITE:
            if p + 8 > cap_end:
                self.zero(p, cap_end)
                return
            # VXLAN is known by its port only: a guess, walked only if header and frame parse.
            vx = (p + 16 <= cap_end and proto == n.IP_UDP and not quoted and not fragmented
                  and n.UDP_VXLAN in (_from(buf[p : p + 2], "big"), _from(buf[p + 2 : p + 4], "big"))
                  and buf[p + 9] == 0 and buf[p + 10] == 0 and buf[p + 15] == 0
                  # RFC 7348 (flag I), or VXLAN-GPE naming Ethernet (flags I and P, next protocol 3)
                  and ((buf[p + 8] == 0x08 and buf[p + 11] == 0) or (buf[p + 8] == 0x0C and buf[p + 11] == 3))
                  and self.plausible_ether(p + 16, cap_end))
            zero_ok = not v6 and proto == n.IP_UDP  # a zero UDP checksum over IPv4 means "none"
            kind = L4_QUOTED if quoted else L4_PSEUDO
            self.job(kind, p, end, p + 6, pseudo, proto, zero_ok, frag, True, True)
            if vx:
                self.ether(p + 16, cap_end, depth + 1)
            elif (proto == n.IP_UDP and not quoted and not fragmented
                  and (_from(buf[p : p + 2], "big") in dns.PORTS or _from(buf[p + 2 : p + 4], "big") in dns.PORTS)):
                self.dns_message(p, end, cap_end)
            else:
                self.zero(p + 8, cap_end)
        elif proto == n.IP_ICMP:
            if p + 8 > cap_end:
                self.zero(p, cap_end)
                if quoted and p + 4 <= cap_end:
                    self.job(L4_QUOTED, p, end, p + 2, [], 0, False, None, True, False)
                return
            kind = L4_QUOTED if quoted else L4_PLAIN
            self.job(kind, p, end, p + 2, [], 0, False, None if quoted else frag, True, True)
            self.icmp4(p, cap_end, depth)
        elif proto == n.IP_ICMPV6:
            if p + 8 > cap_end:
                self.zero(p, cap_end)
                if quoted and p + 4 <= cap_end:
                    self.job(L4_QUOTED, p, end, p + 2, [], 0, False, None, True, False)
                return
            kind = L4_QUOTED if quoted else L4_PSEUDO
            self.job(kind, p, end, p + 2, pseudo, proto, False, None if quoted else frag, True, True)
            self.icmp6(p, cap_end, depth, pseudo[1][0])
        elif proto == n.IP_IPIP or proto == n.IP_IPV6 or proto == n.IP_GRE:
            if quoted:  # a quoted tunnel: mapped, but zeroed whole by the masker
                self.zero(p, cap_end)
                self.hidden += 1
            if proto == n.IP_IPIP:
                self.ip4(p, cap_end, depth + 1, False)
            elif proto == n.IP_IPV6:
                self.ip6(p, cap_end, depth + 1, False)
            else:
                self.gre(p, end, cap_end, depth, top)
            if quoted:
                self.hidden -= 1
        elif proto == n.IP_IGMP:
            if p + 8 <= cap_end:
                self.job(L4_PLAIN, p, end, p + 2, [], 0, False, frag, top, True)
                self.igmp(p, cap_end)
        elif proto == n.IP_ESP:
            self.zero(p + 8, cap_end)  # SPI and sequence number kept
        else:
            # SCTP, OSPF, no next header, unknown: nothing here is understood as header.
            self.zero(p, cap_end)
            if proto == n.IP_DCCP and p + 8 <= cap_end:
                self.job(L4_PSEUDO, p, end, p + 6, pseudo, proto, False, None, False, True)

    def dns_message(self, p: int, end: int, cap_end: int) -> None:
        """A DNS message in the UDP datagram at ``p`` (docs/policy.md, "DNS"): names and
        addresses listed for the anonymizer, the rest kept or zeroed by type."""
        size = _from(self.buf[p + 4 : p + 6], "big") - 8  # the message, by the UDP length
        m = dns.parse(self.buf, p + 8, min(p + 8 + size, cap_end), size) if 0 <= size <= end - p - 8 else None
        if m is None:  # not a plausible DNS message (or a bad UDP length): all zeroed
            self.zero(p + 8, cap_end)
            return
        for a, b in m.zero:
            self.zero(a, b)
        for off, v6, count in m.addrs:
            self.field(off, F_IP6 if v6 else F_IP4, off + count)
        w = self.w
        w.labels.extend(m.labels)
        w.trim.extend(m.trim)
        self.zero(m.stop, cap_end)
        if not self.hidden:
            w.dns += 1

    def tcp_options(self, o: int, end: int) -> None:
        """TCP options: keep MSS, window scale, SACK, timestamps, NOP/EOL; map MPTCP
        addresses; zero every other option's data and anything after End of Options."""
        buf = self.buf
        while o < end:
            k = buf[o]
            if k == n.TCPOPT_EOL:
                self.zero(o + 1, end)
                return
            if k == n.TCPOPT_NOP:
                o += 1
                continue
            size = buf[o + 1] if o + 1 < end else 0
            if size < 2 or o + size > end:
                self.hide(o, end)
                return
            if k == n.TCPOPT_SACK:
                if (size - 2) % 8:
                    self.zero(o + 2, o + size)
            elif k == n.TCPOPT_MPTCP:
                self.mptcp(o, size)
            elif _TCP_OPTION_SIZE.get(k, -1) != size:
                self.zero(o + 2, o + size)  # TFO cookie, MD5/AO signatures, experimental, unknown
            o += size

    def mptcp(self, o: int, size: int) -> None:
        """An MPTCP option: its subtype kept; ADD_ADDR's address mapped, its port kept, its HMAC zeroed."""
        if size < 3:
            return
        if self.buf[o + 2] >> 4 == n.MPTCP_ADD_ADDR and size in _ADD_ADDR_IP4:
            self.field(o + 4, F_IP4, o + size)
            self.zero(o + 8 + (2 if size in (10, 18) else 0), o + size)
        elif self.buf[o + 2] >> 4 == n.MPTCP_ADD_ADDR and size in _ADD_ADDR_IP6:
            self.field(o + 4, F_IP6, o + size)
            self.zero(o + 20 + (2 if size in (22, 30) else 0), o + size)
        else:  # keys, tokens, nonces, HMACs, data sequence mappings
            self.zero(o + 3, o + size)

    def icmp4(self, p: int, end: int, depth: int) -> None:
        """ICMP: the packet quoted by errors, a redirect's gateway; what is not defined is zeroed."""
        buf = self.buf
        t, code = buf[p], buf[p + 1]
        if t in n.ICMP_ERRORS:
            if t == n.ICMP_REDIRECT:
                self.field(p + 4, F_IP4, end)
            elif t == n.ICMP_UNREACH and code == n.ICMP_UNREACH_NEEDFRAG:
                self.zero(p + 4, p + 6)  # the next-hop MTU is kept
            elif t == n.ICMP_PARAMPROB:
                self.zero(p + 5, p + 8)  # the pointer is kept
            else:
                self.zero(p + 4, p + 8)  # unused
            self.ip4(p + 8, end, depth + 1, True)
        elif t == n.ICMP_TSTAMP or t == n.ICMP_TSTAMPREPLY:
            self.zero(p + 20, end)  # identifier, sequence and timestamps are header; anything after is not
        elif t in n.ICMP_KEEP_WORD:
            self.zero(p + 8, end)  # echo data, router addresses, masks
        else:
            self.zero(p + 4, end)

    def icmp6(self, p: int, end: int, depth: int, dst: int) -> None:
        """ICMPv6: quoted packets, ND targets and options, MLD groups and sources; the rest zeroed."""
        buf = self.buf
        t = buf[p]
        if n.ICMP6_UNREACH <= t <= n.ICMP6_PARAMPROB:
            if t != n.ICMP6_TOOBIG and t != n.ICMP6_PARAMPROB:
                self.zero(p + 4, p + 8)  # unused (the MTU and the pointer are kept)
            self.ip6(p + 8, end, depth + 1, True)
        elif t in n.ND_OPTIONS_AT:
            first = n.ND_OPTIONS_AT[t]
            if t == n.ND_NA:
                self.zero(p + 5, p + 8)  # reserved (the flags are kept)
            elif t != n.ND_RA:
                self.zero(p + 4, p + 8)  # reserved
            if t == n.ND_NS or t == n.ND_NA or t == n.ND_REDIRECT:
                self.field(p + 8, F_IP6, end)
                if t == n.ND_NS and p + 24 <= end and buf[dst : dst + 13] == _SOLICITED_NODE:
                    self.w.derived.append((dst + 13, p + 21, F_IP6))
                    m = self.mac_dst
                    if m >= 0 and buf[m] == 0x33 and buf[m + 1] == 0x33 and buf[m + 2] == 0xFF:
                        self.w.derived.append((m + 3, p + 21, F_MAC))
            if t == n.ND_REDIRECT:
                self.field(p + 24, F_IP6, end)
            self.nd_options(p + first, end, depth)
        elif t == n.MLD2_REPORT:
            self.zero(p + 4, p + 6)  # reserved
            self.group_records(p, end, F_IP6)
        elif t == n.MLD_QUERY or t == n.MLD_REPORT or t == n.MLD_DONE:
            self.zero(p + 6, p + 8)  # reserved
            self.field(p + 8, F_IP6, end)  # the group
            if t == n.MLD_QUERY and p + 28 <= end:  # MLDv2 query: its source list
                after = self.sources(p + 28, _from(buf[p + 26 : p + 28], "big"), F_IP6, end)
                self.zero(after, end)
            else:
                self.zero(p + 24, end)
        elif t == n.ICMP6_ECHO_REQUEST or t == n.ICMP6_ECHO_REPLY:
            self.zero(p + 8, end)  # echo data
        else:
            self.zero(p + 4, end)  # node information (names), unknown

    def nd_options(self, o: int, end: int, depth: int) -> None:
        buf = self.buf
        while o + 8 <= end:
            kind, size = buf[o], buf[o + 1] * 8
            if size == 0 or o + size > end:
                break
            if kind == n.NDOPT_REDIRECTED:  # the quoted packet
                self.zero(o + 2, o + 8)
                self.ip6(o + 8, o + size, depth + 1, True)
            elif kind == n.NDOPT_SLLA or kind == n.NDOPT_TLLA:
                if size == 8:
                    self.field(o + 2, F_MAC, end)
                else:  # EUI-64, InfiniBand...: not a MAC we map
                    self.hide(o + 2, o + size)
            elif kind == n.NDOPT_PREFIX and size == 32:
                self.zero(o + 12, o + 16)  # reserved
                self.field(o + 16, F_IP6, end)
            elif kind == n.NDOPT_RDNSS and size >= 24:
                self.zero(o + 2, o + 4)  # reserved (the lifetime is kept)
                self.sources(o + 8, (size - 8) // 16, F_IP6, o + size)
            elif kind == n.NDOPT_MTU and size == 8:
                self.zero(o + 2, o + 4)  # reserved
            else:
                self.zero(o + 2, o + size)
            o += size
        self.hide(o, end)

    def group_records(self, p: int, end: int, kind: int) -> None:
        """The group records of an MLDv2 (``kind`` F_IP6) or IGMPv3 (F_IP4) report at ``p``:
        record type, aux length and source count kept, group and sources mapped, aux data
        zeroed; whatever follows the last complete record is hidden."""
        buf = self.buf
        size = FIELD_SIZE[kind]
        nrec = _from(buf[p + 6 : p + 8], "big")
        o = p + 8
        for _ in range(nrec):
            if o + 4 + size > end:
                break
            aux, nsrc = buf[o + 1] * 4, _from(buf[o + 2 : o + 4], "big")
            self.field(o + 4, kind, end)  # the group
            first = o + 4 + size
            s = self.sources(first, nsrc, kind, end)
            if s < first + size * nsrc:
                break
            self.zero(s, s + aux)  # auxiliary data
            o = s + aux
        self.hide(o, end)

    def sources(self, o: int, count: int, kind: int, end: int) -> int:
        """``count`` addresses of ``kind`` listed from ``o``; returns where the complete ones end."""
        size = FIELD_SIZE[kind]
        for _ in range(count):
            if o + size > end:
                self.hide(o, end)  # cut short
                break
            self.field(o, kind, end)
            o += size
        return o

    def igmp(self, p: int, end: int) -> None:
        """IGMP: groups and the source lists of v3 queries and reports; other types' data zeroed."""
        buf = self.buf
        t = buf[p]
        if t == n.IGMP_QUERY and p + 12 <= end:  # v3 query (a v1/v2 query is 8 bytes)
            self.field(p + 4, F_IP4, end)
            after = self.sources(p + 12, _from(buf[p + 10 : p + 12], "big"), F_IP4, end)
            self.zero(after, end)
        elif t in n.IGMP_GROUP_MESSAGES:
            self.field(p + 4, F_IP4, end)
            self.zero(p + 8, end)
        elif t == n.IGMP_V3_REPORT:
            self.zero(p + 4, p + 6)  # reserved
            self.group_records(p, end, F_IP4)
        else:  # mtrace, DVMRP, PIMv1, unknown: addresses we do not walk
            self.zero(p + 4, end)

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

    def gre(self, p: int, end: int, cap_end: int, depth: int, top: bool) -> None:
        """GRE (RFC 2784/2890, and PPTP's enhanced GRE): the encapsulated packet, and the checksum."""
        buf = self.buf
        if p + 4 > cap_end:
            self.zero(p, cap_end)
            return
        flags = _from(buf[p : p + 2], "big")
        version = flags & 7
        if version == 0 and flags & 0x8000 and p + 6 <= cap_end:
            self.job(L4_PLAIN, p, end, p + 4, [], 0, False, None, top and p + 8 <= cap_end, True)
        o = p + 4
        if version == 0:
            o += 4 * ((flags >> 15 & 1) + (flags >> 13 & 1) + (flags >> 12 & 1))
        elif version == 1:
            o += 4 + 4 * ((flags >> 12 & 1) + (flags >> 7 & 1))
        else:
            self.zero(p + 4, cap_end)
            return
        if o < cap_end:
            self.l3(o, cap_end, _from(buf[p + 2 : p + 4], "big"), depth + 1)
