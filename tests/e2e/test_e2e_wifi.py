"""802.11 captures (link types 105, 127, 192, 119, 163) through the installed `pktmask`.

Each capture of ``wifi_captures`` plants station and AP MACs, SSIDs, a mesh ID, a WPS device
name, EAP identities, PMKIDs, handshake nonces, vendor radio data... After `pktmask mask` none
may survive, frame lengths are unchanged, tshark finds no bad checksum or FCS and no malformed
frame the original did not have (except where the policy zeroes a body tshark then cannot
parse), and `pktmask verify` finds the output clean. An original identifier written back is a
finding (docs/policy.md, "802.11").
"""

from __future__ import annotations

import json

import pytest
from scapy.utils import RawPcapReader

from conftest import tshark_fields
from leak_captures import plant
from wifi_captures import (
    BUILDERS,
    IDENTITY,
    SSID,
    mac,
    probe_req,
    radiotap,
    radiotap_eapol,
    radiotap_management,
)

KEY = bytes(range(0x40, 0x60))
PREFS = ["-o", "wlan.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
         "-o", "udp.check_checksum:TRUE"]
BAD = ("wlan.fcs.status==0 || ip.checksum.status==0 || tcp.checksum.status==0 || udp.checksum.status==0 || "
       "icmp.checksum.status==0 || icmpv6.checksum.status==0")
# Frames whose body the policy zeroes and tshark then cannot parse: an SAE commit and a
# neighbor report action frame of zeros.
ZEROED_BODIES = {"radiotap_management": {"8", "10"}}


def frames_of(path) -> list[bytes]:
    with RawPcapReader(str(path)) as reader:
        return [bytes(data) for data, _meta in reader]


def numbers(path, display_filter: str) -> set[str]:
    return {row[0] for row in tshark_fields(path, ["frame.number"], display_filter, PREFS)}


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "key"
    path.write_bytes(KEY)
    path.chmod(0o600)
    return path


def masked(run, tmp_path, key_file, leak, *options):
    src, out = leak.write(tmp_path / f"{leak.name}.pcap"), tmp_path / f"{leak.name}-out.pcap"
    res = run("mask", src, out, "--key-file", key_file, *options)
    assert res.returncode == 0, res.stderr
    return src, out


@pytest.mark.parametrize("build", BUILDERS, ids=[b.__name__ for b in BUILDERS])
def test_wifi_capture_is_sanitized(build, run, tmp_path, key_file, tshark):
    leak = build()
    src, out = masked(run, tmp_path, key_file, leak)
    before, after = [leak.data(i) for i in range(len(leak.frames))], frames_of(out)
    assert [len(f) for f in after] == [len(f) for f in before]
    for item in leak.planted:
        for i, data in enumerate(after):
            assert item not in data, f"{leak.name}: {item!r} survived in frame {i + 1}"
    assert numbers(out, BAD) <= numbers(src, BAD), "a checksum or FCS went bad"
    new = numbers(out, "_ws.malformed") - numbers(src, "_ws.malformed")
    assert new <= ZEROED_BODIES.get(leak.name, set()), f"tshark finds frames {new} malformed"
    res = run("verify", src, out, "--json")
    report = json.loads(res.stdout)
    assert res.returncode == 0 and report["clean"], report["findings"][:5]
    assert run.leftovers() == []


def test_tshark_reads_the_sanitized_fields(run, tmp_path, key_file, tshark):
    leak = radiotap_management()
    src, out = masked(run, tmp_path, key_file, leak)
    fields = ["wlan.fc.type_subtype", "wlan.ra", "wlan.ta", "wlan.ssid", "wlan.fcs.status", "radiotap.channel.freq"]
    old, new = tshark_fields(src, fields, None, PREFS), tshark_fields(out, fields, None, PREFS)
    assert len(old) == len(new) == len(leak.frames)
    for a, b in zip(old, new, strict=True):
        assert a[0] == b[0] and a[5] == b[5]  # frame types and radio fields kept
        assert b[4] == "1"  # FCS recomputed: good
        if a[3].strip("0"):  # an SSID (not a hidden network's zeros): a pseudonym of its length
            assert len(a[3]) == len(b[3]) and a[3] != b[3]
    # The same SSID gets the same pseudonym in every frame (beacon, probe response, association).
    ssids = {row[3] for row in new if row[0] in ("0x0008", "0x0005", "0x0000", "0x0002") and row[3].strip("0")}
    assert len(ssids) == 1
    # ...and in another file sanitized with the same key.
    other = leak._replace(name="other", frames=[radiotap() + probe_req(SSID)])
    src2, out2 = masked(run, tmp_path, key_file, other)
    assert tshark_fields(out2, ["wlan.ssid"])[0][0] in ssids
    assert run.leftovers() == []


def test_anonymize_only_maps_and_hides_identifiers(run, tmp_path, key_file, tshark):
    # Without masking, MACs and SSIDs are still mapped and EAP identities, nonces and key data
    # still hidden; the FCS is recomputed for the mapped bytes.
    for leak in (radiotap_management(), radiotap_eapol()):
        src, out = masked(run, tmp_path, key_file, leak, "--no-mask-payloads")
        after = frames_of(out)
        for item in (mac("02:99:00:00:00:0a"), mac("02:99:00:00:00:01"), SSID, IDENTITY):
            assert all(item not in f for f in after), item
        assert numbers(out, "wlan.fcs.status==0") == set()
    assert run.leftovers() == []


@pytest.mark.parametrize("build,value,field", [
    (radiotap_management, SSID, "wlan.ssid"),
    (radiotap_management, mac("02:99:00:00:00:01"), "wlan.addr2"),
    (radiotap_eapol, IDENTITY, "eap.type data"),
])
def test_planted_identifier_is_found_by_verify(build, value, field, run, tmp_path, key_file):
    leak = build()
    src, out = masked(run, tmp_path, key_file, leak)
    frame, offset, _ = next(loc for loc in leak.locations() if loc[2] == value)
    planted = plant(out, [(frame, offset, value)], tmp_path / "planted.pcap")
    res = run("verify", src, planted, "--json")
    report = json.loads(res.stdout)
    assert res.returncode == 1 and not report["clean"]
    assert any(f["packet"] == frame + 1 and f["offset"] == offset and f["field"] == field
               for f in report["findings"]), report["findings"][:5]
    assert run.leftovers() == []


def test_kept_fcs_is_found_by_verify(run, tmp_path, key_file):
    # The original FCS is a CRC of the original bytes: left in place, verify names it.
    leak = radiotap_management()
    src, out = masked(run, tmp_path, key_file, leak)
    original = leak.data(0)
    at = len(original) - 4
    planted = plant(out, [(0, at, original[at:])], tmp_path / "fcs.pcap")
    res = run("verify", src, planted, "--json")
    report = json.loads(res.stdout)
    assert res.returncode == 1
    assert {"packet": 1, "original_packet": 1, "offset": at, "length": 4,
            "field": "wlan.fcs (neither zero nor recomputed)", "kind": "not zero"} in report["findings"]
    assert run.leftovers() == []
