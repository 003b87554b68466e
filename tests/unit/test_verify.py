"""The leak audit (pktmask.verify): whole runs, alignment, DNS reader, needle search, address spellings."""

from __future__ import annotations

import struct

import pytest

from captures import mixed_frames, write_pcap
from pending import MASK_HAS_HTTP_ALLOWLIST, assert_clean
from pktmask.config import MaskConfig
from pktmask.errors import InputError
from pktmask.runner import build_executor
from pktmask.verify import verify
from pktmask.verify.addresses import AddressBook
from pktmask.verify.dns import read_message, read_name, to_wire
from pktmask.verify.fields import Walker
from pktmask.verify.needles import FEW_HITS, NeedleIndex, window_keys
from pktmask.verify.payload import http_values, printable_pieces, udp_dns
from pktmask.verify.scan import MAX_VALUES, Needles

KEY = bytes(range(32))
SNI = "sni-host.example.org"
LONG_STRING = b"The quarterly numbers for ACME are in the attachment"
CATEGORIES = ("ip", "mac", "dns", "http", "strings", "fields")


# ---------------------------------------------------------------- capture builders


def client_hello(server_name: str) -> bytes:
    """A TLS 1.2 ClientHello record carrying one SNI extension."""
    name = server_name.encode()
    entry = b"\x00" + struct.pack("!H", len(name)) + name
    ext = b"\x00\x00" + struct.pack("!HH", len(entry) + 2, len(entry)) + entry
    body = b"\x03\x03" + bytes(range(1, 33)) + b"\x00" + b"\x00\x02\xc0\x2f" + b"\x01\x00"
    body += struct.pack("!H", len(ext)) + ext
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


def audit_frames() -> list[bytes]:
    """mixed_frames plus what every category needs: a DNS answer, an SNI, long strings."""
    from scapy.all import DNS, DNSQR, DNSRR, IP, TCP, UDP, Ether, Raw

    c_mac, s_mac = "02:11:22:33:44:55", "02:66:77:88:99:aa"
    cli, srv, res = "192.0.2.10", "198.51.100.20", "203.0.113.53"
    e, r = Ether(src=c_mac, dst=s_mac), Ether(src=s_mac, dst=c_mac)
    hello = client_hello(SNI)
    answer = DNS(id=9, qr=1, rd=1, ra=1, qd=DNSQR(qname=SNI),
                 an=[DNSRR(rrname=SNI, type="CNAME", rdata="edge.cdn.example.net"),
                     DNSRR(rrname="edge.cdn.example.net", type="A", rdata="198.51.100.77")])
    frames = [
        e / IP(src=cli, dst=res) / UDP(sport=33000, dport=53) / DNS(id=9, rd=1, qd=DNSQR(qname=SNI)),
        r / IP(src=res, dst=cli) / UDP(sport=53, dport=33000) / answer,
        e / IP(src=cli, dst=srv) / TCP(sport=40002, dport=443, flags="S", seq=100),
        r / IP(src=srv, dst=cli) / TCP(sport=443, dport=40002, flags="SA", seq=300, ack=101),
        e / IP(src=cli, dst=srv) / TCP(sport=40002, dport=443, flags="PA", seq=101, ack=301) / Raw(hello),
        e / IP(src=cli, dst=srv) / UDP(sport=7000, dport=7001) / Raw(b"log: " + LONG_STRING + b" from 192.0.2.10"),
    ]
    return mixed_frames() + [bytes(f) for f in frames]




@pytest.fixture
def original(tmp_path):
    return write_pcap(tmp_path / "orig.pcap", audit_frames())


def sanitize(src, out, manager, **options):
    build_executor(MaskConfig(**options), manager).run_file(src, out)
    return out


def assert_no_scratch(manager):
    assert manager.get_stats()["temp_files_count"] == 0
    if manager.has_root:
        assert not [p for p in manager.run_root.iterdir() if p.name.startswith("verify-")]


def values(category: dict, kind: str = "examples") -> set[str]:
    return {ex["value"] for ex in category[kind]}


# ---------------------------------------------------------------- whole runs


def test_unsanitized_copy_is_flagged_in_every_category(original, manager):
    report = verify(original, original, manager)
    assert_no_scratch(manager)
    assert report["schema_version"] == 1 and report["clean"] is False
    assert report["original"] == str(original) and report["sanitized"] == str(original)
    cats = report["categories"]
    assert set(cats) == set(CATEGORIES)
    for name in CATEGORIES:
        assert cats[name]["gathered"] > 0, name
        assert cats[name]["leaks"] > 0, name
        assert 0 < len(cats[name]["examples"]) <= 5
        for ex in cats[name]["examples"]:
            assert set(ex) == {"value", "packet", "where"} and ex["packet"] >= 1
    assert {ex["where"] for ex in cats["ip"]["examples"]} == {"header"}
    assert "192.0.2.10" in values(cats["ip"]) and "02:11:22:33:44:55" in values(cats["mac"])
    # The query string and the cookie are zeroed by policy: found intact, they are leaks.
    assert {"user=alice&token=SECRET", "session=SECRETCOOKIE"} <= values(cats["http"])
    # The Host value is zeroed by the allowlist (docs/policy.md): found intact, it is a leak.
    assert "intranet.example" in values(cats["http"])


def test_pipeline_output_is_clean_and_sni_is_pseudonymized(original, tmp_path, manager):
    out = sanitize(original, tmp_path / "out.pcap", manager, key=KEY)
    report = verify(original, out, manager)
    assert_no_scratch(manager)
    cats = report["categories"]
    assert_clean(report, {"intranet.example"})
    if MASK_HAS_HTTP_ALLOWLIST:
        for name in CATEGORIES:
            assert cats[name]["leaks"] == 0 and cats[name]["examples"] == []
    # The SNI (also a DNS query name) is pseudonymized like the DNS name (docs/policy.md, TLS).
    assert SNI not in values(cats["dns"], "policy_examples") and SNI not in values(cats["dns"])
    assert "intranet.example" not in values(cats["http"], "policy_examples")
    assert cats["dns"]["gathered"] >= 2 and cats["ip"]["gathered"] >= 6 and cats["mac"]["gathered"] == 2


def test_without_anonymization_only_addresses_leak(original, tmp_path, manager):
    out = sanitize(original, tmp_path / "out.pcap", manager, anonymize=False, anonymize_macs=False, key=None)
    cats = verify(original, out, manager)["categories"]
    assert_no_scratch(manager)
    # 198.51.100.77 is only in the DNS answer: zeroed by today's sanitizer, kept as it is once
    # DNS is kept structurally (docs/policy.md: without anonymization, like header addresses).
    assert cats["ip"]["leaks"] in (cats["ip"]["gathered"] - 1, cats["ip"]["gathered"])
    assert cats["mac"]["leaks"] == cats["mac"]["gathered"] == 2
    assert {ex["where"] for ex in cats["ip"]["examples"] + cats["mac"]["examples"]} == {"header"}
    # Names likewise: unchanged only in the DNS messages themselves and in the SNI (a long
    # printable string too), the places the policy pseudonymizes them.
    assert values(cats["strings"]) <= {SNI}, cats["strings"]["examples"]
    assert {ex["where"] for ex in cats["dns"]["examples"]} <= {"header", "DNS message", "payload (text)"}
    pending = set() if MASK_HAS_HTTP_ALLOWLIST else {"intranet.example"}
    assert values(cats["http"]) <= pending, cats["http"]["examples"]


def test_without_masking_payload_categories_leak(original, tmp_path, manager):
    out = sanitize(original, tmp_path / "out.pcap", manager, mask_payloads=False, key=KEY)
    cats = verify(original, out, manager)["categories"]
    assert cats["mac"]["leaks"] == 0
    # Anonymized headers and DNS answers (mapped in every mode, docs/policy.md "DNS"), but the
    # payloads still name hosts: the log line.
    assert "192.0.2.10" in values(cats["ip"]) and "198.51.100.77" not in values(cats["ip"])
    # Only the DNS answer's A record is an address field outside the IP headers.
    assert {ex["value"] for ex in cats["ip"]["examples"] if ex["where"] == "header"} <= {"198.51.100.77"}
    for name in ("http", "strings"):
        assert cats[name]["leaks"] > 0, name
    # DNS names are pseudonymized in every mode; names inside TCP streams only by the masking
    # pre-pass (docs/policy.md, TLS): without it the SNI survives, and the audit says so.
    assert SNI in values(cats["dns"])


def test_masked_http_stream_that_lost_sync_stays_clean(tmp_path, manager):
    # Masking zeroes everything after an invalid header line, line ends included, and
    # picks the stream up again at the next response; the audit must agree on that.
    from scapy.all import IP, TCP, Ether, Raw

    e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    r = Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:01")
    c, s = IP(src="192.0.2.1", dst="192.0.2.2"), IP(src="192.0.2.2", dst="192.0.2.1")
    req = b"GET /a?q=1234 HTTP/1.1\r\nHost: www.example.com\r\n\r\n"
    bad = (b"HTTP/1.1 200 OK\r\nX-Powered-By: Express\r\nBroken Header : true\r\n"
           b"Content-Length: 40\r\n\r\n" + b"b" * 20 + b"twenty body bytes!!!")
    good = b"HTTP/1.1 200 OK\r\nX-Powered-By: Express\r\nContent-Length: 0\r\n\r\n"
    frames = [
        e / c / TCP(sport=5000, dport=80, flags="S", seq=0),
        r / s / TCP(sport=80, dport=5000, flags="SA", seq=0, ack=1),
        e / c / TCP(sport=5000, dport=80, flags="PA", seq=1, ack=1) / Raw(req),
        r / s / TCP(sport=80, dport=5000, flags="PA", seq=1, ack=1 + len(req)) / Raw(bad),
        e / c / TCP(sport=5000, dport=80, flags="PA", seq=1 + len(req), ack=1 + len(bad)) / Raw(req),
        r / s / TCP(sport=80, dport=5000, flags="PA", seq=1 + len(bad), ack=1 + 2 * len(req)) / Raw(good),
    ]
    src = write_pcap(tmp_path / "h.pcap", [bytes(f) for f in frames])
    out = sanitize(src, tmp_path / "h-out.pcap", manager, key=KEY)
    report = verify(src, out, manager)
    assert_clean(report, {"www.example.com"})
    assert report["categories"]["strings"]["leaks"] == 0


def test_bad_inputs_raise_input_error_and_leave_no_scratch(original, tmp_path, manager):
    garbage = tmp_path / "garbage.pcap"
    garbage.write_bytes(b"this is not a capture at all")
    with pytest.raises(InputError):
        verify(original, garbage, manager)
    assert_no_scratch(manager)
    with pytest.raises(InputError):
        verify(garbage, original, manager)
    with pytest.raises(InputError):
        verify(tmp_path / "missing.pcap", original, manager)
    assert_no_scratch(manager)


# ---------------------------------------------------------------- DNS reader


def _header(qd=0, an=0, ns=0, ar=0) -> bytes:
    return struct.pack("!6H", 0x1234, 0x8180, qd, an, ns, ar)


def test_dns_compression_pointers_and_record_data():
    msg = _header(qd=1, an=3) + b"\x03www\x07example\x03com\x00" + b"\x00\x01\x00\x01"
    # CNAME www.example.com -> cdn.example.com (a label then a pointer to "example.com")
    cname = b"\x03cdn\xc0\x10"
    msg += b"\xc0\x0c" + struct.pack("!HHIH", 5, 1, 60, len(cname)) + cname
    msg += b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([192, 0, 2, 7])
    srv = struct.pack("!HHH", 0, 5, 443) + b"\x04host\xc0\x10"
    msg += b"\xc0\x0c" + struct.pack("!HHIH", 33, 1, 60, len(srv)) + srv
    content = read_message(msg)
    assert content.names == [b"www.example.com", b"cdn.example.com", b"host.example.com"]
    assert content.addresses == [bytes([192, 0, 2, 7])]
    assert read_name(msg, 12) == (b"www.example.com", 29)


def test_dns_pointer_loops_end():
    # A pointer to itself, and two pointers to each other: no hang, no exception.
    assert read_name(_header(qd=1) + b"\xc0\x0c", 12) == (None, -1)
    msg = _header(qd=1) + b"\x01a\xc0\x10" + b"\xc0\x0c"
    assert read_name(msg, 12) == (None, -1)
    assert read_message(msg).names == []


def test_dns_truncated_and_garbage_messages():
    full = _header(qd=1, an=1) + b"\x06secret\x04test\x00\x00\x01\x00\x01" \
        + b"\xc0\x0c" + struct.pack("!HHIH", 12, 1, 60, 12) + b"\x05other\x04test\x00"
    assert read_message(full).names == [b"secret.test", b"other.test"]
    for cut in range(len(full)):
        content = read_message(full[:cut])  # never raises
        assert set(content.names) <= {b"secret.test", b"other.test"}
    assert read_message(full[:30]).names == [b"secret.test"]
    assert read_message(b"").names == []
    assert read_message(_header(qd=0xFFFF, an=0xFFFF) + b"\x3f" * 40).names == []
    assert read_name(b"\x40abc", 0) == (None, -1)  # obsolete label type


def test_dns_wire_form():
    assert to_wire(b"www.example.com") == b"\x03www\x07example\x03com"
    assert to_wire(b"a..b") is None and to_wire(b"x" * 64) is None


# ---------------------------------------------------------------- search machinery


def test_needle_index_finds_overlapping_case_insensitive():
    index = NeedleIndex()
    for needle in (b"Example.COM", b"www.example.com", b"exam", b"abc"):
        index.add(needle, ("dns", needle.decode(), "t"))
    text = b"go to WWW.Example.Com now".lower()
    found = sorted((p, n) for p, n, _ in index.find(text, window_keys(text)))
    assert found == [(6, b"www.example.com"), (10, b"exam"), (10, b"example.com")]
    assert len(index) == 3  # "abc" is too short to search for


def test_needle_index_with_many_hits_uses_the_window_pass():
    index = NeedleIndex()
    words = [f"needle-{i:03d}".encode() for i in range(FEW_HITS * 3)]
    for w in words:
        index.add(w, ("strings", w.decode(), "t"))
    text = b"|".join(words[::-1]) + b"|needle-"
    found = {n for _, n, _ in index.find(text, window_keys(text))}
    assert found == set(words)


def test_address_spellings_in_payload():
    book = AddressBook()
    v4, v6, mac = bytes([192, 0, 2, 10]), bytes.fromhex("20010db8000000000000000000000010"), \
        bytes.fromhex("021122334455")
    for cat, raw in (("ip", v4), ("ip", v6), ("mac", mac)):
        book.add(cat, raw)
    book.add("ip", bytes([127, 0, 0, 1]))  # special: not recorded
    book.add("mac", b"\x01\x00\x5e\x00\x00\x01")  # group bit: not recorded
    assert len(book) == 3

    def found(data: bytes) -> set[tuple[str, str]]:
        return {(raw.hex(), where) for _c, raw, _s, _e, where in book.find(data, data.lower(), window_keys(data))}

    assert found(b"xx" + v4 + b"yy" + v6 + mac) == {(v4.hex(), "payload (binary)"), (v6.hex(), "payload (binary)"),
                                                    (mac.hex(), "payload (binary)")}
    assert found(b"from 192.0.2.10:80") == {(v4.hex(), "payload (text)")}
    assert found(b"from 192.0.2.100 and 1192.0.2.10") == set()  # digit boundaries
    assert found(b"[2001:DB8::10]:443") == {(v6.hex(), "payload (text)")}
    assert found(b"addr 2001:0db8:0000:0000:0000:0000:0000:0010.") == {(v6.hex(), "payload (text)")}
    assert found(b"inet6:2001:db8::10: up") == {(v6.hex(), "payload (text)")}
    assert found(b"inet6:2001:db8::10 up") == {(v6.hex(), "payload (text)")}
    assert found(b"2001:db8::100 2001:db8::10:1") == set()
    assert found(b"hw 02-11-22-33-44-55, 02:11:22:33:44:55 0211.2233.4455") == {(mac.hex(), "payload (text)")}
    assert found(b"10.2.0.192.in-addr.arpa") == {(v4.hex(), "payload (reverse DNS name)")}
    assert found(b"\x0210\x012\x010\x03192\x07in-addr\x04arpa\x00") == {(v4.hex(), "payload (reverse DNS name)")}
    nibbles = v6.hex()[::-1]
    assert found(".".join(nibbles).encode() + b".ip6.arpa") == {(v6.hex(), "payload (reverse DNS name)")}
    wire = b"".join(b"\x01" + c.encode() for c in nibbles) + b"\x03ip6\x04arpa"
    assert found(wire) == {(v6.hex(), "payload (reverse DNS name)")}


def test_raw_ipv4_spelling_a_word_in_text_is_not_an_address():
    book = AddressBook()
    book.add("ip", b"http")  # 104.116.116.112

    def hits(data: bytes) -> int:
        return len(list(book.find(data, data.lower(), window_keys(data))))

    assert hits(b"see http://example") == 0
    assert hits(b"\x00\x04http\x00\x00") == 1  # binary context: an address


def test_address_book_is_bounded():
    book = AddressBook(limit=2)
    for i in range(1, 10):
        book.add("ip", bytes([10, 0, 0, i]))
    assert book.count("ip") == 2


# ---------------------------------------------------------------- payload helpers


def test_needles_are_bounded_per_category(monkeypatch):
    monkeypatch.setitem(MAX_VALUES, "strings", 3)
    needles = Needles()
    for i in range(10):
        needles.add("strings", b"a long printable string #%d" % i)
        needles.add("http", b"value-%d" % i)
    needles.add("strings", b"A LONG PRINTABLE STRING #0")  # same value, other case
    assert needles.count("strings") == 3 and needles.count("http") == 10


def test_http_values():
    head = (b"GET /p?a=1&b=2#frag HTTP/1.1\r\nHOST: Intranet.Example\r\nCookie: s=abcdef \r\n"
            b"Authorization: Basic dXNlcjpw\r\nX-Other: ignored\r\nHost: ab\r\n\r\n")
    assert http_values(head) == [b"Intranet.Example", b"s=abcdef", b"Basic dXNlcjpw", b"a=1&b=2"]
    # Binary that looks like a header line yields no needle of control bytes.
    assert http_values(b"\x01\nhost: \x00\x00\x00\x00\x00\r\n") == []


def test_printable_pieces():
    assert list(printable_pieces(b"\x00short\x00" + b"=" * 40 + b"\x01")) == []
    run = bytes(range(0x41, 0x41 + 26)) * 4  # 104 printable bytes
    pieces = list(printable_pieces(b"\x00" + run + b"\x00"))
    assert pieces == [run[:64], run[64:]]
    assert list(printable_pieces(run[:70])) == [run[:64], run[54:70]]  # the tail is never too short


def test_dns_messages_need_a_dns_port():
    from scapy.all import DNS, DNSQR, IP, UDP, Ether, Raw

    dns = bytes(Ether() / IP() / UDP(sport=40000, dport=5353) / DNS(qd=DNSQR(qname="printer.local")))
    other = bytes(Ether() / IP() / UDP(sport=40000, dport=4000) / Raw(b"x" * 20))
    walker = Walker()
    for frame, expected in ((dns, 1), (other, 0)):
        walker.frame(frame, 1)
        msgs = [m for u in walker.udp for m in udp_dns(frame, *u)]
        assert len(msgs) == expected
    walker.frame(dns, 1)
    assert read_message(next(udp_dns(dns, *walker.udp[0]))[1]).names == [b"printer.local"]


# ---------------------------------------------------------------- lining up the two files


def test_frames_dropped_by_dedup_are_skipped(original, tmp_path, manager):
    out = sanitize(original, tmp_path / "out.pcap", manager, key=KEY, dedup=True)
    report = verify(original, out, manager)
    assert report["aligned"] is True
    assert_clean(report, {"intranet.example"})
    assert report["alignment"] == {"packets": len(audit_frames()) - 1, "skipped_duplicates": 1}


def test_frames_that_cannot_be_lined_up_fall_back_to_needles(original, tmp_path, manager):
    frames = audit_frames()
    shifted = write_pcap(tmp_path / "shifted.pcap", frames[:3] + frames[4:])  # one frame lost
    report = verify(original, shifted, manager)
    assert report["aligned"] is False and "could not be lined up" in report["notes"][0]
    assert "packet 4 of ORIGINAL" in report["alignment"]["failed"]
    assert report["findings"] == [] and report["categories"]["fields"]["leaks"] == 0
    cats = report["categories"]
    assert report["clean"] is False and cats["ip"]["leaks"] and cats["http"]["leaks"]
    assert {ex["where"] for ex in cats["ip"]["examples"]} == {"header"}
    assert "intranet.example" in values(cats["http"])  # the Host value is zeroed by the allowlist


def test_field_findings_name_packet_offset_and_field(original, tmp_path, manager):
    report = verify(original, original, manager)
    assert report["findings_total"] >= len(report["findings"]) > 0
    first = report["findings"][0]
    assert set(first) == {"packet", "original_packet", "offset", "length", "field", "kind"}
    assert {"packet": 1, "original_packet": 1, "offset": 0, "length": 6, "field": "eth.dst",
            "kind": "not mapped"} in report["findings"]
    cookie = next(f for f in report["findings"] if f["field"] == "http.value (cookie)" and f["packet"] == 8)
    assert cookie["kind"] == "unchanged"
    assert any(f["field"] == "tcp.payload" and f["packet"] == 9 for f in report["findings"])  # the body
