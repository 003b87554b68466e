"""HTTP/1.x line grammar: which bytes of a start line or a header line are kept.

Pure functions on one complete line (line end included or not), by allowlist
(docs/policy.md, "Payloads"): the request line keeps its method, the path of
its target up to the first '?', '#' or ';', the ports of an authority and its
version; a status line is kept; a header line keeps its name, colon and
whitespace, and its value only for the names in ``KEPT_VALUES``. An IPv4 or
IPv6 literal inside a kept path, value or reason phrase is zeroed (it cannot be mapped in the
stream). Also the resync tests: does a chunk plausibly start with a request or
status line. ``HttpParser`` (http.py) applies them to a stream.

Lines are scanned with ``bytes`` methods and byte tables, not regular
expressions: these functions run for every head line (see ARCHITECTURE,
"Compiled hot path"); per-byte loops only walk tokens (method, header name)
and the runs around a possible IP literal.
"""

from __future__ import annotations

from typing import Final

from pktmask.anon.names import is_hostname
from pktmask.proto.http_hosts import HostRewriter

MAX_LINE: Final = 8192  # a longer head line means we are not looking at HTTP: lose sync

# Header names whose values are kept (compared lower-cased); every other value is zeroed.
KEPT_VALUES: Final = frozenset(
    b"accept accept-charset accept-encoding accept-language accept-ranges age allow cache-control"
    b" connection content-encoding content-language content-length content-range content-type date"
    b" expect expires keep-alive last-modified max-forwards pragma range retry-after sec-fetch-dest"
    b" sec-fetch-mode sec-fetch-site sec-fetch-user sec-websocket-version server te trailer"
    b" transfer-encoding upgrade upgrade-insecure-requests user-agent vary warning"
    b" x-content-type-options".split()
)
# Header names whose value carries a host (docs/policy.md, "Payloads"): with a ``HostRewriter`` the
# value is read as a URI or authority and its host kept as its pseudonym; without one, zeroed.
HOST_VALUES: Final = frozenset(b"host origin referer location content-location".split())
# Methods accepted as a resync point (any token is accepted as a method while in sync).
METHODS: Final = tuple(b"GET HEAD POST PUT DELETE OPTIONS TRACE CONNECT PATCH".split())
_RESYNC_REQUEST: Final = tuple(m + b" " for m in METHODS)

# Bytes allowed in a token (RFC 9110 tchar), as a table: methods and header names are scanned byte by byte.
_TCHAR: Final = bytes(
    1 if chr(b).isalnum() and b < 128 or chr(b) in "!#$%&'*+.^_`|~-" else 0 for b in range(256)
)
# Bytes allowed in a request target (deleted by ``translate``: what is left is not allowed).
# NUL is accepted so that an already masked capture (query zeroed) parses again.
_TARGET_OK: Final = bytes([0, *range(0x21, 0x7F), *range(0x80, 0x100)])
# Bytes of a URI scheme after its first letter (RFC 3986: ALPHA / DIGIT / "+" / "-" / ".").
_SCHEME: Final = bytes(1 if chr(b).isalnum() and b < 128 or chr(b) in "+-." else 0 for b in range(256))
# ``translate`` table for the IPv6 literal scan: the bytes an IPv6 literal is made of (hex
# digits, ':' and '.') stay, every other byte becomes a space.
_V6_RUN: Final = bytes(b if chr(b) in "0123456789abcdefABCDEF:." else 0x20 for b in range(256))
# Digits as '0', '.' kept, the rest a space: a value holds a dotted quad only if this image of it
# holds one of the shapes "0.X.Y.0" (X, Y one to three digits).
_DIGIT_SHAPE: Final = bytes(0x30 if 0x30 <= b <= 0x39 else b if b == 0x2E else 0x20 for b in range(256))
_QUAD_SHAPES: Final = tuple(b"0." + x + b"." + y + b".0" for x in (b"0", b"00", b"000") for y in (b"0", b"00", b"000"))
# A hex/colon run with this many colons is zeroed even without "::": an IPv6 address has seven
# (six before an embedded IPv4 address); five also takes in a colon-separated MAC address.
_V6_COLONS: Final = 5

Ranges = list[tuple[int, int]]


def content_len(line: bytes) -> int:
    """Return the length of ``line`` without its line end (LF or CRLF)."""
    c = len(line)
    if c and line[c - 1] == 0x0A:
        c -= 1
        if c and line[c - 1] == 0x0D:
            c -= 1
    return c


def request_line_keep(line: bytes, hosts: HostRewriter | None = None) -> tuple[bytes, Ranges] | None:
    """Parse a request line (with or without its line end).

    Returns ``(method, keep ranges relative to the line)`` or None if it is not
    ``METHOD SP target SP HTTP/1.x``. Of the target only the scheme, the path up
    to the first '?', '#' or ';' (minus IP literals) and an authority's ":port"
    are kept (see ``_target_cuts``), and with ``hosts`` an authority's host as
    its pseudonym (``hosts.repl`` gets the replacement).
    """
    c = content_len(line)
    k = 0
    while k < c and _TCHAR[line[k]]:
        k += 1
    if not k or k == c or line[k] != 0x20:
        return None
    ts = k + 1
    te = line.find(b" ", ts, c)
    if te <= ts or c - te != 9 or line[te + 1 : te + 8] != b"HTTP/1." or not 0x30 <= line[c - 1] <= 0x39:
        return None
    if line[ts:te].translate(None, _TARGET_OK):
        return None
    method = line[:k]
    return method, _keep_around(_target_cuts(line, ts, te, method == b"CONNECT", hosts, -1, -1), len(line))


def _target_cuts(line: bytes, ts: int, te: int, connect: bool, hosts: HostRewriter | None = None,
                 vs: int = -1, ve: int = -1) -> Ranges:
    """Spans of the request target ``line[ts:te]`` that are zeroed (docs/policy.md, "Payloads").

    origin-form ``/path``: the path rule (``_path_cuts``); a target starting with
    ``//`` (an authority without a scheme) is read like absolute-form;
    absolute-form ``scheme://authority/path``: scheme and "://" kept, then the
    authority rule; authority-form (CONNECT): the authority rule; asterisk-form
    ``*`` kept. Any other target is zeroed whole. ``hosts``, ``vs``, ``ve``: see
    ``_authority_cuts``.
    """
    first = line[ts]
    if first == 0x2F:  # '/'
        if te - ts > 1 and line[ts + 1] == 0x2F:
            return _authority_cuts(line, ts + 2, te, hosts, vs, ve)
        return _path_cuts(line, ts, te)
    if first == 0x2A and te - ts == 1:  # '*'
        return []
    if connect:
        return _authority_cuts(line, ts, te, hosts, vs, ve)
    if 0x61 <= (first | 0x20) <= 0x7A:  # a scheme starts with a letter
        k = ts + 1
        while k < te and _SCHEME[line[k]]:
            k += 1
        if line[k : k + 3] == b"://" and k + 3 <= te:
            return _authority_cuts(line, k + 3, te, hosts, vs, ve)
    return [(ts, te)]


def _authority_cuts(line: bytes, a: int, te: int, hosts: HostRewriter | None = None,
                    vs: int = -1, ve: int = -1) -> Ranges:
    """Zeroed spans of ``authority [path]`` at ``line[a:te]``: userinfo, '@' and host; the path rule after.

    With ``hosts`` the host is not zeroed but decided by ``hosts.host`` (its pseudonym, or
    zeroed when it cannot be written); whitespace may pad it when it begins at ``vs`` / ends
    at ``ve`` (the bounds of a header value).

    The userinfo ends at the LAST '@' of the target, so a password holding '/'
    or '@' is zeroed whole (so is a path holding '@': fail closed); when a '?' or
    '#' comes before that '@' (a query or fragment holding '@', or a password
    holding '?' or '#'), everything from the authority on is zeroed.
    The host ends at the first '/', '?' or '#' after it; a trailing ":digits"
    (after any ']' of an IPv6 literal) is the port and is kept.
    """
    at = line.rfind(b"@", a, te)
    if at >= 0 and _stop(line, a, at, b"?#") < at:
        return [(a, te)]  # the last '@' is in a query or fragment: nothing here can be placed
    hs = at + 1 if at >= 0 else a
    he = _stop(line, hs, te, b"/?#")
    p = he
    colon = line.rfind(b":", hs, he)
    if colon >= 0 and colon + 1 < he and line.rfind(b"]", hs, he) < colon and line[colon + 1 : he].isdigit():
        p = colon
    if hosts is None:
        cut: Ranges = [(a, p)] if p > a else []
    else:
        cut = [(a, hs)] if hs > a else []
        if not hosts.host(line, hs, p, hs == vs, p == ve):
            cut.append((hs, p))
    return cut + _path_cuts(line, he, te)


def _stop(line: bytes, s: int, e: int, stops: bytes) -> int:
    """Return the offset of the first byte of ``stops`` in ``line[s:e]``, or ``e``."""
    for k in range(len(stops)):
        j = line.find(stops[k : k + 1], s, e)
        if j >= 0:
            e = j
    return e


def _path_cuts(line: bytes, ps: int, pe: int) -> Ranges:
    """Zeroed spans of a path at ``line[ps:pe]``.

    From the first '?', '#' or ';' to the end everything is zeroed (query,
    fragment, matrix parameters such as ``;jsessionid=``); in the path before it
    IP literals are zeroed, and so is every '/'-separated segment holding a
    percent-encoded '.' or ':' (an IP literal could hide there: fail closed) or
    reading as a host name (``names.is_hostname``: it cannot be pseudonymized in
    the stream yet).
    """
    e = _stop(line, ps, pe, b"?#;")
    cut = ip_cuts(line, ps, e)
    pct = line.find(b"%", ps, e) >= 0
    if pct or line.find(b".", ps, e) >= 0:
        s = ps
        for seg in line[ps:e].split(b"/"):
            low = seg.lower()
            if (pct and (b"%2e" in low or b"%3a" in low)) or (b"." in seg and is_hostname(seg)):
                cut.append((s, s + len(seg)))
            s += len(seg) + 1
    if e < pe:
        cut.append((e, pe))
    return cut


def ip_cuts(line: bytes, s: int, e: int) -> Ranges:
    """Spans of ``line[s:e]`` holding an IPv4 or IPv6 literal, to be zeroed (possibly overlapping).

    IPv4: a maximal run of digits and '.' that holds a dotted quad (four
    dot-separated numbers whose two inner ones are 0..255 with at most three
    digits) is zeroed whole, so "1.2.3.4.5" goes entirely. IPv6: a maximal run
    of hex digits, ':' and '.' that holds "::" or at least five colons is zeroed
    whole. Most values are passed by a few searches in C (too few dots, no "::",
    no quad shape); only the runs around a match are looked at byte by byte.
    """
    cut: Ranges = []
    colons = line.count(b":", s, e)
    v6 = colons >= _V6_COLONS or colons >= 2 and line.find(b"::", s, e) >= 0
    if line.count(b".", s, e) >= 3:
        shape = line[s:e].translate(_DIGIT_SHAPE)
        for q in _QUAD_SHAPES:
            j = shape.find(q)
            while j >= 0:
                a = j
                while a > 0 and shape[a - 1] != 0x20:
                    a -= 1
                b = j + len(q)
                while b < len(shape) and shape[b] != 0x20:
                    b += 1
                if _dotted_quad(line[s + a : s + b]):
                    cut.append((s + a, s + b))
                j = shape.find(q, b)
    if v6:
        t = line[s:e].translate(_V6_RUN)
        pos = 0
        for run in t.split():
            at = t.find(run, pos)
            pos = at + len(run)
            if b"::" in run or run.count(b":") >= _V6_COLONS:
                cut.append((s + at, s + pos))
    return cut


def _dotted_quad(run: bytes) -> bool:
    """Tell whether a run of digits and dots holds ``d.d.d.d`` (inner numbers 0..255, at most 3 digits)."""
    parts = run.split(b".")
    for i in range(len(parts) - 3):
        if parts[i] and parts[i + 3] and _octet(parts[i + 1]) and _octet(parts[i + 2]):
            return True
    return False


def _octet(part: bytes) -> bool:
    return 0 < len(part) <= 3 and int(part) <= 255


def _keep_around(cut: Ranges, n: int) -> Ranges:
    """Keep ranges covering [0, n) except the spans in ``cut`` (any order, may overlap)."""
    keep: Ranges = []
    prev = 0
    for a, b in sorted(cut):
        if a > prev:
            keep.append((prev, a))
        if b > prev:
            prev = b
    if n > prev:
        keep.append((prev, n))
    return keep


def status_code(line: bytes) -> int | None:
    """Return the status code of a status line ``HTTP/1.x SP 3DIGIT [(SP / HTAB) reason]``, or None."""
    c = content_len(line)
    if c < 12 or line[:7] != b"HTTP/1." or not 0x30 <= line[7] <= 0x39 or line[8] != 0x20:
        return None
    code = line[9:12]
    if not code.isdigit() or c > 12 and line[12] != 0x20 and line[12] != 0x09:
        return None
    if line.find(b"\r", 12, c) >= 0 or line.find(b"\n", 12, c) >= 0:
        return None
    return int(code)


def status_line_keep(line: bytes) -> Ranges:
    """Keep ranges of a status line (``status_code`` accepted it): all of it but IP literals in the reason.

    The reason phrase is kept by the policy; an IP literal in it is zeroed like one in a
    kept header value (the policy is silent on it: fail closed).
    """
    c = content_len(line)
    cut = ip_cuts(line, 12, c) if c > 12 else []
    return _keep_around(cut, len(line)) if cut else [(0, len(line))]


def header_line_keep(line: bytes, hosts: HostRewriter | None = None) -> tuple[bytes, bytes, Ranges] | None:
    """Parse a header field line (not a folded continuation).

    Returns ``(lower-cased name, stripped value, keep ranges relative to the
    line)`` or None if the line is not ``name: value``. Name, colon, the
    whitespace after it and the line end are kept; the value (with its
    trailing whitespace) only if the name is in ``KEPT_VALUES``, and then
    without its IP literals. With ``hosts``, the value of a header in ``HOST_VALUES``
    is read as a target (Host: authority-form; the others: absolute-form or a path)
    and kept by the target rules with its host as its pseudonym (see ``_target_cuts``).
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
    if vs == c:
        return name, value, [(0, len(line))]
    if name not in KEPT_VALUES:
        if hosts is not None and name in HOST_VALUES:
            return name, value, _keep_around(_target_cuts(line, vs, ve, name == b"host", hosts, vs, ve), len(line))
        return name, value, [(0, vs), (c, len(line))]
    cut = ip_cuts(line, vs, ve)
    return name, value, _keep_around(cut, len(line)) if cut else [(0, len(line))]


def fold_line_keep(line: bytes, kept: bool) -> Ranges:
    """Keep ranges of an obsolete folded continuation line (starting with SP or HTAB).

    It belongs to the previous header's value: kept (minus IP literals) only if
    that value is kept (``kept``); otherwise only its line end is kept.
    """
    c = content_len(line)
    if kept:
        return _keep_around(ip_cuts(line, 0, c), len(line))
    return [(c, len(line))]


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
