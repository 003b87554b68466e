"""The per-packet loops of a pass, compiled with the stages (setup.py) so the loop costs no bytecode.

The executor owns everything around them (files, processes, errors); these
only move packets from a reader through the stages, and call ``tick`` every
4096 packets so the executor can report progress.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final

from pktmask.capture.packet import Packet, Writer
from pktmask.core.pipeline.stage import Stage, TwoPassStage

TICK: Final = 0xFFF  # tick after every 4096 packets (Final: compiled, a constant, not a lookup)


def prepass(reader: Iterable[Packet], stages: list[Stage], observer: TwoPassStage,
            tick: Callable[[], None]) -> None:
    """Run ``stages`` over every packet and show the survivors to ``observer``.

    A packet a stage drops is reported with that stage's index (``observe_drop``).
    """
    count = 0
    for pkt in reader:
        count += 1
        if not count & TICK:
            tick()
        for i, stage in enumerate(stages):
            kept = stage.process(pkt)
            if kept is None:
                observer.observe_drop(i)
                break
            pkt = kept
        else:
            observer.observe(pkt)


def final(reader: Iterable[Packet], stages: list[Stage], writer: Writer,
          observer: TwoPassStage | None, droppers: list[Stage], tick: Callable[[], None],
          first: Callable[[], None] | None) -> int:
    """Run ``stages`` over every packet and write the survivors; returns how many were written.

    With an ``observer``, its pre-pass verdicts are replayed first: a packet
    a pre-pass stage dropped is counted by that stage (``droppers``) and
    skipped. ``first`` is called once, after the first packet is written.
    """
    written = 0
    count = 0
    for pkt in reader:
        count += 1
        if not count & TICK:
            tick()
        if observer is not None:
            i = observer.replay(pkt)
            if i >= 0:
                droppers[i].replayed_drop()
                continue
        for stage in stages:
            kept = stage.process(pkt)
            if kept is None:
                break
            pkt = kept
        else:
            writer.write(pkt)
            written += 1
            if first is not None and written == 1:
                first()
    return written
