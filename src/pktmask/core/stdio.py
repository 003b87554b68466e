"""The standard streams and start-up signals of a pktmask process, made safe before anything runs.

A process may start with stdin, stdout or stderr closed (``>&-``) or with a
signal ignored (``nohup``, ``&`` in a non-interactive shell). Closed
descriptors are reopened on /dev/null first, so no file pktmask opens later
(an OUTPUT, a pipe) can take descriptor 1 or 2 and receive stray text; which
ones were closed is remembered so that ``-`` can be refused with a one-line
error. Messages to a closed or broken stderr are dropped, never fatal.
"""

from __future__ import annotations

import os
import signal
import sys

CLOSED: set[int] = set()  # standard descriptors that were closed when the process started


def settle_signals() -> None:
    """Die by SIGINT (128+2) instead of raising KeyboardInterrupt until handlers are installed.

    A signal ignored at start (nohup, background jobs) stays ignored.
    """
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.SIG_DFL)


def reopen_closed() -> set[int]:
    """Put /dev/null on each closed standard descriptor; returns (and remembers) those."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            CLOSED.add(fd)
    if sys.stdin is None or 0 in CLOSED:
        sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115 - lives as long as the process
    if sys.stdout is None or 1 in CLOSED:
        sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    if sys.stderr is None or 2 in CLOSED:
        sys.stderr = open(2, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    return set(CLOSED)


def is_closed(fd: int) -> bool:
    """True when standard descriptor ``fd`` was closed at start (it now reads /dev/null)."""
    return fd in CLOSED


def err(text: str) -> None:
    """Write one message line to stderr; a closed or broken stderr drops it silently."""
    try:
        sys.stderr.write(text.rstrip("\n") + "\n")
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        _silence(2)


def settle_at_exit() -> None:
    """Flush stdout and stderr now; a broken one is pointed at /dev/null so the
    interpreter's own flush at exit cannot fail (it would print and exit 120)."""
    for fd, stream in ((1, sys.stdout), (2, sys.stderr)):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            _silence(fd)


def _silence(fd: int) -> None:
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, fd)
        os.close(null)
    except OSError:
        pass
