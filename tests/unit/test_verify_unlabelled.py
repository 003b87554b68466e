"""The audit fails closed: bytes its dissector leaves unlabelled count as must-be-zero
(docs/dev/ARCHITECTURE.md, "The independent audit"), at the end of a frame too.

The dissector labels every byte of the frames the tests build, so the net under it was never
exercised: an audit that skipped an unlabelled frame end went unnoticed (issue 17). Here the
dissector is made to forget a trailer, a frame's last span; the unchanged trailer in an
unsanitized copy must still be reported, as unlabelled.
"""

from __future__ import annotations

from scapy.all import IP, TCP, Ether

from captures import write_pcap
from pktmask.core.temp_file_manager import TempFileManager
from pktmask.verify import audit

TRAILER = b"SECRET-TRAILER!!"


def test_an_unlabelled_frame_end_is_audited(tmp_path, monkeypatch):
    frame = bytes(Ether(src="02:00:00:00:00:07", dst="02:00:00:00:00:09")
                  / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(flags="A")) + TRAILER
    original = write_pcap(tmp_path / "orig.pcap", [frame])
    copy = bytearray(frame)
    copy[:12] = bytes.fromhex("02aaaaaaaaaa02bbbbbbbbbb")  # MACs mapped, the rest left as it was
    sanitized = write_pcap(tmp_path / "copy.pcap", [bytes(copy)])

    real = audit.Walker.frame

    def forgetful(self, data, linktype):
        spans = real(self, data, linktype)
        spans.items = [item for item in spans.items if item[0] < len(frame) - len(TRAILER)]
        return spans

    monkeypatch.setattr(audit.Walker, "frame", forgetful)
    (tmp_path / "tmp").mkdir()
    manager = TempFileManager(temp_dir=tmp_path / "tmp")
    try:
        report = audit.verify(original, sanitized, manager)
    finally:
        manager.cleanup_all()
    fields = report["categories"]["fields"]
    assert report["clean"] is False and fields["leaks"] >= 1
    assert {(ex["value"], ex["where"]) for ex in fields["examples"]} == {("unlabelled", f"offset {len(frame) - 16}")}
