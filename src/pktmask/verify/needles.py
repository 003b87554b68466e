"""Many byte needles searched at once in payload bytes.

Python's ``re`` tries the branches of a large alternation one by one at
every position, so a few thousand needles would make each packet slow.
Instead every needle is keyed by its first four bytes: ``window_keys``
turns all 4-byte windows of a buffer into a set of ints at C speed (an
``array`` view at each of the four alignments), one set intersection says
which keys occur, and only at those positions are needles compared.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Iterator

_ORDER = sys.byteorder
_WORD = "I" if array("I").itemsize == 4 else "L"
assert array(_WORD).itemsize == 4, "needs a 4-byte array type"

# A needle of length L is filed under its first K bytes, K the largest level <= L, so a
# common prefix ("www.", "Content-") does not make every hit compare against thousands.
_LEVELS = (4, 8, 16, 32)
FEW_HITS = 6  # below this many distinct keys, find() each; above, one pass over the windows


def key_of(word: bytes) -> int:
    """The int ``window_keys`` uses for the 4-byte string ``word``."""
    return int.from_bytes(word, _ORDER)


def window_keys(buf: bytes) -> set[int]:
    """Every 4-byte window of ``buf`` as an int (see ``key_of``)."""
    n = len(buf)
    keys: set[int] = set()
    for s in range(4):
        m = (n - s) >> 2
        if m > 0:
            keys.update(array(_WORD, buf[s : s + 4 * m]))
    return keys


def hit_positions(buf: bytes, hits: set[int]) -> Iterator[tuple[int, int]]:
    """Yield ``(position, key)`` for every window of ``buf`` whose key is in ``hits`` (any order)."""
    if len(hits) <= FEW_HITS:
        for key in hits:
            word = key.to_bytes(4, _ORDER)
            p = buf.find(word)
            while p >= 0:
                yield p, key
                p = buf.find(word, p + 1)
        return
    n = len(buf)
    for s in range(4):
        m = (n - s) >> 2
        if m <= 0:
            continue
        for i, key in enumerate(array(_WORD, buf[s : s + 4 * m])):
            if key in hits:
                yield s + 4 * i, key


class NeedleIndex:
    """Lower-cased needles of at least 4 bytes, each with the tags of who wants it found.

    ``add(needle, tag)`` files a needle; ``find(lowered, windows)`` yields
    ``(position, needle, tags)`` for every occurrence in a lower-cased buffer
    whose ``window_keys`` are ``windows`` — overlapping occurrences included.
    """

    def __init__(self):
        self.keys: set[int] = set()
        # level -> prefix of that length -> the distinct lengths of the needles filed there.
        # At a hit, one slice and one dict lookup per length replace a compare per needle
        # (hundreds of "content-length: NNN" lines share their first 16 bytes).
        self._levels: dict[int, dict[bytes, list[int]]] = {k: {} for k in _LEVELS}
        self._key_levels: dict[int, list[int]] = {}
        self._tags: dict[bytes, list] = {}

    def __len__(self) -> int:
        return len(self._tags)

    def add(self, needle: bytes, tag) -> None:
        """File ``needle`` (lower-cased here; shorter than 4 bytes is ignored) with ``tag``."""
        needle = needle.lower()
        size = len(needle)
        if size < 4:
            return
        tags = self._tags.get(needle)
        if tags is not None:
            if tag not in tags:
                tags.append(tag)
            return
        self._tags[needle] = [tag]
        level = max(k for k in _LEVELS if k <= size)
        lengths = self._levels[level].setdefault(needle[:level], [])
        if size not in lengths:
            lengths.append(size)
        key = key_of(needle[:4])
        self.keys.add(key)
        levels = self._key_levels.setdefault(key, [])
        if level not in levels:
            levels.append(level)

    def find(self, lowered: bytes, windows: set[int]) -> Iterator[tuple[int, bytes, list]]:
        """Yield ``(position, needle, tags)`` for each needle occurring in ``lowered``."""
        hits = windows & self.keys
        if not hits:
            return
        tags = self._tags
        levels = self._levels
        key_levels = self._key_levels
        for p, key in hit_positions(lowered, hits):
            for k in key_levels[key]:
                lengths = levels[k].get(lowered[p : p + k])
                if lengths:
                    for size in lengths:
                        found = tags.get(lowered[p : p + size])
                        if found is not None:
                            yield p, lowered[p : p + size], found
