"""The hot-path shortcuts must not change a single output byte.

Every fast path (``layout.fast_layout`` and what builds on it: the rewriter's
and the masker's shortcuts, the anonymizer's hand-over to the masker, the
parsers' body skipping, the pre-pass in a child process) is checked against
the general code on the same capture: the stages' fast and general branches
are called explicitly on the same frames (any build), and whole runs are
compared with ``fast_layout`` patched away (pure build only: compiled, the
callers are bound to it when they are compiled and a patch changes nothing).
"""

from __future__ import annotations

import struct

import pytest

from captures import mixed_frames, tcp_header, write_pcap
from pktmask.capture.formats import open_reader
from pktmask.capture.packet import Packet
from pktmask.config import MaskConfig
from pktmask.core.pipeline.executor import SERIAL_ENV, PipelineExecutor
from pktmask.core.pipeline.stage import FileContext
from pktmask.core.temp_file_manager import TempFileManager
from pktmask.proto import layout as layout_module
from pktmask.proto.walk import walk
from pktmask.stages import anonymize as anonymize_module
from pktmask.stages import mask as mask_module
from pktmask.stages.anonymize import AnonymizationStage
from pktmask.stages.mask import MaskingStage


def tls_record(ctype: int, body: bytes) -> bytes:
    return struct.pack("!BHH", ctype, 0x0303, len(body)) + body


def stream_frames(v6: bool, vlan: bool) -> list[bytes]:
    """A TLS and an HTTP conversation, segmented small, with a retransmission and reordering."""
    from scapy.all import IP, TCP, Dot1Q, Ether, IPv6, Raw

    def l3(src, dst):
        return IPv6(src=src[1], dst=dst[1]) if v6 else IP(src=src[0], dst=dst[0])

    cli, srv = ("192.0.2.7", "2001:db8::7"), ("198.51.100.9", "2001:db8:9::9")
    eth = Ether(src="02:00:00:00:00:07", dst="02:00:00:00:00:09") / (Dot1Q(vlan=12) if vlan else b"")
    hello = tls_record(22, bytes([1, 0, 0, 40]) + b"\x03\x03" + bytes(38))
    app = tls_record(23, b"S" * 700) + tls_record(23, b"T" * 90)
    http = (b"GET /x?q=SECRET HTTP/1.1\r\nHost: h.example\r\nCookie: a=b\r\n\r\n"
            b"POST /p HTTP/1.1\r\nContent-Length: 20\r\n\r\nBODYBODYBODYBODYBODY")
    frames = []
    for sport, dport, data in ((40000, 443, hello + app), (40001, 80, http)):
        seq = 1000
        frames.append(eth / l3(cli, srv) / TCP(sport=sport, dport=dport, flags="S", seq=seq - 1))
        chunks = [data[i : i + 41] for i in range(0, len(data), 41)]
        segs = []
        for c in chunks:
            segs.append(eth / l3(cli, srv) / TCP(sport=sport, dport=dport, flags="PA", seq=seq) / Raw(c))
            seq += len(c)
        segs[1], segs[2] = segs[2], segs[1]  # reordered
        segs.append(segs[1])  # retransmitted
        frames += segs
        frames.append(eth / l3(cli, srv) / TCP(sport=sport, dport=dport, flags="FA", seq=seq))
    # Flags matter: after a SYN an unknown protocol never turns into TLS by an application
    # data header (mid-stream it would), and a second SYN with another ISN is a new connection.
    ssh = eth / l3(cli, srv) / TCP(sport=40002, dport=22, flags="PA", seq=5001) / Raw(b"SSH-2.0-OpenSSH_9.0\r\n")
    fake = eth / l3(cli, srv) / TCP(sport=40002, dport=22, flags="PA", seq=5022) / Raw(tls_record(23, b"p" * 40))
    frames += [eth / l3(cli, srv) / TCP(sport=40002, dport=22, flags="S", seq=5000), ssh, fake]
    frames += [eth / l3(cli, srv) / TCP(sport=40002, dport=22, flags="S", seq=90000),
               eth / l3(cli, srv) / TCP(sport=40002, dport=22, flags="PA", seq=90001) / Raw(hello)]
    return [bytes(f) for f in frames]


def odd_frames() -> list[bytes]:
    """Frames at the edges of the fast shape: short, cut short, padded, zero UDP checksum, bad checksums."""
    from scapy.all import IP, TCP, UDP, Ether, Raw

    e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    full = bytes(e / IP(src="10.1.1.1", dst="10.2.2.2") / TCP(sport=1, dport=2) / Raw(b"x" * 300))
    bad = bytearray(bytes(e / IP(src="10.1.1.1", dst="10.2.2.2") / UDP(sport=3, dport=4) / Raw(b"y" * 60)))
    bad[24] ^= 0xFF  # IPv4 header checksum
    bad[40] ^= 0x0F  # UDP checksum
    return [
        full[:80],  # cut short by the snap length (the IP header says 340 bytes)
        bytes(e / IP(src="10.1.1.1", dst="10.2.2.2") / UDP(sport=5, dport=6, chksum=0) / Raw(b"z" * 70)),
        bytes(e / IP(src="10.1.1.1", dst="10.2.2.2") / TCP(sport=1, dport=2)) + b"\xaa" * 12,  # padding
        bytes(bad),
        bytes(e / IP(src="10.1.1.1", dst="10.2.2.2", options=b"\x94\x04\x00\x00") / TCP() / Raw(b"o" * 50)),
        # TCP options: kept ones (a Linux SYN; SACK; EOL then zeros) on the fast path, others not.
        bytes(e / IP(src="10.1.1.1", dst="10.2.2.2") / TCP(flags="S", options=[
            ("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 0)), ("NOP", None), ("WScale", 7)])),
        bytes(e / IP(src="10.1.1.1", dst="10.2.2.2") / TCP(flags="A", options=[
            ("NOP", None), ("NOP", None), ("SAck", (100, 200, 300, 400))]) / Raw(b"s" * 20)),
        bytes(e / IP(src="10.1.1.1", dst="10.2.2.2", proto=6) / tcp_header(b"\x02\x04\x05\xb4\x00\x00\x00\x00", "A")),
        bytes(e / IP(src="10.1.1.1", dst="10.2.2.2", proto=6) / tcp_header(b"\x02\x04\x05\xb4\x00\x00\xee\x00", "A")),
        bytes(e / IP(src="10.1.1.1", dst="10.2.2.2", proto=6) / tcp_header(b"\x22\x0aCOOKIE-TFO", "S")),
        full,
    ]


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    frames = mixed_frames() + odd_frames()
    for v6 in (False, True):
        for vlan in (False, True):
            frames += stream_frames(v6, vlan)
    return write_pcap(tmp_path_factory.mktemp("fast") / "in.pcap", frames)


def run(capture, tmp_path, config: MaskConfig, name: str) -> bytes:
    manager = TempFileManager(temp_dir=tmp_path)
    try:
        out = tmp_path / name
        PipelineExecutor.from_config(config, manager).run_file(capture, out)
        return out.read_bytes()
    finally:
        manager.cleanup_all()


CONFIGS = {
    "defaults": MaskConfig(key=bytes(range(32))),
    "dedup-all": MaskConfig(key=bytes(range(32)), dedup=True),
    "anonymize-only": MaskConfig(key=bytes(range(32)), mask_payloads=False),
    "mask-only": MaskConfig(key=None, anonymize=False),
    "keep-macs": MaskConfig(key=bytes(range(32)), anonymize_macs=False),
}


@pytest.mark.pure_only
@pytest.mark.parametrize("name", list(CONFIGS))
def test_fast_paths_equal_general_code(capture, tmp_path, monkeypatch, name):
    config = CONFIGS[name]
    fast = run(capture, tmp_path, config, "fast.pcap")
    monkeypatch.setenv(SERIAL_ENV, "1")
    serial = run(capture, tmp_path, config, "serial.pcap")
    for module in (layout_module, anonymize_module, mask_module):
        monkeypatch.setattr(module, "fast_layout", lambda data, linktype: None)
    general = run(capture, tmp_path, config, "general.pcap")
    assert fast == serial == general


def read_frames(capture) -> list[bytes]:
    with open(capture, "rb") as f:
        return [bytes(p.data) for p in open_reader(f, "x")]


def stages_run(frames: list[bytes], tmp_path, config: MaskConfig, general: bool) -> list[bytes]:
    """The anonymizer and the masker over ``frames`` as the executor runs them (the masking
    pre-pass first, on the original frames), every frame through the stages' fast branches
    where they have one, or (``general``) through their general branches."""
    manager = TempFileManager(temp_dir=tmp_path)
    ctx = FileContext("in.pcap", "pcap", manager)
    anon = mask = None
    if config.anonymize:
        anon = AnonymizationStage(config.key, config.anonymize_macs, masking=config.mask_payloads)
        anon.start(ctx)
    if config.mask_payloads:
        mask = MaskingStage()
        mask.start(ctx)
    out = []
    try:
        if mask is not None:
            for f in frames:
                mask.observe(Packet(f, 1, 0, 0, len(f)))
            mask.end_prepass()
        for f in frames:
            pkt = Packet(f, 1, 0, 0, len(f))
            if mask is not None:
                assert mask.replay(pkt) == -1
            if anon is not None:
                if general:
                    buf = bytearray(f)
                    anon.rewriter.frame(buf, 1)
                    pkt.data, pkt.layout = buf, None
                else:
                    pkt = anon.process(pkt)
            if mask is not None:
                if general:
                    pkt.data, pkt.tail = mask._general(pkt.data, 1), 0
                else:
                    pkt = mask.process(pkt)
            out.append(bytes(pkt.data) + bytes(pkt.tail))
        if mask is not None:
            mask.finish()
    finally:
        manager.cleanup_all()
    return out


@pytest.mark.parametrize("name", [n for n in CONFIGS if not CONFIGS[n].dedup])
def test_fast_branches_equal_general_branches(capture, tmp_path, name):
    """The stages' fast and general branches, called explicitly on the same frames, agree
    (the pre-pass takes its fast branch: its general one is compared below)."""
    frames = read_frames(capture)
    fast = stages_run(frames, tmp_path, CONFIGS[name], general=False)
    general = stages_run(frames, tmp_path, CONFIGS[name], general=True)
    assert len(fast) == len(general) == len(frames)
    for i, (a, b) in enumerate(zip(fast, general, strict=True)):
        assert a == b, f"frame {i}"


def test_prepass_fast_branch_sees_what_the_walk_sees(capture):
    """For every frame of the common shape, the pre-pass's fast branch hands the tracker the
    segment the general walk finds (flow key, sequence number, flags, payload bounds)."""
    checked = 0
    for f in read_frames(capture):
        layout = layout_module.fast_layout(f, 1)
        if layout is None:
            continue
        l3, l4, proto, end, v6, _full, ps = layout
        seg = walk(f, 1, False).tcp
        if proto != 6:
            assert seg is None
            continue
        assert seg is not None
        seq = int.from_bytes(f[l4 + 4 : l4 + 8], "big")
        key = f[l3 + 8 if v6 else l3 + 12 : l4 + 4]
        assert (seg.key, seg.seq, seg.flags, seg.start, seg.end) == (key, seq, f[l4 + 13], ps, end)
        checked += 1
    assert checked > 20


def test_capture_exercises_the_fast_path(capture):
    """Guard against the comparisons above being vacuous."""
    frames = read_frames(capture)
    fast = [layout_module.fast_layout(f, 1) for f in frames]
    assert sum(1 for layout in fast if layout is not None and layout[5]) > len(frames) // 2
    assert any(layout is None for layout in fast)
