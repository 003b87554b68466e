"""The audit's own dissector, tunnels: GTP-U (UDP 2152), Geneve (6081), Teredo (3544), AYIYA
(5072) and ERSPAN types I, II and III in GRE.

A mixin of ``fields.Walker`` following docs/policy.md, "Tunnels", written apart from the
sanitizer's walkers. The audit walks a tunnel whenever its header has the right shape, even
where the sanitizer (stricter: the carried packet must parse) zeroes the payload: a zeroed
field always passes, a kept one the audit did not expect would not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from pktmask.verify.labels import ADDR6, KEEP, Spans

GTPU_PORT: Final = 2152
GENEVE_PORT: Final = 6081
TEREDO_PORT: Final = 3544
AYIYA_PORT: Final = 5072
ERSPAN_TYPES: Final = frozenset({0x88BE, 0x22EB})


class Tunnels:
    """UDP and GRE tunnels (mixin of ``fields.Walker``)."""

    buf: bytes
    n: int
    s: Spans

    if TYPE_CHECKING:  # defined by the other parts of fields.Walker
        def other(self, a: int, b: int, name: str) -> None: ...

        def ether(self, o: int, end: int) -> None: ...

        def ethertype(self, t: int, o: int, end: int) -> None: ...

        def ipv4(self, o: int, limit: int, quoted: bool = False) -> None: ...

        def ipv6(self, o: int, limit: int, quoted: bool = False) -> None: ...

    def tunnel(self, h: int, end: int, sport: int, dport: int) -> bool:
        """Label the UDP payload at ``h`` as a tunnel if its ports and header say so."""
        ports = (sport, dport)
        if GTPU_PORT in ports:
            return self.gtp(h, end)
        if dport == GENEVE_PORT:
            return self.geneve(h, end)
        if TEREDO_PORT in ports:
            return self.teredo(h, end)
        if AYIYA_PORT in ports:
            return self.ayiya(h, end)
        return False

    def carried(self, q: int, end: int) -> None:
        """An IP packet by its version nibble; anything else must be zero or changed."""
        v = self.buf[q] >> 4 if q < self.n else 0
        if v == 4:
            self.ipv4(q, end)
        elif v == 6:
            self.ipv6(q, end)
        else:
            self.other(q, end, "tunnel payload")

    def gtp(self, h: int, end: int) -> bool:
        buf, n, add = self.buf, self.n, self.s.add
        if h + 8 > n or buf[h] >> 4 != 3:  # version 1, protocol type GTP
            return False
        add(h, h + 8, KEEP, "")  # flags, message type, length, TEID
        q = h + 8
        if buf[h] & 7:
            add(q, q + 4, KEEP, "")  # sequence, N-PDU number, next extension type
            more = buf[q + 3] if q + 4 <= n else 0
            q += 4
            while more and q < n:
                size = buf[q] * 4
                if not size:
                    break
                add(q, q + 1, KEEP, "")
                self.other(q + 1, q + size - 1, "gtp.extension header")
                add(q + size - 1, q + size, KEEP, "")
                more = buf[q + size - 1] if q + size <= n else 0
                q += size
        if buf[h + 1] == 0xFF:
            self.carried(q, end)
        else:
            self.other(q, end, "gtp.information elements")
        return True

    def geneve(self, h: int, end: int) -> bool:
        buf, n, add = self.buf, self.n, self.s.add
        if h + 8 > n or buf[h] >> 6:
            return False
        t = buf[h + 2] << 8 | buf[h + 3]
        if t not in (0x6558, 0x0800, 0x86DD):
            return False
        add(h, h + 8, KEEP, "")  # version, option length, flags, protocol type, VNI
        inner = h + 8 + (buf[h] & 0x3F) * 4
        q = h + 8
        while q + 4 <= min(inner, n):
            size = 4 + (buf[q + 3] & 0x1F) * 4
            add(q, q + 4, KEEP, "")  # option class, type, length
            self.other(q + 4, min(q + size, inner), "geneve.option data")
            q += size
        self.other(q, inner, "geneve.options")
        if t == 0x6558:
            self.ether(inner, end)
        else:
            self.ethertype(t, inner, end)
        return True

    def teredo(self, h: int, end: int) -> bool:
        buf, n, add = self.buf, self.n, self.s.add
        q = h
        if q + 4 <= n and buf[q] == 0 and buf[q + 1] == 1:  # authentication indicator
            ids = buf[q + 2] + buf[q + 3]
            add(q, q + 4, KEEP, "")
            self.other(q + 4, q + 12 + ids, "teredo.authentication")
            add(q + 12 + ids, q + 13 + ids, KEEP, "")  # confirmation
            q += 13 + ids
        if q + 8 <= n and buf[q] == 0 and buf[q + 1] == 0:  # origin indication
            add(q, q + 4, KEEP, "")  # the obfuscated port is kept like a port
            self.other(q + 4, q + 8, "teredo.origin address")
            q += 8
        if q >= n or buf[q] >> 4 != 6:
            return False
        self.ipv6(q, end)
        return True

    def ayiya(self, h: int, end: int) -> bool:
        buf, n, add = self.buf, self.n, self.s.add
        if h + 8 > n:
            return False
        add(h, h + 8, KEEP, "")  # lengths, types, methods, opcode, next header, epoch time
        ident = h + 8
        sig = ident + (1 << (buf[h] >> 4))
        q = sig + (buf[h + 1] >> 4) * 4
        if buf[h] & 0x0F == 1 and sig - ident == 16:
            add(ident, sig, ADDR6, "ayiya.identity")
        else:
            self.other(ident, sig, "ayiya.identity")
        self.other(sig, q, "ayiya.signature")
        nxt = buf[h + 3]
        if nxt == 4:
            self.ipv4(q, end)
        elif nxt == 41:
            self.ipv6(q, end)
        else:
            self.other(q, end, "ayiya payload")
        return True

    def erspan(self, q: int, end: int, proto: int, sequenced: bool) -> None:
        """ERSPAN in GRE at ``q``: type I a bare frame, II and III with their headers."""
        buf, n, add = self.buf, self.n, self.s.add
        if proto == 0x88BE and not sequenced:
            self.ether(q, end)
            return
        if proto == 0x88BE:
            add(q, q + 4, KEEP, "")  # version, VLAN, CoS, encapsulation, truncated, session id
            self.other(q + 4, q + 5, "erspan.reserved")
            add(q + 5, q + 8, KEEP, "")  # (reserved bits and) index
            self.ether(q + 8, end)
            return
        add(q, q + 12, KEEP, "")  # as type II, timestamp, SGT, flags, hardware id
        inner = q + 12
        if q + 12 <= n and buf[q + 11] & 1:
            self.other(inner, inner + 8, "erspan.platform subheader")
            inner += 8
        self.ether(inner, end)
