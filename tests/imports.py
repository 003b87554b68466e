"""The modules a source file imports, read from its syntax tree: for the layering tests
(``pktmask.core`` knows no stage, ``pktmask.verify`` no sanitizer code)."""

from __future__ import annotations

import ast
from pathlib import Path

DYNAMIC = "<dynamic import>"


def module_imports(path: Path, root: Path) -> list[str]:
    """Every module ``path`` imports, with absolute names: relative imports are resolved in its
    package, named from ``root`` (the directory holding the top package). A call of
    ``import_module`` or ``__import__`` is listed as DYNAMIC."""
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
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
            out.append(DYNAMIC)
    return out
