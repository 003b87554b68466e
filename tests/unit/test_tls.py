"""Tests for the incremental TLS record walker (pktmask.proto.tls)."""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pktmask.proto.tls import (
    MAX_RECORD_LEN,
    TlsParser,
    is_record_header,
    plausible_start,
    walk_records,
)

KEEP_TYPES = (20, 21, 22)


def rec(ctype: int, body: bytes, version: int = 0x0303) -> bytes:
    """Build one TLS record."""
    return struct.pack("!BHH", ctype, version, len(body)) + body


def body(n: int, seed: int = 1) -> bytes:
    """Deterministic non-zero filler so zeroing is visible."""
    return bytes((seed + 7 * i) % 255 + 1 for i in range(n))


def hs(n: int, seed: int = 1) -> bytes:
    """A handshake record body of ``n`` (>= 4) bytes: one message of an unknown type, whose
    4-byte header is kept and body zeroed (docs/policy.md, TLS)."""
    return bytes([0xFE]) + (n - 4).to_bytes(3, "big") + body(n - 4, seed)


def expected_mask(*records: tuple[int, bytes]) -> tuple[bytes, bytes]:
    """Return (stream, stream as the caller should write it) for well-formed records
    (handshake bodies from ``hs``): record headers kept; handshake message headers until this
    direction's change_cipher_spec (then encrypted, zeroed); a one-byte change_cipher_spec; a
    two-byte alert; every other body zeroed."""
    data = b"".join(rec(t, b) for t, b in records)
    out = []
    enc = False
    for t, b in records:
        w = bytes(len(b))
        if t == 22 and not enc:
            w = b[:4] + bytes(len(b) - 4)
        elif t == 20:
            enc = True
            if len(b) == 1:
                w = b
        elif t == 21 and len(b) == 2:
            w = b
        out.append(rec(t, w))
    return data, b"".join(out)


def merge(ranges):
    out: list[list[int]] = []
    for s, e in sorted(ranges):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [tuple(r) for r in out]


def run(parser: TlsParser, chunks, base: int | None = None):
    """Feed chunks, check the interface invariants after each, return the merged keep ranges."""
    got = []
    prev_decided = parser.decided
    for ch in chunks:
        parser.feed(ch)
        rs = parser.take_ranges()
        assert rs == sorted(rs)
        for (_, e1), (s2, _) in zip(rs, rs[1:], strict=False):
            assert e1 < s2, "ranges of one take must be merged and disjoint"
        for s, e in rs:
            assert prev_decided <= s < e <= parser.pos
        assert prev_decided <= parser.decided <= parser.pos
        prev_decided = parser.decided
        got += rs
    return merge(got)


def counters(p: TlsParser):
    return (p.records, p.records_masked, p.handshake_records, p.synced)


def apply(data: bytes, ranges, base: int = 0) -> bytes:
    out = bytearray(len(data))
    for s, e in ranges:
        out[s - base : e - base] = data[s - base : e - base]
    return bytes(out)


def split(data: bytes, cuts) -> list[bytes]:
    pts = [0, *sorted(set(cuts)), len(data)]
    return [data[a:b] for a, b in zip(pts, pts[1:], strict=False) if b > a]


def check_split_invariant(data: bytes, cuts_list) -> tuple[list, tuple]:
    ref_p = TlsParser()
    ref = run(ref_p, [data])
    for cuts in cuts_list:
        p = TlsParser()
        assert run(p, split(data, cuts)) == ref, cuts
        assert counters(p) == counters(ref_p), cuts
        assert p.decided == p.pos == len(data)
    return ref, counters(ref_p)


TLS12_CLIENT = (
    (22, hs(220, 1)),  # ClientHello
    (22, hs(70, 2)),  # ClientKeyExchange
    (20, b"\x01"),
    (22, body(40, 3)),  # encrypted Finished: still a handshake record, zeroed
    (23, body(300, 4)),
    (21, body(26, 5)),  # encrypted close_notify
)
TLS13_SERVER = (
    (22, hs(122, 6)),  # ServerHello
    (20, b"\x01"),  # middlebox-compat CCS
    (23, body(2500, 7)),  # encrypted EncryptedExtensions..Finished
    (23, body(16401, 8)),  # application data, full-size record
    (23, b""),  # empty application_data is legal
)


# --- pure helpers ----------------------------------------------------------


@pytest.mark.parametrize(
    "hdr, ok",
    [
        (b"\x16\x03\x01\x00\x10", True),
        (b"\x14\x03\x03\x00\x01", True),
        (b"\x18\x03\x03\x00\x10", True),
        (b"\x17\x03\x04\x00\x00", True),  # empty app data
        (b"\x16\x03\x03\x00\x00", False),  # empty handshake is illegal
        (b"\x18\x03\x03\x00\x00", False),
        (b"\x13\x03\x03\x00\x10", False),
        (b"\x19\x03\x03\x00\x10", False),
        (b"\x16\x02\x00\x00\x10", False),
        (b"\x16\x03\x05\x00\x10", False),
        (struct.pack("!BHH", 23, 0x0303, MAX_RECORD_LEN), True),
        (struct.pack("!BHH", 23, 0x0303, MAX_RECORD_LEN + 1), False),
        (b"\x16\x03\x01\x00", False),  # too short
        (b"GET /", False),
    ],
)
def test_is_record_header(hdr, ok):
    assert is_record_header(hdr) is ok
    assert is_record_header(b"xx" + hdr, 2) is ok


def test_walk_records_stops_at_incomplete_or_invalid():
    data = rec(22, b"a" * 10) + rec(23, b"") + rec(23, b"b" * 3)
    assert walk_records(data) == [(0, 22, 10), (15, 23, 0), (20, 23, 3)]
    assert walk_records(data[:-1]) == [(0, 22, 10), (15, 23, 0)]
    assert walk_records(data + b"\x00junk") == walk_records(data)
    assert walk_records(b"") == []


def test_plausible_start_chaining():
    good = rec(22, b"h" * 8) + rec(23, b"x" * 4)
    assert plausible_start(good)
    assert plausible_start(good[:7])  # record ends beyond the buffer: accepted
    assert plausible_start(good[:13])  # next header absent entirely
    assert plausible_start(good[:15])  # next header partial but a valid prefix
    bad_next = rec(22, b"h" * 8) + b"\x99\x03\x03\x00\x04"
    assert not plausible_start(bad_next)
    assert not plausible_start(bad_next[:14])  # a bad prefix is enough to reject
    assert not plausible_start(b"\x16\x03")


# --- walking in sync -------------------------------------------------------


def test_tls12_flow_single_chunk():
    data, want = expected_mask(*TLS12_CLIENT)
    p = TlsParser()
    ranges = run(p, [data])
    assert apply(data, ranges) == want
    assert (p.records, p.records_masked, p.handshake_records) == (6, 1, 3)
    assert p.synced and p.decided == p.pos == len(data)


def test_tls13_flow_encrypted_handshake_is_zeroed():
    data, want = expected_mask(*TLS13_SERVER)
    p = TlsParser()
    ranges = run(p, [data])
    assert apply(data, ranges) == want
    # Header of the first type-23 record kept, its body not.
    off = 5 + 122 + 6
    assert data[off] == 23 and any(s <= off and off + 5 == e for s, e in ranges)
    assert (p.records, p.records_masked, p.handshake_records) == (5, 2, 1)


def test_record_spanning_many_chunks_and_memoryview():
    data, want = expected_mask((22, hs(5000, 3)), (23, body(16000, 9)), (21, b"\x01\x00"))
    p = TlsParser(pos=10_000)
    chunks = [memoryview(data)[i : i + 1000] for i in range(0, len(data), 1000)]
    ranges = run(p, chunks)
    assert apply(data, ranges, base=10_000) == want
    assert p.records == 3 and p.decided == 10_000 + len(data)


def test_header_split_leaves_bytes_undecided_until_complete():
    data = rec(22, hs(4)) + rec(23, b"a" * 4)
    p = TlsParser()
    p.feed(data[:12])  # second header: 3 of its 5 bytes
    assert p.take_ranges() == [(0, 9)]
    assert p.decided == 9 and p.pos == 12
    p.feed(data[12:13])
    assert p.take_ranges() == [] and p.decided == 9 and p.pos == 13
    p.feed(data[13:])
    assert p.take_ranges() == [(9, 14)]
    assert p.decided == p.pos == len(data)


@pytest.mark.parametrize("flow", [TLS12_CLIENT, TLS13_SERVER], ids=["tls12", "tls13"])
def test_split_at_every_position(flow):
    data, want = expected_mask(*flow)
    if len(data) > 3000:
        data, want = expected_mask(*flow[:3], (23, body(300)), (23, b""))
    ref, _ = check_split_invariant(data, [[k] for k in range(1, len(data))])
    assert apply(data, ref) == want


def test_split_headers_two_cuts_everywhere():
    data, want = expected_mask((22, hs(5)), (23, b"a" * 2), (21, b"zz"), (20, b"\x01"))
    cuts = [[a, b] for a in range(1, len(data)) for b in range(a + 1, len(data))]
    ref, _ = check_split_invariant(data, cuts)
    assert apply(data, ref) == want


records_st = st.lists(
    st.tuples(st.sampled_from([20, 21, 22, 23, 24]), st.integers(0, 700)).map(
        lambda t: (t[0], hs(max(4, t[1]), t[1]) if t[0] == 22 else body(t[1] or (0 if t[0] == 23 else 1), t[1]))
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=150, deadline=None)
@given(records=records_st, data=st.data())
def test_random_records_random_splits(records, data):
    stream, want = expected_mask(*records)
    cuts = data.draw(st.lists(st.integers(1, max(1, len(stream) - 1)), max_size=12))
    single_bytes = data.draw(st.booleans())
    ref, cnt = check_split_invariant(stream, [cuts])
    assert apply(stream, ref) == want
    assert cnt[0] == len(records)
    if single_bytes and len(stream) < 600:
        check_split_invariant(stream, [list(range(1, len(stream)))])


# --- losing and regaining sync ----------------------------------------------


def test_garbage_loses_sync_and_zeroes_rest_of_chunk():
    good = rec(22, hs(10))
    data = good + b"GARBAGE!" + rec(22, hs(10))
    p = TlsParser()
    ranges = run(p, [data])
    assert ranges == [(0, 9)]
    assert not p.synced and p.decided == p.pos
    # A later chunk that starts with a record header resyncs.
    nxt = rec(22, hs(4))
    assert run(p, [nxt]) == [(len(data), len(data) + len(nxt))]
    assert p.synced


def test_partial_garbage_header_fails_early():
    p = TlsParser()
    p.feed(rec(22, hs(4)) + b"\x99")
    assert not p.synced and p.decided == p.pos == 10
    assert p.take_ranges() == [(0, 9)]


def test_no_resync_inside_a_chunk():
    p = TlsParser(synced=False)
    ranges = run(p, [b"junk" + rec(22, b"h" * 10)])
    assert ranges == [] and not p.synced


def test_gap_then_resync_requires_chaining():
    p = TlsParser()
    run(p, [rec(22, hs(10))])
    p.gap(1000)
    assert not p.synced and p.pos == p.decided == 1000
    # Starts like a header, but the next "header" inside the chunk is invalid.
    fake = rec(22, b"x" * 6) + b"\x00" * 20
    assert run(p, [fake]) == [] and not p.synced
    # Chained header valid: resync at the chunk start.
    real = rec(22, hs(6)) + rec(23, b"z" * 30)
    start = p.pos
    ranges = run(p, [real])
    assert p.synced
    assert apply(real, ranges, base=start) == rec(22, hs(6)[:4] + bytes(2)) + rec(23, bytes(30))


def test_resync_accepts_record_running_past_chunk():
    p = TlsParser(pos=5, synced=False)
    first = rec(23, body(100))
    run(p, [b"\x01\x02\x03", first[:50]])
    assert p.synced and p.records == 1
    assert run(p, [first[50:] + rec(21, b"\x02\x28")]) == [(5 + 3 + 105, 5 + 3 + 105 + 7)]


def test_mid_stream_start():
    tail = body(3000, 5)  # middle of some application data record
    data, want = expected_mask((23, body(40)), (22, hs(12)))
    p = TlsParser(pos=123_456, synced=False)
    ranges = run(p, [tail[:1460], tail[1460:], data])
    base = 123_456 + len(tail)
    assert apply(data, ranges, base=base) == want
    assert ranges[0][0] == base


def test_gap_inside_body_keeps_sync():
    hello = bytes([1]) + (1996).to_bytes(3, "big") + body(1996)  # a ClientHello: buffered
    data = rec(22, hello) + rec(22, hs(10))
    p = TlsParser()
    r1 = run(p, [data[:500]])
    assert p.decided == 5  # the message is not complete
    p.gap(1500)  # lost 1000 bytes of the handshake body
    assert p.synced and p.decided == 1500
    r2 = run(p, [data[1500:]])
    # The message that lost bytes is zeroed, and so are later handshake bodies (no resync).
    assert merge(r1 + r2) == [(0, 5), (2005, 2010)]
    assert p.records == 2


def test_gap_across_record_boundary_loses_sync():
    data = rec(22, hs(100)) + rec(22, hs(100))
    p = TlsParser()
    run(p, [data[:50]])
    p.gap(120)
    assert not p.synced
    assert run(p, [data[120:]]) == []


def test_gap_with_split_header_pending_loses_sync():
    p = TlsParser()
    p.feed(rec(22, hs(4)) + b"\x16\x03")
    assert p.decided == 9
    p.gap(20)
    assert not p.synced and p.decided == 20
    assert p.take_ranges() == [(0, 9)]


def test_gap_backwards_raises():
    p = TlsParser(pos=10)
    with pytest.raises(ValueError):
        p.gap(5)
    p.gap(10)  # no-op
    assert p.synced


def test_large_stream_is_cheap():
    # 8 MB of application data in 1460-byte segments: only arithmetic per chunk.
    data = b"".join(rec(23, os.urandom(16384)) for _ in range(512))
    p = TlsParser()
    mv = memoryview(data)
    for i in range(0, len(data), 1460):
        p.feed(mv[i : i + 1460])
    ranges = p.take_ranges()
    assert len(ranges) == 512 and p.records_masked == 512 and p.synced
