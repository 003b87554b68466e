"""Incremental HTTP/1.x head/body finder for one direction of a TCP stream.

Kept, by allowlist (docs/policy.md, "Payloads"; the line rules are in
http_lines.py): start lines (a request target's path and ports only), header
names, and the values of allowlisted headers (minus IP literals), with folded
continuation lines of those values; the blank line ending each head; the
chunk-size digits and line ends of chunked framing. Everything else (other
header values, bodies, chunk data, chunk extensions, trailers, tunnel or
read-until-close data) is left out, so the caller zeroes it.

Heads are processed one complete line at a time; a line split across chunks is
buffered (at most MAX_LINE bytes) and stays undecided until its LF arrives.
Bodies are skipped by length arithmetic and never scanned.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Final, NamedTuple

from pktmask.proto.http_lines import (
    KEPT_VALUES,
    MAX_LINE,
    Ranges,
    content_len,
    fold_line_keep,
    header_line_keep,
    looks_like_request,
    looks_like_response,
    request_line_keep,
    status_code,
    status_line_keep,
)

MAX_HEAD: Final = 65536  # a bigger head (or trailer section) means we are not looking at HTTP
MAX_PENDING_METHODS: Final = 256  # bound the request->response method queue

_CHUNK_RE: Final = re.compile(rb"([0-9A-Fa-f]{1,16})(?:[ \t]*;[^\r\n]*|[ \t]*)")


class _Desync(Exception):
    """Raised by line handlers when the input stops looking like HTTP framing."""


# Parser states.
_START: Final = 0
_HEADERS: Final = 1
_BODY: Final = 2
_CHUNK_SIZE: Final = 3
_CHUNK_DATA: Final = 4
_CHUNK_END: Final = 5
_TRAILERS: Final = 6
_OPAQUE: Final = 7
_LOST: Final = 8


def find_head_end(buf: bytes, start: int = 0) -> int | None:
    """Return the offset just past the blank line that ends the head beginning at ``start``.

    Accepts CRLF and bare LF line ends. Returns None if the head is incomplete.
    """
    i = start
    while True:
        j = buf.find(b"\n", i)
        if j < 0:
            return None
        if content_len(buf[i : j + 1]) == 0 and i > start:
            return j + 1
        i = j + 1


class Head(NamedTuple):
    """A parsed head: its length, start line, header fields and keep ranges (relative)."""

    end: int
    start_line: bytes
    headers: list[tuple[bytes, bytes]]
    keep: Ranges


def parse_head(buf: bytes, is_request: bool) -> Head | None:
    """Parse the complete head at the start of ``buf`` the way HttpParser would keep it.

    Returns None if the head is incomplete or invalid.
    """
    end = find_head_end(buf)
    if end is None:
        return None
    parser = HttpParser(is_request=is_request, methods=deque())
    parser.feed(buf[:end])
    if not parser.synced or parser._state not in (_START, _BODY, _CHUNK_SIZE, _OPAQUE):
        return None
    headers: list[tuple[bytes, bytes]] = []
    lines = buf[:end].split(b"\n")  # the last two items are the blank line and b""
    for ln in lines[1:-2]:
        parsed = header_line_keep(ln + b"\n")  # None for folded continuations
        if parsed is not None:
            headers.append(parsed[:2])
    return Head(end, lines[0].rstrip(b"\r"), headers, parser.take_ranges())


class HttpParser:
    """Find HTTP/1.x heads and bodies in one stream direction and report the byte ranges to keep.

    The request-direction parser appends each request's method to ``methods``;
    the response-direction parser pops one per final (non-1xx) response to
    know whether it has a body. After CONNECT (request side), 101, a 2xx to
    CONNECT, or a response without length framing, everything to the end of
    the stream is zeroed and never resynced.

    Attributes:
        pos: absolute offset of the next byte expected by ``feed``.
        decided: every byte below it has its final decision; it lags ``pos``
            only while a head/chunk line is incomplete (at most MAX_LINE bytes).
        synced: False after invalid input until a chunk starts like a head.
        messages: start lines accepted.
        messages_masked: messages of which something was zeroed (body, header
            value, part of the target, IP literal, chunk extension, trailer, fold).
    """

    __slots__ = tuple(
        "pos decided synced is_request methods messages messages_masked _state _line _line_start"
        " _ranges _replacements _head_len _masked _method _status _clen _te _last_name _last_kept _remaining".split()
    )

    def __init__(
        self,
        pos: int = 0,
        synced: bool = True,
        is_request: bool = True,
        methods: deque[bytes] | None = None,
    ) -> None:
        """Start at absolute offset ``pos``; ``synced=False`` when it is not known to be a head start."""
        self.pos = pos
        self.decided = pos
        self.synced = synced
        self.is_request = is_request
        self.methods = methods
        self.messages = 0
        self.messages_masked = 0
        self._state = _START if synced else _LOST
        self._line = bytearray()  # an incomplete line carried over from earlier chunks
        self._line_start = pos
        self._ranges: list[list[int]] = []
        self._replacements: list[tuple[int, bytes]] = []  # see take_replacements
        self._reset_message()

    def _reset_message(self) -> None:
        self._head_len = 0
        self._masked = False
        self._method = b""
        self._status = 0
        self._clen: int | None = None
        self._te: bytes | None = None  # last transfer-coding seen, lower-cased
        self._last_name = b""
        self._last_kept = False  # the last header's value is kept: so are its folded continuations
        self._remaining = 0

    def _keep(self, start: int, end: int) -> None:
        if start >= end:
            return
        if self._ranges and self._ranges[-1][1] == start:
            self._ranges[-1][1] = end
        else:
            self._ranges.append([start, end])

    def _keep_rel(self, base: int, ranges: Ranges) -> None:
        for a, b in ranges:
            self._keep(base + a, base + b)

    def _mark_masked(self) -> None:
        if not self._masked:
            self._masked = True
            self.messages_masked += 1

    def _lose_sync(self) -> None:
        self._state = _LOST
        self.synced = False
        self._line.clear()
        self._reset_message()

    def _message_done(self) -> None:
        self._state = _START
        self._reset_message()

    def feed(self, data: bytes | memoryview) -> None:
        """Consume the next contiguous chunk, which starts at ``self.pos``.

        Resynchronisation is only attempted at the start of a chunk. Returns
        nothing; collect the results with ``take_ranges``.
        """
        n = len(data)
        if n == 0:
            return
        start = self.pos
        self.pos = end = start + n
        st = self._state
        # Fast paths: the whole chunk is zeroed, no copy and no scan.
        if (st == _BODY or st == _CHUNK_DATA) and self._remaining >= n:
            self._skip(n)
            self.decided = end
            return
        if st == _OPAQUE or (st == _LOST and not self._can_resync(data)):
            if st == _OPAQUE:
                self._mark_masked()
            self.decided = end
            return
        if st == _LOST:
            self.synced = True
            self._state = _START
        buf = data if isinstance(data, bytes) else bytes(data)
        i = 0
        while i < n:
            st = self._state
            if st == _BODY or st == _CHUNK_DATA:
                take = min(self._remaining, n - i)
                i += take
                self._skip(take)
                continue
            if st == _OPAQUE:
                self._mark_masked()
                break
            if st == _LOST:
                break
            j = buf.find(b"\n", i)
            if j < 0:
                if not self._line:
                    self._line_start = start + i
                self._line += buf[i:]
                if len(self._line) >= MAX_LINE:
                    self._lose_sync()
                break
            if self._line:
                self._line += buf[i : j + 1]
                line = bytes(self._line)
                self._line.clear()
                line_start = self._line_start
            else:
                line = buf[i : j + 1]
                line_start = start + i
            i = j + 1
            try:
                if len(line) > MAX_LINE:
                    raise _Desync
                self._on_line(line, line_start)
            except _Desync:
                self._lose_sync()
                break
        self.decided = self._line_start if self._line else end

    def skip(self, n: int) -> bool:
        """Consume ``n`` bytes at once if they all lie inside a zeroed body (not its last byte).

        Returns False (nothing consumed) otherwise; then use ``feed``.
        """
        st = self._state
        if (st == _BODY or st == _CHUNK_DATA) and self._remaining > n:
            self._remaining -= n
            self.pos += n
            self.decided = self.pos
            return True
        return False

    def _skip(self, k: int) -> None:
        """Pass over ``k`` zeroed body or chunk-data bytes (at most the remaining count)."""
        self._remaining -= k
        if not self._remaining:
            if self._state == _BODY:
                self._message_done()
            else:
                self._state = _CHUNK_END

    def _can_resync(self, data: bytes | memoryview) -> bool:
        if self.is_request:
            return looks_like_request(data)
        return looks_like_response(data)

    def _on_line(self, line: bytes, base: int) -> None:
        """Decide one complete line (line end included) starting at absolute offset ``base``.

        Raises _Desync if the line breaks the framing.
        """
        st = self._state
        c = content_len(line)
        if st in (_START, _HEADERS, _TRAILERS):
            self._head_len += len(line)
            if self._head_len > MAX_HEAD:
                raise _Desync
        if st == _START:
            if c == 0:
                # Stray empty lines before a start line are tolerated (RFC 9112 s2.2).
                self._keep(base, base + len(line))
            elif self.is_request:
                parsed = request_line_keep(line)
                if parsed is None:
                    raise _Desync
                self._method, keep = parsed
                self._start_message(keep, base, len(line))
                if self.methods is not None:
                    self.methods.append(self._method)
                    if len(self.methods) > MAX_PENDING_METHODS:
                        self.methods.popleft()
            else:
                code = status_code(line)
                if code is None:
                    raise _Desync
                self._status = code
                self._start_message(status_line_keep(line), base, len(line))
        elif st == _HEADERS:
            if c == 0:
                self._keep(base, base + len(line))
                self._end_head()
            elif line[0] in b" \t":
                # Obsolete folding: the continuation belongs to the previous
                # header's value and is kept only if that value is. If it
                # continues a framing header we cannot trust our framing.
                if self._last_name in (b"content-length", b"transfer-encoding"):
                    raise _Desync
                keep = fold_line_keep(line, self._last_kept)
                self._keep_rel(base, keep)
                if len(keep) != 1 or keep[0] != (0, len(line)):
                    self._mark_masked()
            else:
                field = header_line_keep(line)
                if field is None:
                    raise _Desync
                self._on_header(field[0], field[1])
                self._keep_rel(base, field[2])
                if field[2] != [(0, len(line))]:
                    self._mark_masked()
        elif st == _CHUNK_SIZE:
            m = _CHUNK_RE.fullmatch(line, 0, c)
            if m is None:
                raise _Desync
            digits = m.end(1)
            self._keep(base, base + digits)
            self._keep(base + c, base + len(line))
            if digits < c:
                self._mark_masked()
            size = int(m.group(1), 16)
            if size:
                self._remaining = size
                self._state = _CHUNK_DATA
                self._mark_masked()
            else:
                self._state = _TRAILERS
                self._head_len = 0
        elif st == _CHUNK_END:
            if c:
                raise _Desync
            self._keep(base, base + len(line))
            self._state = _CHUNK_SIZE
        elif st == _TRAILERS:
            if c == 0:
                self._keep(base, base + len(line))
                self._message_done()
            else:
                self._mark_masked()

    def _start_message(self, keep: Ranges, base: int, length: int) -> None:
        self._state = _HEADERS
        self.messages += 1
        self._keep_rel(base, keep)
        if keep != [(0, length)]:
            self._mark_masked()

    def _on_header(self, name: bytes, value: bytes) -> None:
        """Record framing headers; raise _Desync if they make the framing unknowable."""
        self._last_name = name
        self._last_kept = name in KEPT_VALUES
        if name == b"content-length":
            # "n, n" and repeated equal headers are tolerated; anything else is not.
            values = {v.strip(b" \t") for v in value.split(b",")}
            v = values.pop()
            if values or not v.isdigit() or len(v) > 18:
                raise _Desync
            if self._clen is not None and self._clen != int(v):
                raise _Desync
            self._clen = int(v)
        elif name == b"transfer-encoding":
            # Only the final coding decides the framing (RFC 9112 s6.3).
            self._te = value.rsplit(b",", 1)[-1].strip(b" \t").lower() or b"?"

    def _end_head(self) -> None:
        """Choose what follows the head just completed (RFC 9112 s6.3)."""
        if self.is_request:
            if self._method == b"CONNECT":
                self._state = _OPAQUE
            elif self._te is not None:
                if self._te == b"chunked":
                    self._state = _CHUNK_SIZE
                else:
                    raise _Desync  # a server would answer 400; we cannot frame it
            else:
                self._body(self._clen or 0)
            return
        code = self._status
        if code < 200:
            if code == 101:
                self._state = _OPAQUE
            else:
                self._message_done()  # interim response: the final one follows
            return
        method = self.methods.popleft() if self.methods else b""
        if method == b"HEAD" or code in (204, 304):
            self._message_done()
        elif method == b"CONNECT" and code < 300:
            self._state = _OPAQUE
        elif self._te == b"chunked":
            self._state = _CHUNK_SIZE
        elif self._te is None and self._clen is not None:
            self._body(self._clen)
        else:
            self._state = _OPAQUE  # delimited by connection close

    def _body(self, length: int) -> None:
        if length:
            self._remaining = length
            self._state = _BODY
            self._mark_masked()
        else:
            self._message_done()

    def gap(self, pos: int) -> None:
        """Record that the bytes from ``self.pos`` up to ``pos`` were lost; the next feed starts at ``pos``.

        A gap that falls inside a known-length body or chunk, or in data
        zeroed to the end of the stream, keeps sync (the framing still says
        what comes next); any other gap loses sync.
        Raises ValueError if ``pos`` is behind ``self.pos``.
        """
        if pos < self.pos:
            raise ValueError(f"gap to {pos} is behind stream position {self.pos}")
        lost = pos - self.pos
        st = self._state
        if not lost:
            return
        if st in (_BODY, _CHUNK_DATA) and lost <= self._remaining:
            self._skip(lost)
        elif st != _OPAQUE:
            self._lose_sync()
        self.pos = pos
        self.decided = pos

    def take_ranges(self) -> list[tuple[int, int]]:
        """Return the keep ranges ``[start, end)`` found since the last call, sorted and merged."""
        out = [(s, e) for s, e in self._ranges]
        self._ranges.clear()
        return out

    def take_replacements(self) -> list[tuple[int, bytes]]:
        """Return the replacements found since the last call: (absolute start, bytes) to write over
        bytes this parser keeps (each inside ranges returned by ``take_ranges`` in the same call
        or before), sorted. None yet: the pseudonyms of names inside streams will use them."""
        out = self._replacements
        if out:
            self._replacements = []
        return out  # when empty, the same list every time: nothing allocated per segment
