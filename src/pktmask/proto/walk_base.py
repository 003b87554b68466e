"""The walk's result (``Walk``: fields, zero ranges, checksum jobs, the TCP segment) and the
walker's state and recording helpers; ``walk.py`` says what the walk is and who consumes it.

The walker is one class split by layer over six modules: ``WalkerBase`` (here),
``TunnelWalker`` (walk_tunnel.py: GTP-U, Geneve, Teredo, AYIYA, ERSPAN),
``TransportWalker`` (walk_transport.py: TCP/UDP/ICMP/IGMP/GRE), ``IpWalker``
(walk_ip.py: IPv4, IPv6 and their options), ``LinkWalker`` (walk_link.py: serial and
other non-Ethernet framings) and ``_Walker`` (walk.py: link layers and guesses). They call each other's layers through the stubs below.
"""

from __future__ import annotations

from typing import Final

from pktmask.proto.checksum import word_sum

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

    __slots__ = ("fields", "zero", "wipe", "derived", "jobs", "tcp", "last_fragment", "fragment", "labels", "trim",
                 "dns", "fcs")

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
        # For a fragment of a UDP datagram (the first one: UDP right after the IP header or the
        # fragment header): (datagram key, where this fragment's bytes of the datagram start in
        # the frame, where the IP header says they end, their offset in the datagram, more
        # fragments follow). Its payload is NOT in ``zero``: the masker zeroes it except what
        # the fragment's record keeps (mask/codec.py ``has_fragment_record``; the first
        # fragment's UDP header is kept). At most one per frame.
        self.fragment: tuple[bytes, int, int, int, bool] | None = None
        self.labels: list[tuple[int, int, bytes]] = []  # DNS name labels: (offset, length, parent)
        self.trim: list[tuple[int, int]] = []  # (offset, mask of the bits kept)
        self.dns = 0  # DNS messages walked (their header kept)
        # An 802.11 FCS to recompute last over the sanitized bytes: (region start, start and
        # end of a gap the FCS does not cover (radiotap data padding), FCS offset).
        self.fcs: tuple[int, int, int, int] | None = None


class WalkerBase:
    """The walker's state and what it records into its ``Walk``."""

    __slots__ = ("buf", "w", "hidden", "mac_dst", "payloads")

    def __init__(self, buf, w: Walk, payloads: bool = True):
        self.buf = buf
        self.w = w
        # False for the masking pre-pass, which needs only the structure (checksum jobs,
        # fragments, the TCP segment): application messages (DNS) are not parsed then.
        self.payloads = payloads
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

    def piece(self, key: bytes, start: int, end: int, offset: int, more: bool) -> bool:
        """A fragment of a UDP datagram (``Walk.fragment``): recorded unless it is inside a region
        the masker zeroes whole or the frame already has one. Returns whether it was recorded
        (if not, the caller zeroes the fragment's payload itself)."""
        w = self.w
        if self.hidden or w.fragment is not None:
            return False
        w.fragment = (key, start, end, offset, more)
        return True

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

    # ---- layers the subclasses define, called across them ------------------------------
    def ether(self, off: int, end: int, depth: int) -> None:
        raise NotImplementedError

    def l3(self, off: int, end: int, etype: int, depth: int) -> None:
        raise NotImplementedError

    def ip4(self, off: int, end: int, depth: int, quoted: bool) -> None:
        raise NotImplementedError

    def ip6(self, off: int, end: int, depth: int, quoted: bool) -> None:
        raise NotImplementedError

    def plausible_ether(self, off: int, end: int) -> bool:
        raise NotImplementedError

    def plausible_ip4(self, off: int, end: int) -> bool:
        raise NotImplementedError

    def plausible_ip6(self, off: int, end: int) -> bool:
        raise NotImplementedError

    def ppp(self, off: int, end: int, frame_end: int, depth: int) -> None:
        raise NotImplementedError
