"""Directory runs: find the captures, mirror the tree, run them one by one or in worker processes.

One failed file does not stop a batch; it is reported and the run exits 1.
Workers (``--jobs N``) are pktmask processes of their own, each with its own
run root; they die with their parent (PR_SET_PDEATHSIG) and a signal to the
parent is passed on to them by the TempFileManager before it cleans up.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field, fields
from pathlib import Path

from pktmask.capture.formats import sniff_format
from pktmask.core.pipeline.executor import SERIAL_ENV
from pktmask.core.process import die_with_parent
from pktmask.core.run_root import PARTIAL_RE
from pktmask.core.temp_file_manager import HANDLED_SIGNALS, TempFileManager
from pktmask.errors import (
    InputError,
    OutputError,
    OutputExistsError,
    PktmaskError,
    SameFileError,
    UsageError,
)
from pktmask.report import FileResult

log = logging.getLogger(__name__)


# A file with one of these names is meant to be a capture: if it is not one, or cannot
# be read, the batch fails for it (README "Exit codes"); other non-captures are skipped.
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap")


@dataclass
class BatchPlan:
    """The captures of a directory run (input, output), the files skipped, and what failed already.

    ``failures`` holds (path, reason) for unreadable files and directories and
    for files named like captures that are not captures.
    """

    jobs: list[tuple[Path, Path]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)


def _sniff(path: Path) -> str | None:
    """The capture format of ``path``; None if not a capture. Raises OSError if unreadable."""
    with open(path, "rb") as f:
        return sniff_format(f.read(4))


def plan_directory(in_dir: Path, out_dir: Path, recursive: bool) -> BatchPlan:
    """List the captures under ``in_dir`` (by magic bytes) and their mirrored outputs.

    Raises UsageError if OUT_DIR is IN_DIR, InputError if IN_DIR cannot be
    read or holds no capture at all. Subdirectories are entered only with
    ``recursive``; OUT_DIR is never entered, symlinked directories never.
    """
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    in_real, out_real = in_dir.resolve(), out_dir.resolve()
    if in_real == out_real:
        raise UsageError("OUTPUT directory is the INPUT directory (outputs would replace inputs)",
                         str(out_dir))
    plan = BatchPlan()

    def unreadable(exc: OSError) -> None:
        where = Path(exc.filename or in_dir)
        if where == in_dir:
            raise InputError(f"cannot read directory: {exc.strerror}", str(in_dir)) from exc
        plan.failures.append((str(where), f"{where}: cannot read directory: {exc.strerror}"))

    for dirpath, dirnames, filenames in os.walk(in_dir, onerror=unreadable):
        here = Path(dirpath)
        rel_dir = here.relative_to(in_dir)
        dirnames[:] = sorted(d for d in dirnames if recursive and (here / d).resolve() != out_real)
        for name in sorted(filenames):
            src = here / name
            rel = rel_dir / name
            named_capture = name.lower().endswith(CAPTURE_SUFFIXES)
            if PARTIAL_RE.match(name) or not src.is_file():
                plan.skipped.append(str(rel))
                continue
            try:
                fmt = _sniff(src)
            except OSError as exc:
                plan.failures.append((str(src), f"{src}: cannot read: {exc.strerror}"))
                continue
            if fmt is None:
                if named_capture:
                    plan.failures.append((str(src), f"{src}: not a pcap or pcapng capture despite its name"))
                else:
                    plan.skipped.append(str(rel))
                continue
            plan.jobs.append((src, out_dir / rel))
        if not recursive:
            break
    if not plan.jobs and not plan.failures:
        raise InputError(f"no captures in {in_dir}")
    return plan


def prepare_outputs(plan: BatchPlan, force: bool) -> None:
    """Refuse the run before writing anything if an output exists (without --force) or is an input.

    Creates the output directories (mirroring the input tree). Raises
    OutputExistsError/SameFileError (usage) or OutputError.
    """
    inputs = {(st.st_dev, st.st_ino) for st in (os.stat(s) for s, _ in plan.jobs)}
    existing = []
    for _src, dst in plan.jobs:
        try:
            st = os.stat(dst)
        except FileNotFoundError:
            continue
        if (st.st_dev, st.st_ino) in inputs:
            raise SameFileError("OUTPUT is one of the INPUT files (never overwritten)", str(dst))
        existing.append(dst)
    if existing and not force:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise OutputExistsError(f"exists{more} (use --force to replace)", str(existing[0]))
    for _src, dst in plan.jobs:
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create output directory: {exc.strerror}", str(dst.parent)) from exc


def run_sequential(executor, plan: BatchPlan, force: bool,
                   on_file: Callable[[FileResult], None] | None = None,
                   progress: Callable[[Path], Callable[[int, int], None] | None] | None = None,
                   ) -> list[FileResult]:
    """Run every job in this process, in order; a failure is recorded, not raised."""
    results = []
    for src, dst in plan.jobs:
        started = time.monotonic()
        try:
            result = executor.run_file(src, dst, force=force, progress=progress(src) if progress else None)
        except PktmaskError as exc:
            result = FileResult(input=str(src), output=None, error=str(exc))
        except Exception as exc:  # noqa: BLE001 - one broken file must not stop the batch
            log.debug("internal error on %s", src, exc_info=True)
            result = FileResult(input=str(src), output=None, error=f"internal error: {type(exc).__name__}: {exc}")
        result.seconds = result.seconds or time.monotonic() - started
        results.append(result)
        if on_file:
            on_file(result)
    return results


_RESULT_FIELDS = {f.name for f in fields(FileResult)}


def _worker_result(src: Path, code: int, report_path: Path) -> FileResult:
    """A worker's result, read from its ``--json`` report: the structured channel.

    The report holds the file's result (also a failed one, with its error) or,
    when the worker failed before it reached the file (e.g. its key pipe), the
    run's ``error``. Only a worker that wrote no report (killed, crashed) is
    described by its exit status. Its stderr is never parsed.
    """
    try:
        report = json.loads(report_path.read_text() or "null")
    except (OSError, ValueError):
        report = None
    if isinstance(report, dict):
        files = report.get("files")
        if isinstance(files, list) and files and isinstance(files[0], dict):
            try:
                return FileResult(**{k: v for k, v in files[0].items() if k in _RESULT_FIELDS})
            except TypeError:
                pass  # not a result: described below
        error = report.get("error")
        if isinstance(error, str) and error:
            return FileResult(input=str(src), output=None,
                              error=error if str(src) in error else f"{src}: {error}")
    if code < 0:
        why = f"{src}: worker ended by {signal.Signals(-code).name}"
    else:
        why = f"{src}: worker exited with {code} without a report"
    return FileResult(input=str(src), output=None, error=why)


def _key_pipe(key: bytes) -> int:
    """A pipe holding ``key`` and then EOF; returns its read end (the key never touches a file)."""
    rfd, wfd = os.pipe()
    try:
        os.write(wfd, key)  # 32 bytes: far below any pipe's capacity, never blocks
    finally:
        os.close(wfd)
    return rfd


def run_parallel(plan: BatchPlan, jobs: int, worker_argv: list[str], manager: TempFileManager,
                 on_file: Callable[[FileResult], None] | None = None,
                 key: bytes | None = None) -> list[FileResult]:
    """Run the jobs in up to ``jobs`` worker processes; results come back in input order.

    ``worker_argv`` is the pktmask command line of a worker without INPUT and
    OUTPUT (it must ask for ``--json``). ``key`` reaches each worker through an
    inherited pipe (``--key-fd``): never a file, the command line or the environment.
    """
    pending = list(enumerate(plan.jobs))
    pending.reverse()
    # pid -> (index, src, process, report path, the scope of its scratch files)
    running: dict[int, tuple[int, Path, subprocess.Popen, Path, ExitStack]] = {}
    results: dict[int, FileResult] = {}
    parent = os.getpid()

    def setup() -> None:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED_SIGNALS)
        die_with_parent(parent)

    try:
        while pending or running:
            while pending and len(running) < jobs:
                index, (src, dst) = pending.pop()
                with ExitStack() as scope:
                    # The report (stdout, --json) is the worker's result; its stderr is kept
                    # only as scratch (a test pause announces itself there).
                    out_path = scope.enter_context(manager.temp_file(prefix="worker-", suffix=".json"))
                    err_path = scope.enter_context(manager.temp_file(prefix="worker-", suffix=".err"))
                    proc = _spawn(worker_argv, key, src, dst, out_path, err_path, setup, manager)
                    running[proc.pid] = (index, src, proc, out_path, scope.pop_all())
            pid, status = os.waitpid(-1, 0)
            if pid not in running:
                continue
            index, src, proc, out_path, files = running.pop(pid)
            with files:
                manager.unregister_child(pid)
                proc.returncode = os.waitstatus_to_exitcode(status)
                result = _worker_result(src, proc.returncode, out_path)
            results[index] = result
            if on_file:
                on_file(result)
    finally:
        for _index, _src, proc, _out, files in running.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            manager.unregister_child(proc.pid)
            files.close()
    return [results[i] for i in range(len(plan.jobs))]


def _spawn(worker_argv: list[str], key: bytes | None, src: Path, dst: Path, out_path: Path, err_path: Path,
           setup: Callable[[], None], manager: TempFileManager) -> subprocess.Popen:
    """Start one worker on (src, dst), its stdout and stderr into the given files; registered."""
    key_fd = _key_pipe(key) if key is not None else -1
    argv = [*worker_argv, "--key-fd", str(key_fd)] if key_fd >= 0 else list(worker_argv)
    # Signals wait until the worker is registered (so they reach it); it unblocks them.
    signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
    try:
        with open(out_path, "wb") as out_f, open(err_path, "wb") as err_f:
            proc = subprocess.Popen([*argv, "--", str(src), str(dst)], stdin=subprocess.DEVNULL,
                                    stdout=out_f, stderr=err_f, preexec_fn=setup,
                                    pass_fds=(key_fd,) if key_fd >= 0 else (),
                                    env={**os.environ, SERIAL_ENV: "1"})
        manager.register_child(proc.pid)
    finally:
        if key_fd >= 0:
            os.close(key_fd)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED_SIGNALS)
    return proc
