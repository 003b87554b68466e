"""pktmask: make packet captures safe to share."""

import _signal  # type: ignore[import-not-found]  # C module: importing signal builds enums (slow)
import os as _os
import sys as _sys

__version__ = "0.1.0"

# Run as the command (the console script, or ``python -m pktmask`` while it is located):
# until the run's handlers are installed, SIGINT kills by its default action (exit 130,
# nothing exists yet to clean) instead of raising KeyboardInterrupt in some import with
# a traceback. An ignored SIGINT (background job) stays ignored. See core/stdio.py.
if _sys.argv and (_os.path.basename(_sys.argv[0]) == "pktmask" or _sys.argv[0] == "-m"):
    if _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler:
        _signal.signal(_signal.SIGINT, _signal.SIG_DFL)


def build() -> str:
    """Return "compiled" when the per-packet modules are the mypyc build (setup.py), else "pure Python"."""
    from importlib.util import find_spec

    spec = find_spec("pktmask.mask.tracker")
    origin = spec.origin if spec is not None else None
    return "compiled" if origin and not origin.endswith(".py") else "pure Python"
