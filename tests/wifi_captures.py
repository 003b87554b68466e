"""802.11 test captures, one per link type and frame family, each with planted identifiers.

Every builder returns a ``leak_captures.Leak`` (frames, link type, planted values). Planted
values are distinctive: MACs 02:99:..., SSIDs and names with "PLANTED"/"planted", IPv4
10.99.x.x, IPv6 2001:db8:99::/48. Frames are built with scapy; an FCS, where the radio header
announces one, is the real CRC-32 so the original capture is valid too.

| builder | link type | what it holds |
|---|---|---|
| radiotap_management | 127 | beacon (SSID, WPS device name, country, RSN; one of a hidden network), probe request/response, (re)association with a PMKID and the current AP, authentication, deauthentication, an action frame; radiotap with an extended bitmap, a second radiotap namespace and a vendor namespace; FCS |
| radiotap_data | 127 | data frames in all four DS directions: LLC/SNAP IPv4/UDP, IPv6/TCP, ARP; QoS, A-MSDU, padded (datapad), a later fragment, null data |
| radiotap_eapol | 127 | EAPOL start, EAP identity request/response, an EAP-PEAP body, the 4-way handshake (nonces, MIC, key data) |
| radiotap_protected | 127 | CCMP, TKIP and WEP data; a protected management frame |
| radiotap_control | 127 | RTS, CTS, ACK, PS-Poll, BAR, BA, CF-End |
| radiotap_malformed | 127 | an element running past the frame, a frame cut short by the snap length, an unknown radiotap field, a bad FCS |
| dot11_plain | 105 | beacon, probe request, data |
| ppi_frames | 192 | PPI with 802.11-Common and a GPS field, beacon and data |
| prism_frames | 119 | Prism header (device name), beacon and data; an AVS header under 119 |
| avs_frames | 163 | AVS v1 and v2 (receiver address) headers, beacon and data |
"""

from __future__ import annotations

import struct
import zlib

from leak_captures import Leak

RADIOTAP, PPI, PRISM, AVS, IEEE802_11 = 127, 192, 119, 163, 105

AP = "02:99:00:00:00:0a"
STA = "02:99:00:00:00:01"
STA2 = "02:99:00:00:00:02"
CURRENT_AP = "02:99:00:00:00:0c"
WDS = "02:99:00:00:00:0d"
BCAST = "ff:ff:ff:ff:ff:ff"
SSID = b"PLANTED-SSID-Corp"
SSID2 = b"planted home wifi"
MESH_ID = b"PLANTED-MESH"
DEVICE = b"PLANTED-DEVICE-NAME"
COUNTRY = b"ZZ\x20"
IDENTITY = b"planted.user@corp.example"
PMKID = bytes(range(0x90, 0xA0))
ANONCE = bytes(range(0x40, 0x60))
SNONCE = bytes(range(0x60, 0x80))
MIC = bytes(range(0xA0, 0xB0))
KEYDATA = b"PLANTED-KEY-DATA-" + bytes(range(15))
SECRET = b"PLANTED-CIPHERTEXT-0123456789"


def mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def _macs(*names: str) -> list[bytes]:
    return [mac(m) for m in names]


def elt(eid: int, info: bytes) -> bytes:
    return bytes((eid, len(info))) + info


def rates() -> bytes:
    return elt(1, b"\x82\x84\x8b\x96\x0c\x12\x18\x24") + elt(3, b"\x06")


def rsn(pmkids: list[bytes] | None = None) -> bytes:
    body = (struct.pack("<H", 1) + b"\x00\x0f\xac\x04" + struct.pack("<H", 1) + b"\x00\x0f\xac\x04"
            + struct.pack("<H", 1) + b"\x00\x0f\xac\x02" + b"\x00\x00")
    if pmkids is not None:
        body += struct.pack("<H", len(pmkids)) + b"".join(pmkids)
    return elt(48, body)


def wps() -> bytes:
    """A WPS vendor element with a device name attribute."""
    attrs = struct.pack("!HHB", 0x104A, 1, 0x10) + struct.pack("!HH", 0x1011, len(DEVICE)) + DEVICE
    return elt(221, b"\x00\x50\xf2\x04" + attrs)


def ht_caps() -> bytes:
    return elt(45, bytes([0xEF, 0x01, 0x1B, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]))


def he_caps() -> bytes:
    return elt(255, bytes([35]) + bytes(range(1, 23)))


def fcs(frame: bytes, gap: tuple[int, int] = (0, 0)) -> bytes:
    """``frame`` and its FCS; ``gap``: radiotap data padding the FCS does not cover."""
    sent = frame[:gap[0]] + frame[gap[1]:] if gap[1] else frame
    return frame + struct.pack("<I", zlib.crc32(sent))


def radiotap(flags: int = 0x10, extra: bytes = b"") -> bytes:
    """A radiotap header: TSFT, Flags, Rate, Channel, dBm signal, Antenna in the first word,
    an extended bitmap with a second radiotap namespace (signal, antenna) and a vendor
    namespace carrying planted data; ``extra`` is appended and must be accounted for."""
    w0 = (1 << 0) | (1 << 1) | (1 << 2) | (1 << 3) | (1 << 5) | (1 << 11) | (1 << 29) | (1 << 31)
    w1 = (1 << 5) | (1 << 11) | (1 << 30) | (1 << 31)
    w2 = 0  # vendor namespace word: its bits are the vendor's
    head = struct.pack("<III", w0, w1, w2)
    body = bytearray(4 + len(head))
    body += b"\0" * (-len(body) % 8)  # TSFT is 8-aligned
    body += struct.pack("<Q", 0x1122334455) + bytes([flags, 0x0C]) + struct.pack("<HH", 2437, 0x00A0)
    body += bytes([0xC4 & 0xFF, 1])  # dBm signal -60, antenna 1
    body += bytes([0xC8, 2])  # second namespace: signal, antenna
    body += b"\0" * (len(body) & 1)
    vendor = b"PLANTED-VENDOR-RADIO"
    body += b"\x00\x11\x22" + b"\x01" + struct.pack("<H", len(vendor)) + vendor
    body[0:4] = struct.pack("<BBH", 0, 0, len(body))
    body[4:4 + len(head)] = head
    return bytes(body)


def dot11(fc: int, flags: int, addrs: list[bytes], seq: int = 0x1230, duration: int = 0x13A,
          tail: bytes = b"") -> bytes:
    """An 802.11 MAC header: frame control, duration, addresses 1-3, sequence, address 4 if
    given, then ``tail`` (QoS/HT control)."""
    out = struct.pack("<BBH", fc, flags, duration) + b"".join(addrs[:3])
    if len(addrs) >= 3:
        out += struct.pack("<H", seq)
    if len(addrs) == 4:
        out += addrs[3]
    return out + tail


def mgmt(sub: int, da: str, sa: str, bssid: str, body: bytes, flags: int = 0) -> bytes:
    return dot11(sub << 4, flags, _macs(da, sa, bssid)) + body


def beacon(ssid: bytes = SSID) -> bytes:
    fixed = struct.pack("<QHH", 0x0102030405, 100, 0x0431)
    return mgmt(8, BCAST, AP, AP, fixed + elt(0, ssid) + rates() + elt(5, b"\x00\x01\x00\x00")
                + elt(7, COUNTRY + b"\x01\x0b\x14") + rsn() + ht_caps() + he_caps() + wps()
                + elt(221, b"\x00\x50\xf2\x02\x00\x01\x00"))


def probe_req(ssid: bytes = SSID2) -> bytes:
    return mgmt(4, BCAST, STA, BCAST, elt(0, ssid) + rates() + elt(114, MESH_ID) + wps() + elt(127, b"\x00\x00\x08"))


def probe_resp() -> bytes:
    fixed = struct.pack("<QHH", 0x0102030406, 100, 0x0431)
    return mgmt(5, STA, AP, AP, fixed + elt(0, SSID) + rates() + rsn() + elt(16, b"planted challenge"))


def assoc_req() -> bytes:
    return mgmt(0, AP, STA, AP, struct.pack("<HH", 0x0431, 10) + elt(0, SSID) + rates() + rsn([PMKID]))


def reassoc_req() -> bytes:
    return mgmt(2, AP, STA, AP, struct.pack("<HH", 0x0431, 10) + mac(CURRENT_AP) + elt(0, SSID) + rates()
                + rsn([PMKID]))


def assoc_resp() -> bytes:
    return mgmt(1, STA, AP, AP, struct.pack("<HHH", 0x0431, 0, 0xC001) + rates())


def auth(alg: int = 0) -> bytes:
    body = struct.pack("<HHH", alg, 1, 0)
    if alg == 3:  # SAE commit: group, scalar, element, a password identifier element
        body += struct.pack("<H", 19) + bytes(range(32)) + bytes(range(64)) + elt(255, b"\x21" + b"planted-pwid")
    return mgmt(11, AP, STA, AP, body)


def deauth() -> bytes:
    return mgmt(12, STA, AP, AP, struct.pack("<H", 3))


def action() -> bytes:
    # Radio measurement neighbor report response: a BSSID inside.
    return mgmt(13, STA, AP, AP, bytes([5, 5, 1]) + elt(52, mac(CURRENT_AP) + b"\x00\x00\x00\x00\x51\x06\x07"))


def llc(ethertype: int) -> bytes:
    return b"\xaa\xaa\x03\x00\x00\x00" + struct.pack("!H", ethertype)


def ipv4_udp() -> bytes:
    from scapy.all import IP, UDP, Raw

    return bytes(IP(src="10.99.0.1", dst="10.99.0.2") / UDP(sport=40001, dport=40002) / Raw(b"planted udp payload"))


def ipv6_tcp() -> bytes:
    from scapy.all import TCP, IPv6, Raw

    return bytes(IPv6(src="2001:db8:99::1", dst="2001:db8:99::2") / TCP(sport=40000, dport=80, flags="PA")
                 / Raw(b"GET /index.html HTTP/1.1\r\nHost: planted.example.net\r\nCookie: planted-cookie\r\n\r\n"))


def arp() -> bytes:
    from scapy.all import ARP

    return bytes(ARP(op=1, hwsrc=STA, psrc="10.99.0.1", pdst="10.99.0.254"))


def data(flags: int, addrs: list[str], payload: bytes, qos: bool = False, sub: int = 0, seq: int = 0x2340,
         amsdu: bool = False) -> bytes:
    sub |= 8 if qos else 0
    tail = struct.pack("<H", 0x0080 if amsdu else 0x0006) if qos else b""
    return dot11(0x08 | sub << 4, flags, _macs(*addrs), seq=seq, tail=tail) + payload


def eapol(ptype: int, body: bytes) -> bytes:
    return llc(0x888E) + struct.pack("!BBH", 2, ptype, len(body)) + body


def eap(code: int, ident: int, etype: int | None, data: bytes = b"") -> bytes:
    body = b"" if etype is None else bytes([etype]) + data
    return struct.pack("!BBH", code, ident, 4 + len(body)) + body


def eapol_key(info: int, nonce: bytes, mic: bytes, key_data: bytes, replay: int) -> bytes:
    return (bytes([2]) + struct.pack("!HHQ", info, 16, replay) + nonce + bytes(range(16)) + b"\x11" * 8
            + b"\x22" * 8 + mic + struct.pack("!H", len(key_data)) + key_data)


# ---------------------------------------------------------------- builders


def _wrap(frames: list[bytes], flags: int = 0x10) -> list[bytes]:
    return [radiotap(flags) + (fcs(f) if flags & 0x10 else f) for f in frames]


def radiotap_management() -> Leak:
    frames = [beacon(), probe_req(), probe_resp(), assoc_req(), reassoc_req(), assoc_resp(), auth(),
              auth(3), deauth(), action(), beacon(bytes(len(SSID)))]
    return Leak("radiotap_management", _wrap(frames), RADIOTAP,
                [mac(AP), mac(STA), mac(CURRENT_AP), SSID, SSID2, MESH_ID, DEVICE, PMKID, b"planted challenge",
                 b"planted-pwid", b"PLANTED-VENDOR-RADIO", COUNTRY])


def radiotap_data() -> Leak:
    frames = [
        data(0x01, [AP, STA, "02:99:00:00:00:0b"], llc(0x0800) + ipv4_udp(), qos=True),
        data(0x02, [STA, AP, "02:99:00:00:00:0b"], llc(0x86DD) + ipv6_tcp()),
        data(0x03, [AP, WDS, "02:99:00:00:00:0b", STA], llc(0x0806) + arp()),
        data(0x00, [STA2, STA, AP], llc(0x0800) + ipv4_udp(), qos=True),
        data(0x02, [STA, AP, "02:99:00:00:00:0b"], b"", sub=4),  # null data
        data(0x02, [STA, AP, "02:99:00:00:00:0b"], b"planted later fragment", seq=0x2341),
        data(0x02, [STA, AP, "02:99:00:00:00:0b"], llc(0x88B5) + b"planted local experimental"),
        data(0x02, [STA, AP, "02:99:00:00:00:0b"], amsdu_body(), qos=True, amsdu=True),
    ]
    out = _wrap(frames)
    # One frame with the datapad flag: QoS header (26 bytes) padded to 28.
    padded = data(0x01, [AP, STA, "02:99:00:00:00:0b"], b"\x00\x00" + llc(0x0800) + ipv4_udp(), qos=True)
    out.append(radiotap(0x30) + fcs(padded, (26, 28)))
    return Leak("radiotap_data", out, RADIOTAP,
                [mac(AP), mac(STA), mac(STA2), mac(WDS), b"\x02\x99\x00\x00\x00\x0b", bytes([10, 99, 0, 1]),
                 bytes([10, 99, 0, 2]), b"planted udp payload", b"planted-cookie", b"planted later fragment",
                 b"planted local experimental", b"planted.example.net"])


def amsdu_body() -> bytes:
    out = b""
    for i, payload in enumerate((llc(0x0800) + ipv4_udp(), llc(0x0806) + arp())):
        sub = mac(STA2 if i else STA) + mac(AP) + struct.pack("!H", len(payload)) + payload
        if i == 0:
            sub += b"\0" * (-len(sub) % 4)
        out += sub
    return out


def radiotap_eapol() -> Leak:
    hs = [AP, STA]
    frames = [
        data(0x01, [AP, STA, AP], eapol(1, b"")),
        data(0x02, [STA, AP, AP], eapol(0, eap(1, 1, 1, b""))),
        data(0x01, [AP, STA, AP], eapol(0, eap(2, 1, 1, IDENTITY))),
        data(0x02, [STA, AP, AP], eapol(0, eap(1, 2, 25, b"\x21" + b"planted tls body"))),
        data(0x02, [STA, AP, AP], eapol(0, eap(3, 2, None))),
        data(0x02, [STA, AP, AP], eapol(3, eapol_key(0x008A, ANONCE, bytes(16), b"", 1))),
        data(0x01, [AP, STA, AP], eapol(3, eapol_key(0x010A, SNONCE, MIC, rsn()[:22] + KEYDATA, 1))),
    ]
    del hs
    return Leak("radiotap_eapol", _wrap(frames), RADIOTAP,
                [mac(AP), mac(STA), IDENTITY, b"planted tls body", ANONCE, SNONCE, MIC, KEYDATA])


def radiotap_protected() -> Leak:
    ccmp = b"\x01\x00\x00\x20\x00\x00\x00\x00" + SECRET + b"MICMICMI"
    tkip = b"\x00\x20\x01\x20\x00\x00\x00\x00" + SECRET + b"MICMICMI" + b"ICV!"
    wep = b"\x12\x34\x56\x00" + SECRET + b"ICV!"
    frames = [
        data(0x41, [AP, STA, AP], ccmp, qos=True),
        data(0x42, [STA, AP, AP], tkip),
        data(0x41, [AP, STA, AP], wep),
        mgmt(13, STA, AP, AP, ccmp, flags=0x40),
    ]
    return Leak("radiotap_protected", _wrap(frames), RADIOTAP, [mac(AP), mac(STA), SECRET])


def radiotap_control() -> Leak:
    ra, ta = mac(STA), mac(AP)
    frames = [
        struct.pack("<BBH", 0xB4, 0, 300) + ra + ta,  # RTS
        struct.pack("<BBH", 0xC4, 0, 200) + ra,  # CTS
        struct.pack("<BBH", 0xD4, 0, 0) + ra,  # ACK
        struct.pack("<BBH", 0xA4, 0, 0xC001) + ta + ra,  # PS-Poll
        struct.pack("<BBH", 0x84, 0, 0) + ra + ta + struct.pack("<HH", 0x0004, 0x1230),  # BAR
        struct.pack("<BBH", 0x94, 0, 0) + ra + ta + struct.pack("<HH", 0x0004, 0x1230) + b"\xff" * 8,  # BA
        struct.pack("<BBH", 0xE4, 0, 0) + mac(BCAST) + ta,  # CF-End
        struct.pack("<BBH", 0x24, 0, 0) + ra + ta + b"planted trigger user info",  # trigger
    ]
    return Leak("radiotap_control", _wrap(frames), RADIOTAP, [ra, ta, b"planted trigger user info"])


def radiotap_malformed() -> Leak:
    bad_ie = mgmt(8, BCAST, AP, AP, struct.pack("<QHH", 1, 100, 0x0431) + elt(0, SSID) + b"\xdd\x40planted-cut")
    cut = radiotap(0) + beacon()
    # Flags, then a field of the second bitmap word (bit 32: TLV-only, size unknown to a
    # walker): everything from it to the end of the header must go.
    unknown = struct.pack("<BBHII", 0, 0, 36, (1 << 1) | (1 << 31), 1) + b"\x10" + b"PLANTED-UNKNOWN-RADIO-FD"[:23]
    frames = [
        radiotap(0x10) + fcs(bad_ie),
        (cut[:80], len(cut)),
        unknown + fcs(data(0x01, [AP, STA, AP], llc(0x0800) + ipv4_udp())),
        radiotap(0x50) + data(0x01, [AP, STA, AP], llc(0x0800) + ipv4_udp()) + b"FCS!",
    ]
    return Leak("radiotap_malformed", frames, RADIOTAP,
                [mac(AP), b"planted-cut", b"PLANTED-VENDOR-RADIO", b"PLANTED-UNKNOWN-RADIO", SSID], snaplen=80)


def dot11_plain() -> Leak:
    frames = [beacon(), probe_req(), data(0x01, [AP, STA, AP], llc(0x0800) + ipv4_udp(), qos=True)]
    return Leak("dot11_plain", frames, IEEE802_11,
                [mac(AP), mac(STA), SSID, SSID2, DEVICE, bytes([10, 99, 0, 1]), b"planted udp payload"])


def ppi_header(with_fcs: bool) -> bytes:
    common = struct.pack("<QHHHHBBbb", 0x1122334455, 0x0001 if with_fcs else 0, 0x0C, 2437, 0x00A0, 0, 0, -60, -90)
    gps = b"planted GPS fix 48.1N 11.5E".ljust(28, b"\0")
    fields = struct.pack("<HH", 2, len(common)) + common + struct.pack("<HH", 30002, len(gps)) + gps
    return struct.pack("<BBHI", 0, 0, 8 + len(fields), 105) + fields


def ppi_frames() -> Leak:
    frames = [ppi_header(True) + fcs(beacon()), ppi_header(False) + data(0x01, [AP, STA, AP], llc(0x0800) + ipv4_udp())]
    return Leak("ppi_frames", frames, PPI, [mac(AP), mac(STA), SSID, DEVICE, b"planted GPS fix", bytes([10, 99, 0, 1])])


def prism_header() -> bytes:
    items = b""
    for i, value in enumerate((1000, 2000, 6, 40, 0, 40, 0, 22, 0, 100), 1):
        items += struct.pack("<IHHI", (i << 16) | 0x44, 0, 4, value)
    return struct.pack("<II", 0x44, 24 + len(items)) + b"planted-wlan0\0\0\0" + items


def avs_header(version: int = 2) -> bytes:
    body = struct.pack("!QQIIIIIIiiII", 1, 2, 8, 6, 22, 1, 0, 2, -60, -90, 1, 1)
    if version == 2:
        body += struct.pack("!II", 7, 0) + mac("02:99:00:00:00:ee") + b"\0\0"
    return struct.pack("!II", 0x80211000 + version, 8 + len(body)) + body


def prism_frames() -> Leak:
    frames = [prism_header() + beacon(), prism_header() + data(0x01, [AP, STA, AP], llc(0x0800) + ipv4_udp()),
              avs_header(2) + probe_req()]
    return Leak("prism_frames", frames, PRISM,
                [mac(AP), mac(STA), SSID, SSID2, b"planted-wlan0", mac("02:99:00:00:00:ee"), bytes([10, 99, 0, 1])])


def avs_frames() -> Leak:
    frames = [avs_header(1) + beacon(), avs_header(2) + data(0x02, [STA, AP, AP], llc(0x86DD) + ipv6_tcp())]
    return Leak("avs_frames", frames, AVS,
                [mac(AP), mac(STA), SSID, DEVICE, mac("02:99:00:00:00:ee"), b"planted-cookie"])


BUILDERS = [radiotap_management, radiotap_data, radiotap_eapol, radiotap_protected, radiotap_control,
            radiotap_malformed, dot11_plain, ppi_frames, prism_frames, avs_frames]
