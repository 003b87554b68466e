"""The audit's own reading of TLS handshake messages: which bytes the policy keeps, which are names.

docs/policy.md ("TLS"), written apart from the sanitizer's walker. ``Handshake`` follows the
cleartext handshake bytes of one direction (the bodies of handshake records, record headers
left out): ``feed(pos, chunk)`` with absolute stream offsets. ClientHello, ServerHello,
NewSessionTicket and Certificate are read whole (up to MAX_MESSAGE bytes); of every other
message (and a longer one) only the 4-byte header is kept. ``keep(at, bytes)`` reports kept
runs, ``name(at, bytes)`` the host names the policy pseudonymizes (SNI, a server certificate's
subject CN and SAN dNSNames, any issuer CN that reads as a host name): they must change, label
by label, except their public suffix and a leading ``*``. Everything else must be zero:
randoms, session IDs, tickets, PSK identities and binders, key shares, serials, validity,
keys, signatures, other attribute and extension values, a client certificate's names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

Report = Callable[[int, bytes], None]
# (stream offset, the piece of a name there, the whole name, the piece's offset in it)
NameReport = Callable[[int, bytes, bytes, int], None]
MAX_MESSAGE: Final = 1 << 18
READ_WHOLE: Final = frozenset({1, 2, 4, 11})  # ClientHello, ServerHello, NewSessionTicket, Certificate
HRR: Final = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")
# Extension types whose data are kept whole (code point lists, flags, sizes; ALPN protocol IDs).
WHOLE_EXTENSIONS: Final = frozenset({10, 11, 13, 16, 22, 23, 27, 28, 42, 43, 45, 49, 50})
CN: Final = b"\x06\x03\x55\x04\x03"
SAN: Final = b"\x55\x1d\x11"
KEPT_CERT_EXTENSIONS: Final = frozenset({b"\x55\x1d\x13", b"\x55\x1d\x0f", b"\x55\x1d\x25"})
HOST_CHARS: Final = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.*")

Span = tuple[int, int]


class Bad(Exception):
    """Not what the policy reads: the rest of the message (or certificate) must be zero."""


def _n(m: bytes, p: int, size: int, end: int) -> int:
    if p + size > end:
        raise Bad
    return int.from_bytes(m[p:p + size], "big")


class Decision:
    """Kept spans and name spans of one message (message offsets)."""

    def __init__(self) -> None:
        self.kept: list[Span] = []
        self.names: list[Span] = []

    def keep(self, a: int, b: int) -> None:
        if a < b:
            self.kept.append((a, b))


def decide(m: bytes, client: bool) -> Decision:
    """Read one complete message (header included); ``client``: a certificate here is a client's."""
    d = Decision()
    d.keep(0, 4)
    try:
        if m[0] in (1, 2):
            _hello(m, m[0] == 1, d)
        elif m[0] == 4:
            d.keep(4, 10)
            if 10 + _n(m, 8, 2, len(m)) != len(m):
                raise Bad
        elif m[0] == 11:
            total = _n(m, 4, 3, len(m))
            d.keep(4, 7)
            if 7 + total != len(m):
                raise Bad
            p = 7
            while p < len(m):
                size = _n(m, p, 3, len(m))
                if p + 3 + size > len(m):
                    raise Bad
                d.keep(p, p + 3)
                Cert(m, d, client).read(p + 3, p + 3 + size)
                p += 3 + size
    except Bad:
        pass
    return d


def _hello(m: bytes, is_client: bool, d: Decision) -> None:
    end = len(m)
    _n(m, 4, 2, end)
    d.keep(4, 6)
    _n(m, 6, 33, end)
    if not is_client and m[6:38] == HRR:
        d.keep(6, 38)
    p = 39 + m[38]
    d.keep(38, 39)
    if is_client:
        for size in (2, 1):
            count = _n(m, p, size, end)
            if p + size + count > end:
                raise Bad
            d.keep(p, p + size + count)
            p += size + count
    else:
        _n(m, p, 3, end)
        d.keep(p, p + 3)
        p += 3
    if p == end:
        return
    total = _n(m, p, 2, end)
    d.keep(p, p + 2)
    p += 2
    if p + total != end:
        raise Bad
    while p < end:
        kind, size = _n(m, p, 2, end), _n(m, p + 2, 2, end)
        if p + 4 + size > end:
            raise Bad
        d.keep(p, p + 4)
        try:
            _extension(m, kind, p + 4, p + 4 + size, is_client, d)
        except Bad:
            pass
        p += 4 + size


def _extension(m: bytes, kind: int, a: int, b: int, is_client: bool, d: Decision) -> None:
    if kind in WHOLE_EXTENSIONS:
        d.keep(a, b)
    elif kind == 0 and a < b:  # server_name
        size = _n(m, a, 2, b)
        d.keep(a, a + 2)
        if a + 2 + size != b:
            raise Bad
        p = a + 2
        while p < b:
            length = _n(m, p + 1, 2, b)
            if p + 3 + length > b:
                raise Bad
            d.keep(p, p + 3)
            if m[p] == 0:
                d.names.append((p + 3, p + 3 + length))
            p += 3 + length
    elif kind == 51:  # key_share: groups and lengths, never the keys
        if not is_client:
            d.keep(a, min(b, a + 4))
            return
        size = _n(m, a, 2, b)
        d.keep(a, a + 2)
        if a + 2 + size != b:
            raise Bad
        p = a + 2
        while p < b:
            length = _n(m, p + 2, 2, b)
            if p + 4 + length > b:
                raise Bad
            d.keep(p, p + 4)
            p += 4 + length
    elif kind == 41:  # pre_shared_key: lengths only
        if not is_client:
            if b - a <= 2:
                d.keep(a, b)
            return
        size = _n(m, a, 2, b)
        d.keep(a, a + 2)
        p, stop = a + 2, a + 2 + size
        if stop > b:
            raise Bad
        while p < stop:
            length = _n(m, p, 2, stop)
            if p + 2 + length + 4 > stop:
                raise Bad
            d.keep(p, p + 2)
            p += 6 + length
        size = _n(m, p, 2, b)
        d.keep(p, p + 2)
        p += 2
        if p + size != b:
            raise Bad
        while p < b:
            d.keep(p, p + 1)
            p += 1 + m[p]
    elif kind == 0xFF01 and a < b:
        d.keep(a, a + 1)


def tlv(m: bytes, p: int, end: int) -> tuple[int, int, int]:
    """(tag, value start, value end) of the DER element at ``p``."""
    if p + 2 > end:
        raise Bad
    first = m[p + 1]
    v = p + 2
    size = first
    if first >= 0x80:
        count = first - 0x80
        if not 1 <= count <= 3 or v + count > end:
            raise Bad
        size = int.from_bytes(m[v:v + count], "big")
        v += count
    if v + size > end:
        raise Bad
    return m[p], v, v + size


class Cert:
    """One certificate of a Certificate message (docs/policy.md, TLS, certificates)."""

    def __init__(self, m: bytes, d: Decision, client: bool):
        self.m, self.d, self.client = m, d, client

    def read(self, a: int, b: int) -> None:
        try:
            self._cert(a, b)
        except Bad:
            pass

    def _enter(self, p: int, end: int, tag: int) -> tuple[int, int]:
        t, v, e = tlv(self.m, p, end)
        if t != tag:
            raise Bad
        self.d.keep(p, v)
        return v, e

    def _all(self, p: int, end: int, tag: int | None = None) -> int:
        t, _v, e = tlv(self.m, p, end)
        if tag is not None and t != tag:
            raise Bad
        self.d.keep(p, e)
        return e

    def _head(self, p: int, end: int) -> int:
        _t, v, e = tlv(self.m, p, end)
        self.d.keep(p, v)
        return e

    def _cert(self, a: int, b: int) -> None:
        v, e = self._enter(a, b, 0x30)
        if e != b:
            raise Bad
        t, te = self._enter(v, e, 0x30)  # tbsCertificate
        m = self.m
        if t < te and m[t] == 0xA0:
            x, xe = self._enter(t, te, 0xA0)
            if self._all(x, xe, 0x02) != xe:
                raise Bad
            t = xe
        if tlv(m, t, te)[0] != 0x02:
            raise Bad
        t = self._head(t, te)  # serial: value zero
        t = self._all(t, te, 0x30)  # signature algorithm
        t = self._name(t, te, True)  # issuer
        x, xe = self._enter(t, te, 0x30)  # validity: times zero
        while x < xe:
            x = self._head(x, xe)
        t = self._name(xe, te, not self.client)  # subject
        x, xe = self._enter(t, te, 0x30)  # subjectPublicKeyInfo
        x = self._all(x, xe, 0x30)
        if self._head(x, xe) != xe:
            raise Bad
        t = xe
        while t < te and m[t] in (0x81, 0x82):
            t = self._head(t, te)
        if t < te:
            x, xe = self._enter(t, te, 0xA3)
            y, ye = self._enter(x, xe, 0x30)
            if ye != xe:
                raise Bad
            while y < ye:
                y = self._extension(y, ye)
            t = xe
        if t != te:
            raise Bad
        t = self._all(te, e, 0x30)  # signatureAlgorithm
        if self._head(t, e) != e:  # signatureValue: value zero
            raise Bad

    def _name(self, p: int, end: int, names: bool) -> int:
        v, e = self._enter(p, end, 0x30)
        m = self.m
        while v < e:
            s, se = self._enter(v, e, 0x31)
            while s < se:
                a, ae = self._enter(s, se, 0x30)
                oid_end = self._all(a, ae, 0x06)
                tag, q, qe = tlv(m, oid_end, ae)
                if qe != ae:
                    raise Bad
                self.d.keep(oid_end, q)
                value = m[q:qe]
                if (names and m[a:oid_end] == CN and tag in (0x0C, 0x13, 0x14, 0x16) and value
                        and all(c in HOST_CHARS for c in value)):
                    self.d.names.append((q, qe))
                s = ae
            v = se
        return e

    def _extension(self, p: int, end: int) -> int:
        v, e = self._enter(p, end, 0x30)
        m = self.m
        tag, o, oe = tlv(m, v, e)
        if tag != 0x06:
            raise Bad
        self.d.keep(v, oe)
        oid = m[o:oe]
        if oe < e and m[oe] == 0x01:
            oe = self._all(oe, e, 0x01)
        x, xe = self._enter(oe, e, 0x04)
        if xe != e:
            raise Bad
        if oid in KEPT_CERT_EXTENSIONS:
            self.d.keep(x, xe)
        elif oid == SAN:
            y, ye = self._enter(x, xe, 0x30)
            while y < ye:
                tag, q, qe = tlv(m, y, ye)
                self.d.keep(y, q)
                if tag == 0x82 and not self.client:
                    self.d.names.append((q, qe))
                y = qe
        else:
            try:
                self._tags(x, xe)
            except Bad:
                pass
        return e

    def _tags(self, p: int, end: int) -> None:
        """Another extension's value: tags and lengths kept (constructed ones opened), values zero."""
        while p < end:
            tag, v, e = tlv(self.m, p, end)
            self.d.keep(p, v)
            if tag & 0x20:
                self._tags(v, e)
            p = e


class Handshake:
    """One direction's cleartext handshake bytes (see the module docstring)."""

    __slots__ = ("keep", "name", "buf", "pieces", "want", "skip", "client", "server")

    def __init__(self, keep: Report, name: NameReport):
        self.keep, self.name = keep, name
        self.buf = bytearray()
        self.pieces: list[tuple[int, int]] = []  # (message offset, stream offset)
        self.want = 4
        self.skip = 0
        self.client = self.server = False

    def lose(self) -> None:
        """Bytes went missing: the message being read is zero, the next byte starts a new one."""
        self.buf, self.pieces, self.want, self.skip = bytearray(), [], 4, 0

    def feed(self, pos: int, chunk: bytes) -> None:
        i = 0
        while i < len(chunk):
            if self.skip:
                n = min(self.skip, len(chunk) - i)
                self.skip -= n
                i += n
                continue
            n = min(self.want - len(self.buf), len(chunk) - i)
            self.pieces.append((len(self.buf), pos + i))
            self.buf += chunk[i:i + n]
            i += n
            if len(self.buf) < self.want:
                continue
            if self.want == 4:
                size = int.from_bytes(self.buf[1:4], "big")
                if size > MAX_MESSAGE or self.buf[0] not in READ_WHOLE:
                    self._report([(0, 4)], [])
                    self.lose()
                    self.skip = size
                    continue
                self.want = 4 + size
                if size:
                    continue
            m = bytes(self.buf)
            if m[0] == 1:
                self.client = True
            elif m[0] == 2:
                self.server = True
            d = decide(m, not self.server)
            self._report(d.kept, d.names)
            self.lose()

    def _report(self, kept: list[Span], names: list[Span]) -> None:
        m = bytes(self.buf)
        ends = [s for s, _ in self.pieces[1:]] + [len(m)]
        for a, b in kept:
            for (s, at), e in zip(self.pieces, ends, strict=True):
                x, y = max(a, s), min(b, e)
                if x < y:
                    self.keep(at + x - s, m[x:y])
        for a, b in names:
            for (s, at), e in zip(self.pieces, ends, strict=True):
                x, y = max(a, s), min(b, e)
                if x < y:
                    self.name(at + x - s, m[x:y], m[a:b], x - a)
