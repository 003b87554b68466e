#!/usr/bin/env python3
"""Run pktmask over a directory of real captures and check the output with tshark as the oracle.

Prints one table row per capture: exit code, packet counts, leaked addresses
(tshark fields and raw bytes), bad checksums (in the input vs the output, fully
captured packets only), unmasked TLS/HTTP data, readable cookies, DNS names,
TLS handshake counts, and whether the private TMPDIR was left empty.

Usage: corpus_check.py CORPUS_DIR [--mode roundtrip|anonymize|mask|default] [extra pktmask options]
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PKTMASK = Path(sys.executable).parent / "pktmask"
ADDR_FIELDS = ["ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "arp.src.proto_ipv4", "arp.dst.proto_ipv4"]
BAD_CSUM = ("ip.checksum.status==0 || tcp.checksum.status==0 || udp.checksum.status==0 || "
            "icmp.checksum.status==0 || icmpv6.checksum.status==0")
CSUM_PREFS = ["-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE"]


def tshark(path: Path, fields: list[str], dfilter: str | None = None, prefs: list[str] | None = None) -> list[str]:
    cmd = ["tshark", "-n", "-r", str(path), "-T", "fields", "-E", "occurrence=a", "-E", "separator=,"]
    for f in fields:
        cmd += ["-e", f]
    if dfilter:
        cmd += ["-Y", dfilter]
    cmd += prefs or []
    res = subprocess.run(cmd, capture_output=True, text=True)
    return [v for line in res.stdout.splitlines() for v in line.split(",") if v]


def _nonzero(value: str) -> bool:
    """True if a tshark field value (hex bytes or text with \\x00 escapes) has a non-zero byte."""
    rest = value.replace("\\x00", "").replace("\\0", "").replace("\x00", "").strip()
    return bool(rest.replace("0", "").replace(":", ""))


def _wire(name: str) -> bytes:
    return b"".join(bytes([len(label)]) + label.encode() for label in name.split(".") if label)


def special(addr: str) -> bool:
    ip = ipaddress.ip_address(addr)
    if ip.version == 4:
        return ip.is_multicast or ip.is_loopback or str(ip) in ("0.0.0.0", "255.255.255.255")
    return ip.is_multicast or ip.is_loopback or ip.is_unspecified


def check(src: Path, mode: str, extra: list[str], work: Path) -> dict:
    tmpdir = work / "tmp"
    tmpdir.mkdir()
    out = work / ("out" + "".join(src.suffixes))
    args = {"roundtrip": ["--no-anonymize", "--no-mask-payloads"],
            "anonymize": ["--no-mask-payloads"], "mask": ["--no-anonymize"], "default": []}[mode]
    res = subprocess.run([str(PKTMASK), "mask", str(src), str(out), *args, *extra],
                         capture_output=True, text=True, env=dict(os.environ, TMPDIR=str(tmpdir)))
    row = {"file": src.name, "exit": res.returncode, "tmp_empty": not os.listdir(tmpdir),
           "err": res.stderr.strip().splitlines()[-1] if res.returncode else ""}
    if res.returncode != 0:
        return row
    row["pk_in"] = len(tshark(src, ["frame.number"], "!(frame.protocols contains \"pcapng\")"))
    row["pk_out"] = len(tshark(out, ["frame.number"]))
    full = "frame.len == frame.cap_len"
    row["bad_in"] = len(tshark(src, ["frame.number"], f"({BAD_CSUM}) && {full}", CSUM_PREFS))
    row["bad_out"] = len(tshark(out, ["frame.number"], f"({BAD_CSUM}) && {full}", CSUM_PREFS))
    data = out.read_bytes()
    if mode == "roundtrip":
        row["identical"] = data == src.read_bytes()
    if mode in ("anonymize", "default"):
        orig = {a for a in tshark(src, ADDR_FIELDS) if not special(a)}
        after = set(tshark(out, ADDR_FIELDS))
        row["addrs"] = len(orig)
        row["leak_fields"] = len(orig & after)
        row["leak_bytes"] = sum(1 for a in orig if ipaddress.ip_address(a).packed in data)
    if mode in ("mask", "default", "roundtrip"):  # roundtrip: the input's baseline, to show the checks bite
        app = tshark(out, ["tls.app_data"])
        row["tls_app_nonzero"] = sum(1 for v in app if _nonzero(v))
        body = tshark(out, ["http.file_data"])
        row["http_body_nonzero"] = sum(1 for v in body if _nonzero(v))
        cookies = tshark(out, ["http.cookie", "http.set_cookie", "http.authorization"])
        row["cookies_readable"] = sum(1 for v in cookies if _nonzero(v))
        names = {n for n in tshark(src, ["dns.qry.name", "dns.resp.name"]) if len(n) > 3 and "." in n}
        # DNS carries names in wire format (length-prefixed labels); dotted text of the same
        # names is legitimately kept in HTTP Host headers and TLS SNI/certificates (policy).
        row["dns_wire_left"] = sum(1 for n in names if _wire(n) in data)
        row["hs_in"] = len(tshark(src, ["tls.handshake.type"]))
        row["hs_out"] = len(tshark(out, ["tls.handshake.type"]))
        if row["hs_out"] != row["hs_in"]:
            # STARTTLS (e.g. MySQL): tshark finds TLS only through the plaintext negotiation,
            # which is masked; tell it the ports carry TLS and count again.
            ports = sorted(set(tshark(src, ["tcp.port"], "tls.handshake")))
            decode = [a for p in ports for a in ("-d", f"tcp.port=={p},tls")]
            row["hs_out"] = f"{row['hs_out']} ({len(tshark(out, ['tls.handshake.type'], None, decode))} decoded as TLS)"
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--mode", default="default", choices=["roundtrip", "anonymize", "mask", "default"])
    opts, extra = ap.parse_known_args()
    opts.extra = [a for a in extra if a != "--"]
    files = sorted(p for p in opts.corpus.rglob("*") if p.is_file() and p.suffix in (".pcap", ".cap", ".pcapng"))
    rows = []
    for src in files:
        work = Path(tempfile.mkdtemp(prefix="corpus-check-"))
        try:
            rows.append(check(src, opts.mode, opts.extra, work))
        finally:
            shutil.rmtree(work)
    keys = []
    for r in rows:
        keys += [k for k in r if k not in keys and k != "err"]
    print("| " + " | ".join(keys) + " | note |")
    print("|" + "---|" * (len(keys) + 1))
    for r in rows:
        print("| " + " | ".join(str(r.get(k, "")) for k in keys) + f" | {r.get('err', '')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
