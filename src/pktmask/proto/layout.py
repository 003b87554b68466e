"""The common frame shape, recognised in a few byte reads: the fast paths build on it.

Ethernet with at most one 802.1Q tag; IPv4 without options and not
fragmented, or IPv6 without extension headers; TCP with a complete header,
or UDP (not VXLAN, DNS or another tunnel's port). Most frames of most captures have it; the anonymizer,
the masker and the masking pre-pass take their fast branch for it, and
everything else goes through the general walk (``walk.walk``, consumed by ``Rewriter.frame`` and the masker).
"""

from __future__ import annotations

from pktmask.capture.packet import Layout


def _kept_options(raw: bytes, i: int, end: int) -> bool:
    """Whether the TCP options in ``raw[i:end]`` are all kept as they are (docs/policy.md):
    NOP, MSS, window scale, SACK-permitted, SACK, timestamps of their valid lengths, and an
    End of Options followed only by zeros. Anything else is the walker's to decide."""
    while i < end:
        k = raw[i]
        if k == 1:
            i += 1
            continue
        if k == 0:
            i += 1
            while i < end:
                if raw[i]:
                    return False
                i += 1
            return True
        if i + 1 >= end:
            return False
        size = raw[i + 1]
        if not ((k == 8 and size == 10) or (k == 2 and size == 4) or (k == 3 and size == 3)
                or (k == 4 and size == 2) or (k == 5 and size >= 10 and (size - 2) % 8 == 0)):
            return False
        i += size
    return i == end


def fast_layout(data: bytes | bytearray, linktype: int) -> Layout | None:
    """Classify the common frame shape in a few operations, or return None.

    The shape: Ethernet with at most one 802.1Q tag; IPv4 without options,
    not fragmented, or IPv6 without extension headers; TCP with a complete
    header whose options are all kept as they are (NOP, MSS, window scale,
    SACK, timestamps), or UDP (not VXLAN, DNS or a tunnel). Returns (ip offset, l4 offset, protocol,
    end, v6, full, payload offset): ``end`` is where the IP packet ends
    within the capture, ``full`` whether all of it was captured. Everything
    else goes through the general walkers.
    """
    n = len(data)
    if linktype != 1 or n < 54:
        return None
    # Byte by byte on ``bytes``: compiled (mypyc), this costs less than struct calls and
    # their tuples, and the arithmetic is on machine integers.
    raw = data if isinstance(data, bytes) else bytes(data)
    end: int
    l3 = 14
    et = raw[12] << 8 | raw[13]
    if et == 0x8100:
        et = raw[16] << 8 | raw[17]
        l3 = 18
    if et == 0x0800:
        if raw[l3] != 0x45 or raw[l3 + 6] & 0x3F or raw[l3 + 7]:
            return None  # options, or a fragment
        total = raw[l3 + 2] << 8 | raw[l3 + 3]
        proto = raw[l3 + 9]
        l4 = l3 + 20
        stated = l3 + total if total >= 20 else 0
        v6 = False
    elif et == 0x86DD:
        if n < l3 + 40 or raw[l3] >> 4 != 6:
            return None
        plen = raw[l3 + 4] << 8 | raw[l3 + 5]
        proto = raw[l3 + 6]
        l4 = l3 + 40
        stated = l4 + plen if plen else 0
        v6 = True
    else:
        return None
    # Where the IP header says the packet ends (0: it does not say), against the capture.
    if not stated:
        full, end = True, n
    elif stated <= n:
        full, end = True, stated
    else:
        full, end = False, n
    if proto == 6:
        doff = (raw[l4 + 12] >> 4) * 4 if l4 + 13 <= end else 0
        ps = l4 + (doff if doff > 20 else 20)
        if ps > end:
            return None
        if doff > 20 and not _kept_options(raw, l4 + 20, ps):
            return None  # the walker keeps or zeroes each option
    elif proto == 17:
        ps = l4 + 8
        if ps > end:
            return None
        sport = raw[l4] << 8 | raw[l4 + 1]
        dport = raw[l4 + 2] << 8 | raw[l4 + 3]
        # VXLAN, DNS, mDNS, LLMNR (proto/dns.py PORTS), GTP-U, Teredo, AYIYA, Geneve
        # (walk_tunnel.py): the general walker follows them.
        # Machine comparisons, compiled: cheaper than a set lookup.
        if (sport == 4789 or dport == 4789 or sport == 53 or dport == 53 or sport == 5353 or dport == 5353
                or sport == 5355 or dport == 5355 or sport == 2152 or dport == 2152 or sport == 3544
                or dport == 3544 or sport == 5072 or dport == 5072 or dport == 6081):
            return None
    else:
        return None
    return (l3, l4, proto, end, v6, full, ps)
