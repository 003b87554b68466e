"""Shared fixtures: the installed pktmask, private TMPDIRs, tshark as an oracle, test captures."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from captures import bulk_frames, mixed_frames, write_pcap  # noqa: E402

PKTMASK = Path(sys.executable).parent / "pktmask"


def pytest_collection_modifyitems(config, items):
    """Skip the ``pure_only`` tests on the compiled build (pktmask.build(): test_build.py checks
    that it is the build asked for): a patch of a compiled function reaches no compiled caller."""
    import pktmask

    if pktmask.build() != "compiled":
        return
    skip = pytest.mark.skip(reason="patches a compiled function: meaningful on the pure build only")
    for item in items:
        if "pure_only" in item.keywords:
            item.add_marker(skip)


class Runner:
    """Runs the installed ``pktmask`` with a private, initially empty TMPDIR."""

    def __init__(self, tmp_path: Path):
        self.tmpdir = tmp_path / "private-tmp"
        self.tmpdir.mkdir()
        self.env = dict(os.environ, TMPDIR=str(self.tmpdir), PKTMASK_LOG_LEVEL="WARNING")
        for var in ("PKTMASK_TEST_PAUSE", "PKTMASK_TEST_NO_O_TMPFILE"):
            self.env.pop(var, None)

    def __call__(self, *args, env=None, timeout=300, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(PKTMASK), *map(str, args)],
            env={**self.env, **(env or {})},
            capture_output=True,
            timeout=timeout,
            **kw,
        )

    def popen(self, *args, env=None, **kw) -> subprocess.Popen:
        return subprocess.Popen(
            [str(PKTMASK), *map(str, args)],
            env={**self.env, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            **kw,
        )

    def leftovers(self) -> list[str]:
        """Everything in the private TMPDIR (must be empty after every run)."""
        return sorted(os.listdir(self.tmpdir))


@pytest.fixture
def run(tmp_path) -> Runner:
    """A pktmask runner whose TMPDIR is private to the test."""
    return Runner(tmp_path)


@pytest.fixture(scope="session")
def tshark() -> str:
    """Path to tshark (installed by `make test`); the oracle for dissection and checksums."""
    path = shutil.which("tshark")
    if path is None:
        pytest.fail("tshark is not installed (make test installs it with apt)")
    return path


def tshark_fields(path: Path, fields: list[str], display_filter: str | None = None,
                  extra: list[str] | None = None) -> list[list[str]]:
    """Return tshark's values of ``fields`` for every packet (one list per packet)."""
    cmd = ["tshark", "-n", "-r", str(path), "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a"]
    for f in fields:
        cmd += ["-e", f]
    if display_filter:
        cmd += ["-Y", display_filter]
    cmd += extra or []
    out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                         env=dict(os.environ, TMPDIR=str(path.parent))).stdout
    return [line.split("\t") for line in out.splitlines()]


def tshark_count(path: Path, display_filter: str | None = None, extra: list[str] | None = None) -> int:
    """Number of packets tshark reads (matching ``display_filter``)."""
    return len(tshark_fields(path, ["frame.number"], display_filter, extra))


@pytest.fixture(scope="session")
def sample_frames() -> list[bytes]:
    """The small mixed frame list (scapy-built once per session)."""
    return mixed_frames()


@pytest.fixture
def sample_pcap(tmp_path, sample_frames) -> Path:
    """A small classic pcap with TLS, HTTP, DNS, ICMP, ARP, IPv6, VLAN and one duplicate."""
    (tmp_path / "in").mkdir(exist_ok=True)
    return write_pcap(tmp_path / "in" / "sample.pcap", sample_frames)


@pytest.fixture(scope="session")
def big_pcap(tmp_path_factory) -> Path:
    """A ~30 MB capture (200k distinct frames), generated once per session, for mid-run signals and full disks."""
    path = tmp_path_factory.mktemp("big") / "big.pcap"
    return write_pcap(path, bulk_frames(200_000))


@pytest.fixture
def manager(tmp_path):
    """A TempFileManager of its own under ``tmp_path/tmp``, which must be empty afterwards."""
    from pktmask.core.temp_file_manager import TempFileManager

    (tmp_path / "tmp").mkdir()
    m = TempFileManager(temp_dir=tmp_path / "tmp")
    yield m
    m.cleanup_all()
    assert list((tmp_path / "tmp").iterdir()) == []
