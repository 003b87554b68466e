"""`pktmask verify` through the installed CLI: exit codes, categories, JSON."""

from __future__ import annotations

import json

from pending import MASK_HAS_HTTP_ALLOWLIST, assert_clean

CATEGORIES = {"ip", "mac", "dns", "http", "strings", "fields"}


def verify_json(run, original, sanitized):
    res = run("verify", original, sanitized, "--json")
    return res.returncode, json.loads(res.stdout)


def test_unsanitized_copy_is_flagged_in_every_category(run, sample_pcap):
    code, report = verify_json(run, sample_pcap, sample_pcap)
    assert code == 1 and report["clean"] is False
    assert set(report["categories"]) == CATEGORIES
    for name, cat in report["categories"].items():
        assert cat["leaks"] > 0, name
        assert cat["examples"], name
    assert run.leftovers() == []


def test_sanitized_file_is_clean(run, tmp_path, sample_pcap):
    out = tmp_path / "safe.pcap"
    assert run("mask", sample_pcap, out).returncode == 0
    code, report = verify_json(run, sample_pcap, out)
    assert_clean(report, {"intranet.example"})
    if MASK_HAS_HTTP_ALLOWLIST:
        assert code == 0 and all(cat["leaks"] == 0 for cat in report["categories"].values())
        res = run("verify", sample_pcap, out)
        assert res.returncode == 0 and b"clean" in res.stdout
    # The Host value is zeroed by the allowlist (docs/policy.md): never kept by policy.
    assert report["categories"]["http"]["kept_by_policy"] == 0
    assert run.leftovers() == []


def test_no_anonymize_is_flagged_for_addresses_only(run, tmp_path, sample_pcap):
    out = tmp_path / "masked-only.pcap"
    assert run("mask", sample_pcap, out, "--no-anonymize").returncode == 0
    code, report = verify_json(run, sample_pcap, out)
    assert code == 1
    flagged = {name for name, cat in report["categories"].items() if cat["leaks"]}
    # Names too once DNS is kept structurally (unchanged without anonymization, like addresses);
    # the HTTP fields until the sanitizer's allowlist lands (tests/pending.py).
    pending = set() if MASK_HAS_HTTP_ALLOWLIST else {"fields", "http"}
    assert {"ip", "mac"} <= flagged <= {"ip", "mac", "dns"} | pending
    assert run.leftovers() == []


def test_verify_usage_and_bad_input(run, tmp_path, sample_pcap):
    assert run("verify", sample_pcap).returncode == 2
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"garbage")
    res = run("verify", sample_pcap, bad)
    assert res.returncode == 1 and b"bad.pcap" in res.stderr and b"Traceback" not in res.stderr
    assert run.leftovers() == []


def test_planted_leak_is_named_by_packet_and_offset(run, tmp_path):
    # An identifier the sanitizer must not keep, copied back into its output: exit 1, and the
    # JSON names where it is.
    import leak_captures
    from leak_captures import plant

    leak = leak_captures.tcp_fast_open_cookie()
    src = leak.write(tmp_path / "tfo.pcap")
    key = tmp_path / "key"
    key.write_bytes(bytes(range(32)))
    out = tmp_path / "tfo-out.pcap"
    assert run("mask", src, out, "--key-file", key).returncode == 0
    (frame, offset, value), = leak.locations()
    planted = plant(out, [(frame, offset, value)], tmp_path / "tfo-planted.pcap")
    code, report = verify_json(run, src, planted)
    assert code == 1 and report["clean"] is False and report["aligned"] is True
    assert {"packet": 1, "original_packet": 1, "offset": offset, "length": len(value),
            "field": "tcp.option[34].data", "kind": "unchanged"} in report["findings"]
    res = run("verify", src, planted)
    assert res.returncode == 1 and b"tcp.option[34].data" in res.stdout
    assert run.leftovers() == []


def test_planted_dns_label_exits_1_naming_packet_and_offset(run, tmp_path):
    # DNS is audited structurally (docs/policy.md): a name label left as it was is named.
    from scapy.all import DNS, DNSQR, IP, UDP, Ether

    from captures import write_pcap

    def frame(qname: str, src: str, dst: str) -> bytes:
        mac = "02:00:00:00:00:01" if src == "192.0.2.1" else "02:00:00:00:00:aa"
        return bytes(Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / IP(src=src, dst=dst)
                     / UDP(sport=33000, dport=53) / DNS(id=5, qd=DNSQR(qname=qname)))

    original = frame("files.acme-corp.com", "192.0.2.1", "192.0.2.53")
    ideal = frame("gjmft.bdnf-dpsq.com", "10.9.9.1", "10.9.9.53")
    src = write_pcap(tmp_path / "dns.pcap", [original])
    code, report = verify_json(run, src, write_pcap(tmp_path / "ideal.pcap", [ideal]))
    assert code == 0 and report["clean"] is True, report["findings"]
    at = original.index(b"acme-corp")
    planted = ideal[:at] + b"acme-corp" + ideal[at + 9:]
    code, report = verify_json(run, src, write_pcap(tmp_path / "planted.pcap", [planted]))
    assert code == 1 and report["clean"] is False
    assert {"packet": 1, "original_packet": 1, "offset": at, "length": 9, "field": "dns.name label",
            "kind": "not mapped"} in report["findings"]
    assert run.leftovers() == []
