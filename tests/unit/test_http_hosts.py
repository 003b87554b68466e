"""Tests for host names and IP literals in HTTP heads kept as pseudonyms (pktmask.proto.http_hosts,
docs/policy.md "Payloads"): Host, Origin, Referer, Location, request targets; IPv4 literals
padded with whitespace where the grammar allows it, IPv6 literals written in their length."""

from __future__ import annotations

import ipaddress
from collections import deque

import pytest

from pktmask.anon.cryptopan import AddressMapper
from pktmask.anon.names import NameMapper
from pktmask.proto.http import HttpParser
from pktmask.proto.http_hosts import HostRewriter, ipv6_text
from pktmask.proto.http_lines import header_line_keep, request_line_keep

KEY = bytes(range(32))


@pytest.fixture(scope="module")
def maps():
    return NameMapper(KEY), AddressMapper(KEY)


def image(line: bytes, keep, repl) -> bytes:
    out = bytearray(len(line))
    for a, b in keep:
        out[a:b] = line[a:b]
    for off, new in repl:
        assert any(a <= off and off + len(new) <= b for a, b in keep)
        out[off : off + len(new)] = new
    return bytes(out)


def header(line: bytes, maps) -> bytes:
    h = HostRewriter(*maps)
    parsed = header_line_keep(line, h)
    assert parsed is not None
    return image(line, parsed[2], h.repl)


def mapped4(maps, text: str) -> str:
    return str(ipaddress.IPv4Address(maps[1].map_v4(ipaddress.IPv4Address(text).packed)))


def test_host_name_and_port(maps):
    out = header(b"Host: www.Secret-Corp.example.com:8080\r\n", maps)
    assert out == b"Host: " + maps[0].map_name(b"www.Secret-Corp.example.com") + b":8080\r\n"
    assert len(out) == len(b"Host: www.Secret-Corp.example.com:8080\r\n")
    assert b"Secret" not in out and out.endswith(b".com:8080\r\n")


def test_origin_referer_location(maps):
    names = maps[0]
    host = names.map_name(b"app.secret-corp.com")
    assert header(b"Origin: https://app.secret-corp.com\r\n", maps) == b"Origin: https://" + host + b"\r\n"
    out = header(b"Referer: http://user:pw@app.secret-corp.com:81/a/b?token=1#x\r\n", maps)
    assert out == b"Referer: http://" + bytes(8) + host + b":81/a/b" + bytes(10) + b"\r\n"
    out = header(b"Location: /login?next=secret\r\n", maps)
    assert out == b"Location: /login" + bytes(12) + b"\r\n"
    out = header(b"Content-Location: //app.secret-corp.com/x\r\n", maps)
    assert out == b"Content-Location: //" + host + b"/x\r\n"
    assert header(b"Origin: null\r\n", maps) == b"Origin: " + bytes(4) + b"\r\n"


def test_ipv4_literal_mapped_and_padded(maps):
    orig = "10.2.2.104"
    new = mapped4(maps, orig).encode()
    out = header(b"Host: 10.2.2.104:8080\r\n", maps)
    if len(new) <= len(orig):
        assert out == b"Host: " + b" " * (len(orig) - len(new)) + new + b":8080\r\n"
    else:
        assert out == b"Host: " + bytes(len(orig)) + b":8080\r\n"
    out = header(b"Origin: http://10.2.2.104\r\n", maps)
    if len(new) <= len(orig):
        assert out == b"Origin: http://" + new + b" " * (len(orig) - len(new)) + b"\r\n"


def test_ipv4_literal_zeroed_where_it_cannot_be_written(maps):
    # In a request target nothing may pad: a mapped address of another length is zeroed.
    for last in range(1, 255):
        orig = f"10.9.8.{last}"
        if len(mapped4(maps, orig)) != len(orig):
            break
    h = HostRewriter(*maps)
    line = f"GET http://{orig}:80/p HTTP/1.1\r\n".encode()
    method, keep = request_line_keep(line, h)
    out = image(line, keep, h.repl)
    assert orig.encode() not in out and out.startswith(b"GET http://" + bytes(len(orig)) + b":80/p HTTP/1.1")


def test_ipv6_literal(maps):
    text = "2001:0db8:0001:0000:0000:0000:0000:0042"  # 39 bytes: any address can be written
    out = header(f"Host: [{text}]:443\r\n".encode(), maps)
    inner = out[7 : 7 + len(text)]
    assert out[6:7] == b"[" and out.endswith(b"]:443\r\n")
    addr = ipaddress.IPv6Address(inner.decode())
    assert addr.packed == maps[1].map_v6(ipaddress.IPv6Address(text).packed)
    # A short literal: the mapped address rarely fits (no zero groups to compress): zeroed then.
    out = header(b"Host: [2001:db8:1::42]:443\r\n", maps)
    inner = out[7:21]
    assert out.endswith(b":443\r\n")
    if inner.strip(b"\0"):
        assert ipaddress.IPv6Address(inner.decode()).packed == maps[1].map_v6(
            ipaddress.IPv6Address("2001:db8:1::42").packed)
    else:
        assert out[6:22] == bytes(16)


def test_ipv6_text_lengths():
    addr = ipaddress.IPv6Address("2001:db8::1").packed
    for n in range(len("2001:db8::1"), 40):
        t = ipv6_text(addr, n)
        assert t is not None and len(t) == n and ipaddress.IPv6Address(t.decode()).packed == addr
    assert ipv6_text(addr, 5) is None
    full = bytes([0x12] * 16)  # eight 4-digit groups
    assert ipv6_text(full, 38) is None and len(ipv6_text(full, 39) or b"") == 39


def test_request_targets(maps):
    names = maps[0]
    h = HostRewriter(*maps)
    line = b"CONNECT vpn.secret-corp.com:443 HTTP/1.1\r\n"
    _, keep = request_line_keep(line, h)
    assert image(line, keep, h.repl) == b"CONNECT " + names.map_name(b"vpn.secret-corp.com") + b":443 HTTP/1.1\r\n"
    h = HostRewriter(*maps)
    line = b"GET http://a.secret-corp.com/x?y HTTP/1.1\r\n"
    _, keep = request_line_keep(line, h)
    assert image(line, keep, h.repl) == b"GET http://" + names.map_name(b"a.secret-corp.com") + b"/x\0\0 HTTP/1.1\r\n"


def test_without_mappers_hosts_kept_and_without_rewriter_zeroed():
    line = b"Host: www.secret-corp.com\r\n"
    h = HostRewriter(None, None)
    _, _, keep = header_line_keep(line, h)
    assert image(line, keep, h.repl) == line
    _, _, keep = header_line_keep(line)
    assert image(line, keep, []) == b"Host: " + bytes(19) + b"\r\n"


def test_parser_replacements_in_stream_offsets(maps):
    head = b"GET / HTTP/1.1\r\nHost: www.secret-corp.com\r\nReferer: http://x.secret-corp.com/\r\n\r\n"
    p = HttpParser(1000, True, True, deque(), HostRewriter(*maps))
    p.feed(head[:30])
    p.feed(head[30:])
    keep = [(a - 1000, b - 1000) for a, b in p.take_ranges()]
    repl = [(o - 1000, new) for o, new in p.take_replacements()]
    out = image(head, keep, repl)
    assert b"secret" not in out
    assert maps[0].map_name(b"www.secret-corp.com") in out and maps[0].map_name(b"x.secret-corp.com") in out
    assert p.take_replacements() == []
