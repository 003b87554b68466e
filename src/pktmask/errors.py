"""The one exception tree of pktmask, with the exit code each error maps to.

Core modules raise these; only the CLI turns them into messages and exit codes
(README "Exit codes"). Every message is one line that names the file and the
cause. An error raised in a helper process crosses to its parent in a small
serialized form (``encode_error``, ``decode_error``) that keeps its class.
"""

from __future__ import annotations

import errno
import json

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class PktmaskError(Exception):
    """Base of every error pktmask reports to the user; ``exit_code`` says how."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, path: str | None = None):
        super().__init__(message)
        self.message = message
        self.path = path

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class UsageError(PktmaskError):
    """The command line asks for something pktmask must refuse (exit 2)."""

    exit_code = EXIT_USAGE


class OutputExistsError(UsageError):
    """OUTPUT exists and ``--force`` was not given."""


class SameFileError(UsageError):
    """OUTPUT names the INPUT file (directly, by symlink or by hard link)."""


class KeyFileError(UsageError):
    """The ``--key-file`` is unreadable or not 32 raw bytes / 64 hex digits."""


class InputError(PktmaskError):
    """An input cannot be read as a capture (missing, empty, garbage, corrupt)."""


class UnsupportedLinkTypeError(InputError):
    """The capture uses a link type pktmask cannot sanitize (never passed through)."""


class OutputError(PktmaskError):
    """The output cannot be written (missing directory, permissions, I/O error)."""


class TempDirError(PktmaskError):
    """The temp dir (``$TMPDIR`` or ``--temp-dir``) cannot hold a run root: exit 1, naming it."""


class DiskFullError(OutputError):
    """A write failed with ENOSPC or EFBIG: the disk (or file size limit) is full."""


_DISK_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


def from_oserror(exc: OSError, path: str | None = None, what: str = "write") -> PktmaskError:
    """Translate an OSError into the matching PktmaskError.

    Returns a DiskFullError for ENOSPC/EFBIG/EDQUOT, otherwise an OutputError
    (``what='write'``) or InputError (``what='read'``) carrying the OS reason.
    """
    where = path or exc.filename
    if exc.errno in _DISK_FULL:
        reason = "file size limit exceeded" if exc.errno == errno.EFBIG else "no space left"
        return DiskFullError(f"disk full ({reason}) while writing", str(where) if where else None)
    reason = exc.strerror or str(exc)
    if what == "read":
        return InputError(f"cannot read: {reason}", str(where) if where else None)
    return OutputError(f"cannot write: {reason}", str(where) if where else None)


class InternalError(PktmaskError):
    """A bug met in a helper process: an exception outside this tree, carried to the parent
    by class name and message (``encode_error``)."""


# Longest message carried across a process boundary (an error message is one line).
MAX_ENCODED_MESSAGE = 2000


def _classes() -> dict[str, type[PktmaskError]]:
    """Every class of the tree by name (they all take ``(message, path)``)."""
    found: dict[str, type[PktmaskError]] = {}
    todo: list[type[PktmaskError]] = [PktmaskError]
    while todo:
        cls = todo.pop()
        found[cls.__name__] = cls
        todo.extend(cls.__subclasses__())
    return found


def encode_error(exc: BaseException, path: str | None = None) -> bytes:
    """Serialize ``exc`` for another process: its class name in this tree, message and file name.

    An exception outside the tree becomes an ``InternalError`` naming its type
    (and ``path``, the file being processed). The form is a one-line UTF-8 JSON object.
    """
    if isinstance(exc, PktmaskError):
        name, message, where = type(exc).__name__, exc.message, exc.path
    else:
        name, message, where = InternalError.__name__, f"internal error: {type(exc).__name__}: {exc}", path
    form = {"class": name, "message": str(message)[:MAX_ENCODED_MESSAGE], "path": where}
    return json.dumps(form, ensure_ascii=True).encode("ascii")


def decode_error(data: bytes) -> PktmaskError:
    """The error ``encode_error`` serialized, rebuilt as the same class of this tree.

    A class name unknown here (or a damaged form) gives the base class, so a
    failure is never lost.
    """
    try:
        form = json.loads(data.decode("utf-8", "replace"))
        name, message, path = form["class"], str(form["message"]), form["path"]
    except (ValueError, TypeError, KeyError):
        return PktmaskError(data.decode("utf-8", "replace")[:MAX_ENCODED_MESSAGE] or "unknown error")
    cls = _classes().get(name, PktmaskError) if isinstance(name, str) else PktmaskError
    return cls(message, str(path) if path is not None else None)
