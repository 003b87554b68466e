"""Capture I/O: byte-identical round trips, metadata allowlist, truncation and corruption."""

from __future__ import annotations

import io
import struct

import pytest

from captures import (
    SECRET_MARKERS,
    clean_pcapng,
    epb,
    idb,
    pcap_bytes,
    pcapng_with_metadata,
    raw_block,
    shb,
    spb,
)
from pktmask.capture.formats import make_writer, open_reader, sniff_format
from pktmask.errors import InputError

FRAMES = [bytes([i]) * (60 + i) for i in range(1, 12)] + [b"\x01\x02\x03"]  # odd sizes exercise padding


def roundtrip(data: bytes) -> tuple[bytes, object, int]:
    reader = open_reader(io.BytesIO(data), "in")
    out = io.BytesIO()
    writer = make_writer(out, reader)
    n = 0
    for pkt in reader:
        writer.write(pkt)
        n += 1
    writer.close()
    return out.getvalue(), reader, n


@pytest.mark.parametrize("nsec", [False, True], ids=["usec", "nsec"])
@pytest.mark.parametrize("endian", ["<", ">"], ids=["le", "be"])
def test_pcap_roundtrip_is_byte_identical(nsec, endian):
    data = pcap_bytes(FRAMES, nsec=nsec, endian=endian, linktype=101)
    out, reader, n = roundtrip(data)
    assert out == data
    assert n == len(FRAMES) and reader.linktype == 101 and reader.nanosecond is nsec


@pytest.mark.parametrize("endian", ["<", ">"], ids=["le", "be"])
def test_pcap_writer_copies_record_headers_and_follows_a_length_change(endian):
    """The record header is copied as read (timestamps, original length); a frame whose
    length changed gets its captured length rewritten, nothing else."""
    frames = [(FRAMES[0], 1500), FRAMES[1], FRAMES[2]]
    data = pcap_bytes(frames, endian=endian)
    reader = open_reader(io.BytesIO(data), "in")
    out = io.BytesIO()
    writer = make_writer(out, reader)
    for i, pkt in enumerate(reader):
        assert len(pkt.head) == 16 and pkt.ts_hi is None
        if i == 1:
            pkt.data = pkt.data[:-5]
        elif i == 2:
            pkt.tail = 7  # the masking stage's zeroed tail: written by the writer
            pkt.data = pkt.data[:-7]
        writer.write(pkt)
    writer.close()
    expected = pcap_bytes([(FRAMES[0], 1500), (FRAMES[1][:-5], len(FRAMES[1])),
                           FRAMES[2][:-7] + bytes(7)], endian=endian)
    assert out.getvalue() == expected


def test_pcap_linktype_fcs_bits_ignored():
    data = bytearray(pcap_bytes(FRAMES))
    data[20:24] = struct.pack("<I", 0x14000001)  # FCS present flag + Ethernet
    out, reader, _ = roundtrip(bytes(data))
    assert reader.linktype == 1 and out == bytes(data)


def test_pcapng_clean_roundtrip_is_byte_identical():
    data = clean_pcapng(FRAMES)
    out, reader, n = roundtrip(data)
    assert out == data
    assert n == 2 * len(FRAMES) + 1
    assert reader.metadata_dropped == 0
    assert [s.endian for s in reader.sections] == ["<", ">"]


def test_pcapng_interfaces_keep_their_linktype():
    data = clean_pcapng(FRAMES)
    reader = open_reader(io.BytesIO(data), "in")
    kinds = {(p.iface.section.endian, p.iface.index, p.linktype) for p in reader}
    assert kinds == {("<", 0, 1), (">", 0, 1)}


def test_pcapng_metadata_is_dropped_and_counted():
    out, reader, n = roundtrip(pcapng_with_metadata(FRAMES))
    assert n == len(FRAMES)
    for marker in SECRET_MARKERS:
        assert marker not in out
    assert reader.metadata_dropped >= len(SECRET_MARKERS)
    # The kept structure reads back: same packets, same interfaces and timestamps.
    again = open_reader(io.BytesIO(out), "out")
    pkts = list(again)
    assert [p.data for p in pkts] == FRAMES
    assert pkts[0].ts_lo == 1000 and pkts[0].opts  # epb_flags kept, comment dropped


def test_empty_capture_keeps_structure():
    data = shb() + idb()
    out, _, n = roundtrip(data)
    assert n == 0 and out == data
    out, _, n = roundtrip(pcap_bytes([]))
    assert n == 0 and out == pcap_bytes([])


@pytest.mark.parametrize("content,message", [
    (b"", "empty"),
    (b"GARBAGEGARBAGE", "not a pcap or pcapng"),
    (b"\x1f\x8b\x08\x00\x00\x00", "gzip"),
    (b"\xd4\xc3\xb2\xa1" + b"\0" * 10, "truncated pcap file header"),
    (b"\xd4\xc3\xb2\xa1\x03\x00\x04\x00" + b"\0" * 16, "unsupported pcap version"),
    (b"\x34\xcd\xb2\xa1" + b"\0" * 20, "modified"),
])
def test_bad_input_is_named(content, message):
    with pytest.raises(InputError) as err:
        list(open_reader(io.BytesIO(content), "bad.pcap"))
    assert message in str(err.value) and "bad.pcap" in str(err.value)


def test_pcap_truncated_last_record():
    data = pcap_bytes(FRAMES)
    reader = open_reader(io.BytesIO(data[:-5]), "cut")
    assert len(list(reader)) == len(FRAMES) - 1 and reader.truncated
    reader = open_reader(io.BytesIO(data + b"\x01\x02"), "cut")  # a partial record header
    assert len(list(reader)) == len(FRAMES) and reader.truncated


def test_pcap_record_lying_about_length():
    data = bytearray(pcap_bytes(FRAMES))
    data[24 + 8 : 24 + 12] = struct.pack("<I", 0xFFFF0000)
    with pytest.raises(InputError, match="corrupt record 1"):
        list(open_reader(io.BytesIO(bytes(data)), "liar"))


def test_pcapng_truncated_last_block():
    data = clean_pcapng(FRAMES)
    reader = open_reader(io.BytesIO(data[:-3]), "cut")
    pkts = list(reader)
    assert reader.truncated and len(pkts) == 2 * len(FRAMES)


@pytest.mark.parametrize("mutate,message", [
    (lambda b: b[:4] + struct.pack("<I", 7) + b[8:], "claims length"),
    (lambda b: b[:4] + struct.pack("<I", 0x7FFFFFF0) + b[8:], "claims length"),
    (lambda b: b[:-4] + struct.pack("<I", 999), "trailer"),
])
def test_pcapng_corrupt_blocks(mutate, message):
    block = epb(FRAMES[0])
    data = shb() + idb() + mutate(block)
    with pytest.raises(InputError, match=message):
        list(open_reader(io.BytesIO(data), "corrupt"))


def test_pcapng_packet_on_undeclared_interface():
    with pytest.raises(InputError, match="undeclared interface 3"):
        list(open_reader(io.BytesIO(shb() + idb() + epb(FRAMES[0], iface=3)), "x"))


def test_pcapng_caplen_beyond_block():
    block = bytearray(epb(FRAMES[0]))
    block[20:24] = struct.pack("<I", 5000)
    with pytest.raises(InputError, match="beyond its block"):
        list(open_reader(io.BytesIO(shb() + idb() + bytes(block)), "x"))


def test_pcapng_simple_packet_block_respects_snaplen():
    data = shb() + idb(snaplen=10) + spb(FRAMES[3])
    pkts = list(open_reader(io.BytesIO(data), "x"))
    assert pkts[0].data == FRAMES[3][:10] and pkts[0].orig_len == len(FRAMES[3])


def test_unknown_blocks_before_first_interface_are_dropped():
    data = shb() + raw_block(0x40000BAD, b"\0\0\0\0custom") + idb() + epb(FRAMES[0])
    out, reader, n = roundtrip(data)
    assert n == 1 and reader.metadata_dropped == 1 and b"custom" not in out


def test_sniff_format():
    assert sniff_format(b"\xd4\xc3\xb2\xa1") == "pcap"
    assert sniff_format(b"\xa1\xb2\x3c\x4d") == "pcap"
    assert sniff_format(b"\x0a\x0d\x0d\x0a") == "pcapng"
    assert sniff_format(b"PK\x03\x04") is None


def test_large_stream_reads_in_chunks():
    frames = [bytes(1500)] * 3000  # > several 1 MiB refills
    data = pcap_bytes(frames)
    out, _, n = roundtrip(data)
    assert n == 3000 and out == data


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_writers_append_the_zero_tail(fmt):
    """A stage may leave a zeroed payload to the writer (``Packet.tail``): same bytes as building it."""
    data = pcap_bytes(FRAMES) if fmt == "pcap" else clean_pcapng(FRAMES)
    reader = open_reader(io.BytesIO(data), "in")
    out = io.BytesIO()
    writer = make_writer(out, reader)
    expected = []
    for pkt in reader:
        keep = len(pkt.data) // 3
        expected.append(bytes(pkt.data[:keep]) + bytes(len(pkt.data) - keep))
        pkt.data, pkt.tail = pkt.data[:keep], len(pkt.data) - keep
        writer.write(pkt)
        pkt.tail = 0  # the reader reuses its Packet
    writer.close()
    got = [bytes(p.data) for p in open_reader(io.BytesIO(out.getvalue()), "out")]
    assert got == expected


class _Trickle(io.RawIOBase):
    """A stream that returns at most a random few bytes per read (a pipe, a slow FIFO)."""

    def __init__(self, data: bytes, seed: int):
        import random

        self._data = data
        self._pos = 0
        self._rng = random.Random(seed)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        size = min(n, self._rng.choice([1, 7, 16, 17, 100, 4096, 70000]))
        chunk = self._data[self._pos : self._pos + size]
        self._pos += len(chunk)
        return chunk


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
@pytest.mark.parametrize("seed", range(4))
def test_records_straddling_short_reads_come_out_whole(fmt, seed):
    """Records split across reads of any size (a chunk used up, a record joined across
    several short reads) are read exactly, with their positions, and the cut tail is seen."""
    frames = [bytes([i % 251]) * (60 + (i * 37) % 3000) for i in range(400)]
    data = pcap_bytes(frames) if fmt == "pcap" else clean_pcapng(frames)
    reader = open_reader(_Trickle(data, seed), "in")
    out = io.BytesIO()
    writer = make_writer(out, reader)
    got = []
    for pkt in reader:
        got.append(bytes(pkt.data))
        writer.write(pkt)
    writer.close()
    whole = [bytes(p.data) for p in open_reader(io.BytesIO(data), "in")]  # one read: the oracle
    assert got == whole and len(got) >= len(frames) and out.getvalue() == data
    cut = open_reader(_Trickle(data[:-5], seed), "in")
    assert [bytes(p.data) for p in cut] == whole[:-1] and cut.truncated
