"""The addresses of a capture, and where they show up again.

The addresses come from the audit's own dissector (``fields``: every pseudonym field of
ORIGINAL) and from DNS answers. ``AddressBook`` holds the bounded sets of IPv4, IPv6 and MAC
addresses found in ORIGINAL and finds them in payload bytes in every common spelling:

* raw bytes (4, 16, 6), through a 4-byte window index like ``needles``;
* text: dotted IPv4 (digit boundaries), any IPv6 text form (parsed, so
  compressed, expanded and upper case all count), MAC ``aa:bb:..``,
  ``aa-bb-..`` and ``aabb.ccdd.eeff``;
* reverse names ``d.c.b.a.in-addr.arpa`` and ip6.arpa nibbles, as text and in
  DNS wire format.

Text is matched by generic token patterns whose matches are parsed and looked
up in the sets, so the cost does not grow with the number of addresses.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator

from pktmask.verify.labels import special_mac, special_v4, special_v6
from pktmask.verify.needles import hit_positions, key_of

MAX_ADDRESSES = 100_000  # per family (IPv4, IPv6, MAC)

IP, MAC = "ip", "mac"  # report categories
RAW = "payload (binary)"
TEXT = "payload (text)"
REVERSE = "payload (reverse DNS name)"


# Text patterns run over lower-cased payload bytes. The lookahead form yields a
# candidate at every start position, so overlapping spellings are all seen.
_PRINTABLE = re.compile(rb"[\t\n\r\x20-\x7e]*")
_V4_TEXT = re.compile(rb"(?<![0-9])(?=((?:[0-9]{1,3}\.){3}[0-9]{1,3})(?![0-9]))")
_V6_TEXT = re.compile(
    rb"(?<![0-9a-f:])(?=((?:[0-9a-f]{0,4}:){2,7}(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9a-f]{1,4})?))"
)
_MAC_TEXT = re.compile(
    rb"(?<![0-9a-f])(?=([0-9a-f]{2}([:-])[0-9a-f]{2}(?:\2[0-9a-f]{2}){4})(?![0-9a-f]))"
    rb"|(?<![0-9a-f.])([0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4})(?![0-9a-f])"
)
_V4_REVERSE = re.compile(rb"(?<![0-9])((?:[0-9]{1,3}\.){4})in-addr\.arpa")
_V4_REVERSE_WIRE = re.compile(rb"((?:[\x01-\x03][0-9]{1,3}){4})\x07in-addr\x04arpa")
_V6_REVERSE = re.compile(rb"((?:[0-9a-f]\.){32})ip6\.arpa")
_V6_REVERSE_WIRE = re.compile(rb"((?:\x01[0-9a-f]){32})\x03ip6\x04arpa")


def show(raw: bytes) -> str:
    """The usual text form of a 4-, 16- or 6-byte address."""
    if len(raw) == 6:
        return ":".join(f"{b:02x}" for b in raw)
    if len(raw) not in (4, 16):  # a partial address, cut short
        return raw.hex(":") + " (cut short)"
    return str(ipaddress.ip_address(raw))


class AddressBook:
    """Bounded sets of the non-special addresses of a capture, findable in payload bytes."""

    def __init__(self, limit: int = MAX_ADDRESSES):
        self.limit = limit
        self.v4: set[bytes] = set()
        self.v6: set[bytes] = set()
        self.macs: set[bytes] = set()
        self.raw_keys: set[int] = set()
        self._raw: dict[int, list[tuple[int, bytes]]] = {}  # window key -> (offset, address)

    def __len__(self) -> int:
        return len(self.v4) + len(self.v6) + len(self.macs)

    def count(self, category: str) -> int:
        """How many distinct addresses of a report category are held."""
        return len(self.macs) if category == MAC else len(self.v4) + len(self.v6)

    def add(self, category: str, raw: bytes) -> None:
        """Record an address; special ones are skipped."""
        raw = bytes(raw)
        special: Callable[[bytes], bool]
        if category == MAC:
            target, special = self.macs, special_mac
        elif len(raw) == 4:
            target, special = self.v4, special_v4
        elif len(raw) == 16:
            target, special = self.v6, special_v6
        else:
            return
        if raw in target or len(target) >= self.limit or special(raw):
            return
        target.add(raw)
        # Index the 4-byte window of the address with the fewest 00/ff bytes: those
        # are everywhere in binary data and would make the window a frequent false hit.
        best = min(range(0, len(raw) - 3, 2), key=lambda o: sum(b in (0, 255) for b in raw[o : o + 4]))
        key = key_of(raw[best : best + 4])
        self.raw_keys.add(key)
        self._raw.setdefault(key, []).append((best, raw))

    def holds(self, category: str, raw: bytes) -> bool:
        """Tell whether ``raw`` is one of the recorded addresses."""
        if category == MAC:
            return raw in self.macs
        return raw in (self.v4 if len(raw) == 4 else self.v6)

    # ---- search ------------------------------------------------------------
    def find(self, data: bytes, lowered: bytes, windows: set[int], spelled: bool = True
             ) -> Iterator[tuple[str, bytes, int, int, str]]:
        """Yield ``(category, address, start, end, where)`` for each address found in ``data``.

        ``lowered`` is ``data.lower()`` and ``windows`` its raw ``window_keys``; ``spelled``:
        text spellings too, not only raw bytes.
        """
        yield from self._find_raw(data, windows)
        if not spelled:
            return
        if self.v4:
            if b"." in lowered:
                yield from self._find_v4(lowered)
        if self.v6 and b":" in lowered:
            yield from self._find_v6(lowered)
        if self.macs and (b":" in lowered or b"-" in lowered or b"." in lowered):
            yield from self._find_macs(lowered)
        if b"arpa" in lowered:
            yield from self._find_reverse(lowered)

    def _find_raw(self, data: bytes, windows: set[int]):
        hits = windows & self.raw_keys
        if not hits:
            return
        for p, key in hit_positions(data, hits):
            for off, raw in self._raw[key]:
                s = p - off
                if s >= 0 and data.startswith(raw, s) and not _inside_text(data, raw, s):
                    yield (MAC if len(raw) == 6 else IP), raw, s, s + len(raw), RAW

    def _find_v4(self, text: bytes):
        for m in _V4_TEXT.finditer(text):
            raw = _dotted(m.group(1).split(b"."))
            if raw is not None and raw in self.v4:
                yield IP, raw, m.start(1), m.end(1), TEXT

    def _find_v6(self, text: bytes):
        for m in _V6_TEXT.finditer(text):
            found = self._v6_in_token(m.group(1))
            if found is not None:
                raw, a, b = found
                yield IP, raw, m.start(1) + a, m.start(1) + b, TEXT

    def _v6_in_token(self, token: bytes) -> tuple[bytes, int, int] | None:
        """A recorded IPv6 address spelled in a colon-hex token, with its span in the token.

        The token may carry glued-on text: a hex word before it ("inet6:fe80::1"
        starts at "e6:"), a colon after it ("fe80::1: up"). So it is also
        tried from after each of its colons, with a lone trailing colon dropped.
        """
        starts = [0] + [i + 1 for i in range(len(token) - 1) if token[i] == 0x3A and token[i + 1] != 0x3A
                        and (i == 0 or token[i - 1] != 0x3A)]
        for a in starts:
            part = token[a:]
            if part.endswith(b":") and not part.endswith(b"::"):
                part = part[:-1]
            raw = _v6(part)
            if raw is not None and raw in self.v6:
                return raw, a, a + len(part)
        return None

    def _find_macs(self, text: bytes):
        for m in _MAC_TEXT.finditer(text):
            g = 1 if m.group(1) is not None else 3
            token = m.group(g)
            raw = bytes.fromhex(token.replace(b":", b"").replace(b"-", b"").replace(b".", b"").decode())
            if raw in self.macs:
                yield MAC, raw, m.start(g), m.end(g), TEXT

    def _find_reverse(self, text: bytes):
        if self.v4:
            for m in _V4_REVERSE.finditer(text):
                raw = _dotted(m.group(1).split(b".")[3::-1])
                if raw is not None and raw in self.v4:
                    yield IP, raw, m.start(), m.end(), REVERSE
            for m in _V4_REVERSE_WIRE.finditer(text):
                raw = _dotted(_wire_labels(m.group(1))[::-1])
                if raw is not None and raw in self.v4:
                    yield IP, raw, m.start(), m.end(), REVERSE
        if self.v6:
            for m in _V6_REVERSE.finditer(text):
                raw = bytes.fromhex(m.group(1)[::2][::-1].decode())
                if raw in self.v6:
                    yield IP, raw, m.start(), m.end(), REVERSE
            for m in _V6_REVERSE_WIRE.finditer(text):
                raw = bytes.fromhex(m.group(1)[1::2][::-1].decode())
                if raw in self.v6:
                    yield IP, raw, m.start(), m.end(), REVERSE


def _inside_text(data: bytes, raw: bytes, s: int) -> bool:
    """A printable 4-byte address amid printable bytes is a word, not an address.

    104.116.116.112 is "http": without this, text would be full of raw IPv4 hits.
    """
    if len(raw) != 4 or not _PRINTABLE.fullmatch(raw):
        return False
    before = data[s - 1 : s] if s else b""
    after = data[s + 4 : s + 5]
    return bool(_PRINTABLE.fullmatch(before + after)) and len(before + after) > 0


def _dotted(parts: list[bytes]) -> bytes | None:
    if len(parts) != 4 or not all(parts):
        return None
    values = [int(p) for p in parts]
    if max(values) > 255:
        return None
    return bytes(values)


def _wire_labels(wire: bytes) -> list[bytes]:
    """Split ``\\x01a\\x02bc...`` into labels; [] if the lengths do not add up."""
    labels, pos = [], 0
    while pos < len(wire):
        n = wire[pos]
        label = wire[pos + 1 : pos + 1 + n]
        if len(label) != n or not label.isdigit():
            return []
        labels.append(label)
        pos += 1 + n
    return labels


def _v6(token: bytes) -> bytes | None:
    try:
        return ipaddress.IPv6Address(token.decode("ascii")).packed
    except ValueError:
        return None
