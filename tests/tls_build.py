"""Test-only builders of TLS handshakes with scapy and X.509 certificates with ``cryptography``."""

from __future__ import annotations

import datetime
import ipaddress
import struct

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SESSION_ID = bytes(range(0xA0, 0xC0))  # 32 bytes, easy to spot
TICKET = b"TICKET-" + bytes(range(0x41, 0x41 + 40))
PSK_IDENTITY = b"psk-identity-of-alice@example.org"
PSK_BINDER = bytes(range(0x60, 0x80))
KEY_SHARE = bytes(range(0x10, 0x30))
SERIAL = 0x5EC1E7_5EC1E7_5EC1E7


def rec(ctype: int, body: bytes, version: int = 0x0303) -> bytes:
    return struct.pack("!BHH", ctype, version, len(body)) + body


def hs(mtype: int, body: bytes) -> bytes:
    return bytes([mtype]) + len(body).to_bytes(3, "big") + body


def certificate(cn: str, dns: list[str] = (), emails: list[str] = (), uris: list[str] = (),
                ips: list[str] = (), client: bool = False, org: str = "Example Org") -> bytes:
    """A DER certificate (self-signed, EC P-256) with the given subject CN and SAN values."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
    ])
    issuer = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Private Test CA Org"),
        x509.NameAttribute(NameOID.COMMON_NAME, "ca.internal-pki.example.net"),
    ])
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    sans += [x509.RFC822Name(e) for e in emails]
    sans += [x509.UniformResourceIdentifier(u) for u in uris]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    now = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.UTC)
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
         .public_key(key.public_key()).serial_number(SERIAL)
         .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=90))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
         .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH if client
                                               else ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def client_hello(sni: str | None, session_id: bytes = SESSION_ID, ticket: bytes | None = TICKET,
                 psk: bool = True) -> bytes:
    """A ClientHello handshake message (TLS 1.3 shaped, built by hand for exact control)."""
    exts = b""
    if sni is not None:
        name = sni.encode()
        entry = b"\x00" + struct.pack("!H", len(name)) + name
        exts += struct.pack("!HH", 0, len(entry) + 2) + struct.pack("!H", len(entry)) + entry
    exts += struct.pack("!HHH", 10, 4, 2) + b"\x00\x1d"  # supported_groups: x25519
    exts += struct.pack("!HHB", 43, 3, 2) + b"\x03\x04"  # supported_versions
    alpn = b"\x02h2\x08http/1.1"
    exts += struct.pack("!HHH", 16, len(alpn) + 2, len(alpn)) + alpn
    share = b"\x00\x1d" + struct.pack("!H", len(KEY_SHARE)) + KEY_SHARE
    exts += struct.pack("!HHH", 51, len(share) + 2, len(share)) + share
    if ticket is not None:
        exts += struct.pack("!HH", 35, len(ticket)) + ticket
    if psk:
        ident = struct.pack("!H", len(PSK_IDENTITY)) + PSK_IDENTITY + b"\x01\x02\x03\x04"
        binders = bytes([len(PSK_BINDER)]) + PSK_BINDER
        data = struct.pack("!H", len(ident)) + ident + struct.pack("!H", len(binders)) + binders
        exts += struct.pack("!HH", 41, len(data)) + data  # pre_shared_key comes last
    body = (b"\x03\x03" + bytes(range(1, 33)) + bytes([len(session_id)]) + session_id
            + b"\x00\x04\x13\x01\xc0\x2f" + b"\x01\x00" + struct.pack("!H", len(exts)) + exts)
    return hs(1, body)


def server_hello(session_id: bytes = SESSION_ID) -> bytes:
    """A TLS 1.2 ServerHello (renegotiation_info, empty SNI ack, extended master secret)."""
    exts = struct.pack("!HH", 0, 0) + struct.pack("!HHB", 0xFF01, 1, 0) + struct.pack("!HH", 23, 0)
    body = (b"\x03\x03" + bytes(range(101, 133)) + bytes([len(session_id)]) + session_id
            + b"\xc0\x2f\x00" + struct.pack("!H", len(exts)) + exts)
    return hs(2, body)


def certificate_msg(*ders: bytes) -> bytes:
    items = b"".join(len(d).to_bytes(3, "big") + d for d in ders)
    return hs(11, len(items).to_bytes(3, "big") + items)


def new_session_ticket(ticket: bytes = TICKET) -> bytes:
    return hs(4, b"\x00\x00\x1c\x20" + struct.pack("!H", len(ticket)) + ticket)


def client_key_exchange_psk(identity: bytes = PSK_IDENTITY) -> bytes:
    return hs(16, struct.pack("!H", len(identity)) + identity)
