"""Test captures of the serial and other link types and of the tunnels (docs/policy.md, "Link
layer" and "Tunnels"): scapy-built packets in raw framings, each with identifiers planted.

``CASES`` maps a name to ``(linktype, frames, needles)``: ``needles`` are byte strings (MACs,
IPv4/IPv6 addresses, an obfuscated Teredo client address, NFLOG's prefix) that must not
survive sanitizing anywhere in the output. Test-only: the product never imports scapy.
"""

from __future__ import annotations

import socket
import struct

from scapy.all import GRE, IP, TCP, UDP, Ether, IPv6, Raw

MAC_A, MAC_B = "00:1b:2c:3d:4e:5f", "00:6a:7b:8c:9d:ae"
MAC_C, MAC_D = "00:c1:c2:c3:c4:c5", "00:d1:d2:d3:d4:d5"
A4, B4 = "10.61.62.63", "172.16.99.77"  # the inner (or only) packet
C4, D4 = "192.0.2.201", "198.51.100.202"  # an outer packet
A6, B6 = "2001:db8:aaaa::61", "2001:db8:bbbb::62"
TEREDO_SERVER, TEREDO_CLIENT, TEREDO_PORT = "65.54.227.120", "192.0.2.45", 40000
PREFIX = b"FWLOG-DROP-alice"


def mac(m: str) -> bytes:
    return bytes.fromhex(m.replace(":", ""))


def a4(a: str) -> bytes:
    return socket.inet_aton(a)


def a6(a: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6, a)


def invert(b: bytes) -> bytes:
    return bytes(x ^ 0xFF for x in b)


def teredo_address(server: str, client: str, port: int, flags: int = 0x8000) -> str:
    raw = b"\x20\x01\x00\x00" + a4(server) + struct.pack(">HH", flags, port ^ 0xFFFF) + invert(a4(client))
    return socket.inet_ntop(socket.AF_INET6, raw)


TEREDO_V6 = teredo_address(TEREDO_SERVER, TEREDO_CLIENT, TEREDO_PORT)


def ip4(src: str = A4, dst: str = B4) -> bytes:
    return bytes(IP(src=src, dst=dst) / TCP(sport=40000, dport=8080, flags="PA", seq=1)
                 / Raw(b"GET /secret HTTP/1.0\r\nX: 10.9.8.7\r\n\r\n"))


def ip6(src: str = A6, dst: str = B6) -> bytes:
    return bytes(IPv6(src=src, dst=dst) / UDP(sport=40001, dport=9999) / Raw(b"secret udp payload"))


def eth(inner: bytes, et: int = 0x0800, src: str = MAC_A, dst: str = MAC_B) -> bytes:
    return mac(dst) + mac(src) + struct.pack(">H", et) + inner


INNER4 = [a4(A4), a4(B4)]
INNER6 = [a6(A6), a6(B6)]
OUTER = [mac(MAC_C), mac(MAC_D), a4(C4), a4(D4)]


def outer(payload_layers) -> bytes:
    return bytes(Ether(src=MAC_C, dst=MAC_D) / IP(src=C4, dst=D4) / payload_layers)


def nflog_tlv(kind: int, value: bytes) -> bytes:
    size = 4 + len(value)
    return struct.pack("<HH", size, kind) + value + bytes(-size & 3)


def nflog(family: int, payload: bytes) -> bytes:
    hw_protocol = b"\x08\x00" if family == 2 else b"\x86\xdd"
    return (bytes([family, 0, 0, 7]) + nflog_tlv(1, hw_protocol + b"\x03\x00") + nflog_tlv(2, b"\x00\x00\x00\x2a")
            + nflog_tlv(4, b"\x00\x00\x00\x02") + nflog_tlv(8, struct.pack(">HH", 6, 0) + mac(MAC_A) + b"\0\0")
            + nflog_tlv(15, b"\x00\x01") + nflog_tlv(16, mac(MAC_B) + mac(MAC_A) + hw_protocol)
            + nflog_tlv(10, PREFIX + b"\0") + nflog_tlv(11, struct.pack(">I", 1000))
            + nflog_tlv(12, struct.pack(">I", 1000)) + nflog_tlv(9, payload))


def sll(arphrd: int, addr: bytes, proto: int, payload: bytes) -> bytes:
    return struct.pack(">HHH", 0, arphrd, len(addr)) + addr.ljust(8, b"\0") + struct.pack(">H", proto) + payload


def sll2(arphrd: int, addr: bytes, proto: int, payload: bytes) -> bytes:
    return (struct.pack(">HHIHBB", proto, 0, 3, arphrd, 0, len(addr)) + addr.ljust(8, b"\0") + payload)


def gtpu(inner: bytes, ext: bool = False) -> bytes:
    if not ext:
        return struct.pack(">BBHI", 0x30, 0xFF, len(inner), 0x0A0B0C0D) + inner
    # sequence flag and a PDU session container extension (type 0x85, 4 bytes)
    body = struct.pack(">HBB", 7, 0, 0x85) + bytes([1, 0x10, 0x09, 0]) + inner
    return struct.pack(">BBHI", 0x34, 0xFF, len(body), 0x0A0B0C0D) + body


def geneve(inner: bytes, ptype: int = 0x6558) -> bytes:
    opt = struct.pack(">HBB", 0x0102, 0x80, 1) + b"OPT!"
    return struct.pack(">BBH", len(opt) // 4, 0, ptype) + struct.pack(">I", 0x00ABCD00) + opt + inner


def teredo() -> bytes:
    origin = b"\x00\x00" + struct.pack(">H", TEREDO_PORT ^ 0xFFFF) + invert(a4(TEREDO_CLIENT))
    inner = bytes(IPv6(src=TEREDO_V6, dst=A6) / UDP(sport=40002, dport=53000) / Raw(b"teredo data"))
    return origin + inner


def ayiya(identity: str = A6) -> bytes:
    return bytes([0x41, 0x52, 0x11, 41]) + struct.pack(">I", 1_700_000_000) + a6(identity) + b"S" * 20 + ip6()


def erspan2(inner: bytes) -> bytes:
    return struct.pack(">HHI", 0x1000 | 10, 0x0000 | 0x123, 0x00000007) + inner


def erspan3(inner: bytes, platform: bool = False) -> bytes:
    head = struct.pack(">HHIHH", 0x2000 | 10, 0x123, 0x11223344, 0x0005, 0x0001 if platform else 0)
    return head + (b"PLATFORM" if platform else b"") + inner


def _cases() -> dict[str, tuple[int, list[bytes], list[bytes]]]:
    p4, p6 = ip4(), ip6()
    inner_eth = eth(p4)
    teredo_needles = [a4(TEREDO_SERVER), a4(TEREDO_CLIENT), invert(a4(TEREDO_CLIENT)), a6(TEREDO_V6)]
    slarp = b"\x8f\x00\x80\x35" + struct.pack(">I", 1) + a4(A4) + a4("255.255.255.0") + b"\xff\xff"
    keepalive = b"\x8f\x00\x80\x35" + struct.pack(">IIIH", 2, 5, 4, 0xFFFF)
    return {
        "ppp": (9, [b"\xff\x03\x00\x21" + p4, b"\x00\x57" + p6, b"\xff\x03\xc0\x21\x01\x01\x00\x0a\x05\x06"
                    + b"\x12\x34\x56\x78"], INNER4 + INNER6),
        "ppp-hdlc": (50, [b"\xff\x03\x00\x21" + p4, b"\x0f\x00\x86\xdd" + p6], INNER4 + INNER6),
        "pppoe-bare": (51, [bytes([0x11, 0, 0, 1]) + struct.pack(">H", len(p4) + 2) + b"\x00\x21" + p4,
                            bytes([0x11, 0x09, 0, 0, 0, 12]) + b"\x01\x01\x00\x00\x01\x03\x00\x04ABCD"],
                       INNER4),
        "cisco-hdlc": (104, [b"\x0f\x00\x08\x00" + p4, b"\x0f\x00\x86\xdd" + p6, slarp, keepalive],
                       INNER4 + INNER6),
        "frame-relay": (107, [b"\x04\x01\x03\xcc" + p4, b"\x18\x41\x03\x8e" + p6,
                              b"\x04\x01\x03\x00\x80\x00\x00\x00\x08\x00" + p4,
                              b"\x04\x01\x03\x00\x80\x00\x80\xc2\x00\x07" + inner_eth,
                              b"\x04\x01\x08\x00" + p4], INNER4 + INNER6 + [mac(MAC_A), mac(MAC_B)]),
        "slip": (8, [b"\x00" + p4[:15] + p4, b"\x01" + p6[:15] + p6], INNER4 + INNER6),
        "ipnet": (226, [bytes([2, 2, 0, 0]) + struct.pack(">IIIII", len(p4), 1, 0, 0, 0) + p4,
                        bytes([2, 26, 0, 0]) + struct.pack(">IIIII", len(p6), 1, 0, 0, 0) + p6], INNER4 + INNER6),
        "nflog": (239, [nflog(2, p4), nflog(10, p6)], INNER4 + INNER6 + [mac(MAC_A), mac(MAC_B), PREFIX]),
        "ppp-pppd": (166, [b"\x01\x03\x00\x21" + p4], INNER4),
        "ppp-dir": (204, [b"\x00\xff\x03\x00\x21" + p4], INNER4),
        "cisco-hdlc-dir": (205, [b"\x01\x0f\x00\x08\x00" + p4], INNER4),
        "frame-relay-dir": (206, [b"\x00\x04\x01\x03\xcc" + p4], INNER4),
        "sll-ppp": (113, [sll(512, b"", 0x0800, p4), sll(772, b"", 0x86DD, p6),
                          sll(778, a4(C4), 0x0800, p4)], INNER4 + INNER6 + [a4(C4)]),
        "sll2-tun": (276, [sll2(65534, b"", 0x0800, p4), sll2(776, a4(D4), 0x86DD, p6)],
                     INNER4 + INNER6 + [a4(D4)]),
        "gtp-u": (1, [outer(UDP(sport=2152, dport=2152) / Raw(gtpu(p4))),
                      outer(UDP(sport=2152, dport=2152) / Raw(gtpu(p6, ext=True)))], OUTER + INNER4 + INNER6),
        "geneve": (1, [outer(UDP(sport=51000, dport=6081) / Raw(geneve(inner_eth))),
                       outer(UDP(sport=51001, dport=6081) / Raw(geneve(p6, 0x86DD)))],
                   OUTER + INNER4 + INNER6 + [mac(MAC_A), mac(MAC_B)]),
        "erspan": (1, [outer(GRE(proto=0x88BE) / Raw(inner_eth)),
                       outer(GRE(proto=0x88BE, seqnum_present=1, sequence_number=9) / Raw(erspan2(inner_eth))),
                       outer(GRE(proto=0x22EB, seqnum_present=1, sequence_number=10) / Raw(erspan3(inner_eth))),
                       outer(GRE(proto=0x22EB, seqnum_present=1, sequence_number=11)
                             / Raw(erspan3(inner_eth, platform=True)))],
                   OUTER + INNER4 + [mac(MAC_A), mac(MAC_B)]),
        "teredo": (1, [outer(UDP(sport=TEREDO_PORT, dport=3544) / Raw(teredo()))], OUTER + teredo_needles + [a6(A6)]),
        "ayiya": (1, [outer(UDP(sport=5072, dport=5072) / Raw(ayiya()))], OUTER + INNER6),
    }


CASES = _cases()
