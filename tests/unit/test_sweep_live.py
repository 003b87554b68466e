"""The sweep never removes a live run's root, even when asked directly (no ``exclude``).

A root whose lock is held is live, whoever holds it: the sweep must leave it and its scratch
alone. The unit tests swept through ``TempFileManager.sweep_orphans``, which excludes its own
root, so a sweep that ignored a held lock went unnoticed (issue 17).
"""

from __future__ import annotations

from pktmask.core import run_root
from pktmask.core.temp_file_manager import TempFileManager


def test_sweep_leaves_a_root_whose_lock_is_held(tmp_path):
    manager = TempFileManager(temp_dir=tmp_path)
    try:
        root = manager.run_root
        scratch = manager.create_temp_file(prefix="live-")
        scratch.write_bytes(b"in use")
        assert run_root.sweep(tmp_path) == []
        assert run_root.sweep(tmp_path, include_kept=True) == []
        assert root.is_dir() and scratch.read_bytes() == b"in use"
        assert [(r.path, r.state) for r in run_root.list_roots(tmp_path)] == [(root, "live")]
    finally:
        manager.cleanup_all()
    assert not root.exists()
