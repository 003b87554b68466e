"""One `pktmask mask` run: a file, a directory, stdin or a FIFO, into a file, a directory or stdout.

The CLI builds a MaskRequest and calls ``run_mask`` inside the entered
TempFileManager; this module assembles the pipeline from the configuration
(``build_executor``), decides the shape of the run and returns every file's
result. Usage problems raise before anything is written. It sits above
``pktmask.core``, which knows neither the configuration nor the stages.
"""

from __future__ import annotations

import gc
import os
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path

from pktmask.config import MaskConfig
from pktmask.core.batch import (
    BatchPlan,
    plan_directory,
    prepare_outputs,
    run_parallel,
    run_sequential,
)
from pktmask.core.pipeline.executor import PipelineExecutor
from pktmask.core.pipeline.stream import StreamInput
from pktmask.core.temp_file_manager import TempFileManager
from pktmask.errors import InputError, OutputError, UsageError
from pktmask.report import FileResult
from pktmask.stages import build_stages

STDIO = "-"


@dataclass
class MaskRequest:
    """What the user asked ``pktmask mask`` to do."""

    input: str
    output: str
    config: MaskConfig
    recursive: bool = False
    jobs: int = 1
    verbose: int = 0


@dataclass
class MaskOutcome:
    """Every processed file's result, and the files of a directory that were not captures."""

    results: list[FileResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


class Hooks:
    """Callbacks the CLI uses to show progress (all optional no-ops here)."""

    def start(self, files: int) -> None:
        """A run over ``files`` files begins."""

    def file_progress(self, path: Path):
        """Return a ``progress(done, total)`` callable for one file, or None."""
        return None

    def file_done(self, result: FileResult) -> None:
        """One file finished (successfully or not)."""


def build_executor(config: MaskConfig, manager: TempFileManager | None = None) -> PipelineExecutor:
    """The executor of the stages ``config`` enables, in the order dedup → anonymize → mask."""
    return PipelineExecutor(build_stages(config), manager)


def run_mask(req: MaskRequest, manager: TempFileManager, hooks: Hooks | None = None) -> MaskOutcome:
    """Run one mask request; raises PktmaskError for usage errors and single-file failures."""
    hooks = hooks or Hooks()
    _tune_gc()
    if req.input != STDIO and Path(req.input).is_dir():
        return _run_directory(req, manager, hooks)
    if req.output != STDIO and Path(req.output).is_dir() and req.input == STDIO:
        raise UsageError("OUTPUT is a directory (give a file name)", req.output)
    if req.output.endswith(os.sep):  # a directory, never a file named like it
        if Path(req.output).is_dir():
            raise UsageError("OUTPUT is a directory (give a file name)", req.output)
        raise OutputError("output directory does not exist", req.output)
    executor = build_executor(req.config, manager)
    hooks.start(1)
    outcome = MaskOutcome()
    if req.input == STDIO:
        if sys.stdin.isatty():
            raise UsageError("INPUT is - but standard input is a terminal; pipe a capture in")
        # Read once, never spooled: with masking the reading process also runs the pre-pass.
        result = executor.run_file(Path("<stdin>"), req.output, req.config.force, display_name="<stdin>",
                                   stream=StreamInput(0, "<stdin>"))
    elif _once_only(req.input):
        stream = _open_stream(req.input)
        try:
            result = executor.run_file(Path(req.input), req.output, req.config.force, stream=stream)
        finally:
            stream.close()
    else:
        result = executor.run_file(req.input, req.output, req.config.force,
                                   progress=hooks.file_progress(Path(req.input)))
    outcome.results.append(result)
    hooks.file_done(result)
    return outcome


def _tune_gc() -> None:
    """Collect cycles rarely: the per-packet work allocates many short-lived containers that
    reference counting frees, and almost no cycles, while the default thresholds collect the
    young generation every 700 allocations and rescan the caches. What start-up built (modules,
    the stages) is frozen out of every collection."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def _once_only(path: str) -> bool:
    """True for an INPUT that can be read only once: a FIFO (``<(zcat x.pcap.gz)``), a socket
    or a character device."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False  # the executor reports it
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode)


def _open_stream(path: str) -> StreamInput:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise InputError(f"cannot open: {exc.strerror}", path) from exc
    return StreamInput(fd, path, owned=True)


def _run_directory(req: MaskRequest, manager: TempFileManager, hooks: Hooks) -> MaskOutcome:
    if req.output == STDIO:
        raise UsageError("a directory INPUT needs a directory OUTPUT, not -")
    out_dir = Path(req.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError("INPUT is a directory but OUTPUT is not", req.output)
    if not out_dir.parent.is_dir():
        raise OutputError("parent of the output directory does not exist", str(out_dir.parent))
    plan = plan_directory(Path(req.input), out_dir, req.recursive)
    prepare_outputs(plan, req.config.force)
    hooks.start(len(plan.jobs))
    outcome = MaskOutcome(skipped=plan.skipped)
    early = [FileResult(input=path, output=None, error=why) for path, why in plan.failures]
    for failure in early:
        hooks.file_done(failure)
    if req.jobs > 1 and len(plan.jobs) > 1:
        outcome.results = run_parallel(plan, req.jobs, _worker_argv(req, manager), manager, hooks.file_done,
                                       key=req.config.key)
    else:
        executor = build_executor(req.config, manager)
        outcome.results = run_sequential(executor, plan, req.config.force, hooks.file_done,
                                         hooks.file_progress)
    outcome.results = early + outcome.results
    return outcome


def _worker_argv(req: MaskRequest, manager: TempFileManager) -> list[str]:
    """The command line of a worker: a pktmask process with the run's options.

    The key is not on it: ``run_parallel`` hands it over through a pipe.
    """
    cfg = req.config
    argv = [sys.executable, "-m", "pktmask", "mask", "-q", "--json", "--temp-dir", str(manager.temp_dir),
            "--anonymize" if cfg.anonymize else "--no-anonymize",
            "--mask-payloads" if cfg.mask_payloads else "--no-mask-payloads",
            "--dedup" if cfg.dedup else "--no-dedup",
            "--dedup-window", str(cfg.dedup_window),
            "--anonymize-macs" if cfg.anonymize_macs else "--keep-macs"]
    if cfg.cryptopan_compat:
        argv.append("--cryptopan-compat")
    if cfg.force:
        argv.append("--force")
    return argv


__all__ = ["BatchPlan", "Hooks", "MaskOutcome", "MaskRequest", "build_executor", "run_mask"]
