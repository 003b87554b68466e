"""``pktmask verify``: a leak audit of a sanitized capture against its original.

``verify(original, sanitized, manager)`` gathers what ORIGINAL holds that
must not be shared (addresses, DNS names, HTTP header values and query
strings, long printable strings) and reports where each shows up again in
SANITIZED: as a leak, or inside bytes the masking policy keeps on purpose.
See ``audit`` for the report format.
"""

from pktmask.verify.audit import verify

__all__ = ["verify"]
