"""The audit's model of DNS over TCP (ports 53, 5353, 5355): messages framed by a 2-byte length.

docs/policy.md ("DNS"): each message of the stream is labelled like a DNS message over UDP
(``dnsfields``): the length prefix and the fields the policy keeps are kept runs, the labels
and addresses it pseudonymizes are pseudonym runs (their sanitized bytes must differ from the
original, see ``labels``), everything else must be zero. Written apart from the sanitizer's
stream parser: a message is labelled once all its bytes are there; the first message, and the
first after a gap, is followed only if it labels without a byte not understood (otherwise the
model waits for a chunk that starts such a message), and a message whose header promises more
than its length holds loses the stream the same way. A message that labels with a byte not
understood later in the stream: that byte and the rest of the message must be zero.
"""

from __future__ import annotations

from collections.abc import Callable

from pktmask.verify.dnsfields import HEADER, label_dns
from pktmask.verify.labels import KEEP, OTHER, Spans

Keep = Callable[[int, bytes], None]
Pseudo = Callable[[int, int, int, str], None]  # (offset, length, label kind, field name)
Zero = Callable[[int, int, str], None]


def _plausible(buf: bytes | bytearray, a: int, size: int) -> bool:
    qd = buf[a + 4] << 8 | buf[a + 5]
    rr = sum(buf[a + k] << 8 | buf[a + k + 1] for k in (6, 8, 10))
    return size >= HEADER and qd * 5 + rr * 11 <= size - HEADER


class DnsTcp:
    """Frames and labels one direction (see the module docstring)."""

    __slots__ = ("keep", "pseudo", "zero", "synced", "trial", "buf", "at")

    def __init__(self, keep: Keep, pseudo: Pseudo, zero: Zero | None, synced: bool):
        self.keep, self.pseudo, self.zero = keep, pseudo, zero
        self.synced = synced
        self.trial = True
        self.buf = bytearray()
        self.at = 0  # stream offset of buf[0]

    def feed(self, pos: int, chunk: bytes) -> None:
        if not self.synced:
            if len(chunk) < 2 + HEADER or (chunk[0] << 8 | chunk[1]) < HEADER:
                return
            self.synced, self.trial, self.buf = True, True, bytearray()
        if not self.buf:
            self.at = pos
        buf = self.buf
        buf += chunk
        i = 0
        while self.synced and len(buf) - i >= 2:
            size = buf[i] << 8 | buf[i + 1]
            if len(buf) - i >= 2 + HEADER and not _plausible(buf, i + 2, size):
                self.synced = False
                break
            if len(buf) - i < 2 + size:
                break
            self.message(bytes(buf[i:i + 2 + size]), self.at + i)
            i += 2 + size
        if not self.synced:
            self.buf = bytearray()
            return
        del buf[:i]
        self.at += i

    def message(self, msg: bytes, at: int) -> None:
        spans = Spans(len(msg))
        spans.add(0, 2, KEEP, "")
        label_dns(msg, 2, len(msg), spans)
        if self.trial and any(kind == OTHER and name == "dns (not understood)" for _, _, kind, name in spans.items):
            self.synced = False
            return
        self.trial = False
        pos = 0
        for a, b, kind, name in spans.items:
            a = max(a, pos)
            if a >= b:
                continue
            if kind == KEEP:
                self.keep(at + a, msg[a:b])
            elif kind == OTHER:
                if self.zero is not None:
                    self.zero(at + a, b - a, name)
            else:
                self.pseudo(at + a, b - a, kind, name)
            pos = b

    def gap(self, lost: int) -> None:
        if lost:
            self.synced, self.buf = False, bytearray()
