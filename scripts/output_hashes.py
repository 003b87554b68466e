#!/usr/bin/env python3
"""Output hashes of `pktmask mask` over the real corpus and the bench workload, per option set.

A refactor that must not change output (the walker, the engine) is checked by running this
before and after and diffing the two listings. A fixed key is used; the key file lives in a
private temporary directory that is removed afterwards.

Usage: output_hashes.py [--corpus DIR] [--workload PCAP] [--sets NAME,...] > hashes.txt
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKTMASK = Path(sys.executable).parent / "pktmask"
CORPUS = ROOT.parent / "shared" / "corpus" / "pcapplusplus"
KEY = bytes(range(32))
SETS = {
    "default": [],
    "dedup": ["--dedup"],
    "anonymize": ["--no-mask-payloads"],
    "mask": ["--no-anonymize"],
    "keep-macs": ["--keep-macs"],
}


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--workload", type=Path, action="append", default=[])
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--extra", default="", help="options added to every run (space separated)")
    args = ap.parse_args()
    inputs = sorted(p for p in args.corpus.iterdir() if p.is_file()) if args.corpus.is_dir() else []
    inputs += args.workload
    extra = args.extra.split()
    with tempfile.TemporaryDirectory() as work:
        key = Path(work) / "key"
        key.write_bytes(KEY)
        os.chmod(key, 0o600)
        out = Path(work) / "out"
        for name in args.sets.split(","):
            for src in inputs:
                if out.exists():
                    out.unlink()
                res = subprocess.run([str(PKTMASK), "mask", str(src), str(out), "--key-file", str(key),
                                      "-q", *SETS[name], *extra], capture_output=True, text=True)
                result = digest(out) if res.returncode == 0 and out.exists() else f"exit {res.returncode}"
                print(f"{name}\t{src.name}\t{result}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
