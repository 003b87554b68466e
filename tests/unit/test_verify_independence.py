"""The leak audit must not share the sanitizer's blind spots: it imports none of its code.

Only the capture readers, the error tree, the scratch manager and Crypto-PAn's constants
module may be used from outside ``pktmask.verify`` (docs/dev/ARCHITECTURE.md).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pktmask.verify
from imports import DYNAMIC, module_imports

VERIFY = Path(pktmask.verify.__file__).parent
ALLOWED = ("pktmask.verify", "pktmask.capture", "pktmask.errors", "pktmask.core.temp_file_manager",
           "pktmask.anon.cryptopan")
SANITIZER = ("pktmask.proto.tls_handshake", "pktmask.proto.x509", "pktmask.anon.rewriter", "pktmask.anon.addresses", "pktmask.anon.names", "pktmask.proto.dissect",
             "pktmask.proto.layout", "pktmask.proto.tls", "pktmask.proto.http", "pktmask.proto.http_lines",
             "pktmask.proto.sniff", "pktmask.stages", "pktmask.mask", "pktmask.core.pipeline")


def _imports(path: Path) -> list[str]:
    return module_imports(path, VERIFY.parent.parent)


def test_verify_imports_only_allowed_pktmask_modules():
    files = sorted(VERIFY.glob("*.py"))
    assert len(files) > 5
    bad = {}
    for path in files:
        for name in _imports(path):
            if name == DYNAMIC or (name.startswith("pktmask") and not name.startswith(ALLOWED)):
                bad.setdefault(path.name, []).append(name)
    assert bad == {}


def test_running_verify_loads_no_sanitizer_module(tmp_path):
    # Transitively too: run an audit in a fresh interpreter and look at what got imported.
    code = (
        "import sys\n"
        "from captures import mixed_frames, write_pcap\n"
        "from pktmask.verify import verify\n"
        f"p = write_pcap({str(tmp_path / 'a.pcap')!r}, mixed_frames())\n"
        "assert verify(p, p, None)['clean'] is False\n"
        "print('\\n'.join(sorted(m for m in sys.modules if m.startswith('pktmask'))))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).parents[1])
    assert res.returncode == 0, res.stderr
    loaded = res.stdout.split()
    assert "pktmask.verify.fields" in loaded
    assert [m for m in loaded if m.startswith(SANITIZER)] == []
