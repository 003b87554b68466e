"""`pktmask verify` through the installed CLI on fragmented DNS responses (docs/policy.md "DNS").

A hand-made IDEAL copy (``fragment_captures``: labels pseudonymized, A/AAAA changed, TXT zeroed,
in every fragment) and the output of `pktmask mask` (with and without --dedup) are clean: exit 0.
An original label of a later fragment put back: exit 1, the packet and offset named.
"""

from __future__ import annotations

import json

import pytest

from captures import write_pcap
from fragment_captures import datagram, fragments, locate, split_cuts


def report_of(run, original, sanitized) -> tuple[int, dict]:
    res = run("verify", original, sanitized, "--json")
    return res.returncode, json.loads(res.stdout)


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_verify_exit_codes_on_fragmented_dns(run, tmp_path, v6):
    cuts = split_cuts()
    order = [len(cuts) - 1] + list(range(len(cuts) - 1))  # the last fragment first
    orig, ideal = fragments(False, v6, cuts, order), fragments(True, v6, cuts, order)
    o = write_pcap(tmp_path / "orig.pcap", orig.frames)
    code, report = report_of(run, o, write_pcap(tmp_path / "ideal.pcap", ideal.frames))
    assert code == 0 and report["clean"] is True, report["findings"]
    i, at = locate(orig, datagram(False, v6).index(b"edge2"))
    assert orig.cuts[i] > 0
    planted = [bytearray(f) for f in ideal.frames]
    planted[i][at:at + 5] = b"edge2"
    code, report = report_of(run, o, write_pcap(tmp_path / "planted.pcap", [bytes(f) for f in planted]))
    assert code == 1
    assert {"packet": i + 1, "original_packet": i + 1, "offset": at, "length": 5, "field": "dns.name label",
            "kind": "not mapped"} in report["findings"]
    assert run.leftovers() == []


@pytest.mark.parametrize("dedup", [False, True], ids=["no-dedup", "dedup"])
def test_masked_fragmented_dns_verifies_clean(run, tmp_path, dedup):
    cuts = split_cuts()
    frames = fragments(False, False, cuts).frames + fragments(False, True, cuts, ident=7).frames
    frames.insert(2, frames[1])  # a duplicate frame (dropped with --dedup)
    o = write_pcap(tmp_path / "orig.pcap", frames)
    key = tmp_path / "key"
    key.write_bytes(bytes(range(32)))
    out = tmp_path / "out.pcap"
    assert run("mask", o, out, "--key-file", key, *(["--dedup"] if dedup else [])).returncode == 0
    code, report = report_of(run, o, out)
    assert code == 0 and report["aligned"] is True, report["findings"]
    assert report["alignment"]["skipped_duplicates"] == (1 if dedup else 0)
    assert run.leftovers() == []
