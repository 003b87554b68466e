"""DeduplicationStage: drop frames whose captured bytes repeat a recent frame."""

from __future__ import annotations

from collections import deque
from hashlib import blake2b

from pktmask.capture.packet import Packet
from pktmask.core.pipeline.stage import FileContext, Stage


class DeduplicationStage(Stage):
    """Drops a frame equal (captured bytes) to one of the last ``window`` frames.

    ``window`` 0 remembers the whole file. Frames are remembered by a 128-bit
    BLAKE2b digest, so memory is bounded by the window (about 100 bytes per
    remembered frame), not by frame sizes.
    """

    name = "dedup"

    def __init__(self, window: int = 1000):
        if window < 0:
            raise ValueError("dedup window must be >= 0")
        self.window = window
        self.start(None)

    def start(self, ctx: FileContext | None) -> None:
        self._seen: dict[bytes, int] = {}  # digest -> how many frames in the window carry it
        self._order: deque[bytes] = deque()
        self.removed = 0

    def process(self, pkt: Packet) -> Packet | None:
        digest = blake2b(pkt.data, digest_size=16).digest()
        seen = self._seen
        duplicate = digest in seen
        if self.window:
            # Every frame read counts toward the window, dropped or kept (as editcap -D).
            order = self._order
            order.append(digest)
            seen[digest] = seen.get(digest, 0) + 1
            if len(order) > self.window:
                old = order.popleft()
                left = seen[old] - 1
                if left:
                    seen[old] = left
                else:
                    del seen[old]
        elif not duplicate:
            seen[digest] = 1
        if duplicate:
            self.removed += 1
            return None
        return pkt

    def finish(self) -> dict[str, int]:
        removed = self.removed
        self.start(None)
        return {"duplicates_removed": removed}
