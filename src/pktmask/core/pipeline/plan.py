"""How one capture is read: the pass plan of a list of stages.

Every stage runs in one final pass over the input that writes OUTPUT. A
``TwoPassStage`` (masking) needs one more read before that, its pre-pass:
the stages ahead of it that change which packets exist (dedup) run there too,
so it observes exactly the packets it will later process, and their drops are
replayed in the final pass instead of being decided again; stages whose
changes cannot matter to it (``prepass_transparent``: anonymization rewrites
addresses one-to-one) are left out of it.

Where the pre-pass runs is the plan's ``mode``:

- ``SINGLE``: no stage needs a pre-pass; one read.
- ``SERIAL``: the pre-pass runs in this process, then the final pass (two
  reads; the decisions wait in scratch). One core, or ``PKTMASK_SERIAL``.
- ``FORKED``: a helper process runs the pre-pass while this one runs the
  final pass, the decisions flowing through a pipe (each reads the file once).
- ``STREAMED``: the input can be read only once (stdin, a FIFO): the helper
  reads it, runs the pre-pass and forwards every byte it read to the final
  pass, next to the decisions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pktmask.core.pipeline.stage import Stage, TwoPassStage

SINGLE = "single"
SERIAL = "serial"
FORKED = "forked"
STREAMED = "streamed"


@dataclass(frozen=True)
class PassPlan:
    """The reads of one capture: which stage runs where (see the module docstring)."""

    mode: str
    stages: list[Stage]  # every stage, in order: started and finished in the final pass
    two_pass: TwoPassStage | None = None  # the stage that needs a pre-pass, if any
    prepass: list[Stage] = field(default_factory=list)  # run ahead of it in the pre-pass, replayed after

    @property
    def final(self) -> list[Stage]:
        """The stages that process packets in the final pass (the pre-pass ones replay instead)."""
        return [s for s in self.stages if s not in self.prepass]

    @property
    def helper(self) -> bool:
        """True when a helper process runs the pre-pass."""
        return self.mode in (FORKED, STREAMED)


def plan_passes(stages: list[Stage], *, streamed: bool = False, parallel: bool = False) -> PassPlan:
    """Plan the reads of one capture through ``stages``.

    ``streamed``: the input can be read only once. ``parallel``: a helper
    process may run the pre-pass alongside (two cores or more). Raises
    ValueError if more than one stage needs a pre-pass, or if a stage that hands
    off its work (``Stage.hands_off``) is not followed by one that takes it over.
    """
    for i, s in enumerate(stages):
        if s.hands_off and (i + 1 == len(stages) or not stages[i + 1].takes_hand_off):
            # Its frames still hold the original addresses: a stage after it that does not
            # take over its work would see them, or write them out.
            raise ValueError(f"stage {s.name} hands its work to the next stage, and the next "
                             "stage does not take it over")
    two = [s for s in stages if isinstance(s, TwoPassStage)]
    if len(two) > 1:
        raise ValueError("at most one stage may need a pre-pass")
    if not two:
        return PassPlan(SINGLE, list(stages))
    at = stages.index(two[0])
    prepass = [s for s in stages[:at] if not s.prepass_transparent]
    mode = STREAMED if streamed else FORKED if parallel else SERIAL
    return PassPlan(mode, list(stages), two[0], prepass)
