#!/usr/bin/env python3
"""Count the original host names that survive `pktmask mask` anywhere in its output.

For every capture under CORPUS_DIR (recursively): tshark lists the host names of the ORIGINAL
(DNS question/answer/CNAME/PTR/NS/MX/SRV/SOA names, HTTP Host, TLS SNI, certificate dNSName and
CN), pktmask masks it with a random key into a private temporary directory, and each name worth
looking for (docs/policy.md "Names": a name is kept only as its public suffix, so only names
with at least one label before their suffix, and not all-digit reverse octets, count) is
searched in the output bytes, case-insensitively, both dotted and in DNS wire form. Prints one
row per capture (names found in ORIGINAL, names left in the output, examples) and the totals.

Usage: names_left.py CORPUS_DIR [extra pktmask mask options]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from publicsuffixlist import PublicSuffixList

PKTMASK = Path(sys.executable).parent / "pktmask"
FIELDS = ["dns.qry.name", "dns.resp.name", "dns.cname", "dns.ptr.domain_name", "dns.ns", "dns.mx.mail_exchange",
          "dns.srv.target", "dns.soa.mname", "http.host", "tls.handshake.extensions_server_name",
          "x509ce.dNSName", "x509sat.printableString", "x509sat.uTF8String"]
SPECIAL = {"local", "localhost", "invalid", "test", "example", "arpa"}
_PSL = PublicSuffixList(accept_unknown=False)


def names_of(path: Path) -> set[str]:
    cmd = ["tshark", "-n", "-r", str(path), "-T", "fields", "-E", "occurrence=a", "-E", "separator=,"]
    for f in FIELDS:
        cmd += ["-e", f]
    res = subprocess.run(cmd, capture_output=True, text=True)
    out = set()
    for line in res.stdout.splitlines():
        for v in line.split(","):
            v = v.strip().lower().rstrip(".")
            host = v.rsplit(":", 1)[0] if v.count(":") == 1 else v
            if worth(host):
                out.add(host)
    return out


def worth(name: str) -> bool:
    """A name with a label before its public (or special-use) suffix that is not only digits."""
    if not name or " " in name or "." not in name:
        return False  # a single label ("ubuntu") also reads as kept text (a User-Agent)
    labels = name.split(".")
    if not all(labels):
        return False
    suffix = _PSL.publicsuffix(name, accept_unknown=False)
    kept = 0 if suffix is None else suffix.count(".") + 1
    if labels[-1] in SPECIAL:
        kept = max(kept, 1)
    if name.endswith("in-addr.arpa") or name.endswith("ip6.arpa"):
        kept = max(kept, 2)
    head = [x for x in labels[: len(labels) - kept] if not x.startswith("_")]  # service labels kept
    if not head or all(x.isdigit() or len(x) == 1 for x in head):
        return False
    return len("".join(head)) >= 4


def wire(name: str) -> bytes:
    return b"".join(bytes([len(x)]) + x.encode() for x in name.split("."))


def main() -> int:
    corpus = Path(sys.argv[1])
    extra = sys.argv[2:]
    total_names = total_left = 0
    with tempfile.TemporaryDirectory() as tmp:
        key = Path(tmp) / "k.key"
        key.write_bytes(os.urandom(32))
        for src in sorted(p for p in corpus.rglob("*") if p.is_file()):
            names = names_of(src)
            if not names:
                continue
            out = Path(tmp) / "out"
            res = subprocess.run([str(PKTMASK), "mask", str(src), str(out), "--key-file", str(key), "-q", *extra],
                                 capture_output=True, text=True, env=dict(os.environ, TMPDIR=tmp))
            if res.returncode:
                print(f"{src.name}: pktmask failed: {res.stderr.strip()[:200]}")
                continue
            data = out.read_bytes().lower()
            out.unlink()
            left = sorted(n for n in names if n.encode() in data or wire(n) in data)
            total_names += len(names)
            total_left += len(left)
            print(f"{src.relative_to(corpus)}: {len(names)} names, {len(left)} left {left[:5]}")
        shutil.rmtree(Path(tmp) / "x", ignore_errors=True)
    print(f"total: {total_names} names in ORIGINAL, {total_left} left in the outputs")
    return 1 if total_left else 0


if __name__ == "__main__":
    sys.exit(main())
