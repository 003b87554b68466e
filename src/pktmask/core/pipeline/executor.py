"""PipelineExecutor: runs a fixed list of stages over one capture, streaming, into an atomic OUTPUT.

Per file, straight through: plan the reads (``plan.py``), fork the pre-pass
helper if one runs alongside (``helper.py``), run the pre-pass here if it
runs serially, run the final pass into OUTPUT, reap the helper. No
intermediate capture is ever written — nothing unmasked reaches scratch — and
memory stays constant in file size. The executor knows stages only through
``Stage`` and ``TwoPassStage``; which stages make a pipeline is decided above
it (``pktmask.runner``).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import BinaryIO, cast

from pktmask.capture.formats import Reader, make_writer, open_reader
from pktmask.core.output import AtomicOutput, StdoutOutput
from pktmask.core.pipeline import loop
from pktmask.core.pipeline.helper import Helper, fork_helper
from pktmask.core.pipeline.plan import SERIAL, STREAMED, PassPlan, plan_passes
from pktmask.core.pipeline.stage import FileContext, Stage, TwoPassStage
from pktmask.core.pipeline.stream import StreamFeed, StreamInput
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
# a partial output in existence, instead of guessing with sleeps.
PAUSE_ENV = "PKTMASK_TEST_PAUSE"
# Set (by batch runs, whose workers already use every core) to run pre-passes in-process.
SERIAL_ENV = "PKTMASK_SERIAL"


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


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except (OSError, ValueError):
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


class FileRun:
    """One capture being processed: its names, input, OUTPUT, result and progress.

    Everything that lives for one file lives here, never on the executor.
    """

    def __init__(self, input_path: Path, name: str, stream: StreamInput | None, output: str,
                 out: AtomicOutput | StdoutOutput, manager: TempFileManager, progress=None):
        self.input_path = input_path
        self.name = name
        self.stream = stream
        self.out = out
        self.manager = manager
        self.progress = progress  # progress(done, total) in bytes, or None
        self.result = FileResult(input=name, output=output)
        self._total = 0
        self._done = 0
        self._reads = 1

    def context(self) -> FileContext:
        return FileContext(self.name, self.manager)

    def expect_reads(self, reads: int) -> None:
        """This process will read the input ``reads`` times (progress counts each)."""
        self._reads = reads
        try:
            self._total = 0 if self.stream is not None else os.stat(self.input_path).st_size * reads
        except OSError:
            self._total = 0

    def open_input(self) -> BinaryIO:
        """The input to read once more: the stream itself, or the file opened again."""
        if self.stream is not None:
            return cast(BinaryIO, self.stream)
        try:
            return open(self.input_path, "rb", buffering=0)  # noqa: SIM115 - closed by close_input
        except OSError as exc:
            raise InputError(f"cannot open: {exc.strerror}", self.name) from exc

    def close_input(self, f: BinaryIO) -> None:
        """Close what ``open_input`` opened (a stream is its owner's to close)."""
        if f is not self.stream:
            f.close()

    def report_progress(self, reader: Reader) -> None:
        if self.progress is not None and self._total:
            try:
                size = os.fstat(reader.cb.f.fileno()).st_size or 1
            except (OSError, AttributeError, ValueError):
                return
            share = self._total // max(1, self._reads)
            self.progress(self._done + share * min(reader.cb.position(), size) // size, self._total)

    def pass_done(self) -> None:
        self._done += self._total // self._reads

    def count_input(self, reader: Reader) -> None:
        result = self.result
        result.packets_in = reader.packets
        result.metadata_dropped = reader.metadata_dropped
        if reader.truncated:
            result.truncated = True
            result.warnings.append("capture ends in a truncated record; all complete records were processed")


class PipelineExecutor:
    """Runs a fixed list of stages over captures; one instance per run."""

    def __init__(self, stages: list[Stage], manager: TempFileManager | None = None):
        self.stages = stages
        self.manager = manager or get_temp_file_manager()
        plan_passes(stages)  # refuse an impossible pipeline now, not at the first file

    def plan(self, streamed: bool) -> PassPlan:
        """The pass plan for one input (``streamed``: it can be read only once)."""
        parallel = (os.cpu_count() or 1) > 1 and not os.environ.get(SERIAL_ENV)
        return plan_passes(self.stages, streamed=streamed, parallel=parallel)

    def run_file(self, input_path: str | Path, output_path: str | Path, force: bool = False, *,
                 display_name: str | None = None, progress=None, stream=None) -> FileResult:
        """Sanitize one capture into OUTPUT atomically (``-`` streams to stdout); returns its counters.

        ``display_name`` names the input in messages (e.g. ``<stdin>``);
        ``stream`` is a ``StreamInput`` read (once) instead of ``input_path``
        (stdin, a FIFO); ``progress(done, total)`` is called now and then
        with byte counts. Raises PktmaskError subclasses; on any failure a
        file OUTPUT is untouched and no partial file or scratch of this file
        remains.
        """
        input_path = Path(input_path)
        name = display_name or str(input_path)
        started = time.monotonic()
        if stream is None and not input_path.exists():
            raise InputError("no such file", name)
        out: AtomicOutput | StdoutOutput
        to_stdout = str(output_path) == "-"
        output = "-" if to_stdout else str(output_path)
        if to_stdout:
            out = StdoutOutput()
        else:
            output_path = Path(output_path)
            if stream is None:
                check_paths(input_path, output_path, force)
            elif _same_file(stream.fileno(), output_path):
                raise SameFileError("OUTPUT is the file on standard input (never overwritten)", str(output_path))
            elif output_path.exists() and not force:
                raise OutputExistsError("OUTPUT exists (use --force to replace it)", str(output_path))
            if not output_path.parent.is_dir():
                raise OutputError("output directory does not exist", str(output_path.parent))
            out = AtomicOutput(output_path, self.manager, force)
        run = FileRun(input_path, name, stream, output, out, self.manager, progress)
        try:
            self._run(run)
            out.commit()
        except BaseException:
            out.abort()
            raise
        run.result.ok = True
        run.result.seconds = time.monotonic() - started
        return run.result

    def _run(self, run: FileRun) -> None:
        """Plan, fork the pre-pass helper if it runs alongside, run the final pass, reap."""
        plan = self.plan(streamed=run.stream is not None)
        run.expect_reads(2 if plan.mode == SERIAL else 1)
        helper = self._fork_prepass(run, plan) if plan.helper else None
        try:
            if plan.mode == SERIAL:
                self._prepass_here(run, plan)
            self._final_pass(run, plan, helper)
            if helper is not None:
                helper.reap()
        finally:
            if helper is not None:
                helper.close()

    # ---- the pre-pass ---------------------------------------------------------------
    def _prepass_here(self, run: FileRun, plan: PassPlan) -> None:
        """Run the pre-pass in this process; its decisions wait in the stage's scratch."""
        two_pass = plan.two_pass
        assert two_pass is not None  # a serial plan has its two-pass stage
        ctx = run.context()
        for stage in plan.stages:
            stage.start(ctx)
        f = run.open_input()
        try:
            reader = open_reader(f, run.name)
            loop.prepass(reader, plan.prepass, two_pass, lambda: run.report_progress(reader))
        finally:
            run.close_input(f)
        two_pass.end_prepass()
        run.pass_done()
        for stage in plan.prepass:
            stage.start(ctx)  # they saw these packets: the final pass counts their drops afresh

    def _fork_prepass(self, run: FileRun, plan: PassPlan) -> Helper:
        """Start the helper that runs the pre-pass alongside the final pass.

        For a once-only input it reads the stream itself (this process never
        does) and forwards every byte. This process does not open the input to
        learn anything before: stages need no format to start.
        """
        streamed = plan.mode == STREAMED
        helper = fork_helper(self.manager, run.name, lambda dec_w, raw_w: self._prepass_child(run, plan, dec_w, raw_w),
                             forward=streamed)
        if streamed:
            assert run.stream is not None  # a streamed plan has its stream
            run.stream.close()  # the helper reads it; this process never does
        return helper

    @staticmethod
    def _prepass_child(run: FileRun, plan: PassPlan, dec_w: int, raw_w: int) -> int:
        """In the helper: run the pre-pass, its decisions into ``dec_w``; returns the exit status.

        A failure is sent through the decision pipe with its class (the final
        pass raises it); the status only says whether the pre-pass succeeded.
        """
        two_pass = plan.two_pass
        assert two_pass is not None  # a helper runs only for a pre-pass
        producing = False
        try:
            ctx = run.context()
            for stage in (*plan.prepass, two_pass):
                stage.start(ctx)
            two_pass.produce_to(dec_w)
            producing = True
            if raw_w >= 0:
                assert run.stream is not None
                src = StreamInput(run.stream.fileno(), run.name, tee_fd=raw_w)
                src.on_stall = two_pass.flush_decisions  # a live input: the final pass must not wait
                f = cast(BinaryIO, src)
            else:
                f = run.open_input()
            loop.prepass(open_reader(f, run.name), plan.prepass, two_pass, lambda: None)
            two_pass.end_prepass()
            return 0
        except BaseException as exc:  # noqa: BLE001 - reported through the pipe, then exit
            if producing:
                try:
                    two_pass.send_failure(exc)
                except BaseException:  # noqa: BLE001 - the final pass sees the pipe end instead
                    pass
            return exc.exit_code if isinstance(exc, PktmaskError) else 1

    # ---- the final pass -------------------------------------------------------------
    def _final_pass(self, run: FileRun, plan: PassPlan, helper: Helper | None) -> None:
        """Read the input (or the helper's forwarded capture) once more and write OUTPUT."""
        if plan.mode != SERIAL:  # a serial pre-pass started them
            ctx = run.context()
            for stage in plan.stages:
                stage.start(ctx)
        if helper is not None:
            assert plan.two_pass is not None  # a helper runs only for a pre-pass
            plan.two_pass.consume_from(helper.take_decisions())
        f = cast(BinaryIO, helper.feed) if helper is not None and helper.feed is not None else run.open_input()
        try:
            reader = open_reader(f, run.name)
            run.result.format = reader.format
            run.result.packets_out = self._write(run, reader, plan)
            run.pass_done()
            run.count_input(reader)
        finally:
            if helper is None or helper.feed is None:
                run.close_input(f)
        for stage in plan.stages:
            run.result.add(stage.finish())

    def _write(self, run: FileRun, reader: Reader, plan: PassPlan) -> int:
        """Run the final pass into OUTPUT; returns the number of packets written.

        With a two-pass stage, the pre-pass stages' drop decisions are read
        back from it (``replay``) instead of being made again, and those
        stages do not run here.
        """
        out = run.out
        f = out.open()
        pause = float(os.environ.get(PAUSE_ENV) or 0)
        try:
            writer = make_writer(f, reader)
            source = reader.cb.f
            if isinstance(source, StreamInput | StreamFeed):
                # A live stream: what is held goes out whenever the input has nothing ready.
                def stall() -> None:
                    writer.flush()
                    f.flush()

                source.on_stall = stall

            def tick() -> None:
                run.report_progress(reader)
                out.checkpoint()

            first = (lambda: self._test_pause(f, pause)) if pause else None
            observer: TwoPassStage | None = plan.two_pass
            written = loop.final(reader, plan.final, writer, observer, plan.prepass, tick, first)
            writer.close()
        except OSError as exc:
            raise from_oserror(exc, str(out.target)) from exc
        return written

    def _test_pause(self, f, seconds: float) -> None:
        f.flush()
        # Block SIGUSR1 first so a resume sent right after the message is not lost.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
        sys.stderr.write(f"pktmask: test pause ({seconds:g}s, SIGUSR1 resumes); run root {self.manager.run_root}\n")
        sys.stderr.flush()
        signal.sigtimedwait({signal.SIGUSR1}, seconds)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
