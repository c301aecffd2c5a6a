"""Opening the files of a dataset: regular files only, through a descriptor, never through an unplanned link.

Every reader of handaug (the ``folder`` reader, the dataset readers, ``handaug-translate``'s
copies) opens dataset files here rather than by handing a path to a library:

- a path is opened once with :func:`os.open`; whatever the path's bytes (a file name that is
  not valid UTF-8 arrives as a ``str`` with lone surrogates), the library then works on the
  descriptor or on bytes, never on the name (``cv2.imread`` crashes the process on such names);
- only a regular file is read: a FIFO, a device or a folder is refused without blocking;
- sizes are bounded: a read asks for at most ``max_bytes`` and refuses a larger file.

Under :func:`only_planned_files` (``handaug-translate`` while it reads one image) every file
opened in this thread must still be what was planned: a file planned as a regular file is
opened with ``O_NOFOLLOW`` (a link put in its place is refused), a planned file must have the
device and inode it had when planned, and every file opened must lie inside the planned root
(checked on the opened descriptor where the system tells, as Linux's ``/proc/self/fd`` does).
A file refused this way raises :class:`FileChanged`, an :class:`OSError` that the readers
treat like any other unreadable file (skipped, counted, listed).
"""

from __future__ import annotations

import contextvars
import errno
import io
import json
import os
import re
import stat
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

#: Largest annotation file (JSON, text) read by default, in bytes.
MAX_ANNOTATION_BYTES = 1 << 30
#: Deepest nesting of arrays and objects accepted in an annotation JSON (a (N, 21, 3) array nests 3 deep).
MAX_JSON_DEPTH = 32


class FileChanged(OSError):
    """A source file that is no longer the file that was planned (a link put in its place, another file); not read."""


@dataclass(frozen=True)
class FileIdentity:
    """What a file was when a run was planned: its device and inode, and whether its path was a symbolic link (to a file inside the root)."""

    device: int
    inode: int
    via_link: bool = False


def identity_of(path: str | os.PathLike[str]) -> FileIdentity:
    """The :class:`FileIdentity` of ``path`` now (links followed). Raises ``OSError`` as :func:`os.stat`."""
    info = os.stat(path)
    return FileIdentity(info.st_dev, info.st_ino, os.path.islink(path))


@dataclass(frozen=True)
class _Plan:
    roots: tuple[str, ...]
    files: Mapping[str, FileIdentity]


_PLAN: contextvars.ContextVar[_Plan | None] = contextvars.ContextVar("handaug_planned_files", default=None)


@contextmanager
def only_planned_files(
    roots: tuple[str | os.PathLike[str], ...], files: Mapping[str, FileIdentity],
) -> Iterator[None]:
    """While the block runs, files opened here (this thread) must be the planned ones, inside ``roots``.

    Args:
        roots: the dataset folder, as given and resolved (absolute paths).
        files: path relative to the root (POSIX form) → the file's identity when planned.
    """
    absolute = tuple(os.path.abspath(root) for root in roots)
    token = _PLAN.set(_Plan(absolute, files))
    try:
        yield
    finally:
        _PLAN.reset(token)


def _relative(path: str, roots: tuple[str, ...]) -> str | None:
    for root in roots:
        if path == root:
            return ""
        if path.startswith(root.rstrip(os.sep) + os.sep):
            return Path(path).relative_to(root).as_posix()
    return None


def _opened_path(fd: int) -> str | None:
    """Where the descriptor's file really is (links resolved), where the system says; ``None`` otherwise."""
    if sys.platform.startswith("linux"):
        try:
            return os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return None
    get_path = getattr(__import__("fcntl"), "F_GETPATH", None)  # macOS
    if get_path is not None:
        try:
            raw = __import__("fcntl").fcntl(fd, get_path, bytes(1024))
            return os.fsdecode(raw.split(b"\0", 1)[0])
        except OSError:
            return None
    return None


def open_source_fd(path: str | os.PathLike[str], expected: FileIdentity | None = None) -> int:
    """Open the regular file ``path`` for reading; the caller closes the descriptor.

    ``expected``: the file must still have this identity (a file planned as not a link is opened
    with ``O_NOFOLLOW``). Under :func:`only_planned_files`, the plan's entry for ``path`` is the
    expected identity, and the opened file must lie inside the plan's roots.

    Raises:
        FileChanged: ``path`` is now a symbolic link, another file, or outside the planned root.
        OSError: ``path`` cannot be opened or is not a regular file (the error names it).
    """
    name = os.fspath(path)
    plan = _PLAN.get()
    if plan is not None and expected is None:
        relative = _relative(os.path.abspath(name), plan.roots)
        expected = plan.files.get(relative) if relative is not None else None
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
    if expected is not None and not expected.via_link:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(name, flags)
    except OSError as err:
        if err.errno == errno.ELOOP and expected is not None:
            raise FileChanged(errno.ELOOP, "replaced by a symbolic link after the run was planned: not followed", name) from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", name)
        if expected is not None and (info.st_dev, info.st_ino) != (expected.device, expected.inode):
            raise FileChanged(errno.ESTALE, "replaced by another file after the run was planned: not read", name)
        if plan is not None:
            where = _opened_path(fd)
            if where is not None and _relative(where, plan.roots) is None:
                raise FileChanged(errno.EXDEV, "lies outside the source folder (through a symbolic link): not read", name)
        if flags & getattr(os, "O_NONBLOCK", 0):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_source_file(path: str | os.PathLike[str], expected: FileIdentity | None = None) -> BinaryIO:
    """:func:`open_source_fd` as a binary file object (closed with the object)."""
    return open(open_source_fd(path, expected), "rb", closefd=True)  # noqa: SIM115 - the caller closes it


def read_bytes_from(file: BinaryIO, name: str | os.PathLike[str], max_bytes: int, what: str = "file") -> bytes:
    """All bytes of the open regular ``file`` (from its start), refusing one larger than ``max_bytes``.

    Raises:
        OSError: the file is larger than ``max_bytes`` (``EFBIG``; the message names it and both sizes).
    """
    size = os.fstat(file.fileno()).st_size
    if size > max_bytes:
        raise OSError(errno.EFBIG, f"{what} of {size} bytes, more than the {max_bytes} bytes allowed", os.fspath(name))
    file.seek(0)
    data = file.read(max_bytes + 1)
    if len(data) > max_bytes:  # grew while being read
        raise OSError(errno.EFBIG, f"{what} of more than the {max_bytes} bytes allowed", os.fspath(name))
    return data


def read_source_bytes(path: str | os.PathLike[str], max_bytes: int = MAX_ANNOTATION_BYTES, expected: FileIdentity | None = None) -> bytes:
    """Every byte of the regular file ``path``, opened as :func:`open_source_fd` does, at most ``max_bytes``."""
    with open_source_file(path, expected) as f:
        return read_bytes_from(f, path, max_bytes)


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


def json_depth_error(text: str | bytes, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why ``text`` nests arrays/objects deeper than ``max_depth`` (``None`` if it does not), without parsing it."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    codes = np.frombuffer(_JSON_STRING.sub(b'""', data), dtype=np.uint8)
    steps = np.isin(codes, (0x5B, 0x7B)).astype(np.int64) - np.isin(codes, (0x5D, 0x7D))
    if steps.size and int(np.cumsum(steps).max()) > max_depth:
        return f"nests arrays/objects more than {max_depth} deep"
    return None


class _NonFinite(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise _NonFinite(f"holds {name}, which is not a finite number")


def parse_json(data: bytes | str, source: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """JSON ``data`` parsed, refusing nesting deeper than ``max_depth`` and ``NaN``/``Infinity``.

    A number too large for a float (``1e999``) stays ``inf``: check arrays with ``np.isfinite``.

    Raises:
        ValueError: not JSON, too deeply nested or holding ``NaN``/``Infinity``; the message names ``source``.
    """
    problem = json_depth_error(data, max_depth)
    if problem:
        raise ValueError(f"{source} {problem}")
    try:
        return json.loads(data, parse_constant=_no_constant)
    except _NonFinite as err:
        raise ValueError(f"{source} {err}") from None
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise ValueError(f"{source} is not valid JSON: {err}") from None


def read_source_json(path: str | os.PathLike[str], max_bytes: int = MAX_ANNOTATION_BYTES, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """:func:`parse_json` of the file ``path``, read as :func:`read_source_bytes`.

    Raises:
        ValueError: as :func:`parse_json`, naming the file.
        OSError: the file cannot be read (see :func:`open_source_fd`) or is larger than ``max_bytes``.
    """
    return parse_json(read_source_bytes(path, max_bytes), f"annotation file {os.fspath(path)!r}", max_depth)


def read_source_text(path: str | os.PathLike[str], max_bytes: int = MAX_ANNOTATION_BYTES) -> str:
    """The text (UTF-8, undecodable bytes replaced) of the file ``path``, read as :func:`read_source_bytes`."""
    return read_source_bytes(path, max_bytes).decode("utf-8", errors="replace")


def load_source_npy(path: str | os.PathLike[str], max_bytes: int = MAX_ANNOTATION_BYTES) -> Any:
    """``np.load`` of the ``.npy`` file ``path`` (no pickles), read as :func:`read_source_bytes`."""
    return np.load(io.BytesIO(read_source_bytes(path, max_bytes)), allow_pickle=False)
