"""Human and machine output of the CLI: summaries on stderr, JSON on stdout, report files."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from pktmask.errors import from_oserror


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 160)


class Renderer:
    """Renders a run's outcome: JSON on stdout with --json, else a short summary on stderr."""

    def __init__(self, quiet: bool = False, verbose: int = 0, as_json: bool = False):
        self.quiet = quiet
        self.verbose = verbose
        self.as_json = as_json

    def summary(self, report: dict) -> None:
        """Print the report: one JSON object on stdout, or warnings and a table on stderr."""
        if self.as_json:
            sys.stdout.write(json.dumps(report, indent=2) + "\n")
            sys.stdout.flush()
        for f in report["files"]:
            for w in f["warnings"]:
                sys.stderr.write(f"pktmask: warning: {f['input']}: {w}\n")
        if self.quiet or self.as_json or not report["files"] or not report["ok"]:
            return
        from rich.table import Table

        table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
        table.add_column("file")
        for col in ("packets in", "out", "dupes", "addresses", "bytes zeroed", "TLS rec", "HTTP msg", "seconds"):
            table.add_column(col, justify="right")
        for f in report["files"]:
            table.add_row(
                os.path.basename(f["input"]),
                str(f["packets_in"]),
                str(f["packets_out"]),
                str(f["duplicates_removed"]),
                str(f["addresses_anonymized"]),
                str(f["payload_bytes_zeroed"]),
                str(f["tls_records_masked"]),
                str(f["http_messages_masked"]),
                f"{f['seconds']:.2f}",
            )
        _stderr_console().print(table)


def write_report(path: Path, report: dict) -> None:
    """Write the JSON report to ``path`` atomically (temp sibling, fsync, rename).

    Raises OutputError/DiskFullError.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.pktmask-report.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise from_oserror(exc, str(path)) from exc


def render_roots(temp_dir: Path, roots: list, as_json: bool) -> None:
    """Show ``temp status``: one line per run root, or a JSON list."""
    if as_json:
        items = [
            {"path": str(r.path), "pid": r.pid, "host": r.host, "state": r.state,
             "size_bytes": r.size, "age_seconds": round(r.age_seconds, 1)}
            for r in roots
        ]
        sys.stdout.write(json.dumps({"temp_dir": str(temp_dir), "roots": items}, indent=2) + "\n")
        return
    if not roots:
        sys.stdout.write(f"no pktmask scratch roots in {temp_dir}\n")
        return
    now = time.time()
    for r in roots:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now - r.age_seconds))
        sys.stdout.write(f"{r.state:9s} {r.size / (1 << 20):9.2f} MB  pid {r.pid:<8d} since {started}  {r.path}\n")
    counts = {s: sum(1 for r in roots if r.state == s) for s in ("live", "orphaned", "kept")}
    sys.stdout.write(
        f"{len(roots)} root(s): {counts['live']} live, {counts['orphaned']} orphaned, {counts['kept']} kept\n"
    )
