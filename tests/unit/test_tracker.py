"""Tests for the masking pre-pass stream tracker (pktmask.mask.tracker.StreamTracker).

The tracker is driven directly with ``segment(key, seq, flags, payload)``
calls; ``emit`` must be called once per segment with payload, in capture
order, with the keep ranges relative to that segment's payload. The expected
ranges are computed independently from the stream contents: TLS record
headers and handshake/alert/CCS bodies, HTTP heads minus sensitive values.
"""

from __future__ import annotations

import struct

import pytest

from pktmask.mask import tracker as tracker_mod
from pktmask.mask.codec import NO_LENGTH
from pktmask.mask.datagrams import Reassembly
from pktmask.mask.tracker import StreamTracker

FIN, SYN, RST, PSH_ACK, ACK = 0x01, 0x02, 0x04, 0x18, 0x10
CLIENT, SERVER = bytes([192, 0, 2, 10]), bytes([198, 51, 100, 20])


def key(side: int, sport: int = 40000, dport: int = 443) -> bytes:
    """Direction key: src(4) + dst(4) + sport(2) + dport(2); side 0 is client -> server."""
    if side == 0:
        return CLIENT + SERVER + struct.pack("!HH", sport, dport)
    return SERVER + CLIENT + struct.pack("!HH", dport, sport)


def rec(ctype: int, body: bytes, version: int = 0x0303) -> bytes:
    return struct.pack("!BHH", ctype, version, len(body)) + body


def filler(n: int, seed: int = 1) -> bytes:
    return bytes((seed * 31 + 7 * i) % 251 + 1 for i in range(n))


def hs_record(htype: int = 1, n: int = 40) -> bytes:
    """A handshake record holding one message of type ``htype`` with an ``n``-byte body."""
    # A CertificateVerify: its 4-byte header is kept, its body zeroed (docs/policy.md,
    # TLS); ``htype`` only varies the filler.
    return rec(22, bytes([15]) + n.to_bytes(3, "big") + filler(n, htype))


def tls_keep(stream: bytes, base: int = 0) -> list[tuple[int, int]]:
    """Absolute keep ranges of a TLS stream starting at a record boundary at offset ``base`` (merged)."""
    out: list[list[int]] = []
    i = 0
    enc = False  # after this direction's change_cipher_spec, handshake and alert bodies are encrypted
    while i < len(stream):
        ctype, length = stream[i], struct.unpack_from("!H", stream, i + 3)[0]
        kept = 0
        if ctype == 22 and not enc:
            kept = 4  # the (one, unknown) message's header
        elif ctype == 20:
            enc = True
            kept = 1 if length == 1 else 0
        elif ctype == 21 and length == 2:
            kept = 2
        end = i + 5 + kept
        if out and out[-1][1] == base + i:
            out[-1][1] = base + end
        else:
            out.append([base + i, base + end])
        i += 5 + length
    return [(a, b) for a, b in out]


def within(keep: list[tuple[int, int]], a: int, b: int) -> list[tuple[int, int]]:
    """``keep`` (sorted) merged where adjacent and clipped to [a, b), relative to a."""
    merged: list[list[int]] = []
    for s, e in keep:
        if merged and merged[-1][1] == s:
            merged[-1][1] = e
        else:
            merged.append([s, e])
    return [(max(s, a) - a, min(e, b) - a) for s, e in merged if s < b and e > a]


def runs(keep: list[tuple[int, int]], cuts: list[int]) -> list[tuple[int, int]]:
    """``keep`` split where the first copies' chunks start (the tracker's history runs)."""
    out = []
    for s, e in keep:
        for c in sorted(cuts):
            if s < c < e:
                out.append((s, c))
                s = c
        out.append((s, e))
    return out


def covered(history: list[tuple[int, int]], a: int, b: int) -> list[tuple[int, int]]:
    """What a faithful copy of [a, b) keeps: the runs it covers in full, merged, relative to a."""
    return within([(s, e) for s, e in history if a <= s and e <= b], a, b)


def starts(stream: bytes) -> list[int]:
    out, i = [], 0
    while i < len(stream):
        out.append(i)
        i += 5 + struct.unpack_from("!H", stream, i + 3)[0]
    return out


class Harness:
    """A tracker plus bookkeeping: which emission belongs to which segment."""

    def __init__(self, **bounds):
        self.out: list[list[tuple[int, int]]] = []
        self.t = StreamTracker(self.out.append, **bounds)
        self.segs: list[tuple[int, int, int]] = []  # (side, offset, length) per segment with payload
        self.isn = {0: 1000, 1: 5000}
        self.ports = (40000, 443)

    def syn(self, side: int, isn: int | None = None) -> None:
        if isn is not None:
            self.isn[side] = isn
        self.t.segment(key(side, *self.ports), self.isn[side], SYN | (ACK if side else 0), b"")

    def send(self, side: int, off: int, data: bytes, flags: int = PSH_ACK) -> None:
        """Segment with stream offset ``off`` (0 = first byte after the SYN)."""
        seq = (self.isn[side] + 1 + off) & 0xFFFFFFFF
        self.t.segment(key(side, *self.ports), seq, flags, data)
        if data:
            self.segs.append((side, off, len(data)))

    def cut(self, side: int, stream: bytes, sizes: list[int], base: int = 0) -> list[tuple[int, bytes]]:
        """(offset, bytes) pieces of ``stream`` (placed at ``base``) cut at ``sizes``, the rest last."""
        pieces, pos = [], 0
        for n in sizes:
            pieces.append((base + pos, stream[pos : pos + n]))
            pos += n
        if pos < len(stream):
            pieces.append((base + pos, stream[pos:]))
        return pieces

    def finish(self) -> list[list[tuple[int, int]]]:
        self.t.finish()
        assert len(self.out) == len(self.segs), "one emission per segment with payload"
        return self.out

    def expect(self, keep: dict[int, list[tuple[int, int]]]) -> list[list[tuple[int, int]]]:
        return [within(keep[side], off, off + n) for side, off, n in self.segs]


TLS_CLIENT = hs_record(1, 200) + rec(20, b"\x01") + hs_record(20, 12) + rec(23, filler(300, 3)) \
    + rec(23, filler(5, 4)) + rec(21, b"\x01\x00") + rec(23, b"")
TLS_SERVER = hs_record(2, 70) + hs_record(11, 900) + hs_record(14, 0) + rec(23, filler(1200, 5)) \
    + rec(24, filler(20, 6)) + rec(23, filler(40, 7))


# ---------------------------------------------------------------- TLS in order


@pytest.mark.parametrize("sizes", [[], [100, 100, 100], [9, 200, 3, 2, 400], [205, 1, 1, 1, 1, 1, 17]],
                         ids=["one-segment", "even", "split-headers", "byte-by-byte"])
def test_tls_in_order(sizes):
    """Records spanning segments, several per segment, headers split across segments."""
    h = Harness()
    h.syn(0)
    h.syn(1)
    for off, data in h.cut(0, TLS_CLIENT, sizes):
        h.send(0, off, data)
    for off, data in h.cut(1, TLS_SERVER, [x * 3 for x in sizes]):
        h.send(1, off, data)
    assert h.finish() == h.expect({0: tls_keep(TLS_CLIENT), 1: tls_keep(TLS_SERVER)})
    # application_data and heartbeat records with a body: 2 + 3.
    assert h.t.tls_records_masked == 5


def test_emission_waits_for_split_header_then_comes_in_order():
    """A segment ending inside a record header is emitted once the header completes; order is kept."""
    h = Harness()
    h.syn(0)
    h.syn(1)
    cut = starts(TLS_CLIENT)[1] + 2
    h.send(0, 0, TLS_CLIENT[:cut])  # ends 2 bytes into the CCS record header
    assert h.out == []
    h.send(1, 0, TLS_SERVER[:500])  # the other direction queues behind it
    assert h.out == []
    h.send(0, cut, TLS_CLIENT[cut:])
    assert len(h.out) == 3
    assert h.finish() == h.expect({0: tls_keep(TLS_CLIENT), 1: tls_keep(TLS_SERVER)})


# ---------------------------------------------------------------- reordering, retransmission


def test_out_of_order_later_segment_first():
    h = Harness()
    h.syn(0)
    pieces = h.cut(0, TLS_CLIENT, [150, 150, 150])
    for i in (2, 0, 3, 1):
        h.send(0, *pieces[i])
    assert h.finish() == h.expect({0: tls_keep(TLS_CLIENT)})


def test_first_segment_arrives_last():
    """The sniffer sees the stream's first bytes even when they arrive after later segments."""
    h = Harness()
    h.syn(0)
    pieces = h.cut(0, TLS_CLIENT, [100, 100, 100])
    for i in (3, 2, 1, 0):
        h.send(0, *pieces[i])
    assert h.finish() == h.expect({0: tls_keep(TLS_CLIENT)})


def test_retransmission_gets_original_ranges():
    h = Harness()
    h.syn(0)
    pieces = h.cut(0, TLS_CLIENT, [120, 120, 120])
    for p in pieces:
        h.send(0, *p)
    for p in pieces:  # every segment again, exactly
        h.send(0, *p)
    out = h.finish()
    n = len(pieces)
    assert out[n:] == out[:n]
    assert out == h.expect({0: tls_keep(TLS_CLIENT)})


def test_retransmission_before_decision():
    """A copy of a still-undecided segment (split header) gets the same ranges once decided."""
    h = Harness()
    h.syn(0)
    cut = starts(TLS_CLIENT)[1] + 2
    h.send(0, 0, TLS_CLIENT[:cut])
    h.send(0, 0, TLS_CLIENT[:cut])
    assert h.out == []
    h.send(0, cut, TLS_CLIENT[cut:])
    out = h.finish()
    assert out[0] == out[1] == within(tls_keep(TLS_CLIENT), 0, cut)


def test_overlapping_segments():
    """Repacketized retransmissions overlapping old and new bytes: a copy keeps the kept runs
    of the history it covers in full (their digests match) and its new bytes as parsed; a run
    it covers only in part cannot be checked and is zeroed."""
    h = Harness()
    h.syn(0)
    h.send(0, 0, TLS_CLIENT[:100])
    h.send(0, 50, TLS_CLIENT[50:260])  # half old, half new
    h.send(0, 200, TLS_CLIENT[200:400])
    h.send(0, 10, TLS_CLIENT[10:500])  # covers everything so far and more
    h.send(0, 500, TLS_CLIENT[500:])
    history = runs(tls_keep(TLS_CLIENT), [100, 260, 400, 500])  # where new bytes started
    out = h.finish()
    assert out == [covered(history, a, a + n) for _, a, n in h.segs]
    # The first copies keep everything; a copy never keeps what its first copy zeroed.
    assert [out[0], out[4]] == [within(tls_keep(TLS_CLIENT), 0, 100), within(tls_keep(TLS_CLIENT), 500, 10**6)]


@pytest.mark.parametrize("isn", [0xFFFFFFFF, 0xFFFFFF00, 0xFFFFFFF0 - 205])
def test_sequence_wrap(isn):
    """Sequence numbers wrap past 2^32 inside the stream (one ISN makes seq 0 the first data byte)."""
    h = Harness()
    h.syn(0, isn)
    pieces = h.cut(0, TLS_CLIENT, [100, 100, 100])
    for i in (0, 2, 1, 3):
        h.send(0, *pieces[i])
    h.send(0, *pieces[1])  # a retransmission after the wrap
    assert h.finish() == h.expect({0: tls_keep(TLS_CLIENT)})


# ---------------------------------------------------------------- gaps, mid-stream


def test_gap_inside_record_body_keeps_sync():
    h = Harness()
    h.syn(1)
    s = starts(TLS_SERVER)
    body = s[3] + 100  # inside the 1200-byte data record
    h.send(1, 0, TLS_SERVER[:body])
    h.send(1, body + 500, TLS_SERVER[body + 500 :], flags=PSH_ACK | FIN)
    assert h.finish() == h.expect({1: tls_keep(TLS_SERVER)})


def test_gap_across_header_resyncs_at_next_record_start():
    """Lost bytes holding a header: zeroed until a segment starts on a record boundary again."""
    h = Harness()
    h.syn(1)
    s = starts(TLS_SERVER)
    h.send(1, 0, TLS_SERVER[: s[1] + 10])
    # Lost: the rest of the Certificate record, the ServerHelloDone and the data record header.
    h.send(1, s[3] + 600, TLS_SERVER[s[3] + 600 : s[4]])  # inside the data body: no boundary
    h.send(1, s[4], TLS_SERVER[s[4] :])  # a record boundary: back in step
    out = h.finish()
    keep = tls_keep(TLS_SERVER)
    assert out[0] == within(keep, 0, s[1] + 10)
    assert out[1] == []
    assert out[2] == within(keep, s[4], len(TLS_SERVER))
    assert out[2]


def test_gap_flushed_by_fin_and_by_end_of_capture():
    """Segments after a hole wait for it; FIN (or the end of the capture) gives up on the hole."""
    h = Harness()
    h.syn(0)
    s = starts(TLS_CLIENT)
    h.send(0, 0, TLS_CLIENT[:50])
    h.send(0, s[3], TLS_CLIENT[s[3] :])
    assert len(h.out) == 1  # the second waits for the hole
    h.t.segment(key(0), (1001 + len(TLS_CLIENT)) & 0xFFFFFFFF, FIN | ACK, b"")
    assert len(h.out) == 2
    assert h.finish() == [within(tls_keep(TLS_CLIENT), 0, 50), within(tls_keep(TLS_CLIENT), s[3], len(TLS_CLIENT))]


def test_rst_flushes_both_directions():
    h = Harness()
    h.syn(0)
    h.syn(1)
    h.send(0, 0, TLS_CLIENT[:50])
    h.send(0, 100, TLS_CLIENT[100:150])  # after a hole
    h.send(1, 0, TLS_SERVER[:30])
    h.send(1, 60, TLS_SERVER[60:90])  # after a hole
    assert len(h.out) == 1
    h.t.segment(key(1), 5001 + 90, RST | ACK, b"")
    assert len(h.out) == 4
    h.finish()


def test_mid_stream_start_on_record_boundary():
    """No SYN: the first segment starts a record, so structure is known from there."""
    h = Harness()
    s = starts(TLS_CLIENT)
    h.isn[0] = 123_456
    for off, data in h.cut(0, TLS_CLIENT[s[3] :], [100, 100], base=s[3]):
        h.send(0, off, data)
    assert h.finish() == h.expect({0: tls_keep(TLS_CLIENT)})


def test_mid_stream_start_mid_record():
    """No SYN, first bytes inside a record: zeroed until a segment starts a record."""
    h = Harness()
    s = starts(TLS_SERVER)
    h.send(1, 30, TLS_SERVER[30 : s[1]])  # rest of the ServerHello
    h.send(1, s[1], TLS_SERVER[s[1] : s[1] + 300])  # the Certificate record starts here
    h.send(1, s[1] + 300, TLS_SERVER[s[1] + 300 :])
    out = h.finish()
    keep = tls_keep(TLS_SERVER)
    assert out[0] == []
    assert out[1:] == [within(keep, s[1], s[1] + 300), within(keep, s[1] + 300, len(TLS_SERVER))]


def test_mid_stream_older_segment_after_first_is_zeroed():
    """No SYN and the capture's first segment is not the earliest: earlier bytes are fail-closed zeros."""
    h = Harness()
    s = starts(TLS_CLIENT)
    h.send(0, s[3], TLS_CLIENT[s[3] :])
    h.send(0, s[1], TLS_CLIENT[s[1] : s[3]])  # before the first seen: unknown territory
    out = h.finish()
    assert out == [within(tls_keep(TLS_CLIENT), s[3], len(TLS_CLIENT)), []]


# ---------------------------------------------------------------- HTTP


def http_msg(*parts) -> tuple[bytes, list[tuple[int, int]]]:
    """Wire bytes and absolute keep ranges from parts (bytes kept, 1-tuples zeroed)."""
    wire, keep, pos = b"", [], 0
    for p in parts:
        data = p if isinstance(p, bytes) else p[0]
        if isinstance(p, bytes):
            if keep and keep[-1][1] == pos:
                keep[-1] = (keep[-1][0], pos + len(data))
            else:
                keep.append((pos, pos + len(data)))
        wire += data
        pos += len(data)
    return wire, keep


def shift(keep, base):
    return [(a + base, b + base) for a, b in keep]


def test_http_request_response_pairing():
    """HEAD's response has no body even with Content-Length; the next response head is kept."""
    h = Harness()
    h.ports = (40000, 80)
    h.syn(0)
    h.syn(1)
    # Allowlist policy (docs/policy.md): the '?' goes with the query, Host values are zeroed.
    r1 = http_msg(b"HEAD /a", (b"?x=SECRET",), b" HTTP/1.1\r\nHost: ", (b"h",), b"\r\nCookie: ", (b"c=SECRET",),
                  b"\r\n\r\n")
    r2 = http_msg(b"GET /b HTTP/1.1\r\nHost: ", (b"h",), b"\r\nAuthorization: ", (b"Basic SECRET",), b"\r\n\r\n")
    a1 = http_msg(b"HTTP/1.1 200 OK\r\nContent-Length: 900\r\nSet-Cookie: ", (b"s=SECRET",), b"\r\n\r\n")
    a2 = http_msg(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", (b"SECRT",))
    h.send(0, 0, r1[0])
    h.send(0, len(r1[0]), r2[0])
    h.send(1, 0, a1[0] + a2[0][:20])  # the second head starts in the same segment
    h.send(1, len(a1[0]) + 20, a2[0][20:])
    out = h.finish()
    keep = {0: r1[1] + shift(r2[1], len(r1[0])), 1: a1[1] + shift(a2[1], len(a1[0]))}
    assert out == h.expect(keep)
    assert h.t.http_messages_masked == 4  # query+cookie, authorization, set-cookie, body


def test_http_head_split_inside_name_and_crlf():
    h = Harness()
    h.ports = (40000, 80)
    h.syn(0)
    wire, keep = http_msg(b"POST /p HTTP/1.1\r\nCookie: ", (b"sid=SECRET",), b"\r\nContent-Length: 4\r\n\r\n",
                          (b"BODY",))
    cuts = [wire.index(b"okie:"), wire.index(b"\nContent") - wire.index(b"okie:"), 3]
    for off, data in h.cut(0, wire, cuts):
        h.send(0, off, data)
    assert h.finish() == h.expect({0: keep})


# ---------------------------------------------------------------- protocol choice


def test_unknown_protocol_all_zero():
    """A stream starting with neither TLS nor HTTP keeps nothing, even HTTP-looking later segments."""
    h = Harness()
    h.ports = (40000, 22)
    h.syn(0)
    h.send(0, 0, b"SSH-2.0-OpenSSH_9.6\r\n")
    h.send(0, 21, filler(500))
    h.send(0, 521, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert h.finish() == [[], [], []]
    assert h.t.tls_records_masked == h.t.http_messages_masked == 0


def test_starttls_upgrade():
    """Plaintext first (zeroed), then a TLS handshake in the same direction: its structure is kept."""
    h = Harness()
    h.ports = (40000, 25)
    h.syn(0)
    h.syn(1)
    h.send(1, 0, b"220 mx ESMTP\r\n")
    h.send(0, 0, b"EHLO c\r\n")
    h.send(0, 8, b"STARTTLS\r\n")
    h.send(1, 14, b"220 go ahead\r\n")
    h.send(0, 18, TLS_CLIENT[:300])
    h.send(0, 318, TLS_CLIENT[300:])
    h.send(1, 28, TLS_SERVER)
    out = h.finish()
    assert out == h.expect({0: tls_keep(TLS_CLIENT, base=18), 1: tls_keep(TLS_SERVER, base=28)})
    assert out[0] == out[1] == out[2] == out[3] == []


def test_tls_lookalike_in_unknown_stream_keeps_nothing():
    h = Harness()
    h.ports = (40000, 22)
    h.syn(0)
    h.send(0, 0, b"SSH-2.0-OpenSSH_9.6\r\n")
    h.send(0, 21, rec(23, b"") + rec(22, b"SECRET-PLAINTEXT-PASSWORD"))
    assert h.finish() == [[], []]


@pytest.mark.parametrize("first", [1, 4, 8])
def test_tiny_first_segment_still_tls(first):
    h = Harness()
    h.syn(0)
    for off, data in h.cut(0, TLS_CLIENT, [first, 300]):
        h.send(0, off, data)
    assert h.finish() == h.expect({0: tls_keep(TLS_CLIENT)})


# ---------------------------------------------------------------- connection reuse, bounded state


def test_flow_reuse_with_new_isn():
    """A new SYN with another ISN starts afresh, even where its sequence numbers overlap the old stream's."""
    h = Harness()
    h.ports = (40000, 80)
    h.syn(0, 1000)
    req, req_keep = http_msg(b"GET /x HTTP/1.1\r\nCookie: ", (b"SECRET-COOKIE-VALUE",), b"\r\n\r\n")
    h.send(0, 0, req)
    h.t.segment(key(0, 40000, 80), 1001 + len(req), FIN | ACK, b"")
    # The new connection's ISN puts its first bytes onto the old request's sequence numbers.
    h.syn(0, 1010)
    new = TLS_CLIENT[:120]
    h.send(0, 0, new)
    out = h.finish()
    assert out[0] == within(req_keep, 0, len(req))
    assert out[1] == within(tls_keep(TLS_CLIENT), 0, 120)


def test_syn_retransmission_is_not_reuse():
    h = Harness()
    h.syn(0)
    h.send(0, 0, TLS_CLIENT[:100])
    h.syn(0)  # the same ISN again: a retransmitted SYN, nothing changes
    h.send(0, 100, TLS_CLIENT[100:])
    assert h.finish() == h.expect({0: tls_keep(TLS_CLIENT)})


def test_many_flows_evicted_least_recent_first():
    """Past MAX_FLOWS the oldest flow's state goes; its later segments are treated as a mid-stream start."""
    h = Harness(max_flows=4)
    for port in range(5):
        h.ports = (41000 + port, 443)
        h.syn(0)
        h.send(0, 0, TLS_CLIENT[:100])
    h.ports = (41000, 443)
    h.send(0, 100, TLS_CLIENT[100:])  # evicted flow: mid-record, nothing known
    out = h.finish()
    assert out[:5] == [within(tls_keep(TLS_CLIENT), 0, 100)] * 5
    assert out[5] == []


def test_pending_bound_forces_decisions():
    """A segment stuck behind a hole is decided (zeroed beyond what is known) once MAX_PENDING are queued."""
    h = Harness(max_pending=3)
    h.syn(0)
    h.send(0, 0, TLS_CLIENT[:50])
    h.send(0, 100, TLS_CLIENT[100:220])  # waits for the hole
    for port in range(3):  # other flows queue up behind it
        h.ports = (42000 + port, 443)
        h.syn(0)
        h.send(0, 0, TLS_SERVER[:60])
    assert len(h.out) >= 2
    out = h.finish()
    # The hole was given up; it lay inside the first handshake body, so the walk kept its place.
    assert out[1] == within(tls_keep(TLS_CLIENT), 100, 220) == [(109, 120)]


def test_out_of_order_buffer_bound():
    """Past OOO_LIMIT buffered bytes the hole is declared lost and buffered data is decided."""
    h = Harness(ooo_limit=200)
    h.syn(1)
    s = starts(TLS_SERVER)
    h.send(1, 0, TLS_SERVER[:100])
    h.send(1, s[3], TLS_SERVER[s[3] : s[3] + 150])
    assert len(h.out) == 1
    h.send(1, s[3] + 150, TLS_SERVER[s[3] + 150 : s[3] + 300])  # over the bound: flushed
    assert len(h.out) == 3
    out = h.finish()
    assert out[1] == within(tls_keep(TLS_SERVER), s[3], s[3] + 150)


# ---------------------------------------------------------------- held blobs (per-packet verdicts)


def test_held_blobs_come_out_after_the_segments_ahead_of_them():
    """``hold`` keeps a caller's per-packet record behind undecided segments, in capture order,
    and held blobs do not count toward MAX_PENDING (which bounds segments only)."""
    out: list = []
    t = StreamTracker(out.append, max_pending=2)
    stream = TLS_CLIENT
    t.segment(key(0), 999, SYN, b"")
    t.segment(key(0), 1000, PSH_ACK, stream[:3])  # a split record header: undecided
    assert out == [] and len(t.queue) == 1
    for i in range(5):  # more than MAX_PENDING blobs: still waiting
        t.hold(b"blob%d" % i)
    assert out == []
    t.segment(key(0), 1003, PSH_ACK, stream[3:200])  # decides the first segment
    assert out[0] == within(tls_keep(stream), 0, 3)
    assert out[1:6] == [b"blob%d" % i for i in range(5)]
    assert out[6] == within(tls_keep(stream), 3, 200)
    assert t.held == 0
    t.finish()


def test_held_records_are_bounded_behind_an_undecided_segment():
    """An undecided segment followed by many records (a capture of other traffic after it) does
    not hold them all: past ``max_held`` it is decided as it stands (zeroed where undecided) and
    the records flow, so memory stays bounded whatever follows."""
    out: list = []
    t = StreamTracker(out.append, max_pending=2, max_held=4)
    stream = TLS_CLIENT
    t.segment(key(0), 999, SYN, b"")
    t.segment(key(0), 1000, PSH_ACK, stream[:3])  # a split record header: undecided
    for i in range(4):
        t.hold(b"blob%d" % i)
    assert out == []
    t.hold(b"blob4")  # one more than max_held: the segment is decided, everything flows
    assert out[0] == [] and out[1:] == [b"blob%d" % i for i in range(5)]
    assert t.held == 0 and not t.queue
    t.finish()


def test_held_records_are_bounded_behind_a_first_fragment_waiting_for_its_length():
    """A first fragment whose last fragment never comes gets NO_LENGTH (its checksum zeroed)
    once ``max_held`` records wait behind it, instead of holding them to the end."""
    out: list = []
    t = StreamTracker(out.append, max_held=3)
    t.datagram(b"k" * 11)
    for i in range(3):
        t.hold(b"blob%d" % i)
    assert out == []
    t.hold(b"blob3")
    assert out == [NO_LENGTH] + [b"blob%d" % i for i in range(4)] and t.held == 0
    t.last_fragment(b"k" * 11, 100)  # too late: nothing more is emitted for it
    t.finish()
    assert out == [NO_LENGTH] + [b"blob%d" % i for i in range(4)]


# ---------------------------------------------------------------- copies with other bytes (issue 12)


REQ = b"GET /a?q=1 HTTP/1.1\r\nAccept: text/html\r\n\r\n"
FORGED = b"GET /a?q=1 HTTP/1.1\r\nCookie: secret=xy\r\n\r\n"  # same length, same seq


def http_harness() -> Harness:
    h = Harness()
    h.ports = (40000, 80)
    h.syn(0)
    return h


def kept(data: bytes, ranges: list[tuple[int, int]]) -> bytes:
    """The bytes of ``data`` a segment's ranges keep, others as NUL (what the mask pass writes)."""
    out = bytearray(len(data))
    for a, b in ranges:
        out[a:b] = data[a:b]
    return bytes(out)


def test_exact_http_retransmission_keeps_the_same_ranges():
    h = http_harness()
    h.send(0, 0, REQ)
    h.send(0, 0, REQ)
    out = h.finish()
    assert out[0] == out[1] == [(0, 6), (10, len(REQ))]  # the query ('?' included) is zeroed


def test_copy_with_other_bytes_keeps_only_what_it_repeats():
    """Same seq, different header: the run whose bytes differ is zeroed, the equal run stays."""
    h = http_harness()
    h.send(0, 0, REQ)
    h.send(0, 0, FORGED)
    out = h.finish()
    assert out[0] == [(0, 6), (10, len(REQ))]
    assert out[1] == [(0, 6)]  # "GET /a" is the same bytes; the rest of the head is not
    assert b"secret" not in kept(FORGED, out[1])


def test_copy_of_undecided_bytes_compared_byte_for_byte():
    """A copy arriving while its first copy's last line is still undecided (held, not yet in the history)."""
    h = http_harness()
    cut = REQ.index(b"Accept") + 9  # inside "text/html"
    h.send(0, 0, REQ[:cut])
    h.send(0, 0, FORGED[:cut])  # "Cookie: s" where the first copy had "Accept: t"
    h.send(0, 0, REQ[:cut])  # a faithful copy of the same bytes
    assert h.out == []
    h.send(0, cut, REQ[cut:])
    out = h.finish()
    line = REQ.index(b"Accept")
    assert out[0] == out[2] == [(0, 6), (10, cut)]
    assert out[1] == [(0, 6), (10, line)]  # the request line: decided, checked by digest
    assert out[3] == [(0, len(REQ) - cut)]


# An allowlisted header (Vary): a Host value is zeroed now, so a change in it would not show.
@pytest.mark.parametrize("tail", [b"Vary: h", b"Vary: x"], ids=["same", "changed"])
def test_copy_covering_the_tail_of_a_segment_and_new_data(tail):
    """A copy from the start of a kept run: checked run by run; its new bytes are parsed as usual."""
    h = http_harness()
    first = b"GET /a?q=1 HTTP/1.1\r\nVary: h\r\n"
    more = b"Accept: */*\r\n\r\n"
    h.send(0, 0, first)
    h.send(0, 7, (first[7:-9] + tail + b"\r\n") + more)  # from the zeroed query on
    h.send(0, 15, first[15:] + more)  # from inside the run [10, len(first)): not checkable
    out = h.finish()
    n = len(first)
    assert out[0] == [(0, 6), (10, n)]
    new = (n - 7, n - 7 + len(more))
    assert out[1] == ([(10 - 7, new[1])] if tail == b"Vary: h" else [new])
    # The third copy covers only part of the first segment's run: those bytes are zeroed;
    # ``more`` was decided from the second copy's bytes, which it repeats.
    assert out[2] == [(n - 15, n - 15 + len(more))]


def test_copy_after_its_history_was_dropped_is_zeroed():
    """Past RETX_WINDOW (once the history is compacted) a copy cannot be checked: fail closed."""
    h = Harness(retx_window=2000)
    h.syn(0)
    stream = b"".join(rec(23, filler(20, i)) for i in range(tracker_mod.HISTORY_COMPACT + 100))
    pieces = h.cut(0, stream, [250] * (len(stream) // 250))
    for p in pieces:
        h.send(0, *p)
    h.send(0, *pieces[0])  # long gone from the history
    h.send(0, *pieces[-2])  # recent: still checked, and kept
    out = h.finish()
    keep = tls_keep(stream)
    assert out[0] == within(keep, 0, 250) != []
    assert out[-2] == []
    assert out[-1] == out[len(pieces) - 2] != []


def test_tls_copy_with_a_changed_record_header():
    """Headers of data records are runs of their own (the bodies between are zeroed): a copy
    with a changed header has it zeroed, and the body it announces is not kept either."""
    h = Harness()
    h.syn(0)
    stream = hs_record(1, 60) + rec(23, filler(50, 2)) + rec(23, filler(30, 3)) + rec(23, filler(10, 4))
    s = starts(stream)
    forged = bytearray(stream)
    forged[s[2]] = 22  # application_data claimed to be handshake: its body would be kept if parsed
    forged[s[3] + 4] ^= 1  # and another length
    h.send(0, 0, stream)
    h.send(0, 0, bytes(forged))
    h.send(0, 0, stream)
    out = h.finish()
    assert out[0] == out[2] == tls_keep(stream) == [(0, 9), (s[1], s[1] + 5), (s[2], s[2] + 5), (s[3], s[3] + 5)]
    assert out[1] == [(0, 9), (s[1], s[1] + 5)]  # the handshake record and the next header: the same bytes
    assert h.t.tls_records_masked == 3


def test_out_of_order_copies_first_one_wins():
    """Buffered out of order, the first copy is fed; later copies (same start, or overlapping
    from an earlier start, or arriving in order over it) are compared with it."""
    h = http_harness()
    line = REQ.index(b"Accept")
    h.send(0, line, REQ[line:])  # ahead of a hole: buffered
    h.send(0, line, FORGED[line:])  # same start, other bytes
    h.send(0, 7, FORGED[7:])  # from before the hole: new bytes [7, line), then buffered ones
    h.send(0, 0, REQ[:7])  # fills the hole
    out = h.finish()
    assert out[0] == [(0, len(REQ) - line)]
    assert out[1] == []
    assert out[2] == [(3, line - 7)]  # " HTTP/1.1\r\n" only: the cookie line is not the first copy
    assert out[3] == [(0, 6)]  # "GET /a" ('?' starts the zeroed query)
    assert all(b"secret" not in kept(FORGED[a:], r) for r, a in zip(out[1:3], (line, 7), strict=True))


@pytest.mark.parametrize("seed", range(12))
def test_kept_bytes_are_always_the_first_copys(seed):
    """Random cuts, reordering and copies with random bytes overwritten: every byte any segment
    keeps equals the first copy (in capture order) of that stream offset."""
    import random

    rnd = random.Random(seed)
    h = Harness()
    if seed % 2:
        stream = TLS_CLIENT + TLS_SERVER
    else:
        h.ports = (40000, 80)
        stream = b"".join(
            http_msg(b"GET /%d?" % i, (b"q=SECRET",), b" HTTP/1.1\r\nHost: h\r\nAccept: */*\r\nCookie: ",
                     (b"c=SECRET",), b"\r\n\r\n")[0] for i in range(8))
    h.syn(0)
    segs: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(stream):
        n = rnd.choice([1, 3, 7, 20, 60, 150, 400])
        segs.append((pos, stream[pos : pos + n]))
        pos += n
    for _ in range(len(segs) // 2):  # copies: repacketized, some with other bytes
        a = rnd.randrange(len(stream))
        data = bytearray(stream[a : a + rnd.choice([1, 5, 30, 100, 300])])
        if rnd.random() < 0.6:
            x = rnd.randrange(len(data))
            y = min(len(data), x + rnd.choice([1, 4, 16]))
            data[x:y] = bytes(rnd.randrange(256) for _ in range(y - x))
        segs.insert(rnd.randrange(len(segs) + 1), (a, bytes(data)))
    for i in range(len(segs) - 1):  # local reordering
        if rnd.random() < 0.2:
            segs[i], segs[i + 1] = segs[i + 1], segs[i]
    first = bytearray(len(stream))
    seen = [False] * len(stream)
    for off, data in segs:
        for i, c in enumerate(data):
            if not seen[off + i]:
                seen[off + i], first[off + i] = True, c
        h.send(0, off, data)
    out = h.finish()
    assert any(out) or first[:64] != stream[:64]  # unless the stream's start came garbled first
    for (off, data), ranges in zip(segs, out, strict=True):
        for x, y in ranges:
            assert data[x:y] == first[off + x : off + y], (off, x, y)


# ---------------------------------------------------------------- fragmented DNS datagrams (mask/datagrams.py)


def dns_fragments() -> list[tuple[int, bytes, bool]]:
    """A DNS response in a UDP datagram, cut into 4 fragments: (offset, bytes, more)."""
    msg = b"\x00\x09\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00" + b"\x06secret\x04corp\x03com\x00\x00\x01\x00\x01"
    msg += b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\xc6\x33\x64\x17" + bytes(40)
    dgram = struct.pack("!HHHH", 53, 40000, 8 + len(msg), 0) + msg
    size = 24
    return [(o, dgram[o : o + size], o + size < len(dgram)) for o in range(0, len(dgram), size)]


def test_fragment_records_come_out_in_packet_order_with_held_blobs():
    """A fragment's record waits for its datagram; the verdicts held behind it come after it."""
    out: list = []
    t = StreamTracker(out.append)
    frags = dns_fragments()
    order = [frags[-1], *frags[:-1]]  # last fragment first
    for n, (off, data, more) in enumerate(order):
        if n:
            t.hold(b"V%d" % n, n + 1)  # the packet's verdict, held behind the waiting records
        t.fragment(b"k", off, data, more, n + 1)
    assert len(out) == 2 * len(order) - 1
    assert out[1::2] == [b"V%d" % n for n in range(1, len(order))]
    records = out[0::2]
    assert all(isinstance(r, bytes) for r in records) and records[1][0] == 0xB5  # the first fragment: SUM
    t.finish()
    assert t.dns_messages == 1


def test_a_fragment_forced_out_by_the_pending_bound_zeroes_its_datagram():
    out: list = []
    t = StreamTracker(out.append, max_pending=1)
    frags = dns_fragments()
    t.fragment(b"a", *frags[0], 1)
    t.fragment(b"b", *frags[0], 2)  # two waiting: the first is given up
    assert out == [b"\xb0"]
    for n, f in enumerate(frags[1:]):
        t.fragment(b"a", *f, 3 + n)  # its datagram is not kept any more
    t.finish()
    assert out == [b"\xb0"] * (len(frags) + 1) and t.dns_messages == 0


def test_a_fragment_waits_at_most_the_window_of_packets():
    out: list = []
    t = StreamTracker(out.append)
    t.datagrams = Reassembly(window=10)
    frags = dns_fragments()
    t.fragment(b"k", *frags[0], 1)
    for n in range(2, 12):
        t.hold(b"V", n)
    assert out == []
    t.hold(b"V", 12)  # 11 packets on: the datagram is given up, everything comes out
    assert out == [b"\xb0"] + [b"V"] * 11
    t.fragment(b"k", *frags[1], 13)  # a new datagram under the key: waits again
    t.finish()
    assert out[-1] == b"\xb0" and t.dns_messages == 0
