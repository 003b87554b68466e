"""The run configuration the CLI builds and the core consumes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class MaskConfig:
    """Options of ``pktmask mask`` (CONTRACT §1); defaults are the safe-to-share choice."""

    anonymize: bool = True
    mask_payloads: bool = True
    dedup: bool = False
    dedup_window: int = 1000
    anonymize_macs: bool = True
    key: bytes | None = None  # the Crypto-PAn key; never printed, logged or reported
    force: bool = False
