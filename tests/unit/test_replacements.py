"""Replacements: bytes a stream parser writes over bytes it keeps (the pseudonyms of names in streams).

No parser produces them yet: these tests hand a parser its replacements
(``_replacements``, what ``take_replacements`` returns) and follow them through
the tracker (mapped to each segment, split at segment bounds, clipped to the
kept bytes, every copy) and the masker (written over kept bytes, checksums valid).
"""

from __future__ import annotations

import struct

import pytest

from pktmask.capture.packet import Packet
from pktmask.core.pipeline.stage import FileContext
from pktmask.core.temp_file_manager import TempFileManager
from pktmask.mask.tracker import StreamTracker
from pktmask.stages.mask import MaskingStage

SYN, PSH_ACK = 0x02, 0x18
CLIENT, SERVER = bytes([192, 0, 2, 10]), bytes([198, 51, 100, 20])
KEY = CLIENT + SERVER + struct.pack("!HH", 40000, 80)
REQ = b"GET /static/files/index.html HTTP/1.1\r\nHost: www.example.com\r\nAccept: */*\r\n\r\n"
AT = REQ.index(b"index")
CUT = AT + 2  # the request line is split inside "index": the first segment waits for the second


def tracker_run(repl: list[tuple[int, bytes]], retransmit: bool = True) -> list:
    out: list = []
    t = StreamTracker(out.append, lambda r: out.append(("replace", r)))
    t.segment(KEY, 999, SYN, b"")
    t.segment(KEY, 1000, PSH_ACK, REQ[:CUT])
    t.dirs[KEY].parser._replacements = list(repl)  # what take_replacements returns next
    t.segment(KEY, 1000 + CUT, PSH_ACK, REQ[CUT:])
    if retransmit:
        t.segment(KEY, 1000, PSH_ACK, REQ[:CUT])
        t.segment(KEY, 1000 + CUT, PSH_ACK, REQ[CUT:])
    t.finish()
    return out


def test_tracker_splits_a_replacement_across_segments_and_repeats_it_for_copies():
    out = tracker_run([(AT, b"INDEX")])
    first = ("replace", [(AT, b"IN")])
    second = ("replace", [(0, b"DEX")])
    assert out[0] == first and out[2] == second
    assert out[4] == first and out[6] == second  # the retransmitted copies
    ranges = [r for r in out if not isinstance(r, tuple)]
    assert len(ranges) == 4
    assert any(a <= AT and AT + 2 <= b for a, b in ranges[0])  # inside what the segment keeps


def test_tracker_drops_what_lies_outside_the_kept_bytes():
    host = REQ.index(b"www.")  # the Host value is not kept: nothing may be written there
    out = tracker_run([(host, b"x" * 15)], retransmit=False)
    assert not [r for r in out if isinstance(r, tuple)]
    path = REQ.index(b"/static")
    host = REQ.index(b"www.")
    out = tracker_run([(path, b"/" * 50)], retransmit=False)  # runs into the Host value
    kept = [r for r in out if not isinstance(r, tuple)]
    pieces = [r[1] for r in out if isinstance(r, tuple)]
    # The request line and "Host: " are kept: the second piece stops where the kept bytes do.
    assert pieces == [[(path, b"/" * (CUT - path))], [(0, b"/" * (host - CUT))]]
    assert kept[1][0] == (0, host - CUT)


def test_a_tracker_without_a_writer_refuses_replacements():
    t = StreamTracker(lambda r: None)
    t.segment(KEY, 999, SYN, b"")
    t.segment(KEY, 1000, PSH_ACK, REQ[:CUT])
    t.dirs[KEY].parser._replacements = [(AT, b"INDEX")]
    with pytest.raises(RuntimeError, match="replacements and nowhere to write them"):
        t.segment(KEY, 1000 + CUT, PSH_ACK, REQ[CUT:])


def frames(options: bool) -> list[bytes]:
    from scapy.all import IP, TCP, Ether, Raw

    def frame(seq, flags, data=b""):
        ip = IP(src="192.0.2.10", dst="198.51.100.20", options=b"\x94\x04\x00\x00" if options else b"")
        return bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / ip
                     / TCP(sport=40000, dport=80, flags=flags, seq=seq) / Raw(data))

    return [frame(999, "S"), frame(1000, "PA", REQ[:CUT]), frame(1000 + CUT, "PA", REQ[CUT:]),
            frame(1000 + CUT, "PA", REQ[CUT:])]


@pytest.mark.parametrize("options", [False, True], ids=["fast-path", "general-path"])
def test_masker_writes_replacements_over_kept_bytes(tmp_path, options):
    from scapy.all import IP, TCP, Ether

    manager = TempFileManager(temp_dir=tmp_path)
    stage = MaskingStage()
    try:
        stage.start(FileContext("t", "pcap", manager))
        raw = frames(options)
        for i, f in enumerate(raw):
            if i == 2:  # the parser was made by the first segment
                stage._tracker.dirs[KEY].parser._replacements = [(AT, b"INDEX")]
            stage.observe(Packet(f, 1, 0, 0, len(f)))
        stage.end_prepass()
        out = []
        for f in raw:
            pkt = Packet(f, 1, 0, 0, len(f))
            assert stage.replay(pkt) == -1
            pkt = stage.process(pkt)
            out.append(bytes(pkt.data) + bytes(pkt.tail))
        stage.finish()
    finally:
        manager.cleanup_all()
    payload = b"".join(bytes(Ether(f)[TCP].payload) for f in out[1:3])
    assert payload[AT : AT + 5] == b"INDEX"
    assert payload[: AT] == REQ[:AT]  # the rest of the request line is kept as it was
    assert bytes(Ether(out[3])[TCP].payload) == payload[CUT:]  # the copy too
    host = REQ.index(b"www.")
    assert payload[host : host + 15] == bytes(15)  # not kept: zero
    for f in out:
        p = Ether(f)
        q = p.copy()
        del q[IP].chksum
        del q[TCP].chksum
        q = Ether(bytes(q))
        assert (p[IP].chksum, p[TCP].chksum) == (q[IP].chksum, q[TCP].chksum)
