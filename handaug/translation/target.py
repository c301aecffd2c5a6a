"""The target folder (DST) of ``handaug-translate``, opened once and never left through a link.

Everything handaug-translate reads, writes or deletes in DST (its state, the translated images,
the copies, the manifest) is reached from one descriptor of DST, opened when the run starts,
one folder at a time with ``O_NOFOLLOW``: a folder of DST that is (or becomes, while the run
goes on) a symbolic link, and a file of handaug's own state that is a link, are never followed.
A write or a deletion that would pass through one fails with :class:`LinkInTarget`, naming it.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from handaug.atomic_files import DEFAULT_NAME_MAX, temporary_name

_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _named(err: OSError, path: str | os.PathLike[str]) -> OSError:
    """``err`` naming the absolute ``path`` (an error of a descriptor-relative call names only the last part)."""
    if err.errno is None:
        return err
    return type(err)(err.errno, err.strerror or str(err), os.fspath(path))


class LinkInTarget(OSError):
    """A folder or file of DST that handaug would have to go through is a symbolic link (or not a folder)."""


class TargetFolder:
    """DST, opened once (``O_DIRECTORY | O_NOFOLLOW``); paths are relative to it, in POSIX form.

    Args:
        root: the target folder, absolute and resolved (it must exist).
        identity: ``(st_dev, st_ino)`` the folder must have (another process of the run opening
            the folder the launching process prepared).

    Raises:
        LinkInTarget: ``root`` is a symbolic link, not a folder, or not the expected folder.
    """

    def __init__(self, root: str | os.PathLike[str], identity: tuple[int, int] | None = None) -> None:
        self.root = Path(root)
        try:
            self.fd = os.open(self.root, _DIRECTORY_FLAGS)
        except OSError as err:
            if err.errno in (errno.ELOOP, errno.ENOTDIR):
                raise LinkInTarget(err.errno, "is a symbolic link or not a folder: not used as the target", str(self.root)) from None
            raise
        info = os.fstat(self.fd)
        self.identity = (info.st_dev, info.st_ino)
        if identity is not None and tuple(identity) != self.identity:
            os.close(self.fd)
            raise LinkInTarget(errno.ESTALE, "was replaced by another folder while the run was starting", str(self.root))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def path(self, relative: str | PurePosixPath) -> Path:
        """The absolute path of ``relative`` (for messages and the journal)."""
        return self.root / PurePosixPath(relative)

    @contextmanager
    def folder(self, relative: str | PurePosixPath, create: bool = False) -> Iterator[int]:
        """A descriptor of the folder ``relative`` (``""``: DST itself), reached without following links.

        ``create``: make missing folders (mode ``0o777`` less the umask).

        Raises:
            LinkInTarget: one of the folders is a symbolic link or not a folder.
            FileNotFoundError: one is missing and ``create`` is false.
        """
        parts = [p for p in PurePosixPath(relative).parts if p != "."]
        if any(p in ("..", "/") for p in parts):
            raise LinkInTarget(errno.EXDEV, "leaves the target folder: not used", str(self.path(relative)))
        opened: list[int] = []
        current = self.fd
        try:
            for i, part in enumerate(parts):
                try:
                    current = os.open(part, _DIRECTORY_FLAGS, dir_fd=current)
                except FileNotFoundError:
                    if not create:
                        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(self.path("/".join(parts[: i + 1])))) from None
                    try:
                        os.mkdir(part, 0o777, dir_fd=current)
                    except FileExistsError:
                        pass
                    except OSError as err:
                        raise _named(err, self.path("/".join(parts[: i + 1]))) from None
                    current = self._open_existing_folder(current, part, parts[: i + 1])
                except OSError as err:
                    if err.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise _named(err, self.path("/".join(parts[: i + 1]))) from None
                    current = self._open_existing_folder(current, part, parts[: i + 1])
                opened.append(current)
            yield current
        finally:
            for fd in opened:
                os.close(fd)

    def _open_existing_folder(self, parent: int, part: str, parts: list[str]) -> int:
        where = str(self.path("/".join(parts)))
        try:
            return os.open(part, _DIRECTORY_FLAGS, dir_fd=parent)
        except OSError as err:
            if err.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise _named(err, where) from None
        try:
            is_link = stat.S_ISLNK(os.lstat(part, dir_fd=parent).st_mode)
        except OSError:
            is_link = False
        raise LinkInTarget(
            errno.ELOOP if is_link else errno.ENOTDIR,
            "is a symbolic link: handaug does not write or delete through it" if is_link else "is not a folder",
            where,
        )

    def write_atomically(
        self,
        relative: str | PurePosixPath,
        write: Callable[[BinaryIO], None],
        suffix: str,
        before_create: Callable[[Path], None] | None = None,
        times_ns: tuple[int, int] | None = None,
    ) -> None:
        """Create ``relative`` whole or not at all: ``write`` fills a new temporary file beside it, which is renamed onto it.

        Folders are created (never through a link); the temporary name is
        :func:`~handaug.atomic_files.temporary_name`'s, passed (as an absolute path) to
        ``before_create`` before the file is created; ``times_ns`` sets its access and
        modification times. The file gets mode ``0o666`` less the umask.

        Raises:
            LinkInTarget: a folder on the way is a symbolic link or not a folder.
            OSError: the file cannot be written (the error names it).
        """
        relative = PurePosixPath(relative)
        with self.folder(relative.parent, create=True) as parent:
            try:
                name_max = min(DEFAULT_NAME_MAX, os.fpathconf(parent, "PC_NAME_MAX"))
            except (OSError, ValueError):
                name_max = DEFAULT_NAME_MAX
            while True:
                temp = temporary_name(relative.name, suffix, name_max)
                if before_create is not None:
                    before_create(self.path(relative.parent / temp))
                try:
                    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666, dir_fd=parent)
                except FileExistsError:
                    continue  # 64 random bits: never in practice
                except OSError as err:
                    raise _named(err, self.path(relative)) from None
                break
            try:
                with open(fd, "wb", closefd=True) as file:
                    write(file)
                    if times_ns is not None:
                        file.flush()  # the last write would change the modification time again
                        os.utime(file.fileno(), ns=times_ns)
                os.replace(temp, relative.name, src_dir_fd=parent, dst_dir_fd=parent)
            except BaseException as err:
                try:
                    os.unlink(temp, dir_fd=parent)
                except OSError:
                    pass
                if isinstance(err, OSError):
                    raise _named(err, self.path(relative)) from err
                raise

    def unlink(self, relative: str | PurePosixPath) -> bool:
        """Delete the file (or link) ``relative`` if it exists and is not a folder, reached without following links.

        Returns whether it was deleted: ``False`` when it is missing, a folder, or when a folder on
        the way is a symbolic link or not a folder (then nothing is deleted, inside DST or elsewhere).
        """
        relative = PurePosixPath(relative)
        try:
            with self.folder(relative.parent) as parent:
                if stat.S_ISDIR(os.lstat(relative.name, dir_fd=parent).st_mode):
                    return False
                os.unlink(relative.name, dir_fd=parent)
                return True
        except (FileNotFoundError, LinkInTarget):
            return False

    def lexists(self, relative: str | PurePosixPath) -> bool:
        """Whether ``relative`` exists (a link counts, not followed), reached without following links."""
        relative = PurePosixPath(relative)
        try:
            with self.folder(relative.parent) as parent:
                os.lstat(relative.name, dir_fd=parent)
                return True
        except (FileNotFoundError, LinkInTarget):
            return False

    def open_file(self, relative: str | PurePosixPath, flags: int, create_folders: bool = False) -> int:
        """Open the regular file ``relative`` with ``flags`` plus ``O_NOFOLLOW``; the caller closes it.

        Raises:
            LinkInTarget: the file or a folder on the way is a symbolic link, or the file is not a regular file.
            OSError: it cannot be opened (the error names it).
        """
        relative = PurePosixPath(relative)
        where = str(self.path(relative))
        with self.folder(relative.parent, create=create_folders) as parent:
            try:
                fd = os.open(relative.name, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o666, dir_fd=parent)
            except OSError as err:
                if err.errno == errno.ELOOP:
                    raise LinkInTarget(err.errno, "is a symbolic link: handaug does not follow links in DST", where) from None
                raise _named(err, where) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise LinkInTarget(errno.EINVAL, "is not a regular file: handaug does not use it", where)
        os.set_blocking(fd, True)
        return fd

    def read_bytes(self, relative: str | PurePosixPath, max_bytes: int) -> bytes | None:
        """The bytes of the regular file ``relative``; ``None`` if it is missing, a link, not a regular file or larger than ``max_bytes``."""
        try:
            fd = self.open_file(relative, os.O_RDONLY)
        except (FileNotFoundError, LinkInTarget):
            return None
        with open(fd, "rb", closefd=True) as file:
            if os.fstat(fd).st_size > max_bytes:
                return None
            data = file.read(max_bytes + 1)
        return data if len(data) <= max_bytes else None

    def listdir(self, relative: str | PurePosixPath) -> list[str]:
        """The names in the folder ``relative`` (empty if it is missing); :class:`LinkInTarget` if it is a link."""
        try:
            with self.folder(relative) as fd:
                return os.listdir(fd)
        except FileNotFoundError:
            return []
