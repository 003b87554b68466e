"""Tests for the keyed, length-preserving name pseudonyms (pktmask.anon.names, docs/policy.md "Names")."""

from __future__ import annotations

import random
import string

import pytest

from pktmask.anon.names import NameMapper

KEY = bytes(range(32))
OTHER = bytes(range(1, 33))


@pytest.fixture(scope="module")
def m() -> NameMapper:
    return NameMapper(KEY)


def classes(s: bytes) -> list[str]:
    out = []
    for c in s:
        ch = chr(c)
        out.append("l" if ch.islower() else "u" if ch.isupper() else "d" if ch.isdigit() else ch)
    return out


def test_deterministic_per_key(m):
    name = b"secret-host.corp-internal.com"
    assert m.map_name(name) == m.map_name(name) == NameMapper(KEY).map_name(name)
    assert m.map_name(name) != name


def test_different_per_key(m):
    name = b"secret-host.corp-internal.com"
    assert m.map_name(name) != NameMapper(OTHER).map_name(name)
    assert m.map_label(b"secret-host", b"corp-internal.com") != NameMapper(OTHER).map_label(
        b"secret-host", b"corp-internal.com")


def test_key_must_be_32_bytes():
    with pytest.raises(ValueError):
        NameMapper(b"short")


@pytest.mark.parametrize("name", [b"secret-host.corp-internal.com", b"a1-b2.x9.example.net", b"WIN-PC42.corp.local",
                                  b"FILESRV01"])
def test_same_length_and_alphabet(m, name):
    out = m.map_name(name)
    assert len(out) == len(name)
    assert classes(out) == classes(name)  # letters stay letters of the same case, digits digits, '-' '.' stay


def test_case_pattern_kept_and_case_insensitive(m):
    low = m.map_name(b"secret-host.corp-internal.com")
    mixed = m.map_name(b"Secret-HOST.Corp-Internal.COM")
    assert mixed.lower() == low
    assert classes(mixed) == classes(b"Secret-HOST.Corp-Internal.COM")
    assert mixed.endswith(b".COM")  # the suffix as the input has it


def test_other_bytes_become_lowercase_letters(m):
    out = m.map_label(b"my printer!\xff", b"local")
    assert len(out) == 12 and out.isalpha() and out.islower()


@pytest.mark.parametrize("name,suffix", [
    (b"secret-host.corp-internal.com", b".com"),
    (b"www.secret.co.uk", b".co.uk"),
    (b"myproject.github.io", b".github.io"),  # private section
    (b"mail.secret.example", b".example"),  # special-use
    (b"printer.local", b".local"),
    (b"x.y.home.arpa", b".home.arpa"),
])
def test_public_suffix_kept(m, name, suffix):
    out = m.map_name(name)
    assert out.endswith(suffix)
    registrable = name[: -len(suffix)].rsplit(b".", 1)[-1]
    assert out[: -len(suffix)].rsplit(b".", 1)[-1] != registrable


def test_whole_public_suffix_kept_unknown_single_label_not(m):
    for name in (b"com", b"co.uk", b"github.io", b"localhost", b"local", b"in-addr.arpa"):
        assert m.map_name(name) == name
    assert m.map_name(b"FILESRV01") != b"FILESRV01"
    assert m.map_name(b"host.corp") != b"host.corp"  # unlisted top label: the whole name
    assert m.map_name(b"host.corp").split(b".")[1] != b"corp"


def test_wildcard_and_exception_rules(m):
    assert m.map_name(b"anything.ck") == b"anything.ck"  # *.ck
    assert m.map_name(b"www.ck") != b"www.ck"  # !www.ck: www.ck is registrable


def test_service_labels_kept(m):
    out = m.map_name(b"_sip._tcp.secret.example.com")
    assert out.startswith(b"_sip._tcp.") and out.endswith(b".com")
    assert m.map_name(b"_services._dns-sd._udp.local") == b"_services._dns-sd._udp.local"


def test_same_label_under_different_parents_differs(m):
    a = m.map_label(b"secret-host", b"corp-a.com")
    b = m.map_label(b"secret-host", b"corp-b.com")
    assert a != b
    assert m.map_name(b"www.corp-a.com").split(b".")[0] != m.map_name(b"www.corp-b.com").split(b".")[0]


def test_label_and_name_agree(m):
    name = b"deep.secret-host.corp-internal.com"
    out = m.map_name(name).split(b".")
    assert out[0] == m.map_label(b"deep", b"secret-host.corp-internal.com")
    assert out[1] == m.map_label(b"secret-host", b"corp-internal.com")
    assert out[2] == m.map_label(b"corp-internal", b"com")


def test_reverse_names(m):
    v4 = m.map_name(b"4.3.2.1.in-addr.arpa")
    assert v4.endswith(b".in-addr.arpa") and v4[:7].replace(b".", b"").isdigit()
    nibbles = ".".join("0123456789abcdef0123456789abcdef").encode() + b".ip6.arpa"
    v6 = m.map_name(nibbles)
    assert len(v6) == len(nibbles) and v6.endswith(b".ip6.arpa") and v6 != nibbles
    assert classes(v6) == classes(nibbles)  # digits stay digits, hex letters become letters


def test_trailing_dot(m):
    assert m.map_name(b"secret.corp-internal.com.") == m.map_name(b"secret.corp-internal.com") + b"."


def _chance(label: str) -> float:
    """The probability that a pseudonym of ``label`` equals it, at most: 10/256 per letter
    ('a' + b % 26 favours a letter at most 10 times in 256), 26/256 per digit, 1 per '-'."""
    p = 1.0
    for c in label:
        p *= 10 / 256 if c.isalpha() else 26 / 256 if c.isdigit() else 1.0
    return p


def test_no_fixed_points_beyond_chance(m):
    rng = random.Random(7)
    alpha = string.ascii_lowercase + string.digits
    fixed = 0
    expected = 0.0
    seen = set()
    for _ in range(10_000):
        labels = []
        for _ in range(rng.randint(1, 3)):
            size = rng.randint(1, 12)
            body = "".join(rng.choice(alpha + "-") if 0 < i < size - 1 else rng.choice(alpha) for i in range(size))
            labels.append(body)
        name = ".".join(labels) + ".com"
        out = m.map_name(name.encode()).decode()
        parent = "com"
        for label, new in zip(reversed(labels), reversed(out.split(".")[:-1]), strict=True):
            if (label, parent) not in seen:
                seen.add((label, parent))
                expected += _chance(label)
                fixed += label == new
            parent = label + "." + parent
    assert fixed <= 3 * expected + 10, (fixed, expected)


def test_cache_consistent_across_instances():
    a, b = NameMapper(KEY), NameMapper(KEY)
    names = [f"host{i}.secret-{i % 7}.corp.example.com".encode() for i in range(200)]
    assert [a.map_name(n) for n in names] == [b.map_name(n) for n in reversed(names)][::-1]
