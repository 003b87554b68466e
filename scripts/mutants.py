#!/usr/bin/env python3
"""Planted bugs, one at a time: do the tests fail when privacy or hygiene breaks? (`make mutants`)

Not a mutation framework: ``scripts/mutants.toml`` lists realistic bugs in the
privacy- and hygiene-critical code (a sensitive header kept, an option kept by
mistake, a checksum left as is, the sweep following symlinks...). For each one
this script copies ``src/`` to a scratch directory, replaces the mutant's
``old`` snippet by its ``new`` one, and runs the mutant's test subset on the
pure build of that copy (``PYTHONPATH=<copy>/src``: the E2E tests' installed
``pktmask`` runs the copy too, its entry point importing the first ``pktmask``
on the path). A failing subset kills the mutant; a passing one is a survivor,
a test gap. Prints the kill rate and every survivor with its description.

Every ``old`` snippet must occur exactly once in the current source: if one
does not, the script names the mutant and stops before running anything, so
the list is kept up to date as the code changes.

    python scripts/mutants.py [--jobs 2] [--timeout 300] [--only ID ...] [--list]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "scripts" / "mutants.toml"
RUNNING: set[int] = set()  # process groups of the subsets running now (killed on interruption)
STOPPING = threading.Event()


@dataclass
class Mutant:
    id: str
    file: str
    edits: list[tuple[str, str]]
    description: str
    tests: list[str]
    k: str = ""
    outcome: str = ""
    seconds: float = 0.0
    detail: str = field(default="", repr=False)


def load(path: Path = DATA) -> list[Mutant]:
    """Read the mutant list; raise SystemExit naming every malformed entry."""
    with open(path, "rb") as f:
        raw = tomllib.load(f)["mutant"]
    out, seen, errors = [], set(), []
    for i, m in enumerate(raw):
        mid = m.get("id", f"#{i}")
        old, new = m.get("old"), m.get("new")
        if isinstance(old, str):
            old, new = [old], [new]
        if (not isinstance(old, list) or not isinstance(new, list) or len(old) != len(new)
                or not all(isinstance(s, str) for s in old + new)):
            errors.append(f"{mid}: old/new must be two strings or two lists of strings of one length")
            continue
        for key in ("id", "file", "description", "tests"):
            if not m.get(key):
                errors.append(f"{mid}: missing {key}")
        if mid in seen:
            errors.append(f"{mid}: duplicate id")
        seen.add(mid)
        out.append(Mutant(mid, m.get("file", ""), list(zip(old, new, strict=True)), m.get("description", ""),
                          list(m.get("tests", [])), m.get("k", "")))
    if errors:
        raise SystemExit("mutants.toml:\n  " + "\n  ".join(errors))
    return out


def check(mutants: list[Mutant], src: Path) -> list[str]:
    """Every snippet must occur exactly once in its file, and change it; returns the problems."""
    problems = []
    for m in mutants:
        path = src / m.file
        if not path.is_file():
            problems.append(f"{m.id}: no file src/pktmask/{m.file}")
            continue
        text = path.read_text()
        for n, (old, new) in enumerate(m.edits, 1):
            count = text.count(old)
            if count != 1:
                problems.append(f"{m.id} (edit {n}): old snippet occurs {count} times in src/pktmask/{m.file}, "
                                "not once: update scripts/mutants.toml")
            elif old == new:
                problems.append(f"{m.id} (edit {n}): old and new are the same")
        for t in m.tests:
            if not (ROOT / t.split("::")[0]).exists():
                problems.append(f"{m.id}: no test path {t}")
    return problems


def apply(m: Mutant, src: Path) -> None:
    path = src / m.file
    text = path.read_text()
    for old, new in m.edits:
        text = text.replace(old, new, 1)
    path.write_text(text)


def run_one(m: Mutant, python: str, scratch: Path, timeout: float) -> None:
    """Copy src/, plant the bug, run the subset; sets ``m.outcome`` (killed/survived/timeout/error)."""
    if STOPPING.is_set():
        m.outcome = "skipped"
        return
    work = Path(tempfile.mkdtemp(prefix=f"{m.id}-", dir=scratch))
    started = time.monotonic()
    try:
        shutil.copytree(ROOT / "src", work / "src",
                        ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.egg-info"))
        apply(m, work / "src" / "pktmask")
        env = dict(os.environ, PYTHONPATH=str(work / "src"), PKTMASK_EXPECT_BUILD="pure",
                   PYTHONDONTWRITEBYTECODE="1", TMPDIR=str(work))
        cmd = [python, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "--basetemp", str(work / "pytest"),
               *m.tests]
        if m.k:
            cmd += ["-k", m.k]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
        RUNNING.add(proc.pid)
        try:
            out, _ = proc.communicate(timeout=timeout)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            rc = None
        finally:
            RUNNING.discard(proc.pid)
        text = out.decode(errors="replace")
        if rc is None:
            m.outcome = "timeout"  # counts as killed: the suite noticed something (a hang)
        elif rc == 0:
            m.outcome = "survived"
        elif rc == 1:
            m.outcome = "killed"
        elif rc == 5:
            m.outcome = "no tests"  # the subset selected nothing: a broken list entry
        else:
            m.outcome = "error"  # pytest could not run the subset (the mutant broke an import?)
        lines = [ln for ln in text.splitlines() if ln.startswith(("FAILED", "ERROR"))]
        m.detail = lines[0] if lines else text.strip().splitlines()[-1] if text.strip() else ""
    finally:
        m.seconds = time.monotonic() - started
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", "-j", type=int, default=2, help="mutants run in parallel (default 2)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per mutant before it counts as killed")
    ap.add_argument("--only", nargs="+", metavar="ID", help="run only these mutants")
    ap.add_argument("--list", action="store_true", help="list the mutants and check their snippets")
    ap.add_argument("--python", default=sys.executable, help="the interpreter whose pytest runs the subsets")
    ap.add_argument("--min-rate", type=float, default=95.0, help="exit 1 below this kill rate (percent)")
    args = ap.parse_args(argv)

    mutants = load()
    problems = check(mutants, ROOT / "src" / "pktmask")
    if problems:
        print("mutants.toml is out of date with src/:", file=sys.stderr)
        for p in problems:
            print("  " + p, file=sys.stderr)
        return 2
    if args.only:
        unknown = set(args.only) - {m.id for m in mutants}
        if unknown:
            print(f"unknown mutant ids: {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        mutants = [m for m in mutants if m.id in args.only]
    if args.list:
        for m in mutants:
            print(f"{m.id:28} src/pktmask/{m.file}: {m.description}")
        print(f"{len(mutants)} mutants, every snippet found once")
        return 0

    started = time.monotonic()
    done = 0
    lock = threading.Lock()
    scratch = Path(tempfile.mkdtemp(prefix="pktmask-mutants-"))

    def job(m: Mutant) -> None:
        nonlocal done
        run_one(m, args.python, scratch, args.timeout)
        with lock:
            done += 1
            print(f"[{done:2}/{len(mutants)}] {m.outcome:8} {m.id:28} {m.seconds:6.1f}s  {m.detail[:90]}",
                  flush=True)

    print(f"{len(mutants)} mutants, {args.jobs} at a time, pure build, timeout {args.timeout:.0f}s each", flush=True)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    pool = ThreadPoolExecutor(max_workers=args.jobs)
    try:
        # In list order: mutants.toml lists the slow (E2E) subsets first, so the two workers end together.
        list(pool.map(job, mutants))
    except BaseException:
        STOPPING.set()
        for pgid in list(RUNNING):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except OSError:
                pass
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(scratch, ignore_errors=True)
    elapsed = time.monotonic() - started

    killed = [m for m in mutants if m.outcome in ("killed", "timeout")]
    survivors = [m for m in mutants if m.outcome == "survived"]
    broken = [m for m in mutants if m.outcome in ("error", "no tests")]
    rate = 100.0 * len(killed) / len(mutants) if mutants else 100.0
    print()
    print(f"killed {len(killed)}/{len(mutants)} ({rate:.1f}%) in {elapsed / 60:.1f} min; "
          f"{len(survivors)} survived, {len(broken)} could not run")
    for m in survivors:
        print(f"  SURVIVED {m.id}: {m.description} (src/pktmask/{m.file}; tests: {' '.join(m.tests)})")
    for m in broken:
        print(f"  {m.outcome.upper()} {m.id}: {m.detail}")
    return 0 if rate >= args.min_rate and not broken else 1


if __name__ == "__main__":
    sys.exit(main())
