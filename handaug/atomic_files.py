"""Files that appear whole or not at all, and file digests.

Every file handaug writes for later use (checkpoints, exports, translated images, manifests,
reports, sample grids, downloaded weights) is written under a temporary name in the target's
folder and renamed onto the target, so a killed process leaves either the old file, the new
one, or a hidden temporary (``.NAME.RANDOM.tmp`` / ``.part``), never a truncated file under the
real name.

Temporary files get the mode a plain ``open()`` would give the target (``0o666`` less the
umask), not the ``0o600`` of :func:`tempfile.mkstemp`, and a name that fits the file system's
name limit whatever the length of the target's name.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: Length of the random part of a temporary name, in hex digits.
TOKEN_HEX_DIGITS = 16
#: File name limit (bytes) assumed where the file system does not say (POSIX's NAME_MAX on Linux and macOS).
DEFAULT_NAME_MAX = 255


def _name_max(folder: Path) -> int:
    try:
        return min(DEFAULT_NAME_MAX, os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError):
        return DEFAULT_NAME_MAX


def temporary_name(name: str, suffix: str = ".tmp", name_max: int = DEFAULT_NAME_MAX) -> str:
    """A fresh hidden temporary name for the file ``name``: ``.<name>.<16 hex digits><suffix>``.

    When that would be longer than ``name_max`` bytes (file names of 230 bytes or more), ``name``
    is cut, at a character boundary, so that the result fits: the temporary stays recognisable
    by its leading dot, the start of the target's name and ``suffix``.
    """
    tail = f".{secrets.token_hex(TOKEN_HEX_DIGITS // 2)}{suffix}"
    budget = name_max - 1 - len(os.fsencode(tail))
    if budget < 1:
        raise ValueError(f"suffix {suffix!r} is too long for a temporary file name")
    part = name
    while len(os.fsencode(part)) > budget:
        part = part[:-1]
    return f".{part}{tail}"


def _create_exclusively(path: Path) -> None:
    """Create the empty file ``path`` (it must not exist) with mode ``0o666`` less the umask, as ``open()`` would."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    os.close(fd)


@contextmanager
def replaced_atomically(
    path: str | os.PathLike[str],
    suffix: str = ".tmp",
    *,
    before_create: Callable[[Path], None] | None = None,
) -> Iterator[str]:
    """Yield a temporary path beside ``path`` to write to; rename it onto ``path`` when the block ends.

    The parent folder is created. If the block raises, the temporary file is deleted and
    ``path`` is left as it was. The temporary name is :func:`temporary_name`'s, and the file is
    created empty, with the mode a plain ``open()`` would give it, before the block runs.
    ``before_create(temporary)`` is called just before the temporary file is created (for
    example to record its name in a journal, so that a later run can delete it if this process
    is killed).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    name_max = _name_max(path.parent)
    while True:
        tmp = path.parent / temporary_name(path.name, suffix, name_max)
        if os.path.lexists(tmp):
            continue  # 64 random bits: never in practice
        if before_create is not None:
            before_create(tmp)
        try:
            _create_exclusively(tmp)
        except FileExistsError:
            continue
        break
    try:
        yield str(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def write_bytes_atomically(
    path: str | os.PathLike[str],
    data: bytes,
    *,
    fsync: bool = False,
    suffix: str = ".tmp",
    before_create: Callable[[Path], None] | None = None,
) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename; ``fsync`` flushes it to disk first.

    ``suffix`` and ``before_create`` are :func:`replaced_atomically`'s. An ``OSError`` that names
    no file (``ENOSPC``) is raised naming ``path``.
    """
    try:
        with replaced_atomically(path, suffix, before_create=before_create) as tmp, open(tmp, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
    except OSError as err:
        raise with_filename(err, path) from err
    return Path(path)


def with_filename(err: OSError, path: str | os.PathLike[str]) -> OSError:
    """``err``, or a copy of it naming ``path`` when it names no file (a full disk does not say which file it was)."""
    if err.filename is not None or err.errno is None:
        return err
    return type(err)(err.errno, err.strerror or str(err), os.fspath(path))


def json_bytes(data: Any, **dumps_kwargs: Any) -> bytes:
    """``data`` as indented JSON (keys sorted unless ``sort_keys=False``) with a final newline, UTF-8."""
    dumps_kwargs.setdefault("indent", 2)
    dumps_kwargs.setdefault("sort_keys", True)
    return (json.dumps(data, **dumps_kwargs) + "\n").encode()


def write_json_atomically(path: str | os.PathLike[str], data: Any, **dumps_kwargs: Any) -> Path:
    """Write ``data`` as :func:`json_bytes` atomically."""
    return write_bytes_atomically(path, json_bytes(data, **dumps_kwargs))


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of the file at ``path`` as 64 hex digits, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
