#!/usr/bin/env python3
"""`make bench`: pktmask throughput and memory beside tcprewrite and editcap. Prints figures only.

The workload comes from ../shared/bench/gen_corpus.py (seeded, so always the same bytes) and
is generated once into the cache directory, outside the repo. Commands run alternating
A B C ... A B C over several rounds; medians are reported, never asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKTMASK = Path(sys.executable).parent / "pktmask"
GEN = ROOT.parent / "shared" / "bench" / "gen_corpus.py"
KEY = bytes(range(32))


def workload(cache: Path, packets: int, seed: int = 42) -> Path:
    """Generate (once) the benchmark capture with ``packets`` packets; returns its path."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"workload-{packets}-{seed}.pcap"
    if not path.exists():
        if not GEN.exists():
            sys.exit(f"bench: generator not found at {GEN}")
        tmp = path.with_suffix(".tmp")
        subprocess.run([sys.executable, str(GEN), "--packets", str(packets), "--out", str(tmp),
                        "--seed", str(seed)], check=True, stdout=subprocess.DEVNULL)
        tmp.rename(path)
    return path


def timed(cmd: list[str], env=None) -> tuple[float, int, float]:
    """Run ``cmd``; returns (wall seconds, peak RSS in KiB of that process, CPU seconds).

    CPU is user + system time of the process and the children it waited for (pktmask's
    pre-pass child included): efficiency per CPU second, beside the wall clock."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _pid, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed:\n{err}")
    return elapsed, usage.ru_maxrss, usage.ru_utime + usage.ru_stime


def alternate(cases: dict[str, list[str]], rounds: int, out: Path) -> dict[str, tuple[float, int, float]]:
    """Run every case once per round, in turn; returns name -> (median seconds, max RSS KiB, median CPU s)."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    cpus: dict[str, list[float]] = {name: [] for name in cases}
    rss: dict[str, int] = dict.fromkeys(cases, 0)
    for _ in range(rounds):
        for name, cmd in cases.items():
            if out.exists():
                out.unlink()
            t, m, c = timed(cmd)
            times[name].append(t)
            cpus[name].append(c)
            rss[name] = max(rss[name], m)
    return {name: (statistics.median(v), rss[name], statistics.median(cpus[name])) for name, v in times.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "pktmask-bench")
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--skip-batch", action="store_true")
    opts = ap.parse_args()

    big = workload(opts.cache, opts.packets)
    small = workload(opts.cache, opts.packets // 10)
    size_mb = big.stat().st_size / 1e6
    work = Path(tempfile.mkdtemp(prefix="pktmask-bench-"))
    try:
        key = work / "key"
        key.write_bytes(KEY)
        out = work / "out.pcap"
        pm = [str(PKTMASK), "mask", str(big), str(out), "-q", "--key-file", str(key)]
        cases = {
            "pktmask full (--dedup, anonymize, mask)": pm + ["--dedup"],
            "pktmask dedup only": pm + ["--dedup", "--no-anonymize", "--no-mask-payloads"],
            "pktmask anonymize only": pm + ["--no-mask-payloads"],
            "pktmask mask only": pm + ["--no-anonymize"],
            "pktmask copy (all stages off)": pm + ["--no-anonymize", "--no-mask-payloads"],
        }
        if shutil.which("tcprewrite"):
            cases["tcprewrite --seed=42"] = ["tcprewrite", "--seed=42", "-i", str(big), "-o", str(out)]
        if shutil.which("editcap"):
            cases["editcap -d"] = ["editcap", "-d", str(big), str(out)]
        version = subprocess.run([str(PKTMASK), "--version"], capture_output=True, text=True).stdout.strip()
        print(f"workload: {big} ({opts.packets} packets, {size_mb:.0f} MB); {opts.rounds} rounds, "
              f"medians; machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; {version}")
        results = alternate(cases, opts.rounds, out)
        ref = {name: results[name][0] for name in ("tcprewrite --seed=42", "editcap -d") if name in results}
        cpu_ref = {name: results[name][2] for name in ref}
        print(f"{'command':42s} {'seconds':>8s} {'CPU s':>7s} {'packets/s':>11s} {'MB/s':>7s} {'peak RSS':>9s}"
              + "".join(f" {'x ' + n.split()[0]:>12s}" for n in ref)
              + "".join(f" {'CPU x ' + n.split()[0]:>16s}" for n in cpu_ref))
        for name, (sec, rss, cpu) in results.items():
            line = (f"{name:42s} {sec:8.2f} {cpu:7.2f} {opts.packets / sec:11,.0f} {size_mb / sec:7.1f} "
                    f"{rss / 1024:7.0f}MB")
            for r in ref.values():
                line += f" {r / sec:12.2f}"
            for r in cpu_ref.values():
                line += f" {r / cpu:16.2f}"
            print(line)

        small_out = work / "small.pcap"
        _t_small, rss_small, _cpu = timed([str(PKTMASK), "mask", str(small), str(small_out), "-q", "--dedup",
                                    "--key-file", str(key)])
        full_rss = results["pktmask full (--dedup, anonymize, mask)"][1]
        print(f"memory: full pipeline peak RSS {full_rss / 1024:.0f} MB on {opts.packets} packets vs "
              f"{rss_small / 1024:.0f} MB on {opts.packets // 10} ({full_rss / rss_small:.2f}x)")

        starts = []
        for _ in range(9):  # one start is too noisy on a shared VM: median of nine
            t0 = time.perf_counter()
            timed([str(PKTMASK), "--version"])
            starts.append(time.perf_counter() - t0)
        print(f"startup: pktmask --version {1000 * statistics.median(starts):.0f} ms (median of 9)")

        if not opts.skip_batch:
            batch = work / "batch"
            batch.mkdir()
            for i in range(8):
                os.link(small, batch / f"f{i}.pcap")
            # --jobs 1 already runs each file's masking pre-pass beside its final pass (two
            # processes); "serial" keeps everything in one process to show the workers' scaling.
            variants = {"--jobs 1": (1, {}), "--jobs 2": (2, {}),
                        "--jobs 1, serial": (1, {"PKTMASK_SERIAL": "1"})}
            figures: dict[str, list[float]] = {}
            for _ in range(2):
                for name, (jobs, extra) in variants.items():
                    dest = work / "batch-out"
                    shutil.rmtree(dest, ignore_errors=True)
                    dest.mkdir()
                    t, _rss, _cpu = timed([str(PKTMASK), "mask", str(batch), str(dest), "-q", "--jobs", str(jobs),
                                  "--key-file", str(key)], env={**os.environ, **extra})
                    figures.setdefault(name, []).append(t)
            med = {name: statistics.median(v) for name, v in figures.items()}
            print(f"batch of 8 x {opts.packets // 10} packets: "
                  + ", ".join(f"{name} {sec:.2f}s" for name, sec in med.items())
                  + f"; --jobs 2 is {med['--jobs 1'] / med['--jobs 2']:.2f}x --jobs 1 and "
                  f"{med['--jobs 1, serial'] / med['--jobs 2']:.2f}x the serial run")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
