"""Black-box proof of README "Usage", "Exit codes" and "Temp hygiene": the installed pktmask, run as a subprocess.

Every test gives pktmask a private TMPDIR and asserts, besides its own point,
that the TMPDIR is empty afterwards and that nothing but the expected file
sits next to the output. Mid-run signals use the test-only PKTMASK_TEST_PAUSE
switch: pktmask says on stderr when it is paused inside the final pass (scratch
and partial output exist), so signals arrive at a known point without sleeps.
"""

from __future__ import annotations

import itertools
import json
import os
import resource
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from captures import SECRET_MARKERS, pcap_bytes, pcapng_with_metadata, write_pcap
from conftest import PKTMASK, tshark_count

NO_STAGES = ("--no-anonymize", "--no-mask-payloads")
ORIGINAL_IPS = [bytes([192, 0, 2, 10]), bytes([198, 51, 100, 20])]


def out_dir(tmp_path: Path) -> Path:
    d = tmp_path / "out"
    d.mkdir(exist_ok=True)
    return d


def assert_clean(run, directory: Path | None = None, expected: list[str] | None = None,
                 allowed_tmp: list[str] | None = None) -> None:
    """TMPDIR holds nothing (but ``allowed_tmp``); ``directory`` holds exactly ``expected``."""
    assert run.leftovers() == sorted(allowed_tmp or []), f"left in TMPDIR: {run.leftovers()}"
    if directory is not None:
        assert sorted(os.listdir(directory)) == sorted(expected or []), os.listdir(directory)


def wait_for_pause(proc: subprocess.Popen, timeout: float = 120) -> str:
    """Read stderr until pktmask announces its test pause; returns the line."""
    deadline = time.monotonic() + timeout
    seen = b""
    fd = proc.stderr.fileno()
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            seen += chunk
            if b"test pause" in seen:
                return seen.decode(errors="replace")
    proc.kill()
    pytest.fail(f"pktmask never paused; stderr so far: {seen!r}")


def start_paused(run, *args, env=None) -> subprocess.Popen:
    proc = run.popen(*args, env={"PKTMASK_TEST_PAUSE": "300", **(env or {})})
    wait_for_pause(proc)
    return proc


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    _out, err = proc.communicate(timeout=timeout)
    return proc.returncode, err.decode(errors="replace")


@pytest.fixture
def tmpfs(tmp_path):
    """Mount tiny tmpfs file systems (CI runs as root); skip with the reason where refused."""
    mounted = []

    def make(name: str, size: str, readonly: bool = False) -> Path:
        path = tmp_path / name
        path.mkdir()
        opts = f"size={size},mode=0777" + (",ro" if readonly else "")
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                             capture_output=True, text=True)
        if res.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip() or res.returncode}")
        mounted.append(path)
        return path

    yield make
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False)


# ---------------------------------------------------------------- success paths

COMBOS = list(itertools.product([False, True], repeat=3))


@pytest.mark.parametrize("dedup,anonymize,masking", COMBOS,
                         ids=[f"dedup={d}-anon={a}-mask={m}" for d, a, m in COMBOS])
def test_stage_combinations(run, tmp_path, sample_pcap, sample_frames, dedup, anonymize, masking):
    out = out_dir(tmp_path) / "out.pcap"
    args = ["mask", sample_pcap, out, "--json",
            "--dedup" if dedup else "--no-dedup",
            "--anonymize" if anonymize else "--no-anonymize",
            "--mask-payloads" if masking else "--no-mask-payloads"]
    res = run(*args)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    entry = report["files"][0]
    assert report["ok"] and entry["ok"] and entry["packets_in"] == len(sample_frames)
    assert entry["packets_out"] == len(sample_frames) - (1 if dedup else 0)
    assert entry["duplicates_removed"] == (1 if dedup else 0)
    assert tshark_count(out) == entry["packets_out"]
    data = out.read_bytes()
    for ip in ORIGINAL_IPS:
        assert (ip in data) is not anonymize
    assert (b"SECRETCOOKIE" in data) is not masking
    assert (b"SECRET-PING-DATA" in data) is not masking
    if not (dedup or anonymize or masking):
        assert data == sample_pcap.read_bytes()
    assert_clean(run, out.parent, ["out.pcap"])


def test_all_stages_off_is_byte_identical(run, tmp_path, sample_pcap):
    out = out_dir(tmp_path) / "copy.pcap"
    res = run("mask", sample_pcap, out, *NO_STAGES)
    assert res.returncode == 0, res.stderr
    assert out.read_bytes() == sample_pcap.read_bytes()
    assert_clean(run, out.parent, ["copy.pcap"])


@pytest.mark.parametrize("nsec,endian", [(False, "<"), (True, "<"), (False, ">"), (True, ">")])
def test_pcap_flavours_keep_format_and_precision(run, tmp_path, sample_frames, nsec, endian):
    src = write_pcap(tmp_path / "in.pcap", sample_frames, nsec=nsec, endian=endian)
    out = out_dir(tmp_path) / "out.pcap"
    res = run("mask", src, out, "--dedup")
    assert res.returncode == 0, res.stderr
    assert out.read_bytes()[:4] == src.read_bytes()[:4]  # same magic: precision and byte order
    assert tshark_count(out) == len(sample_frames) - 1
    assert_clean(run, out.parent, ["out.pcap"])


def test_python_dash_m(run, tmp_path, sample_pcap):
    out = out_dir(tmp_path) / "out.pcap"
    res = subprocess.run([sys.executable, "-m", "pktmask", "mask", str(sample_pcap), str(out), *NO_STAGES],
                         env=run.env, capture_output=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert_clean(run, out.parent, ["out.pcap"])


def test_pcapng_metadata_dropped(run, tmp_path, sample_frames):
    src = tmp_path / "meta.pcapng"
    src.write_bytes(pcapng_with_metadata(sample_frames))
    out = out_dir(tmp_path) / "out.pcapng"
    res = run("mask", src, out, "--json", *NO_STAGES)
    assert res.returncode == 0, res.stderr
    data = out.read_bytes()
    assert data[:4] == b"\x0a\x0d\x0d\x0a"
    for marker in SECRET_MARKERS:
        assert marker not in data, marker
    assert json.loads(res.stdout)["files"][0]["metadata_dropped"] >= len(SECRET_MARKERS)
    # tshark also lists the input's custom block as a frame: compare with the frames written.
    assert tshark_count(out) == tshark_count(src, "eth") == len(sample_frames)
    assert_clean(run, out.parent, ["out.pcapng"])


# ---------------------------------------------------------------- bad input


def test_nonexistent_input(run, tmp_path):
    out = out_dir(tmp_path) / "out.pcap"
    res = run("mask", tmp_path / "missing.pcap", out)
    assert res.returncode == 1
    assert b"missing.pcap" in res.stderr and b"Traceback" not in res.stderr
    assert_clean(run, out.parent, [])


@pytest.mark.parametrize("content,needle", [
    (b"", b"empty"),
    (b"this is not a capture at all, just some text\n" * 20, b"not a pcap"),
    (b"\xd4\xc3\xb2\xa1\x02\x00", b"truncated pcap file header"),
], ids=["empty", "garbage", "short-header"])
def test_bad_input(run, tmp_path, content, needle):
    src = tmp_path / "bad.pcap"
    src.write_bytes(content)
    out = out_dir(tmp_path) / "out.pcap"
    res = run("mask", src, out)
    assert res.returncode == 1, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and b"bad.pcap" in lines[0] and needle in lines[0], res.stderr
    assert_clean(run, out.parent, [])


def test_header_lying_about_length(run, tmp_path, sample_frames):
    data = bytearray(pcap_bytes(sample_frames))
    # Second record's incl_len claims 2 GB.
    second = 24 + 16 + len(sample_frames[0])
    data[second + 8 : second + 12] = (0x7FFFFFFF).to_bytes(4, "little")
    src = tmp_path / "liar.pcap"
    src.write_bytes(bytes(data))
    out = out_dir(tmp_path) / "out.pcap"
    res = run("mask", src, out)
    assert res.returncode == 1
    assert b"liar.pcap" in res.stderr and b"corrupt record 2" in res.stderr
    assert_clean(run, out.parent, [])


def test_truncated_last_record(run, tmp_path, sample_frames):
    data = pcap_bytes(sample_frames)
    src = tmp_path / "cut.pcap"
    src.write_bytes(data[: len(data) - len(sample_frames[-1]) // 2])
    out = out_dir(tmp_path) / "out.pcap"
    res = run("mask", src, out, "--json", *NO_STAGES)
    assert res.returncode == 0, res.stderr
    assert b"truncated" in res.stderr
    entry = json.loads(res.stdout)["files"][0]
    assert entry["truncated"] is True and entry["packets_in"] == len(sample_frames) - 1
    assert tshark_count(out) == len(sample_frames) - 1
    assert_clean(run, out.parent, ["out.pcap"])


def test_bad_key_file_is_usage_error(run, tmp_path, sample_pcap):
    key = tmp_path / "k.key"
    key.write_bytes(b"too short")
    out = out_dir(tmp_path) / "out.pcap"
    res = run("mask", sample_pcap, out, "--key-file", key)
    assert res.returncode == 2
    assert b"k.key" in res.stderr and b"too short" not in res.stderr
    assert_clean(run, out.parent, [])


# ---------------------------------------------------------------- output safety


def test_output_exists_without_force(run, tmp_path, sample_pcap):
    out = out_dir(tmp_path) / "out.pcap"
    out.write_bytes(b"precious")
    res = run("mask", sample_pcap, out)
    assert res.returncode == 2
    assert b"--force" in res.stderr
    assert out.read_bytes() == b"precious"
    assert_clean(run, out.parent, ["out.pcap"])


def test_output_exists_with_force(run, tmp_path, sample_pcap):
    out = out_dir(tmp_path) / "out.pcap"
    out.write_bytes(b"old")
    res = run("mask", sample_pcap, out, "--force", *NO_STAGES)
    assert res.returncode == 0, res.stderr
    assert out.read_bytes() == sample_pcap.read_bytes()
    assert_clean(run, out.parent, ["out.pcap"])


def test_output_is_input(run, sample_pcap):
    before = sample_pcap.read_bytes()
    res = run("mask", sample_pcap, sample_pcap, "--force")
    assert res.returncode == 2 and b"INPUT" in res.stderr
    assert sample_pcap.read_bytes() == before
    assert_clean(run, sample_pcap.parent, ["sample.pcap"])


@pytest.mark.parametrize("kind", ["hardlink", "symlink"])
def test_output_is_input_through_link(run, sample_pcap, kind):
    alias = sample_pcap.parent / "alias.pcap"
    (os.link if kind == "hardlink" else os.symlink)(sample_pcap, alias)
    before = sample_pcap.read_bytes()
    res = run("mask", sample_pcap, alias, "--force")
    assert res.returncode == 2 and b"INPUT" in res.stderr
    assert sample_pcap.read_bytes() == before
    assert_clean(run, sample_pcap.parent, ["alias.pcap", "sample.pcap"])


def test_missing_output_directory(run, tmp_path, sample_pcap):
    out = tmp_path / "no" / "such" / "dir" / "out.pcap"
    res = run("mask", sample_pcap, out)
    assert res.returncode == 1 and b"does not exist" in res.stderr
    assert not (tmp_path / "no").exists()
    assert_clean(run)


def test_read_only_output_directory(run, tmp_path, sample_pcap, tmpfs):
    if os.geteuid() == 0:
        ro = tmpfs("ro", "1m", readonly=True)  # root ignores mode bits; a read-only mount does not
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
    res = run("mask", sample_pcap, ro / "out.pcap")
    assert res.returncode == 1
    assert b"Read-only file system" in res.stderr or b"Permission denied" in res.stderr
    assert_clean(run, ro, [])


# ---------------------------------------------------------------- disk full


def test_disk_full_in_temp_dir(run, tmp_path, big_pcap, tmpfs):
    small = tmpfs("smalltmp", "1m")
    out = out_dir(tmp_path) / "out.pcap"
    # In-process (PKTMASK_SERIAL) the masking pre-pass spills its decisions to scratch.
    res = run("mask", big_pcap, out, env={"TMPDIR": str(small), "PKTMASK_SERIAL": "1"})
    assert res.returncode == 1, res.stderr
    assert b"disk full" in res.stderr and b"Traceback" not in res.stderr
    assert os.listdir(small) == []
    assert_clean(run, out.parent, [])


def test_disk_full_in_output_dir(run, big_pcap, tmpfs):
    small = tmpfs("smallout", "1m")
    res = run("mask", big_pcap, small / "out.pcap", *NO_STAGES)
    assert res.returncode == 1, res.stderr
    assert b"disk full" in res.stderr
    assert_clean(run, small, [])


def test_file_size_limit_efbig(run, tmp_path, big_pcap):
    out = out_dir(tmp_path) / "out.pcap"

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    res = run("mask", big_pcap, out, *NO_STAGES, preexec_fn=limit)
    assert res.returncode == 1, res.stderr
    assert b"disk full" in res.stderr and b"file size limit" in res.stderr
    assert_clean(run, out.parent, [])


# ---------------------------------------------------------------- signals


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_signal_mid_run_cleans_up(run, tmp_path, big_pcap, sig):
    out = out_dir(tmp_path) / "out.pcap"
    proc = start_paused(run, "mask", big_pcap, out, "--dedup")
    assert len(run.leftovers()) == 1  # the run root (with the masking decisions) exists now
    proc.send_signal(sig)
    code, err = finish(proc)
    assert code == -sig, err  # died by the signal itself (shell: 128 + N)
    assert "interrupted" in err
    assert not out.exists()
    assert_clean(run, out.parent, [])


@pytest.mark.parametrize("no_tmpfile", [False, True], ids=["O_TMPFILE", "named-partial"])
def test_sigkill_then_next_run_sweeps(run, tmp_path, big_pcap, sample_pcap, no_tmpfile):
    out = out_dir(tmp_path) / "out.pcap"
    env = {"PKTMASK_TEST_NO_O_TMPFILE": "1"} if no_tmpfile else {}
    proc = start_paused(run, "mask", big_pcap, out, env=env)
    proc.kill()
    proc.wait()
    assert len(run.leftovers()) == 1  # the orphaned root
    if no_tmpfile:
        assert [n for n in os.listdir(out.parent) if n.endswith(".part")]  # a named partial was left
    res = run("mask", sample_pcap, out.parent / "next.pcap", *NO_STAGES)
    assert res.returncode == 0, res.stderr
    assert_clean(run, out.parent, ["next.pcap"])


def test_sigkill_then_temp_clean_sweeps(run, tmp_path, big_pcap):
    out = out_dir(tmp_path) / "out.pcap"
    proc = start_paused(run, "mask", big_pcap, out)
    proc.kill()
    proc.wait()
    status = run("temp", "status")
    assert status.returncode == 0 and b"orphaned" in status.stdout
    res = run("temp", "clean")
    assert res.returncode == 0 and b"removed" in res.stdout
    assert_clean(run, out.parent, [])


# ---------------------------------------------------------------- concurrency and the sweep


def test_concurrent_runs_and_clean_between(run, tmp_path, big_pcap):
    outs = [out_dir(tmp_path) / f"out{i}.pcap" for i in (1, 2)]
    procs = [start_paused(run, "mask", big_pcap, o) for o in outs]
    assert len(run.leftovers()) == 2
    res = run("temp", "clean")
    assert res.returncode == 0
    assert len(run.leftovers()) == 2  # live roots untouched
    for p in procs:
        p.send_signal(signal.SIGUSR1)  # resume
    for p in procs:
        code, err = finish(p)
        assert code == 0, err
    for o in outs:
        assert tshark_count(o) == 200_000
    assert_clean(run, outs[0].parent, ["out1.pcap", "out2.pcap"])


def test_live_root_is_not_swept(run, tmp_path, big_pcap, sample_pcap):
    out = out_dir(tmp_path) / "live.pcap"
    proc = start_paused(run, "mask", big_pcap, out)
    live_root = run.leftovers()
    res = run("mask", sample_pcap, out.parent / "other.pcap")
    assert res.returncode == 0, res.stderr
    assert run("temp", "clean").returncode == 0
    assert run.leftovers() == live_root
    status = run("temp", "status", "--json")
    roots = json.loads(status.stdout)["roots"]
    assert [r["state"] for r in roots] == ["live"]
    proc.send_signal(signal.SIGUSR1)
    code, err = finish(proc)
    assert code == 0, err
    assert_clean(run, out.parent, ["live.pcap", "other.pcap"])


def test_planted_symlink_is_not_followed(run, tmp_path, sample_pcap):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    (victim / "lock").write_text("")
    link_name = "pktmask-evilhost-99999-abcdefgh"
    os.symlink(victim, run.tmpdir / link_name)
    res = run("mask", sample_pcap, out_dir(tmp_path) / "out.pcap")
    assert res.returncode == 0, res.stderr
    assert run("temp", "clean").returncode == 0
    assert (victim / "precious.txt").read_text() == "keep me"
    assert os.path.islink(run.tmpdir / link_name)
    assert_clean(run, tmp_path / "out", ["out.pcap"], allowed_tmp=[link_name])


def test_foreign_lookalike_directory_is_not_removed(run, tmp_path, sample_pcap):
    # A directory with a root-like name but no pktmask owner record is not ours to delete.
    fake = run.tmpdir / "pktmask-otherhost-4242-zzzzzzzz"
    fake.mkdir()
    (fake / "data.txt").write_text("not pktmask's")
    old = time.time() - 3600
    os.utime(fake, (old, old))
    assert run("mask", sample_pcap, out_dir(tmp_path) / "out.pcap").returncode == 0
    assert run("temp", "clean").returncode == 0
    assert (fake / "data.txt").exists()
    assert_clean(run, tmp_path / "out", ["out.pcap"], allowed_tmp=[fake.name])


def test_keep_temp_keeps_root_until_clean(run, tmp_path, sample_pcap):
    out = out_dir(tmp_path) / "out.pcap"
    res = run("mask", sample_pcap, out, "--keep-temp")
    assert res.returncode == 0, res.stderr
    kept = run.leftovers()
    assert len(kept) == 1 and kept[0].encode() in res.stderr
    # The automatic sweep of the next run leaves a kept root alone...
    assert run("mask", sample_pcap, out.parent / "again.pcap").returncode == 0
    assert run.leftovers() == kept
    # ...`temp clean` removes it.
    assert run("temp", "clean").returncode == 0
    assert_clean(run, out.parent, ["again.pcap", "out.pcap"])


def test_version_and_help(run):
    res = run("--version")
    assert res.returncode == 0 and res.stdout.startswith(b"pktmask ")
    res = run("mask", "--help")
    assert res.returncode == 0 and b"--dedup-window" in res.stdout
    assert PKTMASK.exists()
    assert_clean(run)
