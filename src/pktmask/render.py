"""Human and machine output of the CLI: summaries on stderr, JSON on stdout, report files."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
import time
from pathlib import Path

from pktmask.errors import from_oserror
from pktmask.runner import Hooks

log = logging.getLogger("pktmask")

MAX_ROWS = 30  # beyond this many files only the totals are shown
_COLUMNS = ("packets_in", "packets_out", "duplicates_removed", "addresses_anonymized", "names_pseudonymized",
            "payload_bytes_zeroed", "tls_records_masked", "http_messages_masked", "dns_messages_kept")


def _stderr_console(file=None):
    """A rich console for stderr, or rendering into ``file`` for stderr (same width rules)."""
    from rich.console import Console

    # On a terminal rich follows its width; elsewhere COLUMNS if set, else wide enough.
    width = None
    if not sys.stderr.isatty():
        columns = os.environ.get("COLUMNS", "")
        width = int(columns) if columns.isdigit() and int(columns) > 0 else 160
    elif file is not None:
        width = os.get_terminal_size(sys.stderr.fileno()).columns
    if file is not None:
        return Console(file=file, highlight=False, markup=False, width=width,
                       force_terminal=sys.stderr.isatty())
    return Console(stderr=True, highlight=False, markup=False, width=width)


def print_json(report: dict) -> bool:
    """Print one JSON object on stdout; returns False when stdout cannot take it (one line on stderr)."""
    from pktmask.core.stdio import err

    try:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        sys.stdout.flush()
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        err(f"pktmask: error: cannot print the JSON report on stdout: {reason}")
        return False
    return True


class Renderer:
    """Renders a run's outcome: JSON on stdout with --json, else a short summary on stderr.

    Warnings go to stderr unless ``quiet`` (then only errors are shown).
    """

    def __init__(self, quiet: bool = False, verbose: int = 0, as_json: bool = False):
        self.quiet = quiet
        self.verbose = verbose
        self.as_json = as_json

    def warn(self, message: str) -> None:
        """One warning line on stderr (not with -q)."""
        from pktmask.core.stdio import err

        if not self.quiet:
            err(f"pktmask: warning: {message}")

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

        bars = Progress(TextColumn("{task.description}", markup=False), BarColumn(), DownloadColumn(),
                        TimeRemainingColumn(), console=_stderr_console(), transient=True)
        with bars:
            yield _RichHooks(bars, self.verbose)

    def summary(self, report: dict) -> bool:
        """Print the report: one JSON object on stdout, or warnings and a table on stderr.

        Returns False when the JSON report could not be printed.
        """
        printed = print_json(report) if self.as_json else True
        for f in report["files"]:
            for w in f["warnings"]:
                self.warn(f"{f['input']}: {w}")
        if self.quiet or self.as_json or not any(f["ok"] for f in report["files"]):
            return printed
        from rich.table import Table
        from rich.text import Text

        table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
        rows = report["files"] if len(report["files"]) <= MAX_ROWS else []
        cells = [[str(f[k]) for k in _COLUMNS] + [f"{f['seconds']:.2f}"] for f in rows if f["ok"]]
        t = report["totals"]
        if len(report["files"]) > 1:
            cells.append([str(t[k]) for k in _COLUMNS] + [f"{t['seconds']:.2f}"])
        names = [len(os.path.basename(f["input"])) for f in rows]
        table.add_column("file", overflow="fold", min_width=min(max(names, default=4), 24))
        for i, col in enumerate(("packets in", "out", "dupes", "addresses", "names", "bytes zeroed", "TLS rec",
                                 "HTTP msg", "DNS msg", "seconds")):
            # Numbers are never cut: a column is at least as wide as its longest number.
            widest = max((len(c[i]) for c in cells), default=1)
            table.add_column(col, justify="right", overflow="fold", min_width=widest)
        for f in rows:
            name = Text(os.path.basename(f["input"]))  # a file name is never markup
            if not f["ok"]:
                table.add_row(name, "failed", *[""] * len(_COLUMNS))
                continue
            table.add_row(name, *(str(f[k]) for k in _COLUMNS), f"{f['seconds']:.2f}")
        if len(report["files"]) > 1:
            table.add_row(f"total: {t['files']} files, {t['files_failed']} failed",
                          *(str(t[k]) for k in _COLUMNS), f"{t['seconds']:.2f}", style="bold")
        if report.get("skipped"):
            table.caption = f"{len(report['skipped'])} file(s) skipped: not captures"
        # Rendered to a string, then written: rich itself ends the process on a broken pipe.
        text = io.StringIO()
        _stderr_console(text).print(table, crop=False)
        from pktmask.core.stdio import err

        err(text.getvalue())
        return printed


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
def write_report(path: Path, report: dict, manager, force: bool) -> None:
    """Write the JSON report to ``path`` like an OUTPUT (see ``core.output.AtomicOutput``).

    An unnamed O_TMPFILE file or a random hidden sibling created with
    O_EXCL|O_NOFOLLOW (never a predictable name, never through a symlink),
    fsynced, then linked or renamed into place; without ``force`` an existing
    file is never replaced. Raises OutputExistsError, OutputError, DiskFullError.
    """
    from pktmask.core.output import AtomicOutput

    out = AtomicOutput(Path(path), manager, force)
    try:
        f = out.open()
        f.write(json.dumps(report, indent=2).encode("utf-8") + b"\n")
        out.commit()
    except OSError as exc:
        out.abort()
        raise from_oserror(exc, str(path)) from exc
    except BaseException:
        out.abort()
        raise


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
