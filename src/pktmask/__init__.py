"""pktmask: make packet captures safe to share."""

__version__ = "0.1.0"


def build() -> str:
    """Return "compiled" when the per-packet modules are the mypyc build (setup.py), else "pure Python"."""
    from importlib.util import find_spec

    spec = find_spec("pktmask.mask.tracker")
    origin = spec.origin if spec is not None else None
    return "compiled" if origin and not origin.endswith(".py") else "pure Python"
