"""Rewrite every address in a frame, in place, keeping all checksums consistent.

The walk (``proto/walk.py``, shared with the masker) lists the identifiers of
a frame at every level of encapsulation, in ARP, IP options and extension
headers, ICMP/ICMPv6 errors (the quoted packet), redirects, NDP, MLDv2 and
IGMPv3; this consumer replaces each by its pseudonym (``AddressRewriter``),
and the labels of DNS names by theirs (``anon/names.py``: same length, so no
length byte or pointer moves).

Checksums are kept consistent by RFC 1624 incremental updates, inner regions
first: each region's checksum changes by what changed inside it (its word
sum after the rewrite minus before, nested checksums included) plus what
changed in its pseudo header. IPv4 header checksums are recomputed. A
deliberately bad L4 checksum stays bad by the same amount.
"""

from __future__ import annotations

from typing import Protocol

from pktmask.anon.addresses import AddressMap, AddressRewriter, MacMap
from pktmask.capture.packet import zeros
from pktmask.proto.checksum import adjust, checksum, ones_sum, word, write_fcs
from pktmask.proto.walk import F_IP4, F_MAC, FIELD_SIZE, IP4_HEADER, L4_QUOTED, Walk, walk


class NameMap(Protocol):
    """What the rewriter asks of a name mapper (``names.NameMapper``)."""

    mapped: int

    def map_label(self, label: bytes, parent: bytes) -> bytes: ...

    def reset_counts(self) -> None: ...


class Rewriter(AddressRewriter):
    """Maps addresses (and, with a name mapper, DNS names) in frames with one key; counts
    what it changed.

    ``frame(buf, linktype)`` rewrites a bytearray in place and returns True if
    any byte changed; the fast path and the address replacement come from
    ``AddressRewriter``. Without ``names`` labels stay as they are.
    ``names_mapped`` counts the distinct names (a label under its parent)
    replaced by a pseudonym since ``reset_counts()``.
    """

    def __init__(self, mapper: AddressMap, macs: MacMap | None, names: NameMap | None = None):
        super().__init__(mapper, macs)
        self.names = names

    @property
    def names_mapped(self) -> int:
        return self.names.mapped if self.names is not None else 0

    def reset_counts(self) -> None:
        super().reset_counts()
        if self.names is not None:
            self.names.reset_counts()

    def frame(self, buf: bytearray, linktype: int) -> bool:
        """Rewrite the addresses of one frame in place; returns True if it changed."""
        self.changed = False
        self.apply(buf, walk(buf, linktype))
        return self.changed

    def apply(self, buf: bytearray, w: Walk, masked: bool = False) -> None:
        """Replace the identifiers ``w`` lists in ``buf`` and update the checksums around them.

        ``masked``: the masking stage processes this frame next with the same walk, and
        recomputes from scratch every checksum of a job it owns except quoted transport
        headers (``MaskingStage._general``); those updates are left to it. Updates are
        linear, so skipping an inner one leaves every outer update exact: each consumer's
        delta covers the bytes it changed.
        """
        if not w.fields and not w.wipe and not w.labels and not w.trim:
            return
        size = len(buf)
        if masked:
            jobs = [j for j in w.jobs if j.anon and (not j.mask or j.kind == L4_QUOTED)]
        else:
            jobs = [j for j in w.jobs if j.anon]
        headers: list[bytes] = []
        sums: list[int] = []
        for j in jobs:
            if j.kind == IP4_HEADER:
                headers.append(bytes(buf[j.start : j.end]))
                sums.append(0)
            else:
                headers.append(b"")
                sums.append(ones_sum(buf[j.start : min(j.end, size)]) + j.pseudo_sum(buf))
        for off, kind, avail in w.fields:
            if kind == F_MAC:
                self._mac(buf, off)
            elif avail < FIELD_SIZE[kind]:
                self._prefix(buf, off, avail, FIELD_SIZE[kind])
            elif kind == F_IP4:
                self._a4(buf, off)
            else:
                self._a6(buf, off)
        names = self.names
        if names is not None:
            for off, length, parent in w.labels:
                label = bytes(buf[off : off + length])
                alias = names.map_label(label, parent)
                if alias != label:
                    buf[off : off + length] = alias
                    self.changed = True
        for at, keep in w.trim:  # bits past an ECS prefix
            if at < size and buf[at] & ~keep:
                buf[at] &= keep
                self.changed = True
        for at, src, kind in w.derived:  # a solicited-node address follows its mapped target
            if kind == F_MAC and self.macs is None:
                continue  # MACs kept as they are
            low = bytes(buf[src : src + 3])
            if buf[at : at + 3] != low:
                buf[at : at + 3] = low
                self.changed = True
        for a, b in w.wipe:
            if b > size:
                b = size
            if a < b and any(buf[a:b]):
                buf[a:b] = zeros(b - a)
                self.changed = True
        if not self.changed:
            return
        for i in range(len(jobs) - 1, -1, -1):  # inner regions first: outer ones include them
            j = jobs[i]
            at = j.at
            if at + 2 > size:
                continue
            if j.kind == IP4_HEADER:
                if buf[j.start : j.end] != headers[i]:
                    buf[at : at + 2] = b"\0\0"
                    buf[at : at + 2] = word(checksum(buf[j.start : j.end]))
                continue
            old = (buf[at] << 8) | buf[at + 1]
            if j.zero_ok and old == 0:
                continue  # a zero UDP checksum over IPv4 means "none": it stays
            delta = (ones_sum(buf[j.start : min(j.end, size)]) + j.pseudo_sum(buf) - sums[i]) % 0xFFFF
            if delta:
                buf[at : at + 2] = word(adjust(old, delta, j.proto == 17 or j.proto == 136))
        write_fcs(buf, w.fcs)  # an 802.11 FCS covers everything above: last
