"""The masking pre-pass's decision stream: written, moved and read back (the records: mask/codec.py).

The stream goes through a pipe when the pre-pass runs in another process,
else through a scratch file from the TempFileManager, written whole and then
read back. Without a file context (tests, tools) the scratch is memory.
"""

from __future__ import annotations

import io
import os
from contextlib import ExitStack
from pathlib import Path
from typing import BinaryIO, NoReturn

from pktmask.core.pipeline.stage import FileContext
from pktmask.errors import PktmaskError, from_oserror
from pktmask.mask.codec import OUT_OF_STEP, PIPE_CHUNK, DecisionCodec, encode_trailer


class DecisionStream(DecisionCodec):
    """One input's decisions: the pre-pass writes them, the masking pass reads them back.

    ``attach`` gives pipe ends (the pre-pass in another process); without
    them the stream spills to scratch, which ``finish_writing`` reopens for
    reading. Raises PktmaskError when the pre-pass process vanished (see
    ``DecisionCodec`` for the rest).
    """

    def __init__(self, ctx: FileContext | None = None):
        super().__init__()
        self._ctx = ctx
        self._spill_path: Path | None = None
        self._scratch = ExitStack()  # holds the spill's ``manager.temp_file`` scope until ``close``
        self._spill: BinaryIO | None = None
        self._rfd = self._wfd = -1

    def attach(self, read_fd: int = -1, write_fd: int = -1) -> None:
        """Use a pipe instead of scratch; the stream owns and closes the descriptor it is given."""
        self._rfd, self._wfd = read_fd, write_fd
        if write_fd >= 0:
            self._limit = PIPE_CHUNK

    def load(self, data: bytes) -> None:
        """Read the decisions from ``data`` (an encoded stream: tests, tools)."""
        self._spill = io.BytesIO(data)

    def getvalue(self) -> bytes:
        """Everything written to a memory stream (no file context, no pipe) so far."""
        self.flush()
        assert isinstance(self._spill, io.BytesIO), "not a memory stream"
        return self._spill.getvalue()

    def _name(self) -> str:
        return self._ctx.name if self._ctx is not None else ""

    # ---- writing (pre-pass) ------------------------------------------------------
    def flush(self) -> None:
        """Hand what is buffered to the pipe or the scratch file."""
        out, self._out = self._out, bytearray()
        if self._wfd >= 0:
            view = memoryview(out)
            while view:
                sent = os.write(self._wfd, view)
                view = view[sent:]  # not view[os.write(...):]: mypyc evaluates a slice bound twice
            return
        try:
            if self._spill is None:
                if self._ctx is None:
                    self._spill = io.BytesIO()
                else:
                    self._spill_path = self._scratch.enter_context(
                        self._ctx.manager.temp_file(prefix="mask-", suffix=".ranges"))
                    self._spill = open(self._spill_path, "wb")
            self._spill.write(out)
        except OSError as exc:
            raise from_oserror(exc, str(self._spill_path)) from exc

    def finish_writing(self, tls_records: int, http_messages: int, names: int = 0, dns: int = 0) -> None:
        """Append the trailer with the counters; close the pipe, or reopen the scratch for reading."""
        encode_trailer(self._out, tls_records, http_messages, names, dns)
        self.flush()
        if self._wfd >= 0:
            os.close(self._wfd)
            self._wfd = -1
            return
        assert self._spill is not None  # flush made it
        if self._spill_path is None:
            self._spill.seek(0)  # memory
            return
        try:
            self._spill.close()
            self._spill = open(self._spill_path, "rb")
        except OSError as exc:
            raise from_oserror(exc, str(self._spill_path)) from exc

    # ---- reading (masking pass) --------------------------------------------------
    def _more(self, need: int) -> bytes:
        try:
            if self._rfd >= 0:
                return os.read(self._rfd, need)  # whatever has arrived
            assert self._spill is not None
            return self._spill.read(need)
        except OSError as exc:
            raise from_oserror(exc, str(self._spill_path or "<pipe>"), "read") from exc

    def _ended(self) -> NoReturn:
        if self._rfd >= 0:
            raise PktmaskError("the masking pre-pass process ended unexpectedly", self._name())
        raise RuntimeError(f"{OUT_OF_STEP}: the decisions end early")

    def close(self) -> None:
        """Close the pipe ends and remove the scratch file (ours: now, not at the end of the run)."""
        for fd in (self._rfd, self._wfd):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._rfd = self._wfd = -1
        if self._spill is not None:
            try:
                self._spill.close()
            except OSError:
                pass
            self._spill = None
        self._scratch.close()
        self._spill_path = None
