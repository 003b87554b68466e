"""PipelineExecutor: runs the enabled stages over one capture, streaming, into an atomic OUTPUT.

All stages run fused in one final pass over the input that writes OUTPUT.
A stage that needs a pre-pass (masking builds its keep ranges first) gets
one more read of the input before that: the stages ahead of it that change
which packets exist (dedup) run there too, so it observes exactly the packet
sequence it will later process; stages whose changes cannot matter to it
(``prepass_transparent``: anonymization rewrites addresses bijectively) are
skipped. No intermediate capture is ever written — nothing unmasked reaches
scratch — and memory stays constant in file size.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import BinaryIO, Protocol, cast

from pktmask.capture.formats import Reader, make_writer, open_reader
from pktmask.config import MaskConfig
from pktmask.core.output import AtomicOutput, StdoutOutput
from pktmask.core.pipeline import loop
from pktmask.core.pipeline.stage import FileContext, Stage
from pktmask.core.pipeline.stream import StreamFeed, StreamInput
from pktmask.core.process import become_helper, block_signals, die_with_parent, grow_pipe
from pktmask.core.temp_file_manager import TempFileManager, get_temp_file_manager
from pktmask.errors import (
    InputError,
    OutputError,
    OutputExistsError,
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


class _Piped(Protocol):
    """A pre-pass observer that exchanges its decisions through a pipe (MaskingStage)."""

    def attach_pipe(self, read_fd: int = -1, write_fd: int = -1) -> None: ...

    def send_failure(self, exc: BaseException) -> None: ...


def _piped(observer: Stage) -> _Piped:
    return cast(_Piped, observer)


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except (OSError, ValueError):
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _flush_decisions(observer: Stage) -> None:
    """Hand the pre-pass's buffered decisions to the final pass now (a live input is waiting)."""
    flush = getattr(observer, "flush_decisions", None)
    if flush is not None:
        flush()
        return
    stream = getattr(observer, "_stream", None)  # MaskingStage's DecisionStream (no public hook yet)
    if stream is not None:
        stream.flush()


def plan_passes(stages: list[Stage]) -> list[tuple[list[Stage], Stage | None]]:
    """Plan the reads of the input: (stages that process, stage that observes) per pass.

    Every pass but the last is a pre-pass for one two-pass stage; the last
    runs every stage and writes the output.
    """
    passes: list[tuple[list[Stage], Stage | None]] = []
    for i, stage in enumerate(stages):
        if stage.needs_prepass:
            passes.append(([s for s in stages[:i] if not s.prepass_transparent], stage))
    passes.append((list(stages), None))
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

    @property
    def reads_twice(self) -> bool:
        """True when the input is read more than once (a stream must then be spooled first)."""
        return len(plan_passes(self.stages)) > 1

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
        to_stdout = str(output_path) == "-"
        result = FileResult(input=name, output="-" if to_stdout else str(output_path))
        if stream is None and not input_path.exists():
            raise InputError("no such file", name)
        out: AtomicOutput | StdoutOutput
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
        self._name = name
        self._progress = progress
        try:
            self._run(input_path, out, result, stream)
            out.commit()
        except BaseException:
            out.abort()
            raise
        result.ok = True
        result.seconds = time.monotonic() - started
        return result

    def _run(self, input_path: Path, out, result: FileResult, stream=None) -> None:
        passes = plan_passes(self.stages)
        if len(passes) > 2:
            raise ValueError("at most one stage may need a pre-pass")
        if stream is not None and len(passes) == 2:
            self._run_stream(stream, out, result, passes)
            return
        pipelined = (len(passes) == 2 and stream is None and (os.cpu_count() or 1) > 1
                     and not os.environ.get(SERIAL_ENV) and hasattr(passes[0][1], "attach_pipe"))
        reads = 1 if pipelined else len(passes)  # reads of the input this process makes
        try:
            self._total = 0 if stream is not None else os.stat(input_path).st_size * reads
        except OSError:
            self._total = 0
        self._done = 0
        self._passes = reads
        child = None
        ran: set[int] = set()
        # With one pre-pass, its drop decisions are replayed in the final pass.
        replay = (passes[0][1], passes[0][0]) if len(passes) == 2 else None
        try:
            for index, (procs, observer) in enumerate(passes):
                last = index == len(passes) - 1
                if child is not None and not last:
                    continue  # that pre-pass runs in the child
                f = cast(BinaryIO, stream) if stream is not None else self._open(input_path)
                try:
                    reader = open_reader(f, self._name)
                    if index == 0:
                        ctx = FileContext(self._name, reader.format, self.manager)
                        for stage in self.stages:
                            stage.start(ctx)
                        result.format = reader.format
                        if pipelined:
                            assert observer is not None  # a pre-pass has its observer
                            child = self._fork_prepass(input_path, procs, observer)
                            if not last:
                                continue
                    for stage in procs:
                        if id(stage) in ran:
                            stage.rewind()  # it saw these packets in an earlier pass
                        ran.add(id(stage))
                    if last:
                        result.packets_out = self._pass(reader, procs, out, replay)
                    else:
                        assert observer is not None
                        self._prepass(reader, procs, observer)
                        observer.end_prepass()
                    self._done += self._total // reads
                    if last:
                        self._count_input(reader, result)
                finally:
                    if stream is None:
                        f.close()
            for stage in self.stages:
                result.add(stage.finish())
            if child is not None:
                self._reap(child, stop=False)
                child = None
        finally:
            if child is not None:
                self._reap(child, stop=True)

    def _open(self, input_path: Path):
        try:
            return open(input_path, "rb", buffering=0)
        except OSError as exc:
            raise InputError(f"cannot open: {exc.strerror}", self._name) from exc

    def _fork_prepass(self, input_path: Path, procs: list[Stage], observer: Stage) -> int:
        """Run the pre-pass in a child process that streams its decisions through a pipe.

        With two cores the pre-pass and the final pass then run side by side.
        The child writes nothing but the pipe, dies with us (PR_SET_PDEATHSIG),
        reports a failure through the pipe and always ends with ``os._exit``.
        It owns nothing, so any signal kills it at once (default actions; the
        TempFileManager SIGKILLs it before cleaning up). Returns the child's
        pid, registered as a helper.
        """
        rfd, wfd = os.pipe()
        grow_pipe(wfd)
        parent = os.getpid()
        saved = block_signals()  # until the child is registered (parent) or on default actions (child)
        try:
            pid = os.fork()
        except BaseException:
            signal.pthread_sigmask(signal.SIG_SETMASK, saved)
            raise
        if pid == 0:
            code = 0
            try:
                become_helper(saved)
                os.close(rfd)
                die_with_parent(parent)
                _piped(observer).attach_pipe(write_fd=wfd)
                self._progress = None
                with self._open(input_path) as f:
                    self._prepass(open_reader(f, self._name), procs, observer)
                observer.end_prepass()
            except BaseException as exc:  # noqa: BLE001 - reported through the pipe, then exit
                code = getattr(exc, "exit_code", 1)
                try:
                    _piped(observer).send_failure(exc)
                except BaseException:  # noqa: BLE001 - the parent sees the pipe end instead
                    pass
            finally:
                os._exit(code)
        try:
            os.close(wfd)
            self.manager.register_child(pid, helper=True)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, saved)
        _piped(observer).attach_pipe(read_fd=rfd)
        return pid

    def _run_stream(self, stream: StreamInput, out, result: FileResult, passes: list) -> None:
        """A once-only input with a pre-pass: the process that reads it runs the pre-pass.

        A forked helper reads ``stream``, runs the pre-pass and forwards every
        byte it read and its decisions through two pipes; this process runs the
        final pass on the forwarded capture (``StreamFeed``). Nothing reaches
        scratch; memory is bounded by what the tracker holds back.
        """
        (pre_procs, observer), (procs, _none) = passes
        raw_r, raw_w = os.pipe()
        dec_r, dec_w = os.pipe()
        grow_pipe(raw_w)
        grow_pipe(dec_w)
        parent = os.getpid()
        saved = block_signals()
        try:
            pid = os.fork()
        except BaseException:
            signal.pthread_sigmask(signal.SIG_SETMASK, saved)
            for fd in (raw_r, raw_w, dec_r, dec_w):
                os.close(fd)
            raise
        if pid == 0:
            code = 0
            try:
                become_helper(saved)
                os.close(raw_r)
                os.close(dec_r)
                die_with_parent(parent)
                self._stream_prepass(StreamInput(stream.fileno(), self._name, tee_fd=raw_w), dec_w,
                                     pre_procs, observer)
            except BaseException as exc:  # noqa: BLE001 - reported through the pipe, then exit
                code = getattr(exc, "exit_code", 1)
                try:
                    _piped(observer).send_failure(exc)
                except BaseException:  # noqa: BLE001 - the parent sees the pipe end instead
                    pass
            finally:
                os._exit(code)
        try:
            os.close(raw_w)
            os.close(dec_w)
            self.manager.register_child(pid, helper=True)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, saved)
        stream.close()  # the helper reads it; this process never does
        feed = StreamFeed(raw_r, dec_r, self._name)
        child: int | None = pid
        attached = False
        try:
            reader = open_reader(cast(BinaryIO, feed), self._name)
            result.format = reader.format
            ctx = FileContext(self._name, reader.format, self.manager)
            for stage in self.stages:
                stage.start(ctx)
            _piped(observer).attach_pipe(read_fd=dec_r)
            attached = True
            result.packets_out = self._pass(reader, procs, out, (observer, pre_procs))
            self._count_input(reader, result)
            for stage in self.stages:
                result.add(stage.finish())
            self._reap(pid, stop=False)
            child = None
        finally:
            if child is not None:
                self._reap(child, stop=True)
            feed.close()
            if not attached:
                os.close(dec_r)

    def _stream_prepass(self, src: StreamInput, dec_w: int, procs: list[Stage], observer: Stage) -> None:
        """In the helper: read the stream once, forward it, and run the pre-pass over it."""
        self._progress = None
        reader = open_reader(cast(BinaryIO, src), self._name)
        ctx = FileContext(self._name, reader.format, self.manager)
        for stage in self.stages:
            stage.start(ctx)
        _piped(observer).attach_pipe(write_fd=dec_w)
        src.on_stall = lambda: _flush_decisions(observer)
        self._prepass(reader, procs, observer)
        observer.end_prepass()

    @staticmethod
    def _count_input(reader: Reader, result: FileResult) -> None:
        result.packets_in = reader.packets
        result.metadata_dropped = reader.metadata_dropped
        if reader.truncated:
            result.truncated = True
            result.warnings.append("capture ends in a truncated record; all complete records were processed")

    def _reap(self, pid: int, stop: bool) -> None:
        """Wait for the pre-pass child; ``stop`` kills it first (the final pass failed)."""
        try:
            if stop:
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)  # after its trailer it only has to exit
        except (ProcessLookupError, ChildProcessError):
            pass
        self.manager.unregister_child(pid)

    def _report_progress(self, reader: Reader) -> None:
        if self._progress is not None and self._total:
            try:
                size = os.fstat(reader.cb.f.fileno()).st_size or 1
            except (OSError, AttributeError, ValueError):
                return
            share = self._total // max(1, self._passes)
            self._progress(self._done + share * min(reader.cb.position(), size) // size, self._total)

    def _prepass(self, reader: Reader, procs: list[Stage], observer: Stage) -> None:
        """Read the input once more so ``observer`` sees the packets it will later process.

        A packet a stage drops here is reported to the observer
        (``observe_drop``), so the final pass can replay that decision.
        """
        loop.prepass(reader, procs, observer, lambda: self._report_progress(reader))

    def _pass(self, reader: Reader, procs: list[Stage], out, replay: tuple | None = None) -> int:
        """Run the final pass into OUTPUT; returns the number of packets written.

        With ``replay`` = (observer, pre-pass stages), the pre-pass stages'
        drop decisions are read back from the observer instead of being
        computed again, and those stages do not run here.
        """
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
            observer, droppers = replay if replay is not None else (None, [])
            procs = [s for s in procs if s not in droppers]

            def tick() -> None:
                self._report_progress(reader)
                out.checkpoint()

            first = (lambda: self._test_pause(f, pause)) if pause else None
            written = loop.final(reader, procs, writer.write, observer, droppers, tick, first)
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
