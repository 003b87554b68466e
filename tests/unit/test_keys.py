"""Tests for pktmask.anon.keys: key-file parsing and random keys."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from pktmask.anon import keys
from pktmask.anon.keys import load_key, random_key
from pktmask.errors import KeyFileError, UsageError

KEY = bytes(range(0xA0, 0xC0))  # 32 bytes whose hex form mixes letters and digits
HEX = KEY.hex().encode("ascii")


def _write(tmp_path: Path, data: bytes, name: str = "key") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def _error(path: str) -> KeyFileError:
    with pytest.raises(KeyFileError) as info:
        load_key(path)
    return info.value


# -- accepted forms ----------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        HEX,
        HEX.upper(),
        HEX[:32] + HEX[32:].upper(),
        HEX + b"\n",
        HEX + b"\r\n",
        HEX.upper() + b"\r\n",
    ],
    ids=["lower", "upper", "mixed-case", "lf", "crlf", "upper-crlf"],
)
def test_hex_forms(tmp_path: Path, data: bytes) -> None:
    assert load_key(_write(tmp_path, data)) == KEY


@pytest.mark.parametrize(
    "raw",
    [KEY, bytes(32), b"\xff" * 32, b"0123456789abcdef0123456789abcde\n", b"\n" * 32],
    ids=["bytes", "zeros", "ones", "text-like", "newlines"],
)
def test_raw_32_bytes(tmp_path: Path, raw: bytes) -> None:
    # Exactly 32 bytes are always taken as raw key material, whatever they look like.
    assert load_key(_write(tmp_path, raw)) == raw


def test_accepts_pathlike(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_bytes(HEX + b"\n")
    assert load_key(path) == KEY


# -- rejected forms ----------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = str(tmp_path / "nope")
    err = _error(path)
    assert err.path == path
    assert "does not exist" in err.message


def test_directory(tmp_path: Path) -> None:
    err = _error(str(tmp_path))
    assert err.path == str(tmp_path)
    assert "directory" in err.message


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files regardless of permissions")
def test_unreadable(tmp_path: Path) -> None:
    path = _write(tmp_path, HEX)
    os.chmod(path, 0)
    try:
        err = _error(path)
    finally:
        os.chmod(path, 0o600)
    assert "permission denied" in err.message


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (
            PermissionError(errno.EACCES, "Permission denied"),
            "cannot read key file: permission denied",
        ),
        (OSError(errno.EIO, "Input/output error"), "cannot read key file: Input/output error"),
        (OSError("odd failure"), "cannot read key file: OSError"),
    ],
    ids=["eacces", "eio", "no-strerror"],
)
def test_open_failures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exc: OSError, expected: str
) -> None:
    # Root ignores file modes, so the failures are injected rather than provoked.
    def failing_open(*args: object, **kwargs: object) -> None:
        raise exc

    monkeypatch.setattr(keys, "open", failing_open, raising=False)
    path = _write(tmp_path, HEX)
    err = _error(path)
    assert (err.message, err.path) == (expected, path)


def test_empty(tmp_path: Path) -> None:
    err = _error(_write(tmp_path, b""))
    assert "empty" in err.message


@pytest.mark.parametrize(
    ("data", "found"),
    [
        (b"\x01" * 17, "found 17 bytes"),
        (b"\x01" * 31, "found 31 bytes"),
        (b"\x01" * 33, "found 33 bytes"),
        (KEY + b"\n", "found 33 bytes"),
        (HEX[:63], "found 63 bytes"),
        (b"\x01" * 1000, "found 1000 bytes"),
        (b"0x" + HEX, "found 66 bytes"),
        (b"\xef\xbb\xbf" + HEX, "found 67 bytes"),  # UTF-8 BOM
    ],
)
def test_wrong_length(tmp_path: Path, data: bytes, found: str) -> None:
    err = _error(_write(tmp_path, data))
    assert err.message == f"key file must hold 32 raw bytes or 64 hex characters ({found})"


@pytest.mark.parametrize(
    "data",
    [
        HEX[:63] + b"g",
        HEX[:62] + b"  ",
        b" " + HEX[:63],
        HEX[:32] + b" " + HEX[33:],
        HEX[:63] + b"\n",
        b"z" * 64,
        b"z" * 64 + b"\n",
        b"z" * 64 + b"\r\n",
    ],
    ids=["g", "spaces", "leading-space", "inner-space", "63hex-lf", "z64", "z64-lf", "z64-crlf"],
)
def test_64_chars_not_hex(tmp_path: Path, data: bytes) -> None:
    err = _error(_write(tmp_path, data))
    assert "not all are hex digits" in err.message


@pytest.mark.parametrize(
    "data",
    [
        HEX + b"\n\n",
        HEX + b"\r",
        HEX + b"\n\r",
        HEX + b" ",
        HEX + b" \n",
        HEX + b"0",
        HEX + b"\nxx",
        HEX + b"\r\n\n",
        HEX + HEX,
        HEX + b"\n" + b"#" * 5000,
    ],
    ids=[
        "two-lf",
        "cr",
        "lf-cr",
        "space",
        "space-lf",
        "extra-digit",
        "lf-junk",
        "crlf-lf",
        "twice",
        "long-tail",
    ],
)
def test_hex_with_trailing_junk(tmp_path: Path, data: bytes) -> None:
    err = _error(_write(tmp_path, data))
    assert "unexpected data" in err.message
    assert f"found {len(data)} bytes" in err.message


def test_is_a_usage_error(tmp_path: Path) -> None:
    err = _error(_write(tmp_path, b"short"))
    assert isinstance(err, UsageError)
    assert err.exit_code == 2


def test_message_is_one_line_and_names_file(tmp_path: Path) -> None:
    path = _write(tmp_path, b"\x01" * 17)
    text = str(_error(path))
    assert "\n" not in text
    assert text.startswith(path + ": ")
    assert "found 17 bytes" in text


@pytest.mark.parametrize(
    "data",
    [
        b"SECRETSECRET",
        b"SECRET" * 11,
        HEX[:60] + b"SECR",
        HEX + b"SECRET",
        b"deadbeef" * 7 + b"cafebabeSECRET",
        KEY[:20],
    ],
)
def test_message_never_leaks_content(tmp_path: Path, data: bytes) -> None:
    message = _error(_write(tmp_path, data)).message
    assert "SECR" not in message.upper()
    # No 8-byte window of the content, as text or as hex, shows up.
    text = data.decode("latin-1")
    for start in range(max(len(text) - 7, 1)):
        window = text[start : start + 8]
        assert window not in message
        assert window.encode("latin-1").hex() not in message


# -- random keys -------------------------------------------------------------


def test_random_key() -> None:
    keys = {random_key() for _ in range(16)}
    assert len(keys) == 16
    assert all(isinstance(k, bytes) and len(k) == 32 for k in keys)


def test_random_key_roundtrips_through_hex_file(tmp_path: Path) -> None:
    key = random_key()
    assert load_key(_write(tmp_path, key.hex().encode() + b"\n")) == key
    assert load_key(_write(tmp_path, key, name="raw")) == key
