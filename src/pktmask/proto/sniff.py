"""Guess the protocol of a TCP stream direction from its first payload bytes."""

from __future__ import annotations

from typing import Final

from pktmask.proto.http_lines import looks_like_request, looks_like_response
from pktmask.proto.tls import plausible_start

TLS: Final = "tls"
HTTP_REQUEST: Final = "http-request"
HTTP_RESPONSE: Final = "http-response"


def sniff(data: bytes | memoryview) -> str | None:
    """Classify the first payload of a stream direction.

    Returns "tls" if it starts with a valid TLS record header (and, when the
    record ends inside ``data``, is followed by another plausible header),
    "http-request" / "http-response" if it starts like an HTTP/1.x request
    line (known method) or status line (and the whole line is valid when its
    LF is present), else None.
    """
    if plausible_start(data):
        return TLS
    if looks_like_request(data):
        return HTTP_REQUEST
    if looks_like_response(data):
        return HTTP_RESPONSE
    return None
