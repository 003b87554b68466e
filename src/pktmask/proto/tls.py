"""Incremental TLS record walker for one direction of a TCP stream.

The walker decides which stream bytes are kept: every 5-byte record header; a
change_cipher_spec body of one byte and an alert body of two (level,
description: an encrypted alert is longer); and of the
bodies of cleartext handshake records what ``tls_handshake.HandshakeWalker``
keeps, with the name pseudonyms it computes as replacements
(``take_replacements``). Bodies of application_data (which in TLS 1.3 also
carries the encrypted handshake), heartbeat records and handshake records after
this direction's change_cipher_spec (encrypted: TLS 1.2's Finished) are left
out, so the caller zeroes them. Those bodies are skipped by length arithmetic
and never scanned.

Header validity rules (shared by the walker, resync and the sniffer):

* type is 20..24 (change_cipher_spec, alert, handshake, application_data,
  heartbeat);
* version major is 3 and minor is 0..4 (SSL 3.0 up to the TLS 1.3 legacy value);
* length is 1..MAX_RECORD_LEN. A zero length is accepted only for
  application_data: RFC 8446 s5.1 and RFC 5246 s6.2.1 allow empty
  application_data fragments (used as traffic-analysis padding) but forbid
  empty handshake, alert and change_cipher_spec fragments; an empty heartbeat
  is malformed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from pktmask.proto.tls_handshake import HandshakeWalker

CHANGE_CIPHER_SPEC: Final = 20
ALERT: Final = 21
HANDSHAKE: Final = 22
APPLICATION_DATA: Final = 23
HEARTBEAT: Final = 24

HEADER_LEN: Final = 5
# 2^14 plaintext plus the largest expansion any TLS version allows (RFC 5246
# s6.2.3 allows +2048 for ciphertext); a small margin tolerates odd stacks.
MAX_RECORD_LEN: Final = 18432

# How a record body is decided (``TlsParser._body``).
_ZERO: Final = 0
_KEEP: Final = 1
_WALK: Final = 2  # handshake: fed to the handshake walker


def _prefix_ok(buf: bytes | memoryview, off: int, avail: int) -> bool:
    """Tell whether the first ``avail`` (< 5) header bytes at ``off`` could still start a header.

    Returns False as soon as one available byte rules a header out.
    """
    if avail >= 1 and not CHANGE_CIPHER_SPEC <= buf[off] <= HEARTBEAT:
        return False
    if avail >= 2 and buf[off + 1] != 3:
        return False
    if avail >= 3 and buf[off + 2] > 4:
        return False
    # The high length byte alone: anything above MAX_RECORD_LEN >> 8 is too long.
    return not (avail >= 4 and buf[off + 3] > MAX_RECORD_LEN >> 8)


def is_record_header(buf: bytes | memoryview, off: int = 0) -> bool:
    """Tell whether a valid TLS record header starts at ``buf[off]``.

    Returns False when fewer than 5 bytes are available at ``off``.
    """
    if off < 0 or len(buf) - off < HEADER_LEN:
        return False
    ctype = buf[off]
    if not CHANGE_CIPHER_SPEC <= ctype <= HEARTBEAT or buf[off + 1] != 3 or buf[off + 2] > 4:
        return False
    length = (buf[off + 3] << 8) | buf[off + 4]
    if length == 0:
        return ctype == APPLICATION_DATA
    return length <= MAX_RECORD_LEN


def plausible_start(buf: bytes | memoryview) -> bool:
    """Tell whether ``buf`` (e.g. a segment's payload) plausibly starts at a record boundary.

    A valid header must start at offset 0. When the record it announces ends
    inside ``buf``, the bytes that follow must also look like a header: a full
    valid header if all 5 bytes are there, otherwise a valid header prefix
    (stricter than checking complete headers only, which is the safe side).
    Returns False for fewer than 5 bytes.
    """
    if not is_record_header(buf, 0):
        return False
    nxt = HEADER_LEN + ((buf[3] << 8) | buf[4])
    avail = len(buf) - nxt
    if avail >= HEADER_LEN:
        return is_record_header(buf, nxt)
    if avail > 0:
        return _prefix_ok(buf, nxt, avail)
    return True


def walk_records(data: bytes | memoryview) -> list[tuple[int, int, int]]:
    """List the complete records of a buffer that starts at a record boundary.

    Returns ``(offset, type, length)`` triples, stopping silently at the first
    invalid header or at the first record whose header or body is incomplete.
    """
    out: list[tuple[int, int, int]] = []
    off = 0
    n = len(data)
    while is_record_header(data, off):
        length = (data[off + 3] << 8) | data[off + 4]
        if off + HEADER_LEN + length > n:
            break
        out.append((off, data[off], length))
        off += HEADER_LEN + length
    return out


# Handshake message types a first TLS record may plausibly start with.
_HS_TYPES: Final = frozenset({0, 1, 2, 4, 8, 11, 12, 13, 14, 15, 16, 20, 21, 22, 24})


def tls_upgrade_plausible(chunk, upgrade: bool = False) -> bool:
    """Extra evidence before trusting a TLS record found where the protocol was unknown.

    Bodies of handshake, alert and change_cipher_spec records are kept, so a
    false match inside another protocol would keep its bytes: require the
    body to look like what such a record holds. An upgrade from another
    protocol (STARTTLS) always begins with a handshake record. Application
    data must be at least as long as the shortest real encrypted record
    (a 16-byte AEAD tag plus a content type byte).
    """
    if len(chunk) < 6:
        return False
    ctype, length = chunk[0], (chunk[3] << 8) | chunk[4]
    if ctype == 22:
        if length < 4 or len(chunk) < 9 or chunk[5] not in _HS_TYPES:
            return False
        return ((chunk[6] << 16) | (chunk[7] << 8) | chunk[8]) <= (1 << 18)
    if upgrade:
        return False
    if ctype == 20:
        return length == 1 and chunk[5] == 1
    if ctype == 21:
        return length == 2 and chunk[5] in (1, 2)
    return ctype == 23 and length >= 17


class TlsParser:
    """Walk the TLS records of one stream direction and report the byte ranges to keep.

    ``names`` maps a dotted host name to its pseudonym (``NameMapper.map_name``); None keeps
    names as they are (no anonymization).

    Attributes:
        pos: absolute offset of the next byte expected by ``feed``.
        decided: every byte below it has its final decision; it lags ``pos``
            while a record header is split across chunks (at most 4 bytes) and
            while a handshake message is incomplete (at most
            ``tls_handshake.MAX_MESSAGE`` bytes plus the record headers inside).
        synced: True while the walker knows where the next record header is.
        records: valid record headers seen.
        records_masked: records with a non-empty body that was left to be zeroed
            (application_data, heartbeat).
        handshake_records: handshake records seen.
    """

    __slots__ = (
        "pos",
        "decided",
        "synced",
        "records",
        "records_masked",
        "handshake_records",
        "_remaining",
        "_body",
        "_hdr",
        "_hdr_start",
        "_ranges",
        "_hs",
        "_hs_lost",
        "_encrypted",
    )

    def __init__(self, pos: int = 0, synced: bool = True,
                 names: Callable[[bytes], bytes] | None = None) -> None:
        """Start at absolute offset ``pos``; ``synced=False`` when it is not known to be a record boundary."""
        self.pos = pos
        self.decided = pos
        self.synced = synced
        self.records = 0
        self.records_masked = 0
        self.handshake_records = 0
        self._remaining = 0  # body bytes of the current record still to come
        self._body = _ZERO
        self._hdr = b""  # bytes of a header split across chunks (< 5)
        self._hdr_start = pos
        self._ranges: list[tuple[int, int]] = []
        self._hs = HandshakeWalker(names)
        self._hs_lost = False  # handshake bytes went missing: not walked until a resync
        self._encrypted = False  # change_cipher_spec seen: later handshake bodies are encrypted

    @property
    def names_mapped(self) -> int:
        """Host names (SNI, certificate names) replaced by a pseudonym."""
        return self._hs.names_mapped

    def _keep(self, start: int, end: int) -> None:
        # Ranges arrive in stream order, so merging with the last one suffices.
        if self._ranges and self._ranges[-1][1] == start:
            self._ranges[-1] = (self._ranges[-1][0], end)
        else:
            self._ranges.append((start, end))

    def _lose_sync(self) -> None:
        self.synced = False
        self._remaining = 0
        self._hdr = b""
        self._hs.reset()

    def feed(self, data: bytes | memoryview) -> None:
        """Consume the next contiguous chunk, which starts at ``self.pos``.

        Resynchronisation is only attempted at the start of a chunk. Returns
        nothing; collect the results with ``take_ranges``.
        """
        n = len(data)
        if n == 0:
            return
        start = self.pos
        end = start + n
        self.pos = end
        if not self.synced:
            if not plausible_start(data):
                self.decided = end
                return
            self.synced = True
            self._hs_lost = False
        i = 0
        while i < n:
            if self._remaining:
                take = min(self._remaining, n - i)
                body = self._body
                if body == _WALK:
                    self._hs.feed(start + i, data[i : i + take])
                elif body == _KEEP:
                    self._keep(start + i, start + i + take)
                i += take
                self._remaining -= take
                continue
            have = len(self._hdr)
            need = HEADER_LEN - have
            if n - i < need:
                if not have:
                    self._hdr_start = start + i
                self._hdr += bytes(data[i:])
                # Fail early so a garbage tail does not stay undecided.
                if not _prefix_ok(self._hdr, 0, len(self._hdr)):
                    self._lose_sync()
                break
            hdr_start = self._hdr_start if have else start + i
            hdr = self._hdr + bytes(data[i : i + need]) if have else data[i : i + need]
            self._hdr = b""
            i += need
            if not is_record_header(hdr, 0):
                self._lose_sync()
                break
            ctype = hdr[0]
            length = (hdr[3] << 8) | hdr[4]
            self._keep(hdr_start, hdr_start + HEADER_LEN)
            self.records += 1
            body = _ZERO
            if ctype == HANDSHAKE:
                self.handshake_records += 1
                if not self._encrypted and not self._hs_lost:
                    body = _WALK
            elif ctype == CHANGE_CIPHER_SPEC:
                self._encrypted = True
                if length == 1:
                    body = _KEEP
            elif ctype == ALERT:
                if length == 2:  # level, description: an encrypted alert is longer
                    body = _KEEP
            elif length:
                self.records_masked += 1
            self._body = body
            self._remaining = length
        self._settle(end)

    def _settle(self, end: int) -> None:
        """Move ``decided`` up to ``end``, or to the first byte still undecided."""
        dec = end
        if self._hdr:
            dec = self._hdr_start
        pending = self._hs.pending
        if pending >= 0 and pending < dec:
            dec = pending
        self.decided = dec

    def skip(self, n: int) -> bool:
        """Consume ``n`` bytes at once if they all lie inside a zeroed record body.

        Returns False (nothing consumed) otherwise; then use ``feed``. A fast
        path for the bulk of a TLS stream: application data.
        """
        if self._remaining >= n and self.synced and self._body == _ZERO and not self._hdr:
            self._remaining -= n
            self.pos += n
            self._settle(self.pos)
            return True
        return False

    def gap(self, pos: int) -> None:
        """Record that the bytes from ``self.pos`` up to ``pos`` were lost; the next feed starts at ``pos``.

        A gap that falls entirely inside the current record body keeps sync:
        the record length still tells where the next header is, and that
        header is validated when it arrives (a handshake message that lost
        bytes is zeroed, and so are the handshake bodies after it until the
        walker resyncs). Any other gap loses sync.
        Raises ValueError if ``pos`` is behind ``self.pos``.
        """
        if pos < self.pos:
            raise ValueError(f"gap to {pos} is behind stream position {self.pos}")
        lost = pos - self.pos
        if not lost:
            return
        if self.synced and not self._hdr and lost <= self._remaining:
            self._remaining -= lost
            if self._body == _WALK:
                self._hs.reset()
                self._hs_lost = True
                self._body = _ZERO
        else:
            self._lose_sync()
        self.pos = pos
        self._settle(pos)

    def take_ranges(self) -> list[tuple[int, int]]:
        """Return the keep ranges ``[start, end)`` below ``decided`` found since the last call, sorted and merged."""
        hs_ranges = self._hs.take_ranges()
        ranges = self._ranges
        if hs_ranges:
            ranges = sorted(ranges + hs_ranges)
        dec = self.decided
        out: list[tuple[int, int]] = []
        rest: list[tuple[int, int]] = []
        for s, e in ranges:
            if e <= dec:
                if out and out[-1][1] == s:
                    out[-1] = (out[-1][0], e)
                else:
                    out.append((s, e))
            else:
                rest.append((s, e))
        self._ranges = rest
        return out

    def take_replacements(self) -> list[tuple[int, bytes]]:
        """Return the replacements ``(offset, bytes)`` decided since the last call (host-name
        pseudonyms, inside kept ranges), sorted by offset."""
        return self._hs.take_replacements()
