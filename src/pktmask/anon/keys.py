"""Key material for anonymization: loading a key file or drawing a random key.

A key file holds exactly 32 raw bytes, or 64 hexadecimal characters optionally
followed by one newline. Error messages name the problem but never quote the
file's content, which may be (part of) a secret.
"""

from __future__ import annotations

import os
import stat

from pktmask.errors import KeyFileError

KEY_SIZE = 32
_HEX_SIZE = 2 * KEY_SIZE
_NEWLINES = (b"", b"\n", b"\r\n")
# The longest accepted file is 64 hex digits plus CRLF; one byte more than
# that is enough to tell a file is too long without reading all of it.
_MAX_ACCEPTED = _HEX_SIZE + 2
_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")
_EXPECTED = f"key file must hold {KEY_SIZE} raw bytes or {_HEX_SIZE} hex characters"


def load_key(path: str | os.PathLike[str]) -> bytes:
    """Read a 32-byte key from a key file.

    Returns the 32 key bytes; raises KeyFileError (naming the file) when the
    file cannot be read or is not 32 raw bytes / 64 hex characters with at
    most one trailing newline.
    """
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            info = os.fstat(f.fileno())
            data = f.read(_MAX_ACCEPTED + 1)
    except FileNotFoundError as exc:
        raise KeyFileError("key file does not exist", name) from exc
    except IsADirectoryError as exc:
        raise KeyFileError("key file is a directory", name) from exc
    except PermissionError as exc:
        raise KeyFileError("cannot read key file: permission denied", name) from exc
    except OSError as exc:
        raise KeyFileError(
            f"cannot read key file: {exc.strerror or type(exc).__name__}", name
        ) from exc

    size = len(data)
    if size > _MAX_ACCEPTED:
        found = (
            f"{info.st_size} bytes"
            if stat.S_ISREG(info.st_mode)
            else f"more than {_MAX_ACCEPTED} bytes"
        )
    else:
        found = f"{size} bytes"

    if size == 0:
        raise KeyFileError(f"key file is empty ({_EXPECTED})", name)
    if size == KEY_SIZE:
        return data
    if size < _HEX_SIZE:
        raise KeyFileError(f"{_EXPECTED} (found {found})", name)

    body, tail = data[:_HEX_SIZE], data[_HEX_SIZE:]
    # Checked digit by digit because bytes.fromhex() would also accept spaces.
    body_is_hex = all(c in _HEX_DIGITS for c in body)
    if tail in _NEWLINES:
        if not body_is_hex:
            raise KeyFileError(
                f"key file has {_HEX_SIZE} characters but not all are hex digits", name
            )
        return bytes.fromhex(body.decode("ascii"))
    if body_is_hex:
        raise KeyFileError(
            f"key file has {_HEX_SIZE} hex characters followed by unexpected data "
            f"(only one trailing newline is allowed; found {found})",
            name,
        )
    raise KeyFileError(f"{_EXPECTED} (found {found})", name)


def random_key() -> bytes:
    """Draw a fresh key from the operating system's CSPRNG.

    Returns 32 random bytes.
    """
    return os.urandom(KEY_SIZE)
