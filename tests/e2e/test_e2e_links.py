"""Serial and other link types, and tunnels, through the installed CLI (docs/policy.md, "Link
layer" and "Tunnels"): every planted identifier gone, frame lengths kept, tshark parses the
output with valid checksums, ``verify`` clean, and a leak planted back is caught.
"""

from __future__ import annotations

import json
import socket
import struct

import pytest
from scapy.all import IP, UDP, Ether, Raw
from scapy.utils import RawPcapReader

from captures import write_pcap
from conftest import tshark_fields
from link_captures import (
    A6,
    CASES,
    TEREDO_CLIENT,
    TEREDO_PORT,
    TEREDO_SERVER,
    a4,
    invert,
    outer,
    teredo,
)

CHECKSUMS = ["-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE"]
BAD_CHECKSUM = ("ip.checksum.status == 0 || tcp.checksum.status == 0 || udp.checksum.status == 0"
                " || icmp.checksum.status == 0 || gre.checksum.status == 0")
MALFORMED = "_ws.malformed || _ws.expert.severity >= error"
# Frames tshark finds malformed after sanitizing because a payload was zeroed (an LCP
# Configure-Request whose option bytes are zero).
ZEROED_PAYLOAD_MALFORMED = {"ppp": {"3"}}
TSHARK_UNREADABLE = {166, 205, 206}  # pppd PPP, Cisco HDLC and Frame Relay with direction: tshark lacks them
# What tshark must find in the output, by case: the framing or tunnel is still dissected.
DISSECTED = {"ppp": "ppp", "ppp-hdlc": "chdlc", "cisco-hdlc": "slarp", "frame-relay": "fr", "ipnet": "ipnet",
             "nflog": "nflog", "gtp-u": "gtp", "geneve": "geneve", "erspan": "erspan", "teredo": "teredo",
             "ayiya": "ayiya"}


def frames_of(path) -> list[bytes]:
    return [bytes(p[0]) for p in RawPcapReader(str(path))]


def numbers(path, display_filter: str) -> set[str]:
    return {row[0] for row in tshark_fields(path, ["frame.number"], display_filter, CHECKSUMS)}


def verify(run, original, sanitized) -> tuple[int, dict]:
    res = run("verify", original, sanitized, "--json")
    return res.returncode, json.loads(res.stdout)


@pytest.mark.parametrize("name", list(CASES))
def test_sanitized(name, run, tmp_path, tshark):
    lt, frames, needles = CASES[name]
    src = write_pcap(tmp_path / f"{name}.pcap", frames, linktype=lt)
    out = tmp_path / "out.pcap"
    res = run("mask", src, out)
    assert res.returncode == 0, res.stderr
    got = frames_of(out)
    assert [len(f) for f in got] == [len(f) for f in frames]
    for needle in needles:
        assert not any(needle in f for f in got), needle.hex()
    if lt not in TSHARK_UNREADABLE:
        assert numbers(out, BAD_CHECKSUM) == set()
        assert numbers(out, MALFORMED) <= numbers(src, MALFORMED) | ZEROED_PAYLOAD_MALFORMED.get(name, set())
    if name in DISSECTED:
        protocols = " ".join(row[0] for row in tshark_fields(out, ["frame.protocols"]))
        assert DISSECTED[name] in protocols.split(":") or f":{DISSECTED[name]}:" in protocols, protocols
    code, report = verify(run, src, out)
    assert code == 0 and report["clean"], report["findings"][:5]
    assert run.leftovers() == []


@pytest.mark.parametrize("name", list(CASES))
def test_identifiers_mapped_without_masking(name, run, tmp_path):
    """Without payload masking the identifiers are still mapped and hidden bytes zeroed."""
    lt, frames, needles = CASES[name]
    src = write_pcap(tmp_path / f"{name}.pcap", frames, linktype=lt)
    out = tmp_path / "out.pcap"
    assert run("mask", src, out, "--no-mask-payloads").returncode == 0
    got = frames_of(out)
    assert [len(f) for f in got] == [len(f) for f in frames]
    for needle in needles:
        assert not any(needle in f for f in got), needle.hex()
    assert run.leftovers() == []


@pytest.mark.parametrize("name", list(CASES))
def test_planted_leak_is_caught(name, run, tmp_path):
    """Each planted identifier written back where it was is a finding of ``verify``."""
    lt, frames, needles = CASES[name]
    src = write_pcap(tmp_path / f"{name}.pcap", frames, linktype=lt)
    out = tmp_path / "out.pcap"
    assert run("mask", src, out).returncode == 0
    leak = [bytearray(f) for f in frames_of(out)]
    spots = []
    for needle in needles:
        for i, f in enumerate(frames):
            at = f.find(needle)
            if at >= 0:  # (an obfuscated Teredo client is planted in its obfuscated form)
                leak[i][at : at + len(needle)] = needle
                spots.append((i + 1, at, needle))
                break
    assert spots
    planted = write_pcap(tmp_path / "planted.pcap", [bytes(f) for f in leak], linktype=lt)
    code, report = verify(run, src, planted)
    assert code == 1 and not report["clean"]
    for packet, at, needle in spots:
        assert any(f["packet"] == packet and f["offset"] < at + len(needle) and at < f["offset"] + f["length"]
                   for f in report["findings"]), (needle.hex(), report["findings"][:5])
    assert run.leftovers() == []


# Where verify and the sanitizer disagree on a header cut short by the snap length on every
# link type (Ethernet too): a TCP header shorter than 20 bytes, its checksum, an IPv6 header
# shorter than 40, a cooked header shorter than 16/20. Nothing else may be found.
CUT_SHORT_KNOWN = {"", "tcp.checksum", "ipv6 (not understood)", "sll (cut short)", "sll2 (cut short)"}


@pytest.mark.parametrize("name", list(CASES))
def test_cut_short_frames(name, run, tmp_path):
    """Every frame cut at every length: sanitized without error, lengths kept, the audit
    finds nothing the link or tunnel code is responsible for."""
    lt, frames, _needles = CASES[name]
    cut = [(f[:k], len(f)) for f in frames for k in range(1, len(f), 2)]
    src = write_pcap(tmp_path / f"{name}.pcap", cut, linktype=lt)
    out = tmp_path / "out.pcap"
    res = run("mask", src, out)
    assert res.returncode == 0 and b"Traceback" not in res.stderr, res.stderr
    assert [len(f) for f in frames_of(out)] == [len(f) for f, _ in cut]
    _code, report = verify(run, src, out)
    assert {f["field"] for f in report["findings"]} <= CUT_SHORT_KNOWN, report["findings"][:5]
    assert run.leftovers() == []


def test_teredo_address_follows_the_ipv4_pseudonyms(run, tmp_path):
    """The server and (obfuscated) client IPv4 addresses a Teredo address embeds take the
    pseudonyms the same addresses take in IPv4 headers; prefix, flags and port are kept."""
    first = bytes(Ether() / IP(src=TEREDO_CLIENT, dst=TEREDO_SERVER) / UDP(sport=TEREDO_PORT, dport=3544)
                  / Raw(teredo()))
    src = write_pcap(tmp_path / "teredo.pcap", [first, outer(UDP(sport=TEREDO_PORT, dport=3544) / Raw(teredo()))])
    out = tmp_path / "out.pcap"
    assert run("mask", src, out, "--no-mask-payloads").returncode == 0
    frame = frames_of(out)[0]
    client, server = frame[26:30], frame[30:34]
    assert client != a4(TEREDO_CLIENT) and server != a4(TEREDO_SERVER)
    v6 = 14 + 20 + 8 + 8  # Ethernet, IPv4, UDP, origin indication
    addr = frame[v6 + 8 : v6 + 24]
    assert addr[:4] == b"\x20\x01\x00\x00" and addr[4:8] == server
    assert addr[8:12] == struct.pack(">HH", 0x8000, TEREDO_PORT ^ 0xFFFF)
    assert invert(addr[12:16]) == client
    assert frame[v6 + 24 : v6 + 40] != socket.inet_pton(socket.AF_INET6, A6)
    assert frame[42:46] == b"\x00\x00" + struct.pack(">H", TEREDO_PORT ^ 0xFFFF)  # origin: port kept
    assert frame[46:50] == bytes(4)  # origin: the obfuscated address hidden


def test_tunnel_payload_that_does_not_parse_is_zeroed(run, tmp_path):
    """A GTP-U T-PDU, a Geneve frame, a Teredo packet or an ERSPAN frame that does not parse as
    what the header claims is zeroed, not walked (docs/policy.md, "Tunnels")."""
    junk = b"\x45" + b"\x11" * 60  # IPv4-looking, bad header checksum
    cases = [
        outer(UDP(sport=2152, dport=2152) / Raw(struct.pack(">BBHI", 0x30, 0xFF, len(junk), 7) + junk)),
        outer(UDP(sport=1, dport=6081) / Raw(struct.pack(">BBHI", 0, 0, 0x0800, 0x100) + junk)),
        outer(UDP(sport=1, dport=3544) / Raw(b"\x60" + b"\xff" * 60)),  # unknown next header
    ]
    src = write_pcap(tmp_path / "junk.pcap", cases)
    out = tmp_path / "out.pcap"
    assert run("mask", src, out).returncode == 0
    for frame in frames_of(out):
        assert frame[42:] == bytes(len(frame) - 42)  # the whole UDP payload
    assert run.leftovers() == []


@pytest.mark.parametrize("linktype, name", [(147, "147"), (195, "IEEE 802.15.4"), (6, "Token Ring")])
def test_unsupported_link_type_is_named(run, tmp_path, linktype, name):
    src = write_pcap(tmp_path / "x.pcap", [b"\x00" * 40], linktype=linktype)
    out = tmp_path / "out" / "o.pcap"
    out.parent.mkdir()
    res = run("mask", src, out)
    err = res.stderr.decode().strip()
    assert res.returncode == 1 and len(err.splitlines()) == 1, err
    assert str(linktype) in err and name in err and "Traceback" not in err
    assert list(out.parent.iterdir()) == [] and run.leftovers() == []
