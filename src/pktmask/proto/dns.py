"""DNS messages over UDP (ports 53, 5353 mDNS, 5355 LLMNR), parsed narrowly (docs/policy.md, "DNS").

``parse(buf, start, limit, size)`` reads the message at ``start`` and says,
without changing anything, what the policy does with its bytes: the header,
the questions and the records' fixed fields are kept; every label of every
name (question, owner names, and the names inside NS, CNAME, PTR, DNAME, MX,
SRV and SOA data) is listed in ``labels`` with its parent (the original
lowercased dotted name to its right, through compression pointers) for the
name map; A and AAAA data and the address of an EDNS Client Subnet option
are listed in ``addrs`` for the address map (``trim`` zeroes the ECS bits
past the source prefix length); the data of every other type and option
goes to ``zero``. ``stop`` is the first byte not understood (a malformed or
cut short part), or the end of the last record: the caller zeroes from
there to the end of the UDP payload.

Names are read label by label (one slice per label, no per-byte loop). A
compression pointer is followed only to a label, pointer or root byte of a
name read earlier in the message (whose resolved suffix is then known): a
pointer forward, into itself, into the header, into the middle of a label or
into data that is no name is malformed. So the parse never loops, and it
reads only length bytes, pointers and fixed fields, which the anonymizer
never changes: the walk of the anonymized frame finds the same structure as
the walk of the original. A name longer than 255 bytes is malformed.

DNS is known by its port only: a guess, walked only if the header's counts
fit the message (each question takes at least 5 bytes, each record 11);
``parse`` returns None otherwise and the whole payload is zeroed.
"""

from __future__ import annotations

from typing import Final

HEADER: Final = 12
PORTS: Final = frozenset({53, 5353, 5355})  # DNS, mDNS, LLMNR

T_A: Final = 1
T_NS: Final = 2
T_CNAME: Final = 5
T_SOA: Final = 6
T_PTR: Final = 12
T_MX: Final = 15
T_AAAA: Final = 28
T_SRV: Final = 33
T_DNAME: Final = 39
T_OPT: Final = 41
OPT_ECS: Final = 8  # EDNS Client Subnet (RFC 7871)
MAX_NAME: Final = 253  # the longest dotted name (255 bytes on the wire)
_ONE_NAME: Final = frozenset({T_NS, T_CNAME, T_PTR, T_DNAME})


class DnsMessage:
    """What the policy does with one message's bytes (see the module docstring)."""

    __slots__ = ("zero", "addrs", "trim", "labels", "stop")

    def __init__(self) -> None:
        self.zero: list[tuple[int, int]] = []
        self.addrs: list[tuple[int, bool, int]] = []  # (offset, IPv6, bytes): a prefix when short
        self.trim: list[tuple[int, int]] = []  # (offset, mask of the bits kept)
        self.labels: list[tuple[int, int, bytes]] = []  # (offset, length, parent)
        self.stop = 0


def parse(buf, start: int, limit: int, size: int) -> DnsMessage | None:
    """Parse the message at ``start``; ``size`` is its length by the UDP header, ``limit``
    where the capture of it ends (at most ``start + size``). None: not a plausible message."""
    if size < HEADER or limit - start < HEADER:
        return None
    qd = buf[start + 4] << 8 | buf[start + 5]
    rr = (buf[start + 6] << 8 | buf[start + 7]) + (buf[start + 8] << 8 | buf[start + 9]) + \
        (buf[start + 10] << 8 | buf[start + 11])
    if qd * 5 + rr * 11 > size - HEADER:
        return None
    p = _Parser(buf, start, limit)
    p.run(qd, rr)
    return p.m


class _Parser:
    __slots__ = ("buf", "start", "limit", "known", "m")

    def __init__(self, buf, start: int, limit: int):
        self.buf = buf
        self.start = start
        self.limit = limit
        # Offsets of the labels, pointers and root bytes of the names read so far -> the
        # lowercased dotted name from there: the only targets a pointer may have.
        self.known: dict[int, bytes] = {}
        self.m = DnsMessage()

    def run(self, qd: int, rr: int) -> None:
        m = self.m
        limit = self.limit
        o = self.start + HEADER
        for _ in range(qd):
            x = self.name(o, limit)
            if x < 0:
                m.stop = o
                return
            if x + 4 > limit:
                m.stop = x
                return
            o = x + 4  # QTYPE, QCLASS
        for _ in range(rr):
            x = self.name(o, limit)
            if x < 0:
                m.stop = o
                return
            if x + 10 > limit:
                m.stop = x
                return
            o = self.rdata(x + 10)
            if o < 0:
                return
        m.stop = o

    def name(self, o: int, limit: int) -> int:
        """Read the name at ``o`` (not past ``limit``) and list its labels; return the offset
        after it, or -1 if it is malformed (nothing is listed then)."""
        buf = self.buf
        known = self.known
        starts: list[int] = []
        lows: list[bytes] = []
        suffix = b""
        text = -1  # the dotted length of the labels read
        while True:
            if o >= limit:
                return -1
            c = buf[o]
            if c == 0:
                known[o] = b""
                o += 1
                break
            if c >= 0xC0:
                if o + 2 > limit:
                    return -1
                hit = known.get(self.start + ((c & 0x3F) << 8 | buf[o + 1]))
                if hit is None:
                    return -1
                suffix = hit
                known[o] = hit
                text += len(hit) + 1
                o += 2
                break
            if c > 63 or o + 1 + c > limit:
                return -1
            starts.append(o)
            lows.append(bytes(buf[o + 1 : o + 1 + c]).lower())
            text += c + 1
            o += 1 + c
        if text > MAX_NAME:
            return -1
        labels = self.m.labels
        parent = suffix
        for i in range(len(starts) - 1, -1, -1):
            a = starts[i]
            low = lows[i]
            labels.append((a + 1, len(low), parent))
            parent = low + b"." + parent if parent else low
            known[a] = parent
        return o

    def rdata(self, rd: int) -> int:
        """The record whose RDATA starts at ``rd`` (after its fixed fields); returns where the
        record ends, or -1 with ``stop`` set where it stops being understood."""
        buf = self.buf
        m = self.m
        rtype = buf[rd - 10] << 8 | buf[rd - 9]
        rend = rd + (buf[rd - 2] << 8 | buf[rd - 1])
        if rend > self.limit:
            m.stop = rd
            return -1
        if rtype == T_A or rtype == T_AAAA:
            if rend - rd != (4 if rtype == T_A else 16):
                m.stop = rd
                return -1
            m.addrs.append((rd, rtype == T_AAAA, rend - rd))
            return rend
        if rtype in _ONE_NAME:
            return self.names(rd, rend)
        if rtype == T_MX or rtype == T_SRV:
            fixed = rd + (2 if rtype == T_MX else 6)  # preference; priority, weight, port
            if fixed > rend:
                m.stop = rd
                return -1
            return self.names(fixed, rend)
        if rtype == T_SOA:  # two names, then the 20 bytes of serial and timers
            x = self.name(rd, rend)
            y = self.name(x, rend) if x >= 0 else -1
            if y < 0:
                m.stop = rd if x < 0 else x
                return -1
            if y + 20 != rend:
                m.stop = y
                return -1
            return rend
        if rtype == T_OPT:
            return self.options(rd, rend)
        m.zero.append((rd, rend))  # TXT, HINFO and every other type
        return rend

    def names(self, o: int, rend: int) -> int:
        """A name filling the RDATA up to ``rend``; returns ``rend``, or -1 with ``stop`` set
        (a name malformed or running past ``rend``, or bytes left over)."""
        m = self.m
        x = self.name(o, rend)
        if x < 0:
            m.stop = o
            return -1
        if x != rend:
            m.stop = x
            return -1
        return rend

    def options(self, o: int, rend: int) -> int:
        """OPT: each option's code and length kept; ECS's family and prefix lengths kept and
        its address mapped as a prefix; every other option's data zeroed."""
        buf = self.buf
        m = self.m
        while o < rend:
            if o + 4 > rend:
                m.stop = o
                return -1
            size = buf[o + 2] << 8 | buf[o + 3]
            end = o + 4 + size
            if end > rend:
                m.stop = o
                return -1
            if (buf[o] << 8 | buf[o + 1]) == OPT_ECS and size >= 4:
                self.ecs(o + 4, end)
            else:
                m.zero.append((o + 4, end))
            o = end
        return rend

    def ecs(self, o: int, end: int) -> None:
        """Client subnet: family, source and scope prefix lengths kept; the address bytes
        mapped as a prefix, bits past the source prefix length zeroed. An unknown family,
        or more address bytes than the family has: the address bytes zeroed."""
        buf = self.buf
        m = self.m
        family = buf[o] << 8 | buf[o + 1]
        bits = buf[o + 2]
        a = o + 4
        n = end - a
        if not n:
            return
        if (family != 1 or n > 4) and (family != 2 or n > 16):
            m.zero.append((a, end))
            return
        m.addrs.append((a, family == 2, n))
        for i in range(n):
            left = bits - 8 * i
            if left < 8:
                m.trim.append((a + i, (0xFF00 >> left) & 0xFF if left > 0 else 0))
