"""Black-box proof of CONTRACT §4 "Payloads": the installed pktmask masks what it must and keeps structure.

Captures are crafted with scapy inside the tests: TCP conversations with a
real handshake, chosen segmentation, reordering, retransmission, sequence
wrap-around, mid-stream starts, IPv6 and VLAN; TLS records built with struct;
HTTP/1.1 keep-alive exchanges; and the fail-closed rest (DNS, ICMP, unknown
UDP/TCP/IP protocols, fragments, Ethernet padding, ICMP errors).

Two oracles check every output: tshark (handshake messages still dissect,
application data and HTTP bodies are zeros, no checksum is bad) and the
expected masked byte stream, computed independently from how each test
built its payload and compared with the payload of every output segment.
Every run must exit 0, leave its private TMPDIR empty and write nothing but
OUTPUT.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import tshark_fields

from captures import write_pcap

MARK_APP = b"SECRET-APPDATA"
CHECKSUM_PREFS = ["-o", "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
                  "-o", "ip.check_checksum:TRUE"]
BAD_CHECKSUM = ("ip.checksum.status==0 || tcp.checksum.status==0 || udp.checksum.status==0"
                " || icmp.checksum.status==0 || icmpv6.checksum.status==0")
CHECKSUM_FIELDS = ["ip.checksum.status", "tcp.checksum.status", "udp.checksum.status",
                   "icmp.checksum.status", "icmpv6.checksum.status"]
C_MAC, S_MAC = "02:11:22:33:44:55", "02:66:77:88:99:aa"


# ---------------------------------------------------------------- pcap I/O and running


def read_pcap(path: Path) -> list[bytes]:
    """The frames of a little-endian microsecond classic pcap (what write_pcap writes)."""
    data = path.read_bytes()
    assert struct.unpack_from("<I", data, 0)[0] == 0xA1B2C3D4, "output is not a LE µs pcap"
    frames, off = [], 24
    while off < len(data):
        incl = struct.unpack_from("<I", data, off + 8)[0]
        frames.append(data[off + 16 : off + 16 + incl])
        off += 16 + incl
    return frames


def mask(run, tmp_path: Path, frames: list[bytes], *options: str, name: str = "cap") -> tuple[Path, Path, dict]:
    """Write ``frames`` to a pcap, run ``pktmask mask`` on it; returns (input, output, file report).

    Asserts the run succeeded, left nothing behind and kept the frame count and every frame's length.
    """
    (tmp_path / "in").mkdir(exist_ok=True)
    (tmp_path / "out").mkdir(exist_ok=True)
    src = write_pcap(tmp_path / "in" / f"{name}.pcap", frames)
    out = tmp_path / "out" / f"{name}.pcap"
    res = run("mask", src, out, "--json", *options)
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    assert run.leftovers() == [], f"left in TMPDIR: {run.leftovers()}"
    assert sorted(os.listdir(out.parent)) == [out.name], os.listdir(out.parent)
    report = json.loads(res.stdout)["files"][0]
    assert report["ok"] and report["packets_in"] == report["packets_out"] == len(frames)
    out_frames = read_pcap(out)
    assert [len(f) for f in out_frames] == [len(f) for f in frames]
    return src, out, report


def fields(path: Path, names: list[str], display_filter: str | None = None,
           extra: list[str] | None = None) -> list[dict[str, list[str]]]:
    """tshark's values of ``names`` per packet (checksum validation on), as lists of occurrences."""
    rows = tshark_fields(path, names, display_filter, CHECKSUM_PREFS + (extra or []))
    return [{n: (v.split(",") if v else []) for n, v in zip(names, row + [""] * len(names), strict=False)}
            for row in rows]


def assert_checksums_good(path: Path, extra: list[str] | None = None) -> None:
    """No IP/TCP/UDP/ICMP/ICMPv6 checksum tshark can verify is bad."""
    bad = tshark_fields(path, ["frame.number", *CHECKSUM_FIELDS], BAD_CHECKSUM, CHECKSUM_PREFS + (extra or []))
    assert bad == [], f"bad checksums in frames: {bad}"


def is_zero_hex(value: str) -> bool:
    """A tshark bytes value (hex, maybe colon-separated) is all zero bytes."""
    digits = value.replace(":", "")
    return bool(digits) and set(digits) == {"0"}


# ---------------------------------------------------------------- TCP conversations


@dataclass
class Seg:
    """A TCP segment with payload in a built conversation: direction, stream offset, bytes."""

    side: int  # 0: client -> server, 1: server -> client
    off: int  # offset of data[0] in its direction's stream (0 = first byte after SYN)
    data: bytes


class Conv:
    """Build one TCP conversation frame by frame with correct seq/ack numbers.

    ``items`` is the capture order: (frame bytes, Seg or None). Tests reorder
    or duplicate items to model the network; ``streams`` holds what each
    direction sent, in stream order.
    """

    def __init__(self, sport: int = 40000, dport: int = 443, isn: tuple[int, int] = (1000, 5000),
                 v6: bool = False, vlan: int | None = None,
                 addrs: tuple[str, str] | None = None):
        self.ports = (sport, dport)
        self.isn = isn
        self.v6 = v6
        self.vlan = vlan
        self.addrs = addrs or (("2001:db8::10", "2001:db8:1::20") if v6 else ("192.0.2.10", "198.51.100.20"))
        self.streams = [b"", b""]
        self.items: list[tuple[bytes, Seg | None]] = []
        self.ip_id = 1

    def seq(self, side: int, off: int) -> int:
        """32-bit sequence number of stream offset ``off`` (the SYN takes isn)."""
        return (self.isn[side] + 1 + off) & 0xFFFFFFFF

    def frame(self, side: int, seq: int, flags: str, payload: bytes = b"", ack: int | None = None) -> bytes:
        from scapy.all import IP, TCP, Dot1Q, Ether, IPv6, Raw

        src, dst = self.addrs if side == 0 else self.addrs[::-1]
        sport, dport = self.ports if side == 0 else self.ports[::-1]
        macs = (C_MAC, S_MAC) if side == 0 else (S_MAC, C_MAC)
        if ack is None:
            ack = self.seq(1 - side, len(self.streams[1 - side]))
        if "S" in flags and "A" not in flags:
            ack = 0
        pkt = Ether(src=macs[0], dst=macs[1])
        if self.vlan is not None:
            pkt = pkt / Dot1Q(vlan=self.vlan)
        self.ip_id += 1
        ip = IPv6(src=src, dst=dst) if self.v6 else IP(src=src, dst=dst, id=self.ip_id)
        pkt = pkt / ip / TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags, window=65535)
        if payload:
            pkt = pkt / Raw(payload)
        return bytes(pkt)

    def handshake(self) -> Conv:
        """SYN, SYN-ACK, ACK."""
        self.items.append((self.frame(0, self.isn[0], "S"), None))
        self.items.append((self.frame(1, self.isn[1], "SA", ack=self.seq(0, 0)), None))
        self.items.append((self.frame(0, self.seq(0, 0), "A"), None))
        return self

    def send(self, side: int, data: bytes, sizes: tuple[int, ...] | list[int] = ()) -> list[int]:
        """Append ``data`` to a direction, cut into segments of ``sizes`` (the rest in one more).

        Returns the item indexes of the new segments.
        """
        cuts, pos = [], 0
        for n in sizes:
            if pos + n >= len(data):
                break
            cuts.append(data[pos : pos + n])
            pos += n
        cuts.append(data[pos:])
        idx = []
        for chunk in cuts:
            off = len(self.streams[side])
            self.items.append((self.frame(side, self.seq(side, off), "PA", chunk), Seg(side, off, chunk)))
            self.streams[side] += chunk
            idx.append(len(self.items) - 1)
        return idx

    def resend(self, side: int, off: int, length: int) -> int:
        """Append a retransmission of stream bytes [off, off+length) (new IP id, current ack)."""
        chunk = self.streams[side][off : off + length]
        self.items.append((self.frame(side, self.seq(side, off), "PA", chunk), Seg(side, off, chunk)))
        return len(self.items) - 1

    def fin(self) -> Conv:
        """FIN from each side and the last ACK."""
        for side in (0, 1):
            self.items.append((self.frame(side, self.seq(side, len(self.streams[side])), "FA"), None))
        self.items.append((self.frame(0, self.seq(0, len(self.streams[0]) + 1), "A",
                                      ack=self.seq(1, len(self.streams[1]) + 1)), None))
        return self

    def move(self, i: int, j: int) -> None:
        """Move item ``i`` to position ``j`` (reordering on the wire)."""
        self.items.insert(j, self.items.pop(i))

    @property
    def frames(self) -> list[bytes]:
        return [f for f, _ in self.items]


def segment_payloads(out_frames: list[bytes], conv: Conv) -> list[tuple[Seg, bytes]]:
    """Pair each payload-carrying segment with its payload in the output (same position and size)."""
    out = []
    for (frame, seg), got in zip(conv.items, out_frames, strict=True):
        if seg is not None:
            n = len(seg.data)
            assert frame[-n:] == seg.data  # frames carry no trailer: the payload ends the frame
            out.append((seg, got[-n:]))
    return out


def assert_streams(out_frames: list[bytes], conv: Conv, expected: list[bytes]) -> None:
    """Every output segment's payload equals the expected masked stream at its offsets."""
    for seg, got in segment_payloads(out_frames, conv):
        want = expected[seg.side][seg.off : seg.off + len(seg.data)]
        assert got == want, (f"side {seg.side} offset {seg.off}+{len(seg.data)}:\n"
                             f" got  {got[:80]!r}\n want {want[:80]!r}")


def reassemble(out_frames: list[bytes], conv: Conv, side: int) -> bytes:
    """One direction's output stream, rebuilt from the output segments' payloads."""
    buf = bytearray(len(conv.streams[side]))
    for seg, got in segment_payloads(out_frames, conv):
        if seg.side == side:
            buf[seg.off : seg.off + len(got)] = got
    return bytes(buf)


# ---------------------------------------------------------------- TLS building


def record(ctype: int, body: bytes, version: int = 0x0303) -> bytes:
    """One TLS record."""
    return struct.pack("!BHH", ctype, version, len(body)) + body


def hs(htype: int, body: bytes) -> bytes:
    """One handshake message."""
    return bytes([htype]) + len(body).to_bytes(3, "big") + body


def ext(etype: int, body: bytes) -> bytes:
    return struct.pack("!HH", etype, len(body)) + body


def filler(n: int, seed: int) -> bytes:
    """Deterministic non-zero bytes (so zeroing shows), free of any marker."""
    return bytes((seed * 31 + 7 * i) % 251 + 1 for i in range(n))


def client_hello(sni: bytes = b"www.example.test", tls13: bool = False) -> bytes:
    """A minimal valid ClientHello (handshake message) with SNI; TLS 1.3 adds versions and key share."""
    exts = ext(0, struct.pack("!HBH", len(sni) + 3, 0, len(sni)) + sni)
    exts += ext(10, b"\x00\x04\x00\x1d\x00\x17")  # supported_groups
    exts += ext(13, b"\x00\x04\x04\x03\x08\x04")  # signature_algorithms
    if tls13:
        exts += ext(43, b"\x04\x03\x04\x03\x03")  # supported_versions: 1.3, 1.2
        exts += ext(51, struct.pack("!HHH", 36, 0x001D, 32) + filler(32, 5))  # key_share x25519
    suites = b"\x13\x01\x13\x02\xc0\x2f\xc0\x30"
    body = (b"\x03\x03" + filler(32, 1) + b"\x20" + filler(32, 2) + struct.pack("!H", len(suites))
            + suites + b"\x01\x00" + struct.pack("!H", len(exts)) + exts)
    return hs(1, body)


def server_hello(tls13: bool = False) -> bytes:
    """A ServerHello echoing the client's session id (TLS 1.3: supported_versions and key share)."""
    if tls13:
        exts = ext(43, b"\x03\x04") + ext(51, struct.pack("!HH", 0x001D, 32) + filler(32, 6))
        suite = b"\x13\x01"
    else:
        exts = ext(0xFF01, b"\x00")  # renegotiation_info
        suite = b"\xc0\x2f"
    body = b"\x03\x03" + filler(32, 3) + b"\x20" + filler(32, 2) + suite + b"\x00" + struct.pack("!H", len(exts)) + exts
    return hs(2, body)


def certificate(size: int = 600) -> bytes:
    """A Certificate message holding one opaque blob (tshark may call it malformed X.509; the type stands)."""
    cert = filler(size, 9)
    return hs(11, (len(cert) + 3).to_bytes(3, "big") + len(cert).to_bytes(3, "big") + cert)


def app_data(n: int, version: int = 0x0303) -> bytes:
    """An application_data record of ``n`` body bytes full of the marker."""
    return record(23, (MARK_APP * (n // len(MARK_APP) + 1))[:n], version)


def tls12_session() -> tuple[bytes, bytes]:
    """Client and server streams of a full TLS 1.2 session (handshake, CCS, Finished, data, alert)."""
    client = (record(22, client_hello(b"tls12.example.test"), 0x0301)
              + record(22, hs(16, b"\x20" + filler(32, 11)))
              + record(20, b"\x01") + record(22, filler(40, 12))
              + app_data(700) + app_data(3000) + app_data(30) + record(21, filler(26, 13)))
    server = (record(22, server_hello()) + record(22, certificate(1500)) + record(22, hs(14, b""))
              + record(20, b"\x01") + record(22, filler(40, 14))
              + app_data(40) + app_data(2500) + app_data(1))
    return client, server


def tls13_session() -> tuple[bytes, bytes]:
    """Client and server streams of a TLS 1.3 session (encrypted handshake rides in application data)."""
    client = (record(22, client_hello(b"tls13.example.test", tls13=True), 0x0301)
              + record(20, b"\x01") + app_data(53) + app_data(1200) + app_data(17) + app_data(400))
    server = (record(22, server_hello(tls13=True)) + record(20, b"\x01")
              + app_data(30) + app_data(2100) + app_data(280) + app_data(60) + app_data(5000))
    return client, server


def tls_masked(stream: bytes) -> bytes:
    """The stream as CONTRACT §4 says it must come out: headers and non-data bodies kept, data zeroed."""
    out, i = bytearray(), 0
    while i < len(stream):
        ctype, length = stream[i], struct.unpack_from("!H", stream, i + 3)[0]
        body = stream[i + 5 : i + 5 + length]
        out += stream[i : i + 5] + (body if ctype in (20, 21, 22) else bytes(len(body)))
        i += 5 + length
    return bytes(out)


def assert_tls_output(src: Path, out: Path, extra: list[str] | None = None) -> list[dict]:
    """tshark sees the same handshake and record types as in the input, data records all zeros, good checksums."""
    names = ["tls.handshake.type", "tls.record.content_type", "tls.app_data", *CHECKSUM_FIELDS]
    before = fields(src, names, extra=extra)
    after = fields(out, names, extra=extra)
    for key in ("tls.handshake.type", "tls.record.content_type"):
        assert [r[key] for r in after] == [r[key] for r in before], key
    assert any(r["tls.handshake.type"] for r in after), "no handshake message dissected"
    apps = [v for r in after for v in r["tls.app_data"]]
    assert len(apps) == sum(len(r["tls.app_data"]) for r in before) and apps
    assert all(is_zero_hex(v) for v in apps), "application data not zeroed"
    for r in after:
        for key in CHECKSUM_FIELDS:
            assert "0" not in r[key], f"bad {key}"
    assert MARK_APP not in out.read_bytes()
    return after



# ---------------------------------------------------------------- TLS


def check_tls(run, tmp_path, conv: Conv, expected: list[bytes], *options: str,
              extra: list[str] | None = None) -> tuple[Path, Path, dict]:
    """Mask a TLS conversation; check the exact masked streams, tshark's view and the report."""
    src, out, report = mask(run, tmp_path, conv.frames, *options)
    assert_streams(read_pcap(out), conv, expected)
    assert_tls_output(src, out, extra)
    assert report["tls_records_masked"] > 0 and report["payload_bytes_zeroed"] > 0
    assert report["http_messages_masked"] == 0
    return src, out, report


@pytest.mark.parametrize("anonymize", [False, True], ids=["no-anonymize", "defaults"])
def test_tls12_records_span_and_share_segments(run, tmp_path, anonymize):
    """TLS 1.2: records cut across segments, several records in one segment, every record type."""
    client, server = tls12_session()
    conv = Conv().handshake()
    conv.send(0, client, [100, 300, 1000, 1000])
    conv.send(1, server, [1400, 1400, 600])
    conv.fin()
    _, _, report = check_tls(run, tmp_path, conv, [tls_masked(client), tls_masked(server)],
                             *([] if anonymize else ["--no-anonymize"]))
    # Data records: 3 from each side (the alert, CCS and handshakes are kept).
    assert report["tls_records_masked"] == 6


def test_tls13_reordered_and_retransmitted(run, tmp_path):
    """TLS 1.3: later segments first, exact and repacketized retransmissions, all masked consistently."""
    client, server = tls13_session()
    conv = Conv(isn=(77_000, 3_000_000_000)).handshake()
    c = conv.send(0, client, [250, 30, 900])
    s = conv.send(1, server, [120, 1000, 1000, 1000, 1000, 1000])
    conv.move(s[2], s[1])  # the server's third segment overtakes its second
    conv.move(c[2], c[0])  # ... and the client's third overtakes its first two
    conv.items.append(conv.items[s[3]])  # an exact duplicate of a data segment
    conv.items.append(conv.items[c[0]])  # ... and of the ClientHello segment
    conv.resend(1, 100, 1100)  # a repacketized retransmission spanning three segments
    conv.resend(0, 5, 600)  # one starting inside a record header
    conv.fin()
    check_tls(run, tmp_path, conv, [tls_masked(client), tls_masked(server)], "--no-anonymize",
              extra=["-o", "tcp.reassemble_out_of_order:TRUE"])


def test_retransmission_masked_like_original(run, tmp_path):
    """A retransmitted segment's output bytes equal the original segment's output bytes."""
    client, server = tls12_session()
    conv = Conv().handshake()
    conv.send(0, client, [517, 400, 700])
    conv.send(1, server, [1000, 900, 333])
    orig = [i for i, (_, seg) in enumerate(conv.items) if seg is not None]
    retx = [conv.resend(seg.side, seg.off, len(seg.data)) for seg in (conv.items[i][1] for i in orig)]
    conv.fin()
    _, out, _ = mask(run, tmp_path, conv.frames, "--no-anonymize")
    got = read_pcap(out)
    for i, j in zip(orig, retx, strict=True):
        n = len(conv.items[i][1].data)
        assert got[i][-n:] == got[j][-n:], f"frames {i} and {j} masked differently"
    assert_streams(got, conv, [tls_masked(client), tls_masked(server)])


def test_sequence_wraps_around(run, tmp_path):
    """Both ISNs just below 2^32: the streams wrap within the first records."""
    client, server = tls12_session()
    conv = Conv(isn=(0xFFFFFF00, 0xFFFFFFF0)).handshake()
    conv.send(0, client, [200, 200, 200, 1000])
    conv.send(1, server, [60, 1000, 1000])
    conv.fin()
    assert any(conv.seq(0, seg.off) < 0x1000 for _, seg in conv.items if seg)
    check_tls(run, tmp_path, conv, [tls_masked(client), tls_masked(server)], "--no-anonymize")


@pytest.mark.parametrize("variant", ["ipv6", "vlan", "ipv6-vlan-odd-port"])
def test_tls_variants(run, tmp_path, variant):
    """IPv6, 802.1Q and a non-standard port (TLS is found by structure, not port)."""
    client, server = tls13_session() if "ipv6" in variant else tls12_session()
    conv = Conv(v6="ipv6" in variant, vlan=42 if "vlan" in variant else None,
                sport=51000, dport=8443 if "odd" in variant else 443).handshake()
    conv.send(0, client, [300, 1000])
    conv.send(1, server, [1000, 1000, 1000])
    conv.fin()
    check_tls(run, tmp_path, conv, [tls_masked(client), tls_masked(server)],
              extra=["-d", "tcp.port==8443,tls"] if "odd" in variant else None)


def record_starts(stream: bytes) -> list[int]:
    out, i = [], 0
    while i < len(stream):
        out.append(i)
        i += 5 + struct.unpack_from("!H", stream, i + 3)[0]
    return out


def mid_stream(conv: Conv, first: list[int]) -> list[bytes]:
    """Drop the handshake and, per direction, every segment before stream offset ``first[side]``.

    Returns the expected masked streams: zeros before the first captured
    segment that starts on a record boundary (structure unknown), then
    records as usual.
    """
    conv.items = [(f, s) for f, s in conv.items if s is not None and s.off >= first[s.side]]
    expected = []
    for side in (0, 1):
        stream = conv.streams[side]
        starts = set(record_starts(stream))
        sync = min(s.off for _, s in conv.items if s.side == side and s.off in starts)
        expected.append(bytes(sync) + tls_masked(stream)[sync:])
    return expected


def test_capture_starts_mid_stream_on_record_boundary(run, tmp_path):
    """No SYN; the first captured segment of each direction starts a record."""
    client, server = tls12_session()
    conv = Conv()
    c_starts, s_starts = record_starts(client), record_starts(server)
    conv.send(0, client, [c_starts[2], 250, 1000])
    conv.send(1, server, [s_starts[1], 1000, 1000])
    expected = mid_stream(conv, [c_starts[2], s_starts[1]])
    assert expected[0][c_starts[2]:c_starts[2] + 5] == client[c_starts[2]:c_starts[2] + 5]
    src, out, _ = mask(run, tmp_path, conv.frames, "--no-anonymize")
    assert_streams(read_pcap(out), conv, expected)
    assert_tls_output(src, out)


def test_capture_starts_mid_record(run, tmp_path):
    """No SYN; the capture starts inside records: zeroed until a segment starts a record again."""
    client, server = tls12_session()
    conv = Conv()
    c_starts, s_starts = record_starts(client), record_starts(server)
    # Client: starts inside the ClientKeyExchange, resyncs at the CCS record start.
    conv.send(0, client, [c_starts[1] + 7, c_starts[2] - c_starts[1] - 7, 500, 1000])
    # Server: starts inside the Certificate body, then a segment at the ServerHelloDone record.
    conv.send(1, server, [300, s_starts[2] - 300, 1000])
    expected = mid_stream(conv, [c_starts[1] + 7, 300])
    assert expected[1][s_starts[2]:s_starts[2] + 9] == server[s_starts[2]:s_starts[2] + 9]
    _, out, _ = mask(run, tmp_path, conv.frames, "--no-anonymize")
    got = read_pcap(out)
    assert_streams(got, conv, expected)
    assert MARK_APP not in out.read_bytes()
    assert_checksums_good(out)


def test_tls_record_header_split_in_first_segment_is_zeroed_safely(run, tmp_path):
    """A first segment too short to sniff (tiny ClientHello split) never leaks: at worst all zeros."""
    client, server = tls12_session()
    conv = Conv().handshake()
    conv.send(0, client, [3, 300, 1000])
    conv.send(1, server, [7, 1000])
    conv.fin()
    _, out, _ = mask(run, tmp_path, conv.frames, "--no-anonymize")
    got = read_pcap(out)
    for seg, payload in segment_payloads(got, conv):
        want = tls_masked(conv.streams[seg.side])[seg.off : seg.off + len(seg.data)]
        # Fail closed: every output byte is either the kept byte or zero.
        assert all(g in (0, w) for g, w in zip(payload, want, strict=True))
    assert MARK_APP not in out.read_bytes()
    assert_checksums_good(out)


@pytest.mark.xfail(reason="BUG: a TLS stream whose first segment is shorter than 9 bytes (record header "
                   "split, e.g. by DPI-evasion ClientHello splitting) is classified 'other' and its "
                   "whole handshake is zeroed (tracker.py _feed sniffs one chunk; tls_upgrade_plausible "
                   "needs >= 9 bytes)", strict=True)
@pytest.mark.parametrize("first", [1, 3, 8])
def test_tls_handshake_kept_when_first_segment_is_tiny(run, tmp_path, first):
    """CONTRACT §4: records split across segments are handled, also in the stream's first segment."""
    client, server = tls12_session()
    conv = Conv().handshake()
    conv.send(0, client, [first, 300, 1000])
    conv.send(1, server, [first, 1000])
    conv.fin()
    _, out, _ = mask(run, tmp_path, conv.frames, "--no-anonymize")
    assert_streams(read_pcap(out), conv, [tls_masked(client), tls_masked(server)])


# ---------------------------------------------------------------- HTTP


def msg(*parts: bytes | tuple[bytes]) -> tuple[bytes, bytes]:
    """An HTTP message from parts: bytes are kept, a 1-tuple ``(bytes,)`` must be zeroed.

    Returns (wire bytes, expected masked bytes).
    """
    wire = b"".join(p if isinstance(p, bytes) else p[0] for p in parts)
    masked = b"".join(p if isinstance(p, bytes) else bytes(len(p[0])) for p in parts)
    return wire, masked


def joined(*messages: tuple[bytes, bytes]) -> tuple[bytes, bytes]:
    return b"".join(m[0] for m in messages), b"".join(m[1] for m in messages)


def chunked(*chunks: bytes) -> list:
    """Chunked framing parts: sizes and CRLFs kept, data zeroed, then the last chunk."""
    parts: list = []
    for c in chunks:
        parts += [b"%x\r\n" % len(c), (c,), b"\r\n"]
    return [*parts, b"0\r\n\r\n"]


HTTP_REQUESTS = joined(
    msg(b"GET /search?", (b"q=SECRET-QUERY&sid=42",), b" HTTP/1.1\r\nHost: intranet.example\r\n"
        b"Cookie: ", (b"session=SECRET-COOKIE; theme=dark",), b"\r\nAuthorization: ", (b"Bearer SECRET-TOKEN",),
        b"\r\nUser-Agent: pktmask-test\r\nAccept: */*\r\n\r\n"),
    msg(b"POST /upload HTTP/1.1\r\nHost: intranet.example\r\nContent-Type: text/plain\r\n"
        b"Content-Length: 31\r\nX-Forwarded-For: ", (b"203.0.113.77",), b"\r\nReferer: ",
        (b"https://intranet.example/page?SECRET-REFERER",), b"\r\n\r\n", (b"SECRET-POST-BODY-0123456789abcd",)),
    msg(b"HEAD /status HTTP/1.1\r\nHost: intranet.example\r\nProxy-Authorization: ",
        (b"Basic U0VDUkVULVBST1hZ",), b"\r\nForwarded: ", (b"for=198.51.100.9;by=SECRET-FWD",), b"\r\n\r\n"),
    msg(b"PUT /chunked HTTP/1.1\r\nHost: intranet.example\r\nTransfer-Encoding: chunked\r\n\r\n",
        *chunked(b"SECRET-CHUNK-ONE", b"SECRET-TWO")),
)
HTTP_RESPONSES = joined(
    msg(b"HTTP/1.1 302 Found\r\nLocation: https://sso.example/callback?", (b"code=SECRET-OAUTH-CODE",),
        b"\r\nSet-Cookie: ", (b"id=SECRET-SETCOOKIE; Path=/; HttpOnly",), b"\r\nContent-Length: 20\r\n\r\n",
        (b"SECRET-REDIRECT-BODY",)),
    msg(b"HTTP/1.1 201 Created\r\nContent-Location: /upload/1?", (b"token=SECRET-CL",),
        b"\r\nContent-Length: 0\r\n\r\n"),
    # The answer to HEAD has a length but no body: the next response follows at once.
    msg(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n"),
    msg(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/html\r\n\r\n",
        *chunked(b"<html>SECRET-HTML-BODY" * 30, b"SECRET-TAIL</html>")),
)


def cut_sizes(data: bytes, *needles: bytes, inside: int = 3) -> list[int]:
    """Segment sizes that cut ``data`` ``inside`` bytes into each needle's first occurrence."""
    points = sorted(data.index(n) + inside for n in needles)
    return [b - a for a, b in zip([0, *points], points, strict=False)]


def http_conv(**kw) -> Conv:
    """A keep-alive conversation: each request, then its response; heads cut at awkward places."""
    conv = Conv(dport=80, **kw).handshake()
    reqs, resps = HTTP_REQUESTS[0], HTTP_RESPONSES[0]
    req_cuts = cut_sizes(reqs, b"Cookie:", b"Authorization:", b"\r\nUser-Agent", b"\r\n\r\nSECRET-POST",
                         b"Proxy-Auth", b"Transfer-Enc", b"SECRET-CHUNK-ONE", inside=1)
    resp_cuts = cut_sizes(resps, b"Set-Cookie:", b"\r\nContent-Length: 20", b"SECRET-REDIRECT",
                          b"token=", b"\r\n\r\nHTTP/1.1 200", b"<html>", inside=2)
    conv.send(0, reqs, req_cuts)
    conv.send(1, resps, resp_cuts + [300, 300])
    return conv.fin()


@pytest.mark.parametrize("variant", ["ipv4", "ipv6-vlan"])
def test_http_keep_alive(run, tmp_path, variant):
    """Heads kept but for sensitive values and query strings; bodies (length and chunked) zeroed."""
    conv = http_conv(v6=variant != "ipv4", vlan=7 if "vlan" in variant else None)
    src, out, report = mask(run, tmp_path, conv.frames, *(["--no-anonymize"] if variant == "ipv4" else []))
    got = read_pcap(out)
    assert_streams(got, conv, [HTTP_REQUESTS[1], HTTP_RESPONSES[1]])
    data = out.read_bytes()
    assert b"SECRET" not in data and b"203.0.113.77" not in data and b"U0VDUkVU" not in data
    # Header names survive; the heads were cut inside "Cookie:", so look at the reassembled stream.
    requests = reassemble(got, conv, 0)
    for name in (b"Cookie: ", b"Authorization: ", b"X-Forwarded-For: ", b"Referer: ", b"Forwarded: ",
                 b"Proxy-Authorization: "):
        assert b"\r\n" + name + b"\x00\x00\x00" in requests, name
    assert b"\r\nSet-Cookie: \x00" in reassemble(got, conv, 1)
    assert report["http_messages_masked"] == 8 and report["tls_records_masked"] == 0
    assert report["payload_bytes_zeroed"] > 0
    names = ["http.request.method", "http.request.uri", "http.host", "http.response.code",
             "http.file_data", *CHECKSUM_FIELDS]
    rows = fields(out, names)
    before = fields(src, names)
    flat = {n: [v for r in rows for v in r[n]] for n in names}
    want = {n: [v for r in before for v in r[n]] for n in names}
    assert flat["http.request.method"] == ["GET", "POST", "HEAD", "PUT"]
    assert flat["http.response.code"] == want["http.response.code"] == ["302", "201", "200", "200"]
    assert flat["http.host"] == ["intranet.example"] * 4
    assert [u.split("?")[0] for u in flat["http.request.uri"]] == ["/search", "/upload", "/status", "/chunked"]
    assert not any("SECRET" in u for u in flat["http.request.uri"])
    assert flat["http.file_data"] and len(flat["http.file_data"]) == len(want["http.file_data"])
    assert all(is_zero_hex(v) for v in flat["http.file_data"]), flat["http.file_data"]
    for key in CHECKSUM_FIELDS:
        assert "0" not in flat[key], key
