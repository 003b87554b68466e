"""Atomic output: write a hidden sibling of OUTPUT, fsync it, then move it into place.

Where the filesystem supports ``O_TMPFILE`` the sibling has no name at all
until it is complete, so even a SIGKILL leaves nothing next to OUTPUT. Else a
named ``.<name>.pktmask-<rnd>.part`` is used, held in the TempFileManager's
``partial_file`` scope (and so recorded in the run root) to be removed on
failure, on signals and by the sweep after a kill.
"""

from __future__ import annotations

import errno
import os
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import BinaryIO

from pktmask.core.temp_file_manager import TempFileManager
from pktmask.errors import OutputError, OutputExistsError, SameFileError, UsageError, from_oserror

# The writers join their records into batches of about 1 MiB; a batch larger than this buffer
# goes to the file straight from the batch (a larger buffer would copy every byte once more).
WRITE_BUFFER = 1 << 16
# Written bytes after which ``checkpoint`` starts their writeback: the disk works while
# we compute, instead of the whole file waiting for the fsync at the end.
WRITEBACK_STEP = 16 << 20


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories; the data itself is synced
    finally:
        os.close(fd)


def _link_fd(fd: int, target: Path) -> None:
    """Give the unnamed O_TMPFILE file ``fd`` the name ``target`` (linkat, following /proc)."""
    # A src_dir_fd makes os.link use linkat(AT_SYMLINK_FOLLOW); plain link() would
    # try to link the /proc magic symlink itself and fail with EXDEV.
    proc = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.link(str(fd), target, src_dir_fd=proc, follow_symlinks=True)
    finally:
        os.close(proc)


class AtomicOutput:
    """One OUTPUT being written; ``commit()`` publishes it, ``abort()`` discards it."""

    def __init__(self, target: Path, manager: TempFileManager, force: bool):
        self.target = Path(target)
        self.manager = manager
        self.force = force
        self.partial: Path | None = None
        self._scope = ExitStack()  # holds the named partial (``manager.partial_file``) until commit or abort
        self.file: BinaryIO | None = None
        self._fd = -1
        self._anonymous = False
        self._written_back = 0  # offset up to which writeback was started

    def open(self) -> BinaryIO:
        """Create the hidden file and return a buffered binary writer for it.

        Raises OutputError (or DiskFullError) when the directory is unusable.
        """
        directory = self.target.parent
        if not directory.is_dir():
            raise OutputError("output directory does not exist", str(directory))
        try:
            if hasattr(os, "O_TMPFILE") and not os.environ.get("PKTMASK_TEST_NO_O_TMPFILE"):
                try:
                    self._fd = os.open(directory, os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o666)
                    self._anonymous = True
                except OSError as exc:
                    if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
                        raise
            if self._fd < 0:
                # Registered before it exists, so a kill right after creation is still cleaned.
                self.partial = self._scope.enter_context(self.manager.partial_file(self.target))
                self._fd = os.open(
                    self.partial,
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                    0o666,
                )
        except OSError as exc:
            raise from_oserror(exc, str(self.target)) from exc
        f: BinaryIO = open(self._fd, "wb", buffering=WRITE_BUFFER, closefd=True)  # noqa: SIM115 - closed in _close
        self.file = f
        return f

    def checkpoint(self) -> None:
        """Start (asynchronous) writeback of what is written so far; cheap, call it often.

        POSIX_FADV_DONTNEED makes Linux start writing dirty pages back without
        waiting for them, so ``commit``'s fsync has little left to do.
        """
        assert self.file is not None, "checkpoint before open"
        pos = self.file.tell() - WRITE_BUFFER  # what surely left our buffer
        start = self._written_back
        if pos - start >= WRITEBACK_STEP:
            self._written_back = pos
            try:
                os.posix_fadvise(self._fd, start, pos - start, os.POSIX_FADV_DONTNEED)
            except (OSError, AttributeError):
                pass  # only an optimisation

    def commit(self) -> None:
        """Flush, fsync and move the file to OUTPUT (never clobbering without --force).

        Raises OutputExistsError if OUTPUT appeared meanwhile and ``force`` is
        off, DiskFullError/OutputError on I/O failure.
        """
        f = self.file
        assert f is not None, "commit before open"
        try:
            f.flush()
            os.fsync(f.fileno())
            if self._anonymous:
                self._publish_anonymous(f.fileno())
            else:
                self._publish_named()
        except FileExistsError as exc:
            raise OutputExistsError("OUTPUT exists (use --force to replace it)", str(self.target)) from exc
        except OSError as exc:
            raise from_oserror(exc, str(self.target)) from exc
        finally:
            self._close()
        _fsync_dir(self.target.parent)

    def _publish_anonymous(self, fd: int) -> None:
        if not self.force:
            _link_fd(fd, self.target)  # EEXIST: never clobber
            return
        with self.manager.partial_file(self.target) as partial:
            _link_fd(fd, partial)
            os.replace(partial, self.target)

    def _publish_named(self) -> None:
        partial = self.partial
        assert partial is not None, "a named partial exists unless O_TMPFILE was used"
        if self.force:
            os.replace(partial, self.target)
        else:
            try:
                os.link(partial, self.target)  # EEXIST: never clobber; the scope removes the partial
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV):
                    raise
                # No hard links here: last check, then rename.
                if os.path.lexists(self.target):
                    raise FileExistsError(errno.EEXIST, "exists", str(self.target)) from exc
                os.replace(partial, self.target)
        self._scope.close()
        self.partial = None

    def _close(self) -> None:
        f, self.file = self.file, None
        if f is not None:
            try:
                f.close()
            except OSError:
                pass  # already failed; the caller reports the first error

    def abort(self) -> None:
        """Discard the partial file (idempotent; never raises)."""
        self._close()
        self._scope.close()
        self.partial = None


class StdoutOutput:
    """OUTPUT ``-``: stream to standard output.

    A stream cannot be taken back: when a run fails part-way, what was
    written stays written and the exit status (1) is the only signal.
    """

    def __init__(self, stream=None):
        self.stream = stream if stream is not None else sys.stdout.buffer
        self.target = Path("<stdout>")
        self.file = None

    def checkpoint(self) -> None:
        """Nothing to do for a stream."""

    def open(self):
        """Return the binary stream to write to."""
        self.file = self.stream
        return self.file

    def commit(self) -> None:
        """Flush; a closed pipe or full disk becomes an OutputError."""
        try:
            self.stream.flush()
        except BrokenPipeError as exc:
            raise OutputError("standard output was closed by the reader", "<stdout>") from exc
        except OSError as exc:
            raise from_oserror(exc, "<stdout>") from exc

    def abort(self) -> None:
        """Flush what was written; nothing can be removed from a stream."""
        try:
            self.stream.flush()
        except (OSError, ValueError):
            pass


def _same_file(a: os.stat_result | None, b: os.stat_result | None) -> bool:
    return a is not None and b is not None and (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _stat(path: str | os.PathLike) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


def check_report_path(report: str | os.PathLike, input_path: str, output_path: str, force: bool) -> None:
    """Refuse a ``--report`` PATH that would destroy something (README "Exit codes", exit 2).

    Refused: PATH is INPUT (also stdin's file, a link or a symlink to it),
    OUTPUT, inside a directory INPUT's tree, a directory, or exists without
    ``force``. Raises SameFileError, OutputExistsError or UsageError.
    """
    name = os.fspath(report)
    real = os.path.realpath(name)
    rst = _stat(name)
    if name.endswith("/") or (rst is not None and os.path.isdir(name)):
        raise UsageError("--report names a directory (give a file name)", name)
    if input_path == "-":
        try:
            in_st: os.stat_result | None = os.fstat(0)
        except OSError:
            in_st = None
    else:
        in_st = _stat(input_path)
        if in_st is not None and os.path.isdir(input_path):
            top = os.path.realpath(input_path)
            if os.path.commonpath([top, real]) == top:
                raise UsageError("--report is inside the INPUT directory (it would be read as input)", name)
    if _same_file(rst, in_st):
        raise SameFileError("--report is the INPUT file (never overwritten)", name)
    if output_path != "-":
        out_real = os.path.realpath(output_path)
        if out_real == real or _same_file(rst, _stat(output_path)):
            raise SameFileError("--report is the OUTPUT file", name)
    if os.path.lexists(name) and not force:
        raise OutputExistsError("--report file exists (use --force to replace it)", name)
