#!/usr/bin/env python3
"""Measure how often each address map keeps what it should change (the acceptance measurement).

For the hardened map (the default) and the reference Crypto-PAn map
(``--cryptopan-compat``), maps N random IPv4 and N random IPv6 addresses under
K random keys and counts fixed points (image == address) and kept low bits:
the last octet, the last 16 bits and, for IPv6, the last 32 bits. A map whose
output bits are flipped by independent keyed bits keeps the last b bits with
probability 2^-b; that is the "chance" column. See anon/cryptopan.py.

    scripts/cryptopan_stats.py [--count 100000] [--keys 5] [--seed S]

Keys come from os.urandom unless --seed makes the run repeatable; the keys
are never printed.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from pktmask.anon.cryptopan import CryptoPAn, HardenedMap, PrefixMap  # noqa: E402

# (label, number of low bits compared; 0 = the whole address)
CHECKS = {4: [("fixed points", 0), ("last octet kept", 8), ("last 16 bits kept", 16)],
          16: [("fixed points", 0), ("last octet kept", 8), ("last 16 bits kept", 16),
               ("last 32 bits kept", 32)]}


def measure(pan: PrefixMap, addrs: list[bytes]) -> list[int]:
    """Counts of kept bits over ``addrs``, in the order of CHECKS for their family."""
    size = len(addrs[0])
    anonymize = pan.anonymize_v4 if size == 4 else pan.anonymize_v6
    checks = [bits // 8 or size for _label, bits in CHECKS[size]]
    counts = [0] * len(checks)
    for a in addrs:
        b = anonymize(a)
        for i, n in enumerate(checks):
            if a[-n:] == b[-n:]:
                counts[i] += 1
    return counts


def _pct(rate: float) -> str:
    return f"{100 * rate:.4f}%" if rate == 0 or rate >= 1e-6 else f"{100 * rate:.1e}%"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="addresses per family and key")
    parser.add_argument("--keys", type=int, default=5, help="random keys")
    parser.add_argument("--seed", type=int, help="seed addresses and keys (default: random)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    keys = [rng.randbytes(32) if args.seed is not None else os.urandom(32) for _ in range(args.keys)]

    rows = []
    started = time.monotonic()
    for size, family in ((4, "IPv4"), (16, "IPv6")):
        addrs = [rng.randbytes(size) for _ in range(args.count)]
        for cls in (HardenedMap, CryptoPAn):
            t0 = time.monotonic()
            totals = [0] * len(CHECKS[size])
            for key in keys:
                for i, c in enumerate(measure(cls(key), addrs)):
                    totals[i] += c
            per = (time.monotonic() - t0) / (args.count * args.keys) * 1e6
            for (label, bits), count in zip(CHECKS[size], totals, strict=True):
                rows.append((family, cls.name, label, count, bits or 8 * size, per))

    n = args.count * args.keys
    print(f"{args.count} random addresses per family x {args.keys} random keys = {n} per map and family")
    print(f"{'family':6}  {'map':16}  {'measure':18}  {'count':>7}  {'by chance':>9}  {'rate':>9}"
          f"  {'chance':>9}  {'µs/addr':>7}")
    for family, name, label, count, bits, per in rows:
        chance = 2.0**-bits
        print(f"{family:6}  {name:16}  {label:18}  {count:7}  {n * chance:9.3g}  {_pct(count / n):>9}"
              f"  {_pct(chance):>9}  {per:7.1f}")
    print(f"({time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
