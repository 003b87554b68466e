"""What of a TCP stream the policy keeps: TLS record structure and HTTP/1.x heads (docs/policy.md).

The audit's own model, written apart from the sanitizer's parsers. Each parser follows one
direction of a reassembled stream: ``feed(pos, chunk)`` takes the next in-order bytes at
absolute stream offset ``pos`` (a chunk start is the only place a lost parser may pick the
stream up again), ``gap(lost)`` says bytes were missing, and every byte run the policy keeps
is reported as ``keep(offset, bytes)``. What is not reported must be zero after sanitizing.

TLS: every record header, a one-byte change_cipher_spec body, a two-byte alert body, and of
the cleartext handshake records (before this direction's change_cipher_spec) what
``handshake`` keeps; the host names there are reported apart (``name``): pseudonyms.
HTTP/1.x: start lines (the request target by ``target_cuts``), header names, header values
by ``value_rule`` (the allowlist of docs/policy.md, IP literals zeroed), line ends, blank
lines, chunk-size digits. The host of a request target's authority and of the values of
``HOST_VALUES`` is a pseudonym run, ``pseudo(offset, length, kind, name)``: each label but
the public suffix and service labels a NAME, an IP literal an IP_TEXT (``labels``).
"""

from __future__ import annotations

import ipaddress
import re
from collections import deque
from collections.abc import Callable
from typing import Final

from pktmask.verify.handshake import Handshake, NameReport
from pktmask.verify.labels import IP_TEXT, NAME
from pktmask.verify.names import kept_tail, reads_as_host

Keep = Callable[[int, bytes], None]
Zero = Callable[[int, int, str], None]  # (offset, length, field name) of bytes that must be zero
Cut = tuple[int, int, str]
Pseudo = Callable[[int, int, int, str], None]
Span = tuple[int, int, int, str]  # a pseudonym run: (start, end, label kind, field name)
IP_LITERAL: Final = "http.ip literal"
TARGET_REST: Final = "http.request target query/fragment/params"
PATH_HOST: Final = "http.request target host name in path"
TARGET_HOST: Final = "http.request target userinfo/host"
TARGET_OTHER: Final = "http.request target (not understood)"

# ---- TLS ----------------------------------------------------------------------------------
TLS_CCS, TLS_ALERT, TLS_HANDSHAKE, TLS_APPDATA, TLS_HEARTBEAT = 20, 21, 22, 23, 24
TLS_MAX_RECORD: Final = (1 << 14) + 2048 + 256
HANDSHAKE_TYPES: Final = frozenset({0, 1, 2, 4, 8, 11, 12, 13, 14, 15, 16, 20, 21, 22, 24})


def tls_header(h: bytes | bytearray, i: int = 0) -> bool:
    """A valid record header at ``h[i:i+5]``: known type, version 3.0-3.4, sane length."""
    if len(h) - i < 5 or not TLS_CCS <= h[i] <= TLS_HEARTBEAT or h[i + 1] != 3 or h[i + 2] > 4:
        return False
    length = h[i + 3] << 8 | h[i + 4]
    return (0 < length <= TLS_MAX_RECORD) or (length == 0 and h[i] == TLS_APPDATA)


def tls_prefix(h: bytes | bytearray) -> bool:
    """Could the (fewer than 5) bytes ``h`` start a record header?"""
    return ((len(h) < 1 or TLS_CCS <= h[0] <= TLS_HEARTBEAT) and (len(h) < 2 or h[1] == 3)
            and (len(h) < 3 or h[2] <= 4) and (len(h) < 4 or h[3] <= TLS_MAX_RECORD >> 8))


def tls_start(chunk: bytes, upgrade: bool = False) -> bool:
    """Does ``chunk`` plausibly start at a record boundary (and look like TLS, not a lookalike)?

    The record after the first must look like a header too; a handshake record must start
    with a known handshake type of sane length; found in a stream of another protocol
    (``upgrade``, e.g. STARTTLS), only a handshake record counts.
    """
    if not tls_header(chunk):
        return False
    ctype, length = chunk[0], chunk[3] << 8 | chunk[4]
    nxt = 5 + length
    if len(chunk) >= nxt + 5 and not tls_header(chunk, nxt):
        return False
    if nxt < len(chunk) < nxt + 5 and not tls_prefix(chunk[nxt:]):
        return False
    if ctype == TLS_HANDSHAKE:
        return length >= 4 and len(chunk) >= 9 and chunk[5] in HANDSHAKE_TYPES \
            and (chunk[6] << 16 | chunk[7] << 8 | chunk[8]) <= 1 << 18
    if upgrade:
        return False
    if ctype == TLS_CCS:
        return length == 1 and len(chunk) > 5 and chunk[5] == 1
    if ctype == TLS_ALERT:
        return length == 2 and len(chunk) > 5 and chunk[5] in (1, 2)
    return ctype == TLS_APPDATA and length >= 17


class Tls:
    """Record walker of one direction (see the module docstring); the cleartext handshake bytes
    go to ``handshake.Handshake``, which reports kept runs and names."""

    __slots__ = ("keep", "synced", "remaining", "body", "hdr", "hdr_at", "hs", "hs_lost", "ccs")

    def __init__(self, keep: Keep, name: NameReport | None = None):
        self.keep = keep
        self.synced = False
        self.remaining = 0
        self.body = ""  # what the current record's body is: "keep", "hs" (read) or "" (zero)
        self.hdr = b""
        self.hdr_at = 0
        self.hs = Handshake(keep, name or (lambda at, piece, whole, offset: None))
        self.hs_lost = False  # handshake bytes went missing: not read until the walker resyncs
        self.ccs = False  # change_cipher_spec seen: later handshake records are encrypted

    def lose(self) -> None:
        self.synced, self.remaining, self.hdr = False, 0, b""
        self.hs.lose()

    def feed(self, pos: int, chunk: bytes) -> None:
        n = len(chunk)
        if not self.synced:
            if not tls_start(chunk):
                return
            self.synced = True
            self.hs_lost = False
        i = 0
        while i < n:
            if self.remaining:
                take = min(self.remaining, n - i)
                if self.body == "keep":
                    self.keep(pos + i, chunk[i:i + take])
                elif self.body == "hs":
                    self.hs.feed(pos + i, chunk[i:i + take])
                i += take
                self.remaining -= take
                continue
            need = 5 - len(self.hdr)
            if n - i < need:
                if not self.hdr:
                    self.hdr_at = pos + i
                self.hdr += chunk[i:]
                if not tls_prefix(self.hdr):
                    self.lose()
                return
            at = self.hdr_at if self.hdr else pos + i
            hdr = self.hdr + chunk[i:i + need]
            self.hdr = b""
            i += need
            if not tls_header(hdr):
                self.lose()
                return
            self.keep(at, hdr)
            self.remaining = length = hdr[3] << 8 | hdr[4]
            kind = hdr[0]
            if kind == TLS_CCS:
                self.ccs = True
            if kind == TLS_HANDSHAKE:
                self.body = "" if self.ccs or self.hs_lost else "hs"
            elif (kind, length) in ((TLS_CCS, 1), (TLS_ALERT, 2)):
                self.body = "keep"
            else:
                self.body = ""

    def gap(self, lost: int) -> None:
        if self.synced and not self.hdr and lost <= self.remaining:
            self.remaining -= lost
            if self.body == "hs":
                self.hs.lose()
                self.hs_lost, self.body = True, ""
        else:
            self.lose()


# ---- HTTP/1.x -----------------------------------------------------------------------------
MAX_LINE: Final = 8192
MAX_HEAD: Final = 65536
MAX_METHODS: Final = 256
METHODS: Final = tuple(m + b" " for m in b"GET HEAD POST PUT DELETE OPTIONS TRACE CONNECT PATCH".split())

# Header values by allowlist (docs/policy.md, HTTP/1.x heads): only these values are kept (IP
# literals in them zeroed); every other value (Host, Origin, Referer, Location, Cookie*,
# Authorization, X-..., Via, Forwarded...) must be zero.
KEPT_VALUES: frozenset[bytes] | None = frozenset(b"""
    accept accept-charset accept-encoding accept-language accept-ranges age allow cache-control
    connection content-encoding content-language content-length content-range content-type date
    expect expires keep-alive last-modified max-forwards pragma range retry-after sec-fetch-dest
    sec-fetch-mode sec-fetch-site sec-fetch-user sec-websocket-version server te trailer
    transfer-encoding upgrade upgrade-insecure-requests user-agent vary warning
    x-content-type-options""".split())
VALUE_KEPT, VALUE_ZEROED = 0, 1
# Values that carry a host (docs/policy.md, "Payloads"): read as an authority (Host) or a
# target (the others), the host a pseudonym, the rest by the target rules.
HOST_VALUES: Final = frozenset(b"host origin referer location content-location".split())
HOST_LABEL: Final = "http.host label"
HOST_IP: Final = "http.host ip literal"

_TOKEN: Final = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_REQUEST: Final = re.compile(rb"(" + _TOKEN + rb") ([\x00\x21-\x7e\x80-\xff]+) HTTP/1\.[0-9]")
_STATUS: Final = re.compile(rb"HTTP/1\.[0-9] ([0-9]{3})(?:[ \t][^\r\n]*)?")
_HEADER: Final = re.compile(rb"(" + _TOKEN + rb"):[ \t]*")
_CHUNK: Final = re.compile(rb"([0-9A-Fa-f]{1,16})(?:[ \t]*;[^\r\n]*|[ \t]*)")
_SCHEME: Final = re.compile(rb"[A-Za-z][A-Za-z0-9+.-]*://")
_PORT: Final = re.compile(rb":[0-9]*")
_PATH_END: Final = re.compile(rb"[?#;]")
# IP literals (zeroed inside kept text). An IPv4 dotted quad not glued to more digits or dots-
# and-digits ("1.2.3.4.5" is a version, not an address); an IPv6 candidate is a run of hex
# digits, colons and dots not glued to other letters or digits, that parses as an address and
# has at least two colons.
_V4_LITERAL: Final = re.compile(
    rb"(?<![0-9])(?<![0-9]\.)(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
    rb"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?![0-9])(?!\.[0-9])")
_V6_CANDIDATE: Final = re.compile(rb"(?<![0-9A-Za-z:.])[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(?![0-9A-Za-z:])")


def ip_literal_cuts(line: bytes, a: int, b: int) -> list[Cut]:
    """Spans of the IPv4 / IPv6 literals in ``line[a:b]`` (sorted, merged)."""
    cuts = [m.span() for m in _V4_LITERAL.finditer(line, a, b)]
    if line.count(b":", a, b) >= 2:
        for m in _V6_CANDIDATE.finditer(line, a, b):
            x, y = m.span()
            while y > x and line[y - 1] == 0x2E:  # a sentence's full stop
                y -= 1
            try:
                ipaddress.IPv6Address(line[x:y].decode("ascii"))
            except ValueError:
                continue
            cuts.append((x, y))
    return [(x, y, IP_LITERAL) for x, y in _merge(cuts)]


def _merge(cuts: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for x, y in sorted(cuts):
        if out and x <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], y))
        elif x < y:
            out.append((x, y))
    return out


START, HEADERS, BODY, CHUNK_SIZE, CHUNK_DATA, CHUNK_END, TRAILERS, OPAQUE, LOST = range(9)


def value_rule(name: bytes) -> int:
    """How the value of header ``name`` (lower-cased) is treated."""
    if KEPT_VALUES is not None and name not in KEPT_VALUES:
        return VALUE_ZEROED
    return VALUE_KEPT


def value_field(name: bytes) -> str:
    """The field name of a zeroed header value in findings: ``http.value (cookie)``."""
    return f"http.value ({name[:40].decode('ascii', 'replace')})"


def path_cuts(line: bytes, a: int, b: int) -> list[Cut]:
    """A path ``line[a:b]``: kept up to the first '?', '#' or ';' (from there on zeroed), with
    its IP literals zeroed."""
    m = _PATH_END.search(line, a, b)
    stop = b if m is None else m.start()
    cuts = ip_literal_cuts(line, a, stop)
    s = a
    for seg in line[a:stop].split(b"/"):  # a segment that reads as a host name (docs/policy.md)
        if b"." in seg and reads_as_host(seg.lower()):
            cuts.append((s, s + len(seg), PATH_HOST))
        s += len(seg) + 1
    if stop < b:
        cuts.append((stop, b, TARGET_REST))
    return cuts


def host_spans(line: bytes, a: int, b: int) -> list[Span]:
    """The pseudonym runs of the host ``line[a:b]``: an IP literal whole, else every label but
    the public suffix and service labels ('_')."""
    if a >= b:
        return []
    if line[a] == 0x5B or _V4_LITERAL.fullmatch(line, a, b) is not None:
        return [(a, b, IP_TEXT, HOST_IP)]
    labels = line[a:b].lower().split(b".")
    keep = kept_tail(tuple(labels)) if all(labels) else 0
    out: list[Span] = []
    x = a
    for i, label in enumerate(labels):
        if label and i < len(labels) - keep and label[0] != 0x5F:
            out.append((x, x + len(label), NAME, HOST_LABEL))
        x += len(label) + 1
    return out


def target_cuts(line: bytes, a: int, b: int, method: bytes, hosts: list[Span] | None = None) -> list[Cut]:
    """Spans of the request target ``line[a:b]`` that must be zero (docs/policy.md): origin-form
    by the path rule; absolute-form: scheme and "://" kept, userinfo and host zeroed, ":port"
    kept, then the path rule; authority-form (CONNECT): host zeroed, ":port" kept; "*" kept;
    anything else is not understood and zeroed whole. "//" starts an authority. With ``hosts``
    the host is not cut: its pseudonym runs go to ``hosts`` (``host_spans``)."""
    auth = -1
    if line[a] == 0x2F:  # "/"
        if b - a < 2 or line[a + 1] != 0x2F:
            return path_cuts(line, a, b)
        auth = a + 2
    if b - a == 1 and line[a] == 0x2A:  # "*"
        return []
    if method == b"CONNECT":
        return _authority(line, a, b, hosts)
    if auth < 0:
        m = _SCHEME.match(line, a, b)
        if m is None:
            return [(a, b, TARGET_OTHER)]
        auth = m.end()
    stop = auth
    while stop < b and line[stop] not in b"/?#":
        stop += 1
    cuts = _authority(line, auth, stop, hosts)
    if stop < b:
        cuts += path_cuts(line, stop, b) if line[stop] == 0x2F else [(stop, b, TARGET_REST)]
    return cuts


def _authority(line: bytes, a: int, b: int, hosts: list[Span] | None = None) -> list[Cut]:
    """``[userinfo@]host[:port]`` in ``line[a:b]``: all zeroed but a final ":port"; with
    ``hosts`` the host is a pseudonym (its runs appended there) and only userinfo is cut."""
    at = line.rfind(b"@", a, b)
    host = at + 1 if at >= 0 else a
    if host < b and line[host] == 0x5B:  # "[v6]"
        close = line.find(b"]", host, b)
        end = b if close < 0 else close + 1
    else:
        colon = line.find(b":", host, b)
        end = b if colon < 0 else colon
    if end < b and _PORT.fullmatch(line, end, b) is None:
        end = b
    if hosts is not None:
        hosts.extend(host_spans(line, host, end))
        return [(a, host, TARGET_HOST)] if host > a else []
    return [(a, end, TARGET_HOST)] if end > a else []


def line_end(line: bytes) -> int:
    """Length of ``line`` without its LF / CRLF."""
    c = len(line)
    if c and line[c - 1] == 0x0A:
        c -= 1
        if c and line[c - 1] == 0x0D:
            c -= 1
    return c


def http_start(chunk: bytes, request: bool) -> bool:
    """Does ``chunk`` plausibly start with a request (known method) or status line?"""
    if request:
        if not chunk[:8].startswith(METHODS):
            return False
    elif chunk[:7] != b"HTTP/1.":
        return False
    j = chunk.find(b"\n", 0, MAX_LINE)
    if j < 0:
        return True
    c = line_end(chunk[:j + 1])
    return (_REQUEST if request else _STATUS).fullmatch(chunk, 0, c) is not None


class Http:
    """Head/body walker of one direction (see the module docstring); ``methods`` is shared
    with the other direction: requests push, final responses pop (HEAD and CONNECT matter)."""

    __slots__ = ("keep", "zero", "pseudo", "request", "methods", "state", "line", "line_at", "remaining",
                 "head_len", "method", "status", "clen", "te", "last_name")

    def __init__(self, keep: Keep, request: bool, methods: deque, zero: Zero | None = None,
                 pseudo: Pseudo | None = None):
        self.keep, self.request, self.methods, self.zero = keep, request, methods, zero
        self.pseudo = pseudo  # without it, hosts must be zero
        self.state = LOST
        self.line = bytearray()
        self.line_at = 0
        self.remaining = 0
        self.reset()

    def reset(self) -> None:
        self.clen: int | None = None
        self.te: bytes | None = None
        self.head_len, self.method, self.status, self.last_name = 0, b"", 0, b""

    def lose(self) -> None:
        self.state = LOST
        self.line.clear()
        self.reset()

    def feed(self, pos: int, chunk: bytes) -> None:
        if self.state == LOST:
            if not http_start(chunk, self.request):
                return
            self.state = START
        n, i = len(chunk), 0
        while i < n:
            st = self.state
            if st == BODY or st == CHUNK_DATA:
                take = min(self.remaining, n - i)
                i += take
                self.remaining -= take
                if not self.remaining:
                    self.state = START if st == BODY else CHUNK_END
                    if st == BODY:
                        self.reset()
                continue
            if st == OPAQUE or st == LOST:
                return
            j = chunk.find(b"\n", i)
            if j < 0:
                if not self.line:
                    self.line_at = pos + i
                self.line += chunk[i:]
                if len(self.line) > MAX_LINE:
                    self.lose()
                return
            if self.line:
                self.line += chunk[i:j + 1]
                line, at = bytes(self.line), self.line_at
                self.line.clear()
            else:
                line, at = chunk[i:j + 1], pos + i
            i = j + 1
            if len(line) > MAX_LINE or not self.on_line(line, at):
                self.lose()
                return

    def gap(self, lost: int) -> None:
        if self.state in (BODY, CHUNK_DATA) and lost <= self.remaining:
            self.remaining -= lost
            if not self.remaining:
                if self.state == BODY:
                    self.state = START
                    self.reset()
                else:
                    self.state = CHUNK_END
        elif self.state != OPAQUE:
            self.lose()

    def keep_except(self, at: int, line: bytes, cuts: list[Cut], hosts: list[Span] | None = None) -> None:
        """Keep ``line`` but the ``cuts`` (must be zero) and the ``hosts`` pseudonym runs."""
        if hosts:
            assert self.pseudo is not None
            for a, b, kind, name in hosts:
                self.pseudo(at + a, b - a, kind, name)
            cuts = sorted(cuts + [(a, b, "") for a, b, _, _ in hosts])
        prev = 0
        for a, b, name in cuts:
            if a < prev:  # overlapping cuts: the part past ``prev`` only
                if b <= prev:
                    continue
                a = prev
            if a > prev:
                self.keep(at + prev, line[prev:a])
            if b > a and self.zero is not None and name:
                self.zero(at + a, b - a, name)
            prev = b
        if prev < len(line):
            self.keep(at + prev, line[prev:])

    def on_line(self, line: bytes, at: int) -> bool:
        """Decide one complete line; False when it breaks the framing."""
        st, c = self.state, line_end(line)
        if st in (START, HEADERS, TRAILERS):
            self.head_len += len(line)
            if self.head_len > MAX_HEAD:
                return False
        if st == START:
            if c == 0:
                self.keep(at, line)
                return True
            if self.request:
                m = _REQUEST.fullmatch(line, 0, c)
                if m is None:
                    return False
                self.method = m.group(1)
                hosts: list[Span] | None = [] if self.pseudo is not None else None
                self.keep_except(at, line, target_cuts(line, *m.span(2), self.method, hosts), hosts)
                self.methods.append(self.method)
                if len(self.methods) > MAX_METHODS:
                    self.methods.popleft()
            else:
                m = _STATUS.fullmatch(line, 0, c)
                if m is None:
                    return False
                self.status = int(m.group(1))
                self.keep(at, line)
            self.state = HEADERS
        elif st == HEADERS:
            if c == 0:
                self.keep(at, line)
                return self.end_head()
            if line[0] in b" \t":  # obsolete folding: kept only if the folded value is kept
                if self.last_name in (b"content-length", b"transfer-encoding"):
                    return False
                vs = len(line) - len(line.lstrip(b" \t"))
                cuts = [(vs, c, value_field(self.last_name))] if value_rule(self.last_name) != VALUE_KEPT \
                    else ip_literal_cuts(line, vs, c)
                self.keep_except(at, line, cuts)
                return True
            m = _HEADER.match(line, 0, c)
            if m is None:
                return False
            name, vs = m.group(1).lower(), m.end()
            ve = c
            while ve > vs and line[ve - 1] in b" \t":
                ve -= 1
            hosts = None
            if value_rule(name) == VALUE_KEPT:
                cuts = ip_literal_cuts(line, vs, ve)
            elif name in HOST_VALUES and self.pseudo is not None and ve > vs:
                hosts = []
                cuts = target_cuts(line, vs, ve, b"CONNECT" if name == b"host" else b"", hosts)
            else:
                cuts = [(vs, ve, value_field(name))]
            self.keep_except(at, line, cuts, hosts)
            return self.on_header(name, line[vs:ve])
        elif st == CHUNK_SIZE:
            m = _CHUNK.fullmatch(line, 0, c)
            if m is None:
                return False
            self.keep(at, line[:m.end(1)])
            self.keep(at + c, line[c:])
            size = int(m.group(1), 16)
            if size:
                self.state, self.remaining = CHUNK_DATA, size
            else:
                self.state, self.head_len = TRAILERS, 0
        elif st == CHUNK_END:
            if c:
                return False
            self.keep(at, line)
            self.state = CHUNK_SIZE
        elif st == TRAILERS and c == 0:
            self.keep(at, line)
            self.state = START
            self.reset()
        return True

    def on_header(self, name: bytes, value: bytes) -> bool:
        self.last_name = name
        if name == b"content-length":
            values = {v.strip(b" \t") for v in value.split(b",")}
            v = values.pop()
            if values or not v.isdigit() or len(v) > 18 or (self.clen is not None and self.clen != int(v)):
                return False
            self.clen = int(v)
        elif name == b"transfer-encoding":
            self.te = value.rsplit(b",", 1)[-1].strip(b" \t").lower() or b"?"
        return True

    def end_head(self) -> bool:
        """What follows the head just completed (RFC 9112 s6.3)."""
        if self.request:
            if self.method == b"CONNECT":
                self.state = OPAQUE
            elif self.te is not None:
                if self.te != b"chunked":
                    return False
                self.state = CHUNK_SIZE
            else:
                self.body(self.clen or 0)
            return True
        code = self.status
        if code < 200:
            self.state = OPAQUE if code == 101 else START
            self.reset()
            return True
        method = self.methods.popleft() if self.methods else b""
        if method == b"HEAD" or code in (204, 304):
            self.state = START
            self.reset()
        elif method == b"CONNECT" and code < 300:
            self.state = OPAQUE
        elif self.te == b"chunked":
            self.state = CHUNK_SIZE
        elif self.te is None and self.clen is not None:
            self.body(self.clen)
        else:
            self.state = OPAQUE
        return True

    def body(self, length: int) -> None:
        if length:
            self.state, self.remaining = BODY, length
        else:
            self.state = START
            self.reset()
