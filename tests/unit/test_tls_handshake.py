"""The TLS handshake walker (proto/tls_handshake.py, proto/x509.py) through TlsParser:
kept ranges and name replacements in stream offsets (docs/policy.md, TLS)."""

from __future__ import annotations

import pytest

from pktmask.anon.names import NameMapper
from pktmask.proto.tls import TlsParser
from pktmask.proto.tls_handshake import MAX_MESSAGE
from tls_build import (
    KEY_SHARE,
    PSK_BINDER,
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

KEY = bytes(range(32))
NAMES = NameMapper(KEY)


def sanitize(stream: bytes, cuts=(), names=NAMES.map_name) -> tuple[bytes, TlsParser]:
    """Feed ``stream`` cut at ``cuts``; return it as the final pass writes it."""
    p = TlsParser(0, names=names)
    pts = [0, *sorted(set(cuts)), len(stream)]
    ranges, puts = [], []
    for a, b in zip(pts, pts[1:], strict=False):
        if b > a:
            p.feed(stream[a:b])
            got = p.take_ranges()
            for s, e in got:
                assert s < e <= p.decided
            ranges += got
            puts += p.take_replacements()
    assert p.decided == len(stream)
    out = bytearray(len(stream))
    for s, e in ranges:
        out[s:e] = stream[s:e]
    for at, data in puts:
        assert any(s <= at and at + len(data) <= e for s, e in ranges), "a replacement outside kept bytes"
        out[at : at + len(data)] = data
    return bytes(out), p


def test_client_hello_sni_pseudonymized_identifiers_zeroed():
    stream = rec(22, client_hello("www.example.com"))
    out, p = sanitize(stream)
    new = NAMES.map_name(b"www.example.com")
    assert new != b"www.example.com" and new.endswith(b".com") and len(new) == 15
    assert new in out and b"www.example.com" not in out
    for secret in (SESSION_ID, TICKET, PSK_IDENTITY, PSK_BINDER, KEY_SHARE, bytes(range(1, 33))):
        assert secret not in out
    assert b"\x02h2\x08http/1.1" in out  # ALPN kept
    assert b"\x13\x01\xc0\x2f" in out  # cipher suites kept
    assert len(out) == len(stream) and out[:5] == stream[:5]
    assert p.names_mapped == 1


@pytest.mark.parametrize("step", [1, 7, 100])
def test_any_segmentation_same_output(step):
    stream = rec(22, client_hello("mail.example.org")) + rec(20, b"\x01") + rec(23, bytes(range(1, 60)))
    ref, _ = sanitize(stream)
    out, _ = sanitize(stream, range(step, len(stream), step))
    assert out == ref


def test_message_spanning_records_splits_the_replacement():
    msg = client_hello("a-rather-long-host-name.example.co.uk")
    cut = msg.index(b"a-rather") + 10  # inside the name
    stream = rec(22, msg[:cut]) + rec(22, msg[cut:])
    out, _ = sanitize(stream)
    new = NAMES.map_name(b"a-rather-long-host-name.example.co.uk")
    assert out[5 + msg.index(b"a-rather") : 5 + cut] == new[:10]
    assert out[cut + 10 : cut + 10 + len(new) - 10] == new[10:]
    assert out[cut + 5 : cut + 10] == stream[cut + 5 : cut + 10]  # the record header between


def test_same_name_same_pseudonym_as_dns_map():
    out, _ = sanitize(rec(22, client_hello("WWW.Example.com")))
    assert NAMES.map_name(b"WWW.Example.com") in out
    assert NAMES.map_name(b"WWW.Example.com").lower() == NAMES.map_name(b"www.example.com").lower()


def test_without_names_sni_kept():
    out, _ = sanitize(rec(22, client_hello("www.example.com")), names=None)
    assert b"www.example.com" in out and SESSION_ID not in out


def test_server_flight_certificate_names_mapped_rest_zeroed():
    der = certificate("shop.example.com", dns=["shop.example.com", "*.cdn.example.com"],
                      emails=["admin@example.com"], uris=["https://example.com/x"], ips=["192.0.2.7"])
    stream = rec(22, server_hello()) + rec(22, certificate_msg(der) + new_session_ticket()) + rec(22, hs(14, b""))
    out, p = sanitize(stream, range(300, len(stream), 300))
    assert b"example.com" not in out.replace(b".example.com", b"")  # no registrable name left
    assert b"shop.example.com" not in out and b"admin@" not in out and b"https:" not in out
    assert NAMES.map_name(b"shop.example.com") in out
    assert b"*." + NAMES.map_name(b"cdn.example.com") in out
    assert SESSION_ID not in out and TICKET not in out
    assert SERIAL.to_bytes(9, "big") not in out
    assert b"Example Org" not in out and b"Private Test CA" not in out
    assert NAMES.map_name(b"ca.internal-pki.example.net") in out  # issuer CN: a host name
    # DER structure: every tag and length of the certificate kept (same places).
    at = stream.index(der)
    assert out[at : at + 4] == der[:4]
    assert p.names_mapped == 4  # subject CN, two dNSNames, issuer CN


def test_client_certificate_subject_zeroed():
    der = certificate("alice", dns=["alice-laptop.corp.example"], emails=["alice@example.org"], client=True)
    stream = rec(22, client_hello("www.example.com")) + rec(22, certificate_msg(der) + client_key_exchange_psk())
    out, _ = sanitize(stream)
    assert b"alice" not in out and PSK_IDENTITY not in out
    assert NAMES.map_name(b"alice-laptop.corp.example") not in out  # zeroed, not mapped


def test_truncated_certificate_zeroed_from_first_byte_not_understood():
    der = certificate("shop.example.com", dns=["shop.example.com"])
    cut = der[: len(der) // 2]
    msg = hs(11, (len(cut) + 3).to_bytes(3, "big") + len(cut).to_bytes(3, "big") + cut)
    out, _ = sanitize(rec(22, server_hello()) + rec(22, msg))
    assert b"shop.example.com" not in out


def test_after_change_cipher_spec_handshake_is_encrypted():
    fin = hs(1, bytes(range(1, 41)))  # looks like a ClientHello, but comes after CCS
    stream = rec(22, client_hello(None, psk=False)) + rec(20, b"\x01") + rec(22, fin) + rec(21, bytes(26))
    out, _ = sanitize(stream)
    tail = out[len(stream) - len(fin) - 5 - 31 :]
    assert tail.count(0) >= len(fin) - 5


def test_gap_inside_a_message_zeroes_it():
    stream = rec(22, client_hello("www.example.com"))
    p = TlsParser(0, names=NAMES.map_name)
    p.feed(stream[:50])
    assert p.decided == 5
    p.gap(80)
    p.feed(stream[80:])
    assert p.take_ranges() == [(0, 5)] and p.take_replacements() == []


def test_oversized_message_keeps_its_header_only():
    body = bytes(MAX_MESSAGE + 1)
    msg = hs(11, body)
    stream = b"".join(rec(22, msg[i : i + 16000]) for i in range(0, len(msg), 16000))
    out, _ = sanitize(stream, range(1460, len(stream), 1460))
    assert out[5:9] == msg[:4]
