"""What a DNS message becomes when it travels over UDP in one piece: the reference the stream
and fragment tests compare their output with."""

from __future__ import annotations

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from pktmask.anon.rewriter import Rewriter
from pktmask.proto.walk import walk


def udp_image(msg: bytes, maps) -> bytes:
    """``msg`` as DNS over UDP in one datagram leaves pktmask: anonymized with ``maps``
    (names, addresses; (None, None) without anonymization), then its zero ranges zeroed."""
    frame = bytearray(bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5000, dport=53) / msg))
    names, addrs = maps
    if names is not None:
        Rewriter(addrs, None, names).apply(frame, walk(frame, 1))
    w = walk(frame, 1)
    for a, b in w.zero:
        frame[a:b] = bytes(b - a)
    for at, keep in w.trim:
        frame[at] &= keep
    return bytes(frame[42:])
