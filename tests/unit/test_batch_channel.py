"""Batch workers report through their ``--json`` report (a structured channel), never their stderr text."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

from pktmask.core.batch import BatchPlan, _worker_result, run_parallel


def _report(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj))
    return path


def test_a_worker_result_is_its_reports_file_entry(tmp_path):
    entry = {"input": "a.pcap", "output": "b.pcap", "ok": True, "packets_in": 7, "format": "pcap", "new_field": 1}
    r = _worker_result(Path("a.pcap"), 0, _report(tmp_path / "r.json", {"files": [entry]}))
    assert r.ok and r.packets_in == 7 and r.format == "pcap" and r.error is None


def test_a_failed_file_keeps_its_message(tmp_path):
    entry = {"input": "a.pcap", "output": None, "ok": False, "error": "a.pcap: not a pcap or pcapng capture"}
    r = _worker_result(Path("a.pcap"), 1, _report(tmp_path / "r.json", {"ok": False, "files": [entry]}))
    assert not r.ok and r.error == "a.pcap: not a pcap or pcapng capture"


def test_a_run_error_before_the_file_names_the_file(tmp_path):
    report = {"ok": False, "files": [], "error": "fd 5: the key pipe must carry 32 bytes"}
    r = _worker_result(Path("d/a.pcap"), 2, _report(tmp_path / "r.json", report))
    assert r.error == "d/a.pcap: fd 5: the key pipe must carry 32 bytes" and not r.ok


def test_no_report_is_described_by_the_exit_status(tmp_path):
    empty = tmp_path / "empty.json"
    empty.write_text("")
    assert _worker_result(Path("a.pcap"), -signal.SIGKILL, empty).error == "a.pcap: worker ended by SIGKILL"
    assert _worker_result(Path("a.pcap"), 1, tmp_path / "missing.json").error == \
        "a.pcap: worker exited with 1 without a report"
    _report(tmp_path / "junk.json", {"files": [{"bogus": 1}]})
    assert _worker_result(Path("a.pcap"), 1, tmp_path / "junk.json").error == \
        "a.pcap: worker exited with 1 without a report"


# A stand-in worker: its report says one thing, its stderr another (the report must win).
WORKER = """
import json, sys
src, dst = sys.argv[-2], sys.argv[-1]
sys.stderr.write("pktmask: error: stderr is not the channel\\n")
if src.endswith("bad.pcap"):
    print(json.dumps({"ok": False, "files": [{"input": src, "output": None, "error": src + ": from the report"}]}))
    sys.exit(1)
if src.endswith("mute.pcap"):
    sys.exit(1)
print(json.dumps({"ok": True, "files": [{"input": src, "output": dst, "ok": True, "packets_in": 3}]}))
"""


def test_run_parallel_reads_each_workers_report(manager, tmp_path):
    jobs = [(tmp_path / name, tmp_path / "out" / name) for name in ("good.pcap", "bad.pcap", "mute.pcap")]
    seen = []
    results = run_parallel(BatchPlan(jobs=jobs), 2, [sys.executable, "-c", WORKER], manager, seen.append)
    assert [r.input for r in results] == [str(src) for src, _ in jobs]
    good, bad, mute = results
    assert good.ok and good.packets_in == 3
    assert bad.error == f"{jobs[1][0]}: from the report"
    assert mute.error == f"{jobs[2][0]}: worker exited with 1 without a report"
    assert len(seen) == 3
    assert manager.get_stats()["temp_files_count"] == 0  # each worker's report and stderr files are gone
