"""URL-valued response headers (Location, Content-Location) are not on the header-value allowlist
(docs/policy.md): redirects carry hosts, OAuth codes and session tokens, so the whole value is
zeroed, name and line end kept. Found by planting a header list without Location (issue 17).
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
def test_url_header_value_zeroed(name):
    line = name + b": https://user:SECRET-PW@login.example/cb?code=SECRET-CODE&state=x\r\n"
    out = kept(line)
    assert b"SECRET" not in out and b"login.example" not in out
    assert out.startswith(name + b": ") and out.endswith(b"\r\n")
    assert not any(out[len(name) + 2 : -2])


def test_url_header_without_query_zeroed_too():
    line = b"Location: /index.html\r\n"
    assert not any(kept(line)[10:-2])
