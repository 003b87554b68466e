"""TLS handshake messages of one stream direction: what is kept, pseudonymized or zeroed.

``HandshakeWalker`` is fed the bodies of cleartext handshake records as they reassemble
(``feed(stream_offset, bytes)``; a message may span records and TCP segments, and the record
headers between its pieces are not part of it). It buffers one message at a time (at most
MAX_MESSAGE bytes; a longer one keeps its 4-byte header and is zeroed) and, when the message is
complete, reports its kept ranges and its name replacements in stream offsets. Until then the
message's bytes are undecided (``pending``). A message of any other type keeps its header and
has its body zeroed as it streams by (no buffering).

Field by field (docs/policy.md, "TLS"): every message's type and length are kept.

* ClientHello / ServerHello: version, cipher suites, compression methods, extension types and
  lengths kept; random zeroed (a HelloRetryRequest's fixed random kept), session ID zeroed (its
  length kept); extensions by ``_extension``.
* NewSessionTicket (TLS 1.2): lifetime hint and ticket length kept, ticket zeroed.
* Certificate: list and certificate lengths kept, each certificate by ``x509.CertWalker``
  (a client certificate when this direction sent a ClientHello or no ServerHello yet).
* Every other message (key exchanges, CertificateRequest, CertificateVerify, CertificateStatus,
  Finished, unknown ones): body zeroed.

Malformed or cut short: zeroed from the first byte not understood.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from pktmask.proto.x509 import CertWalker, map_host

HELLO_REQUEST: Final = 0
CLIENT_HELLO: Final = 1
SERVER_HELLO: Final = 2
NEW_SESSION_TICKET: Final = 4
CERTIFICATE: Final = 11
SERVER_HELLO_DONE: Final = 14

MAX_MESSAGE: Final = 1 << 18  # a longer handshake message keeps only its header
# Messages with fields to keep or names to map, buffered until complete; every other type
# keeps its header and has its body zeroed as it streams by.
WALKED: Final = frozenset({CLIENT_HELLO, SERVER_HELLO, NEW_SESSION_TICKET, CERTIFICATE})

# RFC 8446 s4.1.3: the random of a HelloRetryRequest (SHA-256 of "HelloRetryRequest").
HRR_RANDOM: Final = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")

EXT_SERVER_NAME: Final = 0
EXT_PRE_SHARED_KEY: Final = 41
EXT_KEY_SHARE: Final = 51
EXT_RENEGOTIATION_INFO: Final = 0xFF01
# Extensions whose data are kept whole: lists of code points, flags and sizes, no identifier.
KEPT_EXTENSIONS: Final = frozenset({
    10,  # supported_groups
    11,  # ec_point_formats
    13,  # signature_algorithms
    16,  # application_layer_protocol_negotiation (registered protocol IDs)
    22,  # encrypt_then_mac
    23,  # extended_master_secret
    27,  # compress_certificate
    28,  # record_size_limit
    42,  # early_data
    43,  # supported_versions
    45,  # psk_key_exchange_modes
    49,  # post_handshake_auth
    50,  # signature_algorithms_cert
})

Names = Callable[[bytes], bytes]


class _Out:
    """Kept ranges and replacements of one message, in message offsets."""

    __slots__ = ("keep", "put", "mapped")

    def __init__(self) -> None:
        self.keep: list[tuple[int, int]] = []
        self.put: list[tuple[int, bytes]] = []
        self.mapped = 0

    def k(self, a: int, b: int) -> None:
        if a < b:
            keep = self.keep
            if keep and keep[-1][1] == a:
                keep[-1] = (keep[-1][0], b)
            else:
                keep.append((a, b))

    def p(self, at: int, data: bytes) -> None:
        self.put.append((at, data))


class _Short(Exception):
    """A field runs past its parent: the rest of the message is zeroed."""


def _u16(m: bytes, p: int, end: int) -> int:
    if p + 2 > end:
        raise _Short
    return m[p] << 8 | m[p + 1]


def _u24(m: bytes, p: int, end: int) -> int:
    if p + 3 > end:
        raise _Short
    return m[p] << 16 | m[p + 1] << 8 | m[p + 2]


def message(m: bytes, names: Names | None, client: bool, out: _Out) -> None:
    """Decide one complete message ``m`` (4-byte header included) into ``out``."""
    out.k(0, 4)
    kind = m[0]
    end = len(m)
    try:
        if kind == CLIENT_HELLO or kind == SERVER_HELLO:
            _hello(m, kind, names, out)
        elif kind == NEW_SESSION_TICKET:
            out.k(4, 8)  # lifetime hint
            n = _u16(m, 8, end)
            out.k(8, 10)  # ticket length; the ticket zeroed
            if 10 + n != end:
                raise _Short
        elif kind == CERTIFICATE:
            _certificates(m, names, client, out)
    except _Short:
        pass


def _hello(m: bytes, kind: int, names: Names | None, out: _Out) -> None:
    end = len(m)
    if 6 > end:
        raise _Short
    out.k(4, 6)  # legacy version
    if 4 + 2 + 32 + 1 > end:
        raise _Short
    if kind == SERVER_HELLO and m[6:38] == HRR_RANDOM:
        out.k(6, 38)
    p = 38
    n = m[p]
    out.k(p, p + 1)  # session ID length; the ID zeroed
    p += 1 + n
    if kind == CLIENT_HELLO:
        n = _u16(m, p, end)
        if p + 2 + n > end:
            raise _Short
        out.k(p, p + 2 + n)  # cipher suites
        p += 2 + n
        if p + 1 > end or p + 1 + m[p] > end:
            raise _Short
        out.k(p, p + 1 + m[p])  # compression methods
        p += 1 + m[p]
    else:
        if p + 3 > end:
            raise _Short
        out.k(p, p + 3)  # cipher suite, compression method
        p += 3
    if p == end:
        return
    n = _u16(m, p, end)
    out.k(p, p + 2)
    p += 2
    if p + n != end:
        raise _Short
    while p < end:
        etype = _u16(m, p, end)
        elen = _u16(m, p + 2, end)
        if p + 4 + elen > end:
            raise _Short
        out.k(p, p + 4)
        _extension(m, etype, p + 4, p + 4 + elen, kind, names, out)
        p += 4 + elen


def _extension(m: bytes, etype: int, p: int, end: int, kind: int, names: Names | None, out: _Out) -> None:
    """One extension's data ``m[p:end]``: kept, names pseudonymized, or zeroed (not reported)."""
    try:
        if etype in KEPT_EXTENSIONS:
            out.k(p, end)
        elif etype == EXT_SERVER_NAME:
            if p == end:
                return
            n = _u16(m, p, end)
            out.k(p, p + 2)
            p += 2
            if p + n != end:
                raise _Short
            while p < end:
                ntype = m[p]
                n = _u16(m, p + 1, end)
                if p + 3 + n > end:
                    raise _Short
                out.k(p, p + 3)
                if ntype == 0:  # host_name
                    if names is None:
                        out.k(p + 3, p + 3 + n)
                    else:
                        new = map_host(m[p + 3 : p + 3 + n], names)
                        if len(new) == n:
                            out.k(p + 3, p + 3 + n)
                            out.p(p + 3, new)
                            out.mapped += 1
                p += 3 + n
        elif etype == EXT_KEY_SHARE:
            if kind == SERVER_HELLO:
                # group (2) alone in a HelloRetryRequest, else group, length, key (zeroed)
                out.k(p, p + 4 if end - p >= 4 else end)
                return
            n = _u16(m, p, end)
            out.k(p, p + 2)
            p += 2
            if p + n != end:
                raise _Short
            while p < end:
                n = _u16(m, p + 2, end)
                if p + 4 + n > end:
                    raise _Short
                out.k(p, p + 4)  # group, key length; the key zeroed
                p += 4 + n
        elif etype == EXT_PRE_SHARED_KEY:
            if kind == SERVER_HELLO:
                out.k(p, end if end - p <= 2 else p)  # selected identity
                return
            n = _u16(m, p, end)
            out.k(p, p + 2)
            q = p + 2
            stop = q + n
            if stop > end:
                raise _Short
            while q < stop:  # identities: length kept, identity and ticket age zeroed
                n = _u16(m, q, stop)
                if q + 2 + n + 4 > stop:
                    raise _Short
                out.k(q, q + 2)
                q += 2 + n + 4
            n = _u16(m, q, end)
            out.k(q, q + 2)
            q += 2
            if q + n != end:
                raise _Short
            while q < end:  # binders: length kept, binder zeroed
                n = m[q]
                out.k(q, q + 1)
                q += 1 + n
        elif etype == EXT_RENEGOTIATION_INFO:
            if p < end:
                out.k(p, p + 1)  # length; the previous Finished's verify data zeroed
    except _Short:
        pass


def _certificates(m: bytes, names: Names | None, client: bool, out: _Out) -> None:
    end = len(m)
    n = _u24(m, 4, end)
    out.k(4, 7)
    if 7 + n != end:
        raise _Short
    p = 7
    walker = CertWalker(m, out.k, out.p, names, client)
    while p < end:
        n = _u24(m, p, end)
        if p + 3 + n > end:
            raise _Short
        out.k(p, p + 3)
        walker.walk(p + 3, p + 3 + n)
        p += 3 + n
    out.mapped += walker.mapped


class HandshakeWalker:
    """One direction's handshake messages (see the module docstring).

    Attributes:
        pending: stream offset of the first byte of the message being buffered (undecided), or -1.
        client: this direction sent a ClientHello; ``server`` when it sent a ServerHello.
        names_mapped: names replaced by a pseudonym.
    """

    __slots__ = ("names", "pending", "client", "server", "names_mapped", "_buf", "_pieces",
                 "_need", "_skip", "_ranges", "_puts")

    def __init__(self, names: Names | None) -> None:
        self.names = names
        self.pending = -1
        self.client = False
        self.server = False
        self.names_mapped = 0
        self._buf = bytearray()
        self._pieces: list[tuple[int, int]] = []  # (message offset, stream offset) of each piece
        self._need = 4  # bytes the message needs in all (4 until its header is read)
        self._skip = 0  # body bytes of an oversized message still to come (zeroed)
        self._ranges: list[tuple[int, int]] = []
        self._puts: list[tuple[int, bytes]] = []

    def reset(self) -> None:
        """The stream lost its way: a buffered message stays zeroed, the next byte starts one."""
        self._buf = bytearray()
        self._pieces = []
        self._need = 4
        self._skip = 0
        self.pending = -1

    def feed(self, at: int, data: bytes | memoryview) -> None:
        """Handshake-record body bytes at stream offset ``at`` (contiguous, in stream order)."""
        i = 0
        n = len(data)
        while i < n:
            if self._skip:
                take = min(self._skip, n - i)
                self._skip -= take
                i += take
                continue
            buf = self._buf
            if not buf:
                self.pending = at + i
            take = min(self._need - len(buf), n - i)
            self._pieces.append((len(buf), at + i))
            buf += data[i : i + take]
            i += take
            if len(buf) < self._need:
                continue
            if self._need == 4:
                length = buf[1] << 16 | buf[2] << 8 | buf[3]
                if length > MAX_MESSAGE or buf[0] not in WALKED:
                    # Its body is zeroed whole: decided now, never buffered.
                    self._emit([(0, 4)], [])
                    self._skip = length
                    self.reset_message()
                    continue
                self._need = 4 + length
                if length:
                    continue
            self._complete()

    def reset_message(self) -> None:
        self._buf = bytearray()
        self._pieces = []
        self._need = 4
        self.pending = -1

    def _complete(self) -> None:
        m = bytes(self._buf)
        kind = m[0]
        if kind == CLIENT_HELLO:
            self.client = True
        elif kind == SERVER_HELLO:
            self.server = True
        out = _Out()
        message(m, self.names, not self.server, out)
        self.names_mapped += out.mapped
        self._emit(out.keep, out.put)
        self.reset_message()

    def _emit(self, keep: list[tuple[int, int]], puts: list[tuple[int, bytes]]) -> None:
        """Map message offsets to stream offsets through the pieces (a range may span several)."""
        pieces = self._pieces
        bounds = [p[0] for p in pieces[1:]] + [len(self._buf)]
        ranges = self._ranges
        for a, b in keep:
            for j, (ms, ss) in enumerate(pieces):
                me = bounds[j]
                x = a if a > ms else ms
                y = b if b < me else me
                if x < y:
                    s = ss + x - ms
                    e = ss + y - ms
                    if ranges and ranges[-1][1] == s:
                        ranges[-1] = (ranges[-1][0], e)
                    else:
                        ranges.append((s, e))
        for at, data in puts:
            b = at + len(data)
            for j, (ms, ss) in enumerate(pieces):
                me = bounds[j]
                x = at if at > ms else ms
                y = b if b < me else me
                if x < y:
                    self._puts.append((ss + x - ms, data[x - at : y - at]))

    def take_ranges(self) -> list[tuple[int, int]]:
        """The kept stream ranges decided since the last call (in stream order)."""
        ranges = self._ranges
        if ranges:
            self._ranges = []
        return ranges

    def take_replacements(self) -> list[tuple[int, bytes]]:
        """The replacements ``(stream offset, bytes)`` decided since the last call."""
        puts = self._puts
        if puts:
            self._puts = []
        return puts
