"""Fragmented UDP datagrams on a DNS port (pktmask.mask.datagrams, docs/policy.md "DNS"): a complete
datagram is sanitized exactly as the same message over UDP in one piece, each fragment getting its
part (and the first one the sum of the others); anything incomplete or inconsistent is zeroed:
a fragment missing (first, middle, last), overlaps, copies with other bytes, the bounds."""

from __future__ import annotations

import pytest
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import UDP

from dns_images import udp_image
from pktmask.anon.cryptopan import AddressMapper
from pktmask.anon.names import NameMapper
from pktmask.mask.codec import EMPTY
from pktmask.mask.datagrams import Reassembly
from pktmask.mask.decisions import DecisionStream
from pktmask.mask.flow import FRAG, Pending
from pktmask.proto.checksum import ones_sum

KEY = bytes(range(32))
KEY4 = b"\x0a\x00\x00\x01\x0a\x00\x00\x02\x11\x00\x2a"  # an IPv4 datagram key: addresses, protocol, id


@pytest.fixture(scope="module")
def maps():
    return NameMapper(KEY), AddressMapper(KEY)


def message() -> bytes:
    """A response of ~400 bytes: names through pointers, CNAME, A, AAAA, TXT."""
    r = DNS(id=9, qr=1, rd=1, ra=1, qd=DNSQR(qname="www.secret-corp.example.com"),
            an=[DNSRR(rrname="www.secret-corp.example.com", type="CNAME", rdata="edge.secret-corp.example.com"),
                DNSRR(rrname="edge.secret-corp.example.com", type="A", rdata="198.51.100.23"),
                DNSRR(rrname="edge.secret-corp.example.com", type="AAAA", rdata="2001:db8:5::17"),
                DNSRR(rrname="edge.secret-corp.example.com", type="TXT", rdata="token=" + "s3cr3t" * 40)])
    return bytes(r.compress())


def datagram(msg: bytes, sport: int = 53, dport: int = 40000, extra: bytes = b"") -> bytes:
    """The UDP datagram (header and message, ``extra`` bytes after what its length says)."""
    return bytes(UDP(sport=sport, dport=dport, len=8 + len(msg), chksum=0)) + msg + extra


def pieces(dgram: bytes, size: int = 64) -> list[tuple[int, bytes, bool]]:
    """The datagram cut into fragments of ``size`` bytes (a multiple of 8): (offset, bytes, more)."""
    out = []
    for off in range(0, len(dgram), size):
        out.append((off, dgram[off : off + size], off + size < len(dgram)))
    return out


def feed(r: Reassembly, frags, key: bytes = KEY4, start: int = 1) -> list[Pending]:
    out = []
    for n, (off, data, more) in enumerate(frags):
        p = Pending(None, FRAG, 0)
        r.add(p, key, off, data, more, start + n)
        out.append(p)
    return out


def decode(record) -> tuple[list[tuple[int, int]], int, list[tuple[int, bytes]] | None]:
    """A FRAGMENT record: keep ranges, SUM (0 when absent), replacements."""
    assert isinstance(record, bytes)
    s = DecisionStream()
    s.load(record)
    ranges, extra = s.read_fragment()
    return ranges, extra, s.replaced


def sanitized(frags, pend) -> tuple[bytes, int]:
    """The datagram as the masking pass leaves it (the first fragment's UDP header kept), and the
    SUM the first fragment's record carries."""
    out = bytearray()
    extra = -1
    for (off, data, _more), p in zip(frags, pend, strict=True):
        ranges, s, repl = decode(p.ranges)
        buf = bytearray(len(data))
        if off == 0:
            buf[:8] = data[:8]
            extra = s
        for a, b in ranges:
            buf[a:b] = data[a:b]
        for at, value in repl or []:
            buf[at : at + len(value)] = value
        out += buf
    return bytes(out), extra



def zeroed(pend) -> bool:
    return all(p.ranges == EMPTY for p in pend)


@pytest.mark.parametrize("order", ["in order", "reversed", "last first", "first last"])
def test_complete_datagram_is_sanitized_as_in_one_piece(maps, order):
    msg = message()
    dgram = datagram(msg)
    frags = pieces(dgram)
    assert len(frags) >= 4
    seq = list(range(len(frags)))
    if order == "reversed":
        seq.reverse()
    elif order == "last first":
        seq = seq[-1:] + seq[:-1]
    elif order == "first last":
        seq = seq[1:] + seq[:1]
    r = Reassembly(*maps)
    pend = feed(r, [frags[i] for i in seq])
    assert r.messages == 1 and all(d.records is not None for d in r.open.values())
    by_index = dict(zip(seq, pend, strict=True))
    ordered = [by_index[i] for i in range(len(frags))]
    clean, extra = sanitized(frags, ordered)
    assert clean[8:] == udp_image(msg, maps)  # what the same message gets in one datagram
    assert b"secret" not in clean and b"s3cr3t" not in clean
    assert extra == ones_sum(clean[len(frags[0][1]) :])  # the other fragments' sum
    assert r.held == sum(len(d) for _o, d, _m in frags)  # remembered for copies, bounded


def test_without_maps_names_and_addresses_stay():
    msg = message()
    frags = pieces(datagram(msg))
    r = Reassembly(None, None)
    pend = feed(r, frags)
    clean, _ = sanitized(frags, pend)
    assert clean[8:] == udp_image(msg, (None, None))
    assert b"secret-corp" in clean and b"s3cr3t" not in clean


def test_bytes_past_the_udp_length_are_zeroed(maps):
    msg = message()
    frags = pieces(datagram(msg, extra=b"TAIL"))
    r = Reassembly(*maps)
    pend = feed(r, frags)
    clean, _ = sanitized(frags, pend)
    assert clean[8 : 8 + len(msg)] == udp_image(msg, maps) and clean[-4:] == bytes(4)


@pytest.mark.parametrize("missing", [0, 1, -1])
def test_a_missing_fragment_zeroes_the_datagram_at_the_end(maps, missing):
    frags = pieces(datagram(message()))
    del frags[missing]
    r = Reassembly(*maps)
    pend = feed(r, frags)
    assert all(p.ranges is None for p in pend)  # waiting
    r.finish()
    assert zeroed(pend) and r.messages == 0 and r.held == 0


def test_a_missing_fragment_zeroes_the_datagram_after_the_window(maps):
    frags = pieces(datagram(message()))
    r = Reassembly(*maps, window=50)
    pend = feed(r, frags[:-1])
    assert not r.tick(40)
    assert r.tick(60) and zeroed(pend) and not r.open and r.held == 0


@pytest.mark.parametrize("case", ["overlap", "other bytes", "two last", "past the last", "odd length", "short head"])
def test_inconsistent_fragments_zero_the_datagram(maps, case):
    frags = pieces(datagram(message()))
    off, data, more = frags[1]
    if case == "overlap":
        frags.insert(2, (off + 32, frags[2][1], True))
    elif case == "other bytes":
        frags.insert(2, (off, data[:-1] + b"X", more))
    elif case == "two last":
        frags.insert(2, (off, data, False))
    elif case == "past the last":
        frags.insert(-1, (frags[-1][0] + 512, b"\0" * 8, True))
    elif case == "odd length":
        frags[1] = (off, data[:-1], True)
    else:
        frags[0] = (0, frags[0][1][:6], True)
    r = Reassembly(*maps)
    pend = feed(r, frags)
    r.finish()
    assert zeroed(pend) and r.messages == 0


def test_an_exact_copy_is_accepted_and_gets_the_same_record(maps):
    frags = pieces(datagram(message()))
    twice = [frags[0], frags[1], frags[1], *frags[2:], frags[0], frags[-1]]  # copies before and after
    r = Reassembly(*maps)
    pend = feed(r, twice)
    assert r.messages == 1 and all(p.ranges is not None for p in pend) and pend[0].ranges != EMPTY
    assert pend[1].ranges == pend[2].ranges and pend[0].ranges == pend[-2].ranges
    assert pend[-1].ranges == pend[-3].ranges
    clean, _ = sanitized(frags, [pend[0], *pend[2 : len(frags) + 1]])
    assert clean[8:] == udp_image(message(), maps)


def test_a_reused_key_after_a_kept_datagram_starts_a_new_one(maps):
    r = Reassembly(*maps)
    first = feed(r, pieces(datagram(message())))
    other = pieces(datagram(message().replace(b"s3cr3t", b"another")))
    second = feed(r, other, start=100)
    assert r.messages == 2 and first[-1].ranges == EMPTY or first[-1].ranges != second[-1].ranges
    assert not zeroed(first) and not zeroed(second)


def test_not_dns_not_parseable_cut_short(maps):
    msg = message()
    r = Reassembly(*maps)
    a = feed(r, pieces(datagram(msg, sport=7000, dport=7001)), key=b"a")
    assert zeroed(a)  # decided at its first fragment: the ports
    bad = bytearray(datagram(msg))
    bad[8 + 4 : 8 + 6] = b"\xff\xff"  # 65535 questions cannot fit
    b = feed(r, pieces(bytes(bad)), key=b"b")
    assert zeroed(b)
    frags = pieces(datagram(msg))
    frags[2] = (frags[2][0], None, True)  # cut short by the snap length
    c = feed(r, frags, key=b"c")
    assert zeroed(c)
    wrong = bytearray(datagram(msg))
    wrong[4:6] = (len(wrong) + 1).to_bytes(2, "big")  # a UDP length past the datagram
    d = feed(r, pieces(bytes(wrong)), key=b"d")
    assert zeroed(d) and r.messages == 0


def test_bounds_fail_the_oldest_datagram_first(maps):
    frags = pieces(datagram(message()))
    r = Reassembly(*maps, max_open=2)
    a = feed(r, frags[:2], key=b"a")
    b = feed(r, frags[:2], key=b"b")
    c = feed(r, frags, key=b"c")
    assert zeroed(a) and all(p.ranges is None for p in b) and not zeroed(c)
    size = sum(len(d) for _o, d, _m in frags)
    r = Reassembly(*maps, max_bytes=size + 64)
    a = feed(r, frags[:2], key=b"a")
    b = feed(r, frags, key=b"b")
    assert zeroed(a) and not zeroed(b) and r.messages == 1
    r = Reassembly(*maps)
    huge = feed(r, [(65528, b"\0" * 16, False)], key=b"h")  # past 65535 bytes
    assert zeroed(huge)


def test_fail_pending_zeroes_its_whole_datagram(maps):
    frags = pieces(datagram(message()))
    r = Reassembly(*maps)
    pend = feed(r, frags[:-1])
    r.fail_pending(pend[1])
    assert zeroed(pend)
    late = feed(r, frags[-1:], start=10)
    assert zeroed(late)  # a tombstone: the rest is zeroed at once
