"""Atomic writes of translated images and copied files, off the main thread."""

from __future__ import annotations

import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from handaug.atomic_files import replaced_atomically, write_bytes_atomically

#: Suffix of the temporary files of a translation run (a killed run's leftovers are deleted on resume).
PARTIAL_SUFFIX = ".part"
#: JPEG quality of translated images whose source was a JPEG (the source's own quality is unknown).
JPEG_QUALITY = 95


def remove_partial_files(root: Path) -> int:
    """Delete the temporary ``.NAME.*.part`` files a killed run left under ``root``; returns how many."""
    removed = 0
    if root.is_dir():
        for tmp in root.rglob(f".*{PARTIAL_SUFFIX}"):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def write_image_atomically(path: Path, rgb: np.ndarray) -> None:
    """Encode ``rgb`` ``(H, W, 3)`` uint8 in the format of ``path``'s extension and rename it into place."""
    ext = path.suffix.lower()
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if ext in (".jpg", ".jpeg") else []
    ok, encoded = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise OSError(f"could not encode {path} as {ext}")
    write_bytes_atomically(path, encoded.tobytes(), suffix=PARTIAL_SUFFIX)


def copy_atomically(source: Path, target: Path) -> None:
    """Copy ``source`` with its metadata (size and mtime mark the copy as done) and rename it into place."""
    with replaced_atomically(target, suffix=PARTIAL_SUFFIX) as tmp:
        shutil.copy2(source, tmp)


class BackgroundWriter:
    """A small thread pool that writes while the device translates the next batch.

    At most ``max_pending`` writes wait at a time (submitting blocks beyond that), so a slow
    disk throttles the run instead of filling memory. :meth:`close` waits for every write and
    raises the first error.
    """

    def __init__(self, threads: int = 2, max_pending: int = 64) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="handaug-writer")
        self._pending: list[Future] = []
        self.max_pending = max_pending
        self.written = 0

    def submit(self, fn, *args) -> None:  # noqa: ANN001 - any write function
        self._pending.append(self._pool.submit(fn, *args))
        if len(self._pending) > self.max_pending:
            self._drain(keep=self.max_pending // 2)

    def _drain(self, keep: int = 0) -> None:
        while len(self._pending) > keep:
            self._pending.pop(0).result()  # re-raises a failed write
            self.written += 1

    def close(self) -> None:
        try:
            self._drain()
        finally:
            self._pool.shutdown(wait=True)
