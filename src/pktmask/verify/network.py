"""The audit's own dissector, network layers: IPv4 (options) and IPv6 (extension headers).

A mixin of ``fields.Walker`` (see there), following docs/policy.md: addresses are pseudonym
fields (IPv6 groups derived from a unicast address labelled apart), options and extension
headers keep their type and length, their data only where the policy models it; a header
that is not understood (wrong version nibble, IHL below 5) is kept as its first byte only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from pktmask.verify.labels import ADDR4, ADDR6, KEEP, ZERO, Spans, group_kind

# IPv6 extension headers.
HOP_BY_HOP, ROUTING, FRAGMENT, ESP, AH, NO_NEXT, DEST_OPTS = 0, 43, 44, 50, 51, 59, 60
OPAQUE_EXT: Final = frozenset({135, 139, 140, 253, 254})  # mobility, HIP, Shim6, experimental
PAD1, PADN, ROUTER_ALERT6, JUMBO, HOME_ADDRESS = 0, 1, 5, 0xC2, 201
# IPv4 options.
EOL, NOP, RECORD_ROUTE, LSRR, SSRR, TIMESTAMP, ROUTER_ALERT4 = 0, 1, 7, 131, 137, 68, 148


class Network:
    """IPv4 and IPv6 labelling (mixin of ``fields.Walker``)."""

    buf: bytes
    n: int
    s: Spans
    last_fragment: bytes | None
    fragments: list[tuple[bytes, int, int, int, bool, int]]

    if TYPE_CHECKING:  # defined by the other parts of fields.Walker
        def other(self, a: int, b: int, name: str) -> None: ...

        def l4(self, proto: int, p: int, end: int, addrs, frag: bytes | None, quoted: bool) -> None: ...

    def fragment(self, key: bytes, offset: int, a: int, b: int, more: bool, proto: int) -> None:
        """Note a fragment outside ICMP quotes: the datagram's key, the offset of its data in the
        datagram, where that data lies in the frame (``[a, b)``, the IP header's end; past the
        captured bytes if cut short), whether more follow, the protocol its header names."""
        self.fragments.append((key, offset, a, b, more, proto))

    # ---- IPv4 --------------------------------------------------------------------------
    def ipv4(self, o: int, limit: int, quoted: bool = False) -> None:
        buf, n, add = self.buf, self.n, self.s.add
        if o >= n:
            return
        v = buf[o]
        if v >> 4 != 4 or v & 15 < 5:
            add(o, o + 1, KEEP, "")
            self.other(o + 1, limit, "ipv4 (not understood)")
            return
        hl = (v & 15) * 4
        # A header cut short (docs/policy.md, "Headers cut short"): its captured fields as
        # far as captured (Spans.add), the header checksum zero (it covers bytes not held).
        cut = o + hl > n
        add(o, o + 10, KEEP, "")
        add(o + 10, o + 12, ZERO if cut else KEEP, "ipv4.checksum (header cut short)")
        add(o + 12, o + 16, ADDR4, "ipv4.src")
        add(o + 16, o + 20, ADDR4, "ipv4.dst")
        if o + 20 > n:
            return
        total = buf[o + 2] << 8 | buf[o + 3]
        self.ipv4_options(o + 20, o + hl)
        end = limit if quoted else o + max(total, hl)
        if end > limit and limit < n:
            end = limit  # an inner datagram longer than its tunnel
        fl = buf[o + 6] << 8 | buf[o + 7]
        proto = buf[o + 9]
        key = bytes(buf[o + 12:o + 20]) + bytes([proto]) + bytes(buf[o + 4:o + 6])
        if fl & 0x1FFF:
            self.other(o + hl, end, "ipv4 fragment data")
            if not quoted:
                self.fragment(key, (fl & 0x1FFF) * 8, o + hl, end, bool(fl & 0x2000), proto)
                if not fl & 0x2000:
                    self.last_fragment = key
        else:
            if fl & 0x2000 and not quoted:
                self.fragment(key, 0, o + hl, end, True, proto)
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
        if buf[o] >> 4 != 6:
            add(o, o + 1, KEEP, "")
            self.other(o + 1, limit, "ipv6 (not understood)")
            return
        # Cut short: the fixed fields and the addresses as far as captured (Spans.add).
        add(o, o + 8, KEEP, "")
        add(o + 8, o + 24, group_kind(buf[o + 8:o + 24]), "ipv6.src")
        add(o + 24, o + 40, group_kind(buf[o + 24:o + 40]), "ipv6.dst")
        if o + 40 > n:
            return
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
                    if not quoted:
                        self.fragment(key, fo & 0xFFF8, p + 8, end, bool(fo & 1), buf[p])
                        if not fo & 1:
                            self.last_fragment = key
                    return
                frag = key if fo & 1 else None
                if frag is not None and not quoted:
                    self.fragment(key, 0, p + 8, end, True, buf[p])
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
