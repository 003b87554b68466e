#!/usr/bin/env python3
"""Regenerate samples/sample.pcap, the small capture `make demo` sanitizes (needs scapy).

It holds a TLS handshake and application data, an HTTP exchange with a cookie
and a query string, DNS, ICMP echo, ARP, IPv6, a VLAN-tagged frame and one
exact duplicate: a little of everything pktmask hides.
"""

import sys
from pathlib import Path

root = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(root / "tests"))

from captures import mixed_frames, write_pcap  # noqa: E402

if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else root / "samples" / "sample.pcap"
    write_pcap(out, mixed_frames())
    print(f"wrote {out}")
