"""Atomic, journalled writes of translated images and copied files, off the main thread."""

from __future__ import annotations

import os
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from handaug.arguments import is_integer
from handaug.data.source_files import FileIdentity, open_source_file
from handaug.translation.state import TEMP_SUFFIX, Journal

#: JPEG quality of translated images whose source was a JPEG (the source's own quality is unknown).
JPEG_QUALITY = 95
#: PNG compression level (zlib, 0..9) of translated PNGs; ``None`` is OpenCV's default, level 1 with
#: zlib's run-length strategy. Measured on 256 px procedural hands (noise background, one core, OpenCV
#: 5.1): the default encodes in 2.9 ms to 61 KiB, level 0 in 2.8 ms to 193 KiB, level 1 in 6.1 ms to
#: 53 KiB, level 3 in 10 ms to 48 KiB, level 6 in 22 ms to 42 KiB, level 9 in 257 ms to 40 KiB. PNG is
#: lossless at every level: the level trades only time for size (``--png-compression``).
PNG_COMPRESSION: int | None = None


class SourceUnreadable(OSError):
    """A source file that could not be opened for reading: skipped, not a reason to stop the run."""


def encoding_parameters(ext: str, png_compression: int | None = PNG_COMPRESSION) -> list[int]:
    """The ``cv2.imencode`` parameters of a translated image with extension ``ext`` (``".png"``, ``".jpg"``, ...).

    Raises:
        ValueError: ``png_compression`` is not ``None`` or an integer in ``0..9``.
    """
    if png_compression is not None and (not is_integer(png_compression) or not 0 <= png_compression <= 9):
        raise ValueError(f"png_compression (--png-compression) must be an integer in 0..9 or None, got {png_compression!r}")
    ext = ext.lower()
    if ext in (".jpg", ".jpeg"):
        return [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    if ext == ".png" and png_compression is not None:
        return [cv2.IMWRITE_PNG_COMPRESSION, int(png_compression)]
    return []


def write_image_atomically(path: Path, rgb: np.ndarray, journal: Journal, png_compression: int | None = PNG_COMPRESSION,
                           *, channels_first: bool = False) -> None:
    """Encode ``rgb`` ``(H, W, 3)`` uint8 in the format of ``path``'s extension and rename it into place.

    ``channels_first``: ``rgb`` is ``(3, H, W)`` uint8 instead (planes, as a batch of a device
    comes back); OpenCV interleaves them into its BGR order in one pass (a strided ``(H, W, 3)``
    view would cost it 20 times as long as the copy). PNGs are written at zlib level ``png_compression`` (see :data:`PNG_COMPRESSION`), JPEGs at
    :data:`JPEG_QUALITY`. Encoding runs in OpenCV, which releases the GIL: several writer
    threads encode in parallel. The temporary name is recorded in ``journal`` before the file is created. The file is
    written through the journal's :class:`~handaug.translation.target.TargetFolder`: never
    through a folder of DST that is (or became during the run) a symbolic link.

    Raises:
        LinkInTarget: a folder of ``path`` in DST is a symbolic link or not a folder.
        OSError: the image cannot be encoded or written (the error names ``path``).
    """
    ext = path.suffix.lower()
    params = encoding_parameters(ext, png_compression)
    if channels_first:
        if rgb.ndim != 3 or rgb.shape[0] != 3:
            raise ValueError(f"expected (3, H, W) planes to write {path}, got shape {rgb.shape}")
        bgr = cv2.merge([np.ascontiguousarray(rgb[c]) for c in (2, 1, 0)])
    else:
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(ext, bgr, params)
    if not ok:
        raise OSError(f"could not encode {path} as {ext}")
    data = encoded.tobytes()
    journal.target.write_atomically(_relative(path, journal), lambda file: file.write(data), TEMP_SUFFIX, journal.before_create(path))


def copy_atomically(source: Path, target: Path, journal: Journal, expected: FileIdentity | None = None) -> None:
    """Copy the bytes of ``source`` and its modification time (which marks the copy as done) and rename it into place.

    The copy gets the mode a new file gets (``0o666`` less the umask), like every file handaug writes.
    ``source`` must be a regular file and, with ``expected``, still the file planned: a link put
    in its place is not followed (see :func:`~handaug.data.source_files.open_source_fd`).

    Raises:
        SourceUnreadable: ``source`` cannot be opened, is not a regular file or is not the planned file.
        LinkInTarget: a folder of ``target`` in DST is a symbolic link (as :func:`write_image_atomically`).
        OSError: the copy cannot be written (the error names ``target``).
    """
    try:
        reader = open_source_file(source, expected)  # opened first to tell read from write errors
        times = os.fstat(reader.fileno())
    except OSError as err:
        raise SourceUnreadable(err.errno, f"cannot be read: {err.strerror or err}", str(source)) from err
    with reader:
        journal.target.write_atomically(
            _relative(target, journal), lambda out: shutil.copyfileobj(reader, out, 1 << 20), TEMP_SUFFIX,
            journal.before_create(target), times_ns=(times.st_atime_ns, times.st_mtime_ns),
        )


def _relative(path: Path, journal: Journal) -> str:
    return Path(path).relative_to(journal.target_root).as_posix()


def default_writer_threads() -> int:
    """Encoding and writing threads by default: one per core this process may use, at least 2, at most 8.

    Encoding a 256 px PNG takes about as long as decoding it (3 ms on one core), and OpenCV
    releases the GIL while it encodes, so the writer needs about as many cores as the readers.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 2
    return max(2, min(8, cores))


class BackgroundWriter:
    """A thread pool that encodes and writes while the device translates the next batch.

    At most ``max_pending`` writes wait at a time (submitting blocks beyond that), so a slow
    disk throttles the run instead of filling memory; make it at least two batches, so that one
    batch is written while the next is translated. The first failed write stops the writer:
    later submissions are dropped, :attr:`failed` turns true, and :meth:`close` raises that error.
    """

    def __init__(self, threads: int = 2, max_pending: int = 64) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="handaug-writer")
        self._pending: list[Future] = []
        self.max_pending = max_pending
        self.error: BaseException | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None

    def submit(self, fn, *args, **kwargs) -> None:  # noqa: ANN001 - any write function
        if self.failed:
            return
        self._pending.append(self._pool.submit(fn, *args, **kwargs))
        while self._pending and self._pending[0].done():
            self._collect(self._pending.pop(0))
        if len(self._pending) > self.max_pending:
            self._drain(keep=self.max_pending // 2)

    def _collect(self, future: Future) -> None:
        try:
            future.result()
        except Exception as err:  # noqa: BLE001 - kept and raised by close()
            if self.error is None:
                self.error = err

    def _drain(self, keep: int = 0) -> None:
        while len(self._pending) > keep:
            self._collect(self._pending.pop(0))

    def close(self) -> None:
        """Wait for every write; raise the first error, if any."""
        try:
            self._drain()
        finally:
            self.shut_down()
        if self.error is not None:
            raise self.error

    def shut_down(self) -> None:
        """Let the submitted writes finish, then stop; raise nothing (for a run that is already failing).

        A run that stops early (an error, Ctrl-C) must not release its lock or close its journal
        while these threads still write: a write then finishes after the journal closed, or races
        with the next run on the same folder. The writes already submitted are translations that
        are paid for, so they are finished rather than dropped; resuming then starts after them.
        Safe to call after :meth:`close`.
        """
        self._pool.shutdown(wait=True)
