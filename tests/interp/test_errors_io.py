"""interp.errors messages and interp._io atomic writes."""

from __future__ import annotations

import pytest

from interp import _io
from interp.errors import InterpError, UnknownNameError


def test_unknown_name_message_names_value_matches_and_valid():
    err = UnknownNameError("zoo model", "cnn-digit", ["cnn-digits", "mlp-cancer"])
    msg = str(err)
    assert "'cnn-digit'" in msg and "did you mean 'cnn-digits'" in msg
    assert "valid: cnn-digits, mlp-cancer" in msg
    assert isinstance(err, InterpError) and isinstance(err, ValueError)
    many = UnknownNameError("layer", "zz", [f"l{i}" for i in range(50)])
    assert "50 valid names" in str(many)


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    _io.write_text(target, "one")
    _io.write_text(target, "two")
    assert target.read_text() == "two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.txt"]


def test_failed_write_keeps_old_file(tmp_path):
    target = tmp_path / "a.txt"
    _io.write_text(target, "old")

    def broken(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        _io.write_with(target, broken)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_folder_that_is_a_file_is_an_interp_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InterpError, match="cannot write"):
        _io.write_text(tmp_path / "file" / "x.txt", "x")
