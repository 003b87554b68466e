"""Recomputed checksums follow RFC 1624's +0 rule: a sum of 0xFFFF gives 0x0000, except for UDP.

A TCP/ICMP/ICMPv6 checksum of 0xFFFF where the sum is +0 is flagged by tshark; a UDP one of
0x0000 means "no checksum", so UDP alone sends 0xFFFF. The frames are built so that the masked
segment sums to exactly 0xFFFF, on the fast path (plain IPv4/IPv6 + TCP/UDP) and the general
one (IPv4 options).
"""

from __future__ import annotations

import struct

import pytest
from scapy.all import IP, TCP, UDP, Ether, IPv6, Raw
from scapy.utils import RawPcapReader

from captures import ones, write_pcap
from conftest import tshark_fields

PREFS = ["-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE"]
E = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def masked_sum(l3, l4, payload_len: int) -> int:
    """Sum of the pseudo header and the transport header (checksum 0) with a zeroed payload."""
    hdr = bytearray(bytes(l4)[: len(bytes(l4)) - payload_len])
    at = 16 if isinstance(l4, TCP) else 6
    hdr[at : at + 2] = b"\0\0"
    proto = 6 if isinstance(l4, TCP) else 17
    length = len(bytes(l4))
    if isinstance(l3, IPv6):
        pseudo = bytes(l3)[8:40] + struct.pack("!IxxxB", length, proto)
    else:
        pseudo = bytes(l3)[12:20] + struct.pack("!xBH", proto, length)
    return ones(pseudo + bytes(hdr))


def zero_sum_frame(l3, make_l4, payload: bytes) -> bytes:
    """A frame whose masked transport segment sums to 0xFFFF: the source port is chosen for it."""
    s = masked_sum(l3, make_l4(0) / Raw(payload), len(payload))
    l4 = make_l4(0xFFFF - s) / Raw(payload)  # adds the missing amount to the sum
    assert masked_sum(l3, l4, len(payload)) == 0xFFFF
    return bytes(E / l3 / l4)


CASES = {
    "tcp4-fast": (IP(src="192.0.2.1", dst="192.0.2.2"), lambda p: TCP(sport=p, dport=5000, seq=7, flags="PA"), 0x0000),
    "tcp6-fast": (IPv6(src="2001:db8::1", dst="2001:db8::2"), lambda p: TCP(sport=p, dport=5000, seq=7, flags="PA"),
                  0x0000),
    "tcp4-options": (IP(src="192.0.2.1", dst="192.0.2.2", options=b"\x94\x04\x00\x00"),
                     lambda p: TCP(sport=p, dport=5000, seq=7, flags="PA"), 0x0000),
    "udp4-fast": (IP(src="192.0.2.1", dst="192.0.2.2"), lambda p: UDP(sport=p, dport=5000), 0xFFFF),
    "udp6-fast": (IPv6(src="2001:db8::1", dst="2001:db8::2"), lambda p: UDP(sport=p, dport=5000), 0xFFFF),
}


@pytest.mark.parametrize("name", list(CASES))
def test_plus_zero_sum(name, run, tmp_path, tshark):
    l3, make_l4, expected = CASES[name]
    frame = zero_sum_frame(l3, make_l4, b"unknown protocol bytes, zeroed")
    src, out = write_pcap(tmp_path / "in.pcap", [frame]), tmp_path / "out.pcap"
    res = run("mask", src, out, "--no-anonymize")
    assert res.returncode == 0, res.stderr
    with RawPcapReader(str(out)) as reader:
        (data, _meta), = list(reader)
    l4 = 14 + (40 if isinstance(l3, IPv6) else len(bytes(l3)) - len(bytes(l3.payload)))
    at = l4 + (16 if "tcp" in name else 6)
    assert struct.unpack("!H", data[at : at + 2])[0] == expected
    assert tshark_fields(out, ["frame.number"], "tcp.checksum.status==0 || udp.checksum.status==0", PREFS) == []


@pytest.mark.parametrize("v6", [False, True])
def test_lone_first_fragment_checksum_is_zeroed(v6, run, tmp_path):
    """A first fragment whose last fragment is not in the capture: its transport checksum covers
    bytes the capture does not hold, so it is zeroed (docs/policy.md, "Checksums"), UDP
    included although UDP states the datagram's length; verify agrees."""
    from scapy.all import IPv6ExtHdrFragment, fragment, fragment6

    body = UDP(sport=4000, dport=4001) / Raw(b"secret payload " * 40)
    if v6:
        frags = fragment6(IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrFragment() / body, 400)
    else:
        frags = fragment(IP(src="10.0.0.1", dst="10.0.0.2") / body, 400)
    frames = [bytes(E / frags[0])]
    src = write_pcap(tmp_path / "in.pcap", frames)
    out = tmp_path / "out.pcap"
    assert run("mask", src, out).returncode == 0
    data = next(iter(RawPcapReader(str(out))))[0]
    at = 14 + (48 if v6 else 20) + 6
    assert data[at : at + 2] == b"\0\0"
    assert run("verify", src, out).returncode == 0
