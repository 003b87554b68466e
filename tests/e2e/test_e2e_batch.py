"""Batch and scripting (README "Usage", "Exit codes", "Scripted use"): directories, --jobs, stdin/stdout, JSON reports.

Every run gets a private TMPDIR that must be empty afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from captures import clean_pcapng, write_pcap
from conftest import PKTMASK, tshark_count

FILE_KEYS = {"input", "output", "ok", "error", "packets_in", "packets_out", "duplicates_removed",
             "addresses_anonymized", "payload_bytes_zeroed", "tls_records_masked", "http_messages_masked",
             "metadata_dropped", "seconds"}


@pytest.fixture
def key(tmp_path) -> Path:
    path = tmp_path / "run.key"
    path.write_text("ab" * 32 + "\n")
    return path


@pytest.fixture
def tree(tmp_path, sample_frames) -> Path:
    """in/ with two captures, a corrupt capture, a text file, and sub/ with one more capture."""
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    write_pcap(root / "a.pcap", sample_frames)
    (root / "b.cap").write_bytes(clean_pcapng(sample_frames))  # pcapng despite the name
    corrupt = bytearray((root / "a.pcap").read_bytes()[:200])
    corrupt[24 + 8 : 24 + 12] = (0x7FFFFFFF).to_bytes(4, "little")
    (root / "corrupt.pcap").write_bytes(bytes(corrupt))
    (root / "notes.txt").write_text("not a capture\n")
    write_pcap(root / "sub" / "c.pcap", sample_frames[:5])
    return root


def listing(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_directory_with_good_garbage_and_other_files(run, tmp_path, tree, key):
    out = tmp_path / "out"
    res = run("mask", tree, out, "--json", "--key-file", key)
    assert res.returncode == 1  # one capture failed; the others were done
    report = json.loads(res.stdout)
    names = {Path(f["input"]).name: f for f in report["files"]}
    assert set(names) == {"a.pcap", "b.cap", "corrupt.pcap"}
    assert names["a.pcap"]["ok"] and names["b.cap"]["ok"] and not names["corrupt.pcap"]["ok"]
    assert "corrupt" in names["corrupt.pcap"]["error"]
    assert report["skipped"] == ["notes.txt"] and report["ok"] is False
    assert listing(out) == ["a.pcap", "b.cap"]
    assert (out / "b.cap").read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"
    assert b"corrupt.pcap" in res.stderr
    assert run.leftovers() == []


def test_recursive_mirrors_the_tree(run, tmp_path, tree, key):
    (tree / "corrupt.pcap").unlink()
    out = tmp_path / "out"
    res = run("mask", tree, out, "--recursive", "--key-file", key)
    assert res.returncode == 0, res.stderr
    assert listing(out) == ["a.pcap", "b.cap", "sub", "sub/c.pcap"]
    assert tshark_count(out / "sub" / "c.pcap") == 5
    assert run.leftovers() == []


def test_existing_outputs_refused_before_any_work(run, tmp_path, tree, key):
    (tree / "corrupt.pcap").unlink()
    out = tmp_path / "out"
    out.mkdir()
    (out / "b.cap").write_bytes(b"old")
    res = run("mask", tree, out, "--key-file", key)
    assert res.returncode == 2 and b"--force" in res.stderr
    assert listing(out) == ["b.cap"] and (out / "b.cap").read_bytes() == b"old"
    res = run("mask", tree, out, "--key-file", key, "--force")
    assert res.returncode == 0 and listing(out) == ["a.pcap", "b.cap"]
    assert run.leftovers() == []


def test_jobs_2_equals_jobs_1_byte_for_byte(run, tmp_path, tree, key):
    (tree / "corrupt.pcap").unlink()
    for jobs in (1, 2):
        res = run("mask", tree, tmp_path / f"out{jobs}", "-r", "--jobs", jobs, "--key-file", key, "--dedup")
        assert res.returncode == 0, res.stderr
    for rel in ("a.pcap", "b.cap", "sub/c.pcap"):
        assert (tmp_path / "out1" / rel).read_bytes() == (tmp_path / "out2" / rel).read_bytes()
    assert run.leftovers() == []


def test_one_key_for_the_whole_batch(run, tmp_path, tree):
    """Without --key-file, every file (and every worker) of one run shares the random key."""
    (tree / "corrupt.pcap").unlink()
    res = run("mask", tree, tmp_path / "out", "--jobs", "2", "--no-mask-payloads")
    assert res.returncode == 0, res.stderr
    a = (tmp_path / "out" / "a.pcap").read_bytes()
    frames_a = a[24 + 16 : 24 + 16 + 54]
    b_pcapng = (tmp_path / "out" / "b.cap").read_bytes()
    assert frames_a[26:34] in b_pcapng  # the same anonymized address pair appears in both files


def _worker_roots(parent_root: Path, tmpdir: Path) -> list[Path]:
    return [p for p in tmpdir.iterdir() if p != parent_root and p.name.startswith("pktmask-")]


def _wait_for_paused_workers(run, proc, count: int, timeout: float = 120) -> tuple[Path, list[int]]:
    """Wait until ``count`` workers announce their test pause (in their stderr files in the parent's root)."""
    deadline = time.monotonic() + timeout
    parent_root = None
    while time.monotonic() < deadline:
        roots = [p for p in run.tmpdir.iterdir() if p.name.startswith("pktmask-") and f"-{proc.pid}-" in p.name]
        if roots:
            parent_root = roots[0]
            errs = [p for p in parent_root.glob("worker-*.err")]
            paused = [p for p in errs if b"test pause" in p.read_bytes()]
            if len(paused) >= count:
                pids = [int(r.name.rsplit("-", 2)[1]) for r in _worker_roots(parent_root, run.tmpdir)]
                return parent_root, pids
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"workers never paused: {proc.communicate()}")


def _gone(pid: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not os.path.exists(f"/proc/{pid}"):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def big_tree(tmp_path, big_pcap) -> Path:
    root = tmp_path / "bigin"
    root.mkdir()
    for i in range(3):
        os.link(big_pcap, root / f"f{i}.pcap")
    return root


def test_sigterm_to_parallel_batch(run, tmp_path, big_tree):
    out = tmp_path / "out"
    proc = run.popen("mask", big_tree, out, "--jobs", "2", env={"PKTMASK_TEST_PAUSE": "300"})
    _root, pids = _wait_for_paused_workers(run, proc, 2)
    assert len(pids) == 2
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGTERM
    assert all(_gone(pid) for pid in pids)
    assert run.leftovers() == []
    assert listing(out) == []  # no output and no hidden partial file


def test_sigkill_parent_then_temp_clean(run, tmp_path, big_tree):
    out = tmp_path / "out"
    proc = run.popen("mask", big_tree, out, "--jobs", "2", env={"PKTMASK_TEST_PAUSE": "300"})
    _root, pids = _wait_for_paused_workers(run, proc, 2)
    proc.kill()
    proc.wait()
    assert all(_gone(pid) for pid in pids)  # workers die with their parent
    assert len(run.leftovers()) == 3  # parent's and workers' roots, orphaned
    res = run("temp", "clean")
    assert res.returncode == 0
    assert run.leftovers() == []
    assert listing(out) == []


def test_stdin_and_stdout(run, tmp_path, sample_pcap, key):
    ref = tmp_path / "ref.pcap"
    assert run("mask", sample_pcap, ref, "--key-file", key).returncode == 0
    data = sample_pcap.read_bytes()
    # stdin -> file
    out = tmp_path / "from-stdin.pcap"
    res = run("mask", "-", out, "--key-file", key, input=data)
    assert res.returncode == 0, res.stderr
    assert out.read_bytes() == ref.read_bytes()
    # file -> stdout
    res = run("mask", sample_pcap, "-", "--key-file", key)
    assert res.returncode == 0 and res.stdout == ref.read_bytes()
    # stdin -> stdout
    res = run("mask", "-", "-", "--key-file", key, input=data)
    assert res.returncode == 0 and res.stdout == ref.read_bytes()
    assert run.leftovers() == []


def test_stdin_garbage_and_json_with_stdout(run, tmp_path, key):
    res = run("mask", "-", tmp_path / "x.pcap", input=b"garbage, not a capture")
    assert res.returncode == 1 and b"<stdin>" in res.stderr
    res = run("mask", "-", "-", "--json", input=b"")
    assert res.returncode == 2
    assert run.leftovers() == [] and not (tmp_path / "x.pcap").exists()


def test_json_report_schema_and_report_file(run, tmp_path, sample_pcap):
    out = tmp_path / "out.pcap"
    report_path = tmp_path / "report.json"
    res = run("mask", sample_pcap, out, "--json", "--dedup", "--report", report_path)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)  # exactly one JSON object on stdout
    assert json.loads(report_path.read_text()) == report
    assert {"schema_version", "version", "ok", "files", "totals"} <= set(report)
    assert report["schema_version"] == 1 and report["ok"] is True
    (entry,) = report["files"]
    assert FILE_KEYS <= set(entry)
    assert entry["duplicates_removed"] == 1 and entry["packets_in"] == entry["packets_out"] + 1
    assert entry["addresses_anonymized"] > 0 and entry["payload_bytes_zeroed"] > 0
    assert entry["tls_records_masked"] >= 1 and entry["http_messages_masked"] >= 1
    assert report["totals"]["packets_in"] == entry["packets_in"]
    assert b"{" not in res.stderr  # human text only on stderr
    assert sorted(os.listdir(tmp_path)) == sorted(["in", "out.pcap", "report.json", "private-tmp"])
    assert run.leftovers() == []


def test_report_written_for_a_failed_run(run, tmp_path):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"nope")
    report_path = tmp_path / "r.json"
    res = run("mask", bad, tmp_path / "o.pcap", "--report", report_path)
    assert res.returncode == 1
    report = json.loads(report_path.read_text())
    assert report["ok"] is False and "bad.pcap" in report["files"][0]["error"]


def test_no_ansi_or_progress_on_a_pipe(run, tmp_path, tree, key):
    (tree / "corrupt.pcap").unlink()
    res = run("mask", tree, tmp_path / "out", "-r", "--key-file", key, "-v")
    assert res.returncode == 0
    assert b"\x1b[" not in res.stderr and b"\r" not in res.stderr
    res = run("mask", tree, tmp_path / "out2", "-r", "--key-file", key, "-q")
    assert res.stderr == b"" and res.stdout == b""
    assert run.leftovers() == []


def test_output_dir_inside_input_dir_is_not_reprocessed(run, tmp_path, tree, key):
    (tree / "corrupt.pcap").unlink()
    res = run("mask", tree, tree / "masked", "-r", "--key-file", key, "--json")
    assert res.returncode == 0, res.stderr
    assert len(json.loads(res.stdout)["files"]) == 3
    res = run("mask", tree, tree, "-r")
    assert res.returncode == 2


def test_help_texts_have_examples(run):
    res = subprocess.run([str(PKTMASK), "mask", "--help"], capture_output=True)
    assert b"Examples" in res.stdout and b"--jobs" in res.stdout and b"--recursive" in res.stdout
