"""Dedup compares whole frames, not a prefix (issue 17).

Real frames share long prefixes (the same Ethernet, IP and TCP headers up to
the sequence number, or a fixed-size header and a different payload): 100+
byte frames equal in their first 64 bytes and different later are all kept,
with a window and with the whole-file fingerprints (window 0).
"""

from __future__ import annotations

import pytest

from pktmask.capture.packet import Packet
from pktmask.stages.dedup import DeduplicationStage

HEAD = bytes(range(64))


def frames() -> list[bytes]:
    out = []
    for size in (100, 128, 1514):
        for k in range(4):
            body = bytearray(size - 64)
            body[-1 - k] = 1 + k  # differ only near the end
            out.append(HEAD + bytes(body))
        out.append(HEAD + bytes(size - 64))
    # Same first 64 bytes, different at byte 64 only, and equal lengths throughout.
    out += [HEAD + bytes([b]) + bytes(99) for b in (1, 2, 3)]
    return out


def run(stage, data):
    kept = [p.data for p in (stage.process(Packet(d, 1, 0, 0, len(d))) for d in data) if p is not None]
    return kept, stage.finish()["duplicates_removed"]


@pytest.mark.parametrize("window", [0, 1, 2, 1000])
def test_frames_equal_in_a_long_prefix_are_all_kept(window):
    data = frames()
    assert len(set(data)) == len(data) and len({d[:64] for d in data}) == 1
    kept, removed = run(DeduplicationStage(window=window), data)
    assert kept == data and removed == 0


@pytest.mark.parametrize("window", [0, 1000])
def test_exact_repeats_of_long_frames_are_still_dropped(window):
    data = frames()
    kept, removed = run(DeduplicationStage(window=window), data + data)
    assert kept == data and removed == len(data)
