"""``pktmask.core`` is the engine: it knows neither the configuration nor the stages.

Stages and options are assembled above it (``pktmask.runner``); the executor
knows stages only through ``core/pipeline/stage.py`` (docs/dev/ARCHITECTURE.md).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pktmask.core
from imports import DYNAMIC, module_imports

CORE = Path(pktmask.core.__file__).parent
FORBIDDEN = ("pktmask.stages", "pktmask.config", "pktmask.runner", "pktmask.cli", "pktmask.render")


def _imports(path: Path) -> list[str]:
    return module_imports(path, CORE.parent.parent)


def test_core_imports_neither_config_nor_stages():
    files = sorted(CORE.rglob("*.py"))
    assert len(files) > 10
    bad = {}
    for path in files:
        for name in _imports(path):
            if name == DYNAMIC or name.startswith(FORBIDDEN):
                bad.setdefault(str(path.relative_to(CORE)), []).append(name)
    assert bad == {}


def test_loading_the_whole_core_loads_no_stage_or_config():
    # Transitively too: import every core module in a fresh interpreter.
    names = sorted(".".join(p.relative_to(CORE.parent.parent).with_suffix("").parts) for p in CORE.rglob("*.py"))
    names = [n.removesuffix(".__init__") for n in names]
    code = ("import importlib, sys\n"
            f"for n in {names!r}: importlib.import_module(n)\n"
            "print('\\n'.join(sorted(m for m in sys.modules if m.startswith('pktmask'))))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = res.stdout.split()
    assert "pktmask.core.pipeline.executor" in loaded
    assert [m for m in loaded if m.startswith(FORBIDDEN)] == []
