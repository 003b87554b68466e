"""Fragmented DNS responses for the audit's tests: an ORIGINAL and an IDEAL sanitized copy.

The IDEAL copy applies docs/policy.md (DNS, fragmented datagrams) by hand: every label that is
not public suffix or '_' replaced by a same-length different one, A/AAAA answers and the IP
addresses and MACs changed, TXT data zeroed (its RDLENGTH kept), everything else as it was. Both
copies are cut into fragments at the same offsets (``cuts``, multiples of 8 of the UDP datagram),
IPv4 or IPv6, so each IDEAL frame lines up with its ORIGINAL frame.
"""

from __future__ import annotations

from typing import NamedTuple

from captures import shift

CLIENT, RESOLVER = "192.0.2.10", "203.0.113.53"
CLIENT6, RESOLVER6 = "2001:db8:99::10", "2001:db8:99::53"
PSEUDO = {CLIENT: "10.20.30.40", RESOLVER: "10.20.30.53", CLIENT6: "fd00:1::10", RESOLVER6: "fd00:1::53"}
C_MAC, S_MAC = "02:11:22:33:44:55", "02:66:77:88:99:aa"
PSEUDO_MAC = {C_MAC: "02:aa:bb:cc:dd:01", S_MAC: "02:aa:bb:cc:dd:02"}
TXT = b"v=secret-token-0123456789-abcdefghijklmnopqrstuvwxyz"
SPLIT = "mailserver-primary"  # a label long enough to hold a fragment boundary (``split_cuts``)
A_ANSWERS = [f"198.51.100.{i}" for i in range(1, 7)]
AAAA_ANSWERS = [f"2001:db8:77::{i}" for i in range(1, 4)]


def message(ideal: bool) -> bytes:
    """A compressed DNS response: names in every record, A, AAAA, TXT, a long label."""
    from scapy.all import DNS, DNSQR, DNSRR

    def n(private: str) -> str:
        return (".".join(shift(x) for x in private.split(".")) if ideal else private) + ".com"

    answers = [DNSRR(rrname=n("www.acme-corp"), type="CNAME", rdata=n("edge.acme-corp"))]
    answers += [DNSRR(rrname=n(f"host{i}.acme-corp"), type="A", rdata=f"10.77.0.{i}" if ideal else a)
                for i, a in enumerate(A_ANSWERS, 1)]
    answers += [DNSRR(rrname=n(f"edge{i}.acme-corp"), type="AAAA", rdata=f"fd00:77::{i}" if ideal else a)
                for i, a in enumerate(AAAA_ANSWERS, 1)]
    answers += [DNSRR(rrname=n("www.acme-corp"), type="TXT", rdata=[TXT]),
                DNSRR(rrname=n(f"{SPLIT}.acme-corp"), type="A", rdata="10.77.0.99" if ideal else "198.51.100.99")]
    msg = bytes(DNS(id=0x4242, qr=1, rd=1, ra=1, qd=DNSQR(qname=n("www.acme-corp")), an=answers).compress())
    if ideal:  # TXT data zeroed whole (its string's length byte too)
        msg = msg.replace(bytes([len(TXT)]) + TXT, bytes(len(TXT) + 1))
    return msg


def datagram(ideal: bool, v6: bool, msg: bytes | None = None) -> bytes:
    """The UDP datagram (header first, checksum over the addresses of its copy)."""
    from scapy.all import IP, UDP, IPv6, Raw

    src, dst = (RESOLVER6, CLIENT6) if v6 else (RESOLVER, CLIENT)
    if ideal:
        src, dst = PSEUDO[src], PSEUDO[dst]
    payload = message(ideal) if msg is None else msg
    ip = IPv6(src=src, dst=dst) if v6 else IP(src=src, dst=dst)
    return bytes(ip / UDP(sport=53, dport=33000) / Raw(payload))[40 if v6 else 20:]


def split_cuts(size: int = 96) -> list[int]:
    """Fragment offsets every ``size`` bytes, plus one inside the SPLIT label."""
    dgram = datagram(False, False)
    at = dgram.index(SPLIT.encode())
    inside = (at + 8) // 8 * 8
    return sorted(set(range(0, len(dgram), size)) | {inside})


class Fragmented(NamedTuple):
    frames: list[bytes]
    cuts: list[int]  # each frame's offset in the datagram
    starts: list[int]  # where each frame's fragment data starts in the frame


def fragments(ideal: bool, v6: bool, cuts: list[int], order: list[int] | None = None,
              dgram: bytes | None = None, ident: int = 0x1234) -> Fragmented:
    """The datagram cut at ``cuts`` into Ethernet frames, in ``order`` (indexes into ``cuts``)."""
    from scapy.all import IP, Ether, IPv6, IPv6ExtHdrFragment, Raw

    data = datagram(ideal, v6) if dgram is None else dgram
    src, dst = (RESOLVER6, CLIENT6) if v6 else (RESOLVER, CLIENT)
    smac, dmac = S_MAC, C_MAC
    if ideal:
        src, dst, smac, dmac = PSEUDO[src], PSEUDO[dst], PSEUDO_MAC[smac], PSEUDO_MAC[dmac]
    ends = cuts[1:] + [len(data)]
    frames, offsets, starts = [], [], []
    for i in order if order is not None else range(len(cuts)):
        a, b = cuts[i], ends[i]
        more = b < len(data)
        if v6:
            ip = IPv6(src=src, dst=dst) / IPv6ExtHdrFragment(nh=17, offset=a // 8, m=int(more), id=ident)
            start = 14 + 48
        else:
            ip = IP(src=src, dst=dst, id=ident, proto=17, flags="MF" if more else 0, frag=a // 8)
            start = 14 + 20
        frames.append(bytes(Ether(src=smac, dst=dmac) / ip / Raw(data[a:b])))
        offsets.append(a)
        starts.append(start)
    return Fragmented(frames, offsets, starts)


def locate(f: Fragmented, dgram_offset: int) -> tuple[int, int]:
    """The frame index and frame offset holding byte ``dgram_offset`` of the datagram."""
    best = max((a, i) for i, a in enumerate(f.cuts) if a <= dgram_offset)
    i = best[1]
    return i, f.starts[i] + dgram_offset - f.cuts[i]
