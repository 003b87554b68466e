"""The process-wide scratch space manager (README "Temp hygiene").

Every scratch file and directory of a run lives in one run root owned by this
process (see ``run_root``). Cleanup runs on normal return, on exception, at
exit and on SIGINT/SIGTERM/SIGHUP, after which the signal is re-raised with
its default action so the parent sees the real cause of death. A forked child
inherits nothing it may delete: it starts with an empty manager of its own.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pktmask.core.process import HANDLED_SIGNALS
from pktmask.core.run_root import OwnedRoot, random_token
from pktmask.core.run_root import sweep as sweep_roots
from pktmask.errors import TempDirError

log = logging.getLogger(__name__)

# How long workers get to clean up after a signal before SIGKILL (their roots are then swept):
# a run must end soon after its signal, whatever its workers are doing.
CHILD_GRACE_SECONDS = 1.5


class TempFileManager:
    """Hands out scratch paths inside this process's run root and removes them all.

    Thread-safe. Use ``get_instance()``; the CLI enters it once per run
    (``with manager:``), which installs the signal handlers.
    """

    _instance: TempFileManager | None = None
    _instance_lock = threading.Lock()

    def __init__(self, temp_dir: str | os.PathLike | None = None):
        self._lock = threading.RLock()
        self._temp_dir = Path(temp_dir) if temp_dir else None
        self._root: OwnedRoot | None = None
        self._files: set[Path] = set()
        self._dirs: set[Path] = set()
        self.keep = False
        self._owner_pid = os.getpid()
        self._saved_handlers: dict[int, Any] = {}
        self._atexit_registered = False
        self._children: dict[int, bool] = {}  # pid -> helper (owns nothing: SIGKILL, no grace)

    # ---- singleton -------------------------------------------------------
    @classmethod
    def get_instance(cls) -> TempFileManager:
        """Return the process-wide manager, creating it on first use."""
        with cls._instance_lock:
            if cls._instance is None or cls._instance._owner_pid != os.getpid():
                cls._instance = cls()
            return cls._instance

    # ---- configuration ---------------------------------------------------
    def configure(self, temp_dir: str | os.PathLike | None = None, keep: bool = False) -> None:
        """Choose where the run root goes and whether it survives cleanup.

        Raises RuntimeError if the root already exists in another directory.
        """
        with self._lock:
            if temp_dir is not None:
                new = Path(temp_dir)
                if self._root is not None and new != self.temp_dir:
                    raise RuntimeError("run root already created; configure before first use")
                self._temp_dir = new
            self.keep = keep

    @property
    def temp_dir(self) -> Path:
        """The directory holding run roots: configured, else $TMPDIR, else the system default.

        A $TMPDIR that is set is used as is: never silently replaced by /tmp.
        """
        if self._temp_dir is not None:
            return self._temp_dir
        env = os.environ.get("TMPDIR")
        return Path(env) if env else Path(tempfile.gettempdir())

    def _temp_dir_source(self) -> str:
        if self._temp_dir is not None:
            return "--temp-dir"
        return "TMPDIR" if os.environ.get("TMPDIR") else "the system temp dir"

    @property
    def run_root(self) -> Path:
        """This process's run root, created (mode 0700, locked) on first use.

        Raises TempDirError (exit 1, naming the directory) when it cannot be created.
        """
        with self._lock:
            if self._root is None:
                # Signals wait until the root is ours to clean: a signal between its mkdir
                # and this assignment would leave it behind.
                main = threading.current_thread() is threading.main_thread()
                if main:
                    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
                try:
                    self._root = OwnedRoot(self.temp_dir)
                except OSError as exc:
                    raise TempDirError(
                        f"cannot create a scratch root in the temp dir ({self._temp_dir_source()}): "
                        f"{exc.strerror or exc}",
                        str(self.temp_dir),
                    ) from exc
                finally:
                    if main:
                        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
                if not self._atexit_registered:
                    atexit.register(self.cleanup_all)
                    self._atexit_registered = True
                log.debug("run root %s", self._root.path)
            return self._root.path

    @property
    def has_root(self) -> bool:
        """True once this process has created its run root."""
        return self._root is not None

    # ---- scratch ---------------------------------------------------------
    def create_temp_dir(self, prefix: str = "tmp-") -> Path:
        """Create and register a scratch directory inside the run root; returns its path.

        The caller must remove it (``remove_temp_dir``); prefer ``with temp_directory()``."""
        with self._lock:
            path = Path(tempfile.mkdtemp(prefix=prefix, dir=self.run_root))
            self._dirs.add(path)
            return path

    def create_temp_file(self, prefix: str = "tmp-", suffix: str = "") -> Path:
        """Create (empty, mode 0600) and register a scratch file inside the run root; returns its path.

        The caller must remove it (``remove_temp_file``); prefer ``with temp_file()``."""
        with self._lock:
            fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=self.run_root)
            os.close(fd)
            path = Path(name)
            self._files.add(path)
            return path

    def register_temp_file(self, path: str | os.PathLike) -> None:
        """Have ``cleanup_all`` remove this file. Paths outside the root are
        also recorded in the root so a sweep removes them after a SIGKILL."""
        path = Path(path)
        with self._lock:
            self._files.add(path)
            if not self._inside_root(path):
                self._record_external(path)

    def register_temp_dir(self, path: str | os.PathLike) -> None:
        """Have ``cleanup_all`` remove this directory tree."""
        with self._lock:
            self._dirs.add(Path(path))

    def unregister_temp_file(self, path: str | os.PathLike) -> None:
        """Forget a file (e.g. a partial output renamed into place); it is not deleted."""
        with self._lock:
            self._files.discard(Path(path))

    def unregister_temp_dir(self, path: str | os.PathLike) -> None:
        """Forget a directory; it is not deleted."""
        with self._lock:
            self._dirs.discard(Path(path))

    # ---- scoped scratch: what the rest of pktmask uses ---------------------
    @contextmanager
    def temp_file(self, prefix: str = "tmp-", suffix: str = "") -> Iterator[Path]:
        """``with manager.temp_file() as path:`` a scratch file (empty, mode 0600) in the run root
        for the block; removed and forgotten when the block ends, however it ends."""
        path = self.create_temp_file(prefix=prefix, suffix=suffix)
        try:
            yield path
        finally:
            self.remove_temp_file(path)

    @contextmanager
    def temp_directory(self, prefix: str = "tmp-") -> Iterator[Path]:
        """``with manager.temp_directory() as path:`` a scratch directory in the run root for
        the block; removed with its contents when the block ends, however it ends. (The
        ``temp_dir`` property is where run roots live.)"""
        path = self.create_temp_dir(prefix=prefix)
        try:
            yield path
        finally:
            self.remove_temp_dir(path)

    @contextmanager
    def partial_file(self, target: Path) -> Iterator[Path]:
        """``with manager.partial_file(OUTPUT) as path:`` the name of a hidden partial-output
        sibling of ``target`` (not created), registered (and so recorded in the run root for
        a sweep after a kill) for the block. Whatever still has that name when the block ends
        is removed: a partial published by renaming it is already gone."""
        path = self.new_partial_name(Path(target))
        self.register_temp_file(path)  # before anything exists: a kill right after creation is cleaned
        try:
            yield path
        finally:
            self.remove_temp_file(path)

    def remove_temp_file(self, path: str | os.PathLike) -> None:
        """Delete a registered file now (if it exists) and forget it; never raises."""
        path = Path(path)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("could not remove scratch file %s: %s", path, exc)
        self.unregister_temp_file(path)

    def remove_temp_dir(self, path: str | os.PathLike) -> None:
        """Delete a registered directory tree now and forget it; never raises."""
        path = Path(path)
        shutil.rmtree(path, ignore_errors=True)
        self.unregister_temp_dir(path)

    def new_partial_name(self, target: Path) -> Path:
        """Name a hidden partial-output sibling of ``target``: ``.<name>.pktmask-<rnd>.part``."""
        return target.with_name(f".{target.name}.pktmask-{random_token()}.part")

    def _inside_root(self, path: Path) -> bool:
        if self._root is None:
            return False
        try:
            return os.path.commonpath([os.path.abspath(path), self._root.path]) == str(self._root.path)
        except ValueError:
            return False

    def _record_external(self, path: Path) -> None:
        self.run_root  # noqa: B018 - the record lives in the root
        root = self._root
        assert root is not None  # run_root made it
        try:
            root.add_external(path)
        except OSError as exc:
            log.warning("could not record scratch path %s: %s", path, exc)

    # ---- cleanup ---------------------------------------------------------
    def cleanup_all(self) -> None:
        """Remove every registered path and the run root (unless kept). Idempotent; never raises."""
        if self._owner_pid != os.getpid():
            return  # a forked child must not touch its parent's scratch
        with self._lock:
            files, self._files = self._files, set()
            dirs, self._dirs = self._dirs, set()
            for path in files:
                if self.keep and self._inside_root(path):
                    continue
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    log.warning("could not remove scratch file %s: %s", path, exc)
            root = self._root
            if root is None:
                return
            if self.keep:
                try:
                    root.mark_kept()
                except OSError as exc:
                    log.warning("could not mark %s as kept: %s", root.path, exc)
            else:
                for path in dirs:
                    shutil.rmtree(path, ignore_errors=True)
                try:
                    shutil.rmtree(root.path)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    log.warning("could not remove run root %s: %s", root.path, exc)
            root.close()
            self._root = None

    def get_stats(self) -> dict:
        """Return counts of registered scratch files/dirs and the run root's size in MB."""
        with self._lock:
            size = 0
            if self._root is not None:
                for dirpath, _d, names in os.walk(self._root.path):
                    for n in names:
                        try:
                            size += os.lstat(os.path.join(dirpath, n)).st_size
                        except OSError:
                            pass
            return {
                "temp_files_count": len(self._files),
                "temp_dirs_count": len(self._dirs),
                "total_size_mb": round(size / (1 << 20), 3),
            }

    def sweep_orphans(self, include_kept: bool = False) -> list[Path]:
        """Remove dead runs' roots in the temp dir (never a live one, never ours)."""
        own = self._root.path if self._root is not None else None
        return sweep_roots(self.temp_dir, include_kept=include_kept, exclude=own)

    # ---- worker processes ---------------------------------------------------
    def register_child(self, pid: int, helper: bool = False) -> None:
        """A child process of this run, stopped before cleanup when a signal comes.

        A worker (``helper`` False) owns a run root: the signal is passed on and
        it gets CHILD_GRACE_SECONDS to clean up. A helper owns nothing (the
        masking pre-pass): it is killed outright, never waited on to run a
        Python handler that compiled code may not reach.
        """
        with self._lock:
            self._children[pid] = helper

    def unregister_child(self, pid: int) -> None:
        """The child has been waited for."""
        with self._lock:
            self._children.pop(pid, None)

    def _stop_children(self, signum: int) -> None:
        """Kill helpers, pass ``signum`` on to workers, and wait for all of them to die."""
        children = dict(self._children)
        for pid, helper in children.items():
            try:
                os.kill(pid, signal.SIGKILL if helper else signum)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + CHILD_GRACE_SECONDS
        killed = False
        for pid, helper in children.items():
            while True:
                try:
                    done, _status = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    break
                if done:
                    break
                if time.monotonic() > deadline:
                    try:
                        os.kill(pid, signal.SIGKILL)
                        os.waitpid(pid, 0)
                    except (ProcessLookupError, ChildProcessError):
                        pass
                    killed = killed or not helper
                    break
                time.sleep(0.01)
        self._children.clear()
        if killed:
            try:
                self.sweep_orphans()  # the roots of workers killed before they cleaned up
            except OSError:
                pass

    # ---- run scope and signals -------------------------------------------
    def __enter__(self) -> TempFileManager:
        if threading.current_thread() is threading.main_thread():
            for sig in HANDLED_SIGNALS:
                if signal.getsignal(sig) is signal.SIG_IGN:
                    continue  # ignored at start (nohup, background job): it stays ignored
                self._saved_handlers[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup_all()
        for sig, handler in self._saved_handlers.items():
            signal.signal(sig, handler)
        self._saved_handlers.clear()

    def _on_signal(self, signum, _frame) -> None:
        # Hold further handled signals until cleanup is done, then die by this one.
        signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
        try:
            if self._children:
                self._stop_children(signum)
            self.cleanup_all()
            try:
                sys.stderr.write(f"pktmask: interrupted by {signal.Signals(signum).name}; cleaned up\n")
                sys.stderr.flush()
            except (OSError, ValueError, AttributeError):
                pass
        finally:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED_SIGNALS)
        os._exit(128 + signum)  # only if the default action did not end us


def get_temp_file_manager() -> TempFileManager:
    """Return the process-wide TempFileManager."""
    return TempFileManager.get_instance()


def _after_fork_in_child() -> None:
    inst = TempFileManager._instance
    TempFileManager._instance_lock = threading.Lock()
    if inst is not None:
        # The child keeps the object (code may hold a reference) but owns nothing:
        # cleanup_all() is a no-op there because _owner_pid is the parent's.
        inst._lock = threading.RLock()
        inst._children = {}
        if inst._root is not None and inst._root.lock_fd >= 0:
            try:
                os.close(inst._root.lock_fd)  # the parent's flock stays held
            except OSError:
                pass
            inst._root.lock_fd = -1


os.register_at_fork(after_in_child=_after_fork_in_child)
