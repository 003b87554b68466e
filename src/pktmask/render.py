"""Human and machine output of the CLI: summaries on stderr, JSON on stdout, report files."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from pathlib import Path

from pktmask.core.runner import Hooks
from pktmask.errors import from_oserror

log = logging.getLogger("pktmask")

MAX_ROWS = 30  # beyond this many files only the totals are shown
_COLUMNS = ("packets_in", "packets_out", "duplicates_removed", "addresses_anonymized", "names_pseudonymized",
            "payload_bytes_zeroed", "tls_records_masked", "http_messages_masked", "dns_messages_kept")


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 160)


class Renderer:
    """Renders a run's outcome: JSON on stdout with --json, else a short summary on stderr."""

    def __init__(self, quiet: bool = False, verbose: int = 0, as_json: bool = False):
        self.quiet = quiet
        self.verbose = verbose
        self.as_json = as_json

    @contextlib.contextmanager
    def progress(self):
        """Yield run hooks: rich progress bars on stderr only when it is a terminal (and not -q)."""
        if self.quiet or not sys.stderr.isatty():
            yield _LogHooks(self.verbose)
            return
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        bars = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                        TimeRemainingColumn(), console=_stderr_console(), transient=True)
        with bars:
            yield _RichHooks(bars, self.verbose)

    def summary(self, report: dict) -> None:
        """Print the report: one JSON object on stdout, or warnings and a table on stderr."""
        if self.as_json:
            sys.stdout.write(json.dumps(report, indent=2) + "\n")
            sys.stdout.flush()
        for f in report["files"]:
            for w in f["warnings"]:
                sys.stderr.write(f"pktmask: warning: {f['input']}: {w}\n")
        if self.quiet or self.as_json or not any(f["ok"] for f in report["files"]):
            return
        from rich.table import Table

        table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
        table.add_column("file")
        for col in ("packets in", "out", "dupes", "addresses", "names", "bytes zeroed", "TLS rec", "HTTP msg",
                    "DNS msg", "seconds"):
            table.add_column(col, justify="right")
        rows = report["files"] if len(report["files"]) <= MAX_ROWS else []
        for f in rows:
            if not f["ok"]:
                table.add_row(os.path.basename(f["input"]), "failed", *[""] * len(_COLUMNS))
                continue
            table.add_row(os.path.basename(f["input"]), *(str(f[k]) for k in _COLUMNS), f"{f['seconds']:.2f}")
        if len(report["files"]) > 1:
            t = report["totals"]
            table.add_row(f"total: {t['files']} files, {t['files_failed']} failed",
                          *(str(t[k]) for k in _COLUMNS), f"{t['seconds']:.2f}", style="bold")
        if report.get("skipped"):
            table.caption = f"{len(report['skipped'])} file(s) skipped: not captures"
        _stderr_console().print(table)


class _LogHooks(Hooks):
    """No bars: with -v, one log line per finished file."""

    def __init__(self, verbose: int):
        self.verbose = verbose

    def file_done(self, result) -> None:
        if self.verbose and result.ok:
            log.info("%s: %d packets in, %d out, %d duplicates, %d addresses, %d names, %d bytes zeroed, "
                     "%d TLS records, %d HTTP messages, %d DNS messages, %d metadata items dropped (%.2fs)",
                     result.input, result.packets_in, result.packets_out, result.duplicates_removed,
                     result.addresses_anonymized, result.names_pseudonymized, result.payload_bytes_zeroed,
                     result.tls_records_masked, result.http_messages_masked, result.dns_messages_kept,
                     result.metadata_dropped, result.seconds)


class _RichHooks(_LogHooks):
    """Bytes done of the current file, and files done overall."""

    def __init__(self, bars, verbose: int):
        super().__init__(verbose)
        self.bars = bars
        self.overall = None
        self.current = None

    def start(self, files: int) -> None:
        if files > 1:
            self.overall = self.bars.add_task("files", total=files)

    def file_progress(self, path):
        if self.current is not None:
            self.bars.remove_task(self.current)
        self.current = self.bars.add_task(os.path.basename(str(path)), total=None)

        def update(done: int, total: int, task=self.current) -> None:
            self.bars.update(task, completed=done, total=total)

        return update

    def file_done(self, result) -> None:
        super().file_done(result)
        if self.overall is not None:
            self.bars.advance(self.overall)
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


def render_verify(report: dict, as_json: bool, quiet: bool) -> None:
    """Show a verify report: JSON on stdout, or a per-category table and a verdict."""
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    verdict = "clean: no leaks found" if report["clean"] else "LEAKS FOUND"
    if quiet:
        sys.stdout.write(f"{report['sanitized']}: {verdict}\n")
        return
    out = sys.stdout
    out.write(f"original:  {report['original']}\nsanitized: {report['sanitized']}\n\n")
    out.write(f"{'category':10s} {'gathered':>9s} {'leaks':>7s} {'kept by policy':>15s}\n")
    for name, cat in report["categories"].items():
        out.write(f"{name:10s} {cat['gathered']:9d} {cat['leaks']:7d} {cat['kept_by_policy']:15d}\n")
    for name, cat in report["categories"].items():
        for ex in cat["examples"]:
            out.write(f"  leak   {name:8s} {ex['value'][:60]!s:60s} packet {ex['packet']} ({ex['where']})\n")
    for name, cat in report["categories"].items():
        for ex in cat["policy_examples"][:2]:
            out.write(f"  policy {name:8s} {ex['value'][:60]!s:60s} packet {ex['packet']} ({ex['where']})\n")
    findings = report.get("findings", [])
    if findings:
        out.write(f"\n{report['findings_total']} field finding(s); the first:\n")
        for f in findings[:10]:
            out.write(f"  packet {f['packet']} offset {f['offset']} length {f['length']}: {f['field']} ({f['kind']})\n")
    for note in report.get("notes", []):
        out.write(f"\nnote: {note}\n")
    out.write(f"\n{verdict}\n")
