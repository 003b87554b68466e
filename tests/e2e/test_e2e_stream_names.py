"""Names inside TCP streams end to end (docs/policy.md "DNS", "Payloads"): DNS over TCP keeps its
structure for tshark with names pseudonymized and A/AAAA answers mapped like the IP headers (two
messages in one segment, one message split over two segments, compression pointers, a CNAME
chain, PTR, ECS, TXT zeroed); HTTP Host/Referer hosts become the same pseudonyms as in DNS over
UDP and TCP; checksums stay valid; verify is clean and catches an original name written back."""

from __future__ import annotations

import json
import struct

import pytest
from scapy.all import DNS, DNSQR, DNSRR, DNSRROPT, IP, TCP, UDP, EDNS0ClientSubnet, Ether, Raw
from scapy.utils import RawPcapReader

from captures import write_pcap
from conftest import tshark_fields

CLI, RESOLVER, WEB, HOST6 = "192.0.2.10", "203.0.113.53", "198.51.100.77", "2001:db8:77::7"
NAME = "secret-host.corp-internal.com"
PLANTED = [b"secret-host", b"corp-internal", b"hidden-cdn", b"token=s3cr3t"]
CHECK = ["-o", "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE"]
E = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def _messages() -> tuple[bytes, bytes, bytes]:
    ecs = EDNS0ClientSubnet(source_plen=24, scope_plen=0, address="192.0.2.0")
    q1 = DNS(id=11, rd=1, qd=DNSQR(qname=NAME), ar=DNSRROPT(rclass=1232, rdata=[ecs]))
    q2 = DNS(id=12, rd=1, qd=DNSQR(qname="77.100.51.198.in-addr.arpa", qtype="PTR"))
    r1 = DNS(id=11, qr=1, rd=1, ra=1, qd=DNSQR(qname=NAME),
             an=[DNSRR(rrname=NAME, type="CNAME", rdata="edge.corp-internal.com"),
                 DNSRR(rrname="edge.corp-internal.com", type="CNAME", rdata="www7.hidden-cdn.net"),
                 DNSRR(rrname="www7.hidden-cdn.net", type="A", rdata=WEB),
                 DNSRR(rrname="www7.hidden-cdn.net", type="AAAA", rdata=HOST6),
                 DNSRR(rrname="77.100.51.198.in-addr.arpa", type="PTR", rdata=NAME),
                 DNSRR(rrname="www7.hidden-cdn.net", type="TXT", rdata="token=s3cr3t")])
    return bytes(q1), bytes(q2), bytes(r1.compress())


def _framed(msg: bytes) -> bytes:
    return struct.pack("!H", len(msg)) + msg


def _frames() -> list[bytes]:
    q1, q2, r1 = _messages()
    c, s = 1000, 5000
    up = _framed(q1) + _framed(q2)  # two messages in one segment
    down = _framed(r1)
    cut = len(down) // 2  # one message split over two segments
    tcp = lambda sport, dport, seq, ack, flags, data=b"": E / IP(src=CLI if sport == 40010 else RESOLVER,  # noqa: E731
                                                                 dst=RESOLVER if sport == 40010 else CLI) / \
        TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags) / Raw(data)
    http = (b"GET /index.html?user=alice HTTP/1.1\r\nHost: " + NAME.encode() + b"\r\n"
            b"Referer: http://edge.corp-internal.com:8080/a?b\r\nAccept: */*\r\n\r\n")
    frames = [
        E / IP(src=CLI, dst=RESOLVER) / UDP(sport=40000, dport=53) / DNS(id=1, rd=1, qd=DNSQR(qname=NAME)),
        tcp(40010, 53, c, 0, "S"),
        tcp(53, 40010, s, c + 1, "SA"),
        tcp(40010, 53, c + 1, s + 1, "A"),
        tcp(40010, 53, c + 1, s + 1, "PA", up),
        tcp(53, 40010, s + 1, c + 1 + len(up), "A", down[:cut]),
        tcp(53, 40010, s + 1 + cut, c + 1 + len(up), "PA", down[cut:]),
        E / IP(src=CLI, dst=WEB) / TCP(sport=40020, dport=80, seq=7000, flags="S"),
        E / IP(src=CLI, dst=WEB) / TCP(sport=40020, dport=80, seq=7001, flags="PA") / Raw(http),
    ]
    return [bytes(f) for f in frames]


@pytest.fixture
def key(tmp_path):
    path = tmp_path / "k.key"
    path.write_bytes(bytes(range(32)))
    return path


def _mask(run, tmp_path, *args):
    src = write_pcap(tmp_path / "names.pcap", _frames())
    out = tmp_path / "out.pcap"
    res = run("mask", src, out, "--json", *args)
    assert res.returncode == 0, res.stderr
    assert run.leftovers() == []
    return src, out, json.loads(res.stdout)["files"][0]


def _frames_of(path) -> list[bytes]:
    return [bytes(d) for d, _ in RawPcapReader(str(path))]


FIELDS = ["dns.count.queries", "dns.count.answers", "dns.count.auth_rr", "dns.count.add_rr", "dns.qry.type",
          "dns.resp.type", "dns.resp.len", "dns.flags", "dns.id", "dns.qry.name.len", "dns.count.labels",
          "dns.length", "dns.opt.client.netmask"]


def test_dns_over_tcp_and_http_hosts(run, tmp_path, key, tshark):
    src, out, _report = _mask(run, tmp_path, "--key-file", key)
    assert tshark_fields(out, FIELDS) == tshark_fields(src, FIELDS)
    assert sum(len(r[0].split(",")) for r in tshark_fields(src, ["dns.id"]) if r[0]) == 4  # 1 UDP, 3 TCP
    data = b"".join(_frames_of(out)).lower()
    for needle in PLANTED:
        assert needle not in data, needle
    bad = tshark_fields(out, ["frame.number"], "tcp.checksum.status==0 || udp.checksum.status==0 || "
                        "ip.checksum.status==0", CHECK)
    assert bad == []
    rows = tshark_fields(out, ["frame.number", "dns.qry.name", "dns.a", "dns.aaaa", "ip.dst", "http.host",
                               "dns.cname", "dns.ptr.domain_name", "http.referer", "dns.resp.name",
                               "dns.opt.client.addr4"])
    by = {int(r[0]): r for r in rows}
    udp_name = by[1][1]
    assert udp_name != NAME and len(udp_name) == len(NAME) and udp_name.endswith(".com")
    tcp_names = by[5][1].split(",")
    assert tcp_names[0] == udp_name  # the same name over UDP and TCP
    assert tcp_names[1].endswith(".in-addr.arpa") and tcp_names[1] != "77.100.51.198.in-addr.arpa"
    answer = by[7]  # the response, reassembled from frames 6 and 7
    assert answer[1] == udp_name
    assert answer[2] == by[8][4] != WEB  # the A answer is the mapped address of the web server
    assert answer[3] and answer[3] != HOST6
    cnames = answer[6].split(",")
    assert cnames[0].endswith("." + udp_name.split(".", 1)[1]) and cnames[1].endswith(".hidden-cdn.net") is False
    assert answer[7] == udp_name  # PTR target
    assert by[9][5] == udp_name  # HTTP Host: the same pseudonym
    assert by[9][8] == f"http://{cnames[0]}:8080/a\0\0".replace("\0", "") or by[9][8].startswith(
        f"http://{cnames[0]}:8080/a")
    assert by[5][10].endswith(".0") and by[5][10] != "192.0.2.0"
    txt = tshark_fields(out, ["dns.txt.length"], "dns.resp.type == 16")
    assert txt and all(v in ("", "0") for row in txt for v in row[0].split(","))


def test_without_anonymization_names_stay_in_streams(run, tmp_path, tshark):
    src, out, _ = _mask(run, tmp_path, "--no-anonymize")
    names = ["dns.qry.name", "dns.resp.name", "dns.a", "dns.aaaa"]
    assert tshark_fields(out, names) == tshark_fields(src, names)
    http = _frames_of(out)[8]
    assert b"Host: " + bytes(len(NAME)) + b"\r\n" in http  # no pseudonym to write: zeroed
    data = b"".join(_frames_of(out)).lower()
    assert b"token=s3cr3t" not in data and b"user=alice" not in data


def test_verify_clean_and_planted_name_caught(run, tmp_path, key, tshark):
    src, out, _ = _mask(run, tmp_path, "--key-file", key)
    res = run("verify", src, out, "--json")
    report = json.loads(res.stdout)
    assert res.returncode == 0 and report["clean"] is True, report["findings"][:10]
    frames = _frames_of(out)
    original = _frames_of(src)
    web = bytes(int(x) for x in WEB.split("."))
    resp = 5 if web in original[5] else 6  # the response's A record, in either half
    for index, needle in ((4, b"secret-host"), (8, b"secret-host"), (8, b"edge"), (resp, web),
                          (5, b"corp-internal")):
        planted = list(frames)
        at = original[index].find(needle, 54)  # in the payload (past Ethernet/IPv4/TCP)
        assert at > 0, (index, needle)
        frame = bytearray(planted[index])
        frame[at : at + len(needle)] = needle
        planted[index] = bytes(frame)
        path = write_pcap(tmp_path / f"planted{index}.pcap", planted)
        res = run("verify", src, path, "--json")
        report = json.loads(res.stdout)
        assert res.returncode != 0 and report["clean"] is False
        assert any(f["packet"] == index + 1 for f in report["findings"]), report["findings"][:10]
