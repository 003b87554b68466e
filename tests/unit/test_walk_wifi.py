"""The walker's 802.11 layer (proto/walk_wifi.py, proto/radio.py) and the SSID pseudonyms.

docs/policy.md, "802.11", is the spec. Checked here: what the walk lists for each kind of frame,
that it never raises on damaged frames, that the walk of an anonymized frame finds the same
structure as the walk of the original (the masker walks the anonymized one), and that the
sanitizer's walk and the auditor's own dissector (verify/wifi.py) agree byte for byte.
"""

from __future__ import annotations

import random
import struct
import zlib

import pytest

import wifi_captures as wc
from pktmask.anon.cryptopan import AddressMapper
from pktmask.anon.macs import MacMapper
from pktmask.anon.names import SSID_PARENT, NameMapper
from pktmask.anon.rewriter import Rewriter
from pktmask.proto.checksum import write_fcs
from pktmask.proto.walk import F_MAC, walk
from pktmask.verify.fields import Walker
from pktmask.verify.labels import ADDR4, ADDR6, KEEP, MAC, NAME

KEY = bytes(range(32))
ALL = [(b.__name__, b()) for b in wc.BUILDERS]


def frames():
    for name, leak in ALL:
        for i in range(len(leak.frames)):
            yield f"{name}[{i}]", leak.data(i), leak.linktype


def rewriter() -> Rewriter:
    return Rewriter(AddressMapper(KEY), MacMapper(KEY), NameMapper(KEY))


def test_beacon_addresses_ssid_and_fcs():
    frame = wc.radiotap() + wc.fcs(wc.beacon())
    rt = len(wc.radiotap())
    w = walk(frame, wc.RADIOTAP)
    assert [(o - rt, k) for o, k, _ in w.fields] == [(4, F_MAC), (10, F_MAC), (16, F_MAC)]
    ssid_at = frame.index(wc.SSID)
    assert w.labels == [(ssid_at, len(wc.SSID), SSID_PARENT)]
    assert w.fcs == (rt, rt, rt, len(frame) - 4)
    vendor = frame.index(b"PLANTED-VENDOR-RADIO")
    assert (vendor, vendor + 20) in w.wipe
    device = frame.index(wc.DEVICE)
    assert any(a <= device and device + len(wc.DEVICE) <= b for a, b in w.wipe)


def test_four_address_data_maps_every_address_and_walks_ip():
    frame = wc.radiotap(0) + wc.data(0x03, [wc.AP, wc.WDS, wc.STA2, wc.STA], wc.llc(0x0800) + wc.ipv4_udp())
    rt = len(wc.radiotap(0))
    w = walk(frame, wc.RADIOTAP)
    macs = [o - rt for o, k, _ in w.fields if k == F_MAC]
    assert macs == [4, 10, 16, 24]
    assert w.fcs is None
    ip = rt + 30 + 8
    assert [o - ip for o, k, _ in w.fields if k != F_MAC] == [12, 16]


def test_datapad_is_hidden_and_skipped_by_the_fcs():
    body = wc.data(0x01, [wc.AP, wc.STA, wc.AP], b"\x00\x00" + wc.llc(0x0800) + wc.ipv4_udp(), qos=True)
    frame = wc.radiotap(0x30) + wc.fcs(body, (26, 28))
    rt = len(wc.radiotap(0x30))
    w = walk(frame, wc.RADIOTAP)
    assert (rt + 26, rt + 28) in w.wipe
    assert w.fcs == (rt, rt + 26, rt + 28, len(frame) - 4)
    buf = bytearray(frame)
    write_fcs(buf, w.fcs)
    assert bytes(buf) == frame  # the builder's FCS, over the frame as sent


def test_radiotap_alignment_namespaces_and_unknown_fields():
    # Flags, then Channel (2-aligned after one byte: a pad byte), then an extended word
    # naming bit 32, which has no defined size: hidden to the end of the header.
    head = struct.pack("<BBHII", 0, 0, 20, (1 << 1) | (1 << 3) | (1 << 31), 1) + b"\x10\x00" + b"\x85\x09\xa0\x00" + b"XY"
    frame = head + wc.fcs(struct.pack("<BBH", 0xD4, 0, 0) + wc.mac(wc.STA))
    w = walk(frame, wc.RADIOTAP)
    assert (13, 14) in w.wipe  # alignment padding
    assert (18, 20) in w.wipe  # a field of unknown size and all after it
    assert w.fcs == (20, 20, 20, len(frame) - 4)  # the Flags field before it was read


def test_eapol_key_and_eap_identity_are_hidden():
    leak = wc.radiotap_eapol()
    for i in range(len(leak.frames)):
        frame = leak.data(i)
        w = walk(frame, wc.RADIOTAP)
        for secret in (wc.IDENTITY, wc.ANONCE, wc.SNONCE, wc.MIC, wc.KEYDATA):
            at = frame.find(secret)
            if at >= 0:
                assert any(a <= at and at + len(secret) <= b for a, b in w.wipe), (i, secret)


def test_ssid_pseudonyms():
    names = NameMapper(KEY)
    for ssid in (b"Corp-WiFi_5G", b"caf\xc3\xa9 guest", b"_hidden", b"x"):
        alias = names.map_ssid(ssid)
        assert len(alias) == len(ssid) and alias != ssid
        assert alias == names.map_label(ssid, SSID_PARENT) == NameMapper(KEY).map_ssid(ssid)
        assert NameMapper(bytes(32)).map_ssid(ssid) != alias
        for a, b in zip(ssid, alias, strict=True):
            assert chr(b).isdigit() == chr(a).isdigit() and (a not in b"-_" or a == b)
    assert names.map_ssid(b"corp") != names.map_ssid(b"CORP").lower()  # case-sensitive
    assert names.map_ssid(bytes(8)) == bytes(8)  # a hidden network
    assert names.map_ssid(b"com") != b"com"  # no public suffix rule for SSIDs


@pytest.mark.parametrize("name,frame,lt", list(frames()), ids=[x[0] for x in frames()])
def test_anonymized_frame_walks_the_same(name, frame, lt):
    # The masker walks the anonymizer's output: structure and zero ranges must not move.
    before = walk(frame, lt)
    buf = bytearray(frame)
    rewriter().apply(buf, before)
    after = walk(bytes(buf), lt)
    assert before.fcs == after.fcs
    # A range hidden whole (an element whose length runs past the frame) reads as zeros after:
    # the ranges may differ, never what they cover among the bytes that are not zero yet.
    for w in (before, after):
        w.zero[:] = sorted({i for a, b in w.zero for i in range(a, min(b, len(buf))) if buf[i]})
        w.wipe[:] = sorted({i for a, b in w.wipe for i in range(a, min(b, len(buf))) if buf[i]})
    assert before.zero == after.zero and before.wipe == after.wipe
    assert [f[0] for f in before.fields] == [f[0] for f in after.fields]
    assert [x[:2] for x in before.labels] == [x[:2] for x in after.labels]
    if before.fcs is not None:
        start, gap, resume, at = before.fcs
        assert buf[at:at + 4] == zlib.crc32(buf[resume:at], zlib.crc32(buf[start:gap])).to_bytes(4, "little")


def test_damaged_frames_never_raise():
    rng = random.Random(80211)
    auditor = Walker()
    for _name, frame, lt in frames():
        for _ in range(60):
            buf = bytearray(frame)
            cut = rng.randrange(len(buf) + 1)
            for _ in range(rng.randrange(1, 6)):
                buf[rng.randrange(len(buf))] = rng.randrange(256)
            for data in (bytes(buf), bytes(buf[:cut])):
                w = walk(data, lt)
                copy = bytearray(data)
                rewriter().apply(copy, w)
                auditor.frame(data, lt)


def _sanitizer_labels(frame: bytes, lt: int) -> list[str]:
    w = walk(frame, lt)
    out = ["keep"] * len(frame)
    for a, b in w.zero + w.wipe:
        for i in range(a, min(b, len(frame))):
            out[i] = "zero"
    for o, _kind, size in w.fields:
        for i in range(o, o + size):
            out[i] = "mac"
    for o, size, _parent in w.labels:
        for i in range(o, o + size):
            out[i] = "name"
    return out


def _auditor_labels(frame: bytes, lt: int) -> list[str]:
    spans = Walker().frame(frame, lt)
    out = ["zero"] * len(frame)
    kinds = {KEEP: "keep", MAC: "mac", ADDR4: "mac", ADDR6: "mac", NAME: "name"}
    for a, b, kind, _ in spans.items:
        for i in range(a, b):
            out[i] = kinds.get(kind, "zero")
    return out


@pytest.mark.parametrize("build", [wc.radiotap_management, wc.radiotap_eapol, wc.radiotap_protected,
                                   wc.radiotap_control, wc.radiotap_malformed, wc.ppi_frames, wc.prism_frames,
                                   wc.avs_frames, wc.dot11_plain])
def test_sanitizer_and_auditor_agree(build):
    # Two independent readings of docs/policy.md: byte for byte the same verdicts on the 802.11
    # parts (IP payloads are the stream model's and the DNS/HTTP rules' business: skipped).
    leak = build()
    for i in range(len(leak.frames)):
        frame = leak.data(i)
        mine, theirs = _sanitizer_labels(frame, leak.linktype), _auditor_labels(frame, leak.linktype)
        snap = frame.find(b"\xaa\xaa\x03\x00\x00\x00\x08\x00")
        snap = snap if snap >= 0 else frame.find(b"\xaa\xaa\x03\x00\x00\x00\x86\xdd")
        stop = snap + 8 if snap >= 0 else len(frame)
        diff = [j for j in range(stop) if mine[j] != theirs[j] and frame[j]]
        assert not diff, (leak.name, i, diff[:8], [(mine[j], theirs[j]) for j in diff[:8]])
