"""One ``handaug-train`` run per folder: an exclusive lock on ``<default_root_dir>/.handaug-train.lock``.

Two runs in one ``--trainer.default_root_dir`` (a job restarted while the first still runs, say)
would overwrite each other's ``checkpoints/last.ckpt``, ``samples/`` and ``export/``. The run's
launching process (global rank 0, before any other rank is started) takes a non-blocking
:func:`fcntl.flock` on the lock file and holds it until it exits; a second run is refused with
one line naming the folder, the lock file and the process that holds it. The kernel drops the
lock when the holder dies, however it dies, so a killed run never leaves a stale lock.

The lock file is opened with ``O_NOFOLLOW`` and must be a regular file: a symbolic link, a FIFO
or a folder in its place is refused by name rather than followed, truncated or waited on.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path

#: The lock file's name in a run folder.
RUN_LOCK_FILE = ".handaug-train.lock"

#: Locks this process holds: (device, inode) of the lock file → the lock (taking one twice is a no-op).
_HELD: dict[tuple[int, int], RunFolderLock] = {}


class RunFolderBusyError(RuntimeError):
    """Another process holds the run folder's lock, or the lock file cannot be used."""


class RunFolderLock:
    """An exclusive, non-blocking lock on ``<root>/.handaug-train.lock`` (see the module's docstring).

    Use :meth:`acquire` / :meth:`release`, or ``with RunFolderLock(root):``. Acquiring a lock this
    process already holds (the command line took it, then :class:`~handaug.training.ResumeCheckpoint`
    asks again) returns the held one and counts one more holder.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.path = self.root / RUN_LOCK_FILE
        self._fd: int | None = None
        self._key: tuple[int, int] | None = None
        self._holders = 0

    def acquire(self) -> RunFolderLock:
        """Take the lock (creating the folder and the lock file if needed) and return the held lock.

        Raises:
            RunFolderBusyError: another process holds it (the message names the folder, the lock
                file and that process), or the lock file is a link, a FIFO or not a regular file.
            OSError: the folder cannot be created or written (read-only, full); names the file.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(self.path, flags, 0o666)
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise RunFolderBusyError(
                    f"the run folder's lock {str(self.path)!r} is a symbolic link: handaug-train does not follow it; "
                    "remove it, or choose another --trainer.default_root_dir"
                ) from None
            if err.errno == errno.EISDIR:
                raise RunFolderBusyError(f"the run folder's lock {str(self.path)!r} is a folder; remove it") from None
            raise OSError(err.errno, f"cannot open the run folder's lock {str(self.path)!r}: {err.strerror}") from None
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise RunFolderBusyError(
                f"the run folder's lock {str(self.path)!r} is not a regular file (a FIFO or device?); remove it"
            )
        key = (info.st_dev, info.st_ino)
        held = _HELD.get(key)
        if held is not None:
            os.close(fd)
            held._holders += 1
            return held
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = os.pread(fd, 32, 0).decode("ascii", errors="replace").strip()
            os.close(fd)
            if err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise OSError(err.errno, f"cannot lock {str(self.path)!r}: {err.strerror}") from None
            who = f" (process {holder})" if holder.isdigit() else ""
            raise RunFolderBusyError(
                f"another handaug-train run{who} is using {str(self.root)!r}: it holds the lock {str(self.path)!r}. "
                "Wait for it to finish, or choose another --trainer.default_root_dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd, self._key, self._holders = fd, key, 1
        _HELD[key] = self
        return self

    def release(self) -> None:
        """Drop one hold; the lock is released when the last holder drops it (or the process exits)."""
        if self._fd is None:
            return
        self._holders -= 1
        if self._holders > 0:
            return
        _HELD.pop(self._key, None)  # type: ignore[arg-type]
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = self._key = None

    @property
    def held(self) -> bool:
        """Whether this process holds the lock through this object."""
        return self._fd is not None

    def __enter__(self) -> RunFolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
