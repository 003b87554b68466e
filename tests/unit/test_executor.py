"""The executor: pass planning, the straight-line order of a file's passes, failures across processes.

Tests that need stages of their own (recording fakes) subclass the compiled
``Stage`` classes, which only the pure build allows: they are skipped on the
compiled build, where the tests with the real stages still run.
"""

from __future__ import annotations

import os
import struct

import pytest

import pktmask
from captures import mixed_frames, write_pcap
from pktmask.capture.packet import Packet
from pktmask.core.pipeline import executor as executor_module
from pktmask.core.pipeline.executor import SERIAL_ENV, FileRun, PipelineExecutor
from pktmask.core.pipeline.helper import fork_helper
from pktmask.core.pipeline.plan import FORKED, SERIAL, SINGLE, STREAMED, plan_passes
from pktmask.core.pipeline.stage import FileContext, Stage, TwoPassStage
from pktmask.errors import (
    InputError,
    InternalError,
    PktmaskError,
    UnsupportedLinkTypeError,
    encode_error,
)
from pktmask.stages.anonymize import AnonymizationStage
from pktmask.stages.dedup import DeduplicationStage
from pktmask.stages.mask import MaskingStage

KEY = bytes(range(32))
pure_only = pytest.mark.skipif(pktmask.build() == "compiled",
                               reason="interpreted subclasses of the compiled Stage classes")




@pytest.fixture
def capture(tmp_path):
    frames = mixed_frames()
    return write_pcap(tmp_path / "in.pcap", frames + frames[:3])  # three duplicates for dedup


def _pipeline():
    return DeduplicationStage(), AnonymizationStage(KEY, masking=True), MaskingStage()


# ---------------------------------------------------------------- planning


def test_plan_without_a_two_pass_stage_is_one_read():
    dedup, anon = DeduplicationStage(), AnonymizationStage(KEY)
    plan = plan_passes([dedup, anon], streamed=True, parallel=True)
    assert plan.mode == SINGLE and plan.two_pass is None and plan.prepass == [] and plan.final == [dedup, anon]
    assert not plan.helper


def test_plan_puts_the_droppers_ahead_in_the_prepass_and_leaves_transparent_stages_out():
    dedup, anon, mask = _pipeline()
    stages = [dedup, anon, mask]
    assert plan_passes(stages).mode == SERIAL
    assert plan_passes(stages, parallel=True).mode == FORKED
    assert plan_passes(stages, streamed=True).mode == STREAMED
    assert plan_passes(stages, streamed=True, parallel=True).mode == STREAMED
    plan = plan_passes(stages, parallel=True)
    assert plan.two_pass is mask and plan.prepass == [dedup] and plan.final == [anon, mask]
    assert plan.stages == stages and plan.helper
    # A stage after the two-pass stage never runs in its pre-pass.
    later = DeduplicationStage()
    assert plan_passes([anon, mask, later]).prepass == []


def test_the_anonymizer_hands_off_only_to_the_masker_next():
    """Before the masker, the anonymizer leaves the original bytes and hands over its rewrite:
    no stage may come between them, and it may not be last."""
    dedup, anon, mask = _pipeline()
    assert anon.hands_off and mask.takes_hand_off and not dedup.takes_hand_off
    plan_passes([dedup, anon, mask])  # the builder's order
    for stages in ([anon, dedup, mask], [anon], [dedup, anon]):
        with pytest.raises(ValueError, match="hands its work to the next stage"):
            plan_passes(stages)
        with pytest.raises(ValueError, match="hands its work"):
            PipelineExecutor(stages)
    alone = AnonymizationStage(KEY)  # without masking it finishes its own frames
    assert not alone.hands_off
    plan_passes([alone, dedup, mask])


def test_at_most_one_two_pass_stage():
    with pytest.raises(ValueError, match="at most one"):
        plan_passes([MaskingStage(), MaskingStage()])
    with pytest.raises(ValueError):
        PipelineExecutor([MaskingStage(), MaskingStage()])


def test_executor_plans_serial_with_one_core_or_the_switch(monkeypatch, manager):
    ex = PipelineExecutor(list(_pipeline()), manager)
    monkeypatch.setattr(executor_module.os, "cpu_count", lambda: 4)
    monkeypatch.delenv(SERIAL_ENV, raising=False)
    assert ex.plan(streamed=False).mode == FORKED
    monkeypatch.setenv(SERIAL_ENV, "1")
    assert ex.plan(streamed=False).mode == SERIAL
    assert ex.plan(streamed=True).mode == STREAMED
    monkeypatch.delenv(SERIAL_ENV)
    monkeypatch.setattr(executor_module.os, "cpu_count", lambda: 1)
    assert ex.plan(streamed=False).mode == SERIAL


# ---------------------------------------------------------------- real stages, every mode


def _run(monkeypatch, manager, capture, out, mode: str) -> tuple[dict, int]:
    """Run the real pipeline in ``mode``; returns the counters and how often this process opened INPUT."""
    monkeypatch.setattr(executor_module.os, "cpu_count", lambda: 1 if mode == SERIAL else 2)
    monkeypatch.delenv(SERIAL_ENV, raising=False)
    opened = []
    real_open = FileRun.open_input

    def counting(self):
        opened.append(os.getpid())
        return real_open(self)

    monkeypatch.setattr(FileRun, "open_input", counting)
    result = PipelineExecutor(list(_pipeline()), manager).run_file(capture, out)
    return vars(result), len(opened)


def test_forked_and_serial_runs_agree_and_the_parent_reads_the_input_once(monkeypatch, manager, capture, tmp_path):
    forked, forked_opens = _run(monkeypatch, manager, capture, tmp_path / "forked.pcap", FORKED)
    serial, serial_opens = _run(monkeypatch, manager, capture, tmp_path / "serial.pcap", SERIAL)
    assert (tmp_path / "forked.pcap").read_bytes() == (tmp_path / "serial.pcap").read_bytes()
    assert forked_opens == 1  # the final pass only: the helper learns the format for itself
    assert serial_opens == 2  # pre-pass, then final pass
    for key in ("packets_in", "packets_out", "duplicates_removed", "payload_bytes_zeroed", "format"):
        assert forked[key] == serial[key], key
    assert forked["duplicates_removed"] >= 3 and forked["packets_out"] == forked["packets_in"] - forked["duplicates_removed"]


# ---------------------------------------------------------------- failures across the process boundary


def _packet() -> Packet:
    frame = bytes(12) + b"\x08\x00" + bytes(20)
    return Packet(frame, 1, 0, 0, len(frame))


def test_a_helper_failure_arrives_with_its_class(manager):
    """The real masking stage across a real helper process: the error keeps class, message and file."""
    stage = MaskingStage()
    ctx = FileContext("in.pcap", manager)

    def body(dec_w: int, _raw_w: int) -> int:
        stage.start(ctx)
        stage.produce_to(dec_w)
        stage.send_failure(UnsupportedLinkTypeError("unsupported link type 147", "in.pcap"))
        return 1

    helper = fork_helper(manager, "in.pcap", body, forward=False)
    try:
        stage.start(ctx)
        stage.consume_from(helper.take_decisions())
        with pytest.raises(UnsupportedLinkTypeError) as info:
            stage.replay(_packet())
        helper.reap()
    finally:
        helper.close()
    assert str(info.value) == "in.pcap: unsupported link type 147"
    assert info.value.exit_code == 1 and info.value.path == "in.pcap"
    assert "exit_code" not in vars(info.value)  # the class's exit code, none patched onto the instance


def test_a_helper_that_vanishes_is_reported(manager):
    stage = MaskingStage()
    ctx = FileContext("in.pcap", manager)
    helper = fork_helper(manager, "in.pcap", lambda _d, _r: os._exit(3), forward=False)
    try:
        stage.start(ctx)
        stage.consume_from(helper.take_decisions())
        with pytest.raises(PktmaskError, match="ended unexpectedly"):
            stage.replay(_packet())
        helper.reap()
    finally:
        helper.close()


def test_the_prepass_failure_of_a_forked_run_is_the_error(monkeypatch, manager, tmp_path):
    """A capture the pre-pass refuses midway (unsupported link type): the run raises that class."""
    frames = [bytes(12) + b"\x08\x00" + bytes(40)] * 50
    src = tmp_path / "bad.pcap"
    good = write_pcap(tmp_path / "g.pcap", frames).read_bytes()
    # Same records, link type USER0 (147): no stage understands it.
    src.write_bytes(good[:20] + struct.pack("<I", 147) + good[24:])
    for mode in (FORKED, SERIAL):
        monkeypatch.setattr(executor_module.os, "cpu_count", lambda m=mode: 2 if m == FORKED else 1)
        with pytest.raises(UnsupportedLinkTypeError):
            PipelineExecutor(list(_pipeline()), manager).run_file(src, tmp_path / f"out-{mode}.pcap")
        assert not (tmp_path / f"out-{mode}.pcap").exists()


# ---------------------------------------------------------------- recording fakes (pure build)


class _Recorder(Stage):
    def __init__(self, name: str, log: list, drop_every: int = 0, transparent: bool = False):
        self.name = name
        self.log = log
        self.drop_every = drop_every
        self.prepass_transparent = transparent
        self.seen = 0

    def start(self, ctx):
        self.seen = 0
        self.log.append(("start", self.name))

    def process(self, pkt):
        self.seen += 1
        self.log.append(("process", self.name))
        if self.drop_every and self.seen % self.drop_every == 0:
            return None
        return pkt

    def replayed_drop(self):
        self.log.append(("replayed_drop", self.name))

    def finish(self):
        self.log.append(("finish", self.name))
        return {}


class _PipeTwoPass(TwoPassStage):
    """Decisions: one byte per packet (0xFF kept, else the dropping stage's index), then 'E' or a failure."""

    name = "two"

    def __init__(self, log: list, fail_at: int = 0, error: BaseException | None = None):
        self.log = log
        self.fail_at = fail_at
        self.error = error
        self.parent = os.getpid()

    def start(self, ctx):
        self.log.append(("start", self.name))
        self.out = bytearray()
        self.fd = -1
        self.read = b""
        self.count = 0

    def produce_to(self, write_fd):
        self.fd = write_fd

    def consume_from(self, read_fd):
        self.fd = read_fd

    def observe(self, pkt):
        self.count += 1
        if self.fail_at and self.count == self.fail_at and os.getpid() != self.parent:
            raise self.error
        self.log.append(("observe", self.name))
        self.out += b"\xff"

    def observe_drop(self, index):
        self.count += 1
        self.log.append(("observe_drop", self.name))
        self.out.append(index)

    def flush_decisions(self):
        pass

    def end_prepass(self):
        self.log.append(("end_prepass", self.name))
        self.out += b"E"
        if self.fd >= 0:
            os.write(self.fd, bytes(self.out))
            os.close(self.fd)
            self.fd = -1
            self.out = bytearray()

    def send_failure(self, exc):
        form = encode_error(exc, "x")
        os.write(self.fd, bytes(self.out) + b"F" + form)
        os.close(self.fd)

    def _next(self) -> bytes:
        if self.fd < 0:  # serial: the buffer is the channel
            b, self.out = bytes(self.out[:1]), self.out[1:]
            return b
        b = os.read(self.fd, 1)
        if b == b"F":
            from pktmask.errors import decode_error

            rest = b""
            while chunk := os.read(self.fd, 4096):
                rest += chunk
            raise decode_error(rest)
        return b

    def replay(self, pkt):
        self.log.append(("replay", self.name))
        b = self._next()
        assert b not in (b"", b"E"), "out of step"
        return -1 if b == b"\xff" else b[0]

    def process(self, pkt):
        self.log.append(("process", self.name))
        return pkt

    def finish(self):
        self.log.append(("finish", self.name))
        if self.fd >= 0:
            assert os.read(self.fd, 1) == b"E"
            os.close(self.fd)
        else:
            assert bytes(self.out) == b"E"
        return {}


def _fakes(log, **kw):
    return [_Recorder("dedup", log, drop_every=3), _Recorder("anon", log, transparent=True), _PipeTwoPass(log, **kw)]


@pure_only
def test_serial_pass_order_is_straight(monkeypatch, manager, tmp_path):
    monkeypatch.setenv(SERIAL_ENV, "1")
    src = write_pcap(tmp_path / "in.pcap", mixed_frames()[:6])
    log: list = []
    result = PipelineExecutor(_fakes(log), manager).run_file(src, tmp_path / "out.pcap")
    assert result.packets_in == 6 and result.packets_out == 4
    starts = [("start", "dedup"), ("start", "anon"), ("start", "two")]
    prepass = []
    for i in range(1, 7):
        prepass.append(("process", "dedup"))
        prepass.append(("observe_drop" if i % 3 == 0 else "observe", "two"))
    final = []
    for i in range(1, 7):
        final.append(("replay", "two"))
        if i % 3 == 0:
            final.append(("replayed_drop", "dedup"))
        else:
            final += [("process", "anon"), ("process", "two")]
    finish = [("finish", "dedup"), ("finish", "anon"), ("finish", "two")]
    assert log == [*starts, *prepass, ("end_prepass", "two"), ("start", "dedup"), *final, *finish]


@pure_only
def test_forked_parent_runs_only_the_final_pass(monkeypatch, manager, tmp_path):
    monkeypatch.setattr(executor_module.os, "cpu_count", lambda: 2)
    monkeypatch.delenv(SERIAL_ENV, raising=False)
    src = write_pcap(tmp_path / "in.pcap", mixed_frames()[:6])
    log: list = []
    result = PipelineExecutor(_fakes(log), manager).run_file(src, tmp_path / "out.pcap")
    assert result.packets_out == 4
    assert log[:3] == [("start", "dedup"), ("start", "anon"), ("start", "two")]
    assert {kind for kind, _ in log} == {"start", "replay", "replayed_drop", "process", "finish"}
    assert ("process", "dedup") not in log  # its decisions came from the helper


@pure_only
@pytest.mark.parametrize(("error", "cls", "text"), [
    (UnsupportedLinkTypeError("link type 147 unsupported", "in.pcap"), UnsupportedLinkTypeError,
     "in.pcap: link type 147 unsupported"),
    (InputError("corrupt record"), InputError, "corrupt record"),
    (ZeroDivisionError("boom"), InternalError, "x: internal error: ZeroDivisionError: boom"),
])
def test_a_forked_prepass_failure_reaches_the_parent_with_its_class(monkeypatch, manager, tmp_path, error, cls,
                                                                     text):
    monkeypatch.setattr(executor_module.os, "cpu_count", lambda: 2)
    monkeypatch.delenv(SERIAL_ENV, raising=False)
    src = write_pcap(tmp_path / "in.pcap", mixed_frames()[:6])
    log: list = []
    with pytest.raises(PktmaskError) as info:
        PipelineExecutor(_fakes(log, fail_at=4, error=error), manager).run_file(src, tmp_path / "out.pcap")
    assert type(info.value) is cls and str(info.value) == text
    assert not (tmp_path / "out.pcap").exists()
