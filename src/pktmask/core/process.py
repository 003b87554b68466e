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


def grow_pipe(fd: int) -> None:
    """Enlarge a pipe's buffer (best effort) so a producer can run well ahead of its consumer."""
    try:
        fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        pass
