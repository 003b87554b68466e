"""The pre-pass helper process of one capture: forked, tied to this process, talking through pipes.

The helper runs a function given by the executor and writes nothing but its
pipes: the decisions, and for a once-only input every byte it read (the
final pass reads that forwarded capture through a ``StreamFeed``). It dies
with this process (PR_SET_PDEATHSIG), runs on default signal actions (it owns
nothing: the TempFileManager SIGKILLs it before cleaning up) and always ends
with ``os._exit``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

from pktmask.core.pipeline.stream import StreamFeed
from pktmask.core.process import become_helper, block_signals, die_with_parent, grow_pipe
from pktmask.core.temp_file_manager import TempFileManager


def _close(*fds: int) -> None:
    for fd in fds:
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass


class Helper:
    """A running pre-pass helper and this process's ends of its pipes.

    ``take_decisions`` hands the decision pipe's read end to its consumer;
    ``feed`` is the forwarded capture (once-only inputs, else None). ``reap``
    waits for a helper that has sent everything; ``close`` kills one that has
    not (the final pass failed) and releases what is still held. Idempotent.
    """

    def __init__(self, pid: int, manager: TempFileManager, decisions_fd: int, feed: StreamFeed | None):
        self.pid = pid
        self.manager = manager
        self._decisions = decisions_fd
        self.feed = feed
        self._waited = False

    def take_decisions(self) -> int:
        """The decision pipe's read end; the caller now owns it."""
        fd, self._decisions = self._decisions, -1
        return fd

    def reap(self) -> None:
        """Wait for the helper to exit: after its last decision it has nothing else to do."""
        self._wait(kill=False)

    def close(self) -> None:
        """Kill the helper unless reaped, close the pipe ends still held, stop the feed."""
        self._wait(kill=True)
        _close(self.take_decisions())
        feed, self.feed = self.feed, None
        if feed is not None:
            feed.close()

    def _wait(self, kill: bool) -> None:
        if self._waited:
            return
        self._waited = True
        try:
            if kill:
                os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        self.manager.unregister_child(self.pid)


def fork_helper(manager: TempFileManager, name: str, body: Callable[[int, int], int],
                forward: bool) -> Helper:
    """Fork a helper that runs ``body(decisions_fd, forward_fd)`` and exits with what it returns.

    ``decisions_fd`` is the write end of the decision pipe; ``forward_fd``
    that of the forwarded capture with ``forward`` (else -1). ``body`` handles
    its own failures (it reports them through the decision pipe); anything
    that escapes it ends the helper with status 1. ``name`` names the input in
    the feed's messages. Returns the registered helper (signals are held from
    before the fork until then, so none can miss it).
    """
    dec_r, dec_w = os.pipe()
    raw_r = raw_w = -1
    try:
        grow_pipe(dec_w)
        if forward:
            raw_r, raw_w = os.pipe()
            grow_pipe(raw_w)
    except BaseException:
        _close(dec_r, dec_w, raw_r, raw_w)
        raise
    parent = os.getpid()
    saved = block_signals()  # until the helper is registered (here) or on default actions (there)
    try:
        pid = os.fork()
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, saved)
        _close(dec_r, dec_w, raw_r, raw_w)
        raise
    if pid == 0:  # pragma: no cover - the helper (coverage does not follow the fork)
        code = 1
        try:
            become_helper(saved)
            _close(dec_r, raw_r)
            die_with_parent(parent)
            code = body(dec_w, raw_w)
        finally:
            os._exit(code)
    helper = Helper(pid, manager, dec_r, None)
    try:
        _close(dec_w, raw_w)
        manager.register_child(pid, helper=True)
        signal.pthread_sigmask(signal.SIG_SETMASK, saved)
        if forward:
            helper.feed = StreamFeed(raw_r, dec_r, name)
            raw_r = -1
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, saved)
        _close(raw_r)
        helper.close()
        raise
    return helper
