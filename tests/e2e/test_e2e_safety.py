"""Data safety around OUTPUT (issue 14): the --report file, the key, streams, exit codes, hostile set-ups.

Every run gets a private TMPDIR that must be empty afterwards (conftest ``run``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from captures import write_pcap

NOBODY = 65534


def as_nobody(code: str, *fds: int) -> None:
    """Run a Python snippet as uid/gid 65534 (another user), with ``fds`` inherited."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to another uid (setpriv)")
    subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                    "/usr/bin/python3", "-c", code], pass_fds=fds, check=True, timeout=60)


# ---------------------------------------------------------------- --report (item 1)


def test_report_is_refused_when_it_is_the_input(run, tmp_path, sample_pcap):
    before = sample_pcap.read_bytes()
    res = run("mask", sample_pcap, tmp_path / "out.pcap", "--report", sample_pcap, "--force")
    assert res.returncode == 2 and b"--report" in res.stderr and b"INPUT" in res.stderr
    assert sample_pcap.read_bytes() == before and not (tmp_path / "out.pcap").exists()
    link = tmp_path / "alias.json"
    link.symlink_to(sample_pcap)
    res = run("mask", sample_pcap, tmp_path / "out.pcap", "--report", link, "--force")
    assert res.returncode == 2 and sample_pcap.read_bytes() == before
    with open(sample_pcap, "rb") as stdin:  # stdin's file too
        res = run("mask", "-", tmp_path / "out.pcap", "--report", sample_pcap, "--force", stdin=stdin)
    assert res.returncode == 2 and sample_pcap.read_bytes() == before
    assert run.leftovers() == []


def test_report_is_refused_when_it_is_the_output(run, tmp_path, sample_pcap):
    out = tmp_path / "out.pcap"
    res = run("mask", sample_pcap, out, "--report", out)
    assert res.returncode == 2 and b"OUTPUT" in res.stderr and not out.exists()
    out.write_bytes(b"old")
    res = run("mask", sample_pcap, out, "--report", tmp_path / "." / "out.pcap", "--force")
    assert res.returncode == 2 and out.read_bytes() == b"old"
    assert run.leftovers() == []


def test_report_is_refused_inside_the_batch_input_tree(run, tmp_path, sample_frames):
    tree = tmp_path / "in"
    (tree / "sub").mkdir(parents=True)
    write_pcap(tree / "a.pcap", sample_frames)
    res = run("mask", tree, tmp_path / "out", "-r", "--report", tree / "sub" / "r.json")
    assert res.returncode == 2 and b"INPUT directory" in res.stderr
    assert not (tmp_path / "out").exists() and not (tree / "sub" / "r.json").exists()
    assert run.leftovers() == []


def test_report_exists_needs_force(run, tmp_path, sample_pcap):
    report = tmp_path / "r.json"
    report.write_text("precious")
    out = tmp_path / "out.pcap"
    res = run("mask", sample_pcap, out, "--report", report)
    assert res.returncode == 2 and b"--force" in res.stderr
    assert report.read_text() == "precious" and not out.exists()
    res = run("mask", sample_pcap, out, "--report", report, "--force")
    assert res.returncode == 0, res.stderr
    assert json.loads(report.read_text())["ok"] is True
    assert sorted(os.listdir(tmp_path)) == ["in", "out.pcap", "private-tmp", "r.json"]
    assert run.leftovers() == []


@pytest.mark.parametrize("no_tmpfile", [False, True], ids=["O_TMPFILE", "named-partial"])
def test_report_symlink_planted_by_another_user(run, tmp_path, sample_pcap, no_tmpfile):
    """In a shared sticky directory, another uid plants symlinks where the report and its old
    predictable temp name go; the report never writes through them."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    victim = tmp_path / "victim"
    victim.write_bytes(b"root-owned secret")
    victim.chmod(0o600)
    fd = os.open(shared, os.O_RDONLY | os.O_DIRECTORY)
    try:
        as_nobody(f"import os\nfor n in ('.r.json.pktmask-report.tmp', 'planted.json'):\n"
                  f"    os.symlink({str(victim)!r}, n, dir_fd={fd})", fd)
    finally:
        os.close(fd)
    env = {"PKTMASK_TEST_NO_O_TMPFILE": "1"} if no_tmpfile else {}
    out = tmp_path / "out.pcap"
    res = run("mask", sample_pcap, out, "--report", shared / "r.json", env=env)
    assert res.returncode == 0, res.stderr
    assert json.loads((shared / "r.json").read_text())["ok"] is True
    assert not (shared / "r.json").is_symlink()
    # The planted report name itself: refused without --force, replaced (not followed) with it.
    res = run("mask", sample_pcap, tmp_path / "new.pcap", "--report", shared / "planted.json", env=env)
    assert res.returncode == 2 and b"--force" in res.stderr and not (tmp_path / "new.pcap").exists()
    res = run("mask", sample_pcap, out, "--force", "--report", shared / "planted.json", env=env)
    assert res.returncode == 0, res.stderr
    assert not (shared / "planted.json").is_symlink()
    assert json.loads((shared / "planted.json").read_text())["ok"] is True
    assert victim.read_bytes() == b"root-owned secret"
    assert sorted(os.listdir(shared)) == [".r.json.pktmask-report.tmp", "planted.json", "r.json"]
    assert run.leftovers() == []


# ---------------------------------------------------------------- the key (item 2)


def _key_forms(key: bytes) -> list[bytes]:
    return [key, key.hex().encode(), key.hex().upper().encode()]


def _files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file() and not p.is_symlink()]


def test_jobs_workers_never_see_the_key_on_disk_argv_or_env(run, tmp_path, big_pcap):
    key = bytes(range(7, 39))
    key_file = tmp_path / "k.key"
    key_file.write_bytes(key)
    key_file.chmod(0o600)
    tree = tmp_path / "in"
    tree.mkdir()
    for i in range(2):
        os.link(big_pcap, tree / f"f{i}.pcap")
    proc = run.popen("mask", tree, tmp_path / "out", "--jobs", "2", "--key-file", key_file, "--keep-temp",
                     env={"PKTMASK_TEST_PAUSE": "300"})
    deadline = time.monotonic() + 120
    workers: list[int] = []
    while time.monotonic() < deadline and len(workers) < 2:
        roots = [p for p in run.tmpdir.iterdir() if f"-{proc.pid}-" in p.name]
        if roots:
            paused = [p for p in roots[0].glob("worker-*.err") if b"test pause" in p.read_bytes()]
            if len(paused) == 2:
                workers = [int(p.name.rsplit("-", 2)[1]) for p in run.tmpdir.iterdir()
                           if p.name.startswith("pktmask-") and p != roots[0]]
        time.sleep(0.05)
    assert len(workers) == 2, proc.communicate(timeout=60)
    forms = _key_forms(key)
    for pid in [proc.pid, *workers]:
        for what in ("cmdline", "environ"):
            blob = Path(f"/proc/{pid}/{what}").read_bytes()
            assert not any(f in blob for f in forms), (pid, what)
    for path in _files_under(run.tmpdir):  # every scratch file of the parent and the workers
        assert not any(f in path.read_bytes() for f in forms), path
    for pid in workers:
        os.kill(pid, signal.SIGUSR1)
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    kept = _files_under(run.tmpdir)  # --keep-temp: the parent's root stays, without the key
    assert kept and not any(any(f in p.read_bytes() for f in forms) for p in kept)
    assert run("temp", "clean").returncode == 0
    assert run.leftovers() == []


# ---------------------------------------------------------------- exit codes (item 6)


def no_dac(run, *args, env=None, **kw) -> subprocess.CompletedProcess:
    """Run pktmask without the capabilities that let root read any file (mode bits then apply)."""
    from conftest import PKTMASK

    prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, str(PKTMASK), *map(str, args)], env={**run.env, **(env or {})},
                          capture_output=True, timeout=300, **kw)


@pytest.mark.parametrize("cut", [8, 12, 20, 27])
def test_pcapng_cut_inside_its_first_block_fails(run, tmp_path, sample_frames, cut):
    from captures import clean_pcapng

    src = tmp_path / "cut.pcapng"
    src.write_bytes(clean_pcapng(sample_frames)[:cut])
    res = run("mask", src, tmp_path / "out.pcapng")
    assert res.returncode == 1, res.stderr
    assert b"cut.pcapng" in res.stderr and b"Traceback" not in res.stderr
    assert not (tmp_path / "out.pcapng").exists() and run.leftovers() == []


def test_caplen_beyond_snaplen_mid_file_is_corrupt(run, tmp_path, sample_frames):
    from captures import pcap_bytes

    data = bytearray(pcap_bytes(sample_frames))
    at = 24 + sum(16 + len(f) for f in sample_frames[:2])  # the third record
    data[at + 8 : at + 12] = (100_000).to_bytes(4, "little")  # > snaplen 65535, < the 256 KiB sanity limit
    src = tmp_path / "liar.pcap"
    src.write_bytes(bytes(data))
    res = run("mask", src, tmp_path / "out.pcap", "--json")
    assert res.returncode == 1, res.stderr
    assert b"corrupt record 3" in res.stderr and b"snap length" in res.stderr
    assert json.loads(res.stdout)["ok"] is False
    assert not (tmp_path / "out.pcap").exists() and run.leftovers() == []


def test_batch_unreadable_and_misnamed_files_are_failures(run, tmp_path, sample_frames):
    tree = tmp_path / "in"
    (tree / "sub").mkdir(parents=True)
    write_pcap(tree / "a.pcap", sample_frames)
    write_pcap(tree / "sub" / "hidden.pcap", sample_frames)
    write_pcap(tree / "locked.pcap", sample_frames)
    (tree / "fake.pcapng").write_text("not a capture\n")
    (tree / "notes.txt").write_text("not a capture either\n")
    (tree / "locked.pcap").chmod(0)
    (tree / "sub").chmod(0)
    try:
        res = no_dac(run, "mask", tree, tmp_path / "out", "-r", "--json")
    finally:
        (tree / "sub").chmod(0o755)
    assert res.returncode == 1, res.stderr
    report = json.loads(res.stdout)
    by_name = {Path(f["input"]).name: f for f in report["files"]}
    assert by_name["a.pcap"]["ok"]
    for name in ("locked.pcap", "fake.pcapng", "sub"):
        assert not by_name[name]["ok"] and name in by_name[name]["error"], by_name
        assert name.encode() in res.stderr
    assert report["skipped"] == ["notes.txt"] and report["ok"] is False
    assert sorted(os.listdir(tmp_path / "out")) == ["a.pcap"]
    assert run.leftovers() == []


@pytest.mark.parametrize("content", [None, "notes.txt"], ids=["empty", "no-captures"])
def test_directory_without_captures_fails(run, tmp_path, content):
    tree = tmp_path / "in"
    tree.mkdir()
    if content:
        (tree / content).write_text("text\n")
    res = run("mask", tree, tmp_path / "out", "--json")
    assert res.returncode == 1
    assert b"no captures in" in res.stderr and str(tree).encode() in res.stderr
    report = json.loads(res.stdout)
    assert report["ok"] is False and "no captures" in report["error"]
    assert not (tmp_path / "out").exists() and run.leftovers() == []


def test_output_ending_in_slash_is_a_directory(run, tmp_path, sample_pcap):
    res = run("mask", sample_pcap, f"{tmp_path}/newname/")
    assert res.returncode == 1 and b"does not exist" in res.stderr
    assert not (tmp_path / "newname").exists()
    (tmp_path / "there").mkdir()
    res = run("mask", sample_pcap, f"{tmp_path}/there/")
    assert res.returncode == 2 and b"directory" in res.stderr
    assert os.listdir(tmp_path / "there") == [] and run.leftovers() == []


@pytest.mark.parametrize("kind", ["missing", "file", "unwritable"])
def test_unusable_tmpdir_fails_naming_it(run, tmp_path, sample_pcap, kind):
    bad = tmp_path / f"bad-{kind}"
    if kind == "file":
        bad.write_text("x")
    elif kind == "unwritable":
        bad.mkdir()
        bad.chmod(0o500)
    res = no_dac(run, "mask", sample_pcap, tmp_path / "out.pcap", "--json", env={"TMPDIR": str(bad)})
    assert res.returncode == 1, res.stderr
    assert str(bad).encode() in res.stderr and b"TMPDIR" in res.stderr
    assert json.loads(res.stdout)["ok"] is False
    assert not (tmp_path / "out.pcap").exists() and run.leftovers() == []


@pytest.mark.parametrize("args,code", [
    (["--bogus-option"], 2),
    (["--dedup-window", "-3"], 2),
    (["-", "-"], 2),
    (["missing.pcap", "out.pcap"], 1),
], ids=["unknown-option", "bad-value", "json-to-stdout", "missing-input"])
def test_json_always_prints_one_object_matching_the_exit_status(run, tmp_path, args, code):
    res = run("mask", *args, "--json", cwd=tmp_path, input=b"")
    assert res.returncode == code, res.stderr
    report = json.loads(res.stdout)
    assert report["ok"] is False and report["error"]
    assert run.leftovers() == []


def test_json_usage_error_output_exists(run, tmp_path, sample_pcap):
    out = tmp_path / "out.pcap"
    out.write_bytes(b"old")
    res = run("mask", sample_pcap, out, "--json")
    assert res.returncode == 2
    assert json.loads(res.stdout)["ok"] is False and out.read_bytes() == b"old"


# ---------------------------------------------------------------- closed standard streams (item 4)


def _closing(*fds: int):
    def close() -> None:
        for fd in fds:
            os.close(fd)
    return close


def test_closed_stdout_file_to_file_succeeds(run, tmp_path, sample_pcap):
    out = tmp_path / "out.pcap"
    res = run("mask", sample_pcap, out, "-v", preexec_fn=_closing(1))
    assert res.returncode == 0, res.stderr
    assert b"Traceback" not in res.stderr and out.stat().st_size > 24
    assert run.leftovers() == []


def test_closed_stdout_with_json_or_output_dash_is_one_line(run, tmp_path, sample_pcap):
    out = tmp_path / "out.pcap"
    res = run("mask", sample_pcap, out, "--json", preexec_fn=_closing(1))
    assert res.returncode == 2 and b"closed" in res.stderr
    assert len(res.stderr.splitlines()) == 1 and not out.exists()
    res = run("mask", sample_pcap, "-", preexec_fn=_closing(1))
    assert res.returncode == 1 and b"standard output is closed" in res.stderr
    assert len(res.stderr.splitlines()) == 1
    assert run.leftovers() == []


def test_closed_stdin_with_input_dash(run, tmp_path):
    res = run("mask", "-", tmp_path / "out.pcap", preexec_fn=_closing(0))
    assert res.returncode == 1 and b"standard input is closed" in res.stderr
    assert len(res.stderr.splitlines()) == 1 and not (tmp_path / "out.pcap").exists()
    assert run.leftovers() == []


@pytest.mark.parametrize("args", [[], ["--json"], ["-v", "--dedup"]], ids=["plain", "json", "verbose"])
def test_closed_stderr_does_not_abort_the_run(run, tmp_path, sample_pcap, args):
    out = tmp_path / "out.pcap"
    res = run("mask", sample_pcap, out, *args, preexec_fn=_closing(2))
    assert res.returncode == 0 and out.stat().st_size > 24
    if "--json" in args:
        assert json.loads(res.stdout)["ok"] is True
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"garbage, not a capture")
    res = run("mask", bad, tmp_path / "o2.pcap", *args, preexec_fn=_closing(2))
    assert res.returncode == 1 and not (tmp_path / "o2.pcap").exists()
    assert run.leftovers() == []


def test_broken_stdout_and_stderr_pipes(run, tmp_path, sample_pcap):
    from conftest import PKTMASK

    out = tmp_path / "out.pcap"
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    os.close(r1)  # nobody will read: writes get EPIPE
    os.close(r2)
    try:
        res = subprocess.run([str(PKTMASK), "mask", str(sample_pcap), str(out), "--json", "-v"],
                             stdout=w1, stderr=w2, env=run.env, timeout=120)
    finally:
        os.close(w1)
        os.close(w2)
    assert res.returncode == 1  # the JSON report asked for could not be delivered
    assert out.stat().st_size > 24  # the capture itself is complete
    r, w = os.pipe()
    os.close(r)
    try:
        res = subprocess.run([str(PKTMASK), "mask", str(sample_pcap), str(tmp_path / "o2.pcap"), "-v"],
                             stderr=w, stdout=subprocess.DEVNULL, env=run.env, timeout=120)
    finally:
        os.close(w)
    assert res.returncode == 0 and (tmp_path / "o2.pcap").exists()  # a broken stderr is not fatal
    assert run.leftovers() == []


# ---------------------------------------------------------------- signals (item 5)


def _wait_paused(proc: subprocess.Popen, timeout: float = 120) -> bytes:
    import select

    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and b"test pause" not in seen:
        ready, _, _ = select.select([proc.stderr], [], [], 1.0)
        if ready:
            chunk = os.read(proc.stderr.fileno(), 4096)
            if not chunk:
                break
            seen += chunk
    assert b"test pause" in seen, seen
    return seen


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids += [int(x) for x in (task / "children").read_text().split()]
    return kids


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGINT], ids=lambda s: s.name)
def test_a_signal_ignored_at_start_stays_ignored(run, tmp_path, big_pcap, sig):
    """nohup (SIGHUP) and background jobs of non-interactive shells (SIGINT) ignore these."""
    out = tmp_path / "out.pcap"
    proc = run.popen("mask", big_pcap, out, env={"PKTMASK_TEST_PAUSE": "300"},
                     preexec_fn=lambda: signal.signal(sig, signal.SIG_IGN))
    _wait_paused(proc)
    kids = _children(proc.pid)
    proc.send_signal(sig)
    for kid in kids:
        os.kill(kid, sig)  # the pre-pass child inherits the disposition too
    proc.send_signal(signal.SIGUSR1)  # resume (after the ignored signal, in order)
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert out.exists() and run.leftovers() == []


def test_prepass_child_dies_at_once_and_one_message(run, tmp_path, big_pcap):
    """A signal to the whole process group (Ctrl-C): the pre-pass child dies by it at once (no
    Python handler, no second message) and the parent cleans up and dies by it."""
    if (os.cpu_count() or 1) < 2:
        pytest.skip("the pre-pass runs in a child process only with two cores or more")
    out = tmp_path / "out.pcap"
    proc = run.popen("mask", big_pcap, out, "--dedup", env={"PKTMASK_TEST_PAUSE": "300"},
                     start_new_session=True)
    seen = _wait_paused(proc)
    kids = _children(proc.pid)
    assert len(kids) == 1  # the pre-pass
    os.killpg(proc.pid, signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    err = seen + err
    assert proc.returncode == -signal.SIGINT, err
    assert err.count(b"interrupted") == 1, err
    assert not Path(f"/proc/{kids[0]}").exists()
    assert not out.exists() and run.leftovers() == []


def _signal_masks(pid: int) -> tuple[int, int]:
    fields = dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                  if ":\t" in line)
    return int(fields["SigIgn"], 16), int(fields["SigCgt"], 16)


def _wait_for_pktmask_code(pid: int, timeout: float = 30) -> None:
    """Wait until the interpreter's own start-up is over: its SIGINT handler was installed (or
    the run's handlers already are), then dropped again by pktmask/__init__ or replaced by the
    run's (SIGTERM caught too)."""
    bit = lambda s: 1 << (s - 1)  # noqa: E731
    python_handler = lambda cgt: cgt & bit(signal.SIGINT) and not cgt & bit(signal.SIGTERM)  # noqa: E731
    deadline = time.monotonic() + timeout
    seen_python = False
    while time.monotonic() < deadline:
        try:
            _ign, cgt = _signal_masks(pid)
        except (OSError, KeyError):
            return  # gone already: the caller sees how it ended
        if cgt & bit(signal.SIGTERM):
            return  # the run's handlers
        if python_handler(cgt):
            seen_python = True
        elif seen_python:
            return  # pktmask/__init__ put SIGINT back to its default action
        time.sleep(0.0005)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_signal_during_start_up_is_128_plus_n(run, tmp_path, big_pcap, sig):
    """However early the signal comes, the run dies by it and leaves nothing.

    SIGINT is sent only once pktmask's own code runs: while the interpreter itself starts (up
    to its import of ``site``) a SIGINT is a fatal error of Python (exit 1), before any of
    pktmask's code could act. The run pauses after its first packet (PKTMASK_TEST_PAUSE), so
    even the latest signal comes before it could finish (the capture takes well under 0.35 s).
    """
    for i, delay in enumerate((0.0, 0.02, 0.05, 0.1, 0.2, 0.35)):
        out = tmp_path / f"out{i}.pcap"
        proc = run.popen("mask", big_pcap, out, "--dedup", env={"PKTMASK_TEST_PAUSE": "300"})
        if sig == signal.SIGINT:
            _wait_for_pktmask_code(proc.pid)
        time.sleep(delay)  # not an assertion on timing: any moment must give the same result
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == -sig, (delay, err)
        assert b"Traceback" not in err and b"Aborted" not in err
        assert not out.exists() and run.leftovers() == [], delay


# ---------------------------------------------------------------- warnings and UX (item 8)


def _warnings(stderr: bytes) -> list[bytes]:
    return [line for line in stderr.splitlines() if b"warning" in line]


def test_mac_flag_without_anonymization_warns(run, tmp_path, sample_pcap):
    res = run("mask", sample_pcap, tmp_path / "o.pcap", "--no-anonymize", "--anonymize-macs")
    assert res.returncode == 0
    assert any(b"--anonymize-macs" in w for w in _warnings(res.stderr)), res.stderr
    res = run("mask", sample_pcap, tmp_path / "o2.pcap", "--no-anonymize")  # the default: no noise
    assert res.returncode == 0 and not _warnings(res.stderr)
    assert run.leftovers() == []


def test_both_stages_off_warns_nothing_is_sanitized(run, tmp_path, sample_pcap):
    res = run("mask", sample_pcap, tmp_path / "o.pcap", "--no-anonymize", "--no-mask-payloads")
    assert res.returncode == 0
    assert any(b"nothing is sanitized" in w for w in _warnings(res.stderr)), res.stderr


@pytest.mark.parametrize("mode,content,needle", [
    (0o644, bytes(range(32)), b"readable by other users"),
    (0o600, bytes(32), b"no entropy"),
    (0o600, b"ab" * 32 + b"\n", b"no entropy"),
], ids=["world-readable", "all-zero", "all-equal-hex"])
def test_weak_key_files_warn(run, tmp_path, sample_pcap, mode, content, needle):
    key = tmp_path / "k.key"
    key.write_bytes(content)
    key.chmod(mode)
    res = run("mask", sample_pcap, tmp_path / "o.pcap", "--key-file", key)
    assert res.returncode == 0
    assert any(needle in w and b"k.key" in w for w in _warnings(res.stderr)), res.stderr
    key.chmod(0o600)
    key.write_bytes(bytes(range(32)))
    res = run("mask", sample_pcap, tmp_path / "o2.pcap", "--key-file", key)
    assert res.returncode == 0 and not _warnings(res.stderr)


def test_quiet_means_only_errors(run, tmp_path, sample_frames, sample_pcap):
    from captures import pcap_bytes

    data = pcap_bytes(sample_frames)
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:-10])  # a truncated last record: a warning
    key = tmp_path / "k.key"
    key.write_bytes(bytes(32))
    key.chmod(0o644)
    res = run("mask", cut, tmp_path / "o.pcap", "-q", "--key-file", key, "--no-anonymize",
              "--anonymize-macs", "--no-mask-payloads", env={"PKTMASK_LOG_LEVEL": "bogus"})
    assert res.returncode == 0 and res.stderr == b""
    res = run("mask", cut, tmp_path / "o2.pcap", "--no-mask-payloads")
    assert b"truncated" in res.stderr
    assert run.leftovers() == []


def test_bogus_log_level_is_reported(run, tmp_path, sample_pcap):
    res = run("mask", sample_pcap, tmp_path / "o.pcap", env={"PKTMASK_LOG_LEVEL": "bogus"})
    assert res.returncode == 0 and b"PKTMASK_LOG_LEVEL" in res.stderr and b"bogus" in res.stderr


def test_file_names_are_not_markup(run, tmp_path, sample_frames):
    src = write_pcap(tmp_path / "[bold]x[red].pcap", sample_frames)
    res = run("mask", src, tmp_path / "o.pcap")
    assert res.returncode == 0, res.stderr
    assert b"[bold]x[red].pcap" in res.stderr


def test_summary_numbers_are_never_cut(run, tmp_path, big_pcap):
    res = run("mask", big_pcap, tmp_path / "o.pcap", "--json", "--dedup")
    report = json.loads(res.stdout)["files"][0]
    res = run("mask", big_pcap, tmp_path / "o2.pcap", "--dedup", env={"COLUMNS": "80"})
    assert res.returncode == 0, res.stderr
    assert "…".encode() not in res.stderr
    for key in ("packets_in", "packets_out", "payload_bytes_zeroed", "addresses_anonymized"):
        assert str(report[key]).encode() in res.stderr, (key, res.stderr)
    assert run.leftovers() == []


def test_a_killed_worker_is_named(run, tmp_path, big_pcap):
    tree = tmp_path / "in"
    tree.mkdir()
    for i in range(2):
        os.link(big_pcap, tree / f"f{i}.pcap")
    proc = run.popen("mask", tree, tmp_path / "out", "--jobs", "2", env={"PKTMASK_TEST_PAUSE": "300"})
    deadline = time.monotonic() + 120
    workers: list[int] = []
    while time.monotonic() < deadline and len(workers) < 2:
        roots = [p for p in run.tmpdir.iterdir() if f"-{proc.pid}-" in p.name]
        if roots and len([p for p in roots[0].glob("worker-*.err") if b"test pause" in p.read_bytes()]) == 2:
            workers = _children(proc.pid)
        time.sleep(0.05)
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)
    os.kill(workers[1], signal.SIGUSR1)
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1
    line = [x for x in err.splitlines() if b"SIGKILL" in x]
    assert line and b".pcap" in line[0], err
    assert run("temp", "clean").returncode == 0 and run.leftovers() == []


# ---------------------------------------------------------------- streams without a spool (item 3)


def _read_until(fd: int, size: int, timeout: float = 60) -> bytes:
    """Read from ``fd`` until ``size`` bytes came (or the time budget is spent: the caller asserts)."""
    import select

    got = b""
    deadline = time.monotonic() + timeout
    while len(got) < size and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            got += chunk
    return got


@pytest.mark.parametrize("opts", [[], ["--dedup"], ["--no-mask-payloads"]], ids=["mask", "dedup", "one-pass"])
def test_live_pipe_gives_output_before_eof(run, tmp_path, sample_pcap, opts):
    key = tmp_path / "k.key"
    key.write_bytes(bytes(range(32)))
    key.chmod(0o600)
    ref = run("mask", sample_pcap, "-", "--key-file", key, *opts).stdout
    proc = run.popen("mask", "-", "-", "--key-file", key, *opts, stdin=subprocess.PIPE)
    proc.stdin.write(sample_pcap.read_bytes())
    proc.stdin.flush()  # and the pipe stays open: no EOF yet
    early = _read_until(proc.stdout.fileno(), 24 + 16 + 1)
    assert len(early) > 24 + 16, "no packet came out before EOF"
    assert proc.poll() is None  # still reading the open pipe
    proc.stdin.close()
    proc.stdin = None
    rest, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert early + rest == ref
    assert run.leftovers() == []


def test_fifo_input_is_read_once_and_flows(run, tmp_path, sample_pcap):
    key = tmp_path / "k.key"
    key.write_bytes(bytes(range(32)))
    key.chmod(0o600)
    ref = run("mask", sample_pcap, "-", "--key-file", key).stdout
    fifo = tmp_path / "capture.fifo"
    os.mkfifo(fifo)
    proc = run.popen("mask", fifo, "-", "--key-file", key)
    with open(fifo, "wb") as writer:  # like <(zcat x.pcap.gz)
        writer.write(sample_pcap.read_bytes())
        writer.flush()
        early = _read_until(proc.stdout.fileno(), 24 + 16 + 1)
        assert len(early) > 24 + 16, "no packet came out before the FIFO's EOF"
    rest, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert early + rest == ref
    assert run.leftovers() == []


def test_stdin_with_masking_equals_the_file_run(run, tmp_path, big_pcap):
    key = tmp_path / "k.key"
    key.write_bytes(bytes(range(32)))
    key.chmod(0o600)
    for opts in ([], ["--dedup"]):
        ref = tmp_path / "ref.pcap"
        assert run("mask", big_pcap, ref, "--key-file", key, "--force", *opts).returncode == 0
        with open(big_pcap, "rb") as stdin:
            res = run("mask", "-", tmp_path / "s.pcap", "--key-file", key, "--force", *opts, stdin=stdin)
        assert res.returncode == 0, res.stderr
        assert (tmp_path / "s.pcap").read_bytes() == ref.read_bytes()
    assert run.leftovers() == []


def test_sigkill_during_masked_stdin_leaves_no_input_bytes(run, tmp_path, big_pcap):
    data = big_pcap.read_bytes()
    proc = run.popen("mask", "-", tmp_path / "out.pcap", stdin=subprocess.PIPE,
                     env={"PKTMASK_TEST_PAUSE": "300"})
    import threading

    def feed() -> None:  # half the capture, the pipe left open; blocks while pktmask is paused
        try:
            proc.stdin.write(data[: len(data) // 2])
            proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    _wait_paused(proc)
    roots = run.leftovers()
    assert len(roots) == 1
    proc.kill()
    proc.wait()
    writer.join(timeout=60)
    try:
        proc.stdin.close()
    except BrokenPipeError:
        pass
    probes = [data[at : at + 48] for at in range(4096, len(data) // 2, len(data) // 40)]
    for path in _files_under(run.tmpdir):
        blob = path.read_bytes()
        assert not any(p in blob for p in probes), path
    assert sorted(p.name for p in _files_under(run.tmpdir)) == ["lock", "owner"]
    assert run("temp", "clean").returncode == 0 and run.leftovers() == []


def test_stdin_that_is_the_output_is_refused(run, tmp_path, sample_pcap):
    before = sample_pcap.read_bytes()
    with open(sample_pcap, "rb") as stdin:
        res = run("mask", "-", sample_pcap, "--force", stdin=stdin)
    assert res.returncode == 2 and b"standard input" in res.stderr
    assert sample_pcap.read_bytes() == before and run.leftovers() == []
