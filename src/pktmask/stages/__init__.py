"""The pipeline stages, and the factory that builds the enabled ones in order."""

from __future__ import annotations

from pktmask.config import MaskConfig
from pktmask.core.pipeline.stage import Stage


def build_stages(config: MaskConfig) -> list[Stage]:
    """Return the enabled stages in the order dedup → anonymize → mask."""
    stages: list[Stage] = []
    if config.dedup:
        from pktmask.stages.dedup import DeduplicationStage

        stages.append(DeduplicationStage(config.dedup_window))
    if config.anonymize:
        from pktmask.stages.anonymize import AnonymizationStage

        assert config.key is not None, "the CLI resolves the key before building stages"
        stages.append(AnonymizationStage(config.key, anonymize_macs=config.anonymize_macs,
                                         masking=config.mask_payloads, compat=config.cryptopan_compat))
    if config.mask_payloads:
        from pktmask.stages.mask import MaskingStage

        names = None
        if config.anonymize:
            # Host names inside TCP streams (TLS SNI, certificates) are pseudonymized in the
            # masking pre-pass, which holds the reassembled stream: the map lives in memory here
            # and reaches the pre-pass child by fork, never through disk, argv or environment.
            from pktmask.anon.names import NameMapper

            assert config.key is not None
            names = NameMapper(config.key).map_name
        stages.append(MaskingStage(names))
    return stages
