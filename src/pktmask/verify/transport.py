"""The audit's own dissector, transport layers: TCP, UDP (VXLAN), ICMPv4, ICMPv6 (ND, MLD), IGMP, GRE.

A mixin of ``fields.Walker`` (which supplies ``buf``, ``n``, ``s``, ``ipv4``, ``ipv6``,
``ether``, ``ethertype`` and ``other``), following docs/policy.md. A transport checksum is
kept (it may be recomputed) unless it cannot be recomputed over what the capture holds: a
segment cut short, or the first fragment of a datagram whose last fragment is absent; then
it must be zero. Quoted headers (inside ICMP errors, ND redirected headers) are kept as they
were: their payload is not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from pktmask.verify.dnsfields import DNS_PORTS, label_dns
from pktmask.verify.labels import ADDR4, ADDR6, KEEP, MAC, STREAM, ZERO, Spans, group_kind
from pktmask.verify.tunnels import ERSPAN_TYPES

TCP, UDP, ICMP, IGMP, GRE, IPIP, IPV6_IN_IP, ESP, AH, ICMP6, DCCP, UDPLITE = 6, 17, 1, 2, 47, 4, 41, 50, 51, 58, 33, 136
VXLAN_PORT: Final = 4789
VXLAN_INNER: Final = frozenset({0x0800, 0x86DD, 0x0806})

# TCP options kept whole, by (kind, length); SACK (5) by its length rule.
TCP_FIXED: Final = frozenset({(2, 4), (3, 3), (4, 2), (8, 10)})
TCP_EOL, TCP_NOP, TCP_SACK, TCP_MPTCP = 0, 1, 5, 30
MPTCP_ADD_ADDR: Final = 3
# ADD_ADDR lengths: (address size, port present, HMAC present) (RFC 8684 s3.4.1; RFC 6824 v0).
ADD_ADDR: Final = {8: (4, False, False), 10: (4, True, False), 16: (4, False, True), 18: (4, True, True),
                   20: (16, False, False), 22: (16, True, False), 28: (16, False, True), 30: (16, True, True)}

ICMP_QUERY: Final = frozenset({0, 8, 13, 14, 15, 16, 17, 18})
ICMP_TIMESTAMPS: Final = frozenset({13, 14})
ICMP_ERRORS: Final = frozenset({3, 4, 5, 11, 12})
ICMP_REDIRECT, ICMP_PARAM, ICMP_UNREACH, FRAG_NEEDED = 5, 12, 3, 4
ICMP6_ERRORS: Final = frozenset({1, 2, 3, 4})
ICMP6_ERROR_KEEP: Final = frozenset({2, 4})  # packet too big (MTU), parameter problem (pointer)
ECHO6: Final = frozenset({128, 129})
MLD1: Final = frozenset({130, 131, 132})
MLD_QUERY, MLD2_REPORT, RS, RA, NS, NA, REDIRECT = 130, 143, 133, 134, 135, 136, 137
ND_SLLA, ND_TLLA, ND_PREFIX, ND_REDIRECTED, ND_MTU, ND_RDNSS = 1, 2, 3, 4, 5, 25
IGMP_QUERY, IGMP_V3_REPORT = 0x11, 0x22
IGMP_SIMPLE: Final = frozenset({0x11, 0x12, 0x16, 0x17})


class Transport:
    """Transport-layer labelling (mixin of ``fields.Walker``)."""

    complete: set[bytes]
    buf: bytes
    n: int
    s: Spans
    udp: list[tuple[int, int, int, int]]
    tcp: tuple[bytes, int, int, int, int] | None

    if TYPE_CHECKING:  # defined by the other parts of fields.Walker
        def other(self, a: int, b: int, name: str) -> None: ...

        def ether(self, o: int, end: int) -> None: ...

        def ethertype(self, t: int, o: int, end: int) -> None: ...

        def ipv4(self, o: int, limit: int, quoted: bool = False) -> None: ...

        def ipv6(self, o: int, limit: int, quoted: bool = False) -> None: ...

        def tunnel(self, h: int, end: int, sport: int, dport: int) -> bool: ...

        def erspan(self, q: int, end: int, proto: int, sequenced: bool) -> None: ...

    def l4(self, proto: int, p: int, end: int, addrs, frag: bytes | None, quoted: bool) -> None:
        """Label the transport layer at ``p``; nothing it labels reaches past ``end``, where the
        IP header says the datagram ends (a field that would is not kept: Spans.add)."""
        if p >= self.n:
            return
        spans = self.s
        outer = spans.n
        if end < outer:
            spans.n = end
        try:
            self.l4_(proto, p, end, addrs, frag, quoted)
        finally:
            spans.n = outer

    def l4_(self, proto: int, p: int, end: int, addrs, frag: bytes | None, quoted: bool) -> None:
        n = self.n
        ck = KEEP if quoted or (end <= n and (frag is None or frag in self.complete)) else ZERO
        plain = quoted or frag is not None  # no stream, no payload walk
        if proto == TCP:
            self.tcp_(p, end, addrs, ck, plain)
        elif proto in (UDP, UDPLITE):
            self.udp_(p, end, ck, plain, proto == UDP, frag is not None and not quoted)
        elif proto == ICMP:
            self.header(p, end, ck, "icmp")
            if not plain or quoted:
                self.icmp4(p, end)
        elif proto == ICMP6:
            self.header(p, end, ck, "icmpv6")
            if not plain or quoted:
                self.icmp6(p, end)
        elif proto == IGMP:
            self.header(p, end, ck, "igmp")
            self.igmp(p, end)
        elif proto == GRE and not plain:
            self.gre(p, end, ck)
        elif proto == IPIP and not plain:
            self.ipv4(p, end)
        elif proto == IPV6_IN_IP and not plain:
            self.ipv6(p, end)
        elif proto == ESP:
            self.s.add(p, p + 8, KEEP, "")
            self.other(p + 8, end, "esp data")
        elif proto == AH and end - p >= 12 and p + 12 <= n:
            size = (self.buf[p + 1] + 2) * 4
            self.s.add(p, p + 12, KEEP, "")
            self.other(p + 12, min(p + size, end), "ah.icv")
            if p + size < end and not plain:
                self.l4(self.buf[p], p + size, end, addrs, frag, quoted)
        elif proto == DCCP and p + 12 <= n:
            fixed = 16 if self.buf[p + 8] & 1 else 12
            self.s.add(p, p + 6, KEEP, "")
            self.s.add(p + 6, p + 8, ck, "dccp.checksum")
            self.s.add(p + 8, p + fixed, KEEP, "")
            self.other(p + fixed, end, "dccp options and payload")
        else:
            self.other(p, end, f"ip protocol {proto} payload")

    def header(self, p: int, end: int, ck: int, name: str) -> None:
        """Type, code and checksum of ICMP / ICMPv6 / IGMP."""
        self.s.add(p, p + 2, KEEP, "")
        self.s.add(p + 2, p + 4, ck, f"{name}.checksum")

    # ---- TCP ---------------------------------------------------------------------------
    def tcp_(self, p: int, end: int, addrs, ck: int, plain: bool) -> None:
        buf, n, add = self.buf, self.n, self.s.add
        if ck == KEEP and p + 20 <= self.s.n:
            add(p, p + 20, KEEP, "")
        else:  # field by field: what is cut short is not kept
            for a, b in ((p, p + 4), (p + 4, p + 8), (p + 8, p + 12), (p + 12, p + 16)):
                add(a, b, KEEP, "")
            add(p + 16, p + 18, ck, "tcp.checksum")
            add(p + 18, p + 20, KEEP, "")
        if p + 20 > n:
            self.other(p + 20, end, "tcp (cut short)")
            return
        hl = (buf[p + 12] >> 4) * 4
        if hl < 20 or p + hl > end:
            self.other(p + 20, end, "tcp (bad data offset)")
            return
        self.tcp_options(p + 20, p + hl)
        start = p + hl
        if plain:
            self.other(start, end, "tcp.payload")
            return
        stop = max(start, min(end, n))
        add(start, stop, STREAM, "tcp.payload")
        key = bytes(addrs) + bytes(buf[p:p + 4])
        self.tcp = (key, int.from_bytes(buf[p + 4:p + 8], "big"), buf[p + 13], start, stop)

    def tcp_options(self, a: int, b: int) -> None:
        buf, n, add = self.buf, self.n, self.s.add
        i = a
        while i < b and i < n:
            k = buf[i]
            if k == TCP_EOL:
                add(i, i + 1, KEEP, "")
                self.other(i + 1, b, "tcp.options after end-of-list")
                return
            if k == TCP_NOP:
                add(i, i + 1, KEEP, "")
                i += 1
                continue
            if i + 2 > min(b, n):
                break
            size = buf[i + 1]
            if size < 2 or i + size > b:
                break
            e = i + size
            if (k, size) in TCP_FIXED or (k == TCP_SACK and (size - 2) % 8 == 0):
                add(i, e, KEEP, "")
            elif k == TCP_MPTCP and size >= 3 and i + 3 <= n:
                self.mptcp(i, size)
            else:
                add(i, i + 2, KEEP, "")
                self.other(i + 2, e, f"tcp.option[{k}].data")
            i = e
        self.other(i, b, "tcp.options (bad length)")

    def mptcp(self, i: int, size: int) -> None:
        add, e = self.s.add, i + size
        shape = ADD_ADDR.get(size) if self.buf[i + 2] >> 4 == MPTCP_ADD_ADDR else None
        if shape is None:
            add(i, i + 3, KEEP, "")
            self.other(i + 3, e, "tcp.option[30] (mptcp) data")
            return
        asize, port, hmac = shape
        add(i, i + 4, KEEP, "")
        add(i + 4, i + 4 + asize, ADDR4 if asize == 4 else ADDR6, "tcp.option[30] add_addr address")
        j = i + 4 + asize
        if port:
            add(j, j + 2, KEEP, "")
            j += 2
        self.other(j, e, "tcp.option[30] add_addr hmac")

    # ---- UDP and VXLAN -------------------------------------------------------------------
    def udp_(self, p: int, end: int, ck: int, plain: bool, udp: bool, first_fragment: bool = False) -> None:
        """UDP header; VXLAN and DNS payloads walked. DNS also in the first fragment of a
        datagram (cut short where the fragment ends): labelling its structure costs nothing if
        the sanitizer zeroes it, and agrees with one that walks it. The fragments of a complete
        DNS datagram are labelled again from the whole message (``fragments``)."""
        buf, n, add = self.buf, self.n, self.s.add
        add(p, p + 6, KEEP, "")
        add(p + 6, p + 8, ck, "udp.checksum")
        h = p + 8
        if h >= end or h > n:
            return
        if (not plain or first_fragment) and udp and h > p + 3:
            sport, dport = buf[p] << 8 | buf[p + 1], buf[p + 2] << 8 | buf[p + 3]
            if not plain:
                if dport == VXLAN_PORT and self.vxlan(h, end):
                    return
                if udp and self.tunnel(h, end, sport, dport):  # GTP-U, Geneve, Teredo, AYIYA: tunnels.py
                    return
                self.udp.append((h, min(end, n), sport, dport))
            if sport in DNS_PORTS or dport in DNS_PORTS:
                size = buf[p + 4] << 8 | buf[p + 5]
                stop = min(end, n, p + size) if size >= 8 else min(end, n)
                label_dns(buf, h, stop, self.s)
                self.other(stop, end, "udp.payload (after the dns message)")
                return
        self.other(h, end, "udp.payload" if udp else "udplite.payload")

    def vxlan(self, h: int, end: int) -> bool:
        """Walk a VXLAN frame if its header and inner Ethernet header parse; else say no."""
        buf, n = self.buf, self.n
        if h + 8 + 14 > min(end, n) or buf[h + 1] or buf[h + 2] or buf[h + 7]:
            return False
        # RFC 7348 (flag I, reserved zero) or VXLAN-GPE naming Ethernet (flags I and P, next protocol 3)
        if not ((buf[h] == 0x08 and not buf[h + 3]) or (buf[h] == 0x0C and buf[h + 3] == 3)):
            return False
        o = h + 8 + 14
        t = buf[o - 2] << 8 | buf[o - 1]
        if t not in VXLAN_INNER:
            return False
        need = {0x0800: 20, 0x86DD: 40, 0x0806: 8}[t]
        if o + need > n:
            return False
        if (t == 0x0800 and (buf[o] >> 4 != 4 or buf[o] & 15 < 5)) or (t == 0x86DD and buf[o] >> 4 != 6):
            return False
        self.s.add(h, h + 8, KEEP, "")
        self.ether(h + 8, end)
        return True

    # ---- GRE ---------------------------------------------------------------------------
    def gre(self, p: int, end: int, ck: int) -> None:
        buf, add = self.buf, self.s.add
        if p + 4 > self.n:
            self.other(p, end, "gre (cut short)")
            return
        flags, proto = buf[p] << 8 | buf[p + 1], buf[p + 2] << 8 | buf[p + 3]
        add(p, p + 4, KEEP, "")
        q, version = p + 4, flags & 7
        if version == 0 and not flags & 0x4000:
            if flags & 0x8000:
                add(q, q + 2, ck, "gre.checksum")
                self.other(q + 2, q + 4, "gre.reserved")
                q += 4
            for bit in (0x2000, 0x1000):  # key, sequence
                if flags & bit:
                    add(q, q + 4, KEEP, "")
                    q += 4
        elif version == 1:
            for bit in (0x2000, 0x1000, 0x0080):  # payload length + call id, sequence, ack
                if flags & bit:
                    add(q, q + 4, KEEP, "")
                    q += 4
        else:
            self.other(q, end, "gre (unsupported)")
            return
        if q < end and version == 0 and proto in ERSPAN_TYPES:
            self.erspan(q, end, proto, bool(flags & 0x1000))
        elif q < end:
            self.ethertype(proto, q, end)

    # ---- ICMPv4 / IGMP ------------------------------------------------------------------
    def icmp4(self, p: int, end: int) -> None:
        if p + 4 > self.n:
            return
        add, t, code = self.s.add, self.buf[p], self.buf[p + 1]
        if t in ICMP_QUERY:
            add(p + 4, p + 8, KEEP, "")
            data = p + 8
            if t in ICMP_TIMESTAMPS:
                add(p + 8, p + 20, KEEP, "")
                data = p + 20
            self.other(data, end, f"icmp[{t}].data")
        elif t in ICMP_ERRORS:
            if t == ICMP_UNREACH and code == FRAG_NEEDED:
                self.other(p + 4, p + 6, "icmp.unused")
                add(p + 6, p + 8, KEEP, "")
            elif t == ICMP_PARAM:
                add(p + 4, p + 5, KEEP, "")
                self.other(p + 5, p + 8, "icmp.unused")
            elif t == ICMP_REDIRECT:
                add(p + 4, p + 8, ADDR4, "icmp.gateway")
            else:
                self.other(p + 4, p + 8, "icmp.unused")
            self.ipv4(p + 8, end, quoted=True)
        else:
            self.other(p + 4, end, f"icmp[{t}].data")

    def igmp(self, p: int, end: int) -> None:
        buf, n, add = self.buf, self.n, self.s.add
        if p + 4 > n:
            return
        t = buf[p]
        if t == IGMP_QUERY and end - p >= 12 and p + 12 <= n:
            add(p + 4, p + 8, ADDR4, "igmp.group")
            add(p + 8, p + 12, KEEP, "")
            q = self.addresses(p + 12, buf[p + 10] << 8 | buf[p + 11], 4, end, "igmp.source")
            self.other(q, end, "igmp trailing")
        elif t in IGMP_SIMPLE:
            add(p + 4, p + 8, ADDR4, "igmp.group")
            self.other(p + 8, end, "igmp trailing")
        elif t == IGMP_V3_REPORT and p + 8 <= n:
            self.other(p + 4, p + 6, "igmp.reserved")
            add(p + 6, p + 8, KEEP, "")
            q = p + 8
            for _ in range(buf[p + 6] << 8 | buf[p + 7]):
                if q + 8 > min(end, n):
                    break
                aux, nsrc = buf[q + 1] * 4, buf[q + 2] << 8 | buf[q + 3]
                add(q, q + 4, KEEP, "")
                add(q + 4, q + 8, ADDR4, "igmp.record group")
                q = self.addresses(q + 8, nsrc, 4, end, "igmp.record source")
                self.other(q, q + aux, "igmp.record aux data")
                q += aux
            self.other(q, end, "igmp trailing")
        else:
            self.other(p + 4, end, f"igmp[0x{t:02x}].data")

    def addresses(self, q: int, count: int, size: int, end: int, name: str) -> int:
        """Label ``count`` consecutive addresses (as far as ``end``); return where they stop."""
        kind = ADDR4 if size == 4 else ADDR6
        for _ in range(count):
            if q + size > end:
                break
            self.s.add(q, q + size, kind if size == 4 else group_kind(self.buf[q:q + 16]), name)
            q += size
        return q

    # ---- ICMPv6 ------------------------------------------------------------------------
    def icmp6(self, p: int, end: int) -> None:
        buf, n, add = self.buf, self.n, self.s.add
        if p + 4 > n:
            return
        t = buf[p]
        if t in ICMP6_ERRORS:
            if t in ICMP6_ERROR_KEEP:
                add(p + 4, p + 8, KEEP, "")
            else:
                self.other(p + 4, p + 8, "icmpv6.unused")
            self.ipv6(p + 8, end, quoted=True)
        elif t in ECHO6:
            add(p + 4, p + 8, KEEP, "")
            self.other(p + 8, end, "icmpv6 echo data")
        elif t == MLD_QUERY and end - p >= 28 and p + 28 <= n:
            add(p + 4, p + 8, KEEP, "")
            self.group(p + 8, "mld.group")
            add(p + 24, p + 28, KEEP, "")
            q = self.addresses(p + 28, buf[p + 26] << 8 | buf[p + 27], 16, end, "mld.source")
            self.other(q, end, "mld trailing")
        elif t in MLD1:
            add(p + 4, p + 6, KEEP, "")
            self.other(p + 6, p + 8, "mld.reserved")
            self.group(p + 8, "mld.group")
            self.other(p + 24, end, "mld trailing")
        elif t == MLD2_REPORT and p + 8 <= n:
            self.other(p + 4, p + 6, "mld.reserved")
            add(p + 6, p + 8, KEEP, "")
            q = p + 8
            for _ in range(buf[p + 6] << 8 | buf[p + 7]):
                if q + 20 > min(end, n):
                    break
                aux, nsrc = buf[q + 1] * 4, buf[q + 2] << 8 | buf[q + 3]
                add(q, q + 4, KEEP, "")
                self.group(q + 4, "mld.record group")
                q = self.addresses(q + 20, nsrc, 16, end, "mld.record source")
                self.other(q, q + aux, "mld.record aux data")
                q += aux
            self.other(q, end, "mld trailing")
        elif t in (RS, NS, REDIRECT):
            self.other(p + 4, p + 8, "icmpv6.reserved")
            q = p + 8
            for _ in range({RS: 0, NS: 1, REDIRECT: 2}[t]):
                self.group(q, "nd.target" if q == p + 8 else "nd.destination")
                q += 16
            self.nd_options(q, end)
        elif t == RA:
            add(p + 4, p + 16, KEEP, "")
            self.nd_options(p + 16, end)
        elif t == NA:
            add(p + 4, p + 8, KEEP, "")
            self.group(p + 8, "nd.target")
            self.nd_options(p + 24, end)
        else:
            self.other(p + 4, end, f"icmpv6[{t}].data")

    def group(self, q: int, name: str) -> None:
        """A 16-byte address field that may hold a group (derived groups labelled apart)."""
        if q < self.n:  # cut short: a partial pseudonym (Spans.add)
            self.s.add(q, q + 16, group_kind(self.buf[q:q + 16]), name)

    def nd_options(self, i: int, end: int) -> None:
        buf, n, add = self.buf, self.n, self.s.add
        while i < end and i < n:
            if i + 2 > min(end, n):
                break
            t, size = buf[i], buf[i + 1] * 8
            if not size or i + size > end:
                break
            e = i + size
            add(i, i + 2, KEEP, "")
            if t in (ND_SLLA, ND_TLLA) and size == 8:
                add(i + 2, e, MAC, "nd.link-layer address")
            elif t == ND_PREFIX and size == 32:
                add(i + 2, i + 12, KEEP, "")
                self.other(i + 12, i + 16, "nd.prefix reserved")
                add(i + 16, e, ADDR6, "nd.prefix")
            elif t == ND_REDIRECTED:
                self.other(i + 2, i + 8, "nd.redirected reserved")
                self.ipv6(i + 8, e, quoted=True)
            elif t == ND_MTU and size == 8:
                add(i + 2, e, KEEP, "")
            elif t == ND_RDNSS and size >= 24 and size % 16 == 8:
                self.other(i + 2, i + 4, "nd.rdnss reserved")
                add(i + 4, i + 8, KEEP, "")
                self.addresses(i + 8, (size - 8) // 16, 16, e, "nd.rdnss address")
            else:
                self.other(i + 2, e, f"nd.option[{t}].data")
            i = e
        self.other(i, end, "nd.options (bad length)")
