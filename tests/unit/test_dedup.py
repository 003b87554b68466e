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
    assert len(stage._seen) <= 10 and len(stage._ring) <= 10


def test_finish_resets_between_files():
    stage = DeduplicationStage()
    run(stage, [b"x"])
    kept, removed = run(stage, [b"x"])
    assert kept == [b"x"] and removed == 0


def test_window_matches_a_naive_model():
    """A frame is a duplicate iff it equals one of the ``window`` frames read just before it."""
    import random

    rng = random.Random(7)
    frames = [bytes([rng.randrange(6)]) for _ in range(3000)]
    for window in (1, 2, 3, 5, 17):
        expected = [f for i, f in enumerate(frames) if f not in frames[max(0, i - window) : i]]
        kept, removed = run(DeduplicationStage(window=window), frames)
        assert kept == expected and removed == len(frames) - len(expected)


def test_frames_sharing_a_key_match_the_naive_model():
    """Frames longer than the key, many under one key: still exactly the naive model."""
    import random

    from pktmask.stages.dedup import KEY_BYTES

    rng = random.Random(11)
    heads = [bytes([h]) * KEY_BYTES for h in range(2)]
    frames = [rng.choice(heads) + bytes([rng.randrange(3)]) * rng.randrange(1, 3) for _ in range(3000)]
    for window in (1, 2, 3, 5, 17, 1000):
        expected = [f for i, f in enumerate(frames) if f not in frames[max(0, i - window) : i]]
        kept, removed = run(DeduplicationStage(window=window), frames)
        assert kept == expected and removed == len(frames) - len(expected)


def test_crowded_keys_match_the_naive_model():
    """Many different frames under one key (a tunnel's long identical headers) are filed by
    their whole bytes past CROWDED: still exactly the naive model, and the state stays bounded."""
    import random

    from pktmask.stages.dedup import CROWDED, KEY_BYTES

    rng = random.Random(5)
    head = bytes(KEY_BYTES)
    frames = [head + bytes([rng.randrange(4 * CROWDED)]) for _ in range(5000)]
    for window in (CROWDED, 3 * CROWDED, 1000):
        expected = [f for i, f in enumerate(frames) if f not in frames[max(0, i - window) : i]]
        stage = DeduplicationStage(window=window)
        kept, removed = run(stage, frames)
        assert kept == expected and removed == len(frames) - len(expected)
    stage = DeduplicationStage(window=CROWDED)
    for i in range(3000):  # every frame different, all under one key, then another key
        stage.process(Packet(head + i.to_bytes(2, "big"), 1, 0, 0, KEY_BYTES + 2))
    for i in range(3 * CROWDED):
        stage.process(Packet(bytes([1]) * KEY_BYTES + i.to_bytes(2, "big"), 1, 0, 0, KEY_BYTES + 2))
    assert head not in stage._seen and len(stage._ring) == CROWDED
