"""Build hook: compile the per-packet modules with mypyc (see docs/dev/ARCHITECTURE.md, "Compiled hot path").

The modules stay plain Python: the compiled build runs the same source,
about 3 times faster. Set PKTMASK_PURE=1 to install without compiling; a
build whose compiler fails falls back to the pure modules (the extensions
are optional), so a machine without gcc still gets a working pktmask.
"""

import os

from setuptools import setup

# The modules every packet goes through, and what they import for it. They must
# type-check (mypy --check-untyped-defs): mypyc enforces the annotations at run time.
HOT = [
    "src/pktmask/capture/packet.py",
    "src/pktmask/capture/pcap.py",
    "src/pktmask/capture/pcapng.py",
    "src/pktmask/core/pipeline/stage.py",
    "src/pktmask/core/pipeline/loop.py",
    "src/pktmask/stages/dedup.py",
    "src/pktmask/stages/anonymize.py",
    "src/pktmask/stages/mask.py",
    "src/pktmask/anon/addresses.py",
    "src/pktmask/anon/rewriter.py",
    "src/pktmask/anon/names.py",
    "src/pktmask/mask/codec.py",
    "src/pktmask/mask/decisions.py",
    "src/pktmask/mask/flow.py",
    "src/pktmask/mask/tracker.py",
    "src/pktmask/mask/datagrams.py",
    "src/pktmask/proto/checksum.py",
    "src/pktmask/proto/walk_base.py",
    "src/pktmask/proto/walk_transport.py",
    "src/pktmask/proto/walk_ip.py",
    "src/pktmask/proto/walk_wifi.py",
    "src/pktmask/proto/radio.py",
    "src/pktmask/proto/walk_tunnel.py",
    "src/pktmask/proto/walk_link.py",
    "src/pktmask/proto/walk.py",
    "src/pktmask/proto/dns.py",
    "src/pktmask/proto/dns_stream.py",
    "src/pktmask/proto/numbers.py",
    "src/pktmask/proto/layout.py",
    "src/pktmask/proto/http.py",
    "src/pktmask/proto/http_lines.py",
    "src/pktmask/proto/http_hosts.py",
    "src/pktmask/proto/link.py",
    "src/pktmask/proto/sniff.py",
    "src/pktmask/proto/tls.py",
    "src/pktmask/proto/tls_handshake.py",
    "src/pktmask/proto/x509.py",
]


def extensions():
    if os.environ.get("PKTMASK_PURE"):
        return []
    from mypyc.build import mypycify

    exts = mypycify(["--check-untyped-defs", *HOT], group_name="pktmask")
    for ext in exts:
        ext.optional = True  # no compiler: install the pure modules instead of failing
    return exts


setup(ext_modules=extensions())
