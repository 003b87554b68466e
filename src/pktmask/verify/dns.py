"""A small, bounds-checked DNS message reader for the leak audit.

``read_message(msg)`` returns the names a DNS/mDNS/LLMNR message carries —
questions, the owner names of every resource record, and the names inside
CNAME/PTR/NS/DNAME/MX/SRV/SOA data — plus the addresses of A/AAAA records.
Compression pointers are followed with a hop limit, so a pointer loop (even
one pointing at itself) ends. Nothing here raises on malformed input: a
message cut short yields what was read before the cut.
"""

from __future__ import annotations

from typing import NamedTuple

MAX_HOPS = 32  # compression pointers followed per name; more means a loop
MAX_NAME = 255  # RFC 1035 limit on a name's wire length
MAX_LABEL = 63
MAX_RECORDS = 512  # records read per message: a bound against crafted counts
HEADER = 12

# Record types whose data starts (at the given offset) with one or two names.
_NAME_AT = {2: 0, 5: 0, 12: 0, 39: 0, 15: 2, 33: 6}  # NS CNAME PTR DNAME MX SRV
_SOA = 6
_A, _AAAA = 1, 28


class DnsContent(NamedTuple):
    """Names (lower-cased, dotted, no trailing dot) and A/AAAA addresses of one message."""

    names: list[bytes]
    addresses: list[bytes]


def read_name(msg: bytes, off: int) -> tuple[bytes | None, int]:
    """Read the (possibly compressed) name at ``msg[off]``.

    Returns ``(name, end)``: the lower-cased dotted name (``b""`` for the root)
    and the offset just past the name where it is stored, or ``(None, -1)``
    when the name is malformed (runs off the end, loops, too long, uses an
    unknown label type).
    """
    n = len(msg)
    labels: list[bytes] = []
    end = -1
    hops = 0
    size = 1
    pos = off
    while True:
        if pos < 0 or pos >= n:
            return None, -1
        length = msg[pos]
        if length == 0:
            if end < 0:
                end = pos + 1
            break
        if length & 0xC0 == 0xC0:
            if pos + 1 >= n:
                return None, -1
            if end < 0:
                end = pos + 2
            hops += 1
            if hops > MAX_HOPS:
                return None, -1
            pos = ((length & 0x3F) << 8) | msg[pos + 1]
            continue
        if length > MAX_LABEL or pos + 1 + length > n:
            return None, -1  # 0x40/0x80 label types are obsolete: treat as garbage
        size += length + 1
        if size > MAX_NAME:
            return None, -1
        labels.append(msg[pos + 1 : pos + 1 + length])
        pos += 1 + length
    return b".".join(labels).lower(), end


def read_message(msg: bytes) -> DnsContent:
    """Read the names and addresses of one DNS message (see the module docstring)."""
    msg = bytes(msg)
    out = DnsContent([], [])
    n = len(msg)
    if n < HEADER:
        return out
    qd = (msg[4] << 8) | msg[5]
    rr = ((msg[6] << 8) | msg[7]) + ((msg[8] << 8) | msg[9]) + ((msg[10] << 8) | msg[11])
    pos = HEADER
    for _ in range(min(qd, MAX_RECORDS)):
        name, pos = read_name(msg, pos)
        if name is None:
            return out
        _add(out, name)
        pos += 4  # type, class
        if pos > n:
            return out
    for _ in range(min(rr, MAX_RECORDS)):
        name, pos = read_name(msg, pos)
        if name is None or pos + 10 > n:
            return out
        _add(out, name)
        rtype = (msg[pos] << 8) | msg[pos + 1]
        rdlen = (msg[pos + 8] << 8) | msg[pos + 9]
        rd = pos + 10
        pos = rd + rdlen
        if pos > n:
            return out
        at = _NAME_AT.get(rtype)
        if at is not None:
            if rdlen > at:
                _add(out, read_name(msg, rd + at)[0])
        elif rtype == _SOA:
            mname, after = read_name(msg, rd)
            _add(out, mname)
            if mname is not None:
                _add(out, read_name(msg, after)[0])
        elif (rtype == _A and rdlen == 4) or (rtype == _AAAA and rdlen == 16):
            out.addresses.append(msg[rd:pos])
    return out


def _add(out: DnsContent, name: bytes | None) -> None:
    if name and name not in out.names:
        out.names.append(name)


def to_wire(name: bytes) -> bytes | None:
    """The uncompressed wire form of a dotted name, without the root label.

    Left without the final zero byte so that it also matches a name whose
    tail is stored as a compression pointer. Returns None for a name that
    has an empty or over-long label.
    """
    parts = []
    for label in name.split(b"."):
        if not 0 < len(label) <= MAX_LABEL:
            return None
        parts.append(bytes([len(label)]) + label)
    return b"".join(parts)
