"""The decision stream's codec (pktmask.mask.codec, moved by pktmask.mask.decisions).

Every record kind goes through an encode/decode round trip (property test);
a stream out of step with the capture fails at its first packet out of step;
a stream cut short fails instead of being read as if complete.
"""

from __future__ import annotations

import os
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pktmask.capture.packet import Packet
from pktmask.errors import (
    DiskFullError,
    InputError,
    InternalError,
    PktmaskError,
    UnsupportedLinkTypeError,
)
from pktmask.mask import codec
from pktmask.mask.codec import (
    NO_LENGTH,
    V_FULL,
    V_PARTIAL,
    fragment_record,
    length_record,
    verdict_dropped,
    verdict_general,
    verdict_layout,
)
from pktmask.mask.decisions import DecisionStream

U32 = st.integers(0, 2**32 - 1)
U16 = st.integers(0, 2**16 - 1)
U8 = st.integers(0, 255)

verdicts = st.one_of(
    st.tuples(st.just("general")),
    st.tuples(st.just("dropped"), U8),
    st.tuples(st.sampled_from([V_FULL, V_PARTIAL]), U8, U8, U8, st.booleans(), U8, U32, U16, U16),
)
ranges = st.lists(st.tuples(U32, U32), max_size=5)
replacements = st.lists(st.tuples(U32, st.binary(max_size=20)), max_size=4)
fragments = st.one_of(st.none(), st.tuples(ranges, replacements, st.one_of(st.just(-1), st.integers(0, 0xFFFE))))
packets = st.lists(
    st.tuples(verdicts, st.lists(st.one_of(st.none(), U32), max_size=3),
              st.one_of(st.none(), st.tuples(ranges, replacements)), fragments),
    max_size=300,
)


def _parts(pkt):
    """(verdict, lengths, segment, fragment): tests write packets without a fragment too."""
    return pkt if len(pkt) == 4 else (*pkt, None)


def encode(pkts, end=("trailer", 0, 0)) -> bytes:
    """The stream a pre-pass writes for ``pkts``, ended by ``end``."""
    w = DecisionStream()  # no file context: memory
    for n, pkt in enumerate(pkts):
        verdict, lengths, segment, frag = _parts(pkt)
        if verdict[0] == "general":
            w.write(verdict_general(n))
        elif verdict[0] == "dropped":
            w.write(verdict_dropped(n, verdict[1]))
        else:
            w.write(verdict_layout(n, *verdict))
        for length in lengths:
            w.ranges(NO_LENGTH if length is None else length_record(length))
        if frag is not None:
            w.ranges(fragment_record(*frag))  # queued by the tracker as an encoded record
        if segment is not None:
            keep, repl = segment
            w.replacements(repl)
            w.ranges(keep)
    if end[0] == "trailer":
        w.finish_writing(*end[1:])
    elif end[0] == "failure":
        w.write_failure(end[1](end[2], "in.pcap"))
    return w.getvalue()


def decode(r: DecisionStream, pkts) -> tuple[int, int, int]:
    """Read ``pkts`` back from ``r``, checking every field; returns the trailer."""
    for p in pkts:
        verdict, lengths, segment, frag = _parts(p)
        pkt = Packet(b"", 1, 0, 0, 0)
        got = r.read_verdict(pkt)
        if verdict[0] == "general":
            assert (got, pkt.layout, r.sums) == (-1, None, False)
        elif verdict[0] == "dropped":
            assert got == verdict[1]
        else:
            kind, l3, l4, proto, v6, ps, end, tsum, isum = verdict
            assert got == -1
            assert pkt.layout == (l3, l4, proto, end, v6, kind == V_FULL, ps)
            assert r.sums == (kind == V_FULL)
            assert (r.tsum, r.isum) == (tsum, isum)
        assert [r.read_length() for _ in lengths] == [-1 if x is None else x for x in lengths]
        if frag is not None:
            keep, repl, extra = frag
            assert r.read_fragment() == (keep, max(extra, 0))
            assert r.replaced == (repl if keep and repl else None)
        if segment is not None:
            keep, repl = segment
            if not keep and not repl and r.skip_empty():
                continue
            assert r.read_segment() == keep
            assert r.replaced == (repl or None)
    return r.read_trailer()


@settings(max_examples=60, deadline=None)
@given(packets, U32, U32, U32, U32)
def test_round_trip_every_record_kind(pkts, tls, http, names, dns):
    r = DecisionStream()
    r.load(encode(pkts, ("trailer", tls, http, names, dns)))
    assert decode(r, pkts) == (tls, http, names, dns)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(packets, st.integers(1, 7))
def test_round_trip_through_a_pipe_in_small_writes(pkts, step):
    """Through a pipe, reads end anywhere in a record: the decoder refills mid-record."""
    data = encode(pkts, ("trailer", 5, 6))
    rfd, wfd = os.pipe()

    def feed():
        for i in range(0, len(data), step):
            os.write(wfd, data[i : i + step])
        os.close(wfd)

    writer = threading.Thread(target=feed)
    writer.start()
    r = DecisionStream()
    r.attach(read_fd=rfd)
    try:
        assert decode(r, pkts) == (5, 6, 0, 0)
    finally:
        writer.join()
        r.close()


@settings(max_examples=30, deadline=None)
@given(packets, st.sampled_from([PktmaskError, InputError, UnsupportedLinkTypeError, DiskFullError, InternalError]),
       st.text(max_size=50))
def test_failure_is_raised_where_the_reader_meets_it(pkts, cls, message):
    """The pre-pass's error arrives with its class (and so its exit code), message and file."""
    r = DecisionStream()
    r.load(encode(pkts, ("failure", cls, message)))
    with pytest.raises(PktmaskError) as info:
        decode(r, pkts)
    assert type(info.value) is cls and info.value.exit_code == cls.exit_code
    assert info.value.message == message and info.value.path == "in.pcap"


@settings(max_examples=30, deadline=None)
@given(packets.filter(bool), st.data())
def test_truncated_stream_is_detected(pkts, data):
    full = encode(pkts)
    cut = data.draw(st.integers(0, len(full) - 1))
    r = DecisionStream()
    r.load(full[:cut])
    with pytest.raises(RuntimeError, match="out of step with the capture: the decisions end early"):
        decode(r, pkts)


def test_truncated_pipe_is_the_pre_pass_ending():
    full = encode([(("general",), [], ([(0, 4)], []))] * 3)
    rfd, wfd = os.pipe()
    os.write(wfd, full[:-3])
    os.close(wfd)
    r = DecisionStream()
    r.attach(read_fd=rfd)
    with pytest.raises(PktmaskError, match="pre-pass process ended unexpectedly"):
        decode(r, [(("general",), [], ([(0, 4)], []))] * 3)
    r.close()


SIMPLE = [(("general",), [], None)] * 10


def test_a_missing_verdict_fails_at_that_packet():
    data = encode(SIMPLE)
    verdict = len(verdict_general(0))
    r = DecisionStream()
    r.load(data[: 3 * verdict] + data[4 * verdict :])  # packet 4 (from 1) lost its verdict
    for _ in range(3):
        assert r.read_verdict(Packet(b"", 1, 0, 0, 0)) == -1
    with pytest.raises(RuntimeError, match="out of step with the capture at packet 4 "):
        r.read_verdict(Packet(b"", 1, 0, 0, 0))


def test_a_verdict_wrapped_around_is_still_caught():
    """The index is modulo 256: a stream 256 packets off looks in step, one off does not."""
    r = DecisionStream()
    w = DecisionStream()
    for n in range(300):
        w.write(verdict_general(n if n < 200 else n + 1))
    w.finish_writing(0, 0)
    r.load(w.getvalue())
    for _ in range(200):
        r.read_verdict(Packet(b"", 1, 0, 0, 0))
    with pytest.raises(RuntimeError, match="at packet 201 .*verdict of packet 202 modulo 256"):
        r.read_verdict(Packet(b"", 1, 0, 0, 0))


def test_a_missing_record_fails_at_its_packet():
    """Packet 2's keep ranges were not written: reading them meets packet 3's verdict."""
    w = DecisionStream()
    for n in range(4):
        w.write(verdict_general(n))
        if n != 1:
            w.ranges([(0, 1)])
    w.finish_writing(0, 0)
    r = DecisionStream()
    r.load(w.getvalue())
    r.read_verdict(Packet(b"", 1, 0, 0, 0))
    assert r.read_segment() == [(0, 1)]
    r.read_verdict(Packet(b"", 1, 0, 0, 0))
    with pytest.raises(RuntimeError, match="at packet 2 .*found record tag 0xa0"):
        r.read_segment()


def test_a_record_of_another_kind_fails():
    """A LENGTH where a segment's ranges are expected (the producer's and the consumer's
    conditions disagree) fails at once."""
    w = DecisionStream()
    w.write(verdict_general(0))
    w.ranges(length_record(60))
    w.finish_writing(0, 0)
    r = DecisionStream()
    r.load(w.getvalue())
    r.read_verdict(Packet(b"", 1, 0, 0, 0))
    with pytest.raises(RuntimeError, match="at packet 1 .*found record tag 0xb3"):
        r.read_segment()


def test_a_trailer_too_early_fails():
    r = DecisionStream()
    r.load(encode(SIMPLE[:2]))
    decode(r, SIMPLE[:2])
    r = DecisionStream()
    r.load(encode(SIMPLE[:2]))
    with pytest.raises(RuntimeError, match="at packet 3 .*found record tag 0xc0"):
        decode(r, SIMPLE[:3])


@given(st.integers(0, 2**32 - 1), st.sampled_from([codec.V_FULL, codec.V_PARTIAL]), st.integers(0, 255),
       st.integers(0, 255), st.integers(0, 255), st.booleans(), st.integers(0, 255), st.integers(0, 2**32 - 1),
       st.integers(0, 0xFFFE), st.integers(0, 0xFFFE))
def test_verdict_layout_is_the_struct_layout(packet, kind, l3, l4, proto, v6, ps, end, tsum, isum):
    """``verdict_layout`` builds its bytes by hand: exactly the VERDICT struct's."""
    assert codec.verdict_layout(packet, kind, l3, l4, proto, v6, ps, end, tsum, isum) == codec.VPACK(
        kind, 0, packet & 0xFF, l3, l4, proto, v6, ps, end, tsum, isum)
