"""Frames to cut short (tests/e2e/test_e2e_cut_short.py): one or a few per header the walker
knows, each ``(name, link type, whole frame)``; the test cuts each at every length.

Built with scapy here and taken from the other capture modules (link types and tunnels,
planted leaks, 802.11), whose frames together reach every walker module.
"""
import struct

from scapy.all import (
    ARP,
    DNS,
    DNSQR,
    DNSRR,
    GRE,
    ICMP,
    IP,
    PPP,
    TCP,
    UDP,
    Dot1Q,
    Ether,
    ICMPv6DestUnreach,
    ICMPv6EchoRequest,
    ICMPv6MLDMultAddrRec,
    ICMPv6MLReport2,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptSrcLLAddr,
    ICMPv6PacketTooBig,
    IPOption_Router_Alert,
    IPOption_RR,
    IPOption_Timestamp,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    PPPoE,
    Raw,
)
from scapy.contrib.igmpv3 import IGMPv3, IGMPv3gr, IGMPv3mr
from scapy.contrib.mpls import MPLS
from scapy.layers.igmp import IGMP
from scapy.layers.vxlan import VXLAN

M1, M2 = "02:11:22:33:44:55", "02:66:77:88:99:aa"
A, B = "10.1.2.3", "10.9.8.7"
A6, B6 = "2001:db8:1::1", "2001:db8:2::2"
def E(x, **kw): return bytes(Ether(src=M1, dst=M2, **kw) / x)
def ip(**kw): return IP(src=A, dst=B, **kw)
def ip6(**kw): return IPv6(src=A6, dst=B6, **kw)
tcpo = TCP(sport=1234, dport=80, seq=5, ack=7, urgptr=0x4142, flags="PAU",
           options=[("MSS", 1460), ("NOP", None), ("WScale", 7), ("SAckOK", b""), ("Timestamp", (1, 2)), ("SAck", (1, 2))])
http = Raw(b"GET /secret HTTP/1.1\r\nHost: a.example\r\n\r\n")
inner = IP(src="10.55.1.1", dst="10.55.2.2") / UDP(sport=5, dport=9) / Raw(b"inner-secret")

def ours():
    f = {}
    f["tcp4"] = E(ip() / TCP(sport=1234, dport=80, urgptr=0x4142, flags="PAU") / http)
    f["tcp4opt"] = E(ip() / tcpo / Raw(b"x" * 8))
    f["udp4"] = E(ip() / UDP(sport=1000, dport=2000) / Raw(b"y" * 12))
    f["ip4opts"] = E(IP(src=A, dst=B, options=[IPOption_RR(routers=["10.3.3.3", "10.4.4.4"]), IPOption_Router_Alert()]) / UDP() / Raw(b"z" * 4))
    f["ip4ts"] = E(IP(src=A, dst=B, options=[IPOption_Timestamp(flg=1, internet_address="10.6.6.6", timestamp=1, length=12, pointer=5)]) / UDP() / Raw(b"z" * 4))
    f["vlan6tcp"] = E(Dot1Q(vlan=5) / ip6() / tcpo / Raw(b"q" * 6))
    f["qinq4"] = E(Dot1Q(vlan=5) / Dot1Q(vlan=6) / ip() / UDP() / Raw(b"q" * 6))
    f["ip6ext"] = E(ip6() / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / IPv6ExtHdrRouting(addresses=["2001:db8:3::3"]) / IPv6ExtHdrFragment() / UDP() / Raw(b"w" * 8))
    f["icmp_echo"] = E(ip() / ICMP(type=8, id=3, seq=4) / Raw(b"ping-secret"))
    f["icmp_err"] = E(ip() / ICMP(type=3, code=1) / bytes(IP(src=B, dst=A) / TCP(sport=80, dport=1234, flags="S") / Raw(b"abc")))
    f["icmp_ts"] = E(ip() / ICMP(type=13, id=1, seq=2, ts_ori=1, ts_rx=2, ts_tx=3))
    f["icmp6_echo"] = E(ip6() / ICMPv6EchoRequest(id=1, seq=2, data=b"ping6"))
    f["icmp6_ns"] = E(IPv6(src=A6, dst="ff02::1:ff00:2", hlim=255) / ICMPv6ND_NS(tgt=B6) / ICMPv6NDOptSrcLLAddr(lladdr=M1))
    f["icmp6_na"] = E(IPv6(src=B6, dst=A6, hlim=255) / ICMPv6ND_NA(tgt=B6) / ICMPv6NDOptDstLLAddr(lladdr=M2))
    f["icmp6_ra"] = E(IPv6(src="fe80::1", dst="ff02::1", hlim=255) / ICMPv6ND_RA() / ICMPv6NDOptPrefixInfo(prefix="2001:db8:7::"))
    f["icmp6_err"] = E(ip6() / ICMPv6DestUnreach() / bytes(IPv6(src=B6, dst=A6) / UDP() / Raw(b"abc")))
    f["icmp6_ptb"] = E(ip6() / ICMPv6PacketTooBig(mtu=1280) / bytes(IPv6(src=B6, dst=A6) / TCP(flags="S")))
    f["mld2"] = E(IPv6(src="fe80::5", dst="ff02::16", hlim=1) / IPv6ExtHdrHopByHop() / ICMPv6MLReport2(records=[ICMPv6MLDMultAddrRec(dst="ff0e::1:2", sources=["2001:db8:4::4"])]))
    f["igmp2"] = E(IP(src=A, dst="224.0.0.22", ttl=1) / IGMP(type=0x16, gaddr="239.1.2.3"))
    f["igmp3"] = E(IP(src=A, dst="224.0.0.22", ttl=1) / IGMPv3(type=0x22) / IGMPv3mr(records=[IGMPv3gr(maddr="239.1.2.3", srcaddrs=["10.7.7.7"])]))
    f["gre"] = E(ip() / GRE(chksum_present=1, key_present=1, key=9, proto=0x0800) / inner)
    f["mpls"] = E(MPLS(label=16, s=1, ttl=64) / inner, type=0x8847)
    f["pppoe"] = E(PPPoE(sessionid=7) / PPP(proto=0x21) / inner)
    f["arp"] = E(ARP(op=1, hwsrc=M1, psrc=A, hwdst="00:00:00:00:00:00", pdst=B))
    f["dns"] = E(ip() / UDP(sport=3333, dport=53) / DNS(rd=1, qd=DNSQR(qname="host.corp.example")))
    f["dnsr"] = E(ip() / UDP(sport=53, dport=3333) / DNS(qr=1, qd=DNSQR(qname="host.corp"), an=DNSRR(rrname="host.corp", rdata=A)))
    f["vxlan"] = E(ip() / UDP(sport=4444, dport=4789) / VXLAN(vni=3) / Ether(src=M1, dst=M2) / inner)
    f["tcp6"] = E(ip6() / TCP(sport=1234, dport=443, flags="S", options=[("MSS", 1440), ("Timestamp", (5, 0))]))
    return [(k, 1, v) for k, v in f.items()]

def sll(arphrd, addr, proto, payload):
    return struct.pack(">HHH", 0, arphrd, len(addr)) + addr.ljust(8, b"\0") + struct.pack(">H", proto) + payload
def sll2(arphrd, addr, proto, payload):
    return struct.pack(">HHIHBB", proto, 0, 3, arphrd, 0, len(addr)) + addr.ljust(8, b"\0") + payload

def linkish():
    p4 = bytes(ip() / TCP(sport=1, dport=2, flags="S"))
    arp = bytes(ARP(op=1, hwsrc=M1, psrc=A, pdst=B))
    mac = bytes.fromhex("021122334455")
    out = [("sll-eth4", 113, sll(1, mac, 0x0800, p4)), ("sll-arp", 113, sll(1, mac, 0x0806, arp)),
           ("sll-other", 113, sll(778, bytes([10, 2, 3, 4]), 0x0800, p4)),
           ("sll2-eth4", 276, sll2(1, mac, 0x0800, p4)), ("sll2-other", 276, sll2(772, bytes([10, 2, 3, 4]), 0x86DD, bytes(ip6() / UDP())))]
    return out

def module_frames():
    import leak_captures
    import link_captures
    import wifi_captures
    out = []
    for name, (lt, frames, _) in link_captures.CASES.items():
        for i, fr in enumerate(frames):
            out.append((f"{name}#{i}", lt, fr))
    for b in leak_captures.BUILDERS + wifi_captures.BUILDERS:
        lk = b()
        for i in range(len(lk.frames)):
            fr = lk.frames[i]
            data, orig = fr if isinstance(fr, tuple) else (fr, len(fr))
            if orig != len(data):
                continue
            out.append((f"{lk.name}#{i}", lk.linktype, data))
    return out

def all_frames():
    return ours() + linkish() + module_frames()
