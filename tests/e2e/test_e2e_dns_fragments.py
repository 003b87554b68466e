"""DNS in fragmented UDP datagrams end to end (docs/policy.md "DNS"): a response split into IPv4 or
IPv6 fragments, all of them in the capture (in order, or the last one first), comes out as the
same message over UDP in one piece would: tshark reassembles it with the same counts, types and
lengths, names are pseudonyms of the same length, A/AAAA answers are the mapped addresses of the
IP headers, TXT data zeroed, the UDP checksum valid over the whole sanitized datagram, frame
lengths unchanged; with --dedup or without (an exact copy of a fragment). A datagram with a
fragment missing is zeroed as before, its first fragment's checksum zero. On the public corpus's
mDNS fragments, the DNS query count is unchanged and no original name is left."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from scapy.all import (
    DNS,
    DNSQR,
    DNSRR,
    IP,
    TCP,
    UDP,
    Ether,
    IPv6,
    IPv6ExtHdrFragment,
    fragment,
    fragment6,
)
from scapy.utils import RawPcapReader

from captures import write_pcap
from conftest import tshark_count, tshark_fields

CLI, RESOLVER, HOST = "192.0.2.10", "203.0.113.53", "198.51.100.77"
CLI6, RESOLVER6, HOST6 = "2001:db8:1::10", "2001:db8:53::53", "2001:db8:77::7"
NAME = "secret-host.corp-internal.com"
PLANTED = [b"secret-host", b"corp-internal", b"token=secret-txt", b"printer-secret"]
CHECK = ["-o", "udp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE"]
E = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
FIELDS = ["dns.count.queries", "dns.count.answers", "dns.count.auth_rr", "dns.count.add_rr", "dns.qry.type",
          "dns.resp.type", "dns.resp.len", "dns.flags", "dns.id", "dns.qry.name.len", "dns.count.labels",
          "udp.length"]
ROOT = Path(__file__).resolve().parents[2]
CORPUS_CAPTURE = ROOT.parent / "shared" / "corpus" / "pcapplusplus" / "ip6_fragments.pcap"


def response(qtype: str, addr: str, rtype: str, ident: int) -> DNS:
    """A response of about 900 bytes: a CNAME chain, an A or AAAA answer, TXT data, and more names."""
    txt = "token=SECRET-TXT " + "x" * 200
    return DNS(id=ident, qr=1, rd=1, ra=1, qd=DNSQR(qname=NAME, qtype=qtype),
               an=[DNSRR(rrname=NAME, type="CNAME", rdata="www.corp-internal.com"),
                   DNSRR(rrname="www.corp-internal.com", type=rtype, rdata=addr),
                   DNSRR(rrname="www.corp-internal.com", type="TXT", rdata=txt),
                   DNSRR(rrname="www.corp-internal.com", type="TXT", rdata=txt),
                   *[DNSRR(rrname=f"printer-secret{i}.corp-internal.com", type="PTR",
                           rdata=f"host{i}.corp-internal.com") for i in range(12)]]).compress()


def v4_fragments(ident: int, size: int = 256) -> list[bytes]:
    dgram = IP(src=RESOLVER, dst=CLI, id=ident) / UDP(sport=53, dport=40000) / response("A", HOST, "A", ident)
    frags = [bytes(E / f) for f in fragment(dgram, fragsize=size)]
    assert len(frags) >= 3
    return frags


def v6_fragments(ident: int, size: int = 400) -> list[bytes]:
    dgram = IPv6(src=RESOLVER6, dst=CLI6) / IPv6ExtHdrFragment(id=ident) / UDP(sport=53, dport=40002) \
        / response("AAAA", HOST6, "AAAA", ident)
    frags = [bytes(E / f) for f in fragment6(dgram, size)]
    assert len(frags) >= 3
    return frags


def frames(last_first: bool, copy: bool) -> list[bytes]:
    """Both datagrams (the last fragment first, or in order; with an exact copy of a fragment),
    flows to the answered hosts, and one datagram of each family with a middle fragment missing
    (zeroed)."""
    v4, v6 = v4_fragments(7), v6_fragments(8)
    if last_first:
        v4 = v4[-1:] + v4[:-1]
        v6 = v6[-1:] + v6[:-1]
    if copy:
        v4.insert(2, v4[1])
    lost4, lost6 = v4_fragments(9), v6_fragments(10)
    return [*v4, bytes(E / IP(src=CLI, dst=HOST) / TCP(sport=40001, dport=443, flags="S")),
            *v6, bytes(E / IPv6(src=CLI6, dst=HOST6) / TCP(sport=40003, dport=443, flags="S")),
            *(f for i, f in enumerate(lost4) if i != 1), *(f for i, f in enumerate(lost6) if i != 1)]


@pytest.fixture
def key(tmp_path):
    path = tmp_path / "k.key"
    path.write_bytes(bytes(range(32)))
    path.chmod(0o600)
    return path


def _frames_of(path) -> list[bytes]:
    return [bytes(d) for d, _ in RawPcapReader(str(path))]


def _mask(run, tmp_path, captured, *args):
    src = write_pcap(tmp_path / "frag.pcap", captured)
    out = tmp_path / "out.pcap"
    res = run("mask", src, out, "--json", *args)
    assert res.returncode == 0, res.stderr
    assert run.leftovers() == []
    return src, out, json.loads(res.stdout)["files"][0]


@pytest.mark.parametrize("dedup", [False, True], ids=["no-dedup", "dedup"])
@pytest.mark.parametrize("last_first", [False, True], ids=["in-order", "last-first"])
def test_fragmented_responses_are_kept_structurally(run, tmp_path, key, tshark, dedup, last_first):
    captured = frames(last_first, copy=True)
    src, out, report = _mask(run, tmp_path, captured, "--key-file", key, *(["--dedup"] if dedup else []))
    assert report["dns_messages_kept"] == 2
    got = _frames_of(out)
    expect = [f for i, f in enumerate(captured) if not (dedup and i > 0 and f == captured[i - 1])]
    assert [len(f) for f in got] == [len(f) for f in expect]  # frame lengths unchanged
    # tshark reassembles both datagrams into the same messages: counts, types, lengths, flags
    assert tshark_fields(out, FIELDS, "dns") == tshark_fields(src, FIELDS, "dns")
    assert len(tshark_fields(out, FIELDS, "dns")) == 2
    data = b"".join(got).lower()
    for needle in PLANTED:
        assert needle not in data, needle
    # the UDP checksums (over the whole reassembled datagram) and IPv4 header checksums valid
    assert tshark_fields(out, ["frame.number"], "udp.checksum.status==0 || ip.checksum.status==0", CHECK) == []
    assert tshark_count(out, "udp.checksum.status==1", CHECK) == 2
    expert = ["_ws.expert.message", "_ws.expert.severity"]
    assert tshark_fields(out, expert, "_ws.expert", CHECK) == tshark_fields(src, expert, "_ws.expert", CHECK)
    rows = tshark_fields(out, ["dns.qry.name", "dns.a", "dns.aaaa", "dns.cname", "dns.ptr.domain_name"], "dns")
    ip_dst = {r[0] for r in tshark_fields(out, ["ip.dst"], "tcp")}
    ip6_dst = {r[0] for r in tshark_fields(out, ["ipv6.dst"], "tcp")}
    for qname, a, aaaa, cname, ptrs in rows:
        assert qname != NAME and len(qname) == len(NAME) and qname.endswith(".com")
        assert cname.split(".", 1)[1] == qname.split(".", 1)[1]  # www.<corp-internal pseudonym>.com
        assert len(ptrs.split(",")) == 12 and "corp-internal" not in ptrs
        assert (a in ip_dst and a != HOST) if a else (aaaa in ip6_dst and aaaa != HOST6)
    assert rows[0][0] == rows[1][0]  # the same name, the same pseudonym over IPv4 and IPv6
    txt = tshark_fields(out, ["dns.txt.length"], "dns")
    assert txt and all(v in ("", "0") for row in txt for v in row[0].split(","))


def _udp_checksum_of_zeros(frame: bytes) -> int:
    """The UDP checksum of an IPv4 first fragment's datagram whose payload is all zero."""
    words = [int.from_bytes(frame[i : i + 2], "big") for i in range(26, 34, 2)]  # addresses
    ulen = int.from_bytes(frame[38:40], "big")
    s = sum(words) + 17 + ulen + int.from_bytes(frame[34:36], "big") + int.from_bytes(frame[36:38], "big") + ulen
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s & 0xFFFF) or 0xFFFF


def test_a_datagram_with_a_fragment_missing_is_zeroed(run, tmp_path, key):
    """IPv4: a middle fragment missing; IPv6: the last one. The payload is zeroed as before; the
    first fragment's checksum is that of the zeroed datagram when the last fragment gives its
    length, zero when it does not (docs/policy.md, "Checksums")."""
    v4 = v4_fragments(11)
    v6 = v6_fragments(12)
    lost4 = [f for i, f in enumerate(v4) if i != 1]
    lost6 = v6[:-1]
    _src, out, report = _mask(run, tmp_path, [*lost4, *lost6], "--key-file", key)
    assert report["dns_messages_kept"] == 0
    got = _frames_of(out)
    assert [len(f) for f in got] == [len(f) for f in lost4 + lost6]
    for k, o in enumerate(got[: len(lost4)]):
        start = 34 + (8 if k == 0 else 0)
        assert o[start:] == bytes(len(o) - start)
    assert int.from_bytes(got[0][40:42], "big") == _udp_checksum_of_zeros(got[0])
    for k, o in enumerate(got[len(lost4) :]):
        start = 14 + 48 + (8 if k == 0 else 0)
        assert o[start:] == bytes(len(o) - start)
    assert got[len(lost4)][14 + 48 + 6 : 14 + 48 + 8] == b"\0\0"  # the first fragment's UDP checksum


def test_without_anonymization_names_stay(run, tmp_path):
    captured = frames(True, copy=False)
    src, out, report = _mask(run, tmp_path, captured, "--no-anonymize")
    assert report["dns_messages_kept"] == 2
    names = ["dns.qry.name", "dns.cname", "dns.a", "dns.aaaa", "dns.ptr.domain_name"]
    assert tshark_fields(out, names, "dns") == tshark_fields(src, names, "dns")
    assert b"token=secret-txt" not in b"".join(_frames_of(out)).lower()
    assert tshark_fields(out, ["frame.number"], "udp.checksum.status==0", CHECK) == []


@pytest.mark.skipif(not CORPUS_CAPTURE.is_file(), reason=f"{CORPUS_CAPTURE} is absent")
def test_corpus_mdns_fragments_keep_their_queries(run, tmp_path, key, tshark):
    out = tmp_path / "out.pcap"
    res = run("mask", CORPUS_CAPTURE, out, "--key-file", key)
    assert res.returncode == 0, res.stderr
    assert run.leftovers() == []
    queries = "dns.flags.response==0"
    assert tshark_count(out, queries) == tshark_count(CORPUS_CAPTURE, queries) > 0
    assert tshark_fields(out, ["dns.count.queries", "dns.count.answers"], "dns") == \
        tshark_fields(CORPUS_CAPTURE, ["dns.count.queries", "dns.count.answers"], "dns")
    count = [len(r[0].split(",")) for r in tshark_fields(out, ["dns.qry.name"], "dns && dns.qry.name")]
    assert count == [len(r[0].split(",")) for r in tshark_fields(CORPUS_CAPTURE, ["dns.qry.name"],
                                                                   "dns && dns.qry.name")]
    assert tshark_fields(out, ["frame.number"], "udp.checksum.status==0", CHECK) == []
    # No original name is left (scripts/names_left.py, on a directory holding only this capture).
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(CORPUS_CAPTURE, corpus)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    res2 = subprocess.run([sys.executable, str(ROOT / "scripts" / "names_left.py"), str(corpus)],
                          capture_output=True, text=True, env=dict(os.environ, TMPDIR=str(scratch)), timeout=300)
    assert res2.returncode == 0 and " 0 left" in res2.stdout, res2.stdout + res2.stderr
    assert os.listdir(scratch) == []
