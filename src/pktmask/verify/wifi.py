"""The audit's own dissector, 802.11 layers: radio headers, MAC header, elements, LLC, EAPOL.

A mixin of ``fields.Walker``, written from docs/policy.md ("802.11") and not from the
sanitizer's walker. Link types 105 (802.11), 127 (radiotap), 192 (PPI), 119 (Prism, or AVS
told by its first word) and 163 (AVS). Labels:

* the radio headers' defined fields, presence bitmaps, lengths and type codes: KEEP; vendor
  data, fields of unknown size and everything after them, device names, PPI fields off the
  allowlist, padding: OTHER; AVS v2's receiver address: MAC;
* every 802.11 address field (also A-MSDU subframe addresses and a reassociation's current
  AP): MAC; frame control, duration, sequence, QoS and HT control: KEEP;
* the SSID and mesh ID: NAME (pseudonyms of the same length); the other elements keep ID and
  length, their data only on the allowlist (RSN without its PMKIDs, element extensions by
  their extension ID);
* data bodies: LLC/SNAP into the audit's network layers, EAPOL by its structure; protected
  bodies: the CCMP/TKIP/WEP header KEEP, the rest OTHER;
* the FCS: KEEP in the spans, and ``Spans.fcs`` (start, gap, resume, at) for the audit's own
  check: in SANITIZED it must be zero or the CRC-32 of the sanitized frame.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from pktmask.verify.labels import KEEP, MAC, NAME, Spans

LT_80211: Final = 105
LT_PRISM: Final = 119
LT_RADIOTAP: Final = 127
LT_AVS: Final = 163
LT_PPI: Final = 192
LT_WIFI: Final = frozenset({LT_80211, LT_PRISM, LT_RADIOTAP, LT_AVS, LT_PPI})

# radiotap.org, default namespace: bit -> (alignment, size); bit 28 starts the TLVs.
RADIOTAP_FIELDS: Final = {
    0: (8, 8), 1: (1, 1), 2: (1, 1), 3: (2, 4), 4: (1, 2), 5: (1, 1), 6: (1, 1), 7: (2, 2), 8: (2, 2),
    9: (2, 2), 10: (1, 1), 11: (1, 1), 12: (1, 1), 13: (1, 1), 14: (2, 2), 15: (2, 2), 16: (1, 1),
    17: (1, 1), 18: (4, 8), 19: (1, 3), 20: (4, 8), 21: (2, 12), 22: (8, 12), 23: (2, 12), 24: (2, 12),
    25: (2, 6), 26: (1, 1), 27: (2, 4),
}
PPI_FIELDS: Final = {2: 20, 3: 12, 4: 48, 8: 4, 9: 8}  # kept field types and their lengths
PRISM_DIDS: Final = frozenset({0x44 | i << 16 for i in range(1, 11)} | {0x41 | i << 12 for i in range(1, 11)})
AVS_V1, AVS_V2 = 0x80211001, 0x80211002

KEPT_ELEMENTS: Final = frozenset({1, 2, 3, 4, 5, 6, 10, 11, 12, 32, 33, 35, 36, 37, 42, 45, 46, 47, 50, 51, 56,
                                  59, 60, 61, 62, 67, 70, 72, 74, 113, 127, 191, 192, 195, 199})
KEPT_EXTENSIONS: Final = frozenset({35, 36, 37, 38, 39, 42, 59, 106, 108})
# Fixed fields before the elements, by management subtype (None: no elements).
MGMT_FIXED: Final = {0: 4, 1: 6, 2: 10, 3: 6, 4: 0, 5: 12, 6: 10, 8: 12, 9: 0, 10: 2, 11: 6, 12: 2}


class Wifi:
    """802.11 labelling (mixin of ``fields.Walker``)."""

    buf: bytes
    n: int
    s: Spans

    if TYPE_CHECKING:  # defined by the other parts of fields.Walker
        def other(self, a: int, b: int, name: str) -> None: ...

        def ether(self, o: int, end: int) -> None: ...

        def ethertype(self, t: int, o: int, end: int) -> None: ...

    def wifi(self, linktype: int) -> None:
        buf, n = self.buf, self.n
        if linktype == LT_80211:
            self.dot11(0, n, False, False, False)
        elif linktype == LT_RADIOTAP:
            self.radiotap()
        elif linktype == LT_PPI:
            self.ppi()
        elif n >= 8 and int.from_bytes(buf[:4], "big") in (AVS_V1, AVS_V2):
            self.avs()
        elif linktype == LT_PRISM:
            self.prism()
        else:
            self.other(0, n, "avs (not understood)")

    # ---- radio headers -------------------------------------------------------------------
    def radiotap(self) -> None:
        buf, n, add = self.buf, self.n, self.s.add
        length = int.from_bytes(buf[2:4], "little") if n >= 4 else 0
        if n < 8 or buf[0] or not 8 <= length <= n:
            self.other(0, n, "radiotap (not understood)")
            return
        add(0, 1, KEEP, "")
        self.other(1, 2, "radiotap.pad")
        add(2, 4, KEEP, "")
        bitmaps = []
        o = 4
        while o + 4 <= length:
            bitmaps.append(int.from_bytes(buf[o:o + 4], "little"))
            add(o, o + 4, KEEP, "")
            o += 4
            if not bitmaps[-1] >> 31:
                break
        else:
            self.other(o, length, "radiotap.present (cut short)")
            self.dot11(length, n, False, False, False)
            return
        flags = self.radiotap_fields(o, length, bitmaps)
        self.dot11(length, n, bool(flags & 0x10), bool(flags & 0x40), bool(flags & 0x20))

    def radiotap_fields(self, o: int, length: int, bitmaps: list[int]) -> int:
        """Label the fields the bitmaps name; returns the Flags field (0 if absent)."""
        buf, add = self.buf, self.s.add
        flags = 0
        in_vendor = False
        index = 0  # bit number of the namespace's current word
        for word in bitmaps:
            for bit in range(29):
                if in_vendor or not word >> bit & 1:
                    continue
                if index + bit == 28:  # TLVs, 4-aligned, to the end of the header
                    start = -(-o // 4) * 4
                    self.other(o, start, "radiotap.padding")
                    while start + 4 <= length:
                        size = int.from_bytes(buf[start + 2:start + 4], "little")
                        add(start, start + 4, KEEP, "")
                        nxt = start + 4 + -(-size // 4) * 4
                        self.other(start + 4, min(nxt, length), "radiotap.tlv data")
                        start = nxt
                    self.other(start, length, "radiotap.tlv (cut short)")
                    return flags
                spec = RADIOTAP_FIELDS.get(index + bit)
                if spec is None:
                    self.other(o, length, f"radiotap field {index + bit} and after")
                    return flags
                align, size = spec
                start = -(-o // align) * align
                if start + size > length:
                    self.other(o, length, "radiotap (cut short)")
                    return flags
                self.other(o, start, "radiotap.padding")
                add(start, start + size, KEEP, "")
                if index + bit == 1:
                    flags = buf[start]
                o = start + size
            if word >> 29 & 1:
                in_vendor, index = False, 0
            elif word >> 30 & 1:
                start = o + (o & 1)
                if start + 6 > length:
                    self.other(o, length, "radiotap.vendor namespace (cut short)")
                    return flags
                self.other(o, start, "radiotap.padding")
                add(start, start + 6, KEEP, "")
                stop = start + 6 + int.from_bytes(buf[start + 4:start + 6], "little")
                self.other(start + 6, min(stop, length), "radiotap.vendor data")
                if stop > length:
                    return flags
                o = stop
                in_vendor, index = True, 0
            else:
                index += 32
        self.other(o, length, "radiotap (unaccounted)")
        return flags

    def ppi(self) -> None:
        buf, n, add = self.buf, self.n, self.s.add
        length = int.from_bytes(buf[2:4], "little") if n >= 8 else 0
        if n < 8 or buf[0] or not 8 <= length <= n:
            self.other(0, n, "ppi (not understood)")
            return
        add(0, 8, KEEP, "")
        has_fcs = bad = False
        o = 8
        while o + 4 <= length:
            ftype = int.from_bytes(buf[o:o + 2], "little")
            size = int.from_bytes(buf[o + 2:o + 4], "little")
            if o + 4 + size > length:
                break
            add(o, o + 4, KEEP, "")
            if PPI_FIELDS.get(ftype) == size:
                add(o + 4, o + 4 + size, KEEP, "")
                if ftype == 2:
                    fl = int.from_bytes(buf[o + 12:o + 14], "little")
                    has_fcs, bad = bool(fl & 1), bool(fl & 4)
            else:
                self.other(o + 4, o + 4 + size, f"ppi.field[{ftype}] data")
            o += 4 + size
            if buf[1] & 1:
                pad = min(-(-o // 4) * 4, length)
                self.other(o, pad, "ppi.padding")
                o = pad
        self.other(o, length, "ppi (unaccounted)")
        dlt = int.from_bytes(buf[4:8], "little")
        if dlt == LT_80211:
            self.dot11(length, n, has_fcs, bad, False)
        elif dlt == 1:
            self.ether(length, n)
        else:
            self.other(length, n, f"ppi dlt {dlt} frame")

    def prism(self) -> None:
        buf, n, add = self.buf, self.n, self.s.add
        if n < 24:
            self.other(0, n, "prism (cut short)")
            return
        length, swap = int.from_bytes(buf[4:8], "little"), False
        if not 24 <= length <= n:
            length, swap = int.from_bytes(buf[4:8], "big"), True
            if not 24 <= length <= n:
                self.other(0, n, "prism (not understood)")
                return
        add(0, 8, KEEP, "")
        self.other(8, 24, "prism.devname")
        o = 24
        while o + 12 <= length:
            add(o, o + 8, KEEP, "")
            did = buf[o:o + 4]
            if int.from_bytes(did[::-1] if swap else did, "little") in PRISM_DIDS:
                add(o + 8, o + 12, KEEP, "")
            else:
                self.other(o + 8, o + 12, "prism.item data")
            o += 12
        self.other(o, length, "prism (unaccounted)")
        self.dot11(length, n, False, False, False)

    def avs(self) -> None:
        buf, n, add = self.buf, self.n, self.s.add
        version, length = int.from_bytes(buf[:4], "big"), int.from_bytes(buf[4:8], "big")
        if not 8 <= length <= n:
            self.other(0, n, "avs (not understood)")
            return
        add(0, 8, KEEP, "")
        known = 8
        if length >= 64:
            add(8, 64, KEEP, "")
            known = 64
            if version == AVS_V2 and length >= 80:
                add(64, 72, KEEP, "")
                add(72, 78, MAC, "avs.receiver_addr")
                self.other(78, 80, "avs.padding")
                known = 80
        self.other(known, length, "avs (unaccounted)")
        self.dot11(length, n, False, False, False)

    # ---- 802.11 --------------------------------------------------------------------------
    def addr(self, o: int, end: int, name: str) -> None:
        if o + 6 <= end:
            self.s.add(o, o + 6, MAC, name)
        else:
            self.other(o, end, f"{name} (cut short)")

    def dot11(self, o: int, n: int, has_fcs: bool, bad_fcs: bool, datapad: bool) -> None:
        buf, add = self.buf, self.s.add
        end = n
        if has_fcs:
            if n - o < 4:
                self.other(o, n, "wlan (cut short)")
                return
            end = n - 4
            if bad_fcs:
                self.other(end, n, "wlan.fcs (bad)")
            else:
                self.s.fcs = (o, o, o, end)
        if o + 10 > end:
            add(o, min(o + 4, end), KEEP, "")
            self.other(o + 4, end, "wlan (cut short)")
            if self.s.fcs is not None:
                add(end, n, KEEP, "")
            return
        add(o, o + 4, KEEP, "")
        self.addr(o + 4, end, "wlan.addr1")
        fc, fl = buf[o], buf[o + 1]
        ftype, sub = fc >> 2 & 3, fc >> 4
        if fc & 3 or ftype == 3:
            self.other(o + 10, end, "wlan (not understood)")
        elif ftype == 1:
            self.control(o, end, sub)
        elif ftype == 0:
            self.management(o, end, sub, fl)
        else:
            self.data(o, end, sub, fl, datapad)
        if self.s.fcs is not None:  # still an FCS (see ``data``)
            add(end, n, KEEP, "")

    def control(self, o: int, end: int, sub: int) -> None:
        add = self.s.add
        if sub == 7:  # control wrapper: carried frame control, HT control
            add(o + 10, o + 16, KEEP, "")
            self.other(o + 16, end, "wlan.carried frame")
        elif sub in (12, 13):  # CTS, ACK
            self.other(o + 10, end, "wlan (trailing)")
        elif sub in (2, 3, 4, 5, 8, 9, 10, 11, 14, 15):
            self.addr(o + 10, end, "wlan.addr2")
            if sub in (8, 9):  # BAR/BA: control, start sequence, bitmap (not the GCR form)
                if o + 18 > end:
                    self.other(o + 16, end, "wlan.bar/ba (cut short)")
                elif self.buf[o + 16] & 8:
                    add(o + 16, o + 18, KEEP, "")
                    self.other(o + 18, end, "wlan.bar/ba (gcr)")
                else:
                    add(o + 16, end, KEEP, "")
            elif sub in (10, 11, 14, 15):
                self.other(o + 16, end, "wlan (trailing)")
            else:
                self.other(o + 16, end, "wlan.control body")
        else:
            self.other(o + 10, end, "wlan.control (reserved)")

    def management(self, o: int, end: int, sub: int, fl: int) -> None:
        buf, add = self.buf, self.s.add
        self.addr(o + 10, end, "wlan.addr2")
        self.addr(o + 16, end, "wlan.addr3")
        body = o + 24 + (4 if fl & 0x80 else 0)
        if body > end:
            self.other(o + 22, end, "wlan (cut short)")
            return
        add(o + 22, body, KEEP, "")
        if fl & 0x40:
            self.protected(body, end)
            return
        if sub in (13, 14):
            keep = 1 if body < end and buf[body] in (126, 127) else 2
            add(body, min(body + keep, end), KEEP, "")
            self.other(body + keep, end, "wlan.action body")
            return
        fixed = MGMT_FIXED.get(sub)
        if fixed is None:
            self.other(body, end, f"wlan.mgmt subtype {sub}")
            return
        if sub == 11 and body + 2 <= end and int.from_bytes(buf[body:body + 2], "little") not in (0, 1, 2):
            add(body, min(body + 6, end), KEEP, "")
            self.other(body + 6, end, "wlan.auth body")
            return
        stop = min(body + fixed, end)
        if sub == 2:
            add(body, min(body + 4, end), KEEP, "")
            self.addr(body + 4, stop, "wlan.current_ap")
        else:
            add(body, stop, KEEP, "")
        self.elements(stop, end)

    def elements(self, o: int, end: int) -> None:
        buf, add = self.buf, self.s.add
        while o + 2 <= end:
            eid, size = buf[o], buf[o + 1]
            stop = o + 2 + size
            if stop > end:
                break
            add(o, o + 2, KEEP, "")
            if eid in (0, 114):
                if buf[o + 2:stop].count(0) == size:  # empty, or a hidden network's zeros: kept
                    add(o + 2, stop, KEEP, "")
                else:
                    add(o + 2, stop, NAME, "wlan.ssid" if eid == 0 else "wlan.mesh_id")
            elif eid == 48:
                self.rsn(o + 2, stop)
            elif eid == 255:
                if size:
                    add(o + 2, o + 3, KEEP, "")
                    if buf[o + 2] in KEPT_EXTENSIONS:
                        add(o + 3, stop, KEEP, "")
                    else:
                        self.other(o + 3, stop, f"wlan.ext_tag[{buf[o + 2]}] data")
            elif eid in KEPT_ELEMENTS:
                add(o + 2, stop, KEEP, "")
            else:
                self.other(o + 2, stop, f"wlan.tag[{eid}] data")
            o = stop
        self.other(o, end, "wlan.tag (cut short)")

    def rsn(self, a: int, b: int) -> None:
        """RSN: version, suites, capabilities and the PMKID count kept, PMKIDs not, the group
        management cipher kept; it may end after any field, a count running past it: OTHER."""
        buf, add = self.buf, self.s.add
        o = a + 6
        for _ in range(2):  # pairwise ciphers, AKMs
            if o + 2 > b:
                break
            stop = o + 2 + 4 * int.from_bytes(buf[o:o + 2], "little")
            if stop > b:
                break
            o = stop
        else:
            o += 2  # capabilities
            if o + 2 <= b:
                stop = o + 2 + 16 * int.from_bytes(buf[o:o + 2], "little")
                if stop <= b:
                    add(a, o + 2, KEEP, "")
                    self.other(o + 2, stop, "wlan.rsn.pmkid")
                    add(stop, min(stop + 4, b), KEEP, "")
                    self.other(stop + 4, b, "wlan.rsn (trailing)")
                    return
        add(a, min(o, b), KEEP, "")
        self.other(o, b, "wlan.rsn (cut short)")

    def data(self, o: int, end: int, sub: int, fl: int, datapad: bool) -> None:
        buf, add = self.buf, self.s.add
        self.addr(o + 10, end, "wlan.addr2")
        self.addr(o + 16, end, "wlan.addr3")
        size = 24
        if fl & 3 == 3:
            self.addr(o + 24, end, "wlan.addr4")
            size = 30
        qos = bool(sub & 8)
        if qos:
            size += 6 if fl & 0x80 else 2
        if o + size > end:
            self.other(o + 22, end, "wlan (cut short)")
            return
        add(o + 22, o + 24, KEEP, "")
        add(o + (30 if size >= 30 and fl & 3 == 3 else 24), o + size, KEEP, "")
        body = o + size
        if datapad:
            padded = o + -(-size // 4) * 4
            self.other(body, min(padded, end), "wlan.datapad")
            if self.s.fcs is not None:
                self.s.fcs = (o, body, padded, self.s.fcs[3])
            body = padded
        if body >= end:
            return
        if sub & 4:
            self.other(body, end, "wlan (no data)")
        elif fl & 0x40:
            self.protected(body, end)
        elif buf[o + 22] & 0x0F:
            self.other(body, end, "wlan.fragment")
        elif qos and buf[o + size - (6 if fl & 0x80 else 2)] & 0x80:
            if self.s.fcs is not None and self.amsdu_cut(body, end):
                self.s.fcs = None  # cut short, as below: no FCS at its end
                end = self.n
            self.amsdu(body, end)
        else:
            p = body + 8
            t = buf[body + 6] << 8 | buf[body + 7] if body + 8 <= end else 0
            if (self.s.fcs is not None and p + 6 <= end and buf[body:body + 3] == b"\xaa\xaa\x03"
                    and ((t == 0x0800 and buf[p] >> 4 == 4 and p + (buf[p + 2] << 8 | buf[p + 3]) > end)
                         or (t == 0x86DD and buf[p] >> 4 == 6 and 0 < (buf[p + 4] << 8 | buf[p + 5])
                             and p + 40 + (buf[p + 4] << 8 | buf[p + 5]) > end))):
                self.s.fcs = None  # the packet runs past the frame: cut short, no FCS at its end
                end = self.n
            self.llc(body, end)

    def protected(self, o: int, end: int) -> None:
        extiv = o + 4 <= end and self.buf[o + 3] & 0x20
        head = o + (8 if extiv else 4)
        if head > end:
            self.other(o, end, "wlan.protected header (cut short)")
            return
        self.s.add(o, head, KEEP, "")
        self.other(head, end, "wlan.protected body")

    def amsdu_cut(self, o: int, end: int) -> bool:
        """Do the A-MSDU subframes at ``o`` run past ``end`` (or is a subframe header cut)?"""
        base = o
        while o + 14 <= end:
            stop = o + 14 + int.from_bytes(self.buf[o + 12:o + 14], "big")
            if stop >= end:
                return stop > end
            o = base + -(-(stop - base) // 4) * 4
        return o < end

    def amsdu(self, o: int, end: int) -> None:
        base = o
        while o + 14 <= end:
            self.addr(o, end, "wlan.amsdu.da")
            self.addr(o + 6, end, "wlan.amsdu.sa")
            self.s.add(o + 12, o + 14, KEEP, "")
            stop = o + 14 + int.from_bytes(self.buf[o + 12:o + 14], "big")
            self.llc(o + 14, min(stop, end))
            if stop >= end:
                return
            nxt = base + -(-(stop - base) // 4) * 4
            self.other(stop, min(nxt, end), "wlan.amsdu.padding")
            o = nxt
        self.other(o, end, "wlan.amsdu (cut short)")

    def llc(self, o: int, end: int) -> None:
        buf, add = self.buf, self.s.add
        if o + 8 > end or buf[o:o + 3] != b"\xaa\xaa\x03":
            self.other(o, end, "llc payload")
            return
        add(o, o + 8, KEEP, "")
        t = buf[o + 6] << 8 | buf[o + 7]
        if buf[o + 3:o + 6] not in (b"\0\0\0", b"\0\0\xf8"):
            self.other(o + 8, end, "llc.snap payload")
        elif t == 0x888E:
            self.eapol(o + 8, end)
        else:
            self.ethertype(t, o + 8, end)

    def eapol(self, o: int, end: int) -> None:
        buf, add = self.buf, self.s.add
        if o + 4 > end:
            self.other(o, end, "eapol (cut short)")
            return
        add(o, o + 4, KEEP, "")
        stop = o + 4 + int.from_bytes(buf[o + 2:o + 4], "big")
        body_end = min(stop, end)
        ptype = buf[o + 1]
        if ptype == 0 and o + 8 <= body_end:
            p = o + 4
            add(p, p + 4, KEEP, "")
            eap_end = p + int.from_bytes(buf[p + 2:p + 4], "big")
            stop_eap = eap_end if p + 4 <= eap_end < body_end else body_end
            if buf[p] in (1, 2) and p + 5 <= stop_eap:
                add(p + 4, p + 5, KEEP, "")
                self.other(p + 5, stop_eap, "eap.type data")
            else:
                self.other(p + 4, stop_eap, "eap data")
            self.other(stop_eap, body_end, "eap (trailing)")
        elif ptype == 3 and o + 4 < body_end:
            if buf[o + 4] in (2, 254):
                self.eapol_key(o + 4, body_end, stop)
            else:
                add(o + 4, o + 5, KEEP, "")
                self.other(o + 5, body_end, "eapol.key (descriptor not understood)")
        else:
            self.other(o + 4, body_end, "eapol body")
        self.other(body_end, end, "eapol (trailing)")

    def eapol_key(self, p: int, end: int, stop: int) -> None:
        add = self.s.add
        add(p, min(p + 13, end), KEEP, "")  # descriptor, key info, key length, replay counter
        for mic in (16, 24):
            at = p + 77 + mic
            if at + 2 <= end and at + 2 + int.from_bytes(self.buf[at:at + 2], "big") == stop:
                self.other(p + 13, at, "eapol.key nonce/iv/rsc/mic")
                add(at, at + 2, KEEP, "")
                self.other(at + 2, end, "eapol.key data")
                return
        self.other(p + 13, end, "eapol.key")
