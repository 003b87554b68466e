"""The command line: parse options, build the config, call the core, render. Nothing else.

Only this module maps errors to exit codes (README "Exit codes").
"""

from __future__ import annotations

import logging
import os
import stat
import sys
from pathlib import Path

import click

from pktmask import __version__, build
from pktmask.errors import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    InputError,
    KeyFileError,
    OutputError,
    PktmaskError,
    UsageError,
)

log = logging.getLogger("pktmask")

LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING, "ERROR": logging.ERROR}

MASK_EPILOG = """\b
Examples:
  pktmask mask in.pcap out.pcap                   anonymize + mask (the safe defaults)
  pktmask mask in.pcapng out.pcapng --dedup       also drop duplicate frames
  pktmask mask in.pcap out.pcap --key-file k.key  same pseudonyms across runs
  pktmask mask captures/ safe/ -r --jobs 2        a directory tree, two workers
  tcpdump -w - | pktmask mask - - > safe.pcap     stdin to stdout
  pktmask mask in.pcap out.pcap --json | jq .ok   machine-readable report
\b
Exit status: 0 all done, 1 an input failed, 2 usage error, 128+N killed by signal N.
"""


def setup_logging(verbose: int, quiet: bool, debug: bool) -> None:
    """Send logs to stderr at the level asked for (flags win over PKTMASK_LOG_LEVEL).

    A PKTMASK_LOG_LEVEL that names no level is reported (unless -q) and ignored.
    """
    from pktmask.core import stdio

    wanted = os.environ.get("PKTMASK_LOG_LEVEL", "").strip()
    level = LEVELS.get(wanted.upper(), logging.WARNING)
    if wanted and wanted.upper() not in LEVELS and not quiet:
        stdio.err(f"pktmask: warning: PKTMASK_LOG_LEVEL={wanted!r} is not one of "
                  f"{', '.join(LEVELS)}; using WARNING")
    if quiet:
        level = logging.ERROR
    elif debug or verbose >= 2:
        level = logging.DEBUG
    elif verbose == 1:
        level = min(level, logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("pktmask: %(levelname)s: %(message)s"))
    root = logging.getLogger("pktmask")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    logging.raiseExceptions = False  # a closed or broken stderr must not abort a run


def fail(exc: BaseException, debug: bool) -> int:
    """Print a one-line error (a traceback with --debug); return the exit code."""
    from pktmask.core.stdio import err

    if debug:
        import traceback

        try:
            traceback.print_exception(exc, file=sys.stderr)
        except (OSError, ValueError):
            pass
    if isinstance(exc, PktmaskError):
        err(f"pktmask: error: {exc}")
        return exc.exit_code
    if isinstance(exc, OSError):
        from pktmask.errors import from_oserror

        error = from_oserror(exc)
        err(f"pktmask: error: {error}")
        return error.exit_code
    if isinstance(exc, MemoryError):
        err("pktmask: error: out of memory")
        return EXIT_FAILURE
    err(f"pktmask: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)")
    return EXIT_FAILURE


def main(argv: list[str] | None = None) -> None:
    """The console entry point: settle signals and standard streams, run the command, exit.

    Click's usage errors keep Click's message and exit 2; with ``--json``
    they also print the one JSON object, ``ok`` false.
    """
    from pktmask.core import stdio

    stdio.settle_signals()
    stdio.reopen_closed()
    args = sys.argv[1:] if argv is None else list(argv)
    code: int = EXIT_OK
    try:
        rv = cli.main(args=args, prog_name="pktmask", standalone_mode=False)
        code = rv if isinstance(rv, int) else EXIT_OK
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else EXIT_FAILURE
    except click.ClickException as exc:
        try:
            exc.show()
        except (OSError, ValueError):
            pass
        code = exc.exit_code
        if "--json" in args and args and args[0] == "mask":
            from pktmask.render import print_json
            from pktmask.report import build_report

            print_json(build_report([], [], None, error=exc.format_message()))
    except click.exceptions.Abort:
        code = EXIT_FAILURE
    stdio.settle_at_exit()
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="pktmask",
                      message=f"%(prog)s %(version)s ({build()})")
def cli() -> None:
    """pktmask: make packet captures safe to share.

    Removes duplicate frames, anonymizes addresses with a keyed
    prefix-preserving map (a hardened Crypto-PAn) and masks payloads while
    keeping protocol structure — and leaves nothing behind in the temp dir,
    whatever happens to the run.
    """


@cli.command(epilog=MASK_EPILOG)
@click.argument("input_path", metavar="INPUT")
@click.argument("output_path", metavar="OUTPUT")
@click.option("--anonymize/--no-anonymize", "--anonymize-ips", default=True, show_default=True,
              help="Keyed prefix-preserving IP anonymization (and MAC pseudonyms).")
@click.option("--mask-payloads/--no-mask-payloads", default=True, show_default=True,
              help="Protocol-aware payload masking (zeroes what is not kept).")
@click.option("--dedup/--no-dedup", "--remove-dupes", default=False, show_default=True,
              help="Drop exact duplicate frames.")
@click.option("--dedup-window", type=click.IntRange(min=0), default=1000, show_default=True, metavar="N",
              help="Frames remembered for dedup; 0 = whole file.")
@click.option("--anonymize-macs/--keep-macs", default=True, show_default=True,
              help="With --anonymize: keyed MAC pseudonyms (group bit and broadcast kept).")
@click.option("--key-file", type=click.Path(path_type=Path), metavar="PATH",
              help="32-byte anonymization key: 32 raw bytes, or 64 hex chars (+ newline). "
                   "Same key => same pseudonyms across files and runs. Default: random per run.")
@click.option("--cryptopan-compat", is_flag=True,
              help="With --anonymize: the reference Crypto-PAn address map (same output as other "
                   "Crypto-PAn tools) instead of the hardened default; it keeps low bits far more "
                   "often than chance (see README).")
@click.option("--force", is_flag=True, help="Replace an existing OUTPUT (never the INPUT).")
@click.option("-r", "--recursive", is_flag=True, help="Directory INPUT: descend and mirror the tree.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True, metavar="N",
              help="Directory INPUT: files processed in parallel worker processes.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON report on stdout (human text on stderr).")
@click.option("--report", "report_path", type=click.Path(path_type=Path), metavar="PATH",
              help="Also write the JSON report to PATH (atomically).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")
@click.option("-v", "--verbose", count=True, help="More detail on stderr (repeat for debug logs).")
@click.option("--debug", is_flag=True, help="Debug logs and tracebacks on errors.")
@click.option("--temp-dir", type=click.Path(path_type=Path, file_okay=False, exists=True), metavar="PATH",
              help="Where scratch roots live (default: $TMPDIR or the system default).")
@click.option("--keep-temp", is_flag=True, help="Keep the scratch root for debugging; its path is printed.")
@click.option("--key-fd", type=int, hidden=True,
              help="(Internal: --jobs workers) read the 32-byte key from this inherited pipe.")
@click.pass_context
def mask(ctx, input_path, output_path, anonymize, mask_payloads, dedup, dedup_window, anonymize_macs,
         key_file, cryptopan_compat, force, recursive, jobs, as_json, report_path, quiet, verbose, debug,
         temp_dir, keep_temp, key_fd):
    """Sanitize INPUT into OUTPUT: a capture file (pcap or pcapng, format kept), a directory of
    captures into a directory (names mirrored), or - for stdin/stdout.

    With OUTPUT -, the capture streams to stdout: if the run fails part-way, what was already
    written stays written and the exit status is 1.
    """
    setup_logging(verbose, quiet, debug)
    from pktmask.config import MaskConfig
    from pktmask.core import stdio
    from pktmask.core.output import check_report_path
    from pktmask.core.temp_file_manager import get_temp_file_manager
    from pktmask.render import Renderer
    from pktmask.report import FileResult, build_report
    from pktmask.runner import MaskOutcome, MaskRequest, run_mask

    renderer = Renderer(quiet=quiet, verbose=verbose, as_json=as_json)
    manager = get_temp_file_manager()
    manager.configure(temp_dir, keep=keep_temp)
    outcome = MaskOutcome()
    code = EXIT_OK
    error: str | None = None
    kept_root = None
    address_map = None
    with manager:
        try:
            if as_json and output_path == "-":
                raise UsageError("--json prints the report on stdout: it cannot go with OUTPUT -")
            if as_json and stdio.is_closed(1):
                raise UsageError("--json prints the report on stdout, which is closed")
            if output_path == "-" and stdio.is_closed(1):
                raise OutputError("OUTPUT is - but standard output is closed", "<stdout>")
            if input_path == "-" and stdio.is_closed(0):
                raise InputError("INPUT is - but standard input is closed", "<stdin>")
            if output_path == "-" and sys.stdout.isatty():
                raise UsageError("refusing to write a capture to a terminal (redirect stdout)")
            if report_path is not None:
                check_report_path(report_path, input_path, output_path, force)
            key = _load_key(key_file, key_fd, anonymize)
            config = MaskConfig(
                anonymize=anonymize,
                mask_payloads=mask_payloads,
                dedup=dedup,
                dedup_window=dedup_window,
                anonymize_macs=anonymize_macs,
                key=key,
                cryptopan_compat=cryptopan_compat,
                force=force,
            )
            for warning in _config_warnings(ctx, config, key_file):
                renderer.warn(warning)
            address_map = config.address_map
            manager.run_root  # noqa: B018 - every mask run owns a root from the start
            swept = manager.sweep_orphans()
            if swept:
                log.info("removed %d orphaned scratch root(s) of dead runs", len(swept))
            request = MaskRequest(input_path, output_path, config, recursive, jobs, verbose)
            try:
                with renderer.progress() as hooks:
                    outcome = run_mask(request, manager, hooks)
            except PktmaskError as exc:
                if not outcome.results:
                    outcome.results.append(FileResult(input=input_path, output=None, error=str(exc)))
                raise
            failed = [r for r in outcome.results if not r.ok]
            if failed:
                for r in failed:
                    stdio.err(f"pktmask: error: {r.error}")
                code = EXIT_FAILURE
        except Exception as exc:  # noqa: BLE001 - the one place errors become exit codes
            code = fail(exc, debug)
            error = str(exc)
        report = build_report(outcome.results, outcome.skipped, address_map, error=error)
        if report_path is not None and code != EXIT_USAGE:
            report_code = _write_report(report_path, report, manager, force, debug)
            if report_code:
                code = report_code
                report["error"] = report["error"] or f"{report_path}: the report could not be written"
        report["ok"] = code == EXIT_OK
        if keep_temp and manager.has_root:
            kept_root = manager.run_root
    if kept_root is not None:
        stdio.err(f"pktmask: scratch kept in {kept_root}")
    if not renderer.summary(report) and code == EXIT_OK:
        code = EXIT_FAILURE  # the JSON report asked for could not be printed
    sys.exit(code)


def _load_key(key_file: Path | None, key_fd: int | None, needed: bool) -> bytes | None:
    from pktmask.anon.keys import KEY_SIZE, load_key, random_key

    if key_fd is not None:
        # A --jobs worker: the parent wrote the key into a pipe (never a file, argv or env).
        chunks = []
        try:
            while chunk := os.read(key_fd, 64):
                chunks.append(chunk)
            os.close(key_fd)
        except OSError as exc:
            raise KeyFileError(f"cannot read the key pipe: {exc.strerror}", f"fd {key_fd}") from exc
        key = b"".join(chunks)
        if len(key) != KEY_SIZE:
            raise KeyFileError(f"the key pipe must carry {KEY_SIZE} bytes", f"fd {key_fd}")
        return key
    if key_file is not None:
        return load_key(str(key_file))
    return random_key() if needed else None


def _config_warnings(ctx: click.Context, config, key_file: Path | None) -> list[str]:
    """What the user may not expect of these options (stderr warnings, never fatal)."""
    from click.core import ParameterSource

    warnings = []
    explicit = ctx.get_parameter_source("anonymize_macs") == ParameterSource.COMMANDLINE
    if explicit and config.anonymize_macs and not config.anonymize:
        warnings.append("--anonymize-macs does nothing with --no-anonymize: MAC addresses stay in clear")
    if not config.anonymize and not config.mask_payloads:
        warnings.append("--no-anonymize and --no-mask-payloads: nothing is sanitized, OUTPUT keeps "
                        "every address and payload of INPUT")
    if key_file is not None and config.key is not None:
        try:
            mode = os.stat(key_file).st_mode
        except OSError:
            mode = 0
        if stat.S_ISREG(mode) and mode & 0o044:
            warnings.append(f"key file {key_file} is readable by other users (chmod 600 it)")
        if len(set(config.key)) == 1:
            warnings.append(f"key file {key_file} has no entropy (all {len(config.key)} bytes are equal): "
                            "anyone can guess it and reverse the pseudonyms")
    return warnings


def _write_report(path: Path, report: dict, manager, force: bool, debug: bool) -> int:
    from pktmask.render import write_report

    try:
        write_report(path, report, manager, force)
    except PktmaskError as exc:
        return fail(exc, debug)
    return EXIT_OK


@cli.command(epilog="""\b
Examples:
  pktmask verify in.pcap out.pcap          exit 0 clean, 1 leaks found
  pktmask verify in.pcap out.pcap --json   the findings as one JSON object
""")
@click.argument("original", type=click.Path(path_type=Path))
@click.argument("sanitized", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the findings as one JSON object on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="Only the verdict line (and errors).")
@click.option("-v", "--verbose", count=True, help="More detail on stderr.")
@click.option("--debug", is_flag=True, help="Debug logs and tracebacks on errors.")
@click.option("--temp-dir", type=click.Path(path_type=Path, file_okay=False, exists=True), metavar="PATH",
              help="Where scratch roots live (default: $TMPDIR or the system default).")
def verify(original, sanitized, as_json, quiet, verbose, debug, temp_dir):
    """Audit SANITIZED against ORIGINAL, independently of the sanitizer's code.

    Lines the two captures up frame by frame and checks every byte against the
    header policy with a dissector of its own: a byte the policy zeroes that
    survived unchanged, a pseudonym field (IP, MAC) holding its original value,
    a checksum that must be zero and is not, are findings (packet, offset,
    field). Also gathers from ORIGINAL every non-special IP and MAC, DNS names,
    HTTP Host/Cookie/Authorization values and query strings, and long printable
    payload strings, and searches SANITIZED for each (raw bytes, text forms,
    reverse-DNS names, case-insensitive text); what the policy keeps on purpose
    (TLS structure, HTTP heads) is listed as kept by policy, not as a leak.
    Exit 0 clean, 1 leaks found (or an input failed), 2 usage.
    """
    setup_logging(verbose, quiet, debug)
    from pktmask.core.temp_file_manager import get_temp_file_manager
    from pktmask.render import render_verify
    from pktmask.verify import verify as run_verify

    manager = get_temp_file_manager()
    manager.configure(temp_dir)
    code = EXIT_OK
    report = None
    with manager:
        try:
            manager.sweep_orphans()
            report = run_verify(original, sanitized, manager)
        except Exception as exc:  # noqa: BLE001 - the one place errors become exit codes
            code = fail(exc, debug)
    if report is not None:
        render_verify(report, as_json, quiet)
        code = EXIT_OK if report["clean"] else EXIT_FAILURE
    sys.exit(code)


@cli.group()
def temp() -> None:
    """Inspect and clean pktmask scratch roots of this user."""


@temp.command("status")
@click.option("--temp-dir", type=click.Path(path_type=Path, file_okay=False, exists=True), metavar="PATH",
              help="Where scratch roots live (default: $TMPDIR or the system default).")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def temp_status(temp_dir, as_json):
    """List this user's scratch roots: live, orphaned (owner dead) or kept."""
    from pktmask.core.run_root import list_roots
    from pktmask.core.temp_file_manager import get_temp_file_manager
    from pktmask.render import render_roots

    manager = get_temp_file_manager()
    manager.configure(temp_dir)
    render_roots(manager.temp_dir, list_roots(manager.temp_dir), as_json)


@temp.command("clean")
@click.option("--temp-dir", type=click.Path(path_type=Path, file_okay=False, exists=True), metavar="PATH",
              help="Where scratch roots live (default: $TMPDIR or the system default).")
def temp_clean(temp_dir):
    """Remove orphaned and kept scratch roots (owner dead); never a live one."""
    from pktmask.core.temp_file_manager import get_temp_file_manager

    manager = get_temp_file_manager()
    manager.configure(temp_dir)
    removed = manager.sweep_orphans(include_kept=True)
    for path in removed:
        click.echo(f"removed {path}")
    from pktmask.core.stdio import err

    err(f"{len(removed)} orphaned root(s) removed from {manager.temp_dir}")
