"""The audit's TCP stream model: which payload bytes of each segment may survive sanitizing.

Pass 1 (``StreamModel.segment`` for every TCP segment of ORIGINAL, in capture order, then
``finish``) follows each direction in sequence space, reassembles it in order (the first copy
of a byte wins; out-of-order data is buffered within bounds, then given up as a gap), picks
a parser (``payloads``: TLS or HTTP, by the stream's first bytes; ``dnsstream``: DNS, by the
port) and stores the byte runs the policy keeps, with their first-copy bytes, per direction,
and the runs it replaces by pseudonyms (names and addresses in DNS over TCP and HTTP hosts).

Pass 2 (``kept`` for every segment again, same order) places each segment in the same
sequence space and says which of its payload bytes are kept: those inside a kept run that
equal the first copy (a retransmission with different bytes keeps only what matches).
Everything else of a TCP payload must be zero.

Memory is bounded: out-of-order buffers (per direction and in all), the stored kept bytes
(past the bound, nothing more is kept: those bytes then count as must-be-zero, and the
report says the model gave up) and the number of directions followed.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from typing import Final

from pktmask.verify.dnsfields import DNS_PORTS
from pktmask.verify.dnsstream import DnsTcp
from pktmask.verify.payloads import Http, Tls, http_start, tls_start

FIN_OR_RST: Final = 0x05
SYN: Final = 0x02
BASE: Final = 1 << 40  # absolute offset of a direction's first sequence number
SNIFF_BYTES: Final = 16
OOO_DIRECTION: Final = 4 << 20
OOO_TOTAL: Final = 64 << 20
KEPT_TOTAL: Final = 256 << 20
MAX_DIRECTIONS: Final = 1 << 20
MAX_ZEROS: Final = 1 << 20  # named must-be-zero runs stored (past it, bytes are named "tcp.payload")
OTHER_KIND, TLS_KIND, HTTP_KIND, DNS_KIND, CLOSED = "other", "tls", "http", "dns", "closed"


class Position:
    """Where a direction's sequence numbers are: generation (a new SYN starts one) and unwrapping."""

    __slots__ = ("gen", "isn", "last_seq", "last_abs")

    def __init__(self, gen: int, seq: int, syn: bool):
        self.gen, self.isn = gen, seq if syn else None
        self.last_seq, self.last_abs = seq, BASE


class Positions:
    """Maps (key, seq, flags) to (direction id, absolute offset of the payload start); both
    passes use a fresh instance on the same segments in the same order, so they agree."""

    def __init__(self):
        self.table: dict[bytes, Position] = {}

    def place(self, key: bytes, seq: int, flags: int) -> tuple[tuple[bytes, int], int] | None:
        pos = self.table.get(key)
        syn = bool(flags & SYN)
        if pos is None or (syn and pos.isn != seq):
            if pos is None and len(self.table) >= MAX_DIRECTIONS:
                return None
            pos = Position(0 if pos is None else pos.gen + 1, seq, syn)
            self.table[key] = pos
        delta = (seq - pos.last_seq) & 0xFFFFFFFF
        if delta >= 1 << 31:
            delta -= 1 << 32
        at = pos.last_abs + delta
        if delta > 0:
            pos.last_seq, pos.last_abs = seq, at
        return (key, pos.gen), at + (1 if syn else 0)


class Direction:
    """Pass-1 state of one direction, and the kept runs it leaves for pass 2."""

    __slots__ = ("next", "syn", "ooo", "ooo_bytes", "kind", "parser", "head", "head_at", "starts", "blobs",
                 "tls", "zeros", "pseudos", "names")

    def __init__(self):
        self.next: int | None = None
        self.syn = False
        self.ooo: dict[int, bytes] = {}
        self.ooo_bytes = 0
        self.kind: str | None = None
        self.parser: Tls | Http | DnsTcp | None = None
        self.head = b""
        self.head_at = 0
        self.starts: list[int] = []
        self.blobs: list[bytearray] = []
        self.tls = False  # kept runs are TLS records (else HTTP heads)
        self.zeros: list[tuple[int, int, str]] = []  # named must-be-zero runs (findings name them)
        # Pseudonym runs (label kind of ``labels``: a DNS label, an address, an IP literal's text).
        self.pseudos: list[tuple[int, int, int, str]] = []
        # TLS host names (pseudonym fields): start, end, the whole name, the run's offset in it
        self.names: list[tuple[int, int, bytes, int]] = []


class StreamModel:
    """See the module docstring."""

    def __init__(self):
        self.positions = Positions()
        self.dirs: dict[tuple[bytes, int], Direction] = {}
        self.methods: dict[bytes, deque] = {}
        self.ooo_total = 0
        self.kept_total = 0
        self.zeros_total = 0
        self.gave_up = False
        self.last_tls = False  # pass 2: the direction of the last ``kept`` segment is TLS
        self.last_zeros: list[tuple[int, int, str]] = []  # pass 2: its named must-be-zero runs
        self.last_pseudos: list[tuple[int, int, int, str]] = []  # pass 2: its pseudonym runs
        self.last_names: list[tuple[int, int, bytes, int]] = []  # pass 2: its TLS name runs
        self.tls_names: set[bytes] = set()  # pass 1: the host names of TLS handshakes (needles)

    # ---- pass 1 ------------------------------------------------------------------------
    def segment(self, key: bytes, seq: int, flags: int, payload: bytes) -> None:
        placed = self.positions.place(key, seq, flags)
        if placed is None:
            return
        ident, a = placed
        d = self.dirs.get(ident)
        if d is None:
            d = self.dirs[ident] = Direction()
        if flags & SYN and d.next is None:
            d.syn, d.next = True, a
        if payload:
            self._data(d, ident, a, payload)
        if flags & FIN_OR_RST and not d.ooo and d.next is not None and a + len(payload) <= d.next:
            # The direction ended with nothing missing: its parser is not needed any more
            # (later copies of its bytes are behind ``next``), so many flows cost little.
            d.parser, d.head, d.kind = None, b"", CLOSED

    def _data(self, d: Direction, ident, a: int, payload: bytes) -> None:
        if d.next is None:
            d.next = a
        b = a + len(payload)
        if b <= d.next:
            return
        if a <= d.next:
            self._feed(d, ident, d.next, payload[d.next - a:])
            self._drain(d, ident)
            return
        old = d.ooo.get(a, b"")
        if len(payload) > len(old):
            d.ooo[a] = old + payload[len(old):]
            grown = len(payload) - len(old)
            d.ooo_bytes += grown
            self.ooo_total += grown
        if d.ooo_bytes > OOO_DIRECTION or self.ooo_total > OOO_TOTAL:
            self._flush(d, ident)

    def finish(self) -> None:
        """End of ORIGINAL: what waits for missing bytes is decided (holes are gaps)."""
        for ident, d in self.dirs.items():
            self._flush(d, ident)
            d.head = b""
            d.parser = None
        self.methods.clear()

    def _flush(self, d: Direction, ident) -> None:
        while d.ooo:
            assert d.next is not None  # the direction has started
            start = min(d.ooo)
            if d.next is not None and start > d.next:
                self._gap(d, start)
            self._drain(d, ident)

    def _drain(self, d: Direction, ident) -> None:
        while d.ooo:
            nxt = d.next
            assert nxt is not None  # the direction has started
            start = min(d.ooo)
            if start > nxt:
                return
            data = d.ooo.pop(start)
            d.ooo_bytes -= len(data)
            self.ooo_total -= len(data)
            if start + len(data) > nxt:
                self._feed(d, ident, nxt, data[nxt - start:])

    def _gap(self, d: Direction, to: int) -> None:
        if d.head:
            d.head, d.kind = b"", OTHER_KIND if d.kind is None else d.kind
        if d.parser is not None:
            assert d.next is not None
            d.parser.gap(to - d.next)
        d.next = to

    def _feed(self, d: Direction, ident, at: int, chunk: bytes) -> None:
        d.next = at + len(chunk)
        if d.kind == CLOSED:
            return
        if d.kind is None and d.parser is None and _dns_port(ident[0]):
            d.kind = DNS_KIND
            d.parser = DnsTcp(self._keeper(d), self._pseudo(d), self._zeroer(d), d.syn and at == BASE + 1)
        if d.parser is None or d.kind == OTHER_KIND:
            if d.syn and d.kind is None and (d.head or len(chunk) < SNIFF_BYTES):
                # A stream's first bytes may come in tiny pieces: sniff once there are enough.
                if not d.head:
                    d.head_at = at
                d.head += chunk
                if len(d.head) < SNIFF_BYTES:
                    return
                at, chunk, d.head = d.head_at, d.head, b""
            self._sniff(d, ident, chunk)
        if d.parser is not None:
            d.parser.feed(at, chunk)

    def _sniff(self, d: Direction, ident, chunk: bytes) -> None:
        upgrade = d.kind == OTHER_KIND
        if tls_start(chunk, upgrade):
            d.kind, d.parser, d.tls = TLS_KIND, Tls(self._keeper(d), self._namer(d)), True
        elif d.kind is None:
            request = http_start(chunk, True)
            if request or http_start(chunk, False):
                key = ident[0]
                half = (len(key) - 4) // 2
                pair = min(key, key[half:2 * half] + key[:half] + key[-2:] + key[-4:-2])
                methods = self.methods.setdefault(pair, deque())
                d.kind, d.parser = HTTP_KIND, Http(self._keeper(d), request, methods, self._zeroer(d),
                                                   self._pseudo(d))
            elif d.syn:
                d.kind = OTHER_KIND  # from now on only a TLS upgrade (STARTTLS) is kept

    def _keeper(self, d: Direction):
        starts, blobs = d.starts, d.blobs

        def keep(at: int, data: bytes) -> None:
            if not data:
                return
            if self.kept_total + len(data) > KEPT_TOTAL:
                self.gave_up = True
                return
            self.kept_total += len(data)
            if starts and starts[-1] + len(blobs[-1]) == at:
                blobs[-1] += data
            else:
                starts.append(at)
                blobs.append(bytearray(data))

        return keep

    def _pseudo(self, d: Direction):
        pseudos = d.pseudos

        def pseudo(at: int, length: int, kind: int, name: str) -> None:
            if self.zeros_total < MAX_ZEROS:
                self.zeros_total += 1
                pseudos.append((at, at + length, kind, name))

        return pseudo

    def _namer(self, d: Direction):
        names = d.names

        def name(at: int, piece: bytes, whole: bytes, offset: int) -> None:
            if self.zeros_total < MAX_ZEROS:
                self.zeros_total += 1
                names.append((at, at + len(piece), whole, offset))
                if len(self.tls_names) < MAX_ZEROS:
                    self.tls_names.add(whole)

        return name

    def _zeroer(self, d: Direction):
        zeros = d.zeros

        def zero(at: int, length: int, name: str) -> None:
            if self.zeros_total < MAX_ZEROS:
                self.zeros_total += 1
                zeros.append((at, at + length, name))

        return zero

    # ---- pass 2 ------------------------------------------------------------------------
    def restart(self) -> None:
        """Before pass 2: place segments from the start again."""
        self.positions = Positions()

    def kept(self, key: bytes, seq: int, flags: int, payload: bytes) -> list[tuple[int, int]]:
        """The ``(start, end)`` runs of ``payload`` (relative) that may survive unchanged."""
        placed = self.positions.place(key, seq, flags)
        self.last_tls, self.last_zeros, self.last_pseudos, self.last_names = False, [], [], []
        if placed is None or not payload:
            return []
        ident, a = placed
        d = self.dirs.get(ident)
        if d is None:
            return []
        b = a + len(payload)
        if d.pseudos:
            ps = d.pseudos
            k = max(0, bisect_right(ps, (a, 0, 0, "")) - 1)
            while k < len(ps) and ps[k][0] < b:
                x, y, kind, name = ps[k]
                if y > a:
                    self.last_pseudos.append((max(x, a) - a, min(y, b) - a, kind, name))
                k += 1
        if not d.starts:
            return []
        starts, blobs = d.starts, d.blobs
        b = a + len(payload)
        self.last_tls = d.tls
        if d.names:
            ns = d.names
            k = max(0, bisect_right(ns, (a, 0, b"", 0)) - 1)
            while k < len(ns) and ns[k][0] < b:
                x, y, whole, offset = ns[k]
                if y > a:
                    lo = max(x, a)
                    self.last_names.append((lo - a, min(y, b) - a, whole, offset + lo - x))
                k += 1
        if d.zeros:
            zs = d.zeros
            k = max(0, bisect_right(zs, (a, 0, "")) - 1)
            while k < len(zs) and zs[k][0] < b:
                x, y, name = zs[k]
                if y > a:
                    self.last_zeros.append((max(x, a) - a, min(y, b) - a, name))
                k += 1
        i = max(0, bisect_right(starts, a) - 1)
        out: list[tuple[int, int]] = []
        while i < len(starts) and starts[i] < b:
            s, blob = starts[i], blobs[i]
            x, y = max(a, s), min(b, s + len(blob))
            if x < y:
                mine, first = payload[x - a:y - a], blob[x - s:y - s]
                if mine == first:
                    out.append((x - a, y - a))
                else:
                    out.extend(_equal_runs(mine, first, x - a))
            i += 1
        return out


def _dns_port(key: bytes) -> bool:
    """Does the direction key (addresses, source port, destination port) name a DNS port?"""
    return int.from_bytes(key[-4:-2], "big") in DNS_PORTS or int.from_bytes(key[-2:], "big") in DNS_PORTS


def _equal_runs(mine: bytes, first: bytes | bytearray, base: int) -> list[tuple[int, int]]:
    """Runs where a retransmitted copy equals the first copy."""
    out, run = [], -1
    for k in range(len(mine)):
        if mine[k] == first[k]:
            if run < 0:
                run = k
        elif run >= 0:
            out.append((base + run, base + k))
            run = -1
    if run >= 0:
        out.append((base + run, base + len(mine)))
    return out
