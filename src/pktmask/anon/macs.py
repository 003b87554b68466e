"""Keyed pseudonyms for MAC addresses.

A MAC is replaced by the first six bytes of HMAC-SHA256 under a subkey derived
from the capture key, with two bits fixed: the group (I/G) bit keeps its
original value, so unicast stays unicast and multicast stays multicast, and
the locally-administered (U/L) bit is set, so a pseudonym never carries a real
vendor OUI. The broadcast and all-zero addresses are kept.
"""

from __future__ import annotations

import hashlib
import hmac

KEY_SIZE = 32
DEFAULT_CACHE_SIZE = 65536
# Beyond this many distinct MACs the exact count would cost too much memory;
# the counter stops and reports itself as a lower bound.
DISTINCT_LIMIT = 1_000_000

# Domain-separation label: the MAC subkey must be independent of any other
# use of the same capture key (Crypto-PAn uses the key directly).
_SUBKEY_LABEL = b"pktmask mac v1"

_HMAC_BLOCK = 64  # SHA-256 block size
_BROADCAST = b"\xff" * 6
_ZERO = b"\x00" * 6
_GROUP_BIT = 0x01
_LOCAL_BIT = 0x02


class MacMapper:
    """Map 6-byte MAC addresses to stable keyed pseudonyms.

    Results are cached in a dict that is emptied once it holds ``cache_size``
    entries. Raises ValueError for a key that is not 32 bytes or a cache_size
    below 1.
    """

    __slots__ = (
        "_inner",
        "_outer",
        "_cache_size",
        "_cache",
        "_seen",
        "_distinct_limit",
        "distinct_exact",
    )

    def __init__(
        self,
        key: bytes,
        cache_size: int = DEFAULT_CACHE_SIZE,
        *,
        distinct_limit: int = DISTINCT_LIMIT,
    ) -> None:
        if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_SIZE:
            raise ValueError(f"MAC key must be {KEY_SIZE} bytes")
        if cache_size < 1:
            raise ValueError("cache_size must be at least 1")
        subkey = hmac.digest(bytes(key), _SUBKEY_LABEL, "sha256").ljust(_HMAC_BLOCK, b"\0")
        # HMAC-SHA256(subkey, mac) spelled out (RFC 2104) with both keyed
        # hash states precomputed: same digest as hmac.digest(), about three
        # times faster per MAC because nothing is re-keyed or looked up.
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in subkey))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in subkey))
        self._cache_size = cache_size
        self._cache: dict[bytes, bytes] = {}
        self._seen: set[bytes] = set()
        self._distinct_limit = distinct_limit
        #: False once more distinct MACs were seen than could be counted.
        self.distinct_exact = True

    @property
    def distinct(self) -> int:
        """Number of distinct non-special MACs mapped (a lower bound if not ``distinct_exact``)."""
        return len(self._seen)

    def map(self, mac: bytes) -> bytes:
        """Map a 6-byte MAC address (as ``bytes``).

        Returns the broadcast and all-zero addresses unchanged, else the
        pseudonym; raises ValueError on another length.
        """
        out = self._cache.get(mac)
        if out is None:
            out = self._miss(mac)
        return out

    def _miss(self, mac: bytes) -> bytes:
        """Compute, count and cache the pseudonym of a MAC not in the cache."""
        if len(mac) != 6:
            raise ValueError("MAC address must be 6 bytes")
        if mac == _BROADCAST or mac == _ZERO:
            out = mac
        else:
            inner = self._inner.copy()
            inner.update(mac)
            outer = self._outer.copy()
            outer.update(inner.digest())
            digest = outer.digest()
            first = (
                (digest[0] & ~(_GROUP_BIT | _LOCAL_BIT) & 0xFF) | _LOCAL_BIT | (mac[0] & _GROUP_BIT)
            )
            out = bytes((first,)) + digest[1:6]
            if out == _BROADCAST:
                # A group MAC whose digest is all ones (odds 2**-46) must not
                # turn into the broadcast address, which means something else.
                out = _BROADCAST[:5] + b"\xfe"
            if self.distinct_exact and mac not in self._seen:
                if len(self._seen) < self._distinct_limit:
                    self._seen.add(mac)
                else:
                    self.distinct_exact = False
        # Emptying the whole dict keeps every operation O(1) amortized.
        if len(self._cache) >= self._cache_size:
            self._cache.clear()
        self._cache[mac] = out
        return out
