"""Crypto-PAn: keyed, prefix-preserving anonymization of IPv4 and IPv6 addresses.

The scheme is the one of Xu, Fan, Ammar and Moon ("Prefix-Preserving IP Address
Anonymization", ICNP 2002). The output is bit-for-bit that of the reference C++
``panonymizer`` for IPv4, and that of the common 128-bit extension for IPv6.

For an address of ``n`` bits, output bit ``i`` is the original bit ``i`` XORed
with the most significant bit of ``AES(block_i)``, where ``block_i`` is the first
``i`` bits of the address followed by bits ``i..127`` of a secret pad. Two
addresses sharing exactly ``k`` leading bits therefore map to addresses sharing
exactly ``k`` leading bits.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

KEY_SIZE = 32
DEFAULT_CACHE_SIZE = 65536
# Beyond this many distinct addresses the exact count would cost too much
# memory; the counter stops and reports itself as a lower bound.
DISTINCT_LIMIT = 1_000_000

_BLOCK_BITS = 128
_BLOCK_BYTES = 16

# Maps every byte to ASCII '1' when its top bit is set and '0' otherwise, so
# the MSBs of all cipher blocks become one binary string that int() parses.
_MSB_TO_DIGIT = bytes(0x31 if b & 0x80 else 0x30 for b in range(256))

_V4_ZERO = b"\x00" * 4
_V4_BROADCAST = b"\xff" * 4
_V6_ZERO = b"\x00" * 16
_V6_LOOPBACK = b"\x00" * 15 + b"\x01"


def _block_tables(width: int, pad: int) -> tuple[int, int, int]:
    """Precompute the constants that build all ``width`` AES inputs at once.

    Returns ``(spread, stair, base)``: ``addr * spread`` copies the address,
    left-aligned, into each of ``width`` 128-bit fields (the fields never
    overlap, so no carries); ``& stair`` keeps the first ``i`` bits of field
    ``i``; ``| base`` fills the rest of field ``i`` with pad bits ``i..127``.
    """
    spread = stair = base = 0
    for i in range(width):
        offset = _BLOCK_BITS * (width - 1 - i)
        prefix_mask = ((1 << i) - 1) << (_BLOCK_BITS - i)
        spread |= 1 << (offset + _BLOCK_BITS - width)
        stair |= prefix_mask << offset
        base |= (pad & ~prefix_mask & ((1 << _BLOCK_BITS) - 1)) << offset
    return spread, stair, base


class CryptoPAn:
    """Crypto-PAn keyed with 32 bytes, uncached (see ``AddressMapper`` for the cache).

    Bytes 0..15 of the key are the AES-128 key; bytes 16..31 encrypted under it
    give the pad, as in the reference implementation. Raises ValueError when
    the key is not 32 bytes.
    """

    __slots__ = ("_encrypt", "_spread4", "_stair4", "_base4", "_spread6", "_stair6", "_base6")

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_SIZE:
            raise ValueError(f"Crypto-PAn key must be {KEY_SIZE} bytes")
        key = bytes(key)
        # ECB is stateless, so one encryptor serves every address; update()
        # is never finalized.
        self._encrypt = Cipher(algorithms.AES(key[:16]), modes.ECB()).encryptor().update
        pad = int.from_bytes(self._encrypt(key[16:]), "big")
        self._spread4, self._stair4, self._base4 = _block_tables(32, pad)
        self._spread6, self._stair6, self._base6 = _block_tables(128, pad)

    def anonymize_v4(self, addr: bytes) -> bytes:
        """Anonymize a 4-byte IPv4 address.

        Returns the 4-byte anonymized address; raises ValueError on another length.
        """
        if len(addr) != 4:
            raise ValueError("IPv4 address must be 4 bytes")
        a = int.from_bytes(addr, "big")
        # All 32 AES inputs depend only on the original address, so they are
        # built together and encrypted in one ECB call.
        blocks = (self._base4 | ((a * self._spread4) & self._stair4)).to_bytes(
            32 * _BLOCK_BYTES, "big"
        )
        otp = int(self._encrypt(blocks)[::_BLOCK_BYTES].translate(_MSB_TO_DIGIT), 2)
        return (a ^ otp).to_bytes(4, "big")

    def anonymize_v6(self, addr: bytes) -> bytes:
        """Anonymize a 16-byte IPv6 address.

        Returns the 16-byte anonymized address; raises ValueError on another length.
        """
        if len(addr) != 16:
            raise ValueError("IPv6 address must be 16 bytes")
        a = int.from_bytes(addr, "big")
        blocks = (self._base6 | ((a * self._spread6) & self._stair6)).to_bytes(
            128 * _BLOCK_BYTES, "big"
        )
        otp = int(self._encrypt(blocks)[::_BLOCK_BYTES].translate(_MSB_TO_DIGIT), 2)
        return (a ^ otp).to_bytes(16, "big")


def is_special_v4(addr: bytes) -> bool:
    """Tell whether a 4-byte IPv4 address is kept unchanged by ``AddressMapper``.

    Returns True for 0.0.0.0, 127.0.0.0/8, 224.0.0.0/4 and 255.255.255.255.
    """
    first = addr[0]
    return first == 127 or (first & 0xF0) == 0xE0 or addr == _V4_ZERO or addr == _V4_BROADCAST


def is_special_v6(addr: bytes) -> bool:
    """Tell whether a 16-byte IPv6 address is kept unchanged by ``AddressMapper``.

    Returns True for ::, ::1 and ff00::/8.
    """
    return addr[0] == 0xFF or addr == _V6_ZERO or addr == _V6_LOOPBACK


class AddressMapper:
    """Map addresses for a capture: special-purpose ones kept, all others Crypto-PAn'd.

    Results are cached per family in a dict that is emptied once it holds
    ``cache_size`` entries, so a repeated address costs one lookup. Raises
    ValueError for a key that is not 32 bytes or a cache_size below 1.
    """

    __slots__ = ("_pan", "_cache_size", "_v4", "_v6", "_seen", "_distinct_limit", "distinct_exact")

    def __init__(
        self,
        key: bytes,
        cache_size: int = DEFAULT_CACHE_SIZE,
        *,
        distinct_limit: int = DISTINCT_LIMIT,
    ) -> None:
        if cache_size < 1:
            raise ValueError("cache_size must be at least 1")
        self._pan = CryptoPAn(key)
        self._cache_size = cache_size
        self._v4: dict[bytes, bytes] = {}
        self._v6: dict[bytes, bytes] = {}
        self._seen: set[bytes] = set()
        self._distinct_limit = distinct_limit
        #: False once more distinct addresses were seen than could be counted.
        self.distinct_exact = True

    @property
    def distinct(self) -> int:
        """Number of distinct non-special addresses mapped (a lower bound if not ``distinct_exact``)."""
        return len(self._seen)

    def map_v4(self, addr: bytes) -> bytes:
        """Map a 4-byte IPv4 address (as ``bytes``).

        Returns the address itself when special, else its Crypto-PAn image;
        raises ValueError on another length.
        """
        out = self._v4.get(addr)
        if out is None:
            out = self._miss(addr, 4, self._v4, is_special_v4, self._pan.anonymize_v4)
        return out

    def map_v6(self, addr: bytes) -> bytes:
        """Map a 16-byte IPv6 address (as ``bytes``).

        Returns the address itself when special, else its Crypto-PAn image;
        raises ValueError on another length.
        """
        out = self._v6.get(addr)
        if out is None:
            out = self._miss(addr, 16, self._v6, is_special_v6, self._pan.anonymize_v6)
        return out

    def _miss(
        self,
        addr: bytes,
        size: int,
        cache: dict[bytes, bytes],
        special: Callable[[bytes], bool],
        anonymize: Callable[[bytes], bytes],
    ) -> bytes:
        """Compute, count and cache the image of an address not in the cache."""
        if len(addr) != size:
            raise ValueError(f"address must be {size} bytes")
        if special(addr):
            out = addr
        else:
            out = anonymize(addr)
            if self.distinct_exact and addr not in self._seen:
                if len(self._seen) < self._distinct_limit:
                    self._seen.add(addr)
                else:
                    self.distinct_exact = False
        # Emptying the whole dict keeps every operation O(1) amortized and
        # needs no bookkeeping; a hot address is back after one miss.
        if len(cache) >= self._cache_size:
            cache.clear()
        cache[addr] = out
        return out
