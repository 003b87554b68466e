#!/usr/bin/env python3
"""`make soak`, the companion of `make bench`: random signals at random moments, a busy CPU beside.

Every run is pktmask on bench's 1M-packet workload with one of the option sets (files, stdin,
a --jobs 2 directory), its own empty TMPDIR and output directory. After a random delay
(0 to --max-delay seconds: start-up included) it gets SIGINT, SIGTERM or SIGHUP. It must end
by that signal (exit 128+N, i.e. a negative return code here) within 2 s of it, leave its
TMPDIR empty and leave no hidden or partial file next to its outputs. A run that finished
before its signal is counted apart (not a failure). Prints figures; exit 1 if a run failed.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import KEY, PKTMASK, workload  # noqa: E402

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
DEADLINE = 2.0  # seconds from the signal to the end of the run


def option_sets(capture: Path, tree: Path) -> dict[str, tuple[list[str], bool]]:
    """name -> (arguments before OUTPUT, INPUT on stdin)."""
    return {
        "default": ([str(capture)], False),
        "dedup": ([str(capture), "--dedup"], False),
        "no-mask": ([str(capture), "--no-mask-payloads"], False),
        "no-anon": ([str(capture), "--no-anonymize"], False),
        "stdin": (["-"], True),
        "stdin-dedup": (["-", "--dedup"], True),
        "jobs2": ([str(tree), "--jobs", "2"], False),
    }


def one_run(name: str, args: list[str], stdin: bool, capture: Path, work: Path, key: Path,
            delay: float, sig: signal.Signals) -> tuple[str, str]:
    """Run once; returns (outcome, detail): outcome is ok, finished or FAIL."""
    tmp = work / "tmp"
    out = work / "out"
    tmp.mkdir()
    out.mkdir()
    target = out if name == "jobs2" else out / "out.pcap"
    env = dict(os.environ, TMPDIR=str(tmp))
    cmd = [str(PKTMASK), "mask", *args[:1], str(target), *args[1:], "--key-file", str(key), "-q"]
    with open(capture, "rb") if stdin else open(os.devnull, "rb") as src:
        proc = subprocess.Popen(cmd, stdin=src, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    time.sleep(delay)
    sent = time.monotonic()
    try:
        proc.send_signal(sig)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return "FAIL", f"still alive 30 s after {sig.name}"
    took = time.monotonic() - sent
    err = proc.stderr.read().decode(errors="replace").strip()
    proc.stderr.close()
    left = sorted(os.listdir(tmp))
    hidden = [str(p.relative_to(out)) for p in out.rglob(".*")]
    problems = []
    if proc.returncode == 0:
        outcome = "finished"
    elif proc.returncode == -sig:
        outcome = "ok"
    elif proc.returncode == 1 and "Fatal Python error: init_" in err and not left and not hidden:
        # SIGINT while the interpreter itself starts (before pktmask's first line): Python's
        # own fatal error. Counted apart, reported, not pktmask's to fix.
        return "python-init", f"{sig.name} at interpreter start-up"
    else:
        outcome = "FAIL"
        problems.append(f"exit {proc.returncode} (expected {-sig})")
    if outcome == "ok" and took > DEADLINE:
        problems.append(f"ended {took:.2f} s after {sig.name}")
    if left:
        problems.append(f"TMPDIR holds {left}")
    if hidden:
        problems.append(f"partial outputs {hidden}")
    if problems:
        return "FAIL", "; ".join(problems) + (f"; stderr: {err[-300:]}" if err else "")
    return outcome, f"{took:.2f}s"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=120)
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--max-delay", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "pktmask-bench")
    opts = ap.parse_args()
    for sig in SIGNALS:  # the harness itself: default actions, and none ignored for the children
        signal.signal(sig, signal.SIG_DFL)
    seed = opts.seed if opts.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    capture = workload(opts.cache, opts.packets)
    base = Path(tempfile.mkdtemp(prefix="pktmask-soak."))
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])  # the busy CPU beside
    try:
        tree = base / "tree"
        tree.mkdir()
        for i in range(3):
            os.link(capture, tree / f"f{i}.pcap") if _same_fs(capture, tree) else shutil.copy(capture, tree)
        key = base / "k.key"
        key.write_bytes(KEY)
        key.chmod(0o600)
        sets = option_sets(capture, tree)
        counts = {"ok": 0, "finished": 0, "python-init": 0, "FAIL": 0}
        worst = 0.0
        print(f"soak: {opts.runs} runs, seed {seed}, {opts.packets} packets, delays 0-{opts.max_delay:g} s, "
              f"option sets {', '.join(sets)}")
        for i in range(opts.runs):
            name = rng.choice(list(sets))
            args, stdin = sets[name]
            sig = rng.choice(SIGNALS)
            delay = rng.uniform(0, opts.max_delay)
            work = base / f"run{i}"
            work.mkdir()
            outcome, detail = one_run(name, args, stdin, capture, work, key, delay, sig)
            counts[outcome] += 1
            if outcome == "ok":
                worst = max(worst, float(detail.rstrip("s")))
            if outcome == "FAIL":
                print(f"  run {i}: {name} {sig.name} at {delay:.3f}s: FAIL: {detail}")
            shutil.rmtree(work, ignore_errors=True)
        print(f"soak: {counts['ok']} ended by their signal (slowest {worst:.2f} s after it), "
              f"{counts['finished']} finished before it, {counts['python-init']} SIGINT during the "
              f"interpreter's own start-up (Python's fatal error, exit 1, nothing left), "
              f"{counts['FAIL']} failed")
        return 1 if counts["FAIL"] else 0
    finally:
        busy.kill()
        busy.wait()
        shutil.rmtree(base, ignore_errors=True)


def _same_fs(a: Path, b: Path) -> bool:
    return os.stat(a).st_dev == os.stat(b).st_dev


if __name__ == "__main__":
    sys.exit(main())
