"""The payload areas of a frame and what the audit reads out of them.

A frame's payload areas are what the masking walker does not treat as
header: its ``zero`` ranges (UDP/ICMP payloads, unknown protocols, padding,
later fragments...) and the TCP payload span. Only there are raw address
bytes and text needles searched: header fields (checksums, sequence numbers)
would match raw bytes by coincidence.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import NamedTuple

from pktmask.proto.walk import Walk as Dissection

DNS_PORTS = frozenset({53, 5353, 5355})  # DNS, mDNS, LLMNR
MIN_STRING = 16
MIN_HTTP_VALUE = 4
STRING_PIECE = 64  # long printable runs are cut into needles this long, to catch partial leaks

_RUN = re.compile(rb"[\x20-\x7e]{%d,}" % MIN_STRING)
_HTTP_HEADER = re.compile(
    rb"^(?:host|cookie|authorization|proxy-authorization)[ \t]*:[ \t]*([\t\x20-\x7e\x80-\xff]*)",
    re.IGNORECASE | re.MULTILINE,
)
# Text only: a value with control bytes is binary that happens to look like a header, and
# a needle of NULs would "match" every zeroed byte of a sanitized file.
_REQUEST_QUERY = re.compile(
    rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+ [\x21-\x3e\x40-\x7e\x80-\xff]*\?([\x21-\x22\x24-\x7e\x80-\xff]*)"
    rb"[\x21-\x7e\x80-\xff]* HTTP/1\.[0-9]",
    re.MULTILINE,
)
# Masked text keeps its line structure but has NULs where values were: see tracker_view.
_TEXT_OR_NUL = re.compile(rb"[\t\n\r\x20-\x7e\x00]*")
_LINE_OF_ZEROS = re.compile(rb"(?<=\n)\x00\x00")


class Area(NamedTuple):
    """A payload area ``data[start:end]``; ``tcp`` marks the TCP payload span."""

    start: int
    end: int
    tcp: bool


def payload_areas(data: bytes, d: Dissection) -> list[Area]:
    """The payload areas of a dissected frame, clipped to the captured bytes."""
    n = len(data)
    areas = [Area(a, min(b, n), False) for a, b in d.zero if a < min(b, n)]
    seg = d.tcp
    if seg is not None and seg.start < min(seg.end, n):
        areas.append(Area(seg.start, min(seg.end, n), True))
    return areas


def is_blank(chunk: bytes) -> bool:
    """All zero bytes (what masking leaves): nothing to search. Faster than ``not any()``."""
    return chunk.count(0) == len(chunk)


def dns_messages(data: bytes, area: Area, tcp_ports: bytes | None = None) -> Iterator[tuple[int, bytes]]:
    """Yield ``(offset in data, message)`` for DNS messages in a payload area.

    A UDP area is recognised by the 8-byte UDP header just before it: a DNS
    port and a length that ends the datagram where the area ends (or past the
    captured bytes when the frame was cut short), which rules out most other
    8-byte headers (ICMP). A TCP area uses ``tcp_ports`` (the 4 port bytes of
    the segment's stream key) and may hold several length-prefixed messages;
    no reassembly, so a message split across segments is read as far as it goes.
    """
    a, b = area.start, area.end
    if area.tcp:
        if tcp_ports is None or len(tcp_ports) != 4:
            return
        ports = ((tcp_ports[0] << 8) | tcp_ports[1], (tcp_ports[2] << 8) | tcp_ports[3])
        if 53 not in ports:
            return
        pos = a
        while pos + 2 + 12 <= b:
            length = (data[pos] << 8) | data[pos + 1]
            if length < 12:
                return
            yield pos + 2, data[pos + 2 : min(pos + 2 + length, b)]
            pos += 2 + length
        return
    if a < 8:
        return
    h = a - 8
    sport, dport, length = (data[h] << 8) | data[h + 1], (data[h + 2] << 8) | data[h + 3], \
        (data[h + 4] << 8) | data[h + 5]
    if sport not in DNS_PORTS and dport not in DNS_PORTS:
        return
    if h + length == b or (b == len(data) and h + length > b):
        yield a, data[a:b]


def http_values(payload: bytes) -> list[bytes]:
    """Values of Host, Cookie, Authorization, Proxy-Authorization and request query strings.

    Read per segment without reassembly; values shorter than MIN_HTTP_VALUE
    are too common to be worth searching for.
    """
    out = []
    if b":" in payload:
        for m in _HTTP_HEADER.finditer(payload):
            out.append(m.group(1).rstrip(b" \t"))
    if b" HTTP/1." in payload:
        for m in _REQUEST_QUERY.finditer(payload):
            out.append(m.group(1))
    return [v for v in out if len(v) >= MIN_HTTP_VALUE]


def printable_pieces(chunk: bytes) -> Iterator[bytes]:
    """Printable ASCII runs of at least MIN_STRING bytes, cut into STRING_PIECE-byte needles.

    A run that is one character repeated (padding, ASCII art) says nothing
    about anyone and is skipped. Cutting long runs lets a partial leak (say
    the second half of a body) be found; the last piece is taken from the
    run's end so it is never shorter than MIN_STRING.
    """
    for m in _RUN.finditer(chunk):
        run = m.group()
        n = len(run)
        for i in range(0, n, STRING_PIECE):
            piece = run[max(0, min(i, n - MIN_STRING)) : i + STRING_PIECE]
            if piece.count(piece[:1]) != len(piece):
                yield piece


def tracker_view(payload: bytes) -> bytes:
    """The bytes to show the policy's stream tracker for a SANITIZED segment.

    Masking zeroes query strings and sensitive header values but keeps the
    line structure of HTTP heads; the HTTP parser rejects a request line
    whose target contains NULs, so on masked text it would lose the stream
    and call its (kept) Host header a leak. A segment that is text apart from
    NULs therefore has them replaced by 'x', which the parser accepts where a
    value was. Binary segments (TLS records: their headers are never text)
    are shown as they are, so their length fields stay intact.

    A zeroed run that starts a line is what masking leaves after it lost an
    HTTP stream (it zeroes line ends too) or a body (skipped by length, so
    its content does not matter). Its first two bytes become an invalid line
    ``?\n``, so the parser loses the stream here as the masking parser did,
    and resynchronises where that one did: at the next segment starting a
    message. Without it the run would glue onto that message's start line.
    """
    if b"\0" in payload and _TEXT_OR_NUL.fullmatch(payload):
        return _LINE_OF_ZEROS.sub(b"?\n", payload).replace(b"\0", b"x")
    return payload
