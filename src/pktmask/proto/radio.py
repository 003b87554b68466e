"""The radio headers in front of 802.11 frames: radiotap (127), PPI (192), Prism (119), AVS (163).

Part of the one encapsulation walker (walk.py; docs/policy.md, "802.11"). Each function walks
its header at the start of the frame, kept field by field where the header's specification
defines the field (rates, channels, signal levels, timers, flags), and hides everything else:
vendor namespaces and vendor data, fields we cannot size, device names, GPS and process
records, padding and leftovers. Lengths, type codes and presence bitmaps stay, so tshark still
parses the header. Each returns where the 802.11 frame starts and what the header says about
its FCS (``Radio``); a header that cannot be read is hidden whole and nothing follows it.
"""

from __future__ import annotations

from typing import Final, NamedTuple

from pktmask.proto.walk_base import F_MAC, WalkerBase, _from

# radiotap.org: required alignment and size of the fields of the default namespace, by bit.
_RT_ALIGN: Final = (8, 1, 1, 2, 1, 1, 1, 2, 2, 2, 1, 1, 1, 1, 2, 2, 1, 1, 4, 1, 4, 2, 8, 2, 2, 2, 1, 2)
_RT_SIZE: Final = (8, 1, 1, 4, 2, 1, 1, 2, 2, 2, 1, 1, 1, 1, 2, 2, 1, 1, 8, 3, 8, 12, 12, 12, 12, 6, 1, 4)
RT_FLAGS: Final = 1  # the Flags field
RT_TLV: Final = 28  # radiotap 2.0: type-length-value items to the end of the header
RT_NS_RADIOTAP: Final = 29
RT_NS_VENDOR: Final = 30
RT_EXT: Final = 31
# Bits of the radiotap Flags field.
RT_F_DATAPAD: Final = 0x20  # padding between the 802.11 header and its body, to 32 bits
RT_F_FCS: Final = 0x10  # the frame ends with its FCS
RT_F_BADFCS: Final = 0x40

PPI_ALIGNED: Final = 0x01  # PPI header flag: fields padded to 32 bits
# PPI field types kept, with their defined lengths: 802.11-Common, 802.11n MAC extensions,
# 802.11n MAC+PHY, aggregation (interface index), 802.3 extensions.
PPI_KEPT: Final = frozenset({(2, 20), (3, 12), (4, 48), (8, 4), (9, 8)})
PPI_COMMON: Final = 2
PPI_F_FCS: Final = 0x0001  # 802.11-Common flags
PPI_F_BADFCS: Final = 0x0004

PRISM_ITEMS: Final = 24  # message code, message length, 16-byte device name
# The DIDs of the ten defined items (host time, MAC time, channel, RSSI, SQ, signal, noise,
# rate, istx, frame length) in both numberings drivers use: 0x000N0044 and 0x0000N041.
PRISM_DIDS: Final = frozenset([(i << 16) | 0x44 for i in range(1, 11)] + [(i << 12) | 0x41 for i in range(1, 11)])

AVS_V1: Final = 0x80211001
AVS_V2: Final = 0x80211002
AVS_V1_SIZE: Final = 64  # version, length, MAC time, host time, 10 radio words
AVS_V2_SIZE: Final = 80  # + sequence, drops, receiver address, 2 padding bytes


class Radio(NamedTuple):
    """Where the 802.11 frame starts (-1: nowhere) and what the radio header says of it."""

    start: int
    fcs: bool  # the frame ends with a 4-byte FCS
    bad_fcs: bool  # ... that the receiver found bad
    datapad: bool  # the body is padded to 32 bits after the MAC header
    dlt: int  # the link type of the frame (PPI names it; 105 for the others)


_NONE: Final = Radio(-1, False, False, False, 0)


def radiotap(wk: WalkerBase, size: int) -> Radio:
    """A radiotap header: version, pad, length, the present bitmaps, then the fields they name."""
    buf = wk.buf
    if size < 8 or buf[0] != 0:
        wk.hide(0, size)
        return _NONE
    hlen = _from(buf[2:4], "little")
    if hlen < 8 or hlen > size:
        wk.hide(0, size)
        return _NONE
    wk.hide(1, 2)  # pad
    words: list[int] = []
    o = 4
    while True:
        if o + 4 > hlen:
            wk.hide(o, hlen)
            return Radio(hlen, False, False, False, 105)
        word = _from(buf[o : o + 4], "little")
        words.append(word)
        o += 4
        if not word >> RT_EXT & 1:
            break
    flags = fields(wk, o, hlen, words)
    return Radio(hlen, bool(flags & RT_F_FCS), bool(flags & RT_F_BADFCS), bool(flags & RT_F_DATAPAD), 105)


def fields(wk: WalkerBase, o: int, hlen: int, words: list[int]) -> int:
    """The radiotap fields from ``o`` on, named by the present ``words``: kept when defined,
    with alignment padding hidden; a vendor namespace's data hidden (its OUI, sub-namespace
    and skip length kept); from a field we cannot size on, everything hidden. Returns the
    Flags field (0 if absent)."""
    buf = wk.buf
    flags = 0
    vendor = False
    base = 0
    for word in words:
        if not vendor:
            for bit in range(RT_NS_RADIOTAP):
                if not word >> bit & 1:
                    continue
                idx = base + bit
                if idx == RT_TLV:
                    tlvs(wk, o, hlen)
                    return flags
                if idx > RT_TLV:  # not defined (fields past 32 are TLVs only): size unknown
                    wk.hide(o, hlen)
                    return flags
                align = _RT_ALIGN[idx]
                at = (o + align - 1) & -align
                if at + _RT_SIZE[idx] > hlen:
                    wk.hide(o, hlen)
                    return flags
                wk.hide(o, at)  # alignment padding
                if idx == RT_FLAGS:
                    flags = buf[at]
                o = at + _RT_SIZE[idx]
        if word >> RT_NS_RADIOTAP & 1:
            vendor = False
            base = 0
        elif word >> RT_NS_VENDOR & 1:
            at = (o + 1) & -2
            if at + 6 > hlen:
                wk.hide(o, hlen)
                return flags
            wk.hide(o, at)
            o = at + 6 + _from(buf[at + 4 : at + 6], "little")  # OUI, sub-namespace, skip length kept
            wk.hide(at + 6, min(o, hlen))  # the vendor's data
            if o > hlen:
                return flags
            vendor = True
            base = 0
        else:
            base += 32
    wk.hide(o, hlen)  # bytes no field accounts for
    return flags


def tlvs(wk: WalkerBase, o: int, end: int) -> None:
    """Radiotap 2.0 TLVs (from 4-byte alignment to the end of the header): type and length
    kept, the data hidden (U-SIG, EHT, S1G, vendor TLVs...)."""
    buf = wk.buf
    at = (o + 3) & -4
    wk.hide(o, at)
    o = at
    while o + 4 <= end:
        size = _from(buf[o + 2 : o + 4], "little")
        stop = o + 4 + ((size + 3) & -4)
        wk.hide(o + 4, min(stop, end))
        o = stop
    wk.hide(o, end)


def ppi(wk: WalkerBase, size: int) -> Radio:
    """A PPI header: version, flags, length, link type, then typed fields (kept by allowlist)."""
    buf = wk.buf
    if size < 8:
        wk.hide(0, size)
        return _NONE
    hlen = _from(buf[2:4], "little")
    if buf[0] != 0 or hlen < 8 or hlen > size:
        wk.hide(0, size)
        return _NONE
    aligned = buf[1] & PPI_ALIGNED
    fcs = bad = False
    o = 8
    while o + 4 <= hlen:
        ftype = _from(buf[o : o + 2], "little")
        flen = _from(buf[o + 2 : o + 4], "little")
        stop = o + 4 + flen
        if stop > hlen:
            break
        if (ftype, flen) in PPI_KEPT:
            if ftype == PPI_COMMON:
                fflags = _from(buf[o + 12 : o + 14], "little")
                fcs = bool(fflags & PPI_F_FCS)
                bad = bool(fflags & PPI_F_BADFCS)
        else:  # GPS, process and capture information, spectrum maps, vendor fields...
            wk.hide(o + 4, stop)
        o = stop
        if aligned:
            pad = min((o + 3) & -4, hlen)
            wk.hide(o, pad)
            o = pad
    wk.hide(o, hlen)
    return Radio(hlen, fcs, bad, False, _from(buf[4:8], "little"))


def prism(wk: WalkerBase, size: int) -> Radio:
    """A Prism header (host byte order): message code and length kept, the device name hidden,
    then 12-byte items (DID, status, length kept; the value kept for the ten defined DIDs)."""
    buf = wk.buf
    if size >= 8 and _from(buf[0:4], "big") in (AVS_V1, AVS_V2):
        return avs(wk, size)  # an AVS header under the Prism link type
    if size < PRISM_ITEMS:
        wk.hide(0, size)
        return _NONE
    little = True
    hlen = _from(buf[4:8], "little")
    if not PRISM_ITEMS <= hlen <= size:
        little = False
        hlen = _from(buf[4:8], "big")
        if not PRISM_ITEMS <= hlen <= size:
            wk.hide(0, size)
            return _NONE
    wk.hide(8, PRISM_ITEMS)  # the capturing interface's name
    o = PRISM_ITEMS
    while o + 12 <= hlen:
        did = _from(buf[o : o + 4], "little") if little else _from(buf[o : o + 4], "big")
        if did not in PRISM_DIDS:
            wk.hide(o + 8, o + 12)
        o += 12
    wk.hide(o, hlen)
    return Radio(hlen, False, False, False, 105)


def avs(wk: WalkerBase, size: int) -> Radio:
    """An AVS capture header (big-endian): version 1 fields kept, version 2's receiver address
    mapped as a MAC; padding and anything past the known fields hidden."""
    buf = wk.buf
    if size < 8:
        wk.hide(0, size)
        return _NONE
    version = _from(buf[0:4], "big")
    hlen = _from(buf[4:8], "big")
    if version not in (AVS_V1, AVS_V2) or hlen < 8 or hlen > size:
        wk.hide(0, size)
        return _NONE
    known = 8
    if hlen >= AVS_V1_SIZE:
        known = AVS_V1_SIZE
        if version == AVS_V2 and hlen >= AVS_V2_SIZE:
            wk.field(72, F_MAC, hlen)
            wk.hide(78, 80)
            known = AVS_V2_SIZE
    wk.hide(known, hlen)
    return Radio(hlen, False, False, False, 105)
