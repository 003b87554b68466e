"""URL-valued response headers (Location, Content-Location) lose their query string and
``user:pass@`` like a request target (docs/policy.md): redirects carry OAuth codes and session
tokens. Found by planting a header list without Location (issue 17): no sanitizer test had one.
"""

from __future__ import annotations

import pytest

from pktmask.proto.http_lines import header_line_keep


def kept(line: bytes) -> bytes:
    parsed = header_line_keep(line)
    assert parsed is not None
    out = bytearray(len(line))
    for a, b in parsed[2]:
        out[a:b] = line[a:b]
    return bytes(out)


@pytest.mark.parametrize("name", [b"Location", b"LOCATION", b"Content-Location"])
def test_url_header_query_and_userinfo_zeroed(name):
    line = name + b": https://user:SECRET-PW@login.example/cb?code=SECRET-CODE&state=x\r\n"
    out = kept(line)
    assert b"SECRET" not in out
    assert out.startswith(name + b": https://") and b"@login.example/cb?" in out and out.endswith(b"\r\n")


def test_url_header_without_query_kept_whole():
    line = b"Location: /index.html\r\n"
    assert kept(line) == line
