"""`pktmask verify` through the installed CLI: exit codes, categories, JSON."""

from __future__ import annotations

import json

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
    assert code == 0 and report["clean"] is True
    assert all(cat["leaks"] == 0 for cat in report["categories"].values())
    # The Host header is kept on purpose: reported as policy, not as a leak.
    assert report["categories"]["http"]["kept_by_policy"] >= 1
    res = run("verify", sample_pcap, out)
    assert res.returncode == 0 and b"clean" in res.stdout
    assert run.leftovers() == []


def test_no_anonymize_is_flagged_for_addresses_only(run, tmp_path, sample_pcap):
    out = tmp_path / "masked-only.pcap"
    assert run("mask", sample_pcap, out, "--no-anonymize").returncode == 0
    code, report = verify_json(run, sample_pcap, out)
    assert code == 1
    flagged = {name for name, cat in report["categories"].items() if cat["leaks"]}
    assert flagged == {"ip", "mac"}
    assert run.leftovers() == []


def test_verify_usage_and_bad_input(run, tmp_path, sample_pcap):
    assert run("verify", sample_pcap).returncode == 2
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"garbage")
    res = run("verify", sample_pcap, bad)
    assert res.returncode == 1 and b"bad.pcap" in res.stderr and b"Traceback" not in res.stderr
    assert run.leftovers() == []
