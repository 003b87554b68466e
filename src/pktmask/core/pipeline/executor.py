"""PipelineExecutor: runs the enabled stages over one capture, streaming, into an atomic OUTPUT.

Stages that only need one look at each packet are fused into one pass over
the capture. A stage that needs a pre-pass (masking builds its keep-ranges
first) splits the chain: the stages before it run in a pass that writes an
intermediate capture into scratch while the two-pass stage observes the
result; the next pass reads that intermediate back. So each pass reads once
and writes once, and memory stays constant in file size.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path

from pktmask.capture.formats import Reader, make_writer, open_reader
from pktmask.config import MaskConfig
from pktmask.core.output import WRITE_BUFFER, AtomicOutput, StdoutOutput
from pktmask.core.pipeline.stage import FileContext, Stage
from pktmask.core.temp_file_manager import TempFileManager, get_temp_file_manager
from pktmask.errors import (
    InputError,
    OutputError,
    OutputExistsError,
    PktmaskError,
    SameFileError,
    from_oserror,
)
from pktmask.report import FileResult

log = logging.getLogger(__name__)

# Test-only switch: pause up to this many seconds in the final pass, right
# after the first packet reached the partial output, and say so on stderr;
# SIGUSR1 resumes. It lets the E2E suite signal a run at a known point, with
# scratch and a partial output in existence, instead of guessing with sleeps.
PAUSE_ENV = "PKTMASK_TEST_PAUSE"


def check_paths(input_path: Path, output_path: Path, force: bool) -> None:
    """Refuse OUTPUT that is INPUT or that exists without ``force``.

    Raises SameFileError, OutputExistsError (usage errors) or InputError.
    """
    try:
        in_stat = os.stat(input_path)
    except FileNotFoundError as exc:
        raise InputError("no such file", str(input_path)) from exc
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", str(input_path)) from exc
    try:
        out_stat = os.stat(output_path)
    except FileNotFoundError:
        if os.path.islink(output_path):
            raise OutputError("OUTPUT is a dangling symbolic link", str(output_path)) from None
        return
    except OSError as exc:
        raise OutputError(f"cannot access: {exc.strerror}", str(output_path)) from exc
    if (in_stat.st_dev, in_stat.st_ino) == (out_stat.st_dev, out_stat.st_ino):
        raise SameFileError("OUTPUT is the INPUT file (never overwritten)", str(output_path))
    if os.path.isdir(output_path):
        raise OutputExistsError("OUTPUT is a directory (give a file name)", str(output_path))
    if not force:
        raise OutputExistsError("OUTPUT exists (use --force to replace it)", str(output_path))


def plan_passes(stages: list[Stage]) -> list[tuple[list[Stage], Stage | None]]:
    """Group stages into passes: (stages processing in this pass, stage observing its output)."""
    passes: list[tuple[list[Stage], Stage | None]] = []
    current: list[Stage] = []
    for stage in stages:
        if stage.needs_prepass:
            passes.append((current, stage))
            current = [stage]
        else:
            current.append(stage)
    passes.append((current, None))
    return passes


class PipelineExecutor:
    """Runs a fixed list of stages over captures; one instance per run."""

    def __init__(self, stages: list[Stage], manager: TempFileManager | None = None):
        self.stages = stages
        self.manager = manager or get_temp_file_manager()

    @classmethod
    def from_config(cls, config: MaskConfig, manager: TempFileManager | None = None) -> PipelineExecutor:
        """Build the enabled stages, in the order dedup → anonymize → mask."""
        from pktmask.stages import build_stages

        return cls(build_stages(config), manager)

    def run_file(self, input_path: str | Path, output_path: str | Path, force: bool = False, *,
                 display_name: str | None = None, progress=None) -> FileResult:
        """Sanitize one capture into OUTPUT atomically (``-`` streams to stdout); returns its counters.

        ``display_name`` names the input in messages (e.g. ``<stdin>`` for a
        spooled copy); ``progress(done, total)`` is called now and then with
        byte counts. Raises PktmaskError subclasses; on any failure a file
        OUTPUT is untouched and no partial file or scratch of this file remains.
        """
        input_path = Path(input_path)
        name = display_name or str(input_path)
        started = time.monotonic()
        to_stdout = str(output_path) == "-"
        result = FileResult(input=name, output="-" if to_stdout else str(output_path))
        if to_stdout:
            if not input_path.exists():
                raise InputError("no such file", name)
            out = StdoutOutput()
        else:
            output_path = Path(output_path)
            check_paths(input_path, output_path, force)
            if not output_path.parent.is_dir():
                raise OutputError("output directory does not exist", str(output_path.parent))
            out = AtomicOutput(output_path, self.manager, force)
        self._name = name
        self._progress = progress
        scratch: list[Path] = []
        try:
            self._run(input_path, out, result, scratch)
            out.commit()
        except BaseException:
            out.abort()
            raise
        finally:
            for path in scratch:
                self._drop_scratch(path)
        result.ok = True
        result.seconds = time.monotonic() - started
        return result

    def _drop_scratch(self, path: Path) -> None:
        try:
            os.unlink(path)
        except OSError:
            pass
        self.manager.unregister_temp_file(path)

    def _run(self, input_path: Path, out: AtomicOutput, result: FileResult, scratch: list[Path]) -> None:
        passes = plan_passes(self.stages)
        source = input_path
        first = True
        ctx = None
        try:
            self._total = os.stat(input_path).st_size * len(passes)
        except OSError:
            self._total = 0
        self._done = 0
        self._passes = len(passes)
        for index, (procs, observer) in enumerate(passes):
            last = index == len(passes) - 1
            try:
                f = open(source, "rb", buffering=0)
            except OSError as exc:
                raise InputError(f"cannot open: {exc.strerror}", str(source)) from exc
            with f:
                reader = open_reader(f, self._name if first else str(source))
                if first:
                    ctx = FileContext(self._name, reader.format, self.manager)
                    for stage in self.stages:
                        stage.start(ctx)
                    result.format = reader.format
                if not procs and observer is not None and not last:
                    self._observe_only(reader, observer)
                    dest_path = None
                else:
                    dest_path = None if last else self.manager.create_temp_file(prefix="pass-", suffix=".cap")
                    if dest_path is not None:
                        scratch.append(dest_path)
                    written = self._pass(reader, procs, observer, out if last else None, dest_path)
                    if last:
                        result.packets_out = written
                self._done += self._total // len(passes)
                if first:
                    result.packets_in = reader.packets
                    result.metadata_dropped = reader.metadata_dropped
                    if reader.truncated:
                        result.truncated = True
                        result.warnings.append(
                            "capture ends in a truncated record; all complete records were processed"
                        )
                    first = False
            if observer is not None:
                observer.end_prepass()
            if dest_path is not None:
                # The previous intermediate is no longer needed once the next exists.
                if source != input_path:
                    scratch.remove(source)
                    self._drop_scratch(source)
                source = dest_path
        for stage in self.stages:
            result.add(stage.finish())

    def _report_progress(self, reader: Reader) -> None:
        if self._progress is not None and self._total:
            try:
                size = os.fstat(reader.cb.f.fileno()).st_size or 1
            except (OSError, AttributeError, ValueError):
                return
            share = self._total // max(1, self._passes)
            self._progress(self._done + share * min(reader.cb.position(), size) // size, self._total)

    def _observe_only(self, reader: Reader, observer: Stage) -> None:
        observe = observer.observe
        count = 0
        for pkt in reader:
            observe(pkt)
            count += 1
            if not count & 0xFFF:
                self._report_progress(reader)

    def _pass(self, reader: Reader, procs: list[Stage], observer: Stage | None,
              out: AtomicOutput | None, dest_path: Path | None) -> int:
        """Run one pass; returns the number of packets written."""
        if out is not None:
            f = out.open()
            dest_name = str(out.target)
        else:
            try:
                f = open(dest_path, "wb", buffering=WRITE_BUFFER)
            except OSError as exc:
                raise from_oserror(exc, str(dest_path)) from exc
            dest_name = str(dest_path)
        pause = float(os.environ.get(PAUSE_ENV) or 0) if out is not None else 0.0
        written = 0
        try:
            writer = make_writer(f, reader)
            write = writer.write
            observe = observer.observe if observer is not None else None
            funcs = [s.process for s in procs]
            count = 0
            for pkt in reader:
                count += 1
                if not count & 0xFFF:
                    self._report_progress(reader)
                for func in funcs:
                    pkt = func(pkt)
                    if pkt is None:
                        break
                else:
                    write(pkt)
                    if observe is not None:
                        observe(pkt)
                    written += 1
                    if pause and written == 1:
                        self._test_pause(f, pause)
            writer.close()
            if out is None:
                f.close()
        except OSError as exc:
            if out is None:
                try:
                    f.close()
                except OSError:
                    pass
            raise from_oserror(exc, dest_name) from exc
        except PktmaskError:
            if out is None:
                f.close()
            raise
        return written

    def _test_pause(self, f, seconds: float) -> None:
        f.flush()
        # Block SIGUSR1 first so a resume sent right after the message is not lost.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
        sys.stderr.write(f"pktmask: test pause ({seconds:g}s, SIGUSR1 resumes); run root {self.manager.run_root}\n")
        sys.stderr.flush()
        signal.sigtimedwait({signal.SIGUSR1}, seconds)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
