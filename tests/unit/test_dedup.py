"""DeduplicationStage: window semantics and counts."""

from __future__ import annotations

from pktmask.capture.packet import Packet
from pktmask.stages.dedup import DeduplicationStage


def run(stage, payloads):
    kept = [p.data for p in (stage.process(Packet(d, 1, 0, 0, len(d))) for d in payloads) if p is not None]
    return kept, stage.finish()["duplicates_removed"]


def test_consecutive_duplicates_dropped():
    kept, removed = run(DeduplicationStage(), [b"a", b"a", b"b", b"a"])
    assert kept == [b"a", b"b"] and removed == 2


def test_window_limits_memory_and_reach():
    # With a window of 2, a frame repeated 3 frames later is no longer remembered.
    kept, removed = run(DeduplicationStage(window=2), [b"a", b"b", b"c", b"a"])
    assert kept == [b"a", b"b", b"c", b"a"] and removed == 0
    kept, removed = run(DeduplicationStage(window=3), [b"a", b"b", b"c", b"a"])
    assert removed == 1


def test_window_zero_is_whole_file():
    frames = [bytes([i % 251]) * 3 for i in range(5000)]
    kept, removed = run(DeduplicationStage(window=0), frames)
    assert len(kept) == 251 and removed == 5000 - 251


def test_bounded_state():
    stage = DeduplicationStage(window=10)
    for i in range(10_000):
        stage.process(Packet(i.to_bytes(4, "big"), 1, 0, 0, 4))
    assert len(stage._seen) <= 10 and len(stage._order) <= 10


def test_finish_resets_between_files():
    stage = DeduplicationStage()
    run(stage, [b"x"])
    kept, removed = run(stage, [b"x"])
    assert kept == [b"x"] and removed == 0
