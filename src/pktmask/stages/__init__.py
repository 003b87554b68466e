"""The pipeline stages, and the factory that builds the enabled ones in order."""

from __future__ import annotations

from pktmask.config import MaskConfig
from pktmask.core.pipeline.stage import Stage


def build_stages(config: MaskConfig) -> list[Stage]:
    """Return the enabled stages in the order dedup → anonymize → mask."""
    stages: list[Stage] = []
    names = addrs = None
    if config.dedup:
        from pktmask.stages.dedup import DeduplicationStage

        stages.append(DeduplicationStage(config.dedup_window))
    names = None
    if config.anonymize:
        from pktmask.stages.anonymize import AnonymizationStage

        assert config.key is not None, "the CLI resolves the key before building stages"
        anon = AnonymizationStage(config.key, anonymize_macs=config.anonymize_macs,
                                  masking=config.mask_payloads, compat=config.cryptopan_compat)
        stages.append(anon)
        # Masking keeps names and addresses inside TCP streams as their pseudonyms: the same maps.
        names, addrs = anon.rewriter.names, anon.rewriter.mapper
    if config.mask_payloads:
        from pktmask.stages.mask import MaskingStage

        stages.append(MaskingStage(names, addrs))
    return stages
