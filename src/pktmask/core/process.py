"""Helper processes of a run: tied to their parent's life, talking through pipes."""

from __future__ import annotations

import ctypes
import fcntl
import os
import signal

PR_SET_PDEATHSIG = 1
F_SETPIPE_SZ = 1031
PIPE_SIZE = 1 << 20


def die_with_parent(parent: int) -> None:
    """In a child: ask the kernel for SIGKILL when ``parent`` dies; exit if it already has.

    Safe between fork and exec (no locks, no allocation-heavy work).
    """
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def block_signals() -> set:
    """Hold SIGINT/SIGTERM/SIGHUP (e.g. across a fork); returns the mask to restore."""
    return signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)


def become_helper(saved_mask: set) -> None:
    """In a forked helper that owns nothing: die by the default action of any signal.

    The parent's Python-level handlers are dropped (compiled code may never run
    them, and the helper has nothing to clean up); ignored signals stay ignored.
    Then the mask saved by ``block_signals`` before the fork is restored.
    """
    for sig in HANDLED_SIGNALS:
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, saved_mask)


def grow_pipe(fd: int) -> None:
    """Enlarge a pipe's buffer (best effort) so a producer can run well ahead of its consumer."""
    try:
        fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        pass
