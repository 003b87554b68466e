"""The walker's tunnels known by a UDP port or a GRE protocol type: GTP-U, Geneve, Teredo, AYIYA
(UDP) and ERSPAN types I, II and III (GRE).

Part of the one encapsulation walker (walk.py). A tunnel known by its port is a guess: like
VXLAN (docs/policy.md, "Tunnels"), it is walked only when its header is plausible and the
packet it carries parses as what the header claims; otherwise the caller zeroes the whole
UDP payload. Each method checks everything first and records only when it walks.
"""

from __future__ import annotations

from typing import Final

from pktmask.proto import link
from pktmask.proto import numbers as n
from pktmask.proto.walk_base import F_IP6, WalkerBase, _from

# GTP-U (3GPP TS 29.281): version 1, protocol type GTP, the E/S/PN bits in the low three.
GTP_V1: Final = 0x30
GTP_OPTIONAL: Final = 0x07
GTP_TPDU: Final = 0xFF
# Echo request/response, error indication, supported extension headers, end marker: their
# information elements (recovery counters, TEIDs, GSN addresses) are hidden.
GTP_SIGNALLING: Final = frozenset({1, 2, 26, 31, 254})
TEREDO_AUTH: Final = 0x0001
TEREDO_ORIGIN: Final = 0x0000
AYIYA_ID_INTEGER: Final = 1  # with 16 bytes: the tunnel's IPv6 address
AYIYA_MAX_OPCODE: Final = 7
ERSPAN2_VERSION: Final = 1
ERSPAN3_VERSION: Final = 2
GRE_SEQUENCE: Final = 0x1000


class TunnelWalker(WalkerBase):
    """UDP and GRE tunnels; the transport layer calls them."""

    __slots__ = ()

    def udp_tunnel(self, p: int, end: int, cap_end: int, depth: int) -> bool:
        """Walk the payload of the UDP datagram at ``p`` if its ports name a tunnel and it
        parses as one; ``end`` is where the IP header says the datagram ends. Returns whether
        it walked (else the caller zeroes the payload)."""
        buf = self.buf
        sport, dport = _from(buf[p : p + 2], "big"), _from(buf[p + 2 : p + 4], "big")
        ulen = _from(buf[p + 4 : p + 6], "big")
        if ulen < 8 or p + ulen > end:
            return False
        stop = p + ulen
        cap = stop if stop < cap_end else cap_end
        h = p + 8
        if sport == n.UDP_GTPU or dport == n.UDP_GTPU:
            ok = self.gtpu(h, stop, cap, depth)
        elif dport == n.UDP_GENEVE:
            ok = self.geneve(h, cap, depth)
        elif sport == n.UDP_TEREDO or dport == n.UDP_TEREDO:
            ok = self.teredo(h, cap, depth)
        elif sport == n.UDP_AYIYA or dport == n.UDP_AYIYA:
            ok = self.ayiya(h, cap, depth)
        else:
            return False
        if ok:
            self.zero(cap, cap_end)
        return ok

    def inner_ip(self, o: int, cap: int) -> int:
        """The EtherType of a plausible IP packet at ``o`` (by its version nibble), else 0."""
        if o >= cap:
            return 0
        v = self.buf[o] >> 4
        if v == 4 and self.plausible_ip4(o, cap):
            return link.ET_IPV4
        if v == 6 and self.plausible_ip6(o, cap):
            return link.ET_IPV6
        return 0

    def gtpu(self, h: int, stop: int, cap: int, depth: int) -> bool:
        """GTP-U: flags, type, length, TEID kept; sequence, N-PDU number, next extension type
        kept; extension headers' contents zeroed (length and next type kept); a T-PDU's packet
        walked; a signalling message's information elements hidden."""
        buf = self.buf
        if h + 8 > cap:
            return False
        flags, mtype = buf[h], buf[h + 1]
        if flags & ~GTP_OPTIONAL != GTP_V1 or h + 8 + _from(buf[h + 2 : h + 4], "big") != stop:
            return False
        o = h + 8
        if flags & GTP_OPTIONAL:
            if o + 4 > cap:
                return False
            nxt = buf[o + 3]
            o += 4
            while nxt:
                size = buf[o] * 4 if o < cap else 0
                if not size or o + size > cap:
                    return False
                nxt = buf[o + size - 1]
                o += size
        etype = 0
        if mtype == GTP_TPDU:
            etype = self.inner_ip(o, cap)
            if not etype:
                return False
        elif mtype not in GTP_SIGNALLING:
            return False
        if flags & GTP_OPTIONAL:
            e = h + 12
            while e < o:
                size = buf[e] * 4
                self.zero(e + 1, e + size - 1)
                e += size
        if etype:
            self.l3(o, cap, etype, depth + 1)
        else:
            self.hide(o, cap)
        return True

    def geneve(self, h: int, cap: int, depth: int) -> bool:
        """Geneve (RFC 8926): version, options length, flags, protocol type, VNI kept; each
        option's class, type and length kept, its data zeroed; the inner frame or packet walked."""
        buf = self.buf
        if h + 8 > cap or buf[h] >> 6 or buf[h + 1] & 0x3F or buf[h + 7]:
            return False
        inner = h + 8 + (buf[h] & 0x3F) * 4
        if inner > cap:
            return False
        o = h + 8
        while o < inner:
            if o + 4 > inner:
                return False
            o += 4 + (buf[o + 3] & 0x1F) * 4
        if o != inner:
            return False
        ptype = _from(buf[h + 2 : h + 4], "big")
        if ptype == link.ET_TEB:
            ok = self.plausible_ether(inner, cap)
        elif ptype == link.ET_IPV4:
            ok = self.plausible_ip4(inner, cap)
        elif ptype == link.ET_IPV6:
            ok = self.plausible_ip6(inner, cap)
        else:
            ok = False
        if not ok:
            return False
        o = h + 8
        while o < inner:
            size = 4 + (buf[o + 3] & 0x1F) * 4
            self.zero(o + 4, o + size)
            o += size
        self.l3(inner, cap, ptype, depth + 1)
        return True

    def teredo(self, h: int, cap: int, depth: int) -> bool:
        """Teredo (RFC 4380): an authentication indicator (its lengths and confirmation byte
        kept; client id, authentication value and nonce hidden), an origin indication (the
        obfuscated port kept, the obfuscated IPv4 address hidden), then the IPv6 packet."""
        buf = self.buf
        o = h
        auth = -1
        if o + 4 <= cap and _from(buf[o : o + 2], "big") == TEREDO_AUTH:
            auth = o
            o += 4 + buf[o + 2] + buf[o + 3] + 9
        origin = -1
        if o + 8 <= cap and _from(buf[o : o + 2], "big") == TEREDO_ORIGIN:
            origin = o
            o += 8
        if not self.plausible_ip6(o, cap):
            return False
        if auth >= 0:
            self.hide(auth + 4, auth + 4 + buf[auth + 2] + buf[auth + 3] + 8)
        if origin >= 0:
            self.hide(origin + 4, origin + 8)
        self.l3(o, cap, link.ET_IPV6, depth + 1)
        return True

    def ayiya(self, h: int, cap: int, depth: int) -> bool:
        """AYIYA: identity length/type, signature length/hash method, authentication
        method/opcode, next header and epoch time kept; an identity of 16 bytes (the tunnel's
        IPv6 address) mapped, any other identity and the signature hidden; the packet walked."""
        buf = self.buf
        if h + 8 > cap or buf[h] & 0x0F > 2 or buf[h + 2] & 0x0F > AYIYA_MAX_OPCODE:
            return False
        ident = h + 8
        sig = ident + (1 << (buf[h] >> 4))
        o = sig + (buf[h + 1] >> 4) * 4
        if o > cap:
            return False
        nxt = buf[h + 3]
        etype = 0
        if nxt == n.IP_IPV6 or nxt == n.IP_IPIP:
            etype = self.inner_ip(o, cap)
            if etype != (link.ET_IPV6 if nxt == n.IP_IPV6 else link.ET_IPV4):
                return False
        elif nxt != n.IP_NONE:
            return False
        if buf[h] & 0x0F == AYIYA_ID_INTEGER and sig - ident == 16:
            self.field(ident, F_IP6, sig)
        else:
            self.hide(ident, sig)
        self.hide(sig, o)
        if etype:
            self.l3(o, cap, etype, depth + 1)
        else:
            self.zero(o, cap)
        return True

    def erspan(self, o: int, cap: int, depth: int, proto: int, gre_flags: int) -> None:
        """ERSPAN in GRE: type I (no GRE sequence number) is a bare Ethernet frame; type II's
        8-byte header (version, VLAN, CoS, encapsulation, truncation, session id, index kept;
        reserved zeroed) and type III's 12-byte header (those, timestamp, SGT, flags, hardware
        id kept; the platform-specific subheader zeroed) precede it. Walked only if the frame
        parses (docs/policy.md); otherwise zeroed."""
        buf = self.buf
        inner = o
        if proto == link.ET_ERSPAN and gre_flags & GRE_SEQUENCE:
            if o + 8 > cap or buf[o] >> 4 != ERSPAN2_VERSION:
                inner = -1
            else:
                inner = o + 8
        elif proto == link.ET_ERSPAN3:
            if o + 12 > cap or buf[o] >> 4 != ERSPAN3_VERSION or (buf[o + 10] >> 2) & 0x1F:
                inner = -1  # not version 3, or a frame type other than Ethernet
            else:
                inner = o + 12 + (8 if buf[o + 11] & 1 else 0)
        if inner < 0 or not self.plausible_ether(inner, cap):
            self.zero(o, cap)
            return
        if inner == o + 8 and proto == link.ET_ERSPAN:
            self.zero(o + 4, o + 5)  # reserved (its last 4 bits share a byte with the index)
            self.w.trim.append((o + 5, 0x0F))
        elif inner == o + 20:
            self.zero(o + 12, inner)
        self.ether(inner, cap, depth + 1)
