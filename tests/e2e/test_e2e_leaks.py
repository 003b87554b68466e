"""Every header leak of issue 12, through the installed `pktmask mask` (default options).

Each capture of ``leak_captures`` hides identifiers where a sanitizer that copies through what it
does not understand would leave them (options, extension headers, odd ARP/SLL forms, IGMP bodies,
guessed tunnels, retransmissions, checksums). After `pktmask mask` none may survive, frame lengths
are unchanged, and tshark (checksum validation on) finds no bad checksum.
"""

from __future__ import annotations

import pytest
from scapy.utils import RawPcapReader

from conftest import tshark_fields
from leak_captures import BUILDERS, Spot

KEY = bytes(range(0x20, 0x40))
CHECKSUM_PREFS = ["-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE"]
BAD = ("ip.checksum.status==0 || tcp.checksum.status==0 || udp.checksum.status==0 || "
       "icmp.checksum.status==0 || icmpv6.checksum.status==0 || igmp.checksum.status==0")


def frames_of(path) -> list[bytes]:
    with RawPcapReader(str(path)) as reader:
        return [bytes(data) for data, _meta in reader]


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "key"
    path.write_bytes(KEY)
    path.chmod(0o600)
    return path


@pytest.mark.parametrize("build", BUILDERS, ids=[b.__name__ for b in BUILDERS])
def test_no_planted_identifier_survives(build, run, tmp_path, key_file, tshark):
    leak = build()
    src, out = leak.write(tmp_path / "in.pcap"), tmp_path / "out.pcap"
    res = run("mask", src, out, "--key-file", key_file)
    assert res.returncode == 0, res.stderr
    before, after = [leak.data(i) for i in range(len(leak.frames))], frames_of(out)
    assert [len(f) for f in after] == [len(f) for f in before]
    for item in leak.planted:
        if isinstance(item, Spot):
            got = after[item.frame][item.offset : item.offset + len(item.value)]
            assert got != item.value or not any(item.value), f"{leak.name}: {item} survived"
        else:
            for i, data in enumerate(after):
                assert item not in data, f"{leak.name}: {item!r} survived in frame {i}"
    bad = tshark_fields(out, ["frame.number"], BAD, CHECKSUM_PREFS)
    assert bad == [], f"{leak.name}: bad checksums in frames {bad}"
    assert run.leftovers() == []
