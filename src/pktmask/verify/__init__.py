"""``pktmask verify``: an independent leak audit of a sanitized capture against its original.

``verify(original, sanitized, manager)`` lines the two captures up frame by frame and checks
every byte against the header policy (docs/policy.md) with a dissector and a TCP stream model
of its own, sharing no code with the sanitizer; it also gathers what ORIGINAL holds that must
not be shared (addresses, DNS names, HTTP values, long printable strings) and reports where
each shows up again in SANITIZED. See ``audit`` for the report format.
"""

from pktmask.verify.audit import verify

__all__ = ["verify"]
