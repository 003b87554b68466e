"""DeduplicationStage: drop frames whose captured bytes repeat a recent frame."""

from __future__ import annotations

from typing import Final
from zlib import crc32

from pktmask.capture.packet import Packet
from pktmask.core.pipeline.stage import FileContext, Stage

# Frames are filed under their first KEY_BYTES bytes (the whole frame when shorter): hashing
# a short key costs a fraction of hashing a whole frame, and the headers there (IP ID, TCP
# sequence and checksum) nearly always tell frames apart. Frames under one key are then
# compared whole, so the test stays exact. A key that files more than CROWDED frames (many
# frames alike in their first bytes: a tunnel's long headers) files them by their whole bytes
# instead, so one frame never costs more than a whole-frame hash.
KEY_BYTES: Final = 96
CROWDED: Final = 8


class DeduplicationStage(Stage):
    """Drops a frame equal (captured bytes) to one of the last ``window`` frames.

    With a window, the remembered frames are filed by their first KEY_BYTES bytes and
    compared whole, so equality is exact and memory is bounded by the window. ``window``
    0 remembers the whole file by a 96-bit fingerprint per distinct frame (Python's hash
    and a CRC-32) instead, about 100 bytes each.
    """

    name = "dedup"

    def __init__(self, window: int = 1000):
        if window < 0:
            raise ValueError("dedup window must be >= 0")
        self.window = window
        self.start(None)

    def start(self, ctx: FileContext | None) -> None:
        # key -> the window's frames filed under it: one frame as itself, a few as a list
        # (a duplicate or a frame sharing the key), more as a dict frame -> how many. Every
        # frame read counts toward the window, dropped or kept (as editcap -D), so
        # duplicates are filed too.
        self._seen: dict[bytes, object] = {}
        self._prints: set[tuple[int, int]] = set()  # window 0: fingerprints of the frames seen
        # The window's frames and their keys, oldest at ``_next`` once full: rings (lists)
        # cost less per frame than a deque's method calls, and grow only as frames come.
        self._ring: list[bytes] = []
        self._keys: list[bytes] = []
        self._next = 0
        self.removed = 0

    def process(self, pkt: Packet) -> Packet | None:
        data = pkt.data
        if type(data) is not bytes:
            data = bytes(data)
        if not self.window:
            key2 = (hash(data), crc32(data))
            if key2 in self._prints:
                self.removed += 1
                return None
            self._prints.add(key2)
            return pkt
        key = data[:KEY_BYTES] if len(data) > KEY_BYTES else data
        seen = self._seen
        filed = seen.get(key)
        if filed is None:
            dup = False
            seen[key] = data
        elif isinstance(filed, list):
            dup = data in filed
            filed.append(data)
            if len(filed) > CROWDED:
                counts: dict[bytes, int] = {}
                for frame in filed:
                    counts[frame] = counts.get(frame, 0) + 1
                seen[key] = counts
        elif isinstance(filed, dict):
            count = filed.get(data)
            dup = count is not None
            filed[data] = 1 if count is None else count + 1
        else:
            dup = filed == data
            seen[key] = [filed, data]
        ring = self._ring
        if len(ring) < self.window:
            ring.append(data)
            self._keys.append(key)
        else:
            i = self._next
            old = ring[i]
            old_key = self._keys[i]
            ring[i] = data
            self._keys[i] = key
            self._next = i + 1 if i + 1 < self.window else 0
            filed = seen[old_key]
            if isinstance(filed, list):
                filed.remove(old)  # the first equal one: equal frames are interchangeable
                if len(filed) == 1:
                    seen[old_key] = filed[0]
            elif isinstance(filed, dict):
                left = filed[old] - 1
                if left:
                    filed[old] = left
                else:
                    del filed[old]
                    if not filed:
                        del seen[old_key]
            else:
                del seen[old_key]
        if dup:
            self.removed += 1
            return None
        return pkt

    def replayed_drop(self) -> None:
        self.removed += 1

    def finish(self) -> dict[str, int]:
        removed = self.removed
        self.start(None)
        return {"duplicates_removed": removed}
