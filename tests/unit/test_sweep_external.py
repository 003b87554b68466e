"""The sweep removes only hidden partial outputs from a dead run's ``external`` record.

A dead root's ``external`` file is data on disk, not proof: a line naming any
other file (a user's capture, a file named like a partial output but that is a
symlink or a directory, a relative path) must leave it alone, while a real
``.name.pktmask-XXXXXXXX.part`` it lists goes with the root: the sweep never
removes what is not provably ours (README, "Temp hygiene").
"""

from __future__ import annotations

import json
import os
import time

from pktmask.core import run_root


def dead_root(temp, lines):
    root = temp / "pktmask-h-1-abcdefgh"
    root.mkdir(mode=0o700)
    (root / "lock").write_text("")
    (root / "owner").write_text(json.dumps(
        {"tool": "pktmask", "uid": os.geteuid(), "pid": 1, "host": "h", "started": 0, "keep": False}))
    (root / "external").write_text("".join(f"{line}\n" for line in lines))
    old = time.time() - 3600
    os.utime(root, (old, old))
    return root


def test_external_record_removes_partials_only(tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    partial = out / ".cap.pcap.pktmask-abcdefgh.part"
    partial.write_bytes(b"half")
    capture = out / "cap.pcap"
    capture.write_bytes(b"the user's capture")
    hidden = out / ".notes"
    hidden.write_bytes(b"not a partial output")
    linked = out / ".link.pktmask-abcdefgh.part"
    linked.symlink_to(capture)
    folder = out / ".dir.pktmask-abcdefgh.part"
    folder.mkdir()
    root = dead_root(temp, [partial, capture, hidden, linked, folder, "cap.pcap", out])
    assert run_root.sweep(temp) == [root]
    assert not root.exists() and not partial.exists()
    assert capture.read_bytes() == b"the user's capture" and hidden.exists()
    assert linked.is_symlink() and folder.is_dir() and out.is_dir()
