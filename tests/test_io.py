import json
import os

import pytest

from hmaf.io import TMP_MARK, atomic_open, atomic_write_json, atomic_write_text, remove_temporaries


def test_atomic_write_text_and_json(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "héllo\n")
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo\n"
    atomic_write_json(tmp_path / "b.json", {"x": [1, 2], "é": "ü"})
    assert json.loads((tmp_path / "b.json").read_text(encoding="utf-8")) == {"x": [1, 2], "é": "ü"}
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "b.json"]


def test_an_error_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    path = tmp_path / "c.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_open(path) as f:
            f.write(b"half of the new")
            raise RuntimeError("killed mid-write")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["c.bin"]


def test_remove_temporaries_and_bad_mode(tmp_path):
    (tmp_path / f".x{TMP_MARK}123").write_bytes(b"left by a kill")
    (tmp_path / "keep.txt").write_text("k")
    remove_temporaries(tmp_path)
    assert os.listdir(tmp_path) == ["keep.txt"]
    with pytest.raises(ValueError, match="mode"):
        with atomic_open(tmp_path / "d", "a"):
            pass


def test_permissions_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "p.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "p.txt").stat().st_mode & 0o777 == 0o644
