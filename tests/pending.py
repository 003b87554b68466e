"""What the audit flags in today's `pktmask mask` output until the sanitizer follows the new
HTTP rules of docs/policy.md (header values by allowlist, request target cut at '?', '#' or ';').

`pktmask verify` already audits by those rules, so a sanitized capture with an HTTP head shows
findings in the fields the allowlist zeroes and the hostnames they hold. Tests that run
today's sanitizer then verify call ``assert_clean(report)``: strict once
MASK_HAS_HTTP_ALLOWLIST is True (flip it when the sanitizer's HTTP allowlist is merged), and
until then clean but for those HTTP fields and values.
"""

from __future__ import annotations

MASK_HAS_HTTP_ALLOWLIST = True
HTTP_FIELDS = ("http.value (", "http.request target", "http.ip literal")


def pending_only(report: dict, values: set[str] = frozenset()) -> bool:
    """Every finding is an HTTP field the allowlist zeroes; every leaked needle is in ``values``."""
    for f in report["findings"]:
        if not f["field"].startswith(HTTP_FIELDS):
            return False
    for name, cat in report["categories"].items():
        if name == "fields":
            continue
        if cat["leaks"] and not {ex["value"] for ex in cat["examples"]} <= set(values):
            return False
    return True


def assert_clean(report: dict, values: set[str] = frozenset()) -> None:
    """``report`` is clean, or (until the merge) flags only what today's HTTP masking keeps."""
    if MASK_HAS_HTTP_ALLOWLIST:
        assert report["clean"] is True, (report["findings"][:20], report["categories"])
    else:
        assert pending_only(report, values), (report["findings"][:20], report["categories"])
