"""Address replacement with keyed mappers and caches, and the fast path for the common frame shape.

Every method that replaces an address in place returns the change ("delta")
of the 16-bit word sum it caused, so enclosing checksums can be adjusted
incrementally (RFC 1624). For a frame of the common shape (see
``layout.fast_layout``) the whole rewrite is one lookup of the address pair
and one of the MAC pair: ``patch`` describes it (the masking stage applies it
while it rebuilds the frame), ``fast`` applies it with the checksums.
"""

from __future__ import annotations

from typing import Final, Protocol

from pktmask.anon.cryptopan import is_special_v4, is_special_v6
from pktmask.anon.multicast import SOLICITED_NODE_MAC, map_group
from pktmask.anon.teredo import PREFIX as TEREDO_PREFIX
from pktmask.anon.teredo import map_teredo
from pktmask.capture.packet import Layout, Patch
from pktmask.proto.checksum import adjust, word, word_sum


class AddressMap(Protocol):
    """What the rewriter asks of an address mapper (``cryptopan.AddressMapper``)."""

    def map_v4(self, addr: bytes) -> bytes: ...

    def map_v6(self, addr: bytes) -> bytes: ...


class MacMap(Protocol):
    """What the rewriter asks of a MAC mapper (``macs.MacMapper``)."""

    def map(self, mac: bytes) -> bytes: ...


CACHE_LIMIT: Final = 1 << 16

_from: Final = int.from_bytes


def _pair_delta(old: bytes, new: bytes) -> int:
    return word_sum(new) - word_sum(old)


def span_sum(buf, a: int, b: int) -> int:
    """Word-sum contribution of ``buf[a:b]`` to a checksum aligned at even offsets."""
    v = _from(buf[a:b], "big")
    if ((a & 1) + b - a) & 1:
        v <<= 8
    return v


def swap(delta: int) -> int:
    """A delta computed for even alignment, seen from a structure starting at an odd offset."""
    return (delta % 0xFFFF) * 256 % 0xFFFF


class AddressRewriter:
    """Maps addresses with one key, through caches, and counts what it changed.

    ``patch``/``fast`` rewrite a frame of the common shape in one go; the
    address methods replace one address in place and return the word-sum
    change (the walker, ``rewriter.Rewriter``, builds on them). ``distinct``
    counts non-special addresses (IPs and MACs) first seen since
    ``reset_counts()`` (exact up to CACHE_LIMIT).
    """

    def __init__(self, mapper: AddressMap, macs: MacMap | None):
        self.mapper = mapper
        self.macs = macs
        self._c4: dict[bytes, tuple[bytes, int]] = {}
        self._c6: dict[bytes, tuple[bytes, int]] = {}
        self._cm: dict[bytes, tuple[bytes, int]] = {}
        # Fast-path caches: a whole address pair (src+dst) or MAC pair -> (new bytes, delta).
        self._pairs: dict[bytes, tuple[bytes, int]] = {}
        self._mpairs: dict[bytes, bytes] = {}
        self.distinct = 0
        self.changed = False

    def reset_counts(self) -> None:
        """Start counting distinct addresses afresh (per file)."""
        self._c4.clear()
        self._c6.clear()
        self._cm.clear()
        self._pairs.clear()
        self._mpairs.clear()
        self.distinct = 0

    # ---- fast path -----------------------------------------------------------
    def patch(self, data: bytes, l3: int, v6: bool) -> Patch | None:
        """The address rewrite of a frame of the common shape (see ``layout.fast_layout``),
        its IP header at ``l3``.

        Returns (new MAC pair, address offset, new address pair, pseudo-header
        delta), or None when nothing changes. Checksums are not touched.
        """
        if v6:
            a = l3 + 8
            alen = 32
        else:
            a = l3 + 12
            alen = 8
        key = data[a : a + alen]
        hit = self._pairs.get(key)
        if hit is None:
            tmp = bytearray(key)
            if v6:
                d = self._a6(tmp, 0) + self._a6(tmp, 16)
            else:
                d = self._a4(tmp, 0) + self._a4(tmp, 4)
            if len(self._pairs) >= CACHE_LIMIT:
                self._pairs.clear()
            hit = self._pairs[key] = (bytes(tmp), d)
        mk = data[:12]
        if self.macs is not None:
            new_macs = self._mpairs.get(mk)
            if new_macs is None:
                tmp = bytearray(mk)
                self._mac(tmp, 0)
                self._mac(tmp, 6)
                if len(self._mpairs) >= CACHE_LIMIT:
                    self._mpairs.clear()
                new_macs = self._mpairs[mk] = bytes(tmp)
        else:
            new_macs = mk
        if hit[0] == key and new_macs == mk:
            return None
        return new_macs, a, hit[0], hit[1]

    def fast(self, data: bytes, layout: Layout) -> bytes | None:
        """Rewrite a frame of the common shape quickly, checksums included.

        Returns the new data, or None if nothing changed — exactly the bytes
        the general walker would produce.
        """
        p = self.patch(data, layout[0], layout[4])
        if p is None:
            return None
        new_macs, a, new_addrs, pseudo = p
        l3, l4, proto, end, v6, _full, _ps = layout
        # Spliced from slices: a slice assignment into a bytearray costs about as much
        # as copying the whole frame. Sums are taken from the original header: the
        # new one differs by ``pseudo``.
        after = a + len(new_addrs)
        if not pseudo:  # the addresses' word sum is unchanged, and so are the checksums
            return b"".join((new_macs, data[12:a], new_addrs, data[after:]))
        if v6:
            head = b"".join((new_macs, data[12:a], new_addrs))
        else:
            # Recompute: the header's sum with its old checksum, minus that checksum.
            old = (data[l3 + 10] << 8) | data[l3 + 11]
            c = (old - _from(data[l3 : l3 + 20], "big") - pseudo) % 0xFFFF
            head = b"".join((new_macs, data[12 : l3 + 10], word(c), new_addrs))
        at = l4 + 16 if proto == 6 else l4 + 6
        if at + 2 <= end and (proto == 6 or v6 or data[at] or data[at + 1]):
            old = (data[at] << 8) | data[at + 1]
            c = adjust(old, pseudo, proto == 17)  # RFC 1624
            return b"".join((head, data[after:at], word(c), data[at + 2 :]))
        return head + data[after:]

    # ---- address replacement: each returns the word-sum delta ------------
    def _a4(self, buf, o: int) -> int:
        return self._addr(buf, o, 4, self._c4, self.mapper.map_v4, is_special_v4)

    def _a6(self, buf, o: int) -> int:
        return self._addr(buf, o, 16, self._c6, self._map_v6, is_special_v6)

    def _map_v6(self, addr: bytes) -> bytes:
        """Unicast addresses by the key's map (Teredo ones by the IPv4 map, ``teredo``);
        multicast ones keep their value except the unicast bits some of them embed
        (``multicast.map_group``)."""
        if addr[0] == 0xFF:
            return map_group(addr, self.mapper.map_v6)
        if addr[:4] == TEREDO_PREFIX:  # embeds IPv4 addresses: mapped as they are (anon/teredo.py)
            return map_teredo(addr, self.mapper.map_v4)
        return self.mapper.map_v6(addr)

    def _addr(self, buf, o: int, size: int, cache: dict, map_fn, special) -> int:
        """Map the ``size``-byte address at ``o`` in place (cached); returns the word-sum delta."""
        old = bytes(buf[o : o + size])
        hit = cache.get(old)
        if hit is None:
            if len(cache) >= CACHE_LIMIT:
                cache.clear()
            new = map_fn(old)
            if not special(old):
                self.distinct += 1
            hit = cache[old] = (new, _pair_delta(old, new))
        if hit[0] != old:
            buf[o : o + size] = hit[0]
            self.changed = True
        return hit[1]

    def _prefix(self, buf, o: int, n: int, size: int) -> int:
        """Map the first ``n`` bytes of an address cut short by the snap length.

        Crypto-PAn output bit i depends only on input bits 0..i, so the first
        n bytes of the pseudonym of any completion are the same: pad with
        zeros, map, keep n bytes. Returns the delta (alignment as usual).
        """
        if n == size:
            return self._a4(buf, o) if size == 4 else self._a6(buf, o)
        old = bytes(buf[o : o + n])
        full = bytearray(old + bytes(size - n))
        if size == 16 and n < 4 and old == TEREDO_PREFIX[:n]:
            full[3] = 1  # a completion that is not Teredo: the keyed map's first n bytes
        self._a4(full, 0) if size == 4 else self._a6(full, 0)
        new = bytes(full[:n])
        if new != old:
            buf[o : o + n] = new
            self.changed = True
        return span_sum(buf, o, o + n) - _from(old, "big") * (256 if ((o & 1) + n) & 1 else 1)

    def _mac(self, buf, o: int) -> int:
        if self.macs is None:
            return 0
        old = bytes(buf[o : o + 6])
        hit = self._cm.get(old)
        if hit is None:
            if len(self._cm) >= CACHE_LIMIT:
                self._cm.clear()
            if old[:3] == SOLICITED_NODE_MAC:  # carries the low 24 bits of an IPv6 address
                new = SOLICITED_NODE_MAC + b"\0\0\0"
            else:
                new = self.macs.map(old)
            if new != old:
                self.distinct += 1
            hit = self._cm[old] = (new, _pair_delta(old, new))
        if hit[0] != old:
            buf[o : o + 6] = hit[0]
            self.changed = True
        return hit[1]
