"""``pktmask.core`` is the engine: it knows neither the configuration nor the stages.

Stages and options are assembled above it (``pktmask.runner``); the executor
knows stages only through ``core/pipeline/stage.py`` (docs/dev/ARCHITECTURE.md).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pktmask.core

CORE = Path(pktmask.core.__file__).parent
FORBIDDEN = ("pktmask.stages", "pktmask.config", "pktmask.runner", "pktmask.cli", "pktmask.render")


def _imports(path: Path) -> list[str]:
    """Every module a file imports, with absolute names (relative imports resolved)."""
    package = ".".join(path.relative_to(CORE.parent.parent).with_suffix("").parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            out += [base] + [f"{base}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__"):
            out.append("<dynamic import>")
    return out


def test_core_imports_neither_config_nor_stages():
    files = sorted(CORE.rglob("*.py"))
    assert len(files) > 10
    bad = {}
    for path in files:
        for name in _imports(path):
            if name == "<dynamic import>" or name.startswith(FORBIDDEN):
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
