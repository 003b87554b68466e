"""Tests for the DNS message parser (pktmask.proto.dns, docs/policy.md "DNS"): zero ranges,
addresses, labels with their parents, and malformed messages (zeroed from the first byte
not understood). Messages are built by hand so pointers go exactly where a test wants."""

from __future__ import annotations

import struct

from pktmask.proto.dns import parse


def header(qd=0, an=0, ns=0, ar=0, ident=0x1234, flags=0x8180) -> bytes:
    return struct.pack("!6H", ident, flags, qd, an, ns, ar)


def name(*labels: str, ptr: int | None = None) -> bytes:
    out = b"".join(bytes([len(x)]) + x.encode() for x in labels)
    return out + (struct.pack("!H", 0xC000 | ptr) if ptr is not None else b"\0")


def question(qname: bytes, qtype=1) -> bytes:
    return qname + struct.pack("!HH", qtype, 1)


def rr(owner: bytes, rtype: int, rdata: bytes, ttl=60, rclass=1) -> bytes:
    return owner + struct.pack("!HHIH", rtype, rclass, ttl, len(rdata)) + rdata


def run(msg: bytes, pad: int = 0):
    """Parse ``msg`` placed at offset 8 of a buffer (as after a UDP header)."""
    buf = bytes(8) + msg + bytes(pad)
    m = parse(buf, 8, 8 + len(msg), len(msg))
    return buf, m


Q = name("secret-host", "corp-internal", "com")  # at 12 of the message


def test_query():
    msg = header(qd=1, flags=0x0100) + question(Q)
    buf, m = run(msg)
    assert m.stop == 8 + len(msg) and m.zero == [] and m.addrs == []
    assert sorted((bytes(buf[o : o + n]), p) for o, n, p in m.labels) == [
        (b"com", b""), (b"corp-internal", b"com"), (b"secret-host", b"corp-internal.com")]


def test_response_with_pointers_cname_chain_and_addresses():
    q = question(Q)
    # answer 1: owner -> the question name (offset 12); CNAME www.<corp-internal.com at 12+12>
    cname = name("www", ptr=12 + 12)
    a1 = rr(name(ptr=12), 5, cname)
    at_cname = 12 + len(q) + 12  # where the CNAME rdata (its "www" label) starts
    a2 = rr(name(ptr=at_cname), 1, bytes([10, 1, 2, 3]))
    a3 = rr(name(ptr=at_cname), 28, bytes(range(16)))
    msg = header(qd=1, an=3) + q + a1 + a2 + a3
    buf, m = run(msg)
    assert m.stop == 8 + len(msg) and m.zero == []
    rd_a = 8 + 12 + len(q) + len(a1) + 12
    rd_aaaa = 8 + 12 + len(q) + len(a1) + len(a2) + 12
    assert m.addrs == [(rd_a, False, 4), (rd_aaaa, True, 16)]
    labels = {(bytes(buf[o : o + n]), p) for o, n, p in m.labels}
    assert (b"www", b"corp-internal.com") in labels
    assert len(m.labels) == 4  # pointers add no labels: theirs were listed where they are


def test_ptr_mx_srv_soa_names():
    q = question(name("4", "3", "2", "1", "in-addr", "arpa"), 12)
    ptr = rr(name(ptr=12), 12, name("host", "corp", "com"))
    mx = rr(name("corp", "com"), 15, b"\0\x0a" + name("mail", ptr=12 + len(q) + 12 + 5))
    srv = rr(name("_sip", "_tcp", "corp", "com"), 33, struct.pack("!HHH", 1, 2, 5060) + name("sip", "corp", "com"))
    soa = rr(name("corp", "com"), 6, name("ns1", "corp", "com") + name("admin", "corp", "com") + bytes(range(20)))
    msg = header(qd=1, an=4) + q + ptr + mx + srv + soa
    buf, m = run(msg)
    assert m.stop == 8 + len(msg) and m.zero == [] and m.addrs == []
    got = {(bytes(buf[o : o + n]), p) for o, n, p in m.labels}
    assert {(b"4", b"3.2.1.in-addr.arpa"), (b"host", b"corp.com"), (b"mail", b"corp.com"),
            (b"_sip", b"_tcp.corp.com"), (b"sip", b"corp.com"), (b"ns1", b"corp.com"),
            (b"admin", b"corp.com")} <= got
    # the 20 bytes of the SOA and the SRV fixed fields are kept (nothing zeroed)


def test_txt_hinfo_unknown_zeroed_with_rdlength_kept():
    txt = rr(name(ptr=12), 16, b"\x0bv=spf1 -all")
    hinfo = rr(name(ptr=12), 13, b"\x03cpu\x02os")
    nsec = rr(name(ptr=12), 47, name("next", ptr=12) + b"\0\x01\x40")
    msg = header(qd=1, an=3) + question(Q) + txt + hinfo + nsec
    buf, m = run(msg)
    base = 8 + 12 + len(question(Q))
    assert m.zero == [(base + 12, base + len(txt)),
                      (base + len(txt) + 12, base + len(txt) + len(hinfo)),
                      (base + len(txt) + len(hinfo) + 12, 8 + len(msg))]
    assert m.stop == 8 + len(msg)


def test_opt_ecs_and_cookie():
    ecs = struct.pack("!HHHBB", 8, 7, 1, 22, 0) + bytes([10, 1, 3])  # 10.1.3.0/22 (3 bytes)
    cookie = struct.pack("!HH", 10, 8) + b"COOKIE!!"
    opt = rr(b"\0", 41, ecs + cookie, ttl=0, rclass=4096)
    msg = header(qd=1, ar=1) + question(Q) + opt
    buf, m = run(msg)
    rd = 8 + 12 + len(question(Q)) + 11
    assert m.addrs == [(rd + 8, False, 3)]
    assert m.trim == [(rd + 10, 0xFC)]  # 22 bits: the third byte keeps its top 6 bits
    assert m.zero == [(rd + len(ecs) + 4, rd + len(ecs) + 12)]
    assert m.stop == 8 + len(msg)


def test_ecs_ipv6_and_bad_family():
    v6 = struct.pack("!HHHBB", 8, 4 + 7, 2, 56, 0) + bytes(range(1, 8))
    bad = struct.pack("!HHHBB", 8, 4 + 5, 1, 40, 0) + b"12345"  # 5 bytes for IPv4
    opt = rr(b"\0", 41, v6 + bad)
    msg = header(ar=1) + opt
    buf, m = run(msg)
    rd = 8 + 12 + 11
    assert m.addrs == [(rd + 8, True, 7)] and m.trim == []
    assert m.zero == [(rd + len(v6) + 8, rd + len(v6) + len(bad))]


def test_bytes_after_last_record_not_understood():
    msg = header(qd=1, flags=0x0100) + question(Q)
    buf, m = run(msg + b"trailing secret")
    assert m.stop == 8 + len(msg)


def test_pointer_loop_and_forward_pointer():
    # A pointer to itself, and one to its own name's start: loops.
    for target in (12, 12 + 4):
        msg = header(qd=1) + question(name("abc", ptr=target))
        buf, m = run(msg)
        assert m.stop == 8 + 12 and m.labels == []
    # A forward pointer (to the second question's name).
    q2 = question(name("later", "com"))
    msg = header(qd=2) + question(name(ptr=12 + 6)) + q2
    buf, m = run(msg)
    assert m.stop == 8 + 12 and m.labels == []


def test_pointer_into_header_or_label_middle_or_data():
    for target in (0, 13):  # the header; the middle of "secret-host"
        msg = header(qd=2) + question(Q) + question(name("x", ptr=target))
        buf, m = run(msg)
        assert m.stop == 8 + 12 + len(question(Q))
        assert len(m.labels) == 3  # the first question's labels are still listed
    # into a TXT's data that looks like a name
    txt = rr(name(ptr=12), 16, name("fake", "com"))
    at = 12 + len(question(Q)) + 12
    msg = header(qd=1, an=2) + question(Q) + txt + rr(name(ptr=at), 1, bytes(4))
    buf, m = run(msg)
    assert m.stop == 8 + 12 + len(question(Q)) + len(txt)


def test_label_past_the_end_and_bad_length_byte():
    msg = header(qd=1) + b"\x20short"
    buf, m = run(msg)
    assert m.stop == 8 + 12 and m.labels == []
    msg = header(qd=1) + question(name("ok")) .replace(b"\x02ok", b"\x41ok")  # 0x41: a reserved label type
    buf, m = run(msg)
    assert m.stop == 8 + 12


def test_truncated_rr():
    a = rr(name(ptr=12), 1, bytes([10, 0, 0, 1]))
    msg = header(qd=1, an=1) + question(Q) + a
    base = 8 + 12 + len(question(Q))
    # cut in the RDATA: the fixed fields kept, the rest not understood
    buf = bytes(8) + msg
    m = parse(buf, 8, 8 + len(msg) - 2, len(msg))
    assert m.stop == base + 12 and m.addrs == []
    # cut in the fixed fields
    m = parse(buf, 8, base + 5, len(msg))
    assert m.stop == base + 2
    # an RDLENGTH running past the message
    bad = msg[:-6] + b"\0\x09" + msg[-4:]
    buf = bytes(8) + bad
    m = parse(buf, 8, 8 + len(bad), len(bad))
    assert m.stop == base + 12


def test_rdata_length_mismatch():
    cname = rr(name(ptr=12), 5, name("www", ptr=12) + b"XX")  # bytes left over after the name
    msg = header(qd=1, an=1) + question(Q) + cname
    buf, m = run(msg)
    base = 8 + 12 + len(question(Q))
    assert m.stop == base + 12 + 6
    assert (base + 13, 3, b"secret-host.corp-internal.com") in m.labels
    a5 = rr(name(ptr=12), 1, bytes(5))  # an A of 5 bytes
    buf, m = run(header(qd=1, an=1) + question(Q) + a5)
    assert m.stop == base + 12 and m.addrs == []
    runs_past = rr(name(ptr=12), 5, name("www", "corp", "com")[:-3])  # the name runs past RDLENGTH
    buf, m = run(header(qd=1, an=1) + question(Q) + runs_past + b"\x04corp\x03com\0")
    assert m.stop == base + 12


def test_implausible_counts_not_dns():
    assert parse(bytes(8) + b"SECRET-PAYLOAD-0123456789", 8, 33, 25) is None
    assert parse(bytes(8) + b"short", 8, 13, 5) is None


def test_name_too_long():
    labels = ["a" * 63] * 4  # 4 * 64 + 1 = 257 bytes on the wire
    msg = header(qd=1) + question(name(*labels))
    buf, m = run(msg)
    assert m.stop == 8 + 12 and m.labels == []


def test_mdns_style_pointer_to_pointer():
    q = question(name("printer", "local"), 255)
    a = rr(name(ptr=12), 1, bytes([192, 168, 1, 9]))  # its owner name, a pointer, at 12 + len(q)
    b = rr(name(ptr=12 + len(q)), 28, bytes(16))  # a pointer to that pointer
    msg = header(qd=1, an=2, flags=0x8400) + q + a + b
    buf, m = run(msg)
    assert m.stop == 8 + len(msg) and len(m.addrs) == 2


def _structure(m):
    return (m.stop, m.zero, [(o, v6, n) for o, v6, n in m.addrs], m.trim, sorted((o, n) for o, n, _ in m.labels))


def test_random_damage_never_raises_and_rewrites_keep_the_structure():
    """Flip bytes of a compressed response at random: the parse never raises, stays inside the
    message, and replacing every label and address it lists (as the anonymizer does, with any
    bytes) leaves the structure it finds unchanged (the masker walks the anonymized frame)."""
    import random

    rng = random.Random(13)
    ecs = struct.pack("!HHHBB", 8, 7, 1, 22, 0) + bytes([10, 1, 3])
    base = (header(qd=1, an=3, ar=1) + question(Q) + rr(name(ptr=12), 5, name("www", ptr=24))
            + rr(name(ptr=12 + len(question(Q)) + 12), 1, bytes([10, 1, 2, 3]))
            + rr(name(ptr=12), 16, b"\x05hello") + rr(b"\0", 41, ecs))
    for _ in range(3000):
        msg = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            msg[rng.randrange(len(msg))] = rng.randrange(256)
        cut = rng.choice([len(msg), rng.randrange(len(msg) + 1)])
        buf = bytearray(bytes(8) + bytes(msg))
        m = parse(bytes(buf), 8, 8 + cut, len(msg))
        if m is None:
            continue
        assert 8 <= m.stop <= 8 + cut
        for a, b in m.zero:
            assert 8 <= a <= b <= m.stop
        for o, n, _ in m.labels:
            assert 8 + 12 < o and o + n <= m.stop
            buf[o : o + n] = bytes(rng.randrange(256) for _ in range(n))
        for o, _, n in m.addrs:
            buf[o : o + n] = bytes(rng.randrange(256) for _ in range(n))
        again = parse(bytes(buf), 8, 8 + cut, len(msg))
        assert _structure(again) == _structure(m)
