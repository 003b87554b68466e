"""The audit's own dissector and stream model (pktmask.verify.fields/network/transport/streams/payloads)."""

from __future__ import annotations

import pytest

from pktmask.verify.fields import Walker
from pktmask.verify.labels import (
    ADDR4,
    ADDR6,
    GPREFIX,
    KEEP,
    MAC,
    OTHER,
    SNODE,
    STREAM,
    ZERO,
    group_kind,
    leaks_unchanged,
)
from pktmask.verify.payloads import Http, Tls, target_cuts
from pktmask.verify.streams import StreamModel


def labels(frame: bytes, linktype: int = 1, complete=None) -> list[tuple[int, int, int, str]]:
    return Walker(complete).frame(frame, linktype).items


def kinds_at(items, offset: int) -> int:
    for a, b, kind, _ in items:
        if a <= offset < b:
            return kind
    return OTHER


def test_plain_tcp_frame():
    from scapy.all import IP, TCP, Ether, Raw

    f = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="192.0.2.1", dst="192.0.2.2")
              / TCP(sport=1, dport=2, options=[("MSS", 1460), ("NOP", None), ("NOP", None), ("SAckOK", b"")])
              / Raw(b"data"))
    items = labels(f)
    assert [(a, b, k) for a, b, k, _ in items] == [
        (0, 6, MAC), (6, 12, MAC), (12, 26, KEEP), (26, 30, ADDR4), (30, 34, ADDR4), (34, 62, KEEP), (62, 66, STREAM)]
    walker = Walker()
    walker.frame(f, 1)
    assert walker.tcp[3:] == (62, 66)


def test_cut_short_segment_checksum_must_be_zero_and_first_fragment_needs_the_last():
    from scapy.all import IP, TCP, Ether, Raw

    f = bytes(Ether() / IP(src="192.0.2.1", dst="192.0.2.2") / TCP() / Raw(b"x" * 40))
    assert kinds_at(labels(f), 50) == KEEP
    assert kinds_at(labels(f[:60]), 50) == ZERO  # cut short: the checksum covers bytes not captured
    frag = bytearray(f)
    frag[20] = 0x20  # MF, offset 0
    walker = Walker()
    walker.frame(bytes(frag), 1)
    assert kinds_at(walker.s.items, 50) == ZERO and walker.tcp is None
    key = bytes(frag[26:34]) + bytes([6]) + bytes(frag[18:20])
    assert kinds_at(labels(bytes(frag), complete={key}), 50) == KEEP


def test_unknown_option_keeps_kind_and_length_only():
    from scapy.all import IP, TCP, Ether

    f = bytes(Ether() / IP() / TCP(options=[(99, b"abcdef"), ("NOP", None), ("NOP", None)]))
    items = labels(f)
    assert kinds_at(items, 54) == KEEP and kinds_at(items, 55) == KEEP and kinds_at(items, 56) == OTHER
    assert [name for a, b, k, name in items if a == 56] == ["tcp.option[99].data"]


def test_derived_groups():
    import ipaddress

    def kind(text):
        return group_kind(ipaddress.IPv6Address(text).packed)

    assert kind("ff02::1:ff12:3456") == SNODE and kind("ff02::1") == ADDR6 and kind("2001:db8::1") == ADDR6
    assert kind("ff3e:40:2001:db8:1:2::1") == GPREFIX and kind("ff7e:140:2001:db8:1:2::1") == GPREFIX
    assert kind("ff3e::1234") == ADDR6  # SSM: no prefix
    assert not leaks_unchanged(ADDR6, ipaddress.IPv6Address("ff02::1").packed)
    assert leaks_unchanged(SNODE, ipaddress.IPv6Address("ff02::1:ff12:3456").packed)
    assert not leaks_unchanged(SNODE, ipaddress.IPv6Address("ff02::1:ff00:0").packed)
    assert not leaks_unchanged(ADDR4, bytes([224, 0, 0, 1])) and leaks_unchanged(ADDR4, bytes([10, 0, 0, 1]))
    assert not leaks_unchanged(MAC, bytes.fromhex("333300000001")) and leaks_unchanged(MAC, bytes.fromhex("020000000001"))


def test_vxlan_is_walked_only_when_header_and_inner_frame_parse():
    from scapy.all import IP, UDP, Ether, Raw

    inner = bytes(Ether(src="02:00:00:00:00:03", dst="02:00:00:00:00:04") / IP(src="192.0.2.7", dst="192.0.2.8"))
    good = bytes(Ether() / IP() / UDP(sport=1, dport=4789) / Raw(bytes([8, 0, 0, 0, 0, 0, 42, 0]) + inner))
    bad = bytes(Ether() / IP() / UDP(sport=1, dport=4789) / Raw(bytes([8, 1, 0, 0, 0, 0, 42, 0]) + inner))
    assert kinds_at(labels(good), 42 + 8) == MAC and kinds_at(labels(good), 42 + 8 + 26) == ADDR4
    assert {kinds_at(labels(bad), i) for i in range(42, len(bad))} == {OTHER}


def _http_keeps(request: bool, data: bytes, methods=None) -> bytes:
    from collections import deque

    kept = bytearray(len(data))

    def keep(at, blob):
        kept[at:at + len(blob)] = blob

    parser = Http(keep, request, methods if methods is not None else deque())
    parser.feed(0, data)
    return bytes(kept)


def test_http_request_keeps_path_names_and_allowlisted_values():
    head = (b"GET /a/b?user=alice#frag HTTP/1.1\r\nHost: www.example\r\nCookie: s=1\r\n"
            b"Location: http://u:p@h/x?y=1\r\nAccept: text/html\r\n"
            b"User-Agent: probe from 10.1.2.3 and 2001:db8::1\r\n\r\nBODY")
    kept = _http_keeps(True, head)
    # docs/policy.md: the path up to '?', '#' or ';'; only allowlisted values; IP literals zeroed.
    assert kept.startswith(b"GET /a/b" + bytes(len(b"?user=alice#frag")) + b" HTTP/1.1\r\nHost: "
                           + bytes(11) + b"\r\nCookie: \0\0\0\r\n")
    assert b"Location: " + bytes(len(b"http://u:p@h/x?y=1")) + b"\r\nAccept: text/html\r\n" in kept
    assert b"User-Agent: probe from " + bytes(8) + b" and " + bytes(11) + b"\r\n\r\n" in kept
    assert kept.endswith(b"\0\0\0\0")


def _cut(target: bytes, method: bytes = b"GET") -> bytes:
    out = bytearray(target)
    for a, b, _ in target_cuts(target, 0, len(target), method):
        out[a:b] = bytes(b - a)
    return bytes(out)


@pytest.mark.parametrize("target, method, expected", [
    (b"/a/b?x=1", b"GET", b"/a/b\0\0\0\0"),
    (b"/a;jsessionid=1", b"GET", b"/a" + bytes(13)),
    (b"/a#f", b"GET", b"/a\0\0"),
    (b"/p?", b"GET", b"/p\0"),
    (b"/10.1.2.3/x", b"GET", b"/" + bytes(8) + b"/x"),
    (b"/v/1.2.3.4.5/", b"GET", b"/v/1.2.3.4.5/"),  # a version, not an address
    (b"http://u:p@host.example:8080/p?q", b"GET", b"http://" + bytes(16) + b":8080/p\0\0"),
    (b"https://[2001:db8::1]:443/x", b"GET", b"https://" + bytes(13) + b":443/x"),
    (b"http://host", b"GET", b"http://\0\0\0\0"),
    (b"host.example:443", b"CONNECT", bytes(12) + b":443"),
    (b"[::1]:443", b"CONNECT", bytes(5) + b":443"),
    (b"*", b"OPTIONS", b"*"),
    (b"foo", b"GET", b"\0\0\0"),
])
def test_request_target_rules(target, method, expected):
    assert _cut(target, method) == expected


def test_http_response_to_head_has_no_body():
    from collections import deque

    methods = deque()
    _http_keeps(True, b"HEAD / HTTP/1.1\r\n\r\n", methods)
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    assert _http_keeps(False, resp, methods) == resp


def test_tls_keeps_headers_and_handshake_structure_only():
    kept = bytearray(64)

    def keep(at, blob):
        kept[at:at + len(blob)] = blob

    hello = bytes([22, 3, 1, 0, 8, 1, 0, 0, 4, 9, 9, 9, 9])
    app = bytes([23, 3, 3, 0, 17]) + b"S" * 17
    tls = Tls(keep)
    tls.feed(0, hello + app[:3])
    tls.feed(len(hello) + 3, app[3:])
    # A ClientHello cut short after its version: the rest of it must be zero.
    assert bytes(kept[:len(hello) + 5]) == hello[:11] + bytes(2) + app[:5]
    assert bytes(kept[len(hello) + 5:len(hello) + len(app)]) == bytes(17)


@pytest.mark.parametrize("cookie_first", [False, True])
def test_stream_model_first_copy_wins(cookie_first):
    # The same sequence numbers carry different bytes: a byte survives only where the kept
    # first copy has the same byte, so the retransmitted cookie never does.
    key = bytes(12)
    accept = b"GET / HTTP/1.1\r\nAccept: text/html\r\n\r\n"
    cookie = b"GET / HTTP/1.1\r\nCookie: secret=planted\r\n\r\n"
    copies = [cookie, accept] if cookie_first else [accept, cookie]
    segments = [(999, 0x02, b"")] + [(1000, 0x18, c) for c in copies]
    model = StreamModel()
    for seq, flags, payload in segments:
        model.segment(key, seq, flags, payload)
    model.finish()
    model.restart()
    kept = []
    for seq, flags, payload in segments:
        out = bytearray(len(payload))
        for a, b in model.kept(key, seq, flags, payload):
            out[a:b] = payload[a:b]
        kept.append(bytes(out))
    assert kept[1] == (copies[0] if not cookie_first else copies[0].replace(b"secret=planted", bytes(14)))
    assert b"secret" not in kept[1] + kept[2] and b"text/html" not in (kept[2] if cookie_first else b"")
    assert kept[2].startswith(b"GET / HTTP/1.1\r\n")
