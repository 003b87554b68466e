"""The leak audit finds what it must: original bytes planted back into a sanitized capture.

For every leak capture of ``leak_captures`` the capture is sanitized (default options, a
fixed key), each planted identifier of ORIGINAL is copied back into SANITIZED at its
original place, and the audit must name that packet and offset. The same for original bytes
put back into places every sanitizer zeroes or maps (an unknown TCP option, ICMP echo data,
a zeroed payload, an address field).
"""

from __future__ import annotations

import pytest

import leak_captures
from captures import write_pcap
from leak_captures import plant
from pktmask.config import MaskConfig
from pktmask.runner import build_executor
from pktmask.verify import verify

KEY = bytes(range(32))




def sanitize(src, out, manager):
    build_executor(MaskConfig(key=KEY), manager).run_file(src, out)
    return out


def named(report, frame: int, offset: int, length: int) -> bool:
    """Does a finding name packet ``frame + 1`` at bytes overlapping ``[offset, offset + length)``?"""
    return any(f["packet"] == frame + 1 and f["offset"] < offset + length and offset < f["offset"] + f["length"]
               for f in report["findings"])


@pytest.mark.parametrize("builder", leak_captures.BUILDERS, ids=lambda b: b.__name__)
def test_planted_identifier_is_named(builder, tmp_path, manager):
    leak = builder()
    src = leak.write(tmp_path / "orig.pcap")
    out = sanitize(src, tmp_path / "out.pcap", manager)
    spots = leak.locations()
    report = verify(src, plant(out, spots, tmp_path / "planted.pcap"), manager)
    assert report["aligned"] is True and report["clean"] is False
    missed = [(frame, offset, value.hex()) for frame, offset, value in spots if not named(report, frame, offset, len(value))]
    assert missed == [], report["findings"]


def _frames():
    from scapy.all import ICMP, IP, TCP, UDP, Ether, Raw

    e = Ether(src="02:99:50:00:00:01", dst="02:99:50:00:00:02")
    syn = TCP(sport=41000, dport=9, flags="S", seq=7, options=[("MSS", 1460), (99, b"OPT-PLANTED!"), ("NOP", None),
                                                                ("NOP", None)])
    return [
        bytes(e / IP(src="10.99.50.1", dst="10.99.50.2") / syn),
        bytes(e / IP(src="10.99.50.1", dst="10.99.50.2") / ICMP(type=8, id=3, seq=4) / Raw(b"ECHO-DATA-PLANTED")),
        bytes(e / IP(src="10.99.50.1", dst="10.99.50.2") / UDP(sport=41001, dport=7777) / Raw(b"UDP-PAYLOAD-PLANTED")),
        bytes(e / IP(src="10.99.50.3", dst="10.99.50.4") / UDP(sport=41002, dport=7777) / Raw(b"x")),
    ]


@pytest.mark.parametrize("what, frame, needle", [
    ("unknown tcp option data", 0, b"OPT-PLANTED!"),
    ("icmp echo data", 1, b"ECHO-DATA-PLANTED"),
    ("zeroed payload", 2, b"UDP-PAYLOAD-PLANTED"),
    ("unmapped ip address", 3, bytes([10, 99, 50, 3])),
    ("unmapped mac address", 3, bytes.fromhex("029950000001")),
])
def test_original_bytes_put_back_are_named(what, frame, needle, tmp_path, manager):
    frames = _frames()
    src = write_pcap(tmp_path / "orig.pcap", frames)
    out = sanitize(src, tmp_path / "out.pcap", manager)
    offset = frames[frame].index(needle)
    report = verify(src, plant(out, [(frame, offset, needle)], tmp_path / "planted.pcap"), manager)
    assert report["clean"] is False
    assert named(report, frame, offset, len(needle)), (what, report["findings"])


def test_a_planted_address_is_reported_as_not_mapped(tmp_path, manager):
    frames = _frames()
    src = write_pcap(tmp_path / "orig.pcap", frames)
    out = sanitize(src, tmp_path / "out.pcap", manager)
    report = verify(src, plant(out, [(3, 26, bytes([10, 99, 50, 3]))], tmp_path / "planted.pcap"), manager)
    assert report["categories"]["ip"]["examples"] == [{"value": "10.99.50.3", "packet": 4, "where": "header"}]
    assert {"packet": 4, "original_packet": 4, "offset": 26, "length": 4, "field": "ipv4.src",
            "kind": "not mapped"} in report["findings"]


@pytest.mark.parametrize("builder", leak_captures.BUILDERS, ids=lambda b: b.__name__)
def test_sanitized_leak_capture_is_clean(builder, tmp_path, manager):
    """No false alarm: the sanitizer and the audit, written apart, agree on every leak capture."""
    leak = builder()
    src = leak.write(tmp_path / "orig.pcap")
    report = verify(src, sanitize(src, tmp_path / "out.pcap", manager), manager)
    assert report["aligned"] is True
    assert report["clean"] is True, report["findings"][:10]
