"""DeduplicationStage: drop frames whose captured bytes repeat a recent frame."""

from __future__ import annotations

from zlib import crc32

from pktmask.capture.packet import Packet
from pktmask.core.pipeline.stage import FileContext, Stage


class DeduplicationStage(Stage):
    """Drops a frame equal (captured bytes) to one of the last ``window`` frames.

    With a window, the remembered frames themselves are the keys, so equality
    is exact and memory is bounded by the window. ``window`` 0 remembers the
    whole file by a 96-bit fingerprint per distinct frame (Python's hash and a
    CRC-32) instead, about 100 bytes each.
    """

    name = "dedup"

    def __init__(self, window: int = 1000):
        if window < 0:
            raise ValueError("dedup window must be >= 0")
        self.window = window
        self.start(None)

    def start(self, ctx: FileContext | None) -> None:
        self._seen: dict[bytes, int] = {}  # frame -> how many frames in the window carry it
        self._prints: set[tuple[int, int]] = set()  # window 0: fingerprints of the frames seen
        # The window's frames, oldest at ``_next`` once full: a ring (list) costs less
        # per frame than a deque's method calls, and grows only as frames come.
        self._ring: list[bytes] = []
        self._next = 0
        self.removed = 0

    def process(self, pkt: Packet) -> Packet | None:
        data = pkt.data
        if type(data) is not bytes:
            data = bytes(data)
        if not self.window:
            key = (hash(data), crc32(data))
            if key in self._prints:
                self.removed += 1
                return None
            self._prints.add(key)
            return pkt
        seen = self._seen
        # Every frame read counts toward the window, dropped or kept (as editcap -D).
        count = seen.get(data)
        seen[data] = 1 if count is None else count + 1
        ring = self._ring
        if len(ring) < self.window:
            ring.append(data)
        else:
            i = self._next
            old = ring[i]
            ring[i] = data
            self._next = i + 1 if i + 1 < self.window else 0
            left = seen[old] - 1
            if left:
                seen[old] = left
            else:
                del seen[old]
        if count is not None:
            self.removed += 1
            return None
        return pkt

    def replayed_drop(self) -> None:
        self.removed += 1

    def finish(self) -> dict[str, int]:
        removed = self.removed
        self.start(None)
        return {"duplicates_removed": removed}
