"""Per-category tallies of the leak audit and the JSON-able report built from them.

Counts are of distinct values: ``leaks`` is how many gathered values were
found in SANITIZED outside the bytes the policy keeps, ``kept_by_policy`` how
many were found inside bytes the policy keeps on purpose (TLS handshakes, HTTP
heads); a value found in both kinds of place counts in both. Examples hold the
value, the first (1-based) packet it was seen in and where in that packet.
"""

from __future__ import annotations

CATEGORIES = ("ip", "mac", "dns", "http", "strings")
MAX_EXAMPLES = 5
SCHEMA_VERSION = 1


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
    """The tallies of every category."""

    def __init__(self):
        self.tallies = {name: Tally() for name in CATEGORIES}

    def record(self, category: str, value: str, packet: int, where: str, kept: bool) -> None:
        self.tallies[category].record(value, packet, where, kept)

    @property
    def clean(self) -> bool:
        """True when no category has a leak."""
        return not any(t.leaked for t in self.tallies.values())

    def report(self, original: str, sanitized: str) -> dict:
        """The verify report (schema_version 1)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "original": original,
            "sanitized": sanitized,
            "clean": self.clean,
            "categories": {name: t.as_dict() for name, t in self.tallies.items()},
        }
