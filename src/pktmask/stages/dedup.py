"""DeduplicationStage: drop frames whose captured bytes repeat a recent frame."""

from __future__ import annotations

from collections import deque
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
        self._seen: dict = {}  # key -> how many frames in the window carry it
        self._order: deque = deque()
        self.removed = 0

    def rewind(self) -> None:
        self.start(None)

    def process(self, pkt: Packet) -> Packet | None:
        data = pkt.data
        if type(data) is not bytes:
            data = bytes(data)
        seen = self._seen
        if not self.window:
            key = (hash(data), crc32(data))
            if key in seen:
                self.removed += 1
                return None
            seen[key] = 1
            return pkt
        # Every frame read counts toward the window, dropped or kept (as editcap -D).
        order = self._order
        order.append(data)
        count = seen.get(data)
        seen[data] = 1 if count is None else count + 1
        if len(order) > self.window:
            old = order.popleft()
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
