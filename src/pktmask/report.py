"""Per-file results and the JSON report object (README "Scripted use")."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from pktmask import __version__

SCHEMA_VERSION = 1

COUNTERS = (
    "packets_in",
    "packets_out",
    "duplicates_removed",
    "addresses_anonymized",
    "frames_rewritten",
    "payload_bytes_zeroed",
    "tls_records_masked",
    "http_messages_masked",
    "dns_messages_kept",
    "names_pseudonymized",
    "metadata_dropped",
)


@dataclass
class FileResult:
    """The outcome of one input: counters, or the error that stopped it."""

    input: str
    output: str | None
    ok: bool = False
    error: str | None = None
    format: str | None = None
    truncated: bool = False
    packets_in: int = 0
    packets_out: int = 0
    duplicates_removed: int = 0
    addresses_anonymized: int = 0
    frames_rewritten: int = 0
    payload_bytes_zeroed: int = 0
    tls_records_masked: int = 0
    http_messages_masked: int = 0
    dns_messages_kept: int = 0
    names_pseudonymized: int = 0
    metadata_dropped: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def add(self, counters: dict[str, int]) -> None:
        """Add a stage's counters to this result."""
        for key, value in counters.items():
            setattr(self, key, getattr(self, key) + value)


def build_report(results: list[FileResult], skipped: list[str] | None = None,
                 address_map: str | None = None, error: str | None = None) -> dict:
    """Return the report object for a run: version, ok, error, address map, files, totals.

    ``address_map`` names the address map used (``hardened`` or
    ``cryptopan-compat``; None without anonymization), never its key.
    ``error`` is the failure that stopped the run (a usage error, a single
    input that failed, no captures in a directory), None when the run went
    through (files of a batch may still have failed); ``ok`` is true only
    when there is neither (the CLI makes it match the exit status).
    """
    totals = {key: sum(getattr(r, key) for r in results) for key in COUNTERS}
    totals["files"] = len(results)
    totals["files_failed"] = sum(1 for r in results if not r.ok)
    totals["seconds"] = round(sum(r.seconds for r in results), 3)
    files = []
    for r in results:
        d = asdict(r)
        d["seconds"] = round(r.seconds, 3)
        files.append(d)
    return {
        "schema_version": SCHEMA_VERSION,
        "version": __version__,
        "ok": error is None and all(r.ok for r in results),
        "error": error,
        "address_map": address_map,
        "files": files,
        "skipped": list(skipped or []),
        "totals": totals,
    }
