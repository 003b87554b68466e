"""What the audit reads out of payload bytes: DNS messages, HTTP values, printable strings.

The payload areas themselves come from the audit's own dissector (``fields``): a UDP payload
with its ports, a TCP payload with its stream key, any span the policy zeroes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

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


def is_blank(chunk: bytes) -> bool:
    """All zero bytes (what masking leaves): nothing to search. Faster than ``not any()``."""
    return chunk.count(0) == len(chunk)


def udp_dns(data: bytes, start: int, end: int, sport: int, dport: int) -> Iterator[tuple[int, bytes]]:
    """The DNS message of a UDP payload ``data[start:end]`` on a DNS port, as ``(offset, message)``."""
    if (sport in DNS_PORTS or dport in DNS_PORTS) and end - start >= 12:
        yield start, data[start:end]


def tcp_dns(data: bytes, start: int, end: int, ports: bytes) -> Iterator[tuple[int, bytes]]:
    """Length-prefixed DNS messages of a TCP payload on port 53 (no reassembly: a message split
    across segments is read as far as it goes)."""
    if 53 not in ((ports[0] << 8) | ports[1], (ports[2] << 8) | ports[3]):
        return
    pos = start
    while pos + 2 + 12 <= end:
        length = (data[pos] << 8) | data[pos + 1]
        if length < 12:
            return
        yield pos + 2, data[pos + 2 : min(pos + 2 + length, end)]
        pos += 2 + length


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
