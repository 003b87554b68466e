"""RFC 1624's +0 rule in pktmask.proto.checksum: field() and adjust()."""

from __future__ import annotations

from pktmask.proto.checksum import adjust, field


def test_field_plus_zero():
    assert field(0, udp=False) == 0x0000  # data summing to 0xFFFF: checksum 0x0000
    assert field(0xFFFF, udp=False) == 0x0000
    assert field(0, udp=True) == 0xFFFF  # UDP's 0x0000 means "none"
    assert field(1, udp=False) == 0xFFFE and field(1, udp=True) == 0xFFFE


def test_adjust_plus_zero():
    # A checksum of 0x1234 over data whose sum then grows by ~0x1234's complement: sum +0.
    assert adjust(0x1234, 0x1234, udp=False) == 0x0000
    assert adjust(0x1234, 0x1234, udp=True) == 0xFFFF
    assert adjust(0x1234, 0) == 0x1234
