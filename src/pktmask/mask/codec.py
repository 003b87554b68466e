"""The masking decision stream's records: each kind's tag, encoder and decoder, side by side.

The masking pre-pass (stages/mask.py, mask/tracker.py) writes, in capture
order, one verdict per packet followed by the records masking that packet
needs; the masking pass reads them back in the same order. ``DecisionStream``
(mask/decisions.py) moves the bytes through a pipe or scratch. The grammar::

    stream  := packet* (TRAILER | FAILURE)   a FAILURE may cut in at any record boundary
    packet  := VERDICT LENGTH* FRAGMENT? SEGMENT?
    LENGTH  := LENGTH | NO_LENGTH            one per first fragment (``has_length_record``)
    FRAGMENT := SUM? REPLACEMENTS? (EMPTY | RANGES)
                                             for a fragment of a UDP datagram (``has_fragment_record``);
                                             SUM only for the first fragment of a datagram kept
    SEGMENT := REPLACEMENTS? (EMPTY | RANGES)
                                             for a TCP segment with payload (``has_segment_record``)

Every record starts with its tag; tags are distinct, so a reader that meets
another kind than it expects fails there. A verdict carries its packet's
index modulo 256 (``SEQ``): the reader counts packets too, and a stream out of
step with the capture fails at its first packet out of step. Producers and
consumers decide whether a packet has a record with the same predicates
(``has_segment_record``, ``has_length_record``, ``has_fragment_record``). Everything is little-endian.

To add a record kind: take an unused tag, write its encoder and its decoder
here next to each other, say where it goes in the grammar above, and add it to
the round-trip property test (tests/unit/test_codec.py).
"""

from __future__ import annotations

import struct
from typing import Final, NoReturn

from pktmask.capture.packet import Packet
from pktmask.errors import decode_error, encode_error
from pktmask.proto.walk_base import Job

SPILL_CHUNK: Final = 1 << 20
PIPE_CHUNK: Final = 1 << 12  # through a pipe, hand decisions over soon
OUT_OF_STEP: Final = "masking decisions out of step with the capture"

# Tags. Verdicts: V_*; records: T_*. None is 0, so a run of zeros is no record.
V_GENERAL: Final = 0xA0  # not the common shape: the masking pass dissects it
V_FULL: Final = 0xA1  # the common shape, fully captured: layout and sums follow
V_PARTIAL: Final = 0xA2  # the common shape, cut short: layout follows
V_DROPPED: Final = 0xA3  # dropped by the pre-pass stage at ``index``
T_EMPTY: Final = 0xB0  # a TCP segment's payload: nothing kept (the usual record)
T_RANGES: Final = 0xB1  # ... keep ranges
T_REPLACEMENTS: Final = 0xB2  # ... bytes written over kept ones (before its EMPTY or RANGES)
T_LENGTH: Final = 0xB3  # a fragmented datagram's transport length
T_NO_LENGTH: Final = 0xB4  # ... unknown (its last fragment never came)
T_SUM: Final = 0xB5  # a kept datagram's first fragment: the sum of the other fragments' sanitized bytes
T_TRAILER: Final = 0xC0  # the pre-pass's counters: the end
T_FAILURE: Final = 0xC1  # the pre-pass's error: the end


# ---- when a packet has records (producers and consumers ask the same question) ----------
def has_segment_record(start: int, end: int) -> bool:
    """A TCP segment whose payload is ``[start, end)`` has a SEGMENT record: it has payload."""
    return start < end


def has_length_record(job: Job) -> bool:
    """A walk job has a LENGTH record: a first fragment whose checksum the masker recomputes."""
    return job.mask and job.frag is not None


def has_fragment_record(fragment: tuple[bytes, int, int, int, bool] | None) -> bool:
    """A walk's ``fragment`` (a fragment of a UDP datagram, proto/walk_base.py) has a FRAGMENT
    record: what of its bytes the datagram's DNS message keeps (mask/datagrams.py). Every such
    fragment has one: a later fragment carries no port, so only the pre-pass knows."""
    return fragment is not None


# ---- VERDICT: tag, index of the stage that dropped it, SEQ, then the fast layout -------------
# (ip offset, l4 offset, protocol, v6, payload offset, end) and, for a fully captured frame,
# the base sums of its checksums (see ``MaskingStage``). The masking pass replays it instead
# of running the dropping stages, the layout classification and those sums again. The
# payload offset fits a byte: at most 18 + 40 + 60 on the fast path. ``read_verdict`` reads
# the fields at these offsets byte by byte.
VERDICT: Final = struct.Struct("<BBBBBB?BIHH")
VSIZE: Final = 16  # a literal, so compiled code inlines it
assert VERDICT.size == VSIZE
SEQ: Final = 2  # offset of the packet's index modulo 256
VPACK: Final = VERDICT.pack  # bound once: a method call on the Struct costs a lookup each time
_GENERAL: Final = tuple(VPACK(V_GENERAL, 0, i, 0, 0, 0, False, 0, 0, 0, 0) for i in range(256))


def verdict_general(packet: int) -> bytes:
    """The verdict of packet number ``packet`` (from 0) when it is not of the common shape."""
    return _GENERAL[packet & 0xFF]


def verdict_dropped(packet: int, index: int) -> bytes:
    """The verdict of a packet the pre-pass stage number ``index`` dropped."""
    return VPACK(V_DROPPED, index, packet & 0xFF, 0, 0, 0, False, 0, 0, 0, 0)


def verdict_layout(packet: int, kind: int, l3: int, l4: int, proto: int, v6: bool, ps: int, end: int,
                   tsum: int, isum: int) -> bytes:
    """The verdict of a frame of the common shape (``kind`` V_FULL with its sums, or V_PARTIAL)."""
    return VPACK(kind, 0, packet & 0xFF, l3, l4, proto, v6, ps, end, tsum, isum)


# ---- RANGES: u16 count, then u32 start and end pairs, relative to the payload ----------------
_RANGES_HEAD: Final = struct.Struct("<BH")
_PAIR: Final = struct.Struct("<II").pack
_PAIRS: dict[int, struct.Struct] = {}
EMPTY: Final = bytes((T_EMPTY,))


def _pairs(n: int) -> struct.Struct:
    s = _PAIRS.get(n)
    if s is None:
        s = _PAIRS[n] = struct.Struct(f"<{2 * n}I")
    return s


def encode_ranges(out: bytearray, ranges: list[tuple[int, int]]) -> None:
    """Append a segment's keep ranges (EMPTY when there are none)."""
    if not ranges:
        out += EMPTY
        return
    out += _RANGES_HEAD.pack(T_RANGES, len(ranges))
    for a, b in ranges:  # usually one: cheaper than flattening for one pack call
        out += _PAIR(a, b)


# ---- REPLACEMENTS: u16 count, then per replacement u32 offset (relative to the payload), -----
# u32 length and the bytes, written over kept bytes once the keep ranges are applied.
_REPL_HEAD: Final = _RANGES_HEAD
_U16: Final = struct.Struct("<H")
_U32: Final = struct.Struct("<I")
_U32X2: Final = struct.Struct("<II")


def encode_replacements(out: bytearray, repl: list[tuple[int, bytes]]) -> None:
    """Append a segment's replacements (nothing when there are none)."""
    if not repl:
        return
    out += _REPL_HEAD.pack(T_REPLACEMENTS, len(repl))
    for at, value in repl:
        out += _U32X2.pack(at, len(value))
        out += value


# ---- LENGTH: u32, a fragmented datagram's transport length; NO_LENGTH: unknown ---------------
_LENGTH: Final = struct.Struct("<BI").pack
NO_LENGTH: Final = bytes((T_NO_LENGTH,))


def length_record(length: int) -> bytes:
    """The LENGTH record of a datagram whose transport length is ``length`` (queued by the tracker)."""
    return _LENGTH(T_LENGTH, length)


# ---- SUM: u16, the ones'-complement sum (modulo 0xFFFF) of the sanitized bytes of a kept --------
# datagram after its first fragment: the first fragment's transport checksum covers them.
# FRAGMENT: the SUM (first fragment of a kept datagram), its replacements, its keep ranges.
_SUM: Final = struct.Struct("<BH")


def fragment_record(ranges: list[tuple[int, int]], repl: list[tuple[int, bytes]], extra: int = -1) -> bytes:
    """The FRAGMENT record of a fragment whose bytes ``ranges`` keep (relative to where its bytes of
    the datagram start), with ``repl`` written over them; ``extra`` (>= 0) is the SUM of a kept
    datagram's first fragment (queued by the tracker until the datagram is decided)."""
    if extra < 0 and not ranges:
        return EMPTY
    out = bytearray()
    if extra >= 0:
        out += _SUM.pack(T_SUM, extra)
    if ranges:  # replacements only ever land inside kept bytes
        encode_replacements(out, repl)
    encode_ranges(out, ranges)
    return bytes(out)


# ---- TRAILER: u32 TLS records masked, u32 HTTP messages masked, u32 names pseudonymized, u32 DNS
#      messages kept (the last two inside streams) --------------------------------------------
# ---- FAILURE: u32 length, the error (errors.encode_error: its class, message, file) ----------
_END: Final = struct.Struct("<BII").pack
_FAIL: Final = struct.Struct("<BI").pack


def encode_trailer(out: bytearray, tls_records: int, http_messages: int, names: int = 0, dns: int = 0) -> None:
    out += _END(T_TRAILER, tls_records, http_messages)
    out += _U32X2.pack(names, dns)


def encode_failure(out: bytearray, exc: BaseException, path: str | None = None) -> None:
    form = encode_error(exc, path)
    out += _FAIL(T_FAILURE, len(form))
    out += form


class DecisionCodec:
    """The writing and reading side of the records; the transport (``flush``, ``_more``) is a subclass's.

    After ``read_verdict`` of a fully captured common frame, ``sums`` is True
    and ``tsum``/``isum`` hold its checksums' base sums; after
    ``read_segment``, ``replaced`` holds the segment's replacements (None
    when there are none). Raises the pre-pass's error where the reader meets
    it, and RuntimeError when the stream is out of step with the capture (a bug).
    """

    def __init__(self) -> None:
        self._out = bytearray()
        self._limit = SPILL_CHUNK  # flush when this much is buffered
        self._in = b""
        self._pos = 0
        self._packets = 0  # verdicts read: the number (from 1) of the packet being masked
        # Set by read_verdict for a fully captured frame: the pre-pass took its sums.
        # Every packet's verdict is read before it is masked, so this never goes stale.
        self.sums = False
        self.tsum = 0
        self.isum = 0
        self.replaced: list[tuple[int, bytes]] | None = None

    # ---- transport (a subclass's) ------------------------------------------------
    def flush(self) -> None:
        """Hand what is buffered on."""
        raise NotImplementedError

    def _more(self, need: int) -> bytes:
        """The next bytes of the stream (at least one, up to as many as have arrived); b"" at its end."""
        raise NotImplementedError

    def _ended(self) -> NoReturn:
        """The stream ended where a record should be: raise why."""
        raise RuntimeError(f"{OUT_OF_STEP}: the decisions end early")

    def _refill(self, need: int) -> tuple[bytes, int]:
        buf = self._in[self._pos :]
        while len(buf) < need:
            chunk = self._more(max(SPILL_CHUNK, need))
            if not chunk:
                self._ended()
            buf += chunk
        self._in, self._pos = buf, 0
        return buf, 0

    # ---- writing (pre-pass) ------------------------------------------------------
    def write(self, blob: bytes) -> None:
        """Append a record already encoded (a verdict, a LENGTH)."""
        out = self._out
        out += blob
        if len(out) >= self._limit:
            self.flush()

    def ranges(self, ranges: list[tuple[int, int]] | bytes) -> None:
        """The tracker's ``emit``: append a segment's keep ranges, or a record already
        encoded (a verdict held back behind undecided segments, a LENGTH)."""
        out = self._out
        if not ranges:
            out += EMPTY  # the usual one: inline
        elif isinstance(ranges, bytes):
            out += ranges
        else:
            encode_ranges(out, ranges)
        if len(out) >= self._limit:
            self.flush()

    def empty(self) -> None:
        """An EMPTY record: a segment with nothing kept (the tracker's usual one)."""
        out = self._out
        out += EMPTY
        if len(out) >= self._limit:
            self.flush()

    def replacements(self, repl: list[tuple[int, bytes]]) -> None:
        """The tracker's ``replace``: a segment's replacements, just before its keep ranges."""
        encode_replacements(self._out, repl)

    def write_failure(self, exc: BaseException) -> None:
        """From the pre-pass process: tell the masking pass why no more decisions come."""
        encode_failure(self._out, exc, self._name() or None)
        self.flush()

    def _name(self) -> str:
        """The input's name for errors (a subclass with a file context knows it)."""
        return ""

    # ---- reading (masking pass) --------------------------------------------------
    def read_verdict(self, pkt: Packet) -> int:
        """Take this packet's verdict; returns -1 to keep it, or the index of the pre-pass
        stage that dropped it. A kept frame of the common shape gets its ``layout``."""
        n = self._packets
        self._packets = n + 1  # this packet's number, from 1 (for messages)
        buf, pos = self._in, self._pos
        if len(buf) - pos < VSIZE:
            buf, pos = self._refill(1)
            if buf[pos] == T_FAILURE or buf[pos] == T_TRAILER:  # may be shorter than a verdict
                self._pos = pos + 1
                self._unexpected(buf[pos])
            buf, pos = self._refill(VSIZE)
        # Field by field (see VERDICT): compiled, cheaper than unpacking a tuple.
        kind = buf[pos]
        if buf[pos + SEQ] != n & 0xFF or kind < V_GENERAL or kind > V_DROPPED:
            self._pos = pos + 1
            self._unexpected(kind, buf[pos + SEQ])
        self._pos = pos + VSIZE
        self.sums = kind == V_FULL
        if kind == V_FULL or kind == V_PARTIAL:
            end = buf[pos + 11] << 24 | buf[pos + 10] << 16 | buf[pos + 9] << 8 | buf[pos + 8]
            pkt.layout = (buf[pos + 3], buf[pos + 4], buf[pos + 5], end, buf[pos + 6] != 0, kind == V_FULL,
                          buf[pos + 7])
            self.tsum = buf[pos + 13] << 8 | buf[pos + 12]
            self.isum = buf[pos + 15] << 8 | buf[pos + 14]
        elif kind == V_DROPPED:
            return buf[pos + 1]
        return -1

    def skip_empty(self) -> bool:
        """Consume the next record if it is already buffered and an EMPTY (the usual one)."""
        pos = self._pos
        if pos < len(self._in) and self._in[pos] == T_EMPTY:
            self._pos = pos + 1
            return True
        return False

    def read_segment(self) -> list[tuple[int, int]]:
        """A TCP segment's keep ranges; its replacements go to ``replaced``."""
        self.replaced = None
        return self._read_kept(self._tag())

    def read_fragment(self) -> tuple[list[tuple[int, int]], int]:
        """A UDP fragment's keep ranges and the SUM of the datagram's other fragments (0 when
        there is none); its replacements go to ``replaced``."""
        self.replaced = None
        tag = self._tag()
        extra = 0
        if tag == T_SUM:
            extra = self._fields(_U16)[0]
            tag = self._tag()
        return self._read_kept(tag), extra

    def _read_kept(self, tag: int) -> list[tuple[int, int]]:
        """REPLACEMENTS? (EMPTY | RANGES), from the record whose tag ``tag`` was just read."""
        if tag == T_REPLACEMENTS:
            self.replaced = self._read_replacements()
            tag = self._tag()
        if tag == T_EMPTY:
            return []
        if tag != T_RANGES:
            self._unexpected(tag)
        n: int = self._fields(_U16)[0]
        vals = self._fields(_pairs(n))
        return [(vals[i], vals[i + 1]) for i in range(0, 2 * n, 2)]

    def _read_replacements(self) -> list[tuple[int, bytes]]:
        n: int = self._fields(_U16)[0]
        out: list[tuple[int, bytes]] = []
        for _ in range(n):
            at, size = self._fields(_U32X2)
            buf, pos = self._in, self._pos
            if len(buf) - pos < size:
                buf, pos = self._refill(size)
            self._pos = pos + size
            out.append((at, bytes(buf[pos : pos + size])))
        return out

    def read_length(self) -> int:
        """A fragmented datagram's transport length, or -1 when it is unknown."""
        tag = self._tag()
        if tag == T_NO_LENGTH:
            return -1
        if tag != T_LENGTH:
            self._unexpected(tag)
        return self._fields(_U32)[0]

    def read_trailer(self) -> tuple[int, int, int, int]:
        """The counters at the end: (TLS records masked, HTTP messages masked, names
        pseudonymized inside streams, DNS messages kept inside streams)."""
        tag = self._tag()
        if tag != T_TRAILER:
            self._unexpected(tag)
        tls, http = self._fields(_U32X2)
        names, dns = self._fields(_U32X2)
        return tls, http, names, dns

    def _tag(self) -> int:
        """Consume the next record's tag."""
        buf, pos = self._in, self._pos
        if pos >= len(buf):
            buf, pos = self._refill(1)
        self._pos = pos + 1
        return buf[pos]

    def _fields(self, fmt: struct.Struct) -> tuple:
        """Unpack ``fmt`` from the stream."""
        buf, pos = self._in, self._pos
        size = fmt.size
        if len(buf) - pos < size:
            buf, pos = self._refill(size)
        self._pos = pos + size
        return fmt.unpack_from(buf, pos)

    def _unexpected(self, tag: int, seq: int = -1) -> NoReturn:
        """Another record than the one expected (its tag just read; ``seq``, a verdict's): the
        pre-pass's failure, or a bug."""
        if tag == T_FAILURE:
            (length,) = self._fields(_U32)
            buf, pos = self._in, self._pos
            if len(buf) - pos < length:
                buf, pos = self._refill(length)
            self._pos = pos + length
            raise decode_error(bytes(buf[pos : pos + length]))
        found = f"the verdict of packet {seq + 1} modulo 256" if seq >= 0 and V_GENERAL <= tag <= V_DROPPED \
            else f"record tag {tag:#04x}"
        raise RuntimeError(f"{OUT_OF_STEP} at packet {self._packets} (found {found})")
