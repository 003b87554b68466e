"""Tests for pktmask.anon.macs: keyed MAC pseudonyms."""

from __future__ import annotations

import hashlib
import hmac
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pktmask.anon.macs import MacMapper

KEY = bytes(range(32))
BROADCAST = b"\xff" * 6
ZERO = b"\x00" * 6

macs = st.binary(min_size=6, max_size=6).filter(lambda m: m not in (BROADCAST, ZERO))


def _random_macs(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(6) for _ in range(count)]


def _expected(key: bytes, mac: bytes) -> bytes:
    """The documented derivation, computed with the standard library's HMAC."""
    subkey = hmac.new(key, b"pktmask mac v1", hashlib.sha256).digest()
    digest = hmac.new(subkey, mac, hashlib.sha256).digest()
    return bytes([(digest[0] & 0xFC) | 0x02 | (mac[0] & 0x01)]) + digest[1:6]


def test_matches_documented_derivation() -> None:
    # Pins the derivation so pseudonyms stay stable across releases.
    mapper = MacMapper(KEY)
    for mac in [
        bytes.fromhex("001122334455"),
        bytes.fromhex("01005e7ffffa"),
        *_random_macs(300, 0),
    ]:
        assert mapper.map(mac) == _expected(KEY, mac)
    other = bytes(range(100, 132))
    assert MacMapper(other).map(b"\x00\x01\x02\x03\x04\x05") == _expected(
        other, b"\x00\x01\x02\x03\x04\x05"
    )


def test_deterministic_across_instances() -> None:
    first, second = MacMapper(KEY), MacMapper(bytearray(KEY))
    for mac in _random_macs(500, 1):
        assert first.map(mac) == second.map(mac) == first.map(mac)


@pytest.mark.parametrize("mac", [BROADCAST, ZERO])
def test_broadcast_and_zero_kept(mac: bytes) -> None:
    mapper = MacMapper(KEY)
    assert mapper.map(mac) == mac
    assert mapper.map(mac) == mac  # cached path too
    assert mapper.distinct == 0


@given(mac=macs)
def test_group_bit_kept_and_local_bit_set(mac: bytes) -> None:
    out = MacMapper(KEY).map(mac)
    assert len(out) == 6
    assert out[0] & 0x01 == mac[0] & 0x01
    assert out[0] & 0x02


def test_group_bit_kept_for_both_values() -> None:
    mapper = MacMapper(KEY)
    unicast = [m for m in _random_macs(400, 2) if not m[0] & 1]
    multicast = [m for m in _random_macs(400, 3) if m[0] & 1] + [bytes.fromhex("01005e000001")]
    assert unicast and multicast
    assert all(not mapper.map(m)[0] & 1 for m in unicast)
    assert all(mapper.map(m)[0] & 1 for m in multicast)
    assert all(mapper.map(m)[0] & 2 for m in unicast + multicast)


def test_different_keys_differ() -> None:
    one, two = MacMapper(KEY), MacMapper(bytes(32))
    sample = _random_macs(200, 4)
    assert sum(one.map(m) != two.map(m) for m in sample) == len(sample)


def test_no_collisions() -> None:
    mapper = MacMapper(KEY)
    sample = set(_random_macs(10_000, 5)) - {BROADCAST, ZERO}
    assert len({mapper.map(m) for m in sample}) == len(sample)


def test_output_differs_from_input() -> None:
    mapper = MacMapper(KEY)
    # Includes locally-administered inputs, which already carry the U/L bit.
    sample = _random_macs(2000, 6) + [bytes.fromhex("020000000001"), bytes.fromhex("001b21aabbcc")]
    assert all(mapper.map(m) != m for m in sample)


def test_cache_eviction_does_not_change_results() -> None:
    sample = _random_macs(300, 7)
    big, tiny = MacMapper(KEY), MacMapper(KEY, cache_size=5)
    expected = [big.map(m) for m in sample]
    for _ in range(3):
        assert [tiny.map(m) for m in sample] == expected
    assert len(tiny._cache) <= 5
    assert tiny.distinct == big.distinct == len(set(sample))


def test_distinct_counter() -> None:
    mapper = MacMapper(KEY, cache_size=2)
    seq = [
        bytes.fromhex(h) for h in ["001122334455", "001122334456", "001122334455", "ffffffffffff"]
    ]
    for mac in seq * 3:
        mapper.map(mac)
    assert (mapper.distinct, mapper.distinct_exact) == (2, True)


def test_distinct_stops_at_limit() -> None:
    mapper = MacMapper(KEY, distinct_limit=3)
    for i in range(3):
        mapper.map(bytes([0, 0, 0, 0, 0, i + 1]))
    assert (mapper.distinct, mapper.distinct_exact) == (3, True)
    mapper.map(bytes([0, 0, 0, 0, 0, 99]))
    assert (mapper.distinct, mapper.distinct_exact) == (3, False)


@pytest.mark.parametrize("bad", [b"", b"\x00" * 5, b"\x00" * 7, b"\xff" * 8])
def test_wrong_length_rejected(bad: bytes) -> None:
    with pytest.raises(ValueError):
        MacMapper(KEY).map(bad)


@pytest.mark.parametrize("bad", [b"", b"\x00" * 16, b"\x00" * 33, "k" * 32])
def test_bad_key_rejected(bad: object) -> None:
    with pytest.raises(ValueError):
        MacMapper(bad)  # type: ignore[arg-type]


def test_cache_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        MacMapper(KEY, cache_size=0)
