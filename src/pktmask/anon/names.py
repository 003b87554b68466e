"""Keyed, length-preserving pseudonyms for DNS names and hostnames (docs/policy.md, "Names").

A name is a sequence of labels. Each label is replaced by a pseudonym of the
same length drawn from a keyed PRF of (the lowercased label, the lowercased
parent name: the labels to its right, as the original name has them), so the
same name always gives the same pseudonym (every protocol, file, run and
worker with the same key), different keys give different pseudonyms and the
same label under different parents gives different ones. Position by
position the pseudonym keeps the character class: a lowercase letter gives a
lowercase letter, an uppercase one an uppercase one, a digit a digit; '-'
and '_' stay where they are; any other byte becomes a lowercase letter. So a
hostname stays a valid hostname and wire lengths never change.

Kept as they are: labels starting with '_' (service labels: ``_sip``,
``_tcp``, ``_dns-sd``), and the public suffix. A label is part of the kept
suffix when it and its parent form a public suffix and so does its parent
(or it has none): the kept part of a name is its longest tail all of whose
tails are public suffixes. That is the longest matching rule of the Public
Suffix List (ICANN and private sections), except for a listed suffix whose
own parent is no public suffix (``s3.amazonaws.com``: ``amazonaws.com`` is a
registrable domain): its labels from that parent leftwards are pseudonymized,
fail closed, so the decision is a function of (label, parent) alone. The
list's implicit "*" rule is not used: a name under an unlisted top label
(``host.corp``, a single-label Windows name ``FILESRV01``) is pseudonymized
whole. The special-use names ``local``, ``localhost``, ``invalid``,
``test``, ``example``, ``arpa``, ``home.arpa``, ``in-addr.arpa`` and
``ip6.arpa`` count as public suffixes. Reverse names (``4.3.2.1.in-addr.arpa``)
are pseudonymized label by label like any other (digits stay digits).

The list comes from the ``publicsuffixlist`` package: maintained, released
with every list update, it ships the list as a data file (no network at run
time) and implements the list's wildcard and exception rules; a hand-copied
list would go stale and its rule engine would be ours to get right.

The PRF is HMAC-SHA256 under a subkey, HMAC-SHA256(key, b"pktmask names v1"),
of a block counter and (the label's length, the label, the parent). The key
is kept in memory only.
"""

from __future__ import annotations

import hmac
from functools import lru_cache
from typing import Any, Final

_CACHE_LIMIT: Final = 1 << 16
# The "parent" under which the walk lists an 802.11 SSID or mesh ID (proto/walk_wifi.py): no
# DNS parent is spelled so (a NUL byte, a space). Such a label is mapped by ``map_ssid``.
SSID_PARENT: Final = b"\x00802.11 ssid"
SPECIAL_USE: Final = frozenset({"local", "localhost", "invalid", "test", "example", "arpa",
                                "home.arpa", "in-addr.arpa", "ip6.arpa"})

_psl: Any = None  # a publicsuffixlist.PublicSuffixList once loaded


def _list():
    """The Public Suffix List, loaded once per process (on first use: it takes a moment)."""
    global _psl
    if _psl is None:
        from publicsuffixlist import PublicSuffixList

        _psl = PublicSuffixList(accept_unknown=False)
    return _psl


def is_public(name: bytes) -> bool:
    """Whether the lowercased dotted ``name`` is a public suffix (by an explicit rule) or special-use."""
    text = name.decode("latin-1")
    return text in SPECIAL_USE or _list().is_public(text, accept_unknown=False)


@lru_cache(maxsize=1 << 14)
def is_hostname(text: bytes) -> bool:
    """Whether ``text`` (e.g. a URL path segment) reads as a host name: labels ending in a
    public suffix or a special-use one, with at least one label before it. Used to zero
    names that stream masking cannot pseudonymize yet (docs/policy.md, HTTP)."""
    low = text.lower().rstrip(b".").decode("latin-1")
    if "." not in low:
        return False
    suffix = _list().publicsuffix(low, accept_unknown=False)
    if suffix is None:
        last = low.rsplit(".", 1)[1]
        return last in SPECIAL_USE
    return len(suffix) < len(low)


def _classes() -> bytes:
    """Per byte value: its class (l lower, u upper, d digit, k kept, o other)."""
    cls = bytearray(b"o" * 256)
    for c in range(ord("a"), ord("z") + 1):
        cls[c] = ord("l")
        cls[c - 32] = ord("u")
    for c in range(ord("0"), ord("9") + 1):
        cls[c] = ord("d")
    cls[ord("-")] = cls[ord("_")] = ord("k")
    return bytes(cls)


_CLASS: Final = _classes()


def _shaped(label: bytes, stream: bytes) -> bytes:
    """``label`` with each byte replaced from ``stream`` keeping its class (see the docstring)."""
    out = bytearray(len(label))
    cls = _CLASS
    for i, c in enumerate(label):
        k = cls[c]
        b = stream[i]
        if k == 100:  # 'd'
            out[i] = 48 + b % 10
        elif k == 117:  # 'u'
            out[i] = 65 + b % 26
        elif k == 107:  # 'k': '-' and '_' stay
            out[i] = c
        else:  # lowercase letter or any other byte
            out[i] = 97 + b % 26
    return bytes(out)


class NameMapper:
    """Maps labels and dotted names to their keyed pseudonyms (cached)."""

    def __init__(self, key: bytes):
        if len(key) != 32:
            raise ValueError("a name map needs the 32-byte capture key")
        self._key = hmac.digest(key, b"pktmask names v1", "sha256")
        # (label as the frame has it, parent) -> (pseudonym, the count generation it was
        # last counted in): a label seen again costs one lookup, counting included.
        self._labels: dict[tuple[bytes, bytes], tuple[bytes, int]] = {}
        self._public: dict[bytes, bool] = {}
        self._names: dict[bytes, bytes] = {}
        self._gen = 0
        self._seen: set[bytes] = set()
        #: distinct names (a lowercased label under its parent) replaced by a pseudonym
        #: since ``reset_counts()``.
        self.mapped = 0

    def reset_counts(self) -> None:
        """Start counting pseudonymized names afresh (per file); the pseudonyms stay cached."""
        self._gen += 1
        self._seen.clear()
        self.mapped = 0

    def _is_public(self, name: bytes) -> bool:
        hit = self._public.get(name)
        if hit is None:
            if len(self._public) >= _CACHE_LIMIT:
                self._public.clear()
            hit = self._public[name] = is_public(name)
        return hit

    def kept(self, low: bytes, parent: bytes) -> bool:
        """Whether the lowercased ``low`` under ``parent`` is kept as it is."""
        if low[:1] == b"_":
            return True
        if parent and not self._is_public(parent):
            return False
        return self._is_public(low + b"." + parent if parent else low)

    def _stream(self, low: bytes, parent: bytes, size: int) -> bytes:
        msg = len(low).to_bytes(2, "big") + low + parent
        out = b""
        block = 0
        while len(out) < size:
            out += hmac.digest(self._key, block.to_bytes(4, "big") + msg, "sha256")
            block += 1
        return out

    def map_label(self, label: bytes, parent: bytes) -> bytes:
        """The pseudonym of ``label`` (as the frame has it, any case) under ``parent``, the
        original lowercased dotted name to its right (b"" for a top label)."""
        key = (label, parent)
        hit = self._labels.get(key)
        if hit is not None:
            if hit[1] == self._gen:
                return hit[0]
            new = hit[0]
        else:
            new = self._pseudonym(label, parent)
        if new != label:
            name = label.lower() + b"." + parent
            if name not in self._seen:
                if len(self._seen) >= _CACHE_LIMIT:
                    self._seen.clear()
                self._seen.add(name)
                self.mapped += 1
        if len(self._labels) >= _CACHE_LIMIT:
            self._labels.clear()
        self._labels[key] = (new, self._gen)
        return new

    def _pseudonym(self, label: bytes, parent: bytes) -> bytes:
        low = label.lower()
        if parent == SSID_PARENT:
            new = self.map_ssid(label)
        elif self.kept(low, parent):
            new = bytes(label)
        else:
            new = _shaped(label, self._stream(low, parent, len(label)))
        return new

    def map_ssid(self, ssid: bytes) -> bytes:
        """The pseudonym of an 802.11 SSID or mesh ID (docs/policy.md, "802.11"): same length,
        keyed by the exact bytes (SSIDs are case-sensitive), each byte replaced as a label's
        are (letters keep their case, digits stay digits, '-' and '_' stay, any other byte
        becomes a lowercase letter). An all-zero SSID (a hidden network) is kept."""
        if not ssid.strip(b"\0"):
            return bytes(ssid)
        return _shaped(ssid, self._stream(bytes(ssid), SSID_PARENT, len(ssid)))

    def map_name(self, name: bytes) -> bytes:
        """The pseudonym of a dotted hostname (a trailing dot is kept)."""
        hit = self._names.get(name)
        if hit is not None:
            return hit
        root = name.endswith(b".")
        labels = (name[:-1] if root else name).split(b".")
        out = []
        parent = b""
        for label in reversed(labels):
            out.append(self.map_label(label, parent))
            low = label.lower()
            parent = low + b"." + parent if parent else low
        new = b".".join(reversed(out)) + (b"." if root else b"")
        if len(self._names) >= _CACHE_LIMIT:
            self._names.clear()
        self._names[name] = new
        return new
