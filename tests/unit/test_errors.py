"""The error tree's serialized form: an error crosses a process boundary and keeps its class."""

from __future__ import annotations

import json

import pytest

from pktmask import errors
from pktmask.errors import (
    EXIT_FAILURE,
    EXIT_USAGE,
    InternalError,
    PktmaskError,
    decode_error,
    encode_error,
)


def _tree() -> list[type[PktmaskError]]:
    return sorted(errors._classes().values(), key=lambda c: c.__name__)


def test_the_tree_is_known_by_name():
    names = {c.__name__ for c in _tree()}
    assert {"PktmaskError", "UsageError", "InputError", "UnsupportedLinkTypeError", "DiskFullError",
            "TempDirError", "InternalError"} <= names


@pytest.mark.parametrize("cls", _tree(), ids=lambda c: c.__name__)
@pytest.mark.parametrize("path", ["dir/in.pcap", None, "ünïcode \n name"])
def test_round_trip_keeps_class_message_path_and_exit_code(cls, path):
    exc = cls("cannot read: it \"broke\"", path)
    back = decode_error(encode_error(exc))
    assert type(back) is cls
    assert (back.message, back.path, str(back)) == (exc.message, exc.path, str(exc))
    assert back.exit_code == cls.exit_code in (EXIT_FAILURE, EXIT_USAGE)
    assert "exit_code" not in vars(back)  # the class says it; nothing is patched on


def test_the_form_is_one_small_json_line():
    form = encode_error(errors.InputError("x" * 10_000, "in.pcap"))
    assert b"\n" not in form and len(form) < errors.MAX_ENCODED_MESSAGE + 200
    assert json.loads(form)["class"] == "InputError"


def test_a_foreign_exception_becomes_an_internal_error_naming_its_type():
    back = decode_error(encode_error(KeyError("k"), "in.pcap"))
    assert type(back) is InternalError and back.exit_code == EXIT_FAILURE
    assert str(back) == "in.pcap: internal error: KeyError: 'k'"


@pytest.mark.parametrize("form", [b"", b"not json", b'{"class": "NoSuchError", "message": "m", "path": null}',
                                  b'{"class": 3, "message": "m", "path": null}', b"[1, 2]"])
def test_a_damaged_or_unknown_form_still_fails(form):
    back = decode_error(form)
    assert type(back) is PktmaskError and back.exit_code == EXIT_FAILURE
