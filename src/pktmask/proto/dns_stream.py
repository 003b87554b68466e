"""DNS over TCP (ports 53, 5353, 5355) for one direction of a stream (docs/policy.md, "DNS").

Over TCP every DNS message is preceded by its length in two bytes (RFC 1035
s4.2.2); a segment may hold several messages, or part of one. The parser
collects one message at a time (the length prefix, then that many bytes),
parses it with ``proto/dns.py``, the same walker as DNS over UDP, and says
what is kept and what is replaced: the length prefix and what ``dns.parse``
keeps are kept ranges; each label is replaced by its name pseudonym, each
A/AAAA address and ECS prefix by its mapped value (ECS bits past the source
prefix zeroed in every mode), all as replacements in stream offsets; the data
``dns.parse`` zeroes and everything from the first byte it does not
understand to the end of the message are left out (zeroed by the caller).

Without mappers (``--no-anonymize``) names and addresses are kept as they
are, like the addresses in the IP headers.

A message is undecided until its last byte has arrived (at most 2 + 65535
bytes buffered). The first message of a stream, and the first one after a
gap or a message that is no DNS, is a trial: it is kept only if it parses to
its last byte; otherwise it is zeroed and the parser waits for a segment that
starts with such a message (resynchronisation at segment starts only). A
message whose header's counts cannot fit its length is given up as soon as
its header is there (a stream on a DNS port that is no DNS does not hold
back up to 64 KiB). A
later message that does not fit ``dns.parse``'s plausibility check (its
counts do not fit its length) loses sync the same way; one that parses but
stops early is zeroed from where it stops and the framing goes on.
"""

from __future__ import annotations

from typing import Final, Protocol

from pktmask.proto import dns

PREFIX: Final = 2  # the length prefix of every message over TCP


class NameMap(Protocol):
    def map_label(self, label: bytes, parent: bytes) -> bytes: ...


class AddressMap(Protocol):
    def map_v4(self, addr: bytes) -> bytes: ...

    def map_v6(self, addr: bytes) -> bytes: ...


def replacements(buf, m: dns.DnsMessage, base: int, names: NameMap | None,
                 addrs: AddressMap | None) -> list[tuple[int, bytes]]:
    """The replacements for the parsed message ``m`` of ``buf`` (offsets of ``buf`` plus
    ``base``): label pseudonyms, mapped addresses and ECS prefixes (sorted)."""
    out: list[tuple[int, bytes]] = []
    if names is not None:
        for off, length, parent in m.labels:
            label = bytes(buf[off : off + length])
            alias = names.map_label(label, parent)
            if alias != label:
                out.append((base + off, alias))
    trims: dict[int, int] = {}
    for at, keep in m.trim:
        trims[at] = keep
    for off, v6, count in m.addrs:
        old = bytes(buf[off : off + count])
        new = old
        if addrs is not None:
            size = 16 if v6 else 4
            full = old + bytes(size - count)
            mapped = addrs.map_v6(full) if v6 else addrs.map_v4(full)
            new = mapped[:count]
        if trims:
            cut = bytearray(new)
            for i in range(count):
                keep = trims.get(off + i, -1)
                if keep >= 0:
                    cut[i] &= keep
            new = bytes(cut)
        if new != old:
            out.append((base + off, new))
    out.sort()
    return out


def counts_fit(buf, a: int, size: int) -> bool:
    """Whether the header at ``a`` announces no more than a message of ``size`` bytes can hold
    (``dns.parse``'s plausibility check, done as soon as the header is there)."""
    qd = buf[a + 4] << 8 | buf[a + 5]
    rr = (buf[a + 6] << 8 | buf[a + 7]) + (buf[a + 8] << 8 | buf[a + 9]) + (buf[a + 10] << 8 | buf[a + 11])
    return size >= dns.HEADER and qd * 5 + rr * 11 <= size - dns.HEADER


def message_keep(m: dns.DnsMessage, start: int, end: int) -> list[tuple[int, int]]:
    """Kept ranges of the message ``[start, end)`` (its prefix excluded): up to ``m.stop``
    minus the data ``dns.parse`` zeroes (sorted, merged)."""
    stop = m.stop if m.stop < end else end
    keep: list[tuple[int, int]] = []
    pos = start
    for a, b in sorted(m.zero):
        if a > pos:
            keep.append((pos, a if a < stop else stop))
        if b > pos:
            pos = b
        if pos >= stop:
            break
    if pos < stop:
        keep.append((pos, stop))
    return [(a, b) for a, b in keep if a < b]


class DnsStreamParser:
    """Frame and walk the DNS messages of one stream direction (see the module docstring).

    Attributes:
        pos: absolute offset of the next byte expected by ``feed``.
        decided: every byte below it has its final decision; it lags ``pos``
            while a message is incomplete.
        synced: True while the parser knows where the next length prefix is.
        messages: messages kept (structure walked).
        messages_masked: messages of which something was zeroed (a message not
            understood, TXT or other data, a part after a malformed byte).
    """

    __slots__ = ("pos", "decided", "synced", "messages", "messages_masked", "_buf", "_start",
                 "_trial", "_ranges", "_repl", "_names", "_addrs")

    def __init__(self, pos: int = 0, synced: bool = True, names: NameMap | None = None,
                 addrs: AddressMap | None = None) -> None:
        """Start at absolute offset ``pos``; ``synced=False`` when it is not known to be a message start."""
        self.pos = pos
        self.decided = pos
        self.synced = synced
        self.messages = 0
        self.messages_masked = 0
        self._buf = bytearray()  # the message being collected (prefix included)
        self._start = pos  # its absolute offset
        self._trial = True  # the message being collected must parse to its end to be kept
        self._ranges: list[tuple[int, int]] = []
        self._repl: list[tuple[int, bytes]] = []
        self._names = names
        self._addrs = addrs

    def feed(self, data: bytes | memoryview) -> None:
        """Consume the next contiguous chunk, which starts at ``self.pos``.

        Resynchronisation is only attempted at the start of a chunk.
        """
        n = len(data)
        if n == 0:
            return
        start = self.pos
        self.pos = start + n
        if not self.synced:
            if n < PREFIX + dns.HEADER or (data[0] << 8 | data[1]) < dns.HEADER:
                self.decided = self.pos
                return
            self.synced = True
            self._trial = True
            self._buf = bytearray()
            self._start = start
        buf = self._buf
        if not buf:
            self._start = start
        buf += data
        i = 0
        while self.synced and len(buf) - i >= PREFIX:
            size = buf[i] << 8 | buf[i + 1]
            if len(buf) - i < PREFIX + size:
                if len(buf) - i >= PREFIX + dns.HEADER and not counts_fit(buf, i + PREFIX, size):
                    self.synced = False  # no DNS header: do not wait for the rest
                break
            self._message(buf, i, size)
            i += PREFIX + size
        if not self.synced:
            self._buf = bytearray()
            self.decided = self.pos
            return
        if i:
            del buf[:i]
            self._start += i
        self.decided = self._start if buf else self.pos

    def _message(self, buf: bytearray, i: int, size: int) -> None:
        """Decide the complete message whose prefix is at ``buf[i]``."""
        base = self._start
        a = i + PREFIX
        m = dns.parse(buf, a, a + size, size)
        if m is None or (self._trial and m.stop != a + size):
            self.synced = False  # not DNS (or not where we thought): zeroed until a resync
            return
        self._trial = False
        self.messages += 1
        keep = message_keep(m, a, a + size)
        if m.zero or m.stop < a + size:
            self.messages_masked += 1
        ranges = self._ranges
        ranges.append((base + i, base + a))
        for x, y in keep:
            if ranges[-1][1] == base + x:
                ranges[-1] = (ranges[-1][0], base + y)
            else:
                ranges.append((base + x, base + y))
        self._repl.extend(replacements(buf, m, base, self._names, self._addrs))

    def skip(self, n: int) -> bool:
        """Never: every byte of a DNS stream is framed or walked (the interface of the tracker)."""
        return False

    def gap(self, pos: int) -> None:
        """The bytes from ``self.pos`` up to ``pos`` were lost: the message under way is zeroed
        and the parser resynchronises at a later chunk start. Raises ValueError if ``pos`` is
        behind ``self.pos``."""
        if pos < self.pos:
            raise ValueError(f"gap to {pos} is behind stream position {self.pos}")
        if pos == self.pos:
            return
        self.synced = False
        self._buf = bytearray()
        self.pos = pos
        self.decided = pos

    def take_ranges(self) -> list[tuple[int, int]]:
        """Return the keep ranges ``[start, end)`` found since the last call, sorted and merged."""
        out = self._ranges
        self._ranges = []
        return out

    def take_replacements(self) -> list[tuple[int, bytes]]:
        """Return the replacements ``(offset, bytes)`` found since the last call, in stream order;
        each lies inside a range returned by ``take_ranges`` with it."""
        out = self._repl
        self._repl = []
        return out
