"""The contracts pipeline stages follow: ``Stage``, and ``TwoPassStage`` for a stage that needs a pre-pass.

The executor (``executor.py``) knows stages only through these classes; how
it plans the reads of a capture is described in docs/dev/ARCHITECTURE.md
("The stage interface").
"""

from __future__ import annotations

from pktmask.capture.packet import Packet


class FileContext:
    """What a stage may know about the capture being processed.

    Not its format: a stage is started before any process reads the capture
    (the reader owns the format; packets carry their link type).
    """

    __slots__ = ("name", "manager")

    def __init__(self, name: str, manager):
        self.name = name
        self.manager = manager  # the TempFileManager: the only source of scratch space


class Stage:
    """A per-packet transformation over one capture at a time.

    Per file, in each process that runs it, the executor calls ``start``,
    then ``process`` for each packet in order, then (final pass only)
    ``finish``. ``process`` returns the packet (possibly with new ``data`` of
    the same length) or None to drop it. Stages raise PktmaskError subclasses
    on failure; they never swallow errors. Scratch space comes only from
    ``ctx.manager`` (its scoped helpers); a stage deletes only what it created.

    A stage placed before a ``TwoPassStage`` runs in that stage's pre-pass
    unless it is ``prepass_transparent``. Its decisions are then made once:
    in the final pass it does not run, and ``replayed_drop`` counts each
    packet it dropped in the pre-pass. When the pre-pass ran in this process,
    the stage is started again before the final pass.
    """

    name = "stage"
    # True if this stage's changes cannot affect what a later two-pass stage
    # decides in its pre-pass, so the pre-pass skips it (see ``plan_passes``);
    # stages that drop packets must never claim this.
    prepass_transparent = False
    # A stage that leaves part of its work to the next one, which must take it over
    # (``takes_hand_off``): the anonymizer before the masker hands over its address
    # rewrite (``Packet.patch``) and its walk (``Packet.walk``) and leaves the original
    # bytes in place. ``plan_passes`` refuses any other stage between them.
    hands_off = False
    takes_hand_off = False

    def start(self, ctx: FileContext) -> None:
        """Reset per-file state."""

    def process(self, pkt: Packet) -> Packet | None:
        """Return the packet to keep (possibly changed), or None to drop it."""
        return pkt

    def replayed_drop(self) -> None:
        """Final pass: this stage dropped the packet in the pre-pass; count it, do not run.

        Every stage that may run in a pre-pass (not ``prepass_transparent``)
        and drops packets implements this.
        """
        raise NotImplementedError(f"stage {self.name} cannot replay its pre-pass decisions")

    def finish(self) -> dict[str, int]:
        """Return this file's counters for the report, and drop per-file state."""
        return {}


class TwoPassStage(Stage):
    """A stage that decides from the whole capture before it changes the first packet (masking).

    Pre-pass, the producer (maybe in a helper process): ``observe`` for every
    packet that reaches it, in order, or ``observe_drop(i)`` when stage ``i``
    of the pre-pass chain dropped it; then ``end_prepass``. Final pass, the
    consumer: ``replay`` for every packet before any stage sees it, then
    ``process`` (a kept packet) and ``finish`` as for any stage.

    The decisions flow from producer to consumer in packet order. In one
    process they go through scratch of the stage's own; across processes the
    executor gives the producer a pipe's write end (``produce_to``) and the
    consumer its read end (``consume_from``), each after ``start``.

    Failure: a producer in another process that fails calls ``send_failure``
    with the error instead of ending its decisions; the consumer raises that
    error, same class (``errors.encode_error``), where it meets it (``replay``
    or ``finish``). A producer that vanishes without a word makes the consumer
    raise PktmaskError. ``flush_decisions`` hands buffered decisions over at
    once (the producer's input stalled: a live capture must flow).
    """

    # ---- pre-pass (producer) -------------------------------------------------------
    def produce_to(self, write_fd: int) -> None:
        """Write this file's decisions to the pipe ``write_fd`` (the stage owns and closes it)."""
        raise NotImplementedError

    def observe(self, pkt: Packet) -> None:
        """Look at a packet in the pre-pass, as the final pass will process it."""
        raise NotImplementedError

    def observe_drop(self, index: int) -> None:
        """Pre-pass: stage ``index`` of the pre-pass chain dropped this packet."""
        raise NotImplementedError

    def flush_decisions(self) -> None:
        """Hand the decisions buffered so far to the consumer now."""
        raise NotImplementedError

    def end_prepass(self) -> None:
        """The pre-pass has seen every packet: end the decisions."""
        raise NotImplementedError

    def send_failure(self, exc: BaseException) -> None:
        """The pre-pass failed with ``exc``: tell the consumer, in place of more decisions."""
        raise NotImplementedError

    # ---- final pass (consumer) -----------------------------------------------------
    def consume_from(self, read_fd: int) -> None:
        """Read this file's decisions from the pipe ``read_fd`` (the stage owns and closes it)."""
        raise NotImplementedError

    def replay(self, pkt: Packet) -> int:
        """Final pass: -1 to keep ``pkt``, or the pre-pass index of the stage that dropped it."""
        raise NotImplementedError
