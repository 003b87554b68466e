"""The small contract every pipeline stage follows."""

from __future__ import annotations

from pktmask.capture.packet import Packet


class FileContext:
    """What a stage may know about the capture being processed."""

    __slots__ = ("name", "format", "manager")

    def __init__(self, name: str, fmt: str, manager):
        self.name = name
        self.format = fmt
        self.manager = manager  # the TempFileManager: the only source of scratch space


class Stage:
    """A per-packet transformation over one capture at a time.

    The executor calls ``start`` once per file, then (only when
    ``needs_prepass``) ``observe`` for every packet the stage will later see
    and ``end_prepass``, then ``process`` for each packet in order, then
    ``finish``. A stage that processes packets in a pre-pass of another stage
    gets ``rewind`` before the final pass. ``process`` returns the packet (possibly with new ``data`` of
    the same length) or None to drop it. Stages raise PktmaskError subclasses
    on failure; they never swallow errors. Scratch space comes only from
    ``ctx.manager``; a stage deletes only what it created.
    """

    name = "stage"
    needs_prepass = False
    # True if this stage's changes cannot affect what a later two-pass stage
    # decides in its pre-pass, so the pre-pass may skip it (read the docs of
    # plan_passes); stages that drop packets must never claim this.
    prepass_transparent = False

    def start(self, ctx: FileContext) -> None:
        """Reset per-file state."""

    def rewind(self) -> None:
        """The same packets come again in a later pass: forget what the earlier pass saw."""

    def observe(self, pkt: Packet) -> None:
        """Look at a packet during the pre-pass (two-pass stages only)."""

    def observe_drop(self, index: int) -> None:
        """Pre-pass: stage ``index`` of the pre-pass chain dropped this packet (two-pass stages)."""

    def end_prepass(self) -> None:
        """The pre-pass has seen every packet."""

    def replay(self, pkt: Packet) -> int:
        """Final pass: -1 to keep ``pkt``, or the pre-pass index of the stage that dropped it.

        Only an observer that records its pre-pass verdicts implements this.
        """
        raise NotImplementedError(f"stage {self.name} records no pre-pass verdicts")

    def process(self, pkt: Packet) -> Packet | None:
        """Return the packet to keep (possibly changed), or None to drop it."""
        return pkt

    def replayed_drop(self) -> None:
        """Final pass: this stage dropped the packet in the pre-pass; count it, do not run.

        Only stages that run in a pre-pass (see ``prepass_transparent``) get
        this: their decisions are deterministic, so they are made once.
        """
        raise NotImplementedError(f"stage {self.name} cannot replay its pre-pass decisions")

    def finish(self) -> dict[str, int]:
        """Return this file's counters for the report, and drop per-file state."""
        return {}
