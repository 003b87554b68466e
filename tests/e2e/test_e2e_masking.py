"""Black-box proof of docs/policy.md "Payloads": the installed pktmask masks what it must and keeps structure.

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
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from captures import write_pcap
from conftest import tshark_fields

MARK_APP = b"SECRET-APPDATA"
HOST_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.")
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


def mask(run, tmp_path: Path, frames: list, *options: str, name: str = "cap") -> tuple[Path, Path, dict]:
    """Write ``frames`` (bytes, or (captured bytes, original length)) to a pcap and mask it.

    Returns (input, output, file report).
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
    assert [len(f) for f in out_frames] == [len(f[0] if isinstance(f, tuple) else f) for f in frames]
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


def tshark_raw(path: Path, field: str, protocol: str) -> list[bytes]:
    """Every occurrence of ``field``'s raw bytes (tshark -T json -x), e.g. HTTP bodies tshark prints as text."""
    cmd = ["tshark", "-n", "-r", str(path), "-T", "json", "-x", "-j", protocol, *CHECKSUM_PREFS]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True,
                         env=dict(os.environ, TMPDIR=str(path.parent)))
    found: list[bytes] = []

    def hook(pairs):
        # Keys repeat within one object when a frame holds several messages: keep them all.
        found.extend(bytes.fromhex(v[0]) for k, v in pairs if k == field + "_raw")
        return dict(pairs)

    json.loads(res.stdout, object_pairs_hook=hook)
    return found


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
    copy: bool = False  # a retransmission (``Conv.resend``): may keep less than its first copy


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
        self.items.append((self.frame(side, self.seq(side, off), "PA", chunk), Seg(side, off, chunk, copy=True)))
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
    """Every output segment's payload equals the expected masked stream at its offsets.

    A retransmission may have more zeros: a kept run of its first copy that it covers only in
    part cannot be checked against the first copy's digest, so it is zeroed (fail closed).
    """
    spans = [tls_model(st)[1] if st[:1] == b"\x16" else [] for st in conv.streams]
    for seg, got in segment_payloads(out_frames, conv):
        want = expected[seg.side][seg.off : seg.off + len(seg.data)]
        # SNI host names: pseudonyms when anonymized (same length, host-name characters).
        for a, b in spans[seg.side]:
            x, y = max(a, seg.off) - seg.off, min(b, seg.off + len(got)) - seg.off
            if x < y:
                assert all(c in HOST_CHARS for c in got[x:y]) or not any(got[x:y]), got[x:y]
                got = got[:x] + want[x:y] + got[y:]
        if seg.copy and got != want:
            assert all(g in (0, w) for g, w in zip(got, want, strict=True)), (
                f"side {seg.side} offset {seg.off}+{len(seg.data)}: the copy keeps what the first did not:\n"
                f" got  {got[:80]!r}\n want {want[:80]!r}")
            continue
        assert got == want, (f"side {seg.side} offset {seg.off}+{len(seg.data)}:\n"
                             f" got  {got[:80]!r}\n want {want[:80]!r}")


def reassemble(out_frames: list[bytes], conv: Conv, side: int) -> bytes:
    """One direction's output stream, rebuilt from the output segments' payloads (first copies)."""
    buf = bytearray(len(conv.streams[side]))
    for seg, got in segment_payloads(out_frames, conv):
        if seg.side == side and not seg.copy:
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


def _hello_kept(m: bytes, client: bool, keep, names) -> None:
    """docs/policy.md (TLS), for the hellos built here: what of message ``m`` is kept."""
    keep(0, 6)  # type, length, version; the random zeroed
    p = 38
    keep(p, p + 1)  # session ID length; the ID zeroed
    p += 1 + m[p]
    if client:
        n = struct.unpack_from("!H", m, p)[0]
        keep(p, p + 2 + n)  # cipher suites
        p += 2 + n
        keep(p, p + 1 + m[p])  # compression methods
        p += 1 + m[p]
    else:
        keep(p, p + 3)
        p += 3
    keep(p, p + 2)
    p += 2
    while p < len(m):
        etype, n = struct.unpack_from("!HH", m, p)
        keep(p, p + 4)
        a = p + 4
        if etype in (10, 13, 43):
            keep(a, a + n)
        elif etype == 0:
            keep(a, a + 5)  # list length, name type, name length
            names.append((a + 5, a + n))
            keep(a + 5, a + n)
        elif etype == 51:
            keep(a, a + (4 if not client else 6))  # (list length,) group, key length; the key zeroed
        elif etype == 0xFF01:
            keep(a, a + 1)
        p = a + n


def tls_model(stream: bytes) -> tuple[bytes, list[tuple[int, int]]]:
    """The stream as docs/policy.md (TLS) says it must come out, with SNI host names as they
    were (their spans are returned: anonymized, they hold pseudonyms); built independently."""
    out = bytearray(len(stream))
    names: list[tuple[int, int]] = []

    def keep(a: int, b: int) -> None:
        out[a:b] = stream[a:b]

    i, enc = 0, False
    while i < len(stream):
        ctype, length = stream[i], struct.unpack_from("!H", stream, i + 3)[0]
        keep(i, i + 5)
        body = i + 5
        if ctype == 20:
            enc = True
            if length == 1:
                keep(body, body + 1)
        elif ctype == 21 and length == 2:
            keep(body, body + 2)
        elif ctype == 22 and not enc:
            p = body
            while p < body + length:  # the records built here hold whole messages
                mtype, n = stream[p], int.from_bytes(stream[p + 1 : p + 4], "big")
                m = stream[p : p + 4 + n]
                if mtype in (1, 2):
                    spans: list[tuple[int, int]] = []
                    _hello_kept(m, mtype == 1, lambda a, b, p=p: keep(p + a, p + b), spans)
                    names += [(p + a, p + b) for a, b in spans]
                elif mtype == 11:
                    keep(p, p + 10)  # header, list length, the (opaque, not DER) certificate's length
                else:
                    keep(p, p + 4)
                p += 4 + n
        i += 5 + length
    return bytes(out), names


def tls_masked(stream: bytes) -> bytes:
    """The stream as docs/policy.md (TLS) says it must come out (SNI names as they were)."""
    return tls_model(stream)[0]


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


@pytest.mark.parametrize("first", [1, 3, 8])
def test_tls_handshake_kept_when_first_segment_is_tiny(run, tmp_path, first):
    """docs/policy.md "Payloads": records split across segments are handled, also in the stream's first segment."""
    client, server = tls12_session()
    conv = Conv().handshake()
    conv.send(0, client, [first, 300, 1000])
    conv.send(1, server, [first, 1000])
    conv.fin()
    _, out, _ = mask(run, tmp_path, conv.frames, "--no-anonymize")
    assert_streams(read_pcap(out), conv, [tls_masked(client), tls_masked(server)])


# ---------------------------------------------------------------- HTTP


KEY_BYTES = bytes(range(32))  # the key of the runs whose expected pseudonyms the tests compute
_ANON: dict[bytes, bytes] = {}  # wire bytes of a message -> its expected bytes with anonymization


class A(tuple):
    """A part kept with anonymization only (around a host: without it the value is zeroed whole)."""


class H(tuple):
    """A host part (docs/policy.md "Payloads", hosts): with anonymization (key KEY_BYTES) its
    pseudonym, then its port kept; without, zeroed with its port."""


def host(text: bytes, port: bytes = b"", left: bool = False, right: bool = False) -> H:
    """A host ``text``; ``left``/``right``: it begins/ends a header value (whitespace may pad)."""
    return H((text + port, text, port, left, right))


def host_image(text: bytes, left: bool, right: bool) -> bytes:
    """What the sanitizer writes for a host with the key KEY_BYTES (the pseudonym functions are unit
    tested; here the plumbing is)."""
    from pktmask.anon.cryptopan import AddressMapper
    from pktmask.anon.names import NameMapper
    from pktmask.proto.http_hosts import HostRewriter

    r = HostRewriter(NameMapper(KEY_BYTES), AddressMapper(KEY_BYTES))
    if not r.host(text, 0, len(text), left, right):
        return bytes(len(text))
    out = bytearray(text)
    for off, new in r.repl:
        out[off : off + len(new)] = new
    return bytes(out)


def key_file(tmp_path: Path) -> str:
    path = tmp_path / "k.key"
    path.write_bytes(KEY_BYTES)
    return str(path)


def msg(*parts: bytes | tuple) -> tuple[bytes, bytes]:
    """An HTTP message from parts: bytes are kept, a 1-tuple ``(bytes,)`` must be zeroed, ``A`` and
    ``H`` parts depend on anonymization (see there).

    Returns (wire bytes, expected masked bytes without anonymization); ``anonymized(wire)`` is the
    expected bytes with it.
    """
    wire = b"".join(p if isinstance(p, bytes) else p[0] for p in parts)
    masked = b"".join(p if isinstance(p, bytes) else bytes(len(p[0])) for p in parts)
    _ANON[wire] = b"".join(
        p if isinstance(p, bytes) else p[0] if isinstance(p, A)
        else host_image(p[1], p[3], p[4]) + p[2] if isinstance(p, H) else bytes(len(p[0])) for p in parts)
    return wire, masked


def anonymized(wire: bytes) -> bytes:
    return _ANON[wire]


def joined(*messages: tuple[bytes, bytes]) -> tuple[bytes, bytes]:
    return b"".join(m[0] for m in messages), b"".join(m[1] for m in messages)


def chunked(*chunks: bytes) -> list:
    """Chunked framing parts: sizes and CRLFs kept, data zeroed, then the last chunk."""
    parts: list = []
    for c in chunks:
        parts += [b"%x\r\n" % len(c), (c,), b"\r\n"]
    return [*parts, b"0\r\n\r\n"]


# Allowlist policy (docs/policy.md, "Payloads"): values outside the list are zeroed, and a query
# from its '?'; Host, Referer, Location and Content-Location keep their hosts as pseudonyms (with
# anonymization; zeroed whole without).
HTTP_EXCHANGES = [
    (msg(b"GET /search", (b"?q=SECRET-QUERY&sid=42",), b" HTTP/1.1\r\nHost: ", host(b"intranet.example"), b"\r\n"
         b"Cookie: ", (b"session=SECRET-COOKIE; theme=dark",), b"\r\nAuthorization: ", (b"Bearer SECRET-TOKEN",),
         b"\r\nUser-Agent: pktmask-test\r\nAccept: */*\r\n\r\n"),
     msg(b"HTTP/1.1 302 Found\r\nLocation: ", A((b"https://",)), host(b"sso.example"), A((b"/callback",)),
         (b"?code=SECRET-OAUTH-CODE",),
         b"\r\nSet-Cookie: ", (b"id=SECRET-SETCOOKIE; Path=/; HttpOnly",), b"\r\nContent-Length: 20\r\n\r\n",
         (b"SECRET-REDIRECT-BODY",))),
    (msg(b"POST /upload HTTP/1.1\r\nHost: ", host(b"intranet.example"), b"\r\nContent-Type: text/plain\r\n"
         b"Content-Length: 31\r\nX-Forwarded-For: ", (b"203.0.113.77",), b"\r\nReferer: ",
         A((b"https://",)), host(b"intranet.example"), A((b"/page",)), (b"?SECRET-REFERER",), b"\r\n\r\n",
         (b"SECRET-POST-BODY-0123456789abcd",)),
     msg(b"HTTP/1.1 201 Created\r\nContent-Location: ", A((b"/upload/1",)), (b"?token=SECRET-CL",),
         b"\r\nContent-Length: 0\r\n\r\n")),
    # The answer to HEAD has a length but no body: the next response follows at once.
    (msg(b"HEAD /status HTTP/1.1\r\nHost: ", host(b"intranet.example"), b"\r\nProxy-Authorization: ",
         (b"Basic U0VDUkVULVBST1hZ",), b"\r\nForwarded: ", (b"for=198.51.100.9;by=SECRET-FWD",), b"\r\n\r\n"),
     msg(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n")),
    (msg(b"PUT /chunked HTTP/1.1\r\nHost: ", host(b"intranet.example"), b"\r\nTransfer-Encoding: chunked\r\n\r\n",
         *chunked(b"SECRET-CHUNK-ONE", b"SECRET-TWO")),
     msg(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/html\r\n\r\n",
         *chunked(b"<html>SECRET-HTML-BODY" * 30, b"SECRET-TAIL</html>"))),
]
# Where heads are cut into segments: inside header names, between CR and LF, before bodies.
HTTP_CUTS = [b"Cookie:", b"Authorization:", b"\r\nUser-Agent", b"\r\n\r\nSECRET-POST", b"Proxy-Auth",
             b"Transfer-Enc", b"SECRET-CHUNK-ONE", b"Set-Cookie:", b"\r\nContent-Length: 20",
             b"SECRET-REDIRECT", b"token=", b"<html>"]


def cut_sizes(data: bytes, needles: list[bytes], inside: int) -> list[int]:
    """Segment sizes cutting ``data`` ``inside`` bytes into each needle it holds, then every 300 bytes."""
    points = sorted(data.index(n) + inside for n in needles if n in data)
    sizes = [b - a for a, b in zip([0, *points], points, strict=False)]
    return sizes + [300] * (len(data) // 300)


def http_conv(anon: bool = False, **kw) -> tuple[Conv, list[bytes]]:
    """A keep-alive conversation, each request then its response; returns it and the expected streams
    (``anon``: with anonymization under KEY_BYTES)."""
    conv = Conv(dport=80, **kw).handshake()
    expected = [b"", b""]
    for k, (request, response) in enumerate(HTTP_EXCHANGES):
        for side, (wire, masked) in enumerate((request, response)):
            conv.send(side, wire, cut_sizes(wire, HTTP_CUTS, inside=1 + (k + side) % 2))
            expected[side] += anonymized(wire) if anon else masked
    # Retransmissions of bytes around the first cookie and set-cookie values, cut differently.
    conv.resend(0, conv.streams[0].index(b"Cookie:") - 30, 90)
    conv.resend(1, conv.streams[1].index(b"Set-Cookie:") - 3, 60)
    return conv.fin(), expected


def test_http_capture_starts_mid_stream(run, tmp_path):
    """No SYN: a response body in progress is zeroed; the next head at a segment start is found again."""
    conv, expected = http_conv()
    responses = conv.streams[1]
    second = responses.index(b"HTTP/1.1 201")
    # Keep the client from its second request on, the server from inside the first body.
    first = [conv.streams[0].index(b"POST /upload"), responses.index(b"SECRET-REDIRECT") + 5]
    conv.items = [(f, s) for f, s in conv.items if s is not None and s.off >= first[s.side]]
    # Bytes before the first head found are unknown: zeroed.
    expected[1] = bytes(second) + expected[1][second:]
    assert any(s.off == second for _, s in conv.items if s.side == 1)
    _, out, report = mask(run, tmp_path, conv.frames, "--no-anonymize")
    assert_streams(read_pcap(out), conv, expected)
    assert b"SECRET" not in out.read_bytes() and report["http_messages_masked"] >= 5


@pytest.mark.parametrize("variant", ["ipv4", "ipv6-vlan"])
def test_http_keep_alive(run, tmp_path, variant):
    """Heads kept but for values outside the allowlist and query strings; bodies (length and chunked) zeroed."""
    anon = variant != "ipv4"
    conv, expected = http_conv(anon, v6=variant != "ipv4", vlan=7 if "vlan" in variant else None)
    src, out, report = mask(run, tmp_path, conv.frames,
                            *(["--key-file", key_file(tmp_path)] if anon else ["--no-anonymize"]))
    got = read_pcap(out)
    assert_streams(got, conv, expected)
    data = out.read_bytes()
    assert b"SECRET" not in data and b"203.0.113.77" not in data and b"U0VDUkVU" not in data
    # Header names survive; the heads were cut inside "Cookie:", so look at the reassembled stream.
    requests = reassemble(got, conv, 0)
    for name in (b"Cookie: ", b"Authorization: ", b"X-Forwarded-For: ", b"Forwarded: ", b"Proxy-Authorization: ",
                 *(() if anon else (b"Host: ", b"Referer: "))):
        assert b"\r\n" + name + b"\x00\x00\x00" in requests, name
    responses = reassemble(got, conv, 1)
    assert b"\r\nSet-Cookie: \x00" in responses
    assert b"\r\nLocation: " + (b"https://" if anon else b"\x00") in responses
    assert b"intranet" not in data and b"sso.example" not in data
    # Every message but the answer to HEAD had something zeroed.
    assert report["http_messages_masked"] == 7 and report["tls_records_masked"] == 0
    assert report["payload_bytes_zeroed"] > 0
    names = ["http.request.method", "http.request.uri", "http.host", "http.response.code", *CHECKSUM_FIELDS]
    rows = fields(out, names)
    before = fields(src, names)
    flat = {n: [v for r in rows for v in r[n]] for n in names}
    want = {n: [v for r in before for v in r[n]] for n in names}
    assert flat["http.request.method"] == ["GET", "POST", "HEAD", "PUT"]
    assert flat["http.response.code"] == want["http.response.code"] == ["302", "201", "200", "200"]
    # The Host values: zeroed without anonymization (tshark shows them empty), else the pseudonym.
    assert want["http.host"] == ["intranet.example"] * 4
    if anon:
        assert flat["http.host"] == [host_image(b"intranet.example", True, True).decode()] * 4
    else:
        assert not any(flat["http.host"])
    assert [u.split("\x00")[0] for u in flat["http.request.uri"]] == ["/search", "/upload", "/status", "/chunked"]
    assert not any("SECRET" in u for u in flat["http.request.uri"])
    # Bodies: tshark prints http.file_data as text (empty at a NUL), so compare its raw bytes.
    bodies, bodies_in = tshark_raw(out, "http.file_data", "http"), tshark_raw(src, "http.file_data", "http")
    assert [len(b) for b in bodies] == [len(b) for b in bodies_in] == [20, 31, 26, 678]
    assert all(b == bytes(len(b)) for b in bodies)
    for key in CHECKSUM_FIELDS:
        assert "0" not in flat[key], key


@pytest.mark.parametrize("variant", ["same-length", "longer"])
def test_retransmission_with_other_bytes_keeps_none_of_them(run, tmp_path, variant):
    """Issue 12: a retransmission of the same seq carrying other bytes (a planted cookie where the
    first copy had another header) does not inherit the first copy's keep ranges: only the bytes
    it repeats exactly are kept. Default options; every checksum valid for tshark."""
    request = (b"GET /index.html?lang=en HTTP/1.1\r\nHost: www.example.test\r\n"
               b"Accept-Language: en-US,en;q=0.5\r\n\r\n")
    planted = b"Cookie: secret=planted-ABCDEFGH"  # as long as the header it replaces
    if variant == "longer":
        planted += b"; more=planted-IJKLMN"  # overlaps the first copy and goes on with new bytes
    forged = request.replace(b"Accept-Language: en-US,en;q=0.5", planted)
    conv = Conv(dport=80).handshake()
    conv.send(0, request)
    conv.items.append((conv.frame(0, conv.seq(0, 0), "PA", forged), Seg(0, 0, forged, copy=True)))
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody"
    conv.send(1, response)
    conv.fin()
    src, out, _ = mask(run, tmp_path, conv.frames, "--key-file", key_file(tmp_path))
    assert b"secret=planted" in src.read_bytes()
    data = out.read_bytes()
    assert b"planted" not in data and b"secret" not in data
    got = read_pcap(out)
    first, copy = (got[i][-len(seg.data) :] for i, (_, seg) in enumerate(conv.items) if seg and seg.side == 0)
    # Allowlist policy: the query from its '?' is zeroed, the Host value is its pseudonym,
    # Accept-Language kept.
    query = request.index(b"?lang=en")
    at = request.index(b"www.example.test")
    alias = host_image(b"www.example.test", True, True)
    assert first == request[:query] + bytes(8) + request[query + 8 : at] + alias + request[at + 16 :]
    # The copy keeps the kept runs it repeats whole (the request line up to the zeroed query),
    # nothing of the run it changes (from the query's end on: the Host line and the forged header).
    assert copy == request[:query] + bytes(len(forged) - query)
    assert_checksums_good(out)


# Issue 13: credentials, URL secrets and IP literals outside the old denylist. Every 1-tuple is
# planted and must be zeroed; the allowlisted values around them are kept byte for byte.
LEAK_EXCHANGES = [
    (msg(b"GET http://", (b"admin:pa/ss@w@rd@",), host(b"10.2.2.104"), b":8080/proxy/", (b"10.1.2.3",), b"/app",
         (b";jsessionid=SECRET-JSESSION?token=SECRET-QUERY#frag",), b" HTTP/1.1\r\n",
         b"Host: ", host(b"10.2.2.104", left=True, right=True), b"\r\n",
         b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) pktmask-e2e/1.0\r\n",
         b"Accept: text/html,*/*;q=0.8\r\nAccept-Language: en-US,en;q=0.5\r\n",
         b"X-Api-Key: ", (b"SECRET-API-KEY",), b"\r\nX-Auth-Token: ", (b"SECRET-AUTH-TOKEN",),
         b"\r\nX-Amz-Security-Token: ", (b"SECRET-AMZ//////////wEaDG==",), b"\r\nX-CSRF-Token: ", (b"SECRET-CSRF",),
         b"\r\nCookie2: ", (b'$Version="1"; SECRET-COOKIE2',),
         b"\r\nSec-WebSocket-Protocol: ", (b"chat, bearer.SECRET-WS-TOKEN",),
         b"\r\nOrigin: ", A((b"http://",)), host(b"10.2.2.105", b":3000"), b"\r\nX-Real-IP: ", (b"10.2.2.106",),
         b"\r\nTrue-Client-IP: ", (b"2001:db8::6",), b"\r\nX-Client-IP: ", (b"10.2.2.107",),
         b"\r\nx-forwarded-host: ", (b"10.2.2.109",), b"\r\nVia: ", (b"1.1 10.2.2.110 (squid)",),
         b"\r\nDestination: ", (b"http://dav.example/new?k=SECRET-DEST",),
         b"\r\nX-Original-URL: ", (b"/admin?SECRET-ORIG",),
         b"\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\n", (b"SECRET-BODY",)),
     msg(b"HTTP/1.1 401 Unauthorized\r\nServer: edge/2.1 (", (b"10.1.2.3",), b"; ", (b"2001:db8::1",), b")\r\n",
         b"WWW-Authenticate: ", (b"NTLM TlRMTVNTUAACAAAADAAMADgAAAAFgoqiSECRET",),
         b"\r\nSet-Cookie2: ", (b"sid=SECRET-SC2; Version=1",),
         b"\r\nLocation: ", A((b"https://",)), host(b"app.example"), A((b"/cb",)), (b"#access_token=SECRET-FRAGMENT",),
         b"\r\nContent-Location: ", A((b"http://",)), host(b"10.2.2.111"), A((b"/doc",)),
         (b"#access_token=SECRET-CL",),
         b"\r\nRefresh: ", (b"0; url=/next?SECRET-REFRESH",), b"\r\nLink: ", (b"</p?session=SECRET-LINK>; rel=next",),
         b"\r\nDate: Tue, 15 Nov 1994 08:12:31 GMT\r\nCache-Control: no-store\r\n"
         b"Content-Type: text/html; charset=utf-8\r\nContent-Length: 13\r\n\r\n", (b"SECRET-BODY-2",))),
    (msg(b"GET //", (b"user@",), host(b"10.2.2.112"), b"/x HTTP/1.1\r\nUser-Agent: probe ([", (b"2001:db8::1",),
         b"])\r\n\r\n"),
     msg(b"HTTP/1.1 204 No Content\r\nServer: Apache/2.4.57 (Debian)\r\n\r\n")),
    (msg(b"CONNECT ", host(b"10.2.2.113"), b":443 HTTP/1.1\r\nHost: ", host(b"10.2.2.113", b":443", left=True),
         b"\r\n\r\n"),
     msg(b"HTTP/1.1 200 Connection established\r\n\r\n")),
]
LEAK_NEEDLES = [b"SECRET", b"10.2.2.1", b"10.1.2.3", b"2001:db8::", b"admin", b"pa/ss", b"w@rd", b"access_token",
                b"jsessionid", b"TlRMTVNT", b"user@", b"dav.example", b"app.example"]


@pytest.mark.parametrize("anonymize", [True, False], ids=["anonymize", "no-anonymize"])
def test_http_allowlist_closes_issue_13_leaks(run, tmp_path, anonymize):
    """None of the planted secrets or IP literals survives; the allowlisted values do, byte for byte;
    tshark still parses every request and response (method, code, header names); checksums valid."""
    conv = Conv(dport=80).handshake()
    expected = [b"", b""]
    for k, (request, response) in enumerate(LEAK_EXCHANGES):
        for side, (wire, masked) in enumerate((request, response)):
            cuts = [b"10.2.2.104", b"Api-Key", b"SECRET-WS", b"2001:db8::6", b"10.1.2.3", b"access_token", b"user@"]
            conv.send(side, wire, cut_sizes(wire, cuts, inside=3 + k))
            expected[side] += anonymized(wire) if anonymize else masked
    conv.fin()
    src, out, report = mask(run, tmp_path, conv.frames,
                            *(["--key-file", key_file(tmp_path)] if anonymize else ["--no-anonymize"]))
    data = out.read_bytes()
    got = read_pcap(out)
    requests, responses = reassemble(got, conv, 0), reassemble(got, conv, 1)
    # Segments are cut inside the planted values: look in the streams as well as in the file.
    for needle in LEAK_NEEDLES:
        assert needle in conv.streams[0] + conv.streams[1], needle
        assert needle not in data and needle not in requests and needle not in responses, needle
    assert_streams(got, conv, expected)
    for line in (b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) pktmask-e2e/1.0", b"Accept: text/html,*/*;q=0.8",
                 b"Accept-Language: en-US,en;q=0.5", b"Content-Type: text/plain", b"Content-Length: 11"):
        assert b"\r\n" + line + b"\r\n" in requests, line
    for line in (b"Date: Tue, 15 Nov 1994 08:12:31 GMT", b"Cache-Control: no-store",
                 b"Content-Type: text/html; charset=utf-8", b"Content-Length: 13", b"Server: Apache/2.4.57 (Debian)"):
        assert b"\r\n" + line + b"\r\n" in responses, line
    # All but the 204 and the CONNECT answer (nothing follows it); with anonymization the CONNECT
    # request has nothing zeroed if its address's pseudonym has the same length.
    assert report["http_messages_masked"] == 4 or anonymize and report["http_messages_masked"] == 3
    names = ["http.request.method", "http.response.code", "http.request.line", "http.response.line",
             "http.user_agent", "http.content_type"]
    # Header lines hold commas: aggregate occurrences with '|' instead.
    rows = tshark_fields(out, names, "http", ["-E", "aggregator=|"])
    flat = {n: [v for r in rows for v in (r + [""] * len(names))[i].split("|") if v] for i, n in enumerate(names)}
    assert flat["http.request.method"] == ["GET", "GET", "CONNECT"]
    assert flat["http.response.code"] == ["401", "204", "200"]
    header_names = {v.split(":")[0] for n in ("http.request.line", "http.response.line") for v in flat[n]}
    for name in ("Host", "User-Agent", "X-Api-Key", "X-Amz-Security-Token", "Sec-WebSocket-Protocol", "Origin",
                 "X-Real-IP", "Via", "WWW-Authenticate", "Set-Cookie2", "Location", "Refresh", "Link", "Date"):
        assert name in header_names, name
    assert "Mozilla/5.0 (X11; Linux x86_64) pktmask-e2e/1.0" in flat["http.user_agent"]
    assert "text/html; charset=utf-8" in flat["http.content_type"]
    assert_checksums_good(out)


# ---------------------------------------------------------------- everything else: zeroed


def assert_masked_frame(inp: bytes, out: bytes, keep: int, checksums: tuple[int, ...] = (), what: str = "") -> None:
    """``out`` keeps ``inp[:keep]`` (checksum fields at ``checksums`` may change) and zeroes the rest."""
    assert out[keep:] == bytes(len(out) - keep), f"{what}: bytes after the headers not zeroed"
    a, b = bytearray(inp[:keep]), bytearray(out[:keep])
    for off in checksums:
        a[off : off + 2] = b[off : off + 2] = b"\0\0"
    assert a == b, f"{what}: headers changed"


def other_frames() -> list[tuple[str, bytes, int, tuple[int, ...]]]:
    """(name, frame, header bytes kept, checksum offsets) for protocols masking does not understand."""
    from scapy.all import (
        DNS,
        DNSQR,
        ICMP,
        IP,
        TCP,
        UDP,
        Ether,
        ICMPv6EchoRequest,
        IPv6,
        IPv6ExtHdrFragment,
        Raw,
        fragment,
        fragment6,
    )

    e = Ether(src=C_MAC, dst=S_MAC)
    cli, srv, dns = "192.0.2.10", "198.51.100.20", "203.0.113.53"
    dns_msg = bytes(DNS(rd=1, qd=DNSQR(qname="secret-host.example.com")))
    c6, s6 = "2001:db8::10", "2001:db8:1::20"
    ip_ck, l4 = 14 + 10, 14 + 20
    out = [
        # DNS over UDP and TCP is kept structurally with its names pseudonymized (docs/policy.md
        # "DNS"; tests/e2e/test_e2e_dns.py, test_e2e_stream_names.py). NetBIOS is still zeroed.
        # A TCP segment on another port carrying the same DNS message is zeroed like any payload.
        ("dns-like-tcp", e / IP(src=cli, dst=dns) / TCP(sport=40200, dport=5300, flags="PA", seq=1, ack=1)
         / Raw(struct.pack("!H", len(dns_msg)) + dns_msg), l4 + 20, (ip_ck, l4 + 16)),
        ("netbios-ns", e / IP(src=cli, dst=srv) / UDP(sport=137, dport=137)
         / Raw(b"\x12\x34\x01\x10\x00\x01\x00\x00\x00\x00\x00\x00 SECRET-NETBIOS-NAME\x00\x00\x20\x00\x01"),
         l4 + 8, (ip_ck, l4 + 6)),
        ("icmp-echo", e / IP(src=cli, dst=srv) / ICMP(type=8, id=7, seq=1) / Raw(b"SECRET-PING-DATA" * 3),
         l4 + 8, (ip_ck, l4 + 2)),
        ("icmp6-echo", e / IPv6(src=c6, dst=s6) / ICMPv6EchoRequest(id=7, seq=1, data=b"SECRET-PING6"),
         14 + 48, (14 + 42,)),
        ("udp-random-port", e / IP(src=cli, dst=srv) / UDP(sport=31337, dport=54321) / Raw(b"SECRET-UDP-DATA"),
         l4 + 8, (ip_ck, l4 + 6)),
        ("ip-proto-253", e / IP(src=cli, dst=srv, proto=253) / Raw(b"SECRET-PROTO-253"), l4, (ip_ck,)),
        ("ip6-proto-253", e / IPv6(src=c6, dst=s6, nh=253) / Raw(b"SECRET-PROTO6-253"), 14 + 40, ()),
        # Ethernet padding after the IP total length (appended to the built bytes, so lengths
        # exclude it): stale memory on the wire, zeroed.
        ("udp-padded", bytes(e / IP(src=cli, dst=srv) / UDP(sport=1000, dport=2000) / Raw(b"SE")) + b"\xAA" * 16,
         l4 + 8, (ip_ck, l4 + 6)),
        ("tcp-ack-padded", bytes(e / IP(src=cli, dst=srv) / TCP(sport=40000, dport=443, flags="A", seq=1, ack=1))
         + b"\xAA" * 6, l4 + 20, (ip_ck, l4 + 16)),
    ]
    # Fragments: the first keeps its transport header, the others only their IP headers.
    for name, dgram in (
        ("frag-udp", IP(src=cli, dst=srv, id=4242) / UDP(sport=7000, dport=7001) / Raw(b"SECRET-FRAG-UDP!" * 190)),
        ("frag-icmp", IP(src=cli, dst=srv, id=4243) / ICMP(type=8, id=9, seq=2) / Raw(b"SECRET-FRAG-PING" * 190)),
        ("frag-tcp", IP(src=cli, dst=srv, id=4244) / TCP(sport=40100, dport=5001, flags="PA", seq=10, ack=20)
         / Raw(b"SECRET-FRAG-TCP!" * 190)),
    ):
        hdr = {"frag-udp": (8, 6), "frag-icmp": (8, 2), "frag-tcp": (20, 16)}[name]
        for k, frag in enumerate(fragment(dgram, fragsize=1000)):
            keep, cks = (l4 + hdr[0], (ip_ck, l4 + hdr[1])) if k == 0 else (l4, (ip_ck,))
            out.append((f"{name}-{k}", e / frag, keep, cks))
    for name, dgram in (
        ("frag6-udp", IPv6(src=c6, dst=s6) / IPv6ExtHdrFragment(id=77) / UDP(sport=7000, dport=7001)
         / Raw(b"SECRET-FRAG6-UDP" * 190)),
        ("frag6-icmp6", IPv6(src=c6, dst=s6) / IPv6ExtHdrFragment(id=78)
         / ICMPv6EchoRequest(id=3, seq=4, data=b"SECRET-FRAG6-PNG" * 190)),
    ):
        for k, frag in enumerate(fragment6(dgram, 1280)):
            keep, cks = (14 + 48 + 8, (14 + 48 + (6 if "udp" in name else 2),)) if k == 0 else (14 + 48, ())
            out.append((f"{name}-{k}", e / frag, keep, cks))
    return [(n, bytes(f), k, c) for n, f, k, c in out]


@pytest.mark.parametrize("anonymize", [False, True], ids=["no-anonymize", "defaults"])
def test_other_payloads_zeroed(run, tmp_path, anonymize):
    """DNS over TCP, NetBIOS, ICMP echo, UDP, unknown IP protocols, fragments, Ethernet padding:
    headers kept, rest zeroed."""
    items = other_frames()
    frames = [f for _, f, _, _ in items]
    options = ["--keep-macs"] + ([] if anonymize else ["--no-anonymize"])
    src, out, report = mask(run, tmp_path, frames, *options)
    got = read_pcap(out)
    if not anonymize:
        for (name, frame, keep, cks), o in zip(items, got, strict=True):
            assert_masked_frame(frame, o, keep, cks, name)
    else:
        for (name, _, keep, _), o in zip(items, got, strict=True):
            assert o[keep:] == bytes(len(o) - keep), name
    data = out.read_bytes()
    assert b"SECRET" not in data and b"\xAA" * 6 not in data
    assert b"secret-host" not in data and b"\x0bsecret-host\x07example" not in data
    assert report["payload_bytes_zeroed"] >= sum(len(f) - k for _, f, k, _ in items)
    assert report["tls_records_masked"] == report["http_messages_masked"] == 0
    assert_checksums_good(out)
    # tshark still reassembles the fragments (so it verified the transport checksums over them).
    names = ["icmp.type", "icmpv6.type", "udp.dstport", "tcp.srcport"]
    rows = dict(zip([n for n, *_ in items], fields(out, names), strict=True))
    assert rows["frag-udp-3"]["udp.dstport"] == ["7001"]
    assert rows["frag-tcp-3"]["tcp.srcport"] == ["40100"]
    assert rows["frag-icmp-3"]["icmp.type"] == ["8"]
    assert rows["frag6-udp-2"]["udp.dstport"] == ["7001"]
    assert rows["frag6-icmp6-2"]["icmpv6.type"] == ["128"]


def test_fragment_checksums_with_anonymization(run, tmp_path):
    """Fragmented TCP and ICMPv6 datagrams, default options: the first fragment's checksum needs the
    datagram length only the last fragment tells, learnt in the pre-pass under the addresses the
    final pass sees (a pre-pass without anonymization once broke this)."""
    frames = [f for n, f, _, _ in other_frames() if n.startswith(("frag-tcp-", "frag6-icmp6-"))]
    src, out, _ = mask(run, tmp_path, frames)
    assert_checksums_good(src)
    assert_checksums_good(out)


def icmp_error_frames() -> list[tuple[str, bytes, int, tuple[int, ...]]]:
    """ICMP/ICMPv6 port unreachable quoting a whole UDP datagram (name, frame, header bytes kept, checksums).

    The checksums that may change: outer IP and ICMP, and the quoted UDP one (its payload is zeroed).
    """
    from scapy.all import ICMP, IP, UDP, Ether, ICMPv6DestUnreach, IPv6, Raw

    e = Ether(src=S_MAC, dst=C_MAC)
    quoted = bytes(IP(src="192.0.2.10", dst="198.51.100.20", id=99) / UDP(sport=5555, dport=6666)
                   / Raw(b"SECRET-QUOTED-PAYLOAD"))
    quoted6 = bytes(IPv6(src="2001:db8::10", dst="2001:db8:1::20") / UDP(sport=5555, dport=6666)
                    / Raw(b"SECRET-QUOTED6-PAYLOAD"))
    return [
        ("icmp-unreachable", bytes(e / IP(src="198.51.100.20", dst="192.0.2.10") / ICMP(type=3, code=3)
                                   / Raw(quoted)), 14 + 20 + 8 + 28, (24, 36, 68)),
        ("icmp6-unreachable", bytes(e / IPv6(src="2001:db8:1::20", dst="2001:db8::10") / ICMPv6DestUnreach(code=4)
                                    / Raw(quoted6)), 14 + 40 + 8 + 48, (56, 108)),
    ]


def test_icmp_error_keeps_quoted_headers(run, tmp_path):
    """The quoted IP+UDP headers are kept (tshark dissects them), the quoted payload is zeroed."""
    items = icmp_error_frames()
    _, out, _ = mask(run, tmp_path, [f for _, f, _, _ in items], "--no-anonymize", "--keep-macs")
    for (name, frame, keep, cks), o in zip(items, read_pcap(out), strict=True):
        assert_masked_frame(frame, o, keep, cks, name)
    assert b"SECRET" not in out.read_bytes()
    rows = fields(out, ["icmp.type", "icmpv6.type", "ip.proto", "ipv6.nxt", "udp.srcport", "udp.dstport",
                        "ip.checksum.status", "icmp.checksum.status", "icmpv6.checksum.status"])
    v4, v6 = rows
    assert v4["icmp.type"] == ["3"] and v4["ip.proto"] == ["1", "17"]
    assert v4["udp.srcport"] == ["5555"] and v4["udp.dstport"] == ["6666"]
    assert v4["ip.checksum.status"] == ["1", "1"] and v4["icmp.checksum.status"] == ["1"]
    assert v6["icmpv6.type"] == ["1"] and v6["ipv6.nxt"] == ["58", "17"]
    assert v6["udp.dstport"] == ["6666"] and v6["icmpv6.checksum.status"] == ["1"]


@pytest.mark.parametrize("anonymize", [False, True], ids=["no-anonymize", "defaults"])
def test_icmp_error_quoted_checksum_valid(run, tmp_path, anonymize):
    """docs/policy.md "Checksums": every checksum of a fully captured packet is valid, the quoted datagram's too."""
    items = icmp_error_frames()
    src, out, _ = mask(run, tmp_path, [f for _, f, _, _ in items], *([] if anonymize else ["--no-anonymize"]))
    assert_checksums_good(src)  # the input's quoted checksums are right
    assert_checksums_good(out)


# ---------------------------------------------------------------- other TCP, STARTTLS, gaps, reuse


def test_unknown_tcp_protocol_fully_zeroed(run, tmp_path):
    """An SSH-like stream is neither TLS nor HTTP: every payload byte is zeroed, even HTTP-looking ones."""
    conv = Conv(sport=50022, dport=22).handshake()
    conv.send(1, b"SSH-2.0-OpenSSH_9.6 SECRET-SERVER-BANNER\r\n")
    conv.send(0, b"SSH-2.0-SECRET-CLIENT\r\n")
    conv.send(0, filler(1500, 3) + b"SECRET-KEX", [700])
    conv.send(1, filler(900, 4) + b"SECRET-KEX-REPLY")
    # Later segments that look like HTTP or TLS heads are still part of the unknown protocol.
    conv.send(0, b"GET /SECRET-PATH HTTP/1.1\r\nHost: SECRET-HOST\r\n\r\n")
    conv.send(1, b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nSECRET")
    conv.fin()
    _, out, report = mask(run, tmp_path, conv.frames, "--no-anonymize")
    assert_streams(read_pcap(out), conv, [bytes(len(conv.streams[0])), bytes(len(conv.streams[1]))])
    assert b"SECRET" not in out.read_bytes() and b"SSH-2.0" not in out.read_bytes()
    assert report["payload_bytes_zeroed"] == len(conv.streams[0]) + len(conv.streams[1])
    assert report["tls_records_masked"] == report["http_messages_masked"] == 0
    assert_checksums_good(out)


def test_starttls_upgrade(run, tmp_path):
    """SMTP-like plaintext (zeroed), then STARTTLS and a TLS session in the same connection (structure kept)."""
    client_tls, server_tls = tls12_session()
    conv = Conv(sport=50025, dport=2525).handshake()
    plain = [b"", b""]
    for side, line in ((1, b"220 mx.example ESMTP SECRET-BANNER\r\n"), (0, b"EHLO SECRET-CLIENT.example\r\n"),
                       (1, b"250-mx.example\r\n250 STARTTLS\r\n"), (0, b"STARTTLS\r\n"),
                       (1, b"220 2.0.0 Ready to start TLS\r\n")):
        conv.send(side, line)
        plain[side] += line
    hello = record_starts(client_tls)[1]
    conv.send(0, client_tls[:hello])  # the ClientHello record, in one segment
    conv.send(1, server_tls, [1000])
    conv.send(0, client_tls[hello:], [600])
    conv.fin()
    expected = [bytes(len(plain[0])) + tls_masked(client_tls), bytes(len(plain[1])) + tls_masked(server_tls)]
    _, out, report = mask(run, tmp_path, conv.frames, "--no-anonymize")
    assert_streams(read_pcap(out), conv, expected)
    data = out.read_bytes()
    # The ClientHello's structure survives byte for byte (random and session ID zeroed).
    assert tls_masked(client_tls[:hello]) in data
    assert b"SECRET" not in data and b"STARTTLS" not in data and b"EHLO" not in data
    assert report["tls_records_masked"] == 6
    assert_checksums_good(out)


def test_tls_lookalike_inside_unknown_stream_is_zeroed(run, tmp_path):
    """Fail closed: bytes of an unknown protocol that merely look like TLS records are not kept."""
    conv = Conv(sport=50022, dport=22).handshake()
    conv.send(0, b"SSH-2.0-OpenSSH_9.6\r\n")
    conv.send(0, record(23, b"") + record(22, b"SECRET-PLAINTEXT-PASSWORD=hunter2"))
    conv.fin()
    _, out, _ = mask(run, tmp_path, conv.frames, "--no-anonymize")
    assert b"SECRET" not in out.read_bytes()


def test_lost_segments(run, tmp_path):
    """Lost segments: inside a data record the walk keeps its place; across a header it resyncs later."""
    client, server = tls12_session()
    c, s = record_starts(client), record_starts(server)
    conv = Conv().handshake()
    # Client: records 4 (700 B) and 5 (3000 B) are data; lose bytes inside record 5's body only.
    ci = conv.send(0, client, [c[5] + 100, 1000, 1000])
    # Server: lose the segment holding the CCS and Finished headers; the next segment starting a
    # record (the 40-byte data record) brings the structure back.
    si = conv.send(1, server, [s[3] - 2, s[5] - s[3] + 2, 1000])
    lost = {ci[1], si[1]}
    conv.items = [it for k, it in enumerate(conv.items) if k not in lost]
    conv.fin()
    # The cut falls inside the ServerHelloDone's 4-byte header (its record starts at s[2]): a
    # handshake message is decided once complete, so that half header is zeroed too.
    server_expected = tls_masked(server)[: s[2] + 5] + bytes(s[5] - s[2] - 5) + tls_masked(server)[s[5]:]
    src, out, _ = mask(run, tmp_path, conv.frames, "--no-anonymize")
    assert_streams(read_pcap(out), conv, [tls_masked(client), server_expected])
    assert MARK_APP not in out.read_bytes()
    assert_checksums_good(out)


def test_flow_reuse(run, tmp_path):
    """The same 4-tuple carries HTTP, then (new SYN, new ISN) TLS: each connection is masked as itself."""
    first, expected_first = http_conv(isn=(1000, 5000))
    second = Conv(dport=80, isn=(900_000, 70_000)).handshake()
    client, server = tls13_session()
    second.send(0, client, [400])
    second.send(1, server, [1000, 1000])
    second.fin()
    _, out, _ = mask(run, tmp_path, first.frames + second.frames, "--no-anonymize")
    got = read_pcap(out)
    assert_streams(got[: len(first.items)], first, expected_first)
    assert_streams(got[len(first.items) :], second, [tls_masked(client), tls_masked(server)])


def test_snaplen_cut_segments(run, tmp_path):
    """Frames cut short by a snaplen: no marker survives; their transport checksums are zeroed.

    A cut-short packet's checksum cannot be recomputed over the sanitized bytes; an
    incremental update would be a 16-bit function of the zeroed and the missing bytes.
    """
    from scapy.all import TCP, Ether

    client, server = tls12_session()
    conv = Conv().handshake()
    conv.send(0, client, [300, 1000])
    conv.send(1, server, [1000, 1000])
    conv.fin()
    snap = 120
    frames = [(f[:snap], len(f)) if len(f) > snap else f for f in conv.frames]
    _, out, _ = mask(run, tmp_path, frames, "--no-anonymize")
    got = read_pcap(out)
    assert MARK_APP[:8] not in out.read_bytes()
    cut = 0
    for (frame, seg), o in zip(conv.items, got, strict=True):
        if len(frame) <= snap:
            continue
        cut += 1
        # Its checksum cannot be recomputed over the sanitized bytes, and an update would
        # tell of the zeroed and the missing ones: it is zeroed.
        assert Ether(o)[TCP].chksum == 0, f"TCP checksum of a cut frame at offset {seg.off}"
    assert cut >= 4


def test_http_head_kept_when_first_segment_ends_in_method(run, tmp_path):
    """docs/policy.md "Payloads": heads split across segments are handled, also in the stream's first segment."""
    conv = Conv(dport=80).handshake()
    (request, req_masked), (response, resp_masked) = HTTP_EXCHANGES[0]
    conv.send(0, request, [2, 40])
    conv.send(1, response, [4, 40])
    conv.fin()
    _, out, _ = mask(run, tmp_path, conv.frames, "--no-anonymize")
    assert_streams(read_pcap(out), conv, [req_masked, resp_masked])


def nested_frame(kind: str, levels: int) -> bytes:
    """An Ethernet frame of ``levels`` nested IP-in-IP headers or ICMP errors around a small UDP datagram."""
    def ip(proto: int, payload: bytes) -> bytes:
        head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0,
                           bytes([192, 0, 2, 10]), bytes([198, 51, 100, 20]))
        return head + payload

    pkt = ip(17, struct.pack("!HHHH", 1000, 2000, 18, 0) + b"SECRET-NEST")
    for _ in range(levels):
        pkt = ip(4, pkt) if kind == "ipip" else ip(1, bytes([3, 3, 0, 0, 0, 0, 0, 0]) + pkt)
    return bytes.fromhex("02665566778802112233445508 00".replace(" ", "")) + pkt


@pytest.mark.parametrize("kind", ["ipip", "icmp"])
def test_deep_nesting_does_not_crash(run, tmp_path, kind):
    """A hostile frame must not make the capture unsanitizable: past MAX_DEPTH the rest is zeroed."""
    frames = [nested_frame(kind, 600), Conv().frame(0, 1, "S")]
    _, out, _ = mask(run, tmp_path, frames, "--no-anonymize")
    assert b"SECRET" not in out.read_bytes()


# ------------------------------------------------------------ pre-pass verdicts replayed


@pytest.mark.parametrize("serial", ["", "1"], ids=["pipelined", "serial"])
def test_prepass_failure_mid_capture_is_the_reported_error(run, tmp_path, serial):
    """The pre-pass meets an unsupported link type after thousands of packets: the final pass,
    replaying its verdicts, reports that error (exit 1, one line), and nothing is left."""
    from captures import bulk_frames, epb, idb, shb

    frames = bulk_frames(6000)
    blocks = [shb(), idb(1), idb(147)] + [epb(f, iface=0, ts=(1, i)) for i, f in enumerate(frames)]
    blocks += [epb(f, iface=1, ts=(2, i)) for i, f in enumerate(frames[:3])]
    src = tmp_path / "late-user0.pcapng"
    src.write_bytes(b"".join(blocks))
    out = tmp_path / "out" / "o.pcapng"
    out.parent.mkdir()

    r = run("mask", src, out, "--no-anonymize", "--dedup", env={"PKTMASK_SERIAL": serial})

    err = r.stderr.decode(errors="replace").strip()
    assert r.returncode == 1, err
    assert len(err.splitlines()) == 1 and "147" in err and "Traceback" not in err, err
    assert os.listdir(out.parent) == []
    assert run.leftovers() == []


def test_replayed_dedup_counts_and_bytes_match_serial(run, tmp_path):
    """Dedup runs once (in the pre-pass); the final pass replays its drops: same output and count."""
    from captures import bulk_frames

    frames = bulk_frames(3000)
    frames = [f for i, f in enumerate(frames) for _ in range(2 if i % 7 == 0 else 1)]
    src = write_pcap(tmp_path / "dups.pcap", frames)
    reports = {}
    for serial in ("", "1"):
        out = tmp_path / f"out{serial or 'p'}.pcap"
        r = run("mask", src, out, "--dedup", "--json", "--key-file", hex_key_file(tmp_path),
                env={"PKTMASK_SERIAL": serial})
        assert r.returncode == 0, r.stderr.decode(errors="replace")
        reports[serial] = (json.loads(r.stdout)["files"][0]["duplicates_removed"], out.read_bytes())
    assert reports[""] == reports["1"]
    assert reports[""][0] == len(range(0, 3000, 7))
    assert run.leftovers() == []


def hex_key_file(tmp_path: Path) -> Path:
    """The fixed test key as a hex key file."""
    path = tmp_path / "key.hex"
    path.write_text(bytes(range(32)).hex() + "\n")
    return path
