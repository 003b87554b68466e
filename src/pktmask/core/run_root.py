"""Run roots on disk: creation with owner record and lock, inspection, and the orphan sweep.

A run root is ``<tempdir>/pktmask-<host>-<pid>-<random>`` (mode 0700) holding:
``lock`` (exclusively flock'ed by the owning process for its whole life),
``owner`` (a JSON record naming the tool, uid, pid and host) and, when the run
writes hidden partial outputs outside the root, ``external`` (one path per
line) so a sweep can remove those too after a SIGKILL. The kernel drops the
flock when the owner dies, however it dies: a lock that can be taken means
the owner is gone.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import secrets
import shutil
import socket
import stat
import string
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

ROOT_PREFIX = "pktmask-"
LOCK_NAME = "lock"
OWNER_NAME = "owner"
EXTERNAL_NAME = "external"
_RAND_ALPHABET = string.ascii_lowercase + string.digits
ROOT_RE = re.compile(r"^pktmask-(?P<host>.+)-(?P<pid>\d+)-(?P<rand>[a-z0-9]{8})$")
# Hidden partial outputs written next to OUTPUT: ".<name>.pktmask-<random>.part".
PARTIAL_RE = re.compile(r"^\..+\.pktmask-[a-z0-9]{8}\.part$")
# A root without an owner record is still being created, or its creator died
# in the first microseconds; only the latter is swept, once it is this old.
INIT_GRACE_SECONDS = 60


def random_token() -> str:
    """Eight random lowercase alphanumerics for unique names."""
    return "".join(secrets.choice(_RAND_ALPHABET) for _ in range(8))


def _host() -> str:
    # Keep the name a safe path component whatever the hostname holds.
    raw = socket.gethostname() or "host"
    return re.sub(r"[^A-Za-z0-9.]", "_", raw)[:64] or "host"


def _open_nofollow(path: Path, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


@dataclass
class RootInfo:
    """What ``temp status`` shows about one run root."""

    path: Path
    pid: int
    host: str
    state: str  # "live", "orphaned", "kept"
    size: int
    age_seconds: float


class OwnedRoot:
    """A run root created and locked by this process; ``close()`` releases the lock."""

    def __init__(self, temp_dir: Path):
        temp_dir = Path(temp_dir)
        self.pid = os.getpid()
        for _ in range(100):
            path = temp_dir / f"{ROOT_PREFIX}{_host()}-{self.pid}-{random_token()}"
            try:
                os.mkdir(path, 0o700)
                break
            except FileExistsError:
                continue
        else:  # pragma: no cover - 100 collisions of 8 random chars
            raise FileExistsError(f"could not create a unique run root in {temp_dir}")
        self.path = path
        try:
            os.chmod(path, 0o700)  # umask may have narrowed it; never widened
            self.lock_fd = _open_nofollow(path / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_EXCL)
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            record = {
                "tool": "pktmask",
                "uid": os.geteuid(),
                "pid": self.pid,
                "host": socket.gethostname(),
                "started": time.time(),
                "keep": False,
            }
            self._write_owner(record)
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        self.record = record

    def _write_owner(self, record: dict) -> None:
        tmp = self.path / (OWNER_NAME + ".new")
        fd = _open_nofollow(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        os.replace(tmp, self.path / OWNER_NAME)

    def mark_kept(self) -> None:
        """Record that the user asked to keep this root: the automatic sweep skips it."""
        self.record["keep"] = True
        self._write_owner(self.record)

    def add_external(self, path: Path) -> None:
        """Remember a scratch path outside the root so a later sweep can remove it."""
        fd = _open_nofollow(self.path / EXTERNAL_NAME, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        with os.fdopen(fd, "w") as f:
            f.write(os.fsdecode(os.path.abspath(path)) + "\n")

    def close(self) -> None:
        """Release the lock (idempotent)."""
        fd, self.lock_fd = self.lock_fd, -1
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:  # pragma: no cover
                pass


def _read_owner(path: Path) -> dict | None:
    try:
        fd = _open_nofollow(path / OWNER_NAME, os.O_RDONLY)
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb") as f:
            data = json.loads(f.read(4096))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("tool") == "pktmask" else None


def _tree_size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def _candidates(temp_dir: Path):
    """Yield (path, match, lstat) for entries that may be this user's run roots.

    Symlinks, non-directories and other users' entries are never yielded.
    """
    try:
        names = os.listdir(temp_dir)
    except OSError:
        return
    uid = os.geteuid()
    for name in names:
        m = ROOT_RE.match(name)
        if not m:
            continue
        path = Path(temp_dir) / name
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid:
            continue
        yield path, m, st


def _try_lock(path: Path) -> int | None:
    """Return a locked fd on the root's lock if its owner is gone, else None.

    A missing or symlinked lock file yields None (not provably ours).
    """
    try:
        fd = _open_nofollow(path / LOCK_NAME, os.O_RDWR)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _is_live(path: Path) -> bool:
    fd = _try_lock(path)
    if fd is None:
        return (path / LOCK_NAME).exists()
    os.close(fd)
    return False


def list_roots(temp_dir: Path) -> list[RootInfo]:
    """Describe this user's run roots in ``temp_dir`` (no changes made)."""
    out = []
    now = time.time()
    for path, m, st in _candidates(temp_dir):
        owner = _read_owner(path)
        if owner is None and now - st.st_mtime < INIT_GRACE_SECONDS:
            state = "live"
        elif _is_live(path):
            state = "live"
        elif owner is not None and owner.get("keep"):
            state = "kept"
        else:
            state = "orphaned"
        out.append(RootInfo(path, int(m["pid"]), m["host"], state, _tree_size(path), now - st.st_mtime))
    return sorted(out, key=lambda r: str(r.path))


def _remove_externals(root: Path) -> None:
    """Remove hidden partial outputs a dead run listed, if they are still such files."""
    try:
        fd = _open_nofollow(root / EXTERNAL_NAME, os.O_RDONLY)
    except OSError:
        return
    with os.fdopen(fd, "r", errors="replace") as f:
        lines = f.read(1 << 20).splitlines()
    uid = os.geteuid()
    for line in lines:
        p = Path(line)
        if not p.is_absolute() or not PARTIAL_RE.match(p.name):
            continue
        try:
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode) and st.st_uid == uid:
                os.unlink(p)
        except OSError:
            continue


def sweep(temp_dir: Path, include_kept: bool = False, exclude: Path | None = None) -> list[Path]:
    """Remove this user's run roots in ``temp_dir`` whose owner is dead.

    Live roots (lock held) are never touched; kept roots only with
    ``include_kept``. Returns the removed paths. Never raises for a root it
    cannot remove; that is logged.
    """
    removed = []
    now = time.time()
    for path, _m, st in _candidates(temp_dir):
        if exclude is not None and path == exclude:
            continue
        owner = _read_owner(path)
        if owner is None:
            # Not provably ours unless it is an abandoned half-created root.
            if now - st.st_mtime < INIT_GRACE_SECONDS:
                continue
            try:
                if not set(os.listdir(path)) <= {LOCK_NAME, OWNER_NAME + ".new"}:
                    continue
            except OSError:
                continue
        elif owner.get("uid") != os.geteuid():
            continue
        elif owner.get("keep") and not include_kept:
            continue
        fd = _try_lock(path)
        if fd is None:
            if owner is not None or (path / LOCK_NAME).exists():
                continue
        try:
            _remove_externals(path)
            shutil.rmtree(path)
            removed.append(path)
            log.debug("swept orphaned run root %s", path)
        except OSError as exc:
            log.warning("could not remove orphaned run root %s: %s", path, exc)
        finally:
            if fd is not None:
                os.close(fd)
    return removed
