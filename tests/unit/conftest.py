"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest

from pktmask.core.temp_file_manager import TempFileManager


@pytest.fixture
def manager(tmp_path):
    """A TempFileManager of its own under ``tmp_path/tmp``, which must be empty afterwards."""
    (tmp_path / "tmp").mkdir()
    m = TempFileManager(temp_dir=tmp_path / "tmp")
    yield m
    m.cleanup_all()
    assert list((tmp_path / "tmp").iterdir()) == []
