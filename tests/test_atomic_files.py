"""Atomic writes leave the old file or the new one, never a part; downloads check their hash."""

from __future__ import annotations

import hashlib
import json

import pytest

from handaug.atomic_files import file_sha256, replaced_atomically, write_bytes_atomically, write_json_atomically
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
