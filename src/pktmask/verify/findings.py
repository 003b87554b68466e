"""Per-category tallies of the leak audit, the field findings, and the JSON-able report.

Counts are of distinct values: ``leaks`` is how many values were found in SANITIZED where
they must not be, ``kept_by_policy`` how many were found inside bytes the policy keeps on
purpose (TLS handshakes, HTTP heads); a value found in both kinds of place counts in both.
Examples hold the value, the first (1-based) packet it was seen in and where in that packet.

The ``fields`` category counts the distinct field names (``tcp.option[34].data``,
``ipv6.dst``...) where a byte survived that the policy zeroes or maps; every such finding is
also listed in ``findings`` (bounded) with its packet and offset.
"""

from __future__ import annotations

CATEGORIES = ("ip", "mac", "dns", "http", "strings", "fields")
MAX_EXAMPLES = 5
MAX_FINDINGS = 1000
SCHEMA_VERSION = 1

UNCHANGED = "unchanged"  # bytes the policy zeroes survived as they were
NOT_MAPPED = "not mapped"  # a pseudonym field holds its original value
NOT_ZERO = "not zero"  # a field that must be zero is not


class Tally:
    """Distinct leaked / kept-by-policy values of one category, with a few examples."""

    __slots__ = ("gathered", "leaked", "kept", "examples", "policy_examples")

    def __init__(self):
        self.gathered = 0
        self.leaked: set[str] = set()
        self.kept: set[str] = set()
        self.examples: list[dict] = []
        self.policy_examples: list[dict] = []

    def record(self, value: str, packet: int, where: str, kept: bool) -> None:
        """Count one occurrence; only a value's first occurrence per kind becomes an example."""
        seen, examples = (self.kept, self.policy_examples) if kept else (self.leaked, self.examples)
        if value in seen:
            return
        seen.add(value)
        if len(examples) < MAX_EXAMPLES:
            examples.append({"value": value, "packet": packet, "where": where})

    def as_dict(self) -> dict:
        return {
            "gathered": self.gathered,
            "leaks": len(self.leaked),
            "kept_by_policy": len(self.kept),
            "examples": list(self.examples),
            "policy_examples": list(self.policy_examples),
        }


class Findings:
    """The tallies of every category, the field findings and how the two files were lined up."""

    def __init__(self):
        self.tallies = {name: Tally() for name in CATEGORIES}
        self.details: list[dict] = []
        self.total = 0
        self.aligned = True
        self.alignment: dict = {"packets": 0, "skipped_duplicates": 0}
        self.notes: list[str] = []

    def record(self, category: str, value: str, packet: int, where: str, kept: bool) -> None:
        self.tallies[category].record(value, packet, where, kept)

    def field(self, packet: int, original: int, offset: int, length: int, name: str, kind: str,
              category: str = "fields", value: str | None = None) -> None:
        """A byte run of a frame that the policy zeroes or maps survived: record it everywhere."""
        self.total += 1
        if category == "fields":
            self.record("fields", name, packet, f"offset {offset}", False)
        else:
            self.record(category, value or name, packet, "header", False)
        if len(self.details) < MAX_FINDINGS:
            self.details.append({"packet": packet, "original_packet": original, "offset": offset,
                                 "length": length, "field": name, "kind": kind})

    def reset_search(self) -> None:
        """Forget what an abandoned aligned pass found (the fallback starts over)."""
        gathered = {name: t.gathered for name, t in self.tallies.items()}
        self.tallies = {name: Tally() for name in CATEGORIES}
        for name, t in self.tallies.items():
            t.gathered = gathered[name]
        self.details, self.total = [], 0

    @property
    def clean(self) -> bool:
        """True when no category has a leak."""
        return not any(t.leaked for t in self.tallies.values())

    def report(self, original: str, sanitized: str) -> dict:
        """The verify report (schema_version 1, with the field findings added)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "original": original,
            "sanitized": sanitized,
            "clean": self.clean,
            "aligned": self.aligned,
            "alignment": dict(self.alignment),
            "notes": list(self.notes),
            "categories": {name: t.as_dict() for name, t in self.tallies.items()},
            "findings": list(self.details),
            "findings_total": self.total,
        }
