"""Test capture builders: raw pcap/pcapng writers (struct) and frames crafted with scapy.

Everything here is test-only: the product never imports scapy.
"""

from __future__ import annotations

import struct
from pathlib import Path

# ---------------------------------------------------------------- raw writers


def pcap_bytes(frames, linktype=1, nsec=False, endian="<", snaplen=65535, t0=1_700_000_000):
    """Return a classic pcap holding ``frames`` (bytes or (bytes, orig_len) items)."""
    magic = 0xA1B23C4D if nsec else 0xA1B2C3D4
    out = [struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for i, fr in enumerate(frames):
        data, orig = (fr if isinstance(fr, tuple) else (fr, len(fr)))
        frac = (i * 1234567) % (1_000_000_000 if nsec else 1_000_000)
        out.append(struct.pack(endian + "IIII", t0 + i, frac, len(data), orig))
        out.append(data)
    return b"".join(out)


def write_pcap(path: Path, frames, **kw) -> Path:
    """Write a classic pcap (see pcap_bytes) and return its path."""
    Path(path).write_bytes(pcap_bytes(frames, **kw))
    return Path(path)


def _opt(code: int, value: bytes, e: str) -> bytes:
    return struct.pack(e + "HH", code, len(value)) + value + b"\0" * (-len(value) & 3)


def _opts(items, e: str) -> bytes:
    if not items:
        return b""
    return b"".join(_opt(c, v, e) for c, v in items) + _opt(0, b"", e)


def _block(btype: int, body: bytes, e: str) -> bytes:
    length = 12 + len(body)
    return struct.pack(e + "II", btype, length) + body + struct.pack(e + "I", length)


def shb(e="<", options=()):
    """A Section Header Block in byte order ``e`` with the given options."""
    return _block(0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1) + _opts(options, e), e)


def idb(linktype=1, snaplen=262144, e="<", options=()):
    """An Interface Description Block."""
    return _block(1, struct.pack(e + "HHI", linktype, 0, snaplen) + _opts(options, e), e)


def epb(data: bytes, iface=0, ts=(1, 2), e="<", options=(), orig=None):
    """An Enhanced Packet Block."""
    pad = b"\0" * (-len(data) & 3)
    body = struct.pack(e + "IIIII", iface, ts[0], ts[1], len(data), orig or len(data)) + data + pad
    return _block(6, body + _opts(options, e), e)


def spb(data: bytes, e="<"):
    """A Simple Packet Block."""
    return _block(3, struct.pack(e + "I", len(data)) + data + b"\0" * (-len(data) & 3), e)


def raw_block(btype: int, body: bytes, e="<"):
    """Any block (NRB 4, ISB 5, DSB 10, custom 0xBAD...)."""
    return _block(btype, body + b"\0" * (-len(body) & 3), e)


# Markers planted in pcapng metadata: none may survive sanitizing.
SECRET_MARKERS = [
    b"SECRET-SHB-COMMENT", b"secret-hardware", b"secret-os", b"secret-app",
    b"secret-ifname", b"secret-ifdesc", b"host secret-filter", b"SECRET-PKT-COMMENT",
    b"secret-nrb-host.example", b"SECRET-TLS-KEYLOG", b"SECRET-CUSTOM", b"secret-isb-comment",
]


def pcapng_with_metadata(frames) -> bytes:
    """A two-section pcapng (little then big endian, two interfaces) full of metadata to drop."""
    le, be = "<", ">"
    parts = [
        shb(le, [(1, b"SECRET-SHB-COMMENT"), (2, b"secret-hardware"), (3, b"secret-os"), (4, b"secret-app")]),
        idb(1, e=le, options=[(2, b"secret-ifname"), (3, b"secret-ifdesc"), (4, bytes([10, 9, 8, 7, 255, 0, 0, 0])),
                              (11, b"\x00host secret-filter"), (9, b"\x06")]),
        raw_block(4, struct.pack("<HH", 1, 4 + 24) + bytes([10, 9, 8, 7]) + b"secret-nrb-host.example\0"
                  + struct.pack("<HH", 0, 0), le),
        idb(1, e=le, options=[(2, b"secret-ifname"), (9, b"\x09")]),
        raw_block(10, struct.pack("<II", 0x544C534B, 17) + b"SECRET-TLS-KEYLOG", le),
    ]
    half = len(frames) // 2
    for i, fr in enumerate(frames[:half]):
        opts = [(1, b"SECRET-PKT-COMMENT"), (2, struct.pack("<I", 1))] if i == 0 else []
        parts.append(epb(fr, iface=i % 2, ts=(0x5000, 1000 + i), e=le, options=opts))
    parts.append(raw_block(0xBAD, struct.pack("<I", 32473) + b"SECRET-CUSTOM", le))
    parts.append(raw_block(5, struct.pack("<III", 0, 0x5000, 9999) + _opts([(1, b"secret-isb-comment")], le), le))
    parts.append(shb(be, [(1, b"SECRET-SHB-COMMENT")]))
    parts.append(idb(1, e=be, options=[(2, b"secret-ifname"), (12, b"secret-os")]))
    for i, fr in enumerate(frames[half:]):
        parts.append(epb(fr, iface=0, ts=(0x5000, 5000 + i), e=be))
    return b"".join(parts)


def clean_pcapng(frames) -> bytes:
    """A pcapng with only structure the allowlist keeps: round-trips byte for byte."""
    parts = [shb("<"), idb(1, e="<", options=[(9, b"\x06")]), idb(101, e="<")]
    for i, fr in enumerate(frames):
        parts.append(epb(fr, iface=0, ts=(7, i), e="<", options=[(2, struct.pack("<I", 1))] if i % 3 == 0 else ()))
    parts += [shb(">"), idb(1, e=">")]
    parts += [epb(fr, iface=0, ts=(9, i), e=">") for i, fr in enumerate(frames)]
    parts += [spb(frames[0], ">")]
    return b"".join(parts)


# ---------------------------------------------------------------- scapy frames


def mixed_frames() -> list[bytes]:
    """A small realistic mix: TLS, HTTP (with cookie), DNS, ICMP, ARP, IPv6, VLAN; one duplicate."""
    from scapy.all import ARP, DNS, DNSQR, ICMP, IP, TCP, UDP, Dot1Q, Ether, IPv6, Raw

    c_mac, s_mac = "02:11:22:33:44:55", "02:66:77:88:99:aa"
    cli, srv = "192.0.2.10", "198.51.100.20"
    # A complete ClientHello in one record (record and message lengths agree with the bytes).
    tls_hello = bytes.fromhex("16030100") + bytes([0x2D]) + bytes([1, 0, 0, 0x29, 3, 3]) + bytes(32) + bytes([0]) \
        + bytes.fromhex("0002c02f0100")
    app = bytes.fromhex("1703030020") + b"S" * 32
    http_req = (b"GET /login?user=alice&token=SECRET HTTP/1.1\r\nHost: intranet.example\r\n"
                b"Cookie: session=SECRETCOOKIE\r\n\r\n")
    http_resp = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nSet-Cookie: id=SECRETSET\r\n\r\nSECRET-BODY"
    e = Ether(src=c_mac, dst=s_mac)
    r = Ether(src=s_mac, dst=c_mac)
    frames = [
        e / IP(src=cli, dst=srv) / TCP(sport=40000, dport=443, flags="S", seq=1000),
        r / IP(src=srv, dst=cli) / TCP(sport=443, dport=40000, flags="SA", seq=5000, ack=1001),
        e / IP(src=cli, dst=srv) / TCP(sport=40000, dport=443, flags="A", seq=1001, ack=5001),
        e / IP(src=cli, dst=srv) / TCP(sport=40000, dport=443, flags="PA", seq=1001, ack=5001) / Raw(tls_hello),
        r / IP(src=srv, dst=cli) / TCP(sport=443, dport=40000, flags="PA", seq=5001, ack=1001 + len(tls_hello)) / Raw(app),
        e / IP(src=cli, dst=srv) / TCP(sport=40001, dport=80, flags="S", seq=7000),
        r / IP(src=srv, dst=cli) / TCP(sport=80, dport=40001, flags="SA", seq=9000, ack=7001),
        e / IP(src=cli, dst=srv) / TCP(sport=40001, dport=80, flags="PA", seq=7001, ack=9001) / Raw(http_req),
        r / IP(src=srv, dst=cli) / TCP(sport=80, dport=40001, flags="PA", seq=9001, ack=7001 + len(http_req)) / Raw(http_resp),
        e / IP(src=cli, dst="203.0.113.53") / UDP(sport=5353, dport=53) / DNS(rd=1, qd=DNSQR(qname="secret-host.example")),
        e / IP(src=cli, dst=srv) / ICMP(type=8, id=1, seq=1) / Raw(b"SECRET-PING-DATA"),
        Ether(src=c_mac, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=c_mac, psrc=cli, pdst="192.0.2.1"),
        Ether(src=c_mac, dst=s_mac) / IPv6(src="2001:db8::10", dst="2001:db8:1::20") / UDP(sport=1000, dport=2000) / Raw(b"SECRET6"),
        Ether(src=c_mac, dst=s_mac) / Dot1Q(vlan=42) / IP(src="10.1.2.3", dst="10.4.5.6") / UDP(sport=1, dport=2) / Raw(b"VLANDATA"),
    ]
    out = [bytes(f) for f in frames]
    out.insert(11, out[10])  # an exact duplicate of the ICMP echo
    return out


def bulk_frames(count: int) -> list[bytes]:
    """``count`` distinct frames (IPv4 UDP with varying ports/payload) built fast with struct."""
    from scapy.all import IP, UDP, Ether, Raw

    template = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
                     / IP(src="192.0.2.1", dst="198.51.100.2") / UDP(sport=1111, dport=2222, chksum=0) / Raw(bytes(48)))
    out = []
    for i in range(count):
        f = bytearray(template)
        f[-8:] = i.to_bytes(8, "big")  # distinct payloads: nothing is a duplicate
        out.append(bytes(f))
    return out


def ones(data: bytes) -> int:
    """One's complement sum of 16-bit words (0xFFFF over a packet means its checksum is valid)."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def tcp_header(options: bytes, flags: str = "A", sport: int = 40000, dport: int = 9, seq: int = 1000) -> bytes:
    """A raw TCP header carrying ``options`` (a multiple of 4 bytes) as they are; checksum 0."""
    bits = {"F": 1, "S": 2, "R": 4, "P": 8, "A": 16}
    doff = (20 + len(options)) // 4
    return struct.pack("!HHIIBBHHH", sport, dport, seq, 0, doff << 4, sum(bits[c] for c in flags),
                       65535, 0, 0) + options


def shift(label: str) -> str:
    """A same-shape label that differs in every letter and digit (what a pseudonym looks like)."""
    out = []
    for c in label:
        if c.isdigit():
            out.append(str((int(c) + 1) % 10))
        elif c.isalpha():
            out.append(chr((ord(c) - 97 + 1) % 26 + 97))
        else:
            out.append(c)
    return "".join(out)
