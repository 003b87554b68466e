"""HTTP/1.x line grammar: which bytes of a start line or a header line are kept.

Pure functions on one complete line (line end included or not): the request
line keeps its method, target and version minus the query string and any
``user:pass@``; a status line is kept whole; a header line is kept except the
value of a sensitive header and the query/userinfo of a URL-valued one. Also
the resync tests: does a chunk plausibly start with a request or status line.
``HttpParser`` (http.py) applies them to a stream.
"""

from __future__ import annotations

import re
from typing import Final

MAX_LINE: Final = 8192  # a longer head line means we are not looking at HTTP: lose sync

# Header names whose values are zeroed (compared lower-cased).
SENSITIVE: Final = frozenset(
    b"cookie set-cookie authorization proxy-authorization x-forwarded-for forwarded referer".split()
)
# Header names whose values are URLs: their query string and user:pass@ are zeroed
# like the request target's (redirects carry OAuth codes and session tokens).
URL_HEADERS: Final = frozenset(b"location content-location".split())
# Methods accepted as a resync point (any token is accepted as a method while in sync).
METHODS: Final = tuple(b"GET HEAD POST PUT DELETE OPTIONS TRACE CONNECT PATCH".split())
_RESYNC_REQUEST: Final = tuple(m + b" " for m in METHODS)

_TOKEN: Final = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
# NUL is accepted in the target so that an already masked capture (query zeroed) parses again.
_REQUEST_RE: Final = re.compile(rb"(" + _TOKEN + rb") ([\x00\x21-\x7e\x80-\xff]+) HTTP/1\.[0-9]")
_STATUS_RE: Final = re.compile(rb"HTTP/1\.[0-9] ([0-9]{3})(?:[ \t][^\r\n]*)?")
# Bytes allowed in a token (RFC 9110 tchar), as a table: header names are scanned byte by byte.
_TCHAR: Final = bytes(
    1 if chr(b).isalnum() and b < 128 or chr(b) in "!#$%&'*+.^_`|~-" else 0 for b in range(256)
)
_USERINFO_RE: Final = re.compile(rb"[A-Za-z][A-Za-z0-9+.-]*://([^/?#@]*)@")

Ranges = list[tuple[int, int]]


def content_len(line: bytes) -> int:
    """Return the length of ``line`` without its line end (LF or CRLF)."""
    c = len(line)
    if c and line[c - 1] == 0x0A:
        c -= 1
        if c and line[c - 1] == 0x0D:
            c -= 1
    return c


def request_line_keep(line: bytes) -> tuple[bytes, Ranges] | None:
    """Parse a request line (with or without its line end).

    Returns ``(method, keep ranges relative to the line)`` or None if it is not
    ``METHOD SP target SP HTTP/1.x``. The query string after '?' and any
    ``user:pass@`` of an absolute-form target are not kept.
    """
    c = content_len(line)
    m = _REQUEST_RE.fullmatch(line, 0, c)
    if m is None:
        return None
    return m.group(1), _keep_around(_url_cuts(line, *m.span(2)), len(line))


def _url_cuts(line: bytes, ts: int, te: int) -> Ranges:
    """Spans of a URL in ``line[ts:te]`` that are zeroed: ``user:pass`` and the query string."""
    cut: Ranges = []
    u = _USERINFO_RE.match(line, ts, te)
    if u is not None and u.end(1) > u.start(1):
        cut.append(u.span(1))
    q = line.find(b"?", ts, te)
    if 0 <= q < te - 1:
        cut.append((q + 1, te))
    return cut


def _keep_around(cut: Ranges, n: int) -> Ranges:
    """Keep ranges covering [0, n) except the sorted spans in ``cut``."""
    keep: Ranges = []
    prev = 0
    for a, b in cut:
        if a > prev:
            keep.append((prev, a))
        prev = b
    keep.append((prev, n))
    return keep


def status_code(line: bytes) -> int | None:
    """Return the status code of a status line ``HTTP/1.x SP 3DIGIT [SP reason]``, or None."""
    m = _STATUS_RE.fullmatch(line, 0, content_len(line))
    return int(m.group(1)) if m else None


def header_line_keep(line: bytes) -> tuple[bytes, bytes, Ranges] | None:
    """Parse a header field line (not a folded continuation).

    Returns ``(lower-cased name, stripped value, keep ranges relative to the
    line)`` or None if the line is not ``name: value``. The value of a
    sensitive header is not kept; everything else is.
    """
    c = content_len(line)
    # ``token ":" [ \t]*``, byte by byte: compiled, cheaper than a regular expression.
    k = 0
    while k < c and _TCHAR[line[k]]:
        k += 1
    if not k or k == c or line[k] != 0x3A:
        return None
    name = line[:k].lower()
    vs = k + 1
    while vs < c and (line[vs] == 0x20 or line[vs] == 0x09):
        vs += 1
    ve = c
    while ve > vs and (line[ve - 1] == 0x20 or line[ve - 1] == 0x09):
        ve -= 1
    value = line[vs:ve]
    if name in SENSITIVE and vs < c:
        return name, value, [(0, vs), (c, len(line))]
    if name in URL_HEADERS and vs < c:
        return name, value, _keep_around(_url_cuts(line, vs, ve), len(line))
    return name, value, [(0, len(line))]


def looks_like_request(data: bytes | memoryview) -> bool:
    """Tell whether ``data`` plausibly starts with a request line (known method, SP; full line if present)."""
    # Test the prefix on a small copy first: most non-matching chunks stop here.
    if not bytes(data[:8]).startswith(_RESYNC_REQUEST):
        return False
    head = bytes(data[:MAX_LINE])
    j = head.find(b"\n")
    return j < 0 or request_line_keep(head[: j + 1]) is not None


def looks_like_response(data: bytes | memoryview) -> bool:
    """Tell whether ``data`` plausibly starts with a status line (``HTTP/1.``; full line if present)."""
    if bytes(data[:7]) != b"HTTP/1.":
        return False
    head = bytes(data[:MAX_LINE])
    j = head.find(b"\n")
    return j < 0 or status_code(head[: j + 1]) is not None
