"""Tests for the encapsulation walker (pktmask.proto.walk.walk) on scapy-built frames, as the masker sees it.

For every layer: which bytes are zeroed (``zero``), which TCP payload span
goes to the stream tracker (``tcp``), which checksums the masker fixes
afterwards (``jobs`` with ``mask``), and what a fragmented datagram's last
fragment reports. The anonymizer's side (``fields``) is tested through
``Rewriter`` in test_rewriter.py.
"""

from __future__ import annotations

import random
import struct

import pytest
from scapy.all import (
    ARP,
    GRE,
    ICMP,
    IP,
    TCP,
    UDP,
    Dot1AD,
    Dot1Q,
    Ether,
    ICMPv6DestUnreach,
    ICMPv6EchoRequest,
    ICMPv6ND_NS,
    ICMPv6NDOptSrcLLAddr,
    IPOption,
    IPOption_Router_Alert,
    IPOption_RR,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    Raw,
    fragment,
    fragment6,
)
from scapy.contrib.mpls import MPLS
from scapy.layers.l2 import CookedLinux
from scapy.layers.ppp import PPP, PPPoE
from scapy.layers.vxlan import VXLAN

from captures import tcp_header
from pktmask.proto.walk import IP4_HEADER, L4_PLAIN, L4_PSEUDO, L4_QUOTED, MAX_DEPTH, walk

ETH = 1
E = Ether(src="02:11:22:33:44:55", dst="02:66:77:88:99:aa")
A4, B4 = "192.0.2.10", "198.51.100.20"
A6, B6 = "2001:db8::10", "2001:db8:1::20"
PAYLOAD = b"SECRET-PAYLOAD-0123456789"


def addr4(a: str) -> bytes:
    return bytes(int(x) for x in a.split("."))


def dissect(buf, linktype: int):
    """The walk with the masker's jobs as tuples: (kind, start, end, at, pseudo sum, zero_ok, frag)."""
    w = walk(buf, linktype)
    w.jobs = [(j.kind, j.start, j.end, j.at, j.pseudo_sum(buf) if j.pseudo else 0, j.zero_ok, j.frag)
              for j in w.jobs if j.mask]
    return w


def frame(pkt) -> bytes:
    return bytes(pkt)


def jobs_by_kind(d) -> list[tuple[int, int, int, int]]:
    """(kind, start, end, checksum offset) of each job, outer to inner."""
    return [(j[0], j[1], j[2], j[3]) for j in d.jobs]


def zeroed_bytes(d, n: int) -> set[int]:
    out: set[int] = set()
    for a, b in d.zero:
        out.update(range(a, min(b, n)))
    return out


# ---------------------------------------------------------------- plain Ethernet / IPv4 / IPv6


def test_ipv4_tcp_segment_span_and_jobs():
    buf = frame(E / IP(src=A4, dst=B4) / TCP(sport=40000, dport=443, seq=0x01020304, flags="PA") / Raw(PAYLOAD))
    d = dissect(buf, ETH)
    assert d.zero == []  # the payload's fate is the tracker's
    seg = d.tcp
    assert (seg.start, seg.end) == (54, len(buf))
    assert seg.key == addr4(A4) + addr4(B4) + struct.pack("!HH", 40000, 443)
    assert seg.seq == 0x01020304 and seg.flags == 0x18
    assert jobs_by_kind(d) == [(IP4_HEADER, 14, 34, 24), (L4_PSEUDO, 34, len(buf), 50)]
    assert d.last_fragment is None


def test_tcp_options_are_header():
    buf = frame(E / IP(src=A4, dst=B4) / TCP(options=[("MSS", 1460), ("Timestamp", (1, 2)), ("NOP", None)])
                / Raw(PAYLOAD))
    d = dissect(buf, ETH)
    assert d.tcp.start == len(buf) - len(PAYLOAD) and d.zero == []


def test_ipv6_tcp_key_is_long():
    buf = frame(E / IPv6(src=A6, dst=B6) / TCP(sport=1, dport=2) / Raw(PAYLOAD))
    d = dissect(buf, ETH)
    assert len(d.tcp.key) == 36 and d.tcp.start == 14 + 40 + 20
    assert jobs_by_kind(d) == [(L4_PSEUDO, 54, len(buf), 54 + 16)]


def test_udp_payload_zeroed_and_checksum_job():
    buf = frame(E / IP(src=A4, dst=B4) / UDP(sport=5353, dport=53) / Raw(PAYLOAD))
    d = dissect(buf, ETH)
    assert d.zero == [(42, len(buf))] and d.tcp is None
    kinds = [(j[0], j[3], j[5]) for j in d.jobs]
    assert kinds == [(IP4_HEADER, 24, False), (L4_PSEUDO, 40, True)]  # UDP/IPv4 zero checksum = none


def test_udp_over_ipv6_zero_checksum_not_optional():
    d = dissect(frame(E / IPv6(src=A6, dst=B6) / UDP() / Raw(PAYLOAD)), ETH)
    assert d.zero == [(62, 62 + len(PAYLOAD))]
    assert [j[5] for j in d.jobs] == [False]


def test_ethernet_padding_zeroed():
    inner = frame(E / IP(src=A4, dst=B4) / TCP(flags="A"))
    buf = inner + b"\xAA" * 6
    d = dissect(buf, ETH)
    assert d.zero == [(54, 60)]
    assert (d.tcp.start, d.tcp.end) == (54, 54)


@pytest.mark.parametrize("pkt, first", [
    (IP(src=A4, dst=B4) / ICMP(type=8) / Raw(PAYLOAD), 42),
    (IP(src=A4, dst=B4, proto=253) / Raw(PAYLOAD), 34),
    (IP(src=A4, dst=B4, proto=132) / Raw(PAYLOAD), 34),  # SCTP: not understood either
    (IPv6(src=A6, dst=B6) / ICMPv6EchoRequest(data=PAYLOAD), 62),
    (IPv6(src=A6, dst=B6, nh=253) / Raw(PAYLOAD), 54),
], ids=["icmp-echo", "proto-253", "sctp", "icmpv6-echo", "ipv6-proto-253"])
def test_not_understood_payload_zeroed(pkt, first):
    buf = frame(E / pkt)
    d = dissect(buf, ETH)
    assert d.zero == [(first, len(buf))]


def test_ip_options_with_addresses_kept_others_zeroed():
    """Record route is header (the rewriter maps its addresses); an unknown option's data is zeroed."""
    unknown = IPOption(copy_flag=0, optclass=0, option=30, length=6, value=b"SECR")
    buf = frame(E / IP(src=A4, dst=B4, options=[IPOption_Router_Alert(), IPOption_RR(routers=["10.9.8.7"]),
                                               unknown]) / TCP() / Raw(PAYLOAD))
    d = dissect(buf, ETH)
    zeroed = zeroed_bytes(d, len(buf))
    rr = buf.index(addr4("10.9.8.7"))
    assert not zeroed & set(range(14, rr + 4))  # fixed header, router alert, record route
    secret = buf.index(b"SECR")
    assert set(range(secret, secret + 4)) <= zeroed
    assert d.tcp is not None


# ---------------------------------------------------------------- encapsulations


def test_vlan_and_qinq_shift_offsets():
    for tags, shift in (([Dot1Q(vlan=5)], 4), ([Dot1AD(vlan=6), Dot1Q(vlan=7)], 8)):
        pkt = E
        for t in tags:
            pkt = pkt / t
        buf = frame(pkt / IP(src=A4, dst=B4) / TCP() / Raw(PAYLOAD))
        d = dissect(buf, ETH)
        assert d.tcp.start == 54 + shift and d.zero == []
        assert jobs_by_kind(d)[0] == (IP4_HEADER, 14 + shift, 34 + shift, 24 + shift)


def test_gre_inner_tcp():
    buf = frame(E / IP(src=A4, dst=B4) / GRE() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=7, dport=8)
                / Raw(PAYLOAD))
    d = dissect(buf, ETH)
    assert d.tcp.key == addr4("10.0.0.1") + addr4("10.0.0.2") + struct.pack("!HH", 7, 8)
    assert d.tcp.start == 14 + 20 + 4 + 20 + 20
    assert [j[0] for j in d.jobs] == [IP4_HEADER, IP4_HEADER, L4_PSEUDO]


def test_gre_with_checksum_gets_a_job():
    buf = frame(E / IP(src=A4, dst=B4) / GRE(chksum_present=1) / IP() / UDP() / Raw(PAYLOAD))
    d = dissect(buf, ETH)
    assert (L4_PLAIN, 34, len(buf), 38) in jobs_by_kind(d)
    assert d.zero == [(len(buf) - len(PAYLOAD), len(buf))]


def test_gre_transparent_ethernet_bridging():
    buf = frame(E / IP() / GRE(proto=0x6558) / Ether() / IP() / TCP() / Raw(PAYLOAD))
    assert dissect(buf, ETH).tcp.start == len(buf) - len(PAYLOAD)


def test_vxlan_inner_frame():
    buf = frame(E / IP(src=A4, dst=B4) / UDP(sport=50000, dport=4789) / VXLAN(vni=42)
                / Ether() / IP(src="10.1.1.1", dst="10.2.2.2") / TCP(sport=1, dport=443) / Raw(PAYLOAD))
    d = dissect(buf, ETH)
    assert d.tcp.key[:8] == addr4("10.1.1.1") + addr4("10.2.2.2")
    assert d.tcp.start == len(buf) - len(PAYLOAD) and d.zero == []
    assert [j[0] for j in d.jobs] == [IP4_HEADER, L4_PSEUDO, IP4_HEADER, L4_PSEUDO]


def test_udp_4789_without_vxlan_flag_is_plain_udp():
    buf = frame(E / IP() / UDP(sport=50000, dport=4789) / Raw(b"\x00" * 8 + PAYLOAD))
    assert dissect(buf, ETH).zero == [(42, len(buf))]


def test_mpls_and_pppoe():
    buf = frame(E / MPLS(label=16, s=1) / IP(src=A4, dst=B4) / TCP() / Raw(PAYLOAD))
    assert dissect(buf, ETH).tcp.start == 14 + 4 + 40
    buf = frame(E / PPPoE(sessionid=1) / PPP(proto=0x0021) / IP(src=A4, dst=B4) / UDP() / Raw(PAYLOAD))
    assert dissect(buf, ETH).zero == [(len(buf) - len(PAYLOAD), len(buf))]


def test_ip_in_ip_and_ipv6_in_ipv4():
    buf = frame(E / IP(src=A4, dst=B4) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP() / Raw(PAYLOAD))
    assert dissect(buf, ETH).tcp.start == 14 + 20 + 20 + 20
    buf = frame(E / IP(src=A4, dst=B4) / IPv6(src=A6, dst=B6) / UDP() / Raw(PAYLOAD))
    assert dissect(buf, ETH).zero == [(14 + 20 + 40 + 8, len(buf))]


# ---------------------------------------------------------------- fragments


def test_ipv4_fragments():
    """A UDP datagram's fragments: their payload is left to the masker (``fragment``: the datagram
    key, where this fragment's bytes of the datagram start and end, their offset, more follow)."""
    dgram = IP(src=A4, dst=B4, id=77) / UDP(sport=1, dport=2) / Raw(PAYLOAD * 100)
    frags = [frame(E / f) for f in fragment(dgram, fragsize=800)]
    first = dissect(frags[0], ETH)
    assert first.zero == [] and first.last_fragment is None
    job = first.jobs[-1]
    assert job[0] == L4_PSEUDO and job[2] == len(frags[0]) and job[6] is not None  # this fragment only
    assert first.fragment == (job[6], 34, len(frags[0]), 0, True)  # from the UDP header on
    offset = len(frags[0]) - 34
    for f in frags[1:-1]:
        d = dissect(f, ETH)
        assert d.zero == [] and d.last_fragment is None
        assert d.fragment == (job[6], 34, len(f), offset, True)
        offset += len(f) - 34
        assert [j[0] for j in d.jobs] == [IP4_HEADER]
    last = dissect(frags[-1], ETH)
    assert last.zero == [] and last.fragment == (job[6], 34, len(frags[-1]), offset, False)
    key, length = last.last_fragment
    assert key == job[6] and length == 8 + len(PAYLOAD) * 100


def test_fragments_of_other_protocols_and_quoted_ones_are_zeroed_by_the_walk():
    """Only UDP fragments outside ICMP errors are left to the masker's FRAGMENT records."""
    for dgram in (IP(src=A4, dst=B4, id=78) / ICMP() / Raw(PAYLOAD * 100),
                  IP(src=A4, dst=B4, id=79, proto=136) / Raw(PAYLOAD * 100)):
        for f in fragment(dgram, fragsize=800):
            buf = frame(E / f)
            d = dissect(buf, ETH)
            assert d.fragment is None and d.zero and d.zero[-1][1] == len(buf)
    inner = fragment(IP(src=B4, dst=A4, id=80) / UDP(sport=53, dport=2) / Raw(PAYLOAD * 100), fragsize=800)
    for f in inner:
        buf = frame(E / IP(src=A4, dst=B4) / ICMP(type=3, code=4) / f)
        d = dissect(buf, ETH)
        assert d.fragment is None and d.zero[-1][1] == len(buf)


def test_ipv6_extension_header_after_the_fragment_header_is_no_udp_fragment():
    dgram = IPv6(src=A6, dst=B6) / IPv6ExtHdrFragment(id=10) / IPv6ExtHdrDestOpt() / UDP() / Raw(PAYLOAD * 100)
    for f in fragment6(dgram, 1280):
        buf = frame(E / f)
        d = dissect(buf, ETH)
        assert d.fragment is None and d.zero[-1][1] == len(buf)


def test_ipv4_first_fragment_of_tcp_is_not_a_segment():
    frags = fragment(IP(src=A4, dst=B4) / TCP() / Raw(PAYLOAD * 100), fragsize=800)
    buf = frame(E / frags[0])
    d = dissect(buf, ETH)
    assert d.tcp is None and d.zero == [(54, len(buf))]


def test_ipv6_fragments():
    dgram = IPv6(src=A6, dst=B6) / IPv6ExtHdrFragment(id=9) / UDP() / Raw(PAYLOAD * 100)
    frags = [frame(E / f) for f in fragment6(dgram, 1280)]
    first = dissect(frags[0], ETH)
    assert first.zero == [] and first.fragment == (first.jobs[-1][6], 14 + 48, len(frags[0]), 0, True)
    offset = len(frags[0]) - 14 - 48
    for f in frags[1:]:
        d = dissect(f, ETH)
        assert d.zero == [] and d.fragment == (first.jobs[-1][6], 14 + 48, len(f), offset, f is not frags[-1])
        offset += len(f) - 14 - 48
    key, length = dissect(frags[-1], ETH).last_fragment
    assert key == first.jobs[-1][6] and length == 8 + len(PAYLOAD) * 100


def test_ipv6_extension_headers_walked():
    buf = frame(E / IPv6(src=A6, dst=B6) / IPv6ExtHdrHopByHop() / TCP() / Raw(PAYLOAD))
    assert dissect(buf, ETH).tcp.start == 14 + 40 + 8 + 20


# ---------------------------------------------------------------- ICMP errors, ND, ARP, other EtherTypes


def test_icmp_error_quotes_header_zeroes_quoted_payload():
    quoted = frame(IP(src=B4, dst=A4) / UDP(sport=5, dport=6) / Raw(PAYLOAD))
    buf = frame(E / IP(src=A4, dst=B4) / ICMP(type=3, code=3) / Raw(quoted))
    d = dissect(buf, ETH)
    assert d.zero == [(38, 42), (14 + 20 + 8 + 28, len(buf))]  # the unused word, the quoted payload
    # The outer IP header and ICMP message get checksum jobs, the quoted IP header too
    # (its options may be zeroed); the quoted UDP header an incremental one (its payload
    # is zeroed, its checksum must follow).
    assert jobs_by_kind(d) == [(IP4_HEADER, 14, 34, 24), (L4_PLAIN, 34, len(buf), 36),
                               (IP4_HEADER, 42, 62, 52), (L4_QUOTED, 62, len(buf), 68)]
    assert d.tcp is None


def test_icmp_error_quoting_tcp_is_no_segment():
    quoted = frame(IP(src=B4, dst=A4) / TCP(sport=443, dport=40000) / Raw(PAYLOAD))
    buf = frame(E / IP(src=A4, dst=B4) / ICMP(type=11) / Raw(quoted))
    d = dissect(buf, ETH)
    assert d.tcp is None and d.zero == [(38, 42), (14 + 20 + 8 + 40, len(buf))]


def test_icmpv6_error_and_nd_options():
    quoted = frame(IPv6(src=B6, dst=A6) / UDP() / Raw(PAYLOAD))
    buf = frame(E / IPv6(src=A6, dst=B6) / ICMPv6DestUnreach() / Raw(quoted))
    assert dissect(buf, ETH).zero == [(58, 62), (14 + 40 + 8 + 48, len(buf))]
    buf = frame(E / IPv6(src=A6, dst=B6) / ICMPv6ND_NS(tgt=B6) / ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:09"))
    assert dissect(buf, ETH).zero == [(58, 62)]  # reserved; target and link-layer address option are header


def test_arp_kept_padding_zeroed():
    buf = frame(E / ARP(op=1, psrc=A4, pdst=B4)) + b"\xAA" * 18
    d = dissect(buf, ETH)
    assert d.zero == [(14 + 28, len(buf))]


@pytest.mark.parametrize("ethertype", [0x88CC, 0x88B5, 0x9000])
def test_unknown_ethertype_all_after_ethernet_header_zeroed(ethertype):
    """LLDP and anything else unknown: everything after the Ethernet header is zeroed."""
    buf = frame(Ether(src="02:00:00:00:00:01", dst="01:80:c2:00:00:0e", type=ethertype) / Raw(PAYLOAD))
    d = dissect(buf, ETH)
    assert d.zero == [(14, len(buf))] and d.tcp is None and d.jobs == []


# ---------------------------------------------------------------- link types, robustness


def test_other_link_types():
    ip = frame(IP(src=A4, dst=B4) / UDP() / Raw(PAYLOAD))
    assert dissect(ip, 101).zero == [(28, len(ip))]
    assert dissect(ip, 228).zero == [(28, len(ip))]
    sll = frame(CookedLinux(proto=0x0800) / IP(src=A4, dst=B4) / UDP() / Raw(PAYLOAD))
    assert dissect(sll, 113).zero == [(6, 14), (16 + 28, len(sll))]  # no Ethernet address: hidden
    null = struct.pack("<I", 2) + ip
    assert dissect(null, 0).zero == [(4 + 28, len(null))]
    assert dissect(ip, 9999).zero == [(0, len(ip))]  # unknown: nothing understood


def test_truncated_and_mutated_frames_never_raise():
    """Every prefix and random byte flips of varied frames: no exception, ranges inside the frame."""
    samples = [
        E / IP(src=A4, dst=B4) / TCP() / Raw(PAYLOAD),
        E / Dot1Q() / IPv6() / IPv6ExtHdrHopByHop() / TCP() / Raw(PAYLOAD),
        E / IP() / GRE() / IP() / UDP() / Raw(PAYLOAD),
        E / IP() / UDP(dport=4789) / VXLAN() / Ether() / IP() / TCP() / Raw(PAYLOAD),
        E / IP() / ICMP(type=3) / IP() / UDP() / Raw(PAYLOAD),
        E / IPv6() / ICMPv6DestUnreach() / IPv6() / UDP() / Raw(PAYLOAD),
        E / PPPoE() / PPP(proto=0x21) / IP() / UDP() / Raw(PAYLOAD),
    ]
    rnd = random.Random(1)
    for pkt in samples:
        buf = frame(pkt)
        cases = [buf[:k] for k in range(len(buf) + 1)]
        for _ in range(300):
            m = bytearray(buf)
            for _ in range(rnd.randint(1, 3)):
                m[rnd.randrange(len(m))] = rnd.randrange(256)
            cases.append(bytes(m))
        for case in cases:
            d = dissect(case, ETH)
            assert all(0 <= a < b for a, b in d.zero)
            if d.tcp is not None:
                assert d.tcp.start <= d.tcp.end <= len(case)


def nested(kind: str, levels: int) -> bytes:
    def ip(proto: int, payload: bytes) -> bytes:
        return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0,
                           addr4(A4), addr4(B4)) + payload

    pkt = ip(17, struct.pack("!HHHH", 1, 2, 8 + len(PAYLOAD), 0) + PAYLOAD)
    for _ in range(levels):
        pkt = ip(4, pkt) if kind == "ipip" else ip(1, bytes([3, 3, 0, 0, 0, 0, 0, 0]) + pkt)
    return bytes(E)[:12] + b"\x08\x00" + pkt


@pytest.mark.parametrize("kind", ["ipip", "icmp"])
def test_moderate_nesting_still_zeroes_the_payload(kind):
    buf = nested(kind, MAX_DEPTH + 4)
    d = dissect(buf, ETH)
    assert set(range(len(buf) - len(PAYLOAD), len(buf))) <= zeroed_bytes(d, len(buf))


@pytest.mark.parametrize("kind", ["ipip", "icmp"])
def test_deep_nesting_never_raises(kind):
    buf = nested(kind, 600)
    d = dissect(buf, ETH)
    assert set(range(len(buf) - len(PAYLOAD), len(buf))) <= zeroed_bytes(d, len(buf))


def test_fast_layout_takes_only_kept_tcp_options():
    """The fast path keeps TCP headers as they are: only when every option is one the walker keeps."""
    from pktmask.proto.layout import fast_layout

    def tcp(options) -> bytes:
        return frame(E / IP(src=A4, dst=B4, proto=6) / (TCP(flags="S", options=options) if isinstance(options, list) else tcp_header(options, "S")))

    syn = tcp([("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 0)), ("NOP", None), ("WScale", 7)])
    assert fast_layout(syn, ETH) is not None and dissect(syn, ETH).zero == []
    for odd in (b"\x22\x0aCOOKIE-TFO", b"\x13\x12" + b"M" * 16 + b"\x01\x01", b"\x02\x04\x05\xb4\x00\xee\x00\x00",
                b"\xfd\x06PLAN\x01\x01", b"\x02\x05\x05\xb4\x01\x01\x01\x01"):
        buf = tcp(odd)
        assert fast_layout(buf, ETH) is None, odd
        assert dissect(buf, ETH).zero, odd


# ---- DNS over UDP (proto/dns.py), walked instead of zeroed ---------------------------------


def _dns_response():
    from scapy.all import DNS, DNSQR, DNSRR

    return DNS(id=7, qr=1, rd=1, ra=1, qd=DNSQR(qname="secret-host.corp-internal.com"),
               an=[DNSRR(rrname="secret-host.corp-internal.com", type="A", rdata=A4),
                   DNSRR(rrname="secret-host.corp-internal.com", type="TXT", rdata="token=SECRET")])


@pytest.mark.parametrize("port", [53, 5353, 5355])
@pytest.mark.parametrize("side", ["sport", "dport"])
def test_dns_walked_on_its_ports(port, side):
    ports = {"sport": 40000, "dport": 40001, side: port}
    buf = frame(E / IP(src=A4, dst=B4) / UDP(**ports) / _dns_response())
    w = walk(buf, ETH)
    assert w.dns == 1 and w.tcp is None
    labels = {(buf[o : o + n], p) for o, n, p in w.labels}
    assert (b"secret-host", b"corp-internal.com") in labels and (b"com", b"") in labels
    a = buf.index(addr4(A4), 42)  # the A record's data
    assert (a, 1, 4) in w.fields
    txt = buf.index(b"token=SECRET") - 1
    assert w.zero == [(txt, len(buf))]  # the TXT data (length byte included) is the last record
    assert [j.kind for j in w.jobs] == [IP4_HEADER, L4_PSEUDO]
    from pktmask.proto.layout import fast_layout

    assert fast_layout(buf, ETH) is None  # DNS takes the walker


def test_dns_over_ipv6_and_not_dns_payload_on_port_53():
    buf = frame(E / IPv6(src=A6, dst=B6) / UDP(sport=53, dport=40000) / _dns_response())
    w = walk(buf, ETH)
    assert w.dns == 1 and len(w.labels) == 9  # three names of three labels (scapy does not compress)
    buf = frame(E / IP(src=A4, dst=B4) / UDP(sport=53, dport=40000) / Raw(PAYLOAD))
    w = walk(buf, ETH)
    assert w.dns == 0 and w.labels == [] and w.zero == [(42, len(buf))]


def test_dns_quoted_or_fragmented_is_zeroed():
    inner = IP(src=B4, dst=A4) / UDP(sport=40000, dport=53) / _dns_response()
    buf = frame(E / IP(src=A4, dst=B4) / ICMP(type=3, code=3) / inner)
    w = walk(buf, ETH)
    assert w.labels == [] and w.dns == 0
    frags = fragment(IP(src=A4, dst=B4) / UDP(sport=53, dport=40000) / _dns_response(), fragsize=32)
    w = walk(frame(E / frags[0]), ETH)
    assert w.labels == [] and w.dns == 0


def test_dns_udp_length_bounds_the_message():
    msg = bytes(_dns_response())
    buf = bytearray(frame(E / IP(src=A4, dst=B4) / UDP(sport=53, dport=40000) / Raw(msg + b"TRAILER")))
    struct.pack_into("!H", buf, 38, 8 + len(msg))  # UDP length: the message only
    w = walk(bytes(buf), ETH)
    end = 42 + len(msg)
    assert w.dns == 1 and w.zero == [(42 + msg.index(b"token=SECRET") - 1, end), (end, len(buf))]


def test_dns_walk_of_anonymized_frame_has_the_same_structure():
    """Label pseudonyms keep lengths and never touch length bytes or pointers; A/AAAA
    data lengths are fixed: the masker's walk of the anonymized frame zeroes the same
    ranges as the walk of the original."""
    from pktmask.anon.cryptopan import AddressMapper
    from pktmask.anon.names import NameMapper
    from pktmask.anon.rewriter import Rewriter

    key = bytes(range(32))
    buf = bytearray(frame(E / IP(src=A4, dst=B4) / UDP(sport=53, dport=40000) / _dns_response()))
    before = walk(bytes(buf), ETH)
    Rewriter(AddressMapper(key), None, NameMapper(key)).frame(buf, ETH)
    after = walk(bytes(buf), ETH)
    assert b"secret-host" not in buf and b"corp-internal" not in buf
    assert after.zero == before.zero and after.fields == before.fields
    assert [(o, n) for o, n, _ in after.labels] == [(o, n) for o, n, _ in before.labels]
    assert [(j.kind, j.start, j.end, j.at) for j in after.jobs] == [(j.kind, j.start, j.end, j.at) for j in before.jobs]


def test_dns_rewrite_keeps_the_udp_checksum_valid_and_labels_need_a_name_map():
    from scapy.all import Ether as ScapyEther

    from pktmask.anon.cryptopan import AddressMapper
    from pktmask.anon.names import NameMapper
    from pktmask.anon.rewriter import Rewriter

    key = bytes(range(32))
    orig = frame(E / IP(src=A4, dst=B4) / UDP(sport=53, dport=40000) / _dns_response())
    for names in (NameMapper(key), None):
        buf = bytearray(orig)
        rw = Rewriter(AddressMapper(key), None, names)
        assert rw.frame(buf, ETH)
        pkt = ScapyEther(bytes(buf))
        ck = pkt[UDP].chksum
        del pkt[UDP].chksum
        assert ScapyEther(bytes(pkt))[UDP].chksum == ck
        assert (b"secret-host" in buf) == (names is None)
        assert rw.names_mapped == (2 if names else 0)  # secret-host.corp-internal.com, corp-internal.com
