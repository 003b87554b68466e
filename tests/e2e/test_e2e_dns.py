"""DNS over UDP end to end (docs/policy.md "Names", "DNS"): queries and responses on port 53 over
IPv4 and IPv6, mDNS (5353) and LLMNR (5355) keep their structure for tshark, names become their
pseudonyms, A/AAAA data follow the address map, TXT data and EDNS cookies are zeroed, checksums
stay valid; with --no-anonymize the names stay as they are."""

from __future__ import annotations

import json

import pytest
from scapy.all import (
    DNS,
    DNSQR,
    DNSRR,
    DNSRROPT,
    EDNS0TLV,
    IP,
    TCP,
    UDP,
    EDNS0ClientSubnet,
    Ether,
    IPv6,
)
from scapy.utils import RawPcapReader

from captures import write_pcap
from conftest import tshark_fields

CLI, RESOLVER, HOST = "192.0.2.10", "203.0.113.53", "198.51.100.77"
CLI6, RESOLVER6, HOST6 = "2001:db8:1::10", "2001:db8:53::53", "2001:db8:77::7"
PRINTER = "192.0.2.99"
NAME = "secret-host.corp-internal.com"
PLANTED = [b"secret-host", b"corp-internal", b"secret-printer", b"filesrv01", b"token=secret-txt",
           b"cookie-value", b"office printer"]
CHECK = ["-o", "udp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE"]
E = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
E6 = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
MDNS_E = Ether(src="02:00:00:00:00:03", dst="01:00:5e:00:00:fb")


def _frames() -> list[bytes]:
    ecs = EDNS0ClientSubnet(source_plen=24, scope_plen=0, address="192.0.2.0")
    cookie = EDNS0TLV(optcode=10, optdata=b"cookie-value")
    query = DNS(id=1, rd=1, qd=DNSQR(qname=NAME), ar=DNSRROPT(rclass=1232, rdata=[ecs, cookie]))
    response = DNS(id=1, qr=1, rd=1, ra=1, qd=DNSQR(qname=NAME),
                   an=[DNSRR(rrname=NAME, type="CNAME", rdata="www.corp-internal.com"),
                       DNSRR(rrname="www.corp-internal.com", type="A", rdata=HOST),
                       DNSRR(rrname="www.corp-internal.com", type="TXT", rdata="token=SECRET-TXT")])
    query6 = DNS(id=2, rd=1, qd=DNSQR(qname=NAME, qtype="AAAA"))
    response6 = DNS(id=2, qr=1, rd=1, ra=1, qd=DNSQR(qname=NAME, qtype="AAAA"),
                    an=[DNSRR(rrname=NAME, type="AAAA", rdata=HOST6)])
    mdns = DNS(id=0, qr=1, aa=1,
               an=[DNSRR(rrname="_ipp._tcp.local", type="PTR", rdata="Office Printer._ipp._tcp.local"),
                   DNSRR(rrname="secret-printer.local", type="A", rdata=PRINTER),
                   DNSRR(rrname="Office Printer._ipp._tcp.local", type="TXT", rdata="rp=secret-printer")])
    llmnr_q = DNS(id=3, qd=DNSQR(qname="FILESRV01"))
    llmnr_r = DNS(id=3, qr=1, qd=DNSQR(qname="FILESRV01"), an=[DNSRR(rrname="FILESRV01", type="A", rdata=CLI)])
    again = DNS(id=4, rd=1, qd=DNSQR(qname=NAME))
    return [bytes(f) for f in (
        E / IP(src=CLI, dst=RESOLVER) / UDP(sport=40000, dport=53) / query,
        E / IP(src=RESOLVER, dst=CLI) / UDP(sport=53, dport=40000) / response.compress(),
        E / IP(src=CLI, dst=HOST) / TCP(sport=40001, dport=443, flags="S"),
        E6 / IPv6(src=CLI6, dst=RESOLVER6) / UDP(sport=40002, dport=53) / query6,
        E6 / IPv6(src=RESOLVER6, dst=CLI6) / UDP(sport=53, dport=40002) / response6,
        E6 / IPv6(src=CLI6, dst=HOST6) / TCP(sport=40003, dport=443, flags="S"),
        MDNS_E / IP(src=PRINTER, dst="224.0.0.251") / UDP(sport=5353, dport=5353) / mdns.compress(),
        E / IP(src=CLI, dst="224.0.0.252") / UDP(sport=40004, dport=5355) / llmnr_q,
        E / IP(src=PRINTER, dst=CLI) / UDP(sport=5355, dport=40004) / llmnr_r,
        E / IP(src=CLI, dst=RESOLVER) / UDP(sport=40005, dport=53) / again,
    )]


DNS_PACKETS = 8


@pytest.fixture
def key(tmp_path):
    path = tmp_path / "k.key"
    path.write_bytes(bytes(range(32)))
    return path


def _mask(run, tmp_path, *args):
    src = write_pcap(tmp_path / "dns.pcap", _frames())
    out = tmp_path / "out.pcap"
    res = run("mask", src, out, "--json", *args)
    assert res.returncode == 0, res.stderr
    assert run.leftovers() == []
    return src, out, json.loads(res.stdout)["files"][0]


def _frames_of(path) -> list[bytes]:
    return [bytes(d) for d, _ in RawPcapReader(str(path))]


FIELDS = ["dns.count.queries", "dns.count.answers", "dns.count.auth_rr", "dns.count.add_rr", "dns.qry.type",
          "dns.resp.type", "dns.resp.len", "dns.flags", "dns.id", "dns.qry.name.len", "dns.count.labels"]


def test_dns_structure_names_and_addresses(run, tmp_path, key, tshark):
    src, out, report = _mask(run, tmp_path, "--key-file", key)
    assert report["dns_messages_kept"] == DNS_PACKETS
    assert report["names_pseudonymized"] >= 5
    # tshark sees the same messages: counts, types, lengths, flags, ids
    assert tshark_fields(out, FIELDS) == tshark_fields(src, FIELDS)
    # no planted name or secret anywhere in the output, in any case
    data = b"".join(_frames_of(out)).lower()
    for needle in PLANTED:
        assert needle not in data, needle
    # checksums valid
    bad = tshark_fields(out, ["frame.number"], "udp.checksum.status==0 || ip.checksum.status==0", CHECK)
    assert bad == []
    # A and AAAA answers are the mapped addresses of the flows to those hosts
    rows = tshark_fields(out, ["frame.number", "dns.a", "dns.aaaa", "ip.dst", "ipv6.dst", "dns.qry.name",
                               "dns.resp.name", "dns.ptr.domain_name", "dns.cname"])
    by = {int(r[0]): r for r in rows}
    assert by[2][1] == by[3][3] and by[2][1] != HOST
    assert by[5][2] == by[6][4] and by[5][2] != HOST6
    # the same name, in several packets and records, has the same pseudonym
    q = by[1][5]
    assert q != NAME and len(q) == len(NAME) and q.endswith(".com")
    assert by[2][5] == q == by[4][5] == by[5][5] == by[10][5]
    assert by[2][8].split(".", 1)[1] == q.split(".", 1)[1]  # www.<corp-internal pseudonym>.com
    # mDNS: service labels and .local kept, the instance name pseudonymized, same length
    assert by[7][7].endswith("._ipp._tcp.local") and len(by[7][7]) == len("Office Printer._ipp._tcp.local")
    assert by[7][6].startswith("_ipp._tcp.local")
    # LLMNR: a single-label Windows name, pseudonymized with its case pattern
    assert by[8][5] != "FILESRV01" and len(by[8][5]) == 9 and by[8][5][:7].isupper() and by[8][5][7:].isdigit()
    assert by[9][1] == by[9][3] != CLI  # the answer is mapped like the client's address in the IP header
    # TXT data zeroed (its length kept)
    txt = tshark_fields(out, ["dns.txt.length"], "dns.resp.type == 16")
    assert txt and all(v in ("", "0") for row in txt for v in row[0].split(","))


def test_ecs_prefix_and_cookie(run, tmp_path, key, tshark):
    src, out, _ = _mask(run, tmp_path, "--key-file", key)
    rows = tshark_fields(out, ["dns.opt.client.family", "dns.opt.client.netmask", "dns.opt.client.addr4",
                               "dns.opt.cookie.client"], "frame.number == 1")
    family, netmask, addr, cookie = rows[0]
    assert (family, netmask) == ("1", "24")
    assert addr.endswith(".0") and addr != "192.0.2.0"  # mapped as a /24: bits past it zero
    original = _frames_of(src)[0]
    assert b"cookie-value" in original and b"cookie-value" not in _frames_of(out)[0]


def test_without_anonymization_names_stay(run, tmp_path, tshark):
    src, out, report = _mask(run, tmp_path, "--no-anonymize")
    assert report["dns_messages_kept"] == DNS_PACKETS and report["names_pseudonymized"] == 0
    names = ["dns.qry.name", "dns.resp.name", "dns.a", "dns.aaaa"]
    assert tshark_fields(out, names) == tshark_fields(src, names)
    data = b"".join(_frames_of(out)).lower()
    assert b"secret-host" in data
    assert b"token=secret-txt" not in data and b"cookie-value" not in data  # the rest of the rules hold
    assert tshark_fields(out, ["frame.number"], "udp.checksum.status==0", CHECK) == []


def test_without_masking_names_are_still_pseudonymized(run, tmp_path, key, tshark):
    src, out, report = _mask(run, tmp_path, "--key-file", key, "--no-mask-payloads")
    assert report["dns_messages_kept"] == DNS_PACKETS
    names = " ".join("\t".join(r) for r in tshark_fields(out, ["dns.qry.name", "dns.resp.name", "dns.cname",
                                                                 "dns.ptr.domain_name"])).lower()
    for needle in ("secret-host", "corp-internal", "secret-printer", "filesrv01", "office printer"):
        assert needle not in names
    # masked data (TXT) stays without masking, like any payload: that mode keeps what is not an identifier
    assert b"rp=secret-printer" in b"".join(_frames_of(out))
    assert tshark_fields(out, ["frame.number"], "udp.checksum.status==0", CHECK) == []
