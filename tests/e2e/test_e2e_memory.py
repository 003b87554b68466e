"""Memory stays bounded whatever follows an entry the masking pre-pass cannot decide yet.

A first fragment whose last fragment never comes waits for its datagram's length, and the
records of every later packet queue behind it. Before the MAX_HELD bound (mask/tracker.py) a
capture of 300,000 small datagrams after such a fragment held all of them: peak RSS grew with
the capture. Peak RSS is a figure of the run, not a timing: it is compared with the same run
without the stray fragment.
"""

from __future__ import annotations

import struct
import subprocess
import sys

from scapy.all import IP, UDP, Ether, Raw

from captures import write_pcap
from conftest import PKTMASK

COUNT = 300_000


# Peak RSS of a process counts its memory before exec too, so pktmask is started from a small
# interpreter (not from this test process, which holds the frames) that reports its peak.
_MEASURE = ("import os, subprocess, sys\n"
            "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
            "_pid, status, usage = os.wait4(p.pid, 0)\n"
            "print(usage.ru_maxrss)\n"
            "sys.exit(os.waitstatus_to_exitcode(status))\n")


def _peak_kib(run, *args) -> int:
    """Peak RSS (KiB) of pktmask and the pre-pass helper it waited for, whichever is larger."""
    res = subprocess.run([sys.executable, "-c", _MEASURE, str(PKTMASK), *map(str, args)], env=run.env,
                         capture_output=True, timeout=300)
    assert res.returncode == 0, res.stderr
    return int(res.stdout)


def test_a_stray_first_fragment_does_not_hold_every_later_record(run, tmp_path):
    stray = bytes(Ether() / IP(src="192.0.2.1", dst="192.0.2.2", id=7, flags="MF", proto=17)
                  / UDP(sport=1000, dport=2000) / Raw(b"x" * 64))
    base = bytearray(bytes(Ether() / IP(src="192.0.2.3", dst="192.0.2.4") / UDP(sport=3000, dport=4000)
                           / Raw(b"y" * 18)))
    frames = []
    for i in range(COUNT):
        base[-3:] = struct.pack(">I", i)[1:]
        frames.append(bytes(base))
    plain = write_pcap(tmp_path / "plain.pcap", frames)
    stray_first = write_pcap(tmp_path / "stray.pcap", [stray, *frames])
    without = _peak_kib(run, "mask", plain, tmp_path / "o1.pcap")
    with_stray = _peak_kib(run, "mask", stray_first, tmp_path / "o2.pcap")
    # Unbounded, the queue costs over 100 bytes a packet: 30+ MB here. Bounded: noise.
    assert with_stray < without + 16 * 1024, (without, with_stray)
    assert run.leftovers() == []
