"""TempFileManager and run roots: API, locking, cleanup, threads, fork safety, the sweep."""

from __future__ import annotations

import fcntl
import json
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pktmask.core import run_root
from pktmask.core.temp_file_manager import TempFileManager, get_temp_file_manager


@pytest.fixture
def manager(tmp_path):
    m = TempFileManager(temp_dir=tmp_path)
    yield m
    m.cleanup_all()


def test_singleton():
    assert TempFileManager.get_instance() is TempFileManager.get_instance() is get_temp_file_manager()


def test_root_name_mode_owner_and_lock(manager, tmp_path):
    root = manager.run_root
    assert root.parent == tmp_path
    m = run_root.ROOT_RE.match(root.name)
    assert m and int(m["pid"]) == os.getpid()
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700
    owner = json.loads((root / "owner").read_text())
    assert owner["tool"] == "pktmask" and owner["pid"] == os.getpid() and owner["uid"] == os.geteuid()
    fd = os.open(root / "lock", os.O_RDWR)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)


def test_scratch_lives_inside_root_and_is_counted(manager):
    d = manager.create_temp_dir(prefix="stage-")
    f = manager.create_temp_file(prefix="x-", suffix=".cap")
    assert d.parent == manager.run_root and f.parent == manager.run_root
    assert d.name.startswith("stage-") and f.name.startswith("x-") and f.name.endswith(".cap")
    f.write_bytes(b"\0" * (1 << 20))
    stats = manager.get_stats()
    assert set(stats) == {"temp_files_count", "temp_dirs_count", "total_size_mb"}
    assert stats["temp_files_count"] == 1 and stats["temp_dirs_count"] == 1
    assert stats["total_size_mb"] >= 1.0


def test_register_and_unregister(manager, tmp_path):
    outside = tmp_path / "elsewhere.bin"
    outside.write_bytes(b"x")
    manager.register_temp_file(outside)
    # Recorded in the root so that a sweep after a SIGKILL can find it.
    assert str(outside) in (manager.run_root / "external").read_text()
    kept = tmp_path / "kept.bin"
    kept.write_bytes(b"y")
    manager.register_temp_file(kept)
    manager.unregister_temp_file(kept)
    d = tmp_path / "somedir"
    d.mkdir()
    manager.register_temp_dir(d)
    manager.cleanup_all()
    assert not outside.exists() and kept.exists() and not d.exists()


def test_cleanup_is_idempotent_and_removes_root(manager):
    root = manager.run_root
    manager.create_temp_file()
    manager.cleanup_all()
    assert not root.exists()
    manager.cleanup_all()  # again: no error
    assert manager.get_stats()["temp_files_count"] == 0
    # A new root can be created after cleanup.
    assert manager.run_root.exists()


def test_cleanup_never_raises(manager, tmp_path):
    manager.register_temp_file(tmp_path / "never-existed")
    manager.register_temp_dir(tmp_path / "no-dir")
    manager.cleanup_all()


def test_keep_marks_root_kept(manager):
    manager.configure(keep=True)
    f = manager.create_temp_file()
    root = manager.run_root
    manager.cleanup_all()
    assert root.exists() and f.exists()
    assert json.loads((root / "owner").read_text())["keep"] is True
    assert run_root.sweep(root.parent) == []  # the automatic sweep leaves it
    assert run_root.sweep(root.parent, include_kept=True) == [root]


def test_eight_threads_at_once(manager):
    made: list[Path] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def work():
        barrier.wait()
        for _ in range(25):
            p = manager.create_temp_file() if len(made) % 2 else manager.create_temp_dir()
            with lock:
                made.append(p)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    roots = {p.parent for p in made}
    assert roots == {manager.run_root} and len(set(made)) == 200
    stats = manager.get_stats()
    assert stats["temp_files_count"] + stats["temp_dirs_count"] == 200
    manager.cleanup_all()
    assert not any(p.exists() for p in made)


def test_configure_after_root_exists_is_refused(manager, tmp_path):
    manager.run_root  # noqa: B018
    with pytest.raises(RuntimeError):
        manager.configure(temp_dir=tmp_path / "other")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_never_removes_parent_files(manager):
    parent_file = manager.create_temp_file()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            manager.cleanup_all()  # must be a no-op here
            child = TempFileManager.get_instance()
            ok = child is not manager
            own = child.create_temp_file()
            ok = ok and own.parent != manager.run_root and str(os.getpid()) in own.parent.name
            child.cleanup_all()
            ok = ok and not own.parent.exists()
            os.write(w, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(r, 1) == b"1"
    assert parent_file.exists() and manager.run_root.exists()


def _orphan(tmp_path: Path) -> Path:
    """Create a root in a child process that dies without cleanup (like a SIGKILL)."""
    code = (
        f"import os, sys; sys.path.insert(0, {str(Path(run_root.__file__).parents[2])!r})\n"
        "from pktmask.core.temp_file_manager import TempFileManager\n"
        f"m = TempFileManager(temp_dir={str(tmp_path)!r}); p = m.create_temp_file(); open(p, 'wb').write(b'data')\n"
        "print(m.run_root, flush=True); os._exit(0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def test_sweep_removes_dead_roots_only(manager, tmp_path):
    orphan = _orphan(tmp_path)
    live = manager.run_root
    assert orphan.exists()
    states = {r.path: r.state for r in run_root.list_roots(tmp_path)}
    assert states == {orphan: "orphaned", live: "live"}
    assert manager.sweep_orphans() == [orphan]
    assert not orphan.exists() and live.exists()


def test_sweep_removes_recorded_partial_outputs(tmp_path):
    code = (
        f"import os, sys; sys.path.insert(0, {str(Path(run_root.__file__).parents[2])!r})\n"
        "from pathlib import Path\n"
        "from pktmask.core.temp_file_manager import TempFileManager\n"
        f"m = TempFileManager(temp_dir={str(tmp_path)!r})\n"
        f"p = m.new_partial_name(Path({str(tmp_path)!r}) / 'out.pcap'); m.register_temp_file(p); p.write_bytes(b'half')\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    partials = [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
    assert len(partials) == 1
    unrelated = tmp_path / ".other.pktmask-abcdefgh.part"
    unrelated.write_bytes(b"not listed by any root")
    run_root.sweep(tmp_path)
    assert not partials[0].exists() and unrelated.exists()


def test_sweep_never_follows_symlinks(tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "lock").write_text("")
    (victim / "owner").write_text(json.dumps({"tool": "pktmask", "uid": os.geteuid()}))
    (victim / "precious").write_text("x")
    temp = tmp_path / "tmp"
    temp.mkdir()
    (temp / "pktmask-h-1-abcdefgh").symlink_to(victim)
    assert run_root.sweep(temp) == []
    assert (victim / "precious").exists()


def test_sweep_skips_foreign_and_young_lookalikes(tmp_path):
    foreign = tmp_path / "pktmask-h-2-abcdefgh"
    foreign.mkdir()
    (foreign / "lock").write_text("")
    (foreign / "owner").write_text(json.dumps({"tool": "pktmask", "uid": os.geteuid() + 1}))
    young = tmp_path / "pktmask-h-3-abcdefgh"
    young.mkdir()  # being created right now: no owner record yet
    notours = tmp_path / "pktmask-h-4-abcdefgh"
    notours.mkdir()
    (notours / "data").write_text("some other tool's")
    old = time.time() - 3600
    os.utime(notours, (old, old))
    assert run_root.sweep(tmp_path) == []
    abandoned = tmp_path / "pktmask-h-5-abcdefgh"
    abandoned.mkdir()
    (abandoned / "lock").write_text("")
    os.utime(abandoned, (old, old))  # creator died before writing its owner record
    assert run_root.sweep(tmp_path) == [abandoned]


# ---------------------------------------------------------------- scoped scratch


def test_temp_file_scope_removes_and_forgets(manager):
    with manager.temp_file(prefix="spill-", suffix=".bin") as path:
        assert path.parent == manager.run_root and path.name.startswith("spill-") and path.exists()
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        path.write_bytes(b"x" * 100)
        assert manager.get_stats()["temp_files_count"] == 1
    assert not path.exists() and manager.get_stats()["temp_files_count"] == 0


def test_temp_scopes_clean_up_on_error_and_after_an_early_unlink(manager):
    with pytest.raises(RuntimeError), manager.temp_file() as path:
        raise RuntimeError("boom")
    assert not path.exists()
    with manager.temp_file() as gone:
        gone.unlink()  # removing it early is fine
    with pytest.raises(RuntimeError), manager.temp_directory(prefix="work-") as d:
        (d / "sub").mkdir()
        (d / "sub" / "f").write_bytes(b"data")
        assert manager.get_stats()["temp_dirs_count"] == 1
        raise RuntimeError("boom")
    assert not d.exists() and manager.get_stats() == {"temp_files_count": 0, "temp_dirs_count": 0,
                                                      "total_size_mb": 0.0}


def test_partial_file_scope_is_recorded_for_the_sweep_and_removed(manager, tmp_path):
    target = tmp_path / "out.pcap"
    with manager.partial_file(target) as partial:
        assert partial.parent == tmp_path and run_root.PARTIAL_RE.match(partial.name)
        assert not partial.exists()  # only named: the caller creates it
        assert str(partial) in (manager.run_root / "external").read_text()
        partial.write_bytes(b"half")
    assert not partial.exists()
    with manager.partial_file(target) as partial:
        partial.write_bytes(b"whole")
        os.replace(partial, target)  # published: nothing left to remove
    assert target.read_bytes() == b"whole" and manager.get_stats()["temp_files_count"] == 0
