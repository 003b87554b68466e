"""AnonymizationStage: keyed prefix-preserving IP pseudonyms and MAC pseudonyms, everywhere."""

from __future__ import annotations

from pktmask.anon.cryptopan import AddressMapper
from pktmask.anon.macs import MacMapper
from pktmask.anon.names import NameMapper
from pktmask.anon.rewriter import Rewriter
from pktmask.capture.packet import Packet
from pktmask.core.pipeline.stage import FileContext, Stage
from pktmask.proto.layout import fast_layout
from pktmask.proto.link import check_linktype
from pktmask.proto.walk import walk


class AnonymizationStage(Stage):
    """Rewrites IPv4/IPv6 addresses (keyed prefix-preserving map), MACs (keyed pseudonyms) and
    the names in DNS messages (keyed length-preserving pseudonyms) in every frame.

    One instance serves a whole run, so every file gets the same mapping. The
    address map is the hardened one, or the reference Crypto-PAn with
    ``compat`` (``anon/cryptopan.py``). Raises UnsupportedLinkTypeError for a
    link type it cannot walk.
    """

    name = "anonymize"
    # Addresses are rewritten one-to-one and no packet is dropped: masking decides
    # the same keep ranges on original or rewritten packets, so its pre-pass skips us.
    prepass_transparent = True

    def __init__(self, key: bytes, anonymize_macs: bool = True, masking: bool = False,
                 compat: bool = False):
        if key is None:
            raise ValueError("anonymization needs a key")
        self.rewriter = Rewriter(AddressMapper(key, compat=compat),
                                 MacMapper(key) if anonymize_macs else None, NameMapper(key))
        self._linktypes: set[int] = set()
        self._lt = -1  # the link type checked last: the per-packet test is one comparison
        self._name = ""
        self._masking = masking  # whether a masking stage follows (decides netlink support)
        # With masking next, frames leave here with their original bytes, the rewrite in
        # ``Packet.patch`` / ``Packet.walk``: only the masker may come next (``plan_passes``).
        self.hands_off = masking
        self.frames_rewritten = 0
        self.dns_messages = 0  # counted here only when no masking stage follows (it counts them)

    def start(self, ctx: FileContext) -> None:
        self._name = ctx.name
        self._linktypes = set()
        self._lt = -1
        self.rewriter.reset_counts()
        self.frames_rewritten = 0
        self.dns_messages = 0

    def process(self, pkt: Packet) -> Packet:
        lt = pkt.linktype
        if lt != self._lt:
            if lt not in self._linktypes:
                check_linktype(lt, self._name, self._masking)
                self._linktypes.add(lt)
            self._lt = lt
        data = pkt.data
        layout = pkt.layout  # not ``pkt.layout or ...``: compiled, that re-boxes the tuple
        if layout is None:
            layout = pkt.layout = fast_layout(data, lt)
        if layout is not None:
            raw = data if isinstance(data, bytes) else bytes(data)  # bytes: native ops when compiled
            if self._masking and layout[5]:
                # The masking stage rebuilds this frame and recomputes its checksums
                # anyway: hand it the rewrite instead of copying the frame here.
                patch = pkt.patch = self.rewriter.patch(raw, layout[0], layout[4])
                if patch is not None:
                    self.frames_rewritten += 1
                return pkt
            new = self.rewriter.fast(raw, layout)
            if new is not None:
                pkt.data = new
                self.frames_rewritten += 1
            return pkt
        buf = bytearray(pkt.data)
        rewriter = self.rewriter
        rewriter.changed = False
        w = walk(buf, lt)
        if self._masking:
            # One walk for both: the masking stage, next in this pass, takes it over
            # (``MaskingStage._general``), and it recomputes from scratch the checksums
            # it owns, so the rewriter updates only the others.
            rewriter.apply(buf, w, True)
            pkt.walk = w
        else:
            rewriter.apply(buf, w, False)
            self.dns_messages += w.dns
        if rewriter.changed:
            pkt.data = buf
            self.frames_rewritten += 1
        return pkt

    def finish(self) -> dict[str, int]:
        counts = {"addresses_anonymized": self.rewriter.distinct, "frames_rewritten": self.frames_rewritten,
                  "names_pseudonymized": self.rewriter.names_mapped}
        if not self._masking:
            counts["dns_messages_kept"] = self.dns_messages
        return counts
