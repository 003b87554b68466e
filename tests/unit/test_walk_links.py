"""The walker on the serial and other link types (walk_link.py) and the tunnels (walk_tunnel.py):
where the header is kept, what is mapped, what is hidden, and that a tunnel whose payload does
not parse as claimed is zeroed whole (docs/policy.md, "Link layer" and "Tunnels")."""

from __future__ import annotations

import struct

from scapy.all import GRE, IP, TCP, UDP, Ether, IPv6, Raw

from link_captures import eth, geneve, ip4, ip6, nflog_tlv, outer
from pktmask.anon.addresses import AddressRewriter
from pktmask.anon.cryptopan import AddressMapper
from pktmask.anon.teredo import map_teredo
from pktmask.proto.layout import fast_layout
from pktmask.proto.walk import F_IP4, F_IP6, F_MAC, walk

UDP_PAYLOAD = 14 + 20 + 8  # outer Ethernet, IPv4, UDP


def zeroed(w, size: int) -> bytes:
    """A map of the frame: 1 where the walk zeroes, 0 elsewhere."""
    out = bytearray(size)
    for a, b in w.zero:
        out[a:b] = b"\x01" * (b - a)
    return bytes(out)


def test_frame_relay_address_lengths():
    p4 = ip4()
    two = walk(b"\x04\x01\x03\xcc" + p4, 107)
    assert (16, F_IP4, 4) in two.fields and two.zero == [] and two.tcp is not None
    four = walk(b"\x04\x00\x00\x01\x03\xcc" + p4, 107)
    assert (18, F_IP4, 4) in four.fields
    no_ea = walk(b"\x04\x00\x00\x00\x00\x03\xcc" + p4, 107)  # no EA bit in 4 bytes: malformed
    assert no_ea.fields == [] and no_ea.zero == [(0, 7 + len(p4))]


def test_cisco_hdlc_bad_header_is_zeroed():
    w = walk(b"\x0f\x01\x08\x00" + ip4(), 104)  # control byte must be 0
    assert w.fields == [] and w.zero == [(0, 4 + len(ip4()))]


def test_nflog_big_endian_tlvs_and_bad_length():
    p4 = ip4()
    be = bytes([2, 0, 0, 0]) + struct.pack(">HH", 4 + len(p4), 9) + p4
    w = walk(be, 239)
    assert (20, F_IP4, 4) in w.fields and (24, F_IP4, 4) in w.fields
    bad = bytes([2, 0, 0, 0]) + nflog_tlv(11, b"\0\0\x03\xe8") + b"\xff\xff\x0b\x00" + p4
    w = walk(bad, 239)
    assert w.fields == [] and (12, len(bad)) in w.wipe  # uid hidden, a bad length hides the rest
    assert (8, 12) in w.wipe


def test_slip_pseudo_header_is_hidden():
    p4 = ip4()
    w = walk(b"\x00" + p4[:15] + p4, 8)
    assert w.wipe[0] == (2, 16) and (28, F_IP4, 4) in w.fields


def test_gtp_signalling_elements_hidden_and_bad_length_not_walked():
    echo = struct.pack(">BBHI", 0x32, 1, 6, 0) + b"\x00\x01\x00\x00" + b"\x0e\x07"
    w = walk(outer(UDP(sport=2152, dport=2152) / Raw(echo)), 1)
    assert (UDP_PAYLOAD + 12, UDP_PAYLOAD + 14) in w.wipe
    p4 = ip4()
    wrong = struct.pack(">BBHI", 0x30, 0xFF, len(p4) + 1, 7) + p4  # length disagrees with UDP's
    frame = outer(UDP(sport=2152, dport=2152) / Raw(wrong))
    w = walk(frame, 1)
    assert (UDP_PAYLOAD, len(frame)) in w.zero and len(w.fields) == 4  # outer MACs and addresses only


def test_gtp_extension_contents_zeroed():
    p4 = ip4()
    body = struct.pack(">HBB", 7, 0, 0x85) + bytes([1, 0x10, 0x09, 0]) + p4
    frame = outer(UDP(sport=2152, dport=2152) / Raw(struct.pack(">BBHI", 0x34, 0xFF, len(body), 9) + body))
    w = walk(frame, 1)
    ext = UDP_PAYLOAD + 12
    assert (ext + 1, ext + 3) in w.zero
    assert (ext + 4 + 12, F_IP4, 4) in w.fields  # the T-PDU's source


def test_geneve_options_that_do_not_tile_are_not_walked():
    inner = eth(ip4())
    bad = struct.pack(">BBHI", 1, 0, 0x6558, 0x100) + struct.pack(">HBB", 1, 1, 2) + inner  # option runs past
    frame = outer(UDP(sport=1, dport=6081) / Raw(bad))
    w = walk(frame, 1)
    assert (UDP_PAYLOAD, len(frame)) in w.zero
    good = outer(UDP(sport=1, dport=6081) / Raw(geneve(inner)))
    w = walk(good, 1)
    assert (UDP_PAYLOAD + 12, UDP_PAYLOAD + 16) in w.zero  # option data
    assert any(f[2] == 6 and f[0] == UDP_PAYLOAD + 16 for f in w.fields)  # inner destination MAC


def test_erspan_type2_bad_version_zeroed_and_reserved_trimmed():
    inner = eth(ip4())
    gre = 14 + 20 + 8  # GRE with a sequence number
    bad = outer(GRE(proto=0x88BE, seqnum_present=1) / Raw(b"\x30\x00\x00\x00\x00\x00\x00\x00" + inner))
    w = walk(bad, 1)
    assert (gre, len(bad)) in w.zero and len(w.fields) == 4
    good = outer(GRE(proto=0x88BE, seqnum_present=1) / Raw(b"\x10\x0a\x00\x05\xff\xf0\x00\x07" + inner))
    w = walk(good, 1)
    assert (gre + 4, gre + 5) in w.zero and (gre + 5, 0x0F) in w.trim
    assert (gre + 8, F_MAC, 6) in w.fields


def test_ayiya_identity_mapped_or_hidden():
    p6 = ip6()
    h = UDP_PAYLOAD
    ident = bytes([0x41, 0x52, 0x11, 41]) + b"\0\0\0\1" + b"\x20\x01\x0d\xb8" + bytes(12) + b"S" * 20 + p6
    w = walk(outer(UDP(sport=5072, dport=5072) / Raw(ident)), 1)
    assert (h + 8, F_IP6, 16) in w.fields and (h + 24, h + 44) in w.wipe
    name = bytes([0x22, 0x00, 0x11, 41]) + b"\0\0\0\1" + b"host" + p6  # a 4-byte string identity
    w = walk(outer(UDP(sport=5072, dport=5072) / Raw(name)), 1)
    assert (h + 8, h + 12) in w.wipe and (h + 12 + 8, F_IP6, 16) in w.fields


def test_tunnel_ports_leave_the_fast_path():
    for sport, dport in ((2152, 2152), (1, 6081), (1, 3544), (3544, 1), (5072, 5072)):
        frame = bytes(Ether() / IP() / UDP(sport=sport, dport=dport) / Raw(b"x" * 20))
        assert fast_layout(frame, 1) is None, (sport, dport)
    assert fast_layout(bytes(Ether() / IP() / UDP(sport=6081, dport=1) / Raw(b"x" * 20)), 1) is not None
    assert fast_layout(bytes(Ether() / IP() / TCP(dport=2152)), 1) is not None


KEY = b"k" * 32


def test_teredo_map_is_the_ipv4_map():
    m = AddressMapper(KEY)
    server, client = bytes([65, 54, 227, 120]), bytes([192, 0, 2, 45])
    addr = b"\x20\x01\x00\x00" + server + b"\x80\x00\x63\xbf" + bytes(b ^ 0xFF for b in client)
    out = map_teredo(addr, m.map_v4)
    assert out[:4] == addr[:4] and out[8:12] == addr[8:12]
    assert out[4:8] == m.map_v4(server) and bytes(b ^ 0xFF for b in out[12:16]) == m.map_v4(client)
    r = AddressRewriter(m, None)
    buf = bytearray(addr)
    r._a6(buf, 0)
    assert bytes(buf) == out


def test_teredo_prefix_cut_short_is_the_keyed_map():
    """An address cut within its first 4 bytes is not known to be Teredo: it takes the keyed
    IPv6 map's first bytes (the same for every completion), so "2001" is not kept."""
    m = AddressMapper(KEY)
    r = AddressRewriter(m, None)
    buf = bytearray(b"\x20\x01")
    r._prefix(buf, 0, 2, 16)
    assert bytes(buf) == m.map_v6(b"\x20\x01\x0d\xb8" + bytes(12))[:2] != b"\x20\x01"
    full = b"\x20\x01\x00\x00\x41\x36\xe3\x78" + bytes(8)
    buf = bytearray(full[:6])
    r._prefix(buf, 0, 6, 16)
    assert bytes(buf) == map_teredo(full, m.map_v4)[:6]


def test_ipv6_over_teredo_is_walked_with_its_origin_hidden():
    v6 = bytes(IPv6(src="2001:0:4136:e378:8000:63bf:3fff:fdd2", dst="2001:db8::1") / UDP() / Raw(b"d" * 8))
    origin = b"\x00\x00\x9c\x40\x3f\xff\xfd\xd2"
    w = walk(outer(UDP(sport=40000, dport=3544) / Raw(origin + v6)), 1)
    h = UDP_PAYLOAD
    assert (h + 4, h + 8) in w.wipe and (h + 8 + 8, F_IP6, 16) in w.fields


def test_nflog_payload_cut_short_is_walked():
    """The payload attribute comes last: cut by the snap length, its packet is walked as captured."""
    p4 = ip4()
    frame = bytes([2, 0, 0, 0]) + nflog_tlv(1, b"\x08\x00\x03\x00") + nflog_tlv(9, p4)
    w = walk(frame[:40], 239)
    assert (12 + 4 + 12, F_IP4, 4) in w.fields and (12 + 4 + 16, F_IP4, 4) in w.fields
    assert not any(b > 16 for _a, b in w.wipe)
