"""The sweep never follows a symlinked look-alike run root (issue 17).

The victim behind the link looks like a dead run's root in every other way:
an owner record of ours, a lock nobody holds, and an ``external`` record
naming a hidden partial output (``.x.pktmask-XXXXXXXX.part``) outside the
temp dir. Followed, the sweep would delete that file elsewhere on disk; it
must not be listed, nothing may be removed, and nothing logged as removed.
"""

from __future__ import annotations

import json
import logging
import os
import time

from pktmask.core import run_root
from pktmask.core.temp_file_manager import TempFileManager


def plant(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    precious = elsewhere / ".x.pktmask-abcdefgh.part"
    precious.write_bytes(b"someone else's file")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "lock").write_text("")
    (victim / "owner").write_text(json.dumps(
        {"tool": "pktmask", "uid": os.geteuid(), "pid": 1, "host": "h", "started": 0, "keep": False}))
    (victim / "external").write_text(f"{precious}\n")
    (victim / "scratch").write_bytes(b"x")
    old = time.time() - 3600
    os.utime(victim, (old, old))
    temp = tmp_path / "tmp"
    temp.mkdir()
    link = temp / "pktmask-h-1-abcdefgh"
    link.symlink_to(victim, target_is_directory=True)
    assert run_root.PARTIAL_RE.match(precious.name)
    return temp, link, victim, precious


def untouched(link, victim, precious):
    return (precious.read_bytes() == b"someone else's file" and link.is_symlink()
            and sorted(os.listdir(victim)) == ["external", "lock", "owner", "scratch"])


def test_sweep_ignores_symlinked_root_with_owner_lock_and_external(tmp_path, caplog):
    temp, link, victim, precious = plant(tmp_path)
    assert run_root.list_roots(temp) == []
    with caplog.at_level(logging.DEBUG, logger="pktmask"):
        assert run_root.sweep(temp) == []
        assert run_root.sweep(temp, include_kept=True) == []
    assert untouched(link, victim, precious)
    assert not [r for r in caplog.records if "orphaned run root" in r.getMessage()], caplog.text


def test_manager_sweep_ignores_symlinked_root(tmp_path, caplog):
    temp, link, victim, precious = plant(tmp_path)
    manager = TempFileManager(temp_dir=temp)
    try:
        own = manager.run_root  # created on first use
        with caplog.at_level(logging.DEBUG, logger="pktmask"):
            assert manager.sweep_orphans() == []
        assert [r.path for r in run_root.list_roots(temp)] == [own]
    finally:
        manager.cleanup_all()
    assert untouched(link, victim, precious)
    assert not [r for r in caplog.records if "orphaned run root" in r.getMessage()], caplog.text
