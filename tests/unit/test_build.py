"""The suite runs against the build `make test` asks for: the mypyc-compiled one, then pure Python."""

import importlib
import os
import re
from pathlib import Path

import pytest

import pktmask

ROOT = Path(__file__).resolve().parents[2]
EXPECT = os.environ.get("PKTMASK_EXPECT_BUILD")


def hot_modules() -> list[str]:
    """The module names setup.py compiles, read from its HOT list."""
    text = (ROOT / "setup.py").read_text()
    paths = re.findall(r'"src/(pktmask/[\w/]+)\.py"', text)
    assert len(paths) >= 10, "setup.py's HOT list not found"
    return [p.replace("/", ".") for p in paths]


@pytest.mark.skipif(EXPECT is None, reason="run by make test, which says which build to expect")
def test_the_expected_build_is_the_one_imported():
    origins = {name: importlib.import_module(name).__file__ or "" for name in hot_modules()}
    if EXPECT == "compiled":
        assert pktmask.build() == "compiled"
        assert [n for n, f in origins.items() if f.endswith(".py")] == [], "not compiled"
    else:
        assert pktmask.build() == "pure Python"
        assert all(f.startswith(str(ROOT / "src")) and f.endswith(".py") for f in origins.values())


def test_hot_modules_exist():
    for name in hot_modules():
        assert (ROOT / "src" / (name.replace(".", "/") + ".py")).is_file(), name
