"""TLS names and identifiers end to end (docs/policy.md, TLS): the installed pktmask
pseudonymizes SNI and certificate names with the DNS name map, zeroes session IDs, tickets,
PSK identities and client certificate names; tshark still dissects the handshake and the
certificate, checksums are valid, and ``pktmask verify`` is clean (and catches a planted SNI).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from captures import write_pcap
from conftest import tshark_fields
from tls_build import (
    PSK_IDENTITY,
    SERIAL,
    SESSION_ID,
    TICKET,
    certificate,
    certificate_msg,
    client_hello,
    client_key_exchange_psk,
    hs,
    new_session_ticket,
    rec,
    server_hello,
)

KEY_HEX = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
HOST = "shop.example.com"
CHECKS = ["-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE"]
BAD = "ip.checksum.status==0 || tcp.checksum.status==0 || udp.checksum.status==0"


def conversation() -> list[bytes]:
    """DNS for HOST, then a TLS 1.2 handshake: ClientHello (SNI, session ID, ticket, PSK),
    the server's flight in segments of 400 bytes (ServerHello, Certificate, NewSessionTicket),
    a client certificate and a PSK ClientKeyExchange."""
    c, s = "10.1.2.3", "10.9.8.7"
    e = Ether(src="02:11:22:33:44:55", dst="02:66:77:88:99:aa")
    frames = [
        e / IP(src=c, dst="10.0.0.53") / UDP(sport=33000, dport=53) / DNS(id=7, rd=1, qd=DNSQR(qname=HOST)),
        e / IP(src="10.0.0.53", dst=c) / UDP(sport=53, dport=33000) / DNS(
            id=7, qr=1, rd=1, ra=1, qd=DNSQR(qname=HOST), an=DNSRR(rrname=HOST, type="A", rdata=s)),
    ]
    cport, sport = 40000, 443
    frames += [e / IP(src=c, dst=s) / TCP(sport=cport, dport=sport, flags="S", seq=999),
               e / IP(src=s, dst=c) / TCP(sport=sport, dport=cport, flags="SA", seq=4999, ack=1000)]
    cseq, sseq = 1000, 5000

    def send(client: bool, payload: bytes, size: int = 1400) -> None:
        nonlocal cseq, sseq
        for i in range(0, len(payload), size):
            piece = payload[i:i + size]
            if client:
                frames.append(e / IP(src=c, dst=s) / TCP(sport=cport, dport=sport, flags="PA", seq=cseq, ack=sseq) / piece)
                cseq += len(piece)
            else:
                frames.append(e / IP(src=s, dst=c) / TCP(sport=sport, dport=cport, flags="PA", seq=sseq, ack=cseq) / piece)
                sseq += len(piece)

    send(True, rec(22, client_hello(HOST)))
    server = certificate(HOST, dns=[HOST, "*.cdn.example.com"], emails=["hostmaster@example.com"])
    send(False, rec(22, server_hello()) + rec(22, certificate_msg(server)) + rec(22, new_session_ticket())
         + rec(22, hs(14, b"")), size=400)
    client = certificate("alice.smith", dns=["alice-laptop.example.com"], emails=["alice@example.org"],
                         client=True)
    send(True, rec(22, certificate_msg(client)) + rec(22, client_key_exchange_psk()) + rec(20, b"\x01"))
    return [bytes(f) for f in frames]


def mask(run, tmp_path: Path) -> tuple[Path, Path, dict]:
    src = write_pcap(tmp_path / "in.pcap", conversation())
    key = tmp_path / "key.hex"
    key.write_text(KEY_HEX)
    out = tmp_path / "out.pcap"
    res = run("mask", src, out, "--key-file", key, "--json")
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    assert run.leftovers() == []
    return src, out, json.loads(res.stdout)["files"][0]


def test_tls_names_pseudonymized_identifiers_zeroed(run, tmp_path):
    src, out, report = mask(run, tmp_path)
    data = out.read_bytes()
    for secret in (HOST.encode(), b"example.com\x00", SESSION_ID, TICKET, PSK_IDENTITY, b"alice",
                   b"hostmaster", SERIAL.to_bytes(9, "big")):
        assert secret not in data, secret
    rows = tshark_fields(out, ["dns.qry.name", "tls.handshake.extensions_server_name",
                               "x509sat.uTF8String", "x509ce.dNSName"], extra=CHECKS)
    dns = {r[0] for r in rows if r[0]}
    sni = {r[1] for r in rows if r[1]}
    assert len(dns) == 1 and len(sni) == 1
    pseudonym = dns.pop()
    assert sni == {pseudonym} and pseudonym != HOST and pseudonym.endswith(".example.com") is False
    assert pseudonym.endswith(".com") and len(pseudonym) == len(HOST)
    # The server certificate still dissects: its CN and dNSNames are the same pseudonyms.
    cert_names = {n for r in rows for n in r[2].split(",") + r[3].split(",") if n}
    assert pseudonym in cert_names
    assert any(n.startswith("*.") and n.endswith(".com") for n in cert_names)
    assert "alice-laptop.example.com" not in cert_names and not any("alice" in n for n in cert_names)
    assert tshark_fields(out, ["frame.number"], BAD, CHECKS) == []
    assert report["names_pseudonymized"] >= 2


def test_verify_clean_and_catches_a_planted_sni(run, tmp_path):
    src, out, _ = mask(run, tmp_path)
    res = run("verify", src, out, "--json")
    assert res.returncode == 0, res.stdout.decode(errors="replace")[:3000]
    verdict = json.loads(res.stdout)
    assert verdict["clean"] is True
    # Put the original SNI back into the sanitized ClientHello: a leak at that packet.
    data = bytearray(out.read_bytes())
    frames = tshark_fields(out, ["frame.number", "tls.handshake.extensions_server_name"], "tls.handshake.type==1")
    pseudonym = frames[0][1].encode()
    at = data.index(pseudonym)
    data[at:at + len(pseudonym)] = HOST.encode()
    bad = tmp_path / "planted.pcap"
    bad.write_bytes(bytes(data))
    res = run("verify", src, bad, "--json")
    verdict = json.loads(res.stdout)
    assert verdict["clean"] is False
    assert any(ex["value"] == HOST for ex in verdict["categories"]["dns"]["examples"])
    assert any(f["field"] == "tls.name" and f["packet"] == int(frames[0][0]) for f in verdict["findings"])


def test_without_anonymization_names_kept_identifiers_zeroed(run, tmp_path):
    src = write_pcap(tmp_path / "in.pcap", conversation())
    out = tmp_path / "out.pcap"
    res = run("mask", src, out, "--no-anonymize", "--json")
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    data = out.read_bytes()
    assert struct.pack("!H", len(HOST)) + HOST.encode() in data  # SNI kept as it is
    for secret in (SESSION_ID, TICKET, PSK_IDENTITY, b"alice"):
        assert secret not in data, secret
