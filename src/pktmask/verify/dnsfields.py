"""The audit's own labels for a DNS message over UDP (ports 53, 5353 mDNS, 5355 LLMNR).

docs/policy.md (DNS over UDP), written independently of the sanitizer's DNS walker:

* KEEP: the 12-byte header (ID, flags, counts); QTYPE/QCLASS; TYPE, CLASS, TTL, RDLENGTH;
  every label length byte, compression pointer and terminating zero; the fixed fields of
  MX/SRV/SOA data; OPT option codes and lengths; ECS family and prefix lengths; labels of the
  public suffix and service labels ('_'), see ``names``;
* NAME: every other label's bytes (a pseudonym: unchanged is a finding, ``names.label_leaks``);
* ADDR4 / ADDR6: A / AAAA data; ECS4 / ECS6: an EDNS client-subnet address prefix;
* OTHER (must be zero): TXT, HINFO and every other record type's data, other EDNS options'
  data, bytes after the last record, and everything from the first byte not understood (a label
  length 0x40..0xBF, a pointer that does not point backwards, a name or record running past the
  message or past its RDLENGTH, a count promising more than the message holds).

Zero is never a finding, so a sanitizer that zeroes DNS outright is clean under these labels.
"""

from __future__ import annotations

from typing import Final

from pktmask.verify.labels import (
    ADDR4,
    ECS4,
    ECS6,
    KEEP,
    NAME,
    OTHER,
    Spans,
    group_kind,
    special_v4,
    special_v6,
)
from pktmask.verify.names import suffix_labels

DNS_PORTS: Final = frozenset({53, 5353, 5355})
HEADER: Final = 12
T_A, T_NS, T_CNAME, T_SOA, T_PTR, T_MX, T_AAAA, T_SRV, T_DNAME, T_OPT = 1, 2, 5, 6, 12, 15, 28, 33, 39, 41
ONE_NAME: Final = {T_NS: 0, T_CNAME: 0, T_PTR: 0, T_DNAME: 0, T_MX: 2, T_SRV: 6}  # fixed bytes, then a name
SOA_FIXED: Final = 20
OPT_ECS: Final = 8
ECS_SIZE: Final = {1: 4, 2: 16}  # family -> address size
POINTER: Final = 0xC0


class Malformed(Exception):
    """Carries the offset of the first byte not understood."""

    def __init__(self, at: int):
        super().__init__(at)
        self.at = at


class DnsLabeler:
    """Labels one message ``buf[start:end]`` into ``spans`` (see the module docstring)."""

    def __init__(self, buf: bytes, start: int, end: int, spans: Spans):
        self.buf, self.start, self.end, self.s = buf, start, end, spans

    def run(self) -> None:
        start, end = self.start, self.end
        try:
            self.message()
        except Malformed as exc:
            self.s.add(exc.at, end, OTHER, "dns (not understood)")
        except IndexError:  # a read past the captured bytes: the rest is not understood
            self.s.add(start, end, OTHER, "dns (not understood)")

    def message(self) -> None:
        buf, add, end = self.buf, self.s.add, self.end
        m = self.start
        if end - m < HEADER:
            raise Malformed(m)
        add(m, m + HEADER, KEEP, "")
        qd = buf[m + 4] << 8 | buf[m + 5]
        rr = (buf[m + 6] << 8 | buf[m + 7]) + (buf[m + 8] << 8 | buf[m + 9]) + (buf[m + 10] << 8 | buf[m + 11])
        p = m + HEADER
        for _ in range(qd):
            p = self.name(p, end)
            self.fixed(p, 4, end)
            p += 4
        for _ in range(rr):
            p = self.name(p, end)
            self.fixed(p, 10, end)
            rtype = buf[p] << 8 | buf[p + 1]
            rd = p + 10
            stop = rd + (buf[p + 8] << 8 | buf[p + 9])
            if stop > end:
                raise Malformed(rd)
            self.rdata(rtype, rd, stop)
            p = stop
        self.s.add(p, end, OTHER, "dns (after the last record)")

    def fixed(self, p: int, size: int, limit: int) -> None:
        if p + size > limit:
            raise Malformed(p)
        self.s.add(p, p + size, KEEP, "")

    # ---- names -----------------------------------------------------------------------
    def name(self, p: int, limit: int) -> int:
        """Label the name stored at ``p`` (not past ``limit``); return where it ends. When the
        name turns out malformed, the labels stored before the bad byte are labelled (all as
        pseudonyms: without its end the suffix is unknown) and Malformed names that byte."""
        buf = self.buf
        inline: list[tuple[int, int]] = []  # (offset of the label bytes, length)
        try:
            while True:
                if p >= limit:
                    raise Malformed(p)
                size = buf[p]
                if size == 0:
                    tail: list[bytes] = []
                    stop = p + 1
                    break
                if size & POINTER == POINTER:
                    if p + 2 > limit:
                        raise Malformed(p)
                    tail = self.resolve(p)
                    stop = p + 2
                    break
                if size & POINTER:
                    raise Malformed(p)  # 0x40 / 0x80 label types: obsolete, not understood
                if p + 1 + size > limit:
                    raise Malformed(p)
                inline.append((p + 1, size))
                p += 1 + size
        except Malformed:
            self.labels(inline, len(inline))
            raise
        labels = tuple(bytes(buf[a:a + k]).lower() for a, k in inline) + tuple(tail)
        self.labels(inline, len(labels) - suffix_labels(labels))
        self.s.add(p, stop, KEEP, "")  # the terminating zero or the pointer
        return stop

    def labels(self, inline: list[tuple[int, int]], keep_from: int) -> None:
        """Length bytes kept; label bytes kept from index ``keep_from`` on (the public suffix)
        and for service labels ('_'), pseudonyms otherwise."""
        buf, add = self.buf, self.s.add
        group = []
        for i, (a, k) in enumerate(inline):
            add(a - 1, a, KEEP, "")
            kept = i >= keep_from or buf[a] == 0x5F
            add(a, a + k, KEEP if kept else NAME, "dns.name label")
            if not kept:
                group.append((a, a + k))
        if len(group) > 1:
            self.s.names.append(group)

    def resolve(self, at: int) -> list[bytes]:
        """The labels a compression pointer at ``at`` stands for; every pointer must point
        backwards (before the pointer itself), so the walk ends."""
        buf, m, end = self.buf, self.start, self.end
        out: list[bytes] = []
        here = at
        q = m + ((buf[at] & 0x3F) << 8 | buf[at + 1])
        while True:
            if q >= here:
                raise Malformed(at)  # points forward or at itself: a loop
            size = buf[q]
            if size == 0:
                return out
            if size & POINTER == POINTER:
                if q + 2 > end:
                    raise Malformed(at)
                here = q
                q = m + ((buf[q] & 0x3F) << 8 | buf[q + 1])
                continue
            if size & POINTER or q + 1 + size > end:
                raise Malformed(at)
            out.append(bytes(buf[q + 1:q + 1 + size]).lower())
            q += 1 + size

    # ---- record data ------------------------------------------------------------------
    def rdata(self, rtype: int, rd: int, stop: int) -> None:
        buf, add = self.buf, self.s.add
        size = stop - rd
        if rtype == T_A and size == 4:
            add(rd, stop, ADDR4, "dns.a")
        elif rtype == T_AAAA and size == 16:
            add(rd, stop, group_kind(buf[rd:stop]), "dns.aaaa")
        elif rtype in ONE_NAME:
            fixed = ONE_NAME[rtype]
            if size < fixed + 1:
                raise Malformed(rd)
            add(rd, rd + fixed, KEEP, "")
            self.exact(self.name(rd + fixed, stop), stop)
        elif rtype == T_SOA:
            p = self.name(self.name(rd, stop), stop)
            self.fixed(p, SOA_FIXED, stop)
            self.exact(p + SOA_FIXED, stop)
        elif rtype == T_OPT:
            self.options(rd, stop)
        elif size:
            add(rd, stop, OTHER, f"dns.rdata (type {rtype})")

    @staticmethod
    def exact(p: int, stop: int) -> None:
        if p != stop:
            raise Malformed(p)  # the data does not fill its RDLENGTH

    def options(self, p: int, stop: int) -> None:
        buf, add = self.buf, self.s.add
        while p < stop:
            self.fixed(p, 4, stop)
            code, size = buf[p] << 8 | buf[p + 1], buf[p + 2] << 8 | buf[p + 3]
            q, e = p + 4, p + 4 + size
            if e > stop:
                raise Malformed(q)
            if code == OPT_ECS and size >= 4:
                family = buf[q] << 8 | buf[q + 1]
                full = ECS_SIZE.get(family, 0)
                add(q, q + 4, KEEP, "")
                if 0 < size - 4 <= full:
                    add(q + 4, e, ECS4 if family == 1 else ECS6, "dns.opt.ecs address")
                else:
                    add(q + 4, e, OTHER, "dns.opt.ecs address")
            else:
                add(q, e, OTHER, f"dns.opt[{code}].data")
            p = e


def label_dns(buf: bytes, start: int, end: int, spans: Spans) -> None:
    """Label the DNS message ``buf[start:end]`` (see the module docstring)."""
    DnsLabeler(buf, start, end, spans).run()


def ecs_findings(o: bytes, s: bytes, a: int, b: int) -> str | None:
    """The kind of finding (``"not mapped"`` / ``"not zero"``) for the ECS address ``[a, b)``
    of ORIGINAL ``o`` and SANITIZED ``s``, or None. The option's family and source prefix
    length are the 4 bytes before it: bits past the prefix must be zero; the prefix must differ
    from the original unless it is special (kept), zero, or under 14 bits (a same-prefix
    pseudonym is then too likely: names.MAX_COLLISION)."""
    family, source = o[a - 4] << 8 | o[a - 3], o[a - 2]
    full = ECS_SIZE[family]
    bits = min(source, 8 * (b - a))
    sv = int.from_bytes(s[a:b], "big")
    ov = int.from_bytes(o[a:b], "big")
    width = 8 * (b - a)
    past = (1 << (width - bits)) - 1
    if sv & past:
        return "not zero"
    padded = o[a:b] + bytes(full - (b - a))
    special = special_v4(padded) if full == 4 else special_v6(padded)
    if bits >= 14 and sv == ov & ~past and ov >> (width - bits) and not special:
        return "not mapped"
    return None
