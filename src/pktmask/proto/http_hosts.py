"""Host names and IP literals in HTTP heads, rewritten in place (docs/policy.md, "Payloads").

The host of a Host or Origin value, of a Referer, Location or Content-Location
URI and of an absolute-form or authority-form request target is kept as its
pseudonym: a name becomes its name pseudonym (``anon/names.py``: same length,
the same pseudonym as the name gets in DNS or TLS); an IP literal becomes the
text of its mapped address (``anon/cryptopan.py``: the same address as in the
IP headers) when that text can be written in the literal's length: an IPv6
literal by padding its groups with leading zeros or choosing where ``::``
goes, an IPv4 literal by spaces where the header grammar allows whitespace
(the host begins or ends the value: optional whitespace around a field
value); otherwise the literal is zeroed. The stream tracker builds a rewriter
only with the maps: without anonymization hosts are zeroed (``http_lines``
without a rewriter); a rewriter without maps keeps them as they are.

``HostRewriter.host`` decides one host and collects the replacement bytes;
the line functions of ``http_lines.py`` call it for every host they meet.
"""

from __future__ import annotations

from typing import Protocol


class NameMap(Protocol):
    def map_name(self, name: bytes) -> bytes: ...


class AddressMap(Protocol):
    def map_v4(self, addr: bytes) -> bytes: ...

    def map_v6(self, addr: bytes) -> bytes: ...


def ipv4_literal(text: bytes) -> bytes | None:
    """The 4 bytes of ``text`` if it is a dotted quad (four decimal numbers 0..255 of one to
    three digits), else None."""
    parts = text.split(b".")
    if len(parts) != 4:
        return None
    out = bytearray(4)
    for i in range(4):
        p = parts[i]
        if not 0 < len(p) <= 3 or not p.isdigit():
            return None
        v = int(p)
        if v > 255:
            return None
        out[i] = v
    return bytes(out)


def ipv6_literal(text: bytes) -> bytes | None:
    """The 16 bytes of the IPv6 address ``text`` (hex groups, ``::``, an embedded dotted
    quad), else None (a zone identifier is not accepted)."""
    try:
        import ipaddress

        return ipaddress.IPv6Address(text.decode("ascii")).packed
    except (ValueError, UnicodeDecodeError):
        return None


def ipv6_text(addr: bytes, n: int) -> bytes | None:
    """A text form of the IPv6 address ``addr`` exactly ``n`` bytes long, or None.

    Groups are written in hex without leading zeros, then padded with leading
    zeros (at most four digits a group) until the length is reached; ``::``
    stands for no zero groups, or for one run of zero groups (longest first)
    when the uncompressed form is too long.
    """
    groups = [b"%x" % (addr[i] << 8 | addr[i + 1]) for i in range(0, 16, 2)]
    options: list[tuple[int, int]] = [(0, 0)]  # (start, end) of the zero run written as "::"
    runs: list[tuple[int, int]] = []
    i = 0
    while i < 8:
        if groups[i] == b"0":
            j = i
            while j < 8 and groups[j] == b"0":
                j += 1
            for a in range(i, j):
                for b in range(a + 1, j + 1):
                    runs.append((a, b))
            i = j
        else:
            i += 1
    runs.sort(key=lambda r: r[0] - r[1])
    options += runs
    for a, b in options:
        if a == b:
            parts = [groups]
        else:
            parts = [groups[:a], groups[b:]]
        seps = sum(max(len(p) - 1, 0) for p in parts) + (2 if a != b else 0)
        low = sum(len(g) for p in parts for g in p) + seps
        high = 4 * sum(len(p) for p in parts) + seps
        if not low <= n <= high:
            continue
        extra = n - low
        padded = []
        for p in parts:
            q = []
            for g in p:
                add = min(extra, 4 - len(g))
                extra -= add
                q.append(b"0" * add + g)
            padded.append(b":".join(q))
        return padded[0] if a == b else padded[0] + b"::" + padded[1]
    return None


def _v4_text(addr: bytes) -> bytes:
    return b"%d.%d.%d.%d" % (addr[0], addr[1], addr[2], addr[3])


class HostRewriter:
    """Decides the hosts of one HTTP stream direction (see the module docstring).

    ``repl`` collects ``(offset in the line, bytes)`` replacements; the caller
    takes them after each line. ``names`` and ``addrs`` are None without
    anonymization: hosts are then kept as they are.
    """

    __slots__ = ("names", "addrs", "repl", "hosts")

    def __init__(self, names: NameMap | None, addrs: AddressMap | None) -> None:
        self.names = names
        self.addrs = addrs
        self.repl: list[tuple[int, bytes]] = []
        self.hosts = 0  # hosts pseudonymized or mapped

    def host(self, line: bytes, s: int, e: int, left: bool, right: bool) -> bool:
        """Decide the host ``line[s:e]``: True if it is kept (with its replacement queued when it
        changes), False if it must be zeroed. ``left``/``right``: whitespace may stand before /
        after it (it begins / ends a header value)."""
        n = e - s
        if n <= 0:
            return True
        text = line[s:e]
        if text[0] == 0x5B:  # '[': an IP literal
            if n < 4 or text[n - 1] != 0x5D:
                return False
            a6 = ipv6_literal(text[1 : n - 1])
            if a6 is None:
                return False  # IPvFuture, a zone identifier, garbage: zeroed
            if self.addrs is None:
                return True
            t6 = ipv6_text(self.addrs.map_v6(a6), n - 2)
            if t6 is None:
                return False
            self._put(s, b"[" + t6 + b"]", text)
            return True
        a4 = ipv4_literal(text)
        if a4 is not None:
            if self.addrs is None:
                return True
            t4 = _v4_text(self.addrs.map_v4(a4))
            pad = n - len(t4)
            if pad < 0 or (pad and not left and not right):
                return False
            self._put(s, b" " * pad + t4 if left else t4 + b" " * pad, text)
            return True
        if self.names is not None:
            self._put(s, self.names.map_name(text), text)
        return True

    def _put(self, s: int, new: bytes, old: bytes) -> None:
        self.hosts += 1
        if new != old:
            self.repl.append((s, new))
