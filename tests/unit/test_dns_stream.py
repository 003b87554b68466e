"""Tests for DNS over TCP (pktmask.proto.dns_stream, docs/policy.md "DNS"): framing by the
length prefix (several messages per chunk, a message split across chunks), kept ranges and
replacements equal to what DNS over UDP gets for the same message, trials and resync."""

from __future__ import annotations

import struct

import pytest
from scapy.layers.dns import DNS, DNSQR, DNSRR, DNSRROPT, EDNS0ClientSubnet

from dns_images import udp_image
from pktmask.anon.cryptopan import AddressMapper
from pktmask.anon.names import NameMapper
from pktmask.proto.dns_stream import DnsStreamParser

KEY = bytes(range(32))


@pytest.fixture(scope="module")
def maps():
    return NameMapper(KEY), AddressMapper(KEY)


def messages() -> list[bytes]:
    """A query and a response with pointers, a CNAME chain, A/AAAA, PTR, TXT and ECS."""
    q = DNS(id=7, rd=1, qd=DNSQR(qname="www.secret-corp.example.com", qtype="A"),
            ar=DNSRROPT(rdata=[EDNS0ClientSubnet(source_plen=24, address="192.0.2.77")]))
    r = DNS(id=7, qr=1, qd=DNSQR(qname="www.secret-corp.example.com"),
            an=[DNSRR(rrname="www.secret-corp.example.com", type="CNAME", rdata="edge.secret-corp.example.com"),
                DNSRR(rrname="edge.secret-corp.example.com", type="CNAME", rdata="cdn7.hidden-cdn.net"),
                DNSRR(rrname="cdn7.hidden-cdn.net", type="A", rdata="198.51.100.23"),
                DNSRR(rrname="cdn7.hidden-cdn.net", type="AAAA", rdata="2001:db8:5::17"),
                DNSRR(rrname="23.100.51.198.in-addr.arpa", type="PTR", rdata="cdn7.hidden-cdn.net"),
                DNSRR(rrname="cdn7.hidden-cdn.net", type="TXT", rdata="token=s3cr3t")])
    out = [bytes(q), bytes(r.compress())]
    assert b"\xc0" in out[1]  # compression pointers
    return out


def framed(msg: bytes) -> bytes:
    return struct.pack("!H", len(msg)) + msg



def apply(stream: bytes, ranges, repl, base: int = 0) -> bytes:
    """The stream as the final pass leaves it: zero outside ``ranges``, replacements written."""
    out = bytearray(len(stream))
    for a, b in ranges:
        out[a - base : b - base] = stream[a - base : b - base]
    for off, new in repl:
        assert any(a <= off and off + len(new) <= b for a, b in ranges), "replacement outside kept"
        out[off - base : off - base + len(new)] = new
    return bytes(out)


def run(chunks, maps, pos=0, synced=True):
    p = DnsStreamParser(pos, synced, *maps)
    ranges, repl = [], []
    for c in chunks:
        p.feed(c)
        ranges += p.take_ranges()
        repl += p.take_replacements()
    return p, ranges, repl


def test_each_message_as_over_udp(maps):
    for msg in messages():
        stream = framed(msg)
        p, ranges, repl = run([stream], maps)
        assert p.decided == len(stream) and p.messages == 1
        out = apply(stream, ranges, repl)
        assert out[:2] == stream[:2]
        assert out[2:] == udp_image(msg, maps)
        assert b"secret" not in out and b"hidden" not in out and b"s3cr3t" not in out


def test_two_messages_in_one_chunk_and_one_split(maps):
    q, r = messages()
    stream = framed(q) + framed(r)
    whole = apply(stream, *run([stream], maps)[1:])
    for cut in (1, 2, 3, len(q) + 2, len(q) + 3, len(q) + 4, len(q) + 40, len(stream) - 1):
        p, ranges, repl = run([stream[:cut], stream[cut:]], maps)
        assert p.messages == 2 and p.decided == len(stream)
        assert apply(stream, ranges, repl) == whole
    assert whole[2:2 + len(q)] == udp_image(q, maps)
    assert whole[4 + len(q):] == udp_image(r, maps)


def test_undecided_until_the_message_is_complete(maps):
    q, _ = messages()
    stream = framed(q)
    p = DnsStreamParser(100, True, *maps)
    p.feed(stream[:10])
    assert p.decided == 100 and p.take_ranges() == [] and p.take_replacements() == []
    p.feed(stream[10:])
    assert p.decided == 100 + len(stream)
    assert p.take_ranges()[0][0] == 100


def test_without_mappers_names_and_addresses_kept(maps):
    _, r = messages()
    stream = framed(r)
    p, ranges, repl = run([stream], (None, None))
    out = apply(stream, ranges, repl)
    assert b"secret-corp" in out and b"token" not in out
    assert repl == []


def test_not_dns_is_zeroed_and_resync_at_a_message_start(maps):
    q, r = messages()
    junk = b"GET / HTTP/1.1\r\nHost: secret.example.com\r\n\r\n"
    p, ranges, repl = run([junk, framed(q)], maps)
    assert all(a >= len(junk) for a, _ in ranges)
    assert p.messages == 1
    out = apply(junk + framed(q), ranges, repl)
    assert out[: len(junk)] == bytes(len(junk))


def test_gap_loses_sync_then_resyncs(maps):
    q, r = messages()
    p = DnsStreamParser(0, True, *maps)
    p.feed(framed(q)[:20])
    p.gap(500)
    assert p.decided == 500 and p.take_ranges() == []
    p.feed(framed(r))
    assert p.messages == 1 and p.take_ranges()[0][0] == 500


def test_unsynced_start_needs_a_whole_message(maps):
    q, r = messages()
    stream = framed(q)[5:] + framed(r)
    p, ranges, _ = run([stream], maps, synced=False)
    assert ranges == [] and p.decided == len(stream)


def test_malformed_later_message_zeroed_from_where_it_stops(maps):
    q, _ = messages()
    bad = bytearray(q)
    bad[12] = 0x50  # a label length 0x40..0xBF: malformed from the question name on
    stream = framed(q) + framed(bytes(bad)) + framed(q)
    p, ranges, repl = run([stream], maps)
    out = apply(stream, ranges, repl)
    second = 2 + len(q)
    assert out[second : second + 2 + 12] == stream[second : second + 2 + 12]  # prefix and header kept
    assert out[second + 14 : second + 2 + len(q)] == bytes(len(q) - 12)
    assert out[second + 2 + len(q):] == out[: 2 + len(q)]  # the framing goes on
    assert p.messages == 3 and p.messages_masked == 1


def test_same_name_same_pseudonym_as_map_name(maps):
    names, _ = maps
    _, r = messages()
    stream = framed(r)
    out = apply(stream, *run([stream], maps)[1:])
    for host in (b"cdn7.hidden-cdn.net", b"www.secret-corp.example.com"):  # stored in full once
        wire = b"".join(bytes([len(x)]) + x for x in names.map_name(host).split(b"."))
        assert wire in out
    assert b"\x04" + names.map_name(b"edge.secret-corp.example.com")[:4] + b"\xc0" in out  # edge + pointer
