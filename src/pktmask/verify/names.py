"""Which labels of a name the policy keeps, and when an unchanged label is worth a finding.

docs/policy.md (names): a name keeps its public suffix (the longest matching rule of the Public
Suffix List, ICANN and private sections, from the ``publicsuffixlist`` package: no network)
and the special-use suffixes below; labels starting with '_' (service labels) are kept; every
other label is replaced by a pseudonym of the same length. A name with no matching rule has no
public suffix (``FILESRV01``, ``host.corp``): all its labels are pseudonymized. Written here
from the policy, not imported from the sanitizer's name map, so a mistake there is not
repeated here.

A pseudonym keeps the shape of its label (a letter becomes one of 26 letters, a digit one of
10 digits, '-' and '_' stay, any other byte becomes a letter), so it equals the original by
chance with probability ``collision(label)``. An unchanged label is a finding only when that
chance is at most ``MAX_COLLISION`` (1 in 10,000): three letters, four digits, "ab12"... A
shorter label ("a", "42", a reverse-name octet) equals its pseudonym too often to call it a
leak; the whole name then still counts: when all its pseudonymized labels survive and their
chances multiply to at most MAX_COLLISION (a reverse name's four octets), the audit reports
the name (``audit.Aligned.name_group``), and such a name is a needle searched in SANITIZED.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final

from publicsuffixlist import PublicSuffixList

MAX_COLLISION: Final = 1e-4
# Special-use suffixes kept even where the list does not have them (RFC 6761, RFC 6762, RFC 8375).
SPECIAL_USE: Final = frozenset(
    b"local localhost invalid test example arpa home.arpa in-addr.arpa ip6.arpa".split())

_PSL = PublicSuffixList(accept_unknown=False)  # no matching rule: no public suffix


def _psl_labels(labels: tuple[bytes, ...]) -> int:
    """How many trailing labels the Public Suffix List makes the public suffix (0: none)."""
    try:
        text = b".".join(labels).decode("ascii")
    except UnicodeDecodeError:
        return 0
    found = _PSL.publicsuffix(text)
    return 0 if found is None else found.count(".") + 1


@lru_cache(maxsize=1 << 16)
def reads_as_host(segment: bytes) -> bool:
    """Whether a (lower-cased) URL path segment reads as a host name: labels ending in a public
    or special-use suffix, with at least one label before it."""
    labels = tuple(segment.rstrip(b".").split(b"."))
    if len(labels) < 2 or not all(labels):
        return False
    return labels[-1] in SPECIAL_USE or 0 < _psl_labels(labels) < len(labels)


@lru_cache(maxsize=1 << 16)
def suffix_labels(labels: tuple[bytes, ...]) -> int:
    """How many trailing labels of the (lower-cased) name ``labels`` the policy keeps as its suffix.

    Only the trailing labels that are plain text (non-empty, no '.') are looked up: a label with
    a dot in it would split wrongly, so the suffix stops there.
    """
    tail = len(labels)
    while tail and labels[tail - 1] and b"." not in labels[tail - 1]:
        tail -= 1
    usable = labels[tail:]
    if not usable:
        return 0
    best = _psl_labels(usable)
    for k in range(1, min(len(usable), 2) + 1):
        if b".".join(usable[-k:]) in SPECIAL_USE and k > best:
            best = k
    return best


@lru_cache(maxsize=1 << 16)
def kept_tail(labels: tuple[bytes, ...]) -> int:
    """How many trailing labels of the (lower-cased) name ``labels`` stay as they are by the
    policy's exact rule: the longest tail all of whose tails are public suffixes (or
    special-use), so a listed suffix under a registrable domain (``s3-eu-west-1.amazonaws.com``)
    keeps only its tails that are public (``com``). Stricter than ``suffix_labels``."""
    k = 0
    for i in range(1, len(labels) + 1):
        tail = labels[-i:]
        if not all(tail):
            break
        try:
            text = b".".join(tail).decode("ascii")
        except UnicodeDecodeError:
            break
        if text.encode() not in SPECIAL_USE and not _PSL.is_public(text, accept_unknown=False):
            break
        k = i
    return k


def collision(label: bytes) -> float:
    """The chance that a same-shape pseudonym of ``label`` equals it (see the module docstring)."""
    p = 1.0
    for c in label.lower():
        if 0x61 <= c <= 0x7A:
            p /= 26
        elif 0x30 <= c <= 0x39:
            p /= 10
        elif c not in (0x2D, 0x5F):
            return 0.0  # becomes a letter: never equal
    return p


def label_leaks(label: bytes) -> bool:
    """Would ``label`` (a pseudonymized one) leak if it survived unchanged?"""
    return collision(label) <= MAX_COLLISION


def pseudonymized(labels: tuple[bytes, ...]) -> list[int]:
    """Indexes of the labels of ``labels`` (lower-cased) that the policy pseudonymizes."""
    keep = suffix_labels(labels)
    return [i for i in range(len(labels) - keep) if not labels[i].startswith(b"_")]


def name_worth_searching(name: bytes) -> bool:
    """Is the dotted ``name`` worth a needle: not only suffix/service labels, and its pseudonym
    (all its pseudonymized labels together) equals it by chance at most MAX_COLLISION?"""
    labels = tuple(name.lower().split(b"."))
    if not all(labels):
        labels = tuple(x for x in labels if x)
    idx = pseudonymized(labels)
    if not idx:
        return False
    p = 1.0
    for i in idx:
        p *= collision(labels[i])
    return p <= MAX_COLLISION
