"""The run configuration the CLI builds and the core consumes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class MaskConfig:
    """Options of ``pktmask mask`` (README "Usage"); defaults are the safe-to-share choice."""

    anonymize: bool = True
    mask_payloads: bool = True
    dedup: bool = False
    dedup_window: int = 1000
    anonymize_macs: bool = True
    key: bytes | None = None  # the address and MAC key; never printed, logged or reported
    cryptopan_compat: bool = False  # the reference Crypto-PAn map instead of the hardened one
    force: bool = False

    @property
    def address_map(self) -> str | None:
        """The name of the address map the run uses (for the report); None without anonymization."""
        if not self.anonymize:
            return None
        from pktmask.anon.cryptopan import address_map_name

        return address_map_name(self.cryptopan_compat)
