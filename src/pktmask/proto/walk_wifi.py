"""The walker's 802.11 layer: link types 105, 127 (radiotap), 192 (PPI), 119 (Prism), 163 (AVS).

Part of the one encapsulation walker (walk.py; docs/policy.md, "802.11", is the spec). The
radio header first (``radio.py``), then the MAC header: every address field mapped as a MAC
(the same pseudonyms as Ethernet), frame control, duration, sequence, QoS and HT control kept.
Management frames keep their fixed fields and the information elements of an allowlist; the
SSID and the mesh ID are listed as ``labels`` under ``names.SSID_PARENT`` for the name map's
SSID pseudonyms (same length: no structure moves); any other element keeps its ID and length
and has its data hidden. Data frames are walked through LLC/SNAP into IPv4/IPv6/ARP by the
walker's own layers, or into EAPOL; protected bodies keep their CCMP/TKIP/WEP header and are
zeroed. A frame with an FCS gets ``Walk.fcs``: the consumers recompute it last. Whatever is
cut short or not understood is zeroed from its first byte.
"""

from __future__ import annotations

from typing import Final

from pktmask.anon.names import SSID_PARENT
from pktmask.proto import link
from pktmask.proto.radio import Radio, avs, ppi, prism, radiotap
from pktmask.proto.walk_base import F_MAC, WalkerBase, _from

# Frame control: types and the flags byte.
T_MGMT: Final = 0
T_CTRL: Final = 1
T_DATA: Final = 2
FL_TODS: Final = 0x01
FL_FROMDS: Final = 0x02
FL_PROTECTED: Final = 0x40
FL_ORDER: Final = 0x80  # +HTC: an HT Control field follows (management, QoS data)
# Management subtypes.
ST_ASSOC_REQ: Final = 0
ST_ASSOC_RESP: Final = 1
ST_REASSOC_REQ: Final = 2
ST_REASSOC_RESP: Final = 3
ST_PROBE_REQ: Final = 4
ST_PROBE_RESP: Final = 5
ST_TIMING: Final = 6
ST_BEACON: Final = 8
ST_ATIM: Final = 9
ST_DISASSOC: Final = 10
ST_AUTH: Final = 11
ST_DEAUTH: Final = 12
ST_ACTION: Final = 13
ST_ACTION_NOACK: Final = 14
# Fixed fields before the elements, by management subtype (-1: no elements follow).
_MGMT_FIXED: Final = (4, 6, 10, 6, 0, 12, 10, -1, 12, 0, 2, 6, 2, -1, -1, -1)
AUTH_OPEN: Final = 0
AUTH_SHARED: Final = 1
AUTH_FT: Final = 2
ACTION_VENDOR: Final = frozenset({126, 127})  # vendor-specific (protected) categories: an OUI follows
# Control subtypes.
CT_WRAPPER: Final = 7
CT_BAR: Final = 8
CT_BA: Final = 9
CT_CTS: Final = 12
CT_ACK: Final = 13
_CT_TA: Final = frozenset({2, 3, 4, 5, 8, 9, 10, 11, 14, 15})  # a transmitter address follows RA
_CT_FIXED: Final = frozenset({10, 11, 14, 15})  # PS-Poll, RTS, CF-End(+Ack): nothing after TA
BAR_GCR: Final = 0x08  # BAR/BA control: a GCR group address is carried
# Data subtypes (bits).
DS_NODATA: Final = 0x4
DS_QOS: Final = 0x8
QOS_AMSDU: Final = 0x80

# Information elements whose data is kept (IEEE 802.11-2020, 9.4.2): structure, no names.
IE_SSID: Final = 0
IE_RSN: Final = 48
IE_MESH_ID: Final = 114
IE_EXTENSION: Final = 255
IE_KEPT: Final = frozenset({
    1,  # supported rates
    2, 3, 4, 6,  # FH, DSSS (channel), CF, IBSS parameter sets
    5,  # TIM
    10,  # request
    11, 12,  # BSS load, EDCA parameter set
    32, 33, 35, 36, 37,  # power constraint, power capability, TPC report, supported channels, channel switch
    42, 47,  # ERP information
    45, 61, 62,  # HT capabilities, HT operation, secondary channel offset
    46,  # QoS capability
    50,  # extended supported rates
    51,  # AP channel report
    56,  # timeout interval
    59, 60,  # supported operating classes, extended channel switch
    67,  # BSS average access delay
    70,  # RM enabled capabilities
    72, 74,  # 20/40 BSS coexistence, overlapping BSS scan parameters
    113,  # mesh configuration
    127,  # extended capabilities
    191, 192, 195, 199,  # VHT capabilities, VHT operation, transmit power envelope, operating mode notification
})
# Element ID extensions kept: HE capabilities/operation, UORA, MU EDCA, spatial reuse, BSS color
# change, HE 6 GHz band capabilities, EHT operation and capabilities.
IE_EXT_KEPT: Final = frozenset({35, 36, 37, 38, 39, 42, 59, 106, 108})

# LLC/SNAP.
LLC_SNAP: Final = b"\xaa\xaa\x03"
SNAP_OUIS: Final = frozenset({b"\x00\x00\x00", b"\x00\x00\xf8"})  # RFC 1042, 802.1H bridge tunnel
ET_EAPOL: Final = 0x888E
# EAPOL packet types and EAP codes.
EAPOL_EAP: Final = 0
EAPOL_KEY: Final = 3
EAP_REQUEST: Final = 1
EAP_RESPONSE: Final = 2
KEY_RSN: Final = 2
KEY_WPA: Final = 254
KEY_NONCE: Final = 13  # offsets in an EAPOL-Key body (after the 4-byte EAPOL header)
KEY_MIC: Final = 77


def wifi(wk: WalkerBase, lt: int) -> None:
    """Walk a frame of one of the 802.11 link types (``link.WIFI_LINKTYPES``)."""
    size = len(wk.buf)
    if lt == link.LT_IEEE802_11:
        radio = Radio(0, False, False, False, link.LT_IEEE802_11)
    elif lt == link.LT_RADIOTAP:
        radio = radiotap(wk, size)
    elif lt == link.LT_PPI:
        radio = ppi(wk, size)
    elif lt == link.LT_PRISM:
        radio = prism(wk, size)
    else:
        radio = avs(wk, size)
    start = radio.start
    if start < 0:
        return
    if radio.dlt == link.LT_ETHERNET:
        wk.ether(start, size, 0)
    elif radio.dlt == link.LT_IEEE802_11:
        Dot11(wk).frame(start, size, radio)
    else:
        wk.zero(start, size)


class Dot11:
    """One 802.11 frame (see the module docstring); records into the walker ``wk``."""

    __slots__ = ("wk", "buf")

    def __init__(self, wk: WalkerBase):
        self.wk = wk
        self.buf = wk.buf

    def mac(self, o: int, end: int) -> None:
        """An address field: mapped if captured whole, else hidden."""
        if o + 6 <= end:
            self.wk.field(o, F_MAC, end)
        else:
            self.wk.hide(o, end)

    def frame(self, off: int, size: int, radio: Radio) -> None:
        wk, buf = self.wk, self.buf
        end = size
        if radio.fcs:
            if size - off < 4:
                wk.hide(off, size)
                return
            end = size - 4
            if radio.bad_fcs:
                wk.hide(end, size)  # a bad FCS tells of bytes the frame no longer has
            else:
                wk.w.fcs = (off, off, off, end)
        if off + 10 > end:  # frame control, duration kept; a partial address hidden
            wk.hide(off + 4, end)
            return
        fc, flags = buf[off], buf[off + 1]
        ftype = fc >> 2 & 3
        sub = fc >> 4
        self.mac(off + 4, end)  # address 1 (receiver) in every frame
        if fc & 3:  # a protocol version we do not know
            wk.hide(off + 10, end)
        elif ftype == T_MGMT:
            self.management(off, end, sub, flags)
        elif ftype == T_CTRL:
            self.control(off, end, sub)
        elif ftype == T_DATA:
            self.data(off, end, sub, flags, radio.datapad)
        else:  # extension frames (DMG beacons...)
            wk.hide(off + 10, end)

    # ---- control ----------------------------------------------------------------------
    def control(self, off: int, end: int, sub: int) -> None:
        wk, buf = self.wk, self.buf
        if sub == CT_WRAPPER:  # carried frame control and HT control kept; the carried frame hidden
            wk.hide(off + 16, end)
            return
        if sub == CT_CTS or sub == CT_ACK:
            wk.zero(off + 10, end)
            return
        if sub not in _CT_TA:
            wk.hide(off + 10, end)
            return
        self.mac(off + 10, end)
        if sub in _CT_FIXED:
            wk.zero(off + 16, end)
        elif sub == CT_BAR or sub == CT_BA:
            # Control, starting sequence, bitmap: kept; the GCR form carries a group address.
            if off + 18 <= end and buf[off + 16] & BAR_GCR:
                wk.hide(off + 18, end)
            elif off + 18 > end:
                wk.hide(off + 16, end)
        else:  # trigger, TACK, beamforming report poll, NDP announcement: station info hidden
            wk.hide(off + 16, end)

    # ---- management -------------------------------------------------------------------
    def management(self, off: int, end: int, sub: int, flags: int) -> None:
        wk, buf = self.wk, self.buf
        self.mac(off + 10, end)
        self.mac(off + 16, end)
        body = off + (28 if flags & FL_ORDER else 24)  # sequence control, HT control kept
        if body > end:
            wk.hide(off + 22, end)
            return
        if flags & FL_PROTECTED:
            self.protected(body, end)
            return
        fixed = _MGMT_FIXED[sub]
        if sub == ST_ACTION or sub == ST_ACTION_NOACK:
            # Category and action kept (a vendor category's OUI is not: it precedes vendor data).
            keep = 1 if body < end and buf[body] in ACTION_VENDOR else 2
            wk.hide(body + keep, end)
            return
        if fixed < 0:
            wk.hide(body, end)
            return
        if sub == ST_REASSOC_REQ:
            self.mac(body + 4, end)  # current AP
        elif sub == ST_AUTH and body + 2 <= end:
            alg = _from(buf[body : body + 2], "little")
            if alg != AUTH_OPEN and alg != AUTH_SHARED and alg != AUTH_FT:
                wk.hide(body + 6, end)  # SAE, FILS, PASN: not elements (SAE password identifiers)
                return
        self.elements(min(body + fixed, end), end)

    def elements(self, o: int, end: int) -> None:
        """Information elements: ID and length kept; the data by allowlist; SSID and mesh ID
        listed for their pseudonyms; a length running past the frame: zeroed from its ID."""
        wk, buf = self.wk, self.buf
        while o < end:
            if o + 2 > end:
                wk.hide(o, end)
                return
            eid = buf[o]
            d = o + 2
            e = d + buf[o + 1]
            if e > end:
                wk.hide(o, end)
                return
            if eid == IE_SSID or eid == IE_MESH_ID:
                if e > d and not wk.hidden:
                    wk.w.labels.append((d, e - d, SSID_PARENT))
            elif eid == IE_RSN:
                self.rsn(d, e)
            elif eid == IE_EXTENSION:
                if e > d and buf[d] not in IE_EXT_KEPT:
                    wk.hide(d + 1, e)
            elif eid not in IE_KEPT:  # vendor specific (WPS: device names), country, unknown...
                wk.hide(d, e)
            o = e

    def rsn(self, d: int, e: int) -> None:
        """RSN element: version, cipher and AKM suites, capabilities, group management cipher
        kept; PMKIDs (keyed hashes of a station's MAC) hidden. It may end after any field."""
        wk, buf = self.wk, self.buf
        o = d + 6  # version, group data cipher suite
        for _ in range(2):  # pairwise ciphers, AKMs: a count and 4-byte suites
            if o + 2 > e:
                wk.hide(min(o, e), e)
                return
            stop = o + 2 + 4 * _from(buf[o : o + 2], "little")
            if stop > e:
                wk.hide(o, e)
                return
            o = stop
        o += 2  # capabilities
        if o + 2 > e:
            wk.hide(min(o, e), e)
            return
        stop = o + 2 + 16 * _from(buf[o : o + 2], "little")
        if stop > e:
            wk.hide(o, e)
            return
        wk.hide(o + 2, stop)
        o = stop + 4  # group management cipher suite
        wk.hide(min(o, e), e)

    # ---- data -------------------------------------------------------------------------
    def data(self, off: int, end: int, sub: int, flags: int, datapad: bool) -> None:
        wk, buf = self.wk, self.buf
        self.mac(off + 10, end)
        self.mac(off + 16, end)
        hdr = 24
        if flags & FL_TODS and flags & FL_FROMDS:
            self.mac(off + 24, end)
            hdr = 30
        qos = sub & DS_QOS
        if qos:
            hdr += 2
            if flags & FL_ORDER:
                hdr += 4
        if off + hdr > end:
            wk.hide(off + 22, end)  # a partial header: its fields past the addresses go
            return
        body = off + hdr
        if datapad:
            pad = off + ((hdr + 3) & -4)
            wk.hide(body, min(pad, end))
            if wk.w.fcs is not None:  # the padding is not sent: the FCS skips it
                wk.w.fcs = (off, body, pad, wk.w.fcs[3])
            body = pad
        if body >= end:
            return
        if sub & DS_NODATA:
            wk.zero(body, end)
        elif flags & FL_PROTECTED:
            self.protected(body, end)
        elif _from(buf[off + 22 : off + 24], "little") & 0x0F:  # a later fragment: no LLC in it
            wk.zero(body, end)
        elif qos and buf[off + hdr - (6 if flags & FL_ORDER else 2)] & QOS_AMSDU:
            if wk.w.fcs is not None and self.amsdu_runs_past(body, end):
                wk.w.fcs = None  # cut short, as below: the last 4 bytes are the frame's
                end = len(buf)
            self.amsdu(body, end)
        else:
            wk.mac_dst = off + (16 if flags & FL_TODS else 4)  # the destination address
            if wk.w.fcs is not None and self.runs_past(body, end):
                # The packet runs past the frame: it was cut short, and the last 4 bytes
                # are not an FCS (tshark reads them so too) but the packet's.
                wk.w.fcs = None
                end = len(buf)
            self.llc(body, end)

    def runs_past(self, o: int, end: int) -> bool:
        """Whether the IPv4/IPv6 packet behind the LLC/SNAP header at ``o`` says it ends past ``end``."""
        buf = self.buf
        p = o + 8
        if p + 6 > end or buf[o : o + 3] != LLC_SNAP:
            return False
        etype = _from(buf[o + 6 : o + 8], "big")
        if etype == link.ET_IPV4 and buf[p] >> 4 == 4:
            return p + _from(buf[p + 2 : p + 4], "big") > end
        if etype == link.ET_IPV6 and buf[p] >> 4 == 6:
            plen = _from(buf[p + 4 : p + 6], "big")
            return plen > 0 and p + 40 + plen > end
        return False

    def amsdu_runs_past(self, o: int, end: int) -> bool:
        """Whether the A-MSDU subframes at ``o`` say they end past ``end`` (or a subframe
        header is cut by it): the frame was cut short and holds no FCS."""
        buf = self.buf
        base = o
        while o + 14 <= end:
            stop = o + 14 + _from(buf[o + 12 : o + 14], "big")
            if stop >= end:
                return stop > end
            o = base + ((stop - base + 3) & -4)
        return o < end

    def protected(self, o: int, end: int) -> None:
        """An encrypted body: the WEP (4 bytes) or CCMP/GCMP/TKIP (8, ExtIV set) header kept,
        the rest zeroed (ciphertext, MIC, ICV)."""
        head = 8 if o + 4 <= end and self.buf[o + 3] & 0x20 else 4
        if o + head > end:
            self.wk.zero(o, end)
        else:
            self.wk.zero(o + head, end)

    def amsdu(self, o: int, end: int) -> None:
        """A-MSDU subframes: destination and source mapped, length kept, each MSDU walked."""
        wk, buf = self.wk, self.buf
        start = o
        while o + 14 <= end:
            self.mac(o, end)
            self.mac(o + 6, end)
            stop = o + 14 + _from(buf[o + 12 : o + 14], "big")
            wk.mac_dst = o
            self.llc(o + 14, min(stop, end))
            if stop >= end:
                return
            o = start + ((stop - start + 3) & -4)
            wk.zero(stop, min(o, end))  # padding
        wk.hide(o, end)

    def llc(self, o: int, end: int) -> None:
        """LLC/SNAP: RFC 1042 and bridge-tunnel encapsulations walked by EtherType (EAPOL here,
        the rest by the walker's network layers); anything else zeroed after its header."""
        wk, buf = self.wk, self.buf
        if o + 8 > end or buf[o : o + 3] != LLC_SNAP:
            wk.zero(o, end)
            return
        if bytes(buf[o + 3 : o + 6]) not in SNAP_OUIS:
            wk.zero(o + 8, end)
            return
        etype = _from(buf[o + 6 : o + 8], "big")
        if etype == ET_EAPOL:
            self.eapol(o + 8, end)
        else:
            wk.l3(o + 8, end, etype, 1)

    # ---- EAPOL ------------------------------------------------------------------------
    def eapol(self, o: int, end: int) -> None:
        """EAPOL: version, type, length kept; EAP and key frames structurally (below)."""
        wk, buf = self.wk, self.buf
        if o + 4 > end:
            wk.zero(o, end)
            return
        stop = o + 4 + _from(buf[o + 2 : o + 4], "big")
        if stop < end:
            wk.zero(stop, end)  # padding
            end = stop
        ptype = buf[o + 1]
        if ptype == EAPOL_EAP:
            self.eap(o + 4, end)
        elif ptype == EAPOL_KEY:
            self.key(o + 4, end, stop)
        else:  # start, logoff (empty), alerts, MKA...
            wk.hide(o + 4, end)

    def eap(self, o: int, end: int) -> None:
        """EAP: code, identifier, length and type kept; the type data (identities, every
        method's body: names, certificates, challenges) hidden."""
        wk, buf = self.wk, self.buf
        if o + 4 > end:
            wk.hide(o, end)
            return
        stop = o + _from(buf[o + 2 : o + 4], "big")
        if o + 4 <= stop < end:
            wk.hide(stop, end)
            end = stop
        code = buf[o]
        wk.hide(o + 5 if code == EAP_REQUEST or code == EAP_RESPONSE else o + 4, end)

    def key(self, o: int, end: int, stop: int) -> None:
        """EAPOL-Key (RSN/WPA descriptors): descriptor type, key information, key length,
        replay counter and key data length kept; nonce, IV, RSC, reserved, MIC and key data
        hidden. The MIC is 16 or 24 bytes: the one whose key data length fits the body."""
        wk, buf = self.wk, self.buf
        if o >= end:
            return
        if buf[o] != KEY_RSN and buf[o] != KEY_WPA:
            wk.hide(o + 1, end)
            return
        for mic in (16, 24):
            at = o + KEY_MIC + mic
            if at + 2 <= end and at + 2 + _from(buf[at : at + 2], "big") == stop:
                wk.hide(o + KEY_NONCE, at)
                wk.hide(at + 2, end)
                return
        wk.hide(o + KEY_NONCE, end)
