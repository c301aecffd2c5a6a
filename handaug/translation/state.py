"""What ``handaug-translate`` keeps in ``DST/.handaug-translate/``: the lock, the run record and the journal.

- ``lock``: an exclusive :func:`fcntl.flock` that the launching process (global rank 0) holds for
  the whole run, so that two runs never write into one target at the same time.
- ``run.json``: the run record, written before the first output: the source, the dataset reader
  and its options, the checkpoint's SHA-256 and the settings that change the pixels (mask mode,
  hand crop, precision). A later run with other values is refused instead of mixing outputs.
- ``journal/*.jsonl``: one line ``{"path": ..., "temp": ...}`` (paths relative to DST) for every
  file handaug writes into DST, appended *before* its temporary file is created. It is the
  only source of truth for which files in DST are handaug's: only those count as done, may be
  overwritten or removed, and only the temporary files it names are ever deleted.

The state folder itself is handaug's; everything else in DST that the journal does not name
belongs to the user and is never changed.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from handaug.atomic_files import json_bytes, with_filename, write_bytes_atomically

#: The manifest of a run, in the target folder: what was done, with which checkpoint and settings, what was skipped.
MANIFEST_FILE = "handaug-translate.json"
STATE_DIR = ".handaug-translate"
LOCK_FILE = "lock"
RUN_RECORD = "run.json"
JOURNAL_DIR = "journal"
#: Suffix of handaug-translate's temporary files (``.NAME.RANDOM.handaug-part``).
TEMP_SUFFIX = ".handaug-part"


class TargetFolderError(ValueError):
    """The target folder cannot be used as it is (held by another run, someone else's files, other settings)."""


def state_dir(target_root: Path) -> Path:
    return target_root / STATE_DIR


class TargetLock:
    """An exclusive, non-blocking ``flock`` on ``DST/.handaug-translate/lock``.

    Only one process of a run takes it (global rank 0, before any other rank is started). The
    lock file keeps the holder's process id, for the message another run gets.
    """

    def __init__(self, target_root: Path) -> None:
        self.target_root = target_root
        self.path = state_dir(target_root) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> TargetLock:
        """Take the lock.

        Raises:
            TargetFolderError: another process holds it; the message names the target and that process.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
            os.close(fd)
            if err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            raise TargetFolderError(
                f"another handaug-translate run{f' (process {holder})' if holder else ''} is writing to "
                f"{str(self.target_root)!r}: it holds the lock {str(self.path)!r}. Wait for it to finish, or choose another target"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


@dataclass
class JournalContents:
    """What every journal under DST says: the files handaug wrote and the temporary names it used."""

    written: set[str] = field(default_factory=set)
    temps: set[str] = field(default_factory=set)


class Journal:
    """The journal of one process of one run: ``journal/<name>.jsonl``, appended to, never rewritten.

    Each line is written with a single ``write`` on an ``O_APPEND`` descriptor, so the writer
    threads of a process and the ranks of a run (each with its own file) never tear lines.
    """

    def __init__(self, target_root: Path, name: str) -> None:
        self.target_root = target_root
        self.path = state_dir(target_root) / JOURNAL_DIR / f"{name}.jsonl"
        self._fd: int | None = None
        self._lock = threading.Lock()

    def record(self, target: Path, temp: Path) -> None:
        """Note that handaug is about to create ``temp`` and rename it onto ``target`` (both inside DST)."""
        line = json.dumps({"path": self._relative(target), "temp": self._relative(temp)}) + "\n"
        data = line.encode()
        with self._lock:
            try:
                if self._fd is None:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
                written = 0
                while written < len(data):
                    written += os.write(self._fd, data[written:])
            except OSError as err:
                raise with_filename(err, self.path) from err

    def before_create(self, target: Path):  # noqa: ANN201 - the callback type of replaced_atomically
        """The ``before_create`` callback of :func:`~handaug.atomic_files.replaced_atomically` for ``target``."""
        return lambda temp: self.record(target, temp)

    def _relative(self, path: Path) -> str:
        return Path(path).relative_to(self.target_root).as_posix()

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def read_journals(target_root: Path) -> JournalContents:
    """Everything every journal under ``target_root`` recorded (a torn last line of a killed process is ignored)."""
    contents = JournalContents()
    folder = state_dir(target_root) / JOURNAL_DIR
    if not folder.is_dir():
        return contents
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_text(errors="surrogateescape").splitlines():
            try:
                entry = json.loads(line)
                target, temp = entry["path"], entry["temp"]
            except (ValueError, KeyError, TypeError):
                continue
            if isinstance(target, str) and isinstance(temp, str) and _inside(target) and _inside(temp):
                contents.written.add(target)
                contents.temps.add(temp)
    return contents


def _inside(relative: str) -> bool:
    """A journal path stays inside DST (the journal is data: never follow it elsewhere)."""
    parts = Path(relative).parts
    return bool(parts) and not Path(relative).is_absolute() and ".." not in parts


def remove_journalled_temps(target_root: Path, contents: JournalContents) -> int:
    """Delete the temporary files a killed run left: only names the journal lists. Returns how many."""
    removed = 0
    for temp in sorted(contents.temps):
        path = target_root / temp
        if path.name.startswith(".") and path.name.endswith(TEMP_SUFFIX) and os.path.lexists(path) and not path.is_dir():
            path.unlink()
            removed += 1
    return removed


def remove_written_files(target_root: Path, contents: JournalContents) -> int:
    """Delete every file the journals say handaug wrote (for ``--overwrite``), then the journals. Returns how many files."""
    remove_journalled_temps(target_root, contents)
    removed = 0
    for written in sorted(contents.written):
        path = target_root / written
        if os.path.lexists(path) and not path.is_dir():
            path.unlink()
            removed += 1
    folder = state_dir(target_root)
    for stale in [*(folder / JOURNAL_DIR).glob("*.jsonl"), folder / RUN_RECORD]:
        stale.unlink(missing_ok=True)
    return removed


def read_run_record(target_root: Path) -> dict[str, Any] | None:
    """The run record of the outputs in ``target_root``, or ``None`` if there is none (or it is unreadable)."""
    try:
        record = json.loads((state_dir(target_root) / RUN_RECORD).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def write_run_record(target_root: Path, record: dict[str, Any], journal: Journal) -> None:
    write_json_journalled(state_dir(target_root) / RUN_RECORD, record, journal)


def write_json_journalled(path: Path, data: Any, journal: Journal) -> None:
    """Write ``data`` as JSON to ``path`` (inside DST) atomically, its temporary name journalled first."""
    write_bytes_atomically(path, json_bytes(data), suffix=TEMP_SUFFIX, before_create=journal.before_create(path))
