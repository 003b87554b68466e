"""Keyed, prefix-preserving anonymization of IPv4 and IPv6 addresses.

Both maps here have the shape of Crypto-PAn (Xu, Fan, Ammar and Moon,
"Prefix-Preserving IP Address Anonymization", ICNP 2002): for an address of
``n`` bits, output bit ``i`` is the original bit ``i`` XORed with the most
significant bit of ``AES(block_i)``, where ``block_i`` depends only on the
first ``i`` bits of the address. Two addresses sharing exactly ``k`` leading
bits share ``block_0..block_k``, so their images agree on bits ``0..k-1`` and
differ at bit ``k``: they share exactly ``k`` leading bits. The key holder
inverts a map bit by bit, since ``block_i`` needs only the original bits
before ``i`` (``deanonymize_v4``/``deanonymize_v6``).

``HardenedMap``, the default: ``block_i`` is the first ``i`` bits of the
address, a 1 bit, then zeros. The 1 marks where the prefix ends, so every
(prefix length, prefix) pair has its own AES input and every output bit is
flipped by its own keyed bit: an address keeps its value with probability
2^-n and its last octet with probability 1/256, as chance has it. The
delimiter fits in 128 bits for IPv4 and IPv6 alike, so one construction
serves both families; each family has its own AES-256 key, derived from the
capture key by HMAC-SHA256 under a label. The labels keep the map
independent of the MAC pseudonyms and of the compat map under the same key,
and the two families independent of each other (one shared key would make the
image of an IPv4 address the first 32 bits of the image of every IPv6 address
that begins with the same 32 bits). The AES inputs need no secret pad: the key
is the secret.

``CryptoPAn``, behind ``--cryptopan-compat``: the reference construction,
bit-for-bit the reference C++ ``panonymizer`` for IPv4 and the common 128-bit
extension for IPv6. ``block_i`` is the first ``i`` bits of the address
followed by bits ``i..127`` of a secret pad (AES-128 key: key bytes 0..15;
pad: key bytes 16..31 encrypted under it). Where address bit ``i`` equals pad
bit ``i``, ``block_i`` equals ``block_(i+1)`` and both bits get the same flip,
so a run of positions shares one keyed bit. Measured by
``scripts/cryptopan_stats.py``: 6.7% of random addresses keep their last
octet (chance: 0.39%), 0.68% their last 16 bits (chance: 0.0015%), and fixed
points occur (under the reference sample key 185.75.62.183 maps to itself);
the hardened map measures at chance level. README, "The address map", says
why the default differs.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

KEY_SIZE = 32
DEFAULT_CACHE_SIZE = 65536
# Beyond this many distinct addresses the exact count would cost too much
# memory; the counter stops and reports itself as a lower bound.
DISTINCT_LIMIT = 1_000_000

_BLOCK_BITS = 128
_BLOCK_BYTES = 16
_BLOCK_MASK = (1 << _BLOCK_BITS) - 1

# Domain-separation labels of the hardened map's subkeys, one per family.
_V4_LABEL = b"pktmask address map v1 ipv4"
_V6_LABEL = b"pktmask address map v1 ipv6"

# Maps every byte to ASCII '1' when its top bit is set and '0' otherwise, so
# the MSBs of all cipher blocks become one binary string that int() parses.
_MSB_TO_DIGIT = bytes(0x31 if b & 0x80 else 0x30 for b in range(256))

_V4_ZERO = b"\x00" * 4
_V4_BROADCAST = b"\xff" * 4
_V6_ZERO = b"\x00" * 16
_V6_LOOPBACK = b"\x00" * 15 + b"\x01"

_Encrypt = Callable[[bytes], bytes]


def _prefix_mask(i: int) -> int:
    """The first ``i`` bits of a 128-bit block."""
    return ((1 << i) - 1) << (_BLOCK_BITS - i)


def _block_tables(width: int, fills: list[int]) -> tuple[int, int, int]:
    """Precompute the constants that build all ``width`` AES inputs at once.

    ``fills[i]`` is what ``block_i`` holds besides the address prefix (bits
    outside its first ``i``). Returns ``(spread, stair, base)``: ``addr *
    spread`` copies the address, left-aligned, into each of ``width`` 128-bit
    fields (the fields never overlap, so no carries); ``& stair`` keeps the
    first ``i`` bits of field ``i``; ``| base`` adds ``fills[i]`` to field ``i``.
    """
    spread = stair = base = 0
    for i in range(width):
        offset = _BLOCK_BITS * (width - 1 - i)
        spread |= 1 << (offset + _BLOCK_BITS - width)
        stair |= _prefix_mask(i) << offset
        base |= fills[i] << offset
    return spread, stair, base


def _aes_ecb(key: bytes) -> _Encrypt:
    # ECB is stateless, so one encryptor serves every address; update() is
    # never finalized.
    return Cipher(algorithms.AES(key), modes.ECB()).encryptor().update


def _check_key(key: object) -> bytes:
    if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_SIZE:
        raise ValueError(f"address map key must be {KEY_SIZE} bytes")
    return bytes(key)


def _invert(image: bytes, width: int, encrypt: _Encrypt, base: int) -> bytes:
    """Recover the address whose image is ``image``, one bit at a time from the top."""
    out = int.from_bytes(image, "big")
    shift = _BLOCK_BITS - width
    addr = 0
    for i in range(width):
        # addr holds original bits 0..i-1 only, so shifted it is block_i's prefix.
        fill = (base >> (_BLOCK_BITS * (width - 1 - i))) & _BLOCK_MASK
        flip = encrypt(((addr << shift) | fill).to_bytes(_BLOCK_BYTES, "big"))[0] >> 7
        bit = width - 1 - i
        addr |= (((out >> bit) & 1) ^ flip) << bit
    return addr.to_bytes(width // 8, "big")


class PrefixMap:
    """A keyed prefix-preserving map of IPv4 and IPv6 addresses, uncached.

    The subclasses choose the AES keys and what fills each block besides the
    prefix (see the module docstring); ``AddressMapper`` adds the cache.
    """

    __slots__ = ("_enc4", "_enc6", "_spread4", "_stair4", "_base4", "_spread6", "_stair6", "_base6")

    #: The map's name in reports.
    name = ""

    def _tables(self, enc4: _Encrypt, fills4: list[int], enc6: _Encrypt, fills6: list[int]) -> None:
        self._enc4, self._enc6 = enc4, enc6
        self._spread4, self._stair4, self._base4 = _block_tables(32, fills4)
        self._spread6, self._stair6, self._base6 = _block_tables(128, fills6)

    def anonymize_v4(self, addr: bytes) -> bytes:
        """Anonymize a 4-byte IPv4 address.

        Returns the 4-byte image; raises ValueError on another length.
        """
        if len(addr) != 4:
            raise ValueError("IPv4 address must be 4 bytes")
        a = int.from_bytes(addr, "big")
        # All 32 AES inputs depend only on the original address, so they are
        # built together and encrypted in one ECB call.
        blocks = (self._base4 | ((a * self._spread4) & self._stair4)).to_bytes(
            32 * _BLOCK_BYTES, "big"
        )
        otp = int(self._enc4(blocks)[::_BLOCK_BYTES].translate(_MSB_TO_DIGIT), 2)
        return (a ^ otp).to_bytes(4, "big")

    def anonymize_v6(self, addr: bytes) -> bytes:
        """Anonymize a 16-byte IPv6 address.

        Returns the 16-byte image; raises ValueError on another length.
        """
        if len(addr) != 16:
            raise ValueError("IPv6 address must be 16 bytes")
        a = int.from_bytes(addr, "big")
        blocks = (self._base6 | ((a * self._spread6) & self._stair6)).to_bytes(
            128 * _BLOCK_BYTES, "big"
        )
        otp = int(self._enc6(blocks)[::_BLOCK_BYTES].translate(_MSB_TO_DIGIT), 2)
        return (a ^ otp).to_bytes(16, "big")

    def deanonymize_v4(self, image: bytes) -> bytes:
        """Return the IPv4 address whose image is ``image`` (4 bytes; ValueError otherwise)."""
        if len(image) != 4:
            raise ValueError("IPv4 address must be 4 bytes")
        return _invert(image, 32, self._enc4, self._base4)

    def deanonymize_v6(self, image: bytes) -> bytes:
        """Return the IPv6 address whose image is ``image`` (16 bytes; ValueError otherwise)."""
        if len(image) != 16:
            raise ValueError("IPv6 address must be 16 bytes")
        return _invert(image, 128, self._enc6, self._base6)


class HardenedMap(PrefixMap):
    """The default map: a delimited prefix per block, a derived AES-256 key per family.

    Raises ValueError when the key is not 32 bytes.
    """

    __slots__ = ()
    name = "hardened"

    def __init__(self, key: bytes) -> None:
        key = _check_key(key)
        enc4 = _aes_ecb(hmac.new(key, _V4_LABEL, hashlib.sha256).digest())
        enc6 = _aes_ecb(hmac.new(key, _V6_LABEL, hashlib.sha256).digest())
        # block_i: the first i bits of the address, then a 1 at bit i, then zeros.
        delimiters = [1 << (_BLOCK_BITS - 1 - i) for i in range(_BLOCK_BITS)]
        self._tables(enc4, delimiters[:32], enc6, delimiters)


class CryptoPAn(PrefixMap):
    """The reference Crypto-PAn construction (``--cryptopan-compat``), keyed with 32 bytes.

    Bytes 0..15 of the key are the AES-128 key; bytes 16..31 encrypted under it
    give the pad, as in the reference implementation. Raises ValueError when
    the key is not 32 bytes.
    """

    __slots__ = ()
    name = "cryptopan-compat"

    def __init__(self, key: bytes) -> None:
        key = _check_key(key)
        enc = _aes_ecb(key[:16])
        pad = int.from_bytes(enc(key[16:]), "big")
        # block_i: the first i bits of the address, then pad bits i..127.
        fills = [pad & ~_prefix_mask(i) & _BLOCK_MASK for i in range(_BLOCK_BITS)]
        self._tables(enc, fills[:32], enc, fills)


def address_map(key: bytes, compat: bool = False) -> PrefixMap:
    """The map a run uses: ``HardenedMap``, or ``CryptoPAn`` with ``compat``."""
    return CryptoPAn(key) if compat else HardenedMap(key)


def address_map_name(compat: bool) -> str:
    """The report name of the map ``address_map(key, compat)`` builds."""
    return CryptoPAn.name if compat else HardenedMap.name


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
    """Map addresses for a capture: special-purpose ones kept, all others through the keyed map.

    The map is ``HardenedMap``, or the reference ``CryptoPAn`` with ``compat``.
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
        compat: bool = False,
    ) -> None:
        if cache_size < 1:
            raise ValueError("cache_size must be at least 1")
        self._pan = address_map(key, compat)
        self._cache_size = cache_size
        self._v4: dict[bytes, bytes] = {}
        self._v6: dict[bytes, bytes] = {}
        self._seen: set[bytes] = set()
        self._distinct_limit = distinct_limit
        #: False once more distinct addresses were seen than could be counted.
        self.distinct_exact = True

    @property
    def name(self) -> str:
        """The name of the map in use (``hardened`` or ``cryptopan-compat``)."""
        return self._pan.name

    @property
    def distinct(self) -> int:
        """Number of distinct non-special addresses mapped (a lower bound if not ``distinct_exact``)."""
        return len(self._seen)

    def map_v4(self, addr: bytes) -> bytes:
        """Map a 4-byte IPv4 address (as ``bytes``).

        Returns the address itself when special, else its image under the map;
        raises ValueError on another length.
        """
        out = self._v4.get(addr)
        if out is None:
            out = self._miss(addr, 4, self._v4, is_special_v4, self._pan.anonymize_v4)
        return out

    def map_v6(self, addr: bytes) -> bytes:
        """Map a 16-byte IPv6 address (as ``bytes``).

        Returns the address itself when special, else its image under the map;
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
