"""What each byte of a frame may be after sanitizing: the labels of the audit's own dissector.

The header policy (docs/policy.md) says every output byte is a field kept on purpose, an
identifier replaced by its pseudonym, or zero. The audit's dissector (``fields``) labels the
bytes of an ORIGINAL frame with spans ``(start, end, kind, name)``:

* KEEP: a field the policy keeps (it may still change, e.g. a recomputed checksum);
* ADDR4 / ADDR6 / MAC: a pseudonym field: the sanitized value must differ from the original
  unless the original is special (kept by the policy) or all zero;
* SNODE / GPREFIX: an IPv6 multicast group whose low 24 bits (solicited-node) or 64
  network-prefix bits (RFC 3306 / RFC 3956) derive from a unicast address: those bits must
  differ from the original unless they are all zero;
* OTHER: must be zero or changed; an unchanged non-zero byte is a leak;
* ZERO: must be zero (a checksum over bytes the capture does not hold);
* STREAM: a TCP payload, labelled KEEP/OTHER by the audit's stream model (``streams``);
* NAME: a DNS label the policy pseudonymizes: unchanged, it is a finding when it is long enough
  for a same-shape pseudonym to differ almost surely (``names.label_leaks``);
* ECS4 / ECS6: the address prefix of an EDNS client-subnet option (``dnsfields``): mapped as a
  prefix, with the bits past the source prefix length zero;
* IP_TEXT: an IP literal written as text (an HTTP host): zero, or the text of another address
  (padded with spaces, IPv6 groups with leading zeros); the text of the same address is a finding.

Any byte no span covers counts as OTHER: the audit fails closed.

The special addresses are the policy's, written out here on purpose rather than imported
from the anonymizer, so a mistake there is not repeated here.
"""

from __future__ import annotations

from typing import Final

from pktmask.verify.names import label_leaks

KEEP: Final = 0
OTHER: Final = 1
ZERO: Final = 2
ADDR4: Final = 3
ADDR6: Final = 4
MAC: Final = 5
SNODE: Final = 6
GPREFIX: Final = 7
STREAM: Final = 8
NAME: Final = 9
ECS4: Final = 10
ECS6: Final = 11
TEREDO: Final = 12  # a Teredo IPv6 address: Spans.add splits it (see there)
OBF4: Final = 13  # an obfuscated (bit-inverted) IPv4 address: a pseudonym field
IP_TEXT: Final = 14

PSEUDONYMS: Final = frozenset({ADDR4, ADDR6, MAC, SNODE, GPREFIX, NAME, ECS4, ECS6, OBF4, IP_TEXT})
SIZES: Final = {ADDR4: 4, ADDR6: 16, MAC: 6, SNODE: 16, GPREFIX: 16, OBF4: 4}

_V4_BROADCAST: Final = b"\xff\xff\xff\xff"
_V6_LOOPBACK: Final = bytes(15) + b"\x01"
_MAC_BROADCAST: Final = b"\xff" * 6
_SOLICITED: Final = bytes.fromhex("ff0200000000000000000001ff")
_TEREDO: Final = b"\x20\x01\x00\x00"  # 2001:0::/32 (RFC 4380)


def is_zero(value: bytes) -> bool:
    """All zero bytes (carries nothing)."""
    return value.count(0) == len(value)


def special_v4(addr: bytes) -> bool:
    """Kept by the policy: 0.0.0.0, 127/8, 224/4 (multicast), 255.255.255.255."""
    first = addr[0]
    return first == 127 or first & 0xF0 == 0xE0 or addr == _V4_BROADCAST or is_zero(addr)


def special_v6(addr: bytes) -> bool:
    """Kept by the policy: ::, ::1 and ff00::/8 (derived groups are labelled apart, see group_kind)."""
    return addr[0] == 0xFF or addr == _V6_LOOPBACK or is_zero(addr)


def special_mac(mac: bytes) -> bool:
    """Kept by the policy: broadcast and group (multicast) MACs; all-zero carries nothing."""
    return bool(mac[0] & 1) or mac == _MAC_BROADCAST or is_zero(mac)


def group_kind(addr: bytes) -> int:
    """The label of a 16-byte IPv6 address field: ADDR6, or SNODE / GPREFIX for derived groups."""
    if len(addr) > 4 and addr[:4] == _TEREDO:  # cut within the prefix: not known to be Teredo
        return TEREDO
    if len(addr) < 2 or addr[0] != 0xFF:
        return ADDR6  # a cut-short one too: a partial pseudonym (Spans.add)
    if len(addr) > 13 and addr[:13] == _SOLICITED:
        return SNODE
    flags = addr[1] >> 4
    if len(addr) > 4 and flags & 0x3 == 0x3 and addr[3]:  # P and T set, a prefix length: RFC 3306 / RFC 3956 (R too)
        return GPREFIX
    return ADDR6


def derived_bits(kind: int, value: bytes) -> bytes:
    """The bits of a pseudonym field that must not survive unchanged (the whole value if not derived)."""
    if kind == SNODE:
        return value[13:16]
    if kind == GPREFIX:
        return value[4:12]
    return value


def leaks_unchanged(kind: int, value: bytes) -> bool:
    """Would ``value`` (the original of a pseudonym field) leak if it survived unchanged?"""
    if kind == ADDR4:
        return not special_v4(value)
    if kind == ADDR6:
        return not special_v6(value)
    if kind == MAC:
        return not special_mac(value)
    if kind == OBF4:
        return not special_v4(bytes(b ^ 0xFF for b in value))
    if kind == NAME:
        return label_leaks(value)
    return not is_zero(derived_bits(kind, value))


def ip_text_equal(original: bytes, sanitized: bytes) -> bool:
    """Does the IP literal text ``sanitized`` (spaces, brackets, leading zeros of IPv6 groups
    allowed) name the same non-special address as ``original``? Zero or another address: no."""
    import ipaddress

    def parse(text: bytes):
        t = text.strip(b" \0[]")
        try:
            return ipaddress.ip_address(t.decode("ascii"))
        except (ValueError, UnicodeDecodeError):
            return None

    a, b = parse(original), parse(sanitized)
    if a is None or b is None or a != b:
        return False
    packed = a.packed
    return not (special_v4(packed) if len(packed) == 4 else special_v6(packed))


# A partial pseudonym field shorter than this is not compared with its original: one or two
# bytes of a pseudonym equal the original's by chance too often (1/256, 1/65536).
MIN_PARTIAL: Final = 3
# Pseudonym kinds that a field cut short keeps as a partial pseudonym (Spans.add).
PARTIAL: Final = frozenset({ADDR4, ADDR6, MAC, SNODE, GPREFIX, OBF4})


def partial_ok(kind: int, size: int) -> bool:
    """Is a pseudonym field of ``kind`` cut to ``size`` bytes too short to be compared?"""
    return size < SIZES.get(kind, 0) and size < MIN_PARTIAL


class Spans:
    """The labelled spans of one frame, in increasing order; KEEP neighbours are merged.

    ``add`` clips to the captured length (or the datagram's end, see ``transport.l4``)
    by the rule of docs/policy.md, "Headers cut short": the captured bytes of a kept field
    stay KEEP, those of an address or MAC are a partial pseudonym of the same kind (the
    prefix-preserving map keeps a cut address's captured bytes consistent); anything else
    (names, ECS prefixes, data) becomes OTHER; ZERO stays ZERO.
    """

    __slots__ = ("items", "n", "names", "fcs")

    def __init__(self, n: int):
        self.n = n
        self.items: list[tuple[int, int, int, str]] = []
        # The NAME spans of each DNS name stored in the frame (``dnsfields``): a name whose
        # labels all survive is a finding even when each label alone is too short to be one.
        self.names: list[list[tuple[int, int]]] = []
        # An 802.11 FCS (``wifi``): (start, gap start, gap end, at): over the frame without the
        # gap (radiotap data padding), it must be zero or the CRC-32 of the sanitized bytes.
        self.fcs: tuple[int, int, int, int] | None = None

    def add(self, a: int, b: int, kind: int, name: str) -> None:
        n = self.n
        if kind == TEREDO:
            # The embedded server address must take its IPv4 pseudonym and the obfuscated
            # client address that of its inverse (docs/policy.md, "Pseudonyms"); the prefix,
            # flags and obfuscated port are kept.
            self.add(a, a + 4, KEEP, "")
            self.add(a + 4, a + 8, ADDR4, name + " (teredo server)")
            self.add(a + 8, a + 12, KEEP, "")
            self.add(a + 12, a + 16, OBF4, name + " (teredo client)")
            return
        if b > n:
            if kind != ZERO and kind != STREAM and kind != KEEP and kind not in PARTIAL:
                kind = OTHER
            b = n
        if a >= b:
            return
        items = self.items
        if kind == KEEP and items:
            last = items[-1]
            if last[2] == KEEP and last[1] == a:
                items[-1] = (last[0], b, KEEP, "")
                return
        items.append((a, b, kind, name))
