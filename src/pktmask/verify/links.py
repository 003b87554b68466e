"""The audit's own dissector, serial and other non-Ethernet link layers: PPP (9, 50, 166, 204),
PPPoE without Ethernet (51), Cisco HDLC (104, 205, and in 50) with SLARP, Frame Relay (107,
206), SLIP (8), Solaris IPNET (226) and Linux NFLOG (239).

A mixin of ``fields.Walker`` following docs/policy.md, "Link layer", written apart from the
sanitizer's walkers (tests/unit/test_verify_independence.py): framing fields are KEEP, link
addresses that are MACs are MAC, every other header byte OTHER (zero or changed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from pktmask.verify.labels import ADDR4, KEEP, MAC, Spans

# Link types (tcpdump.org/linktypes.html).
SLIP: Final = 8
PPP: Final = 9
PPP_SERIAL: Final = 50
PPPOE: Final = 51
CISCO_HDLC: Final = 104
FRAME_RELAY: Final = 107
PPP_PPPD: Final = 166
PPP_DIR: Final = 204
CISCO_HDLC_DIR: Final = 205
FRAME_RELAY_DIR: Final = 206
IPNET: Final = 226
NFLOG: Final = 239
LINK_TYPES: Final = frozenset({SLIP, PPP, PPP_SERIAL, PPPOE, CISCO_HDLC, FRAME_RELAY, PPP_PPPD, PPP_DIR,
                               CISCO_HDLC_DIR, FRAME_RELAY_DIR, IPNET, NFLOG})

HDLC_ADDRESS: Final = frozenset({0x0F, 0x8F})
SLARP_TYPE: Final = 0x8035
UI: Final = 0x03
NLPID_IPV4, NLPID_IPV6, NLPID_SNAP = 0xCC, 0x8E, 0x80
BRIDGED_OUI: Final = b"\x00\x80\xc2"
BRIDGED_ETHERNET: Final = frozenset({0x0001, 0x0007})
# NFLOG attribute types (Linux nfnetlink_log.h).
NFLOG_HDR, NFLOG_HWADDR, NFLOG_PAYLOAD, NFLOG_HWTYPE, NFLOG_HWHEADER, NFLOG_HWLEN = 1, 8, 9, 15, 16, 17


class Links:
    """The link types of LINK_TYPES (mixin of ``fields.Walker``)."""

    buf: bytes
    n: int
    s: Spans

    if TYPE_CHECKING:  # defined by the other parts of fields.Walker
        def other(self, a: int, b: int, name: str) -> None: ...

        def ether(self, o: int, end: int) -> None: ...

        def ethertype(self, t: int, o: int, end: int) -> None: ...

        def ppp(self, o: int, end: int) -> None: ...

        def ipv4(self, o: int, limit: int, quoted: bool = False) -> None: ...

        def ipv6(self, o: int, limit: int, quoted: bool = False) -> None: ...

    def link(self, linktype: int) -> None:
        """Label a frame of one of LINK_TYPES."""
        buf, n, add = self.buf, self.n, self.s.add
        o = 0
        if linktype in (PPP_DIR, CISCO_HDLC_DIR, FRAME_RELAY_DIR):
            add(0, 1, KEEP, "")  # direction
            o = 1
            linktype = {PPP_DIR: PPP, CISCO_HDLC_DIR: CISCO_HDLC, FRAME_RELAY_DIR: FRAME_RELAY}[linktype]
        if o >= n:
            return
        if linktype == PPP or (linktype == PPP_SERIAL and buf[0] not in HDLC_ADDRESS):
            self.ppp(o, n)
        elif linktype in (CISCO_HDLC, PPP_SERIAL):
            self.hdlc(o)
        elif linktype == PPP_PPPD:
            add(0, 1, KEEP, "")
            if n > 1 and buf[1] == UI:
                add(1, 2, KEEP, "")
                self.ppp(2, n)
            else:
                self.other(1, n, "ppp (pppd) frame")
        elif linktype == FRAME_RELAY:
            self.frame_relay(o)
        elif linktype == PPPOE:
            self.pppoe_bare()
        elif linktype == SLIP:
            add(0, 2, KEEP, "")
            self.other(2, 16, "slip.compressed header")
            if n > 16:
                (self.ipv4 if buf[16] >> 4 == 4 else self.ipv6)(16, n)
        elif linktype == IPNET:
            add(0, 24, KEEP, "")
            if n > 24 and buf[1] in (2, 26):
                (self.ipv4 if buf[1] == 2 else self.ipv6)(24, n)
        elif linktype == NFLOG:
            self.nflog()

    def hdlc(self, o: int) -> None:
        buf, n, add = self.buf, self.n, self.s.add
        if o + 4 > n or buf[o] not in HDLC_ADDRESS or buf[o + 1]:
            self.other(o, n, "cisco hdlc header")
            return
        add(o, o + 4, KEEP, "")
        t = buf[o + 2] << 8 | buf[o + 3]
        if t != SLARP_TYPE:
            self.ethertype(t, o + 4, n)
            return
        q = o + 4
        code = int.from_bytes(buf[q:q + 4], "big") if q + 4 <= n else -1
        add(q, q + 4, KEEP, "")
        if code in (0, 1):
            add(q + 4, q + 8, ADDR4, "slarp.address")
            add(q + 8, q + 12, KEEP, "")  # mask
            self.other(q + 12, n, "slarp trailing")
        elif code == 2:
            add(q + 4, q + 14, KEEP, "")  # sequence numbers, reliability
            self.other(q + 14, n, "slarp trailing")
        else:
            self.other(q + 4, n, "slarp data")

    def frame_relay(self, o: int) -> None:
        buf, n, add = self.buf, self.n, self.s.add
        q = o
        while q < n and not buf[q] & 1:
            q += 1
        q += 1  # past the byte holding the EA bit
        if q > n or q - o > 4 or q - o < 2:
            self.other(o, n, "fr.address")
            return
        add(o, q, KEEP, "")  # DLCI and flags
        if q >= n:
            return
        if buf[q] != UI:
            add(q, q + 2, KEEP, "")
            self.ethertype(buf[q] << 8 | buf[q + 1] if q + 2 <= n else 0, q + 2, n)
            return
        add(q, q + 1, KEEP, "")
        q += 1
        if q < n and buf[q] == 0:
            add(q, q + 1, KEEP, "")  # pad
            q += 1
        if q >= n:
            return
        add(q, q + 1, KEEP, "")
        nlpid = buf[q]
        if nlpid == NLPID_IPV4:
            self.ipv4(q + 1, n)
        elif nlpid == NLPID_IPV6:
            self.ipv6(q + 1, n)
        elif nlpid == NLPID_SNAP and q + 6 <= n:
            add(q + 1, q + 6, KEEP, "")
            oui, pid = buf[q + 1:q + 4], buf[q + 4] << 8 | buf[q + 5]
            if oui == b"\0\0\0":
                self.ethertype(pid, q + 6, n)
            elif oui == BRIDGED_OUI and pid in BRIDGED_ETHERNET:
                self.ether(q + 6, n)
            else:
                self.other(q + 6, n, "fr.snap payload")
        else:
            self.other(q + 1, n, f"fr nlpid 0x{nlpid:02x} payload")

    def pppoe_bare(self) -> None:
        buf, n = self.buf, self.n
        self.s.add(0, 6, KEEP, "")
        if n < 6 or buf[1]:
            self.other(6, n, "pppoe discovery tags")
            return
        size = buf[4] << 8 | buf[5]
        stop = min(n, 6 + size) if size else n
        self.ppp(6, stop)
        self.other(stop, n, "pppoe trailing")

    def nflog(self) -> None:
        """NFLOG: its header, each attribute's length and type; the packet header, hardware
        type/length kept; hardware address and an Ethernet hardware header's MACs; the payload."""
        buf, n, add = self.buf, self.n, self.s.add
        add(0, 4, KEEP, "")
        if n < 4:
            return
        family = buf[0]
        hw_protocol = 0
        q = q_end = 4
        while q + 4 <= n:
            order: str = "little"
            size = int.from_bytes(buf[q:q + 2], "little")
            if size < 4 or size > n - q:
                order = "big"
                size = int.from_bytes(buf[q:q + 2], "big")
                if size < 4 or size > n - q:
                    if NFLOG_PAYLOAD in (buf[q + 2] | buf[q + 3] << 8, buf[q + 2] << 8 | buf[q + 3]):
                        add(q, q + 4, KEEP, "")  # the payload, cut short by the snap length
                        self.nflog_payload(family, hw_protocol, q + 4, n)
                        return
                    break
            kind = (buf[q + 2] | buf[q + 3] << 8) if order == "little" else (buf[q + 2] << 8 | buf[q + 3])
            kind &= 0x7FFF
            add(q, q + 4, KEEP, "")
            d, e = q + 4, q + size
            if kind == NFLOG_PAYLOAD:
                self.nflog_payload(family, hw_protocol, d, e)
            elif kind == NFLOG_HDR and size == 8:
                add(d, d + 3, KEEP, "")
                hw_protocol = buf[d] << 8 | buf[d + 1]
                self.other(d + 3, e, "nflog.packet header pad")
            elif kind in (NFLOG_HWTYPE, NFLOG_HWLEN) and size == 6:
                add(d, e, KEEP, "")
            elif kind == NFLOG_HWADDR and size == 16 and buf[d:d + 2] == b"\0\x06":
                add(d, d + 2, KEEP, "")
                self.other(d + 2, d + 4, "nflog.hwaddr pad")
                add(d + 4, d + 10, MAC, "nflog.hwaddr")
                self.other(d + 10, e, "nflog.hwaddr rest")
            elif kind == NFLOG_HWHEADER and size == 18:
                add(d, d + 6, MAC, "nflog.hwheader dst")
                add(d + 6, d + 12, MAC, "nflog.hwheader src")
                add(d + 12, e, KEEP, "")
            else:
                self.other(d, e, f"nflog attribute {kind}")
            q_end = q + ((size + 3) & ~3)
            self.other(e, min(q_end, n), "nflog padding")
            q = q_end
        self.other(q, n, "nflog trailing")

    def nflog_payload(self, family: int, hw_protocol: int, d: int, e: int) -> None:
        if family == 2:
            self.ipv4(d, e)
        elif family == 10:
            self.ipv6(d, e)
        else:
            self.ethertype(hw_protocol, d, e)
