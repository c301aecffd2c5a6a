"""Atomic writes leave the old file or the new one, never a part; downloads check their hash."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from handaug.atomic_files import file_sha256, replaced_atomically, temporary_name, write_bytes_atomically, write_json_atomically
from handaug.pretrained import PretrainedFile, _download


def test_write_bytes_replaces_and_creates_folders(tmp_path):
    path = tmp_path / "a" / "b" / "file.bin"
    write_bytes_atomically(path, b"old")
    write_bytes_atomically(path, b"new", fsync=True)
    assert path.read_bytes() == b"new"
    assert [p.name for p in path.parent.iterdir()] == ["file.bin"]


def test_an_error_inside_the_block_keeps_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "config.json"
    write_json_atomically(path, {"a": 1})
    with pytest.raises(RuntimeError), replaced_atomically(path) as tmp:
        with open(tmp, "w") as f:
            f.write('{"a": 2, "trunc')
        raise RuntimeError("killed mid-write")
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_json_is_sorted_and_indented(tmp_path):
    path = write_json_atomically(tmp_path / "m.json", {"b": 1, "a": [1, 2]})
    assert path.read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'


def test_file_sha256_matches_hashlib(tmp_path):
    data = bytes(range(256)) * 5000  # larger than one 1 MiB read
    path = tmp_path / "w.bin"
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()


def published(tmp_path, data: bytes, prefix: str) -> PretrainedFile:
    source = tmp_path / "server" / f"net-{prefix}.pth"
    source.parent.mkdir()
    source.write_bytes(data)
    return PretrainedFile(filename=source.name, url=source.as_uri(), description="test weights")


def test_download_with_the_right_hash_lands_whole(tmp_path):
    data = b"weights" * 1000
    spec = published(tmp_path, data, hashlib.sha256(data).hexdigest()[:8])
    destination = tmp_path / "cache" / spec.filename
    _download(spec, destination)
    assert destination.read_bytes() == data
    assert [p.name for p in destination.parent.iterdir()] == [spec.filename]


def test_download_with_a_wrong_hash_is_refused_and_leaves_nothing(tmp_path):
    spec = published(tmp_path, b"tampered", "0123abcd")
    destination = tmp_path / "cache" / spec.filename
    with pytest.raises(ValueError, match=r"net-0123abcd\.pth has SHA-256 .*expected 0123abcd"):
        _download(spec, destination)
    assert list(destination.parent.iterdir()) == []


@pytest.mark.parametrize("length", [241, 248, 255])
def test_any_legal_file_name_can_be_written(tmp_path, length):
    name = "x" * (length - 4) + ".png"  # temp name = "." + name + random + suffix: longer than NAME_MAX
    path = write_bytes_atomically(tmp_path / name, b"data", suffix=".part")
    assert path.read_bytes() == b"data" and [p.name for p in tmp_path.iterdir()] == [name]
    wide = "é" * 126 + ".a"  # 254 bytes of UTF-8, with 2-byte characters
    write_json_atomically(tmp_path / wide, {"a": 1})
    assert json.loads((tmp_path / wide).read_text()) == {"a": 1}


def test_temporary_names_are_cut_to_fit_and_stay_recognisable():
    name = "y" * 255
    temp = temporary_name(name, ".handaug-part")
    assert len(os.fsencode(temp)) <= 255 and temp.startswith(".yyyy") and temp.endswith(".handaug-part")
    assert temporary_name("a.png") != temporary_name("a.png")
    cut = temporary_name("é" * 127, ".tmp")
    assert len(os.fsencode(cut)) <= 255 and cut.encode().decode() == cut  # never cut inside a character


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_written_files_get_the_mode_open_would_give(tmp_path, umask):
    previous = os.umask(umask)
    try:
        written = write_bytes_atomically(tmp_path / "a.bin", b"x")
        with replaced_atomically(tmp_path / "b.bin") as tmp:
            Path(tmp).write_bytes(b"y")
        with open(tmp_path / "plain.bin", "wb"):
            pass
    finally:
        os.umask(previous)
    expected = 0o666 & ~umask
    assert (tmp_path / "plain.bin").stat().st_mode & 0o777 == expected
    assert written.stat().st_mode & 0o777 == expected
    assert (tmp_path / "b.bin").stat().st_mode & 0o777 == expected


def test_before_create_sees_the_temporary_name_before_the_file_exists(tmp_path):
    seen = []

    def note(temp):
        seen.append((temp, temp.exists()))

    write_bytes_atomically(tmp_path / "out.txt", b"z", suffix=".part", before_create=note)
    [(temp, existed)] = seen
    assert temp.parent == tmp_path and temp.name.startswith(".out.txt.") and temp.name.endswith(".part")
    assert not existed and not temp.exists() and (tmp_path / "out.txt").read_bytes() == b"z"


def test_an_error_without_a_file_name_is_raised_naming_the_target(tmp_path, monkeypatch):
    import errno

    import handaug.atomic_files as af

    class Full:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(af, "open", Full, raising=False)
    with pytest.raises(OSError, match="No space left on device") as caught:
        write_bytes_atomically(tmp_path / "full.bin", b"data")
    assert caught.value.filename == str(tmp_path / "full.bin") and caught.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []
