"""Tests for the HTTP/1.x line grammar and the incremental head/body finder (pktmask.proto.http_lines, http)."""

from __future__ import annotations

import re
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pktmask.proto.http import MAX_HEAD, MAX_PENDING_METHODS, HttpParser, find_head_end, parse_head
from pktmask.proto.http_lines import (
    MAX_LINE,
    content_len,
    header_line_keep,
    looks_like_request,
    looks_like_response,
    request_line_keep,
    status_code,
    status_line_keep,
)


def K(b: bytes) -> tuple[bytes, bool]:
    """A piece of stream that must be kept."""
    return b, True


def Z(b: bytes) -> tuple[bytes, bool]:
    """A piece of stream that must be zeroed."""
    return b, False


def build(*pieces) -> tuple[bytes, bytes]:
    """Return (stream, stream as the caller should write it)."""
    data = b"".join(b for b, _ in pieces)
    want = b"".join(b if keep else bytes(len(b)) for b, keep in pieces)
    return data, want


def merge(ranges):
    out: list[list[int]] = []
    for s, e in sorted(ranges):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [tuple(r) for r in out]


def run(parser: HttpParser, chunks):
    """Feed chunks, check the interface invariants after each, return the merged keep ranges."""
    got = []
    prev_decided = parser.decided
    for ch in chunks:
        parser.feed(ch)
        rs = parser.take_ranges()
        assert rs == sorted(rs)
        for (_, e1), (s2, _) in zip(rs, rs[1:], strict=False):
            assert e1 < s2, "ranges of one take must be merged and disjoint"
        for s, e in rs:
            assert prev_decided <= s < e <= parser.pos
        assert prev_decided <= parser.decided <= parser.pos
        assert parser.pos - parser.decided <= MAX_LINE
        prev_decided = parser.decided
        got += rs
    return merge(got)


def apply(data: bytes, ranges, base: int = 0) -> bytes:
    out = bytearray(len(data))
    for s, e in ranges:
        out[s - base : e - base] = data[s - base : e - base]
    return bytes(out)


def split(data: bytes, cuts) -> list[bytes]:
    pts = [0, *sorted(set(cuts)), len(data)]
    return [data[a:b] for a, b in zip(pts, pts[1:], strict=False) if b > a]


def req(**kw) -> HttpParser:
    return HttpParser(is_request=True, methods=kw.pop("methods", deque()), **kw)


def resp(methods=(), **kw) -> HttpParser:
    return HttpParser(is_request=False, methods=deque(methods), **kw)


def state(p: HttpParser):
    return (p.messages, p.messages_masked, p.synced, p.decided == p.pos)


def check(make, pieces, cuts_list=None):
    """Check the masked output unsplit, then split at every position (or the given cuts)."""
    data, want = build(*pieces)
    ref_p = make()
    ref = run(ref_p, [data])
    assert apply(data, ref) == want
    if cuts_list is None:
        cuts_list = [[k] for k in range(1, len(data))]
    for cuts in cuts_list:
        p = make()
        assert run(p, split(data, cuts)) == ref, cuts
        assert state(p) == state(ref_p), cuts
    return ref_p


# --- requests ------------------------------------------------------------


def test_get_with_query_and_cookie():
    methods: deque[bytes] = deque()
    # Allowlist policy: the '?' goes with the query, the Host value is zeroed.
    p = check(lambda: req(methods=methods), [
        K(b"GET /search"), Z(b"?q=secret&id=42"), K(b" HTTP/1.1\r\n"),
        K(b"Host: "), Z(b"example.com"), K(b"\r\n"),
        K(b"cookie: "), Z(b"session=abc; other=1"), K(b"\r\n"),
        K(b"\r\n"),
    ])
    assert p.messages == 1 and p.messages_masked == 1
    assert list(methods)[-1] == b"GET"


def test_post_with_content_length_body_then_keepalive():
    check(req, [  # Host values are zeroed (allowlist)
        K(b"POST /upload HTTP/1.1\r\nHost: "), Z(b"h"), K(b"\r\nContent-Length: 11\r\n\r\n"),
        Z(b"hello\r\nworl"),
        K(b"GET /next HTTP/1.1\r\nHost: "), Z(b"h"), K(b"\r\n\r\n"),
    ])


def test_pipelined_requests_in_one_chunk():
    data, want = build(  # no Host values: the first two requests have nothing zeroed
        K(b"GET /a HTTP/1.1\r\nAccept: */*\r\n\r\n"),
        K(b"HEAD /b HTTP/1.1\r\nConnection: keep-alive\r\n\r\n"),
        K(b"GET /c"), Z(b"?x"), K(b" HTTP/1.1\r\nAuthorization: "), Z(b"Basic dTpw"), K(b"\r\n\r\n"),
    )
    methods: deque[bytes] = deque()
    p = req(methods=methods)
    assert apply(data, run(p, [data])) == want
    assert list(methods) == [b"GET", b"HEAD", b"GET"]
    assert (p.messages, p.messages_masked) == (3, 1)


def test_sensitive_values_zeroed_names_kept():
    p = check(req, [
        K(b"GET / HTTP/1.1\r\n"),
        K(b"AUTHORIZATION: "), Z(b"Bearer xyz"), K(b"\r\n"),
        K(b"Proxy-Authorization:"), Z(b"Basic abc"), K(b"\r\n"),
        K(b"Referer:   "), Z(b"https://a.example/?u=1 "), K(b"\r\n"),
        K(b"X-Forwarded-For: "), Z(b"10.0.0.1, 192.0.2.7"), K(b"\r\n"),
        K(b"Forwarded: "), Z(b"for=192.0.2.60"), K(b"\r\n"),
        K(b"Cookie:\r\n"),  # empty value: nothing to zero
        K(b"User-Agent: curl/8\r\n\r\n"),
    ])
    assert p.messages_masked == 1


def test_absolute_form_userinfo_and_query_zeroed():
    # Allowlist policy: userinfo, '@' and host zeroed, the port kept, then the path rule.
    check(req, [
        K(b"GET http://"), Z(b"user:pw@proxy.example"), K(b":8080/p"), Z(b"?k=v"),
        K(b" HTTP/1.1\r\nHost: "), Z(b"proxy.example"), K(b"\r\n\r\n"),
    ])


def test_chunked_request_body():
    check(req, [
        K(b"POST /x HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
        K(b"4\r\n"), Z(b"abcd"), K(b"\r\n0\r\n\r\n"),
        K(b"GET /y HTTP/1.1\r\n\r\n"),
    ])


def test_bare_lf_line_ends():
    check(req, [
        K(b"GET /a"), Z(b"?b=c"), K(b" HTTP/1.0\nHost: "), Z(b"h"), K(b"\nCookie: "), Z(b"k=v"),
        K(b"\nContent-Length: 3\n\n"), Z(b"abc"),
        K(b"GET / HTTP/1.0\r\n\n"),
    ])


def test_obsolete_line_folding_follows_its_header():
    # Allowlist policy: a continuation is kept only with a kept value (minus IP literals).
    check(req, [
        K(b"GET / HTTP/1.1\r\nX-Long: "), Z(b"part one"), K(b"\r\n"),
        Z(b"   part two"), K(b"\r\n"),
        K(b"user-agent: part one\r\n"),
        K(b"\t part two "), Z(b"10.1.2.3"), K(b"\r\n"),
        K(b" \r\n"),  # a blank continuation: nothing to zero
        K(b"Accept: */*\r\n"),
        K(b"Cookie: "), Z(b"a=b"), K(b"\r\n"), Z(b" c=d"), K(b"\r\n"),
        K(b"\r\n"),
    ])


def test_folded_line_right_after_the_start_line_is_zeroed():
    check(req, [K(b"GET / HTTP/1.1\r\n"), Z(b" secret"), K(b"\r\n\r\n")])


def test_leading_empty_lines_before_request_are_tolerated():
    check(req, [K(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n")])


def test_connect_request_tunnel_zeroed():
    # Allowlist policy: the authority's host and the Host value are zeroed, the port kept.
    p = check(req, [K(b"CONNECT "), Z(b"example.com"), K(b":443 HTTP/1.1\r\nHost: "), Z(b"example.com:443"),
                    K(b"\r\n\r\n"),
                    Z(b"\x16\x03\x01\x00\x05hello GET / HTTP/1.1\r\n\r\n")])
    assert p.synced


# --- allowlist (docs/policy.md, "Payloads"; issue 13) ----------------------------


def head_check(make, start: bytes, *pieces):
    """Check a head (start line, header pieces, blank line), split at every position."""
    return check(make, [K(start), *pieces, K(b"\r\n")])


@pytest.mark.parametrize("name, value", [
    (b"X-Api-Key", b"sk_live_51SECRET"),
    (b"X-Auth-Token", b"0123456789abcdef"),
    (b"X-Amz-Security-Token", b"FwoGZXIvYXdzEJr//////////wEaDSECRET=="),
    (b"X-CSRF-Token", b"c2VjcmV0LWNzcmY="),
    (b"Cookie2", b'$Version="1"'),
    (b"Sec-WebSocket-Protocol", b"chat, bearer.eyJhbGciOiJIUzI1NiJ9.SECRET"),
    (b"Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
    (b"Refresh", b"0; url=/next?token=SECRET"),
    (b"Link", b"</page?session=SECRET>; rel=next"),
    (b"Destination", b"http://dav.example/new?k=SECRET"),
    (b"X-Original-URL", b"/admin?token=SECRET"),
    (b"Host", b"10.2.2.104"),
    (b"host", b"intranet.example:8080"),
    (b"Origin", b"http://10.2.2.104:3000"),
    (b"X-Real-IP", b"10.2.2.104"),
    (b"True-Client-IP", b"2001:db8::7"),
    (b"X-Client-IP", b"10.2.2.104"),
    (b"X-Forwarded-Host", b"10.2.2.104"),
    (b"X-FORWARDED-FOR", b"10.2.2.104"),
    (b"Via", b"1.1 10.2.2.104 (squid/5.7)"),
    (b"Referer", b"http://10.2.2.104/"),
    (b"Authorization", b"Bearer SECRET"),
    (b"X-Unknown-Header", b"anything"),
])
def test_request_header_values_outside_the_allowlist_zeroed(name, value):
    head_check(req, b"GET / HTTP/1.1\r\n", K(name + b": "), Z(value), K(b"\r\n"))


@pytest.mark.parametrize("name, value", [
    (b"WWW-Authenticate", b"NTLM TlRMTVNTUAACAAAADAAMADgAAAAFgoqiSECRET"),
    (b"Proxy-Authenticate", b'Basic realm="corp"'),
    (b"Set-Cookie2", b'sid=SECRET; Version="1"'),
    (b"Set-Cookie", b"sid=SECRET; Path=/"),
    (b"Location", b"https://app.example/cb#access_token=SECRET&token_type=bearer"),
    (b"Location", b"http://10.2.2.104/login"),
    (b"Content-Location", b"/doc#access_token=SECRET"),
    (b"Refresh", b"5; url=https://app.example/?sid=SECRET"),
    (b"Sec-WebSocket-Accept", b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
    (b"Sec-WebSocket-Protocol", b"bearer.SECRET"),
    (b"ETag", b'"abc123"'),
    (b"X-Powered-By", b"PHP/8.2"),
])
def test_response_header_values_outside_the_allowlist_zeroed(name, value):
    head_check(lambda: resp([b"GET"]), b"HTTP/1.1 204 No Content\r\n", K(name + b": "), Z(value), K(b"\r\n"))


ALLOWED = [
    b"Accept: text/html,application/xhtml+xml;q=0.9,*/*;q=0.8",
    b"Accept-Charset: utf-8",
    b"Accept-Encoding: gzip, deflate, br",
    b"Accept-Language: en-US,en;q=0.5",
    b"Accept-Ranges: bytes",
    b"Age: 120",
    b"Allow: GET, HEAD",
    b"Cache-Control: no-cache, max-age=0",
    b"Connection: keep-alive, Upgrade",
    b"Content-Encoding: gzip",
    b"Content-Language: de-DE",
    b"Content-Range: bytes 0-99/1234",
    b"Content-Type: text/html; charset=UTF-8",
    b"Date: Tue, 15 Nov 1994 08:12:31 GMT",
    b"Expect: 100-continue",
    b"Expires: Thu, 01 Dec 1994 16:00:00 GMT",
    b"Keep-Alive: timeout=5, max=1000",
    b"Last-Modified: Wed, 21 Oct 2015 07:28:00 GMT",
    b"Max-Forwards: 10",
    b"Pragma: no-cache",
    b"Range: bytes=0-99",
    b"Retry-After: 120",
    b"Sec-Fetch-Dest: document",
    b"Sec-Fetch-Mode: navigate",
    b"Sec-Fetch-Site: same-origin",
    b"Sec-Fetch-User: ?1",
    b"Sec-WebSocket-Version: 13",
    b"Server: Apache/2.4.57 (Debian)",
    b"TE: trailers",
    b"Trailer: Expires",
    b"Upgrade: websocket",
    b"Upgrade-Insecure-Requests: 1",
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0.6099.109 Safari/537.36",
    b"Vary: Accept-Encoding",
    b"Warning: 110 - \"Response is Stale\"",
    b"X-Content-Type-Options: nosniff",
    b"CONTENT-TYPE: text/plain",  # names are compared case-insensitively
    b"user-agent: curl/8.5.0",
    b"Content-Type:",  # an empty value
]


def test_allowlisted_values_kept_byte_for_byte():
    head = b"GET / HTTP/1.1\r\n" + b"".join(h + b"\r\n" for h in ALLOWED) + b"Content-Length: 0\r\n\r\n"
    check(req, [K(head)], [[k] for k in range(1, len(head), 7)])
    assert header_line_keep(b"sec-websocket-version:13") == (b"sec-websocket-version", b"13", [(0, 24)])


@pytest.mark.parametrize("pieces", [
    [K(b"Server: nginx at "), Z(b"10.1.2.3"), K(b" ok")],
    [K(b"Server: Apache ("), Z(b"2001:db8::1"), K(b")")],
    [K(b"User-Agent: agent/1.0 ("), Z(b"10.1.2.3"), K(b"; "), Z(b"fe80::1"), K(b"%eth0)")],
    [K(b"User-Agent: Chrome/"), Z(b"120.0.0.0"), K(b" Safari/537.36")],  # a version that is a dotted quad
    [K(b"Server: x/"), Z(b"1.2.3.4.5"), K(b" y")],  # the whole run of digits and dots
    [K(b"Server: a"), Z(b"1000.1.2.3000"), K(b"b")],  # "000.1.2.300" is in it
    [K(b"Server: "), Z(b"::ffff:192.0.2.1"), K(b" mapped")],
    [K(b"Server: x"), Z(b"010.001.002.003"), K(b"y "), Z(b"0.0.0.0")],
    [K(b"Server: ["), Z(b"::"), K(b"] 1.2.3 1.256.2.3 1.2.3000.4 v1..2.3.4")],  # no quads in these: kept
    [K(b"Server: box "), Z(b"00:11:22:33:44:55")],  # five colons: zeroed like an address
    [K(b"Date: Tue, 15 Nov 1994 08:12:31 GMT")],
    [K(b"Accept-Language: "), Z(b"10.1.2.3"), K(b",en")],
])
def test_ip_literals_in_kept_values_zeroed(pieces):
    head_check(req, b"GET / HTTP/1.1\r\n", *pieces, K(b"\r\n"))


_QUAD = re.compile(rb"[0-9]\.([0-9]{1,3})\.([0-9]{1,3})\.[0-9]")
_V6_RUN = re.compile(rb"[0-9A-Fa-f:.]+")


@settings(max_examples=300, deadline=None)
@given(value=st.binary(max_size=60).map(lambda b: bytes(b"0123456789.:.:af x/"[c % 19] for c in b)))
def test_no_ip_literal_left_in_a_kept_value(value):
    """Whatever the value, what is kept of it holds no dotted quad, no "::" and no run of five colons."""
    line = b"Server: " + value + b"\r\n"
    _, _, keep = header_line_keep(line)
    kept = apply(line, keep)
    for i in range(len(kept)):  # every start: matches may overlap
        m = _QUAD.match(kept, i)
        assert m is None or int(m.group(1)) > 255 or int(m.group(2)) > 255, (value, kept)
    for run in _V6_RUN.findall(kept):
        assert b"::" not in run and run.count(b":") < 5, (value, kept)
    assert all(k in (0, v) for k, v in zip(kept, line, strict=True))


@pytest.mark.parametrize("target", [
    [K(b"/")],
    [K(b"/a/b.html")],
    [K(b"/search"), Z(b"?q=secret")],
    [K(b"/page"), Z(b"#access_token=SECRET")],
    [K(b"/app"), Z(b";jsessionid=0123456789ABCDEF/x?y=1")],
    [K(b"/a"), Z(b"?")],
    [K(b"/proxy/"), Z(b"10.1.2.3"), K(b"/x")],
    [K(b"/v6/["), Z(b"2001:db8::1"), K(b"]/x")],
    [K(b"/p/"), Z(b"10%2E1%2e2.3"), K(b"/"), Z(b"%3A%3a1"), K(b"/x%41")],  # percent-encoded '.', ':'
    [K(b"//"), Z(b"user@host.example"), K(b"/x")],  # an authority without a scheme
    [K(b"//"), Z(b"host.example"), K(b":81/x")],
    [K(b"http://"), Z(b"user:pa/ss@rd@host.example"), K(b":8080/p"), Z(b"?q")],
    [K(b"http://"), Z(b"user:pa/ss#w@rd@host.example:8080/p?q")],  # '#' before the last '@': all zeroed
    [K(b"http://"), Z(b"host.example/?w=/@widgets/x&r=0.339")],  # an '@' in the query: all zeroed
    [K(b"http://"), Z(b"host.example"), K(b"/p/q")],
    [K(b"https://"), Z(b"[2001:db8::1]"), K(b":443/")],
    [K(b"HTTP://"), Z(b"10.2.2.104"), Z(b"#frag")],
    [K(b"http://"), Z(b"host.example/users/@me")],  # an '@' in the path: zeroed from the host on
    [K(b"ftp+x.y://"), Z(b"h:")],  # an empty port is not a port
    [Z(b"mailto:someone@example.com")],  # no known form: zeroed whole
    [Z(b"host.example:443")],  # authority-form is only for CONNECT
    [K(b"*")],
])
def test_request_target_forms(target):
    head_check(req, b"", K(b"GET "), *target, K(b" HTTP/1.1\r\n"))


@pytest.mark.parametrize("target", [
    [Z(b"host.example"), K(b":443")],
    [Z(b"10.2.2.104"), K(b":8443")],
    [Z(b"[2001:db8::1]"), K(b":443")],
    [Z(b"user:pw@host.example"), K(b":443")],
    [Z(b"host.example")],  # no port
    [K(b"/"), Z(b"?x")],
])
def test_connect_authority_form(target):
    check(req, [K(b"CONNECT "), *target, K(b" HTTP/1.1\r\n\r\n")])


def test_leaks_split_across_segments():
    """A head with one of each leak, cut at every position (values and targets split across segments)."""
    check(req, [
        K(b"GET http://"), Z(b"u:p@ss@10.2.2.104"), K(b":8080/proxy/"), Z(b"10.1.2.3"), K(b"/x"),
        Z(b";jsessionid=AB?x#y"), K(b" HTTP/1.1\r\n"),
        K(b"Host: "), Z(b"10.2.2.104"), K(b"\r\n"),
        K(b"x-api-key: "), Z(b"SECRET"), K(b"\r\n"),
        K(b"User-Agent: ua ["), Z(b"2001:db8::1"), K(b"]\r\n"),
        K(b" folded "), Z(b"192.0.2.1"), K(b"\r\n"),
        K(b"Sec-WebSocket-Protocol: "), Z(b"bearer.SECRET"), K(b"\r\n\r\n"),
    ])


# --- responses -------------------------------------------------------------


def test_chunked_response_with_extensions_and_trailers():
    p = check(resp, [
        K(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nSet-Cookie: "), Z(b"id=1; HttpOnly"),
        K(b"\r\n\r\n"),
        K(b"1a"), Z(b";name=secret"), K(b"\r\n"), Z(b"abcdefghijklmnopqrstuvwxyz"), K(b"\r\n"),
        K(b"5"), Z(b" "), K(b"\r\n"), Z(b"01234"), K(b"\r\n"),
        K(b"0\r\n"), Z(b"Expires: never\r\nX-Checksum: abc\r\n"), K(b"\r\n"),
        K(b"HTTP/1.1 204 No Content\r\n\r\n"),
    ])
    assert (p.messages, p.messages_masked) == (2, 1)


def test_keepalive_three_responses():
    check(lambda: resp([b"GET", b"GET", b"POST"]), [
        K(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"), Z(b"hello"),
        K(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n"), Z(b"abc"),
        K(b"\r\n0\r\n\r\n"),
        K(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n"), Z(b"ok"),
    ])


def test_head_response_has_no_body_via_methods_deque():
    methods: deque[bytes] = deque()
    request = req(methods=methods)
    run(request, [b"HEAD /big HTTP/1.1\r\nHost: h\r\n\r\nGET /small HTTP/1.1\r\nHost: h\r\n\r\n"])
    assert list(methods) == [b"HEAD", b"GET"]
    data, want = build(
        K(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"),
        K(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n"), Z(b"data"),
    )
    p = HttpParser(is_request=False, methods=methods)
    assert apply(data, run(p, [data])) == want
    assert not methods and p.messages == 2


def test_304_and_204_have_no_body():
    check(lambda: resp([b"GET", b"GET", b"GET"]), [
        K(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 999\r\n\r\n"),
        K(b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n"),
        K(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n"), Z(b"x"),
    ])


def test_interim_100_continue_does_not_consume_a_method():
    methods = deque([b"POST"])
    check(lambda: resp(methods), [
        K(b"HTTP/1.1 100 Continue\r\n\r\n"),
        K(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"), Z(b"abc"),
        K(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n"), Z(b"d"),
    ])
    assert list(methods) == [b"POST"]  # the lambda copies it each time


def test_read_until_close_response():
    p = check(resp, [
        K(b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\n"),
        Z(b"<html>HTTP/1.1 200 OK\r\n\r\n...</html>"),
    ])
    assert p.messages == 1
    run(p, [b"HTTP/1.1 200 OK\r\n\r\n"])  # even a chunk that looks like a head: zero
    assert p.messages == 1


def test_unknown_transfer_coding_response_reads_until_close():
    check(resp, [K(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"), Z(b"\x1f\x8b0\r\n\r\n")])


def test_switching_protocols_and_connect_tunnels():
    check(resp, [K(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"),
                 Z(b"\x81\x05hello")])
    check(lambda: resp([b"CONNECT"]), [K(b"HTTP/1.1 200 Connection established\r\n\r\n"),
                                       Z(b"\x16\x03\x03\x00\x10" + b"x" * 16)])


def test_ip_literal_in_a_reason_phrase_zeroed():
    # The policy keeps the reason phrase and is silent on an IP literal in it: zeroed (fail closed).
    check(lambda: resp([b"GET"]), [K(b"HTTP/1.1 502 Upstream "), Z(b"10.1.2.3"), K(b" down\r\n\r\n")])


def test_status_line_without_reason():
    check(lambda: resp([b"GET"]), [K(b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"),
                                   K(b"HTTP/1.1 404 \r\n\r\n")])


# --- failing closed and resync ----------------------------------------------


@pytest.mark.parametrize("good, bad", [
    (b"", b"Content-Length: abc\r\n"),
    (b"", b"Content-Length: -1\r\n"),
    (b"", b"Content-Length: 5, 6\r\n"),
    (b"Content-Length: 5\r\n", b"Content-Length: 6\r\n"),
    (b"", b"Bad Header Line\r\n"),
    (b"Content-Length: 5\r\n", b"  5\r\n"),  # folded framing header
])
def test_bad_framing_loses_sync(good, bad):
    head = b"HTTP/1.1 200 OK\r\n" + good
    data = head + bad + b"\r\nhello"
    p = resp()
    assert run(p, [data]) == [(0, len(head))]
    assert not p.synced and p.decided == p.pos


def test_same_content_length_twice_is_fine():
    check(resp, [K(b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\n"),
                 Z(b"ab")])


@pytest.mark.parametrize("line", [
    b"get / HTTP/1.1\r\n",  # accepted: any token is a method in sync
    b"GET /  HTTP/1.1\r\n",
    b"GET / HTTP/2.0\r\n",
    b"GET /\r\n",
    b"\x16\x03\x01\x00\x10\r\n",
])
def test_request_line_validation(line):
    p = req()
    run(p, [line + b"\r\n"])
    assert p.synced is (line == b"get / HTTP/1.1\r\n")


def test_transfer_encoding_without_chunked_request_loses_sync():
    p = req()
    run(p, [b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nxx"])
    assert not p.synced


def test_resync_only_at_chunk_start():
    p = req(synced=False, pos=500)
    assert run(p, [b"tail of body GET / HTTP/1.1\r\n\r\n"]) == [] and not p.synced
    assert run(p, [b"GETX / HTTP/1.1\r\n\r\n"]) == [] and not p.synced
    start = p.pos
    assert run(p, [b"GET / HT"]) == []  # prefix is enough when the LF is absent
    assert p.synced and p.decided == start  # the split line stays undecided
    p.feed(b"TP/1.1\r\n\r\n")
    assert p.take_ranges() and p.messages == 1


def test_resync_response_needs_valid_status_line():
    p = resp(synced=False)
    assert run(p, [b"HTTP/1.1 2000 OK\r\n\r\n"]) == [] and not p.synced
    assert run(p, [b"HTTP/1.1 204 No\r\n\r\n"]) == [(20, 39)] and p.synced


def test_lost_sync_mid_chunk_then_resync():
    p = req()
    run(p, [b"GET / HTTP/1.1\r\n\r\nBOGUS\r\n\r\nGET / HTTP/1.1\r\n\r\n"])
    assert not p.synced and p.messages == 1
    run(p, [b"GET /again HTTP/1.1\r\n\r\n"])
    assert p.synced and p.messages == 2


def test_line_too_long_loses_sync():
    p = req()
    run(p, [b"GET / HTTP/1.1\r\nX: " + b"a" * 5000])
    assert p.synced and p.decided == 16
    run(p, [b"a" * 5000])
    assert not p.synced and p.decided == p.pos
    p2 = req()
    run(p2, [b"GET / HTTP/1.1\r\nX: " + b"a" * MAX_LINE + b"\r\n\r\n"])
    assert not p2.synced


def test_head_too_big_loses_sync():
    p = req()
    line = b"X-Filler: " + b"a" * 1000 + b"\r\n"
    run(p, [b"GET / HTTP/1.1\r\n"] + [line] * (MAX_HEAD // len(line) + 1))
    assert not p.synced


def test_decided_lags_on_partial_line():
    p = req()
    p.feed(b"GET / HTTP/1.1\r\nCook")
    assert p.take_ranges() == [(0, 16)] and p.decided == 16 and p.pos == 20
    p.feed(b"ie: a=b\r")
    assert p.take_ranges() == [] and p.decided == 16
    p.feed(b"\n\r\n")
    assert p.take_ranges() == [(16, 24), (27, 31)] and p.decided == p.pos == 31


def test_gap_in_body_keeps_sync_gap_in_head_loses_it():
    p = resp([b"GET"])
    run(p, [b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nabc"])
    p.gap(p.pos + 500)
    assert p.synced
    p.gap(p.pos + 497)  # exactly the rest of the body
    assert run(p, [b"HTTP/1.1 204 No Content\r\n\r\n"]) and p.messages == 2
    p.feed(b"HTTP/1.1 200 OK\r\nCont")
    p.gap(p.pos + 10)
    assert not p.synced and p.decided == p.pos
    with pytest.raises(ValueError):
        p.gap(p.pos - 1)


def test_methods_queue_is_bounded():
    methods: deque[bytes] = deque()
    p = req(methods=methods)
    run(p, [b"GET / HTTP/1.1\r\n\r\n" * (MAX_PENDING_METHODS + 50)])
    assert len(methods) == MAX_PENDING_METHODS


def test_large_body_memoryview_is_cheap():
    body = bytes(50_000_000)
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
    p = resp()
    mv = memoryview(head + body)
    for i in range(0, len(mv), 65536):
        p.feed(mv[i : i + 65536])
    assert p.take_ranges() == [(0, len(head))] and p.synced and p.decided == len(mv)


# --- random splits -----------------------------------------------------------

STREAMS = {
    "req": (req, [
        K(b"POST /a"), Z(b"?x=1"), K(b" HTTP/1.1\r\nCookie: "), Z(b"c"), K(b"\r\nContent-Length: 4\r\n\r\n"),
        Z(b"body"), K(b"GET / HTTP/1.1\nReferer: "), Z(b"r"), K(b"\n\n"),
    ]),
    "resp": (lambda: resp([b"GET", b"HEAD", b"GET"]), [
        K(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nA"), Z(b";e"), K(b"\r\n"),
        Z(b"0123456789"), K(b"\r\n0\r\n"), Z(b"T: x\r\n"), K(b"\r\n"),
        K(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n"),
        K(b"HTTP/1.1 200 OK\r\nset-cookie: "), Z(b"a=b"), K(b"\r\n\r\n"), Z(b"until close"),
    ]),
}


@settings(max_examples=200, deadline=None)
@given(name=st.sampled_from(sorted(STREAMS)), data=st.data())
def test_random_multi_splits(name, data):
    make, pieces = STREAMS[name]
    n = len(build(*pieces)[0])
    cuts = data.draw(st.lists(st.integers(1, n - 1), max_size=20))
    check(make, pieces, [cuts])


REQUESTS = [
    (b"GET", [K(b"GET /p"), Z(b"?a=1"), K(b" HTTP/1.1\r\nHost: "), Z(b"h"), K(b"\r\nCookie: "), Z(b"s=1"),
              K(b"\r\n\r\n")]),
    (b"HEAD", [K(b"HEAD / HTTP/1.1\nHost: "), Z(b"h"), K(b"\n\n")]),
    (b"POST", [K(b"POST /f HTTP/1.1\r\nContent-Length: 3\r\n\r\n"), Z(b"a=b")]),
    (b"PUT", [K(b"PUT /f HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n"), Z(b"xy"),
              K(b"\r\n0\r\n\r\n")]),
]
# (pieces for a GET answer, pieces for a HEAD answer)
RESPONSES = [
    ([K(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n"), Z(b"body")],
     [K(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n")]),
    ([K(b"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n1"), Z(b";x"), K(b"\n"), Z(b"z"),
      K(b"\n0\n"), Z(b"T: v\n"), K(b"\n")],
     [K(b"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n")]),
    ([K(b"HTTP/1.1 304 Not Modified\r\nSet-Cookie: "), Z(b"a=b"), K(b"\r\n\r\n")],) * 2,
    ([K(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")],) * 2,
]


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_random_keepalive_conversations(data):
    reqs = data.draw(st.lists(st.sampled_from(REQUESTS), min_size=1, max_size=5))
    methods: deque[bytes] = deque()
    req_pieces = [p for _, pieces in reqs for p in pieces]
    n = len(build(*req_pieces)[0])
    cuts = data.draw(st.lists(st.integers(1, max(1, n - 1)), max_size=15))
    check(lambda: req(methods=methods), req_pieces, [cuts])
    assert list(methods)[-len(reqs):] == [m for m, _ in reqs]
    resp_pieces = []
    for m, _ in reqs:
        get_answer, head_answer = data.draw(st.sampled_from(RESPONSES))
        resp_pieces += head_answer if m == b"HEAD" else get_answer
    n = len(build(*resp_pieces)[0])
    cuts = data.draw(st.lists(st.integers(1, max(1, n - 1)), max_size=15))
    p = check(lambda: resp([m for m, _ in reqs]), resp_pieces, [cuts])
    assert p.synced and p.decided == p.pos


def test_every_byte_its_own_chunk():
    for make, pieces in STREAMS.values():
        n = len(build(*pieces)[0])
        check(make, pieces, [list(range(1, n))])


# --- pure helpers ----------------------------------------------------------


def test_content_len():
    assert [content_len(x) for x in (b"ab\r\n", b"ab\n", b"ab", b"\r\n", b"\n", b"")] == [2, 2, 2, 0, 0, 0]


def test_line_helpers():
    # Allowlist policy: the '?' is zeroed with the query; a Host value is zeroed.
    assert request_line_keep(b"GET /p?q=1 HTTP/1.1\r\n") == (b"GET", [(0, 6), (10, 21)])
    assert request_line_keep(b"GET /p? HTTP/1.1") == (b"GET", [(0, 6), (7, 16)])
    assert request_line_keep(b"GET /p HTTP/1.1 x") is None
    assert status_code(b"HTTP/1.1 404 Not Found\r\n") == 404
    assert status_code(b"HTTP/1.1 40 x") is None
    assert status_line_keep(b"HTTP/1.1 200 OK\r\n") == [(0, 17)]
    assert status_line_keep(b"HTTP/1.1 200 at 1.2.3.4\r\n") == [(0, 16), (23, 25)]
    assert header_line_keep(b"Set-Cookie: a=b \r\n") == (b"set-cookie", b"a=b", [(0, 12), (16, 18)])
    assert header_line_keep(b"Host:h\n") == (b"host", b"h", [(0, 5), (6, 7)])
    assert header_line_keep(b"Age:1\n") == (b"age", b"1", [(0, 6)])
    assert header_line_keep(b"Host : h\n") is None
    assert looks_like_request(b"PATCH /x")
    assert not looks_like_request(b"FOO /x HTTP/1.1\r\n")
    assert not looks_like_request(b"GET /x HTTP/9\r\n")
    assert looks_like_response(memoryview(b"HTTP/1.1 200 OK\r\n"))
    assert not looks_like_response(b"HTTP/2 200\r\n")


def test_find_head_end_and_parse_head():
    raw = b"GET /a?b HTTP/1.1\r\nHost: h\r\nCookie: x\r\n\r\nBODY"
    assert find_head_end(raw) == len(raw) - 4
    assert find_head_end(b"GET / HTTP/1.1\nA: b\n\nrest") == 21
    assert find_head_end(raw[:-6]) is None
    head = parse_head(raw, is_request=True)
    assert head is not None
    assert head.end == len(raw) - 4
    assert head.start_line == b"GET /a?b HTTP/1.1"
    assert head.headers == [(b"host", b"h"), (b"cookie", b"x")]
    assert head.keep == [(0, 6), (8, 25), (26, 36), (37, 41)]  # query, Host and Cookie values zeroed
    assert parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", is_request=False).headers == [
        (b"content-length", b"3")
    ]
    assert parse_head(b"NOPE\r\n\r\n", is_request=True) is None
    assert parse_head(raw[:-6], is_request=True) is None


def test_host_names_in_a_kept_path_are_zeroed():
    """A path segment that reads as a host name (it ends in a public suffix) is zeroed whole;
    file names and other segments stay (docs/policy.md, HTTP)."""
    from pktmask.proto.http_lines import request_line_keep

    line = b"GET /7/v0001/prdupl02.ynet.co.il/MediaSvrFiles/4496105.swf HTTP/1.1\r\n"
    _method, ranges = request_line_keep(line)
    kept = b"".join(line[a:b] for a, b in ranges)
    assert b"ynet" not in kept and b"prdupl02" not in kept
    assert b"MediaSvrFiles/4496105.swf" in kept and b"/v0001/" in kept
    line = b"GET /static/app.min.js HTTP/1.1\r\n"
    _method, ranges = request_line_keep(line)
    assert b"app.min.js" in b"".join(line[a:b] for a, b in ranges)
