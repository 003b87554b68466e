"""A narrow DER walker for X.509 certificates in a TLS Certificate message (docs/policy.md, "TLS").

It reads one certificate and says which of its bytes are kept and which names are replaced;
everything it does not report is zeroed by the caller. Every tag and length byte of the
structures walked is kept, so a dissector still reads the certificate; values are kept only
for the fields listed in the policy:

* kept: the version, the signature and public-key algorithm identifiers (OIDs and their
  parameters), attribute types (OIDs), extension OIDs and critical flags, the values of
  basicConstraints, keyUsage and extKeyUsage;
* pseudonymized (``names``, a length-preserving map of a dotted host name): the commonName of a
  server certificate's subject, and of any issuer, when it reads as a host name; a server
  certificate's SAN dNSName values (a leading wildcard label ``*`` stays);
* zeroed: the serial number, validity times, the public key, the signature, unique IDs, every
  other attribute value, every other extension value (SKI, AKI, SCTs, CRL and AIA URLs,
  policies, unknown ones: their inner tags and lengths are kept where they are DER), SAN
  e-mail, URI, IP and other names, and every subject and SAN value of a client certificate.

Anything malformed (a length running past its parent, an unexpected tag) is zeroed from its
first byte to the end of the certificate: nothing after it is reported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

SEQUENCE: Final = 0x30
SET: Final = 0x31
INTEGER: Final = 0x02
BIT_STRING: Final = 0x03
OCTET_STRING: Final = 0x04
OID: Final = 0x06
BOOLEAN: Final = 0x01
EXPLICIT_0: Final = 0xA0  # [0] version
EXPLICIT_3: Final = 0xA3  # [3] extensions
ISSUER_UID: Final = 0x81
SUBJECT_UID: Final = 0x82
SAN_DNS: Final = 0x82  # GeneralName [2] dNSName (IA5String, implicit)

OID_CN: Final = b"\x55\x04\x03"  # 2.5.4.3 commonName
OID_SAN: Final = b"\x55\x1d\x11"  # 2.5.29.17 subjectAltName
# Extensions whose values are kept: flags and purpose OIDs, no identifier.
KEPT_EXTENSIONS: Final = frozenset({
    b"\x55\x1d\x13",  # 2.5.29.19 basicConstraints
    b"\x55\x1d\x0f",  # 2.5.29.15 keyUsage
    b"\x55\x1d\x25",  # 2.5.29.37 extKeyUsage
})
# Single-byte string types a host name can be spelled in: UTF8String, PrintableString,
# TeletexString, IA5String.
TEXT_TAGS: Final = frozenset({0x0C, 0x13, 0x14, 0x16})
_HOST_BYTES: Final = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.*")

Keep = Callable[[int, int], None]
Put = Callable[[int, bytes], None]
Names = Callable[[bytes], bytes]


class Malformed(Exception):
    """The DER does not parse as expected: stop, the rest is zeroed."""


def header(buf: bytes, p: int, end: int) -> tuple[int, int, int]:
    """The element at ``buf[p]``: (tag, content start, content end); Malformed if it does not
    fit before ``end`` (definite lengths of up to 3 bytes only, as DER certificates have)."""
    if p + 2 > end:
        raise Malformed
    tag = buf[p]
    n = buf[p + 1]
    q = p + 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 3 or q + k > end:
            raise Malformed
        n = 0
        for i in range(k):
            n = n << 8 | buf[q + i]
        q += k
    if q + n > end:
        raise Malformed
    return tag, q, q + n


def host_like(value: bytes) -> bool:
    """Whether a name value reads as a host name (letters, digits, '-', '_', '.', '*')."""
    if not value:
        return False
    for c in value:
        if c not in _HOST_BYTES:
            return False
    return True


def map_host(value: bytes, names: Names) -> bytes:
    """The pseudonym of a host name from a certificate or SNI; a leading wildcard label stays."""
    if value.startswith(b"*.") and len(value) > 2:
        return b"*." + names(value[2:])
    return names(value)


class CertWalker:
    """Walk one certificate; ``keep(start, end)`` and ``put(offset, bytes)`` get buffer offsets."""

    def __init__(self, buf: bytes, keep: Keep, put: Put, names: Names | None, client: bool):
        self.buf = buf
        self.keep = keep
        self.put = put
        self.names = names
        self.client = client
        self.mapped = 0  # names replaced by a pseudonym

    def walk(self, start: int, end: int) -> None:
        """The certificate in ``buf[start:end]``; stops silently at the first malformed byte."""
        try:
            self._certificate(start, end)
        except Malformed:
            pass

    # ---- helpers ---------------------------------------------------------------------------
    def _open(self, p: int, end: int, want: int) -> tuple[int, int]:
        """Keep the tag and length of the element at ``p`` (which must have tag ``want``)."""
        tag, q, e = header(self.buf, p, end)
        if tag != want:
            raise Malformed
        self.keep(p, q)
        return q, e

    def _whole(self, p: int, end: int, want: int) -> int:
        """Keep the whole element at ``p`` (tag ``want``, or any when negative); returns its end."""
        tag, _q, e = header(self.buf, p, end)
        if want >= 0 and tag != want:
            raise Malformed
        self.keep(p, e)
        return e

    def _zero(self, p: int, end: int) -> int:
        """Keep the tag and length of the element at ``p``, zero its value; returns its end."""
        _tag, q, e = header(self.buf, p, end)
        self.keep(p, q)
        return e

    def _name(self, q: int, e: int) -> None:
        """A host-name value at ``buf[q:e]``: its pseudonym, or kept without a name map."""
        value = self.buf[q:e]
        if self.names is None:
            self.keep(q, e)
            return
        new = map_host(value, self.names)
        if len(new) != len(value):  # never: the map keeps lengths
            return
        self.keep(q, e)
        self.put(q, new)
        self.mapped += 1

    # ---- the certificate -------------------------------------------------------------------
    def _certificate(self, start: int, end: int) -> None:
        q, e = self._open(start, end, SEQUENCE)
        if e != end:
            raise Malformed
        p = self._tbs(q, e)
        p = self._whole(p, e, SEQUENCE)  # signatureAlgorithm
        p = self._zero(p, e)  # signatureValue
        if p != e:
            raise Malformed

    def _tbs(self, p: int, end: int) -> int:
        q, e = self._open(p, end, SEQUENCE)
        buf = self.buf
        if q < e and buf[q] == EXPLICIT_0:
            r, re_ = self._open(q, e, EXPLICIT_0)
            if self._whole(r, re_, INTEGER) != re_:
                raise Malformed
            q = re_
        tag, _a, _b = header(buf, q, e)
        if tag != INTEGER:
            raise Malformed
        q = self._zero(q, e)  # serial
        q = self._whole(q, e, SEQUENCE)  # signature algorithm
        q = self._rdns(q, e, True)  # issuer: its CN names a CA, or the host itself when self-signed
        r, re_ = self._open(q, e, SEQUENCE)  # validity
        while r < re_:
            r = self._zero(r, re_)
        q = re_
        q = self._rdns(q, e, not self.client)  # subject
        r, re_ = self._open(q, e, SEQUENCE)  # subjectPublicKeyInfo
        r = self._whole(r, re_, SEQUENCE)
        r = self._zero(r, re_)
        if r != re_:
            raise Malformed
        q = re_
        while q < e and buf[q] in (ISSUER_UID, SUBJECT_UID):
            q = self._zero(q, e)
        if q < e:
            r, re_ = self._open(q, e, EXPLICIT_3)
            s, se = self._open(r, re_, SEQUENCE)
            if se != re_:
                raise Malformed
            while s < se:
                s = self._extension(s, se)
            q = re_
        if q != e:
            raise Malformed
        return e

    def _rdns(self, p: int, end: int, names_ok: bool) -> int:
        """A Name: its commonName pseudonymized when ``names_ok`` and it reads as a host name,
        every other value zeroed."""
        q, e = self._open(p, end, SEQUENCE)
        buf = self.buf
        while q < e:
            r, re_ = self._open(q, e, SET)
            while r < re_:
                s, se = self._open(r, re_, SEQUENCE)
                tag, oq, oe = header(buf, s, se)
                if tag != OID:
                    raise Malformed
                self.keep(s, oe)
                vtag, vq, ve = header(buf, oe, se)
                if ve != se:
                    raise Malformed
                self.keep(oe, vq)
                if names_ok and vtag in TEXT_TAGS and buf[oq:oe] == OID_CN and host_like(buf[vq:ve]):
                    self._name(vq, ve)
                r = se
            q = re_
        return e

    def _extension(self, p: int, end: int) -> int:
        q, e = self._open(p, end, SEQUENCE)
        tag, oq, oe = header(self.buf, q, e)
        if tag != OID:
            raise Malformed
        self.keep(q, oe)
        oid = self.buf[oq:oe]
        q = oe
        if q < e and self.buf[q] == BOOLEAN:
            q = self._whole(q, e, BOOLEAN)
        v, ve = self._open(q, e, OCTET_STRING)
        if ve != e:
            raise Malformed
        if oid in KEPT_EXTENSIONS:
            self.keep(v, ve)
        elif oid == OID_SAN:
            self._san(v, ve)
        else:
            try:
                self._shape(v, ve)
            except Malformed:
                pass  # not DER inside: the rest of this value stays zero, the walk goes on
        return e

    def _shape(self, p: int, end: int) -> None:
        """Any other DER value: every tag and length kept (constructed elements walked), every
        primitive value zeroed, so a dissector still reads it; not DER: zeroed from there."""
        buf = self.buf
        while p < end:
            tag, q, e = header(buf, p, end)
            self.keep(p, q)
            if tag & 0x20:
                self._shape(q, e)
            p = e

    def _san(self, p: int, end: int) -> None:
        """GeneralNames: each name's tag and length kept; dNSName pseudonymized on a server's
        certificate; every other value (and every value of a client's) zeroed."""
        q, e = self._open(p, end, SEQUENCE)
        while q < e:
            tag, vq, ve = header(self.buf, q, e)
            self.keep(q, vq)
            if tag == SAN_DNS and not self.client:
                self._name(vq, ve)
            q = ve
