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
belongs to the user and is never changed. The state folder, its files and every journal path are
reached from DST without following symbolic links (:mod:`.target`): a state folder or lock that
is a link is refused, a journal file that is a link is not read, and a journal path through a
folder of DST that is a link is never deleted.
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

from handaug.atomic_files import json_bytes, with_filename
from handaug.translation.target import LinkInTarget, TargetFolder

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


#: Largest run record or shard record read back, in bytes.
MAX_RECORD_BYTES = 1 << 28


class TargetLock:
    """An exclusive, non-blocking ``flock`` on ``DST/.handaug-translate/lock``.

    Only one process of a run takes it (global rank 0, before any other rank is started). The
    lock file keeps the holder's process id, for the message another run gets. The state folder
    and the lock file are never followed when they are symbolic links: such a target is refused.
    """

    def __init__(self, target: TargetFolder) -> None:
        self.target = target
        self.target_root = target.root
        self.path = state_dir(target.root) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> TargetLock:
        """Take the lock.

        Raises:
            TargetFolderError: another process holds it (the message names the target and that
                process), or the state folder or the lock file is a symbolic link or not a regular
                file (the message names it).
        """
        try:
            fd = self.target.open_file(f"{STATE_DIR}/{LOCK_FILE}", os.O_RDWR | os.O_CREAT, create_folders=True)
        except LinkInTarget as err:
            raise TargetFolderError(
                f"{err.filename!r} {err.strerror}; handaug keeps its state in {str(state_dir(self.target_root))!r} only as a "
                "real folder of real files. Remove it, or choose another target"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
            os.close(fd)
            if err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise with_filename(err, self.path) from None
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
    The journal file and its folders are opened without following links.
    """

    def __init__(self, target: TargetFolder, name: str) -> None:
        self.target = target
        self.target_root = target.root
        self.relative = f"{STATE_DIR}/{JOURNAL_DIR}/{name}.jsonl"
        self.path = target.path(self.relative)
        self._fd: int | None = None
        self._lock = threading.Lock()

    def record(self, target: Path, temp: Path) -> None:
        """Note that handaug is about to create ``temp`` and rename it onto ``target`` (both inside DST)."""
        line = json.dumps({"path": self._relative(target), "temp": self._relative(temp)}) + "\n"
        data = line.encode()
        with self._lock:
            try:
                if self._fd is None:
                    self._fd = self.target.open_file(self.relative, os.O_WRONLY | os.O_APPEND | os.O_CREAT, create_folders=True)
                written = 0
                while written < len(data):
                    written += os.write(self._fd, data[written:])
            except OSError as err:
                raise with_filename(err, self.path) from err

    def before_create(self, target: Path):  # noqa: ANN201 - the callback type of replaced_atomically
        """The ``before_create`` callback of :meth:`TargetFolder.write_atomically` for ``target``."""
        return lambda temp: self.record(target, temp)

    def _relative(self, path: Path) -> str:
        return Path(path).relative_to(self.target_root).as_posix()

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def read_journals(target: TargetFolder) -> JournalContents:
    """Everything every journal under DST recorded (a torn last line of a killed process is ignored).

    Journal files that are symbolic links or not regular files are not read.
    """
    contents = JournalContents()
    folder = f"{STATE_DIR}/{JOURNAL_DIR}"
    for name in sorted(target.listdir(folder)):
        if not name.endswith(".jsonl"):
            continue
        data = target.read_bytes(f"{folder}/{name}", MAX_RECORD_BYTES)
        if data is None:
            continue
        for line in data.decode(errors="surrogateescape").splitlines():
            try:
                entry = json.loads(line)
                written, temp = entry["path"], entry["temp"]
            except (ValueError, KeyError, TypeError):
                continue
            if isinstance(written, str) and isinstance(temp, str) and _inside(written) and _inside(temp):
                contents.written.add(written)
                contents.temps.add(temp)
    return contents


def _inside(relative: str) -> bool:
    """A journal path stays inside DST (the journal is data: never follow it elsewhere)."""
    parts = Path(relative).parts
    return bool(parts) and not Path(relative).is_absolute() and ".." not in parts


def remove_journalled_temps(target: TargetFolder, contents: JournalContents) -> int:
    """Delete the temporary files a killed run left: only names the journal lists. Returns how many.

    A temporary is reached from DST without following links: one named through a folder of DST
    that is a symbolic link is left alone (it is not inside DST).
    """
    removed = 0
    for temp in sorted(contents.temps):
        name = Path(temp).name
        if name.startswith(".") and name.endswith(TEMP_SUFFIX) and target.unlink(temp):
            removed += 1
    return removed


def remove_written_files(target: TargetFolder, contents: JournalContents) -> int:
    """Delete every file the journals say handaug wrote (for ``--overwrite``), then the journals. Returns how many files.

    As :func:`remove_journalled_temps`, nothing is deleted through a symbolic link.
    """
    remove_journalled_temps(target, contents)
    removed = sum(1 for written in sorted(contents.written) if target.unlink(written))
    for name in target.listdir(f"{STATE_DIR}/{JOURNAL_DIR}"):
        if name.endswith(".jsonl"):
            target.unlink(f"{STATE_DIR}/{JOURNAL_DIR}/{name}")
    target.unlink(f"{STATE_DIR}/{RUN_RECORD}")
    return removed


def read_run_record(target: TargetFolder) -> dict[str, Any] | None:
    """The run record of the outputs in DST, or ``None`` if there is none (or it is unreadable, or a link)."""
    data = target.read_bytes(f"{STATE_DIR}/{RUN_RECORD}", MAX_RECORD_BYTES)
    try:
        record = json.loads(data) if data is not None else None
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def write_run_record(target: TargetFolder, record: dict[str, Any], journal: Journal) -> None:
    write_json_journalled(state_dir(target.root) / RUN_RECORD, record, journal)


def write_json_journalled(path: Path, data: Any, journal: Journal) -> None:
    """Write ``data`` as JSON to ``path`` (inside DST) atomically, its temporary name journalled first."""
    relative = Path(path).relative_to(journal.target_root).as_posix()
    encoded = json_bytes(data)
    journal.target.write_atomically(relative, lambda file: file.write(encoded), TEMP_SUFFIX, journal.before_create(path))
