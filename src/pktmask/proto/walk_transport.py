"""The walker's transport layer: TCP (options), UDP (DNS, VXLAN; other tunnels in walk_tunnel.py),
ICMP/ICMPv6, IGMP, GRE.

Part of the one encapsulation walker (walk.py, docs/policy.md for what is kept).
"""

from __future__ import annotations

from typing import Final

from pktmask.proto import dns, link
from pktmask.proto import numbers as n
from pktmask.proto.walk_base import (
    F_IP4,
    F_IP6,
    F_MAC,
    FIELD_SIZE,
    L4_PLAIN,
    L4_PSEUDO,
    L4_QUOTED,
    TcpSegment,
    _from,
)
from pktmask.proto.walk_tunnel import TunnelWalker

# TCP options kept as they are, by kind: their only valid length.
_TCP_OPTION_SIZE: Final = {n.TCPOPT_MSS: 4, n.TCPOPT_WSCALE: 3, n.TCPOPT_SACK_PERMITTED: 2, n.TCPOPT_TIMESTAMP: 10}
_ADD_ADDR_IP4: Final = frozenset({8, 10, 16, 18})  # MPTCP ADD_ADDR lengths: with/without port, HMAC
_ADD_ADDR_IP6: Final = frozenset({20, 22, 28, 30})
_SOLICITED_NODE: Final = bytes.fromhex("ff0200000000000000000001ff")  # ff02::1:ff00:0/104


class TransportWalker(TunnelWalker):
    """What follows an IP header."""

    __slots__ = ()

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
            # A header cut short (docs/policy.md, "Headers cut short"): its captured fields kept,
            # the checksum zeroed by the masker (a function of bytes not held), updated without.
            if p + 20 > cap_end:
                self.zero(p + 16, min(p + 18, cap_end))
                if p + 18 <= cap_end:
                    self.job(L4_PSEUDO, p, end, p + 16, pseudo, proto, False, None, False, True)
                return
            doff = (buf[p + 12] >> 4) * 4
            hend = p + max(doff, 20)
            if hend > cap_end:
                self.zero(p + 16, p + 18)
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
            elif (proto == n.IP_UDP and not quoted and not fragmented and self.payloads
                  and (_from(buf[p : p + 2], "big") in dns.PORTS or _from(buf[p + 2 : p + 4], "big") in dns.PORTS)):
                self.dns_message(p, end, cap_end)
            elif fragmented and self.w.fragment is not None and self.w.fragment[1] == p:
                pass  # a first fragment's payload: zeroed by the masker but for its FRAGMENT record (walk_ip.py)
            elif not (proto == n.IP_UDP and not quoted and not fragmented
                      and self.udp_tunnel(p, end, cap_end, depth)):  # GTP-U, Geneve, Teredo, AYIYA
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
            else:  # cut short: type and code kept, checksum zeroed, the group mapped as captured
                self.zero(p + 2, min(p + 4, cap_end))
                if p + 4 <= cap_end:
                    self.job(L4_PLAIN, p, end, p + 2, [], 0, False, None, False, True)
                    if buf[p] in n.IGMP_GROUP_MESSAGES:
                        self.field(p + 4, F_IP4, cap_end)
                    else:
                        self.zero(p + 4, cap_end)
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

    def gre(self, p: int, end: int, cap_end: int, depth: int, top: bool) -> None:
        """GRE (RFC 2784/2890, and PPTP's enhanced GRE): the encapsulated packet, and the checksum."""
        buf = self.buf
        if p + 4 > cap_end:
            self.zero(p, cap_end)
            return
        flags = _from(buf[p : p + 2], "big")
        version = flags & 7
        if version == 0 and flags & 0x8000 and p + 8 > cap_end:
            self.zero(p + 4, min(p + 6, cap_end))  # cut short: the checksum covers bytes not held
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
        proto = _from(buf[p + 2 : p + 4], "big")
        if o < cap_end and version == 0 and (proto == link.ET_ERSPAN or proto == link.ET_ERSPAN3):
            self.erspan(o, cap_end, depth + 1, proto, flags)
        elif o < cap_end:
            self.l3(o, cap_end, proto, depth + 1)
