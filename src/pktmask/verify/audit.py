"""The public entry point of the leak audit and its report.

The report (schema_version 1) is a JSON-able dict::

    {"schema_version": 1, "original": str, "sanitized": str, "clean": bool,
     "categories": {"ip" | "mac" | "dns" | "http" | "strings":
         {"gathered": int, "leaks": int, "kept_by_policy": int,
          "examples": [{"value": str, "packet": int, "where": str}, ...],
          "policy_examples": [...]}}}

``gathered`` counts the distinct values collected from ORIGINAL; ``leaks``
and ``kept_by_policy`` count distinct values found in SANITIZED outside /
inside bytes the masking policy keeps; ``clean`` is true when no category
has a leak. Examples (at most 5 of each kind) carry only the found value,
the 1-based packet number in SANITIZED and where it was found ("header",
"payload (binary)", "payload (text)", "payload (reverse DNS name)",
"payload (DNS wire format)", "DNS message").
"""

from __future__ import annotations

from pathlib import Path

from pktmask.core.temp_file_manager import TempFileManager
from pktmask.verify.findings import CATEGORIES, Findings
from pktmask.verify.scan import SanitizedScan, gather


def verify(original: str | Path, sanitized: str | Path, manager: TempFileManager) -> dict:
    """Audit SANITIZED for what ORIGINAL holds; returns the report described above.

    Scratch (the keep-range spill) comes from ``manager`` and is gone when
    this returns or raises. Raises InputError when either file cannot be read
    as a capture.
    """
    needles = gather(original)
    findings = Findings()
    for category in CATEGORIES:
        findings.tallies[category].gathered = needles.count(category)
    SanitizedScan(needles, findings, manager).run(sanitized)
    return findings.report(str(original), str(sanitized))
