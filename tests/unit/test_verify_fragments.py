"""The audit's side of fragmented DNS datagrams (verify/fragments.py, docs/policy.md "DNS").

The reassembly decisions of pass 1 (complete, a fragment missing, overlaps, exact copies, out of
order, ports, lengths, bounds), the labels each fragment gets, and the planted-leak checks: an
IDEAL sanitized copy made by hand (``fragment_captures``) is clean, and each original
identifier put back into it (a label in a later fragment, one split by a fragment boundary, an
A or AAAA answer, TXT bytes) is named at its packet and offset.
"""

from __future__ import annotations

import pytest

from captures import write_pcap
from fragment_captures import (
    A_ANSWERS,
    AAAA_ANSWERS,
    SPLIT,
    TXT,
    datagram,
    fragments,
    locate,
    split_cuts,
)
from pktmask.config import MaskConfig
from pktmask.runner import build_executor
from pktmask.verify import fragments as frag
from pktmask.verify import verify
from pktmask.verify.fields import Walker
from pktmask.verify.labels import ADDR4, KEEP, NAME, OTHER, Spans

KEY = bytes(range(32))


# ---------------------------------------------------------------- pass 1: reassembly decisions

def pieces(dgram: bytes, size: int = 64) -> list[tuple[int, bytes, bool]]:
    return [(a, dgram[a:a + size], a + size < len(dgram)) for a in range(0, len(dgram), size)]


def collect(parts, key: bytes = b"k", reassembler: frag.Reassembler | None = None, first: int = 1):
    """Feed ``(offset, bytes, more)`` parts as packets ``first``, ``first + 1``...; return the
    reassembler and the DNS messages it completed."""
    messages: list[bytes] = []
    r = reassembler or frag.Reassembler(messages.append)
    for number, (offset, chunk, more) in enumerate(parts, first):
        r.add(number, chunk, key, offset, 0, len(chunk), more, 17)
    return r, messages


def packets(r: frag.Reassembler) -> list[int]:
    return sorted(r.by_packet)


def test_complete_datagram_in_order_and_out_of_order():
    dgram = datagram(False, False)
    parts = pieces(dgram)
    assert len(parts) >= 3
    for order in (parts, parts[::-1], parts[1:] + parts[:1]):
        r, messages = collect(order)
        assert messages == [dgram[8:]]
        assert packets(r) == list(range(1, len(parts) + 1))
        r.finish()
        assert r.open_bytes == 0 and r.kept_bytes == len(dgram)


@pytest.mark.parametrize("drop", ["first", "middle", "last"])
def test_a_missing_fragment_leaves_the_datagram_out(drop):
    parts = pieces(datagram(False, False))
    del parts[{"first": 0, "middle": 1, "last": -1}[drop]]
    r, messages = collect(parts)
    r.finish()
    assert messages == [] and r.by_packet == {} and r.open_bytes == 0


def test_an_exact_copy_is_no_overlap_but_different_bytes_are():
    parts = pieces(datagram(False, False))
    r, messages = collect(parts[:2] + [parts[1]] + parts[2:])
    assert len(messages) == 1 and packets(r) == list(range(1, len(parts) + 2))
    changed = (parts[1][0], b"X" + parts[1][1][1:], True)
    r, messages = collect(parts[:2] + [changed] + parts[2:])
    assert messages == [] and r.by_packet == {}


def test_a_copy_after_completion_belongs_to_the_datagram():
    parts = pieces(datagram(False, False))
    r, messages = collect(parts + [parts[1]])
    assert len(messages) == 1 and packets(r) == list(range(1, len(parts) + 2))


def test_overlapping_fragments_leave_the_datagram_out():
    dgram = datagram(False, False)
    parts = pieces(dgram)
    a, chunk, more = parts[1]
    shifted = (a + 8, dgram[a + 8:a + 8 + len(chunk)], True)  # overlaps its neighbours, same bytes
    r, messages = collect(parts[:1] + [shifted] + parts)
    assert messages == [] and r.by_packet == {}
    # One that overlaps the fragment before it by as many bytes as it leaves out after it: the
    # byte count adds up, the datagram is still not whole.
    back = (a - 8, dgram[a - 8:a - 8 + len(chunk)], True)
    r, messages = collect(parts[:1] + [back] + parts[2:])
    assert messages == [] and r.by_packet == {}


def test_two_last_fragments_or_one_past_the_last_leave_it_out():
    dgram = datagram(False, False)
    parts = pieces(dgram)
    early_last = (parts[1][0], parts[1][1], False)
    r, messages = collect([early_last] + parts)
    assert messages == [] and r.by_packet == {}
    r, messages = collect([parts[-1], (len(dgram) + 8, b"x" * 8, True)] + parts[:-1])
    assert messages == [] and r.by_packet == {}


def test_not_a_dns_port_or_a_wrong_udp_length_leaves_it_out():
    dgram = bytearray(datagram(False, False))
    other = bytes(dgram[:2]) + b"\x13\x88" + bytes(dgram[4:])  # 53 -> 5000 as the destination
    other = b"\x13\x89" + other[2:]  # and the source
    r, messages = collect(pieces(other))
    assert messages == [] and r.by_packet == {}
    for length in (len(dgram) + 8, 7):
        dgram[4:6] = length.to_bytes(2, "big")
        r, messages = collect(pieces(bytes(dgram)))
        assert messages == [] and r.by_packet == {}


def test_a_udp_length_short_of_the_datagram_ends_the_message():
    # Real captures (the corpus's ip6_fragments.pcap) hold datagrams a few bytes longer than
    # their UDP length: the message ends where it says, the bytes after it must be zero.
    dgram = datagram(False, False) + b"tail"
    r, messages = collect(pieces(dgram))
    assert messages == [dgram[8:-4]]
    dg = r.by_packet[1][0][0]
    assert dg.label().items[-1] == (len(dgram) - 4, len(dgram), OTHER, "udp.payload (after the udp length)")


def test_windows_a_late_fragment_and_a_rejected_key_forgotten():
    parts = pieces(datagram(False, False))
    r = frag.Reassembler()
    collect(parts[:1], reassembler=r)
    collect(parts[1:], reassembler=r, first=frag.WINDOW + 2)  # waited too long
    assert r.by_packet == {}
    r = frag.Reassembler()
    collect([(parts[1][0], b"X" + parts[1][1][1:], True)] + parts[1:2], reassembler=r)  # rejected
    collect(parts, reassembler=r, first=3)
    assert r.by_packet == {}
    collect(parts, reassembler=r, first=frag.FORGET + 2)  # the key is free again
    assert packets(r) == list(range(frag.FORGET + 2, frag.FORGET + 2 + len(parts)))


def test_other_protocols_and_cut_short_fragments_are_not_collected():
    parts = pieces(datagram(False, False))
    r = frag.Reassembler()
    for number, (offset, chunk, more) in enumerate(parts, 1):
        r.add(number, chunk, b"k", offset, 0, len(chunk), more, 6)
    assert r.open == {} and r.by_packet == {}
    r = frag.Reassembler()
    for number, (offset, chunk, more) in enumerate(parts, 1):
        cut = number == 2
        r.add(number, chunk[:-4] if cut else chunk, b"k", offset, 0, len(chunk), more, 17)
    assert r.by_packet == {}


def test_an_identification_used_again_makes_a_new_datagram():
    one, two = datagram(False, False), datagram(False, False, b"\x00\x07" + datagram(False, False)[10:])
    r, messages = collect(pieces(one))
    r, messages2 = collect(pieces(two, 48), reassembler=r, first=100)
    assert len(messages) == 2 and messages[1] == two[8:]
    assert packets(r) == list(range(1, len(pieces(one)) + 1)) + list(range(100, 100 + len(pieces(two, 48))))


def test_the_memory_bounds(monkeypatch):
    dgram = datagram(False, False)
    # Past the largest UDP datagram: left out.
    r, messages = collect([(65528, b"x" * 16, False)] + pieces(dgram))
    assert messages == []
    # Incomplete datagrams past their byte bound: the oldest is evicted for a new one.
    monkeypatch.setattr(frag, "MAX_OPEN_BYTES", 100)
    parts = pieces(dgram)
    r, _ = collect(parts[1:2], key=b"old")
    r, messages = collect(parts[:1], key=b"new", reassembler=r, first=10)
    assert b"old" not in r.open and r.gave_up and r.open_bytes == len(parts[0][1])
    # Complete datagrams past their bound: left out, and said so.
    monkeypatch.setattr(frag, "MAX_OPEN_BYTES", 1 << 20)
    monkeypatch.setattr(frag, "MAX_KEPT_BYTES", len(dgram) + 10)
    r, messages = collect(parts)
    r, messages2 = collect(parts, key=b"two", reassembler=r, first=50)
    assert len(messages) == 1 and packets(r) == list(range(1, len(parts) + 1))
    assert r.gave_up


# ---------------------------------------------------------------- pass 2: labels per fragment

def walked(frames: list[bytes]) -> tuple[frag.Reassembler, list[Spans], list[list]]:
    r, walker = frag.Reassembler(), Walker()
    for number, f in enumerate(frames, 1):
        walker.frame(f, 1)
        for fragment in walker.fragments:
            r.add(number, f, *fragment)
    r.finish()
    audit = frag.FragmentAudit(r, None, None, None)
    spans, hits = [], []
    for number, f in enumerate(frames, 1):
        w = Walker()
        s = w.frame(f, 1)
        hits.append(audit.relabel(number, w.fragments, s))
        spans.append(s)
    return r, spans, hits


def kind_at(spans: Spans, offset: int) -> int:
    for a, b, kind, _ in spans.items:
        if a <= offset < b:
            return kind
    return OTHER


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_fragments_take_the_labels_of_their_place_in_the_datagram(v6):
    cuts = split_cuts()
    f = fragments(False, v6, cuts)
    dgram = datagram(False, v6)
    _, spans, hits = walked(f.frames)
    assert all(len(h) == 1 for h in hits)
    name = dgram.index(b"edge2")
    i, at = locate(f, name)
    assert i > 1 and kind_at(spans[i], at) == NAME and kind_at(spans[i], at - 1) == KEEP  # its length byte
    a = dgram.index(bytes(int(x) for x in A_ANSWERS[4].split(".")))
    i, at = locate(f, a)
    assert kind_at(spans[i], at) == ADDR4
    txt = dgram.index(TXT)
    i, at = locate(f, txt)
    assert kind_at(spans[i], at) == OTHER and kind_at(spans[i], at - 3) == KEEP  # RDLENGTH kept
    # A label split by a fragment boundary: each piece kept in its frame, judged whole later.
    split = dgram.index(SPLIT.encode())
    i, at = locate(f, split)
    j, at2 = locate(f, split + len(SPLIT) - 1)
    assert j == i + 1 and kind_at(spans[i], at) == KEEP and kind_at(spans[j], at2) == KEEP
    assert hits[i][0][0].split  # deferred to the whole datagram


def test_an_incomplete_datagram_keeps_todays_labels():
    f = fragments(False, False, split_cuts())
    frames = f.frames[:2] + f.frames[3:]
    _, spans, hits = walked(frames)
    assert all(h == [] for h in hits)
    dgram = datagram(False, False)
    i, at = locate(f, dgram.index(b"edge2"))
    assert i == 2 and kind_at(spans[i - 1], at) == OTHER  # "ipv4 fragment data"


# ---------------------------------------------------------------- planted leaks

def pair(tmp_path, v6: bool, order: list[int] | None = None):
    cuts = split_cuts()
    orig, ideal = fragments(False, v6, cuts, order), fragments(True, v6, cuts, order)
    return orig, ideal, write_pcap(tmp_path / "orig.pcap", orig.frames), write_pcap(tmp_path / "ideal.pcap", ideal.frames)


def plant(tmp_path, frames: list[bytes], spots: list[tuple[int, int, bytes]]):
    out = [bytearray(f) for f in frames]
    for i, at, value in spots:
        out[i][at:at + len(value)] = value
    return write_pcap(tmp_path / "planted.pcap", [bytes(f) for f in out])


def named(report, frame: int, offset: int, length: int) -> bool:
    return any(f["packet"] == frame + 1 and f["offset"] < offset + length and offset < f["offset"] + f["length"]
               for f in report["findings"])


def spots_of(orig, dgram: bytes, value: bytes) -> list[tuple[int, int, bytes]]:
    """``value`` of the original datagram, as (frame, frame offset, bytes) per fragment it lies in."""
    at = dgram.index(value)
    out = []
    k = 0
    while k < len(value):
        i, off = locate(orig, at + k)
        end = next((c for c in sorted(orig.cuts) if c > at + k), len(dgram))
        n = min(len(value) - k, end - (at + k))
        out.append((i, off, value[k:k + n]))
        k += n
    return out


ORDERS = {"in order": None, "last first": "last-first"}


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("order", ORDERS, ids=list(ORDERS))
def test_ideal_copy_is_clean_and_each_identifier_put_back_is_named(tmp_path, v6, order):
    cuts = split_cuts()
    sequence = None if ORDERS[order] is None else [len(cuts) - 1] + list(range(len(cuts) - 1))
    orig, ideal, o, s = pair(tmp_path, v6, sequence)
    assert len(orig.frames) >= 4
    report = verify(o, s, None)
    assert report["clean"] is True, report["findings"]
    dgram = datagram(False, v6)
    a_record = bytes(int(x) for x in A_ANSWERS[3].split("."))
    import ipaddress
    aaaa = ipaddress.IPv6Address(AAAA_ANSWERS[1]).packed
    for what, value in [("label in a later fragment", b"edge2"), ("A answer", a_record),
                        ("AAAA answer", aaaa), ("TXT data", TXT[8:24]), ("split label", SPLIT.encode())]:
        spots = spots_of(orig, dgram, value)
        assert what != "label in a later fragment" or spots[0][0] != orig.cuts.index(0)
        report = verify(o, plant(tmp_path, ideal.frames, spots), None)
        assert report["clean"] is False, what
        for i, at, piece in spots:
            assert named(report, i, at, len(piece)), (what, i, at, report["findings"])


def test_half_a_split_label_put_back_is_no_finding_but_the_whole_is(tmp_path):
    orig, ideal, o, s = pair(tmp_path, False)
    dgram = datagram(False, False)
    spots = spots_of(orig, dgram, SPLIT.encode())
    assert len(spots) == 2
    report = verify(o, plant(tmp_path, ideal.frames, spots[:1]), None)
    assert report["clean"] is True, report["findings"]  # the label as a whole is a pseudonym
    report = verify(o, plant(tmp_path, ideal.frames, spots), None)
    assert {f["field"] for f in report["findings"]} == {"dns.name label"}
    assert "mailserver-primary" in {e["value"] for e in report["categories"]["dns"]["examples"]}


def test_a_missing_fragment_keeps_todays_rule(tmp_path):
    orig, ideal, _, _ = pair(tmp_path, False)
    keep = [i for i in range(len(orig.frames)) if i != 2]
    o = write_pcap(tmp_path / "o.pcap", [orig.frames[i] for i in keep])
    # Structure kept in the later fragments of an incomplete datagram: must be zero.
    report = verify(o, write_pcap(tmp_path / "s.pcap", [ideal.frames[i] for i in keep]), None)
    assert report["clean"] is False
    assert {f["field"] for f in report["findings"]} >= {"ipv4 fragment data"}
    # Zeroed (and the first fragment's UDP checksum zeroed: its last fragment is there, though).
    zeroed = [ideal.frames[i] if orig.cuts[i] == 0 else ideal.frames[i][:34] + bytes(len(ideal.frames[i]) - 34)
              for i in keep]
    report = verify(o, write_pcap(tmp_path / "z.pcap", zeroed), None)
    assert [f for f in report["findings"] if f["packet"] != 1] == []


def test_names_of_the_sanitized_message_are_read_whole(tmp_path):
    # The names of the reassembled SANITIZED message are compared with ORIGINAL's (compressed
    # spellings too): the question name put back is named as a DNS message name.
    orig, ideal, o, s = pair(tmp_path, True)
    spots = spots_of(orig, datagram(False, True), b"\x03www\x09acme-corp")
    report = verify(o, plant(tmp_path, ideal.frames, spots), None)
    examples = report["categories"]["dns"]["examples"]
    assert {"value": "www.acme-corp.com", "packet": len(orig.frames), "where": "DNS message"} in examples




@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_the_sanitizers_output_is_clean_and_planted_labels_are_named(tmp_path, manager, v6):
    # Today's sanitizer zeroes a later fragment's data, one that keeps DNS structure pseudonymizes
    # its labels: both are clean, and an original label put back is named.
    orig, _, o, _ = pair(tmp_path, v6)
    out = tmp_path / "out.pcap"
    build_executor(MaskConfig(key=KEY), manager).run_file(o, out)
    report = verify(o, out, manager)
    assert report["aligned"] is True and report["clean"] is True, report["findings"]
    from leak_captures import plant as plant_pcap

    spots = spots_of(orig, datagram(False, v6), b"edge2")
    report = verify(o, plant_pcap(out, spots, tmp_path / "planted.pcap"), manager)
    assert report["clean"] is False
    assert all(named(report, i, at, len(v)) for i, at, v in spots), report["findings"]


def test_copies_of_fragments_share_the_labels_and_a_late_copy_is_judged_alone(tmp_path):
    orig, ideal, _, _ = pair(tmp_path, False)
    dgram = datagram(False, False)
    spots = spots_of(orig, dgram, SPLIT.encode())
    big = max(spots, key=lambda spot: len(spot[2]))  # the larger piece of the split label
    k = big[0]
    order = [0, 1, 1] + list(range(2, len(orig.frames))) + [k]  # a copy before completion, one after

    def copies(frames: list[bytes]) -> list[bytes]:
        # Each copy seen one hop later (TTL 63): the same fragment in another frame, which the
        # audit lines up (an identical frame would be taken for one dedup dropped).
        out = [frames[i] for i in order]
        for j in (2, len(out) - 1):
            out[j] = out[j][:22] + b"\x3f" + out[j][23:]
        return out

    o = write_pcap(tmp_path / "o.pcap", copies(orig.frames))
    frames = copies(ideal.frames)
    report = verify(o, write_pcap(tmp_path / "s.pcap", frames), None)
    assert report["clean"] is True, report["findings"]
    late = bytearray(frames[-1])
    late[big[1]:big[1] + len(big[2])] = big[2]
    report = verify(o, write_pcap(tmp_path / "p.pcap", frames[:-1] + [bytes(late)]), None)
    assert report["clean"] is False and named(report, len(frames) - 1, big[1], len(big[2])), report["findings"]
    # The copy before completion: its fields are judged in its frame like the first one's.
    copy = bytearray(frames[2])
    i, at, value = spots_of(orig, dgram, b"host3")[0]
    assert i == 1
    copy[at:at + len(value)] = value
    report = verify(o, write_pcap(tmp_path / "q.pcap", frames[:2] + [bytes(copy)] + frames[3:]), None)
    assert [f["packet"] for f in report["findings"]] == [3], report["findings"]
