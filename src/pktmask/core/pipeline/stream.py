"""Inputs that can be read only once (stdin, a FIFO, a character device), without a spool.

Masking needs a pre-pass over the packets before it can write them. A file is
simply read twice. A stream is read once, by the pre-pass process, which
forwards every byte it reads (``StreamInput`` with a tee) through a pipe to
the final pass, next to its decisions in a second pipe. The final pass reads
the forwarded capture through a ``StreamFeed``: a thread drains the pipe into
memory while the final pass waits for a decision the pre-pass cannot make yet
(the stream tracker holds a verdict back until a stream is decided), and
otherwise stops at ``FEED_LIMIT`` bytes so a fast producer cannot fill memory.
Nothing unmasked is ever written to scratch, and output flows before EOF:
both sides flush what they hold whenever their input has nothing ready.
"""

from __future__ import annotations

import fcntl
import os
import select
import struct
import termios
import threading
from collections import deque
from collections.abc import Callable

from pktmask.errors import InputError

# Bytes the feed holds before it waits for the final pass, unless the final pass waits
# for a decision (then it must read on, or the pre-pass could never make it).
FEED_LIMIT = 8 << 20
READ_SIZE = 1 << 20
_POLL_SECONDS = 0.02  # how often a paused feed looks again at the decision pipe


def _ready(fd: int) -> bool:
    try:
        readable, _, _ = select.select([fd], [], [], 0)
    except (OSError, ValueError):
        return True  # let the read itself report the problem
    return bool(readable)


def _unread(fd: int) -> int:
    """Bytes waiting in a pipe (FIONREAD); 0 if it cannot be asked."""
    try:
        return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
    except OSError:
        return 0


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        sent = os.write(fd, view)
        view = view[sent:]


class StreamInput:
    """A once-only input read with plain ``read(2)`` calls (a pipe's data as it arrives).

    ``on_stall`` is called before a read that would wait: the caller flushes
    what it holds (decisions, output) so that a live capture flows. With
    ``tee_fd`` every byte read is also written there (the pre-pass forwarding
    the capture to the final pass).
    """

    def __init__(self, fd: int, name: str, tee_fd: int = -1, owned: bool = False):
        self.fd = fd
        self.name = name
        self.tee_fd = tee_fd
        self.owned = owned  # close ``fd`` in ``close`` (a FIFO we opened; never stdin)
        self.on_stall: Callable[[], None] | None = None

    def read(self, n: int) -> bytes:
        if self.on_stall is not None and not _ready(self.fd):
            self.on_stall()
        try:
            data = os.read(self.fd, n)
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror or exc}", self.name) from exc
        if data and self.tee_fd >= 0:
            _write_all(self.tee_fd, data)
        return data

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        """Close the descriptor if this object opened it (idempotent)."""
        fd, self.fd = self.fd, -1
        if self.owned and fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass


class StreamFeed:
    """The final pass's view of a forwarded capture: ``read(n)`` from a pipe drained by a thread.

    ``decision_fd`` is the pipe the final pass reads decisions from: while
    it holds unread bytes the final pass has work, and the feed may wait.
    ``on_stall`` is called before ``read`` waits for bytes not yet forwarded.
    """

    def __init__(self, fd: int, decision_fd: int, name: str):
        self.fd = fd
        self.decision_fd = decision_fd
        self.name = name
        self.on_stall: Callable[[], None] | None = None
        self._chunks: deque[bytes] = deque()
        self._held = 0
        self._eof = False
        self._error: OSError | None = None
        self._waiting = False  # the final pass waits in read()
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._drain, name="pktmask-feed", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while (not self._closed and not self._waiting and self._held >= FEED_LIMIT
                       and _unread(self.decision_fd) > 0):
                    cond.wait(_POLL_SECONDS)
                if self._closed:
                    return
            try:
                data = os.read(self.fd, READ_SIZE)
            except OSError as exc:
                data = b""
                self._error = exc
            with cond:
                if data:
                    self._chunks.append(data)
                    self._held += len(data)
                else:
                    self._eof = True
                cond.notify_all()
                if not data:
                    return

    def read(self, n: int) -> bytes:
        """Up to ``n`` forwarded bytes (at least one unless the capture ended)."""
        cond = self._cond
        with cond:
            if not self._chunks and not self._eof and self.on_stall is not None:
                cond.release()
                try:
                    self.on_stall()
                finally:
                    cond.acquire()
            while not self._chunks and not self._eof:
                self._waiting = True
                cond.notify_all()
                cond.wait()
            self._waiting = False
            if not self._chunks:
                if self._error is not None:
                    raise InputError(f"cannot read: {self._error.strerror}", self.name)
                return b""
            parts = []
            size = 0
            while self._chunks and size < n:
                chunk = self._chunks.popleft()
                if size + len(chunk) > n:
                    self._chunks.appendleft(chunk[n - size :])
                    chunk = chunk[: n - size]
                parts.append(chunk)
                size += len(chunk)
            self._held -= size
            cond.notify_all()
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def close(self) -> None:
        """Stop the thread (the pipe's writer must be gone or going) and close the pipe."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            try:
                os.close(self.fd)
            except OSError:
                pass
        self._chunks.clear()
