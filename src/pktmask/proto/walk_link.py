"""The walker's serial and other non-Ethernet link layers: PPP, Cisco HDLC, Frame Relay, SLIP,
PPPoE without Ethernet, Solaris IPNET and Linux NFLOG (``link.FRAMED``).

Part of the one encapsulation walker (walk.py). What is kept, mapped and zeroed is in
docs/policy.md, "Link layer": framing fields we understand (address, control, protocol) are
kept, link addresses are mapped where they are MACs, everything else in these headers is zeroed,
and a header cut short or malformed is zeroed from the first byte not accounted for.
"""

from __future__ import annotations

from typing import Final

from pktmask.proto import link
from pktmask.proto.walk_base import F_IP4, F_MAC, _from
from pktmask.proto.walk_ip import IpWalker

# Frame Relay (RFC 2427): the UI control byte, NLPIDs, and the SNAP OUIs / PIDs walked.
FR_UI: Final = 0x03
NLPID_PAD: Final = 0x00
NLPID_SNAP: Final = 0x80
NLPID_IP4: Final = 0xCC
NLPID_IP6: Final = 0x8E
OUI_ETHERTYPE: Final = b"\x00\x00\x00"  # the PID is an EtherType
OUI_BRIDGED: Final = b"\x00\x80\xc2"  # 802.1 bridged frames
PID_ETHER_FCS: Final = 0x0001
PID_ETHER: Final = 0x0007
# Cisco HDLC address bytes (unicast, broadcast); its control byte is 0.
CHDLC_ADDRESSES: Final = (0x0F, 0x8F)
SLARP_REPLY: Final = 1  # address and mask (request 0 too); 2 is a keepalive
SLIP_HEADER: Final = 16  # direction, then the first 15 bytes of the (compressed) header
IPNET_HEADER: Final = 24
IPNET_AF_INET: Final = 2
IPNET_AF_INET6: Final = 26  # Solaris
# NFLOG (Linux nfnetlink_log): address families and the TLV types walked.
NFLOG_AF_INET: Final = 2
NFLOG_AF_INET6: Final = 10
NFULA_PACKET_HDR: Final = 1  # hardware protocol (EtherType), hook, pad
NFULA_HWADDR: Final = 8  # address length, pad, 8-byte address
NFULA_PAYLOAD: Final = 9
NFULA_HWTYPE: Final = 15
NFULA_HWHEADER: Final = 16
NFULA_HWLEN: Final = 17


class LinkWalker(IpWalker):
    """The link types of ``link.FRAMED``; walk.py dispatches them here."""

    __slots__ = ()

    def framed(self, lt: int, size: int) -> None:
        """Walk a frame of one of the ``link.FRAMED`` link types."""
        buf = self.buf
        o = 0
        if lt == link.LT_PPP_WITH_DIR or lt == link.LT_C_HDLC_WITH_DIR or lt == link.LT_FRELAY_WITH_DIR:
            o = 1  # the direction byte is kept
            lt = (link.LT_PPP if lt == link.LT_PPP_WITH_DIR
                  else link.LT_C_HDLC if lt == link.LT_C_HDLC_WITH_DIR else link.LT_FRELAY)
        if lt == link.LT_PPP:
            self.ppp(o, size, size, 0)
        elif lt == link.LT_PPP_HDLC:
            if size and buf[0] in CHDLC_ADDRESSES:
                self.chdlc(0, size)
            else:
                self.ppp(0, size, size, 0)
        elif lt == link.LT_PPP_PPPD:
            # Direction byte where PPP's 0xFF address is, then the control byte.
            if size >= 2 and buf[1] == FR_UI:
                self.ppp(2, size, size, 0)
            else:
                self.zero(1, size)
        elif lt == link.LT_C_HDLC:
            self.chdlc(o, size)
        elif lt == link.LT_FRELAY:
            self.frelay(o, size)
        elif lt == link.LT_PPP_ETHER:
            self.pppoe(size)
        elif lt == link.LT_SLIP:
            self.slip(size)
        elif lt == link.LT_IPNET:
            self.ipnet(size)
        elif lt == link.LT_NFLOG:
            self.nflog(size)
        else:
            self.zero(0, size)

    def chdlc(self, o: int, end: int) -> None:
        """Cisco HDLC: address (0x0F/0x8F), control (0), EtherType; SLARP's address mapped."""
        buf = self.buf
        if o + 4 > end or buf[o] not in CHDLC_ADDRESSES or buf[o + 1]:
            self.zero(o, end)
            return
        etype = _from(buf[o + 2 : o + 4], "big")
        if etype == link.ET_SLARP:
            self.slarp(o + 4, end)
        else:
            self.l3(o + 4, end, etype, 0)

    def slarp(self, o: int, end: int) -> None:
        """Cisco SLARP: the opcode; a request/reply's address mapped and mask kept; a
        keepalive's sequence numbers and reliability kept; anything after, zeroed."""
        buf = self.buf
        if o + 14 > end:
            self.hide(o, end)  # cut short: an address in part
            return
        code = _from(buf[o : o + 4], "big")
        if code <= SLARP_REPLY:
            self.field(o + 4, F_IP4, end)
            self.zero(o + 12, end)  # unused
        elif code == SLARP_REPLY + 1:
            self.zero(o + 14, end)
        else:
            self.hide(o + 4, end)

    def frelay(self, o: int, end: int) -> None:
        """Frame Relay: the Q.922 address (2-4 bytes, DLCI kept), then RFC 2427's UI control,
        optional pad and NLPID (IPv4, IPv6, SNAP: EtherType or bridged Ethernet), or Cisco's
        EtherType; Q.933 signalling and other NLPIDs zeroed."""
        buf = self.buf
        a = o
        while a < end and a < o + 4 and not buf[a] & 1:
            a += 1
        if a == o or a == o + 4 or a >= end:  # the EA bit must end an address of 2 to 4 bytes
            self.zero(o, end)
            return
        a += 1
        if a >= end:
            return
        if buf[a] != FR_UI:  # Cisco encapsulation: an EtherType
            if a + 2 <= end:
                self.l3(a + 2, end, _from(buf[a : a + 2], "big"), 0)
            else:
                self.zero(a, end)
            return
        p = a + 1
        if p < end and buf[p] == NLPID_PAD:
            p += 1
        if p >= end:
            self.zero(a + 1, end)
            return
        nlpid = buf[p]
        if nlpid == NLPID_IP4:
            self.l3(p + 1, end, link.ET_IPV4, 0)
        elif nlpid == NLPID_IP6:
            self.l3(p + 1, end, link.ET_IPV6, 0)
        elif nlpid == NLPID_SNAP and p + 6 <= end:
            oui, pid = bytes(buf[p + 1 : p + 4]), _from(buf[p + 4 : p + 6], "big")
            if oui == OUI_ETHERTYPE:
                self.l3(p + 6, end, pid, 0)
            elif oui == OUI_BRIDGED and (pid == PID_ETHER or pid == PID_ETHER_FCS):
                self.ether(p + 6, end, 1)
            else:
                self.zero(p + 6, end)
        else:
            self.zero(p + 1, end)

    def pppoe(self, end: int) -> None:
        """PPPoE without Ethernet (link type 51): a session's PPP walked; discovery tags zeroed."""
        buf = self.buf
        if end < 6:
            self.zero(0, end)
            return
        if buf[1]:  # discovery (PADI, PADO...): tags carry names and cookies
            self.zero(6, end)
            return
        plen = _from(buf[4:6], "big")
        self.ppp(6, min(end, 6 + plen) if plen else end, end, 0)

    def slip(self, end: int) -> None:
        """BSD SLIP: the direction and the compression-type byte kept; the other 14 bytes of
        the pseudo header (the start of the packet's header, its source address in part) hidden;
        then the IP packet."""
        if end < SLIP_HEADER:
            self.hide(min(2, end), end)
            return
        self.hide(2, SLIP_HEADER)
        self.l3(SLIP_HEADER, end, link.ip_version_ethertype(self.buf, SLIP_HEADER), 0)

    def ipnet(self, end: int) -> None:
        """Solaris IPNET: the 24-byte header kept (version, family, type, length, interface and
        zone ids), the packet walked by its family."""
        if end < IPNET_HEADER:
            self.zero(0, end)
            return
        fam = self.buf[1]
        etype = link.ET_IPV4 if fam == IPNET_AF_INET else link.ET_IPV6 if fam == IPNET_AF_INET6 else 0
        self.l3(IPNET_HEADER, end, etype, 0)

    def nflog(self, end: int) -> None:
        """Linux NFLOG: family, version, resource id kept; then TLVs (length and type in the
        host's byte order, padded to 4): each TLV's length and type kept, the packet header,
        hardware type and length kept, a hardware address or an Ethernet hardware header's
        MACs mapped, the payload walked by the family; every other TLV's data (prefix, uid,
        gid, marks, timestamps, interfaces, conntrack) hidden."""
        buf = self.buf
        if end < 4:
            self.zero(0, end)
            return
        fam = buf[0]
        etype = link.ET_IPV4 if fam == NFLOG_AF_INET else link.ET_IPV6 if fam == NFLOG_AF_INET6 else 0
        o = 4
        while o + 4 <= end:
            size = _from(buf[o : o + 2], "little")
            if 4 <= size <= end - o:
                kind = _from(buf[o + 2 : o + 4], "little") & 0x7FFF
            else:
                size = _from(buf[o : o + 2], "big")
                if not 4 <= size <= end - o:
                    # The payload cut short by the snap length (it comes last): walked as captured.
                    if size > end - o and (_from(buf[o + 2 : o + 4], "big") & 0x7FFF == NFULA_PAYLOAD
                                           or _from(buf[o + 2 : o + 4], "little") & 0x7FFF == NFULA_PAYLOAD):
                        self.l3(o + 4, end, etype, 0)
                        return
                    break
                kind = _from(buf[o + 2 : o + 4], "big") & 0x7FFF
            d, stop = o + 4, o + size
            if kind == NFULA_PAYLOAD:
                self.l3(d, stop, etype, 0)
            elif kind == NFULA_PACKET_HDR and size == 8:
                self.zero(d + 3, stop)  # pad
                if not etype:
                    etype = _from(buf[d : d + 2], "big")
            elif (kind == NFULA_HWTYPE or kind == NFULA_HWLEN) and size == 6:
                pass
            elif kind == NFULA_HWADDR and size == 16 and _from(buf[d : d + 2], "big") == 6:
                self.zero(d + 2, d + 4)
                self.field(d + 4, F_MAC, stop)
                self.hide(d + 10, stop)
            elif kind == NFULA_HWHEADER and size == 18:  # 14 bytes: an Ethernet header
                self.field(d, F_MAC, stop)
                self.field(d + 6, F_MAC, stop)
            else:
                self.hide(d, stop)
            pad = o + ((size + 3) & ~3)
            self.zero(stop, pad if pad < end else end)
            o = pad
        self.hide(o, end)
