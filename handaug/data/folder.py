"""A folder of images, optionally with hand masks found by a file-name pattern (registered as ``"folder"``)."""

from __future__ import annotations

import errno
import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from handaug.data.source_files import FileChanged, load_source_npy, open_source_file, read_bytes_from, read_source_json

_T = TypeVar("_T")

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


#: Largest image, in pixels (height × width), that handaug decodes by default: 50 megapixels,
#: about 150 MB as 8-bit RGB before any conversion. A larger image is refused from its header,
#: before any pixel is decoded (a small PNG of zeros can claim 10000 × 10000 pixels).
MAX_IMAGE_PIXELS = 50_000_000


class ImageTooLarge(OSError):
    """An image file whose header claims more pixels than allowed; it was not decoded.

    An :class:`OSError`, like every other image that cannot be read: the training datasets
    skip and count it, ``handaug-translate`` skips it and lists it in its manifest.
    """


#: Largest image file, in bytes, that handaug reads into memory to decode (an uncompressed
#: 16-bit RGBA image of :data:`MAX_IMAGE_PIXELS` pixels is 400 MB).
MAX_IMAGE_FILE_BYTES = 1 << 30


def _header_size(file: BinaryIO, path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """``(height, width)`` from the header of the open image ``file``; ``None`` if unreadable."""
    try:
        with warnings.catch_warnings():
            # Pillow's own warning threshold (about 89 megapixels); handaug applies its own limit.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            file.seek(0)
            with Image.open(file) as im:
                width, height = im.size
    except Image.DecompressionBombError as err:
        raise ImageTooLarge(f"image {str(path)!r} is too large to open: {err}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None
    return height, width


def _checked_header(file: BinaryIO, path: str | os.PathLike[str], max_pixels: int | None) -> tuple[int, int] | None:
    limit = MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    size = _header_size(file, path)
    if size is not None and size[0] * size[1] > limit:
        raise ImageTooLarge(
            f"image {str(path)!r} is {size[1]}×{size[0]} pixels ({size[0] * size[1] / 1e6:.1f} MP), more than the "
            f"maximum image size of {limit} pixels ({limit / 1e6:g} MP); it was not decoded"
        )
    return size


def image_size(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """``(height, width)`` from the file's header, without decoding the pixels; ``None`` if unreadable.

    The file is opened as :func:`~handaug.data.source_files.open_source_fd` opens it (a regular
    file, whatever bytes its name holds); a file that cannot be opened is unreadable.

    Raises:
        ImageTooLarge: the header claims so many pixels that Pillow refuses to open the file at
            all (a "decompression bomb", over about 179 megapixels).
        FileChanged: under :func:`~handaug.data.source_files.only_planned_files`, the file is not the planned one.
    """
    return _from_open_file(path, lambda file: _header_size(file, path))


def checked_image_size(path: str | os.PathLike[str], max_pixels: int | None = None) -> tuple[int, int] | None:
    """:func:`image_size`, refusing an image of more than ``max_pixels`` (default :data:`MAX_IMAGE_PIXELS`).

    Raises:
        ImageTooLarge: the header claims more than ``max_pixels`` pixels; the message names the
            file, its size and the limit.
    """
    return _from_open_file(path, lambda file: _checked_header(file, path, max_pixels))


def _from_open_file(path: str | os.PathLike[str], read: Callable[[BinaryIO], _T]) -> _T | None:
    """``read`` of the file opened as a source file; ``None`` if it cannot be opened (a changed planned file raises)."""
    try:
        file = open_source_file(path)
    except FileChanged:
        raise
    except OSError:
        return None
    with file:
        return read(file)


def read_image_file(path: str | os.PathLike[str], flags: int, max_pixels: int | None = None) -> np.ndarray | None:
    """Decode an image file with OpenCV's ``flags`` (``cv2.IMREAD_*``), as ``cv2.imread`` would; ``None`` if it cannot be.

    The file is opened once (see :mod:`handaug.data.source_files`: a regular file, any name,
    under a plan only the planned file), its header is checked against ``max_pixels`` (default
    :data:`MAX_IMAGE_PIXELS`) and its bytes (at most :data:`MAX_IMAGE_FILE_BYTES`) are decoded with
    ``cv2.imdecode``: OpenCV never sees the name, whose bytes may not be valid UTF-8.
    Returns the array as OpenCV gives it (BGR order, uint8 or uint16).

    Raises:
        ImageTooLarge: the header claims more than ``max_pixels`` pixels, or the file is larger
            than :data:`MAX_IMAGE_FILE_BYTES`; nothing was decoded.
        FileChanged: under :func:`~handaug.data.source_files.only_planned_files`, not the planned file.
        OSError: the file cannot be opened or is not a regular file.
    """
    with open_source_file(path) as file:
        if _checked_header(file, path, max_pixels) is None:
            return None
        try:
            data = read_bytes_from(file, path, MAX_IMAGE_FILE_BYTES, "an image file")
        except OSError as err:
            if err.errno == errno.EFBIG:
                raise ImageTooLarge(f"image {str(path)!r} is {err.strerror}; it was not decoded") from None
            raise
    if not data:
        return None
    return cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)


def read_rgb(path: str | os.PathLike[str], max_pixels: int | None = None) -> np.ndarray | None:
    """Decode an image file to ``(H, W, 3)`` uint8 RGB; ``None`` if it cannot be decoded.

    Grey images are expanded to three channels, an alpha channel is dropped, 16-bit images are
    scaled to 8 bits. The header is read first: a file that claims more than ``max_pixels``
    pixels (default :data:`MAX_IMAGE_PIXELS`) raises :class:`ImageTooLarge` without being decoded.
    The file is read as :func:`read_image_file` reads it (``OSError`` if it cannot be opened).
    """
    image = read_image_file(path, cv2.IMREAD_UNCHANGED, max_pixels)
    if image is None:
        return None
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.dtype != np.uint8:
        return None
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_mask(path: str | os.PathLike[str], max_pixels: int | None = None) -> np.ndarray | None:
    """Decode a mask file to ``(H, W)`` uint8 with 255 on the hand and 0 elsewhere.

    Masks stored as 0/1 count every 1 as hand; masks stored as 0..255 (possibly with soft
    edges) are thresholded at 128. Colour masks are read as grey. ``None`` if it cannot be
    decoded; :class:`ImageTooLarge` (without decoding) over ``max_pixels`` pixels, as :func:`read_rgb`.
    """
    mask = read_image_file(path, cv2.IMREAD_GRAYSCALE, max_pixels)
    if mask is None:
        return None
    threshold = 127 if (mask.max() > 1) else 0
    return np.where(mask > threshold, 255, 0).astype(np.uint8)


def _scanned_size(path: Path) -> tuple[int, int] | str | None:
    """:func:`image_size` for the folder scan: ``"too large"`` for a file Pillow will not even open."""
    try:
        return image_size(path)
    except ImageTooLarge:
        return "too large"


class ImageFolder:
    """Every image under ``root`` (recursively, sorted by path), each with its mask if asked for.

    Args:
        root: the folder.
        mask_pattern: where each image's mask is, relative to the image's own folder, as a
            format string with ``{stem}`` (file name without extension), ``{name}`` (with it)
            and ``{ext}`` (e.g. ``".png"``). Examples: ``"{stem}_mask.png"`` (beside the image),
            ``"../masks/{stem}.png"`` (a sibling folder). Files that are some image's mask are not
            used as images. ``None``: no masks.
        max_unreadable_fraction: images whose header cannot be read are skipped and counted;
            more than this fraction of them is an error.
        max_image_pixels: images whose header claims more pixels (height × width) are refused
            when read, without decoding them (an :class:`ImageTooLarge`, which the training
            datasets skip and count); default :data:`MAX_IMAGE_PIXELS`.
        recursive: look in sub-folders too.
        keypoints: optional keypoint annotations, ``.json`` or ``.npy``, in handaug's joint order
            (wrist, thumb, index, middle, ring, pinky, base to tip). Either a per-image pattern
            with ``{stem}``/``{name}``/``{ext}`` relative to the image's folder (e.g.
            ``"{stem}.json"``, ``"../keypoints/{stem}.npy"``), or one file for all images (a path
            relative to ``root`` unless absolute). Per image, a value is a ``(21, 2)`` array
            (pixels, ``keypoints_2d``) or, in JSON, an object with any of ``"keypoints_2d"``
            ``(21, 2)``, ``"keypoints_3d"`` ``(21, 3)``, ``"K"`` ``(3, 3)``. One JSON for all is an
            object keyed by the image's path relative to ``root`` (``"sub/a.png"``) or its file
            name, or a list aligned with the sorted images; one NPY for all is ``(N, 21, 2)``
            aligned with the sorted images. Every image must have keypoints.

    Items are dicts: ``image`` ``(H, W, 3)`` uint8 RGB, ``mask`` ``(H, W)`` uint8 in {0, 255}
    (only with ``mask_pattern``), ``keypoints_2d`` ``(21, 2)`` / ``keypoints_3d`` ``(21, 3)`` /
    ``K`` ``(3, 3)`` float32 (only with ``keypoints``, as present), ``path`` (str).
    ``images`` (and its alias ``image_paths``) lists the image files in index order.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: no images, an image without its mask, a mask whose size differs from its
            image, or too many unreadable images; the message names the files.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        mask_pattern: str | None = None,
        max_unreadable_fraction: float = 0.05,
        recursive: bool = True,
        keypoints: str | os.PathLike[str] | None = None,
        max_image_pixels: int = MAX_IMAGE_PIXELS,
    ) -> None:
        if root is None:
            raise ValueError("root must be a folder of images, got None")
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder {str(self.root)!r} does not exist or is not a folder")
        if isinstance(max_unreadable_fraction, bool) or not isinstance(max_unreadable_fraction, (int, float)) \
                or not 0.0 <= max_unreadable_fraction <= 1.0:
            raise ValueError(f"max_unreadable_fraction must be a number in [0, 1], got {max_unreadable_fraction!r}")
        if mask_pattern is not None:
            _check_pattern("mask_pattern", mask_pattern, "'{stem}_mask.png' or '../masks/{stem}.png'")
        if isinstance(max_image_pixels, bool) or not isinstance(max_image_pixels, int) or max_image_pixels < 1:
            raise ValueError(f"max_image_pixels must be a positive integer, got {max_image_pixels!r}")
        self.max_image_pixels = max_image_pixels
        self.mask_pattern = mask_pattern
        files = sorted(
            p for p in (self.root.rglob("*") if recursive else self.root.iterdir())
            if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
        )
        mask_of = {p: self._mask_path(p) for p in files} if mask_pattern else {}
        mask_files = {m.resolve() for m in mask_of.values()}
        candidates = [p for p in files if p.resolve() not in mask_files]
        if not candidates:
            raise ValueError(
                f"image folder {str(self.root)!r} holds no images (looked for {', '.join(IMAGE_EXTENSIONS)}"
                f"{' recursively' if recursive else ''})"
            )

        self.unreadable: list[Path] = []
        missing_masks: list[str] = []
        mismatched: list[str] = []
        self.images: list[Path] = []
        self.masks: list[Path] = []
        for path in candidates:
            size = _scanned_size(path)
            if size is None:
                self.unreadable.append(path)
                continue
            if mask_pattern:
                mask = mask_of[path]
                if not mask.is_file():
                    missing_masks.append(f"{path} (expected {mask})")
                    continue
                mask_size = _scanned_size(mask)
                # An image (or mask) too large to open is kept: reading it refuses it, and the
                # training datasets and handaug-translate skip it then, with its name and size.
                if mask_size != size and "too large" not in (size, mask_size):
                    mismatched.append(f"{mask} is {_hw(mask_size)} but {path.name} is {_hw(size)}")
                    continue
                self.masks.append(mask)
            self.images.append(path)

        if missing_masks:
            raise ValueError(
                f"{len(missing_masks)} image(s) in {str(self.root)!r} have no mask matching mask_pattern="
                f"{mask_pattern!r}: {'; '.join(missing_masks[:5])}{' ...' if len(missing_masks) > 5 else ''}"
            )
        if mismatched:
            raise ValueError(
                f"{len(mismatched)} mask(s) in {str(self.root)!r} do not match their image's size: "
                f"{'; '.join(mismatched[:5])}{' ...' if len(mismatched) > 5 else ''}"
            )
        if self.unreadable:
            fraction = len(self.unreadable) / len(candidates)
            listed = ", ".join(str(p) for p in self.unreadable[:5]) + (" ..." if len(self.unreadable) > 5 else "")
            if fraction > max_unreadable_fraction or not self.images:
                raise ValueError(
                    f"{len(self.unreadable)} of {len(candidates)} images in {str(self.root)!r} are unreadable "
                    f"({fraction:.1%} > max_unreadable_fraction={max_unreadable_fraction}): {listed}"
                )
            warnings.warn(
                f"skipped {len(self.unreadable)} of {len(candidates)} unreadable images in {str(self.root)!r}: {listed}",
                RuntimeWarning,
                stacklevel=2,
            )

        self.image_paths: list[Path] = self.images  # the name the dataset readers use
        self.keypoints = None if keypoints is None else str(keypoints)
        self._keypoint_files: list[Path] | None = None
        self._keypoint_records: list[dict[str, np.ndarray]] | None = None
        if self.keypoints is not None:
            self._load_keypoints(self.keypoints)

    def _load_keypoints(self, spec: str) -> None:
        if "{" in spec:
            _check_pattern("keypoints", spec, "'{stem}.json' or '../keypoints/{stem}.npy'")
        if not spec.endswith((".json", ".npy")):
            raise ValueError(f"keypoints must name .json or .npy files, got {spec!r}")
        if "{" in spec:
            files = [image.parent / spec.format(stem=image.stem, name=image.name, ext=image.suffix) for image in self.images]
            missing = [f"{image} (expected {f})" for image, f in zip(self.images, files) if not f.is_file()]
            if missing:
                raise ValueError(
                    f"{len(missing)} image(s) in {str(self.root)!r} have no keypoint file matching keypoints={spec!r}: "
                    f"{'; '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
                )
            self._keypoint_files = files
            return
        path = Path(spec) if Path(spec).is_absolute() else self.root / spec
        if not path.is_file():
            raise FileNotFoundError(f"keypoints file {str(path)!r} does not exist (keypoints={spec!r})")
        if path.suffix == ".npy":
            array = load_source_npy(path)
            if array.shape != (len(self.images), 21, 2):
                raise ValueError(
                    f"keypoints file {str(path)!r} must hold ({len(self.images)}, 21, 2) (one (21, 2) per image), got {array.shape}"
                )
            self._keypoint_records = [_keypoint_record(a, f"{path} [{image.name}]") for a, image in zip(array, self.images)]
            return
        data = read_source_json(path)
        if isinstance(data, list):
            if len(data) != len(self.images):
                raise ValueError(f"keypoints file {str(path)!r} lists {len(data)} entries for {len(self.images)} images")
            values = data
        elif isinstance(data, dict):
            values, missing = [], []
            for image in self.images:
                key = image.relative_to(self.root).as_posix()
                value = data.get(key, data.get(image.name))
                if value is None:
                    missing.append(key)
                values.append(value)
            if missing:
                raise ValueError(
                    f"keypoints file {str(path)!r} has no entry for {len(missing)} image(s): "
                    f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
                )
        else:
            raise ValueError(f"keypoints file {str(path)!r} must hold a JSON object or list, got {type(data).__name__}")
        self._keypoint_records = [_keypoint_record(v, f"{path} [{image.name}]") for v, image in zip(values, self.images)]

    def _keypoints_of(self, index: int) -> dict[str, np.ndarray]:
        if self._keypoint_records is not None:
            return {k: v.copy() for k, v in self._keypoint_records[index].items()}
        assert self._keypoint_files is not None
        path = self._keypoint_files[index]
        if path.suffix == ".npy":
            return _keypoint_record(load_source_npy(path), str(path))
        return _keypoint_record(read_source_json(path), str(path))

    def _mask_path(self, image: Path) -> Path:
        assert self.mask_pattern is not None
        relative = self.mask_pattern.format(stem=image.stem, name=image.name, ext=image.suffix)
        return image.parent / relative

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.images[index]
        image = read_rgb(path, self.max_image_pixels)
        if image is None:
            raise OSError(f"image {str(path)!r} has a readable header but its pixels cannot be decoded")
        sample: dict[str, Any] = {"image": image, "path": str(path)}
        if self.masks:
            mask = read_mask(self.masks[index], self.max_image_pixels)
            if mask is None:
                raise OSError(f"mask {str(self.masks[index])!r} cannot be decoded")
            sample["mask"] = mask
        if self.keypoints is not None:
            sample.update(self._keypoints_of(index))
        return sample

    def __repr__(self) -> str:
        masks = f", mask_pattern={self.mask_pattern!r}" if self.mask_pattern else ""
        return f"ImageFolder({str(self.root)!r}, {len(self)} images{masks})"


def _check_pattern(argument: str, pattern: Any, examples: str) -> None:
    """A per-image file-name pattern: a non-empty string using only ``{stem}``, ``{name}`` and ``{ext}``."""
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"{argument} must be a file-name pattern such as {examples}, got {pattern!r}")
    try:
        pattern.format(stem="a", name="a.png", ext=".png")
    except (KeyError, IndexError, ValueError) as err:
        raise ValueError(f"{argument} {pattern!r} may only use {{stem}}, {{name}} and {{ext}}, e.g. {examples} ({err!r})") from None


_KEYPOINT_SHAPES: dict[str, tuple[int, int]] = {"keypoints_2d": (21, 2), "keypoints_3d": (21, 3), "K": (3, 3)}


def _keypoint_record(value: Any, source: str) -> dict[str, np.ndarray]:
    """One image's annotation: a (21, 2) array, or a dict of keypoints_2d / keypoints_3d / K."""
    fields = value if isinstance(value, dict) else {"keypoints_2d": value}
    unknown = set(fields) - set(_KEYPOINT_SHAPES)
    if unknown or not fields:
        raise ValueError(
            f"keypoints in {source} must be a (21, 2) array or an object with {sorted(_KEYPOINT_SHAPES)}, "
            f"got keys {sorted(fields)}"
        )
    record = {}
    for key, item in fields.items():
        try:
            array = np.asarray(item, dtype=np.float32)
        except (TypeError, ValueError):
            array = np.empty(0)
        if array.shape != _KEYPOINT_SHAPES[key]:
            raise ValueError(f"{key} in {source} must have shape {_KEYPOINT_SHAPES[key]}, got {array.shape}")
        if not np.isfinite(array).all():
            raise ValueError(f"{key} in {source} holds NaN or infinite values; keypoints must be finite numbers")
        record[key] = array
    return record


def _hw(size: tuple[int, int] | str | None) -> str:
    return "unreadable" if size is None else size if isinstance(size, str) else f"{size[0]}×{size[1]}"
