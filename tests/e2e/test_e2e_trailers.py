"""Bytes after the IP packet's stated end (an Ethernet trailer) never reach OUTPUT.

A TLS and an HTTP segment whose payload keeps some bytes (record headers, a
handshake, a request line) take the masker's kept-ranges branch; each frame
carries 16 non-zero bytes after the IP total length (IPv4) or payload length
(IPv6). The same segment goes through the fast path (plain Ethernet, plain
IP) and the general walk (a second VLAN tag, an IPv4 router-alert option, an
IPv6 hop-by-hop header): every byte from the IP end to the frame end must be
zero on both, and the two must give the same bytes from the TCP payload on
(docs/policy.md: what is not understood is zero). Issue 17: a fast path
zeroing up to the IP end instead of the frame end let the trailer through.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from captures import write_pcap

TRAILER = bytes(range(0xE0, 0xF0))  # 16 non-zero bytes after the IP end


def tls_record(ctype: int, body: bytes) -> bytes:
    return struct.pack("!BHH", ctype, 0x0303, len(body)) + body


HELLO = tls_record(22, bytes([1, 0, 0, 40]) + b"\x03\x03" + bytes(38))
PAYLOADS = {
    # A handshake (kept) then application data (zeroed) in one segment: kept ranges.
    "tls": (443, HELLO + tls_record(23, b"SECRET-APPDATA" * 4)),
    # A request head (partly kept) then a body (zeroed).
    "http": (80, b"POST /p?q=SECRET HTTP/1.1\r\nHost: h.example\r\nContent-Length: 12\r\n\r\nSECRET-BODY!"),
}
SHAPES = {False: ("fast", "qinq", "router-alert"), True: ("fast", "qinq", "hop-by-hop")}


def read_pcap(path: Path) -> list[bytes]:
    data = path.read_bytes()
    assert struct.unpack_from("<I", data, 0)[0] == 0xA1B2C3D4
    frames, off = [], 24
    while off < len(data):
        incl = struct.unpack_from("<I", data, off + 8)[0]
        frames.append(data[off + 16 : off + 16 + incl])
        off += 16 + incl
    return frames


def conversation(kind: str, v6: bool, shape: str, sport: int) -> list[tuple[bytes, int, int]]:
    """SYN, the data segment (with a trailer), FIN: (frame, payload offset, IP end) each."""
    from scapy.all import (
        IP,
        TCP,
        Dot1Q,
        Ether,
        IPOption_Router_Alert,
        IPv6,
        IPv6ExtHdrHopByHop,
        Raw,
    )

    dport, payload = PAYLOADS[kind]
    eth = Ether(src="02:00:00:00:00:07", dst="02:00:00:00:00:09")
    if shape == "qinq":
        eth = eth / Dot1Q(vlan=10) / Dot1Q(vlan=20)
    if v6:
        l3 = IPv6(src="2001:db8::7", dst="2001:db8:9::9")
        if shape == "hop-by-hop":
            l3 = l3 / IPv6ExtHdrHopByHop()
    else:
        l3 = IP(src="192.0.2.7", dst="198.51.100.9",
                options=[IPOption_Router_Alert()] if shape == "router-alert" else [])
    seq = 1000
    out = []
    for flags, data in (("S", b""), ("PA", payload), ("FA", b"")):
        tcp = TCP(sport=sport, dport=dport, flags=flags, seq=seq - 1 if flags == "S" else seq)
        frame = bytes(eth / l3 / tcp / Raw(data)) if data else bytes(eth / l3 / tcp)
        end = len(frame)
        if data:
            frame += TRAILER
            seq += len(data)
        out.append((frame, end - len(data), end))
    return out


@pytest.mark.parametrize("options", [(), ("--dedup",), ("--no-anonymize",)])
def test_trailer_after_kept_bytes_is_zeroed_on_both_paths(run, tmp_path, options):
    cases = []  # (kind, v6, shape, frame index)
    frames: list[bytes] = []
    meta: list[tuple[int, int]] = []
    sport = 40000
    for kind in PAYLOADS:
        for v6 in (False, True):
            for shape in SHAPES[v6]:
                for i, (frame, ps, end) in enumerate(conversation(kind, v6, shape, sport)):
                    if i == 1:
                        cases.append((kind, v6, shape, len(frames)))
                    frames.append(frame)
                    meta.append((ps, end))
                sport += 1
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    src = write_pcap(tmp_path / "in" / "trailers.pcap", frames)
    dst = tmp_path / "out" / "trailers.pcap"
    res = run("mask", src, dst, "--json", *options)
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    assert run.leftovers() == []
    assert json.loads(res.stdout)["files"][0]["packets_out"] == len(frames)
    out = read_pcap(dst)
    assert [len(f) for f in out] == [len(f) for f in frames]
    masked: dict[tuple[str, bool, str], bytes] = {}
    for kind, v6, shape, i in cases:
        ps, end = meta[i]
        assert len(out[i]) - end == len(TRAILER)
        assert out[i][end:] == bytes(len(TRAILER)), f"{kind} v6={v6} {shape}: trailer kept"
        assert out[i][ps:end] != bytes(end - ps), f"{kind} v6={v6} {shape}: nothing kept (no kept ranges)"
        assert b"SECRET" not in out[i], f"{kind} v6={v6} {shape}"
        masked[kind, v6, shape] = out[i][ps:]
    for (kind, v6, shape), tail in masked.items():
        assert tail == masked[kind, v6, "fast"], f"{kind} v6={v6}: {shape} differs from the fast path"


def test_the_fast_shapes_take_the_fast_path():
    """Guard: the "fast" frames have the fast layout, the others do not (the comparison is not vacuous)."""
    from pktmask.proto.layout import fast_layout

    for kind in PAYLOADS:
        for v6 in (False, True):
            for shape in SHAPES[v6]:
                frame, _ps, end = conversation(kind, v6, shape, 40000)[1]
                layout = fast_layout(frame, 1)
                if shape == "fast":
                    assert layout is not None and layout[5] and layout[3] == end < len(frame), (kind, v6)
                else:
                    assert layout is None, (kind, v6, shape)
