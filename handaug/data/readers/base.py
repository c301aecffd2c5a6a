"""What the dataset readers share: root checks, file discovery, annotation parsing, projection."""

from __future__ import annotations

import operator
import re
from pathlib import Path
from typing import Any

import numpy as np

from handaug.data.folder import MAX_IMAGE_PIXELS, read_mask, read_rgb
from handaug.data.source_files import read_source_text

__all__ = ["DatasetReader", "chroma_key_mask", "find_files", "project", "read_numbers", "require_root"]


def require_root(root: Any, dataset: str, layout: str) -> Path:
    """``root`` as a Path, checked to be an existing folder.

    Raises:
        ValueError: ``root`` is ``None`` or empty.
        FileNotFoundError: ``root`` is not an existing folder; the message shows ``layout``.
    """
    if root is None or (isinstance(root, str) and not root.strip()):
        raise ValueError(f"root must be the {dataset} folder ({layout}), got {root!r}")
    path = Path(root)
    if not path.is_dir():
        raise FileNotFoundError(f"root {str(path)!r} is not a folder; the {dataset} reader expects {layout}")
    return path


def find_files(root: Path, pattern: str, dataset: str, layout: str) -> list[Path]:
    """Files under ``root`` matching the glob ``pattern`` (``**`` recurses), sorted by path.

    Raises:
        ValueError: nothing matches; the message names ``root`` and the expected layout.
    """
    files = sorted(p for p in root.glob(pattern) if p.is_file())
    if not files:
        raise ValueError(f"root {str(root)!r} holds no files matching {pattern!r}: the {dataset} reader expects {layout}")
    return files


_NUMBER_SEPARATORS = re.compile(r"[\s,;]+")


def read_numbers(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """Parse a text file of numbers (comma, semicolon or whitespace separated) into float64 ``shape``.

    Raises:
        ValueError: the file does not hold exactly ``prod(shape)`` numbers (message names the file).
    """
    text = read_source_text(path)
    tokens = [t for t in _NUMBER_SEPARATORS.split(text.strip()) if t]
    try:
        values = np.array([float(t) for t in tokens], dtype=np.float64)
    except ValueError as error:
        raise ValueError(f"annotation file {str(path)!r} holds something that is not a number: {error}") from None
    if not np.isfinite(values).all():
        raise ValueError(f"annotation file {str(path)!r} holds NaN or infinite values; annotations must be finite numbers")
    expected = int(np.prod(shape))
    if values.size != expected:
        raise ValueError(f"annotation file {str(path)!r} holds {values.size} numbers, expected {expected} (shape {shape})")
    return values.reshape(shape)


def project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pinhole projection: ``(N, 3)`` camera-frame points (any unit) → ``(N, 2)`` pixels ``(u, v)``."""
    points = np.asarray(points, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    uvw = points @ K.T
    return uvw[:, :2] / uvw[:, 2:3]


def chroma_key_mask(image: np.ndarray, colour: tuple[int, int, int], tolerance: int) -> np.ndarray:
    """``(H, W)`` uint8 mask: 0 where every channel of ``image`` is within ``tolerance`` of ``colour``, else 255."""
    difference = np.abs(image.astype(np.int16) - np.asarray(colour, dtype=np.int16))
    return np.where(difference.max(axis=2) <= tolerance, 0, 255).astype(np.uint8)


class DatasetReader:
    """Base of the readers: a map-style dataset over :attr:`image_paths`.

    Subclasses set :attr:`root` and :attr:`image_paths` in ``__init__`` and implement
    :meth:`load` (one sample dict for a valid, non-negative index). ``__getitem__`` checks the
    index, accepts negative ones, and adds ``path``.

    :meth:`read_image` and :meth:`read_mask` refuse, from the header and without decoding, a
    file of more than :attr:`max_image_pixels` pixels (an :class:`~handaug.data.folder.ImageTooLarge`,
    an ``OSError`` that the training datasets skip and count); set the attribute on an
    instance to change the limit.
    """

    dataset: str = ""
    root: Path
    image_paths: list[Path]
    #: Largest image (height × width pixels) :meth:`read_image` / :meth:`read_mask` decode.
    max_image_pixels: int = MAX_IMAGE_PIXELS

    def __len__(self) -> int:
        return len(self.image_paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        position = operator.index(index)
        n = len(self.image_paths)
        if not -n <= position < n:
            raise IndexError(f"index {index} is out of range for a {self.dataset} dataset of {n} images")
        position %= n
        sample = self.load(position)
        sample["path"] = str(self.image_paths[position])
        return sample

    def load(self, index: int) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def read_image(self, path: Path) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB; ``OSError`` if it cannot be decoded or is too large (see the class)."""
        image = read_rgb(path, self.max_image_pixels)
        if image is None:
            raise OSError(f"image {str(path)!r} cannot be decoded")
        return image

    def read_mask(self, path: Path) -> np.ndarray:
        """``(H, W)`` uint8 in {0, 255}; ``OSError`` if it cannot be decoded or is too large (see the class)."""
        mask = read_mask(path, self.max_image_pixels)
        if mask is None:
            raise OSError(f"mask {str(path)!r} cannot be decoded")
        return mask

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r}, {len(self)} images)"

