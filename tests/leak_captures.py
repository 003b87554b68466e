"""Tiny captures that each hide one identifier where a naive sanitizer or auditor does not look.

Every builder returns a ``Leak``: the frames (bytes, or ``(bytes, orig_len)`` for a frame cut
short), the link type, the pcap snaplen, and ``planted``: the identifier bytes that must not
survive sanitizing. A planted item is either a byte string (every occurrence in every frame
counts) or a ``Spot`` (frame index, offset, value) for a value too short or too common to be
searched for (a 2-byte checksum, a 3-byte stub). ``Leak.write(path)`` writes the capture with
``captures.write_pcap``; ``Leak.locations()`` lists ``(frame, offset, value)`` for every planted
value, which is where the planted-leak tests copy the original bytes back into a sanitized file
(``plant``).

Planted values are distinctive: IPv4 10.99.x.x, IPv6 2001:db8:99::/48, MACs 02:99:..., text
with "PLANTED"/"planted". The policy they exercise is docs/policy.md (issue 12 header policy).

| builder | leak (issue 12 list) |
|---|---|
| arp_hlen8 | ARP with hlen 8 (EUI-64) |
| arp_hlen20 | ARP with hlen 20 (InfiniBand) |
| arp_cut_short | ARP cut short by snaplen |
| sll_gre_tunnel | Linux SLL, ARPHRD 778 (IPv4 address in the address field) |
| sll_ieee80211 | Linux SLL, ARPHRD 801 (802.11 MAC) |
| sll_firewire | Linux SLL, ARPHRD 24 (FireWire EUI-64) |
| sll2_gre_tunnel, sll2_ieee80211, sll2_firewire | the same three under SLL2 |
| ipv4_ihl4, ipv4_ihl3 | IPv4 with IHL 4 and 3 |
| ipv4_under_ipv6_ethertype | IPv4 under EtherType 0x86DD |
| ipv4_timestamp_flag2 | IPv4 timestamp option, flag 2, with data |
| ipv4_route_stubs | record route / LSRR stubs shorter than 4 bytes |
| mobility_binding_error | IPv6 mobility header: binding error with home address |
| mobility_binding_update | IPv6 mobility header: binding update with alternate care-of address |
| hip_host_id | HIP header, HITs and a HOST_ID with an FQDN |
| shim6_locators | Shim6 with a locator list |
| home_address_hop_by_hop | home address option in a hop-by-hop header |
| home_address_bad_length | home address option (destination options) with length 18 |
| routing_rpl | routing header type 3 (RPL) with addresses |
| routing_253 | routing header type 253 with an address |
| padn_contents | PadN with non-zero contents |
| ns_solicited_node | Neighbor Solicitation to the solicited-node group of its target |
| group_unicast_prefix | RFC 3306 group as destination and in an MLDv2 report |
| group_embedded_rp | RFC 3956 embedded-RP group as destination and in an MLDv2 report |
| mldv1_report_group | MLDv1 report for a unicast-prefix-based group |
| nd_lla_length2 | ND source link-layer option of length 2 (EUI-64 / InfiniBand) |
| mptcp_add_addr4, mptcp_add_addr6 | TCP option MPTCP ADD_ADDR (IPv4, IPv6, with HMAC) |
| tcp_fast_open_cookie | TCP option 34 (TFO cookie) |
| tcp_md5_signature | TCP option 19 (MD5 signature) |
| tcp_experimental | TCP options 253 and 254 |
| tcp_after_eol | bytes after TCP End-of-Options |
| igmp_mtrace | IGMP mtrace (0x1f) |
| igmp_dvmrp | IGMP DVMRP (0x13) |
| igmp_pimv1 | IGMP PIMv1 (0x14) with an RP address |
| igmpv3_report_aux | IGMPv3 report with aux data and unicast sources |
| igmp_trailing | IGMP with trailing bytes |
| icmp_unused_bytes | ICMP error whose 4 "unused" bytes carry data |
| mldv1_trailing | trailing bytes after an MLDv1 message |
| mldv2_trailing | trailing bytes after an MLDv2 report |
| eompls_no_control_word | Ethernet over MPLS without a control word (inner dst MAC nibble 0) |
| udp4789_not_vxlan | UDP to 4789, first byte 0x08, not VXLAN (fake inner EtherType 0x0806) |
| tcp_retransmission_differs | TCP retransmission with different bytes (Accept, then Cookie) |
| ipv4_first_fragment_alone | IPv4 first fragment without its last fragment (original TCP checksum) |
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import NamedTuple

from captures import write_pcap

ETHERNET, SLL, SLL2 = 1, 113, 276


class Spot(NamedTuple):
    """A planted value at a known place: frame index (0-based), offset in the frame, bytes."""

    frame: int
    offset: int
    value: bytes


Planted = bytes | Spot


class Leak(NamedTuple):
    """One leak capture (see the module docstring)."""

    name: str
    frames: list
    linktype: int
    planted: list
    snaplen: int = 65535

    def data(self, i: int) -> bytes:
        fr = self.frames[i]
        return fr[0] if isinstance(fr, tuple) else fr

    def write(self, path) -> Path:
        return write_pcap(path, self.frames, linktype=self.linktype, snaplen=self.snaplen)

    def locations(self) -> list[tuple[int, int, bytes]]:
        """Every (frame, offset, value) where a planted value sits in the original frames."""
        out = []
        for item in self.planted:
            if isinstance(item, Spot):
                assert self.data(item.frame)[item.offset:item.offset + len(item.value)] == item.value
                out.append(tuple(item))
                continue
            found = False
            for i in range(len(self.frames)):
                data = self.data(i)
                pos = data.find(item)
                while pos >= 0:
                    out.append((i, pos, item))
                    found = True
                    pos = data.find(item, pos + 1)
            assert found, (self.name, item)
        return sorted(set(out))


def frame_offsets(buf: bytes) -> list[int]:
    """Where each frame's bytes start in a little-endian classic pcap (as captures.write_pcap writes)."""
    pos, out = 24, []
    while pos < len(buf):
        out.append(pos + 16)
        pos += 16 + struct.unpack_from("<I", buf, pos + 8)[0]
    return out


def plant(path, locations, dest) -> Path:
    """Copy ``(frame, offset, bytes)`` items into the classic pcap at ``path``; write it to ``dest``."""
    buf = bytearray(Path(path).read_bytes())
    starts = frame_offsets(bytes(buf))
    for frame, offset, value in locations:
        buf[starts[frame] + offset:starts[frame] + offset + len(value)] = value
    Path(dest).write_bytes(bytes(buf))
    return Path(dest)


# ---------------------------------------------------------------- helpers


def _ip4(text: str) -> bytes:
    return bytes(int(x) for x in text.split("."))


def _ip6(text: str) -> bytes:
    import ipaddress

    return ipaddress.IPv6Address(text).packed


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _with_csum(msg: bytes, at: int = 2) -> bytes:
    """``msg`` with its Internet checksum (over itself) written at ``at``."""
    b = bytearray(msg)
    b[at:at + 2] = b"\0\0"
    b[at:at + 2] = struct.pack("!H", _csum(bytes(b)))
    return bytes(b)


def _eth(ethertype: int, dst: str = "02:00:00:00:00:02", src: str = "02:00:00:00:00:01") -> bytes:
    return _mac(dst) + _mac(src) + struct.pack("!H", ethertype)


def _ipv4(payload: bytes, proto: int, src="192.0.2.1", dst="192.0.2.2", **kw) -> bytes:
    from scapy.all import IP, Raw

    return bytes(IP(src=src, dst=dst, proto=proto, **kw) / Raw(payload))


def _ipv4_opts(payload: bytes, proto: int, options: bytes, src="192.0.2.1", dst="192.0.2.2") -> bytes:
    """An IPv4 header built by hand (scapy re-parses options and rejects stubs)."""
    assert len(options) % 4 == 0
    hdr = struct.pack("!BBHHHBBH", 0x45 + len(options) // 4, 0, 20 + len(options) + len(payload), 1, 0, 64,
                      proto, 0) + _ip4(src) + _ip4(dst) + options
    return _with_csum(hdr, 10) + payload


def _ipv6(payload: bytes, nh: int, src="2001:db8::1", dst="2001:db8::2", hlim=64) -> bytes:
    from scapy.all import IPv6, Raw

    return bytes(IPv6(src=src, dst=dst, nh=nh, hlim=hlim) / Raw(payload))


def _ext(nh: int, body: bytes) -> bytes:
    """An IPv6 extension header (next header, length, ``body`` padded with PadN to 8n bytes)."""
    total = 2 + len(body)
    pad = -total % 8
    if pad == 1:
        body += b"\0"
    elif pad:
        body += bytes([1, pad - 2]) + bytes(pad - 2)
    return bytes([nh, (2 + len(body)) // 8 - 1]) + body


def _e4(payload_ip: bytes) -> bytes:
    return _eth(0x0800) + payload_ip


def _e6(payload_ip: bytes, dst_mac: str = "02:00:00:00:00:02") -> bytes:
    return _eth(0x86DD, dst=dst_mac) + payload_ip


def _tcp4(opts: bytes = b"", payload: bytes = b"", src="192.0.2.1", dst="192.0.2.2", seq=1000,
          flags="PA", sport=40000, dport=80, **ipkw) -> bytes:
    from scapy.all import IP, TCP, Raw

    assert len(opts) % 4 == 0
    seg = TCP(sport=sport, dport=dport, seq=seq, ack=1, flags=flags, dataofs=5 + len(opts) // 4) / Raw(opts + payload)
    return _eth(0x0800) + bytes(IP(src=src, dst=dst, **ipkw) / seg)


def _tcp6(opts: bytes, payload: bytes = b"") -> bytes:
    from scapy.all import TCP, IPv6, Raw

    seg = TCP(sport=40000, dport=443, seq=1000, ack=1, flags="PA", dataofs=5 + len(opts) // 4) / Raw(opts + payload)
    return _e6(bytes(IPv6(src="2001:db8::1", dst="2001:db8::2") / seg))


def _icmp6(msg: bytes, src="2001:db8::1", dst="2001:db8::2", hlim=255, ext: bytes = b"", ext_nh: int = 58) -> bytes:
    """An ICMPv6 message (checksum computed here) in IPv6, optionally behind one extension header."""
    s, d = _ip6(src), _ip6(dst)
    pseudo = s + d + struct.pack("!I3xB", len(msg), 58)
    b = bytearray(msg)
    b[2:4] = b"\0\0"
    b[2:4] = struct.pack("!H", _csum(pseudo + bytes(b)))
    if ext:
        return _e6(_ipv6(ext + bytes(b), ext_nh, src, dst, hlim))
    return _e6(_ipv6(bytes(b), 58, src, dst, hlim))


def _udp4(payload: bytes, dport: int, src="192.0.2.1", dst="192.0.2.2", sport=40000) -> bytes:
    from scapy.all import IP, UDP, Raw

    return _eth(0x0800) + bytes(IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / Raw(payload))


def _udp6(payload: bytes, dport: int, dst: str, src="2001:db8::1") -> bytes:
    from scapy.all import UDP, IPv6, Raw

    return _e6(bytes(IPv6(src=src, dst=dst) / UDP(sport=40000, dport=dport) / Raw(payload)), dst_mac="33:33:00:00:12:34")


# ---------------------------------------------------------------- link layer


def _arp(htype: int, hlen: int, sha: bytes, tha: bytes) -> bytes:
    spa, tpa = _ip4("10.99.1.1"), _ip4("10.99.1.2")
    return struct.pack("!HHBBH", htype, 0x0800, hlen, 4, 1) + sha + spa + tha + tpa


def arp_hlen8() -> Leak:
    sha, tha = bytes.fromhex("0299aaaabbbb0101"), bytes.fromhex("0299aaaabbbb0202")
    frame = _eth(0x0806, dst="ff:ff:ff:ff:ff:ff") + _arp(27, 8, sha, tha)
    return Leak("arp_hlen8", [frame], ETHERNET, [sha, tha, _ip4("10.99.1.1"), _ip4("10.99.1.2")])


def arp_hlen20() -> Leak:
    sha = bytes.fromhex("0000004afe800000000000000299aaaabbbb0303")
    tha = bytes.fromhex("0000004bfe800000000000000299aaaabbbb0404")
    frame = _eth(0x0806, dst="ff:ff:ff:ff:ff:ff") + _arp(32, 20, sha, tha)
    return Leak("arp_hlen20", [frame], ETHERNET, [sha[4:], tha[4:], _ip4("10.99.1.1"), _ip4("10.99.1.2")])


def arp_cut_short() -> Leak:
    """ARP request captured with snaplen 31: the sender IPv4 address has 3 of its 4 bytes."""
    sha = _mac("02:99:03:00:00:01")
    frame = _eth(0x0806, dst="ff:ff:ff:ff:ff:ff", src="02:99:03:00:00:01") + struct.pack(
        "!HHBBH", 1, 0x0800, 6, 4, 1) + sha + _ip4("10.99.3.7") + bytes(6) + _ip4("10.99.3.8")
    cut = frame[:31]
    return Leak("arp_cut_short", [(cut, len(frame))], ETHERNET, [sha, Spot(0, 28, cut[28:31])], snaplen=31)


def _sll(arphrd: int, addr: bytes, payload: bytes, proto: int = 0x0800) -> bytes:
    return struct.pack("!HHH", 0, arphrd, len(addr)) + addr.ljust(8, b"\0") + struct.pack("!H", proto) + payload


def _sll2(arphrd: int, addr: bytes, payload: bytes, proto: int = 0x0800) -> bytes:
    return struct.pack("!HHIHBB", proto, 0, 3, arphrd, 0, len(addr)) + addr.ljust(8, b"\0") + payload


def _inner4() -> bytes:
    return _ipv4(b"", 59, src="192.0.2.1", dst="192.0.2.2")


_GRE_ADDR = _ip4("10.99.4.1")
_WLAN_MAC = _mac("02:99:05:00:00:01")
_EUI64 = bytes.fromhex("0299060000000001")


def sll_gre_tunnel() -> Leak:
    return Leak("sll_gre_tunnel", [_sll(778, _GRE_ADDR, _inner4())], SLL, [_GRE_ADDR])


def sll_ieee80211() -> Leak:
    return Leak("sll_ieee80211", [_sll(801, _WLAN_MAC, _inner4())], SLL, [_WLAN_MAC])


def sll_firewire() -> Leak:
    return Leak("sll_firewire", [_sll(24, _EUI64, _inner4())], SLL, [_EUI64])


def sll2_gre_tunnel() -> Leak:
    return Leak("sll2_gre_tunnel", [_sll2(778, _GRE_ADDR, _inner4())], SLL2, [_GRE_ADDR])


def sll2_ieee80211() -> Leak:
    return Leak("sll2_ieee80211", [_sll2(801, _WLAN_MAC, _inner4())], SLL2, [_WLAN_MAC])


def sll2_firewire() -> Leak:
    return Leak("sll2_firewire", [_sll2(24, _EUI64, _inner4())], SLL2, [_EUI64])


# ---------------------------------------------------------------- IPv4


def _short_ihl(ihl: int) -> Leak:
    src, dst = _ip4(f"10.99.6.{ihl}"), _ip4(f"10.99.6.{10 + ihl}")
    body = b"PLANTED-IHL-PAYLOAD"
    hdr = struct.pack("!BBHHHBBH", 0x40 | ihl, 0, 20 + len(body), 1, 0, 64, 17, 0) + src + dst
    return Leak(f"ipv4_ihl{ihl}", [_eth(0x0800) + hdr + body], ETHERNET, [src, dst, body])


def ipv4_ihl4() -> Leak:
    return _short_ihl(4)


def ipv4_ihl3() -> Leak:
    return _short_ihl(3)


def ipv4_under_ipv6_ethertype() -> Leak:
    src, dst = _ip4("10.99.7.1"), _ip4("10.99.7.2")
    pkt = _ipv4(b"PLANTED-IN-WRONG-ETHERTYPE", 17, src="10.99.7.1", dst="10.99.7.2")
    return Leak("ipv4_under_ipv6_ethertype", [_eth(0x86DD) + pkt], ETHERNET, [src, dst, b"PLANTED-IN-WRONG-ETHERTYPE"])


def ipv4_timestamp_flag2() -> Leak:
    hidden = _ip4("10.99.8.9")
    opt = bytes([68, 12, 5, 0x02]) + hidden + b"\x99\x88\x77\x66"
    pkt = _ipv4_opts(b"", 59, opt)
    return Leak("ipv4_timestamp_flag2", [_e4(pkt)], ETHERNET, [hidden + b"\x99\x88\x77\x66"])


def ipv4_route_stubs() -> Leak:
    """Record route with a 3-byte stub, LSRR with one full address and a 2-byte stub."""
    full = _ip4("10.99.9.2")
    rr = bytes([7, 6, 4, 0xC6, 0x33, 0x99])
    lsrr = bytes([131, 9, 4]) + full + b"\xcb\x99"
    pkt = _ipv4_opts(b"", 59, rr + lsrr + b"\x00")
    frame = _e4(pkt)
    return Leak("ipv4_route_stubs", [frame], ETHERNET,
                [Spot(0, 37, rr[3:]), full, Spot(0, 14 + 20 + 6 + 7, b"\xcb\x99")])


# ---------------------------------------------------------------- IPv6 extension headers

_HOA = _ip6("2001:db8:99:e::1")


def mobility_binding_error() -> Leak:
    mh = bytes([59, 2, 7, 0]) + b"\0\0" + bytes([1, 0]) + _HOA
    return Leak("mobility_binding_error", [_e6(_ipv6(_with_csum(mh, 4), 135))], ETHERNET, [_HOA])


def mobility_binding_update() -> Leak:
    coa = _ip6("2001:db8:99:c0a::7")
    mh = bytes([59, 3, 5, 0]) + b"\0\0" + struct.pack("!HHH", 7, 0xA000, 60) + bytes([1, 0]) + bytes([3, 16]) + coa
    return Leak("mobility_binding_update", [_e6(_ipv6(_with_csum(mh, 4), 135, src="2001:db8:99:c0a::7"))],
                ETHERNET, [coa])


def hip_host_id() -> Leak:
    shit, rhit = _ip6("2001:20:99::1"), _ip6("2001:20:99::2")
    fqdn = b"planted-hip-host.example"
    hi = bytes(8) + b"PLANTEDKEY"  # a stand-in host identity
    di = struct.pack("!H", (1 << 12) | len(fqdn))
    body = struct.pack("!H", len(hi)) + di + hi + fqdn  # HI length, DI type/length, HI, DI
    param = struct.pack("!HH", 705, len(body)) + body
    param += bytes(-len(param) % 8)
    hdr = bytes([59, (40 + len(param)) // 8 - 1, 0x01, 0x11]) + b"\0\0" + b"\0\0" + shit + rhit + param
    return Leak("hip_host_id", [_e6(_ipv6(hdr, 139))], ETHERNET, [shit, rhit, fqdn, b"PLANTEDKEY"])


def shim6_locators() -> Leak:
    loc1, loc2 = _ip6("2001:db8:99:5c::1"), _ip6("2001:db8:99:5c::2")
    locators = struct.pack("!I", 1) + bytes([2, 0, 0, 0]) + loc1 + loc2
    opt = struct.pack("!HH", 3 << 1, len(locators)) + locators
    body = bytes([0x03, 0x00]) + b"\0\0" + bytes(6) + b"\x99\x01" + opt
    msg = bytes([59]) + bytes([(2 + len(body) + 7) // 8 - 1]) + body
    msg += bytes(-len(msg) % 8)
    return Leak("shim6_locators", [_e6(_ipv6(msg, 140))], ETHERNET, [loc1, loc2])


def home_address_hop_by_hop() -> Leak:
    hdr = _ext(59, bytes([1, 2, 0, 0]) + bytes([201, 16]) + _HOA)
    return Leak("home_address_hop_by_hop", [_e6(_ipv6(hdr, 0))], ETHERNET, [_HOA])


def home_address_bad_length() -> Leak:
    hoa = _ip6("2001:db8:99:e::2")
    hdr = _ext(59, bytes([1, 2, 0, 0]) + bytes([201, 18]) + hoa + b"\x99\x99")
    return Leak("home_address_bad_length", [_e6(_ipv6(hdr, 60))], ETHERNET, [hoa])


def routing_rpl() -> Leak:
    a1, a2 = _ip6("2001:db8:99:3::1"), _ip6("2001:db8:99:3::2")
    hdr = bytes([59, 4, 3, 2]) + bytes([0, 0, 0, 0]) + a1 + a2
    return Leak("routing_rpl", [_e6(_ipv6(hdr, 43))], ETHERNET, [a1, a2])


def routing_253() -> Leak:
    a1 = _ip6("2001:db8:99:fd::1")
    hdr = bytes([59, 2, 253, 1]) + bytes(4) + a1
    return Leak("routing_253", [_e6(_ipv6(hdr, 43))], ETHERNET, [a1])


def padn_contents() -> Leak:
    hdr = _ext(59, bytes([1, 12]) + b"PADNPLANTED!")
    return Leak("padn_contents", [_e6(_ipv6(hdr, 60))], ETHERNET, [b"PADNPLANTED!"])


# ---------------------------------------------------------------- ICMPv6 / MLD / ND


def ns_solicited_node() -> Leak:
    target = "2001:db8:99::99:a0b"
    group = "ff02::1:ff99:a0b"
    msg = bytes([135, 0]) + b"\0\0" + bytes(4) + _ip6(target)
    frame = _icmp6(msg, src="::", dst=group)
    frame = _mac("33:33:ff:99:0a:0b") + frame[6:]
    return Leak("ns_solicited_node", [frame], ETHERNET, [_ip6(target), _ip6(group)])


_G3306 = "ff3e:40:2001:db8:99:1:0:1234"  # plen 64, prefix 2001:db8:99:1::/64
_GRP = "ff7e:140:2001:db8:99:2:0:1234"  # RIID 1, plen 64, RP prefix 2001:db8:99:2::/64


def _mldv2_report(group: str, sources=()) -> bytes:
    rec = bytes([4, 0]) + struct.pack("!H", len(sources)) + _ip6(group) + b"".join(_ip6(s) for s in sources)
    return bytes([143, 0]) + b"\0\0" + struct.pack("!HH", 0, 1) + rec


_RA_HBH = _ext(58, bytes([5, 2, 0, 0]))  # router alert, MLD


def _group_leak(name: str, group: str) -> Leak:
    frames = [
        _udp6(b"\x00" * 8, 5000, dst=group),
        _icmp6(_mldv2_report(group), src="fe80::99:1", dst="ff02::16", hlim=1, ext=_RA_HBH, ext_nh=0),
    ]
    return Leak(name, frames, ETHERNET, [_ip6(group)])


def group_unicast_prefix() -> Leak:
    return _group_leak("group_unicast_prefix", _G3306)


def group_embedded_rp() -> Leak:
    return _group_leak("group_embedded_rp", _GRP)


def mldv1_report_group() -> Leak:
    msg = bytes([131, 0]) + b"\0\0" + b"\0\0\0\0" + _ip6(_G3306)
    return Leak("mldv1_report_group", [_icmp6(msg, src="fe80::99:2", dst=_G3306, hlim=1, ext=_RA_HBH, ext_nh=0)],
                ETHERNET, [_ip6(_G3306)])


def nd_lla_length2() -> Leak:
    eui = bytes.fromhex("0299aaaabbbb0909")
    msg = bytes([135, 0]) + b"\0\0" + bytes(4) + _ip6("2001:db8::2") + bytes([1, 2]) + eui + bytes(6)
    return Leak("nd_lla_length2", [_icmp6(msg, dst="ff02::1:ff00:2")], ETHERNET, [eui])


def mldv1_trailing() -> Leak:
    msg = bytes([131, 0]) + b"\0\0" + b"\0\0\0\0" + _ip6("ff02::99") + b"MLD1-TRAILING-PLANTED"
    return Leak("mldv1_trailing", [_icmp6(msg, src="fe80::99:3", dst="ff02::99", hlim=1, ext=_RA_HBH, ext_nh=0)],
                ETHERNET, [b"MLD1-TRAILING-PLANTED"])


def mldv2_trailing() -> Leak:
    msg = _mldv2_report("ff02::99") + b"MLD2-TRAILING-PLANTED"
    return Leak("mldv2_trailing", [_icmp6(msg, src="fe80::99:4", dst="ff02::16", hlim=1, ext=_RA_HBH, ext_nh=0)],
                ETHERNET, [b"MLD2-TRAILING-PLANTED"])


# ---------------------------------------------------------------- TCP options


def mptcp_add_addr4() -> Leak:
    addr, hmac = _ip4("10.99.30.4"), b"\x99HMAC4\x99\x99"
    opt = bytes([30, 16, 0x30, 7]) + addr + hmac
    return Leak("mptcp_add_addr4", [_tcp4(opt)], ETHERNET, [addr, hmac])


def mptcp_add_addr6() -> Leak:
    addr, hmac = _ip6("2001:db8:99:30::6"), b"\x99HMAC6\x99\x99"
    opt = bytes([30, 28, 0x30, 8]) + addr + hmac
    return Leak("mptcp_add_addr6", [_tcp6(opt)], ETHERNET, [addr, hmac])


def tcp_fast_open_cookie() -> Leak:
    cookie = b"TFOPLANT"
    return Leak("tcp_fast_open_cookie", [_tcp4(bytes([34, 10]) + cookie + b"\x01\x01", flags="S")],
                ETHERNET, [cookie])


def tcp_md5_signature() -> Leak:
    digest = b"MD5-SIG-PLANTED!"
    return Leak("tcp_md5_signature", [_tcp4(bytes([19, 18]) + digest + b"\x01\x01")], ETHERNET, [digest])


def tcp_experimental() -> Leak:
    opts = bytes([253, 8]) + b"EXP253" + bytes([254, 8]) + b"EXP254" + b"\x01\x01\x01\x01"
    return Leak("tcp_experimental", [_tcp4(opts)], ETHERNET, [b"EXP253", b"EXP254"])


def tcp_after_eol() -> Leak:
    opts = bytes([2, 4, 5, 0xB4, 0]) + b"AFTER-EOL-PLNT" + b"\x99"
    return Leak("tcp_after_eol", [_tcp4(opts, flags="S")], ETHERNET, [b"AFTER-EOL-PLNT"])


# ---------------------------------------------------------------- IGMP / ICMPv4


def _igmp(msg: bytes, dst="224.0.0.22") -> bytes:
    from scapy.all import IP, IPOption_Router_Alert, Raw

    return _eth(0x0800, dst="01:00:5e:00:00:16") + bytes(
        IP(src="192.0.2.1", dst=dst, proto=2, ttl=1, options=[IPOption_Router_Alert()]) / Raw(_with_csum(msg)))


def igmp_mtrace() -> Leak:
    src, dst, resp = _ip4("10.99.31.1"), _ip4("10.99.31.2"), _ip4("10.99.31.3")
    msg = bytes([0x1F, 8]) + b"\0\0" + _ip4("239.1.1.1") + src + dst + resp + bytes([64, 0, 0, 9])
    return Leak("igmp_mtrace", [_igmp(msg, dst="224.0.0.2")], ETHERNET, [src, dst, resp])


def igmp_dvmrp() -> Leak:
    nbr = _ip4("10.99.19.1")
    msg = bytes([0x13, 4]) + b"\0\0" + b"\0\0" + bytes([0xFF, 3]) + nbr + b"DVMRP-PLANTED"
    return Leak("igmp_dvmrp", [_igmp(msg, dst="224.0.0.4")], ETHERNET, [nbr, b"DVMRP-PLANTED"])


def igmp_pimv1() -> Leak:
    rp = _ip4("10.99.20.1")
    msg = bytes([0x14, 8]) + b"\0\0" + bytes([0x10, 0, 0, 0]) + rp + bytes([0x1E, 0, 0, 0])
    return Leak("igmp_pimv1", [_igmp(msg, dst="224.0.0.2")], ETHERNET, [rp])


def igmpv3_report_aux() -> Leak:
    s1, s2 = _ip4("10.99.22.1"), _ip4("10.99.22.2")
    aux = b"AUXPLANT"
    rec = bytes([1, len(aux) // 4]) + struct.pack("!H", 2) + _ip4("232.1.1.1") + s1 + s2 + aux
    msg = bytes([0x22, 0]) + b"\0\0" + struct.pack("!HH", 0, 1) + rec
    return Leak("igmpv3_report_aux", [_igmp(msg)], ETHERNET, [s1, s2, aux])


def igmp_trailing() -> Leak:
    msg = bytes([0x16, 0]) + b"\0\0" + _ip4("239.9.9.9") + b"IGMP-TRAILING-PLANTED"
    return Leak("igmp_trailing", [_igmp(msg, dst="239.9.9.9")], ETHERNET, [b"IGMP-TRAILING-PLANTED"])


def icmp_unused_bytes() -> Leak:
    from scapy.all import ICMP, IP, UDP, Raw

    quoted = bytes(IP(src="192.0.2.2", dst="192.0.2.1") / UDP(sport=53, dport=40000) / Raw(b"q" * 8))
    unused = b"\x99U\x99U"
    msg = _with_csum(bytes([3, 1]) + b"\0\0" + unused + quoted)
    frame = _eth(0x0800) + bytes(IP(src="192.0.2.1", dst="192.0.2.2", proto=1) / Raw(msg))
    assert ICMP  # the message is built by hand: scapy would fill the unused bytes
    return Leak("icmp_unused_bytes", [frame], ETHERNET, [unused])


# ---------------------------------------------------------------- encapsulations and streams


def eompls_no_control_word() -> Leak:
    """Ethernet over MPLS without a control word: the inner dst MAC starts with nibble 0."""
    inner_dst, inner_src = _mac("02:99:40:00:00:01"), _mac("02:99:40:00:00:02")
    inner = inner_dst + inner_src + b"\x08\x00" + _ipv4(b"EOMPLS-PAYLOAD-PLANTED", 17,
                                                         src="10.99.40.1", dst="10.99.40.2")
    frame = _eth(0x8847) + struct.pack("!I", (1000 << 12) | (1 << 8) | 64) + inner
    return Leak("eompls_no_control_word", [frame], ETHERNET,
                [inner_dst, inner_src, _ip4("10.99.40.1"), _ip4("10.99.40.2"), b"EOMPLS-PAYLOAD-PLANTED"])


def udp4789_not_vxlan() -> Leak:
    text = b"NOT-VXLAN-PLANTED-TEXT"
    payload = bytes([0x08, 0x99, 0, 0, 0, 0, 1, 0]) + bytes(12) + b"\x08\x06" + text
    return Leak("udp4789_not_vxlan", [_udp4(payload, 4789)], ETHERNET, [text])


def tcp_retransmission_differs() -> Leak:
    first = b"GET / HTTP/1.1\r\nAccept: text/html\r\n\r\n"
    again = b"GET / HTTP/1.1\r\nCookie: secret=planted\r\n\r\n"
    frames = [
        _tcp4(flags="S", seq=999, payload=b""),
        _tcp4(payload=first, seq=1000),
        _tcp4(payload=again, seq=1000),
    ]
    return Leak("tcp_retransmission_differs", frames, ETHERNET, [b"secret=planted"])


def ipv4_first_fragment_alone() -> Leak:
    """The first fragment of a TCP segment whose other fragment is missing: its TCP checksum

    covers bytes that are not in the capture, so it cannot be recomputed and must not survive.
    """
    from scapy.all import IP, TCP, Raw

    whole = IP(src="192.0.2.1", dst="192.0.2.2", id=0x9999) / TCP(sport=40000, dport=9000, flags="PA", seq=5) / \
        Raw(b"FRAGMENT-PAYLOAD-PLANTED" + b"x" * 40)
    raw = bytes(whole)
    tcp = raw[20:]
    first = bytearray(raw[:20] + tcp[:48])
    first[2:4] = struct.pack("!H", 68)
    first[6:8] = struct.pack("!H", 0x2000)  # MF, offset 0
    first[10:12] = b"\0\0"
    first[10:12] = struct.pack("!H", _csum(bytes(first[:20])))
    frame = _eth(0x0800) + bytes(first)
    checksum = tcp[16:18]
    return Leak("ipv4_first_fragment_alone", [frame], ETHERNET,
                [Spot(0, 14 + 20 + 16, checksum), b"FRAGMENT-PAYLOAD-PLANTED"])


BUILDERS = [
    arp_hlen8, arp_hlen20, arp_cut_short,
    sll_gre_tunnel, sll_ieee80211, sll_firewire, sll2_gre_tunnel, sll2_ieee80211, sll2_firewire,
    ipv4_ihl4, ipv4_ihl3, ipv4_under_ipv6_ethertype, ipv4_timestamp_flag2, ipv4_route_stubs,
    mobility_binding_error, mobility_binding_update, hip_host_id, shim6_locators,
    home_address_hop_by_hop, home_address_bad_length, routing_rpl, routing_253, padn_contents,
    ns_solicited_node, group_unicast_prefix, group_embedded_rp, mldv1_report_group, nd_lla_length2,
    mldv1_trailing, mldv2_trailing,
    mptcp_add_addr4, mptcp_add_addr6, tcp_fast_open_cookie, tcp_md5_signature, tcp_experimental, tcp_after_eol,
    igmp_mtrace, igmp_dvmrp, igmp_pimv1, igmpv3_report_aux, igmp_trailing, icmp_unused_bytes,
    eompls_no_control_word, udp4789_not_vxlan, tcp_retransmission_differs, ipv4_first_fragment_alone,
]


def all_leaks() -> list[Leak]:
    """Every leak capture, built."""
    return [b() for b in BUILDERS]
