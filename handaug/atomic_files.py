"""Files that appear whole or not at all, and file digests.

Every file handaug writes for later use (checkpoints, exports, translated images, manifests,
reports, sample grids, downloaded weights) is written under a temporary name in the target's
folder and renamed onto the target, so a killed process leaves either the old file, the new
one, or a hidden temporary (``.NAME.*.tmp`` / ``.part``) that the next run can ignore or delete,
never a truncated file under the real name.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def replaced_atomically(path: str | os.PathLike[str], suffix: str = ".tmp") -> Iterator[str]:
    """Yield a temporary path beside ``path`` to write to; rename it onto ``path`` when the block ends.

    The parent folder is created. If the block raises, the temporary file is deleted and
    ``path`` is left as it was. The temporary name is ``.<name>.<random><suffix>``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes_atomically(path: str | os.PathLike[str], data: bytes, *, fsync: bool = False, suffix: str = ".tmp") -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename; ``fsync`` flushes it to disk first."""
    with replaced_atomically(path, suffix) as tmp, open(tmp, "wb") as f:
        f.write(data)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def write_json_atomically(path: str | os.PathLike[str], data: Any, **dumps_kwargs: Any) -> Path:
    """Write ``data`` as indented JSON (keys sorted unless ``sort_keys=False``) atomically."""
    dumps_kwargs.setdefault("indent", 2)
    dumps_kwargs.setdefault("sort_keys", True)
    return write_bytes_atomically(path, (json.dumps(data, **dumps_kwargs) + "\n").encode())


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of the file at ``path`` as 64 hex digits, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
